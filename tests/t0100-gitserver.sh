#!/usr/bin/env bash
test_description='the test git server: smart HTTPS behind basic auth, push, submodules, LFS'
. "$(dirname "$0")/lib.sh"
. "$REPO_ROOT/tests/gitrepos.sh"

# log_has 'python expression over r': some line of $GS_LOG matches.
log_has() {
	/usr/bin/python3 -c '
import json, sys
expr = compile(sys.argv[2], "log_has", "eval")
with open(sys.argv[1]) as f:
    sys.exit(0 if any(eval(expr, {"r": json.loads(l)}) for l in f) else 1)' "$GS_LOG" "$1" ||
		{ echo "no log line has: $1" >&2; return 1; }
}

now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }

test_expect_success 'the server starts on 127.0.0.1 with TLS; repositories are made' '
	gs_start &&
	case $GS_URL in "https://127.0.0.1:$GS_PORT") ;; *) false ;; esac &&
	ss -Htln "sport = :$GS_PORT" >listen &&
	test_line_count = 1 listen &&
	grep -q "127.0.0.1:$GS_PORT" listen &&
	test "$(stat -c %a "$GS_CA")" = 644 &&
	test "$(stat -c %a "$GS_TOKEN_FILE")" = 600 &&
	test "$(cat "$GS_TOKEN_FILE")" = "$GS_TOKEN" &&
	case $GS_TOKEN in ghs_????????????????????????????????????) ;; *) false ;; esac &&
	openssl x509 -in "$GS_CA" -noout -ext subjectAltName | grep -q "IP Address:127.0.0.1" &&
	gs_make_repo app &&
	gs_add_submodule app lib &&
	test "$(git -C "$GS_ROOT/app.git" rev-list --count main)" = 301 &&
	test "$(git -C "$GS_ROOT/app.git" config http.receivepack)" = true &&
	test "$(git -C "$GS_ROOT/app.git" symbolic-ref HEAD)" = refs/heads/main &&
	git -C "$GS_ROOT/app.git" ls-tree main sub >gitlink &&
	grep -q "^160000 commit $(git -C "$GS_ROOT/lib.git" rev-parse main)	sub\$" gitlink &&
	git -C "$GS_ROOT/app.git" show main:.gitmodules >gm &&
	grep -qF "url = $GS_URL/lib.git" gm
'

test_expect_success 'clone with the token: all commits, the branch, the annotated tag' '
	gs_git clone -q "$GS_URL/app.git" c1 &&
	test "$(git -C c1 rev-list --count HEAD)" = 301 &&
	test "$(git -C c1 rev-parse HEAD)" = "$(git -C "$GS_ROOT/app.git" rev-parse main)" &&
	test "$(git -C c1 rev-parse origin/feature)" = "$(git -C "$GS_ROOT/app.git" rev-parse feature)" &&
	test "$(git -C c1 cat-file -t v1.0)" = tag &&
	test "$(git -C c1 rev-parse "v1.0^{commit}")" = "$(git -C c1 rev-parse origin/feature~1)" &&
	test "$(git -C c1 rev-list --count "v1.0^{commit}")" = 150 &&
	test "$(git -C c1 config remote.origin.url)" = "$GS_URL/app.git" &&
	! grep -rqF "$GS_TOKEN" c1/.git &&
	log_has "r[\"path\"] == \"/app.git/git-upload-pack\" and r[\"status\"] == 200 and r[\"auth_ok\"] and r[\"user\"] == \"x-access-token\" and r.get(\"proto\") == \"version=2\""
'

test_expect_success 'without credentials: 401 with the realm' '
	gs_curl --no-auth -o /dev/null -D hdr -w "%{http_code}\n" \
		"$GS_URL/app.git/info/refs?service=git-upload-pack" >code &&
	echo 401 >expect && test_cmp expect code &&
	grep -qi "^WWW-Authenticate: Basic realm=\"sshbox-test\"" hdr &&
	printf "user = \"someone:%s\"\n" "$GS_TOKEN" |
		gs_curl --no-auth -K - -o /dev/null -w "%{http_code}\n" "$GS_URL/app.git/info/refs" >code &&
	test_cmp expect code &&
	gs_curl -o /dev/null -w "%{http_code}\n" "$GS_URL/app.git/info/refs?service=git-upload-pack" >code &&
	echo 200 >expect && test_cmp expect code
