# bench/lib.sh — the benchmarks' shared test bed steps.  Sourced after
# tests/lib.sh, tests/testbed.sh and tests/sshbox-env.sh (which provide the
# tb_* and sb_* helpers); bash only.
# shellcheck shell=bash
#
#   bench_sandbox NAME IP CLAUDE [SLOTS]
#       start sandbox NAME on IP, authorize the account's key there and
#       register it (SLOTS, default 1) with CLAUDE as its Claude Code
#   bench_supervise N
#       start `sshbox supervise` (log in sv.log, stopped at exit) and wait
#       until N sandboxes have their master

bench_sandbox() {
	local name=$1 ip=$2 claude=$3 slots=${4:-1}
	tb_start_sandbox "$name" "$ip" &&
	tb_authorize_key "$name" "$TEST_DIR/key-$SB_ACCOUNT.pub" &&
	"$SSHBOX" sandbox add --account "$SB_ACCOUNT" --host "$(tb_sbx_var "$name" HOST)" \
		--port "$(tb_sbx_var "$name" PORT)" --user "$(tb_sbx_var "$name" USER)" \
		--workdir "$(tb_sbx_var "$name" WORKDIR)" --slots "$slots" --claude "$claude" \
		--host-key "$(tb_sbx_var "$name" HOSTKEY)" >/dev/null
}

bench_supervise() {
	{ "$SSHBOX" supervise 2>sv.log & } &&
	test_atexit "kill $! 2>/dev/null; sleep 0.5" &&
	test_wait_for "test \$(grep -c \"master up\" sv.log) -ge $1" 60
}

#   bench_noop_bed
#       Redis, sandbox a (127.0.0.2, 4 slots) with tests/data/stub-claude-noop,
#       the supervisor, and noop.json: a no-op job, run once and checked
bench_noop_bed() {
	tb_ensure_user &&
	tb_start_redis &&
	sb_env_init &&
	sb_account_key &&
	bench_sandbox a 127.0.0.2 "$REPO_ROOT/tests/data/stub-claude-noop" 4 &&
	bench_supervise 1 &&
	printf "{\"account\":\"acme\",\"prompt\":\"noop\"}\n" >noop.json &&
	"$SSHBOX" run <noop.json >check.ndjson &&
	test "$(sb_result_field check.ndjson status)" = succeeded
}

#   bench_summary BENCH WHAT VALUE UNIT BASELINE RATIO GOAL
#       add one row to the table bench/run prints at the end (the file
#       $BENCH_SUMMARY, tab-separated; nothing when run alone): VALUE is
#       sshbox's figure, BASELINE what it is measured against in the same
#       run, RATIO the ratio the goal is stated in, GOAL e.g. "<= 1.3" or
#       ">= 0.9" ("-" when there is none)
bench_summary() {
	[ -n "${BENCH_SUMMARY-}" ] || return 0
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$BENCH_SUMMARY"
}
