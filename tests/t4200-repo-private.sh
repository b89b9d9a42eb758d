#!/usr/bin/env bash
test_description='private repositories: smart HTTPS with a token, submodules, LFS, a push from the job, fast clear failures'
. "$(dirname "$0")/lib.sh"
. "$REPO_ROOT/tests/testbed.sh"
. "$REPO_ROOT/tests/sshbox-env.sh"
. "$REPO_ROOT/tests/gitrepos.sh"

# The real Claude Code CLI runs tests/data/scenario-push.json: one Bash call
# that prints what the checkout holds (LFS content, submodule commit,
# origin, branch), then changes the LFS file, commits and pushes
# claude/$SSHBOX_JOB with plain `git push` (the checkout's GH_TOKEN helper
# and git-lfs's pre-push hook do the rest).
LFS_CONTENT=real-lfs-bytes-$$
WRONG=ghs_0000000000000000000000000000000000wrong

now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }

# gspec JOB_ID [REF] [TOKEN] [URL]: a job on the served repository with
# submodules and LFS on.
gspec() {
	sb_spec "Push a branch" ",\"job_id\":\"$1\",\"repo\":{\"url\":\"${4:-$GS_URL/app.git}\",\"token\":\"${3:-$GS_TOKEN}\",\"ref\":\"${2:-main}\",\"submodules\":true,\"lfs\":true}"
}

# Every process's argv on this machine (both hosts are this machine),
# every 10 ms, until argv.stop appears (at most 300 s): hits go to argv.hits.
# The account's private key, as patterns: its base64 body lines.
# The key's base64 lines but the first: that one is the same in every
# unencrypted ed25519 key (magic, "none", "none", "ssh-e"), so another
# test's process may carry it; the rest is this key's own.
privkey_lines() { grep -v -- "-----" "$TEST_DIR/key-$SB_ACCOUNT" | sed 1d | awk 'length($0) >= 40'; }

argv_watch_start() {
	rm -f argv.stop argv.hits argv.scans &&
	{ printf '%s\n' "$GS_TOKEN" "$WRONG" "$SB_API_KEY" && privkey_lines; } >secrets.pat &&
	{ /usr/bin/python3 - secrets.pat <<'PY' &
import os, sys, time
pats = [p.encode() for p in open(sys.argv[1]).read().split()]
hits, scans, end = open("argv.hits", "w"), 0, time.monotonic() + 300
while not os.path.exists("argv.stop") and time.monotonic() < end:
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read()
        except OSError:
            continue
        if any(p in argv for p in pats):
            hits.write("%s: %r\n" % (pid, argv.replace(b"\0", b" ")))
            hits.flush()
    scans += 1
    time.sleep(0.01)
open("argv.scans", "w").write("%d\n" % scans)
PY
	} &&
	ARGV_WATCH=$! &&
	test_wait_for "test -e argv.hits" 10
}
argv_watch_stop() {
	: >argv.stop && wait "$ARGV_WATCH" &&
	test "$(cat argv.scans)" -gt 0 &&
	{ test ! -s argv.hits || { cat argv.hits >&2; false; }; }
}

# git on the sandbox's cache (owned by the sandbox user)
cgit() { git -c safe.directory='*' -C "$(cat cache.path)" "$@"; }

test_expect_success 'set up: a sandbox, the CLI, the API and a git server with a private repository' '
	sb_claude_install &&
	tb_start_all_default &&
	sb_env_init &&
	sb_start_fakeapi "$REPO_ROOT/tests/data/scenario-push.json" &&
	sb_account_key &&
	sb_register a acme 2 &&
	gs_start &&
	gs_make_repo app &&
	gs_add_submodule app lib &&
	gs_add_lfs_file app assets/model.bin "$LFS_CONTENT" &&
	test "$(git -C "$GS_ROOT/app.git" rev-list --count main)" -gt 300 &&
	git -C "$GS_ROOT/app.git" rev-parse --verify -q feature &&
	git -C "$GS_ROOT/app.git" rev-parse --verify -q "v1.0^{tag}" &&
	export SB_SPEC_ENV=",\"GIT_SSL_CAINFO\":\"$GS_CA\""
'

