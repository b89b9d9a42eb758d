#!/usr/bin/env bash
test_description='sshbox key set|show|rotate: formats, Fernet at rest in Redis, refusals, hygiene'
. "$(dirname "$0")/lib.sh"
. "$REPO_ROOT/tests/testbed.sh"
. "$REPO_ROOT/tests/sshbox-env.sh"

PY=/usr/bin/python3
FI="$PY $REPO_ROOT/tests/fernet_interop.py"

command -v strace >/dev/null 2>&1 && test_set_prereq STRACE

# Every key is made here, in TEST_DIR, and is a throwaway.
# mkkey_ssh NAME ssh-keygen-args...: NAME and NAME.pub
mkkey_ssh() {
	local name=$1
	shift
	rm -f "$name" "$name.pub"
	ssh-keygen -q -N '' -C "t1100-$name" -f "$name" "$@" </dev/null
}

# pub_of NAME: NAME.pub derived from a private key made by openssl.
pub_of() {
	chmod 600 "$1" && ssh-keygen -y -f "$1" >"$1.pub" </dev/null
}

# The Redis side of an account.
acct_key() { echo "sshbox:account:$1"; }
stored_token() { tb_redis_cli HGET "$(acct_key "$1")" key_token; }
nothing_stored() {
	test "$(tb_redis_cli EXISTS "$(acct_key "$1")")" = 0 &&
	test "$(tb_redis_cli SISMEMBER sshbox:accounts "$1")" = 0
}
registry_version() { tb_redis_cli GET sshbox:registry:version; }

# The body lines of a PEM-ish private key file that are long enough not to
# appear anywhere by chance.
key_lines() { grep -v -e '^-----' -e '^$' -e ':' "$1" | awk 'length($0) >= 20'; }

# none_of_key KEYFILE FILE: FILE holds no "PRIVATE KEY" and no key line.
# (Lines that lie wholly inside the public key's base64 are public data:
# OpenSSH and PKCS#8 RSA/ECDSA files carry the public key, sometimes on
# the same base64 alignment.)
none_of_key() {
	local l pub=
	[ ! -f "$1.pub" ] || pub=$(cut -d" " -f2 "$1.pub")
	! grep -q "PRIVATE KEY" "$2" || { echo "PRIVATE KEY in $2"; return 1; }
	while read -r l; do
		[ -z "$pub" ] || [[ $pub != *"$l"* ]] || continue
		! grep -qF -- "$l" "$2" || { echo "a line of $1 is in $2: $l"; return 1; }
	done < <(key_lines "$1")
}

# accepted ACCOUNT KEYFILE TYPE: key set prints type, fingerprint, public
# key; Redis holds a Fernet token that decrypts to the exact input.
accepted() {
	local a=$1 k=$2 type=$3 fp pub
	"$SSHBOX" key set --account "$a" <"$k" >"out-$a" 2>"err-$a" || { cat "err-$a"; return 1; }
	cat "out-$a"
	fp=$(ssh-keygen -l -E sha256 -f "$k.pub" | cut -d" " -f2) &&
	pub=$(cut -d" " -f1,2 "$k.pub") &&
	grep -Eqx "type: +$type" "out-$a" &&
	grep -Fqx "fingerprint: $fp" "out-$a" &&
	test "$(sed -n "s/^public key: *//p" "out-$a")" = "$pub" &&
	grep -Eqx "version: +1" "out-$a" &&
	none_of_key "$k" "out-$a" &&
	none_of_key "$k" "err-$a" &&
	stored_token "$a" >"tok-$a" &&
	test_line_count = 1 "tok-$a" &&
	grep -Eqx "gAAAAA[A-Za-z0-9_-]+={0,2}" "tok-$a" &&
	! grep -q "PRIVATE KEY" "tok-$a" &&
	$FI decrypt "$SSHBOX_FERNET_KEYS" <"tok-$a" >"plain-$a" &&
	cmp "$k" "plain-$a" &&
	tb_redis_cli HGETALL "$(acct_key "$a")" >"hash-$a" &&
	none_of_key "$k" "hash-$a" &&
	grep -Fqx "$fp" "hash-$a" &&
	test "$(tb_redis_cli SISMEMBER sshbox:accounts "$a")" = 1
}

