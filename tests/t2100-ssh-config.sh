#!/usr/bin/env bash
test_description='sshbox ssh-config: the generated ssh_config and known_hosts, as ssh and an operator use them'
. "$(dirname "$0")/lib.sh"
. "$REPO_ROOT/tests/testbed.sh"
. "$REPO_ROOT/tests/sshbox-env.sh"

PY=/usr/bin/python3

# gopt ALIAS KEY: the effective value of an option, from `ssh -G`.
gopt() {
	timeout 10 ssh -F "$CFG" -G "$1" >"G.$1" 2>"G.$1.err" || {
		cat "G.$1.err" >&2
		return 1
	}
	awk -v k="$2" '$1 == k { sub(/^[^ ]+ /, ""); print; found = 1; exit } END { exit !found }' "G.$1"
}

# The test's own ssh as an operator would type it, bounded.
op_ssh() {
	timeout 30 ssh -F "$CFG" "$@"
}

test_expect_success 'set up: Redis, two sandboxes, two accounts on the same sandbox' '
	tb_ensure_user &&
	tb_start_redis &&
	tb_start_sandbox a 127.0.0.2 &&
	tb_start_sandbox b 127.0.0.3 &&
	sb_env_init &&
	sb_account_key acme &&
	sb_account_key beta &&
	sb_register a acme &&
	sb_register b acme &&
	sb_register a beta &&
	CFG=$SSHBOX_STATE_DIR/ssh_config &&
	KH=$SSHBOX_STATE_DIR/known_hosts
'

