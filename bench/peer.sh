#!/usr/bin/env bash
# bench/peer.sh — the peer benchmark (issue 7): the no-op job of
# bench/dispatch.sh through `sshbox run`, against the same no-op through
# Ansible ad-hoc (`ansible all -m raw`, the Debian package, with its own
# ControlPersist master) on the same sandbox, user, port and key, and the
# bare `ssh -F <state>/ssh_config <alias> true` floor.  Both peers run warm:
# sshbox through the supervisor's master, Ansible through the master its
# warm-up runs leave behind.  hyperfine (Debian) measures; a table of
# medians and ratios is printed.
#
#	bench/peer.sh [-n RUNS]

# The harness is sourced at run time; test bodies are single-quoted on purpose
# (tests/lib.sh evals them).
# shellcheck disable=SC1091,SC2016
runs=20
while getopts n: o; do
	case $o in
	n) runs=$OPTARG ;;
	*) echo "usage: bench/peer.sh [-n RUNS]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))

. "$(dirname "$0")/../tests/lib.sh"
. "$REPO_ROOT/tests/testbed.sh"
. "$REPO_ROOT/tests/sshbox-env.sh"
. "$REPO_ROOT/bench/lib.sh"

command -v hyperfine >/dev/null || test_skip_all 'hyperfine is not installed (scripts/deps.sh bench)'
command -v ansible >/dev/null || test_skip_all 'ansible is not installed (scripts/deps.sh bench)'

# Ansible refuses to start without a UTF-8 locale (the harness sets LC_ALL=C).
peer_ansible() { LC_ALL=C.UTF-8 timeout 60 ansible "$@"; }

test_expect_success 'test bed: Redis, a sandbox with the no-op stub, the supervisor' '
	bench_noop_bed
'

# Everything Ansible needs is taken from what ssh makes of sshbox's own
# config for the alias: address, port, user, known_hosts and agent socket
# (the supervisor's, holding the account key).
test_expect_success 'ansible: inventory and ansible.cfg from the alias' '
	cfg=$SSHBOX_STATE_DIR/ssh_config &&
	ssh -G -F "$cfg" sbx-acme-127.0.0.2 >alias.G &&
	g() { sed -n "s/^$1 //p" alias.G | head -n 1; } &&
	a_host=$(g hostname) && a_port=$(g port) && a_user=$(g user) &&
	a_kh=$(g userknownhostsfile) && a_alias=$(g hostkeyalias) &&
	a_agent=$(g identityagent) && a_id=$(g identityfile) &&
	test "$a_host" = 127.0.0.2 && test "$a_port" = "$TB_A_PORT" &&
	test "$a_user" = "$TB_A_USER" && test -s "$a_kh" && test -S "$a_agent" && test -s "$a_id" &&
	mkdir -p acp ansible-tmp &&
	cat >inventory.ini <<-EOF &&
	[sbx]
	sbx-a ansible_host=$a_host ansible_port=$a_port ansible_user=$a_user
	EOF
	cat >ansible.cfg <<-EOF &&
	[defaults]
	inventory = $TEST_DIR/inventory.ini
	host_key_checking = True
	retry_files_enabled = False
	gathering = explicit
	interpreter_python = auto_silent
	deprecation_warnings = False
	system_warnings = False
	localhost_warning = False
	forks = 1
	timeout = 10
	local_tmp = $TEST_DIR/ansible-tmp
	[ssh_connection]
	# its default ssh_args, spelt out; the master lives in the test dir
	ssh_args = -C -o ControlMaster=auto -o ControlPersist=60s
	# host key pinning and agent as sshbox has them (known_hosts names the alias)
	ssh_common_args = -o HostKeyAlias=$a_alias -o UserKnownHostsFile=$a_kh -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o IdentityAgent=$a_agent -o IdentityFile=$a_id -o IdentitiesOnly=yes -o BatchMode=yes
	control_path_dir = $TEST_DIR/acp
	control_path = %(directory)s/%%C
	pipelining = False
	EOF
	export ANSIBLE_CONFIG=$TEST_DIR/ansible.cfg ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 &&
	# its masters (ControlPersist=60s) would outlive the test bed
	test_atexit "sb_stop_masters_in \"$TEST_DIR/acp\"" &&
	# the same no-op: the sandbox runs the stub, in its workdir, prompt-less
	noop="cd $TB_A_WORKDIR && $REPO_ROOT/tests/data/stub-claude-noop </dev/null" &&
	peer_ansible all -m raw -a "$noop" >check.ansible 2>&1 &&
	grep -q "sbx-a | CHANGED" check.ansible &&
	grep -q "\"subtype\":\"success\"" check.ansible &&
	test -n "$(find acp -type s)"
'

# Once, with ssh -vvv (ansible -vvvv): a warm run must go through the
# master the check above left (and open one ssh client only).
test_expect_success 'ansible reuses its ControlPersist master' '
	peer_ansible all -vvvv -m raw -a "$noop" >vvvv.ansible 2>&1 &&
	grep -c "SSH: EXEC ssh " vvvv.ansible >ansible.execs &&
	grep -q "auto-mux: Trying existing master" vvvv.ansible &&
	grep -q "mux_client_request_session: master session id" vvvv.ansible &&
	! grep -q "Authenticated to" vvvv.ansible
'

test_expect_success "hyperfine, $runs runs each" '
	{ timeout 900 hyperfine --style none --warmup 3 --runs "$runs" --export-json hf.json \
		-n "sshbox run (no-op job)" "$SSHBOX run <noop.json >/dev/null" \
		-n "ansible -m raw (ControlPersist)" "LC_ALL=C.UTF-8 ansible all -m raw -a \"$noop\" >/dev/null" \
		-n "ssh through the master (floor)" "ssh -F $cfg sbx-acme-127.0.0.2 true" \
		>hf.out 2>&1 || { cat hf.out; false; }; }
'

test_expect_success 'report' '
	/usr/bin/python3 - hf.json "$runs" "$(cat ansible.execs)" peer.vals <<-PY >&6 &&
	import json, sys
	r = json.load(open(sys.argv[1]))["results"]
	med = {x["command"]: x["median"] * 1000 for x in r}
	names = [x["command"] for x in r]
	sb, an, floor = (med[n] for n in names)
	print("peer: no-op job, sshbox vs Ansible ad-hoc on the same sandbox, median of %s runs (hyperfine)" % sys.argv[2])
	print("  %-34s %9s %9s %9s" % ("", "ms", "x floor", "x ansible"))
	for n in names:
	    print("  %-34s %9.1f %9.2f %9.2f" % (n, med[n], med[n] / floor, med[n] / an))
	print("  ansible: %s ssh client per run, through its warm master (checked with -vvvv)" % sys.argv[3])
	ratio = sb / an
	print("  goal: sshbox run <= ansible -m raw: %.2f (%s)" % (ratio, "met" if ratio <= 1 else "NOT met"))
	open(sys.argv[4], "w").write("%.1f %.1f %.2f\n" % (sb, an, ratio))
	PY
	read -r sb_ms an_ms ratio <peer.vals &&
	bench_summary peer "no-op job vs ansible -m raw" "$sb_ms" ms "$an_ms" "$ratio" "<= 1"
'

test_done
