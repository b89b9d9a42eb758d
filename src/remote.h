/* layer 3: what the sandbox runs — the remote script contract.
 *
 * ssh's argv carries only remote_bootstrap(), a constant.  Everything else
 * travels on the session's stdin: "<len>\n<script>" then length-prefixed
 * secrets ("<len>\n<bytes>": the prompt, each env value in order, the git
 * token), then heartbeat lines.  EOF on stdin, a "cancel" line or a missing
 * heartbeat makes the script kill the job's process group (TERM, grace,
 * KILL), remove the job dir and end.  The script writes marker lines on
 * stdout, each carrying the per-job nonce:
 *   sshbox-begin NONCE                  everything before it is rc-file noise
 *   sshbox-repo NONCE ACTION MS         repository step done (clone|fetch|reuse)
 *   sshbox-started NONCE DIR            Claude Code started in DIR
 *   sshbox-end NONCE RC WHY             last line; RC = Claude's exit code
 * WHY is one word: exit, eof, cancel, heartbeat, timeout, fenced, busy,
 * workdir, jobdir, clone, unknown-ref, checkout, submodules, repo-*,
 * cache-locked, claude-missing.  docs/remote-protocol.md has the details. */
#ifndef SSHBOX_REMOTE_H
#define SSHBOX_REMOTE_H

#include <stddef.h>

#include "buf.h"

struct remote_params {
	const char *nonce;       /* hex, per job */
	const char *job_id;
	const char *workdir;     /* validated absolute path */
	int slot;
	long long fence;
	const char *claude;      /* validated command or path */
	int timeout_s;           /* remote backstop (GNU timeout) */
	int heartbeat_s;         /* kill the job when no heartbeat for this long */
	const char *const *env_names;   /* validated names, NULL-terminated */
	const char *const *claude_args; /* NULL-terminated, any bytes but NUL */
	const char *repo_url;    /* NULL: empty working directory */
	const char *repo_ref;    /* NULL: the remote's default branch */
	const char *repo_origin; /* scheme://host[:port] of repo_url: the token's scope */
	const char *slot_key;    /* "<account>@<host>.<slot>": names the slot's files */
	const char *repo_key;    /* "<account>/<digest>-<name>": the cache under repos/ */
	int repo_ref_is_sha;     /* a full commit id: the cache may serve it without fetching */
	int repo_lfs, repo_submodules;
	int have_token;
};

/* The constant remote command (one argv word after the alias). */
const char *remote_bootstrap(void);
/* Append "<len>\n<script>" for p to out. */
int remote_script(struct buf *out, const struct remote_params *p);
/* Append one length-prefixed secret. */
int remote_put_blob(struct buf *out, const char *data, size_t len);
/* Append the shell-quoted form of s ('...' with ' escaped). */
int remote_quote(struct buf *out, const char *s);

#endif
