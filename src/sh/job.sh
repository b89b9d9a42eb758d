# shellcheck shell=bash
# The job script: what the sandbox runs for each job (the contract is
# src/remote.h and docs/remote-protocol.md).
#
# Embedded into sshbox by scripts/embed-sh.sh: only the `#@part NAME`
# sections are sent, each as the constant sh_job_NAME, without their comment
# lines (a line whose first non-blank character is #), so a comment costs
# the sandbox nothing to parse.  remote_script() sends, on the session's
# stdin, its parameters as shell assignments, then `setup`, then `repo` when
# the job has a repository, then `run`.
#
# Rules it keeps (docs/remote-protocol.md has the contract):
# - kill first, write afterwards: SIGPIPE is ignored, so a write to a dead
#   session fails (EPIPE) instead of killing the script before it cleaned
#   up; an EXIT trap cleans up anyway.  Claude Code gets SIGPIPE back;
# - the job's env values exist only in the subshell that execs Claude Code,
#   never in this shell (a job variable named PATH, IFS or sb_pid must not
#   change how the watchdog runs); tools are resolved to absolute paths
#   before that;
# - secrets only in variables and Claude Code's environment, never in argv
#   or files; the prompt reaches it through a pipe from a builtin printf;
# - the slot's flock fd is closed for the job: a daemon it leaves behind
#   must not hold the slot's lock;
# - few processes: each fork+exec costs about a millisecond, and a no-op
#   job's whole budget is a few of them (bench/dispatch.sh).  Blobs are read
#   with `read -N`, markers are builtin printfs, directories are made in one
#   mkdir, and no process polls: the script waits for Claude Code while a
#   forked watchdog blocks on the session's input;
# - empty arrays are expanded as ${a[@]+"${a[@]}"} (bash < 4.4 and set -u).
#
# The end line: every `sshbox-end` goes through sb_end, whose reason is
# always a literal word at the call (`sb_end RC word`), or, for the job's
# own end, one of the watchdog's `sb_why=word`.  tests/unit/test_remote.c
# reads these forms to check the words against REMOTE_WHY_LIST.

# The parameters, as remote_script() prepends them (values quoted by
# remote_quote; not embedded: this is for shellcheck and the reader).
sb_nonce='hex, per job'
sb_job='the job id'
sb_work='/the/sandbox/workdir'
sb_slot=0
sb_fence=0
sb_timeout=0              # seconds: the remote backstop
sb_hb=0                   # seconds without a heartbeat that stop the job
sb_have_token=0           # 1: a git token follows the env values on stdin
sb_claude='claude'        # command or path of Claude Code
sb_repo_url=''            # empty: no repository (and no `repo` part)
sb_repo_ref=''            # empty: the remote's default branch
sb_repo_origin=''         # scheme://host[:port]: the token's scope
sb_repo_key=''            # <account>/<digest>-<name>: the cache under repos/
sb_repo_sha=0             # 1: the ref is a full commit id
sb_repo_lfs=0
sb_repo_submodules=0
sb_slotkey='account@host.0'
sb_envnames=( 'NAME' )    # the job's env names; values come on stdin
sb_args=( '--flag' )      # claude_args

#@part setup
set -u
umask 077
trap '' PIPE
# byte counts: LC_ALL=C makes read -N and ${#} count bytes, not characters
sb_read() { local n; IFS= read -r n || exit 97; case $n in (*[!0-9]*|"") exit 98;; esac
  REPLY=; if [ "$n" -gt 0 ]; then local LC_ALL=C; IFS= read -r -N "$n" REPLY || exit 99; [ "${#REPLY}" -eq "$n" ] || exit 99; fi; }
sb_read; sb_prompt=$REPLY
# one value per name, in the names' order
sb_vals=(); for _ in ${sb_envnames[@]+"${sb_envnames[@]}"}; do sb_read; sb_vals+=("$REPLY"); done
sb_token=; if [ "$sb_have_token" = 1 ]; then sb_read; sb_token=$REPLY; fi
# shellcheck disable=SC2059  # the callers' first argument is the format, always a literal
sb_say() { printf "$@" 2>/dev/null; }
sb_say 'sshbox-begin %s\n' "$sb_nonce"
sb_dir=; sb_aux=; sb_pid=; sb_wd=
sb_cleanup() { cd / 2>/dev/null; if [ -n "$sb_wd" ]; then kill -KILL "$sb_wd" 2>/dev/null; sb_wd=; fi
  if [ -n "$sb_dir" ]; then rm -rf -- "$sb_dir" "$sb_aux" 2>/dev/null; fi; sb_dir=; }
