#!/usr/bin/env bash
test_description='docs/examples/sshbox_client.py: the integration guide'"'"'s example client drives sshbox run'
. "$(dirname "$0")/lib.sh"
. "$REPO_ROOT/tests/testbed.sh"
. "$REPO_ROOT/tests/sshbox-env.sh"

# The client runs the real Claude Code CLI against the scripted API on
# sandbox a (account acme).  Account slow has sandbox b with a stub Claude
# Code (tests/data/stub-claude-sleep, copied under $TEST_DIR so that the
# sandbox user can run it) that sleeps, for the cancel test.  The success
# test runs sshbox through a wrapper that also keeps a copy of its stdout
# (tee), so the client's lines can be compared with the real stream.

CLIENT=$REPO_ROOT/docs/examples/sshbox_client.py
PY=/usr/bin/python3
STUB=$TEST_DIR/bin/stub-claude
REC=$TEST_DIR/rec
TEE=$TEST_DIR/bin/sshbox-tee

# client ARGS...: the example client, bounded (it only catches a hang).
client() {
	timeout -k 5 120 "$PY" "$CLIENT" "$@"
}

# PIDs of the processes that run as job JOB_ID (Claude Code, or the stub
# and its sleep: the remote wrapper exports SSHBOX_JOB to them only).
job_procs() {
	grep -lzx "SSHBOX_JOB=$1" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3
	return 0
}
no_job_procs() {
	local p
	p=$(job_procs "$1")
	[ -z "$p" ] || { echo "job $1 still has processes: $p"; return 1; }
}

# none_alive FILE: no PID listed in FILE is still running.
none_alive() {
	local p left=
	for p in $(cat "$1"); do
		tb_alive "$p" && left="$left $p"
	done
	[ -z "$left" ] || { echo "still running:$left"; ps -o pid,ppid,args -p "${left# }"; return 1; }
}

test_expect_success 'set up: Redis, two sandboxes, the CLI, the scripted API, keys, the stub' '
	sb_claude_install &&
	tb_start_all_default &&
	sb_env_init &&
	sb_start_fakeapi &&
	sb_account_key &&
	sb_register a &&
	mkdir -p "$TEST_DIR/bin" "$REC" &&
	cp "$REPO_ROOT/tests/data/stub-claude-sleep" "$STUB" &&
	chmod 0755 "$TEST_DIR/bin" "$STUB" &&
	chmod 1777 "$REC" &&
	su -s /bin/sh sshbox-test -c "test -x $STUB && test -w $REC" &&
	sb_account_key slow &&
	tb_authorize_key b "$TEST_DIR/key-slow.pub" &&
	"$SSHBOX" sandbox add --account slow --host "$TB_B_HOST" --port "$TB_B_PORT" \
		--user "$TB_B_USER" --workdir "$TB_B_WORKDIR" --slots 1 --claude "$STUB" \
		--host-key "$TB_B_HOSTKEY" >/dev/null &&
	printf "%s\n" "#!/bin/bash" "exec \"\$SSHBOX\" \"\$@\" > >(exec tee \"\$TEE_OUT\")" >"$TEE" &&
	chmod 0755 "$TEE" &&
	"$PY" "$CLIENT" --help >help.txt &&
	grep -q -- "--sshbox" help.txt &&
	grep -q -- "--spec" help.txt
'

test_expect_success 'a succeeded job: every event in order, the result last, exit 0' '
	sb_spec "Run pwd for me" >spec.json &&
	TEE_OUT=$TEST_DIR/raw.ndjson client --sshbox "$TEE" --spec spec.json >out.txt 2>err.txt &&
	test_debug "cat out.txt err.txt" &&
	sb_events_valid raw.ndjson &&
	sb_event_types raw.ndjson >want-types &&
	cut -d" " -f1 out.txt >got-types &&
	test_cmp want-types got-types &&
	head -n 1 got-types >first &&
	echo sshbox.acquired >want-first &&
	test_cmp want-first first &&
	grep -n -x -e sshbox.started -e system -e result -e sshbox.result got-types | cut -d: -f2 >order &&
	printf "%s\n" sshbox.started system result sshbox.result >want-order &&
	test_cmp want-order order &&
	grep -qx user got-types &&
	grep -qx "assistant \"Done.\"" out.txt &&
	tail -n 1 out.txt >last &&
	echo "sshbox.result status=\"succeeded\" exit_code=0 sandbox=\"$TB_A_HOST\"" >want-last &&
	test_cmp want-last last &&
	# the client gave the spec a job_id of its own; sshbox used it
	job=$(sb_result_field raw.ndjson job_id) &&
	case $job in web-????????????????) ;; *) false ;; esac &&
	grep "\"type\":\"sshbox\\." raw.ndjson >own.ndjson &&
	test "$(grep -c "\"job_id\":\"$job\"" own.ndjson)" = "$(wc -l <own.ndjson)" &&
	test_path_is_missing "$TB_A_WORKDIR/jobs/$job" &&
	test "$(tb_redis_cli --scan --pattern "sshbox:*:slot:*" | wc -l)" = 0 &&
	test ! -s err.txt
