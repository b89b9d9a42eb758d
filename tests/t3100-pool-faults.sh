#!/usr/bin/env bash
test_description='the pool under faults: unreachable, disabled and draining sandboxes, kill -9, Redis down and restarted, a lost lease, wait_s, duplicate job_id'
. "$(dirname "$0")/lib.sh"
. "$REPO_ROOT/tests/testbed.sh"
. "$REPO_ROOT/tests/sshbox-env.sh"

# Issue 3, "Tests that must exist" (the fault part).  Claude Code is a stub
# (tests/data/stub-claude-sleep, copied under $TEST_DIR so that the sandbox
# user can run it): it reads the prompt, sleeps $STUB_SLEEP s and prints a
# successful `result` line; it appends start/term/end lines to
# $STUB_REC/<job_id>, so we know what ran where, and whether it was stopped
# with SIGTERM by sshbox's remote wrapper (the fencing kill of a newer
# holder is SIGKILL and leaves no "term" line).
#
# Pool of account acme:
#   a     127.0.0.2  slots 1  healthy        (the pinned jobs use it)
#   b     127.0.0.3  slots 2  healthy
#   c     127.0.0.4  slots 1  a real sshd, disabled
#   dead  127.0.0.5  slots 1  nothing listens on its port (a's host key)
# Jobs that need lease expiry run with SSHBOX_LOCK_TTL_MS=3000 (the
# minimum): renewal every 1 s, remote heartbeat limit 3 s.

STUB_SRC=$REPO_ROOT/tests/data/stub-claude-sleep
STUB=$TEST_DIR/bin/stub-claude
REC=$TEST_DIR/rec
HOST_A=127.0.0.2
HOST_B=127.0.0.3
HOST_C=127.0.0.4
HOST_DEAD=127.0.0.5
DEAD_WORKDIR=$TEST_DIR/sbx-dead/work
SLOT_A0="sshbox:{acme:$HOST_A}:slot:0"
TTL_FAST=SSHBOX_LOCK_TTL_MS=3000
BG_PIDS=()
_PY=/usr/bin/python3

# --- helpers ------------------------------------------------------------------

now_ms() {
	local t=${EPOCHREALTIME/[.,]/}
	echo $((t / 1000))
}

# f_register NAME SLOTS: as sb_register, with the stub as Claude Code.
f_register() {
	tb_authorize_key "$1" "$TEST_DIR/key-$SB_ACCOUNT.pub" &&
	"$SSHBOX" sandbox add --account "$SB_ACCOUNT" --host "$(tb_sbx_var "$1" HOST)" \
		--port "$(tb_sbx_var "$1" PORT)" --user "$(tb_sbx_var "$1" USER)" \
		--workdir "$(tb_sbx_var "$1" WORKDIR)" --slots "$2" --claude "$STUB" \
		--host-key "$(tb_sbx_var "$1" HOSTKEY)" >/dev/null
}

# f_spec JOB_ID SLEEP_S [EXTRA_MEMBERS]: a job spec for the stub.
f_spec() {
	printf '{"account":"%s","job_id":"%s","prompt":"fault test job %s",' "$SB_ACCOUNT" "$1" "$1"
	printf '"env":{"STUB_REC":"%s","STUB_SLEEP":"%s"},' "$REC" "$2"
	printf '"timeout_s":120,"idle_timeout_s":60%s}\n' "${3-}"
}

# f_run: `sshbox run` in the foreground, bounded (every spec has a small
# wait_s; this only catches a hang).
f_run() {
	timeout -k 5 60 "$SSHBOX" run "$@"
}

# bg_run JOB_ID [VAR=VALUE...]: `sshbox run <ID.spec >ID.ev 2>ID.err` in the
# background; BG_PID (also in ID.pid) is sshbox's own PID (env execs it).
bg_run() {
	local id=$1
	shift
	env "$@" "$SSHBOX" run <"$id.spec" >"$id.ev" 2>"$id.err" &
	BG_PID=$!
	BG_PIDS+=("$BG_PID")
	echo "$BG_PID" >"$id.pid"
}

