#include "remote.h"

#include <stdio.h>
#include <string.h>

#include "err.h"

/* Reads "<len>\n<script>" byte-exactly (bash's read is byte-wise on pipes,
 * head -c reads no more than asked) and evaluates the script. */
static const char bootstrap[] =
	"exec /bin/bash -c 'IFS= read -r n || exit 97; case $n in (*[!0-9]*|\"\") exit 98;; esac; "
	"s=$(head -c \"$n\") || exit 99; eval \"$s\"'";

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
 * kill first, write afterwards (a write to a dead session SIGPIPEs us);
 * secrets only in variables and in the job's environment, never in argv or
 * files; the prompt reaches Claude through a pipe from a builtin printf. */
static const char script_body[] =
	"set -u\n"
	"umask 077\n"
	"sb_read() { local n; IFS= read -r n || exit 97; case $n in (*[!0-9]*|\"\") exit 98;; esac\n"
	"  if [ \"$n\" -gt 0 ]; then REPLY=$(head -c \"$n\"; printf x) || exit 99; REPLY=${REPLY%x}; else REPLY=; fi; }\n"
	"sb_read; sb_prompt=$REPLY\n"
	"sb_vals=(); for sb_n in \"${sb_envnames[@]}\"; do sb_read; sb_vals+=(\"$REPLY\"); done\n"
	"sb_token=; if [ \"$sb_have_token\" = 1 ]; then sb_read; sb_token=$REPLY; fi\n"
	"printf 'sshbox-begin %s\\n' \"$sb_nonce\"\n"
	"sb_end() { printf '\\nsshbox-end %s %s %s\\n' \"$sb_nonce\" \"$1\" \"$2\"; exit 0; }\n"
	"sb_ms() { local t; t=$(date +%s%3N); printf '%s' \"$t\"; }\n"
	"mkdir -p -- \"$sb_work/jobs\" \"$sb_work/slots\" 2>/dev/null || { echo \"sshbox: cannot create $sb_work/jobs\" >&2; sb_end 1 workdir; }\n"
	/* fencing: a lower fence never starts over a higher one */
	"exec 8>\"$sb_work/slots/$sb_slot.lock\" || sb_end 1 workdir\n"
	"flock -w 30 8 || sb_end 1 fenced\n"
	"sb_cur=0; [ -r \"$sb_work/slots/$sb_slot.fence\" ] && read -r sb_cur < \"$sb_work/slots/$sb_slot.fence\"\n"
	"case $sb_cur in (*[!0-9]*|\"\") sb_cur=0;; esac\n"
	"if [ \"$sb_cur\" -gt \"$sb_fence\" ]; then echo \"sshbox: slot $sb_slot already ran fence $sb_cur > $sb_fence\" >&2; sb_end 1 fenced; fi\n"
	/* a previous holder of this slot whose lease is gone: stop it */
	"if [ -r \"$sb_work/slots/$sb_slot.pgid\" ]; then read -r sb_old sb_oldf < \"$sb_work/slots/$sb_slot.pgid\"\n"
	"  case $sb_old in (*[!0-9]*|\"\") ;; (*) if tr '\\0' '\\n' < /proc/$sb_old/environ 2>/dev/null | grep -qx \"SSHBOX_FENCE=$sb_oldf\"; then kill -KILL -- \"-$sb_old\" 2>/dev/null; fi;; esac; fi\n"
	"printf '%s\\n' \"$sb_fence\" > \"$sb_work/slots/$sb_slot.fence.tmp\" && mv -f -- \"$sb_work/slots/$sb_slot.fence.tmp\" \"$sb_work/slots/$sb_slot.fence\" || sb_end 1 workdir\n"
	"sb_dir=$sb_work/jobs/$sb_job\n"
	"rm -rf -- \"$sb_dir\"; mkdir -- \"$sb_dir\" || { exec 8>&-; sb_end 1 jobdir; }\n"
	/* Claude Code keeps a transcript (with the prompt) under its config dir
	 * and scratch files under TMPDIR: both live beside the job dir and go
	 * with it, unless the job's env chose otherwise. */
	"sb_aux=$sb_work/jobs/.$sb_job\n"
	"rm -rf -- \"$sb_aux\"; mkdir -p -- \"$sb_aux/claude\" \"$sb_aux/tmp\" || { exec 8>&-; sb_end 1 jobdir; }\n"
	"sb_cleanup() { cd / && rm -rf -- \"$sb_dir\" \"$sb_aux\"; }\n"
	"if [ -n \"$sb_repo_url\" ]; then\n"
	"  sb_t0=$(sb_ms)\n"
	"  export GIT_TERMINAL_PROMPT=0 GIT_ASKPASS=/bin/false SSH_ASKPASS=/bin/false\n"
	"  sb_cred='!f() { test \"$1\" = get || return 0; echo username=x-access-token; echo \"password=$SSHBOX_GIT_TOKEN\"; }; f'\n"
	"  if ! SSHBOX_GIT_TOKEN=$sb_token git -c credential.helper= -c \"credential.helper=$sb_cred\" clone --quiet -- \"$sb_repo_url\" \"$sb_dir\" </dev/null >&2; then\n"
	"    exec 8>&-; sb_cleanup; sb_end 1 clone; fi\n"
	"  if [ -n \"$sb_repo_ref\" ] && ! git -C \"$sb_dir\" -c advice.detachedHead=false checkout --quiet \"$sb_repo_ref\" -- </dev/null >&2; then\n"
	"    exec 8>&-; sb_cleanup; sb_end 1 checkout; fi\n"
	"  printf 'sshbox-repo %s clone %s\\n' \"$sb_nonce\" \"$(( $(sb_ms) - sb_t0 ))\"\n"
	"fi\n"
	"cd -- \"$sb_dir\" || { exec 8>&-; sb_cleanup; sb_end 1 jobdir; }\n"
	"if ! command -v -- \"$sb_claude\" >/dev/null 2>&1; then echo \"sshbox: Claude Code executable '$sb_claude' not found on the sandbox\" >&2; exec 8>&-; sb_cleanup; sb_end 127 claude-missing; fi\n"
	"unset CLAUDECODE; for sb_v in $(compgen -e); do case $sb_v in (CLAUDE_CODE_*) unset \"$sb_v\";; esac; done\n"
	"export IS_SANDBOX=1 SSHBOX_JOB=\"$sb_job\" SSHBOX_FENCE=\"$sb_fence\" CLAUDE_CONFIG_DIR=\"$sb_aux/claude\" TMPDIR=\"$sb_aux/tmp\"\n"
	"sb_i=0; for sb_n in \"${sb_envnames[@]}\"; do export \"$sb_n=${sb_vals[$sb_i]}\"; sb_i=$((sb_i+1)); done\n"
	"if [ -n \"$sb_token\" ]; then export GH_TOKEN=\"$sb_token\"; fi\n"
	"setsid timeout -k 10 \"$sb_timeout\" \"$sb_claude\" -p --output-format stream-json --verbose \"${sb_args[@]}\" < <(printf '%s' \"$sb_prompt\") &\n"
	"sb_pid=$!\n"
	"sb_prompt=; sb_vals=(); sb_token=\n"
	"for sb_n in \"${sb_envnames[@]}\"; do unset \"$sb_n\"; done; unset GH_TOKEN\n"
	"printf '%s %s\\n' \"$sb_pid\" \"$sb_fence\" > \"$sb_work/slots/$sb_slot.pgid\"\n"
	"exec 8>&-\n"
	"printf 'sshbox-started %s %s\\n' \"$sb_nonce\" \"$sb_dir\"\n"
	"sb_last=$SECONDS; sb_why=\n"
	"while kill -0 \"$sb_pid\" 2>/dev/null; do\n"
	"  IFS= read -r -t 1 sb_l; sb_st=$?\n"
	"  if [ $sb_st -eq 0 ]; then sb_last=$SECONDS; if [ \"$sb_l\" = cancel ]; then sb_why=cancel; break; fi; continue; fi\n"
	"  if [ $sb_st -gt 128 ]; then [ $((SECONDS - sb_last)) -lt \"$sb_hb\" ] && continue; sb_why=heartbeat; break; fi\n"
	"  sb_why=eof; break\n"
	"done\n"
	"if [ -n \"$sb_why\" ]; then\n"
	"  kill -TERM -- \"-$sb_pid\" 2>/dev/null\n"
	"  for sb_k in 1 2 3 4 5 6 7 8 9 10; do kill -0 -- \"-$sb_pid\" 2>/dev/null || break; sleep 0.2; done\n"
	"  kill -KILL -- \"-$sb_pid\" 2>/dev/null\n"
	"fi\n"
	"wait \"$sb_pid\"; sb_rc=$?\n"
	"kill -KILL -- \"-$sb_pid\" 2>/dev/null\n"
	"sb_cleanup\n"
	"rm -f -- \"$sb_work/slots/$sb_slot.pgid\"\n"
	"sb_end \"$sb_rc\" \"${sb_why:-exit}\"\n";

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
	r |= buf_puts(&s, "\nsb_envnames=(");
	for (v = p->env_names; v && *v; v++)
		r |= buf_putc(&s, ' ') | remote_quote(&s, *v);
	r |= buf_puts(&s, " )\nsb_args=(");
	for (v = p->claude_args; v && *v; v++)
		r |= buf_putc(&s, ' ') | remote_quote(&s, *v);
	r |= buf_puts(&s, " )\n");
	r |= buf_append(&s, script_body, sizeof(script_body) - 1);
	if (!r)
		r = remote_put_blob(out, s.data, s.len);
	buf_release(&s);
	return r ? SB_ERR_NOMEM : 0;
}
