# tests/lib.sh — sourced by every tests/tNNNN-name.sh (bash only).
# shellcheck shell=bash
#
# Modelled on git's t/test-lib.sh.  A test script looks like:
#
#	#!/usr/bin/env bash
#	test_description='what this file covers'
#	. "$(dirname "$0")/lib.sh"
#	. "$REPO_ROOT/tests/testbed.sh"    # real daemons, when needed
#
#	test_expect_success 'setup' '
#		tb_start_all_default &&
#		echo hello >expect
#	'
#	test_expect_success 'sandbox answers' '
#		tb_authorize_key a &&
#		tb_ssh a "echo hello" >actual &&
#		test_cmp expect actual
#	'
#	test_done
#
# How a test body is run and judged
#   The body is a string eval'ed in the *current* shell (so variables and
#   exports set by one test are seen by the next), inside a function (so
#   `return 1` ends it), with stdin from /dev/null and stdout+stderr appended
#   to a per-test log $TEST_DIR/log/NNN.log.  It fails when the eval returns
#   non-zero.  There is no `set -e`; instead, as in git, every command of a
#   body is joined with `&&`, so the first failing command makes the body
#   fail:
#	  cmd1 &&
#	  cmd2 &&
#	  { cmd3 || echo "cmd3 may fail"; } &&
#	  for f in a b; do test -f "$f" || return 1; done
#   Loops end each iteration with `|| return 1`; an allowed failure goes in
#   `{ ...; }` braces.  A missing `&&` is caught by the chain lint: before the
#   real run, the body is eval'ed once as `false117 && <body>` — an intact
#   chain short-circuits without running anything and returns 117; a broken
#   one runs the part after the break and the test fails with "broken
#   &&-chain" (SSHBOX_TEST_CHAIN_LINT=0 turns this off).  A top-level `a || b`
#   reads as a broken chain too: put it in braces.
#   Do not `set -e` in test scripts, and do not start daemons in `$(...)` or
#   pipelines: the tb_* functions export variables and register cleanups in
#   the current shell.
#
# Functions
#   test_expect_success [PREREQ] 'description' 'body'
#   test_when_finished 'cmd'    (in a body) run after this body, pass or fail,
#                               last registered first; a failing cleanup
#                               fails the test
#   test_atexit 'cmd'           run when the script ends (test_done, error,
#                               signal), last registered first; the testbed
#                               registers its stop functions here
#   test_must_fail [--code=N] cmd...  cmd must exit non-zero (exactly N with
#                               --code); a death by signal (exit 129..192),
#                               126 and 127 (not executable, not found) are
#                               errors, not "failures"; 193..255 (ssh's 255)
#                               count as ordinary failures
#   test_expect_code N cmd...   cmd must exit with exactly N
#   test_wait_for 'condition' TIMEOUT_S   poll the eval'ed condition with
#                               short sleeps, at most TIMEOUT_S seconds
#                               (decimals allowed) and a bounded number of
#                               tries; 0 when it held, 1 on timeout (then
#                               shows the condition's last output)
#   test_skip 'description' 'reason'      count a test as skipped
#   test_skip_all 'reason'      (before any test) skip the whole script
#   test_set_prereq NAME / test_have_prereq NAME
#                               built in: ROOT, SSHBOX (binary exists),
#                               SANITIZE (SSHBOX_TEST_ASAN=1)
#   test_cmp EXPECT ACTUAL      diff -u; test_line_count OP N FILE
#   test_path_is_file / test_path_is_dir / test_path_is_missing PATH
#   test_debug 'cmd'            run only when verbose
#   test_done                   last line of every script
#
# Variables
#   REPO_ROOT   absolute path of the repository
#   SHARED_DIR  $REPO_ROOT/../shared (may not exist)
#   SSHBOX      absolute path of the binary under test: build/sshbox, or
#               build/asan/sshbox with SSHBOX_TEST_ASAN=1
#   TEST_NAME   e.g. t0000-testbed;  TEST_DIR  a fresh directory (mode 0755,
#               so the sandbox test user can traverse it) for this script;
#               the cwd of every body; removed when all tests pass, kept and
#               printed otherwise.  HOME is $TEST_DIR/home.
#   SSHBOX_TEST_ASAN=1  also ASAN_OPTIONS/UBSAN_OPTIONS with log_path under
#               $TEST_DIR/sanitizer; any report there fails the test during
#               which it appeared, and test_done fails the script on any.
#
# Environment knobs: SSHBOX_TEST_VERBOSE=1 (or -v: print every test's log),
# SSHBOX_TEST_IMMEDIATE=1 (or -i: stop at the first failure),
# SSHBOX_TEST_TRACE=1 (or -x: set -x in bodies), SSHBOX_TEST_CHAIN_LINT=0,
# SSHBOX_TEST_BUILD_DIR (default $REPO_ROOT/build), SSHBOX_TEST_ROOT (parent
# of TEST_DIR, default ${TMPDIR:-/tmp}: keep it short, socket paths live
# under it).

