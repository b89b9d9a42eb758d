#!/usr/bin/env bash
test_description='the test bed itself: redis, loopback sandboxes, cleanup by PID'
. "$(dirname "$0")/lib.sh"
. "$REPO_ROOT/tests/testbed.sh"

test_expect_success 'the whole of 127.0.0.0/8 is local' '
	ip -o -4 addr show dev lo >lo &&
	grep -q "inet 127.0.0.1/8" lo &&
	ip -4 route get 127.0.0.3 >route &&
	grep -q "^local 127.0.0.3 dev lo" route
'

test_expect_success 'lib: test_must_fail, test_expect_code, test_wait_for' '
	test_must_fail false &&
	test_must_fail sh -c "exit 255" &&
	test_must_fail --code=3 sh -c "exit 3" &&
	test_must_fail --code=143 sh -c "exit 143" &&
	! test_must_fail true 2>/dev/null &&
	! test_must_fail sh -c "kill -TERM \$\$" 2>/dev/null &&
	! test_must_fail no-such-command-sshbox 2>/dev/null &&
	! test_must_fail --code=2 sh -c "exit 3" 2>/dev/null &&
	test_expect_code 7 sh -c "exit 7" &&
	! test_expect_code 0 false 2>/dev/null &&
	test_wait_for "true" 1 &&
	start=$EPOCHSECONDS &&
	! test_wait_for "false" 0.3 2>/dev/null &&
	[ $((EPOCHSECONDS - start)) -le 2 ] &&
	: >flag-later &&
	{ ( sleep 0.2; echo x >flag-later ) & } &&
	test_wait_for "test -s flag-later" 5
'

test_expect_success 'redis answers PING' '
	tb_start_redis &&
	test "$(tb_redis_cli ping)" = PONG &&
	test "$(redis-cli -s "$TB_REDIS_SOCK" ping)" = PONG &&
	test "$TB_REDIS_URL" = "redis://127.0.0.1:$TB_REDIS_PORT/0" &&
	tb_redis_cli config get save >save &&
	test "$(sed -n 2p save)" = "" &&
	test "$(tb_redis_cli config get appendonly | sed -n 2p)" = no
'

test_expect_success 'redis stops and restarts on the same port' '
	port=$TB_REDIS_PORT &&
	old=$TB_REDIS_PID &&
	tb_redis_cli set k v >/dev/null &&
	tb_stop_redis &&
	test -z "$TB_REDIS_PID" &&
	test_must_fail redis-cli -h 127.0.0.1 -p "$port" ping &&
	! tb_alive $old &&
	tb_restart_redis &&
	test "$TB_REDIS_PORT" = "$port" &&
	test "$(tb_redis_cli ping)" = PONG &&
	test "$(tb_redis_cli exists k)" = 0 &&
	echo $old >>pids
'

test_expect_success 'two sandboxes come up on 127.0.0.2 and 127.0.0.3' '
	TB_SANDBOX_EXTRA_PATH=/opt/sshbox-test/bin &&
	tb_start_sandbox a 127.0.0.2 &&
	tb_start_sandbox b 127.0.0.3 &&
	test "$TB_A_HOST" = 127.0.0.2 && test "$TB_B_HOST" = 127.0.0.3 &&
	test "$TB_A_USER" = sshbox-test &&
	test "$(stat -c %U:%a "$TB_A_WORKDIR")" = sshbox-test:755 &&
	test_path_is_file "$TB_A_HOSTKEY_PUB" &&
	! cmp -s "$TB_A_HOSTKEY_PUB" "$TB_B_HOSTKEY_PUB" &&
	kill -0 "$TB_A_PID" && kill -0 "$TB_B_PID" &&
	ss -Htln "src 127.0.0.2:$TB_A_PORT" | grep -q LISTEN &&
	ss -Htln "src 127.0.0.3:$TB_B_PORT" | grep -q LISTEN &&
	getent shadow sshbox-test | cut -d: -f2 >pw &&
	echo "*" >expect && test_cmp expect pw
'

test_expect_success 'an unauthorized key is refused' '
	test_must_fail --code=255 tb_ssh a true 2>err &&
	grep -q "Permission denied" err
'

test_expect_success 'ssh as the test user, in a writable workdir' '
	tb_authorize_key a &&
	tb_authorize_key b "$(tb_client_key).pub" &&
	tb_ssh a "id -un; cd \"$TB_A_WORKDIR\" && pwd" >out &&
	printf "%s\n" sshbox-test "$TB_A_WORKDIR" >expect &&
	test_cmp expect out &&
	tb_ssh a "cd \"$TB_A_WORKDIR\" && echo hi >f && stat -c %U f" >owner &&
	echo sshbox-test >expect && test_cmp expect owner &&
	test "$(cat "$TB_A_WORKDIR/f")" = hi &&
	test "$(tb_ssh b "id -un")" = sshbox-test
'

test_expect_success 'sessions get the PATH set by the bed and no client env' '
	LC_SSHBOX_LEAK=1 ssh -F /dev/null -i "$TB_CLIENT_KEY" -o BatchMode=yes \
		-o UserKnownHostsFile="$TB_A_KNOWN_HOSTS" -o StrictHostKeyChecking=yes \
		-o SendEnv=LC_SSHBOX_LEAK -p "$TB_A_PORT" -l "$TB_A_USER" -- "$TB_A_HOST" \
		"echo \$PATH; echo \${LC_SSHBOX_LEAK-unset}" >out &&
	printf "%s\n" /opt/sshbox-test/bin:/usr/local/bin:/usr/bin:/bin unset >expect &&
	test_cmp expect out
