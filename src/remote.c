#include "remote.h"

#include <stdio.h>
#include <string.h>

#include "err.h"

/* Reads "<len>\n<script>" byte-exactly and evaluates the script.  bash's
 * read stops at the newline on a pipe, and read -N under LC_ALL=C takes
 * exactly <len> bytes (no head -c, no $(...): two processes fewer). */
static const char bootstrap[] =
	"exec /bin/bash -c 'IFS= read -r n || exit 97; case $n in (*[!0-9]*|\"\") exit 98;; esac; "
	"sb_boot() { local LC_ALL=C; IFS= read -r -N \"$n\" s && [ \"${#s}\" -eq \"$n\" ]; }; "
	"sb_boot || exit 99; unset -f sb_boot; eval \"$s\"'";

const char *remote_bootstrap(void)
{
	return bootstrap;
}

int remote_quote(struct buf *out, const char *s)
{
	int r = buf_putc(out, '\'');

	for (; !r && *s; s++)
		r = *s == '\'' ? buf_puts(out, "'\\''") : buf_putc(out, *s);
	return r ? r : buf_putc(out, '\'');
}

int remote_put_blob(struct buf *out, const char *data, size_t len)
{
	int r = buf_printf(out, "%zu\n", len);

	return r ? r : buf_append(out, data, len);
}

/* The job script.  Rules it keeps (notes/openssh.md §2.5, §4.4):
 * - kill first, write afterwards: SIGPIPE is ignored, so a write to a dead
 *   session fails (EPIPE) instead of killing the script before it cleaned
 *   up; an EXIT trap cleans up anyway.  Claude Code gets SIGPIPE back;
 * - the job's env values exist only in the subshell that execs Claude Code,
 *   never in this shell (a job variable named PATH, IFS or sb_pid must not
 *   change how the watchdog runs); tools are resolved to absolute paths
 *   before that;
 * - secrets only in variables and Claude Code's environment, never in argv
 *   or files; the prompt reaches it through a pipe from a builtin printf;
 * - the slot's flock fd is closed for the job: a daemon it leaves behind
 *   must not hold the slot's lock;
 * - few processes: each fork+exec costs about a millisecond, and a no-op
 *   job's whole budget is a few of them (bench/dispatch.sh).  Blobs are read
 *   with `read -N`, markers are builtin printfs, directories are made in one
 *   mkdir, and no process polls: the script waits for Claude Code while a
 *   forked watchdog blocks on the session's input;
 * - empty arrays are expanded as ${a[@]+"${a[@]}"} (bash < 4.4 and set -u). */
