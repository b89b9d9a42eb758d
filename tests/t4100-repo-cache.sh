#!/usr/bin/env bash
test_description='repositories on the sandbox: one cache per account and repository, a checkout per job'
. "$(dirname "$0")/lib.sh"
. "$REPO_ROOT/tests/testbed.sh"
. "$REPO_ROOT/tests/sshbox-env.sh"

# A repository over git's dumb HTTP protocol (a static file server): real git
# on both ends, no credentials.  Smart HTTP with tokens, LFS and submodules
# are exercised against tests/gitserver.py where it is available.
test_expect_success 'set up: sandbox, CLI, API, and a repository served over HTTP' '
	sb_claude_install &&
	tb_start_all_default &&
	sb_env_init &&
	sb_start_fakeapi &&
	sb_account_key &&
	sb_register a acme 2 &&
	git init -q --bare srv/app.git &&
	git init -q w &&
	git -C w config user.email t@example.com &&
	git -C w config user.name t &&
	git -C w commit -q --allow-empty -m one &&
	git -C w tag v1.0 &&
	echo two >w/file && git -C w add file && git -C w commit -q -m two &&
	git -C w branch -M main &&
	git -C w push -q ../srv/app.git main v1.0 &&
	git -C srv/app.git symbolic-ref HEAD refs/heads/main &&
	git -C srv/app.git update-server-info &&
	port=$(tb_free_port) &&
	{ /usr/bin/python3 -m http.server --bind 127.0.0.1 --directory srv "$port" >http.log 2>&1 & } &&
	test_atexit "kill $!" &&
	URL=http://127.0.0.1:$port/app.git &&
	echo "$URL" >url &&
	test_wait_for "curl -sf $URL/HEAD" 10
'

repo_spec() {
	sb_spec "Run pwd" ",\"job_id\":\"$1\",\"repo\":{\"url\":\"$(cat url)\"${2:+,\"ref\":\"$2\"}}"
}

test_expect_success 'the first job clones the cache, the next one fetches' '
	repo_spec r1 main >s1.json &&
	"$SSHBOX" run <s1.json >e1.ndjson &&
	grep -q "\"type\":\"sshbox.repo\".*\"action\":\"clone\"" e1.ndjson &&
	test "$(sb_result_field e1.ndjson status)" = succeeded &&
	repo_spec r2 main >s2.json &&
	"$SSHBOX" run <s2.json >e2.ndjson &&
	grep -q "\"type\":\"sshbox.repo\".*\"action\":\"fetch\"" e2.ndjson &&
	test "$(ls "$TB_A_WORKDIR/repos/acme" | grep -c "\\.git\$")" = 1
'

test_expect_success 'the checkout is at the ref, its origin is the real URL, history is borrowed' '
	grep "\"type\":\"user\"" e2.ndjson | grep -q "$TB_A_WORKDIR/jobs/r2" &&
	{ kill $SB_API_PID; wait $SB_API_PID 2>/dev/null; true; } &&
	sb_start_fakeapi "$REPO_ROOT/tests/data/scenario-git.json" &&
	repo_spec r3 v1.0 >s3.json &&
	"$SSHBOX" run <s3.json >e3.ndjson &&
	test "$(sb_result_field e3.ndjson status)" = succeeded &&
	grep "\"type\":\"user\"" e3.ndjson >u3 &&
	grep -q "ORIGIN=$(cat url)" u3 &&
	grep -q "HEAD=$(git -C srv/app.git rev-parse v1.0)" u3 &&
	grep -q "ALT=$TB_A_WORKDIR/repos/acme/.*-app.git/objects" u3 &&
	grep -q "OBJECTS=0" u3 &&
	sha=$(git -C srv/app.git rev-parse main) &&
	repo_spec r4 "$sha" >s4.json &&
	"$SSHBOX" run <s4.json >e4.ndjson &&
	grep -q "\"type\":\"sshbox.repo\".*\"action\":\"reuse\"" e4.ndjson &&
	test -z "$(ls -A "$TB_A_WORKDIR/jobs")"
'

test_expect_success 'two concurrent jobs get separate checkouts of one cache' '
	repo_spec c1 main >c1.json &&
	repo_spec c2 main >c2.json &&
	{ "$SSHBOX" run <c1.json >ec1.ndjson & } && p1=$! &&
	{ "$SSHBOX" run <c2.json >ec2.ndjson & } && p2=$! &&
	wait $p1 && wait $p2 &&
	test "$(sb_result_field ec1.ndjson status)" = succeeded &&
	test "$(sb_result_field ec2.ndjson status)" = succeeded &&
	grep "\"type\":\"sshbox.started\"" ec1.ndjson | grep -q "jobs/c1\"" &&
	grep "\"type\":\"sshbox.started\"" ec2.ndjson | grep -q "jobs/c2\""
'

test_expect_success 'an unknown ref fails fast, naming the ref' '
	repo_spec u1 no-such-branch >u1.json &&
	test_expect_code 1 "$SSHBOX" run <u1.json >eu.ndjson 2>err &&
	grep -q "unknown ref .no-such-branch." err &&
	test "$(sb_result_field eu.ndjson status)" = error
'

test_expect_success 'a corrupt cache is detected, removed and cloned again' '
	cache=$(ls -d "$TB_A_WORKDIR"/repos/acme/*.git) &&
	rm -rf "$cache/objects" "$cache/refs" &&
	repo_spec k1 main >k1.json &&
	"$SSHBOX" run <k1.json >ek.ndjson &&
	test "$(sb_result_field ek.ndjson status)" = succeeded &&
	grep -q "\"type\":\"sshbox.repo\".*\"action\":\"clone\"" ek.ndjson
'

test_expect_success 'the scheduler knows which sandbox caches the repository' '
	key=$(tb_redis_cli smembers "sshbox:{acme:127.0.0.2}:repos") &&
	case $key in acme/*-app) ;; *) false ;; esac
'

test_done
