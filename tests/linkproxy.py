#!/usr/bin/python3
"""A TCP relay on loopback that behaves like a WAN link: latency and a rate cap.

Usage:
  linkproxy.py --listen 127.0.0.1:0 --target 127.0.0.1:PORT --port-file FILE
               [--rtt-ms MS] [--rate-mbit MBIT] [--log FILE] [--watch-pid PID]
               [--connect-rtt] [--rate-per-connection] [--max-queue BYTES]

  e.g. --rtt-ms 20 --rate-mbit 100.  Defaults: --rtt-ms 0 (no delay),
  --rate-mbit 0 (no cap), --max-queue 4194304.

Python 3 standard library only (run it with /usr/bin/python3).  One thread,
asyncio.  The kernel here has no sch_netem (`tc qdisc ... netem` fails), so
this models the link in user space instead, for benchmarks such as
bench/repo.sh that want "first clone vs later fetch" measured over a
realistic link rather than an infinitely fast loopback.

What it does
  Binds --listen (only 127.0.0.0/8 is accepted, for --target too; anything
  else exits 2 with a one-line error), then writes the bound port to
  --port-file (tmp + rename: a reader never sees a partial file).  Every
  accepted connection gets its own connection to --target, and the bytes
  are relayed both ways unchanged, in order (it is a plain byte relay: TLS
  passes through untouched).

The model: a full-duplex link, each direction on its own
  A chunk of n bytes read from one side at time t occupies that direction
  of the link for n*8/rate seconds, serialised after the chunk before it,
  then propagates for rtt/2:
      start     = max(t, link_free)
      link_free = start + n*8/rate
      deliver   = link_free + rtt/2
  and is written to the other side at `deliver`.  So each request/response
  exchange costs one RTT more than on loopback, and a bulk transfer runs at
  --rate-mbit.  No loss, no jitter, no reordering.

  The link is shared: all connections through the proxy queue (FIFO, in the
  order their bytes were read) for the same up link and the same down link,
  as they would on one access line; parallel transfers split the rate.
  --rate-per-connection gives every connection a link of its own instead.

  EOF travels like a byte: the other side gets shutdown(SHUT_WR) rtt/2
  after the bytes before it.  Both sockets are closed once both directions
  have delivered their EOF.  An error or reset on either side aborts both
  at once (with a TCP reset, so that a peer never mistakes a cut-off stream
  for a complete one; queued bytes are dropped).

  Memory is bounded: a side stops being read while more than --max-queue
  (default 4 MiB) is queued for its direction, and while the receiving
  socket's send buffer is full (the receiver is slower than the link).

Limits of the model (read the figures with these in mind)
  * Each leg is a real loopback TCP connection whose kernel ACKs at once,
    so the endpoints' TCP never sees the RTT: no slow start, no congestion
    window growth, no ACK clocking.  A real link ramps up over several RTTs
    on a fresh connection; here a fresh connection runs at full rate from
    its first byte.  Only application-level round trips (TLS handshake,
    HTTP request/response, git negotiation) pay the RTT.
  * The TCP handshake is completed by the kernel before the proxy even
    accepts, so connect() costs no RTT (curl's time_connect stays ~0).
    --connect-rtt charges one RTT before the first client->server byte,
    which gives the right time to first response byte for a fresh
    connection, but time_connect itself still reads ~0.
  * Resets and connection failures reach the other side at once, not
    rtt/2 later.
  * The queue in front of the link may hold up to --max-queue bytes per
    connection and direction, i.e. it is a deep ("bufferbloated") router
    buffer: behind a bulk transfer, new bytes in the same direction wait up
    to max_queue*8/rate (about 335 ms at 100 Mbit/s with 4 MiB).  The other
    direction is not affected.  It also caps one connection's throughput
    at max_queue/(rtt/2) (3.3 Gbit/s at 20 ms), far above the rates meant.
  * Chunks are store-and-forward at read granularity (up to 256 KiB, i.e.
    up to 21 ms at 100 Mbit/s): a chunk's first byte arrives together with
    its last one.  Throughput is exact; timing within a chunk is not.
  * Timers are asyncio's (millisecond precision: expect ~1 ms more than
    the configured RTT per round trip).  The proxy itself relays several
    Gbit/s on loopback, so it is not the bottleneck at the rates meant.

Log (--log)
  One line per connection at close:
    <UTC time> conn=<n> peer=<ip:port> up=<bytes client->server>
    down=<bytes server->client> dur=<seconds> end=<eof|reset|...>

Stopping
  SIGTERM, SIGINT, SIGHUP: stop accepting, abort every connection, remove
  the port file, exit 0 (well under a second).  With --watch-pid PID the
  proxy does the same when that process is gone (checked every 0.5 s; a
  zombie or a recycled pid counts as gone), so a killed benchmark never
  leaves it behind.
"""

