# tests/gitrepos.sh — a real git server for the tests: smart HTTPS with basic
# auth (GitHub App style: user x-access-token, password = the token), push,
# submodules and Git LFS, on 127.0.0.1.  Sourced after tests/lib.sh (and
# usually tests/testbed.sh); bash only.
# shellcheck shell=bash
#
#	. "$(dirname "$0")/lib.sh"
#	. "$REPO_ROOT/tests/gitrepos.sh"
#	test_expect_success 'setup' '
#		gs_start &&
#		gs_make_repo app &&
#		gs_add_submodule app lib &&
#		gs_add_lfs_file app assets/model.bin "real bytes" &&
#		gs_git clone -q --recurse-submodules "$GS_URL/app.git" c
#	'
#
# The server is tests/gitserver.py (Python standard library, run with
# /usr/bin/python3) running `git http-backend` as a CGI plus a small LFS
# server; see its docstring for the protocol details and the log format.
#
# Functions
#   gs_start [--http]           start the server (TLS unless --http) with root
#                               $GS_ROOT and a fresh random token; exports the
#                               GS_* variables below; its stop is registered
#                               with test_atexit; ready within 10 s or fails
#   gs_stop                     stop it (TERM, KILL after 5 s); idempotent
#   gs_set_token [TOKEN]        rotate the token (default: a new random one);
#                               the server reads it again on every request
#   gs_make_repo NAME [COMMITS] [BYTES]
#                               a bare repository $GS_ROOT/NAME.git (NAME may
#                               hold slashes: acme/app) made with fast-import:
#                               COMMITS (default 300) commits on main (each
#                               changes src/fNN.txt; with BYTES, also
#                               BYTES incompressible bytes in blobs/bNN.bin,
#                               e.g. 5000 commits x 10000 B = a 50 MB repo),
#                               branch `feature` (main~COMMITS/2 plus one
#                               commit adding feature.txt), an annotated tag
#                               `v1.0` on that same commit main~COMMITS/2
#                               (use v1.0^{commit} for its commit), HEAD ->
#                               main, http.receivepack true,
#                               uploadpack.allowFilter and
#                               allowReachableSHA1InWant true (as GitHub).
#                               History is deterministic per NAME and COMMITS.
#                               Needs no running server.
#   gs_add_submodule NAME SUBNAME [PATH]
#                               make SUBNAME (GS_SUB_COMMITS commits, default
#                               5; an existing SUBNAME is reused) and commit
#                               on NAME's main a submodule at PATH (default
#                               `sub`, also its name) with url
#                               $GS_URL/SUBNAME.git, at SUBNAME's main.  Needs
#                               GS_URL (gs_start first), no network.
#   gs_add_lfs_file NAME PATH CONTENT
#                               through the server, as a client would: clone
#                               NAME, `git lfs track --filename PATH`, write
#                               CONTENT (exact bytes, printf %s) to PATH,
#                               commit, `git lfs push --object-id`, push main.
#                               Exports GS_LFS_OID (sha256 of CONTENT); the
#                               object is then $GS_ROOT/lfs-objects/$GS_LFS_OID
#   gs_git ARGS...              git as a GitHub client: a credential helper
#                               answering x-access-token / $GS_TOKEN (read
#                               from the environment when git asks, never in
#                               argv or a file: `GS_TOKEN=bad gs_git ...`
#                               tries a wrong one), GIT_TERMINAL_PROMPT=0,
#                               GIT_SSL_CAINFO=$GS_CA, -c protocol.version=2,
#                               the git-lfs filters, a commit identity, and
#                               stall limits (GIT_HTTP_LOW_SPEED_*: 30 s)
#   gs_curl [--no-auth] ARGS... curl with the CA, --max-time 20 and (unless
#                               --no-auth) the basic-auth credentials fed
#                               through a config pipe (-K <(...)), not argv
#   gs_url NAME                 print $GS_URL/NAME.git
#
# Variables (exported by gs_start)
#   GS_ROOT        $TEST_DIR/git: the served repositories (NAME.git) and the
#                  LFS store (lfs-objects/<oid>)
#   GS_PORT GS_URL https://127.0.0.1:$GS_PORT (http:// with --http)
#   GS_TOKEN       the current token (ghs_ + 36 hex); GS_TOKEN_FILE holds it
#   GS_CA          the throwaway self-signed certificate (EC P-256, SAN
#                  IP:127.0.0.1 and DNS:localhost, 7 days), mode 0644 under
#                  0755 directories so the sandbox user can read it; empty
#                  with --http
#   GS_LOG         one JSON line per request (never a password)
#   GS_OUT         the server's stderr (http-backend's messages too)
#   GS_PID         the server process (a session leader; each CGI runs in a
#                  process group of its own, killed when its client goes
#                  away; the server reaps what that orphans)
#   GS_TOKEN_FILE  $TEST_DIR/git-token (0600)
#   GS_LFS_OID     set by gs_add_lfs_file
#
# Using it from an sshbox job spec: sandboxes run on this machine, so they
# reach the server at $GS_URL, but their git must trust the CA — put it in
# the job's env, which sshbox applies to its git commands too:
#	{"prompt": "...",
#	 "repo": {"url": "'"$GS_URL"'/app.git", "token": "'"$GS_TOKEN"'",
#	          "ref": "main", "submodules": true, "lfs": true},
#	 "env": {"GIT_SSL_CAINFO": "'"$GS_CA"'"}}
# With tests/sshbox-env.sh: SB_SPEC_ENV=",\"GIT_SSL_CAINFO\":\"$GS_CA\"" and
# sb_spec PROMPT ",\"repo\":{\"url\":\"$GS_URL/app.git\",\"token\":\"$GS_TOKEN\"}".
# sshbox refuses a token over http://, hence TLS.  git and git-lfs both
# honour GIT_SSL_CAINFO (git-lfs also http.sslCAInfo); checked as the
# sandbox user: clone, submodule, LFS smudge and a push from the job.
#
# Pitfalls
#   - gs_start registers gs_stop with test_atexit and exports variables:
#     call it in the test shell itself, not in $(...) or a pipeline.
#   - The submodule URL holds the port, so commit ids of a repository with a
#     submodule differ from run to run; gs_make_repo's alone do not.
#   - git-lfs stores `lfs.<url>.access = basic` in a clone's .git/config
#     after its first 401 (a mode, not a secret).
#   - The first request of every git command is unauthenticated and gets a
#     401 (as on GitHub), and git-lfs does the same once per URL (batch, each
#     /lfs/<oid>, verify): count auth_ok:false lines with that in mind.
#   - The job's env reaches the sandbox's git: sb_spec's HTTPS_PROXY (the
#     fake API, which answers CONNECT with 403) is bypassed only because its
#     NO_PROXY lists 127.0.0.1 — keep it that way, and use 127.0.0.1 in URLs
#     (the certificate also names localhost, NO_PROXY too).
#   - A refused request's body reads "authentication required", which git
#     shows as "remote: authentication required" before "fatal:
#     Authentication failed for '<url>/'".
#   - GS_TOKEN changes with gs_set_token (and with every gs_start): build job
#     specs after it.  A token is never whitespace (the file is stripped).