'

test_expect_success 'a wrong token fails fast, without a prompt' '
	s=$(now_ms) &&
	GS_TOKEN=ghs_wrong test_must_fail gs_git clone "$GS_URL/app.git" bad1 2>err &&
	e=$(now_ms) &&
	echo "wrong token: $((e - s)) ms" &&
	test $((e - s)) -lt 5000 &&
	grep -q "Authentication failed for" err &&
	! grep -q "Username for" err &&
	test_path_is_missing bad1 &&
	s=$(now_ms) &&
	test_must_fail env GIT_TERMINAL_PROMPT=0 GIT_SSL_CAINFO="$GS_CA" \
		git -c credential.helper= clone "$GS_URL/app.git" bad2 2>err &&
	e=$(now_ms) &&
	test $((e - s)) -lt 5000 &&
	grep -q "terminal prompts disabled" err &&
	test_path_is_missing bad2
'

test_expect_success 'the certificate is verified: without the CA, no connection' '
	test_must_fail env -u GIT_SSL_CAINFO git -c credential.helper= \
		ls-remote "$GS_URL/app.git" 2>err &&
	grep -qi "certificate" err &&
	test_must_fail curl -sS --max-time 10 -o /dev/null "$GS_URL/app.git/info/refs" 2>err &&
	grep -qi "certificate" err
'

test_expect_success 'the token rotates: the old one is refused, the new one works' '
	old=$GS_TOKEN && echo "$old" >>tokens &&
	gs_set_token &&
	test "$GS_TOKEN" != "$old" &&
	GS_TOKEN=$old test_must_fail gs_git ls-remote "$GS_URL/app.git" 2>err &&
	grep -q "Authentication failed" err &&
	gs_git ls-remote "$GS_URL/app.git" >refs &&
	grep -q "refs/heads/feature\$" refs &&
	grep -q "refs/tags/v1.0^{}\$" refs
'

test_expect_success 'push lands on the server, also a large (chunked) one' '
	echo pushed >c1/pushed.txt &&
	gs_git -C c1 add pushed.txt &&
	gs_git -C c1 commit -q -m pushed &&
	gs_git -C c1 push -q origin HEAD:refs/heads/pushed &&
	test "$(git -C "$GS_ROOT/app.git" rev-parse pushed)" = "$(git -C c1 rev-parse HEAD)" &&
	head -c 3000000 /dev/urandom >c1/big.bin &&
	gs_git -C c1 add big.bin &&
	gs_git -C c1 commit -q -m big &&
	gs_git -C c1 push -q origin HEAD:main &&
	test "$(git -C "$GS_ROOT/app.git" rev-parse main)" = "$(git -C c1 rev-parse HEAD)" &&
	git -C "$GS_ROOT/app.git" cat-file blob main:big.bin | cmp - c1/big.bin &&
	log_has "r[\"path\"] == \"/app.git/git-receive-pack\" and r[\"status\"] == 200 and r.get(\"chunked\") and r[\"in\"] > 3000000"
'

test_expect_success 'a long fetch negotiation (gzip request body) works' '
	{
		for i in $(seq 100); do
			printf "commit refs/heads/local\ncommitter t <t@example.invalid> %d +0000\ndata 4\n%03d\n" \
				$((EPOCHSECONDS + i)) "$i"
			[ "$i" != 1 ] || echo "from refs/heads/main^0"
			echo
		done
	} | git -C c1 fast-import --quiet &&
	test "$(git -C c1 rev-list --count main..local)" = 100 &&
	tree=$(git -C "$GS_ROOT/app.git" rev-parse "main^{tree}") &&
	new=$(gs_git -C "$GS_ROOT/app.git" commit-tree -p main -m server-side "$tree") &&
	git -C "$GS_ROOT/app.git" update-ref refs/heads/main "$new" &&
	gs_git -C c1 fetch -q origin &&
	test "$(git -C c1 rev-parse origin/main)" = "$new" &&
	log_has "r[\"path\"] == \"/app.git/git-upload-pack\" and r[\"status\"] == 200 and r.get(\"enc\") == \"gzip\""