# bg_wait JOB_ID TIMEOUT_S: wait (bounded) for a bg_run; exit code in ID.rc.
bg_wait() {
	local id=$1 pid rc
	pid=$(cat "$id.pid") || return 1
	if ! test_wait_for "! tb_alive $pid" "$2"; then
		echo "bg_wait: job $id (pid $pid) still runs after $2 s" >&2
		tb_kill_tree "$pid" 2
		wait "$pid" 2>/dev/null
		return 1
	fi
	wait "$pid"
	rc=$?
	echo "$rc" >"$id.rc"
}

bg_kill_all() {
	local p
	for p in "${BG_PIDS[@]}"; do
		tb_alive "$p" && tb_kill_tree "$p" 2
	done
	return 0
}

wait_started() {
	test_wait_for "grep -q '\"type\":\"sshbox.started\"' $1.ev" "${2:-20}"
}

# ev_vals FILE TYPE FIELD: FIELD of every event of TYPE, one a line.
ev_vals() {
	"$_PY" - "$@" <<'PY'
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    ev = json.loads(line)
    if ev.get("type") == sys.argv[2]:
        v = ev.get(sys.argv[3])
        print("null" if v is None else v)
PY
}

# ev_ts_ms FILE TYPE: the ts of the first event of TYPE, in epoch ms.
ev_ts_ms() {
	"$_PY" - "$@" <<'PY'
import datetime, json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    ev = json.loads(line)
    if ev.get("type") == sys.argv[2]:
        t = datetime.datetime.strptime(ev["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
        t = t.replace(tzinfo=datetime.timezone.utc)
        print(int(t.timestamp() * 1000 + 0.5))
        sys.exit(0)
sys.exit(1)
PY
}

# st_get STATUS_JSON HOST FIELD: a field of account acme's sandbox HOST.
st_get() {
	"$_PY" - "$@" <<'PY'
import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
for s in d["sandboxes"]:
    if s["account"] == "acme" and s["host"] == sys.argv[2]:
        v = s.get(sys.argv[3])
        print("null" if v is None else v)
        sys.exit(0)
sys.exit(1)
PY
}

# PIDs of the processes that run as job JOB_ID (the stub and its sleep; the
# remote wrapper exports SSHBOX_JOB only to Claude Code).
job_procs() {
	grep -lzx "SSHBOX_JOB=$1" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3
	return 0
}
no_job_procs() {
	local p
	p=$(job_procs "$1")
	[ -z "$p" ] || { echo "job $1 still has processes: $p"; return 1; }
}

# The private ssh-agent that `sshbox run` (PID) starts when no supervisor
# agent holds the key (docs/ssh.md: "dies with sshbox").
agent_of() {
	pgrep -f -x "/usr/bin/ssh-agent -D -a $SSHBOX_STATE_DIR/agent/run/$1.sock"
}
# Cleanup: stop the private agent left behind by a killed run, by its PID.
stop_agent_of() {
	local p
	for p in $(agent_of "$1"); do kill "$p"; done
	return 0
}

# wait_renewal KEY: return just after the holder of KEY renewed it (its PTTL
# went up between two reads, a few ms apart); bounded to about 5 s.
wait_renewal() {
	local prev=0 cur i
	for ((i = 0; i < 1000; i++)); do
		cur=$(tb_redis_cli PTTL "$1") || return 1
		[ "$cur" -gt 0 ] || { echo "wait_renewal: $1 has no lease ($cur)"; return 1; }
		[ "$prev" -gt 0 ] && [ "$cur" -gt "$prev" ] && return 0
		prev=$cur
	done
	echo "wait_renewal: no renewal of $1 seen"
	return 1
}

# Make the unreachable sandbox fail once more (a pinned job, wait_s 0: 75
# either way) and read the status right after: the unhealthy mark lasts
# its backoff (>= 1.6 s), so it is seen, unless it lapsed in between.
probe_dead() {
	f_run <dead.spec >dead.ev 2>dead.err
	echo $? >dead.rc
	"$SSHBOX" status --json >status-dead.json &&
	test "$(st_get status-dead.json $HOST_DEAD health)" = unhealthy
}

# --- tests --------------------------------------------------------------------

test_expect_success 'set up: Redis, sandboxes a, b, c, an unreachable one, a key, the stub' '
	tb_ensure_user &&
	tb_start_redis &&
	tb_start_sandbox a $HOST_A &&
	tb_start_sandbox b $HOST_B &&
	tb_start_sandbox c $HOST_C &&
	sb_env_init &&
	test_atexit bg_kill_all &&
	mkdir -p "$TEST_DIR/bin" "$REC" &&
	cp "$STUB_SRC" "$STUB" &&
	chmod 0755 "$TEST_DIR/bin" "$STUB" &&
	chmod 1777 "$REC" &&
	su -s /bin/sh sshbox-test -c "test -x $STUB && test -w $REC" &&
	sb_account_key &&
	f_register a 1 &&
	f_register b 2 &&
	f_register c 1 &&
	DEAD_PORT=$(tb_free_port $HOST_DEAD) &&
	"$SSHBOX" sandbox add --account acme --host $HOST_DEAD --port "$DEAD_PORT" \
		--user sshbox-test --workdir "$DEAD_WORKDIR" --slots 1 --claude "$STUB" \
		--host-key "$TB_A_HOSTKEY" >/dev/null &&
	"$SSHBOX" sandbox disable --account acme --host $HOST_C >/dev/null &&
	"$SSHBOX" sandbox list --account acme >list.txt &&
	test_debug "cat list.txt"
'

test_expect_success 'unreachable and disabled sandboxes: every job runs on the healthy ones' '
	ids="p1 p2 p3 p4 p5 p6" &&
	for id in $ids; do
		f_spec $id 1 ",\"wait_s\":60" >$id.spec &&
		bg_run $id || return 1
	done &&
	for id in $ids; do
		bg_wait $id 60 || return 1
	done &&
	for id in $ids; do
		test "$(cat $id.rc)" = 0 &&
		test "$(sb_result_field $id.ev status)" = succeeded &&
		sbx=$(sb_result_field $id.ev sandbox) &&
		case $sbx in
		$HOST_A) wd=$TB_A_WORKDIR ;;
		$HOST_B) wd=$TB_B_WORKDIR ;;
		*) echo "job $id ran on $sbx"; false ;;
		esac &&
		grep -q "^start $wd/jobs/$id " $REC/$id &&
		grep -q "^end $wd/jobs/$id " $REC/$id &&
		echo $sbx >>hosts.txt || return 1
	done &&
	test_debug "sort hosts.txt | uniq -c" &&
	grep -qx $HOST_A hosts.txt &&
	grep -qx $HOST_B hosts.txt &&
	# The disabled sandbox was never even picked, nothing connected to it.
	cat *.ev >all-pool.ev &&
	ev_vals all-pool.ev sshbox.acquired sandbox >acquired.txt &&
	test_debug "sort acquired.txt | uniq -c" &&
	! grep -qx $HOST_C acquired.txt &&
	! grep -rq -e "$TB_C_WORKDIR" -e "$DEAD_WORKDIR" "$REC" &&
	test_path_is_missing "$TB_C_WORKDIR/jobs" &&
	! grep -q "Accepted publickey" "$TB_C_LOG" &&
	test_path_is_missing "$DEAD_WORKDIR"