[ -n "${TEST_DIR-}" ] || { echo "tests/gitrepos.sh: source tests/lib.sh first" >&2; exit 1; }

_GS_PY=/usr/bin/python3
export GS_ROOT=$TEST_DIR/git
_GS_DIR=$TEST_DIR/gs
_GS_LAUNCHER=

# The credential helper: a shell function git runs with `sh -c`; the token is
# read from the environment when git asks, so it is in no argv and no file.
# shellcheck disable=SC2016
_GS_CRED_HELPER='!f() { test "$1" = get || return 0; echo username=x-access-token; echo "password=${GS_TOKEN-}"; }; f'

_gs_err() { echo "gitrepos: error: $*" >&2; }

_gs_ident() {
	GIT_AUTHOR_NAME='sshbox test' GIT_AUTHOR_EMAIL=test@example.invalid \
	GIT_COMMITTER_NAME='sshbox test' GIT_COMMITTER_EMAIL=test@example.invalid \
		"$@"
}

_gs_check_name() {
	[[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$ && $1 != *.git && $1 != *..* ]] ||
		{ _gs_err "bad repository name '$1' (letters, digits, . _ - and /; no .git suffix)"; return 1; }
}

_gs_random_hex() {
	od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
}

# --- the server ---------------------------------------------------------------

