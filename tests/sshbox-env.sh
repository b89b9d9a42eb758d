# Helpers for tests that drive sshbox itself: sourced after lib.sh and
# testbed.sh.  They start the real Claude Code CLI's stand-in API, register
# an account key and sandboxes, and build job specs.
#
#   sb_env_init               SSHBOX_* for a private state dir, Redis, keys
#   sb_claude_install         the pinned CLI; its bin dir joins the sandboxes' PATH
#   sb_start_fakeapi SCENARIO the scripted Messages API (SB_API_PORT, SB_API_LOG)
#   sb_account_key [ACCOUNT]  a fresh ed25519 key stored with `sshbox key set`
#   sb_register NAME [ACCOUNT] [SLOTS]  authorize the key, `sshbox sandbox add`
#   sb_spec PROMPT [EXTRA_JSON_MEMBERS]  a job spec on stdout

SB_ACCOUNT=acme
SB_API_KEY=sk-test-$$-api-key-0123456789
_SB_PY=/usr/bin/python3

sb_env_init() {
	export SSHBOX_CONFIG=$TEST_DIR/sshbox.conf
	: >"$SSHBOX_CONFIG" || return 1
	export SSHBOX_REDIS_URL=$TB_REDIS_URL
	export SSHBOX_STATE_DIR=$TEST_DIR/st
	export SSHBOX_FERNET_KEYS
	SSHBOX_FERNET_KEYS=$("$SSHBOX" fernet genkey) || return 1
	test_atexit sb_env_stop_masters
}

# Masters opened by jobs persist (ControlPersist): stop them with the test.
sb_env_stop_masters() {
	sb_stop_masters_in "$SSHBOX_STATE_DIR/cm"
}

# sb_stop_masters_in DIR: `ssh -O exit` every master socket in DIR
sb_stop_masters_in() {
	local s
	for s in "$1"/*; do
		[ -S "$s" ] || continue
		timeout 5 ssh -o ControlPath="$s" -O exit dummy >/dev/null 2>&1
	done
	return 0
}

sb_claude_install() {
	local bin
	bin=$("$REPO_ROOT/scripts/claude-cli.sh") || return 1
	export TB_SANDBOX_EXTRA_PATH=$bin
	export SB_CLAUDE_BIN=$bin
}

sb_start_fakeapi() {
	local scenario=${1:-$REPO_ROOT/tests/data/scenario-bash.json} i
	export SB_API_LOG=$TEST_DIR/fakeapi.log SB_API_PORT=
	rm -f "$TEST_DIR/fakeapi.port"
	"$_SB_PY" "$REPO_ROOT/tests/fakeapi.py" --scenario "$scenario" \
		--port-file "$TEST_DIR/fakeapi.port" --log "$SB_API_LOG" \
		</dev/null >"$TEST_DIR/fakeapi.out" 2>&1 &
	export SB_API_PID=$!
	test_atexit "kill $SB_API_PID 2>/dev/null; wait $SB_API_PID 2>/dev/null; true"
	for ((i = 0; i < 200; i++)); do
		if [ -s "$TEST_DIR/fakeapi.port" ]; then
			SB_API_PORT=$(cat "$TEST_DIR/fakeapi.port")
			return 0
		fi
		kill -0 "$SB_API_PID" 2>/dev/null || break
		sleep 0.05
	done
	echo "fakeapi did not start:" >&2
	cat "$TEST_DIR/fakeapi.out" >&2
	return 1
}

sb_account_key() {
	local account=${1:-$SB_ACCOUNT}
	rm -f "$TEST_DIR/key-$account" "$TEST_DIR/key-$account.pub"
	ssh-keygen -q -t ed25519 -N '' -C "sshbox-test-$account" -f "$TEST_DIR/key-$account" </dev/null &&
	"$SSHBOX" key set --account "$account" <"$TEST_DIR/key-$account" >"$TEST_DIR/key-$account.out"
}

sb_register() {
	local name=$1 account=${2:-$SB_ACCOUNT} slots=${3:-1}
	tb_authorize_key "$name" "$TEST_DIR/key-$account.pub" &&
	"$SSHBOX" sandbox add --account "$account" --host "$(tb_sbx_var "$name" HOST)" \
		--port "$(tb_sbx_var "$name" PORT)" --user "$(tb_sbx_var "$name" USER)" \
		--workdir "$(tb_sbx_var "$name" WORKDIR)" --slots "$slots" \
		--host-key "$(tb_sbx_var "$name" HOSTKEY)" >/dev/null
}

# JSON string of $1 (any bytes the test uses are valid UTF-8).
sb_json_str() {
	"$_SB_PY" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"
}

# sb_spec PROMPT [EXTRA]: EXTRA is appended inside the object (",\"k\":v");
# $SB_SPEC_ENV is appended inside "env" the same way.
sb_spec() {
	local prompt=$1 extra=${2-}
	printf '{"account":"%s","prompt":%s,"claude_args":["--permission-mode","bypassPermissions"],' \
		"$SB_ACCOUNT" "$(sb_json_str "$prompt")"
	printf '"env":{"ANTHROPIC_BASE_URL":"http://127.0.0.1:%s","ANTHROPIC_API_KEY":"%s",' "$SB_API_PORT" "$SB_API_KEY"
	printf '"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC":"1","CLAUDE_CODE_MAX_RETRIES":"0",'
	printf '"HTTPS_PROXY":"http://127.0.0.1:%s","NO_PROXY":"127.0.0.1,localhost"%s}%s}\n' \
		"$SB_API_PORT" "${SB_SPEC_ENV-}" "$extra"
}

# Field of the last sshbox.result in an event file.
sb_result_field() {
	"$_SB_PY" - "$1" "$2" <<'PY'
import json, sys
res = None
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.strip()
    if not line:
        continue
    ev = json.loads(line)
    if ev.get("type") == "sshbox.result":
        res = ev
if res is None:
    sys.exit(1)
v = res.get(sys.argv[2])
print("null" if v is None else v)
PY
}

# Every line of an event file must be one JSON object.
sb_events_valid() {
	"$_SB_PY" - "$1" <<'PY'
import json, sys
n = 0
for line in open(sys.argv[1], encoding="utf-8"):
    ev = json.loads(line)
    assert isinstance(ev, dict), line
    n += 1
assert n > 0
PY
}

# The sequence of event types, one per line.
sb_event_types() {
	"$_SB_PY" -c '
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    print(json.loads(line).get("type"))' "$1"
}
