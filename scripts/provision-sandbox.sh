#!/usr/bin/env bash
# scripts/provision-sandbox.sh — make a Debian 12 / Ubuntu 22.04+ machine an
# sshbox sandbox, idempotently.  See --help.
#
# Every step prints one line: `ok` (already as wanted), `changed` (it did
# something), `skip` (not asked for), `plan` (--dry-run: what it would do).
# A second run on a provisioned machine prints only `ok` and `skip` lines.
# Nothing secret is handled: the authorized key is a public key.
set -Eeuo pipefail

me=provision-sandbox.sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C

usage() {
	cat <<'EOF'
usage: provision-sandbox.sh (--local | --ssh [USER@]HOST [--port N] [--ssh-option OPT]...) [options]

Sets up a Debian 12 / Ubuntu 22.04+ sandbox for sshbox, idempotently:
packages (git git-lfs nodejs npm python3 curl ca-certificates build-essential
util-linux coreutils openssh-server, only those missing), uv, the Claude Code
CLI, a service user and its workdir, `git lfs install --system`, the sshd
settings sshbox needs, and the orchestrator's public key.

  --local                  provision this machine (as root)
  --ssh [USER@]HOST        provision HOST: the script and the key are copied
                           there and run with --local, as root or with sudo
  --port N                 ssh port of HOST (default: ssh's)
  --ssh-option OPT         one more `ssh -o OPT` (repeatable), e.g.
                           IdentityFile=~/.ssh/admin_ed25519
  --user NAME              service user sshbox logs in as (default sshbox)
  --home DIR               its home when it is created (default /home/NAME)
  --workdir DIR            sshbox's workdir on the sandbox, owned by the user,
                           0750 (default /srv/sshbox); `sshbox sandbox add
                           --workdir` must name the same
  --authorized-key FILE    the account's public key (one line, as printed by
                           `sshbox key show`); added once, with `restrict`
  --authorized-key-stdin   the same, read from stdin
  --allow-pty              `restrict,pty` instead of `restrict`: operators get
                           a terminal with `ssh -t` (jobs never need one)
  --max-sessions N         sshd MaxSessions (default 32; at least the slot
                           count + 8)
  --claude-version V       @anthropic-ai/claude-code version (default latest:
                           installed when missing, never upgraded)
  --uv-version V           uv version when it is installed (default latest)
  --no-uv                  do not install uv (no download)
  --no-claude              do not install the Claude Code CLI (no download)
  --skip-packages          do not install apt packages (check nothing either)
  --sshd-config-dir DIR    where the snippet goes (default /etc/ssh/sshd_config.d)
  --sshd-config FILE       the sshd_config that `sshd -t` checks and that must
                           include the snippet (default /etc/ssh/sshd_config)
  --no-sshd-reload         write and check the snippet, do not reload sshd
  --print-sshd-config      print the sshd snippet for --user/--max-sessions, exit
  --dry-run                print the plan, change nothing
  -h, --help               this text

Example:
  sshbox key show --account acme --json | jq -r .public_key >acme.pub
  scripts/provision-sandbox.sh --ssh admin@box1.example.com --authorized-key acme.pub
EOF
}

die() {
	echo "$me: error: $*" >&2
	exit 1
}

# An unexpected failure under set -e still ends with one sentence.
step=startup
on_err() {
	local rc=$? line=$1 cmd=$2
	trap - ERR
	# In a $(...) the caller reports it.
	[ "$BASH_SUBSHELL" -eq 0 ] || exit "$rc"
	echo "$me: error: step '$step' failed (exit $rc at line $line: $cmd)" >&2
	exit "$rc"
}
trap 'on_err $LINENO "$BASH_COMMAND"' ERR

# --- options -------------------------------------------------------------------
mode=
ssh_target=
ssh_port=
ssh_opts=()
svc_user=sshbox
home_dir=
home_given=0
workdir=/srv/sshbox
key_file=
key_stdin=0
allow_pty=0
max_sessions=32
claude_version=latest
uv_version=latest
no_uv=0
no_claude=0
skip_packages=0
sshd_dir=/etc/ssh/sshd_config.d
sshd_main=/etc/ssh/sshd_config
sshd_reload=1
print_sshd=0
dry_run=0
fwd=()          # options passed on to the remote run

need_arg() { [ "$2" -ge 2 ] || die "option '$1' needs a value"; }

