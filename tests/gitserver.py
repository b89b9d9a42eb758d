#!/usr/bin/python3
"""A real git server on loopback for sshbox's tests: smart HTTP(S) and Git LFS
behind basic auth, the way GitHub serves a private repository to a GitHub App
installation token.

Usage:
  gitserver.py --root DIR --port-file FILE --token-file FILE --log FILE
               [--tls-cert PEM --tls-key PEM] [--bind 127.0.0.1]
               [--pid-file FILE] [--watch-pid PID] [--setsid] [--git GIT]
               [--cgi-timeout S]

Python 3 standard library only (run it with /usr/bin/python3).

Listening
  Binds --bind (default 127.0.0.1; only 127.0.0.0/8 is accepted) on an
  ephemeral port.  Once it accepts connections it writes --pid-file (when
  given) and then the port number to --port-file (tmp + rename: a reader
  never sees a partial file).  With --tls-cert/--tls-key it speaks HTTPS
  only (the TLS handshake runs in the connection's thread, never in the
  accept loop).  HTTP/1.1 with keep-alive; responses of unknown length are
  chunked.

Auth
  Every request needs HTTP basic auth: user `x-access-token`, password = the
  content of --token-file (surrounding whitespace stripped), read again on
  every request so that a test can rotate the token (write a new file and
  rename it over the old one).  Anything else gets 401 with
  `WWW-Authenticate: Basic realm="sshbox-test"` (a request body is drained
  first, up to 16 MiB, so the client reads the 401 instead of a reset).

Git (smart HTTP, protocol v0/v1/v2, fetch and push)
  Any GET/POST that is not an LFS route runs `git http-backend` as a CGI
  with GIT_PROJECT_ROOT=<root>, GIT_HTTP_EXPORT_ALL=1 and
  REMOTE_USER=x-access-token.  The request body (Content-Length or chunked,
  which git uses for large pushes) is streamed to its stdin;
  Content-Encoding (gzip: large fetch negotiations) is passed through as
  HTTP_CONTENT_ENCODING and the Git-Protocol header as HTTP_GIT_PROTOCOL and
  GIT_PROTOCOL.  Push (git-receive-pack) works on repositories with
  `http.receivepack true` (http-backend also enables it for any
  authenticated user when the setting is absent).  The CGI is
  <exec-path>/git-http-backend itself (not the `git` wrapper), in a process
  group of its own: when the client goes away, or after --cgi-timeout
  seconds (default 300), the group is killed.  The server is a child
  subreaper and reaps what those kills orphan (no zombies left to an init
  that does not reap).

Git LFS (https://github.com/git-lfs/git-lfs/blob/main/docs/api/)
  POST <repo>.git/info/lfs/objects/batch   basic transfer; actions point back
      here: download GET /lfs/<oid>, upload PUT /lfs/<oid>?size=N, verify
      POST /lfs/verify.  Actions carry no credentials ("authenticated" is not
      set): git-lfs authenticates them with the same credential helper.
  PUT /lfs/<oid>   stores <root>/lfs-objects/<oid> after checking sha256 and
      size (422 otherwise; nothing is stored).
  GET /lfs/<oid>   the object (404 when missing).
  POST <repo>.git/info/lfs/locks/verify, GET .../locks   empty lists, so
      `git lfs push` does not warn about locking.
  Objects are shared by all repositories of the root.

Log
  One JSON object per request and line in --log: time, method, path (with
  the query), status, user (the basic-auth user name, or null), auth_ok,
  ms, in/out (body bytes), and when present ua, proto (Git-Protocol), enc
  (Content-Encoding), chunked, lfs (the batch operation), aborted (why the
  exchange did not complete: the client went away, a malformed body; the
  status is then the one already sent, or 499/400).  Never a
  password; a current or earlier token found in the path or the user name
  is replaced by "<token>" and named in "leak": ["path", "user"].

Stopping
  SIGTERM, SIGINT and SIGHUP: stop accepting, kill running CGIs, remove the
  port and pid files, exit 0.  With --watch-pid, the server also stops when
  that process is gone (the test script died without its EXIT trap).
  --setsid: a session of its own (its CGIs share its process group), made
  by the server itself so that the PID the caller holds is the server's.
"""

