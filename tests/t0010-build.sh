#!/usr/bin/env bash
test_description='the build: install, layering, command-line basics'
. "$(dirname "$0")/lib.sh"

command -v shellcheck >/dev/null 2>&1 && test_set_prereq SHELLCHECK

test_expect_success 'every source file includes only its own layer or lower' '
	"$REPO_ROOT/scripts/check-layers.sh"
'

test_expect_success 'the layer check catches a violation' '
	cp -r "$REPO_ROOT/scripts" "$REPO_ROOT/src" . &&
	echo "#include \"job.h\"" >>src/buf.c &&
	test_must_fail scripts/check-layers.sh >out &&
	grep -q "buf.c (layer 0) includes job.h (layer 3)" out
'

test_expect_success 'no system(), popen() or bare fork() outside the child API' '
	! grep -nE "\\b(system|popen)[[:space:]]*\\(" "$REPO_ROOT"/src/*.c &&
	test "$(grep -lE "\\bfork[[:space:]]*\\(" "$REPO_ROOT"/src/*.c)" = "$REPO_ROOT/src/child.c"
'

# a job never pays for OpenSSL's symbol resolution (src/ossl.h): libcrypto
# is loaded by Fernet alone, and then it works
test_expect_success 'sshbox does not link libcrypto; Fernet loads it when used' '
	readelf -d "$REPO_ROOT/build/sshbox" >dyn &&
	grep -q "NEEDED.*libhiredis" dyn &&
	! grep -q "NEEDED.*libcrypto" dyn &&
	SSHBOX_FERNET_KEYS=$("$REPO_ROOT/build/sshbox" fernet genkey) &&
	export SSHBOX_FERNET_KEYS &&
	echo secret | "$REPO_ROOT/build/sshbox" fernet encrypt >tok &&
	"$REPO_ROOT/build/sshbox" fernet decrypt <tok >back &&
	echo secret >expect &&
	test_cmp expect back
'

test_expect_success SHELLCHECK 'the benchmarks pass shellcheck' '
	shellcheck -x "$REPO_ROOT"/bench/*.sh "$REPO_ROOT"/bench/run
'

test_expect_success 'make install honours DESTDIR and PREFIX' '
	make -s -C "$REPO_ROOT" install DESTDIR="$TEST_DIR/root" PREFIX=/opt/sb >/dev/null &&
	test -x "$TEST_DIR/root/opt/sb/bin/sshbox" &&
	cmp "$TEST_DIR/root/opt/sb/bin/sshbox" "$REPO_ROOT/build/sshbox" &&
	man1=$TEST_DIR/root/opt/sb/share/man/man1/sshbox.1 &&
	test "$(stat -c %a "$man1")" = 644 &&
	# the man page renders without a warning, and names every command
	groff -man -Tutf8 -ww -z "$man1" 2>groff.err &&
	test ! -s groff.err &&
	for c in fernet key sandbox "ssh\\\\-config" run status supervise ssh; do
		grep -q "^\\.SS \"sshbox $c\"" "$man1" || { echo "man page lacks a section for $c"; return 1; }
	done
'

test_expect_success 'usage errors exit 2 with one line' '
	test_expect_code 2 "$SSHBOX" frobnicate 2>err &&
	test "$(wc -l <err)" = 1 &&
	grep -q "unknown command .frobnicate." err &&
	test_expect_code 2 "$SSHBOX" --bogus 2>err &&
	grep -q "unknown option" err &&
	test_expect_code 2 "$SSHBOX" run extra-arg 2>err &&
	test_expect_code 2 "$SSHBOX" 2>/dev/null &&
	"$SSHBOX" --help >help &&
	grep -q "sshbox run" help
'

test_expect_success 'a bad configuration file is refused naming the line' '
	printf "redis_url = redis://127.0.0.1:1/0\nlock_ttl_ms = soon\n" >bad.conf &&
	test_expect_code 2 "$SSHBOX" --config bad.conf status 2>err &&
	grep -q "invalid lock_ttl_ms .soon. in bad.conf line 2" err &&
	printf "no_such_key = 1\n" >bad2.conf &&
	test_expect_code 2 "$SSHBOX" --config bad2.conf status 2>err &&
	grep -q "unknown key .no_such_key. in bad2.conf line 1" err &&
	test_expect_code 2 "$SSHBOX" --config missing.conf status 2>err &&
	grep -q "missing.conf" err
'

test_done
