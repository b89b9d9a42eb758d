#!/usr/bin/env bash
test_description='faults: cancel, timeouts, watchdogs, a hostile CLI, transport and Redis failures; no process, dir or lock left behind'
. "$(dirname "$0")/lib.sh"
. "$REPO_ROOT/tests/testbed.sh"
. "$REPO_ROOT/tests/sshbox-env.sh"

# Claude Code is tests/data/stub-claude-fault; STUB_MODE picks how it
# misbehaves.  Sandbox a has 2 slots.  Leases are short (3 s) so that lost
# ones show quickly, and ServerAlive is 1 s (a dead link is seen in ~3 s).
FAULT=$REPO_ROOT/tests/data/stub-claude-fault
HOST_A=127.0.0.2
_PY=/usr/bin/python3

now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }

# fspec JOB_ID MODE [TIMEOUT_S] [IDLE_TIMEOUT_S]
fspec() {
	printf '{"account":"%s","job_id":"%s","prompt":"fault %s",' "$SB_ACCOUNT" "$1" "$2"
	printf '"env":{"STUB_MODE":"%s","STUB_REC":"%s"},' "$2" "$TEST_DIR/rec/$1"
	printf '"timeout_s":%s,"idle_timeout_s":%s,"wait_s":30}\n' "${3:-60}" "${4:-30}"
}

# frun_bg JOB_ID MODE [TIMEOUT_S] [IDLE_S]: sshbox run in the background
# (FPID is sshbox itself); events in JOB_ID.ndjson, stderr in JOB_ID.err.
# fwait JOB_ID: wait for it, its exit code into JOB_ID.rc.
frun_bg() {
	fspec "$@" >"$1.json" &&
	{ "$SSHBOX" run <"$1.json" >"$1.ndjson" 2>"$1.err" & } &&
	FPID=$!
}
fwait() { wait "$FPID"; echo $? >"$1.rc"; }

# The stub's process group (from its record) is gone, the job dir is gone,
# no slot is held: within 5 s.
clean_after() {	# JOB_ID
	local pg
	test_wait_for "test -s rec/$1" 1 || return 1
	pg=$(awk '{ print $3 }' "rec/$1" | head -n 1)
	test_wait_for "! kill -0 -- -$pg 2>/dev/null" 5 &&
	test_wait_for "test ! -e \"$TB_A_WORKDIR/jobs/$1\" && test ! -e \"$TB_A_WORKDIR/jobs/.$1\"" 5 &&
	test_wait_for "test -z \"\$(tb_redis_cli --scan --pattern \"sshbox:{acme:*}:slot:*\")\"" 5
}

# Every stdout line is one JSON object in valid UTF-8; exactly one
# sshbox.result, the last line; prints its status and exit_code.
check_stream() {
	"$_PY" - "$1" <<'PY'
import json, sys
raw = open(sys.argv[1], "rb").read()
lines = raw.split(b"\n")
assert lines[-1] == b"", "no final newline"
evs = []
for l in lines[:-1]:
    s = l.decode("utf-8")          # strict: raises on invalid UTF-8
    ev = json.loads(s)
    assert isinstance(ev, dict), l[:80]
    evs.append(ev)
res = [e for e in evs if e.get("type") == "sshbox.result"]
assert len(res) == 1 and evs[-1] is res[0], "sshbox.result not once and last"
print(res[0]["status"], res[0]["exit_code"])
PY
}

test_expect_success 'set up: Redis, sandbox a (2 slots) with the fault stub, a key' '
	tb_start_all_default &&
	sb_env_init &&
	sb_account_key &&
	tb_authorize_key a "$TEST_DIR/key-$SB_ACCOUNT.pub" &&
	"$SSHBOX" sandbox add --account acme --host $HOST_A --port "$TB_A_PORT" --user "$TB_A_USER" \
		--workdir "$TB_A_WORKDIR" --slots 2 --claude "$FAULT" --host-key "$TB_A_HOSTKEY" >/dev/null &&
	mkdir -m 777 rec &&
	printf "%s\n" "lock_ttl_ms = 3000" "ssh_alive_interval_s = 1" >>"$SSHBOX_CONFIG"
'

for sig in TERM INT; do
	code=$([ $sig = TERM ] && echo 143 || echo 130)
	test_expect_success "SIG$sig to sshbox run: exit $code within 3 s, status cancelled, nothing left" '
		frun_bg c-'$sig' hang &&
		test_wait_for "grep -q subtype c-'$sig'.ndjson" 20 &&
		s=$(now_ms) &&
		kill -'$sig' $FPID &&
		fwait c-'$sig' &&
		e=$(now_ms) &&
		echo "SIG'$sig' to exit: $((e - s)) ms" &&
		test $((e - s)) -le 3000 &&
		test "$(cat c-'$sig'.rc)" = '$code' &&
		echo "cancelled '$code'" >expect &&
		check_stream c-'$sig'.ndjson >actual &&
		test_cmp expect actual &&
		clean_after c-'$sig'
	'
done

