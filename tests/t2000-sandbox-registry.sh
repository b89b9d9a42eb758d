#!/usr/bin/env bash
test_description='sshbox sandbox add|list|show|enable|disable|drain|remove on a real Redis and real sshd sandboxes'
. "$(dirname "$0")/lib.sh"
. "$REPO_ROOT/tests/testbed.sh"
. "$REPO_ROOT/tests/sshbox-env.sh"

PY=/usr/bin/python3

# jget FILE KEY...: print a member of the JSON document in FILE (integers
# index arrays); exit 1 when a key is missing.
jget() {
	"$PY" - "$@" <<'PY'
import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
for k in sys.argv[2:]:
    if isinstance(d, list):
        d = d[int(k)]
    else:
        d = d[k]
print(json.dumps(d) if isinstance(d, (dict, list, bool)) or d is None else d)
PY
}

# A file holds exactly one JSON document.
is_json() {
	"$PY" -c 'import json, sys; json.load(open(sys.argv[1], encoding="utf-8"))' "$1"
}

regver() {
	tb_redis_cli get sshbox:registry:version
}

# Every key in Redis and the registry version, for before/after comparisons.
redis_snapshot() {
	{ tb_redis_cli --scan | sort; echo "version=$(regver)"; } >"$1"
}

# refused FIELD ARGS...: `sshbox sandbox ARGS` exits 2, prints nothing on
# stdout and exactly one line on stderr, naming FIELD, and changes nothing
# in Redis.
refused() {
	local field=$1
	shift
	redis_snapshot before.snap &&
	test_expect_code 2 "$SSHBOX" sandbox "$@" >ref.out 2>ref.err &&
	redis_snapshot after.snap &&
	test_cmp before.snap after.snap &&
	test_line_count = 0 ref.out &&
	test_line_count = 1 ref.err &&
	grep -q "^sshbox: error: invalid $field\b" ref.err || {
		echo "refused: case failed: field '$field', args:" >&2
		printf '  <%s>\n' "$@" >&2
		echo "stderr:" >&2
		cat ref.err >&2
		return 1
	}
}

# A ProxyCommand or shell payload would create a file named pwned-*.
M=$TEST_DIR/pwned

test_expect_success 'set up: Redis, a sandbox, the state dir' '
	tb_ensure_user &&
	tb_start_redis &&
	tb_start_sandbox a 127.0.0.2 &&
	sb_env_init &&
	test -z "$(regver)"
'

# A registry version that is missing starts from the server clock, so that
# it never repeats a number from before Redis lost its data; the counts below
# start from a known 0.
test_expect_success 'the first change of an empty registry seeds its version from the clock' '
	"$SSHBOX" sandbox add --account seed --host seed.example.com --host-key "$TB_A_HOSTKEY" >/dev/null &&
	test "$(regver)" -gt 1600000000000000 &&
	"$SSHBOX" sandbox remove --account seed --host seed.example.com >/dev/null &&
	tb_redis_cli set sshbox:registry:version 0 >/dev/null
'

test_expect_success 'add with defaults: port 22, user root, 1 slot, claude "claude", default workdir' '
	"$SSHBOX" sandbox add --account acme --host box1.example.com --host-key "$TB_A_HOSTKEY" >out 2>err &&
	grep -q "^added sandbox box1.example.com for account acme" out &&
	grep -q "SHA256:" out &&
	"$SSHBOX" sandbox show --account acme --host box1.example.com --json >show.json &&
	is_json show.json &&
	test "$(jget show.json account)" = acme &&
	test "$(jget show.json host)" = box1.example.com &&
	test "$(jget show.json port)" = 22 &&
	test "$(jget show.json user)" = root &&
	test "$(jget show.json slots)" = 1 &&
	test "$(jget show.json slots_used)" = 0 &&
	test "$(jget show.json claude)" = claude &&
	test "$(jget show.json workdir)" = /var/lib/sshbox &&
	test "$(jget show.json state)" = active &&
	test "$(jget show.json host_key)" = "$TB_A_HOSTKEY" &&
	test "$(regver)" = 1
'