import argparse
import base64
import ctypes
import glob
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USER = "x-access-token"
REALM = "sshbox-test"
IO_TIMEOUT = 60           # seconds for any one socket read or write
DRAIN_LIMIT = 16 << 20    # unauthenticated bodies read before a 401
JSON_LIMIT = 4 << 20      # largest LFS JSON request
LFS_JSON = "application/vnd.git-lfs+json"

RE_BATCH = re.compile(r"^/(.+\.git)/info/lfs/objects/batch$")
RE_LOCKS_VERIFY = re.compile(r"^/(.+\.git)/info/lfs/locks/verify$")
RE_LOCKS = re.compile(r"^/(.+\.git)/info/lfs/locks$")
RE_OBJECT = re.compile(r"^/lfs/([0-9a-f]{64})$")
RE_OID = re.compile(r"^[0-9a-f]{64}$")
RE_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9a-fA-F:.]+\](:[0-9]{1,5})?$")

# Headers that never reach the CGI as HTTP_*: credentials, and the ones CGI
# passes in its own variables.
CGI_SKIP = {"authorization", "proxy-authorization", "content-type",
            "content-length", "transfer-encoding", "connection", "expect"}


class ClientGone(Exception):
    """The client closed the connection or sent a malformed body."""


class GitServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, args):
        super().__init__(addr, Handler)
        self.args = args
        self.root = os.path.realpath(args.root)
        self.lfs_dir = os.path.join(self.root, "lfs-objects")
        self.tls = False
        self.log_lock = threading.Lock()
        self.log_file = open(args.log, "a", encoding="utf-8")
        self.procs = set()
        self.procs_lock = threading.Lock()
        self.tokens_seen = set()      # for redaction in the log only
        self.stopping = threading.Event()
        self.backend = backend_argv(args.git)

    def spawn_cgi(self, env):
        # Created and registered under the lock the reaper takes: it never
        # reaps a CGI whose Popen does not know yet.  A process group of its
        # own, so that a kill reaches http-backend's upload-pack too.
        with self.procs_lock:
            proc = subprocess.Popen(self.backend, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, env=env,
                                    cwd=self.root, process_group=0)
            self.procs.add(proc)
        return proc

    def forget_cgi(self, proc):
        with self.procs_lock:
            self.procs.discard(proc)

    def reap_orphans(self):
        """Reap the processes we adopted as a child subreaper (a CGI's
        children when the CGI was killed): children that are no Popen's."""
        with self.procs_lock:
            known = {p.pid for p in self.procs}
            for pid in child_pids():
                if pid in known:
                    continue
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass

    def current_token(self):
        try:
            with open(self.args.token_file, encoding="utf-8") as f:
                tok = f.read().strip()
        except OSError:
            return None
        if not tok:
            return None
        self.tokens_seen.add(tok)
        return tok

    def log(self, rec):
        line = json.dumps(rec, separators=(",", ":"), sort_keys=False) + "\n"
        with self.log_lock:
            self.log_file.write(line)
            self.log_file.flush()

    def stop(self, why):
        if self.stopping.is_set():
            return
        self.stopping.set()
        sys.stderr.write("gitserver: stopping (%s)\n" % why)
        # shutdown() waits for serve_forever(): never from its own thread.
        threading.Thread(target=self.shutdown, daemon=True).start()

    def kill_procs(self):
        with self.procs_lock:
            procs = list(self.procs)
        for p in procs:
            kill_cgi(p)
        for p in procs:
            try:
                p.wait(timeout=5)
            except (subprocess.TimeoutExpired, OSError):
                pass
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            self.reap_orphans()
            if not child_pids():
                break
            time.sleep(0.05)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError, ClientGone)):
            return
        super().handle_error(request, client_address)


