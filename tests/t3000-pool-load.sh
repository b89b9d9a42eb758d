#!/usr/bin/env bash
test_description='the pool under load: 30 concurrent sshbox run over 3 sandboxes (slots 1, 1, 2) with a stub Claude Code'
. "$(dirname "$0")/lib.sh"
. "$REPO_ROOT/tests/testbed.sh"
. "$REPO_ROOT/tests/sshbox-env.sh"

# Issue 3, "Load": many `sshbox run` processes compete for one account's
# sandboxes.  A stub Claude Code (tests/data/stub-claude-record) appends a
# "start" and an "end" line (workdir, epoch ms, job) to a shared log and
# sleeps STUB_SLEEP s in between; from that log we know what ran where and
# when, independently of what sshbox says about itself.

LOAD_JOBS=30
LOAD_BURST=8          # the first jobs start all at once (acquire races) ...
LOAD_STAGGER=0.1      # ... the others one every 100 ms (a spread-out arrival order)
LOAD_SLEEP=1          # seconds of "work" per job
LOAD_SLOTS=4          # 1 + 1 + 2
LOAD_TOL_MS=300       # FIFO tolerance, see load_check_fifo
_PY=/usr/bin/python3

# --- helpers ------------------------------------------------------------------

# load_register NAME SLOTS: as sb_register, with the stub as Claude Code.
load_register() {
	local name=$1 slots=$2
	tb_authorize_key "$name" "$TEST_DIR/key-$SB_ACCOUNT.pub" &&
	"$SSHBOX" sandbox add --account "$SB_ACCOUNT" --host "$(tb_sbx_var "$name" HOST)" \
		--port "$(tb_sbx_var "$name" PORT)" --user "$(tb_sbx_var "$name" USER)" \
		--workdir "$(tb_sbx_var "$name" WORKDIR)" --slots "$slots" \
		--claude "$LOAD_STUB" --host-key "$(tb_sbx_var "$name" HOSTKEY)" >/dev/null
}

# load_spec JOB_ID: a job spec for the stub.
load_spec() {
	printf '{"account":"%s","job_id":"%s","prompt":"load test job %s: nothing to do",' \
		"$SB_ACCOUNT" "$1" "$1"
	printf '"env":{"STUB_LOG":"%s","STUB_SLEEP":"%s"},' "$LOAD_LOG" "$LOAD_SLEEP"
	printf '"timeout_s":60,"idle_timeout_s":30,"wait_s":120}\n'
}

# load_launch JOB_ID: `sshbox run` in the background; run/JOB.{ev,err,rc,end}.
# The rc file appears (atomically) when the run is over.
load_launch() {
	local id=$1
	load_spec "$id" >"run/$id.spec" || return 1
	(
		"$SSHBOX" run <"run/$id.spec" >"run/$id.ev" 2>"run/$id.err"
		rc=$?
		date +%s%3N >"run/$id.end"
		echo "$rc" >"run/$id.rc.tmp" && mv "run/$id.rc.tmp" "run/$id.rc"
	) &
	LOAD_PIDS+=("$!")
}

# Cleanup of a failed or timed-out load test: every run still going, by PID.
load_kill_all() {
	local p
	for p in "${LOAD_PIDS[@]}"; do
		tb_alive "$p" && tb_kill_tree "$p" 2
	done
	[ -z "${LOAD_MON_PID-}" ] || { kill "$LOAD_MON_PID" 2>/dev/null; wait "$LOAD_MON_PID" 2>/dev/null; }
	LOAD_MON_PID=
	return 0
}

load_done_count() {
	local n
	n=$(find run -name '*.rc' | wc -l)
	echo "$n"
}

# The workdir -> (host, slots) map of the three sandboxes, for the Python checks.
load_sbx_map() {
	printf '%s %s %s\n' "$TB_A_WORKDIR" "$TB_A_HOST" 1 "$TB_B_WORKDIR" "$TB_B_HOST" 1 \
		"$TB_C_WORKDIR" "$TB_C_HOST" 2 >sandboxes.map
}

