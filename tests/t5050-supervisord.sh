#!/usr/bin/env bash
test_description='sshbox supervise under the real supervisord, with the program file from etc/'
. "$(dirname "$0")/lib.sh"
. "$REPO_ROOT/tests/testbed.sh"
. "$REPO_ROOT/tests/sshbox-env.sh"

PROGRAM=sshbox-supervise
HOST_A=127.0.0.2
HOST_B=127.0.0.3

sctl() { supervisorctl -c "$TEST_DIR/supervisord.conf" "$@"; }
master_up() { ssh -F "$SSHBOX_STATE_DIR/ssh_config" -O check "$1" 2>/dev/null; }
ours() { ps -eo stat=,args= | grep -v "^Z" | grep -F "$SSHBOX_STATE_DIR" | grep -v grep; }
daemon_pid() { sctl pid "$PROGRAM"; }

test_expect_success 'set up: two sandboxes, a key, a config file, supervisord running etc/supervisord/sshbox.conf' '
	tb_start_all_default &&
	sb_env_init &&
	sb_account_key &&
	for n in a b; do
		tb_authorize_key $n "$TEST_DIR/key-$SB_ACCOUNT.pub" &&
		"$SSHBOX" sandbox add --account acme --host "$(tb_sbx_var $n HOST)" --port "$(tb_sbx_var $n PORT)" \
			--user "$(tb_sbx_var $n USER)" --workdir "$(tb_sbx_var $n WORKDIR)" \
			--claude "$REPO_ROOT/tests/data/stub-claude-noop" --host-key "$(tb_sbx_var $n HOSTKEY)" >/dev/null || return 1
	done &&
	printf "%s\n" "$SSHBOX_FERNET_KEYS" >fernet.keys &&
	chmod 600 fernet.keys &&
	printf "%s\n" "redis_url = $SSHBOX_REDIS_URL" "state_dir = $SSHBOX_STATE_DIR" \
		"fernet_keys_file = $TEST_DIR/fernet.keys" "health_interval_s = 1" >"$SSHBOX_CONFIG" &&
	grep -q "^\[program:$PROGRAM\]" "$REPO_ROOT/etc/supervisord/sshbox.conf" &&
	# the shipped file with this test bed'"'"'s paths: the binary, the config,
	# the log; root instead of the sshbox user
	sed -e "s|/usr/local/bin/sshbox|$SSHBOX|g" -e "s|/etc/sshbox/sshbox.conf|$SSHBOX_CONFIG|g" \
		-e "s|^stdout_logfile *=.*|stdout_logfile=$TEST_DIR/sv.log|" -e "/^user *=/d" \
		"$REPO_ROOT/etc/supervisord/sshbox.conf" >program.conf &&
	grep -q "^command *= *$SSHBOX --config $SSHBOX_CONFIG supervise" program.conf &&
	grep -q "^stdout_logfile=$TEST_DIR/sv.log\$" program.conf &&
	grep -q "^stopasgroup *= *true" program.conf &&
	cat >supervisord.conf <<-EOF &&
	[unix_http_server]
	file=$TEST_DIR/supervisor.sock
	[supervisord]
	logfile=$TEST_DIR/supervisord.log
	pidfile=$TEST_DIR/supervisord.pid
	childlogdir=$TEST_DIR
	[rpcinterface:supervisor]
	supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
	[supervisorctl]
	serverurl=unix://$TEST_DIR/supervisor.sock
	[include]
	files = $TEST_DIR/program.conf
	EOF
	# nothing of the test shell may reach the daemon but its config file
	env -u SSHBOX_REDIS_URL -u SSHBOX_STATE_DIR -u SSHBOX_FERNET_KEYS -u SSHBOX_CONFIG \
		supervisord -c "$TEST_DIR/supervisord.conf" &&
	test_atexit "supervisorctl -c $TEST_DIR/supervisord.conf shutdown >/dev/null 2>&1; sleep 1; kill \$(cat $TEST_DIR/supervisord.pid 2>/dev/null) 2>/dev/null; true" &&
	test_wait_for "sctl status $PROGRAM | grep -q RUNNING" 15
'

test_expect_success 'masters come up for every active sandbox; an operator'"'"'s ssh -F rides them' '
	test_wait_for "master_up sbx-acme-$HOST_A && master_up sbx-acme-$HOST_B" 15 &&
	ssh -F "$SSHBOX_STATE_DIR/ssh_config" -v sbx-acme-$HOST_B "echo ok-b" >out 2>dbg &&
	grep -q ok-b out &&
	grep -q mux_client_request_session dbg &&
	printf "{\"account\":\"acme\",\"job_id\":\"sd-1\",\"prompt\":\"noop\"}\n" | "$SSHBOX" run >sd-1.ndjson &&
	test "$(sb_result_field sd-1.ndjson status)" = succeeded
'

test_expect_success 'kill -9 of the daemon: supervisord starts a new one, which brings the pool back' '
	old=$(daemon_pid) &&
	kill -KILL "$old" &&
	test_wait_for "test \"\$(daemon_pid)\" != \"$old\" && sctl status $PROGRAM | grep -q RUNNING" 20 &&
	test_wait_for "SSH_AUTH_SOCK=\"$SSHBOX_STATE_DIR/agent/acme.sock\" ssh-add -l >/dev/null" 10 &&
	test_wait_for "master_up sbx-acme-$HOST_A && master_up sbx-acme-$HOST_B" 15 &&
	test "$(pgrep -fc "ssh-agent -D -a $SSHBOX_STATE_DIR/agent/")" = 1 &&
	grep -q "adopted the running master" sv.log &&
	printf "{\"account\":\"acme\",\"job_id\":\"sd-2\",\"prompt\":\"noop\"}\n" | "$SSHBOX" run >sd-2.ndjson &&
	test "$(sb_result_field sd-2.ndjson status)" = succeeded
'

test_expect_success 'supervisorctl stop leaves no ssh, no ssh-agent and no socket' '
	sctl stop $PROGRAM >stop.out &&
	grep -q stopped stop.out &&
	test_wait_for "test -z \"\$(ours)\"" 5 &&
	test -z "$(find "$SSHBOX_STATE_DIR" -type s -o -type l)" &&
	sctl status $PROGRAM | grep -q STOPPED
'

test_done
