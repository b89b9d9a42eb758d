#!/usr/bin/env bash
test_description='etc/ deployment files and scripts/provision-sandbox.sh, against the real sshd, redis-server, supervisord and systemd-analyze'
. "$(dirname "$0")/lib.sh"
. "$REPO_ROOT/tests/testbed.sh"

ETC=$REPO_ROOT/etc
PROV=$REPO_ROOT/scripts/provision-sandbox.sh

command -v shellcheck >/dev/null 2>&1 && test_set_prereq SHELLCHECK
command -v systemd-analyze >/dev/null 2>&1 && test_set_prereq SYSTEMD_ANALYZE
# sshd refuses a locked root ('!' in /etc/shadow) with UsePAM no.
case $(getent shadow root 2>/dev/null | cut -d: -f2) in
'!'*|'') ;;
*) test_have_prereq ROOT && test_set_prereq ROOTLOGIN ;;
esac

# The throwaway sandbox user and its places, all under TEST_DIR.
PU=t5200-$$
PHOME=$TEST_DIR/homes/$PU
PWORK=$TEST_DIR/srv/sshbox
SSHD_D=$TEST_DIR/sshd.d
SSHD_MAIN=$TEST_DIR/sshd_main
export GIT_CONFIG_SYSTEM=$TEST_DIR/gitconfig-system

# prov ARGS...: the provisioning of this test's sandbox user, bounded.
prov() {
	timeout 120 bash "$PROV" --local --no-uv --no-claude --skip-packages \
		--user "$PU" --home "$PHOME" --workdir "$PWORK" \
		--sshd-config-dir "$SSHD_D" --sshd-config "$SSHD_MAIN" --no-sshd-reload "$@"
}

# The user and its group go when the script ends, also when it fails.
remove_prov_user() {
	if id -u "$PU" >/dev/null 2>&1; then
		userdel "$PU" || return 1
	fi
	if getent group "$PU" >/dev/null; then
		groupdel "$PU" || return 1
	fi
	rm -rf -- "$TEST_DIR/homes" "$TEST_DIR/srv"
}

# "key default" for every row of docs/commands.md's configuration table.
config_table() {
	sed -n '/^## Configuration/,/^## /p' "$REPO_ROOT/docs/commands.md" |
		sed -n 's/^| `\([a-z_]*\)` | \([^|]*\) |.*/\1 \2/p' |
		sed -e 's/`//g' -e 's/ *$//'
}

# sshd_cfg KEY USER: the effective value of KEY for USER, from `sshd -T`.
sshd_cfg() {
	sshd -T -f "$SSHD_MAIN" -C "user=$2,host=localhost,addr=127.0.0.1" >"sshd-T.$2" 2>&1 || {
		cat "sshd-T.$2" >&2
		return 1
	}
	awk -v k="$1" '$1 == k { sub(/^[^ ]+ /, ""); print; found = 1 } END { exit !found }' "sshd-T.$2"
}

test_expect_success 'sshbox.conf.example: every key of docs/commands.md with its default, and nothing else' '
	config_table >table &&
	test "$(wc -l <table)" -ge 13 &&
	ex=$ETC/sshbox.conf.example &&
	sed -n "s/^#\{0,1\} \{0,1\}\([a-z_][a-z_]*\) = \{0,1\}\(.*\)$/\1 \2/p" "$ex" >example &&
	cat table example &&
	while read -r key def; do
		line=$(grep "^$key " example) || { echo "missing in the example: $key"; return 1; }
		test "$(grep -c "^$key " example)" = 1 || { echo "twice in the example: $key"; return 1; }
		val=${line#"$key"}; val=${val# } &&
		case $def in
		—) ;;
		*) test "$val" = "$def" || { echo "$key: example $val, docs $def"; return 1; } ;;
		esac || return 1
	done <table &&
	grep -qx "health_interval_s 15" example &&
	grep -qx "sweep_interval_s 300" example &&
	grep -qx "sweep_min_age_s 900" example &&
	grep -qx "state_dir /run/sshbox" example &&
	grep -qx "fernet_keys_file /etc/sshbox/fernet.keys" example &&
	grep -qx "state_dir = /run/sshbox" "$ex" &&
	cut -d" " -f1 example | sort >keys.example &&
	{ cut -d" " -f1 table; printf "%s\n" health_interval_s sweep_interval_s sweep_min_age_s; } | sort -u >keys.known &&
	test_cmp keys.known keys.example
'

