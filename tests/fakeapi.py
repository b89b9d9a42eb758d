#!/usr/bin/python3
"""Scripted stand-in for the Anthropic Messages API, for sshbox's tests.

Usage:
  fakeapi.py --scenario FILE --port-file FILE --log FILE [--host 127.0.0.1]

Binds HOST on an ephemeral port, writes the port number to --port-file
(tmp + rename, so a reader never sees a partial file) once it accepts
connections, and logs one JSON line per request to --log.  Python 3 standard
library only.  SIGTERM / SIGINT shut it down cleanly (exit 0).

Scenario file (JSON):
  {
    "turns": [
      {"tool_use": {"name": "Bash",
                    "input": {"command": "pwd", "description": "..."}}},
      {"text": "Done."}
    ],
    "expect_api_key": "optional: requests with another key get a 401",
    "side_text": "optional: answer for side requests (default 'OK')"
  }
A turn may hold "text", "tool_use" (both: text block first), "delay_ms"
(sleep before answering), "hang": true (never answer; the connection stays
open until the client goes away or the server stops) and "error":
{"status": 529, "type": "overloaded_error", "message": "..."} (answer with
that error).  The CLI retries 401, 429 and 5xx up to 10 times with
exponential backoff: set CLAUDE_CODE_MAX_RETRIES=0 in its environment for
fast fault tests (and API_TIMEOUT_MS=<ms> for "hang").

Turn selection: a "main" request (the agent loop's request: it carries a
non-empty "tools" list) is answered with turns[n], n = number of tool_result
blocks in its messages; past the end, the last turn is reused if it is a plain
text turn, else "Done.".  Any other /v1/messages request is a side request
and gets side_text without consuming a turn; when it asks for structured
output (output_config.format json_schema, e.g. Claude Code 2.1.112's
session-title query to the small model, made only when
CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC is unset) the answer is a JSON value
of that schema built from side_text.

Everything else gets a harmless answer, logged: count_tokens an estimate;
other paths (the CLI's `HEAD /` preconnect) a 404 JSON error; CONNECT (the
CLI's calls to other hosts, when its HTTPS_PROXY points here, e.g. the
metrics opt-out check to api.anthropic.com at exit) a 403, so nothing
leaves the machine, not even a DNS lookup.  See docs/testing-claude.md.
"""

import argparse
import json
import os
import random
import select
import signal
import string
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STOP = threading.Event()          # set on SIGTERM: ends hangs and delays
LOG_LOCK = threading.Lock()


def rid(prefix, n=24):
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(random.choice(alphabet) for _ in range(n))


def estimate_tokens(obj):
    try:
        return max(1, len(json.dumps(obj)) // 4)
    except (TypeError, ValueError):
        return 1


def count_tool_results(messages):
    n = 0
    for m in messages or []:
        if not isinstance(m, dict):
            continue
        c = m.get("content")
        if isinstance(c, list):
            for b in c:
                if isinstance(b, dict) and b.get("type") == "tool_result":
                    n += 1
    return n


def last_user_text(messages):
    """First 200 characters of the last text block of the last user message."""
    for m in reversed(messages or []):
        if not isinstance(m, dict) or m.get("role") != "user":
            continue
        c = m.get("content")
        if isinstance(c, str):
            return c[:200]
        if isinstance(c, list):
            for b in reversed(c):
                if isinstance(b, dict) and b.get("type") == "text":
                    return str(b.get("text", ""))[:200]
        return ""
    return ""


def system_head(system):
    """First 120 characters of the system prompt (for telling requests apart)."""
    if isinstance(system, str):
        return system[:120]
    if isinstance(system, list):
        parts = [b.get("text", "") for b in system if isinstance(b, dict)]
        return " | ".join(p[:80] for p in parts)[:240]
    return ""


def sample_for_schema(schema, text, depth=0):
    """A small value that satisfies a JSON schema (for structured-output side
    requests, e.g. the session-title query asks for {"title": string})."""
    if not isinstance(schema, dict) or depth > 8:
        return text
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return sample_for_schema(schema[key][0], text, depth + 1)
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), t[0] if t else "string")
    if t == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {k: sample_for_schema(v, text, depth + 1) for k, v in props.items()}
    if t == "array":
        return []
    if t in ("integer", "number"):
        return 0
    if t == "boolean":
        return False
    if t == "null":
        return None
    return text


def structured_schema(body):
    """The JSON schema a request asks the answer to follow, if any."""
    for fmt in ((body.get("output_config") or {}).get("format"),
                body.get("output_format")):
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            return fmt.get("schema") or {}
    return None