# refused ACCOUNT FILE ERE [--encrypted]: exit 2, nothing on stdout, one
# line on stderr matching ERE and echoing no key material, nothing stored.
refused() {
	local a=$1 f=$2 re=$3 v0
	shift 3
	v0=$(registry_version)
	test_expect_code 2 "$SSHBOX" key set --account "$a" "$@" <"$f" >"out-$a" 2>"err-$a" &&
	cat "err-$a" &&
	test ! -s "out-$a" &&
	test_line_count = 1 "err-$a" &&
	grep -Eq "$re" "err-$a" &&
	none_of_key "$f" "err-$a" &&
	nothing_stored "$a" &&
	test "$(registry_version)" = "$v0"
}

test_expect_success 'setup: Redis, sshbox environment' '
	tb_start_redis &&
	sb_env_init &&
	test -n "$SSHBOX_FERNET_KEYS"
'

test_expect_success 'setup: keys of every accepted format' '
	mkkey_ssh ed -t ed25519 &&
	mkkey_ssh rsa -t rsa -b 2048 &&
	mkkey_ssh ecdsa -t ecdsa -b 256 &&
	mkkey_ssh ecdsa521 -t ecdsa -b 521 &&
	mkkey_ssh pemrsa -t rsa -b 2048 -m PEM &&
	openssl genrsa -traditional -out pemrsa2 2048 2>/dev/null && pub_of pemrsa2 &&
	openssl ecparam -genkey -name prime256v1 -noout -out pemec && pub_of pemec &&
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out p8rsa 2>/dev/null && pub_of p8rsa &&
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out p8ec && pub_of p8ec &&
	head -n 1 ed | grep -qx -- "-----BEGIN OPENSSH PRIVATE KEY-----" &&
	head -n 1 rsa | grep -qx -- "-----BEGIN OPENSSH PRIVATE KEY-----" &&
	head -n 1 pemrsa | grep -qx -- "-----BEGIN RSA PRIVATE KEY-----" &&
	head -n 1 pemrsa2 | grep -qx -- "-----BEGIN RSA PRIVATE KEY-----" &&
	head -n 1 pemec | grep -qx -- "-----BEGIN EC PRIVATE KEY-----" &&
	head -n 1 p8rsa | grep -qx -- "-----BEGIN PRIVATE KEY-----" &&
	head -n 1 p8ec | grep -qx -- "-----BEGIN PRIVATE KEY-----"
'

test_expect_success 'OpenSSH ed25519 is accepted' 'accepted ed ed ED25519'
test_expect_success 'OpenSSH RSA is accepted' 'accepted rsa rsa RSA'
test_expect_success 'OpenSSH ECDSA P-256 is accepted' 'accepted ecdsa ecdsa ECDSA'
test_expect_success 'OpenSSH ECDSA P-521 is accepted' 'accepted ecdsa521 ecdsa521 ECDSA'
test_expect_success 'PEM RSA (ssh-keygen -m PEM) is accepted' 'accepted pemrsa pemrsa RSA'
test_expect_success 'PEM RSA (openssl genrsa -traditional) is accepted' 'accepted pemrsa2 pemrsa2 RSA'
test_expect_success 'PEM EC (openssl ecparam) is accepted' 'accepted pemec pemec ECDSA'
test_expect_success 'PKCS#8 RSA (openssl genpkey) is accepted' 'accepted p8rsa p8rsa RSA'
test_expect_success 'PKCS#8 EC (openssl genpkey) is accepted' 'accepted p8ec p8ec ECDSA'

test_expect_success 'the key comment is not part of the stored public key' '
	! grep -q t1100-ed out-ed &&
	! tb_redis_cli HGET "$(acct_key ed)" public_key | grep -q t1100