'

test_expect_success 'a job spec error comes through the client as exit 2' '
	echo "{\"account\":\"acme\",\"prompt\":\"x\",\"bogus\":1}" >bad.json &&
	test_expect_code 2 client --sshbox "$SSHBOX" --spec - <bad.json >out-bad.txt 2>err-bad.txt &&
	test_debug "cat out-bad.txt err-bad.txt" &&
	test_line_count = 1 out-bad.txt &&
	grep -q "^sshbox.result status=\"error\" exit_code=2 sandbox=null error=\"invalid job spec: unknown field .bogus.\"$" out-bad.txt &&
	grep -q "^sshbox: error: invalid job spec: unknown field .bogus.$" err-bad.txt &&
	# not JSON at all: the client refuses it itself, before starting sshbox
	echo "not json" | test_expect_code 2 client --sshbox /nonexistent/sshbox >out-nj.txt 2>err-nj.txt &&
	test ! -s out-nj.txt &&
	grep -q "^sshbox_client: error: cannot read the job spec" err-nj.txt &&
	# and an executable that is not there is 127
	test_expect_code 127 client --sshbox /nonexistent/sshbox --spec bad.json 2>err-127.txt &&
	grep -q "cannot start /nonexistent/sshbox" err-127.txt
'

test_expect_success 'SIGINT to the client mid-job: sshbox gets SIGTERM, status cancelled, exit 143, nothing left' '
	printf "{\"account\":\"slow\",\"job_id\":\"int-1\",\"prompt\":\"sleep a while\",\"env\":{\"STUB_REC\":\"%s\",\"STUB_SLEEP\":\"60\"},\"timeout_s\":120,\"idle_timeout_s\":100,\"wait_s\":10}\n" \
		"$REC" >int.json &&
	{ "$PY" "$CLIENT" --sshbox "$SSHBOX" --spec int.json >int.out 2>int.err & } &&
	cpid=$! &&
	test_when_finished "tb_alive $cpid && tb_kill_tree $cpid 2; true" &&
	test_wait_for "grep -q ^sshbox.started int.out" 30 &&
	test_wait_for "grep -q ^start $REC/int-1" 10 &&
	test_wait_for "test -n \"\$(job_procs int-1)\"" 10 &&
	tb_descendants $cpid >pids &&
	test_debug "cat pids" &&
	test "$(ps -o args= -p "$(pgrep -P $cpid)")" = "$SSHBOX run" &&
	t0=${EPOCHREALTIME/[.,]/} &&
	kill -INT $cpid &&
	test_wait_for "! tb_alive $cpid" 20 &&
	{ wait $cpid; echo $? >int.rc; } &&
	t1=${EPOCHREALTIME/[.,]/} &&
	test_debug "echo client ended $(((t1 - t0) / 1000)) ms after SIGINT; cat int.out int.err" &&
	test "$(cat int.rc)" = 143 &&
	grep -q "^sshbox_client: SIGINT: cancelling job int-1$" int.err &&
	grep -q "^sshbox: error: cancelled by SIGTERM$" int.err &&
	tail -n 1 int.out >int-last &&
	echo "sshbox.result status=\"cancelled\" exit_code=143 sandbox=\"$TB_B_HOST\" error=\"cancelled by SIGTERM\"" >want-int-last &&
	test_cmp want-int-last int-last &&
	test "$(grep -c ^sshbox.result int.out)" = 1 &&
	test_wait_for "none_alive pids" 10 &&
	test_wait_for "no_job_procs int-1" 10 &&
	grep -q "^term " $REC/int-1 &&
	! grep -q "^end " $REC/int-1 &&
	test "$(tb_redis_cli EXISTS "sshbox:{slow:$TB_B_HOST}:slot:0")" = 0 &&
	test "$(tb_redis_cli EXISTS sshbox:job:slow:int-1)" = 0 &&
	test_wait_for "test ! -e $TB_B_WORKDIR/jobs/int-1" 10
'

test_done
