#!/usr/bin/env bash
test_description='sshbox supervise: agents, masters, health, registry changes, key rotation under load, sweeping, stop and restart'
. "$(dirname "$0")/lib.sh"
. "$REPO_ROOT/tests/testbed.sh"
. "$REPO_ROOT/tests/sshbox-env.sh"

# Claude Code is the no-op stub: these tests are about the pool, not the CLI.
NOOP=$REPO_ROOT/tests/data/stub-claude-noop
HOST_A=127.0.0.2
HOST_B=127.0.0.3
ALIAS_A=sbx-acme-$HOST_A
ALIAS_B=sbx-acme-$HOST_B
SV_PID=

now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }

sv_register() {	# NAME [CLAUDE]
	"$SSHBOX" sandbox add --account "$SB_ACCOUNT" --host "$(tb_sbx_var "$1" HOST)" \
		--port "$(tb_sbx_var "$1" PORT)" --user "$(tb_sbx_var "$1" USER)" \
		--workdir "$(tb_sbx_var "$1" WORKDIR)" --slots 2 --claude "${2:-$NOOP}" \
		--host-key "$(tb_sbx_var "$1" HOSTKEY)" >/dev/null
}

sv_start() {
	{ "$SSHBOX" supervise 2>>sv.log & } &&
	SV_PID=$! &&
	test_atexit "kill $SV_PID 2>/dev/null; wait $SV_PID 2>/dev/null; true"
}

# sv_stop: SIGTERM, at most 5 s; the exit status lands in sv.rc.
sv_stop() {
	local i
	kill -TERM "$SV_PID" || return 1
	for i in $(seq 50); do
		kill -0 "$SV_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$SV_PID" 2>/dev/null; then
		echo "the supervisor did not stop within 5 s" >&2
		return 1
	fi
	wait "$SV_PID"
	echo $? >sv.rc
}

master_up() { ssh -F "$SSHBOX_STATE_DIR/ssh_config" -O check "$1" 2>/dev/null; }

# Our live processes: ssh and ssh-agent whose argv names the state dir.
ours() { ps -eo stat=,args= | grep -v "^Z" | grep -F "$SSHBOX_STATE_DIR" | grep -v grep; }

spec() {	# JOB_ID
	printf '{"account":"%s","job_id":"%s","prompt":"noop","timeout_s":60,"wait_s":60}\n' "$SB_ACCOUNT" "$1"
}

test_expect_success 'set up: Redis, two sandboxes, an account key, one sandbox registered' '
	tb_start_all_default &&
	sb_env_init &&
	sb_account_key &&
	tb_authorize_key a "$TEST_DIR/key-$SB_ACCOUNT.pub" &&
	tb_authorize_key b "$TEST_DIR/key-$SB_ACCOUNT.pub" &&
	sv_register a &&
	printf "%s\n" "health_interval_s = 1" "sweep_interval_s = 2" "sweep_min_age_s = 60" >>"$SSHBOX_CONFIG"
'

test_expect_success 'the supervisor loads the key into its agent and opens a master per active sandbox' '
	sv_start &&
	test_wait_for "master_up $ALIAS_A" 10 &&
	test "$(readlink "$SSHBOX_STATE_DIR/agent/acme.sock")" = acme.v1.sock &&
	test "$(stat -c %a "$SSHBOX_STATE_DIR/agent")" = 700 &&
	SSH_AUTH_SOCK=$SSHBOX_STATE_DIR/agent/acme.sock ssh-add -l >keys &&
	test_line_count = 1 keys &&
	grep -qF "$(ssh-keygen -lf "$TEST_DIR/key-$SB_ACCOUNT.pub" | cut -d" " -f2)" keys &&
	grep -q "^20[0-9-]*T[0-9:.]*Z sshbox: info: sandbox .$HOST_A. of account .acme.: master up in" sv.log &&
	! grep -q "BEGIN OPENSSH\\|PRIVATE KEY" sv.log &&
	! find "$SSHBOX_STATE_DIR" -type f -exec grep -l "PRIVATE KEY" {} + 2>/dev/null | grep -q .