'

test_expect_success 'status: the unreachable sandbox is unhealthy with a reason, the disabled one disabled' '
	f_spec dead-1 0 ",\"sandbox\":\"$HOST_DEAD\",\"wait_s\":0" >dead.spec &&
	test_wait_for probe_dead 10 &&
	test_debug "cat status-dead.json dead.err" &&
	test "$(cat dead.rc)" = 75 &&
	test "$(sb_result_field dead.ev status)" = error &&
	test "$(sb_result_field dead.ev sandbox)" = null &&
	tail -n 1 dead.err >dead-last.err &&
	grep -q -e "^sshbox: error: .*$HOST_DEAD.*refused" -e "^sshbox: error: .*marked unhealthy" dead-last.err &&
	reason=$(st_get status-dead.json $HOST_DEAD reason) &&
	test -n "$reason" && test "$reason" != null &&
	failures=$(st_get status-dead.json $HOST_DEAD failures) &&
	test "$failures" -ge 1 &&
	test "$(st_get status-dead.json $HOST_DEAD state)" = active &&
	test "$(st_get status-dead.json $HOST_C state)" = disabled &&
	test "$(st_get status-dead.json $HOST_A health)" = healthy &&
	test "$(st_get status-dead.json $HOST_B health)" = healthy &&
	test "$(st_get status-dead.json $HOST_A state)" = active &&
	# the mark lasts one backoff period (about a second here): probe again
	# rather than race its expiry
	test_wait_for "f_run <dead.spec >/dev/null 2>&1; \"\$SSHBOX\" status >status.txt && grep \"$HOST_DEAD\" status.txt | grep -q UNHEALTHY" 10 &&
	test_debug "cat status.txt" &&
	grep "$HOST_C" status.txt | grep -q disabled
