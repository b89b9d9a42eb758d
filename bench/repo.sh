#!/usr/bin/env bash
# bench/repo.sh — the repository step of a job on a ~5,000-commit, ~50 MB
# repository served over smart HTTPS with a token (tests/gitserver.py):
# the first job on a sandbox (clone of the cache + checkout) against the
# jobs after it (fetch of what is new + checkout, or an exact commit already
# cached: reuse).  Times are the `duration_ms` of the `sshbox.repo` event,
# measured on the sandbox around the whole step (cache + checkout); the
# whole `sshbox run` wall time is shown beside it.  Claude Code is a stub
# that answers at once (tests/data/stub-claude-noop).
#
#	bench/repo.sh [-r ROUNDS] [-c COMMITS] [-b BYTES_PER_COMMIT]
#
# Each round removes the sandbox's cache and runs: a first job (clone), a
# job after one new commit landed on the server (fetch), a job with nothing
# new (fetch), a job at an exact commit (reuse).  Medians over the rounds.
# Uses the test harness (tests/lib.sh) for its test bed; prints one table.

rounds=3 commits=5000 bytes=10000
while getopts r:c:b: o; do
	case $o in
	r) rounds=$OPTARG ;;
	c) commits=$OPTARG ;;
	b) bytes=$OPTARG ;;
	*) echo "usage: bench/repo.sh [-r ROUNDS] [-c COMMITS] [-b BYTES_PER_COMMIT]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))

. "$(dirname "$0")/../tests/lib.sh"
. "$REPO_ROOT/tests/testbed.sh"
. "$REPO_ROOT/tests/sshbox-env.sh"
. "$REPO_ROOT/tests/gitrepos.sh"

NOOP=$REPO_ROOT/tests/data/stub-claude-noop

bench_spec() {	# JOB_ID REF
	printf '{"account":"%s","job_id":"%s","prompt":"bench","timeout_s":600,' "$SB_ACCOUNT" "$1"
	printf '"env":{"GIT_SSL_CAINFO":"%s"},' "$GS_CA"
	printf '"repo":{"url":"%s/big.git","token":"%s","ref":"%s"}}\n' "$GS_URL" "$GS_TOKEN" "$2"
}

# bench_job JOB_ID REF WANT_ACTION: one job; appends "<repo ms> <wall ms>"
# to times.<WANT_ACTION-label> (label = $4).
bench_job() {
	local id=$1 ref=$2 want=$3 label=$4 s e ms
	bench_spec "$id" "$ref" >"$id.json" &&
	s=${EPOCHREALTIME/[.,]/} &&
	"$SSHBOX" run <"$id.json" >"$id.ndjson" 2>"$id.err" &&
	e=${EPOCHREALTIME/[.,]/} &&
	grep -q "\"type\":\"sshbox.repo\".*\"action\":\"$want\"" "$id.ndjson" &&
	ms=$(sed -n 's/.*"type":"sshbox.repo".*"duration_ms":\([0-9]*\).*/\1/p' "$id.ndjson") &&
	test -n "$ms" &&
	echo "$ms $(((e - s) / 1000))" >>"times.$label"
}

test_expect_success 'test bed: Redis, a sandbox, the git server and the repository' '
	tb_ensure_user &&
	tb_start_redis &&
	tb_start_sandbox a 127.0.0.2 &&
	sb_env_init &&
	sb_account_key &&
	tb_authorize_key a "$TEST_DIR/key-$SB_ACCOUNT.pub" &&
	"$SSHBOX" sandbox add --account "$SB_ACCOUNT" --host "$TB_A_HOST" --port "$TB_A_PORT" \
		--user "$TB_A_USER" --workdir "$TB_A_WORKDIR" --slots 1 --claude "$NOOP" \
		--host-key "$TB_A_HOSTKEY" >/dev/null &&
	gs_start &&
	gs_make_repo big "$commits" "$bytes" &&
	git -C "$GS_ROOT/big.git" count-objects -vH >size &&
	sed -n "s/^size-pack: //p" size >size.pack
'

test_expect_success "$rounds rounds: first job, then one new commit, nothing new, an exact commit" '
	for r in $(seq "$rounds"); do
		rm -rf "$TB_A_WORKDIR/repos" &&
		bench_job r$r-first main clone first &&
		tree=$(git -C "$GS_ROOT/big.git" rev-parse "main^{tree}") &&
		c=$(_gs_ident git -C "$GS_ROOT/big.git" commit-tree "$tree" -p main -m "round $r") &&
		git -C "$GS_ROOT/big.git" update-ref refs/heads/main "$c" &&
		bench_job r$r-new main fetch new &&
		bench_job r$r-same main fetch same &&
		bench_job r$r-sha "$c" reuse sha || return 1
	done
'

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
col() { awk -v c="$2" '{ print $c }' "times.$1" | median; }

test_expect_success 'report' '
	for l in first new same sha; do test -s times.$l || return 1; done &&
	first=$(col first 1) &&
	{
		echo "repository step: $commits commits, $(cat size.pack) packed, smart HTTPS + token, $rounds rounds (median)"
		printf "  %-44s %8s %10s %8s\n" "job" "repo ms" "run ms" "ratio"
		for l in first new same sha; do
			case $l in
			first) what="first job on the sandbox (clone)" ;;
			new) what="next job, one new commit (fetch)" ;;
			same) what="next job, nothing new (fetch)" ;;
			sha) what="next job at a cached commit id (reuse)" ;;
			esac
			m=$(col $l 1) w=$(col $l 2)
			printf "  %-44s %8d %10d %8s\n" "$what" "$m" "$w" \
				"$(awk -v a="$m" -v b="$first" "BEGIN { printf \"%.3f\", a / b }")"
		done
		new=$(col new 1)
		awk -v a="$new" -v b="$first" "BEGIN { r = a / b; printf \"  goal: second job <= 0.1x the first: %.3f %s\n\", r, r <= 0.1 ? \"(met)\" : \"(NOT met)\" }"
	} >&6
'

test_done
