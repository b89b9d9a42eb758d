/* layer 0: error codes, one-sentence error messages, exit codes.
 *
 * Functions return 0 or a negative SB_ERR_*.  Those that fail for a reason a
 * user must read also fill a caller-owned struct sb_error with one sentence
 * (no allocation on failure).  Only main.c and cmd_*.c print or exit. */
#ifndef SSHBOX_ERR_H
#define SSHBOX_ERR_H

#include <stddef.h>

/* On every function whose return value says whether it failed: ignoring it
 * is a compile error under -Werror.  A deliberate best-effort call says so
 * with sb_best_effort(). */
#define SB_MUST_CHECK __attribute__((warn_unused_result))

/* A call whose failure changes nothing for the caller (cleanup on a path
 * that is already failing, a hint to a peer): the result is dropped on
 * purpose, and the call site says so. */
static inline void sb_best_effort(int r)
{
	(void)r;
}

enum sb_err {
	SB_OK = 0,
	SB_ERR_USAGE = -1,       /* bad input: spec, option, value */
	SB_ERR_NOMEM = -2,
	SB_ERR_IO = -3,          /* local file/pipe/process failure */
	SB_ERR_REDIS = -4,       /* Redis unreachable or misbehaving */
	SB_ERR_NOTFOUND = -5,
	SB_ERR_EXISTS = -6,
	SB_ERR_CRYPTO = -7,      /* invalid Fernet token, bad key */
	SB_ERR_TRANSPORT = -8,   /* ssh could not reach or authenticate */
	SB_ERR_TIMEOUT = -9,
	SB_ERR_UNAVAILABLE = -10,/* nothing to run on */
	SB_ERR_TOOBIG = -11,     /* a bounded buffer or input limit was hit */
	SB_ERR_INTERNAL = -12,
	SB_ERR_HOSTKEY = -13,    /* host key mismatch */
	SB_ERR_CANCELLED = -14,
};

/* Exit codes of sshbox (docs/exit-codes.md mirrors this list). */
enum sb_exit {
	SB_EXIT_OK = 0,
	SB_EXIT_FAILED = 1,       /* the job ran and failed; generic failure */
	SB_EXIT_USAGE = 2,        /* bad job spec, option or value */
	SB_EXIT_UNAVAILABLE = 69, /* no sandbox within wait_s (EX_UNAVAILABLE) */
	SB_EXIT_SOFTWARE = 70,    /* internal error (EX_SOFTWARE) */
	SB_EXIT_TEMPFAIL = 75,    /* Redis down, every candidate unreachable */
	SB_EXIT_TIMEOUT = 124,
	SB_EXIT_SIGINT = 130,
	SB_EXIT_SIGTERM = 143,
};

#define SB_ERROR_MSG_MAX 512

struct sb_error {
	int code;
	char msg[SB_ERROR_MSG_MAX];
};
#define SB_ERROR_INIT { 0, { 0 } }

/* Fill e (if not NULL) with code and a formatted sentence; returns code so
 * callers can write `return sb_error_set(e, SB_ERR_USAGE, "...")`. */
int sb_error_set(struct sb_error *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix the existing message: "<prefix>: <old message>". Returns e->code. */
int sb_error_prefix(struct sb_error *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A short generic text for a code, for when no sentence was filled in. */
const char *sb_err_str(int code);

/* Map an error code to the exit code a command should use. */
int sb_err_exit_code(int code);

#endif