while [ $# -gt 0 ]; do
	case $1 in
	--local) mode=local ;;
	--ssh) need_arg "$1" $#; mode=ssh; ssh_target=$2; shift ;;
	--port) need_arg "$1" $#; ssh_port=$2; shift ;;
	--ssh-option) need_arg "$1" $#; ssh_opts+=(-o "$2"); shift ;;
	--user) need_arg "$1" $#; svc_user=$2; fwd+=("$1" "$2"); shift ;;
	--home) need_arg "$1" $#; home_dir=$2; home_given=1; fwd+=("$1" "$2"); shift ;;
	--workdir) need_arg "$1" $#; workdir=$2; fwd+=("$1" "$2"); shift ;;
	--authorized-key) need_arg "$1" $#; key_file=$2; shift ;;
	--authorized-key-stdin) key_stdin=1 ;;
	--allow-pty) allow_pty=1; fwd+=("$1") ;;
	--max-sessions) need_arg "$1" $#; max_sessions=$2; fwd+=("$1" "$2"); shift ;;
	--claude-version) need_arg "$1" $#; claude_version=$2; fwd+=("$1" "$2"); shift ;;
	--uv-version) need_arg "$1" $#; uv_version=$2; fwd+=("$1" "$2"); shift ;;
	--no-uv) no_uv=1; fwd+=("$1") ;;
	--no-claude) no_claude=1; fwd+=("$1") ;;
	--skip-packages) skip_packages=1; fwd+=("$1") ;;
	--sshd-config-dir) need_arg "$1" $#; sshd_dir=$2; fwd+=("$1" "$2"); shift ;;
	--sshd-config) need_arg "$1" $#; sshd_main=$2; fwd+=("$1" "$2"); shift ;;
	--no-sshd-reload) sshd_reload=0; fwd+=("$1") ;;
	--print-sshd-config) print_sshd=1 ;;
	--dry-run) dry_run=1; fwd+=("$1") ;;
	-h|--help) usage; exit 0 ;;
	*) die "unknown option '$1' (see --help)" ;;
	esac
	shift
done

