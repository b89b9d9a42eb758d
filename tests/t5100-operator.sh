#!/usr/bin/env bash
test_description='operator tools: sandbox check and sshbox ssh, through the same config, agent and master'
. "$(dirname "$0")/lib.sh"
. "$REPO_ROOT/tests/testbed.sh"
. "$REPO_ROOT/tests/sshbox-env.sh"

HOST_A=127.0.0.2
HOST_B=127.0.0.3

test_expect_success 'set up: sandbox a with Claude Code, sandbox b whose claude path is wrong' '
	sb_claude_install &&
	tb_start_all_default &&
	sb_env_init &&
	sb_account_key &&
	sb_register a &&
	tb_authorize_key b "$TEST_DIR/key-$SB_ACCOUNT.pub" &&
	"$SSHBOX" sandbox add --account acme --host $HOST_B --port "$TB_B_PORT" --user "$TB_B_USER" \
		--workdir "$TB_B_WORKDIR" --claude /opt/missing/claude --host-key "$TB_B_HOSTKEY" >/dev/null
'

test_expect_success 'sandbox check: Claude Code found on a (with its version), reported missing on b with the fix' '
	test_expect_code 1 "$SSHBOX" sandbox check --account acme >check.out 2>check.err &&
	grep -q "^sandbox $HOST_A (account acme): " check.out &&
	sed -n "/^sandbox $HOST_A /,/^sandbox /p" check.out >a.out &&
	grep -q "^  ok       claude           [0-9.]* (Claude Code)\$" a.out &&
	grep -q "^  ok       git              git version " a.out &&
	grep -q "^  ok       git-lfs          git-lfs/" a.out &&
	grep -q "^  ok       workdir          $TB_A_WORKDIR is writable\$" a.out &&
	grep -q "^  ok       disk             [0-9]* MiB free\$" a.out &&
	sed -n "/^sandbox $HOST_B /,\$p" check.out >b.out &&
	grep -q "^sandbox $HOST_B (account acme): [0-9] required items\\? missing\$" b.out &&
	grep -q "^  MISSING  claude           fix: npm install -g @anthropic-ai/claude-code" b.out &&
	for item in bash flock git git-lfs node npm python3 uv claude curl build-essential workdir disk; do
		grep -q "^  [A-Za-z]* *$item " b.out || return 1
	done &&
	test_must_be_empty_file() { test ! -s "$1"; } &&
	test_must_be_empty_file check.err
'

test_expect_success 'sandbox check --json: one document, items with required/ok/version/fix' '
	test_expect_code 1 "$SSHBOX" sandbox check --account acme --host $HOST_B --json >check.json &&
	/usr/bin/python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
(s,) = d[\"sandboxes\"]
assert s[\"host\"] == \"127.0.0.3\" and s[\"reachable\"] and not s[\"ok\"], s
items = {i[\"name\"]: i for i in s[\"items\"]}
c = items[\"claude\"]
assert c[\"required\"] and not c[\"ok\"] and \"npm install\" in c[\"fix\"], c
assert items[\"git\"][\"ok\"] and items[\"git\"][\"fix\"] is None
assert not items[\"curl\"][\"required\"]
" check.json
'

test_expect_success 'sandbox check: an unreachable sandbox is exit 75 with its reason' '
	tb_stop_sandbox b &&
	test_expect_code 75 "$SSHBOX" sandbox check --account acme --host $HOST_B >check.out &&
	grep -q "^sandbox $HOST_B (account acme): UNREACHABLE: cannot connect to sandbox .$HOST_B.: .*Connection refused" check.out &&
	test_expect_code 2 "$SSHBOX" sandbox check --host $HOST_B 2>err &&
	grep -q "needs --account" err &&
	test_must_fail "$SSHBOX" sandbox check --account acme --host 127.0.0.9 2>err &&
	grep -q "sandbox .127.0.0.9. is not registered for account .acme." err
'

test_expect_success 'sshbox ssh: a command through the pool, its exit status, stdin passed on' '
	"$SSHBOX" ssh --account acme --host $HOST_A -- echo "hello from" "\$(id -un)" >out &&
	echo "hello from $TB_A_USER" >expect &&
	test_cmp expect out &&
	test_expect_code 7 "$SSHBOX" ssh --account acme --host $HOST_A -- "exit 7" &&
	printf "line1\nline2\n" | "$SSHBOX" ssh --account acme --host $HOST_A -- cat >out &&
	printf "line1\nline2\n" >expect &&
	test_cmp expect out &&
	ssh -F "$SSHBOX_STATE_DIR/ssh_config" -O check "sbx-acme-$HOST_A" 2>/dev/null &&
	test -z "$(ls -A "$SSHBOX_STATE_DIR/agent/run")" &&
	test_expect_code 2 "$SSHBOX" ssh --account acme 2>err &&
	grep -q "needs --account and --host" err &&
	test_expect_code 2 "$SSHBOX" ssh --account acme --host "-oProxyCommand=x" 2>err
'

test_done