'

test_expect_success 'a duplicate job_id while the first runs is refused with exit 2' '
	f_spec long-1 20 ",\"sandbox\":\"$HOST_A\",\"wait_s\":15" >long-1.spec &&
	bg_run long-1 &&
	wait_started long-1 &&
	# on any sandbox (found among the holders) ...
	f_spec long-1 0 ",\"wait_s\":2" >dup-1.spec &&
	test_expect_code 2 f_run <dup-1.spec >dup-1.ev 2>dup-1.err &&
	test_debug "cat dup-1.err" &&
	grep -q "job_id .long-1. is already running on sandbox .$HOST_A." dup-1.err &&
	test "$(sb_result_field dup-1.ev status)" = error &&
	test "$(sb_result_field dup-1.ev exit_code)" = 2 &&
	# ... and pinned to another sandbox with a free slot (the reservation)
	f_spec long-1 0 ",\"sandbox\":\"$HOST_B\",\"wait_s\":2" >dup-2.spec &&
	test_expect_code 2 f_run <dup-2.spec >dup-2.ev 2>dup-2.err &&
	test_debug "cat dup-2.err" &&
	grep -q "job_id .long-1. is already running on sandbox .$HOST_A." dup-2.err &&
	test "$(sb_result_field dup-2.ev exit_code)" = 2 &&
	# the first one runs on, alone
	tb_alive $(cat long-1.pid) &&
	test "$(grep -c "^start " $REC/long-1)" = 1 &&
	test "$(job_procs long-1 | wc -l)" -ge 1
'

test_expect_success 'wait_s exceeded: exit 69 after about wait_s, queued at position 1, queue left empty' '
	tb_alive $(cat long-1.pid) &&
	f_spec w-1 0 ",\"sandbox\":\"$HOST_A\",\"wait_s\":3" >w-1.spec &&
	t0=$(now_ms) &&
	test_expect_code 69 f_run <w-1.spec >w-1.ev 2>w-1.err &&
	el=$(($(now_ms) - t0)) &&
	test_debug "echo waited $el ms; cat w-1.err" &&
	test $el -ge 2500 &&
	test $el -le 8000 &&
	ev_vals w-1.ev sshbox.queued position >pos.txt &&
	test -s pos.txt &&
	test "$(sort -u pos.txt)" = 1 &&
	test "$(sb_result_field w-1.ev status)" = error &&
	test "$(sb_result_field w-1.ev exit_code)" = 69 &&
	test "$(sb_result_field w-1.ev sandbox)" = null &&
	test "$(sb_event_types w-1.ev | tail -n 1)" = sshbox.result &&
	grep -q "within 3 s" w-1.err &&
	test_path_is_missing $REC/w-1 &&
	test "$(tb_redis_cli ZCARD sshbox:queue:acme)" = 0 &&
	test "$(tb_redis_cli ZCARD sshbox:queue:acme:alive)" = 0 &&
	tb_alive $(cat long-1.pid)