static const char script_body[] =
	"set -u\n"
	"umask 077\n"
	"trap '' PIPE\n"
	/* byte counts: LC_ALL=C makes read -N and ${#} count bytes, not characters */
	"sb_read() { local n; IFS= read -r n || exit 97; case $n in (*[!0-9]*|\"\") exit 98;; esac\n"
	"  REPLY=; if [ \"$n\" -gt 0 ]; then local LC_ALL=C; IFS= read -r -N \"$n\" REPLY || exit 99; [ \"${#REPLY}\" -eq \"$n\" ] || exit 99; fi; }\n"
	"sb_read; sb_prompt=$REPLY\n"
	"sb_vals=(); for sb_n in ${sb_envnames[@]+\"${sb_envnames[@]}\"}; do sb_read; sb_vals+=(\"$REPLY\"); done\n"
	"sb_token=; if [ \"$sb_have_token\" = 1 ]; then sb_read; sb_token=$REPLY; fi\n"
	"sb_say() { printf \"$@\" 2>/dev/null; }\n"
	"sb_say 'sshbox-begin %s\\n' \"$sb_nonce\"\n"
	"sb_dir=; sb_aux=; sb_pid=; sb_wd=\n"
	"sb_cleanup() { cd / 2>/dev/null; if [ -n \"$sb_wd\" ]; then kill -KILL \"$sb_wd\" 2>/dev/null; sb_wd=; fi\n"
	"  if [ -n \"$sb_dir\" ]; then rm -rf -- \"$sb_dir\" \"$sb_aux\" 2>/dev/null; fi; sb_dir=; }\n"
	"trap sb_cleanup EXIT\n"
	"sb_end() { sb_cleanup; sb_say '\\nsshbox-end %s %s %s\\n' \"$sb_nonce\" \"$1\" \"$2\"; exit 0; }\n"
	"sb_err() { echo \"sshbox: $*\" >&2 2>/dev/null; }\n"
	/* bash >= 5 has the clock built in: no fork on the job's start path */
	"sb_ms() { if [ -n \"${EPOCHREALTIME-}\" ]; then local t=${EPOCHREALTIME/[.,]/}; REPLY=$((t / 1000)); else REPLY=$(date +%s%3N); fi; }\n"
	/* command -v without the $(...) fork: an executable file on PATH */
	"sb_which() { local d IFS=:; case $1 in (*/*) REPLY=$1; [ -f \"$1\" ] && [ -x \"$1\" ]; return;; esac\n"
	"  set -f; for d in $PATH; do REPLY=${d:-.}/$1; if [ -f \"$REPLY\" ] && [ -x \"$REPLY\" ]; then set +f; return 0; fi; done; set +f; return 1; }\n"
	"if [ ! -d \"$sb_work/jobs\" ] || [ ! -d \"$sb_work/slots\" ]; then\n"
	"  mkdir -p -- \"$sb_work/jobs\" \"$sb_work/slots\" 2>/dev/null || { sb_err \"cannot create $sb_work/jobs\"; sb_end 1 workdir; }\n"
	"fi\n"
	/* fencing: a lower fence never starts over a higher one */
	"sb_slotf=$sb_work/slots/$sb_slotkey\n"
	"exec 8>\"$sb_slotf.lock\" || sb_end 1 workdir\n"
	"flock -w 30 8 || { sb_err \"slot $sb_slot is still locked by a process of an earlier job\"; sb_end 1 busy; }\n"
	"sb_cur=0; [ -r \"$sb_slotf.fence\" ] && read -r sb_cur < \"$sb_slotf.fence\"\n"
	"case $sb_cur in (*[!0-9]*|\"\") sb_cur=0;; esac\n"
	"if [ \"$sb_cur\" -gt \"$sb_fence\" ]; then sb_err \"slot $sb_slot already ran fence $sb_cur > $sb_fence\"; sb_end 1 fenced; fi\n"
	/* A previous holder of this slot whose lease is gone: stop its group
	 * (.pgid names the last holder's group and fence; it is left in place
	 * when a job ends, so this runs on every start).  Only a group that
	 * still exists and has a process carrying SSHBOX_FENCE=<its fence> is
	 * that holder's: the pid may name a new group by now.  The /proc walk
	 * is builtins only and runs only when the group exists. */
	"sb_member() { local f l e q\n"
	"  for f in /proc/[0-9]*/stat; do { IFS= read -r l < \"$f\"; } 2>/dev/null || continue\n"
	"    l=${l##*) }; l=${l#* }; l=${l#* }; [ \"${l%% *}\" = \"$1\" ] || continue\n"
	"    q=${f%/stat}; while IFS= read -r -d '' e; do [ \"$e\" = \"SSHBOX_FENCE=$2\" ] && return 0; done 2>/dev/null < \"$q/environ\"\n"
	"  done; return 1; }\n"
	"if [ -s \"$sb_slotf.pgid\" ]; then read -r sb_old sb_oldf < \"$sb_slotf.pgid\"\n"
	"  case ${sb_old:-x}/${sb_oldf:-x} in (*[!0-9/]*) ;; (*)\n"
	"    if kill -0 -- \"-$sb_old\" 2>/dev/null && sb_member \"$sb_old\" \"$sb_oldf\"; then kill -KILL -- \"-$sb_old\" 2>/dev/null; fi;;\n"
	"  esac; fi\n"
	/* written in place under the flock (no rename: a reader also holds the
	 * flock); only a crash of the machine could tear it, and that ends
	 * every older holder as well */
	"printf '%s\\n' \"$sb_fence\" > \"$sb_slotf.fence\" || sb_end 1 workdir\n"
	/* Claude Code keeps a transcript (with the prompt) under its config dir
	 * and scratch files under TMPDIR: both live beside the job dir and go
	 * with it, unless the job's env chose otherwise. */
	"sb_dir=$sb_work/jobs/$sb_job; sb_aux=$sb_work/jobs/.$sb_job\n"
	"if [ -e \"$sb_dir\" ] || [ -L \"$sb_dir\" ] || [ -e \"$sb_aux\" ] || [ -L \"$sb_aux\" ]; then rm -rf -- \"$sb_dir\" \"$sb_aux\"; fi\n"
	"mkdir -- \"$sb_dir\" \"$sb_aux\" \"$sb_aux/claude\" \"$sb_aux/tmp\" || sb_end 1 jobdir\n"
	/* the job's env (e.g. GIT_SSL_CAINFO) applies to git too, in a subshell */
	"sb_assign=(); for sb_i in ${sb_envnames[@]+\"${!sb_envnames[@]}\"}; do sb_assign+=(\"${sb_envnames[$sb_i]}=${sb_vals[$sb_i]}\"); done\n"
	"if [ -n \"$sb_token\" ]; then sb_assign+=(\"GH_TOKEN=$sb_token\"); fi\n";

