#!/usr/bin/env bash
# bench/dispatch.sh — what one job costs on top of OpenSSH: the median wall
# time of `sshbox run` for a no-op job (tests/data/stub-claude-noop answers
# at once) against one bare `ssh -F <state>/ssh_config <alias> true` through
# the same warm ControlMaster (the floor), and against a cold ssh handshake.
# The supervisor is up (its agent and master are what jobs use).  hyperfine
# (Debian) measures; a table of medians and ratios is printed.
#
#	bench/dispatch.sh [-n RUNS]

# The harness is sourced at run time; test bodies are single-quoted on purpose
# (tests/lib.sh evals them).
# shellcheck disable=SC1091,SC2016

runs=30
while getopts n: o; do
	case $o in
	n) runs=$OPTARG ;;
	*) echo "usage: bench/dispatch.sh [-n RUNS]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))

. "$(dirname "$0")/../tests/lib.sh"
. "$REPO_ROOT/tests/testbed.sh"
. "$REPO_ROOT/tests/sshbox-env.sh"
. "$REPO_ROOT/bench/lib.sh"

command -v hyperfine >/dev/null || test_skip_all 'hyperfine is not installed (scripts/deps.sh bench)'

test_expect_success 'test bed: Redis, a sandbox with the no-op stub, the supervisor' '
	bench_noop_bed
'

test_expect_success "hyperfine, $runs runs each" '
	cfg=$SSHBOX_STATE_DIR/ssh_config &&
	# through /bin/sh (hyperfine subtracts its start-up) for the redirection
	{ hyperfine --style none --warmup 3 --runs "$runs" --export-json hf.json \
		-n "sshbox run (no-op job)" "$SSHBOX run <noop.json >/dev/null" \
		-n "ssh through the master (floor)" "ssh -F $cfg sbx-acme-127.0.0.2 true" \
		-n "ssh, cold handshake" "ssh -F $cfg -o ControlPath=none sbx-acme-127.0.0.2 true" \
		>hf.out 2>&1 || { cat hf.out; false; }; }
'

test_expect_success 'report' '
	/usr/bin/python3 - hf.json "$runs" summary.rows <<-PY >&6 &&
	import json, sys
	r = json.load(open(sys.argv[1]))["results"]
	med = {x["command"]: x["median"] * 1000 for x in r}
	names = [x["command"] for x in r]
	floor = med[names[1]]
	print("dispatch: no-op job vs one ssh session, median of %s runs (hyperfine)" % sys.argv[2])
	print("  %-34s %9s %9s" % ("", "ms", "x floor"))
	for n in names:
	    print("  %-34s %9.1f %9.2f" % (n, med[n], med[n] / floor))
	ratio = med[names[0]] / floor
	print("  goal: sshbox run <= 1.3x the bare mux session: %.2f (%s)" % (ratio, "met" if ratio <= 1.3 else "NOT met"))
	# the rows of the summary of bench/run, fields as for bench_summary
	with open(sys.argv[3], "w") as f:
	    f.write("dispatch\tno-op job vs ssh via master\t%.1f\tms\t%.1f\t%.2f\t<= 1.3\n" % (med[names[0]], floor, ratio))
	    f.write("dispatch\tcold handshake vs ssh via master\t%.1f\tms\t%.1f\t%.2f\t-\n" % (med[names[2]], floor, med[names[2]] / floor))
	PY
	{ test -z "${BENCH_SUMMARY-}" || cat summary.rows >>"$BENCH_SUMMARY"; }
'

test_done