'

test_expect_success 'the submodule clones recursively' '
	gs_git clone -q --recurse-submodules "$GS_URL/app.git" c3 &&
	test_path_is_file c3/sub/README.md &&
	test "$(git -C c3/sub rev-parse HEAD)" = "$(git -C "$GS_ROOT/lib.git" rev-parse main)" &&
	test "$(git -C c3/sub config remote.origin.url)" = "$GS_URL/lib.git" &&
	test "$(git -C c3/sub rev-list --count HEAD)" = 5 &&
	log_has "r[\"path\"] == \"/lib.git/git-upload-pack\" and r[\"status\"] == 200"
'

test_expect_success 'an LFS file arrives with its real content on clone and on pull' '
	content="LFS payload $$ $RANDOM $(date +%s%N)" &&
	printf "%s" "$content" >expect &&
	gs_add_lfs_file app assets/model.bin "$content" &&
	test "$GS_LFS_OID" = "$(sha256sum <expect | cut -d" " -f1)" &&
	test_cmp expect "$GS_ROOT/lfs-objects/$GS_LFS_OID" &&
	git -C "$GS_ROOT/app.git" cat-file blob main:assets/model.bin >pointer &&
	grep -qx "oid sha256:$GS_LFS_OID" pointer &&
	grep -qx "size ${#content}" pointer &&
	gs_git clone -q "$GS_URL/app.git" c4 &&
	test_cmp expect c4/assets/model.bin &&
	log_has "r[\"path\"] == \"/lfs/$GS_LFS_OID\" and r[\"method\"] == \"GET\" and r[\"status\"] == 200" &&
	log_has "r.get(\"lfs\") == \"download\" and r[\"status\"] == 200" &&
	GIT_LFS_SKIP_SMUDGE=1 gs_git clone -q "$GS_URL/app.git" c5 &&
	test_cmp pointer c5/assets/model.bin &&
	gs_git -C c5 lfs pull &&
	test_cmp expect c5/assets/model.bin
'

test_expect_success 'the LFS server checks uploads and answers for missing objects' '
	printf "not what the oid says" >wrong &&
	gs_curl -o out -w "%{http_code}\n" -T wrong "$GS_URL/lfs/$(printf "%064d" 0)" >code &&
	echo 422 >expect && test_cmp expect code &&
	grep -q "sha256" out &&
	oid=$(sha256sum <wrong | cut -d" " -f1) &&
	gs_curl -o out -w "%{http_code}\n" -T wrong "$GS_URL/lfs/$oid?size=3" >code &&
	test_cmp expect code &&
	test_path_is_missing "$GS_ROOT/lfs-objects/$oid" &&
	gs_curl -o /dev/null -w "%{http_code}\n" -T wrong "$GS_URL/lfs/$oid?size=21" >code &&
	echo 200 >expect && test_cmp expect code &&
	test_cmp wrong "$GS_ROOT/lfs-objects/$oid" &&
	gs_curl -o /dev/null -w "%{http_code}\n" "$GS_URL/lfs/$(printf "%064d" 1)" >code &&
	echo 404 >expect && test_cmp expect code &&
	gs_curl --no-auth -o /dev/null -w "%{http_code}\n" "$GS_URL/lfs/$oid" >code &&
	echo 401 >expect && test_cmp expect code &&
	printf "{\"operation\":\"download\",\"objects\":[{\"oid\":\"%064d\",\"size\":1}]}" 1 |
		gs_curl -H "Content-Type: application/vnd.git-lfs+json" --data-binary @- \
			"$GS_URL/app.git/info/lfs/objects/batch" >batch &&
	grep -q "\"code\": 404" batch &&
	! grep -q actions batch
'

test_expect_success 'concurrent clones are served in parallel' '
	for i in 1 2 3 4; do
		{ gs_git clone -q "$GS_URL/app.git" p$i >p$i.out 2>&1 & } &&
		eval "pid$i=\$!" || return 1
	done &&
	wait $pid1 && wait $pid2 && wait $pid3 && wait $pid4 &&
	for i in 1 2 3 4; do
		test "$(git -C p$i rev-parse HEAD)" = "$(git -C "$GS_ROOT/app.git" rev-parse main)" || return 1
	done