'

test_expect_success 'setup: keys of every refused format' '
	mkkey_ssh encssh -t ed25519 &&
	ssh-keygen -q -p -P "" -N "s3cret-pass" -f encssh >/dev/null &&
	openssl genrsa -traditional -aes256 -passout pass:s3cret 2048 2>/dev/null >encpem &&
	grep -q "Proc-Type: 4,ENCRYPTED" encpem &&
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes256 -pass pass:s3cret -out encp8 &&
	head -n 1 encp8 | grep -qx -- "-----BEGIN ENCRYPTED PRIVATE KEY-----" &&
	{ mkkey_ssh dsa -t dsa || openssl dsaparam -genkey -noout -out dsa 1024; } &&
	mkkey_ssh dsapem -t dsa &&
	ssh-keygen -q -p -P "" -N "" -m PEM -f dsapem >/dev/null &&
	head -n 1 dsapem | grep -qx -- "-----BEGIN DSA PRIVATE KEY-----" &&
	openssl dsaparam -out dsaparam.pem 1024 2>/dev/null &&
	openssl genpkey -paramfile dsaparam.pem -out dsap8 &&
	head -n 1 dsap8 | grep -qx -- "-----BEGIN PRIVATE KEY-----" &&
	openssl genpkey -algorithm ed25519 -out edp8 &&
	head -n 1 edp8 | grep -qx -- "-----BEGIN PRIVATE KEY-----" &&
	printf "this is not a key, SECRET-GARBAGE-%s\n" $$ >garbage &&
	: >empty &&
	printf "  \n\t\n" >blank &&
	{ echo "-----BEGIN OPENSSH PRIVATE KEY-----"; echo "bm90IHJlYWxseSBhIGtleSwganVzdCBzb21lIGJ5dGVzIGhlcmUgdG8gZmlsbA=="; echo "-----END OPENSSH PRIVATE KEY-----"; } >badbody
'

test_expect_success 'refused: passphrase-protected OpenSSH key' '
	refused encssh encssh "passphrase"
'
test_expect_success 'refused: passphrase-protected PEM (Proc-Type: 4,ENCRYPTED)' '
	refused encpem encpem "PEM RSA.*passphrase|passphrase.*PEM RSA"
'
test_expect_success 'refused: encrypted PKCS#8' '
	refused encp8 encp8 "encrypted PKCS#8"
'
test_expect_success 'refused: DSA (OpenSSH format)' '
	refused dsa dsa "DSA"
'
test_expect_success 'refused: DSA (PEM)' '
	refused dsapem dsapem "PEM DSA"
'
test_expect_success 'refused: DSA (PKCS#8)' '
	refused dsap8 dsap8 "DSA"
'
test_expect_success 'refused: PKCS#8 Ed25519 (OpenSSH 9.2 cannot read it)' '
	refused edp8 edp8 "PKCS#8 Ed25519"
'
test_expect_success 'refused: garbage, without echoing it' '
	refused garbage garbage "unrecognised format|invalid private key" &&
	! grep -q SECRET-GARBAGE err-garbage
'
test_expect_success 'refused: a malformed OpenSSH body' '
	refused badbody badbody "OpenSSH"
'
test_expect_success 'refused: empty and blank input' '
	refused empty empty "empty" &&
	refused blank blank "empty"
'
test_expect_success 'refused: a public key instead of a private key' '
	refused pubkey ed.pub "private key" &&
	refused pubkey2 rsa.pub "private key"
'

test_expect_success 'refused: 70 KB of input, cleanly' '
	{ echo "-----BEGIN OPENSSH PRIVATE KEY-----" && head -c 52000 /dev/urandom | base64 -w 70; echo "-----END OPENSSH PRIVATE KEY-----"; } >big70 &&
	test "$(wc -c <big70)" -gt 70000 &&
	refused big70 big70 "larger than|too large"
'