test_expect_success 'SIGTERM when the CLI ignores TERM: the group is KILLed after the grace, exit 143 within 3 s' '
	frun_bg c-kill ignore-term &&
	test_wait_for "grep -q subtype c-kill.ndjson" 20 &&
	s=$(now_ms) &&
	kill -TERM $FPID &&
	fwait c-kill &&
	e=$(now_ms) &&
	echo "SIGTERM to exit (TERM ignored): $((e - s)) ms" &&
	test $((e - s)) -le 3000 &&
	test "$(cat c-kill.rc)" = 143 &&
	clean_after c-kill
'

test_expect_success 'timeout_s: status timeout, exit 124, nothing left' '
	frun_bg t-1 hang 2 &&
	fwait t-1 &&
	test "$(cat t-1.rc)" = 124 &&
	echo "timeout 124" >expect &&
	check_stream t-1.ndjson >actual &&
	test_cmp expect actual &&
	grep -q "\"error\":\"the job ran longer than timeout_s (2 s)\"" t-1.ndjson &&
	clean_after t-1
'

test_expect_success 'idle_timeout_s: a silent CLI ends as timeout with the reason' '
	frun_bg i-1 silent 60 2 &&
	fwait i-1 &&
	test "$(cat i-1.rc)" = 124 &&
	grep -q "\"error\":\"Claude Code printed nothing for idle_timeout_s (2 s)\"" i-1.ndjson &&
	clean_after i-1
'

test_expect_success 'a result line and then no exit: the CLI is stopped, the job succeeds from its result' '
	frun_bg r-1 result-hang &&
	fwait r-1 &&
	test "$(cat r-1.rc)" = 0 &&
	echo "succeeded 0" >expect &&
	check_stream r-1.ndjson >actual &&
	test_cmp expect actual &&
	grep -q "did not exit within" r-1.err &&
	clean_after r-1
'

test_expect_success 'hostile output (non-JSON, invalid UTF-8, NUL, a forged sshbox.result): valid events, one result' '
	frun_bg g-1 garbage &&
	fwait g-1 &&
	test "$(cat g-1.rc)" = 0 &&
	echo "succeeded 0" >expect &&
	check_stream g-1.ndjson >actual &&
	test_cmp expect actual &&
	grep -q "\"type\":\"sshbox.stdout\".*this is not JSON" g-1.ndjson &&
	! grep -q "\"forged\":true}$" g-1.ndjson &&
	clean_after g-1
'

# Peak RSS of `sshbox run` from /usr/bin/time -f %M (KiB).
rss_run() {	# JOB_ID MODE [EXTRA]
	fspec "$@" >"$1.json" &&
	{ /usr/bin/time -f %M -o "$1.rss" "$SSHBOX" run <"$1.json" >"$1.ndjson" 2>"$1.err"; echo $? >"$1.rc"; }
}

test_expect_success 'a 64 MiB line without a newline: dropped with a notice, memory bounded' '
	rss_run b-1 bigline &&
	test "$(cat b-1.rc)" = 0 &&
	check_stream b-1.ndjson >actual &&
	echo "succeeded 0" >expect &&
	test_cmp expect actual &&
	echo "peak RSS: $(tail -n 1 b-1.rss) KiB" &&
	test "$(tail -n 1 b-1.rss)" -lt 49152 &&
	test "$(wc -c <b-1.ndjson)" -lt 1048576 &&
	clean_after b-1
'

test_expect_success 'a stderr flood (200,000 lines): memory bounded, events valid' '
	rss_run s-1 stderr-flood &&
	test "$(cat s-1.rc)" = 0 &&
	check_stream s-1.ndjson >actual &&
	echo "succeeded 0" >expect &&
	test_cmp expect actual &&
	echo "peak RSS: $(tail -n 1 s-1.rss) KiB, $(grep -c sshbox.stderr s-1.ndjson) stderr events" &&
	test "$(tail -n 1 s-1.rss)" -lt 32768 &&
	clean_after s-1
'

test_expect_success 'output that never ends: timeout_s ends it, memory bounded' '
	rss_run e-1 endless 3 &&
	test "$(cat e-1.rc)" = 124 &&
	check_stream e-1.ndjson >actual &&
	echo "timeout 124" >expect &&
	test_cmp expect actual &&
	echo "peak RSS: $(tail -n 1 e-1.rss) KiB, $(wc -l <e-1.ndjson) lines forwarded" &&
	test "$(tail -n 1 e-1.rss)" -lt 32768 &&
	clean_after e-1
'

test_expect_success 'the sandbox sshd killed mid-job: error 75 naming the lost connection, nothing left' '
	frun_bg k-1 hang &&
	test_wait_for "grep -q sshbox.started k-1.ndjson" 20 &&
	tb_stop_sandbox a &&
	fwait k-1 &&
	test "$(cat k-1.rc)" = 75 &&
	grep -q "\"error\":\"lost the connection during the job" k-1.ndjson &&
	clean_after k-1 &&
	tb_restart_sandbox a
'

