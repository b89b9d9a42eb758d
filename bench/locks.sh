#!/usr/bin/env bash
# bench/locks.sh — slot leases per second against a local Redis (issue 7):
# cycles of lock_acquire + lock_renew + lock_unlock (build/bench/locks,
# the real lock API over TCP loopback, fresh job_id each cycle) against the
# floor of the same 3 round trips as bare PINGs on the same connection, and
# 3 EVAL of a script that only returns.  The three take turns in 50 ms
# rounds for SECONDS in all; the ratio is lease cycles/s over floor cycles/s.
#
#	bench/locks.sh [-t SECONDS] [-k SLOTS]
# Test bodies are single-quoted on purpose (eval'ed later); the sourced
# files are followed with shellcheck -x.
# shellcheck disable=SC1091,SC2016

seconds=5 slots=4
while getopts t:k: o; do
	case $o in
	t) seconds=$OPTARG ;;
	k) slots=$OPTARG ;;
	*) echo "usage: bench/locks.sh [-t SECONDS] [-k SLOTS]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))

# shellcheck source=../tests/lib.sh
. "$(dirname "$0")/../tests/lib.sh"
# shellcheck source=../tests/testbed.sh
. "$REPO_ROOT/tests/testbed.sh"
# shellcheck source=../tests/sshbox-env.sh
. "$REPO_ROOT/tests/sshbox-env.sh"
# shellcheck source=lib.sh
. "$REPO_ROOT/bench/lib.sh"

LOCKS=${SSHBOX_TEST_BUILD_DIR:-$REPO_ROOT/build}/bench/locks
[ -x "$LOCKS" ] || test_skip_all "$LOCKS is not built (make build/bench/locks)"

test_expect_success 'test bed: Redis' '
	tb_start_redis
'

test_expect_success "$seconds s of lease cycles, no-op scripts and PINGs, in turns" '
	"$LOCKS" --url "$TB_REDIS_URL" --seconds "$seconds" --slots "$slots" >locks.out &&
	cat locks.out &&
	# nothing is left behind: every lease released, its job_id too
	test "$(tb_redis_cli --scan --pattern "sshbox:*" | wc -l)" = 0
'

# locks_field NAME: a figure of the binary's "name value" lines, rounded
locks_field() {
	awk -v k="$1" -v f="${2:-%.0f}" '$1 == k { printf f, $2 }' locks.out
}

locks_table() {
	awk -v slots="$slots" '
	{ v[$1] = $2 }
	function row(label, p) {
		printf "  %-34s %10.0f %9.1f %10.1f %8.2f\n", label, v[p "_per_s"],
			v[p "_us_per_cycle"], v[p "_client_cpu_us_per_cycle"],
			v[p "_per_s"] / v["floor_per_s"]
	}
	END {
		printf "locks: acquire+renew+release vs 3 round trips, Redis on TCP loopback, %d slots\n", slots
		printf "  %-34s %10s %9s %10s %8s\n", "", "cycles/s", "us/cycle", "client us", "x floor"
		row("lock_acquire+renew+release", "sshbox")
		row("3 x EVAL of \"return 1\"", "noop_script")
		row("3 x PING (floor)", "floor")
	}' locks.out
}

test_expect_success 'report' '
	locks_table >&6 &&
	bench_summary locks "acquire+renew+release /s" "$(locks_field sshbox_per_s)" /s \
		"$(locks_field floor_per_s)" "$(locks_field ratio %.2f)" -
'

test_done