# Values reach useradd, paths, sshd_config and (with --ssh) a remote shell:
# each must match a plain character set.
safe_path() { [[ $1 =~ ^/[A-Za-z0-9._/-]*$ && ! $1 =~ (^|/)\.\.?(/|$) && ${#1} -le 200 ]]; }
valid_user() { [[ $1 =~ ^[a-z_][a-z0-9_-]{0,30}$ ]]; }
valid_version() { [[ $1 == latest || $1 =~ ^[0-9]+\.[0-9]+\.[0-9]+([.+-][A-Za-z0-9.]+)?$ ]]; }

valid_user "$svc_user" || die "invalid --user '$svc_user': expected [a-z_][a-z0-9_-]{0,30}"
[ -n "$home_dir" ] || home_dir=/home/$svc_user
{ safe_path "$home_dir" && [ "$home_dir" != / ]; } ||
	die "invalid --home '$home_dir': expected an absolute path of [A-Za-z0-9._/-]"
{ safe_path "$workdir" && [ "$workdir" != / ]; } ||
	die "invalid --workdir '$workdir': expected an absolute path of [A-Za-z0-9._/-], not /"
{ [[ $max_sessions =~ ^[0-9]{1,4}$ ]] && [ "$max_sessions" -ge 10 ] && [ "$max_sessions" -le 1024 ]; } ||
	die "invalid --max-sessions '$max_sessions': expected a number from 10 to 1024"
valid_version "$claude_version" || die "invalid --claude-version '$claude_version': expected latest or X.Y.Z"
valid_version "$uv_version" || die "invalid --uv-version '$uv_version': expected latest or X.Y.Z"
safe_path "$sshd_dir" || die "invalid --sshd-config-dir '$sshd_dir': expected an absolute path of [A-Za-z0-9._/-]"
safe_path "$sshd_main" || die "invalid --sshd-config '$sshd_main': expected an absolute path of [A-Za-z0-9._/-]"
[ -z "$key_file" ] || [ "$key_stdin" = 0 ] || die "give --authorized-key or --authorized-key-stdin, not both"
[ -z "$ssh_port" ] || { [[ $ssh_port =~ ^[0-9]{1,5}$ ]] && [ "$ssh_port" -ge 1 ] && [ "$ssh_port" -le 65535 ]; } ||
	die "invalid --port '$ssh_port': expected 1-65535"

# --- the sshd snippet ------------------------------------------------------------
# Kept identical to etc/sshd/sshbox-sandbox.conf for the defaults (--user
# sshbox --max-sessions 32); tests/t5200-deploy-files.sh checks that.
sshd_snippet() {
	cat <<EOF
# sshd settings for an sshbox sandbox (written by scripts/provision-sandbox.sh).
# Install as /etc/ssh/sshd_config.d/10-sshbox.conf; check with \`sshd -t\`,
# then reload sshd.  Debian and Ubuntu include sshd_config.d/*.conf at the
# top of sshd_config and sshd keeps the first value it reads, so these lines
# win over the main file and over later snippets (10- sorts before cloud
# images' 50-cloud-init.conf, which may turn password logins on).

# Each job is one session multiplexed on the orchestrator's ControlMaster
# connection (one connection per account and orchestrator host), and the
# supervisor's health checks and an operator's \`sshbox ssh\` are sessions on
# the same connection.  OpenSSH's default of 10 would refuse the 11th; keep
# this at least 8 above the sandbox's slot count (sshbox allows up to 64).
MaxSessions $max_sessions

# Unauthenticated connections at once before sshd starts dropping (start:
# rate%:full).  Masters of several orchestrator hosts reconnecting together
# after a network blip, plus jobs that connect directly while a master is
# gone, exceed the default 10.
MaxStartups 30:30:100

# A dead orchestrator (power loss, network cut) sends no FIN: sshd probes the
# client every 15 s and drops the connection after 3 unanswered probes, so
# the job's stdin closes within 45 s and the job script on this host kills
# Claude Code's process group instead of letting it run on unobserved.
ClientAliveInterval 15
ClientAliveCountMax 3

# Keys only: sshbox authenticates with the account's key from its agent.
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no

# ~/.ssh/environment and environment= key options could change PATH or
# LD_PRELOAD for the job script; sshbox sends everything it needs on stdin.
PermitUserEnvironment no

# Logs the fingerprint of the key of every login: which account's key opened
# which connection.
LogLevel VERBOSE

# OpenSSH 9.8 and later (not Debian 12's 9.2) penalise addresses whose
# connections fail to authenticate; if an orchestrator host gets locked out,
# add there:  PerSourcePenaltyExemptList <orchestrator addresses>

# The service user runs commands over plain sessions only: no forwarding of
# any kind, no agent, no X11, no tunnel.  Its authorized_keys lines carry
# \`restrict\` as well; this block also covers a key added by hand.  A Match
# block in an included file ends with the file.
Match User $svc_user
	AllowAgentForwarding no
	AllowTcpForwarding no
	AllowStreamLocalForwarding no
	X11Forwarding no
	PermitTunnel no
	DisableForwarding yes
EOF
}

if [ "$print_sshd" = 1 ]; then
	sshd_snippet
	exit 0
fi

[ -n "$mode" ] || die "say where: --local or --ssh [USER@]HOST (see --help)"

# --- the key ------------------------------------------------------------------------
key_line=     # "TYPE BASE64 [COMMENT]", validated
key_blob=
read_key() {
	local src=$1 lines n=0 l type blob comment
	if grep -q -- '-----BEGIN .*PRIVATE KEY-----' "$src"; then
		die "the authorized key is a private key: give its public half (.pub)"
	fi
	while IFS= read -r l || [ -n "$l" ]; do
		l=${l%$'\r'}
		case $l in ''|'#'*) continue ;; esac
		n=$((n + 1))
		lines=$l
	done <"$src"
	[ "$n" -eq 1 ] || die "the authorized key must be exactly one public key line, found $n"
	read -r type blob comment <<<"$lines"
	[[ $type =~ ^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)$ ]] ||
		die "the authorized key must start with its type (ssh-ed25519, ssh-rsa, ecdsa-sha2-...), without options; found '${type:0:40}'"
	[[ $blob =~ ^[A-Za-z0-9+/]+={0,3}$ ]] || die "the authorized key's base64 part is malformed"
	# The comment is kept when it is plain printable text.
	[[ $comment =~ ^[[:print:]]*$ ]] || comment=
	key_blob=$blob
	key_line="$type $blob${comment:+ $comment}"
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sshbox-provision.XXXXXXXX")
cleanup() { rm -rf -- "$tmp"; }
trap cleanup EXIT

key_src=$key_file
if [ "$key_stdin" = 1 ]; then
	head -c 65536 >"$tmp/key.in"
	key_file=$tmp/key.in
	key_src=stdin
fi
if [ -n "$key_file" ]; then
	[ -r "$key_file" ] || die "cannot read the authorized key file '$key_file'"
	read_key "$key_file"
	printf '%s\n' "$key_line" >"$tmp/key.pub"
	if ! ssh-keygen -l -f "$tmp/key.pub" >"$tmp/key.fp" 2>&1; then
		why=$(head -n 1 "$tmp/key.fp")
		die "ssh-keygen does not accept the authorized key in '$key_src': ${why//"$tmp/key.pub"/the key}"
	fi
fi

# --- over ssh: copy, run with --local, clean up -----------------------------------------
if [ "$mode" = ssh ]; then
	[[ $ssh_target =~ ^([a-z_][a-z0-9_.-]{0,31}@)?[A-Za-z0-9.:_-]+$ && $ssh_target != -* ]] ||
		die "invalid --ssh target '$ssh_target': expected [USER@]HOST"
	self=$(readlink -f -- "${BASH_SOURCE[0]}")
	# One authenticated connection for the three steps.
	so=(-o ControlMaster=auto -o "ControlPath=$tmp/cm" -o ControlPersist=60
	    ${ssh_port:+-p "$ssh_port"} ${ssh_opts[@]+"${ssh_opts[@]}"})
	s=(ssh "${so[@]}" -- "$ssh_target")
	step=ssh-copy
	rdir=$("${s[@]}" 'umask 077 && mktemp -d /tmp/sshbox-provision.XXXXXXXX' </dev/null) ||
		die "cannot reach '$ssh_target' over ssh (or mktemp failed there)"
	[[ $rdir =~ ^/tmp/sshbox-provision\.[A-Za-z0-9]{8}$ ]] || die "unexpected answer from '$ssh_target': '$rdir'"
	"${s[@]}" "cat > $rdir/provision-sandbox.sh" <"$self" ||
		die "cannot copy the script to '$ssh_target:$rdir'"
	if [ -n "$key_line" ]; then
		"${s[@]}" "cat > $rdir/key.pub" <"$tmp/key.pub" ||
			die "cannot copy the key to '$ssh_target:$rdir'"
		fwd+=(--authorized-key "$rdir/key.pub")
	fi
	# Every forwarded value was checked above against a plain character set;
	# quoted again for the remote shell all the same.
	args=
	for a in ${fwd[@]+"${fwd[@]}"}; do
		args="$args '$a'"
	done
	run="bash $rdir/provision-sandbox.sh --local$args"
	step=ssh-run
	rc=0
	if [ -t 0 ] && [ -t 1 ]; then
		# A terminal: sudo may ask for a password.
		ssh "${so[@]}" -t -- "$ssh_target" \
			"cd / && if [ \"\$(id -u)\" -eq 0 ]; then $run; else sudo $run; fi; rc=\$?; rm -rf $rdir; exit \$rc" ||
			rc=$?
	else
		# None: sudo -n fails at once instead of waiting for a password.
		"${s[@]}" \
			"cd / && if [ \"\$(id -u)\" -eq 0 ]; then $run; else sudo -n $run; fi; rc=\$?; rm -rf $rdir; exit \$rc" </dev/null ||
			rc=$?
	fi
	ssh -o "ControlPath=$tmp/cm" -O exit -- "$ssh_target" >/dev/null 2>&1 || true
	[ "$rc" -eq 0 ] || die "provisioning '$ssh_target' failed (exit $rc): see the lines above"
	exit 0
fi

# --- locally ------------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "run as root (sudo $me --local ...), or use --ssh"

n_ok=0 n_changed=0 n_skip=0 n_plan=0
report() {
	local st=$1
	shift
	case $st in
	ok) n_ok=$((n_ok + 1)) ;;
	changed) n_changed=$((n_changed + 1)) ;;
	skip) n_skip=$((n_skip + 1)) ;;
	plan) n_plan=$((n_plan + 1)) ;;
	esac
	printf '%-8s %s\n' "$st" "$*"
}
dry() { [ "$dry_run" = 1 ]; }

