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
 * cache-locked, claude-missing.  docs/remote-protocol.md has the details;
 * the script itself is src/sh/job.sh, embedded at build time. */
#ifndef SSHBOX_REMOTE_H
#define SSHBOX_REMOTE_H

#include <stddef.h>

#include "buf.h"

/* The end-reason vocabulary: every WHY word the sandbox script can print in
 * its sshbox-end line, defined here once.  tests/unit/test_remote.c checks
 * that the script prints no other word and that every one here is printed
 * somewhere.  The job's outcome table (job.c) is keyed by this enum. */
#define REMOTE_WHY_LIST(X) \
	X(EXIT, "exit") \
	X(CANCEL, "cancel") \
	X(EOF, "eof") \
	X(HEARTBEAT, "heartbeat") \
	X(TIMEOUT, "timeout") \
	X(WORKDIR, "workdir") \
	X(JOBDIR, "jobdir") \
	X(BUSY, "busy") \
	X(FENCED, "fenced") \
	X(CLONE, "clone") \
	X(CHECKOUT, "checkout") \
	X(SUBMODULES, "submodules") \
	X(UNKNOWN_REF, "unknown-ref") \
	X(REPO_AUTH, "repo-auth") \
	X(REPO_TLS, "repo-tls") \
	X(REPO_UNREACHABLE, "repo-unreachable") \
	X(REPO_NOT_FOUND, "repo-not-found") \
	X(CACHE_LOCKED, "cache-locked") \
	X(CLAUDE_MISSING, "claude-missing")

enum remote_why {
	REMOTE_WHY_NONE = 0,   /* no end line, or a word not in the list */
#define REMOTE_WHY_ENUM(name, word) REMOTE_WHY_##name,
	REMOTE_WHY_LIST(REMOTE_WHY_ENUM)
#undef REMOTE_WHY_ENUM
	REMOTE_WHY_COUNT
};

/* The enum for a word (len bytes, not NUL-terminated), REMOTE_WHY_NONE
 * when it is not one of ours. */
enum remote_why remote_why_parse(const char *word, size_t len);
/* The word for a value; "" for REMOTE_WHY_NONE or out of range. */
const char *remote_why_word(enum remote_why why);

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
SB_MUST_CHECK int remote_script(struct buf *out, const struct remote_params *p);
/* Append one length-prefixed secret. */
SB_MUST_CHECK int remote_put_blob(struct buf *out, const char *data, size_t len);
/* Append the shell-quoted form of s ('...' with ' escaped); a builder
 * (buf.h): a failure is also recorded in out. */
int remote_quote(struct buf *out, const char *s);

#endif