# The server process we started: alive, not a zombie, and running our
# gitserver.py with our port file (a recycled PID is never signalled).
_gs_alive() {
	local stat
	[ -n "$1" ] || return 1
	read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

_gs_is_ours() {
	local pid=$1 cmd
	_gs_alive "$pid" || return 1
	cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
	case $cmd in
	*gitserver.py*"--port-file $_GS_DIR/port "*) return 0 ;;
	esac
	return 1
}

_gs_make_cert() {
	local d=$_GS_DIR/tls
	[ -s "$d/cert.pem" ] && [ -s "$d/key.pem" ] && return 0
	mkdir -p "$d" && chmod 0755 "$d" || return 1
	(umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
		-nodes -days 7 -subj "/CN=sshbox-test gitserver" \
		-addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
		-keyout "$d/key.pem" -out "$d/cert.pem") >"$d/openssl.out" 2>&1 || {
		_gs_err "openssl could not make the test certificate:"
		cat "$d/openssl.out" >&2
		return 1
	}
	chmod 0644 "$d/cert.pem"
}

# shellcheck disable=SC2120
gs_set_token() {
	local tok=${1-}
	[ -n "$tok" ] || tok=ghs_$(_gs_random_hex 18) || return 1
	case $tok in *[[:space:]]*) _gs_err "a token has no white space"; return 1 ;; esac
	mkdir -p "$_GS_DIR" || return 1
	export GS_TOKEN_FILE=$TEST_DIR/git-token
	(umask 077 && printf '%s\n' "$tok" >"$GS_TOKEN_FILE.tmp") &&
		mv -f "$GS_TOKEN_FILE.tmp" "$GS_TOKEN_FILE" || return 1
	export GS_TOKEN=$tok
}

gs_start() {
	local tls=1 i
	case ${1-} in
	--http) tls= ;;
	'') ;;
	*) _gs_err "gs_start [--http]"; return 1 ;;
	esac
	if [ -n "${GS_PID-}" ]; then
		_gs_err "the git server already runs (pid $GS_PID)"
		return 1
	fi
	command -v git >/dev/null && git lfs version >/dev/null 2>&1 ||
		{ _gs_err "git and git-lfs are needed"; return 1; }
	mkdir -p "$GS_ROOT" "$_GS_DIR" && chmod 0755 "$GS_ROOT" "$_GS_DIR" || return 1
	gs_set_token || return 1
	export GS_LOG=$TEST_DIR/gitserver.log GS_OUT=$_GS_DIR/server.out GS_CA=
	local -a tlsargs=()
	if [ -n "$tls" ]; then
		_gs_make_cert || return 1
		GS_CA=$_GS_DIR/tls/cert.pem
		tlsargs=(--tls-cert "$GS_CA" --tls-key "$_GS_DIR/tls/key.pem")
	fi
	rm -f "$_GS_DIR/port" "$_GS_DIR/pid"
	test_atexit gs_stop
	# A session of its own (the CGIs share its process group); fds beyond
	# 2 closed, so nothing holds the script's output pipes open.  It also
	# stops by itself when this shell is gone (--watch-pid).
	"$_GS_PY" "$REPO_ROOT/tests/gitserver.py" --setsid --root "$GS_ROOT" \
		--port-file "$_GS_DIR/port" --pid-file "$_GS_DIR/pid" \
		--token-file "$GS_TOKEN_FILE" --log "$GS_LOG" --watch-pid $$ \
		"${tlsargs[@]}" \
		</dev/null >>"$GS_OUT" 2>&1 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
	_GS_LAUNCHER=$!
	for ((i = 0; i < 200; i++)); do
		if [ -s "$_GS_DIR/port" ] && read -r GS_PORT <"$_GS_DIR/port" &&
			[[ $GS_PORT =~ ^[0-9]+$ ]]; then
			export GS_PID=$_GS_LAUNCHER GS_PORT
			if [ -n "$tls" ]; then
				export GS_URL=https://127.0.0.1:$GS_PORT
			else
				export GS_URL=http://127.0.0.1:$GS_PORT
			fi
			return 0
		fi
		_gs_alive "$_GS_LAUNCHER" || break
		sleep 0.05
	done
	_gs_err "the git server did not start within 10 s; $GS_OUT:"
	tail -n 30 "$GS_OUT" >&2
	GS_PID=$_GS_LAUNCHER
	gs_stop
	return 1
}

