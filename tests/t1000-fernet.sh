#!/usr/bin/env bash
test_description='sshbox fernet genkey|encrypt|decrypt against Python cryptography, both ways'
. "$(dirname "$0")/lib.sh"

# The reference implementation (Debian's python3-cryptography; the python3
# first on PATH may be a pyenv without it).
PY=/usr/bin/python3
FI="$PY $REPO_ROOT/tests/fernet_interop.py"

# Helpers the interop script does not have: tokens minted at a given time,
# and the lenient token forms Python accepts but sshbox must refuse.  Every
# lenient form is checked to really decrypt in Python before it is used.
write_craft() {
	cat >"$TEST_DIR/craft.py" <<-'PY'
	import sys, time
	from cryptography.fernet import Fernet, InvalidToken

	A = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

	def main(argv):
	    cmd = argv[0]
	    out = sys.stdout.buffer
	    if cmd == "at":            # at KEY OFFSET_S: stdin -> token minted at now+OFFSET
	        f = Fernet(argv[1])
	        out.write(f.encrypt_at_time(sys.stdin.buffer.read(), int(time.time()) + int(argv[2])) + b"\n")
	        return 0
	    if cmd == "ts":            # ts KEY: timestamp of the token on stdin
	        print(Fernet(argv[1]).extract_timestamp(sys.stdin.buffer.read().strip()))
	        return 0
	    if cmd == "stdkey":        # a key using the standard alphabet (+ or /)
	        while True:
	            k = Fernet.generate_key()
	            if b"-" in k or b"_" in k:
	                std = k.replace(b"-", b"+").replace(b"_", b"/")
	                Fernet(std)    # Python accepts it
	                out.write(std + b"\n")
	                return 0
	    if cmd == "lenient":       # lenient KEY KIND: token for a short stdin message
	        f = Fernet(argv[1])
	        kind = argv[2]
	        msg = sys.stdin.buffer.read()
	        assert len(msg) < 16   # 73 raw bytes: the token ends in "=="
	        for _ in range(1000):
	            t = f.encrypt(msg)
	            assert t.endswith(b"==")
	            if kind == "std":
	                if b"-" not in t and b"_" not in t:
	                    continue
	                bad = t.replace(b"-", b"+").replace(b"_", b"/")
	            elif kind == "space":
	                bad = t[:40] + b" " + t[40:]
	            elif kind == "newline":
	                bad = t[:40] + b"\n" + t[40:]
	            elif kind == "percent":
	                bad = t[:40] + b"%" + t[40:]
	            elif kind == "garbage":
	                bad = t + b"-GARBAGE"
	            elif kind == "bits":   # an unused trailing bit set
	                v = A.index(t[-3:-2])
	                bad = t[:-3] + A[v ^ 1:(v ^ 1) + 1] + t[-2:]
	            elif kind == "nopad":
	                bad = t.rstrip(b"=")
	            else:
	                return 2
	            assert bad != t
	            try:
	                ok = f.decrypt(bad) == msg
	            except InvalidToken:
	                ok = False
	            if kind == "nopad":
	                assert not ok, "Python now accepts unpadded tokens"
	            else:
	                assert ok, "Python refused the lenient form " + kind
	            out.write(bad)
	            return 0
	        return 1
	    return 2

	sys.exit(main(sys.argv[1:]))
	PY
}

craft() { "$PY" "$TEST_DIR/craft.py" "$@"; }

# A file of N pseudo-random bytes (any byte value, NULs and newlines too).
randfile() {
	head -c "$2" /dev/urandom >"$1"
}