/* The repository step, sent only with a repo (bash parses what it is sent:
 * half the script, 0.3 ms of every job without one). */
static const char script_repo[] =
	"if [ -n \"$sb_repo_url\" ]; then\n"
	"  sb_ms; sb_t0=$REPLY\n"
	"  export GIT_TERMINAL_PROMPT=0 GIT_ASKPASS=/bin/false SSH_ASKPASS=/bin/false\n"
	/* the token answers only for the repository's own origin, from the
	 * environment: never in a URL, an argv or a config file */
	"  sb_cred='!f() { test \"$1\" = get || return 0; echo username=x-access-token; echo \"password=$SSHBOX_GIT_TOKEN\"; }; f'\n"
	/* git's stderr is kept (in the job's private dir) to name the cause
	 * of a failure, then passed on as it was */
	"  sb_gerr=$sb_aux/git.err\n"
	"  sb_git() { local rc; ( if [ \"${#sb_assign[@]}\" -gt 0 ]; then export -- \"${sb_assign[@]}\"; fi\n"
	"    SSHBOX_GIT_TOKEN=$sb_token exec git -c credential.helper= -c \"credential.$sb_repo_origin.helper=$sb_cred\" \\\n"
	"      -c gc.auto=0 -c maintenance.auto=false -c advice.detachedHead=false -c http.lowSpeedLimit=1 -c http.lowSpeedTime=60 \"$@\" ) </dev/null >&2 2>\"$sb_gerr\"\n"
	"    rc=$?; if [ -s \"$sb_gerr\" ]; then cat -- \"$sb_gerr\" >&2 2>/dev/null; fi; return $rc; }\n"
	/* one sentence for the usual causes (messages of git 2.x and libcurl) */
	"  sb_gitfail() { local e; e=$(cat -- \"$sb_gerr\" 2>/dev/null)\n"
	"    case $e in\n"
	"    (*'Authentication failed'*|*'could not read Username'*|*'could not read Password'*|*'terminal prompts disabled'*|*'returned error: 401'*|*'returned error: 403'*) sb_end 1 repo-auth;;\n"
	"    (*'SSL certificate problem'*|*'certificate verification failed'*|*'unable to get local issuer'*|*'SSL: no alternative certificate'*) sb_end 1 repo-tls;;\n"
	"    (*'Could not resolve host'*|*'Failed to connect'*|*'Connection refused'*|*'Connection timed out'*|*'Couldn'\\''t connect'*|*'Network is unreachable'*|*'Operation too slow'*) sb_end 1 repo-unreachable;;\n"
	/* not a bare "not found": "git-lfs: not found" is no missing repository */
	"    (*'Repository not found'*|*\"repository '\"*\"' not found\"*|*'returned error: 404'*|*'does not appear to be a git repository'*) sb_end 1 repo-not-found;;\n"
	"    esac; sb_end 1 \"$1\"; }\n"
	/* one cache per account and repository: a commit fetched with one
	 * account's token is never handed to another account */
	"  sb_cache=$sb_work/repos/$sb_repo_key.git; sb_act=reuse\n"
	"  mkdir -p -- \"${sb_cache%/*}\" || sb_end 1 workdir\n"
	"  exec 7>\"$sb_cache.lock\" || sb_end 1 workdir\n"
	/* fast path: an exact commit already in the cache needs no lock, no network */
	"  if [ \"$sb_repo_sha\" = 1 ] && git -C \"$sb_cache\" cat-file -e \"$sb_repo_ref^{commit}\" 2>/dev/null; then :\n"
	"  else\n"
	"    sb_ms; sb_asked=$REPLY\n"
	"    flock -w 600 7 || { sb_err \"the repository cache $sb_cache stayed locked for 600 s\"; sb_end 1 cache-locked; }\n"
	/* a fetch that another job began after this one asked for the lock is
	 * as fresh as ours would be: jobs that queued on the lock share it */
	"    sb_prev=0; [ -r \"$sb_cache.fetched\" ] && read -r sb_prev < \"$sb_cache.fetched\"\n"
	"    case $sb_prev in (*[!0-9]*|\"\") sb_prev=0;; esac; sb_ms\n"
	"    if [ -d \"$sb_cache\" ] && [ \"$sb_prev\" -gt \"$sb_asked\" ] && [ \"$sb_prev\" -le \"$REPLY\" ]; then :\n"
	"    elif [ -d \"$sb_cache\" ]; then\n"
	"      sb_act=fetch; sb_fstart=$REPLY\n"
	"      if sb_git -C \"$sb_cache\" fetch --quiet --prune origin; then printf '%s\\n' \"$sb_fstart\" > \"$sb_cache.fetched\"\n"
	"      else\n"
	/* the remote answers but our fetch failed: the cache is broken */
	"        mv -f -- \"$sb_gerr\" \"$sb_gerr.fetch\"\n"
	"        if sb_git ls-remote --quiet -- \"$sb_repo_url\" HEAD >/dev/null 2>&1 && ! git -C \"$sb_cache\" fsck --connectivity-only >/dev/null 2>&1; then\n"
	"          sb_err \"repository cache $sb_cache is corrupt: cloning it again\"; rm -rf -- \"$sb_cache\"\n"
	"        else mv -f -- \"$sb_gerr.fetch\" \"$sb_gerr\"; sb_gitfail clone; fi\n"
	"      fi\n"
	"    fi\n"
	"    if [ ! -d \"$sb_cache\" ]; then\n"
	"      sb_act=clone; rm -rf -- \"$sb_cache.tmp\"; sb_ms; sb_fstart=$REPLY\n"
	/* branches and tags only: a mirror of a GitHub repository would also
	 * fetch the head of every pull request (refs/pull/) */
	"      sb_git clone --quiet --bare -- \"$sb_repo_url\" \"$sb_cache.tmp\" && git -C \"$sb_cache.tmp\" config gc.auto 0 &&\n"
	"        git -C \"$sb_cache.tmp\" config remote.origin.fetch '+refs/heads/*:refs/heads/*' &&\n"
	"        git -C \"$sb_cache.tmp\" config --add remote.origin.fetch '+refs/tags/*:refs/tags/*' &&\n"
	"        mv -- \"$sb_cache.tmp\" \"$sb_cache\" || { rm -rf -- \"$sb_cache.tmp\"; sb_gitfail clone; }\n"
	"      printf '%s\\n' \"$sb_fstart\" > \"$sb_cache.fetched\"\n"
	"    fi\n"
	/* a commit no branch or tag holds (a pull request's head): asked for
	 * by id (GitHub allows any reachable one); kept, since gc is off */
	"    if [ \"$sb_repo_sha\" = 1 ] && ! git -C \"$sb_cache\" cat-file -e \"$sb_repo_ref^{commit}\" 2>/dev/null; then\n"
	"      sb_git -C \"$sb_cache\" fetch --quiet origin \"$sb_repo_ref\" 2>/dev/null || :\n"
	"    fi\n"
	"  fi\n"
	"  exec 7>&-\n"
	/* the job's checkout borrows the cache's objects (alternates): no history copied */
	"  sb_git clone --quiet --shared --no-checkout -- \"$sb_cache\" \"$sb_dir\" || sb_end 1 clone\n"
	"  git -C \"$sb_dir\" remote set-url origin \"$sb_repo_url\" || sb_end 1 clone\n"
	"  if [ -n \"$sb_token\" ]; then git -C \"$sb_dir\" config \"credential.$sb_repo_origin.helper\" \\\n"
	"    '!f() { test \"$1\" = get || return 0; echo username=x-access-token; echo \"password=$GH_TOKEN\"; }; f'; fi\n"
	"  if [ \"$sb_repo_lfs\" = 1 ]; then sb_lfs=(-c filter.lfs.smudge='git-lfs smudge -- %f' -c filter.lfs.process='git-lfs filter-process' -c filter.lfs.required=true)\n"
	"  else sb_lfs=(-c filter.lfs.smudge= -c filter.lfs.process= -c filter.lfs.required=false); fi\n"
	"  if [ -z \"$sb_repo_ref\" ]; then sb_co=(checkout --quiet -f)\n"
	"  elif git -C \"$sb_dir\" rev-parse --verify -q \"refs/remotes/origin/$sb_repo_ref^{commit}\" >/dev/null; then sb_co=(checkout --quiet -f -B \"$sb_repo_ref\" \"refs/remotes/origin/$sb_repo_ref\")\n"
	"  elif git -C \"$sb_dir\" rev-parse --verify -q \"$sb_repo_ref^{commit}\" >/dev/null; then sb_co=(checkout --quiet -f --detach \"$sb_repo_ref\")\n"
	"  else sb_err \"unknown ref '$sb_repo_ref' in $sb_repo_url\"; sb_end 1 unknown-ref; fi\n"
	"  sb_git -C \"$sb_dir\" \"${sb_lfs[@]}\" \"${sb_co[@]}\" -- || sb_gitfail checkout\n"
	"  if [ \"$sb_repo_submodules\" = 1 ]; then sb_git -C \"$sb_dir\" \"${sb_lfs[@]}\" submodule update --quiet --init --recursive || sb_gitfail submodules; fi\n"
	/* LFS stays on in the checkout: a commit of a tracked file stores a
	 * pointer and `git push` uploads the object (the pre-push hook) */
	"  if [ \"$sb_repo_lfs\" = 1 ]; then git -C \"$sb_dir\" lfs install --local >/dev/null 2>&1 || { sb_err 'git lfs install --local failed in the checkout'; sb_end 1 checkout; }; fi\n"
	"  sb_ms; sb_say 'sshbox-repo %s %s %s\\n' \"$sb_nonce\" \"$sb_act\" \"$((REPLY - sb_t0))\"\n"
	"fi\n";