'

test_expect_success 'the long job, cancelled with SIGTERM, stops its remote work and frees its slot' '
	kill -TERM $(cat long-1.pid) &&
	bg_wait long-1 15 &&
	test "$(cat long-1.rc)" = 143 &&
	test "$(sb_result_field long-1.ev status)" = cancelled &&
	test_wait_for "no_job_procs long-1" 10 &&
	grep -q "^term " $REC/long-1 &&
	test "$(tb_redis_cli EXISTS "$SLOT_A0")" = 0 &&
	test "$(tb_redis_cli EXISTS sshbox:job:acme:long-1)" = 0 &&
	test_wait_for "test ! -e $TB_A_WORKDIR/jobs/long-1" 10
'

test_expect_success 'sandbox drain: the running job finishes, new jobs do not get it; enable brings it back' '
	f_spec drain-1 4 ",\"sandbox\":\"$HOST_A\",\"wait_s\":15" >drain-1.spec &&
	bg_run drain-1 &&
	wait_started drain-1 &&
	"$SSHBOX" sandbox drain --account acme --host $HOST_A >/dev/null &&
	f_spec drain-2 0 ",\"sandbox\":\"$HOST_A\",\"wait_s\":2" >drain-2.spec &&
	test_expect_code 69 f_run <drain-2.spec >drain-2.ev 2>drain-2.err &&
	test_debug "cat drain-2.err" &&
	test "$(sb_result_field drain-2.ev status)" = error &&
	test "$(sb_result_field drain-2.ev sandbox)" = null &&
	test_path_is_missing $REC/drain-2 &&
	# an unpinned job goes elsewhere
	f_spec drain-u 0 ",\"wait_s\":10" >drain-u.spec &&
	f_run <drain-u.spec >drain-u.ev 2>drain-u.err &&
	test "$(sb_result_field drain-u.ev sandbox)" = $HOST_B &&
	"$SSHBOX" status --json >status-drain.json &&
	test "$(st_get status-drain.json $HOST_A state)" = draining &&
	test "$(st_get status-drain.json $HOST_A slots_used)" = 1 &&
	# the running job was not touched
	tb_alive $(cat drain-1.pid) &&
	bg_wait drain-1 20 &&
	test "$(cat drain-1.rc)" = 0 &&
	test "$(sb_result_field drain-1.ev status)" = succeeded &&
	test "$(sb_result_field drain-1.ev sandbox)" = $HOST_A &&
	grep -q "^end " $REC/drain-1 &&
	! grep -q "^term " $REC/drain-1 &&
	# still draining once idle
	f_spec drain-3 0 ",\"sandbox\":\"$HOST_A\",\"wait_s\":1" >drain-3.spec &&
	test_expect_code 69 f_run <drain-3.spec >drain-3.ev 2>drain-3.err &&
	"$SSHBOX" sandbox enable --account acme --host $HOST_A >/dev/null &&
	f_spec drain-4 0 ",\"sandbox\":\"$HOST_A\",\"wait_s\":10" >drain-4.spec &&
	f_run <drain-4.spec >drain-4.ev 2>drain-4.err &&
	test "$(sb_result_field drain-4.ev status)" = succeeded &&
	test "$(sb_result_field drain-4.ev sandbox)" = $HOST_A
'