gs_stop() {
	local pid=${GS_PID-} i
	[ -n "$pid" ] || return 0
	if _gs_is_ours "$pid"; then
		kill -TERM "$pid" 2>/dev/null
		for ((i = 0; i < 100; i++)); do
			_gs_is_ours "$pid" || break
			sleep 0.05
		done
		if _gs_is_ours "$pid"; then
			_gs_err "the git server (pid $pid) ignored SIGTERM for 5 s: KILL"
			kill -KILL -- "-$pid" 2>/dev/null
			kill -KILL "$pid" 2>/dev/null
		fi
	fi
	# Reap it (our child when started from this shell).
	[ -z "$_GS_LAUNCHER" ] || wait "$_GS_LAUNCHER" 2>/dev/null
	_GS_LAUNCHER=
	export GS_PID=
	return 0
}

# --- repositories ---------------------------------------------------------------

# A fast-import stream on stdout: argv NAME COMMITS BYTES.
# shellcheck disable=SC2016
_GS_FASTIMPORT_PY='
import random, sys
name, n, nbytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
nm = name.encode()
out = sys.stdout.buffer
rnd = random.Random("%s/%d" % (name, n))
ident = b"sshbox test <test@example.invalid>"
T0 = 1700000000
def data(b):
    out.write(b"data %d\n" % len(b)); out.write(b); out.write(b"\n")
def head(ref, mark, t, msg, parent):
    out.write(b"commit %s\nmark :%d\n" % (ref, mark))
    out.write(b"author %s %d +0000\ncommitter %s %d +0000\n" % (ident, t, ident, t))
    data(msg)
    if parent:
        out.write(b"from :%d\n" % parent)
for i in range(1, n + 1):
    head(b"refs/heads/main", i, T0 + 60 * i, b"%s: commit %d\n" % (nm, i), i - 1)
    if i == 1:
        out.write(b"M 100644 inline README.md\n")
        data(b"# %s\n\nA test repository served by tests/gitserver.py.\n" % nm)
    out.write(b"M 100644 inline src/f%02d.txt\n" % (i % 50))
    data(b"%s %d\n" % (nm, i))
    if nbytes:
        out.write(b"M 100644 inline blobs/b%02d.bin\n" % (i % 20))
        data(rnd.randbytes(nbytes))
    out.write(b"\n")