test_expect_success SSHBOX 'sshbox reads the example, and the example with every default uncommented' '
	"$SSHBOX" --config "$ETC/sshbox.conf.example" fernet genkey >key1 &&
	test "$(wc -c <key1)" = 45 &&
	sed "s/^# \([a-z_][a-z_]*\) = /\1 = /" "$ETC/sshbox.conf.example" >all.conf &&
	grep -c "^[a-z_]* = " all.conf >n &&
	test "$(cat n)" -ge 15 &&
	"$SSHBOX" --config all.conf fernet genkey >key2 &&
	echo "no_such_key = 1" >>all.conf &&
	test_must_fail "$SSHBOX" --config all.conf fernet genkey 2>err &&
	grep -q "unknown key .no_such_key." err
'

test_expect_success ROOT 'the sshd snippet passes sshd -t and wins over a later cloud-init snippet' '
	mkdir -p "$SSHD_D" /run/sshd &&
	ssh-keygen -q -t ed25519 -N "" -f hostkey </dev/null &&
	printf "%s\n" "Include $SSHD_D/*.conf" "HostKey $TEST_DIR/hostkey" "MaxSessions 10" "X11Forwarding yes" >"$SSHD_MAIN" &&
	cp "$ETC/sshd/sshbox-sandbox.conf" "$SSHD_D/10-sshbox.conf" &&
	echo "PasswordAuthentication yes" >"$SSHD_D/50-cloud-init.conf" &&
	sshd -t -f "$SSHD_MAIN" &&
	test "$(sshd_cfg maxsessions sshbox)" = 32 &&
	test "$(sshd_cfg maxstartups sshbox)" = 30:30:100 &&
	test "$(sshd_cfg clientaliveinterval sshbox)" = 15 &&
	test "$(sshd_cfg clientalivecountmax sshbox)" = 3 &&
	test "$(sshd_cfg passwordauthentication sshbox)" = no &&
	test "$(sshd_cfg kbdinteractiveauthentication sshbox)" = no &&
	test "$(sshd_cfg pubkeyauthentication sshbox)" = yes &&
	test "$(sshd_cfg permituserenvironment sshbox)" = no &&
	for k in allowtcpforwarding allowagentforwarding allowstreamlocalforwarding x11forwarding permittunnel; do
		test "$(sshd_cfg $k sshbox)" = no || { echo "$k for sshbox: $(sshd_cfg $k sshbox)"; return 1; }
	done &&
	test "$(sshd_cfg disableforwarding sshbox)" = yes &&
	test "$(sshd_cfg allowtcpforwarding operator)" = yes &&
	test "$(sshd_cfg x11forwarding operator)" = yes &&
	test "$(sshd_cfg maxsessions operator)" = 32 &&
	rm -f "$SSHD_D"/*
'

test_expect_success 'provision-sandbox.sh writes exactly etc/sshd/sshbox-sandbox.conf for the defaults' '
	bash "$PROV" --print-sshd-config >snippet &&
	test_cmp "$ETC/sshd/sshbox-sandbox.conf" snippet &&
	bash "$PROV" --print-sshd-config --user box_u --max-sessions 70 >snippet2 &&
	grep -qx "MaxSessions 70" snippet2 &&
	grep -qx "Match User box_u" snippet2 &&
	test_must_fail bash "$PROV" --print-sshd-config --max-sessions 5 2>err &&
	test_line_count = 1 err &&
	test_must_fail bash "$PROV" --print-sshd-config --user "-oops" 2>err &&
	test_line_count = 1 err &&
	test_must_fail bash "$PROV" --local --workdir "/srv/../etc" 2>err &&
	grep -q "invalid --workdir" err &&
	bash "$PROV" --help >help &&
	grep -q -- "--dry-run" help
'

test_expect_success SHELLCHECK 'provision-sandbox.sh is shellcheck-clean' '
	shellcheck "$PROV"
'

test_expect_success ROOT 'redis-server with sshbox-redis.conf: AOF, noeviction; a write survives kill -9; full memory refuses writes' '
	rd=$TEST_DIR/redis5 && mkdir -p "$rd" &&
	rport=$(tb_free_port) &&
	start_redis5() {
		setsid redis-server "$ETC/redis/sshbox-redis.conf" --port "$rport" --bind 127.0.0.1 \
			--dir "$rd" --unixsocket "$rd/redis.sock" --pidfile "$rd/redis.pid" \
			--logfile "$rd/redis.log" --daemonize no "$@" </dev/null >>"$rd/out" 2>&1 &
		R5_PID=$! &&
		test_atexit "tb_kill_tree \$R5_PID" &&
		test_wait_for "redis-cli -p $rport ping | grep -qx PONG" 10
	} &&
	start_redis5 &&
	r5() { redis-cli -p "$rport" "$@"; } &&
	test "$(r5 config get appendonly | sed -n 2p)" = yes &&
	test "$(r5 config get appendfsync | sed -n 2p)" = everysec &&
	test "$(r5 config get maxmemory-policy | sed -n 2p)" = noeviction &&
	test "$(r5 config get protected-mode | sed -n 2p)" = yes &&
	test "$(r5 config get maxmemory | sed -n 2p)" = 268435456 &&
	test "$(r5 config get unixsocketperm | sed -n 2p)" = 770 &&
	test "$(r5 set sshbox:t5200 persisted)" = OK &&
	test_wait_for "grep -rqs sshbox:t5200 \"$rd/appendonlydir\"" 5 &&
	kill -KILL "$R5_PID" &&
	test_wait_for "! tb_alive $R5_PID" 5 &&
	start_redis5 &&
	test "$(r5 get sshbox:t5200)" = persisted &&
	r5 config set maxmemory 1 >/dev/null &&
	r5 set sshbox:t5200:more x >oom 2>&1 &&
	cat oom &&
	grep -q "^OOM" oom &&
	test "$(r5 get sshbox:t5200)" = persisted &&
	tb_kill_tree "$R5_PID"
'

test_expect_success SSHBOX 'the ACL user of sshbox-redis.conf: sshbox works (registry, status, a job that takes and gives back a slot), other keys and admin commands are refused' '
	rules=$(sed -n "s/^#   user sshbox on ><secret> //p" "$ETC/redis/sshbox-redis.conf") &&
	test -n "$rules" &&
	grep -qx "#   user default off" "$ETC/redis/sshbox-redis.conf" &&
	read -ra rules_a <<<"$rules" &&
	pw=pw-$$-$RANDOM &&
	ad=$TEST_DIR/redis-acl && mkdir -p "$ad" &&
	aport=$(tb_free_port) &&
	{ setsid redis-server "$ETC/redis/sshbox-redis.conf" --port "$aport" --bind 127.0.0.1 \
		--dir "$ad" --unixsocket "$ad/redis.sock" --pidfile "$ad/redis.pid" \
		--logfile "$ad/redis.log" --daemonize no \
		--user default off --user sshbox on ">$pw" "${rules_a[@]}" </dev/null >>"$ad/out" 2>&1 & } &&
	A_PID=$! &&
	test_atexit "tb_kill_tree \$A_PID" &&
	test_wait_for "redis-cli -p $aport ping 2>&1 | grep -q NOAUTH" 10 &&
	ra() { redis-cli -p "$aport" --user sshbox --pass "$pw" --no-auth-warning "$@"; } &&
	test "$(ra ping)" = PONG &&
	ra set other:key v >o1 2>&1 && grep -q NOPERM o1 &&
	ra config get maxmemory >o2 2>&1 && grep -q NOPERM o2 &&
	ra flushall >o3 2>&1 && grep -q NOPERM o3 &&
	ra keys "*" >o4 2>&1 && grep -q NOPERM o4 &&
	(
		: >empty.conf &&
		export SSHBOX_CONFIG=$TEST_DIR/empty.conf SSHBOX_REDIS_URL="redis://sshbox:$pw@127.0.0.1:$aport/0" \
			SSHBOX_STATE_DIR=$TEST_DIR/st-acl &&
		SSHBOX_FERNET_KEYS=$("$SSHBOX" fernet genkey) && export SSHBOX_FERNET_KEYS &&
		ssh-keygen -q -t ed25519 -N "" -f acl-key </dev/null &&
		ssh-keygen -q -t ed25519 -N "" -f acl-hostkey </dev/null &&
		"$SSHBOX" key set --account acme <acl-key >/dev/null &&
		dead=$(tb_free_port 127.0.0.51) &&
		"$SSHBOX" sandbox add --account acme --host 127.0.0.51 --port "$dead" \
			--host-key "$(cut -d" " -f1-2 acl-hostkey.pub)" >/dev/null &&
		"$SSHBOX" sandbox list >list && grep -q "127.0.0.51" list &&
		"$SSHBOX" status >status && cat status &&
		"$SSHBOX" ssh-config >/dev/null &&
		echo "{\"account\":\"acme\",\"prompt\":\"x\",\"job_id\":\"acl-1\",\"wait_s\":2}" >spec.json &&
		test_expect_code 75 timeout 60 "$SSHBOX" run <spec.json >events 2>run.err &&
		cat events run.err &&
		grep -q "\"type\":\"sshbox.acquired\"" events &&
		grep -q "Connection refused" events &&
		! grep -qi "noperm" events run.err
	) &&
	test "$(ra --scan --pattern "sshbox:*:slot:*" | wc -l)" = 0 &&
	test "$(ra exists sshbox:job:acme:acl-1)" = 0 &&
	tb_kill_tree "$A_PID"
'

test_expect_success SYSTEMD_ANALYZE 'systemd-analyze verify accepts the unit without a warning' '
	u=$TEST_DIR/sshbox-supervise.service &&
	sed "s#^ExecStart=/usr/local/bin/sshbox #ExecStart=/bin/true #" "$ETC/systemd/sshbox-supervise.service" >"$u" &&
	test "$(diff "$ETC/systemd/sshbox-supervise.service" "$u" | grep -c "^[<>]")" = 2 &&
	systemd-analyze verify --man=no "$u" >verify.out 2>&1 &&
	cat verify.out &&
	test ! -s verify.out &&
	sed "s/^KillMode=process/KillMode=bogus/" "$u" >bad.service &&
	systemd-analyze verify --man=no "$TEST_DIR/bad.service" >bad.out 2>&1 &&
	grep -q "kill mode" bad.out &&
	for kv in Type=simple User=sshbox RuntimeDirectory=sshbox RuntimeDirectoryMode=0700 \
		Restart=on-failure KillMode=process TimeoutStopSec=10 NoNewPrivileges=yes \
		ProtectSystem=strict ReadWritePaths=/run/sshbox PrivateTmp=yes ProtectHome=read-only \
		"ExecStart=/usr/local/bin/sshbox --config /etc/sshbox/sshbox.conf supervise"; do
		grep -qx "$kv" "$ETC/systemd/sshbox-supervise.service" || { echo "missing: $kv"; return 1; }
	done
'

test_expect_success ROOT 'ssh-agent and ssh-add work as an unprivileged user with no_new_privs (NoNewPrivileges=yes)' '
	tb_ensure_user &&
	ad=$TEST_DIR/nnp && mkdir -p "$ad" && chown sshbox-test: "$ad" && chmod 0700 "$ad" &&
	ssh-keygen -q -t ed25519 -N "" -C nnp -f "$ad/k" </dev/null && chown sshbox-test: "$ad/k" "$ad/k.pub" &&
	{ setpriv --reuid=sshbox-test --regid=sshbox-test --init-groups --no-new-privs \
		ssh-agent -D -a "$ad/agent.sock" </dev/null >"$ad/agent.out" 2>&1 & } &&
	nnp_agent=$! &&
	test_when_finished "kill $nnp_agent 2>/dev/null; wait $nnp_agent 2>/dev/null; true" &&
	test_wait_for "test -S \"$ad/agent.sock\"" 10 &&
	SSH_AUTH_SOCK=$ad/agent.sock timeout 10 setpriv --reuid=sshbox-test --regid=sshbox-test --init-groups --no-new-privs ssh-add -q "$ad/k" </dev/null &&
	SSH_AUTH_SOCK=$ad/agent.sock timeout 10 setpriv --reuid=sshbox-test --regid=sshbox-test --init-groups --no-new-privs ssh-add -l >keys &&
	grep -q " nnp (ED25519)" keys &&
	grep -q NoNewPrivs:.*1 /proc/$nnp_agent/status
'

# --- supervisord ---------------------------------------------------------------
SV=$TEST_DIR/sv

sv_ctl() { timeout 30 supervisorctl -c "$SV/supervisord.conf" "$@"; }
sv_state() { sv_ctl status sshbox-supervise | awk '{ print $2 }'; }
sv_pid() { sv_ctl pid sshbox-supervise; }

test_expect_success ROOT 'supervisord runs the [program] of etc/supervisord/sshbox.conf as written' '
	tb_ensure_user &&
	mkdir -p "$SV/out" && chown sshbox-test: "$SV/out" &&
	sed -e "s#^command=/usr/local/bin/sshbox #command=$SV/fake-sshbox #" \
	    -e "s#^user=sshbox\$#user=sshbox-test#" \
	    -e "s#^stdout_logfile=/var/log/supervisor/#stdout_logfile=$SV/#" \
	    "$ETC/supervisord/sshbox.conf" >"$SV/sshbox.conf" &&
	{ diff "$ETC/supervisord/sshbox.conf" "$SV/sshbox.conf" >sv.diff || :; } &&
	test "$(grep -c "^[<>]" sv.diff)" = 6 &&
	cat >"$SV/fake-sshbox" <<-EOF &&
	#!/bin/bash
	# Stands in for sshbox supervise: records how it was started, keeps a
	# child in its process group (as sshbox keeps ssh -O check), logs to stderr.
	(exec -a t5200-child-\$\$ sleep 600) &
	{
		echo "args=\$*"
		echo "user=\$(id -un)"
		echo "umask=\$(umask)"
		echo "home=\$HOME"
		echo "loglevel=\$SSHBOX_LOG_LEVEL"
		echo "cwd=\$PWD"
		echo "child=\$!"
	} >$SV/out/started.\$\$
	echo "fake supervise \$\$: up" >&2
	wait
	EOF
	chmod 0755 "$SV/fake-sshbox" &&
	cat >"$SV/supervisord.conf" <<-EOF &&
	[unix_http_server]
	file=$SV/supervisor.sock
	chmod=0700
	[supervisord]
	nodaemon=true
	user=root
	logfile=$SV/supervisord.log
	pidfile=$SV/supervisord.pid
	childlogdir=$SV
	[rpcinterface:supervisor]
	supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
	[supervisorctl]
	serverurl=unix://$SV/supervisor.sock
	[include]
	files = $SV/sshbox.conf
	EOF
	{ setsid supervisord -c "$SV/supervisord.conf" </dev/null >"$SV/supervisord.out" 2>&1 & } &&
	SV_PID=$! &&
	test_atexit "sv_ctl shutdown >/dev/null 2>&1; tb_kill_tree \$SV_PID" &&
	test_wait_for "test \"\$(sv_state)\" = RUNNING" 20 &&
	p1=$(sv_pid) &&
	test_wait_for "test -s \"$SV/out/started.$p1\"" 10 &&
	cat "$SV/out/started.$p1" &&
	grep -qx "args=--config /etc/sshbox/sshbox.conf supervise" "$SV/out/started.$p1" &&
	grep -qx "user=sshbox-test" "$SV/out/started.$p1" &&
	grep -qx "umask=0077" "$SV/out/started.$p1" &&
	grep -qx "home=/var/lib/sshbox" "$SV/out/started.$p1" &&
	grep -qx "loglevel=info" "$SV/out/started.$p1" &&
	grep -qx "cwd=/" "$SV/out/started.$p1" &&
	test_wait_for "grep -q \"fake supervise $p1: up\" \"$SV/sshbox-supervise.log\"" 10
'

test_expect_success ROOT 'kill -9: supervisord starts it again; stop: TERM reaches its whole process group at once' '
	p1=$(sv_pid) &&
	c1=$(sed -n "s/^child=//p" "$SV/out/started.$p1") &&
	test_when_finished "kill $c1 2>/dev/null; true" &&
	kill -KILL "$p1" &&
	test_wait_for "p2=\$(sv_pid) && test \"\$p2\" != $p1 && test \"\$p2\" != 0 && test \"\$(sv_state)\" = RUNNING" 20 &&
	p2=$(sv_pid) &&
	test_wait_for "test -s \"$SV/out/started.$p2\"" 10 &&
	c2=$(sed -n "s/^child=//p" "$SV/out/started.$p2") &&
	tb_alive "$c2" &&
	t0=$EPOCHREALTIME &&
	sv_ctl stop sshbox-supervise >stop.out &&
	t1=$EPOCHREALTIME &&
	cat stop.out &&
	test "$(sv_state)" = STOPPED &&
	test_wait_for "! tb_alive $c2" 2 &&
	! tb_alive "$p2" &&
	ms=$(( (${t1/./} - ${t0/./}) / 1000 )) &&
	echo "stopped in $ms ms" &&
	test "$ms" -lt 5000 &&
	sv_ctl shutdown >/dev/null
'

# --- provisioning ---------------------------------------------------------------
test_expect_success ROOT 'provision --dry-run --local prints a plan and changes nothing' '
	test_atexit remove_prov_user &&
	mkdir -p "$SSHD_D" /run/sshd &&
	printf "%s\n" "Include $SSHD_D/*.conf" "HostKey $TEST_DIR/hostkey" >"$SSHD_MAIN" &&
	ssh-keygen -q -t ed25519 -N "" -C "t5200 orchestrator" -f okey </dev/null &&
	! id -u "$PU" 2>/dev/null &&
	sha256sum /etc/passwd /etc/group /etc/shadow >before.sum &&
	{ ls -la /etc/ssh/sshd_config.d >before.ls 2>&1 || :; } &&
	prov --dry-run --authorized-key okey.pub >plan.out 2>plan.err &&
	cat plan.out plan.err &&
	grep -q "^plan  *user: would create $PU" plan.out &&
	grep -q "^plan  *workdir: would create $PWORK" plan.out &&
	grep -q "^plan  *git-lfs: would run git lfs install --system" plan.out &&
	grep -q "^plan  *sshd: would write $SSHD_D/10-sshbox.conf (MaxSessions 32)" plan.out &&
	grep -q "^plan  *authorized key: would add SHA256:" plan.out &&
	grep -q "^skip  *packages: --skip-packages" plan.out &&
	! grep -q "^changed" plan.out &&
	grep -q "nothing was changed" plan.out &&
	sha256sum -c --quiet before.sum &&
	{ ls -la /etc/ssh/sshd_config.d >after.ls 2>&1 || :; } &&
	test_cmp before.ls after.ls &&
	! id -u "$PU" 2>/dev/null &&
	test_path_is_missing "$PHOME" &&
	test_path_is_missing "$PWORK" &&
	test_path_is_missing "$GIT_CONFIG_SYSTEM" &&
	test "$(ls "$SSHD_D" | wc -l)" = 0
'

test_expect_success ROOT 'provision --local: the first run changes, the second only finds everything ok' '
	prov --authorized-key okey.pub >run1.out 2>run1.err &&
	cat run1.out run1.err &&
	for s in user workdir git-lfs sshd "authorized key"; do
		grep -q "^changed  *$s:" run1.out || { echo "no change reported for $s"; return 1; }
	done &&
	prov --authorized-key okey.pub >run2.out 2>run2.err &&
	cat run2.out run2.err &&
	! grep -Eq "^(changed|plan)" run2.out &&
	test "$(grep -c "^ok " run2.out)" = 5 &&
	grep -q "0 changed, 5 ok, 3 skipped" run2.out &&
	getent passwd "$PU" >pw &&
	test "$(cut -d: -f6 pw)" = "$PHOME" &&
	test "$(cut -d: -f7 pw)" = /bin/bash &&
	test "$(getent shadow "$PU" | cut -d: -f2)" = "*" &&
	g=$(id -gn "$PU") &&
	test "$(stat -c "%U:%G %a" "$PWORK")" = "$PU:$g 750" &&
	test "$(stat -c "%U %a" "$PHOME/.ssh")" = "$PU 700" &&
	ak=$PHOME/.ssh/authorized_keys &&
	test "$(stat -c "%U %a" "$ak")" = "$PU 600" &&
	echo "restrict $(cat okey.pub)" >expect &&
	test_cmp expect "$ak" &&
	sed "s/^Match User sshbox\$/Match User $PU/" "$ETC/sshd/sshbox-sandbox.conf" >expect.sshd &&
	test_cmp expect.sshd "$SSHD_D/10-sshbox.conf"
'

test_expect_success ROOT 'the key is kept once: same key with other options is replaced, a second key is added' '
	ak=$PHOME/.ssh/authorized_keys &&
	blob=$(cut -d" " -f2 okey.pub) &&
	{ echo "no-pty $(cat okey.pub)"; echo "$(cat okey.pub)"; } >"$ak" &&
	prov --authorized-key okey.pub >run3.out &&
	cat run3.out &&
	grep -q "^changed  *authorized key: replace the 2 lines" run3.out &&
	test "$(grep -c "$blob" "$ak")" = 1 &&
	grep -qx "restrict $(cat okey.pub)" "$ak" &&
	ssh-keygen -q -t ed25519 -N "" -C second -f okey2 </dev/null &&
	prov --authorized-key-stdin <okey2.pub >run4.out &&
	grep -q "^changed  *authorized key: add SHA256:" run4.out &&
	test_line_count = 2 "$ak" &&
	grep -qx "restrict $(cat okey.pub)" "$ak" &&
	grep -qx "restrict $(cat okey2.pub)" "$ak" &&
	prov --authorized-key okey2.pub --allow-pty >run5.out &&
	grep -qx "restrict,pty $(cat okey2.pub)" "$ak" &&
	test_line_count = 2 "$ak" &&
	prov --authorized-key okey2.pub >run6.out &&
	grep -qx "restrict $(cat okey2.pub)" "$ak" &&
	test "$(stat -c "%U %a" "$ak")" = "$PU 600" &&
	test_must_fail prov --authorized-key okey 2>err &&
	cat err && test_line_count = 1 err && grep -q "private key" err &&
	printf "%s\n%s\n" "$(cat okey.pub)" "$(cat okey2.pub)" >two.pub &&
	test_must_fail prov --authorized-key two.pub 2>err &&
	test_line_count = 1 err && grep -q "exactly one public key" err &&
	echo "ssh-ed25519 AAAAnotakey" >bad.pub &&
	test_must_fail prov --authorized-key bad.pub 2>err &&
	cat err && test_line_count = 1 err && grep -q "ssh-keygen does not accept" err &&
	test_line_count = 2 "$ak"
'

test_expect_success ROOT 'sshd with the provisioned snippet: the restricted key runs commands, 12 sessions share one connection, no pty, no forwarding' '
	sport=$(tb_free_port 127.0.0.52) &&
	sd=$TEST_DIR/sshd52 && mkdir -p "$sd" &&
	cat >"$sd/sshd_config" <<-EOF &&
	Include $SSHD_D/*.conf
	ListenAddress 127.0.0.52:$sport
	HostKey $TEST_DIR/hostkey
	PidFile $sd/sshd.pid
	# TEST_DIR is under /tmp, which StrictModes refuses as a parent.
	StrictModes no
	UsePAM no
	EOF
	sshd -t -f "$sd/sshd_config" &&
	{ setsid /usr/sbin/sshd -D -e -f "$sd/sshd_config" -E "$sd/sshd.log" </dev/null >"$sd/out" 2>&1 & } &&
	S52_PID=$! &&
	test_atexit "tb_kill_tree \$S52_PID" &&
	echo "[127.0.0.52]:$sport $(cut -d" " -f1-2 hostkey.pub)" >kh52 &&
	test_wait_for "ssh-keyscan -T 2 -p $sport 127.0.0.52 2>/dev/null | grep -q ssh-ed25519" 10 &&
	s52() {
		timeout 30 ssh -F /dev/null -i "$TEST_DIR/okey" -o IdentitiesOnly=yes -o IdentityAgent=none \
			-o BatchMode=yes -o UserKnownHostsFile="$TEST_DIR/kh52" -o GlobalKnownHostsFile=/dev/null \
			-o StrictHostKeyChecking=yes -o ConnectTimeout=10 -p "$sport" -l "$PU" "$@"
	} &&
	s52 -o ControlMaster=no 127.0.0.52 "id -un; test -d $PWORK && test -w $PWORK && echo workdir-ok" >who &&
	printf "%s\n" "$PU" workdir-ok >expect && test_cmp expect who &&
	test_must_fail s52 -o ControlMaster=no -tt 127.0.0.52 true 2>tty.err &&
	cat tty.err &&
	grep -q "PTY allocation request failed" tty.err &&
	test_must_fail s52 -o ControlMaster=no -o ExitOnForwardFailure=yes -R 0:127.0.0.1:9 127.0.0.52 true 2>fwd.err &&
	cat fwd.err && grep -qi "forwarding failed" fwd.err &&
	cm=$TEST_DIR/cm52 &&
	s52 -o ControlMaster=yes -o ControlPath="$cm" -o ControlPersist=30 -f -N 127.0.0.52 &&
	test_when_finished "ssh -o ControlPath=$cm -O exit x >/dev/null 2>&1; true" &&
	test_wait_for "test -S \"$cm\"" 10 &&
	pids= &&
	for i in $(seq 12); do
		{ s52 -o ControlMaster=no -o ControlPath="$cm" 127.0.0.52 "sleep 1; echo s$i" >"sess.$i" 2>"sess.$i.err" & } || return 1
		pids="$pids $!"
	done &&
	for p in $pids; do
		wait "$p" || return 1
	done &&
	for i in $(seq 12); do
		test "$(cat "sess.$i")" = "s$i" || { echo "session $i:"; cat "sess.$i.err"; return 1; }
	done
'

test_expect_success ROOT 'sshd step: a config sshd -t rejects, or one that does not read the snippet, is rolled back' '
	cp "$SSHD_D/10-sshbox.conf" snippet.before &&
	cp "$SSHD_MAIN" main.good &&
	test_when_finished "cp \"$TEST_DIR/main.good\" \"$SSHD_MAIN\"" &&
	echo "NoSuchDirective yes" >>"$SSHD_MAIN" &&
	test_must_fail prov --max-sessions 40 >out 2>err &&
	cat out err && test_line_count = 1 err &&
	grep -q "sshd -t rejects" err &&
	test_cmp snippet.before "$SSHD_D/10-sshbox.conf" &&
	printf "%s\n" "HostKey $TEST_DIR/hostkey" >"$SSHD_MAIN" &&
	test_must_fail prov --max-sessions 40 >out 2>err &&
	cat out err && test_line_count = 1 err &&
	grep -q "does not apply" err &&
	test_cmp snippet.before "$SSHD_D/10-sshbox.conf" &&
	test_must_fail prov >out 2>err &&
	cat err && grep -q "is in place but sshd does not apply it" err &&
	ls "$SSHD_D" >left &&
	echo 10-sshbox.conf >expect && test_cmp expect left
'

test_expect_success ROOTLOGIN 'provision --ssh root@127.0.0.53: copies itself, runs there, finds everything ok, leaves nothing behind' '
	rport=$(tb_free_port 127.0.0.53) &&
	rd=$TEST_DIR/sshd53 && mkdir -p "$rd" &&
	ssh-keygen -q -t ed25519 -N "" -f admin-key </dev/null &&
	cp admin-key.pub "$rd/root_keys" &&
	cat >"$rd/sshd_config" <<-EOF &&
	ListenAddress 127.0.0.53:$rport
	HostKey $TEST_DIR/hostkey
	PidFile $rd/sshd.pid
	StrictModes no
	UsePAM no
	PermitRootLogin prohibit-password
	AuthorizedKeysFile $rd/root_keys
	# The provisioning over ssh must use the test git config, not /etc/gitconfig.
	SetEnv GIT_CONFIG_SYSTEM=$GIT_CONFIG_SYSTEM
	EOF
	{ setsid /usr/sbin/sshd -D -e -f "$rd/sshd_config" -E "$rd/sshd.log" </dev/null >"$rd/out" 2>&1 & } &&
	S53_PID=$! &&
	test_atexit "tb_kill_tree \$S53_PID" &&
	echo "[127.0.0.53]:$rport $(cut -d" " -f1-2 hostkey.pub)" >kh53 &&
	test_wait_for "ssh-keyscan -T 2 -p $rport 127.0.0.53 2>/dev/null | grep -q ssh-ed25519" 10 &&
	{ ls -d /tmp/sshbox-provision.* 2>/dev/null | sort >tmp.before || :; } &&
	ssh-keygen -q -t ed25519 -N "" -C third -f okey3 </dev/null &&
	timeout 120 bash "$PROV" --ssh root@127.0.0.53 --port "$rport" \
		--ssh-option IdentityFile="$TEST_DIR/admin-key" --ssh-option IdentitiesOnly=yes \
		--ssh-option IdentityAgent=none --ssh-option BatchMode=yes \
		--ssh-option UserKnownHostsFile="$TEST_DIR/kh53" --ssh-option GlobalKnownHostsFile=/dev/null \
		--no-uv --no-claude --skip-packages --user "$PU" --home "$PHOME" --workdir "$PWORK" \
		--sshd-config-dir "$SSHD_D" --sshd-config "$SSHD_MAIN" --no-sshd-reload \
		--authorized-key okey2.pub >ssh.out 2>ssh.err &&
	cat ssh.out ssh.err &&
	! grep -Eq "^(changed|plan)" ssh.out &&
	test "$(grep -c "^ok " ssh.out)" = 5 &&
	grep -q "^ok  *authorized key: SHA256:.* in $PHOME/.ssh/authorized_keys (restrict)" ssh.out &&
	{ ls -d /tmp/sshbox-provision.* 2>/dev/null | sort >tmp.after || :; } &&
	test_cmp tmp.before tmp.after &&
	timeout 120 bash "$PROV" --ssh root@127.0.0.53 --port "$rport" \
		--ssh-option IdentityFile="$TEST_DIR/admin-key" --ssh-option IdentitiesOnly=yes \
		--ssh-option IdentityAgent=none --ssh-option BatchMode=yes \
		--ssh-option UserKnownHostsFile="$TEST_DIR/kh53" --ssh-option GlobalKnownHostsFile=/dev/null \
		--dry-run --no-uv --no-claude --skip-packages --user "$PU" --home "$PHOME" --workdir "$PWORK" \
		--sshd-config-dir "$SSHD_D" --sshd-config "$SSHD_MAIN" --authorized-key-stdin <okey3.pub >dry.out 2>dry.err &&
	cat dry.out dry.err &&
	grep -q "^plan  *authorized key: would add SHA256:" dry.out &&
	grep -q "nothing was changed" dry.out &&
	test_line_count = 2 "$PHOME/.ssh/authorized_keys" &&
	test_must_fail timeout 60 bash "$PROV" --ssh root@127.0.0.53 --port "$rport" \
		--ssh-option IdentityFile="$TEST_DIR/okey" --ssh-option IdentitiesOnly=yes \
		--ssh-option IdentityAgent=none --ssh-option BatchMode=yes \
		--ssh-option UserKnownHostsFile="$TEST_DIR/kh53" --ssh-option GlobalKnownHostsFile=/dev/null \
		--no-uv --no-claude --skip-packages >bad.out 2>bad.err &&
	cat bad.err &&
	tail -n 1 bad.err | grep -q "cannot reach .root@127.0.0.53."
'

test_expect_success ROOT 'the sandbox user, its group, home and workdir are removed again' '
	tb_kill_tree "${S52_PID-}" &&
	tb_kill_tree "${S53_PID-}" &&
	test_wait_for "! pgrep -u \"$PU\" >/dev/null" 10 &&
	remove_prov_user &&
	! id -u "$PU" 2>/dev/null &&
	! getent group "$PU" &&
	test_path_is_missing "$PHOME" &&
	test_path_is_missing "$PWORK"
'

test_done