test_expect_success 'kill -9 of sshbox run: remote work stops, the slot comes back after the lease TTL, the next job gets it' '
	f_spec k-1 20 ",\"sandbox\":\"$HOST_A\",\"wait_s\":15" >k-1.spec &&
	bg_run k-1 $TTL_FAST &&
	wait_started k-1 &&
	test -n "$(job_procs k-1)" &&
	pttl=$(tb_redis_cli PTTL "$SLOT_A0") &&
	test "$pttl" -gt 0 && test "$pttl" -le 3000 &&
	kfence=$(ev_vals k-1.ev sshbox.acquired fence) &&
	kill -9 $(cat k-1.pid) &&
	t0=$(now_ms) &&
	# the next job asks at once: it waits until the lease runs out
	f_spec k-2 0 ",\"sandbox\":\"$HOST_A\",\"wait_s\":15" >k-2.spec &&
	bg_run k-2 &&
	bg_wait k-1 5 &&
	test "$(cat k-1.rc)" = 137 &&
	test_wait_for "no_job_procs k-1" 10 &&
	t_gone=$(now_ms) &&
	test_debug "echo remote work gone $((t_gone - t0)) ms after kill -9" &&
	# stopped by its own remote wrapper (TERM), not by the next holder
	grep -q "^term " $REC/k-1 &&
	! grep -q "^end " $REC/k-1 &&
	test_wait_for "test ! -e $TB_A_WORKDIR/jobs/k-1 && test ! -e $TB_A_WORKDIR/jobs/.k-1" 10 &&
	bg_wait k-2 30 &&
	test_debug "cat k-2.err" &&
	test "$(cat k-2.rc)" = 0 &&
	test "$(sb_result_field k-2.ev status)" = succeeded &&
	test "$(sb_result_field k-2.ev sandbox)" = $HOST_A &&
	test "$(ev_vals k-2.ev sshbox.acquired slot)" = 0 &&
	test "$(ev_vals k-2.ev sshbox.acquired fence)" -gt "$kfence" &&
	ev_vals k-2.ev sshbox.queued position >k2pos.txt &&
	test "$(head -n 1 k2pos.txt)" = 1 &&
	t_acq=$(ev_ts_ms k-2.ev sshbox.acquired) &&
	test_debug "echo slot back $((t_acq - t0)) ms after kill -9" &&
	test $((t_acq - t0)) -le 6000 &&
	test "$(tb_redis_cli EXISTS sshbox:job:acme:k-1)" = 0
'

# docs/ssh.md: the private agent holds the account's decrypted key and "dies
# with sshbox" (PR_SET_PDEATHSIG).
test_expect_success 'kill -9 of sshbox run: its private ssh-agent (holding the key) dies with it' '
	kpid=$(cat k-1.pid) &&
	test_when_finished "stop_agent_of $kpid" &&
	test_wait_for "! agent_of $kpid" 5
'

test_expect_success 'a lost lease (lock key deleted): the remote work stops, error naming host and slot, exit 75' '
	f_spec l-1 20 ",\"sandbox\":\"$HOST_A\",\"wait_s\":15" >l-1.spec &&
	bg_run l-1 $TTL_FAST &&
	wait_started l-1 &&
	test -n "$(job_procs l-1)" &&
	test "$(tb_redis_cli DEL "$SLOT_A0")" = 1 &&
	t0=$(now_ms) &&
	bg_wait l-1 15 &&
	el=$(($(now_ms) - t0)) &&
	test_debug "echo ended $el ms after the key was deleted; cat l-1.err" &&
	test $el -le 7000 &&
	test "$(cat l-1.rc)" = 75 &&
	test "$(sb_result_field l-1.ev status)" = error &&
	test "$(sb_result_field l-1.ev exit_code)" = 75 &&
	err=$(sb_result_field l-1.ev error) &&
	case $err in *lock*) ;; *) false ;; esac &&
	case $err in *"slot 0"*) ;; *) false ;; esac &&
	case $err in *"$HOST_A"*) ;; *) false ;; esac &&
	test "$(sb_event_types l-1.ev | tail -n 1)" = sshbox.result &&
	test_wait_for "no_job_procs l-1" 5 &&
	grep -q "^term " $REC/l-1 &&
	! grep -q "^end " $REC/l-1 &&
	test_wait_for "test ! -e $TB_A_WORKDIR/jobs/l-1" 10 &&
	test "$(tb_redis_cli EXISTS sshbox:job:acme:l-1)" = 0
'

# Beyond the list of issue 3: the same faults seen from the other side.