# Every job: exit 0, one sshbox.result (the last line) with status succeeded;
# writes jobs.tsv: job sandbox queued(0/1) first_queued_ms acquired_ms position.
load_check_results() {
	"$_PY" - "$LOAD_JOBS" <<'PY'
import json, sys, datetime, os
def ms(ts):
    d = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return int(round(d.timestamp() * 1000))
n = int(sys.argv[1]); bad = 0
out = open("jobs.tsv", "w")
for i in range(1, n + 1):
    job = "load-%02d" % i
    rc = open("run/%s.rc" % job).read().strip()
    lines = [l for l in open("run/%s.ev" % job, encoding="utf-8") if l.strip()]
    evs = [json.loads(l) for l in lines]
    res = [e for e in evs if e.get("type") == "sshbox.result"]
    q = [e for e in evs if e.get("type") == "sshbox.queued"]
    acq = [e for e in evs if e.get("type") == "sshbox.acquired"]
    why = []
    if rc != "0": why.append("exit %s" % rc)
    if len(res) != 1 or evs[-1].get("type") != "sshbox.result": why.append("not exactly one sshbox.result at the end")
    elif res[0].get("status") != "succeeded" or res[0].get("exit_code") != 0: why.append("result %r" % res[0])
    elif res[0].get("session_id") != "stub-" + job: why.append("session_id %r" % res[0].get("session_id"))
    if len(acq) != 1: why.append("%d sshbox.acquired events" % len(acq))
    elif res and acq[0].get("sandbox") != res[0].get("sandbox"): why.append("acquired on %s, result names %s" % (acq[0].get("sandbox"), res[0].get("sandbox")))
    for e in evs:
        if e.get("type", "").startswith("sshbox.") and e.get("job_id") != job: why.append("event for job %r" % e.get("job_id"))
    if why:
        bad += 1
        print("%s: %s" % (job, "; ".join(why)))
        sys.stdout.write("  stderr: " + open("run/%s.err" % job, errors="replace").read()[-2000:])
        continue
    out.write("%s %s %d %d %d %d\n" % (job, res[0]["sandbox"], 1 if q else 0,
              ms(q[0]["ts"]) if q else 0, ms(acq[0]["ts"]), q[0]["position"] if q else 0))
out.close()
print("%d/%d jobs succeeded" % (n - bad, n))
sys.exit(1 if bad else 0)
PY
}

# From the stub's own log: each job ran exactly once, on the sandbox sshbox
# reported; no sandbox ever ran more jobs than its slots; each got work.
# Sweep per sandbox over start (+1) and end (-1) events in time order; at the
# same millisecond an end counts before a start (a slot is released only
# after its job's stub has exited, so a true overlap is never hidden by that).
load_check_slots() {
	"$_PY" - "$LOAD_LOG" "$LOAD_JOBS" <<'PY'
import sys, collections
log, n = sys.argv[1], int(sys.argv[2])
sbx = {}                       # workdir -> (host, slots)
for l in open("sandboxes.map"):
    wd, host, slots = l.split()
    sbx[wd] = (host, int(slots))
reported = {l.split()[0]: l.split()[1] for l in open("jobs.tsv")}
start, end, where = {}, {}, {}
ok = True
for l in open(log):
    kind, pwd, t, job, fence = l.split()
    wd = pwd.rsplit("/jobs/", 1)[0]
    if wd not in sbx or pwd != wd + "/jobs/" + job:
        print("unexpected job dir %s for %s" % (pwd, job)); ok = False; continue
    d = start if kind == "start" else end
    if job in d:
        print("%s: %s twice (the Claude run was repeated)" % (job, kind)); ok = False
    d[job] = int(t); where.setdefault(job, set()).add(wd)
jobs = ["load-%02d" % i for i in range(1, n + 1)]
for j in jobs:
    if j not in start or j not in end:
        print("%s: no start/end in the stub log" % j); ok = False; continue
    if len(where[j]) != 1:
        print("%s: start and end on different sandboxes" % j); ok = False; continue
    host = sbx[next(iter(where[j]))][0]
    if reported.get(j) != host:
        print("%s: ran on %s, sshbox.result says %s" % (j, host, reported.get(j))); ok = False
events = collections.defaultdict(list)
for j in start:
    if j in end:
        wd = next(iter(where[j]))
        events[wd].append((start[j], 1, j))
        events[wd].append((end[j], 0, j))
for wd, (host, slots) in sorted(sbx.items(), key=lambda x: x[1]):
    cur = peak = 0; running = set()
    for t, kind, j in sorted(events[wd]):
        if kind == 1:
            cur += 1; running.add(j)
            if cur > slots:
                print("%s (slots %d) ran %d jobs at %d: %s" % (host, slots, cur, t, " ".join(sorted(running)))); ok = False
        else:
            cur -= 1; running.discard(j)
        peak = max(peak, cur)
    got = len(events[wd]) // 2
    print("%s slots=%d jobs=%d peak=%d" % (host, slots, got, peak))
    if got == 0:
        print("%s got no job" % host); ok = False
sys.exit(0 if ok else 1)
PY
}

