#!/usr/bin/env bash
test_description='sshbox supervise with 20 sandboxes, one frozen (SIGSTOP): the others stay fresh, registry changes still land within 2 s'
. "$(dirname "$0")/lib.sh"
. "$REPO_ROOT/tests/testbed.sh"
. "$REPO_ROOT/tests/sshbox-env.sh"

# A frozen sshd accepts TCP and then says nothing, and a master already
# connected to it hangs every session: a supervisor that waits for one
# sandbox's ssh delays every other sandbox's check and the registry poll.
NOOP=$REPO_ROOT/tests/data/stub-claude-noop
N=20
FROZEN=s07
SV_PID=

now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }
name_of() { printf 's%02d' "$1"; }

register() {	# NAME
	tb_authorize_key "$1" "$TEST_DIR/key-$SB_ACCOUNT.pub" &&
	"$SSHBOX" sandbox add --account "$SB_ACCOUNT" --host "$(tb_sbx_var "$1" HOST)" \
		--port "$(tb_sbx_var "$1" PORT)" --user "$(tb_sbx_var "$1" USER)" \
		--workdir "$(tb_sbx_var "$1" WORKDIR)" --slots 1 --claude "$NOOP" \
		--host-key "$(tb_sbx_var "$1" HOSTKEY)" >/dev/null
}

# freeze NAME: SIGSTOP its sshd and every session sshd under it (the one
# serving the supervisor's master included); thaw NAME undoes it.
freeze() { local p=$(tb_sbx_var "$1" PID); kill -STOP $p $(tb_descendants "$p"); }
thaw() { local p=$(tb_sbx_var "$1" PID); kill -CONT $p $(tb_descendants "$p") 2>/dev/null; true; }

master_up() { timeout 5 ssh -F "$SSHBOX_STATE_DIR/ssh_config" -O check "$1" 2>/dev/null; }
alias_of() { echo "sbx-$SB_ACCOUNT-$(tb_sbx_var "$1" HOST)"; }
health_reason() {	# NAME: the reason of its unhealthy mark in Redis ("" = none)
	tb_redis_cli hget "sshbox:{$SB_ACCOUNT:$(tb_sbx_var "$1" HOST)}:health" reason; }

# The supervisor's vouch files (<state>/lock/<digest>.ok) get a fresh mtime
# at every passed health check: "name mtime" lines.
vouches() { stat -c '%n %y' "$SSHBOX_STATE_DIR"/lock/*.ok 2>/dev/null; }

# fresh_after SINCE_FILE COUNT WANT LIMIT_S: sample the vouches until COUNT
# of them each show WANT distinct mtimes newer than SINCE_FILE's.
fresh_after() {
	local since=$1 count=$2 want=$3 limit_ms=$(($4 * 1000)) start i got
	start=$(now_ms)
	: >samples
	for i in $(seq 400); do
		vouches | while read -r f d t z; do
			[ "$f" -nt "$since" ] && echo "$f $d $t"
		done >>samples
		got=$(sort -u samples | cut -d" " -f1 | uniq -c | awk -v w="$want" '$1 >= w' | wc -l)
		if [ "$got" -ge "$count" ]; then
			echo "$got sandboxes re-checked $want times within $(( $(now_ms) - start )) ms"
			return 0
		fi
		[ $(( $(now_ms) - start )) -lt "$limit_ms" ] || break
		sleep 0.2
	done
	echo "only $got sandboxes re-checked $want times within $4 s" >&2
	sort -u samples | cut -d" " -f1 | uniq -c >&2
	return 1
}

test_expect_success "set up: Redis, $N sandboxes registered, one more unregistered, the supervisor" '
	tb_ensure_user &&
	tb_start_redis &&
	for i in $(seq $((N + 2))); do
		tb_start_sandbox "$(name_of $i)" "127.0.0.$((10 + i))" || return 1
	done &&
	sb_env_init &&
	sb_account_key &&
	for i in $(seq $N); do register "$(name_of $i)" || return 1; done &&
	printf "%s\n" "health_interval_s = 1" "sweep_interval_s = 2" "sweep_min_age_s = 60" \
		"ssh_connect_timeout_s = 2" >>"$SSHBOX_CONFIG" &&
	{ "$SSHBOX" supervise 2>>sv.log & } &&
	SV_PID=$! &&
	test_atexit "kill $SV_PID 2>/dev/null; wait $SV_PID 2>/dev/null; true" &&
	test_atexit "for i in \$(seq $((N + 2))); do thaw \$(name_of \$i); done" &&
	test_wait_for "test \$(vouches | wc -l) -ge $N" 60 &&
	echo "$N masters up and vouched for"
'

test_expect_success 'a sandbox frozen after its master is up: the other 19 keep being checked, it turns unhealthy' '
	freeze $FROZEN &&
	touch frozen-at &&
	fresh_after frozen-at 19 2 12 &&
	# the mark lives one backoff (about a second at first) and is
	# published once: watch Redis for it, then the log
	test_wait_for "test -n \"\$(health_reason $FROZEN)\"" 25 &&
	test_wait_for "grep -q \"sandbox .$(tb_sbx_var $FROZEN HOST). of account .acme.: unhealthy\" sv.log" 5
'

test_expect_success 'while it is frozen, a registry change is reconciled within 2 s' '
	gone=$(name_of 3) &&
	s=$(now_ms) &&
	"$SSHBOX" sandbox disable --account acme --host "$(tb_sbx_var $gone HOST)" >/dev/null &&
	test_wait_for "! master_up $(alias_of $gone)" 2 &&
	echo "disabled sandbox: master gone after $(( $(now_ms) - s )) ms" &&
	new=$(name_of $((N + 1))) &&
	s=$(now_ms) &&
	register $new &&
	test_wait_for "grep -q \"sandbox .$(tb_sbx_var $new HOST). of account .acme.: watching\" sv.log" 2 &&
	test_wait_for "master_up $(alias_of $new)" 10 &&
	echo "added sandbox: master up after $(( $(now_ms) - s )) ms"
'

test_expect_success 'a sandbox frozen before first contact costs only its own entry' '
	cold=$(name_of $((N + 2))) &&
	freeze $cold &&
	register $cold &&
	touch cold-at &&
	test_wait_for "grep -q \"sandbox .$(tb_sbx_var $cold HOST). of account .acme.: watching\" sv.log" 2 &&
	fresh_after cold-at 18 2 12 &&
	# (the Redis mark expires with its backoff: the log line stays)
	test_wait_for "grep -q \"sandbox .$(tb_sbx_var $cold HOST). of account .acme.: unhealthy\" sv.log" 30
'

test_expect_success 'thawed, the frozen sandbox is healthy again; SIGTERM stops everything within 5 s' '
	thaw $FROZEN &&
	test_wait_for "grep -q \"sandbox .$(tb_sbx_var $FROZEN HOST). of account .acme.: healthy\" sv.log" 30 &&
	kill -TERM $SV_PID &&
	test_wait_for "! kill -0 $SV_PID 2>/dev/null" 5 &&
	wait $SV_PID
'

test_done