test_expect_success 'a paused orchestrator (SIGSTOP): its job is stopped on the sandbox, the next job gets the slot, the woken one reports error 75' '
	f_spec s-1 20 ",\"sandbox\":\"$HOST_A\",\"wait_s\":15" >s-1.spec &&
	bg_run s-1 $TTL_FAST &&
	wait_started s-1 &&
	test -n "$(job_procs s-1)" &&
	sfence=$(ev_vals s-1.ev sshbox.acquired fence) &&
	kill -STOP $(cat s-1.pid) &&
	test_when_finished "kill -CONT $(cat s-1.pid) 2>/dev/null; true" &&
	t0=$(now_ms) &&
	f_spec s-2 0 ",\"sandbox\":\"$HOST_A\",\"wait_s\":15" >s-2.spec &&
	bg_run s-2 &&
	test_wait_for "no_job_procs s-1" 10 &&
	test_debug "echo remote work gone $(($(now_ms) - t0)) ms after SIGSTOP" &&
	bg_wait s-2 30 &&
	test "$(cat s-2.rc)" = 0 &&
	test "$(sb_result_field s-2.ev status)" = succeeded &&
	test "$(ev_vals s-2.ev sshbox.acquired fence)" -gt "$sfence" &&
	# never two on one slot: s-1 was stopped (TERM) before s-2 started
	start2=$(awk "\$1 == \"start\" { print \$3 }" $REC/s-2) &&
	term1=$(awk "\$1 == \"term\" { print \$3 }" $REC/s-1) &&
	test_debug "echo s-1 term $term1, s-2 start $start2" &&
	! grep -q "^end " $REC/s-1 &&
	{ test -z "$term1" || test "$term1" -le "$start2"; } &&
	kill -CONT $(cat s-1.pid) &&
	bg_wait s-1 15 &&
	test_debug "cat s-1.err" &&
	test "$(cat s-1.rc)" = 75 &&
	test "$(sb_result_field s-1.ev status)" = error &&
	err=$(sb_result_field s-1.ev error) &&
	case $err in *lock*"slot 0"*) ;; *) false ;; esac &&
	test "$(tb_redis_cli --scan --pattern "sshbox:*:slot:*" | wc -l)" = 0
'

# docs/locks.md: a renewal that fails is retried every second, and if none
# succeeded within 2/3 of the ttl the job is stopped, "so the remote work is
# gone before Redis could hand the slot to anyone else"; a lost lease ends
# the job with status error, exit 75, naming the sandbox and slot.  Redis is
# frozen (SIGSTOP: connections hang, as on a partition) right after a
# renewal R, so the key expires at R + 3 s at the latest; with ttl 3 s the
# job must be stopped at about R + 2 s.
test_expect_success 'Redis hangs while a job runs: the remote work stops before the lease runs out, error naming the lock, exit 75' '
	f_spec h-1 20 ",\"sandbox\":\"$HOST_A\",\"wait_s\":15" >h-1.spec &&
	bg_run h-1 $TTL_FAST &&
	wait_started h-1 &&
	test -n "$(job_procs h-1)" &&
	wait_renewal "$SLOT_A0" &&
	kill -STOP $TB_REDIS_PID &&
	t0=$(now_ms) &&
	test_when_finished "kill -CONT $TB_REDIS_PID" &&
	test_wait_for "no_job_procs h-1" 10 &&
	term=$(awk "\$1 == \"term\" { print \$3 }" $REC/h-1) &&
	test -n "$term" &&
	bg_wait h-1 15 &&
	kill -CONT $TB_REDIS_PID &&
	err=$(sb_result_field h-1.ev error) &&
	echo "stub stopped $((term - t0)) ms after the last renewal; error: $err" &&
	test "$(cat h-1.rc)" = 75 &&
	test "$(sb_result_field h-1.ev status)" = error &&
	! grep -q "^end " $REC/h-1 &&
	case $err in *lock*"slot 0"*) ;; *) false ;; esac &&
	test $((term - t0)) -le 2800
'

