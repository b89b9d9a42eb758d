/* layer 3: the job spec (docs/job-spec.md): JSON on stdin to
 * typed fields.  Unknown, duplicate and mistyped fields are errors naming the
 * field.  The prompt, env values and repo token are secrets: held in memory
 * only and wiped by jobspec_release(). */
#ifndef SSHBOX_JOBSPEC_H
#define SSHBOX_JOBSPEC_H

#include <stddef.h>

#include "config.h"
#include "err.h"
#include "strvec.h"

#define JOBSPEC_MAX_BYTES (8 * 1024 * 1024)
#define JOBSPEC_MAX_PROMPT (4 * 1024 * 1024)
#define JOBSPEC_MAX_ENV 256
#define JOBSPEC_MAX_ENV_VALUE (1024 * 1024)
#define JOBSPEC_MAX_ARGS 256
#define JOBSPEC_MAX_ARG 8192

struct jobspec {
	char *account;
	char *job_id;          /* given, or generated "job-<hex>" */
	char *prompt;          /* secret */
	size_t prompt_len;
	char *sandbox;         /* canonical host, or NULL */
	int has_repo;
	char *repo_url;
	char *repo_ref;        /* NULL: default branch */
	char *repo_token;      /* secret, NULL when absent */
	int repo_lfs, repo_submodules;
	struct strvec claude_args;
	struct strvec env_names;
	struct strvec env_values;  /* secret, same order as names */
	int timeout_s, idle_timeout_s, wait_s;
};
#define JOBSPEC_INIT { 0 }

/* Parse; on failure e names the field.  Defaults come from cfg.  When the
 * spec was an object whose job_id could be read, spec->job_id is set even on
 * failure (so the error event can carry it). */
SB_MUST_CHECK int jobspec_parse(struct jobspec *spec, const char *json, size_t len, const struct config *cfg,
		  struct sb_error *e);
void jobspec_release(struct jobspec *spec);
/* Wipe and free the prompt, env values and token once they were handed on
 * (names and the rest stay). */
void jobspec_drop_secrets(struct jobspec *spec);

#endif
