#!/usr/bin/env bash
test_description='fuzz harnesses: built with clang and libFuzzer, regressions and seeds replayed'
. "$(dirname "$0")/lib.sh"

# libFuzzer is part of clang's runtime (Debian 12: clang, libclang-rt-14-dev);
# without it there is nothing to build.  The probe links the same sanitizers
# as the harnesses.
if ! command -v clang >/dev/null 2>&1; then
	test_skip_all 'clang is not installed (Debian 12 packages: clang libclang-rt-14-dev)'
fi
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' >probe.c
if ! clang -fsanitize=fuzzer,address,undefined -o probe probe.c >probe.log 2>&1; then
	test_skip_all "clang cannot link -fsanitize=fuzzer,address,undefined: libFuzzer's runtime is missing (Debian 12 package: libclang-rt-14-dev)"
fi

test_expect_success 'the harnesses build' '
	make -s -C "$REPO_ROOT" -f tests/fuzz/fuzz.mk -j"$(nproc)" fuzz-build >build.log 2>&1 &&
	for n in jobspec stream fernet config; do
		test -x "$REPO_ROOT/build/fuzz/fuzz_$n" || return 1
	done
'

test_expect_success 'every regression input and every seed runs clean' '
	"$REPO_ROOT/tests/fuzz/regress.sh" >regress.out 2>&1 &&
	cat regress.out &&
	test "$(grep -c ": ok, " regress.out)" = 4
'

test_expect_success 'regress.sh names the input that makes a harness fail' '
	mkdir -p fake/bin fake/regressions/stream fake/corpus/stream &&
	printf "#!/bin/sh\nfor f; do case \$f in -*) ;; *) ! grep -q BOOM \"\$f\" || exit 1 ;; esac; done\n" \
		>fake/bin/fuzz_stream &&
	chmod +x fake/bin/fuzz_stream &&
	echo fine >fake/corpus/stream/seed &&
	echo BOOM >fake/regressions/stream/crash-1 &&
	echo "not an input" >fake/regressions/stream/README &&
	test_must_fail env FUZZ_NAMES=stream FUZZ_BIN_DIR="$PWD/fake/bin" \
		FUZZ_REGRESSIONS="$PWD/fake/regressions" FUZZ_CORPUS="$PWD/fake/corpus" \
		FUZZ_SHARED="$PWD/none" FUZZ_LOG_DIR="$PWD/fake/log" \
		"$REPO_ROOT/tests/fuzz/regress.sh" >out 2>&1 &&
	grep -q "stream: FAILED over 2 inputs" out &&
	grep -q "fake/regressions/stream/crash-1" out &&
	! grep -q "corpus/stream/seed:" out
'

test_expect_success 'make fuzz runs every harness and prints its numbers' '
	make -s -C "$REPO_ROOT" -f tests/fuzz/fuzz.mk fuzz FUZZ_SECONDS=1 \
		FUZZ_WORK="$TEST_DIR/work" >fuzz.out 2>&1 &&
	cat fuzz.out &&
	for n in jobspec stream fernet config; do
		grep -E "^$n +runs [1-9][0-9]* +exec/s [0-9]+ +cov [1-9][0-9]* .* crashes 0 " fuzz.out || return 1
		test -d "$TEST_DIR/work/corpus/$n" || return 1
	done
'

test_done
