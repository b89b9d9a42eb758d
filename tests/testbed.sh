# tests/testbed.sh — real daemons on loopback for the shell tests (DESIGN §6).
# shellcheck shell=bash
# Source it after tests/lib.sh.  Everything started here is stopped by PID
# (the daemon and every process under it) when the script ends, also when it
# dies.  Call these functions in the current shell — in a test body or at top
# level — never in `$(...)` or a pipeline: they export variables.
#
# Redis
#   tb_start_redis        redis-server on 127.0.0.1:<free port>, no
#                         persistence, dir + log under $TEST_DIR/redis
#       TB_REDIS_PORT  TB_REDIS_URL (redis://127.0.0.1:P/0)  TB_REDIS_PID
#       TB_REDIS_SOCK (unix socket)  TB_REDIS_UNIX_URL (unix://...)
#       TB_REDIS_LOG  TB_REDIS_DIR
#   tb_stop_redis         stop it (Redis-down tests); TB_REDIS_PID becomes ""
#   tb_restart_redis      start again on the same port — empty, as after a
#                         crash without persistence
#   tb_redis_cli ARGS...  redis-cli against it
#
# Sandboxes (sshd; needs root)
#   tb_ensure_user [USER]       create the system user sshbox-test if missing
#                               (home /home/sshbox-test, /bin/bash, password
#                               field '*': `!` is refused with UsePAM no)
#   tb_start_sandbox NAME IP [USER]   NAME [a-z0-9_]+, IP in 127.0.0.0/8
#       (127.0.0.2, .3, ... need no configuration on Linux), USER default
#       sshbox-test, root allowed.  $TEST_DIR/sbx-NAME/ holds its host key,
#       sshd_config, authorized_keys, log and work/ (owned by USER, 0755).
#       Sessions get PATH=$TB_SANDBOX_EXTRA_PATH:/usr/local/bin:/usr/bin:/bin.
#       Exports, with N = NAME in upper case:
#       TB_N_HOST TB_N_PORT TB_N_USER TB_N_WORKDIR TB_N_HOSTKEY_PUB (file)
#       TB_N_LOG TB_N_PID, and TB_N_DIR TB_N_CONFIG TB_N_AUTHORIZED_KEYS
#       TB_N_HOSTKEY ("ssh-ed25519 AAAA...", for `sshbox sandbox add
#       --host-key`) TB_N_KNOWN_HOSTS (a known_hosts file for it)
#   tb_stop_sandbox NAME        stop sshd and every session under it
#   tb_restart_sandbox NAME     start it again: same port, host key, config
#   tb_authorize_key NAME [PUBKEY_FILE]   append to its authorized_keys
#                               (default: the test client key)
#   tb_client_key               make (once) the throwaway ed25519 client key
#                               and print its path, $TB_CLIENT_KEY (public:
#                               $TB_CLIENT_KEY_PUB; both set when sourced,
#                               the files exist after the first tb_client_key,
#                               tb_authorize_key or tb_ssh)
#   tb_ssh NAME CMD...          plain ssh with the client key (authorize it
#                               first), host key pinned, BatchMode, -F
#                               /dev/null; CMD is joined and run by the
#                               remote shell as with ssh; stdin passes through
#   tb_start_all_default        tb_ensure_user + redis + sandboxes a
#                               (127.0.0.2) and b (127.0.0.3) as sshbox-test
# Helpers
#   tb_free_port [IP]           a free TCP port on IP (default 127.0.0.1),
#                               never one handed out before in this script
#   tb_alive PID                the process runs (exists, not a zombie)
#   tb_descendants PID          PIDs of all processes under PID
#   tb_kill_tree PID [GRACE_S]  TERM a process and all its descendants, KILL
#                               what is left after GRACE_S (default 5)

[ -n "${TEST_DIR-}" ] || { echo "tests/testbed.sh: source tests/lib.sh first" >&2; exit 1; }

TB_TEST_USER=sshbox-test
# The throwaway client key's paths; the key itself is made on first use.
export TB_CLIENT_KEY=$TEST_DIR/client_ed25519 TB_CLIENT_KEY_PUB=$TEST_DIR/client_ed25519.pub
_TB_PY=/usr/bin/python3

_tb_err() { echo "testbed: error: $*" >&2; }

_tb_need_root() {
	[ "$(id -u)" -eq 0 ] || { _tb_err "$1 needs root"; return 1; }
}