/* Claude Code, the watchdog and the end */
static const char script_tail[] =
	"cd -- \"$sb_dir\" || sb_end 1 jobdir\n"
	"if ! sb_which \"$sb_claude\"; then sb_err \"Claude Code executable '$sb_claude' not found on the sandbox\"; sb_end 127 claude-missing; fi; sb_cl=$REPLY\n"
	/* set -m gives the job a process group of its own (pgid = its pid): the
	 * watchdog and the slot's next holder stop all of it with one kill */
	"set -m\n"
	"( trap - PIPE; set -- \"$sb_cl\" -p --output-format stream-json --verbose ${sb_args[@]+\"${sb_args[@]}\"}\n"
	"  exec 0< <(printf '%s' \"$sb_prompt\") 8>&-\n"
	"  unset CLAUDECODE; for sb_v in ${!CLAUDE_CODE_@}; do unset \"$sb_v\"; done\n"
	"  export IS_SANDBOX=1 SSHBOX_JOB=\"$sb_job\" SSHBOX_FENCE=\"$sb_fence\" CLAUDE_CONFIG_DIR=\"$sb_aux/claude\" TMPDIR=\"$sb_aux/tmp\"\n"
	"  if [ \"${#sb_assign[@]}\" -gt 0 ]; then export -- \"${sb_assign[@]}\"; fi\n"
	"  exec \"$@\" ) &\n"
	"sb_pid=$!\n"
	"set +m\n"
	"sb_prompt=; sb_vals=(); sb_token=; sb_assign=()\n"
	"printf '%s %s\\n' \"$sb_pid\" \"$sb_fence\" > \"$sb_slotf.pgid\"\n"
	"exec 8>&-\n"
	"sb_say 'sshbox-started %s %s\\n' \"$sb_nonce\" \"$sb_dir\"\n"
	/* The watchdog: a fork blocked on the session's input, so the script
	 * itself can wait for Claude Code and see its exit at once (bash's read
	 * cannot be woken by a child's exit: a script that read and polled
	 * every 20 ms ended a no-op job 10 ms late on average).  On `cancel`,
	 * EOF, half a lease without a heartbeat, or the backstop timeout it
	 * stops the job's group (TERM, 2 s, KILL) and tells why in its exit
	 * status, also when the script, done waiting, TERMs it mid-way. */
	"( sb_end_s=$((SECONDS + sb_timeout)); sb_w=12\n"
	"  while :; do sb_t=$((sb_end_s - SECONDS)); if [ \"$sb_t\" -le 0 ]; then sb_w=13; break; fi\n"
	"    if [ \"$sb_t\" -gt \"$sb_hb\" ]; then sb_t=$sb_hb; fi\n"
	"    IFS= read -r -t \"$sb_t\" sb_l; sb_st=$?\n"
	"    if [ $sb_st -eq 0 ]; then if [ \"$sb_l\" = cancel ]; then sb_w=10; break; fi; continue; fi\n"
	"    if [ $sb_st -gt 128 ]; then if [ $SECONDS -lt $sb_end_s ]; then sb_w=11; break; fi; continue; fi\n"
	"    break\n"
	"  done\n"
	"  trap 'exit $sb_w' TERM; kill -TERM -- \"-$sb_pid\" 2>/dev/null\n"
	"  for sb_k in 1 2 3 4 5 6 7 8 9 10; do kill -0 -- \"-$sb_pid\" 2>/dev/null || break; sleep 0.2; done\n"
	"  kill -KILL -- \"-$sb_pid\" 2>/dev/null; exit $sb_w ) <&0 &\n"
	"sb_wd=$!\n"
	"wait \"$sb_pid\"; sb_rc=$?\n"
	"kill -TERM \"$sb_wd\" 2>/dev/null; wait \"$sb_wd\"; sb_st=$?; sb_wd=\n"
	"case $sb_st in (10) sb_why=cancel;; (11) sb_why=heartbeat;; (12) sb_why=eof;; (13) sb_why=timeout;; (*) sb_why=exit;; esac\n"
	"kill -KILL -- \"-$sb_pid\" 2>/dev/null\n"
	"sb_end \"$sb_rc\" \"$sb_why\"\n";