# "install ok installed" (or "hold ok installed"), for any architecture.
is_installed() {
	local st
	st=$(dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null) || return 1
	[[ $st == *" ok installed"* ]]
}

apt_updated=0
apt_install() {
	export DEBIAN_FRONTEND=noninteractive
	if [ "$apt_updated" = 0 ]; then
		apt-get update -q >"$tmp/apt.log" 2>&1 || die "apt-get update failed: $(tail -n 1 "$tmp/apt.log")"
		apt_updated=1
	fi
	apt-get install -y -q --no-install-recommends "$@" >"$tmp/apt.log" 2>&1 ||
		die "apt-get install $* failed: $(tail -n 1 "$tmp/apt.log")"
}

# --- 1. packages ----------------------------------------------------------------------------
step=packages
if [ "$skip_packages" = 1 ]; then
	report skip "packages: --skip-packages"
else
	{ command -v apt-get >/dev/null && command -v dpkg-query >/dev/null; } ||
		die "no apt-get here: this script provisions Debian and Ubuntu only (or pass --skip-packages)"
	want=(git git-lfs python3 curl ca-certificates build-essential util-linux coreutils openssh-server)
	# A node + npm from elsewhere (NodeSource bundles npm) is left alone.
	if ! { command -v node && command -v npm; } >/dev/null 2>&1; then
		want+=(nodejs npm)
	fi
	missing=()
	for p in "${want[@]}"; do
		is_installed "$p" || missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		report ok "packages: ${want[*]} installed"
	elif dry; then
		report plan "packages: would install ${missing[*]}"
	else
		apt_install "${missing[@]}"
		for p in "${missing[@]}"; do
			is_installed "$p" || die "package '$p' is still not installed after apt-get install"
		done
		report changed "packages: installed ${missing[*]}"
	fi