'

# The server's children: its running CGIs (and, briefly, orphans it reaps).
server_children() { cat /proc/"$GS_PID"/task/*/children; }

test_expect_success 'a client that goes away mid-transfer leaves no process behind' '
	gs_make_repo big 1000 40000 &&
	export -f gs_git && export _GS_CRED_HELPER &&
	{ setsid bash -c "gs_git clone -q --bare \"\$1\" \"\$2\"" _ "$GS_URL/big.git" gone 2>/dev/null & } &&
	client=$! &&
	# Stop the client once pack data is arriving (its tmp_pack exists):
	# stopping it between the ls-refs and fetch requests, when nothing is
	# in flight, made this check fail 2 runs in 5.
	test_wait_for "test -n \"\$(server_children)\" && test -n \"\$(find gone/objects/pack -name \"tmp_pack_*\" -size +0 2>/dev/null)\"" 20 &&
	kill -STOP -- -$client &&
	sleep 0.3 &&
	kill -KILL -- -$client &&
	{ kill -CONT -- -$client 2>/dev/null; wait $client; true; } &&
	test_wait_for "test -z \"\$(server_children)\"" 10 &&
	log_has "r[\"path\"] == \"/big.git/git-upload-pack\" and r.get(\"aborted\", \"\").startswith(\"connection\")" &&
	gs_git ls-remote "$GS_URL/big.git" >refs &&
	test_line_count = 5 refs
'

test_expect_success 'the log is JSON lines and never holds a token' '
	echo "$GS_TOKEN" >>tokens &&
	gs_curl -o /dev/null "$GS_URL/app.git/info/refs?x=$GS_TOKEN" &&
	log_has "r[\"path\"] == \"/app.git/info/refs?x=<token>\" and r[\"leak\"] == [\"path\"]" &&
	while read -r tok; do
		! grep -rqF "$tok" "$GS_LOG" "$GS_OUT" || return 1
	done <tokens &&
	! grep -q "Basic " "$GS_LOG" &&
	/usr/bin/python3 -c "
import json, sys
n = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    for k in (\"time\", \"method\", \"path\", \"status\", \"user\", \"auth_ok\"):
        assert k in r, (k, r)
    assert isinstance(r[\"auth_ok\"], bool) and isinstance(r[\"status\"], int), r
    n += 1
assert n > 50, n
" "$GS_LOG"
'

test_expect_success 'the server stops: at gs_stop, at exit, and when its script is killed' '
	pid=$GS_PID port=$GS_PORT &&
	gs_stop &&
	! kill -0 "$pid" 2>/dev/null &&
	test -z "$GS_PID" &&
	test_must_fail curl -s --max-time 5 -o /dev/null "https://127.0.0.1:$port/" &&
	test_path_is_missing "$TEST_DIR/gs/port" &&
	gs_stop &&
	cat >inner.sh <<-\EOF &&
	. "$REPO_ROOT/tests/lib.sh"
	. "$REPO_ROOT/tests/gitrepos.sh"
	test_expect_success start "
		gs_start &&
		echo \"\$TEST_DIR \$GS_PID\" >\"\$OUTER/inner.\$MODE\" &&
		if test \"\$MODE\" = kill; then kill -KILL \$\$; fi
	"
	test_done
	EOF
	OUTER=$TEST_DIR MODE=exit bash inner.sh >inner-exit.out 2>&1 &&
	read -r dir1 pid1 <inner.exit &&
	! kill -0 "$pid1" 2>/dev/null &&
	test_path_is_missing "$dir1" &&
	test_expect_code 137 env OUTER=$TEST_DIR MODE=kill bash inner.sh >inner-kill.out 2>&1 &&
	read -r dir2 pid2 <inner.kill &&
	test_wait_for "! kill -0 $pid2 2>/dev/null" 5 &&
	grep -q "is gone" "$dir2/gs/server.out" &&
	rm -rf "$dir2"
'

test_done