base = max(1, n // 2)
head(b"refs/heads/feature", n + 1, T0 + 60 * base + 30, b"%s: feature\n" % nm, base)
out.write(b"M 100644 inline feature.txt\n")
data(b"feature of %s\n" % nm)
out.write(b"\n")
out.write(b"tag v1.0\nfrom :%d\ntagger %s %d +0000\n" % (base, ident, T0 + 60 * base + 40))
data(b"%s v1.0\n" % nm)
out.write(b"done\n")
'

gs_make_repo() {
	local name=${1-} n=${2:-300} bytes=${3:-0} dir
	_gs_check_name "$name" || return 1
	[[ $n =~ ^[1-9][0-9]*$ && $bytes =~ ^[0-9]+$ ]] ||
		{ _gs_err "gs_make_repo NAME [COMMITS>0] [BYTES]"; return 1; }
	dir=$GS_ROOT/$name.git
	[ ! -e "$dir" ] || { _gs_err "$dir exists"; return 1; }
	mkdir -p "$(dirname "$dir")" &&
		git init -q --bare -b main "$dir" &&
		git -C "$dir" config http.receivepack true &&
		git -C "$dir" config uploadpack.allowFilter true &&
		git -C "$dir" config uploadpack.allowReachableSHA1InWant true || return 1
	"$_GS_PY" -c "$_GS_FASTIMPORT_PY" "$name" "$n" "$bytes" |
		git -C "$dir" fast-import --quiet --done
	local rc=("${PIPESTATUS[@]}")
	[ "${rc[0]}" -eq 0 ] && [ "${rc[1]}" -eq 0 ] ||
		{ _gs_err "fast-import of $name failed (${rc[*]})"; return 1; }
}

gs_add_submodule() {
	local name=${1-} sub=${2-} path=${3:-sub} dir subdir old sha idx gm blob tree commit rc
	_gs_check_name "$name" && _gs_check_name "$sub" || return 1
	[ -n "${GS_URL-}" ] || { _gs_err "gs_add_submodule needs GS_URL: gs_start first"; return 1; }
	dir=$GS_ROOT/$name.git subdir=$GS_ROOT/$sub.git
	[ -d "$dir" ] || { _gs_err "no repository $dir"; return 1; }
	[ -d "$subdir" ] || gs_make_repo "$sub" "${GS_SUB_COMMITS:-5}" || return 1
	sha=$(git -C "$subdir" rev-parse --verify -q "refs/heads/main^{commit}") &&
		old=$(git -C "$dir" rev-parse --verify -q refs/heads/main) ||
		{ _gs_err "no main in $dir or $subdir"; return 1; }
	mkdir -p "$_GS_DIR" || return 1
	idx=$_GS_DIR/index.$$.$RANDOM gm=$_GS_DIR/gitmodules.$$.$RANDOM
	GIT_INDEX_FILE=$idx git -C "$dir" read-tree "$old" &&
		{ git -C "$dir" cat-file blob "$old:.gitmodules" >"$gm" 2>/dev/null || : >"$gm"; } &&
		git config -f "$gm" "submodule.$path.path" "$path" &&
		git config -f "$gm" "submodule.$path.url" "$GS_URL/$sub.git" &&
		blob=$(git -C "$dir" hash-object -w "$gm") &&
		GIT_INDEX_FILE=$idx git -C "$dir" update-index --add \
			--cacheinfo "100644,$blob,.gitmodules" --cacheinfo "160000,$sha,$path" &&
		tree=$(GIT_INDEX_FILE=$idx git -C "$dir" write-tree) &&
		commit=$(_gs_ident git -C "$dir" commit-tree "$tree" -p "$old" -m "Add submodule $path ($sub)") &&
		git -C "$dir" update-ref refs/heads/main "$commit" "$old"
	rc=$?
	rm -f "$idx" "$gm"
	return $rc
}

gs_add_lfs_file() {
	local name=${1-} path=${2-} content=${3-} wd oid rc
	[ $# -eq 3 ] || { _gs_err "gs_add_lfs_file NAME PATH CONTENT"; return 1; }
	_gs_check_name "$name" || return 1
	case /$path/ in
	*/../*|*/./*|//*|*//*) _gs_err "bad path '$path'"; return 1 ;;
	esac
	[ -n "${GS_PID-}" ] || { _gs_err "gs_add_lfs_file needs the server: gs_start first"; return 1; }
	oid=$(printf '%s' "$content" | sha256sum) || return 1
	oid=${oid%% *}
	wd=$(mktemp -d "$_GS_DIR/lfswork.XXXXXX") || return 1
	GIT_LFS_SKIP_SMUDGE=1 gs_git clone -q "$GS_URL/$name.git" "$wd/w" &&
		gs_git -C "$wd/w" lfs track --filename "$path" >/dev/null &&
		mkdir -p "$(dirname "$wd/w/$path")" &&
		printf '%s' "$content" >"$wd/w/$path" &&
		gs_git -C "$wd/w" add .gitattributes "$path" &&
		gs_git -C "$wd/w" commit -q -m "Add $path (Git LFS)" &&
		gs_git -C "$wd/w" cat-file blob "HEAD:$path" | grep -qx "oid sha256:$oid" &&
		gs_git -C "$wd/w" lfs push --object-id origin "$oid" >"$wd/lfs-push.out" 2>&1 &&
		gs_git -C "$wd/w" -c lfs.locksverify=false push -q origin HEAD:refs/heads/main \
			>>"$wd/lfs-push.out" 2>&1 &&
		test -f "$GS_ROOT/lfs-objects/$oid"
	rc=$?
	[ "$rc" -eq 0 ] || { _gs_err "gs_add_lfs_file $name $path failed"; cat "$wd/lfs-push.out" >&2 2>/dev/null; }
	rm -rf "$wd"
	[ "$rc" -eq 0 ] && export GS_LFS_OID=$oid
	return $rc
}

# --- clients --------------------------------------------------------------------

gs_git() {
	local -x GIT_TERMINAL_PROMPT=0 GIT_ASKPASS='' SSH_ASKPASS='' \
		GIT_HTTP_LOW_SPEED_LIMIT=1 GIT_HTTP_LOW_SPEED_TIME=30 \
		GIT_CONFIG_COUNT=10 \
		GIT_CONFIG_KEY_0=credential.helper GIT_CONFIG_VALUE_0='' \
		GIT_CONFIG_KEY_1=credential.helper GIT_CONFIG_VALUE_1="$_GS_CRED_HELPER" \
		GIT_CONFIG_KEY_2=filter.lfs.clean GIT_CONFIG_VALUE_2='git-lfs clean -- %f' \
		GIT_CONFIG_KEY_3=filter.lfs.smudge GIT_CONFIG_VALUE_3='git-lfs smudge -- %f' \
		GIT_CONFIG_KEY_4=filter.lfs.process GIT_CONFIG_VALUE_4='git-lfs filter-process' \
		GIT_CONFIG_KEY_5=filter.lfs.required GIT_CONFIG_VALUE_5=true \
		GIT_CONFIG_KEY_6=user.name GIT_CONFIG_VALUE_6='sshbox test' \
		GIT_CONFIG_KEY_7=user.email GIT_CONFIG_VALUE_7=test@example.invalid \
		GIT_CONFIG_KEY_8=init.defaultBranch GIT_CONFIG_VALUE_8=main \
		GIT_CONFIG_KEY_9=advice.detachedHead GIT_CONFIG_VALUE_9=false
	# Only the environment variable, as a sandbox gets it from the job's env.
	[ -z "${GS_CA-}" ] || local -x GIT_SSL_CAINFO="$GS_CA"
	git -c protocol.version=2 "$@"
}

gs_curl() {
	local auth=1
	[ "${1-}" != --no-auth ] || { auth=; shift; }
	local -a ca=()
	[ -z "${GS_CA-}" ] || ca=(--cacert "$GS_CA")
	if [ -n "$auth" ]; then
		# The config comes through a pipe (printf is a builtin): the token is
		# in no argv, and stdin stays free for the request body (-d @-).
		curl -sS --max-time 20 "${ca[@]}" \
			-K <(printf 'user = "x-access-token:%s"\n' "${GS_TOKEN-}") "$@"
	else
		curl -sS --max-time 20 "${ca[@]}" "$@"
	fi
}

gs_url() {
	_gs_check_name "${1-}" || return 1
	echo "$GS_URL/$1.git"
}