# FIFO within the waiting set, as the event stream shows it.
#
# arrival(J) = ts of J's first sshbox.queued, acquired(J) = ts of its
# sshbox.acquired.  A violation is a pair where A arrived more than TOL
# before B but B acquired more than TOL before A.  Smaller inversions are
# not violations, and cannot be told from them:
#  (1) the queue order is the order of the Redis tickets (ZADD at enqueue);
#      the client stamps its first sshbox.queued several round trips later
#      (a queue poll, then a look at every sandbox's slots), and on a loaded
#      2-core machine a process can be descheduled in between, so two jobs
#      queued close together may be stamped in the other order;
#  (2) waiters poll every 50-250 ms (jittered) and, when k slots are free,
#      the first k waiters may all try at once: the second may win, and the
#      first takes the other free slot on its next poll, up to one poll
#      interval later.
# Both are bounded by about one poll interval; an inversion longer than TOL
# (300 ms > the 250 ms poll) means a later arrival was served while an
# earlier one stayed waiting.  load_check_fifo_server below removes (1).
load_check_fifo() {
	"$_PY" - "$LOAD_TOL_MS" <<'PY'
import sys
tol = int(sys.argv[1])
q = []
for l in open("jobs.tsv"):
    job, host, queued, arr, acq, pos = l.split()
    if queued == "1":
        q.append((int(arr), int(acq), job))
q.sort()
bad = 0; worst = 0
for i, (arr_a, acq_a, a) in enumerate(q):
    for arr_b, acq_b, b in q[i + 1:]:
        if arr_b - arr_a > tol:
            worst = max(worst, acq_a - acq_b)
            if acq_a - acq_b > tol:
                bad += 1
                print("FIFO: %s queued %d ms before %s, but %s acquired %d ms before %s" % (a, arr_b - arr_a, b, b, acq_a - acq_b, a))
print("%d queued jobs; worst inversion between jobs queued > %d ms apart: %d ms (limit %d)" % (len(q), tol, worst, tol))
sys.exit(1 if bad or len(q) < 2 else 0)
PY
}