test_expect_success 'add with every option; --json output is one JSON object' '
	"$SSHBOX" sandbox add --account acme --host 127.0.0.2 --port "$TB_A_PORT" \
		--user "$TB_A_USER" --workdir "$TB_A_WORKDIR" --slots 4 --claude /opt/claude/bin/claude \
		--host-key "$TB_A_HOSTKEY" --json >add.json &&
	is_json add.json &&
	test "$(jget add.json host)" = 127.0.0.2 &&
	test "$(jget add.json port)" = "$TB_A_PORT" &&
	test "$(jget add.json user)" = "$TB_A_USER" &&
	test "$(jget add.json workdir)" = "$TB_A_WORKDIR" &&
	test "$(jget add.json slots)" = 4 &&
	test "$(jget add.json claude)" = /opt/claude/bin/claude &&
	"$SSHBOX" --json sandbox add --account acme --host=box2.example.com --port=2222 --slots=64 \
		--host-key="$TB_A_HOSTKEY" >add2.json &&
	is_json add2.json &&
	test "$(jget add2.json port)" = 2222 &&
	test "$(jget add2.json slots)" = 64 &&
	test "$(regver)" = 3
'

test_expect_success 'list and show, text and --json' '
	"$SSHBOX" sandbox list >list.txt &&
	grep -q "^ACCOUNT" list.txt &&
	test_line_count = 4 list.txt &&
	grep -E "^acme +127\.0\.0\.2 +$TB_A_PORT +$TB_A_USER +active +0/4 +$TB_A_WORKDIR\$" list.txt &&
	grep -E "^acme +box1\.example\.com +22 +root +active +0/1 +/var/lib/sshbox\$" list.txt &&
	"$SSHBOX" sandbox list --json >list.json &&
	is_json list.json &&
	test "$(jget list.json 0 host)" = 127.0.0.2 &&
	test "$(jget list.json 1 host)" = box1.example.com &&
	test "$(jget list.json 2 host)" = box2.example.com &&
	"$PY" -c "import json,sys; assert len(json.load(open(sys.argv[1]))) == 3" list.json &&
	"$SSHBOX" sandbox list --account acme --json >l2.json &&
	test_cmp list.json l2.json &&
	"$SSHBOX" sandbox list --account nobody --json >empty.json &&
	is_json empty.json &&
	test "$(cat empty.json)" = "[]" &&
	"$SSHBOX" sandbox show --account acme --host 127.0.0.2 >show.txt &&
	grep -q "^host: *127.0.0.2\$" show.txt &&
	grep -q "^port: *$TB_A_PORT\$" show.txt &&
	grep -q "^slots: *0/4 used\$" show.txt &&
	grep -q "^state: *active\$" show.txt &&
	grep -q "^host key: *$TB_A_HOSTKEY\$" show.txt &&
	"$SSHBOX" --json sandbox show --account acme --host 127.0.0.2 >show.json &&
	is_json show.json &&
	test "$(jget show.json slots)" = 4
'

test_expect_success 'show, enable and remove of an unknown sandbox fail with exit 2' '
	test_expect_code 2 "$SSHBOX" sandbox show --account acme --host nope.example.com 2>err &&
	grep -q "not registered" err &&
	test_expect_code 2 "$SSHBOX" sandbox enable --account acme --host nope.example.com 2>err &&
	test_expect_code 2 "$SSHBOX" sandbox remove --account acme --host nope.example.com 2>err &&
	test_expect_code 2 "$SSHBOX" sandbox show --account other --host box1.example.com 2>err &&
	test_expect_code 2 "$SSHBOX" sandbox show --account acme 2>err &&
	test_expect_code 2 "$SSHBOX" sandbox frobnicate --account acme 2>err &&
	test_expect_code 2 "$SSHBOX" sandbox add --account acme --host x.example.com --bogus 2>err &&
	test_expect_code 2 "$SSHBOX" sandbox add --host x.example.com --host-key "$TB_A_HOSTKEY" 2>err &&
	test "$(regver)" = 3
'

