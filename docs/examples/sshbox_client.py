#!/usr/bin/env python3
"""A minimal client of `sshbox run` (docs/integration.md), standard library only.

    sshbox_client.py [--sshbox PATH] [--spec FILE|-]

Reads a job spec (a JSON object) from FILE or standard input, gives it a
job_id when it has none, starts `sshbox run` without a shell, writes the
spec on its standard input and closes it, then prints one line per event as
it arrives: the event's type, and for Claude Code's assistant messages their
text.  SIGINT or SIGTERM cancels the job by sending SIGTERM to sshbox; the
events are still read until sshbox.result.  Exits with sshbox's exit code.
"""
import argparse
import json
import os
import secrets
import signal
import subprocess
import sys


def describe(ev):
    """One short line for an event: its type, then what matters in it."""
    t = ev.get("type")
    if t == "assistant":
        texts = [b.get("text", "") for b in ev.get("message", {}).get("content", [])
                 if isinstance(b, dict) and b.get("type") == "text"]
        return "assistant" + "".join(" " + json.dumps(x) for x in texts)
    fields = {
        "sshbox.queued": ("position", "wait_s"),
        "sshbox.acquired": ("sandbox", "slot", "fence"),
        "sshbox.repo": ("action", "duration_ms"),
        "sshbox.started": ("workdir",),
        "sshbox.stdout": ("line",),
        "sshbox.stderr": ("line",),
        "sshbox.result": ("status", "exit_code", "sandbox", "error"),
        "system": ("subtype",),
        "result": ("subtype", "is_error"),
    }.get(t, ())
    return " ".join([str(t)] + ["%s=%s" % (k, json.dumps(ev[k])) for k in fields if k in ev])


def main():
    ap = argparse.ArgumentParser(description="Run one sshbox job and print its events.")
    ap.add_argument("--sshbox", default="sshbox", help="the sshbox executable (default: sshbox)")
    ap.add_argument("--spec", default="-", help="job spec file, '-' for standard input (default)")
    args = ap.parse_args()

    try:
        if args.spec == "-":
            spec = json.load(sys.stdin)
        else:
            with open(args.spec, encoding="utf-8") as f:
                spec = json.load(f)
    except (OSError, ValueError) as e:
        print("sshbox_client: error: cannot read the job spec: %s" % e, file=sys.stderr)
        return 2
    if not isinstance(spec, dict):
        print("sshbox_client: error: the job spec must be a JSON object", file=sys.stderr)
        return 2
    # Our own job_id, so that we can tie every line (Claude's carry none) to the job.
    spec.setdefault("job_id", "web-" + secrets.token_hex(8))
    data = json.dumps(spec).encode("utf-8")

    # Secrets stay off the command line: the spec goes on stdin.  A session
    # of its own keeps a terminal's Ctrl-C away from sshbox: we decide.
    try:
        proc = subprocess.Popen([args.sshbox, "run"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, start_new_session=True)
    except OSError as e:
        print("sshbox_client: error: cannot start %s: %s" % (args.sshbox, e), file=sys.stderr)
        return 127

    def cancel(signo, frame):
        os.write(2, ("sshbox_client: %s: cancelling job %s\n"
                     % (signal.Signals(signo).name, spec["job_id"])).encode())
        proc.send_signal(signal.SIGTERM)    # not after it was reaped; ends as cancelled, 143
    signal.signal(signal.SIGINT, cancel)
    signal.signal(signal.SIGTERM, cancel)

    try:
        proc.stdin.write(data)
    except BrokenPipeError:
        pass        # sshbox refused the spec early; its sshbox.result says why
    finally:
        try:
            proc.stdin.close()      # EOF: sshbox waits for it (at most 60 s)
        except BrokenPipeError:
            pass

    result = None
    # Read every line as it comes: sshbox stops reading the sandbox while
    # 8 MiB wait unread, and a reader that goes away stops the job.
    for raw in proc.stdout:
        try:
            ev = json.loads(raw)
        except ValueError:
            print("sshbox_client: warning: not a JSON line: %r" % raw[:200], file=sys.stderr)
            continue
        if ev.get("type") == "sshbox.result":
            result = ev
        print(describe(ev), flush=True)
    rc = proc.wait()
    if rc < 0:
        rc = 128 - rc       # killed by a signal (sshbox itself never is, normally)
    if result is None:
        print("sshbox_client: error: sshbox exited %d without sshbox.result "
              "(a usage error; see its stderr)" % rc, file=sys.stderr)
    elif result.get("exit_code") != rc:
        print("sshbox_client: warning: sshbox.result says exit %s, sshbox exited %d"
              % (result.get("exit_code"), rc), file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
