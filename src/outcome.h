/* layer 3: how a job ended, as the web app sees it: the sshbox.result
 * status, the exit code of `sshbox run` and the one sentence — from one
 * table keyed by the end reason.
 *
 * The reasons are sshbox's own (a signal, a timer, the lease, the
 * transport, a setup step that failed before the session) and every word
 * of the sandbox script's vocabulary (remote.h's REMOTE_WHY_LIST), so a
 * word added there needs a row here (tests/unit/test_outcome.c). */
#ifndef SSHBOX_OUTCOME_H
#define SSHBOX_OUTCOME_H

#include <stddef.h>

#include "err.h"
#include "remote.h"

enum job_end {
	JOB_END_SUCCEEDED,        /* Claude Code's result, not an error */
	JOB_END_FAILED,           /* Claude Code's result says is_error, or it exited non-zero */
	JOB_END_SIGINT,
	JOB_END_SIGTERM,
	JOB_END_LEASE,            /* {detail}: how the lock was lost */
	JOB_END_CONSUMER,         /* nobody reads the event stream */
	JOB_END_INTERNAL,         /* out of memory while starting the stream */
	JOB_END_NOBEGIN,          /* the session never started the script */
	JOB_END_TIMEOUT,
	JOB_END_IDLE,
	JOB_END_TRANSPORT,        /* {detail}: ssh's own reason */
	JOB_END_TRANSPORT_MIDJOB, /* the same once Claude Code had started */
	JOB_END_SCRIPT,           /* the script ended early with status {rc} */
	JOB_END_SCRIPT_BOOT,      /* ... with 97-99: the bootstrap failed */
	/* before the session: {detail} is the step's own sentence */
	JOB_END_SETUP_UNAVAILABLE,
	JOB_END_SETUP_REFUSED,    /* a duplicate job_id */
	JOB_END_SETUP_SOFTWARE,
	JOB_END_SETUP_TEMPFAIL,
	/* the sandbox script's end words */
#define OUTCOME_WHY_ENUM(name, word) JOB_END_WHY_##name,
	REMOTE_WHY_LIST(OUTCOME_WHY_ENUM)
#undef OUTCOME_WHY_ENUM
	JOB_END_COUNT
};

/* The values a sentence may name. */
struct outcome_args {
	const char *host;         /* the sandbox */
	const char *url, *ref;    /* the repository (no credentials in it) */
	const char *detail;       /* a sentence from below (ssh, Redis, setup) */
	int timeout_s, idle_s;
	int rc;                   /* Claude Code's or the script's status */
	long long begin_s;        /* the begin deadline */
};

struct outcome {
	const char *status;       /* succeeded | failed | cancelled | timeout | error */
	int exit_code;            /* enum sb_exit */
	char error[SB_ERROR_MSG_MAX + 128];   /* "" when the status needs none */
};

/* The row for why: fills out.  Never fails (an unknown value is an
 * internal error row). */
void outcome_of(enum job_end why, const struct outcome_args *a, struct outcome *out);
/* The reason for a sandbox script word (REMOTE_WHY_NONE: an end without a
 * known word counts as Claude Code's own exit). */
enum job_end outcome_remote(enum remote_why why);
/* The reason for an SB_ERR_* of a step before the session. */
enum job_end outcome_setup(int err);
/* For tests: the row's template, NULL when why has no row. */
const char *outcome_template(enum job_end why);

#endif