test_expect_success 'a hostname is unique per account, in any spelling' '
	v=$(regver) &&
	redis_snapshot before.snap &&
	test_expect_code 2 "$SSHBOX" sandbox add --account acme --host box1.example.com \
		--host-key "$TB_A_HOSTKEY" >out 2>err &&
	grep -q "already registered" err &&
	test_line_count = 1 err &&
	test_expect_code 2 "$SSHBOX" sandbox add --account acme --host Box1.Example.COM \
		--port 2022 --host-key "$TB_A_HOSTKEY" 2>err &&
	grep -q "already registered" err &&
	redis_snapshot after.snap &&
	test_cmp before.snap after.snap &&
	test "$(regver)" = "$v" &&
	"$SSHBOX" sandbox show --account acme --host BOX1.EXAMPLE.COM --json >show.json &&
	test "$(jget show.json host)" = box1.example.com &&
	test "$(jget show.json port)" = 22
'

test_expect_success 'the same host for another account is a separate sandbox' '
	v=$(regver) &&
	"$SSHBOX" sandbox add --account beta --host BOX1.example.com --user deploy \
		--host-key "$TB_A_HOSTKEY" >out &&
	test "$(regver)" = $((v + 1)) &&
	"$SSHBOX" sandbox show --account beta --host box1.example.com --json >b.json &&
	test "$(jget b.json host)" = box1.example.com &&
	test "$(jget b.json user)" = deploy &&
	"$SSHBOX" sandbox show --account acme --host box1.example.com --json >a.json &&
	test "$(jget a.json user)" = root &&
	test "$(tb_redis_cli exists "sshbox:{beta:box1.example.com}:sandbox")" = 1 &&
	test "$(tb_redis_cli exists "sshbox:{beta:BOX1.example.com}:sandbox")" = 0 &&
	"$SSHBOX" sandbox list --json >all.json &&
	"$PY" -c "import json,sys; assert len(json.load(open(sys.argv[1]))) == 4" all.json &&
	"$SSHBOX" sandbox list --account beta --json >beta.json &&
	"$PY" -c "import json,sys; d = json.load(open(sys.argv[1])); assert [s[\"account\"] for s in d] == [\"beta\"]" beta.json
'

test_expect_success 'uniqueness is atomic: 8 concurrent adds of one host, exactly one wins' '
	v=$(regver) &&
	pids= &&
	for i in 1 2 3 4 5 6 7 8; do
		case $i in
		1|5) h=race.example.com ;;
		2|6) h=Race.Example.com ;;
		*) h=RACE.EXAMPLE.COM ;;
		esac
		{ timeout 30 "$SSHBOX" sandbox add --account acme --host "$h" --port 220$i \
			--host-key "$TB_A_HOSTKEY" >race.$i.out 2>race.$i.err; echo $? >race.$i.rc; } &
		pids="$pids $!"
	done &&
	wait $pids &&
	cat race.*.rc | sort | uniq -c >counts &&
	cat counts &&
	printf "      1 0\n      7 2\n" >expect &&
	test_cmp expect counts &&
	for i in 1 2 3 4 5 6 7 8; do
		if [ "$(cat race.$i.rc)" = 0 ]; then
			winner=$i
		else
			grep -q "already registered" race.$i.err || return 1
		fi
	done &&
	test "$(regver)" = $((v + 1)) &&
	tb_redis_cli smembers sshbox:account:acme:sandboxes | grep -ci "^race\.example\.com\$" >n &&
	test "$(cat n)" = 1 &&
	"$SSHBOX" sandbox show --account acme --host race.example.com --json >race.json &&
	test "$(jget race.json port)" = 220$winner
'

test_expect_success '--host-key as "TYPE BASE64", as a known_hosts line, as a .pub line and hashed: the same pin' '
	cut -d" " -f2- "$TB_A_KNOWN_HOSTS" >kh.plain &&
	cp "$TB_A_KNOWN_HOSTS" kh.hashed &&
	ssh-keygen -q -H -f kh.hashed >/dev/null 2>&1 &&
	grep -q "^|1|" kh.hashed &&
	"$SSHBOX" sandbox add --account pin --host k1.example.com --host-key "$TB_A_HOSTKEY" &&
	"$SSHBOX" sandbox add --account pin --host k2.example.com --host-key "$(cat "$TB_A_KNOWN_HOSTS")" &&
	"$SSHBOX" sandbox add --account pin --host k3.example.com --host-key "$(cat "$TB_A_HOSTKEY_PUB")" &&
	"$SSHBOX" sandbox add --account pin --host k4.example.com --host-key "$(grep "^|1|" kh.hashed)" &&
	"$SSHBOX" sandbox add --account pin --host k5.example.com \
		--host-key "box1.example.com,10.0.0.5 $(cat kh.plain) a comment" &&
	for k in 1 2 3 4 5; do
		"$SSHBOX" sandbox show --account pin --host k$k.example.com --json >k.json &&
		test "$(jget k.json host_key)" = "$TB_A_HOSTKEY" || return 1
	done