test_expect_success 'refused: 66 KB of input (over the 64 KiB key limit) says so' '
	{ echo "-----BEGIN OPENSSH PRIVATE KEY-----" && head -c 49000 /dev/urandom | base64 -w 70; echo "-----END OPENSSH PRIVATE KEY-----"; } >big66 &&
	test "$(wc -c <big66)" -gt 65536 && test "$(wc -c <big66)" -lt 69000 &&
	refused big66 big66 "larger than|too large"
'

test_expect_success 'usage errors: no --account, a bad account name, an unknown option' '
	test_expect_code 2 "$SSHBOX" key set <ed 2>err &&
	grep -q -- "--account" err &&
	test_expect_code 2 "$SSHBOX" key set --account -rf <ed 2>err &&
	test_expect_code 2 "$SSHBOX" key set --account "a b" <ed 2>err &&
	test_expect_code 2 "$SSHBOX" key set --account "x;y" <ed 2>err &&
	test_expect_code 2 "$SSHBOX" key set --account q --frob <ed 2>err &&
	test_expect_code 2 "$SSHBOX" key 2>err &&
	test_expect_code 2 "$SSHBOX" key frob --account q 2>err &&
	nothing_stored q
'

test_expect_success 'no Fernet keys configured: key set refused, nothing stored' '
	( unset SSHBOX_FERNET_KEYS &&
	  test_expect_code 2 "$SSHBOX" key set --account nokeys <ed >out 2>err ) &&
	test ! -s out &&
	grep -q SSHBOX_FERNET_KEYS err &&
	nothing_stored nokeys
'

# --- set twice, rotate, show ---------------------------------------------------------
test_expect_success 'key set twice: the second is refused and points to rotate' '
	tb_redis_cli HGETALL "$(acct_key ed)" >before &&
	test_must_fail "$SSHBOX" key set --account ed <rsa >out 2>err &&
	test ! -s out &&
	test_line_count = 1 err &&
	grep -q "key rotate" err &&
	tb_redis_cli HGETALL "$(acct_key ed)" >after &&
	test_cmp before after
'

test_expect_success 'key show: public data, no private key' '
	"$SSHBOX" key show --account ed >show &&
	cat show &&
	grep -Fqx "$(grep ^fingerprint: out-ed)" show &&
	grep -Eqx "version: +1" show &&
	grep -Fq "$(cut -d" " -f2 ed.pub)" show &&
	none_of_key ed show &&
	for a in rsa pemrsa pemec p8rsa p8ec; do
		"$SSHBOX" key show --account $a >show-$a &&
		none_of_key $a show-$a &&
		"$SSHBOX" key show --account $a --json >showj-$a &&
		none_of_key $a showj-$a || return 1
	done
'

test_expect_success 'key show --json' '
	"$SSHBOX" key show --account ed --json >show.json &&
	"$SSHBOX" --json key show --account ed >show2.json &&
	test_cmp show.json show2.json &&
	none_of_key ed show.json &&
	"$PY" - show.json "$(cut -d" " -f1,2 ed.pub)" "$(ssh-keygen -lf ed.pub | cut -d" " -f2)" <<-\EOF
	import json, sys
	d = json.load(open(sys.argv[1]))
	sys.argv.pop(0)
	assert d["account"] == "ed", d
	assert d["type"] == "ED25519", d
	assert d["public_key"] == sys.argv[1], d
	assert d["fingerprint"] == sys.argv[2], d
	assert d["key_version"] == 1, d
	assert isinstance(d["created_at"], int) and d["created_at"] > 1600000000, d
	assert d["updated_at"] >= d["created_at"], d
	assert not any("PRIVATE" in str(v) for v in d.values()), d
	EOF
'

test_expect_success 'key show of an account without a key: exit 2' '
	test_expect_code 2 "$SSHBOX" key show --account nosuch >out 2>err &&
	test ! -s out &&
	grep -q nosuch err
'

