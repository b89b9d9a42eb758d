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
	! pgrep -u sshbox-test -f "claude" &&
	grep -q "$SB_API_KEY" "$SB_API_LOG"
'

test_done