if [ -z "${BASH_VERSION-}" ]; then
	echo "tests/lib.sh: error: needs bash" >&2
	exit 1
fi

for _tl_arg in "$@"; do
	case $_tl_arg in
	-v|--verbose) SSHBOX_TEST_VERBOSE=1 ;;
	-i|--immediate) SSHBOX_TEST_IMMEDIATE=1 ;;
	-x|--trace) SSHBOX_TEST_TRACE=1 ;;
	esac
done
unset _tl_arg

# --- environment: nothing of the caller's leaks into the tests -------------
# Inherited sshbox settings (SSHBOX_REDIS_URL, SSHBOX_CONFIG, ...) would point
# tests at real state, and a parent test's TB_* at its daemons; the
# harness' own knobs are kept.
while read -r _tl_v; do
	case $_tl_v in
	SSHBOX_TEST_*|SSHBOX_ASAN_TESTS|TB_SANDBOX_EXTRA_PATH) ;;
	SSHBOX_*|TB_*) unset "$_tl_v" ;;
	esac
done < <(compgen -e)
unset _tl_v
# Never the developer's agent, keys, locale or timezone.
unset SSH_AUTH_SOCK SSH_AGENT_PID SSH_ASKPASS DISPLAY CDPATH GREP_OPTIONS
unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS
export LC_ALL=C TZ=UTC LANG=C
umask 022

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P) || exit 1
SHARED_DIR=$(cd "$REPO_ROOT/.." && pwd -P)/shared
_tl_build=${SSHBOX_TEST_BUILD_DIR:-$REPO_ROOT/build}
case $_tl_build in /*) ;; *) _tl_build=$REPO_ROOT/$_tl_build ;; esac
if [ "${SSHBOX_TEST_ASAN-}" = 1 ]; then
	SSHBOX=$_tl_build/asan/sshbox
else
	SSHBOX=$_tl_build/sshbox
fi
TEST_NAME=$(basename "$0" .sh)
export REPO_ROOT SHARED_DIR SSHBOX TEST_NAME

_tl_root=${SSHBOX_TEST_ROOT:-${TMPDIR:-/tmp}}
TEST_DIR=$(mktemp -d "$_tl_root/sshbox.${TEST_NAME%%-*}.XXXXXX") || {
	echo "tests/lib.sh: error: cannot create a test directory under '$_tl_root'" >&2
	exit 1
}
# mktemp makes it 0700; the sandbox test user must traverse it.
chmod 0755 "$TEST_DIR" || exit 1
mkdir -p "$TEST_DIR/log" "$TEST_DIR/home" || exit 1
export TEST_DIR
export HOME=$TEST_DIR/home

if [ "${SSHBOX_TEST_ASAN-}" = 1 ]; then
	# 1777: a report may come from a process running as another user.
	mkdir -p "$TEST_DIR/sanitizer" && chmod 1777 "$TEST_DIR/sanitizer" || exit 1
	export ASAN_OPTIONS="log_path=$TEST_DIR/sanitizer/asan:detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1"
	export UBSAN_OPTIONS="log_path=$TEST_DIR/sanitizer/ubsan:print_stacktrace=1:halt_on_error=1"
	export LSAN_OPTIONS="log_path=$TEST_DIR/sanitizer/lsan"
fi

test_count=0
test_pass=0
test_fail=0
test_skipped=0
_tl_done=false
_tl_cleanup=()
_tl_atexit=()
_tl_in_test=false
_tl_sanitizer_seen=0
declare -A _tl_prereq=()

cd "$TEST_DIR" || exit 1

# The script's own stdout and stderr, for messages that must not end up in
# a test's log (an exit in the middle of a body happens while it is
# redirected).
exec 6>&1 7>&2

# --- exit handling ----------------------------------------------------------
_tl_run_atexit() {
	local i
	for ((i = ${#_tl_atexit[@]} - 1; i >= 0; i--)); do
		eval "${_tl_atexit[i]}" || echo "# atexit command failed: ${_tl_atexit[i]}"
	done
	_tl_atexit=()
}

_tl_on_exit() {
	local rc=$?
	trap - EXIT
	if [ "${#_tl_atexit[@]}" -gt 0 ]; then
		mkdir -p "$TEST_DIR/log" 2>/dev/null
		_tl_run_atexit >>"$TEST_DIR/log/atexit.log" 2>&1 </dev/null
	fi
	if ! $_tl_done; then
		[ "$rc" -ne 0 ] || rc=1
		{
			echo "not ok $((test_count + 1)) - $TEST_NAME: unexpected exit with code $rc (test_done not reached)"
			$_tl_in_test && echo "# during test $test_count; its log: $TEST_DIR/log/$(printf '%03d' "$test_count").log"
			echo "# kept TEST_DIR: $TEST_DIR"
		} >&6
	fi
	exit "$rc"
}
trap _tl_on_exit EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

test_atexit() {
	local c
	for c in "${_tl_atexit[@]}"; do
		[ "$c" = "$*" ] && return 0
	done
	_tl_atexit+=("$*")
}

# --- helpers ------------------------------------------------------------------
_tl_bug() {
	echo "tests/lib.sh: bug in the test script: $*" >&2
	exit 1
}

_tl_indent() { sed -e 's/^/# /'; }

test_set_prereq() { _tl_prereq[$1]=1; }
test_have_prereq() { [ -n "${_tl_prereq[$1]-}" ]; }
[ "$(id -u)" -eq 0 ] && test_set_prereq ROOT
[ -x "$SSHBOX" ] && test_set_prereq SSHBOX
[ "${SSHBOX_TEST_ASAN-}" = 1 ] && test_set_prereq SANITIZE

_tl_false117() { return 117; }

# Runs a body in this shell, in a function so that `return` ends it.
_tl_eval() {
	if [ "${SSHBOX_TEST_TRACE-}" = 1 ]; then
		set -x
		eval "$1"
		{ local _tl_r=$?; set +x; } 2>/dev/null
		return $_tl_r
	fi
	eval "$1"
}

_tl_sanitizer_files() {
	[ -d "$TEST_DIR/sanitizer" ] || return 0
	find "$TEST_DIR/sanitizer" -type f -size +0c | sort
}

_tl_report_fail() {
	local desc=$1 body=$2 log=$3 why=${4-}
	echo "not ok $test_count - $desc"
	[ -z "$why" ] || echo "# $why"
	echo "# code:"
	printf '%s\n' "$body" | sed -e '/^[[:space:]]*$/d' -e 's/^/#	/'
	echo "# output (last 200 lines of $log):"
	tail -n 200 "$log" | _tl_indent
}

test_expect_success() {
	local prereq=
	[ $# -eq 3 ] && { prereq=$1; shift; }
	[ $# -eq 2 ] || _tl_bug "test_expect_success takes [PREREQ] 'description' 'body'"
	$_tl_in_test && _tl_bug "test_expect_success inside a test body"
	local desc=$1 body=$2 log ret why="" n
	test_count=$((test_count + 1))
	if [ -n "$prereq" ] && ! test_have_prereq "$prereq"; then
		test_skipped=$((test_skipped + 1))
		echo "ok $test_count - $desc # SKIP missing prerequisite $prereq"
		return 0
	fi
	log=$TEST_DIR/log/$(printf '%03d' "$test_count").log
	echo "=== $test_count - $desc" >"$log"
	_tl_cleanup=()
	_tl_in_test=true
	_tl_subshell=$BASH_SUBSHELL

	if [ "${SSHBOX_TEST_CHAIN_LINT-1}" != 0 ]; then
		_tl_eval "_tl_false117 && $body" </dev/null >>"$log" 2>&1
		ret=$?
		if [ "$ret" -ne 117 ]; then
			_tl_cleanup=()
			_tl_in_test=false
			test_fail=$((test_fail + 1))
			_tl_report_fail "$desc" "$body" "$log" \
				"broken &&-chain (or a top-level '||' or 'return') in the test body (lint returned $ret)"
			_tl_after_fail
			return 1
		fi
	fi

	cd "$TEST_DIR" || _tl_bug "cannot cd to TEST_DIR"
	_tl_eval "$body" </dev/null >>"$log" 2>&1
	ret=$?
	_tl_in_test=false
	if [ "$ret" -ne 0 ]; then
		why="body returned $ret"
	fi
	# Cleanups: last registered first, each whatever the others did.
	for ((n = ${#_tl_cleanup[@]} - 1; n >= 0; n--)); do
		echo "=== cleanup: ${_tl_cleanup[n]}" >>"$log"
		if ! _tl_eval "${_tl_cleanup[n]}" </dev/null >>"$log" 2>&1; then
			[ -n "$why" ] || why="cleanup failed: ${_tl_cleanup[n]}"
		fi
	done
	_tl_cleanup=()
	cd "$TEST_DIR" || _tl_bug "cannot cd to TEST_DIR"

	local -a san
	mapfile -t san < <(_tl_sanitizer_files)
	if [ "${#san[@]}" -gt "$_tl_sanitizer_seen" ]; then
		_tl_sanitizer_seen=${#san[@]}
		[ -n "$why" ] || why="a sanitizer wrote a report"
		for n in "${san[@]}"; do
			{ echo "=== sanitizer report $n"; cat "$n"; } >>"$log"
		done
	fi

	if [ -z "$why" ]; then
		test_pass=$((test_pass + 1))
		echo "ok $test_count - $desc"
		[ "${SSHBOX_TEST_VERBOSE-}" = 1 ] && _tl_indent <"$log"
		return 0
	fi
	test_fail=$((test_fail + 1))
	_tl_report_fail "$desc" "$body" "$log" "$why"
	_tl_after_fail
	return 1
}

_tl_after_fail() {
	if [ "${SSHBOX_TEST_IMMEDIATE-}" = 1 ]; then
		echo "# stopping at the first failure (immediate mode)"
		_tl_finish
	fi
}

test_when_finished() {
	$_tl_in_test || _tl_bug "test_when_finished outside a test body"
	[ "$BASH_SUBSHELL" -eq "$_tl_subshell" ] ||
		_tl_bug "test_when_finished in a subshell does nothing: '$*'"
	_tl_cleanup+=("$*")
}

test_must_fail() {
	local want=
	case ${1-} in
	--code=*) want=${1#--code=}; shift ;;
	esac
	[ $# -gt 0 ] || _tl_bug "test_must_fail needs a command"
	"$@"
	local rc=$?
	if [ -n "$want" ]; then
		if [ "$rc" -ne "$want" ]; then
			echo "test_must_fail: exit code $rc, wanted $want: $*" >&2
			return 1
		fi
		return 0
	fi
	if [ "$rc" -eq 0 ]; then
		echo "test_must_fail: command succeeded: $*" >&2
		return 1
	elif [ "$rc" -ge 129 ] && [ "$rc" -le 192 ]; then
		echo "test_must_fail: died by signal $((rc - 128)): $*" >&2
		return 1
	elif [ "$rc" -eq 126 ] || [ "$rc" -eq 127 ]; then
		echo "test_must_fail: command not found or not executable (exit $rc): $*" >&2
		return 1
	fi
	return 0
}

test_expect_code() {
	[ $# -gt 1 ] || _tl_bug "test_expect_code N cmd..."
	local want=$1
	shift
	"$@"
	local rc=$?
	if [ "$rc" -ne "$want" ]; then
		echo "test_expect_code: exit code $rc, wanted $want: $*" >&2
		return 1
	fi
	return 0
}

# Milliseconds of "N" or "N.M" seconds.
_tl_ms() {
	local s=$1 int frac
	case $s in
	*.*) int=${s%%.*} frac=${s#*.} ;;
	*) int=$s frac= ;;
	esac
	frac=${frac}000
	frac=${frac:0:3}
	[[ ${int:-0} =~ ^[0-9]+$ && $frac =~ ^[0-9]+$ ]] || return 1
	echo $((10#${int:-0} * 1000 + 10#$frac))
}

_tl_now_ms() {
	local t=${EPOCHREALTIME/[.,]/}
	echo $((t / 1000))
}

# pids_under DIR PGREP-ARG...: the pids pgrep finds whose working directory
# or an open file lies under DIR.  Test scripts run side by side (tests/run)
# as the same sandbox user: a pattern alone may find another test's
# processes, their directories never.
pids_under() {
	local dir=$1 pid f
	shift
	for pid in $(pgrep "$@"); do
		for f in "/proc/$pid/cwd" "/proc/$pid"/fd/*; do
			case $(readlink "$f" 2>/dev/null) in
			"$dir"/*|"$dir") echo "$pid"; break ;;
			esac
		done
	done
}

test_wait_for() {
	[ $# -eq 2 ] || _tl_bug "test_wait_for 'condition' TIMEOUT_S"
	local cond=$1 limit_ms start now tries=0 max_tries delay_ms=20 out
	limit_ms=$(_tl_ms "$2") || _tl_bug "test_wait_for: bad timeout '$2'"
	# Bounded in tries as well as in time: a condition that takes no time
	# still cannot loop forever if the clock misbehaves.
	max_tries=$((limit_ms / 20 + 2))
	start=$(_tl_now_ms)
	while :; do
		if out=$(_tl_eval "$cond" 2>&1 </dev/null); then
			return 0
		fi
		tries=$((tries + 1))
		now=$(_tl_now_ms)
		if [ $((now - start)) -ge "$limit_ms" ] || [ "$tries" -ge "$max_tries" ]; then
			break
		fi
		sleep "0.$(printf '%03d' "$delay_ms")"
		[ "$delay_ms" -lt 200 ] && delay_ms=$((delay_ms * 2))
		[ "$delay_ms" -gt 200 ] && delay_ms=200
	done
	echo "test_wait_for: timed out after ${2}s ($tries tries): $cond" >&2
	[ -z "$out" ] || printf '%s\n' "$out" | sed -e 's/^/test_wait_for: | /' >&2
	return 1
}

test_skip() {
	[ $# -ge 1 ] || _tl_bug "test_skip 'description' ['reason']"
	test_count=$((test_count + 1))
	test_skipped=$((test_skipped + 1))
	echo "ok $test_count - $1 # SKIP ${2-}"
}

test_skip_all() {
	[ "$test_count" -eq 0 ] || _tl_bug "test_skip_all after tests ran"
	echo "1..0 # SKIP ${1-}"
	_tl_done=true
	_tl_run_atexit >>"$TEST_DIR/log/atexit.log" 2>&1 </dev/null
	_tl_rm_test_dir
	exit 0
}

test_debug() {
	[ "${SSHBOX_TEST_VERBOSE-}" = 1 ] && _tl_eval "$1"
	return 0
}

test_cmp() {
	[ $# -eq 2 ] || _tl_bug "test_cmp EXPECT ACTUAL"
	diff -u -- "$1" "$2"
}

test_line_count() {
	[ $# -eq 3 ] || _tl_bug "test_line_count OP N FILE"
	local n
	n=$(wc -l <"$3") || return 1
	if ! test "$n" "$1" "$2"; then
		echo "test_line_count: $3 has $n lines, expected $1 $2:" >&2
		cat "$3" >&2
		return 1
	fi
}

test_path_is_file() { [ -f "$1" ] || { echo "not a file: $1" >&2; return 1; }; }
test_path_is_dir() { [ -d "$1" ] || { echo "not a directory: $1" >&2; return 1; }; }
test_path_is_missing() { [ ! -e "$1" ] || { echo "exists: $1" >&2; ls -ld "$1" >&2; return 1; }; }

_tl_rm_test_dir() {
	cd / || return 1
	case $TEST_DIR in
	"$_tl_root"/sshbox.*) rm -rf -- "$TEST_DIR" ;;
	esac
}

_tl_finish() {
	local f san=()
	_tl_done=true
	# Daemons stop first: a sanitized process writes its leak report when
	# it exits.
	_tl_run_atexit >>"$TEST_DIR/log/atexit.log" 2>&1 </dev/null
	mapfile -t san < <(_tl_sanitizer_files)
	if [ "${#san[@]}" -gt 0 ]; then
		echo "not ok $((test_count + 1)) - no sanitizer reports"
		for f in "${san[@]}"; do
			echo "# $f:"
			_tl_indent <"$f"
		done
		test_count=$((test_count + 1))
		test_fail=$((test_fail + 1))
	fi
	echo "1..$test_count"
	if [ "$test_skipped" -gt 0 ]; then
		echo "# $test_pass passed, $test_fail failed, $test_skipped skipped"
	else
		echo "# $test_pass passed, $test_fail failed"
	fi
	if [ "$test_fail" -gt 0 ]; then
		echo "# kept TEST_DIR: $TEST_DIR"
		exit 1
	fi
	_tl_rm_test_dir
	exit 0
}

test_done() {
	$_tl_in_test && _tl_bug "test_done inside a test body"
	_tl_finish
}