json_field() {
	"$PY" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

test_expect_success 'key rotate replaces the key and bumps the version' '
	"$SSHBOX" key show --account ed --json >v1.json &&
	created=$(json_field created_at <v1.json) &&
	v0=$(registry_version) &&
	mkkey_ssh ed-new -t ed25519 &&
	"$SSHBOX" key rotate --account ed <ed-new >rot.out &&
	grep -Eqx "version: +2" rot.out &&
	grep -Fqx "fingerprint: $(ssh-keygen -lf ed-new.pub | cut -d" " -f2)" rot.out &&
	none_of_key ed-new rot.out &&
	"$SSHBOX" key show --account ed --json >v2.json &&
	test "$(json_field key_version <v2.json)" = 2 &&
	test "$(json_field created_at <v2.json)" = "$created" &&
	test "$(json_field updated_at <v2.json)" -ge "$created" &&
	test "$(json_field public_key <v2.json)" = "$(cut -d" " -f1,2 ed-new.pub)" &&
	test "$(registry_version)" -gt "$v0" &&
	stored_token ed >tok-rot &&
	$FI decrypt "$SSHBOX_FERNET_KEYS" <tok-rot >plain-rot &&
	cmp ed-new plain-rot &&
	"$SSHBOX" key rotate --account ed <rsa >/dev/null &&
	test "$(json_field key_version <<<"$("$SSHBOX" key show --account ed --json)")" = 3 &&
	test "$(json_field type <<<"$("$SSHBOX" key show --account ed --json)")" = RSA
'

test_expect_success 'key rotate with a refused key changes nothing' '
	tb_redis_cli HGETALL "$(acct_key ed)" >before &&
	test_expect_code 2 "$SSHBOX" key rotate --account ed <encpem >out 2>err &&
	test ! -s out &&
	grep -q passphrase err &&
	test_expect_code 2 "$SSHBOX" key rotate --account ed <garbage >out 2>err &&
	tb_redis_cli HGETALL "$(acct_key ed)" >after &&
	test_cmp before after
'

test_expect_success 'key rotate of an account without a key: refused, points to set' '
	test_expect_code 2 "$SSHBOX" key rotate --account fresh <ed >out 2>err &&
	test ! -s out &&
	grep -q "key set" err &&
	nothing_stored fresh
'

# --- --encrypted ---------------------------------------------------------------------
test_expect_success '--encrypted: a token made by Python is accepted as is' '
	mkkey_ssh encin -t ed25519 &&
	$FI encrypt "$SSHBOX_FERNET_KEYS" <encin >encin.tok &&
	"$SSHBOX" key set --account encin --encrypted <encin.tok >out 2>err &&
	grep -Eqx "type: +ED25519" out &&
	grep -Fqx "fingerprint: $(ssh-keygen -lf encin.pub | cut -d" " -f2)" out &&
	none_of_key encin out &&
	stored_token encin >tok &&
	$FI decrypt "$SSHBOX_FERNET_KEYS" <tok >plain &&
	cmp encin plain
'

test_expect_success '--encrypted: surrounding whitespace is trimmed; rotate takes it too' '
	mkkey_ssh encin2 -t ecdsa -b 256 &&
	{ printf "\n  "; $FI encrypt "$SSHBOX_FERNET_KEYS" <encin2 | tr -d "\n"; printf " \r\n\n"; } >encin2.tok &&
	"$SSHBOX" key rotate --account encin --encrypted <encin2.tok >out &&
	grep -Eqx "type: +ECDSA" out &&
	grep -Eqx "version: +2" out &&
	stored_token encin >tok &&
	$FI decrypt "$SSHBOX_FERNET_KEYS" <tok >plain &&
	cmp encin2 plain
'

test_expect_success '--encrypted: a token under a key of the MultiFernet ring (old key)' '
	old=$SSHBOX_FERNET_KEYS && new=$($FI genkey) &&
	mkkey_ssh encold -t ed25519 &&
	$FI encrypt "$old" <encold >encold.tok &&
	SSHBOX_FERNET_KEYS="$new,$old" "$SSHBOX" key set --account encold --encrypted <encold.tok >out &&
	stored_token encold >tok &&
	$FI decrypt "$new,$old" <tok >plain &&
	cmp encold plain
'

test_expect_success '--encrypted: a token under another key is refused, nothing stored' '
	other=$($FI genkey) &&
	$FI encrypt "$other" <encin >other.tok &&
	refused encother other.tok "Fernet" --encrypted
'

test_expect_success '--encrypted: a valid token of a refused key is refused with the format' '
	$FI encrypt "$SSHBOX_FERNET_KEYS" <encpem >encpem.tok &&
	refused encpemtok encpem.tok "passphrase" --encrypted &&
	$FI encrypt "$SSHBOX_FERNET_KEYS" <edp8 >edp8.tok &&
	refused edp8tok edp8.tok "PKCS#8 Ed25519" --encrypted &&
	$FI encrypt "$SSHBOX_FERNET_KEYS" <garbage >garbage.tok &&
	refused garbagetok garbage.tok "invalid private key" --encrypted
'

test_expect_success '--encrypted: a plaintext key is refused and not echoed' '
	refused plainenc ed "Fernet" --encrypted
'

test_expect_success '--encrypted: a lenient token form (standard base64 alphabet) is refused' '
	"$PY" - "$SSHBOX_FERNET_KEYS" encin >lenient.tok <<-\EOF &&
	import sys
	from cryptography.fernet import Fernet
	f = Fernet(sys.argv[1])
	msg = open(sys.argv[2], "rb").read()
	while True:
	    t = f.encrypt(msg)
	    if b"-" in t or b"_" in t:
	        break
	bad = t.replace(b"-", b"+").replace(b"_", b"/")
	assert f.decrypt(bad) == msg
	sys.stdout.buffer.write(bad + b"\n")
	EOF
	refused lenient lenient.tok "Fernet" --encrypted
'

# --- hygiene: argv, environment, files ---------------------------------------------------
test_expect_success STRACE 'key set: no key in any argv or child environment, no file written' '
	mkkey_ssh traced -t ed25519 &&
	mkdir -p tmp-traced &&
	{ if test_have_prereq SANITIZE; then asan="$ASAN_OPTIONS:detect_leaks=0"; else asan=; fi; } &&
	TMPDIR=$TEST_DIR/tmp-traced ASAN_OPTIONS=$asan timeout 30 strace -f -qq -v -s 100000 -o trace.log \
		-e trace=execve,open,openat,openat2,creat,memfd_create,rename,renameat,renameat2,link,linkat,symlink,symlinkat,truncate \
		"$SSHBOX" key set --account traced <traced >out &&
	grep -Fqx "fingerprint: $(ssh-keygen -lf traced.pub | cut -d" " -f2)" out &&
	grep execve trace.log >execs &&
	test "$(wc -l <execs)" -ge 2 &&
	sed 1d execs >child-execs &&
	none_of_key traced child-execs &&
	! grep -qF "$SSHBOX_FERNET_KEYS" child-execs &&
	! grep -q "SSHBOX_FERNET" child-execs &&
	{ grep -E "O_WRONLY|O_RDWR|O_CREAT|O_TMPFILE|memfd_create|creat\(|rename|link\(|linkat|truncate" trace.log |
		grep -v -e "\"/dev/null\"" -e "= -1 E" >writes || :; } &&
	{ if test_have_prereq SANITIZE; then grep -v "$TEST_DIR/sanitizer/" writes >writes2 || :; else cp writes writes2; fi; } &&
	{ test ! -s writes2 || { echo "files opened for writing:"; cat writes2; false; }; } &&
	test -z "$(ls -A tmp-traced)"
'

test_expect_success 'key set: the key is in no process argv while sshbox reads it' '
	mkkey_ssh slow -t ed25519 &&
	mkfifo slow.fifo &&
	pid= &&
	test_when_finished "exec 8>&- 2>/dev/null; test -z \"\$pid\" || kill \$pid 2>/dev/null; :" &&
	{ "$SSHBOX" key set --account slow <slow.fifo >out-slow 2>err-slow & } &&
	pid=$! &&
	exec 8>slow.fifo &&
	head -n 3 slow >&8 &&
	sleep 0.2 &&
	tb_alive $pid &&
	{ cat /proc/[0-9]*/cmdline 2>/dev/null | tr "\0" "\n" >cmdlines-during || :; } &&
	{ cat /proc/$pid/environ | tr "\0" "\n" >environ-during || :; } &&
	tail -n +4 slow >&8 &&
	exec 8>&- &&
	wait $pid && pid= &&
	grep -q ED25519 out-slow &&
	test -s cmdlines-during &&
	grep -q -- "--account" cmdlines-during &&
	none_of_key slow cmdlines-during &&
	none_of_key slow environ-during
'

test_expect_success 'no plaintext key under the state dir' '
	{ test ! -d "$SSHBOX_STATE_DIR" || ! grep -rl "PRIVATE KEY" "$SSHBOX_STATE_DIR"; } &&
	for k in ed rsa pemrsa p8ec slow traced; do
		{ test ! -d "$SSHBOX_STATE_DIR" || ! grep -rqF "$(key_lines $k | head -n 1)" "$SSHBOX_STATE_DIR"; } || return 1
	done
'

test_expect_success 'nothing in Redis holds a plaintext key' '
	tb_redis_cli --scan --pattern "*" >rkeys &&
	test -s rkeys &&
	: >rdump &&
	while read -r k; do
		case $(tb_redis_cli TYPE "$k") in
		hash) tb_redis_cli HGETALL "$k" ;;
		string) tb_redis_cli GET "$k" ;;
		set) tb_redis_cli SMEMBERS "$k" ;;
		*) echo "$k" ;;
		esac >>rdump || return 1
	done <rkeys &&
	! grep -q "PRIVATE KEY" rdump &&
	for k in ed ed-new rsa pemrsa pemrsa2 pemec p8rsa p8ec encin slow traced; do
		none_of_key $k rdump || return 1
	done
