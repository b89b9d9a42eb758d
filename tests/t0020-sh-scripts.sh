#!/usr/bin/env bash
test_description='the shell scripts of src/sh/: linted, parsed, embedded as they are'
. "$(dirname "$0")/lib.sh"

command -v shellcheck >/dev/null 2>&1 && test_set_prereq SHELLCHECK

test_expect_success 'there are scripts to check' '
	ls "$REPO_ROOT"/src/sh/*.sh >list &&
	grep -q "/job\\.sh\$" list &&
	grep -q "/check\\.sh\$" list
'

# each names its shell in a directive; the sh ones are POSIX (check.sh
# runs under the sandbox's /bin/sh), the rest bash
test_expect_success SHELLCHECK 'every script and the embedder pass shellcheck' '
	shellcheck "$REPO_ROOT"/src/sh/*.sh "$REPO_ROOT"/scripts/embed-sh.sh
'

test_expect_success 'every script parses (bash -n, and sh -n for the POSIX ones)' '
	for f in "$REPO_ROOT"/src/sh/*.sh; do
		head -n 1 "$f" | grep -Eq "^# shellcheck shell=(sh|bash)\$" ||
			{ echo "$f: first line is not # shellcheck shell=sh|bash"; return 1; }
		bash -n "$f" || return 1
		if head -n 1 "$f" | grep -q "shell=sh\$"; then
			/bin/sh -n "$f" || return 1
		fi
	done
'

# The generator: parts become constants; comment and blank lines are left
# out; backslashes, quotes, ? and tabs survive byte for byte.
test_expect_success 'embed-sh.sh turns parts into C strings, byte for byte' '
	cat >demo.sh <<-\INPUT &&
	# shellcheck shell=bash
	not_embedded=1
	#@part one
	# a comment
	printf "%s\\n" "a\\b" '"'"'??='"'"'

	  echo "$x"	# tab before this
	#@part two
	  # an indented comment
	echo two
	INPUT
	"$REPO_ROOT/scripts/embed-sh.sh" demo.sh demo.h &&
	cat >demo.c <<-\PROG &&
	#include <stdio.h>
	#include "demo.h"
	int main(void) { fputs(sh_demo_one, stdout); fputs("--\n", stdout); fputs(sh_demo_two, stdout); return 0; }
	PROG
	gcc -std=c11 -Wall -Werror -I. -o demo demo.c &&
	./demo >actual &&
	{
		printf "%s\\n" "printf \"%s\\\\n\" \"a\\\\b\" '"'"'??='"'"'" &&
		printf "  echo \"\$x\"\\t# tab before this\\n" &&
		echo "--" &&
		echo "echo two"
	} >expect &&
	test_cmp expect actual
'

test_expect_success 'embed-sh.sh refuses a malformed marker and leaves no header' '
	printf "#@part\necho x\n" >bad.sh &&
	test_must_fail "$REPO_ROOT/scripts/embed-sh.sh" bad.sh bad.h 2>err &&
	grep -q "bad.sh:1: expected #@part NAME" err &&
	test ! -e bad.h && test ! -e bad.h.tmp &&
	printf "echo no parts\n" >none.sh &&
	test_must_fail "$REPO_ROOT/scripts/embed-sh.sh" none.sh none.h 2>err &&
	grep -q "no #@part section" err &&
	test ! -e none.h
'

# make -n -W FILE: what would be rebuilt were FILE newer, without touching
# anything; needs the dependency files of a finished build.  Compared with
# the plan without -W, so that a tree not quite up to date still tells.
test_expect_success 'an edited script is embedded again and only its users rebuilt' '
	test -f "$REPO_ROOT/build/obj/remote.d" &&
	make -C "$REPO_ROOT" -n build/sshbox >base &&
	make -C "$REPO_ROOT" -n -W src/sh/job.sh build/sshbox >plan &&
	grep -q "embed-sh.sh src/sh/job.sh build/gen/sh_job.h" plan &&
	grep -q "build/obj/remote.o src/remote.c" plan &&
	if grep -q "src/cmd_sandbox.c" plan; then grep -q "src/cmd_sandbox.c" base; fi &&
	make -C "$REPO_ROOT" -n -W src/sh/check.sh build/sshbox >plan &&
	grep -q "build/obj/cmd_sandbox.o src/cmd_sandbox.c" plan
'

test_done