'

test_expect_success 'a root sandbox' '
	tb_start_sandbox r 127.0.0.4 root &&
	tb_authorize_key r &&
	test "$(tb_ssh r id -un)" = root &&
	test "$(stat -c %U "$TB_R_WORKDIR")" = root
'

test_expect_success 'stopping a sandbox ends its sessions too' '
	# a duration no other test uses: tests run side by side as sshbox-test
	nap=60.$$ &&
	{ tb_ssh a "sleep $nap" >/dev/null 2>&1 & } &&
	client=$! &&
	test_wait_for "tb_ssh a \"pgrep -u sshbox-test -fx \\\"sleep $nap\\\"\"" 10 &&
	pids="$TB_A_PID $(tb_descendants "$TB_A_PID")" &&
	echo $pids >>pids &&
	test $(echo $pids | wc -w) -ge 4 &&
	tb_stop_sandbox a &&
	test -z "$TB_A_PID" &&
	for p in $pids; do ! tb_alive $p || return 1; done &&
	test_wait_for "! kill -0 $client" 15 &&
	test_must_fail --code=255 tb_ssh a true 2>/dev/null
'

test_expect_success 'a stopped sandbox restarts on the same port and key' '
	port=$TB_A_PORT &&
	tb_restart_sandbox a &&
	test "$TB_A_PORT" = "$port" &&
	test "$(tb_ssh a id -un)" = sshbox-test
'

test_expect_success 'the EXIT trap stops everything, also when a script dies' '
	cat >die.sh <<-EOF &&
	. "$REPO_ROOT/tests/lib.sh"
	. "$REPO_ROOT/tests/testbed.sh"
	tb_start_redis && tb_start_sandbox d 127.0.0.5 root || exit 3
	echo "\$TEST_DIR \$TB_REDIS_PID \$TB_D_PID" >"$TEST_DIR/inner"
	kill -TERM \$\$
	sleep 5
	EOF
	test_expect_code 143 bash die.sh >die.out 2>&1 &&
	read -r inner_dir rpid spid <inner &&
	test -n "$rpid" && test -n "$spid" &&
	! tb_alive $rpid && ! tb_alive $spid &&
	grep "^not ok .*unexpected exit with code 143" die.out &&
	grep "kept TEST_DIR: $inner_dir" die.out &&
	test -d "$inner_dir" &&
	rm -rf "$inner_dir"
'

test_expect_success 'a sanitizer report fails the script' '
	cat >san.sh <<-EOF &&
	SSHBOX_TEST_ASAN=1
	. "$REPO_ROOT/tests/lib.sh"
	test_expect_success "fine" "true"
	test_expect_success "reports" "echo boom >\"\\\$TEST_DIR/sanitizer/asan.123\""
	test_done
	EOF
	test_expect_code 1 bash san.sh >san.out 2>&1 &&
	grep "^ok 1 - fine" san.out &&
	grep "^not ok 2 - reports" san.out &&
	grep "a sanitizer wrote a report" san.out &&
	grep "^not ok 3 - no sanitizer reports" san.out &&
	rm -rf "$(sed -n "s/^# kept TEST_DIR: //p" san.out)"
'

test_expect_success 'a broken &&-chain is caught; cleanups run after failures' '
	cat >lint.sh <<-\EOF &&
	. "$REPO_ROOT/tests/lib.sh"
	test_expect_success "broken" "
		true
		echo ran-after-break
	"
	test_expect_success "fails, cleans up" "
		test_when_finished \"echo cleaned >\\\"\$TEST_DIR/c\\\"\" &&
		false
	"
	test_expect_success "cleanup ran" "grep cleaned c"
	test_done
	EOF
	test_expect_code 1 bash lint.sh >lint.out 2>&1 &&
	grep "^not ok 1 - broken" lint.out &&
	grep "broken &&-chain" lint.out &&
	grep "^not ok 2 - fails, cleans up" lint.out &&
	grep "^ok 3 - cleanup ran" lint.out &&
	grep "^# 1 passed, 2 failed" lint.out &&
	kept=$(sed -n "s/^# kept TEST_DIR: //p" lint.out) &&
	test -d "$kept" && rm -rf "$kept"
'

test_expect_success 'a passing script removes its TEST_DIR' '
	cat >pass.sh <<-\EOF &&
	. "$REPO_ROOT/tests/lib.sh"
	echo "$TEST_DIR" >"$OUTER/passdir"
	test_expect_success "cwd is TEST_DIR" "test \"\$(pwd)\" = \"\$TEST_DIR\""
	test_done
	EOF
	OUTER=$TEST_DIR bash pass.sh >pass.out 2>&1 &&
	grep "^ok 1 - cwd is TEST_DIR" pass.out &&
	test ! -e "$(cat passdir)"
'

test_expect_success 'stopping leaves none of the started processes' '
	echo $TB_REDIS_PID $TB_A_PID $TB_B_PID $TB_R_PID >>pids &&
	all="$(cat pids) $(for p in $TB_B_PID $TB_R_PID; do tb_descendants $p; done)" &&
	tb_stop_redis && tb_stop_sandbox a && tb_stop_sandbox b && tb_stop_sandbox r &&
	for p in $all; do
		! tb_alive $p || { ps -o pid,ppid,args -p $p; return 1; }
	done
'

test_done