'

test_expect_success 'Redis over its unix socket works too' '
	SSHBOX_REDIS_URL=$TB_REDIS_UNIX_URL "$SSHBOX" key show --account rsa >out &&
	grep -Eqx "type: +RSA" out
'

test_expect_success 'Redis down: exit 75, "Redis at ... unreachable"' '
	tb_stop_redis &&
	test_expect_code 75 timeout 20 "$SSHBOX" key show --account ed >out 2>err &&
	test ! -s out &&
	test_line_count = 1 err &&
	grep -q "Redis at .*127.0.0.1:$TB_REDIS_PORT.* unreachable" err &&
	test_expect_code 75 timeout 20 "$SSHBOX" key set --account down <ed >out 2>err &&
	grep -q "Redis at .* unreachable" err &&
	none_of_key ed err &&
	test_expect_code 75 timeout 20 "$SSHBOX" key rotate --account ed <ed >out 2>err &&
	grep -q "Redis at .* unreachable" err &&
	none_of_key ed err
'

test_expect_success 'a key pasted through a web form (CRLF, no final newline, blank lines) is accepted' '
	{ test -n "$TB_REDIS_PID" || tb_restart_redis; } &&
	ssh-keygen -q -t ed25519 -N "" -C crlf -f crlf-key </dev/null &&
	{ printf "\r\n  \n"; sed "s/\$/\r/" crlf-key | tr -d "\n" | sed "s/\r/\r\n/g" | head -c -2; } >crlf-key.txt &&
	grep -q "$(printf "\r")" crlf-key.txt &&
	test "$(tail -c 1 crlf-key.txt)" = "-" &&
	"$SSHBOX" key set --account crlf <crlf-key.txt >crlf.out &&
	grep -q "$(ssh-keygen -lf crlf-key.pub | cut -d" " -f2)" crlf.out
'

test_done