fi

# --- 2. uv ------------------------------------------------------------------------------------
step=uv
uv_now=
if command -v uv >/dev/null 2>&1; then
	uv_now=$(uv --version 2>/dev/null) || uv_now=
fi
uv_pkg=$(apt-cache policy uv 2>/dev/null) || uv_pkg=
if [ "$no_uv" = 1 ]; then
	report skip "uv: --no-uv"
elif [ -n "$uv_now" ] && { [ "$uv_version" = latest ] || [[ " $uv_now " == *" $uv_version "* ]]; }; then
	report ok "uv: $uv_now at $(command -v uv)"
elif [ "$uv_version" = latest ] && [[ $uv_pkg =~ Candidate:\ [0-9] ]]; then
	if dry; then
		report plan "uv: would install the uv package"
	else
		apt_install uv
		report changed "uv: installed the uv package ($(uv --version 2>/dev/null))"
	fi
else
	# No package: the official installer, system-wide and unmanaged (no
	# shell profile edits, no self-update receipt in root's home).
	if [ "$uv_version" = latest ]; then
		url=https://astral.sh/uv/install.sh
	else
		url=https://astral.sh/uv/$uv_version/install.sh
	fi
	if dry; then
		report plan "uv: would run $url into /usr/local/bin"
	else
		command -v curl >/dev/null || die "curl is needed to download uv's installer"
		curl -fsSL --proto '=https' --tlsv1.2 --max-time 120 -o "$tmp/uv-install.sh" "$url" ||
			die "cannot download uv's installer from $url"
		env UV_UNMANAGED_INSTALL=/usr/local/bin UV_INSTALL_DIR=/usr/local/bin UV_NO_MODIFY_PATH=1 \
			sh "$tmp/uv-install.sh" >"$tmp/uv.log" 2>&1 ||
			die "uv's installer failed: $(tail -n 1 "$tmp/uv.log")"
		[ -x /usr/local/bin/uv ] || die "uv's installer ran but /usr/local/bin/uv is missing"
		report changed "uv: installed $(/usr/local/bin/uv --version) into /usr/local/bin"
	fi
fi

# --- 3. the Claude Code CLI ---------------------------------------------------------------------
step=claude
claude_pkg=@anthropic-ai/claude-code
if [ "$no_claude" = 1 ]; then
	report skip "claude: --no-claude"
