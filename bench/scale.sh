#!/usr/bin/env bash
# bench/scale.sh — many jobs at once: JOBS jobs (Claude Code is a stub that
# sleeps SLEEP s) over SANDBOXES sandboxes x SLOTS slots, started PARALLEL at
# a time, with the supervisor up.  Reports the total time against the ideal
# (ceil(JOBS / (SANDBOXES x SLOTS)) x SLEEP), failures, CPU seconds per job
# (user+sys of every `sshbox run` itself, from the "own usage" line it logs
# at debug level: /usr/bin/time's %U/%S are in 10 ms steps), and the
# peak RSS of `sshbox run` and of `sshbox supervise` — their own: the
# maxrss of /usr/bin/time is the largest of the process tree, and the ssh
# client of a job (7.5 MB) or a supervisor's masters are larger than sshbox.
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
	{ SSHBOX_LOG_LEVEL=debug "$SSHBOX" supervise 2>sv.log & } &&
	SV=$! &&
	test_atexit "kill $SV 2>/dev/null; sleep 0.5" &&
	test_wait_for "test \$(grep -c \"master up\" sv.log) -ge $nsbx" 60 &&
	mkdir run
'

# one job: run/<i>.{json,ndjson,rc,time}; /usr/bin/time: user sys maxrss
one_job() {
	printf "{\"account\":\"acme\",\"job_id\":\"sc-%s\",\"prompt\":\"p\",\"env\":{\"STUB_SLEEP\":\"%s\"},\"wait_s\":600,\"timeout_s\":600}\n" \
		"$1" "$sleep_s" >"run/$1.json"
	SSHBOX_LOG_LEVEL=debug /usr/bin/time -f "%U %S %M" -o "run/$1.time" "$SSHBOX" run <"run/$1.json" >"run/$1.ndjson" 2>"run/$1.err"
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
	# supervise logs its own usage when it ends
	kill $SV && { wait $SV; true; } &&
	test_wait_for "grep -q \"own usage\" sv.log" 10 &&
	/usr/bin/python3 - "$jobs" "$nsbx" "$slots" "$par" "$sleep_s" "$(cat total.ms)" summary.rows <<-PY >&6 &&
	import glob, math, re, sys
	jobs, nsbx, slots, par, sl, total, rows = sys.argv[1:8]
	jobs, nsbx, slots, par, sl, total = int(jobs), int(nsbx), int(slots), int(par), float(sl), int(total)
	rcs = [open(f).read().strip() for f in glob.glob("run/*.rc")]
	fails = sum(1 for r in rcs if r != "0")
	own = re.compile(r"own usage: ([0-9.]+) s user, ([0-9.]+) s sys, peak RSS ([0-9]+) KiB")
	def usage(path):
	    m = own.search(open(path, errors="replace").read())
	    return (float(m.group(1)) + float(m.group(2)), int(m.group(3))) if m else None
	cpu, rss, tree_rss = 0.0, [], []
	for f in glob.glob("run/*.time"):
	    tree_rss.append(int(open(f).read().split()[-1]))
	    got = usage(f[:-5] + ".err")
	    if got:
	        cpu += got[0]; rss.append(got[1])
	sv = usage("sv.log")
	svrss = sv[1] if sv else "?"
	if not rss:
	    sys.exit("no own-usage line in run/*.err")
	ideal = math.ceil(jobs / (nsbx * slots)) * sl * 1000
	print("scale: %d jobs (%.0f s each) over %d sandboxes x %d slots, %d at a time" % (jobs, sl, nsbx, slots, par))
	print("  total %.1f s, ideal %.1f s: %.2fx" % (total / 1000, ideal / 1000, total / ideal))
	print("  failures: %d of %d" % (fails, len(rcs)))
	print("  CPU per job (user+sys of sshbox run itself): %.1f ms" % (cpu / len(rss) * 1000))
	print("  peak RSS (own): sshbox run max %d KiB (median %d KiB; goal <= 4096); sshbox supervise %s KiB" % (max(rss), sorted(rss)[len(rss) // 2], svrss))
	print("  (/usr/bin/time, largest of the tree, i.e. the ssh client: max %d KiB)" % max(tree_rss))
	# the rows of the summary of bench/run, fields as for bench_summary
	with open(rows, "w") as f:
	    row = lambda *v: f.write("\t".join(["scale"] + [str(x) for x in v]) + "\n")
	    row("%d jobs x %g s, %dx%d slots, %d parallel" % (jobs, sl, nsbx, slots, par),
	        "%.1f" % (total / 1000), "s", "%.1f" % (ideal / 1000), "%.2f" % (total / ideal), "-")
	    row("failures (of %d jobs)" % len(rcs), fails, "jobs", 0, "-", "-")
	    row("CPU per job (sshbox run, user+sys)", "%.1f" % (cpu / len(rss) * 1000), "ms", "-", "-", "-")
	    row("peak RSS of sshbox run (max)", max(rss), "KiB", 4096, "%.2f" % (max(rss) / 4096), "<= 1")
	    row("peak RSS of sshbox supervise", svrss, "KiB", "-", "-", "-")
	PY
	{ test -z "${BENCH_SUMMARY-}" || cat summary.rows >>"$BENCH_SUMMARY"; }
'

test_done
