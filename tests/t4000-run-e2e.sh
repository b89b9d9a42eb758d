#!/usr/bin/env bash
test_description='sshbox run end to end: the real Claude Code CLI on real sshd sandboxes'
. "$(dirname "$0")/lib.sh"
. "$REPO_ROOT/tests/testbed.sh"
. "$REPO_ROOT/tests/sshbox-env.sh"

test_expect_success 'set up: Redis, two sandboxes, the CLI, the scripted API, a key' '
	sb_claude_install &&
	tb_start_all_default &&
	sb_env_init &&
	sb_start_fakeapi &&
	sb_account_key &&
	sb_register a &&
	sb_register b
'

test_expect_success 'a job runs a Bash tool through the real CLI and cleans up' '
	sb_spec "Run pwd for me" ",\"job_id\":\"rb-2041\"" >spec.json &&
	"$SSHBOX" run <spec.json >events.ndjson 2>stderr.txt &&
	sb_events_valid events.ndjson &&
	sb_event_types events.ndjson >types &&
	grep -qx sshbox.acquired types &&
	grep -qx sshbox.started types &&
	grep -qx system types &&
	grep -qx assistant types &&
	grep -qx user types &&
	grep -qx result types &&
	test "$(tail -n 1 types)" = sshbox.result &&
	test "$(grep -c sshbox.result types)" = 1 &&
	test "$(sb_result_field events.ndjson status)" = succeeded &&
	test "$(sb_result_field events.ndjson exit_code)" = 0 &&
	test "$(sb_result_field events.ndjson num_turns)" != null &&
	test "$(sb_result_field events.ndjson session_id)" != null &&
	sandbox=$(sb_result_field events.ndjson sandbox) &&
	case $sandbox in 127.0.0.2) wd=$TB_A_WORKDIR ;; 127.0.0.3) wd=$TB_B_WORKDIR ;; *) false ;; esac &&
	grep "\"type\":\"user\"" events.ndjson >user.json &&
	grep -q "$wd/jobs/rb-2041" user.json &&
	grep -q hello-from-tool user.json &&
	test_path_is_missing "$wd/jobs/rb-2041" &&
	test -z "$(ls -A "$wd/jobs")" &&
	test "$(tb_redis_cli --scan --pattern "sshbox:*:slot:*" | wc -l)" = 0 &&
	test -z "$(pids_under "$wd" -u sshbox-test -f claude)" &&
	grep -q "$SB_API_KEY" "$SB_API_LOG"
'

test_expect_success 'the same job as root on a root sandbox' '
	tb_start_sandbox r 127.0.0.4 root &&
	SB_ACCOUNT=ops &&
	sb_account_key ops &&
	sb_register r ops &&
	sb_spec "Run pwd as root" ",\"job_id\":\"root-1\"" >spec-root.json &&
	"$SSHBOX" run <spec-root.json >events-root.ndjson &&
	test "$(sb_result_field events-root.ndjson status)" = succeeded &&
	test "$(sb_result_field events-root.ndjson sandbox)" = 127.0.0.4 &&
	grep "\"type\":\"user\"" events-root.ndjson >user-root.json &&
	grep -q "$TB_R_WORKDIR/jobs/root-1" user-root.json &&
	test -z "$(ls -A "$TB_R_WORKDIR/jobs")" &&
	SB_ACCOUNT=acme
'

# Values full of shell syntax must arrive as data.  The fake API is slow on
# its first answer, so the job is surely running while we read every
# process's argv on this machine (both "hosts" are this machine).
test_expect_success 'prompt and env values are data, and never in any argv' '
	{ kill $SB_API_PID; wait $SB_API_PID 2>/dev/null; true; } &&
	sb_start_fakeapi "$REPO_ROOT/tests/data/scenario-inject.json" &&
	marker=/tmp/sbx-pwned-$$ &&
	rm -f $marker* &&
	inj="a\$(touch $marker-1)b\`touch $marker-2\`c\"d'"'"'e