else
	have=
	if command -v claude >/dev/null 2>&1; then
		have=$(timeout 60 claude --version 2>/dev/null | head -n 1) || have=
	fi
	if [ -n "$have" ] && { [ "$claude_version" = latest ] || [ "${have%% *}" = "$claude_version" ]; }; then
		report ok "claude: $have at $(command -v claude)"
	elif dry; then
		report plan "claude: would npm install -g $claude_pkg@$claude_version${have:+ (now: $have)}"
	else
		{ command -v node >/dev/null && command -v npm >/dev/null; } ||
			die "node and npm are needed for the Claude Code CLI (drop --skip-packages, or pass --no-claude)"
		major=$(node --version | sed -n 's/^v\([0-9]*\)\..*/\1/p')
		{ [ -n "$major" ] && [ "$major" -ge 18 ]; } ||
			die "node $(node --version) is too old for Claude Code (it needs 18 or later): install a newer Node.js (e.g. NodeSource) and run again"
		npm install -g --no-fund --no-audit "$claude_pkg@$claude_version" >"$tmp/npm.log" 2>&1 ||
			die "npm install -g $claude_pkg@$claude_version failed: $(tail -n 1 "$tmp/npm.log")"
		have=$(timeout 60 claude --version 2>/dev/null | head -n 1) ||
			die "claude was installed but 'claude --version' does not answer"
		report changed "claude: installed $have"
	fi
fi

# --- 4. the service user ----------------------------------------------------------------------------
step=user
pw_field() { getent shadow "$1" | cut -d: -f2; }
if ! id -u "$svc_user" >/dev/null 2>&1; then
	if dry; then
		report plan "user: would create $svc_user (home $home_dir, shell /bin/bash)"
	else
		mkdir -p -- "$(dirname -- "$home_dir")"
		useradd --system --user-group --create-home --home-dir "$home_dir" \
			--shell /bin/bash --comment "sshbox sandbox user" "$svc_user" >"$tmp/useradd.log" 2>&1 ||
			die "useradd $svc_user failed: $(head -n 1 "$tmp/useradd.log")"
		# '*': no password, and not the locked '!' that sshd refuses
		# with UsePAM no.
		usermod -p '*' "$svc_user"
		report changed "user: created $svc_user (home $home_dir, shell /bin/bash)"
	fi
	user_exists=0
else
	user_exists=1
	cur_home=$(getent passwd "$svc_user" | cut -d: -f6)
	cur_shell=$(getent passwd "$svc_user" | cut -d: -f7)
	if [ "$home_given" = 1 ] && [ "$cur_home" != "$home_dir" ]; then
		die "user '$svc_user' exists with home '$cur_home', not '$home_dir'"
	fi
	home_dir=$cur_home
	fixes=()
	# sshd runs every command through the login shell; the job script is bash.
	case $cur_shell in
	/bin/bash|/usr/bin/bash) ;;
	*) fixes+=("shell $cur_shell -> /bin/bash") ;;
	esac
	pw=$(pw_field "$svc_user")
	case $pw in '!'|'!!'|'!*') fixes+=("password field '$pw' -> '*'") ;; esac
	[ -d "$home_dir" ] || fixes+=("create home $home_dir")
	if [ ${#fixes[@]} -eq 0 ]; then
		report ok "user: $svc_user (home $home_dir, shell $cur_shell)"
	elif dry; then
		report plan "user: would fix $svc_user: ${fixes[*]}"
	else
		case $cur_shell in /bin/bash|/usr/bin/bash) ;; *) usermod -s /bin/bash "$svc_user" ;; esac
		case $pw in '!'|'!!'|'!*') usermod -p '*' "$svc_user" ;; esac
		if [ ! -d "$home_dir" ]; then
			mkdir -p -- "$home_dir"
			chown -- "$svc_user:" "$home_dir"
			chmod 0750 "$home_dir"
		fi
		report changed "user: fixed $svc_user: ${fixes[*]}"
	fi
fi
svc_group=
if id -u "$svc_user" >/dev/null 2>&1; then
	svc_group=$(id -gn "$svc_user")
fi

# --- 5. the workdir ------------------------------------------------------------------------------------
step=workdir
if [ -L "$workdir" ]; then
	die "workdir '$workdir' is a symbolic link: give the real path"
elif [ ! -d "$workdir" ]; then
	if dry; then
		report plan "workdir: would create $workdir ($svc_user, 0750)"
	else
		[ ! -e "$workdir" ] || die "workdir '$workdir' exists and is not a directory"
		mkdir -p -- "$(dirname -- "$workdir")"
		mkdir -m 0750 -- "$workdir"
		chown -- "$svc_user:$svc_group" "$workdir"
		report changed "workdir: created $workdir ($svc_user:$svc_group, 0750)"
	fi