'

test_expect_success 'an operator'"'"'s ssh -F rides the master; sshbox run uses the supervisor'"'"'s agent and master' '
	ssh -F "$SSHBOX_STATE_DIR/ssh_config" -v "$ALIAS_A" "echo through-the-pool" >op.out 2>op.err &&
	grep -q through-the-pool op.out &&
	grep -q "mux_client_request_session" op.err &&
	spec sv-1 >sv-1.json &&
	# with a Fernet key that cannot decrypt the stored token, only the
	# supervisor'"'"'s agent can have authenticated this job
	other=$("$SSHBOX" fernet genkey) &&
	SSHBOX_FERNET_KEYS=$other "$SSHBOX" run <sv-1.json >sv-1.ndjson &&
	test "$(sb_result_field sv-1.ndjson status)" = succeeded &&
	test -z "$(ls -A "$SSHBOX_STATE_DIR/agent/run")"
'

test_expect_success 'registry changes reach the pool within 2 s, without a restart' '
	s=$(now_ms) &&
	sv_register b &&
	test_wait_for "grep -q \"sandbox .$HOST_B. of account .acme.: watching\" sv.log" 2 &&
	test_wait_for "master_up $ALIAS_B" 10 &&
	echo "new sandbox: master up after $(( $(now_ms) - s )) ms" &&
	s=$(now_ms) &&
	"$SSHBOX" sandbox disable --account acme --host $HOST_B >/dev/null &&
	test_wait_for "! master_up $ALIAS_B" 2 &&
	echo "disabled sandbox: master gone after $(( $(now_ms) - s )) ms" &&
	"$SSHBOX" sandbox enable --account acme --host $HOST_B >/dev/null &&
	test_wait_for "master_up $ALIAS_B" 5
'

# master_of FILE HOST: the "master" field of HOST in a `status --json`.
master_of() {
	python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(" ".join(s["master"] for s in d["sandboxes"] if s["host"] == sys.argv[2]))' "$1" "$2"
}

test_expect_success 'status: master up while the supervisor holds one, down once it is stopped' '
	test_wait_for "master_up $ALIAS_A" 5 &&
	test_wait_for "master_up $ALIAS_B" 5 &&
	"$SSHBOX" status >st.txt &&
	grep -q "^  $HOST_A  active, .*, master up\$" st.txt &&
	grep -q "^  $HOST_B  active, .*, master up\$" st.txt &&
	"$SSHBOX" status --json >st.json &&
	test "$(master_of st.json $HOST_A)" = up &&
	test "$(master_of st.json $HOST_B)" = up &&
	"$SSHBOX" sandbox disable --account acme --host $HOST_B >/dev/null &&
	test_wait_for "! master_up $ALIAS_B" 5 &&
	"$SSHBOX" status >st.txt &&
	grep -q "^  $HOST_A  active, .*, master up\$" st.txt &&
	grep -q "^  $HOST_B  disabled, .*, master down\$" st.txt &&
	"$SSHBOX" status --json >st.json &&
	test "$(master_of st.json $HOST_A)" = up &&
	test "$(master_of st.json $HOST_B)" = down &&
	"$SSHBOX" sandbox enable --account acme --host $HOST_B >/dev/null &&
	test_wait_for "master_up $ALIAS_B" 10
'

test_expect_success 'health: a dead sandbox is published unhealthy once, and healthy again when it is back' '
	tb_stop_sandbox b &&
	test_wait_for "test \"\$(tb_redis_cli hget \"sshbox:{acme:$HOST_B}:health\" reason)\" != \"\"" 10 &&
	"$SSHBOX" status >status &&
	grep -q "$HOST_B  active, UNHEALTHY" status &&
	test "$(grep -c "sandbox .$HOST_B. of account .acme.: unhealthy" sv.log)" = 1 &&
	tb_restart_sandbox b &&
	test_wait_for "master_up $ALIAS_B" 20 &&
	test_wait_for "test -z \"\$(tb_redis_cli hget \"sshbox:{acme:$HOST_B}:health\" reason)\"" 5 &&
	grep -q "sandbox .$HOST_B. of account .acme.: healthy" sv.log
