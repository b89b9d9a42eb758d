#!/usr/bin/env bash
# make demo: a local test bed (Redis, two sshd sandboxes on 127.0.0.2 and
# 127.0.0.3, the scripted Messages API) and one real job through `sshbox run`
# with the real Claude Code CLI.  Everything it starts is stopped at the end.
set -eu
REPO_ROOT=$(cd "$(dirname "$0")/.." && pwd)
SSHBOX=$REPO_ROOT/build/sshbox
TEST_DIR=$(mktemp -d /tmp/sshbox-demo.XXXXXX)
chmod 0755 "$TEST_DIR"
export TEST_DIR SSHBOX REPO_ROOT

_atexit=()
test_atexit() { _atexit+=("$*"); }
cleanup() {
	local i
	for ((i = ${#_atexit[@]} - 1; i >= 0; i--)); do eval "${_atexit[$i]}" >/dev/null 2>&1 || true; done
	rm -rf "$TEST_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=../tests/testbed.sh
. "$REPO_ROOT/tests/testbed.sh"
# shellcheck source=../tests/sshbox-env.sh
. "$REPO_ROOT/tests/sshbox-env.sh"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '   $ %s\n' "$*"; }

say "Installing the pinned Claude Code CLI (cached after the first time)"
sb_claude_install
echo "   $SB_CLAUDE_BIN/claude"

say "Starting the test bed: Redis and two sshd sandboxes on loopback"
tb_start_all_default
echo "   redis $TB_REDIS_URL; sandbox a $TB_A_HOST:$TB_A_PORT, sandbox b $TB_B_HOST:$TB_B_PORT (user $TB_A_USER)"
sb_env_init
sb_start_fakeapi
echo "   scripted Messages API on 127.0.0.1:$SB_API_PORT"

say "Registering an account key (Fernet-encrypted in Redis) and the two sandboxes"
show "sshbox key set --account acme < key"
sb_account_key
sed 's/^/   /' "$TEST_DIR/key-acme.out"
show "sshbox sandbox add --account acme --host 127.0.0.2 ... (and 127.0.0.3)"
sb_register a
sb_register b
"$SSHBOX" sandbox list | sed 's/^/   /'

say "Running one job: the model asks for a Bash tool, Claude Code runs it on the sandbox"
sb_spec "Show me where you run" ',"job_id":"demo-1"' >"$TEST_DIR/spec.json"
show "sshbox run < spec.json"
"$SSHBOX" run <"$TEST_DIR/spec.json" | tee "$TEST_DIR/events.ndjson" | /usr/bin/python3 -c '
import json, sys
for line in sys.stdin:
    ev = json.loads(line)
    t = ev.get("type")
    if t == "sshbox.acquired":
        d = "sandbox %s slot %s fence %s" % (ev["sandbox"], ev["slot"], ev["fence"])
    elif t == "sshbox.started":
        d = "workdir " + ev["workdir"]
    elif t == "system":
        d = "%s, model %s, session %s" % (ev.get("subtype"), ev.get("model"), ev.get("session_id"))
    elif t in ("assistant", "user"):
        parts = []
        for c in ev["message"]["content"]:
            if c.get("type") == "text":
                parts.append("text: " + c["text"])
            elif c.get("type") == "tool_use":
                parts.append("tool_use %s: %s" % (c["name"], json.dumps(c["input"].get("command", c["input"]))))
            elif c.get("type") == "tool_result":
                r = c["content"] if isinstance(c["content"], str) else " ".join(x.get("text", "") for x in c["content"])
                parts.append("tool_result: " + r.replace("\n", " | "))
        d = "; ".join(parts)
    elif t == "result":
        d = "%s, %s turns, $%s" % (ev.get("subtype"), ev.get("num_turns"), ev.get("total_cost_usd"))
    elif t == "sshbox.result":
        d = "%s (exit %s) on %s in %s ms" % (ev["status"], ev["exit_code"], ev["sandbox"], ev["duration_ms"])
    else:
        d = line.strip()[:160]
    print("   %-16s %s" % (t, d))
'
say "Afterwards"
echo "   job dirs left on the sandboxes: $(ls -A "$TB_A_WORKDIR/jobs" "$TB_B_WORKDIR/jobs" 2>/dev/null | grep -vc ':$' || true)"
echo "   slot locks left in Redis:       $(tb_redis_cli --scan --pattern 'sshbox:*:slot:*' | wc -l)"
echo "   the raw event stream:           $(wc -l <"$TEST_DIR/events.ndjson") NDJSON lines"
say "Done: stopping the test bed"