# FIFO as Redis saw it (MONITOR: every command, also those run by scripts,
# with the server's clock): the queue order is the ticket of the ZADD into
# sshbox:queue:<account>, the service time the SET of the slot key.  The
# arrival side is exact here; the service side keeps the TOL of one poll
# interval (reason (2) above).
load_check_fifo_server() {
	"$_PY" - "$LOAD_TOL_MS" "$SB_ACCOUNT" <<'PY'
import sys, re, shlex
tol, acct = int(sys.argv[1]), sys.argv[2]
ticket, served, enq = {}, {}, {}
for l in open("monitor.log", errors="replace"):
    m = re.match(r'^(\d+\.\d+) \[\d+ [^\]]*\] (.*)$', l.rstrip("\n"))
    if not m:
        continue
    t = float(m.group(1)) * 1000
    try:
        args = shlex.split(m.group(2))
    except ValueError:
        continue
    if len(args) == 4 and args[0].upper() == "ZADD" and args[1] == "sshbox:queue:" + acct:
        tk, job = args[3].split(":")[0:2]
        enq[job] = enq.get(job, 0) + 1
        ticket[job] = int(tk)          # the last one counts (a lapsed entry queues again)
    elif len(args) >= 3 and args[0].upper() == "SET" and re.match(r"^sshbox:\{%s:[^}]*\}:slot:\d+$" % re.escape(acct), args[1]):
        job = args[2].split(":", 2)[2]
        served.setdefault(job, t)
q = sorted((ticket[j], served[j], j) for j in ticket if j in served)
missing = [j for j in ticket if j not in served]
# The capture is complete: every job took a slot, every job that reported
# sshbox.queued has a ticket.
for l in open("jobs.tsv"):
    job, host, queued = l.split()[0:3]
    if job not in served or (queued == "1" and job not in ticket):
        print("MONITOR missed %s (served %s, ticket %s)" % (job, job in served, job in ticket))
        missing.append(job)
bad = 0; worst = 0
for i, (ta, sa, a) in enumerate(q):
    for tb, sb, b in q[i + 1:]:
        worst = max(worst, sa - sb)
        if sa - sb > tol:
            bad += 1
            print("FIFO (server): ticket %d %s served %d ms after ticket %d %s" % (ta, a, sa - sb, tb, b))
again = [j for j, c in enq.items() if c > 1]
print("%d tickets, %d served; worst inversion (a later ticket served first): %d ms (limit %d); re-queued: %s; never served: %s" %
      (len(ticket), len(q), worst, tol, " ".join(again) or "none", " ".join(missing) or "none"))
sys.exit(1 if bad or missing or len(q) < 2 else 0)
PY
}

# One `sshbox status --json` snapshot (stdin): a holder with a job id and an
# age, and a non-empty queue for the account.
load_check_status() {
	"$_PY" -c '
import json, sys
st = json.load(sys.stdin)
hold = [h for s in st["sandboxes"] for h in s["holders"]]
assert hold, "no holders"
for h in hold:
    assert h["job_id"].startswith("load-"), h
    assert isinstance(h["age_ms"], int) and 0 <= h["age_ms"] < 60000, h
    assert isinstance(h["lease_ms"], int) and h["lease_ms"] > 0, h
for s in st["sandboxes"]:
    assert s["slots_used"] == len(s["holders"]) <= s["slots"], s
assert st["queues"][sys.argv[1]] > 0, st["queues"]
print("holders:", " ".join(h["job_id"] for h in hold), "queue:", st["queues"][sys.argv[1]])
' "$SB_ACCOUNT"
}

# --- tests --------------------------------------------------------------------

test_expect_success 'set up: Redis, sandboxes a, b, c (slots 1, 1, 2), the stub as Claude Code' '
	tb_ensure_user &&
	tb_start_redis &&
	tb_start_sandbox a 127.0.0.2 &&
	tb_start_sandbox b 127.0.0.3 &&
	tb_start_sandbox c 127.0.0.5 &&
	sb_env_init &&
	sb_account_key &&
	mkdir -p bin run &&
	cp "$REPO_ROOT/tests/data/stub-claude-record" bin/stub-claude-record &&
	chmod 0755 bin bin/stub-claude-record &&
	LOAD_STUB=$TEST_DIR/bin/stub-claude-record &&
	mkdir -p stub &&
	chmod 0777 stub &&
	LOAD_LOG=$TEST_DIR/stub/stub.log &&
	: >"$LOAD_LOG" &&
	chmod 0666 "$LOAD_LOG" &&
	load_register a 1 &&
	load_register b 1 &&
	load_register c 2 &&
	load_sbx_map &&
	"$SSHBOX" sandbox list --account "$SB_ACCOUNT" --json >list.json &&
	test "$(grep -o "\"claude\":\"$LOAD_STUB\"" list.json | wc -l)" = 3
