#!/usr/bin/env bash
# bench/stream.sh — forwarding Claude Code's output: `sshbox run` of a job
# whose CLI prints a 200 MB stream-json file (the lines of
# tests/data/sample-stream.jsonl but its result line, repeated; the stub
# prints one result at the end, as the real CLI does), against `ssh <alias> cat` of
# the same file through the same master.  Both write to /dev/null.  ROUNDS
# hyperfine passes of RUNS runs each, in alternating order; the ratio is the
# median of the rounds' ratios.  Then the framer and validator alone.
#
#	bench/stream.sh [-m MEGABYTES] [-r ROUNDS] [-n RUNS]

# The harness is sourced at run time; test bodies are single-quoted on purpose
# (tests/lib.sh evals them).
# shellcheck disable=SC1091,SC2016

mb=200 rounds=4 runs=3
while getopts m:n:r: o; do
	case $o in
	m) mb=$OPTARG ;;
	n) runs=$OPTARG ;;
	r) rounds=$OPTARG ;;
	*) echo "usage: bench/stream.sh [-m MEGABYTES] [-r ROUNDS] [-n RUNS]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))

. "$(dirname "$0")/../tests/lib.sh"
. "$REPO_ROOT/tests/testbed.sh"
. "$REPO_ROOT/tests/sshbox-env.sh"
. "$REPO_ROOT/bench/lib.sh"

command -v hyperfine >/dev/null || test_skip_all 'hyperfine is not installed (scripts/deps.sh bench)'

test_expect_success "test bed, the supervisor, a $mb MB stream-json file" '
	tb_ensure_user &&
	tb_start_redis &&
	sb_env_init &&
	sb_account_key &&
	bench_sandbox a 127.0.0.2 "$REPO_ROOT/tests/data/stub-claude-fault" &&
	bench_supervise 1 &&
	/usr/bin/python3 - "$REPO_ROOT/tests/data/sample-stream.jsonl" stream.jsonl "$mb" <<-PY &&
	import sys
	# as in a real stream, one result line: the stub prints it after the file
	lines = [l for l in open(sys.argv[1], "rb") if l.strip() and not l.startswith(b"{\x22type\x22:\x22result")]
	want, n = int(sys.argv[3]) * 1000 * 1000, 0
	with open(sys.argv[2], "wb") as f:
	    while n < want:
	        for l in lines:
	            f.write(l); n += len(l)
	PY
	chmod 644 stream.jsonl &&
	printf "{\"account\":\"acme\",\"prompt\":\"stream\",\"env\":{\"STUB_MODE\":\"cat\",\"STUB_FILE\":\"%s\"}}\n" \
		"$TEST_DIR/stream.jsonl" >stream.json &&
	"$SSHBOX" run <stream.json >check.ndjson &&
	test "$(sb_result_field check.ndjson status)" = succeeded &&
	test "$(grep -c . check.ndjson)" -ge "$(grep -c . stream.jsonl)"
'

# Rounds of hyperfine in alternating order: this VM drifts by 10-30 %
# within a minute, which a single sshbox-then-raw pass would read as a
# difference between the two.
test_expect_success "hyperfine, $rounds rounds of $runs runs each, alternating" '
	cfg=$SSHBOX_STATE_DIR/ssh_config &&
	sb=("sshbox run (forwarded as events)" "$SSHBOX run <stream.json >/dev/null") &&
	raw=("ssh <alias> cat (raw)" "ssh -F $cfg sbx-acme-127.0.0.2 cat $TEST_DIR/stream.jsonl >/dev/null") &&
	for k in $(seq "$rounds"); do
		if [ $((k % 2)) = 1 ]; then first=("${sb[@]}") second=("${raw[@]}"); else first=("${raw[@]}") second=("${sb[@]}"); fi &&
		{ hyperfine --style none --warmup 1 --runs "$runs" --export-json "hf.$k.json" \
			-n "${first[0]}" "${first[1]}" -n "${second[0]}" "${second[1]}" \
			>hf.out 2>&1 || { cat hf.out; false; }; } || return 1
	done
'

test_expect_success 'report' '
	size=$(stat -c %s stream.jsonl) &&
	/usr/bin/python3 - "$size" "$rounds" "$runs" summary.rows hf.*.json <<-PY >&6 &&
	import json, statistics, sys
	size, rounds, runs, rows = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
	a, b = "sshbox run (forwarded as events)", "ssh <alias> cat (raw)"
	med = {a: [], b: []}
	for path in sys.argv[5:]:
	    for x in json.load(open(path))["results"]:
	        med[x["command"]].append(x["median"])
	print("streaming: %.0f MB of stream-json lines, %s rounds of %s runs, alternating order (hyperfine)" % (size / 1e6, rounds, runs))
	rate = {}
	for c in (a, b):
	    m = statistics.median(med[c])
	    rate[c] = size / m / 1e6
	    print("  %-36s %8.2f s %8.0f MB/s  (round medians %s)" % (c, m, rate[c], " ".join("%.2f" % t for t in med[c])))
	ratios = [tb / ta for ta, tb in zip(med[a], med[b])]
	ratio = statistics.median(ratios)
	print("  sshbox / raw throughput: %.2f, median of the rounds %s (goal >= 0.9: %s)" % (ratio, " ".join("%.2f" % r for r in ratios), "met" if ratio >= 0.9 else "NOT met"))
	# the row of the summary of bench/run, fields as for bench_summary
	with open(rows, "w") as f:
	    f.write("stream\t%.0f MB stream-json forwarded\t%.0f\tMB/s\t%.0f\t%.2f\t>= 0.9\n" % (size / 1e6, rate[a], rate[b], ratio))
	PY
	{ test -z "${BENCH_SUMMARY-}" || cat summary.rows >>"$BENCH_SUMMARY"; }
'

# the framer and the validating classifier alone, on one core, in memory
test_expect_success 'framer + validator alone (build/bench/framer)' '
	{ test -x "$REPO_ROOT/build/bench/framer" || make -C "$REPO_ROOT" -s build/bench/framer; } &&
	"$REPO_ROOT/build/bench/framer" stream.jsonl --rounds 3 >framer.out &&
	/usr/bin/python3 - framer.out summary2.rows <<-PY >&6 &&
	import sys
	v = dict(l.split(" ", 1) for l in open(sys.argv[1]).read().splitlines())
	print("line framer and validator alone, one core, best of 3 (build/bench/framer)")
	for k in ("memcpy", "framer", "framer+classify", "framer+classify+forward"):
	    print("  %-36s %8s MB/s" % (k, v[k]))
	rate = float(v["framer+classify"])
	print("  lines: %s" % v["lines"])
	print("  framer + validator: %.0f MB/s (goal >= 500: %s)" % (rate, "met" if rate >= 500 else "NOT met"))
	with open(sys.argv[2], "w") as f:
	    f.write("stream\tframer + validator alone, one core\t%.0f\tMB/s\t500\t%.2f\t>= 1\n" % (rate, rate / 500))
	PY
	{ test -z "${BENCH_SUMMARY-}" || cat summary2.rows >>"$BENCH_SUMMARY"; }
'

test_done