'

test_expect_success 'a host key that is not one is refused and nothing is stored' '
	blob=$(echo "$TB_A_HOSTKEY" | cut -d" " -f2) &&
	refused host-key add --account pin --host bad.example.com --host-key "ssh-ed25519" &&
	refused host-key add --account pin --host bad.example.com --host-key "ssh-ed25519 not*base64" &&
	refused host-key add --account pin --host bad.example.com --host-key "ssh-dss $blob" &&
	refused host-key add --account pin --host bad.example.com --host-key "ssh-ed25519 QUJDRA==" &&
	refused host-key add --account pin --host bad.example.com --host-key "" &&
	refused host-key add --account pin --host bad.example.com --host-key "$blob"
'

test_expect_success 'a known_hosts line with @revoked or @cert-authority is no host key to pin' '
	redis_snapshot before.snap &&
	test_must_fail "$SSHBOX" sandbox add --account pin --host rev.example.com \
		--host-key "@revoked * $TB_A_HOSTKEY" 2>err &&
	test_must_fail "$SSHBOX" sandbox add --account pin --host ca.example.com \
		--host-key "@cert-authority *.example.com $TB_A_HOSTKEY" 2>err &&
	redis_snapshot after.snap &&
	test_cmp before.snap after.snap
'

test_expect_success 'no host key option: refused; both options: refused' '
	redis_snapshot before.snap &&
	test_expect_code 2 "$SSHBOX" sandbox add --account acme --host nokey.example.com 2>err &&
	test_line_count = 1 err &&
	grep -q -- "--host-key" err &&
	grep -q -- "--accept-new" err &&
	test_expect_code 2 "$SSHBOX" sandbox add --account acme --host nokey.example.com \
		--host-key "$TB_A_HOSTKEY" --accept-new 2>err &&
	test_line_count = 1 err &&
	redis_snapshot after.snap &&
	test_cmp before.snap after.snap
'

test_expect_success '--accept-new pins the key ssh-keyscan fetched and prints its fingerprint' '
	fp=$(ssh-keygen -lf "$TB_A_HOSTKEY_PUB" | cut -d" " -f2) &&
	case $fp in SHA256:*) ;; *) false ;; esac &&
	"$SSHBOX" sandbox add --account scan --host 127.0.0.2 --port "$TB_A_PORT" \
		--user "$TB_A_USER" --workdir "$TB_A_WORKDIR" --accept-new >out 2>err &&
	cat out &&
	grep -qF "$fp" out &&
	"$SSHBOX" sandbox show --account scan --host 127.0.0.2 --json >s.json &&
	test "$(jget s.json host_key)" = "$TB_A_HOSTKEY"
'

test_expect_success '--accept-new --json also shows the fingerprint to compare' '
	fp=$(ssh-keygen -lf "$TB_A_HOSTKEY_PUB" | cut -d" " -f2) &&
	"$SSHBOX" sandbox add --account scanj --host 127.0.0.2 --port "$TB_A_PORT" \
		--accept-new --json >out.json 2>err &&
	cat out.json &&
	is_json out.json &&
	test "$(jget out.json host_key)" = "$TB_A_HOSTKEY" &&
	grep -qF "$fp" out.json
'

test_expect_success '--accept-new where nothing answers: an error, nothing stored' '
	port=$(tb_free_port 127.0.0.2) &&
	redis_snapshot before.snap &&
	test_must_fail "$SSHBOX" sandbox add --account scan --host 127.0.0.2 --port "$port" \
		--accept-new >out 2>err &&
	test_line_count = 1 err &&
	grep -q "host key" err &&
	redis_snapshot after.snap &&
	test_cmp before.snap after.snap
'