import argparse
import asyncio
import collections
import ipaddress
import os
import signal
import socket
import struct
import sys
import time

READ_SIZE = 256 * 1024          # asyncio's selector transports read this much
WRITE_HIGH = 1024 * 1024        # transport write-buffer high-water mark
WRITE_LOW = 256 * 1024


def die(msg):
    sys.stderr.write("linkproxy.py: error: %s\n" % msg)
    sys.exit(2)


def parse_hostport(opt, value):
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        die("%s must be HOST:PORT, not %r" % (opt, value))
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        die("%s: host must be an IPv4 address in 127.0.0.0/8, not %r" % (opt, host))
    if addr.version != 4 or addr not in ipaddress.ip_network("127.0.0.0/8"):
        die("%s: host must be in 127.0.0.0/8, not %s" % (opt, host))
    return str(addr), int(port)


def write_atomic(path, text):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def proc_starttime(pid):
    """The start time of a live process, None when it is gone or a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if not rest or rest[0] in ("Z", "X"):
        return None
    return rest[19] if len(rest) > 19 else "?"


class Link:
    """One direction of the modelled link: busy until `free` (loop time)."""

    __slots__ = ("free",)

    def __init__(self):
        self.free = 0.0


class Direction:
    """One way of one connection: a FIFO of (deliver_time, bytes)."""

    def __init__(self, proxy, session, name, link):
        self.proxy = proxy
        self.link = link            # shared by all connections, or our own
        self.loop = proxy.loop
        self.session = session
        self.name = name
        self.src = None             # transport read from
        self.dst = None             # transport written to
        self.queue = collections.deque()
        self.queued = 0
        self.total = 0
        self.not_before = 0.0       # --connect-rtt: no byte before this
        self.timer = None
        self.eof = False            # the source sent EOF
        self.done = False           # EOF delivered to the destination
        self.src_paused = False     # we paused reading the source
        self.dst_blocked = False    # the destination's write buffer is full

    def feed(self, data):
        """Queue bytes read from the source (None: its EOF) for delivery."""
        now = self.loop.time()
        n = 0 if data is None else len(data)
        self.total += n
        p = self.proxy
        start = max(now, self.not_before, self.link.free)
        if n and p.byte_time:
            self.link.free = start + n * p.byte_time
            when = self.link.free + p.half_rtt
        else:
            when = start + p.half_rtt
        self.queue.append((when, data))
        self.queued += n
        if self.queued > p.max_queue and not self.src_paused:
            self.src_paused = True
            self.src.pause_reading()
        if self.dst is None:
            return          # the target is not connected yet: keep it queued
        if self.timer is None and len(self.queue) == 1 and not self.dst_blocked:
            if when <= now:
                self.flush()
            else:
                self.timer = self.loop.call_at(when, self.flush)

    def on_eof(self):
        self.eof = True
        self.feed(None)     # the FIN travels like a byte: after the data, rtt/2

    def flush(self):
        """Write every chunk that is due, then re-arm the timer."""
        self.timer = None
        if self.session.closing or self.dst is None:
            return
        dst = self.dst
        now = self.loop.time() + 0.0002
        q = self.queue
        while q and not self.dst_blocked:
            when, data = q[0]
            if when > now:
                break
            q.popleft()
            if data is None:
                self.done = True
                try:
                    if dst.can_write_eof():
                        dst.write_eof()     # after the buffered bytes
                except OSError:
                    pass
                self.session.direction_done()
                return
            self.queued -= len(data)
            dst.write(data)     # may call pause_writing -> dst_blocked
        if self.session.closing:
            return
        if self.src_paused and self.queued <= self.proxy.max_queue:
            self.src_paused = False
            self.src.resume_reading()
        if q and not self.dst_blocked:
            self.timer = self.loop.call_at(q[0][0], self.flush)
        # when blocked, resume_writing() calls flush again

    def blocked(self, flag):
        self.dst_blocked = flag
        if not flag and self.timer is None and self.queue:
            self.flush()

    def cancel(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()
        self.queued = 0


class Side(asyncio.Protocol):
    """The protocol for one of the two sockets of a session."""

    def __init__(self, session, role):
        self.session = session
        self.role = role
        self.out = None     # Direction this side reads into
        self.inn = None     # Direction that writes to this side

    def connection_made(self, transport):
        transport.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)
        if self.role == "client":
            self.session.client_made(transport)
        else:
            self.session.server_made(transport)

    def data_received(self, data):
        self.out.feed(data)

    def eof_received(self):
        self.out.on_eof()
        return True         # keep the socket open for the other direction

    def pause_writing(self):
        self.inn.blocked(True)

    def resume_writing(self):
        self.inn.blocked(False)

    def connection_lost(self, exc):
        self.session.side_lost(self.role, exc)


class Session:
    def __init__(self, proxy, num):
        self.proxy = proxy
        self.num = num
        self.start = time.monotonic()
        self.peer = "?"
        self.client = None
        self.server = None
        self.lost = set()
        self.closing = False
        self.end = None
        self.logged = False
        self.connect_task = None
        if proxy.per_connection:
            up_link, down_link = Link(), Link()
        else:
            up_link, down_link = proxy.up_link, proxy.down_link
        self.up = Direction(proxy, self, "up", up_link)        # client -> server
        self.down = Direction(proxy, self, "down", down_link)  # server -> client
        self.client_side = Side(self, "client")
        self.client_side.out, self.client_side.inn = self.up, self.down
        self.server_side = Side(self, "server")
        self.server_side.out, self.server_side.inn = self.down, self.up

    def client_made(self, transport):
        self.client = transport
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = "%s:%d" % peer[:2]
        # Bytes read before the target is connected wait in self.up.
        self.up.src = self.down.dst = transport
        self.proxy.sessions.add(self)
        if self.proxy.connect_rtt:
            self.up.not_before = self.proxy.loop.time() + 2 * self.proxy.half_rtt
        self.connect_task = self.proxy.loop.create_task(self.connect())

    async def connect(self):
        p = self.proxy
        try:
            transport, _ = await p.loop.create_connection(
                lambda: self.server_side, p.target[0], p.target[1])
        except OSError as e:
            self.end = "connect-failed(%s)" % (e.strerror or e)
            self.abort()
            return
        except asyncio.CancelledError:
            return
        if self.closing:
            transport.abort()

    def server_made(self, transport):
        # Wire the directions here, not after `await create_connection`:
        # the server's first bytes may be read before that task resumes.
        self.server = transport
        self.up.dst = self.down.src = transport
        if self.up.queue:
            self.up.flush()

    def direction_done(self):
        if self.up.done and self.down.done and not self.closing:
            self.end = self.end or "eof"
            self.closing = True
            for t in (self.client, self.server):
                t.close()       # flushes what is buffered, then closes

    def abort(self, why=None):
        if why and not self.end:
            self.end = why
        self.closing = True
        self.up.cancel()
        self.down.cancel()
        if self.connect_task is not None and not self.connect_task.done():
            self.connect_task.cancel()
        for t in (self.client, self.server):
            if t is not None and not t.is_closing():
                sock = t.get_extra_info("socket")
                try:    # a reset, not a clean FIN: the peer must not take
                        # a cut-off stream for a complete one
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
                except (OSError, AttributeError):
                    pass
                t.abort()
        # Both sockets are gone for our purposes (connection_lost comes later,
        # perhaps after the log is closed at shutdown): log now.
        self.lost.update(("client", "server"))
        self.maybe_log()

    def side_lost(self, role, exc):
        self.lost.add(role)
        if exc is not None:
            if self.end == "eof":
                self.end = None     # an error while flushing the last bytes
            self.abort("reset(%s, %s)" % (role, getattr(exc, "strerror", None) or exc))
        elif not self.closing:
            self.abort("closed(%s)" % role)
        self.maybe_log()

    def maybe_log(self):
        if self.logged or not {"client", "server"} <= self.lost:
            return
        self.logged = True
        self.proxy.sessions.discard(self)
        self.proxy.log("conn=%d peer=%s up=%d down=%d dur=%.3f end=%s" % (
            self.num, self.peer, self.up.total, self.down.total,
            time.monotonic() - self.start, self.end or "?"))


class Proxy:
    def __init__(self, args):
        self.args = args
        self.target = args.target
        self.half_rtt = max(args.rtt_ms, 0.0) / 2000.0
        self.byte_time = 8.0 / (args.rate_mbit * 1e6) if args.rate_mbit > 0 else 0.0
        self.max_queue = args.max_queue
        self.connect_rtt = args.connect_rtt
        self.per_connection = args.rate_per_connection
        self.up_link = Link()       # client -> server, all connections
        self.down_link = Link()     # server -> client, all connections
        self.sessions = set()
        self.count = 0
        self.loop = None
        self.logf = open(args.log, "a", buffering=1) if args.log else None

    def log(self, line):
        if self.logf:
            self.logf.write("%s %s\n" % (
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), line))

    def new_session(self):
        self.count += 1
        return Session(self, self.count).client_side

    async def watch(self, pid, stop):
        start = proc_starttime(pid)
        while True:
            if start is None or proc_starttime(pid) != start:
                stop("process %d is gone" % pid)
                return
            await asyncio.sleep(0.5)

    async def run(self):
        self.loop = asyncio.get_running_loop()
        done = asyncio.Event()
        why = []

        def stop(reason):
            why.append(reason)
            done.set()

        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self.loop.add_signal_handler(s, stop, s.name)
        host, port = self.args.listen
        try:
            server = await self.loop.create_server(
                self.new_session, host, port, reuse_address=True, backlog=128)
        except OSError as e:
            die("cannot listen on %s:%d: %s" % (host, port, e.strerror or e))
        bound = server.sockets[0].getsockname()[1]
        if self.args.watch_pid:
            self.loop.create_task(self.watch(self.args.watch_pid, stop))
        write_atomic(self.args.port_file, "%d\n" % bound)
        try:
            await done.wait()
        finally:
            server.close()
            for s in list(self.sessions):
                s.abort("shutdown")
            try:
                os.unlink(self.args.port_file)
            except OSError:
                pass
            if self.logf:
                self.logf.close()
                self.logf = None
        return 0


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="linkproxy.py",
        description="TCP relay on loopback modelling a WAN link (delay + rate).")
    ap.add_argument("--listen", required=True, help="127.x.y.z:PORT (PORT 0: any)")
    ap.add_argument("--target", required=True, help="127.x.y.z:PORT")
    ap.add_argument("--rtt-ms", type=float, default=0.0,
                    help="round-trip time added, half each way (default 0)")
    ap.add_argument("--rate-mbit", type=float, default=0.0,
                    help="rate cap per direction in Mbit/s (default 0: none)")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log")
    ap.add_argument("--watch-pid", type=int)
    ap.add_argument("--connect-rtt", action="store_true",
                    help="charge one RTT before the first client->server byte "
                         "(the TCP handshake loopback completes instantly)")
    ap.add_argument("--rate-per-connection", action="store_true",
                    help="give every connection a link of its own instead of "
                         "sharing one link (per direction) among all of them")
    ap.add_argument("--max-queue", type=int, default=4 * 1024 * 1024,
                    help="bytes queued per direction before reading pauses")
    args = ap.parse_args(argv)
    args.listen = parse_hostport("--listen", args.listen)
    args.target = parse_hostport("--target", args.target)
    if args.target[1] == 0:
        die("--target needs a port")
    if args.rtt_ms < 0 or args.rate_mbit < 0:
        die("--rtt-ms and --rate-mbit must be >= 0")
    if args.max_queue < READ_SIZE:
        die("--max-queue must be at least %d" % READ_SIZE)
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return asyncio.run(Proxy(args).run())


if __name__ == "__main__":
    sys.exit(main())
