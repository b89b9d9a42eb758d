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
#	bench/repo.sh [-r ROUNDS] [-c COMMITS] [-b BYTES_PER_COMMIT] [-l RTT_MS:MBIT]
#
# Each round removes the sandbox's cache and runs: a first job (clone), a
# job after one new commit landed on the server (fetch), a job with nothing
# new (fetch), a job at an exact commit (reuse).  Medians over the rounds.
# Twice: straight over loopback, and through tests/linkproxy.py modelling a
# network link (default 20 ms round trip, 100 Mbit/s; -l 0 skips it) —
# loopback makes the clone unrealistically cheap, while the fetch keeps
# git's fixed costs (process start, TLS set-up, the server's CGI).
# Uses the test harness (tests/lib.sh) for its test bed; prints tables.

# The harness is sourced at run time; test bodies are single-quoted on purpose
# (tests/lib.sh evals them), and the variables they use are set out here.
# shellcheck disable=SC1091,SC2016,SC2034

rounds=3 commits=5000 bytes=10000 link=20:100
while getopts r:c:b:l: o; do
	case $o in
	r) rounds=$OPTARG ;;
	c) commits=$OPTARG ;;
	b) bytes=$OPTARG ;;
	l) link=$OPTARG ;;
	*) echo "usage: bench/repo.sh [-r ROUNDS] [-c COMMITS] [-b BYTES_PER_COMMIT] [-l RTT_MS:MBIT|0]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
case $link in 0|[0-9]*:[0-9]*) ;; *) echo "bench/repo.sh: -l wants RTT_MS:MBIT or 0, not '$link'" >&2; exit 2 ;; esac

. "$(dirname "$0")/../tests/lib.sh"
. "$REPO_ROOT/tests/testbed.sh"
. "$REPO_ROOT/tests/sshbox-env.sh"
. "$REPO_ROOT/tests/gitrepos.sh"
. "$REPO_ROOT/bench/lib.sh"

NOOP=$REPO_ROOT/tests/data/stub-claude-noop

bench_spec() {	# JOB_ID REF
	printf '{"account":"%s","job_id":"%s","prompt":"bench","timeout_s":600,' "$SB_ACCOUNT" "$1"
	printf '"env":{"GIT_SSL_CAINFO":"%s"},' "$GS_CA"
	printf '"repo":{"url":"%s/big.git","token":"%s","ref":"%s"}}\n' "$BENCH_URL" "$GS_TOKEN" "$2"
}

# bench_job JOB_ID REF WANT_ACTION LABEL: one job; appends "<repo ms>
# <wall ms>" to times.LABEL.
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
	sb_env_init &&
	sb_account_key &&
	bench_sandbox a 127.0.0.2 "$NOOP" &&
	gs_start &&
	gs_make_repo big "$commits" "$bytes" &&
	git -C "$GS_ROOT/big.git" count-objects -vH >size &&
	sed -n "s/^size-pack: //p" size >size.pack
'

# rounds LINK: the rounds against $BENCH_URL; times.LINK-{first,new,same,sha}
rounds() {
	local r tree c
	for r in $(seq "$rounds"); do
		rm -rf "$TB_A_WORKDIR/repos" &&
		bench_job "$1-$r-first" main clone "$1-first" &&
		tree=$(git -C "$GS_ROOT/big.git" rev-parse "main^{tree}") &&
		c=$(_gs_ident git -C "$GS_ROOT/big.git" commit-tree "$tree" -p main -m "round $1 $r") &&
		git -C "$GS_ROOT/big.git" update-ref refs/heads/main "$c" &&
		bench_job "$1-$r-new" main fetch "$1-new" &&
		bench_job "$1-$r-same" main fetch "$1-same" &&
		bench_job "$1-$r-sha" "$c" reuse "$1-sha" || return 1
	done
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
col() { awk -v c="$2" '{ print $c }' "times.$1" | median; }

# report LINK TITLE WHAT GOAL: the table for one link, and its row of
# bench/run's summary (WHAT, GOAL): the second job's repo ms against the first's
report() {
	local l first m w what second
	for l in first new same sha; do test -s "times.$1-$l" || return 1; done
	first=$(col "$1-first" 1)
	{
		echo "$2"
		printf "  %-44s %8s %10s %8s\n" "job" "repo ms" "run ms" "ratio"
		for l in first new same sha; do
			case $l in
			first) what="first job on the sandbox (clone)" ;;
			new) what="next job, one new commit (fetch)" ;;
			same) what="next job, nothing new (fetch)" ;;
			sha) what="next job at a cached commit id (reuse)" ;;
			esac
			m=$(col "$1-$l" 1) w=$(col "$1-$l" 2)
			printf "  %-44s %8d %10d %8s\n" "$what" "$m" "$w" \
				"$(awk -v a="$m" -v b="$first" 'BEGIN { printf "%.3f", a / b }')"
		done
		awk -v a="$(col "$1-new" 1)" -v b="$first" 'BEGIN { r = a / b; printf "  second job / first: %.3f (goal <= 0.1: %s)\n", r, r <= 0.1 ? "met" : "NOT met" }'
	} >&6 &&
	second=$(col "$1-new" 1) &&
	bench_summary repo "$3" "$second" ms "$first" \
		"$(awk -v a="$second" -v b="$first" 'BEGIN { printf "%.3f", a / b }')" "$4"
}

test_expect_success "loopback: $rounds rounds of first job, one new commit, nothing new, an exact commit" '
	BENCH_URL=$GS_URL &&
	rounds lo &&
	report lo "repository step over loopback: $commits commits, $(cat size.pack) packed, smart HTTPS + token, median of $rounds" \
		"2nd job vs 1st (loopback)" -
'

test_expect_success "a modelled link ($link: RTT ms : Mbit/s): the same rounds" '
	if test "$link" != 0; then
		rm -f proxy.port &&
		{ /usr/bin/python3 "$REPO_ROOT/tests/linkproxy.py" --listen 127.0.0.1:0 --target "127.0.0.1:$GS_PORT" \
			--rtt-ms "${link%%:*}" --rate-mbit "${link#*:}" --port-file proxy.port --watch-pid $$ \
			>proxy.out 2>&1 & } &&
		test_atexit "kill $! 2>/dev/null" &&
		test_wait_for "test -s proxy.port" 10 &&
		BENCH_URL=https://127.0.0.1:$(cat proxy.port) &&
		rounds link &&
		report link "the same through tests/linkproxy.py: ${link%%:*} ms round trip, ${link#*:} Mbit/s each way" \
			"2nd job vs 1st (${link%%:*} ms RTT, ${link#*:} Mbit)" "<= 0.1"
	fi
'

test_done