test_expect_success 'the first job clones with the token: submodule, LFS content, origin; it pushes a branch' '
	argv_watch_start &&
	gspec p1 >p1.json &&
	"$SSHBOX" run <p1.json >e1.ndjson 2>err1 &&
	test "$(sb_result_field e1.ndjson status)" = succeeded &&
	grep -q "\"type\":\"sshbox.repo\".*\"action\":\"clone\"" e1.ndjson &&
	grep "\"type\":\"user\"" e1.ndjson >u1 &&
	grep -qF "LFS=$LFS_CONTENT" u1 &&
	grep -q "SUB=$(git -C "$GS_ROOT/lib.git" rev-parse main)" u1 &&
	grep -qF "ORIGIN=$GS_URL/app.git\\n" u1 &&
	grep -q "BRANCH=main" u1 &&
	pushed=$(sed -n "s/.*PUSHED=\([0-9a-f]\{40\}\).*/\1/p" u1) &&
	test "$(git -C "$GS_ROOT/app.git" rev-parse claude/p1)" = "$pushed" &&
	git -C "$GS_ROOT/app.git" show claude/p1:pushed.txt >pushed &&
	echo from-the-job >expect &&
	test_cmp expect pushed &&
	git -C "$GS_ROOT/app.git" show claude/p1:assets/model.bin >pointer &&
	grep -q "^version https://git-lfs.github.com/spec/v1" pointer &&
	oid=$(sed -n "s/^oid sha256://p" pointer) &&
	printf %s new-lfs-bytes-p1 >expect &&
	test_cmp expect "$GS_ROOT/lfs-objects/$oid" &&
	cache=$(ls -d "$TB_A_WORKDIR"/repos/acme/*-app.git) &&
	echo "$cache" >cache.path &&
	cgit count-objects -v >before
'

objects() { awk '$1 == "count:" || $1 == "in-pack:" { n += $2 } END { print n }' "$1"; }

test_expect_success 'the second job only fetches what is new' '
	gspec p2 >p2.json &&
	"$SSHBOX" run <p2.json >e2.ndjson 2>err2 &&
	test "$(sb_result_field e2.ndjson status)" = succeeded &&
	grep -q "\"type\":\"sshbox.repo\".*\"action\":\"fetch\"" e2.ndjson &&
	cgit rev-parse --verify -q refs/heads/claude/p1 &&
	cgit count-objects -v >after &&
	b=$(objects before) a=$(objects after) &&
	echo "cache objects: $b after the clone, $a after the fetch" &&
	test "$a" -gt "$b" &&
	test $((a - b)) -lt 30 &&
	test -z "$(ls -A "$TB_A_WORKDIR/jobs")"
'

test_expect_success 'the cache keeps branches and tags only; a commit only a pull request holds is fetched by id' '
	tree=$(git -C "$GS_ROOT/app.git" rev-parse "main^{tree}") &&
	pr=$(_gs_ident git -C "$GS_ROOT/app.git" commit-tree "$tree" -p main -m "a pull request") &&
	git -C "$GS_ROOT/app.git" update-ref refs/pull/1/head "$pr" &&
	gspec pr1 main >pr1.json &&
	"$SSHBOX" run <pr1.json >epr1.ndjson 2>errpr1 &&
	test "$(sb_result_field epr1.ndjson status)" = succeeded &&
	test -z "$(cgit for-each-ref refs/pull)" &&
	cgit rev-parse --verify -q "refs/tags/v1.0^{tag}" &&
	cgit rev-parse --verify -q refs/heads/feature &&
	! cgit cat-file -e "$pr^{commit}" &&
	gspec pr2 "$pr" >pr2.json &&
	"$SSHBOX" run <pr2.json >epr2.ndjson 2>errpr2 &&
	test "$(sb_result_field epr2.ndjson status)" = succeeded &&
	grep -q "\"type\":\"sshbox.repo\".*\"action\":\"fetch\"" epr2.ndjson &&
	grep "\"type\":\"user\"" epr2.ndjson | grep -q "BRANCH=HEAD" &&
	git -C "$GS_ROOT/app.git" rev-parse --verify -q claude/pr2 >pushed &&
	test "$(git -C "$GS_ROOT/app.git" rev-parse claude/pr2~1)" = "$pr"
'

test_expect_success 'two concurrent jobs on one sandbox: separate checkouts, both push' '
	gspec c1 >c1.json &&
	gspec c2 >c2.json &&
	{ "$SSHBOX" run <c1.json >ec1.ndjson 2>errc1 & } && j1=$! &&
	{ "$SSHBOX" run <c2.json >ec2.ndjson 2>errc2 & } && j2=$! &&
	wait $j1 && wait $j2 &&
	test "$(sb_result_field ec1.ndjson status)" = succeeded &&
	test "$(sb_result_field ec2.ndjson status)" = succeeded &&
	grep "\"type\":\"sshbox.started\"" ec1.ndjson | grep -q "jobs/c1\"" &&
	grep "\"type\":\"sshbox.started\"" ec2.ndjson | grep -q "jobs/c2\"" &&
	grep -qF "LFS=$LFS_CONTENT" ec1.ndjson &&
	grep -qF "LFS=$LFS_CONTENT" ec2.ndjson &&
	git -C "$GS_ROOT/app.git" rev-parse --verify -q claude/c1 &&
	git -C "$GS_ROOT/app.git" rev-parse --verify -q claude/c2 &&
	test -z "$(ls -A "$TB_A_WORKDIR/jobs")"
'

# Both jobs queue on the cache's lock (held here) after a commit landed:
# the first to get it fetches, the other finds that fetch began after it
# asked and uses it (reuse) — both check out the new commit.
test_expect_success 'jobs queued on the cache lock share one fetch' '
	tree=$(git -C "$GS_ROOT/app.git" rev-parse "main^{tree}") &&
	new=$(_gs_ident git -C "$GS_ROOT/app.git" commit-tree "$tree" -p main -m "lands while jobs wait") &&
	git -C "$GS_ROOT/app.git" update-ref refs/heads/main "$new" &&
	rm -f release &&
	{ ( flock 9 && : >held && for i in $(seq 600); do test -e release && break; sleep 0.05; done ) 9>"$(cat cache.path).lock" & } &&
	holder=$! &&
	test_wait_for "test -e held" 10 &&
	gspec q1 >q1.json &&
	gspec q2 >q2.json &&
	{ "$SSHBOX" run <q1.json >eq1.ndjson 2>errq1 & } && j1=$! &&
	{ "$SSHBOX" run <q2.json >eq2.ndjson 2>errq2 & } && j2=$! &&
	test_wait_for "test \"\$(pids_under \"$TB_A_WORKDIR\" -u \"$TB_A_USER\" -f \"^flock -w 600 7\" | wc -l)\" = 2" 30 &&
	: >release && wait $holder &&
	wait $j1 && wait $j2 &&
	grep -h "\"type\":\"sshbox.repo\"" eq1.ndjson eq2.ndjson | grep -o "\"action\":\"[a-z]*\"" | sort >actions &&
	printf "%s\n" "\"action\":\"fetch\"" "\"action\":\"reuse\"" >expect &&
	test_cmp expect actions &&
	test "$(git -C "$GS_ROOT/app.git" rev-parse claude/q1~1)" = "$new" &&
	test "$(git -C "$GS_ROOT/app.git" rev-parse claude/q2~1)" = "$new"
'

test_expect_success 'a wrong token fails in seconds with one sentence (warm and cold cache)' '
	gspec w1 main "$WRONG" >w1.json &&
	s=$(now_ms) &&
	test_expect_code 1 "$SSHBOX" run <w1.json >ew1.ndjson 2>errw1 &&
	e=$(now_ms) &&
	echo "wrong token, warm cache: $((e - s)) ms" &&
	test $((e - s)) -lt 15000 &&
	test "$(sb_result_field ew1.ndjson status)" = error &&
	echo "authentication to '"'"'$GS_URL/app.git'"'"' failed: check repo.token (an installation token with access to it)" >expect &&
	sb_result_field ew1.ndjson error >actual &&
	test_cmp expect actual &&
	grep -qF "$(cat expect)" errw1 &&
	gs_make_repo other 20 &&
	gspec w2 main "$WRONG" "$GS_URL/other.git" >w2.json &&
	s=$(now_ms) &&
	test_expect_code 1 "$SSHBOX" run <w2.json >ew2.ndjson 2>errw2 &&
	e=$(now_ms) &&
	echo "wrong token, cold cache: $((e - s)) ms" &&
	test $((e - s)) -lt 15000 &&
	sb_result_field ew2.ndjson error >actual &&
	grep -q "^authentication to .$GS_URL/other.git. failed" actual &&
	test -z "$(ls -d "$TB_A_WORKDIR"/repos/acme/*-other.git* | grep -v "\.lock\$")"
'

test_expect_success 'an unknown branch or commit fails in seconds, naming the ref' '
	gspec u1 no-such-branch >u1.json &&
	test_expect_code 1 "$SSHBOX" run <u1.json >eu1.ndjson 2>erru1 &&
	echo "unknown ref '"'"'no-such-branch'"'"' in repository '"'"'$GS_URL/app.git'"'"'" >expect &&
	sb_result_field eu1.ndjson error >actual &&
	test_cmp expect actual &&
	sha=0123456789abcdef0123456789abcdef01234567 &&
	gspec u2 $sha >u2.json &&
	test_expect_code 1 "$SSHBOX" run <u2.json >eu2.ndjson 2>erru2 &&
	sb_result_field eu2.ndjson error >actual &&
	grep -q "^unknown ref .$sha. in repository" actual
'

test_expect_success 'an unreachable remote, a missing repository and an untrusted certificate: one sentence each' '
	port=$(tb_free_port) &&
	gspec x1 main "$GS_TOKEN" "https://127.0.0.1:$port/app.git" >x1.json &&
	test_expect_code 75 "$SSHBOX" run <x1.json >ex1.ndjson 2>errx1 &&
	echo "cannot reach '"'"'https://127.0.0.1:$port/app.git'"'"' from the sandbox" >expect &&
	sb_result_field ex1.ndjson error >actual &&
	test_cmp expect actual &&
	gspec x2 main "$GS_TOKEN" "$GS_URL/nope.git" >x2.json &&
	test_expect_code 1 "$SSHBOX" run <x2.json >ex2.ndjson 2>errx2 &&
	echo "repository '"'"'$GS_URL/nope.git'"'"' was not found (or repo.token cannot see it)" >expect &&
	sb_result_field ex2.ndjson error >actual &&
	test_cmp expect actual &&
	SB_SPEC_ENV= gspec x3 main "$GS_TOKEN" "$GS_URL/other.git" >x3.json &&
	test_expect_code 1 "$SSHBOX" run <x3.json >ex3.ndjson 2>errx3 &&
	sb_result_field ex3.ndjson error >actual &&
	grep -q "^the TLS certificate of .$GS_URL/other.git. was not accepted" actual &&
	test -z "$(ls -A "$TB_A_WORKDIR/jobs")" &&
	test -z "$(ls -d "$TB_A_WORKDIR"/repos/acme/*.tmp 2>/dev/null)"
'

test_expect_success 'the token, the API key and the private key: in no argv, no file on either side, no event, no log line' '
	argv_watch_stop &&
	{ printf "%s\n" "$GS_TOKEN" "$WRONG" "$SB_API_KEY" && privkey_lines; } >tokens.pat &&
	test "$(wc -l <tokens.pat)" -ge 5 &&
	! grep -rlF -f tokens.pat "$TB_A_WORKDIR" "$SSHBOX_STATE_DIR" &&
	! grep -lF -f tokens.pat ./*.ndjson err* "$GS_LOG" &&
	# the scripted API is where the API key belongs; nothing else may reach it
	grep -vxF "$SB_API_KEY" tokens.pat >not-for-api.pat &&
	! grep -lF -f not-for-api.pat "$SB_API_LOG" &&
	home=$(getent passwd "$TB_A_USER" | cut -d: -f6) &&
	! grep -sF -f tokens.pat "$home/.gitconfig" "$home/.git-credentials" "$home/.config/git/credentials" &&
	cgit config --local --list >cfg &&
	! grep -qF -f tokens.pat cfg &&
	! grep -q "^credential\\." cfg &&
	grep -q "^remote.origin.url=$GS_URL/app.git$" cfg
'

test_expect_success 'the server saw the token only as x-access-token over basic auth' '
	/usr/bin/python3 -c "
import json, sys
users = {json.loads(l).get(\"user\") for l in open(sys.argv[1])} - {None, \"\"}
assert users == {\"x-access-token\"}, users
" "$GS_LOG"
'

test_done
