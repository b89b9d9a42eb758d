# shellcheck shell=sh
# `sshbox sandbox check`: what a sandbox needs, probed by one POSIX sh
# script on the session's stdin (ssh runs `/bin/sh -s`).  It prints one
# "name|required|ok-or-missing|version" line per item; cmd_sandbox.c reads
# them and words the fixes.
#
# Embedded into sshbox by scripts/embed-sh.sh as sh_check_body (without its
# comment lines); cmd_sandbox.c prepends the parameters below, quoted by
# remote_quote.  Not embedded: this part is for shellcheck and the reader.
W='/the/sandbox/workdir'   # must be writable, with 1 GiB free
C='claude'                 # command or path of Claude Code

#@part body
# item NAME REQUIRED COMMAND...: ok with the first line COMMAND prints;
# missing when it is not on PATH, fails, or prints nothing
item() { n=$1; q=$2; shift 2
  if command -v "$1" >/dev/null 2>&1 && v=$("$@" 2>&1 </dev/null | head -n 1) && [ -n "$v" ]; then
    printf '%s|%s|ok|%s\n' "$n" "$q" "$v"; else printf '%s|%s|missing|\n' "$n" "$q"; fi; }
item bash 1 bash --version
item flock 1 flock --version
item git 1 git --version
item git-lfs 1 git-lfs version
item node 1 node --version
item npm 1 npm --version
item python3 1 python3 --version
item uv 1 uv --version
item claude 1 "$C" --version
item curl 0 curl --version
if command -v make >/dev/null 2>&1; then item build-essential 0 gcc --version; else echo 'build-essential|0|missing|'; fi
if mkdir -p -- "$W" 2>/dev/null && t=$(mktemp "$W/.sshbox-check.XXXXXX" 2>/dev/null) && rm -f -- "$t"; then
  echo "workdir|1|ok|$W is writable"; else echo "workdir|1|missing|$W is not writable by $(id -un)"; fi
k=$(df -Pk -- "$W" 2>/dev/null | awk 'NR==2 { print $4 }')
case $k in (''|*[!0-9]*) echo 'disk|1|missing|unknown';;
  (*) if [ "$k" -ge 1048576 ]; then echo "disk|1|ok|$((k / 1024)) MiB free"; else echo "disk|1|missing|only $((k / 1024)) MiB free (< 1 GiB)"; fi;; esac
