#!/usr/bin/env bash
# tests/fuzz/run.sh — run one libFuzzer harness for a bounded time, or
# summarize the last runs.  Called by tests/fuzz/fuzz.mk (`make fuzz`).
#
#   tests/fuzz/run.sh NAME MAX_LEN [EXTRA_CORPUS_DIR...]
#	runs BIN_DIR/fuzz_NAME for $FUZZ_SECONDS (default 60) on a writable
#	corpus WORK/corpus/NAME (seeded from tests/fuzz/corpus/NAME, kept
#	between runs) plus the extra directories that exist (read only;
#	missing ones are skipped with a note), crashes to WORK/crashes/NAME/,
#	the whole output to WORK/logs/NAME.log, and prints one summary line
#	(also kept in WORK/logs/NAME.summary).  Exit 0 even when it found a
#	crash, so the other harnesses still run; the summary says.
#   tests/fuzz/run.sh --summary NAME...
#	prints the summary lines again; exit 1 if any run found a crash or
#	did not finish.
#
# Environment: FUZZ_SECONDS, FUZZ_RSS_MB (2048), FUZZ_TIMEOUT (10: seconds
# one input may take before it is a hang), FUZZ_BIN_DIR (build/fuzz),
# FUZZ_WORK (build/fuzz), FUZZ_ARGS (more libFuzzer flags).  ASAN_OPTIONS
# and UBSAN_OPTIONS get stack traces and strict checks unless already set.
set -u

cd "$(dirname "$0")/../.." || exit 1
me=tests/fuzz/run.sh
bin_dir=${FUZZ_BIN_DIR:-build/fuzz}
work=${FUZZ_WORK:-build/fuzz}

summary() {
	local name rc=0 f
	for name in "$@"; do
		f=$work/logs/$name.summary
		if [ ! -f "$f" ]; then
			echo "$name: no run recorded ($f missing)"
			rc=1
			continue
		fi
		cat "$f"
		grep -q ' crashes 0 ' "$f" || rc=1
	done
	[ "$rc" -eq 0 ] || echo "$me: a harness found a problem: see the crash files and logs above" >&2
	return "$rc"
}

if [ "${1-}" = --summary ]; then
	shift
	summary "$@"
	exit
fi

if [ $# -lt 2 ]; then
	echo "usage: $me NAME MAX_LEN [EXTRA_CORPUS_DIR...] | --summary NAME..." >&2
	exit 2
fi
name=$1
max_len=$2
shift 2
seconds=${FUZZ_SECONDS:-60}
case $seconds$max_len${FUZZ_RSS_MB:-2048}${FUZZ_TIMEOUT:-10} in
''|*[!0-9]*) echo "$me: error: FUZZ_SECONDS, MAX_LEN, FUZZ_RSS_MB and FUZZ_TIMEOUT must be numbers" >&2; exit 2 ;;
esac

bin=$bin_dir/fuzz_$name
if [ ! -x "$bin" ]; then
	echo "$me: error: '$bin' is not built (make fuzz-build)" >&2
	exit 1
fi

corpus=$work/corpus/$name
crashes=$work/crashes/$name
logs=$work/logs
mkdir -p "$corpus" "$crashes" "$logs" || exit 1
# Seeds are copied once and never overwrite what the corpus already has.
for f in tests/fuzz/corpus/"$name"/*; do
	[ -f "$f" ] || continue
	case ${f##*/} in README*) continue ;; esac
	cp -n "$f" "$corpus/" || exit 1
done

dirs=("$corpus")
notes=
for d in "$@"; do
	if [ -d "$d" ]; then
		dirs+=("$d")
	else
		notes="$notes (skipped missing corpus $d)"
	fi
done

stamp=$logs/$name.started
: >"$stamp" || exit 1
log=$logs/$name.log
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_stack_use_after_return=1:strict_string_checks=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

t0=$SECONDS
# shellcheck disable=SC2086  # FUZZ_ARGS is a list of flags
"$bin" -max_total_time="$seconds" -rss_limit_mb="${FUZZ_RSS_MB:-2048}" -max_len="$max_len" \
	-timeout="${FUZZ_TIMEOUT:-10}" -artifact_prefix="$crashes/" -print_final_stats=1 \
	${FUZZ_ARGS-} "${dirs[@]}" </dev/null >"$log" 2>&1
rc=$?
elapsed=$((SECONDS - t0))

stat() {
	sed -n "s/^stat::$1: *\\([0-9][0-9]*\\).*/\\1/p" "$log" | tail -n 1
}
runs=$(stat number_of_executed_units)
speed=$(stat average_exec_per_sec)
peak=$(stat peak_rss_mb)
# "#123456 DONE cov: 812 ft: 3000 corp: 512/40Kb ..." (or the last status
# line before a crash)
last=$(grep -E '^#[0-9]+.* cov: [0-9]+' "$log" | tail -n 1)
cov=$(sed -n 's/.* cov: \([0-9][0-9]*\).*/\1/p' <<<"$last")
ft=$(sed -n 's/.* ft: \([0-9][0-9]*\).*/\1/p' <<<"$last")
corp=$(sed -n 's/.* corp: \([0-9][0-9]*\).*/\1/p' <<<"$last")
found=$(find "$crashes" -type f -newer "$stamp" | wc -l)
if [ "$rc" -ne 0 ] && [ "$found" -eq 0 ]; then
	# died without an artifact (e.g. killed, bad flag): count it
	found=1
	notes="$notes (exit $rc without a crash file: see $log)"
fi

line=$(printf '%-8s runs %s  exec/s %s  cov %s  ft %s  corpus %s  peak_rss_mb %s  crashes %s  (%ss)%s' \
	"$name" "${runs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${peak:-?}" "$found" "$elapsed" "$notes")
echo "$line" >"$logs/$name.summary"
echo "$line"
if [ "$found" -gt 0 ]; then
	find "$crashes" -type f -newer "$stamp" | sed 's/^/    new: /'
	grep -m 1 -E '^(==[0-9]+==ERROR|SUMMARY|fuzz: |.*runtime error:)' "$log" | sed 's/^/    /'
fi
exit 0
