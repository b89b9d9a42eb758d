# shellcheck shell=sh
# The keeper between sshbox and its ssh-agent (agent.c runs it as
# `/bin/sh -c <this> /usr/bin/ssh-agent SOCKET`: $0 is the agent, $1 the
# socket).  ssh-agent is setgid on Debian, and the kernel drops
# PR_SET_PDEATHSIG across a setgid exec: a killed sshbox would leave the
# agent (and the key) behind.  So this plain shell stops the agent when its
# stdin -- a pipe whose only writer is sshbox -- closes, which happens
# however sshbox ends.
#
# Embedded into sshbox by scripts/embed-sh.sh as sh_agent_keeper_body.

#@part body
"$0" -D -a "$1" </dev/null >/dev/null 2>&1 & a=$!
trap 'kill $a 2>/dev/null' TERM INT
read -r _
kill $a 2>/dev/null
wait $a
