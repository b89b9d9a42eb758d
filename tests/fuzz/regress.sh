#!/usr/bin/env bash
# tests/fuzz/regress.sh — replay known inputs through the libFuzzer harnesses.
#
# For each harness NAME (jobspec stream fernet config), run
# $FUZZ_BIN_DIR/fuzz_NAME (default build/fuzz; `make fuzz-build`) once over
# every file of
#   tests/fuzz/regressions/NAME/   inputs that once crashed (README* skipped)
#   tests/fuzz/corpus/NAME/        the seed corpus
#   ../shared/refs/JSONTestSuite/test_parsing/   for jobspec and stream,
#                                  when it exists
# A harness aborts on a sanitizer report or a broken invariant, and ASan's
# leak check fails it at exit; when a batch fails, each of its files is run
# alone to name the culprits.  Prints one line per harness and exits 1 on
# any failure (2 on a usage error, a harness not built).
#
# Knobs (for tests of this script): FUZZ_BIN_DIR, FUZZ_REGRESSIONS
# (tests/fuzz/regressions), FUZZ_CORPUS (tests/fuzz/corpus), FUZZ_SHARED
# (../shared), FUZZ_NAMES (the four names), FUZZ_LOG_DIR (where failing
# runs' output goes; default a temporary directory, printed).
set -u

cd "$(dirname "$0")/../.." || exit 2
me=tests/fuzz/regress.sh
bin_dir=${FUZZ_BIN_DIR:-build/fuzz}
regressions=${FUZZ_REGRESSIONS:-tests/fuzz/regressions}
corpus=${FUZZ_CORPUS:-tests/fuzz/corpus}
shared=${FUZZ_SHARED:-../shared}
read -r -a names <<<"${FUZZ_NAMES:-jobspec stream fernet config}"
logdir=${FUZZ_LOG_DIR:-}
if [ -z "$logdir" ]; then
	logdir=$(mktemp -d "${TMPDIR:-/tmp}/sshbox-fuzz-regress.XXXXXX") || exit 2
fi
mkdir -p "$logdir" || exit 2

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_stack_use_after_return=1:strict_string_checks=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

inputs_of() {
	local name=$1 d f
	local dirs=("$regressions/$name" "$corpus/$name")
	case $name in
	jobspec|stream) dirs+=("$shared/refs/JSONTestSuite/test_parsing") ;;
	esac
	for d in "${dirs[@]}"; do
		[ -d "$d" ] || continue
		for f in "$d"/*; do
			[ -f "$f" ] || continue
			case ${f##*/} in README*) continue ;; esac
			printf '%s\n' "$f"
		done
	done
}

failed=0
for name in "${names[@]}"; do
	bin=$bin_dir/fuzz_$name
	if [ ! -x "$bin" ]; then
		echo "$me: error: '$bin' is not built (make fuzz-build)" >&2
		exit 2
	fi
	mapfile -t files < <(inputs_of "$name")
	if [ ${#files[@]} -eq 0 ]; then
		echo "$name: no input"
		continue
	fi
	log=$logdir/$name.log
	if "$bin" -runs=1 "${files[@]}" </dev/null >"$log" 2>&1; then
		echo "$name: ok, ${#files[@]} inputs"
		continue
	fi
	failed=1
	echo "$name: FAILED over ${#files[@]} inputs (output: $log); one by one:"
	bad=0
	for f in "${files[@]}"; do
		one=$logdir/$name.$(basename "$f").log
		if ! "$bin" -runs=1 "$f" </dev/null >"$one" 2>&1; then
			bad=$((bad + 1))
			echo "    $f: $(grep -m 1 -E '^(==[0-9]+==ERROR|fuzz: |.*runtime error:|SUMMARY)' "$one" || echo "failed, see $one")"
		fi
	done
	[ "$bad" -gt 0 ] || echo "    (none fails alone: state carried between inputs; see $log)"
done

if [ "$failed" -ne 0 ]; then
	echo "$me: failures; logs in $logdir" >&2
	exit 1
fi
[ -n "${FUZZ_LOG_DIR:-}" ] || rm -rf "$logdir"
exit 0