else
	cur=$(stat -c '%U:%G %a' -- "$workdir")
	if [ -n "$svc_group" ] && [ "$cur" = "$svc_user:$svc_group 750" ]; then
		report ok "workdir: $workdir ($cur)"
	elif dry; then
		report plan "workdir: would set $workdir to $svc_user, 0750 (now $cur)"
	else
		chown -- "$svc_user:$svc_group" "$workdir"
		chmod 0750 -- "$workdir"
		report changed "workdir: $workdir was $cur, now $svc_user:$svc_group 750"
	fi
fi

# --- 6. git-lfs, system-wide ----------------------------------------------------------------------------
step=git-lfs
lfs_ok() {
	[ "$(git config --system --get filter.lfs.process 2>/dev/null)" = "git-lfs filter-process" ] &&
		[ "$(git config --system --get filter.lfs.required 2>/dev/null)" = true ]
}
if ! command -v git >/dev/null || ! git lfs version >/dev/null 2>&1; then
	if dry; then
		report plan "git-lfs: would run git lfs install --system (once git and git-lfs are installed)"
	else
		die "git and git-lfs are needed (drop --skip-packages, or install them)"
	fi
elif lfs_ok; then
	report ok "git-lfs: filters configured system-wide"
elif dry; then
	report plan "git-lfs: would run git lfs install --system"
else
	git lfs install --system >"$tmp/lfs.log" 2>&1 || die "git lfs install --system failed: $(head -n 1 "$tmp/lfs.log")"
	lfs_ok || die "git lfs install --system ran but the system git config has no LFS filter"
	report changed "git-lfs: git lfs install --system"
fi

# --- 7. sshd -------------------------------------------------------------------------------------------------
step=sshd
snippet=$sshd_dir/10-sshbox.conf
sshd_snippet >"$tmp/sshd.conf"
# The effective settings for the service user: proves that sshd reads the
# snippet (the main config includes the directory, no earlier file wins).
sshd_why=
sshd_effective_ok() {
	mkdir -p /run/sshd   # privilege separation directory, needed by -t/-T
	if ! sshd -T -f "$sshd_main" -C "user=$svc_user,host=localhost,addr=127.0.0.1" >"$tmp/sshd.T" 2>&1; then
		sshd_why=": $(head -n 1 "$tmp/sshd.T")"
		return 1
	fi
	grep -qx "maxsessions $max_sessions" "$tmp/sshd.T" &&
		grep -qx "passwordauthentication no" "$tmp/sshd.T" &&
		grep -qx "clientaliveinterval 15" "$tmp/sshd.T" &&
		grep -qx "allowtcpforwarding no" "$tmp/sshd.T"
}
command -v sshd >/dev/null || dry || die "sshd is not installed (openssh-server)"
if [ -f "$snippet" ] && cmp -s "$tmp/sshd.conf" "$snippet"; then
	if dry && [ ! -d /run/sshd ]; then
		report ok "sshd: $snippet (MaxSessions $max_sessions; not checked with sshd -T: no /run/sshd)"
	else
		sshd_effective_ok ||
			die "$snippet is in place but sshd does not apply it (does $sshd_main include $sshd_dir/*.conf before other settings?)$sshd_why"
		report ok "sshd: $snippet (MaxSessions $max_sessions)"
	fi
elif dry; then
	if [ "$sshd_reload" = 1 ]; then
		report plan "sshd: would write $snippet (MaxSessions $max_sessions), check it with sshd -t, reload sshd"
	else
		report plan "sshd: would write $snippet (MaxSessions $max_sessions), check it with sshd -t"
	fi
else
	[ -d "$sshd_dir" ] || die "no directory '$sshd_dir' for the sshd snippet"
	had_old=0
	if [ -f "$snippet" ]; then
		cp -p -- "$snippet" "$tmp/sshd.old"
		had_old=1
	fi
	install -m 0644 -o root -g root -- "$tmp/sshd.conf" "$snippet.tmp"
	mv -f -- "$snippet.tmp" "$snippet"
	rollback() {
		if [ "$had_old" = 1 ]; then
			install -m 0644 -o root -g root -- "$tmp/sshd.old" "$snippet"
		else
			rm -f -- "$snippet"
		fi
	}
	mkdir -p /run/sshd
	if ! sshd -t -f "$sshd_main" >"$tmp/sshd.t" 2>&1; then
		rollback
		die "sshd -t rejects the configuration with the new snippet, the previous state is back: $(head -n 1 "$tmp/sshd.t")"
	fi
	if ! sshd_effective_ok; then
		rollback
		die "sshd does not apply $snippet (does $sshd_main include $sshd_dir/*.conf before other settings?)$sshd_why; the previous state is back"
	fi
	how="not reloaded (--no-sshd-reload)"
	if [ "$sshd_reload" = 1 ]; then
		if command -v systemctl >/dev/null && systemctl is-active --quiet ssh 2>/dev/null; then
			systemctl reload ssh || die "systemctl reload ssh failed"
			how="sshd reloaded"
		elif command -v systemctl >/dev/null && systemctl is-active --quiet sshd 2>/dev/null; then
			systemctl reload sshd || die "systemctl reload sshd failed"
			how="sshd reloaded"
		elif [ -s /run/sshd.pid ] && kill -0 "$(cat /run/sshd.pid)" 2>/dev/null; then
			kill -HUP "$(cat /run/sshd.pid)"
			how="sshd reloaded (SIGHUP)"
		else
			how="sshd not running: applies when it starts"
		fi
	fi
	report changed "sshd: wrote $snippet (MaxSessions $max_sessions), sshd -t passed, $how"