f;touch $marker-3 \\\\ %s %n" &&
	prompt="Say \$(touch $marker-4) \`touch $marker-5\` \"q\" '"'"'s'"'"' PROMPT-MARK-$$" &&
	SB_SPEC_ENV=",\"SBX_INJ\":$(sb_json_str "$inj")" sb_spec "$prompt" ",\"job_id\":\"inj-1\"" >spec-inj.json &&
	/usr/bin/python3 -c "import json; json.load(open(\"spec-inj.json\"))" &&
	{ "$SSHBOX" run <spec-inj.json >events-inj.ndjson 2>stderr-inj.txt & } &&
	run_pid=$! &&
	test_wait_for "grep -q sshbox.started events-inj.ndjson" 20 &&
	printf "%s\n" "$SB_API_KEY" "PROMPT-MARK-$$" >secrets.pat &&
	scan_argv() {
		found=0
		for f in /proc/[0-9]*/cmdline; do
			if tr "\\0" " " <"$f" 2>/dev/null | grep -qF -f secrets.pat; then
				echo "secret in argv: $f: $(tr "\\0" " " <"$f")"; found=1
			fi
		done
		test $found = 0
	} &&
	{ bash -c "sleep 20; :" "PROMPT-MARK-$$" & } && control=$! &&
	! scan_argv >/dev/null &&
	{ kill $control; wait $control; true; } &&
	scan_argv &&
	wait $run_pid &&
	test "$(sb_result_field events-inj.ndjson status)" = succeeded &&
	/usr/bin/python3 -c "
import json,sys
want=sys.argv[1]
for line in open(\"events-inj.ndjson\"):
    ev=json.loads(line)
    if ev.get(\"type\")==\"user\":
        c=ev[\"message\"][\"content\"][0][\"content\"]
        text=c if isinstance(c,str) else \"\".join(x.get(\"text\",\"\") for x in c)
        assert (\"INJ=[\"+want+\"]\") in text, (text, want)
        sys.exit(0)
sys.exit(1)" "$inj" &&
	grep -F "PROMPT-MARK-$$" "$SB_API_LOG" >prompt-seen &&
	/usr/bin/python3 -c "
import json,sys
want=sys.argv[1]
ok=any(want[:150] in json.loads(l).get(\"last_user_text\",\"\") for l in open(sys.argv[2]))
sys.exit(0 if ok else 1)" "$prompt" "$SB_API_LOG" &&
	for i in 1 2 3 4 5; do test_path_is_missing $marker-$i || return 1; done
'

test_expect_success 'a bad spec exits 2 with one sshbox.result' '
	echo "{\"account\":\"acme\",\"prompt\":\"x\",\"bogus\":1}" >bad.json &&
	test_expect_code 2 "$SSHBOX" run <bad.json >events-bad.ndjson 2>err-bad.txt &&
	test "$(sb_result_field events-bad.ndjson status)" = error &&
	grep -q "unknown field .bogus." err-bad.txt &&
	test "$(wc -l <events-bad.ndjson)" = 1 &&
	test "$(wc -l <err-bad.txt)" = 1 &&
	echo "not json" | test_expect_code 2 "$SSHBOX" run >events-bad2.ndjson 2>/dev/null &&
	test "$(sb_result_field events-bad2.ndjson status)" = error
'

test_expect_success 'an account without sandboxes exits 69' '
	sb_account_key lonely &&
	sb_spec "hello" | sed "s/\"account\":\"acme\"/\"account\":\"lonely\"/" >lonely.json &&
	test_expect_code 69 "$SSHBOX" run <lonely.json >events-lonely.ndjson 2>err-lonely.txt &&
	test "$(sb_result_field events-lonely.ndjson status)" = error &&
	grep -q "no sandbox registered for account .lonely." err-lonely.txt
'

test_expect_success 'Redis stopped: exit 75, no job starts' '
	sb_spec "hello" >spec-r.json &&
	tb_stop_redis &&
	test_expect_code 75 "$SSHBOX" run <spec-r.json >events-r.ndjson 2>err-r.txt &&
	test "$(sb_result_field events-r.ndjson status)" = error &&
	grep -q "Redis at 127.0.0.1:$TB_REDIS_PORT unreachable" err-r.txt &&
	tb_restart_redis
'

test_expect_success 'SIGTERM while the spec is still being written: exit 143 at once' '
	mkfifo spec.fifo &&
	{ sleep 30 >spec.fifo & } && writer=$! &&
	test_when_finished "kill $writer 2>/dev/null; true" &&
	{ "$SSHBOX" run <spec.fifo >events-fifo.ndjson 2>err-fifo.txt & } && run_pid=$! &&
	sleep 0.3 &&
	kill -TERM $run_pid &&
	test_expect_code 143 wait $run_pid &&
	grep -q "cancelled by SIGTERM while reading the job spec" err-fifo.txt
'

test_done