test_expect_success 'enable, disable and drain change the state in list and show' '
	v=$(regver) &&
	"$SSHBOX" sandbox disable --account acme --host box1.example.com >out &&
	grep -q "disable" out &&
	test "$(regver)" = $((v + 1)) &&
	"$SSHBOX" sandbox show --account acme --host box1.example.com --json >s.json &&
	test "$(jget s.json state)" = disabled &&
	"$SSHBOX" sandbox show --account acme --host box1.example.com >s.txt &&
	grep -q "^state: *disabled\$" s.txt &&
	"$SSHBOX" sandbox list --account acme >l.txt &&
	grep -E "^acme +box1\.example\.com .* disabled " l.txt &&
	"$SSHBOX" sandbox show --account beta --host box1.example.com --json >b.json &&
	test "$(jget b.json state)" = active &&
	"$SSHBOX" sandbox drain --account acme --host BOX1.example.com --json >d.json &&
	is_json d.json &&
	test "$(jget d.json action)" = drain &&
	test "$(jget d.json host)" = box1.example.com &&
	test "$(regver)" = $((v + 2)) &&
	"$SSHBOX" sandbox list --json >l.json &&
	"$PY" - l.json <<-\PY &&
	import json, sys
	d = json.load(open(sys.argv[1]))
	st = {(s["account"], s["host"]): s["state"] for s in d}
	assert st[("acme", "box1.example.com")] == "draining", st
	assert st[("beta", "box1.example.com")] == "active", st
	PY
	"$SSHBOX" sandbox enable --account acme --host box1.example.com --json >e.json &&
	is_json e.json &&
	test "$(regver)" = $((v + 3)) &&
	"$SSHBOX" sandbox show --account acme --host box1.example.com --json >s.json &&
	test "$(jget s.json state)" = active &&
	"$SSHBOX" sandbox disable --account acme --host box1.example.com --json >x.json &&
	is_json x.json &&
	test "$(jget x.json action)" = disable &&
	"$SSHBOX" sandbox list --account acme >l.txt &&
	grep -E "^acme +box1\.example\.com .* disabled " l.txt &&
	test "$(regver)" = $((v + 4))
'

# lock.h: the value is "<32 hex token>:<fence>:<job_id>".
slot_key='sshbox:{acme:127.0.0.2}:slot:0'

test_expect_success 'remove refuses while a slot is held, unless --force' '
	test_when_finished "tb_redis_cli del \"$slot_key\" >/dev/null" &&
	test "$(tb_redis_cli set "$slot_key" 0123456789abcdef0123456789abcdef:7:rb-held PX 60000)" = OK &&
	"$SSHBOX" sandbox show --account acme --host 127.0.0.2 >s.txt &&
	grep -q "^slots: *1/4 used\$" s.txt &&
	"$SSHBOX" sandbox show --account acme --host 127.0.0.2 --json >s.json &&
	test "$(jget s.json slots_used)" = 1 &&
	"$SSHBOX" sandbox list --account acme >l.txt &&
	grep -E "^acme +127\.0\.0\.2 .* 1/4 " l.txt &&
	redis_snapshot before.snap &&
	test_expect_code 2 "$SSHBOX" sandbox remove --account acme --host 127.0.0.2 >out 2>err &&
	test_line_count = 1 err &&
	grep -q "running 1 job" err &&
	grep -q -- "--force" err &&
	redis_snapshot after.snap &&
	test_cmp before.snap after.snap &&
	"$SSHBOX" sandbox show --account acme --host 127.0.0.2 >/dev/null &&
	v=$(regver) &&
	"$SSHBOX" sandbox remove --account acme --host 127.0.0.2 --force >out &&
	test "$(regver)" = $((v + 1)) &&
	test_expect_code 2 "$SSHBOX" sandbox show --account acme --host 127.0.0.2 2>err &&
	test "$(tb_redis_cli exists "sshbox:{acme:127.0.0.2}:sandbox")" = 0 &&
	test "$(tb_redis_cli sismember sshbox:account:acme:sandboxes 127.0.0.2)" = 0
'

test_expect_success 'remove --force works even when a slot holds a value sshbox cannot parse' '
	test_when_finished "tb_redis_cli del \"sshbox:{acme:box2.example.com}:slot:0\" >/dev/null" &&
	tb_redis_cli set "sshbox:{acme:box2.example.com}:slot:0" "tok:1:job" PX 60000 >/dev/null &&
	test_must_fail "$SSHBOX" sandbox remove --account acme --host box2.example.com 2>err &&
	"$SSHBOX" sandbox show --account acme --host box2.example.com >/dev/null &&
	"$SSHBOX" sandbox remove --account acme --host box2.example.com --force 2>err &&
	test_expect_code 2 "$SSHBOX" sandbox show --account acme --host box2.example.com