test_expect_success 'ssh-config writes ssh_config and known_hosts (0600) in a 0700 state dir' '
	"$SSHBOX" ssh-config >out &&
	echo "$CFG" >expect &&
	test_cmp expect out &&
	"$SSHBOX" ssh-config --json >out.json &&
	test "$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))[\"ssh_config\"])" out.json)" = "$CFG" &&
	test "$(stat -c %a "$SSHBOX_STATE_DIR")" = 700 &&
	test "$(stat -c %a "$CFG")" = 600 &&
	test "$(stat -c %a "$KH")" = 600 &&
	for d in cm agent keys; do
		test "$(stat -c %a "$SSHBOX_STATE_DIR/$d")" = 700 || return 1
	done &&
	for f in "$SSHBOX_STATE_DIR"/keys/*; do
		test "$(stat -c %a "$f")" = 600 || return 1
	done
'

test_expect_success 'one Host block per sandbox, one pinned key per alias' '
	sed -n "s/^Host //p" "$CFG" | sort >hosts &&
	printf "%s\n" sbx-acme-127.0.0.2 sbx-acme-127.0.0.3 sbx-beta-127.0.0.2 >expect &&
	test_cmp expect hosts &&
	sort "$KH" >kh &&
	{
		echo "sbx-acme-127.0.0.2 $TB_A_HOSTKEY" &&
		echo "sbx-acme-127.0.0.3 $TB_B_HOSTKEY" &&
		echo "sbx-beta-127.0.0.2 $TB_A_HOSTKEY"
	} | sort >expect &&
	test_cmp expect kh
'

test_expect_success 'ssh -G parses it: the options of DESIGN §4 for sbx-acme-127.0.0.2' '
	st=$SSHBOX_STATE_DIR &&
	al=sbx-acme-127.0.0.2 &&
	test "$(gopt $al hostname)" = 127.0.0.2 &&
	test "$(gopt $al port)" = "$TB_A_PORT" &&
	test "$(gopt $al user)" = "$TB_A_USER" &&
	test "$(gopt $al controlmaster)" = auto &&
	cp=$(gopt $al controlpath) &&
	case $cp in "$st/cm/"?*) ;; *) echo "controlpath $cp not under $st/cm/"; false ;; esac &&
	test "${#cp}" -le 90 &&
	test "${cp#$st/cm/}" = "$(basename "$cp")" &&
	test "$(gopt $al stricthostkeychecking)" = true &&
	test "$(gopt $al userknownhostsfile)" = "$st/known_hosts" &&
	test "$(gopt $al globalknownhostsfile)" = /dev/null &&
	test "$(gopt $al hostkeyalias)" = $al &&
	test "$(gopt $al identityagent)" = "$st/agent/acme.sock" &&
	test "$(gopt $al identitiesonly)" = yes &&
	gopt $al identityfile | grep -qx "$st/keys/acme-v1.pub" &&
	test "$(gopt $al batchmode)" = yes &&
	test "$(gopt $al forwardagent)" = no &&
	test "$(gopt $al updatehostkeys)" = false &&
	sai=$(gopt $al serveraliveinterval) && test "$sai" -gt 0 &&
	ct=$(gopt $al connecttimeout) && test "$ct" -gt 0 &&
	pers=$(gopt $al controlpersist) && test "$pers" -gt 0 &&
	cut -d" " -f1-2 "$st/keys/acme-v1.pub" >got &&
	cut -d" " -f1-2 "$TEST_DIR/key-acme.pub" >expect &&
	test_cmp expect got
'

test_expect_success 'two accounts on the same host:port:user get different ControlPaths and agents' '
	test "$(gopt sbx-acme-127.0.0.2 hostname)" = "$(gopt sbx-beta-127.0.0.2 hostname)" &&
	test "$(gopt sbx-acme-127.0.0.2 port)" = "$(gopt sbx-beta-127.0.0.2 port)" &&
	test "$(gopt sbx-acme-127.0.0.2 user)" = "$(gopt sbx-beta-127.0.0.2 user)" &&
	a=$(gopt sbx-acme-127.0.0.2 controlpath) &&
	b=$(gopt sbx-beta-127.0.0.2 controlpath) &&
	c=$(gopt sbx-acme-127.0.0.3 controlpath) &&
	test "$a" != "$b" && test "$a" != "$c" && test "$b" != "$c" &&
	test "$(gopt sbx-beta-127.0.0.2 identityagent)" = "$SSHBOX_STATE_DIR/agent/beta.sock" &&
	gopt sbx-beta-127.0.0.2 identityfile | grep -qx "$SSHBOX_STATE_DIR/keys/beta-v1.pub"
'

test_expect_success 'the config carries no command-running directives' '
	! grep -Ei "^[[:space:]]*(ProxyCommand|LocalCommand|PermitLocalCommand|KnownHostsCommand|Match|ProxyJump|Include|RemoteCommand|SendEnv|SetEnv)\b" "$CFG" &&
	! grep -q "%" "$CFG" &&
	for al in $(sed -n "s/^Host //p" "$CFG"); do
		timeout 10 ssh -F "$CFG" -G "$al" >g || return 1
		! grep -Ei "^(proxycommand|localcommand|knownhostscommand|remotecommand) " g | grep -v " none\$" || return 1
		grep -qx "permitlocalcommand no" g || return 1
		grep -qx "forwardagent no" g || return 1
	done
'

test_expect_success 'an operator: ssh -F ssh_config sbx-acme-127.0.0.2 through an agent and a master' '
	sock=$SSHBOX_STATE_DIR/agent/acme.sock &&
	al=sbx-acme-127.0.0.2 &&
	cp=$(gopt $al controlpath) &&
	test_path_is_missing "$cp" &&
	rm -f "$sock" &&
	{ ssh-agent -D -a "$sock" >agent.out 2>&1 & } &&
	agent_pid=$! &&
	test_atexit "kill $agent_pid 2>/dev/null; true" &&
	test_when_finished "kill $agent_pid 2>/dev/null; wait $agent_pid 2>/dev/null; true" &&
	test_when_finished "timeout 10 ssh -F \"$CFG\" -O exit $al 2>/dev/null; true" &&
	test_wait_for "test -S \"$sock\"" 10 &&
	SSH_AUTH_SOCK=$sock timeout 10 ssh-add -q "$TEST_DIR/key-acme" </dev/null &&
	SSH_AUTH_SOCK=$sock timeout 10 ssh-add -l >keys &&
	test_line_count = 1 keys &&
	op_ssh $al id -un >out 2>err &&
	echo "$TB_A_USER" >expect &&
	test_cmp expect out &&
	test_wait_for "test -S \"$cp\"" 10 &&
	op_ssh -O check $al 2>check.err &&
	grep -q "Master running" check.err &&
	op_ssh $al "echo again" >out2 &&
	test "$(cat out2)" = again &&
	ls "$SSHBOX_STATE_DIR/cm" >cm.list &&
	test_line_count = 1 cm.list &&
	op_ssh -O exit $al 2>exit.err &&
	test_wait_for "test ! -e \"$cp\"" 10 &&
	test_must_fail op_ssh -O check $al 2>/dev/null
'

test_expect_success 'a sandbox whose host key changed is refused by ssh -F' '
	al=sbx-acme-127.0.0.3 &&
	test_must_fail --code=255 op_ssh -o ControlMaster=no $al true 2>before.err &&
	cat before.err &&
	grep -q "Permission denied" before.err &&
	! grep -q "Host key verification failed" before.err &&
	tb_stop_sandbox b &&
	rm -f "$TB_B_DIR/ssh_host_ed25519_key" "$TB_B_DIR/ssh_host_ed25519_key.pub" &&
	ssh-keygen -q -t ed25519 -N "" -C sshbox-test-sandbox-b-new -f "$TB_B_DIR/ssh_host_ed25519_key" </dev/null &&
	tb_restart_sandbox b &&
	test "$(cut -d" " -f1-2 "$TB_B_HOSTKEY_PUB")" != "$TB_B_HOSTKEY" &&
	test_must_fail --code=255 op_ssh $al true 2>after.err &&
	cat after.err &&
	grep -q "REMOTE HOST IDENTIFICATION HAS CHANGED" after.err &&
	grep -q "Host key verification failed" after.err &&
	ls "$SSHBOX_STATE_DIR/cm" >cm.list &&
	test_line_count = 0 cm.list
'

test_expect_success 'sshbox run on a sandbox registered with a wrong host key: exit 75, a clear error, no lock left' '
	ssh-keygen -q -t ed25519 -N "" -C wrong -f wrong_hostkey </dev/null &&
	sb_account_key wk &&
	tb_authorize_key a "$TEST_DIR/key-wk.pub" &&
	"$SSHBOX" sandbox add --account wk --host 127.0.0.2 --port "$TB_A_PORT" --user "$TB_A_USER" \
		--workdir "$TB_A_WORKDIR" --host-key "$(cut -d" " -f1-2 wrong_hostkey.pub)" >/dev/null &&
	SB_ACCOUNT=wk SB_API_PORT=9 sb_spec "say hi" ",\"job_id\":\"rb-wk-1\",\"wait_s\":5" >spec.json &&
	test_expect_code 75 timeout 60 "$SSHBOX" run <spec.json >events.ndjson 2>stderr.txt &&
	cat events.ndjson stderr.txt &&
	sb_events_valid events.ndjson &&
	sb_event_types events.ndjson >types &&
	test "$(tail -n 1 types)" = sshbox.result &&
	test "$(grep -c "^sshbox.result\$" types)" = 1 &&
	! grep -qx sshbox.started types &&
	test "$(sb_result_field events.ndjson status)" = error &&
	test "$(sb_result_field events.ndjson exit_code)" = 75 &&
	sb_result_field events.ndjson error >error.txt &&
	grep -qi "host key" error.txt &&
	test "$(tb_redis_cli --scan --pattern "sshbox:*:slot:*" | wc -l)" = 0 &&
	ls "$SSHBOX_STATE_DIR/agent" >agents &&
	! grep "^wk\." agents &&
	! pgrep -f "$SSHBOX_STATE_DIR/agent/wk\." &&
	test_path_is_missing "$TB_A_WORKDIR/jobs/rb-wk-1"
'

test_expect_success 'sshbox run on the sandbox whose host key changed: exit 75, host key error' '
	SB_API_PORT=9 sb_spec "say hi" ",\"job_id\":\"rb-hk-1\",\"wait_s\":5,\"sandbox\":\"127.0.0.3\"" >spec2.json &&
	test_expect_code 75 timeout 60 "$SSHBOX" run <spec2.json >ev2.ndjson 2>stderr2.txt &&
	cat ev2.ndjson &&
	sb_events_valid ev2.ndjson &&
	test "$(sb_result_field ev2.ndjson status)" = error &&
	test "$(sb_result_field ev2.ndjson sandbox)" = 127.0.0.3 &&
	sb_result_field ev2.ndjson error >error2.txt &&
	grep -qi "host key" error2.txt &&
	test "$(tb_redis_cli --scan --pattern "sshbox:*:slot:*" | wc -l)" = 0
'

test_expect_success 'Host aliases are unambiguous: account "acme-x" + host "box1.test" vs account "acme" + host "x-box1.test"' '
	test_when_finished "\"$SSHBOX\" sandbox remove --account acme-x --host box1.test >/dev/null 2>&1; \"$SSHBOX\" sandbox remove --account acme --host x-box1.test >/dev/null 2>&1; \"$SSHBOX\" ssh-config >/dev/null" &&
	"$SSHBOX" sandbox add --account acme --host x-box1.test --host-key "$TB_A_HOSTKEY" >/dev/null &&
	test_expect_code 2 "$SSHBOX" sandbox add --account acme-x --host box1.test --host-key "$TB_B_HOSTKEY" 2>err &&
	grep -q "would share the ssh alias .sbx-acme-x-box1.test." err &&
	"$SSHBOX" ssh-config >/dev/null &&
	sed -n "s/^Host //p" "$CFG" | sort | uniq -d >dup &&
	cut -d" " -f1 "$KH" | sort | uniq -d >>dup &&
	{ test ! -s dup || { echo "duplicate aliases / known_hosts names:"; cat dup; timeout 10 ssh -F "$CFG" -G sbx-acme-x-box1.test | grep -E "^(hostname|controlpath|identityagent) "; false; }; }
'

test_expect_success 'removing a sandbox removes its Host block' '
	"$SSHBOX" ssh-config >/dev/null &&
	grep -qx "Host sbx-beta-127.0.0.2" "$CFG" &&
	"$SSHBOX" sandbox remove --account beta --host 127.0.0.2 >/dev/null &&
	"$SSHBOX" ssh-config >/dev/null &&
	! grep -q "sbx-beta-" "$CFG" &&
	! grep -q "sbx-beta-" "$KH" &&
	grep -qx "Host sbx-acme-127.0.0.2" "$CFG" &&
	sb_register a beta &&
	"$SSHBOX" ssh-config >/dev/null &&
	grep -qx "Host sbx-beta-127.0.0.2" "$CFG"
'

test_expect_success 'key rotate changes the ControlPath and the IdentityFile of that account only' '
	a1=$(gopt sbx-acme-127.0.0.2 controlpath) &&
	a3=$(gopt sbx-acme-127.0.0.3 controlpath) &&
	b1=$(gopt sbx-beta-127.0.0.2 controlpath) &&
	ssh-keygen -q -t ed25519 -N "" -C sshbox-test-acme-2 -f key-acme2 </dev/null &&
	"$SSHBOX" key rotate --account acme <key-acme2 >rot.out &&
	"$SSHBOX" ssh-config >/dev/null &&
	a2=$(gopt sbx-acme-127.0.0.2 controlpath) &&
	a4=$(gopt sbx-acme-127.0.0.3 controlpath) &&
	test "$a1" != "$a2" && test "$a3" != "$a4" &&
	test "${#a2}" -le 90 &&
	test "$(gopt sbx-beta-127.0.0.2 controlpath)" = "$b1" &&
	gopt sbx-acme-127.0.0.2 identityfile | grep -qx "$SSHBOX_STATE_DIR/keys/acme-v2.pub" &&
	cut -d" " -f1-2 "$SSHBOX_STATE_DIR/keys/acme-v2.pub" >got &&
	cut -d" " -f1-2 key-acme2.pub >expect &&
	test_cmp expect got
'

test_expect_success 'a state dir too long for a ControlPath, or with a space, is refused' '
	long=$TEST_DIR/$(printf "%060d" 0) &&
	test_must_fail env SSHBOX_STATE_DIR="$long" "$SSHBOX" ssh-config >out 2>err &&
	cat err &&
	test_line_count = 1 err &&
	grep -q "ControlPath" err &&
	test_path_is_missing "$long/ssh_config" &&
	test_must_fail env SSHBOX_STATE_DIR="$TEST_DIR/st x" "$SSHBOX" ssh-config >out 2>err &&
	cat err &&
	test_line_count = 1 err &&
	grep -q "state_dir" err &&
	test_path_is_missing "$TEST_DIR/st x/ssh_config"
'

test_done