class Scenario:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict) or not isinstance(data.get("turns"), list):
            raise ValueError("scenario must be an object with a 'turns' list")
        self.turns = data["turns"]
        self.expect_api_key = data.get("expect_api_key")
        self.side_text = data.get("side_text", "OK")

    def turn(self, index):
        if index < len(self.turns):
            return self.turns[index]
        if self.turns:
            last = self.turns[-1]
            if "tool_use" not in last and "hang" not in last and "error" not in last:
                return last
        return {"text": "Done."}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fakeapi/1"
    sys_version = ""

    # ------------------------------------------------------------ plumbing
    def log_message(self, fmt, *args):  # silence the default stderr log
        pass

    def log_json(self, **fields):
        rec = {"ts": time.time(), "method": self.command, "path": self.path}
        rec.update(fields)
        line = json.dumps(rec, sort_keys=False) + "\n"
        with LOG_LOCK:
            with open(self.server.log_path, "a", encoding="utf-8") as f:
                f.write(line)

    def read_body(self):
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n) if n > 0 else b""
        if raw:
            try:
                return json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                return None
        return {}

    def send_json(self, status, obj, extra_headers=None):
        body = json.dumps(obj, separators=(",", ":")).encode("utf-8")
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header("request-id", rid("req_"))
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def send_error_json(self, status, etype, message):
        self.send_json(status, {"type": "error",
                                "error": {"type": etype, "message": message}})

    def write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def sse(self, event, obj):
        data = json.dumps(obj, separators=(",", ":"))
        payload = "event: %s\ndata: %s\n\n" % (event, data)
        self.write_chunk(payload.encode("utf-8"))

    def api_key(self):
        key = self.headers.get("x-api-key")
        if key is not None:
            return key
        auth = self.headers.get("authorization")
        if auth and auth.lower().startswith("bearer "):
            return auth[7:]
        return auth

    # ------------------------------------------------------------ routing
    def do_GET(self):
        self.other()

    def do_HEAD(self):
        self.other()

    def do_PUT(self):
        self.other()

    def do_DELETE(self):
        self.other()

    def do_CONNECT(self):
        # The CLI's own calls to other hosts, when the test sets
        # HTTPS_PROXY to this server: refuse (and log) them.
        self.log_json(kind="proxy", user_agent=self.headers.get("user-agent"),
                      status=403)
        self.close_connection = True
        self.send_response(403)
        self.send_header("content-length", "0")
        self.send_header("connection", "close")
        self.end_headers()

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        if path == "/v1/messages":
            self.messages()
        elif path == "/v1/messages/count_tokens":
            self.count_tokens()
        else:
            self.other()

    def other(self):
        n = int(self.headers.get("content-length") or 0)
        if n > 0:
            self.rfile.read(n)
        kind = "proxy" if "://" in self.path else "other"
        self.log_json(kind=kind, api_key=self.api_key(),
                      user_agent=self.headers.get("user-agent"), status=404)
        if self.command == "HEAD":
            self.send_response(404)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        self.send_error_json(404, "not_found_error", "Not found: %s" % self.path)

    def auth_ok(self):
        want = self.server.scenario.expect_api_key
        return want is None or self.api_key() == want

    def count_tokens(self):
        body = self.read_body()
        if not self.auth_ok():
            self.log_json(kind="count_tokens", api_key=self.api_key(), status=401)
            self.send_error_json(401, "authentication_error", "invalid x-api-key")
            return
        n = estimate_tokens(body)
        self.log_json(kind="count_tokens", api_key=self.api_key(),
                      model=(body or {}).get("model"), status=200)
        self.send_json(200, {"input_tokens": n})

    def messages(self):
        body = self.read_body()
        if not isinstance(body, dict):
            self.log_json(kind="bad", status=400)
            self.send_error_json(400, "invalid_request_error", "body is not JSON")
            return
        msgs = body.get("messages") or []
        tools = body.get("tools") or []
        main = len(tools) > 0
        n_tr = count_tool_results(msgs)
        fields = {
            "kind": "main" if main else "side",
            "model": body.get("model"),
            "stream": bool(body.get("stream")),
            "api_key": self.api_key(),
            "n_messages": len(msgs),
            "n_tool_results": n_tr,
            "n_tools": len(tools),
            "max_tokens": body.get("max_tokens"),
            "last_user_text": last_user_text(msgs),
            "system_head": system_head(body.get("system")),
            "user_agent": self.headers.get("user-agent"),
            "beta": self.headers.get("anthropic-beta"),
        }
        if not self.auth_ok():
            self.log_json(status=401, **fields)
            self.send_error_json(401, "authentication_error", "invalid x-api-key")
            return
        if main:
            turn = self.server.scenario.turn(n_tr)
            fields["turn"] = n_tr
        else:
            side = self.server.scenario.side_text
            schema = structured_schema(body)
            if schema is not None:
                side = json.dumps(sample_for_schema(schema, side))
            turn = {"text": side}
        if not isinstance(turn, dict):
            turn = {"text": str(turn)}
        if turn.get("hang"):
            self.log_json(status="hang", **fields)
            self.hang()
            return
        delay = turn.get("delay_ms")
        if delay:
            if STOP.wait(float(delay) / 1000.0):
                return
        err = turn.get("error")
        if isinstance(err, dict):
            status = int(err.get("status", 500))
            self.log_json(status=status, **fields)
            self.send_error_json(status, err.get("type", "api_error"),
                                 err.get("message", "scripted error"))
            return
        self.log_json(status=200, **fields)
        blocks = self.blocks_for(turn)
        stop_reason = "tool_use" if any(b["type"] == "tool_use" for b in blocks) \
            else "end_turn"
        model = body.get("model") or "claude-sonnet-4-5"
        in_tok = estimate_tokens(body)
        out_tok = max(1, estimate_tokens(blocks))
        if body.get("stream"):
            self.stream(model, blocks, stop_reason, in_tok, out_tok)
        else:
            self.send_json(200, {
                "id": rid("msg_"), "type": "message", "role": "assistant",
                "model": model, "content": blocks,
                "stop_reason": stop_reason, "stop_sequence": None,
                "usage": {"input_tokens": in_tok, "output_tokens": out_tok,
                          "cache_creation_input_tokens": 0,
                          "cache_read_input_tokens": 0},
            })

    @staticmethod
    def blocks_for(turn):
        blocks = []
        if turn.get("text") is not None:
            blocks.append({"type": "text", "text": str(turn["text"])})
        tu = turn.get("tool_use")
        if isinstance(tu, dict):
            blocks.append({"type": "tool_use", "id": rid("toolu_"),
                           "name": tu.get("name", "Bash"),
                           "input": tu.get("input", {})})
        if not blocks:
            blocks.append({"type": "text", "text": "Done."})
        return blocks

    def hang(self):
        # Never answer.  Return (dropping the connection) when the server
        # stops or the client has gone away.
        self.close_connection = True
        while not STOP.is_set():
            try:
                r, _, _ = select.select([self.connection], [], [], 0.2)
            except (OSError, ValueError):
                return
            if r:
                try:
                    if not self.connection.recv(1, 0x2):  # MSG_PEEK: EOF?
                        return
                except OSError:
                    return
                time.sleep(0.5)

    def stream(self, model, blocks, stop_reason, in_tok, out_tok):
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", rid("req_"))
        self.end_headers()
        self.sse("message_start", {"type": "message_start", "message": {
            "id": rid("msg_"), "type": "message", "role": "assistant",
            "model": model, "content": [], "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": in_tok, "output_tokens": 1,
                      "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0}}})
        self.sse("ping", {"type": "ping"})
        for i, b in enumerate(blocks):
            if b["type"] == "text":
                self.sse("content_block_start", {
                    "type": "content_block_start", "index": i,
                    "content_block": {"type": "text", "text": ""}})
                text = b["text"]
                step = 40
                for k in range(0, max(len(text), 1), step):
                    self.sse("content_block_delta", {
                        "type": "content_block_delta", "index": i,
                        "delta": {"type": "text_delta", "text": text[k:k + step]}})
            else:
                self.sse("content_block_start", {
                    "type": "content_block_start", "index": i,
                    "content_block": {"type": "tool_use", "id": b["id"],
                                      "name": b["name"], "input": {}}})
                js = json.dumps(b["input"])
                step = 30
                self.sse("content_block_delta", {
                    "type": "content_block_delta", "index": i,
                    "delta": {"type": "input_json_delta", "partial_json": ""}})
                for k in range(0, len(js), step):
                    self.sse("content_block_delta", {
                        "type": "content_block_delta", "index": i,
                        "delta": {"type": "input_json_delta",
                                  "partial_json": js[k:k + step]}})
            self.sse("content_block_stop", {"type": "content_block_stop", "index": i})
        self.sse("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": out_tok}})
        self.sse("message_stop", {"type": "message_stop"})
        self.write_chunk(b"")  # zero-length chunk: end of body


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # A client that went away mid-answer is no error worth a traceback.
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args(argv)

    if not (args.host.startswith("127.") or args.host in ("localhost", "::1")):
        ap.error("--host must be a loopback address")
    try:
        scenario = Scenario(args.scenario)
    except (OSError, ValueError) as e:
        print("fakeapi: bad scenario %s: %s" % (args.scenario, e), file=sys.stderr)
        return 2

    server = Server((args.host, 0), Handler)
    server.scenario = scenario
    server.log_path = args.log
    open(args.log, "a").close()

    def on_signal(signum, frame):
        STOP.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True)
    t.start()

    port = server.server_address[1]
    tmp = "%s.tmp.%d" % (args.port_file, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.rename(tmp, args.port_file)

    while not STOP.wait(0.1):  # a signal only wakes this at the next timeout
        pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