test_expect_success 'setup: keys, an empty config file' '
	write_craft &&
	: >empty.conf &&
	export SSHBOX_CONFIG=$TEST_DIR/empty.conf &&
	unset SSHBOX_FERNET_KEYS SSHBOX_FERNET_KEYS_FILE &&
	K1=$($FI genkey) && K2=$($FI genkey) && K3=$($FI genkey) &&
	test ${#K1} = 44
'

test_expect_success 'genkey prints one 44-char url-safe key that Python accepts' '
	"$SSHBOX" fernet genkey >key1 &&
	"$SSHBOX" fernet genkey >key2 &&
	test_line_count = 1 key1 &&
	k=$(cat key1) &&
	test ${#k} = 44 &&
	printf "%s\n" "$k" | grep -Eqx "[A-Za-z0-9_-]{43}=" &&
	test "$(wc -c <key1)" = 45 &&
	! cmp -s key1 key2 &&
	echo hello >msg &&
	$FI encrypt "$k" <msg >tok &&
	SSHBOX_FERNET_KEYS=$k "$SSHBOX" fernet decrypt <tok >out &&
	test_cmp msg out &&
	"$PY" -c "import base64,sys; assert len(base64.urlsafe_b64decode(sys.argv[1])) == 32" "$k"
'

test_expect_success 'genkey needs no Fernet keys configured' '
	( unset SSHBOX_FERNET_KEYS; "$SSHBOX" fernet genkey >key3 ) &&
	test "$(wc -c <key3)" = 45
'

test_expect_success 'genkey and encrypt refuse extra arguments (exit 2)' '
	test_expect_code 2 "$SSHBOX" fernet genkey extra 2>err &&
	grep -q "unexpected argument" err &&
	test_expect_code 2 env SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet encrypt --ttl 5 </dev/null 2>err &&
	test_expect_code 2 "$SSHBOX" fernet 2>err &&
	test_expect_code 2 "$SSHBOX" fernet frobnicate 2>err &&
	grep -q "unknown fernet subcommand" err
'

# sizes: 1 byte, 15/16/17 (around one block), 3 KB, 1 MiB (the cap).
for size in 1 15 16 17 3072 1048576; do
	test_expect_success "sshbox encrypts $size bytes, Python decrypts them" '
		randfile pt-$size '"$size"' &&
		SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet encrypt <pt-'"$size"' >tok-s-'"$size"' &&
		test_line_count = 1 tok-s-'"$size"' &&
		grep -Eqx "gAAAAA[A-Za-z0-9_-]*={0,2}" tok-s-'"$size"' &&
		$FI decrypt "$K1" <tok-s-'"$size"' >out-p-'"$size"' &&
		cmp pt-'"$size"' out-p-'"$size"'
	'
	test_expect_success "Python encrypts $size bytes, sshbox decrypts them byte for byte" '
		$FI encrypt "$K1" <pt-'"$size"' >tok-p-'"$size"' &&
		SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet decrypt <tok-p-'"$size"' >out-s-'"$size"' &&
		cmp pt-'"$size"' out-s-'"$size"'
	'
done

test_expect_success 'empty plaintext: a valid token both ways, empty output' '
	SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet encrypt </dev/null >tok-empty &&
	test_line_count = 1 tok-empty &&
	test "$(wc -c <tok-empty)" = 101 &&
	$FI decrypt "$K1" <tok-empty >out &&
	test ! -s out &&
	$FI encrypt "$K1" </dev/null >tok-empty-p &&
	SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet decrypt <tok-empty-p >out &&
	test ! -s out
'

test_expect_success 'decrypt output is exactly the plaintext: NULs, no newline added or removed' '
	printf "a\0b\n\n\0" >bin &&
	$FI encrypt "$K1" <bin >tok-bin &&
	SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet decrypt <tok-bin >out &&
	cmp bin out &&
	printf "no newline" >nonl &&
	SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet encrypt <nonl | SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet decrypt >out &&
	cmp nonl out
'

test_expect_success 'a token is fresh every time (random IV) and stamped with the current time' '
	echo same >same &&
	SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet encrypt <same >ta &&
	SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet encrypt <same >tb &&
	! cmp -s ta tb &&
	ts=$(craft ts "$K1" <ta) &&
	now=$(date +%s) &&
	test $((now - ts)) -ge 0 && test $((now - ts)) -le 5
'

test_expect_success 'surrounding whitespace around a token is trimmed' '
	echo msg >m &&
	$FI encrypt "$K1" <m >t &&
	{ printf "  \n\t"; cat t; printf " \r\n\n"; } >t-ws &&
	SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet decrypt <t-ws >out &&
	test_cmp m out
'

test_expect_success 'more than 1 MiB of plaintext is refused by encrypt (exit 2)' '
	randfile big 1048577 &&
	test_expect_code 2 env SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet encrypt <big >out 2>err &&
	test ! -s out &&
	test_line_count = 1 err &&
	grep -q "larger than" err
'

test_expect_success 'a Python token of more than 1 MiB is refused by decrypt (exit 2)' '
	$FI encrypt "$K1" <big >tok-big &&
	test_expect_code 2 env SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet decrypt <tok-big >out 2>err &&
	test ! -s out &&
	test_line_count = 1 err
'

# --- MultiFernet -------------------------------------------------------------
test_expect_success 'MultiFernet: encrypt uses the first key only' '
	echo rotate-me >rm &&
	SSHBOX_FERNET_KEYS="$K2,$K1" "$SSHBOX" fernet encrypt <rm >t-new &&
	$FI decrypt "$K2" <t-new >out &&
	test_cmp rm out &&
	test_expect_code 1 $FI decrypt "$K1" <t-new 2>/dev/null
'

test_expect_success 'MultiFernet: tokens under the old key still decrypt, others do not' '
	$FI encrypt "$K1" <rm >t-old &&
	SSHBOX_FERNET_KEYS="$K2,$K1" "$SSHBOX" fernet decrypt <t-old >out &&
	test_cmp rm out &&
	SSHBOX_FERNET_KEYS="$K2 , $K1" "$SSHBOX" fernet decrypt <t-old >out &&
	test_cmp rm out &&
	$FI encrypt "$K3" <rm >t-other &&
	test_expect_code 2 env SSHBOX_FERNET_KEYS="$K2,$K1" "$SSHBOX" fernet decrypt <t-other >out 2>err &&
	test ! -s out &&
	grep -q "invalid Fernet token" err &&
	SSHBOX_FERNET_KEYS="$K2,$K1" "$SSHBOX" fernet encrypt <rm >t-ours &&
	$FI decrypt "$K2,$K1" <t-ours >out &&
	test_cmp rm out
'

test_expect_success 'MultiFernet: a token rotated by Python decrypts with the new key alone' '
	$FI rotate "$K2,$K1" <t-old >t-rot &&
	SSHBOX_FERNET_KEYS=$K2 "$SSHBOX" fernet decrypt <t-rot >out &&
	test_cmp rm out
'

# --- --ttl ---------------------------------------------------------------------
test_expect_success '--ttl: an old token is refused when older than the ttl, accepted otherwise' '
	echo aged >aged &&
	craft at "$K1" -300 <aged >t-300 &&
	test_expect_code 2 env SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet decrypt --ttl 200 <t-300 >out 2>err &&
	test ! -s out &&
	grep -q "invalid Fernet token" err &&
	test_expect_code 1 $FI decrypt "$K1" --ttl 200 <t-300 2>/dev/null &&
	SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet decrypt --ttl 400 <t-300 >out &&
	test_cmp aged out &&
	SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet decrypt --ttl=400 <t-300 >out &&
	test_cmp aged out &&
	SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet decrypt <t-300 >out &&
	test_cmp aged out
'

test_expect_success '--ttl: a token from the far future is refused only with a ttl (60 s skew)' '
	craft at "$K1" 600 <aged >t-fut &&
	test_expect_code 2 env SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet decrypt --ttl 3600 <t-fut 2>err &&
	grep -q "invalid Fernet token" err &&
	test_expect_code 1 $FI decrypt "$K1" --ttl 3600 <t-fut 2>/dev/null &&
	SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet decrypt <t-fut >out &&
	test_cmp aged out &&
	craft at "$K1" 30 <aged >t-near &&
	SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet decrypt --ttl 10 <t-near >out &&
	test_cmp aged out
'

test_expect_success '--ttl: a fresh sshbox token passes a ttl in both implementations' '
	SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet encrypt <aged >t-now &&
	$FI decrypt "$K1" --ttl 60 <t-now >out &&
	test_cmp aged out &&
	SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet decrypt --ttl 60 <t-now >out &&
	test_cmp aged out &&
	SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet decrypt --ttl 0 <t-near >out
'

test_expect_success '--ttl: bad values are usage errors (exit 2)' '
	for v in abc -5 "" 1x " 5"; do
		test_expect_code 2 env SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet decrypt --ttl "$v" <t-now >out 2>err &&
		test ! -s out &&
		grep -q -- "--ttl" err || return 1
	done &&
	test_expect_code 2 env SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet decrypt --ttl <t-now 2>err &&
	grep -q -- "--ttl" err &&
	test_expect_code 2 env SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet decrypt --bogus <t-now 2>err
'

# --- strictness ------------------------------------------------------------------
for kind in std space newline percent garbage bits; do
	test_expect_success "a lenient token form Python accepts is refused: $kind" '
		printf "lenient" >len-msg &&
		craft lenient "$K1" '"$kind"' <len-msg >t-'"$kind"' &&
		test_expect_code 2 env SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet decrypt <t-'"$kind"' >out 2>err &&
		test ! -s out &&
		test_line_count = 1 err &&
		grep -q "invalid Fernet token" err
	'
done

test_expect_success 'an unpadded token is refused (as by Python)' '
	craft lenient "$K1" nopad <len-msg >t-nopad &&
	test_expect_code 2 env SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet decrypt <t-nopad >out 2>err &&
	grep -q "invalid Fernet token" err
'

test_expect_success 'tampered, truncated, empty and garbage tokens: exit 2, no output, no crash' '
	echo secret-data >sd &&
	$FI encrypt "$K1" <sd >good &&
	tok=$(cat good) &&
	n=${#tok} &&
	mid=${tok:60:1} &&
	if [ "$mid" = A ]; then rep=B; else rep=A; fi &&
	printf "%s\n" "${tok:0:60}$rep${tok:61}" >t-flip &&
	printf "%s\n" "${tok:0:n-4}" >t-trunc &&
	printf "%s\n" "${tok:0:n-24}" >t-trunc2 &&
	printf "%s\n" "gAAAAA" >t-short &&
	printf "%s\n" "AAAA" >t-tiny &&
	printf "not a token at all\n" >t-garbage &&
	: >t-empty &&
	printf "  \n\n" >t-blank &&
	head -c 300 /dev/urandom >t-random &&
	head -c 20000 /dev/zero | tr "\0" "A" >t-zeros &&
	for t in t-flip t-trunc t-trunc2 t-short t-tiny t-garbage t-empty t-blank t-random t-zeros; do
		test_expect_code 2 env SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" fernet decrypt <$t >out 2>err &&
		test ! -s out &&
		grep -q "invalid Fernet token" err || { echo "failed on $t"; return 1; }
	done
'

test_expect_success 'a token under another key is refused' '
	test_expect_code 2 env SSHBOX_FERNET_KEYS=$K2 "$SSHBOX" fernet decrypt <good >out 2>err &&
	test ! -s out &&
	grep -q "invalid Fernet token" err
'

# --- key configuration ---------------------------------------------------------
test_expect_success 'no keys configured: exit 2, the message names SSHBOX_FERNET_KEYS' '
	( unset SSHBOX_FERNET_KEYS &&
	  test_expect_code 2 "$SSHBOX" fernet encrypt <sd >out 2>err &&
	  test_expect_code 2 "$SSHBOX" fernet decrypt <good >>out 2>>err ) &&
	test ! -s out &&
	test_line_count = 2 err &&
	test "$(grep -c SSHBOX_FERNET_KEYS err)" = 2 &&
	test_expect_code 2 env SSHBOX_FERNET_KEYS= "$SSHBOX" fernet encrypt <sd >out 2>err &&
	grep -q SSHBOX_FERNET_KEYS err
'

test_expect_success 'a blank SSHBOX_FERNET_KEYS is "no keys" and says where it came from' '
	for v in " " "," " , , "; do
		test_expect_code 2 env SSHBOX_FERNET_KEYS="$v" "$SSHBOX" fernet encrypt <sd >out 2>err &&
		test ! -s out &&
		grep -q SSHBOX_FERNET_KEYS err || { cat err; return 1; }
	done
'

test_expect_success 'an invalid key: exit 2, names its position, never echoes the key' '
	bad=${K2:0:20}-NOT-A-KEY-${K2:30} &&
	test_expect_code 2 env SSHBOX_FERNET_KEYS="$K1,$bad" "$SSHBOX" fernet encrypt <sd >out 2>err &&
	test ! -s out &&
	test_line_count = 1 err &&
	grep -q "key 2 of 2" err &&
	! grep -qF "$bad" err && ! grep -qF "${K2:0:20}" err && ! grep -qF "${K1:0:12}" err &&
	short=${K3:0:30} &&
	test_expect_code 2 env SSHBOX_FERNET_KEYS="$short" "$SSHBOX" fernet decrypt <good >out 2>err &&
	grep -q "key 1 of 1" err &&
	! grep -qF "$short" err && ! grep -qF "${K3:0:10}" err &&
	nearly=${K3:0:42}x= &&
	test_expect_code 2 env SSHBOX_FERNET_KEYS="$K1,$K2,$nearly" "$SSHBOX" fernet decrypt <good >out 2>err &&
	test ! -s out &&
	grep -q "key 3 of 3" err &&
	! grep -qF "${K3:0:10}" err && ! grep -qF "${K1:0:10}" err
'

test_expect_success 'a key in the standard base64 alphabet (Python accepts it) is refused' '
	std=$(craft stdkey) &&
	test_expect_code 2 env SSHBOX_FERNET_KEYS="$std" "$SSHBOX" fernet encrypt <sd >out 2>err &&
	test ! -s out &&
	grep -q "key 1 of 1" err &&
	! grep -qF "$std" err
'

test_expect_success 'fernet_keys_file from a config file given with --config' '
	umask 077 &&
	printf "# Fernet keys, newest first\n\n  %s  \n%s\n" "$K2" "$K1" >keys.txt &&
	umask 022 &&
	printf "fernet_keys_file = %s\n" "$TEST_DIR/keys.txt" >with-keys.conf &&
	( unset SSHBOX_FERNET_KEYS &&
	  "$SSHBOX" --config "$TEST_DIR/with-keys.conf" fernet encrypt <rm >t-file &&
	  "$SSHBOX" --config "$TEST_DIR/with-keys.conf" fernet decrypt <t-old >out-old &&
	  "$SSHBOX" --config="$TEST_DIR/with-keys.conf" fernet decrypt <t-file >out-file ) 2>err &&
	test ! -s err &&
	test_cmp rm out-old &&
	test_cmp rm out-file &&
	$FI decrypt "$K2" <t-file >out &&
	test_cmp rm out
'

test_expect_success 'a keys file readable by others is used, with a warning' '
	cp keys.txt keys-open.txt && chmod 644 keys-open.txt &&
	printf "fernet_keys_file = %s\n" "$TEST_DIR/keys-open.txt" >open.conf &&
	( unset SSHBOX_FERNET_KEYS &&
	  "$SSHBOX" --config "$TEST_DIR/open.conf" fernet decrypt <t-old >out 2>err ) &&
	test_cmp rm out &&
	grep -q "keys-open.txt" err &&
	! grep -qF "${K1:0:10}" err
'

test_expect_success 'fernet_keys_file via SSHBOX_FERNET_KEYS_FILE; SSHBOX_FERNET_KEYS wins over it' '
	( unset SSHBOX_FERNET_KEYS &&
	  SSHBOX_FERNET_KEYS_FILE=$TEST_DIR/keys.txt "$SSHBOX" fernet decrypt <t-old >out ) &&
	test_cmp rm out &&
	SSHBOX_FERNET_KEYS_FILE=$TEST_DIR/keys.txt SSHBOX_FERNET_KEYS=$K3 "$SSHBOX" fernet encrypt <rm >t-env &&
	$FI decrypt "$K3" <t-env >out &&
	test_cmp rm out
'

test_expect_success 'keys file problems: missing, empty, a bad line (position, not text)' '
	( unset SSHBOX_FERNET_KEYS &&
	  printf "fernet_keys_file = %s\n" "$TEST_DIR/no-such-keys" >missing.conf &&
	  test_expect_code 2 "$SSHBOX" --config "$TEST_DIR/missing.conf" fernet encrypt <rm >out 2>err &&
	  test ! -s out &&
	  grep -q "no-such-keys" err &&
	  printf "# only a comment\n\n" >keys-empty.txt && chmod 600 keys-empty.txt &&
	  printf "fernet_keys_file = %s\n" "$TEST_DIR/keys-empty.txt" >kempty.conf &&
	  test_expect_code 2 "$SSHBOX" --config "$TEST_DIR/kempty.conf" fernet encrypt <rm >out 2>err &&
	  test ! -s out &&
	  grep -q "keys-empty.txt" err &&
	  printf "%s\n%s\n" "$K1" "${K2:0:43}" >keys-bad.txt && chmod 600 keys-bad.txt &&
	  printf "fernet_keys_file = %s\n" "$TEST_DIR/keys-bad.txt" >kbad.conf &&
	  test_expect_code 2 "$SSHBOX" --config "$TEST_DIR/kbad.conf" fernet decrypt <t-old >out 2>err &&
	  test ! -s out &&
	  test_line_count = 1 err &&
	  grep -q "key 2 of 2" err &&
	  ! grep -qF "${K2:0:10}" err && ! grep -qF "${K1:0:10}" err )
'

test_expect_success 'an explicit --config that does not exist is an error (exit 2)' '
	test_expect_code 2 env SSHBOX_FERNET_KEYS=$K1 "$SSHBOX" --config "$TEST_DIR/nope.conf" fernet encrypt <rm >out 2>err &&
	test ! -s out &&
	grep -q "nope.conf" err
'

test_done