test_expect_success 'the sandbox frozen (sshd stopped): seen within the ServerAlive bound, error 75; cleaned when it thaws' '
	frun_bg f-1 hang &&
	test_wait_for "grep -q sshbox.started f-1.ndjson" 20 &&
	pids=$(tb_descendants "$TB_A_PID") &&
	s=$(now_ms) &&
	kill -STOP $TB_A_PID $pids &&
	fwait f-1 &&
	e=$(now_ms) &&
	kill -CONT $TB_A_PID $pids &&
	echo "frozen sandbox noticed after $((e - s)) ms" &&
	test $((e - s)) -le 12000 &&
	test "$(cat f-1.rc)" = 75 &&
	clean_after f-1
'

test_expect_success 'the master socket removed mid-job: the job still succeeds, the next one opens a new master' '
	frun_bg m-1 result-hang &&
	test_wait_for "grep -q sshbox.started m-1.ndjson" 20 &&
	rm -f "$SSHBOX_STATE_DIR"/cm/* &&
	fwait m-1 &&
	test "$(cat m-1.rc)" = 0 &&
	fspec m-2 garbage >m-2.json &&
	"$SSHBOX" run <m-2.json >m-2.ndjson &&
	ls "$SSHBOX_STATE_DIR"/cm/ | grep -qv "\\." &&
	clean_after m-2
'

test_expect_success 'a wedged master (SIGSTOPped): the next job kills it, opens a new one and succeeds' '
	fspec w-0 garbage >w-0.json &&
	"$SSHBOX" run <w-0.json >w-0.ndjson &&
	ssh -F "$SSHBOX_STATE_DIR/ssh_config" -O check sbx-acme-$HOST_A 2>check.out &&
	mpid=$(tr -d "\r" <check.out | sed -n "s/^Master running (pid=\([0-9]*\))\$/\1/p") &&
	test -n "$mpid" &&
	kill -STOP "$mpid" &&
	fspec w-1 garbage >w-1.json &&
	# the check waits 5 s for the wedged master: a lease of 3 s would not
	# survive that wait (renewal runs in the job loop, after connecting)
	SSHBOX_LOCK_TTL_MS=30000 "$SSHBOX" run <w-1.json >w-1.ndjson 2>w-1.err &&
	test "$(sb_result_field w-1.ndjson status)" = succeeded &&
	grep -q "killing the wedged ControlMaster (pid $mpid)" w-1.err &&
	test "$(grep -c "killing the wedged" w-1.err)" = 1 &&
	test_wait_for "! kill -0 $mpid 2>/dev/null" 5 &&
	clean_after w-1
'

test_expect_success 'MaxSessions reached on the master: the job falls back to a connection of its own' '
	sed -i "s/^MaxSessions .*/MaxSessions 1/" "$TB_A_CONFIG" &&
	tb_restart_sandbox a &&
	frun_bg x-1 result-hang && p1=$FPID &&
	test_wait_for "grep -q sshbox.started x-1.ndjson" 20 &&
	frun_bg x-2 garbage &&
	fwait x-2 &&
	FPID=$p1 && fwait x-1 &&
	test "$(cat x-1.rc)" = 0 &&
	test "$(cat x-2.rc)" = 0 &&
	grep -q "no more sessions" "$TB_A_LOG" &&
	sed -i "s/^MaxSessions .*/MaxSessions 64/" "$TB_A_CONFIG" &&
	tb_restart_sandbox a &&
	clean_after x-2
'

test_expect_success 'Redis stopped mid-job: the job stops before its lease runs out, error 75 naming the lock' '
	frun_bg d-1 hang &&
	test_wait_for "grep -q sshbox.started d-1.ndjson" 20 &&
	tb_stop_redis &&
	s=$(now_ms) &&
	fwait d-1 &&
	e=$(now_ms) &&
	echo "stopped $((e - s)) ms after Redis went away" &&
	test "$(cat d-1.rc)" = 75 &&
	grep -q "\"error\":\"lost the lock on sandbox" d-1.ndjson &&
	pg=$(awk "{ print \$3 }" rec/d-1) &&
	test_wait_for "! kill -0 -- -$pg 2>/dev/null" 5 &&
	tb_restart_redis
'

test_expect_success 'hostile input: a huge spec, a bad Fernet token, a key that is not one: exit 2, one sentence, nothing stored' '
	tb_redis_cli --scan >keys.before &&
	head -c $((20 << 20)) /dev/zero | tr "\\0" " " >huge.json &&
	test_expect_code 2 "$SSHBOX" run <huge.json >huge.ndjson 2>huge.err &&
	test_line_count = 1 huge.err &&
	echo "garbage-token" | test_expect_code 2 "$SSHBOX" key set --account evil --encrypted 2>fer.err &&
	test_line_count = 1 fer.err &&
	echo "not a key" | test_expect_code 2 "$SSHBOX" key set --account evil 2>key.err &&
	test_line_count = 1 key.err &&
	tb_redis_cli --scan >keys.after &&
	test_cmp keys.before keys.after
'

test_done