'

test_expect_success 'remove of a free sandbox, in another spelling; the account set empties' '
	test_when_finished "tb_redis_cli del \"sshbox:{acme:box1.example.com}:repos\" >/dev/null" &&
	test "$(tb_redis_cli sadd "sshbox:{beta:box1.example.com}:repos" beta/0123456789abcdef-r)" = 1 &&
	test "$(tb_redis_cli sadd "sshbox:{acme:box1.example.com}:repos" acme/0123456789abcdef-r)" = 1 &&
	v=$(regver) &&
	"$SSHBOX" sandbox remove --account beta --host Box1.Example.Com --json >r.json &&
	is_json r.json &&
	test "$(jget r.json action)" = remove &&
	test "$(regver)" = $((v + 1)) &&
	test "$(tb_redis_cli exists "sshbox:{beta:box1.example.com}:sandbox")" = 0 &&
	test "$(tb_redis_cli exists "sshbox:{beta:box1.example.com}:repos")" = 0 &&
	test "$(tb_redis_cli exists "sshbox:{acme:box1.example.com}:repos")" = 1 &&
	test "$(tb_redis_cli scard sshbox:account:beta:sandboxes)" = 0 &&
	test "$(tb_redis_cli sismember sshbox:accounts beta)" = 0 &&
	"$SSHBOX" sandbox show --account acme --host box1.example.com >/dev/null &&
	test_expect_code 2 "$SSHBOX" sandbox remove --account beta --host box1.example.com 2>err &&
	test "$(regver)" = $((v + 1)) &&
	"$SSHBOX" sandbox add --account beta --host box1.example.com --host-key "$TB_A_HOSTKEY" >/dev/null &&
	test "$(regver)" = $((v + 2))
'

test_expect_success 'the refusal checker itself rejects an accepted or misattributed value' '
	! refused user add --account acme --host chk.example.com --user fine --host-key "$TB_A_HOSTKEY" 2>/dev/null &&
	"$SSHBOX" sandbox remove --account acme --host chk.example.com >/dev/null &&
	! refused user add --account acme --host "chk;x" --host-key "$TB_A_HOSTKEY" 2>/dev/null
'

test_expect_success 'hostile hosts: exit 2, one line naming the field, nothing stored' '
	k=$TB_A_HOSTKEY &&
	for h in "-oProxyCommand=touch $M-host1" "-oProxyCommand touch $M-host2" "--accept-new" \
		"box 1" "box	1" "$(printf "box1\nProxyCommand touch %s-host3" "$M")" "box1