trap sb_cleanup EXIT
sb_end() { sb_cleanup; sb_say '\nsshbox-end %s %s %s\n' "$sb_nonce" "$1" "$2"; exit 0; }
sb_err() { echo "sshbox: $*" >&2 2>/dev/null; }
# bash >= 5 has the clock built in: no fork on the job's start path
sb_ms() { if [ -n "${EPOCHREALTIME-}" ]; then local t=${EPOCHREALTIME/[.,]/}; REPLY=$((t / 1000)); else REPLY=$(date +%s%3N); fi; }
# command -v without the $(...) fork: an executable file on PATH
sb_which() { local d IFS=:; case $1 in (*/*) REPLY=$1; [ -f "$1" ] && [ -x "$1" ]; return;; esac
  set -f; for d in $PATH; do REPLY=${d:-.}/$1; if [ -f "$REPLY" ] && [ -x "$REPLY" ]; then set +f; return 0; fi; done; set +f; return 1; }
if [ ! -d "$sb_work/jobs" ] || [ ! -d "$sb_work/slots" ]; then
  mkdir -p -- "$sb_work/jobs" "$sb_work/slots" 2>/dev/null || { sb_err "cannot create $sb_work/jobs"; sb_end 1 workdir; }
fi
# fencing: a lower fence never starts over a higher one
sb_slotf=$sb_work/slots/$sb_slotkey
exec 8>"$sb_slotf.lock" || sb_end 1 workdir
flock -w 30 8 || { sb_err "slot $sb_slot is still locked by a process of an earlier job"; sb_end 1 busy; }
sb_cur=0; [ -r "$sb_slotf.fence" ] && read -r sb_cur < "$sb_slotf.fence"
case $sb_cur in (*[!0-9]*|"") sb_cur=0;; esac
if [ "$sb_cur" -gt "$sb_fence" ]; then sb_err "slot $sb_slot already ran fence $sb_cur > $sb_fence"; sb_end 1 fenced; fi
# A previous holder of this slot whose lease is gone: stop its group
# (.pgid names the last holder's group and fence; it is left in place
# when a job ends, so this runs on every start).  Only a group that
# still exists and has a process carrying SSHBOX_FENCE=<its fence> is
# that holder's: the pid may name a new group by now.  The /proc walk
# is builtins only and runs only when the group exists.
sb_member() { local f l e q
  for f in /proc/[0-9]*/stat; do { IFS= read -r l < "$f"; } 2>/dev/null || continue
    l=${l##*) }; l=${l#* }; l=${l#* }; [ "${l%% *}" = "$1" ] || continue
    q=${f%/stat}; while IFS= read -r -d '' e; do [ "$e" = "SSHBOX_FENCE=$2" ] && return 0; done 2>/dev/null < "$q/environ"
  done; return 1; }
if [ -s "$sb_slotf.pgid" ]; then read -r sb_old sb_oldf < "$sb_slotf.pgid"
  case ${sb_old:-x}/${sb_oldf:-x} in (*[!0-9/]*) ;; (*)
    if kill -0 -- "-$sb_old" 2>/dev/null && sb_member "$sb_old" "$sb_oldf"; then kill -KILL -- "-$sb_old" 2>/dev/null; fi;;
  esac; fi
# written in place under the flock (no rename: a reader also holds the
# flock); only a crash of the machine could tear it, and that ends
# every older holder as well
printf '%s\n' "$sb_fence" > "$sb_slotf.fence" || sb_end 1 workdir
# Claude Code keeps a transcript (with the prompt) under its config dir
# and scratch files under TMPDIR: both live beside the job dir and go
# with it, unless the job's env chose otherwise.
sb_dir=$sb_work/jobs/$sb_job; sb_aux=$sb_work/jobs/.$sb_job
if [ -e "$sb_dir" ] || [ -L "$sb_dir" ] || [ -e "$sb_aux" ] || [ -L "$sb_aux" ]; then rm -rf -- "$sb_dir" "$sb_aux"; fi
mkdir -- "$sb_dir" "$sb_aux" "$sb_aux/claude" "$sb_aux/tmp" || sb_end 1 jobdir
# the job's env (e.g. GIT_SSL_CAINFO) applies to git too, in a subshell
sb_assign=(); for sb_i in ${sb_envnames[@]+"${!sb_envnames[@]}"}; do sb_assign+=("${sb_envnames[$sb_i]}=${sb_vals[$sb_i]}"); done
if [ -n "$sb_token" ]; then sb_assign+=("GH_TOKEN=$sb_token"); fi

#@part repo
# The repository step, sent only with a repo (bash parses what it is sent:
# half the script, 0.3 ms of every job without one).
if [ -n "$sb_repo_url" ]; then
  sb_ms; sb_t0=$REPLY
  export GIT_TERMINAL_PROMPT=0 GIT_ASKPASS=/bin/false SSH_ASKPASS=/bin/false
  # the token answers only for the repository's own origin, from the
  # environment: never in a URL, an argv or a config file
  # shellcheck disable=SC2016  # expanded by the shell git runs the helper with, not here
  sb_cred='!f() { test "$1" = get || return 0; echo username=x-access-token; echo "password=$SSHBOX_GIT_TOKEN"; }; f'
  # git's stderr is kept (in the job's private dir) to name the cause
  # of a failure, then passed on as it was
  sb_gerr=$sb_aux/git.err
  sb_git() { local rc; ( if [ "${#sb_assign[@]}" -gt 0 ]; then export -- "${sb_assign[@]}"; fi
    SSHBOX_GIT_TOKEN=$sb_token exec git -c credential.helper= -c "credential.$sb_repo_origin.helper=$sb_cred" \
      -c gc.auto=0 -c maintenance.auto=false -c advice.detachedHead=false -c http.lowSpeedLimit=1 -c http.lowSpeedTime=60 "$@" ) </dev/null >&2 2>"$sb_gerr"
    rc=$?; if [ -s "$sb_gerr" ]; then cat -- "$sb_gerr" >&2 2>/dev/null; fi; return $rc; }
  # After a git failure: ends the job with one word for the usual causes
  # (messages of git 2.x and libcurl); returns for any other, and the
  # caller ends the job with the word for its step.
  sb_gitwhy() { local e; e=$(cat -- "$sb_gerr" 2>/dev/null)
    case $e in
    (*'Authentication failed'*|*'could not read Username'*|*'could not read Password'*|*'terminal prompts disabled'*|*'returned error: 401'*|*'returned error: 403'*) sb_end 1 repo-auth;;
    (*'SSL certificate problem'*|*'certificate verification failed'*|*'unable to get local issuer'*|*'SSL: no alternative certificate'*) sb_end 1 repo-tls;;
    (*'Could not resolve host'*|*'Failed to connect'*|*'Connection refused'*|*'Connection timed out'*|*'Couldn'\''t connect'*|*'Network is unreachable'*|*'Operation too slow'*) sb_end 1 repo-unreachable;;
    # not a bare "not found": "git-lfs: not found" is no missing repository
    (*'Repository not found'*|*"repository '"*"' not found"*|*'returned error: 404'*|*'does not appear to be a git repository'*) sb_end 1 repo-not-found;;
    esac; }
  # one cache per account and repository: a commit fetched with one
  # account's token is never handed to another account
  sb_cache=$sb_work/repos/$sb_repo_key.git; sb_act=reuse
  mkdir -p -- "${sb_cache%/*}" || sb_end 1 workdir
  exec 7>"$sb_cache.lock" || sb_end 1 workdir
  # fast path: an exact commit already in the cache needs no lock, no network
  if [ "$sb_repo_sha" = 1 ] && git -C "$sb_cache" cat-file -e "$sb_repo_ref^{commit}" 2>/dev/null; then :
  else
    sb_ms; sb_asked=$REPLY
    flock -w 600 7 || { sb_err "the repository cache $sb_cache stayed locked for 600 s"; sb_end 1 cache-locked; }
    # a fetch that another job began after this one asked for the lock is
    # as fresh as ours would be: jobs that queued on the lock share it
    sb_prev=0; [ -r "$sb_cache.fetched" ] && read -r sb_prev < "$sb_cache.fetched"
    case $sb_prev in (*[!0-9]*|"") sb_prev=0;; esac; sb_ms
    if [ -d "$sb_cache" ] && [ "$sb_prev" -gt "$sb_asked" ] && [ "$sb_prev" -le "$REPLY" ]; then :
    elif [ -d "$sb_cache" ]; then
      sb_act=fetch; sb_fstart=$REPLY
      if sb_git -C "$sb_cache" fetch --quiet --prune origin; then printf '%s\n' "$sb_fstart" > "$sb_cache.fetched"
      else
        # the remote answers but our fetch failed: the cache is broken
        mv -f -- "$sb_gerr" "$sb_gerr.fetch"
        if sb_git ls-remote --quiet -- "$sb_repo_url" HEAD >/dev/null 2>&1 && ! git -C "$sb_cache" fsck --connectivity-only >/dev/null 2>&1; then
          sb_err "repository cache $sb_cache is corrupt: cloning it again"; rm -rf -- "$sb_cache"
        else mv -f -- "$sb_gerr.fetch" "$sb_gerr"; sb_gitwhy; sb_end 1 clone; fi
      fi
    fi
    if [ ! -d "$sb_cache" ]; then
      sb_act=clone; rm -rf -- "$sb_cache.tmp"; sb_ms; sb_fstart=$REPLY
      # branches and tags only: a mirror of a GitHub repository would also
      # fetch the head of every pull request (refs/pull/)
      # shellcheck disable=SC2015  # any failure of the chain, mv's included, leaves no half-made cache
      sb_git clone --quiet --bare -- "$sb_repo_url" "$sb_cache.tmp" && git -C "$sb_cache.tmp" config gc.auto 0 &&
        git -C "$sb_cache.tmp" config remote.origin.fetch '+refs/heads/*:refs/heads/*' &&
        git -C "$sb_cache.tmp" config --add remote.origin.fetch '+refs/tags/*:refs/tags/*' &&
        mv -- "$sb_cache.tmp" "$sb_cache" || { rm -rf -- "$sb_cache.tmp"; sb_gitwhy; sb_end 1 clone; }
      printf '%s\n' "$sb_fstart" > "$sb_cache.fetched"
    fi
    # a commit no branch or tag holds (a pull request's head): asked for
    # by id (GitHub allows any reachable one); kept, since gc is off
    if [ "$sb_repo_sha" = 1 ] && ! git -C "$sb_cache" cat-file -e "$sb_repo_ref^{commit}" 2>/dev/null; then
      sb_git -C "$sb_cache" fetch --quiet origin "$sb_repo_ref" 2>/dev/null || :
    fi
  fi
  exec 7>&-
  # the job's checkout borrows the cache's objects (alternates): no history copied
  sb_git clone --quiet --shared --no-checkout -- "$sb_cache" "$sb_dir" || sb_end 1 clone
  git -C "$sb_dir" remote set-url origin "$sb_repo_url" || sb_end 1 clone
  # shellcheck disable=SC2016  # expanded by the shell git runs the helper with, not here
  if [ -n "$sb_token" ]; then git -C "$sb_dir" config "credential.$sb_repo_origin.helper" \
    '!f() { test "$1" = get || return 0; echo username=x-access-token; echo "password=$GH_TOKEN"; }; f'; fi
  if [ "$sb_repo_lfs" = 1 ]; then sb_lfs=(-c filter.lfs.smudge='git-lfs smudge -- %f' -c filter.lfs.process='git-lfs filter-process' -c filter.lfs.required=true)
  else sb_lfs=(-c filter.lfs.smudge= -c filter.lfs.process= -c filter.lfs.required=false); fi
  if [ -z "$sb_repo_ref" ]; then sb_co=(checkout --quiet -f)
  elif git -C "$sb_dir" rev-parse --verify -q "refs/remotes/origin/$sb_repo_ref^{commit}" >/dev/null; then sb_co=(checkout --quiet -f -B "$sb_repo_ref" "refs/remotes/origin/$sb_repo_ref")
  elif git -C "$sb_dir" rev-parse --verify -q "$sb_repo_ref^{commit}" >/dev/null; then sb_co=(checkout --quiet -f --detach "$sb_repo_ref")
  else sb_err "unknown ref '$sb_repo_ref' in $sb_repo_url"; sb_end 1 unknown-ref; fi
  sb_git -C "$sb_dir" "${sb_lfs[@]}" "${sb_co[@]}" -- || { sb_gitwhy; sb_end 1 checkout; }
  if [ "$sb_repo_submodules" = 1 ]; then sb_git -C "$sb_dir" "${sb_lfs[@]}" submodule update --quiet --init --recursive || { sb_gitwhy; sb_end 1 submodules; }; fi
  # LFS stays on in the checkout: a commit of a tracked file stores a
  # pointer and `git push` uploads the object (the pre-push hook)
  if [ "$sb_repo_lfs" = 1 ]; then git -C "$sb_dir" lfs install --local >/dev/null 2>&1 || { sb_err 'git lfs install --local failed in the checkout'; sb_end 1 checkout; }; fi
  sb_ms; sb_say 'sshbox-repo %s %s %s\n' "$sb_nonce" "$sb_act" "$((REPLY - sb_t0))"
fi

#@part run
# Claude Code, the watchdog and the end
cd -- "$sb_dir" || sb_end 1 jobdir
if ! sb_which "$sb_claude"; then sb_err "Claude Code executable '$sb_claude' not found on the sandbox"; sb_end 127 claude-missing; fi; sb_cl=$REPLY
# set -m gives the job a process group of its own (pgid = its pid): the
# watchdog and the slot's next holder stop all of it with one kill
set -m
( trap - PIPE; set -- "$sb_cl" -p --output-format stream-json --verbose ${sb_args[@]+"${sb_args[@]}"}
  exec 0< <(printf '%s' "$sb_prompt") 8>&-
  unset CLAUDECODE; for sb_v in ${!CLAUDE_CODE_@}; do unset "$sb_v"; done
  export IS_SANDBOX=1 SSHBOX_JOB="$sb_job" SSHBOX_FENCE="$sb_fence" CLAUDE_CONFIG_DIR="$sb_aux/claude" TMPDIR="$sb_aux/tmp"
  if [ "${#sb_assign[@]}" -gt 0 ]; then export -- "${sb_assign[@]}"; fi
  exec "$@" ) &
sb_pid=$!
set +m
sb_prompt=; sb_vals=(); sb_token=; sb_assign=()
printf '%s %s\n' "$sb_pid" "$sb_fence" > "$sb_slotf.pgid"
exec 8>&-
sb_say 'sshbox-started %s %s\n' "$sb_nonce" "$sb_dir"
# The watchdog: a fork blocked on the session's input, so the script
# itself can wait for Claude Code and see its exit at once (bash's read
# cannot be woken by a child's exit: a script that read and polled
# every 20 ms ended a no-op job 10 ms late on average).  On `cancel`,
# EOF, half a lease without a heartbeat, or the backstop timeout it
# stops the job's group (TERM, 2 s, KILL) and tells why in its exit
# status, also when the script, done waiting, TERMs it mid-way.
( sb_end_s=$((SECONDS + sb_timeout)); sb_w=12
  while :; do sb_t=$((sb_end_s - SECONDS)); if [ "$sb_t" -le 0 ]; then sb_w=13; break; fi
    if [ "$sb_t" -gt "$sb_hb" ]; then sb_t=$sb_hb; fi
    IFS= read -r -t "$sb_t" sb_l; sb_st=$?
    if [ $sb_st -eq 0 ]; then if [ "$sb_l" = cancel ]; then sb_w=10; break; fi; continue; fi
    if [ $sb_st -gt 128 ]; then if [ $SECONDS -lt $sb_end_s ]; then sb_w=11; break; fi; continue; fi
    break
  done
  trap 'exit $sb_w' TERM; kill -TERM -- "-$sb_pid" 2>/dev/null
  for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 -- "-$sb_pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL -- "-$sb_pid" 2>/dev/null; exit $sb_w ) <&0 &
sb_wd=$!
wait "$sb_pid"; sb_rc=$?
kill -TERM "$sb_wd" 2>/dev/null; wait "$sb_wd"; sb_st=$?; sb_wd=
# the watchdog's exit status names the end (sb_why=word: the unit test reads
# these); shellcheck mistakes the word exit for a command
# shellcheck disable=SC2209
case $sb_st in (10) sb_why=cancel;; (11) sb_why=heartbeat;; (12) sb_why=eof;; (13) sb_why=timeout;; (*) sb_why=exit;; esac
kill -KILL -- "-$sb_pid" 2>/dev/null
sb_end "$sb_rc" "$sb_why"