test_expect_success 'a waiter killed with -9 leaves the queue by itself; the next waiter gets the slot' '
	f_spec q-h 3 ",\"sandbox\":\"$HOST_A\",\"wait_s\":15" >q-h.spec &&
	bg_run q-h &&
	wait_started q-h &&
	f_spec q-1 0 ",\"sandbox\":\"$HOST_A\",\"wait_s\":30" >q-1.spec &&
	bg_run q-1 &&
	test_wait_for "grep -q sshbox.queued q-1.ev" 10 &&
	kill -9 $(cat q-1.pid) &&
	bg_wait q-1 5 &&
	f_spec q-2 0 ",\"sandbox\":\"$HOST_A\",\"wait_s\":20" >q-2.spec &&
	bg_run q-2 &&
	bg_wait q-h 20 &&
	test "$(cat q-h.rc)" = 0 &&
	bg_wait q-2 25 &&
	test_debug "cat q-2.err; ev_vals q-2.ev sshbox.queued position" &&
	test "$(cat q-2.rc)" = 0 &&
	test "$(sb_result_field q-2.ev status)" = succeeded &&
	test "$(ev_vals q-2.ev sshbox.queued position | head -n 1)" = 2 &&
	test_path_is_missing $REC/q-1 &&
	test "$(tb_redis_cli ZCARD sshbox:queue:acme)" = 0 &&
	test "$(tb_redis_cli ZCARD sshbox:queue:acme:alive)" = 0
'

test_expect_success 'Redis stopped: a new job exits 75 with one clear error line and an sshbox.result' '
	f_spec r-1 0 ",\"wait_s\":5" >r-1.spec &&
	tb_stop_redis &&
	t0=$(now_ms) &&
	test_expect_code 75 f_run <r-1.spec >r-1.ev 2>r-1.err &&
	el=$(($(now_ms) - t0)) &&
	test_debug "echo $el ms; cat r-1.err r-1.ev" &&
	test $el -le 5000 &&
	test "$(wc -l <r-1.err)" = 1 &&
	grep -q "^sshbox: error: .*Redis at 127.0.0.1:$TB_REDIS_PORT unreachable" r-1.err &&
	test "$(wc -l <r-1.ev)" = 1 &&
	test "$(sb_result_field r-1.ev status)" = error &&
	test "$(sb_result_field r-1.ev exit_code)" = 75 &&
	test "$(sb_result_field r-1.ev sandbox)" = null &&
	test_path_is_missing $REC/r-1
'

test_expect_success 'Redis restarted empty: after registering again, jobs work (EVALSHA falls back to EVAL)' '
	tb_restart_redis &&
	test "$(tb_redis_cli DBSIZE)" = 0 &&
	sb_account_key &&
	f_register a 1 &&
	f_register b 2 &&
	f_spec r-2 0 ",\"wait_s\":10" >r-2.spec &&
	f_run <r-2.spec >r-2.ev 2>r-2.err &&
	test "$(sb_result_field r-2.ev status)" = succeeded &&
	grep -q "^end " $REC/r-2
'

test_expect_success 'SCRIPT FLUSH under a running job and before a new one: jobs still succeed' '
	f_spec r-3 3 ",\"sandbox\":\"$HOST_A\",\"wait_s\":10" >r-3.spec &&
	bg_run r-3 $TTL_FAST &&
	wait_started r-3 &&
	test "$(tb_redis_cli SCRIPT FLUSH)" = OK &&
	bg_wait r-3 20 &&
	test_debug "cat r-3.err" &&
	test "$(cat r-3.rc)" = 0 &&
	test "$(sb_result_field r-3.ev status)" = succeeded &&
	test "$(tb_redis_cli SCRIPT FLUSH)" = OK &&
	f_spec r-4 0 ",\"sandbox\":\"$HOST_A\",\"wait_s\":10" >r-4.spec &&
	f_run <r-4.spec >r-4.ev 2>r-4.err &&
	test "$(sb_result_field r-4.ev status)" = succeeded &&
	test "$(tb_redis_cli --scan --pattern "sshbox:*:slot:*" | wc -l)" = 0
'

test_done