" "box\"1" "box'"'"'1" "box1;touch $M-host4" "box1\$(touch $M-host5)" "box1\`touch $M-host6\`" \
		"box%h" "box#1" "box,1" "box1&&touch $M-host7" "box1|touch $M-host8" "box1>$M-host9" \
		"-" "box1." ".box1" "box_1" "box/1" "" "127.1" "0x7f.0.0.1"; do
		refused host add --account acme --host "$h" --host-key "$k" || return 1
		refused host add --account acme --host "$h" --accept-new || return 1
	done &&
	refused host add --account acme "--host=-oProxyCommand=touch $M-host10" --host-key "$k" &&
	refused host show --account acme --host "-oProxyCommand=touch $M-host11" &&
	refused host remove --account acme --host "box1;touch $M-host12" --force &&
	refused host drain --account acme --host "box1\$(touch $M-host13)"
'

test_expect_success 'hostile users: exit 2, one line naming the field, nothing stored' '
	k=$TB_A_HOSTKEY &&
	for u in "-oProxyCommand=touch $M-user1" "-l" "ro ot" "ro	ot" "$(printf "root\nProxyCommand touch %s-user2" "$M")" \
		"ro\"ot" "ro'"'"'ot" "root;touch $M-user3" "root\$(touch $M-user4)" "root\`touch $M-user5\`" \
		"ro%ot" "ro#ot" "ro,ot" "root@evil" "ro/ot" "" "1root"; do
		refused user add --account acme --host u.example.com --user "$u" --host-key "$k" || return 1
	done
'

test_expect_success 'hostile ports and slots: exit 2, one line naming the field, nothing stored' '
	k=$TB_A_HOSTKEY &&
	for p in 0 65536 22x -1 "" " 22" "22 " +22 022 0x16 99999999999999999999 "$(printf "22\nProxyCommand x")"; do
		refused port add --account acme --host p.example.com --port "$p" --host-key "$k" || return 1
	done &&
	for s in 0 65 1.5 -1 "" 01 1e1 " 1"; do
		refused slots add --account acme --host s.example.com --slots "$s" --host-key "$k" || return 1
	done
'

test_expect_success 'hostile workdirs and claude paths: exit 2, one line naming the field, nothing stored' '
	k=$TB_A_HOSTKEY &&
	for w in relative/dir ./work "~/work" /srv/../etc /srv/.. /srv/./x "/srv/my dir" "/srv/\$HOME" \
		"/srv/\$(touch $M-wd1)" "/srv/\`touch $M-wd2\`" "$(printf "/srv/a\nProxyCommand touch %s-wd3" "$M")" \
		"/srv/a;touch $M-wd4" "/srv/a%d" "/srv/a#b" "/srv/a,b" "/srv/a\"b" "/srv//a" "/srv/a/" / ""; do
		refused workdir add --account acme --host w.example.com --workdir "$w" --host-key "$k" || return 1
	done &&
	for c in "claude;touch $M-cl1" "my claude" "/opt/my claude" "claude\$(touch $M-cl2)" "-claude" \
		"bin/claude" "/opt/../claude" "$(printf "claude\nx")" "claude|x" "claude&" ""; do
		refused claude add --account acme --host c.example.com --claude "$c" --host-key "$k" || return 1
	done
'

test_expect_success 'hostile accounts and host keys: exit 2, one line naming the field, nothing stored' '
	k=$TB_A_HOSTKEY &&
	for a in "ac{me" "ac}me" "ac:me" "ac me" "" "-acme" "ac*me" "ac\$(touch $M-acc1)" "$(printf "acme\nx")" \
		"ac/me" ".acme"; do
		refused account add --account "$a" --host a.example.com --host-key "$k" || return 1
		refused account list --account "$a" || return 1
	done &&
	refused host-key add --account acme --host hk.example.com \
		--host-key "$(printf "%s\nProxyCommand touch %s-hk1" "$k" "$M")" &&
	refused host-key add --account acme --host hk.example.com \
		--host-key "$(printf "%s\r\nProxyCommand touch %s-hk2" "$k" "$M")" &&
	refused host-key add --account acme --host hk.example.com \
		--host-key "$(printf "\n%s" "$k")"
'

test_expect_success 'no payload ever ran' '
	ls -a "$TEST_DIR" "$HOME" /tmp >ls.out &&
	! grep -q pwned ls.out &&
	! grep -q "ProxyCommand" "$TB_A_LOG"
'

test_expect_success 'the registry version counts every change and nothing else' '
	v=$(regver) &&
	"$SSHBOX" sandbox add --account ver --host v.example.com --host-key "$TB_A_HOSTKEY" >/dev/null &&
	test "$(regver)" = $((v + 1)) &&
	"$SSHBOX" sandbox list >/dev/null &&
	"$SSHBOX" sandbox show --account ver --host v.example.com >/dev/null &&
	test "$(regver)" = $((v + 1)) &&
	"$SSHBOX" sandbox drain --account ver --host v.example.com >/dev/null &&
	test "$(regver)" = $((v + 2)) &&
	"$SSHBOX" sandbox disable --account ver --host v.example.com >/dev/null &&
	test "$(regver)" = $((v + 3)) &&
	"$SSHBOX" sandbox enable --account ver --host v.example.com >/dev/null &&
	test "$(regver)" = $((v + 4)) &&
	test_must_fail "$SSHBOX" sandbox add --account ver --host v.example.com --host-key "$TB_A_HOSTKEY" 2>/dev/null &&
	test_must_fail "$SSHBOX" sandbox enable --account ver --host w.example.com 2>/dev/null &&
	test "$(regver)" = $((v + 4)) &&
	"$SSHBOX" sandbox remove --account ver --host v.example.com >/dev/null &&
	test "$(regver)" = $((v + 5))
'

test_done