int remote_script(struct buf *out, const struct remote_params *p)
{
	struct buf s = BUF_INIT;
	const char *const *v;
	int r = 0;

	r |= buf_puts(&s, "sb_nonce=") | remote_quote(&s, p->nonce);
	r |= buf_puts(&s, "\nsb_job=") | remote_quote(&s, p->job_id);
	r |= buf_puts(&s, "\nsb_work=") | remote_quote(&s, p->workdir);
	r |= buf_printf(&s, "\nsb_slot=%d\nsb_fence=%lld\nsb_timeout=%d\nsb_hb=%d\nsb_have_token=%d\n",
			p->slot, p->fence, p->timeout_s, p->heartbeat_s, p->have_token ? 1 : 0);
	r |= buf_puts(&s, "sb_claude=") | remote_quote(&s, p->claude);
	r |= buf_puts(&s, "\nsb_repo_url=") | remote_quote(&s, p->repo_url ? p->repo_url : "");
	r |= buf_puts(&s, "\nsb_repo_ref=") | remote_quote(&s, p->repo_ref ? p->repo_ref : "");
	r |= buf_puts(&s, "\nsb_repo_origin=") | remote_quote(&s, p->repo_origin ? p->repo_origin : "");
	r |= buf_puts(&s, "\nsb_repo_key=") | remote_quote(&s, p->repo_key ? p->repo_key : "");
	r |= buf_printf(&s, "\nsb_repo_sha=%d\nsb_repo_lfs=%d\nsb_repo_submodules=%d", p->repo_ref_is_sha ? 1 : 0,
			p->repo_lfs ? 1 : 0, p->repo_submodules ? 1 : 0);
	if (p->slot_key)
		r |= buf_puts(&s, "\nsb_slotkey=") | remote_quote(&s, p->slot_key);
	else
		r |= buf_printf(&s, "\nsb_slotkey=%d", p->slot);
	r |= buf_puts(&s, "\nsb_envnames=(");
	for (v = p->env_names; v && *v; v++)
		r |= buf_putc(&s, ' ') | remote_quote(&s, *v);
	r |= buf_puts(&s, " )\nsb_args=(");
	for (v = p->claude_args; v && *v; v++)
		r |= buf_putc(&s, ' ') | remote_quote(&s, *v);
	r |= buf_puts(&s, " )\n");
	r |= buf_append(&s, script_body, sizeof(script_body) - 1);
	if (p->repo_url)
		r |= buf_append(&s, script_repo, sizeof(script_repo) - 1);
	r |= buf_append(&s, script_tail, sizeof(script_tail) - 1);
	if (!r)
		r = remote_put_blob(out, s.data, s.len);
	buf_release(&s);
	return r ? SB_ERR_NOMEM : 0;
}

static const char *const why_words[REMOTE_WHY_COUNT] = {
	[REMOTE_WHY_NONE] = "",
#define REMOTE_WHY_WORD(name, word) [REMOTE_WHY_##name] = word,
	REMOTE_WHY_LIST(REMOTE_WHY_WORD)
#undef REMOTE_WHY_WORD
};

enum remote_why remote_why_parse(const char *word, size_t len)
{
	int i;

	for (i = 1; i < REMOTE_WHY_COUNT; i++)
		if (strlen(why_words[i]) == len && memcmp(why_words[i], word, len) == 0)
			return (enum remote_why)i;
	return REMOTE_WHY_NONE;
}

const char *remote_why_word(enum remote_why why)
{
	return why > REMOTE_WHY_NONE && why < REMOTE_WHY_COUNT ? why_words[why] : "";
}
