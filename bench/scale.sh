#!/usr/bin/env bash
# bench/scale.sh — many jobs at once: JOBS jobs (Claude Code is a stub that
# sleeps SLEEP s) over SANDBOXES sandboxes x SLOTS slots, started PARALLEL at
# a time, with the supervisor up.  Reports the total time against the ideal
# (ceil(JOBS / (SANDBOXES x SLOTS)) x SLEEP), failures, CPU seconds per job
# (user+sys of every `sshbox run`, from /usr/bin/time), and the peak RSS of
# `sshbox run` and of `sshbox supervise`.
#
#	bench/scale.sh [-j JOBS] [-s SANDBOXES] [-k SLOTS] [-p PARALLEL] [-t SLEEP]

# The harness is sourced at run time; test bodies are single-quoted on purpose
# (tests/lib.sh evals them), and the variables they use are set out here.
# shellcheck disable=SC1091,SC2016,SC2034

jobs=200 nsbx=8 slots=4 par=64 sleep_s=1
while getopts j:s:k:p:t: o; do
	case $o in
	j) jobs=$OPTARG ;;
	s) nsbx=$OPTARG ;;
	k) slots=$OPTARG ;;
	p) par=$OPTARG ;;
	t) sleep_s=$OPTARG ;;
	*) echo "usage: bench/scale.sh [-j JOBS] [-s SANDBOXES] [-k SLOTS] [-p PARALLEL] [-t SLEEP]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))

. "$(dirname "$0")/../tests/lib.sh"
. "$REPO_ROOT/tests/testbed.sh"
. "$REPO_ROOT/tests/sshbox-env.sh"
. "$REPO_ROOT/bench/lib.sh"

STUB=$REPO_ROOT/tests/data/stub-claude-sleep

test_expect_success "test bed: $nsbx sandboxes x $slots slots, the supervisor" '
	tb_ensure_user &&
	tb_start_redis &&
	sb_env_init &&
	sb_account_key &&
	for i in $(seq "$nsbx"); do
		bench_sandbox s$i 127.0.0.$((i + 1)) "$STUB" "$slots" || return 1
	done &&
	printf "%s\n" "health_interval_s = 5" >>"$SSHBOX_CONFIG" &&
	{ /usr/bin/time -f %M -o sv.rss "$SSHBOX" supervise 2>sv.log & } &&
	SV=$! &&
	test_wait_for "pgrep -P $SV >/dev/null" 5 &&
	SVP=$(pgrep -P $SV) &&
	test_atexit "kill $SVP 2>/dev/null; sleep 0.5" &&
	test_wait_for "test \$(grep -c \"master up\" sv.log) -ge $nsbx" 60 &&
	mkdir run
'

# one job: run/<i>.{json,ndjson,rc,time}; /usr/bin/time: user sys maxrss
one_job() {
	printf "{\"account\":\"acme\",\"job_id\":\"sc-%s\",\"prompt\":\"p\",\"env\":{\"STUB_SLEEP\":\"%s\"},\"wait_s\":600,\"timeout_s\":600}\n" \
		"$1" "$sleep_s" >"run/$1.json"
	/usr/bin/time -f "%U %S %M" -o "run/$1.time" "$SSHBOX" run <"run/$1.json" >"run/$1.ndjson" 2>"run/$1.err"
	echo $? >"run/$1.rc"
}
export -f one_job
export SSHBOX sleep_s

test_expect_success "$jobs jobs, $par at a time" '
	s=${EPOCHREALTIME/[.,]/} &&
	seq "$jobs" | xargs -P "$par" -I{} bash -c "one_job {}" &&
	e=${EPOCHREALTIME/[.,]/} &&
	echo $(((e - s) / 1000)) >total.ms
'

test_expect_success 'report' '
	# supervise itself (time is its parent and writes its RSS when it ends)
	kill $SVP && { wait $SV; true; } &&
	/usr/bin/python3 - "$jobs" "$nsbx" "$slots" "$par" "$sleep_s" "$(cat total.ms)" "$(tail -n 1 sv.rss)" summary.rows <<-PY >&6 &&
	import glob, math, sys
	jobs, nsbx, slots, par, sl, total, svrss, rows = sys.argv[1:9]
	jobs, nsbx, slots, par, sl, total = int(jobs), int(nsbx), int(slots), int(par), float(sl), int(total)
	rcs = [open(f).read().strip() for f in glob.glob("run/*.rc")]
	fails = sum(1 for r in rcs if r != "0")
	cpu, rss = 0.0, []
	for f in glob.glob("run/*.time"):
	    u, s, m = open(f).read().split()[-3:]
	    cpu += float(u) + float(s); rss.append(int(m))
	ideal = math.ceil(jobs / (nsbx * slots)) * sl * 1000
	print("scale: %d jobs (%.0f s each) over %d sandboxes x %d slots, %d at a time" % (jobs, sl, nsbx, slots, par))
	print("  total %.1f s, ideal %.1f s: %.2fx" % (total / 1000, ideal / 1000, total / ideal))
	print("  failures: %d of %d" % (fails, len(rcs)))
	print("  CPU per job (sshbox run, user+sys): %.1f ms" % (cpu / max(len(rss), 1) * 1000))
	print("  peak RSS: sshbox run max %d KiB (median %d KiB); sshbox supervise %s KiB (goal <= 4096 for run)" % (max(rss), sorted(rss)[len(rss) // 2], svrss))
	# the rows of the summary of bench/run, fields as for bench_summary
	with open(rows, "w") as f:
	    row = lambda *v: f.write("\t".join(["scale"] + [str(x) for x in v]) + "\n")
	    row("%d jobs x %g s, %dx%d slots, %d parallel" % (jobs, sl, nsbx, slots, par),
	        "%.1f" % (total / 1000), "s", "%.1f" % (ideal / 1000), "%.2f" % (total / ideal), "-")
	    row("failures (of %d jobs)" % len(rcs), fails, "jobs", 0, "-", "-")
	    row("CPU per job (sshbox run, user+sys)", "%.1f" % (cpu / max(len(rss), 1) * 1000), "ms", "-", "-", "-")
	    row("peak RSS of sshbox run (max)", max(rss), "KiB", 4096, "%.2f" % (max(rss) / 4096), "<= 1")
	    row("peak RSS of sshbox supervise", svrss, "KiB", "-", "-", "-")
	PY
	{ test -z "${BENCH_SUMMARY-}" || cat summary.rows >>"$BENCH_SUMMARY"; }
'

test_done