# --- processes ----------------------------------------------------------------
# Start time (jiffies since boot) of a live, non-zombie process: together
# with the PID it names one process, so a recycled PID is never signalled.
_tb_starttime() {
	local line
	read -r line 2>/dev/null <"/proc/$1/stat" || return 1
	line=${line##*) }
	set -- $line
	[ "$1" != Z ] || return 1
	echo "${20}"
}

# tb_alive PID: the process exists and is not a zombie.
tb_alive() {
	_tb_starttime "$1" >/dev/null
}

tb_descendants() {
	ps -e -o pid=,ppid= | awk -v root="$1" '
		{ parent[$1] = $2 }
		END {
			want[root] = 1
			do {
				changed = 0
				for (p in parent)
					if (!(p in want) && (parent[p] in want)) { want[p] = 1; changed = 1 }
			} while (changed)
			for (p in want) if (p != root) print p
		}'
}

# Daemons get a session of their own: `timeout` signals the test's whole
# process group, and a daemon killed that way would orphan its children
# (sshd's sessions call setsid) before the EXIT trap can walk its tree.
# The trap stops them instead.  Extra fds are closed.
_tb_daemon() {
	exec setsid "$@" 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-
}

# The daemon's own PID from its pidfile, checked against the one we started
# (setsid forks when it would otherwise be a group leader).
_tb_pidfile_pid() {
	local f=$1 fallback=$2 p i
	for ((i = 0; i < 40; i++)); do
		read -r p 2>/dev/null <"$f" && [[ $p =~ ^[0-9]+$ ]] && { echo "$p"; return 0; }
		sleep 0.05
	done
	echo "$fallback"
}

tb_kill_tree() {
	local root=$1 grace=${2:-5} p s pass i left
	local -A start=()
	[ -n "$root" ] || return 0
	# Freeze the tree first so that nothing forks between listing and
	# signalling; the second pass catches what forked during the first.
	for pass in 1 2; do
		for p in "$root" $(tb_descendants "$root"); do
			[ -z "${start[$p]-}" ] || continue
			s=$(_tb_starttime "$p") || continue
			start[$p]=$s
			kill -STOP "$p" 2>/dev/null
		done
	done
	[ "${#start[@]}" -gt 0 ] || return 0
	for p in "${!start[@]}"; do
		[ "$(_tb_starttime "$p")" = "${start[$p]}" ] || continue
		kill -TERM "$p" 2>/dev/null
		kill -CONT "$p" 2>/dev/null
	done
	for ((i = 0; i < grace * 20 + 40; i++)); do
		left=
		for p in "${!start[@]}"; do
			[ "$(_tb_starttime "$p")" = "${start[$p]}" ] && left="$left $p"
		done
		[ -n "$left" ] || return 0
		if [ "$i" -eq $((grace * 20)) ]; then
			# Grace is over: KILL what is left, then wait a little more.
			for p in $left; do kill -KILL "$p" 2>/dev/null; done
		fi
		sleep 0.05
	done
	_tb_err "processes survived SIGKILL:$left"
	return 1
}

# A fresh free port; the ones handed out are remembered in a file so that
# two calls (even from subshells) never return the same port.
tb_free_port() {
	local ip=${1:-127.0.0.1} port i
	for ((i = 0; i < 20; i++)); do
		port=$("$_TB_PY" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind((sys.argv[1], 0))
print(s.getsockname()[1])
s.close()' "$ip") || return 1
		if ! grep -qx "$port" "$TEST_DIR/.tb_ports" 2>/dev/null; then
			echo "$port" >>"$TEST_DIR/.tb_ports"
			echo "$port"
			return 0
		fi
	done
	_tb_err "no fresh free port on $ip"
	return 1
}

_tb_loopback_ip() {
	[[ $1 =~ ^127\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] &&
		[ "${BASH_REMATCH[1]}" -le 255 ] && [ "${BASH_REMATCH[2]}" -le 255 ] &&
		[ "${BASH_REMATCH[3]}" -le 254 ]
}

# --- Redis ----------------------------------------------------------------------
tb_redis_cli() {
	redis-cli -h 127.0.0.1 -p "$TB_REDIS_PORT" "$@"
}

# Launch on TB_REDIS_PORT and wait until it answers PING.
# Returns 0 ready, 1 failed, 2 port taken (the caller may pick another).
_tb_redis_launch() {
	local dir=$TB_REDIS_DIR pid i
	: >>"$TB_REDIS_LOG"
	local mark
	mark=$(wc -l <"$TB_REDIS_LOG")
	rm -f "$dir/redis.pid"
	_tb_daemon redis-server --bind 127.0.0.1 --port "$TB_REDIS_PORT" \
		--unixsocket "$TB_REDIS_SOCK" --unixsocketperm 700 \
		--dir "$dir" --logfile "$TB_REDIS_LOG" --pidfile "$dir/redis.pid" \
		--save '' --appendonly no --daemonize no \
		</dev/null >>"$dir/redis.out" 2>&1 &
	pid=$!
	for ((i = 0; i < 200; i++)); do
		if [ "$(redis-cli -h 127.0.0.1 -p "$TB_REDIS_PORT" ping 2>/dev/null)" = PONG ]; then
			export TB_REDIS_PID
			TB_REDIS_PID=$(_tb_pidfile_pid "$dir/redis.pid" "$pid")
			return 0
		fi
		_tb_starttime "$pid" >/dev/null || break
		sleep 0.05
	done
	tb_kill_tree "$pid" 2
	if tail -n "+$((mark + 1))" "$TB_REDIS_LOG" | grep -q 'Address already in use'; then
		return 2
	fi
	_tb_err "redis-server on port $TB_REDIS_PORT did not answer PING; log $TB_REDIS_LOG:"
	tail -n 20 "$TB_REDIS_LOG" "$dir/redis.out" >&2
	return 1
}

tb_start_redis() {
	local attempt rc
	if [ -n "${TB_REDIS_PID-}" ]; then
		_tb_err "redis already running (pid $TB_REDIS_PID)"
		return 1
	fi
	export TB_REDIS_DIR=$TEST_DIR/redis
	export TB_REDIS_LOG=$TB_REDIS_DIR/redis.log
	export TB_REDIS_SOCK=$TB_REDIS_DIR/redis.sock
	export TB_REDIS_UNIX_URL=unix://$TB_REDIS_SOCK
	mkdir -p "$TB_REDIS_DIR" || return 1
	test_atexit tb_stop_redis
	for attempt in 1 2 3; do
		export TB_REDIS_PORT
		TB_REDIS_PORT=$(tb_free_port) || return 1
		export TB_REDIS_URL=redis://127.0.0.1:$TB_REDIS_PORT/0
		_tb_redis_launch
		rc=$?
		[ "$rc" -eq 2 ] || return "$rc"
	done
	_tb_err "redis-server: no free port after 3 attempts"
	return 1
}

tb_stop_redis() {
	[ -n "${TB_REDIS_PID-}" ] || return 0
	tb_kill_tree "$TB_REDIS_PID" || return 1
	export TB_REDIS_PID=
}

tb_restart_redis() {
	[ -n "${TB_REDIS_PORT-}" ] || { _tb_err "tb_restart_redis before tb_start_redis"; return 1; }
	tb_stop_redis || return 1
	_tb_redis_launch || { _tb_err "redis-server could not start again on port $TB_REDIS_PORT"; return 1; }
}

# --- users ----------------------------------------------------------------------
tb_ensure_user() {
	local user=${1:-$TB_TEST_USER} home pw shell
	home=/home/$user
	if ! id -u "$user" >/dev/null 2>&1; then
		_tb_need_root "creating user '$user'" || return 1
		useradd --system --create-home --home-dir "$home" --shell /bin/bash "$user" || return 1
	fi
	pw=$(getent shadow "$user" | cut -d: -f2)
	shell=$(getent passwd "$user" | cut -d: -f7)
	home=$(getent passwd "$user" | cut -d: -f6)
	if [ "$pw" != '*' ] || [ "$shell" != /bin/bash ] || [ ! -d "$home" ]; then
		_tb_need_root "fixing user '$user'" || return 1
		# '!' (locked) is refused by sshd with UsePAM no; '*' only means
		# "no password", keys still work.
		[ "$pw" = '*' ] || usermod -p '*' "$user" || return 1
		[ "$shell" = /bin/bash ] || usermod -s /bin/bash "$user" || return 1
		if [ ! -d "$home" ]; then
			mkdir -p "$home" && chown "$user:" "$home" && chmod 0755 "$home" || return 1
		fi
	fi
}

# --- sandboxes --------------------------------------------------------------------
_tb_up() { local n=${1^^}; echo "${n}"; }

# tb_sbx_var NAME FIELD: the value of TB_<NAME>_<FIELD>.
tb_sbx_var() {
	local v
	v="TB_$(_tb_up "$1")_$2"
	echo "${!v-}"
}

_tb_sshd_write_config() {
	local dir=$1 ip=$2 port=$3
	local extra=${TB_SANDBOX_EXTRA_PATH-}
	cat >"$dir/sshd_config" <<EOF
# sshbox test sandbox; written by tests/testbed.sh
ListenAddress $ip:$port
AddressFamily inet
HostKey $dir/ssh_host_ed25519_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
# TEST_DIR lives under /tmp, which StrictModes rejects as a parent directory.
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
MaxStartups 100:30:200
MaxSessions 64
LogLevel VERBOSE
# No AcceptEnv line: no client variable is accepted.  No Subsystem either.
SetEnv "PATH=${extra:+$extra:}/usr/local/bin:/usr/bin:/bin"
ClientAliveInterval 15
PrintMotd no
PrintLastLog no
EOF
}

# Launch the sandbox's sshd from its existing config; wait until it serves
# its own host key.  Returns 0 ready, 1 failed, 2 port taken.
_tb_sshd_launch() {
	local name=$1 up dir ip port log pid i mark blob got
	up=$(_tb_up "$name")
	dir=$TEST_DIR/sbx-$name
	ip=$(tb_sbx_var "$name" HOST)
	port=$(tb_sbx_var "$name" PORT)
	log=$dir/sshd.log
	: >>"$log"
	mark=$(wc -l <"$log")
	blob=$(cut -d' ' -f2 "$dir/ssh_host_ed25519_key.pub")
	mkdir -p /run/sshd && chmod 0755 /run/sshd || return 1
	rm -f "$dir/sshd.pid"
	_tb_daemon /usr/sbin/sshd -D -e -f "$dir/sshd_config" -E "$log" </dev/null >>"$dir/sshd.out" 2>&1 &
	pid=$!
	for ((i = 0; i < 200; i++)); do
		got=$(ssh-keyscan -T 2 -t ed25519 -p "$port" "$ip" 2>/dev/null | awk '{ print $3 }')
		if [ "$got" = "$blob" ]; then
			export "TB_${up}_PID=$(_tb_pidfile_pid "$dir/sshd.pid" "$pid")"
			return 0
		fi
		if [ -n "$got" ]; then
			_tb_err "sandbox $name: another host key answers on $ip:$port"
			tb_kill_tree "$pid" 2
			return 1
		fi
		_tb_starttime "$pid" >/dev/null || break
		sleep 0.05
	done
	tb_kill_tree "$pid" 2
	if tail -n "+$((mark + 1))" "$log" | grep -q 'Address already in use'; then
		return 2
	fi
	_tb_err "sandbox $name: sshd on $ip:$port did not come up; $log:"
	tail -n 20 "$log" "$dir/sshd.out" >&2
	return 1
}

tb_start_sandbox() {
	local name=${1-} ip=${2-} user=${3:-$TB_TEST_USER}
	local up dir attempt rc port pw
	[[ $name =~ ^[a-z0-9_]+$ ]] || { _tb_err "tb_start_sandbox: bad name '$name' (want [a-z0-9_]+)"; return 1; }
	_tb_loopback_ip "$ip" || { _tb_err "tb_start_sandbox: '$ip' is not a loopback address 127.x.y.z"; return 1; }
	_tb_need_root "tb_start_sandbox" || return 1
	up=$(_tb_up "$name")
	if [ -n "$(tb_sbx_var "$name" PID)" ]; then
		_tb_err "sandbox $name already running"
		return 1
	fi
	if [ "$user" = "$TB_TEST_USER" ]; then
		tb_ensure_user || return 1
	fi
	id -u "$user" >/dev/null 2>&1 || { _tb_err "no such user '$user'"; return 1; }
	pw=$(getent shadow "$user" | cut -d: -f2)
	case $pw in
	'!'*) _tb_err "account '$user' is locked ('!' in /etc/shadow): sshd refuses it with UsePAM no"; return 1 ;;
	esac

	dir=$TEST_DIR/sbx-$name
	mkdir -p "$dir/work" && chmod 0755 "$dir" || return 1
	chown "$user:" "$dir/work" && chmod 0755 "$dir/work" || return 1
	if [ ! -f "$dir/ssh_host_ed25519_key" ]; then
		ssh-keygen -q -t ed25519 -N '' -C "sshbox-test-sandbox-$name" \
			-f "$dir/ssh_host_ed25519_key" </dev/null || return 1
	fi
	: >>"$dir/authorized_keys" && chmod 0644 "$dir/authorized_keys" || return 1

	export "TB_${up}_HOST=$ip" "TB_${up}_USER=$user" \
		"TB_${up}_WORKDIR=$dir/work" "TB_${up}_DIR=$dir" \
		"TB_${up}_CONFIG=$dir/sshd_config" "TB_${up}_LOG=$dir/sshd.log" \
		"TB_${up}_HOSTKEY_PUB=$dir/ssh_host_ed25519_key.pub" \
		"TB_${up}_HOSTKEY=$(cut -d' ' -f1-2 "$dir/ssh_host_ed25519_key.pub")" \
		"TB_${up}_AUTHORIZED_KEYS=$dir/authorized_keys" \
		"TB_${up}_KNOWN_HOSTS=$dir/known_hosts" "TB_${up}_PID="
	test_atexit "tb_stop_sandbox $name"
	for attempt in 1 2 3; do
		port=$(tb_free_port "$ip") || return 1
		export "TB_${up}_PORT=$port"
		_tb_sshd_write_config "$dir" "$ip" "$port" || return 1
		echo "[$ip]:$port $(cut -d' ' -f1-2 "$dir/ssh_host_ed25519_key.pub")" >"$dir/known_hosts"
		_tb_sshd_launch "$name"
		rc=$?
		[ "$rc" -eq 2 ] || return "$rc"
	done
	_tb_err "sandbox $name: no free port on $ip after 3 attempts"
	return 1
}

tb_stop_sandbox() {
	local name=$1 pid
	pid=$(tb_sbx_var "$name" PID)
	[ -n "$pid" ] || return 0
	tb_kill_tree "$pid" || return 1
	export "TB_$(_tb_up "$name")_PID="
}

tb_restart_sandbox() {
	local name=$1
	[ -n "$(tb_sbx_var "$name" PORT)" ] || { _tb_err "tb_restart_sandbox: no sandbox '$name'"; return 1; }
	tb_stop_sandbox "$name" || return 1
	_tb_sshd_launch "$name" || { _tb_err "sandbox $name could not start again"; return 1; }
}

tb_client_key() {
	if [ ! -f "$TB_CLIENT_KEY" ]; then
		ssh-keygen -q -t ed25519 -N '' -C sshbox-test-client -f "$TB_CLIENT_KEY" \
			</dev/null >/dev/null || return 1
	fi
	echo "$TB_CLIENT_KEY"
}

tb_authorize_key() {
	local name=${1-} file=${2-} ak
	ak=$(tb_sbx_var "$name" AUTHORIZED_KEYS)
	[ -n "$ak" ] || { _tb_err "tb_authorize_key: no sandbox '$name'"; return 1; }
	if [ -z "$file" ]; then
		file=$(tb_client_key).pub || return 1
	fi
	grep -Eq '^(ssh-|ecdsa-|sk-)[^ ]+ [A-Za-z0-9+/=]+' "$file" ||
		{ _tb_err "tb_authorize_key: '$file' is not an OpenSSH public key"; return 1; }
	cat "$file" >>"$ak"
}

tb_ssh() {
	local name=${1-} key host port user kh
	shift
	host=$(tb_sbx_var "$name" HOST)
	[ -n "$host" ] || { _tb_err "tb_ssh: no sandbox '$name'"; return 1; }
	port=$(tb_sbx_var "$name" PORT)
	user=$(tb_sbx_var "$name" USER)
	kh=$(tb_sbx_var "$name" KNOWN_HOSTS)
	key=$(tb_client_key) || return 1
	ssh -F /dev/null -i "$key" -o IdentitiesOnly=yes -o IdentityAgent=none \
		-o BatchMode=yes -o StrictHostKeyChecking=yes \
		-o UserKnownHostsFile="$kh" -o GlobalKnownHostsFile=/dev/null \
		-o UpdateHostKeys=no -o ControlMaster=no -o ControlPath=none \
		-o ConnectTimeout=10 -o ServerAliveInterval=5 -o LogLevel=ERROR \
		-p "$port" -l "$user" -- "$host" "$@"
}

tb_start_all_default() {
	tb_ensure_user &&
	tb_start_redis &&
	tb_start_sandbox a 127.0.0.2 &&
	tb_start_sandbox b 127.0.0.3
}