def backend_argv(git):
    """git-http-backend itself, not the `git http-backend` wrapper: killing
    the wrapper would orphan the real CGI."""
    try:
        out = subprocess.run([git, "--exec-path"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, timeout=30, check=True)
        path = os.path.join(out.stdout.decode().strip(), "git-http-backend")
        if os.access(path, os.X_OK):
            return [path]
    except (OSError, subprocess.SubprocessError):
        pass
    return [git, "http-backend"]


def child_pids():
    pids = []
    for f in glob.glob("/proc/self/task/*/children"):
        try:
            with open(f) as fh:
                pids.extend(int(x) for x in fh.read().split())
        except (OSError, ValueError):
            pass
    return pids


def kill_cgi(proc):
    """SIGKILL a CGI's process group (while its PID cannot be reused: it is
    not reaped yet)."""
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass


def become_subreaper():
    """PR_SET_CHILD_SUBREAPER: orphans of our CGIs become our children, not
    init's (which, in some VMs, never reaps them)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sshbox-gitserver/1"
    sys_version = ""
    timeout = IO_TIMEOUT
    # Headers and body go out in separate writes: without TCP_NODELAY the
    # second one waits for the client's delayed ACK (40 ms per request).
    disable_nagle_algorithm = True

    # --- connection ---------------------------------------------------------
    def setup(self):
        super().setup()
        self.tls_ok = True
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError) as e:
                self.tls_ok = False
                sys.stderr.write("gitserver: TLS handshake with %s failed: %s\n"
                                 % (self.client_address[0], e))

    def handle(self):
        if not self.tls_ok:
            self.close_connection = True
            return
        try:
            super().handle()
        except (ConnectionError, TimeoutError, ssl.SSLError, ClientGone):
            self.close_connection = True

    def log_request(self, code="-", size="-"):
        pass                        # our own JSON log instead

    def log_message(self, fmt, *args):
        sys.stderr.write("gitserver: %s %s\n" % (self.client_address[0], fmt % args))

    # --- per-request state ----------------------------------------------------
    def parse_request(self):
        self.rec = {"method": None, "path": None, "status": None, "user": None,
                    "auth_ok": False}
        self.t0 = time.monotonic()
        self.bytes_in = 0
        self.bytes_out = 0
        self.body_done = False
        self.logged = False
        ok = super().parse_request()
        if ok:
            self.rec["method"] = self.command
            self.rec["path"] = self.path
        return ok

    def finish_log(self, status=None):
        if self.logged:
            return
        self.logged = True
        rec = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        rec.update(self.rec)
        rec["method"] = rec["method"] or self.command
        rec["path"] = rec["path"] or self.path
        if status is not None:
            rec["status"] = status
        rec["ms"] = int((time.monotonic() - self.t0) * 1000)
        rec["in"] = self.bytes_in
        rec["out"] = self.bytes_out
        h = self.headers
        if h is not None:
            for key, name in (("ua", "User-Agent"), ("proto", "Git-Protocol"),
                              ("enc", "Content-Encoding")):
                if h.get(name):
                    rec[key] = h.get(name)
            if self.is_chunked():
                rec["chunked"] = True
        leak = []
        for field in ("path", "user", "ua"):
            v = rec.get(field)
            if isinstance(v, str):
                for tok in list(self.server.tokens_seen):
                    if tok in v:
                        v = v.replace(tok, "<token>")
                        if field not in leak:
                            leak.append(field)
                rec[field] = v
        if leak:
            rec["leak"] = leak
        self.server.log(rec)

    # --- request bodies -------------------------------------------------------
    def is_chunked(self):
        te = self.headers.get("Transfer-Encoding", "") if self.headers else ""
        return "chunked" in te.lower()

    def content_length(self):
        v = self.headers.get("Content-Length")
        if v is None:
            return None
        try:
            n = int(v)
        except ValueError:
            raise ClientGone("bad Content-Length")
        if n < 0:
            raise ClientGone("bad Content-Length")
        return n

    def has_body(self):
        return self.is_chunked() or (self.content_length() or 0) > 0

    def body_chunks(self):
        """The request body, decoded from chunked transfer if needed."""
        rf = self.rfile
        if self.is_chunked():
            while True:
                line = rf.readline(1026)
                if not line.endswith(b"\n"):
                    raise ClientGone("truncated chunk header")
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ClientGone("bad chunk header")
                if size == 0:
                    for _ in range(100):            # trailers
                        t = rf.readline(8194)
                        if t in (b"\r\n", b"\n"):
                            break
                        if not t:
                            raise ClientGone("truncated trailers")
                    break
                left = size
                while left:
                    data = rf.read(min(left, 65536))
                    if not data:
                        raise ClientGone("truncated chunk")
                    left -= len(data)
                    self.bytes_in += len(data)
                    yield data
                if rf.readline(3) not in (b"\r\n", b"\n"):
                    raise ClientGone("bad chunk end")
        else:
            left = self.content_length() or 0
            while left:
                data = rf.read(min(left, 65536))
                if not data:
                    raise ClientGone("truncated body")
                left -= len(data)
                self.bytes_in += len(data)
                yield data
        self.body_done = True

    def read_body(self, limit):
        parts, n = [], 0
        for data in self.body_chunks():
            n += len(data)
            if n > limit:
                raise ClientGone("body too large")
            parts.append(data)
        return b"".join(parts)

    def drain_body(self, limit=DRAIN_LIMIT):
        """Read and drop the body so the connection can carry on; False when
        it is too large (then the connection is closed after the answer)."""
        if not self.has_body():
            self.body_done = True
            return True
        cl = self.content_length()
        if cl is not None and not self.is_chunked() and cl > limit:
            return False
        n = 0
        for data in self.body_chunks():
            n += len(data)
            if n > limit:
                return False
        return True

    # --- responses ------------------------------------------------------------
    def send_simple(self, code, body=b"", ctype="text/plain; charset=utf-8",
                    headers=()):
        if isinstance(body, str):
            body = body.encode()
        if not self.body_done and not self.drain_body():
            self.close_connection = True
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)
            self.bytes_out += len(body)
        self.finish_log(code)

    def send_json(self, code, obj):
        self.send_simple(code, json.dumps(obj).encode(), LFS_JSON)

    def send_401(self):
        if self.is_lfs_path():
            body, ctype = json.dumps({"message": "Credentials needed"}).encode(), LFS_JSON
        else:
            body, ctype = b"authentication required\n", "text/plain; charset=utf-8"
        self.send_simple(401, body, ctype,
                         headers=[("WWW-Authenticate", 'Basic realm="%s"' % REALM)])

    def is_lfs_path(self):
        p = urllib.parse.urlsplit(self.path).path
        return "/info/lfs/" in p or p.startswith("/lfs/")

    # --- auth -----------------------------------------------------------------
    def check_auth(self):
        self.rec["auth_ok"] = False
        h = self.headers.get("Authorization", "")
        if h[:6].lower() != "basic ":
            return False
        try:
            raw = base64.b64decode(h[6:].strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return False
        user, sep, password = raw.partition(":")
        if not sep:
            return False
        self.rec["user"] = user
        token = self.server.current_token()
        ok = (token is not None and user == USER
              and hmac.compare_digest(password.encode(), token.encode()))
        self.rec["auth_ok"] = ok
        return ok

    def handle_expect_100(self):
        # Refuse before the client sends its body.
        if self.check_auth():
            return super().handle_expect_100()
        self.close_connection = True
        self.body_done = True               # never sent: do not read it
        self.send_401()
        return False

    # --- dispatch -------------------------------------------------------------
    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def dispatch(self):
        try:
            self._dispatch()
        except ClientGone as e:
            self.close_connection = True
            self.rec["aborted"] = str(e)
            self.finish_log(self.rec.get("status") or 400)
        except (ConnectionError, TimeoutError, ssl.SSLError) as e:
            self.close_connection = True
            self.rec["aborted"] = "connection: %s" % (e.__class__.__name__,)
            self.finish_log(self.rec.get("status") or 499)
        except Exception:
            self.close_connection = True
            import traceback
            traceback.print_exc()
            if not self.logged:
                try:
                    self.send_simple(500, "internal error\n")
                except Exception:
                    self.finish_log(500)

    def _dispatch(self):
        parts = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(parts.path)
        query = parts.query
        if not self.check_auth():
            self.send_401()
            return
        m = RE_BATCH.match(path)
        if m and self.command == "POST":
            return self.lfs_batch(m.group(1))
        m = RE_LOCKS_VERIFY.match(path)
        if m and self.command == "POST":
            return self.lfs_locks(m.group(1), {"ours": [], "theirs": []})
        m = RE_LOCKS.match(path)
        if m and self.command == "GET":
            return self.lfs_locks(m.group(1), {"locks": []})
        m = RE_OBJECT.match(path)
        if m and self.command == "GET":
            return self.lfs_get(m.group(1))
        if m and self.command == "PUT":
            return self.lfs_put(m.group(1), query)
        if path == "/lfs/verify" and self.command == "POST":
            return self.lfs_verify()
        if self.command in ("GET", "POST") and not self.is_lfs_path():
            return self.run_cgi(path, query)
        self.send_simple(405, "method not allowed\n")

    # --- LFS ------------------------------------------------------------------
    def repo_dir(self, name):
        d = os.path.realpath(os.path.join(self.server.root, name.lstrip("/")))
        if not d.startswith(self.server.root + os.sep) or not os.path.isdir(d):
            return None
        return d

    def base_url(self):
        host = self.headers.get("Host", "")
        if not RE_HOST.match(host):
            a = self.server.server_address
            host = "%s:%d" % (a[0], a[1])
        return "%s://%s" % ("https" if self.server.tls else "http", host)

    def obj_path(self, oid):
        return os.path.join(self.server.lfs_dir, oid)

    def obj_size(self, oid):
        try:
            return os.stat(self.obj_path(oid)).st_size
        except OSError:
            return None

    def read_json(self):
        try:
            return json.loads(self.read_body(JSON_LIMIT).decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None

    def lfs_locks(self, repo, answer):
        if not self.repo_dir(repo):
            return self.send_json(404, {"message": "Repository not found"})
        if self.command == "POST":
            self.read_body(JSON_LIMIT)
        self.send_json(200, answer)

    def lfs_batch(self, repo):
        if not self.repo_dir(repo):
            return self.send_json(404, {"message": "Repository not found"})
        req = self.read_json()
        if not isinstance(req, dict):
            return self.send_json(422, {"message": "malformed batch request"})
        op = req.get("operation")
        objs = req.get("objects")
        self.rec["lfs"] = op
        if op not in ("upload", "download") or not isinstance(objs, list):
            return self.send_json(422, {"message": "operation must be upload or download, with objects"})
        transfers = req.get("transfers") or ["basic"]
        if "basic" not in transfers:
            return self.send_json(422, {"message": "only the basic transfer is supported"})
        base = self.base_url()
        out = []
        for o in objs:
            oid = o.get("oid") if isinstance(o, dict) else None
            size = o.get("size") if isinstance(o, dict) else None
            if (not isinstance(oid, str) or not RE_OID.match(oid)
                    or not isinstance(size, int) or isinstance(size, bool) or size < 0):
                out.append({"oid": oid, "size": size,
                            "error": {"code": 422, "message": "invalid oid or size"}})
                continue
            have = self.obj_size(oid)
            ent = {"oid": oid, "size": size}
            if op == "download":
                if have is None:
                    ent["error"] = {"code": 404, "message": "Object does not exist"}
                elif have != size:
                    ent["error"] = {"code": 422, "message": "Object size is %d, not %d" % (have, size)}
                else:
                    ent["actions"] = {"download": {"href": "%s/lfs/%s" % (base, oid),
                                                   "expires_in": 3600}}
            elif have != size:
                ent["actions"] = {
                    "upload": {"href": "%s/lfs/%s?size=%d" % (base, oid, size),
                               "expires_in": 3600},
                    "verify": {"href": "%s/lfs/verify" % base, "expires_in": 3600},
                }
            out.append(ent)
        self.send_json(200, {"transfer": "basic", "objects": out, "hash_algo": "sha256"})

    def lfs_get(self, oid):
        p = self.obj_path(oid)
        try:
            f = open(p, "rb")
        except OSError:
            return self.send_json(404, {"message": "Object does not exist"})
        with f:
            size = os.fstat(f.fileno()).st_size
            if not self.drain_body():
                self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            left = size
            while left:
                data = f.read(min(left, 65536))
                if not data:
                    # Cannot happen (objects are renamed in whole): end it.
                    self.close_connection = True
                    break
                self.wfile.write(data)
                self.bytes_out += len(data)
                left -= len(data)
        self.finish_log(200)

    def lfs_put(self, oid, query):
        want = None
        q = urllib.parse.parse_qs(query)
        if "size" in q:
            try:
                want = int(q["size"][0])
            except ValueError:
                return self.send_json(422, {"message": "bad size"})
        tmpdir = os.path.join(self.server.lfs_dir, "tmp")
        os.makedirs(tmpdir, exist_ok=True)
        tmp = os.path.join(tmpdir, "%s.%s" % (oid, secrets.token_hex(8)))
        h = hashlib.sha256()
        n = 0
        try:
            with open(tmp, "wb") as f:
                for data in self.body_chunks():
                    h.update(data)
                    n += len(data)
                    f.write(data)
            if h.hexdigest() != oid:
                return self.send_json(422, {"message": "sha256 of the upload is %s, not %s"
                                            % (h.hexdigest(), oid)})
            if want is not None and n != want:
                return self.send_json(422, {"message": "upload has %d bytes, not %d" % (n, want)})
            os.replace(tmp, self.obj_path(oid))
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        self.send_simple(200, b"", "text/plain")

    def lfs_verify(self):
        req = self.read_json()
        if not isinstance(req, dict) or not isinstance(req.get("oid"), str) \
                or not RE_OID.match(req["oid"]):
            return self.send_json(422, {"message": "malformed verify request"})
        have = self.obj_size(req["oid"])
        if have is None or have != req.get("size"):
            return self.send_json(404, {"message": "Object does not exist"})
        self.send_json(200, {"message": "ok"})

    # --- git http-backend -------------------------------------------------------
    def cgi_env(self, path, query):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("GIT_", "HTTP_", "CONTENT_", "REMOTE_", "REQUEST_",
                                    "SERVER_", "GATEWAY_", "SCRIPT_", "PATH_INFO",
                                    "PATH_TRANSLATED", "QUERY_STRING", "AUTH_TYPE"))}
        env.update({
            "GIT_PROJECT_ROOT": self.server.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_SOFTWARE": self.server_version,
            "SERVER_NAME": self.server.server_address[0],
            "SERVER_PORT": str(self.server.server_address[1]),
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_USER": USER,
            "AUTH_TYPE": "Basic",
        })
        if self.headers.get("Content-Type"):
            env["CONTENT_TYPE"] = self.headers["Content-Type"]
        if self.is_chunked():
            pass                    # no CONTENT_LENGTH: http-backend reads to EOF
        elif self.command == "POST" or self.content_length():
            env["CONTENT_LENGTH"] = str(self.content_length() or 0)
        for k, v in self.headers.items():
            if k.lower() in CGI_SKIP:
                continue
            env["HTTP_" + k.upper().replace("-", "_")] = v
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        return env

    def run_cgi(self, path, query):
        env = self.cgi_env(path, query)
        proc = self.server.spawn_cgi(env)
        timer = threading.Timer(self.server.args.cgi_timeout, kill_cgi, (proc,))
        timer.daemon = True
        timer.start()
        try:
            self._run_cgi(proc)
        finally:
            timer.cancel()
            if proc.poll() is None:
                try:
                    proc.wait(timeout=IO_TIMEOUT)
                except subprocess.TimeoutExpired:
                    kill_cgi(proc)
                    proc.wait(timeout=5)
            self.server.forget_cgi(proc)
            for f in (proc.stdin, proc.stdout):
                try:
                    f.close()
                except (OSError, ValueError):
                    pass

    def _run_cgi(self, proc):
        state = {"error": None}

        # The body goes to the CGI from a thread of its own, so that a CGI
        # writing before it has read everything cannot deadlock us.  The
        # socket is written only once that thread is done: never a TLS read
        # and write at the same time.
        def feed():
            broken = False
            try:
                for data in self.body_chunks():
                    if broken:
                        continue            # keep the connection in step
                    try:
                        proc.stdin.write(data)
                    except (BrokenPipeError, ValueError, OSError):
                        broken = True
            except (ClientGone, ConnectionError, TimeoutError, ssl.SSLError, OSError) as e:
                state["error"] = e
                kill_cgi(proc)
            finally:
                try:
                    proc.stdin.close()
                except (BrokenPipeError, OSError, ValueError):
                    pass

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()

        out = proc.stdout
        status, reason, headers, length = 200, "OK", [], None
        got_headers = False
        for _ in range(200):
            line = out.readline(16384)
            if not line:
                break
            line = line.rstrip(b"\r\n").decode("latin-1")
            if not line:
                got_headers = True
                break
            name, _, value = line.partition(":")
            name, value = name.strip(), value.strip()
            if name.lower() == "status":
                code, _, why = value.partition(" ")
                try:
                    status, reason = int(code), (why or None)
                except ValueError:
                    status = 502
            elif name.lower() == "content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = None
            elif name.lower() not in ("connection", "transfer-encoding"):
                headers.append((name, value))

        if not got_headers:
            feeder.join(IO_TIMEOUT)
            if state["error"]:
                raise ClientGone("request body: %s" % state["error"])
            self.body_done = not feeder.is_alive()
            self.close_connection = True
            return self.send_simple(502, "git http-backend gave no CGI headers\n")

        chunked = length is None and self.request_version == "HTTP/1.1"
        pending = []
        started = False

        def start():
            nonlocal started
            started = True
            if feeder.is_alive() or state["error"] or not self.body_done:
                self.close_connection = True
            if length is None and not chunked:
                self.close_connection = True
            self.rec["status"] = status
            self.send_response(status, reason)
            for k, v in headers:
                self.send_header(k, v)
            if length is not None:
                self.send_header("Content-Length", str(length))
            elif chunked:
                self.send_header("Transfer-Encoding", "chunked")
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()

        def write(data):
            self.bytes_out += len(data)
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                self.wfile.write(data)

        sent = 0
        try:
            while True:
                data = out.read1(65536)
                if not data:
                    break
                if length is not None:
                    data = data[:max(0, length - sent)]
                    sent += len(data)
                    if not data:
                        continue
                if feeder.is_alive():
                    pending.append(data)
                    continue
                if not started:
                    if state["error"]:
                        raise ClientGone("request body: %s" % state["error"])
                    start()
                for p in pending:
                    write(p)
                pending.clear()
                write(data)
            feeder.join(IO_TIMEOUT)
            if feeder.is_alive():
                raise ClientGone("request body not received in %d s" % IO_TIMEOUT)
            if state["error"]:
                raise ClientGone("request body: %s" % state["error"])
            if not started:
                start()
            for p in pending:
                write(p)
            pending.clear()
            if length is not None and sent < length:
                self.close_connection = True    # CGI died early: cannot fix it up
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except (ConnectionError, TimeoutError, ssl.SSLError, ClientGone):
            kill_cgi(proc)
            raise
        self.finish_log(status)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--pid-file")
    ap.add_argument("--watch-pid", type=int)
    ap.add_argument("--setsid", action="store_true")
    ap.add_argument("--git", default="git")
    ap.add_argument("--cgi-timeout", type=float, default=300.0)
    args = ap.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    try:
        if ipaddress.ip_address(args.bind) not in ipaddress.ip_network("127.0.0.0/8"):
            ap.error("--bind must be in 127.0.0.0/8")
    except ValueError:
        ap.error("--bind must be an IPv4 address in 127.0.0.0/8")
    return args


def proc_starttime(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if rest[0] in ("Z", "X"):
        return None
    return rest[19]


def write_atomic(path, text):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.setsid:
        try:
            os.setsid()
        except OSError:
            pass                    # already a group leader (job control)
    os.makedirs(os.path.join(args.root, "lfs-objects", "tmp"), exist_ok=True)
    become_subreaper()
    server = GitServer((args.bind, 0), args)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)
        server.tls = True

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, lambda signum, frame: server.stop(signal.Signals(signum).name))

    if args.watch_pid:
        start = proc_starttime(args.watch_pid)

        def watch():
            while not server.stopping.wait(0.5):
                if start is None or proc_starttime(args.watch_pid) != start:
                    server.stop("process %d is gone" % args.watch_pid)
        threading.Thread(target=watch, daemon=True).start()

    def reaper():
        while not server.stopping.wait(0.5):
            server.reap_orphans()
    threading.Thread(target=reaper, daemon=True).start()

    if args.pid_file:
        write_atomic(args.pid_file, "%d\n" % os.getpid())
    write_atomic(args.port_file, "%d\n" % server.server_address[1])
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.kill_procs()
        server.server_close()
        for f in (args.port_file, args.pid_file):
            if f:
                try:
                    os.unlink(f)
                except OSError:
                    pass
        server.log_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