'

test_expect_success 'one job on the stub succeeds (sanity)' '
	load_spec solo-1 >solo.spec &&
	"$SSHBOX" run <solo.spec >solo.ev 2>solo.err &&
	test "$(sb_result_field solo.ev status)" = succeeded &&
	test "$(sb_result_field solo.ev session_id)" = stub-solo-1 &&
	grep -q "^start .*/jobs/solo-1 [0-9]* solo-1 " "$LOAD_LOG" &&
	grep -q "^end .*/jobs/solo-1 [0-9]* solo-1 " "$LOAD_LOG" &&
	: >"$LOAD_LOG"
'

LOAD_PIDS=()
LOAD_MON_PID=
test_expect_success "$LOAD_JOBS concurrent jobs all succeed; status shows holders and a queue meanwhile" '
	test_when_finished load_kill_all &&
	{ tb_redis_cli monitor >monitor.log 2>&1 & } &&
	LOAD_MON_PID=$! &&
	test_wait_for "grep -q ^OK monitor.log" 5 &&
	LOAD_T0=$(date +%s%3N) &&
	for i in $(seq 1 $LOAD_JOBS); do
		load_launch "$(printf load-%02d $i)" || return 1
		if [ $i -ge $LOAD_BURST ]; then sleep $LOAD_STAGGER; fi
	done &&
	busy=false && k=0 &&
	while [ $k -lt 100 ] && ! $busy && [ "$(load_done_count)" -lt $LOAD_JOBS ]; do
		"$SSHBOX" status --json >status.$k.json &&
		if grep -q "\"holders\":\[{\"slot\":[0-9]*,\"job_id\":\"load-[0-9]*\",\"fence\":[0-9]*,\"age_ms\":[0-9]*" status.$k.json &&
			grep -q "\"queues\":{\"$SB_ACCOUNT\":[1-9]" status.$k.json; then
			cp status.$k.json status-busy.json &&
			busy=true
		fi &&
		k=$((k + 1)) &&
		sleep 0.1 || return 1
	done &&
	test_wait_for "test \$(load_done_count) -ge $LOAD_JOBS" 60 &&
	wait "${LOAD_PIDS[@]}" &&
	LOAD_T1=$(cat run/*.end | sort -n | tail -n 1) &&
	LOAD_WALL_MS=$((LOAD_T1 - LOAD_T0)) &&
	{ kill $LOAD_MON_PID; wait $LOAD_MON_PID; LOAD_MON_PID=; true; } &&
	load_check_results &&
	echo "status snapshots: $k; holders and a queue seen together: $busy" &&
	$busy &&
	load_check_status <status-busy.json
'

test_expect_success 'no sandbox ever ran more jobs than its slots; each one got work' '
	load_check_slots >slots.out &&
	cat slots.out
'

test_expect_success 'FIFO within the waiting set (event stream)' '
	load_check_fifo >fifo.out &&
	cat fifo.out
'

test_expect_success 'FIFO within the waiting set (as Redis saw it)' '
	load_check_fifo_server >fifo-server.out &&
	cat fifo-server.out
'

test_expect_success 'nothing left behind: locks, queue, job dirs, processes' '
	tb_redis_cli --scan --pattern "sshbox:*:slot:*" >locks.left &&
	test_line_count = 0 locks.left &&
	tb_redis_cli --scan --pattern "sshbox:job:$SB_ACCOUNT:*" >reservations.left &&
	test_line_count = 0 reservations.left &&
	test "$(tb_redis_cli zcard "sshbox:queue:$SB_ACCOUNT")" = 0 &&
	test "$(tb_redis_cli zcard "sshbox:queue:$SB_ACCOUNT:alive")" = 0 &&
	for wd in "$TB_A_WORKDIR" "$TB_B_WORKDIR" "$TB_C_WORKDIR"; do
		ls -A "$wd/jobs" >jobs.left &&
		test_line_count = 0 jobs.left || return 1
	done &&
	{ pgrep -a -f -- "$SSHBOX_STATE_DIR" >procs.all; true; } &&
	awk "!(/\\[mux\\]/ || (/ -oControlMaster=yes / && / -N /))" procs.all >procs.left &&
	test_line_count = 0 procs.left &&
	awk "/\\[mux\\]/ || (/ -oControlMaster=yes / && / -N /)" procs.all >masters &&
	test_line_count -le 3 masters &&
	for s in "$SSHBOX_STATE_DIR"/cm/*; do
		test -S "$s" || continue
		timeout 5 ssh -o ControlPath="$s" -O check dummy 2>/dev/null || return 1
	done &&
	{ pgrep -a -f -- "$LOAD_STUB" >stubs.left; true; } &&
	test_line_count = 0 stubs.left
'

# Numbers for the closing note of issue 3.
if [ -s "$TEST_DIR/jobs.tsv" ] && [ -n "${LOAD_WALL_MS-}" ]; then
	cd "$TEST_DIR" || exit 1
	_load_ideal_ms=$((LOAD_JOBS * LOAD_SLEEP * 1000 / LOAD_SLOTS))
	_load_queued=$(awk '$3 == 1' "$TEST_DIR/jobs.tsv" | wc -l)
	_load_stub_ms=$("$_PY" -c '
import sys
s = {}; d = []
for l in open(sys.argv[1]):
    k, _, t, j, _f = l.split()
    if k == "start": s[j] = int(t)
    elif j in s: d.append(int(t) - s[j])
print(sum(d) // max(len(d), 1))' "$LOAD_LOG" 2>/dev/null)
	echo "# load: $LOAD_JOBS jobs on $LOAD_SLOTS slots took ${LOAD_WALL_MS} ms (first launch to last exit; launches spread over $(( (LOAD_JOBS - LOAD_BURST) * 100 )) ms)"
	echo "# load: ideal $LOAD_JOBS x ${LOAD_SLEEP} s / $LOAD_SLOTS slots = ${_load_ideal_ms} ms (mean stub run ${_load_stub_ms} ms); ratio $("$_PY" -c "print(round($LOAD_WALL_MS / $_load_ideal_ms, 2))")"
	echo "# load: $_load_queued of $LOAD_JOBS jobs were queued"
	# Where a slot's time goes, per job (from the events and the stub log).
	"$_PY" - "$LOAD_LOG" "$LOAD_JOBS" <<'PY' 2>/dev/null
import json, sys, datetime
def ms(ts):
    d = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return int(round(d.timestamp() * 1000))
st, en = {}, {}
for l in open(sys.argv[1]):
    k, _, t, j, _f = l.split()
    (st if k == "start" else en)[j] = int(t)
pre, post = [], []
for i in range(1, int(sys.argv[2]) + 1):
    j = "load-%02d" % i
    ev = {}
    for l in open("run/%s.ev" % j):
        e = json.loads(l)
        ev.setdefault(e.get("type"), ms(e["ts"]) if "ts" in e else None)
    pre.append(st[j] - ev["sshbox.acquired"]); post.append(ev["sshbox.result"] - en[j])
f = lambda v: "mean %d ms, max %d ms" % (sum(v) // len(v), max(v))
print("# load: sshbox.acquired -> stub start: %s" % f(pre))
print("# load: stub end -> sshbox.result (slot still held): %s" % f(post))
PY
	sed -n 's/^/# load: /p' "$TEST_DIR/slots.out" "$TEST_DIR/fifo.out" "$TEST_DIR/fifo-server.out" 2>/dev/null
fi

test_done