'

# Jobs run back to back in 4 loops while the key rotates: the new public
# key is authorized first, the old one removed once the supervisor holds
# the new one.  Not one job may fail.
loop_jobs() {	# N: jobs named rot-N-<i> until rot.stop exists (at most 300)
	local i
	for i in $(seq 300); do
		[ -e rot.stop ] && return 0
		spec "rot-$1-$i" >"rot/$1-$i.json"
		"$SSHBOX" run <"rot/$1-$i.json" >"rot/$1-$i.ndjson" 2>"rot/$1-$i.err"
		echo "$?" >"rot/$1-$i.rc"
	done
}

test_expect_success 'key rotation under load: no job fails, new connections use the new key' '
	mkdir rot &&
	ssh-keygen -q -t ed25519 -N "" -C sshbox-test-new -f key-new </dev/null &&
	tb_authorize_key a key-new.pub &&
	tb_authorize_key b key-new.pub &&
	rm -f rot.stop &&
	pids= &&
	for n in 1 2 3 4; do
		{ loop_jobs $n & } && pids="$pids $!" || return 1
	done &&
	test_wait_for "test \$(ls rot/*.rc 2>/dev/null | wc -l) -ge 8" 30 &&
	"$SSHBOX" key rotate --account acme <key-new >rotate.out &&
	test_wait_for "test \"\$(readlink \"$SSHBOX_STATE_DIR/agent/acme.sock\")\" = acme.v2.sock" 2 &&
	before=$(ls rot/*.rc | wc -l) &&
	for n in a b; do
		ak=$(tb_sbx_var $n AUTHORIZED_KEYS) &&
		grep -vF "$(cut -d" " -f2 "$TEST_DIR/key-$SB_ACCOUNT.pub")" "$ak" >ak.tmp &&
		cat ak.tmp >"$ak" || return 1
	done &&
	test_wait_for "test \$(ls rot/*.rc | wc -l) -ge $((before + 12))" 60 &&
	: >rot.stop &&
	for p in $pids; do wait $p || return 1; done &&
	total=$(ls rot/*.rc | wc -l) &&
	echo "$total jobs, $before finished before the rotation" &&
	cat rot/*.rc | sort | uniq -c | awk "{ print \$1, \$2 }" >rcs &&
	echo "$total 0" >expect &&
	test_cmp expect rcs &&
	test_wait_for "master_up $ALIAS_A" 10 &&
	ssh -F "$SSHBOX_STATE_DIR/ssh_config" -o ControlPath=none "$ALIAS_A" true &&
	SSH_AUTH_SOCK=$SSHBOX_STATE_DIR/agent/acme.sock ssh-add -l >keys &&
	grep -qF "$(ssh-keygen -lf key-new.pub | cut -d" " -f2)" keys &&
	test_line_count = 1 keys &&
	grep -q "key version 2 loaded into a fresh agent" sv.log
'

test_expect_success 'Fernet key rotation (key reencrypt) under load: no job fails; the token is under the new key' '
	new=$("$SSHBOX" fernet genkey) &&
	old=$SSHBOX_FERNET_KEYS &&
	rm -f rot.stop &&
	pids= &&
	for n in 1 2; do
		{ SSHBOX_FERNET_KEYS="$new,$old" loop_jobs f$n & } && pids="$pids $!" || return 1
	done &&
	test_wait_for "test \$(ls rot/f*.rc 2>/dev/null | wc -l) -ge 4" 30 &&
	SSHBOX_FERNET_KEYS="$new,$old" "$SSHBOX" key reencrypt >reencrypt.out &&
	before=$(ls rot/f*.rc | wc -l) &&
	test_wait_for "test \$(ls rot/f*.rc | wc -l) -ge $((before + 6))" 60 &&
	: >rot.stop &&
	for p in $pids; do wait $p || return 1; done &&
	cat rot/f*.rc | sort | uniq -c | awk "{ print \$2 }" >rcs &&
	echo 0 >expect &&
	test_cmp expect rcs &&
	tb_redis_cli hget sshbox:account:acme key_token >token &&
	SSHBOX_FERNET_KEYS=$new "$SSHBOX" fernet decrypt <token >/dev/null &&
	test_must_fail env SSHBOX_FERNET_KEYS=$old "$SSHBOX" fernet decrypt <token >/dev/null 2>&1 &&
	export SSHBOX_FERNET_KEYS="$new,$old"
'

test_expect_success 'the sweeper removes old job dirs no job holds, dead sockets and nothing else' '
	jobs=$TB_A_WORKDIR/jobs &&
	u=$(tb_sbx_var a USER) &&
	mkdir -p "$jobs/stale-1/sub" "$jobs/.stale-1" "$jobs/held-1" "$jobs/fresh-1" &&
	chown -R "$u" "$jobs" &&
	touch -d "-2 hours" "$jobs/stale-1" "$jobs/.stale-1" "$jobs/held-1" &&
	tb_redis_cli set sshbox:job:acme:held-1 x PX 60000 >/dev/null &&
	/usr/bin/python3 -c "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])" \
		"$SSHBOX_STATE_DIR/agent/run/999999.sock" &&
	test_wait_for "test ! -e \"$jobs/stale-1\" && test ! -e \"$jobs/.stale-1\"" 15 &&
	test_wait_for "test ! -e \"$SSHBOX_STATE_DIR/agent/run/999999.sock\"" 5 &&
	test -d "$jobs/held-1" &&
	test -d "$jobs/fresh-1" &&
	rm -rf "$jobs/held-1" "$jobs/fresh-1"
'

test_expect_success 'SIGHUP re-reads the configuration; a bad one is refused and the running one kept' '
	cp "$SSHBOX_CONFIG" conf.good &&
	echo "health_interval_s = soon" >>"$SSHBOX_CONFIG" &&
	kill -HUP "$SV_PID" &&
	test_wait_for "grep -q \"configuration not reloaded: .*health_interval_s\" sv.log" 5 &&
	kill -0 "$SV_PID" &&
	cp conf.good "$SSHBOX_CONFIG" &&
	kill -HUP "$SV_PID" &&
	test_wait_for "grep -q \"info: configuration reloaded\" sv.log" 5 &&
	test_wait_for "master_up $ALIAS_A" 10
'

test_expect_success 'SIGTERM: exit 0 within 5 s; no ssh, ssh-agent or socket of ours is left' '
	sv_stop &&
	test "$(cat sv.rc)" = 0 &&
	test_wait_for "test -z \"\$(ours)\"" 5 &&
	test -z "$(find "$SSHBOX_STATE_DIR" -type s -o -type l)" &&
	grep -q "supervisor stopped" sv.log
'

# What etc/systemd (KillMode=process) and etc/supervisord do on a stop or
# restart: SIGTERM to sshbox supervise alone.  A job riding its master goes
# on to its end; the master, told to stop, exits after that job.
test_expect_success 'SIGTERM to the supervisor alone leaves a running job alone; its master exits after the job' '
	"$SSHBOX" sandbox remove --account acme --host $HOST_B >/dev/null &&
	sv_register b "$REPO_ROOT/tests/data/stub-claude-sleep" &&
	sv_start &&
	test_wait_for "master_up $ALIAS_B" 15 &&
	printf "{\"account\":\"%s\",\"job_id\":\"sv-long\",\"prompt\":\"p\",\"sandbox\":\"%s\",\"env\":{\"STUB_SLEEP\":\"6\"},\"timeout_s\":60}\n" \
		"$SB_ACCOUNT" "$HOST_B" >sv-long.json &&
	{ "$SSHBOX" run <sv-long.json >sv-long.ndjson 2>sv-long.err & } &&
	job=$! &&
	test_wait_for "grep -q sshbox.started sv-long.ndjson" 15 &&
	sv_stop &&
	test "$(cat sv.rc)" = 0 &&
	kill -0 "$job" &&
	wait "$job" &&
	test "$(sb_result_field sv-long.ndjson status)" = succeeded &&
	# the master (and every ssh of ours) is gone once the job ended
	test_wait_for "test -z \"\$(ours)\"" 5
'

test_expect_success 'a SIGKILLed supervisor: its agent dies with it; the next one adopts the masters' '
	sv_start &&
	test_wait_for "master_up $ALIAS_A && master_up $ALIAS_B" 15 &&
	kill -KILL "$SV_PID" && { wait "$SV_PID"; true; } &&
	test_wait_for "! SSH_AUTH_SOCK=\"$SSHBOX_STATE_DIR/agent/acme.sock\" ssh-add -l >/dev/null 2>&1" 5 &&
	master_up $ALIAS_A &&
	: >sv.log &&
	sv_start &&
	test_wait_for "grep -q \"adopted the running master\" sv.log" 10 &&
	test_wait_for "SSH_AUTH_SOCK=\"$SSHBOX_STATE_DIR/agent/acme.sock\" ssh-add -l >/dev/null" 5 &&
	test "$(pgrep -fc "ssh-agent -D -a $SSHBOX_STATE_DIR/agent/")" = 1 &&
	spec sv-2 >sv-2.json &&
	"$SSHBOX" run <sv-2.json >sv-2.ndjson &&
	test "$(sb_result_field sv-2.ndjson status)" = succeeded &&
	sv_stop &&
	test "$(cat sv.rc)" = 0 &&
	test_wait_for "test -z \"\$(ours)\"" 5
'

# With the supervisor vouching for a master a job skips its own -O check;
# a master wedged since the supervisor's last check is then caught by the
# job's begin deadline (connect timeout + 10 s), which kills it.
test_expect_success 'a master wedged after the supervisor vouched for it: the job ends 75 at its begin deadline, the master is killed' '
	sv_start &&
	test_wait_for "master_up $ALIAS_A" 10 &&
	cp "$SSHBOX_CONFIG" conf.good &&
	sed -i "s/^health_interval_s = .*/health_interval_s = 60/" "$SSHBOX_CONFIG" &&
	kill -HUP "$SV_PID" &&
	test_wait_for "grep -q \"info: configuration reloaded\" sv.log" 5 &&
	sleep 2 &&
	for m in $(ls "$SSHBOX_STATE_DIR/cm" | grep -v "\."); do
		test -e "$SSHBOX_STATE_DIR/lock/$m.ok" || return 1
	done &&
	ssh -F "$SSHBOX_STATE_DIR/ssh_config" -O check "$ALIAS_A" 2>check.out &&
	mpid=$(tr -d "\r" <check.out | sed -n "s/^Master running (pid=\([0-9]*\))\$/\1/p") &&
	kill -STOP "$mpid" &&
	printf "{\"account\":\"acme\",\"job_id\":\"wedge-1\",\"prompt\":\"p\",\"sandbox\":\"$HOST_A\",\"wait_s\":5}\n" >wedge.json &&
	{ SSHBOX_SSH_CONNECT_TIMEOUT_S=2 "$SSHBOX" run <wedge.json >wedge.ndjson 2>wedge.err; echo $? >wedge.rc; } &&
	test "$(cat wedge.rc)" = 75 &&
	grep -q "\"error\":\"sandbox .$HOST_A. did not start the job within 12 s of the session opening\"" wedge.ndjson &&
	test_wait_for "! kill -0 $mpid 2>/dev/null" 5 &&
	cp conf.good "$SSHBOX_CONFIG" &&
	kill -HUP "$SV_PID" &&
	sv_stop
'

test_expect_success 'a second supervisor on the same state dir is refused' '
	sv_start &&
	test_wait_for "master_up $ALIAS_A" 10 &&
	test_expect_code 75 "$SSHBOX" supervise 2>second.err &&
	grep -q "another sshbox supervise holds" second.err &&
	sv_stop
'

test_done