fi

# --- 8. the authorized key ------------------------------------------------------------------------------------
step=authorized-key
if [ -z "$key_line" ]; then
	report skip "authorized key: none given (--authorized-key FILE)"
else
	opts=restrict
	[ "$allow_pty" = 0 ] || opts=restrict,pty
	want_line="$opts $key_line"
	fp=$(awk '{ print $2 }' "$tmp/key.fp")
	sshdir=$home_dir/.ssh
	ak=$sshdir/authorized_keys
	if [ "$user_exists" = 0 ] && dry; then
		report plan "authorized key: would add $fp to $ak ($opts)"
	else
		[ ! -L "$sshdir" ] || die "'$sshdir' is a symbolic link: refusing to write through it"
		[ ! -L "$ak" ] || die "'$ak' is a symbolic link: refusing to write through it"
		todo=()
		present=0 other=0
		if [ -f "$ak" ]; then
			present=$(grep -Fxc -- "$want_line" "$ak") || present=0
			# The same key with other options (or none): replaced.
			other=$(awk -v b="$key_blob" -v w="$want_line" '
				$0 != w { for (i = 1; i <= NF; i++) if ($i == b) { n++; break } }
				END { print n + 0 }' "$ak")
		fi
		if [ "$present" -eq 1 ] && [ "$other" -eq 0 ]; then
			:
		elif [ "$present" -gt 1 ] || [ "$other" -gt 0 ]; then
			todo+=("replace the $((present + other)) lines holding $fp with one '$opts ...' line")
		else
			todo+=("add $fp ($opts)")
		fi
		if [ -d "$sshdir" ]; then
			[ "$(stat -c '%U %a' -- "$sshdir")" = "$svc_user 700" ] || todo+=("$sshdir to $svc_user 0700")
		else
			todo+=("create $sshdir")
		fi
		if [ -f "$ak" ] && [ "$(stat -c '%U %a' -- "$ak")" != "$svc_user 600" ]; then
			todo+=("$ak to $svc_user 0600")
		fi
		printf -v todo_text '%s; ' "${todo[@]+"${todo[@]}"}"
		todo_text=${todo_text%; }
		if [ ${#todo[@]} -eq 0 ]; then
			report ok "authorized key: $fp in $ak ($opts)"
		elif dry; then
			report plan "authorized key: would $todo_text"
		else
			if [ ! -d "$sshdir" ]; then
				mkdir -m 0700 -- "$sshdir"
			fi
			chown -h -- "$svc_user:$svc_group" "$sshdir"
			chmod 0700 -- "$sshdir"
			# Written next to the file and renamed: a rename replaces a
			# link itself, never what it points to.
			new=$sshdir/.authorized_keys.sshbox.$$
			{
				if [ -f "$ak" ]; then
					awk -v b="$key_blob" '{ for (i = 1; i <= NF; i++) if ($i == b) next; print }' "$ak"
				fi
				printf '%s\n' "$want_line"
			} >"$new"
			chown -- "$svc_user:$svc_group" "$new"
			chmod 0600 -- "$new"
			mv -f -- "$new" "$ak"
			report changed "authorized key: $todo_text"
		fi
	fi
fi

step=summary
if dry; then
	echo "$me: dry run: $n_plan to do, $n_ok ok, $n_skip skipped; nothing was changed"
else
	echo "$me: $n_changed changed, $n_ok ok, $n_skip skipped"
fi
