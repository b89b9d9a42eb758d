/* layer 1: the one child-process API (every fork/exec in sshbox goes here).
 *
 * argv and env are prepared before fork; the child only makes
 * async-signal-safe calls, resets signal dispositions and mask, marks every
 * inherited fd above 2 close-on-exec, and reports an exec failure back over
 * a CLOEXEC pipe, so child_start() fails synchronously with errno's text.
 * No PATH search: argv[0] must be an absolute path. */
#ifndef SSHBOX_CHILD_H
#define SSHBOX_CHILD_H

#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "err.h"

/* Values for child.in/out/err besides a plain fd (>= 0, dup'd in the child). */
#define CHILD_INHERIT (-1)
#define CHILD_NULL (-2)   /* /dev/null */
#define CHILD_PIPE (-3)   /* a pipe; the parent's end lands in in_fd/out_fd/err_fd */

struct child {
	const char *const *argv;  /* read by child_start only (then NULL) */
	const char *const *env;   /* NULL: a minimal PATH/LANG environment */
	const char *cwd;          /* NULL: unchanged */
	int in, out, err;
	int new_session;          /* setsid(): own session and process group */
	int die_with_parent;      /* PR_SET_PDEATHSIG SIGKILL */
	int no_core;              /* RLIMIT_CORE 0 (agents holding keys) */
	/* filled by child_start */
	pid_t pid;
	int in_fd, out_fd, err_fd;  /* parent ends (O_CLOEXEC), -1 when unused */
	int reaped;
	int status;               /* raw wait status once reaped */
};
#define CHILD_INIT { NULL, NULL, NULL, CHILD_NULL, CHILD_NULL, CHILD_INHERIT, 0, 0, 0, -1, -1, -1, -1, 0, 0 }

SB_MUST_CHECK int child_start(struct child *c, struct sb_error *e);
/* Non-blocking reap: 1 if it has exited (status stored), 0 if still running. */
int child_poll(struct child *c);
/* Wait until exit or deadline (CLOCK_MONOTONIC ms).  On the deadline the
 * child (its group, with new_session) gets SIGTERM, then SIGKILL after
 * grace_ms; it is always reaped before returning.  Returns 0, or
 * SB_ERR_TIMEOUT when the deadline forced the stop. */
SB_MUST_CHECK int child_wait(struct child *c, int64_t deadline, int64_t grace_ms);
/* Signal the child, or its whole process group when new_session is set. */
void child_signal(struct child *c, int sig);
/* Close whichever parent pipe ends are still open. */
void child_close_fds(struct child *c);
/* exit code, or 128+signal when killed by a signal; -1 when not reaped or
 * when the status was lost (SIGCHLD ignored). */
int child_exit_code(const struct child *c);

/* Run argv to completion: `input` (may be NULL) is written to its stdin,
 * then stdin is closed; stdout and stderr are collected into out/err (either
 * may be NULL = discarded; their max bounds what is kept, the rest is read
 * and dropped).  Everything happens under timeout_ms; on timeout the child
 * is stopped (TERM, grace, KILL) and SB_ERR_TIMEOUT returned.  *exit_code
 * gets child_exit_code().  new_session puts it in its own session (no
 * controlling tty: ssh-add/ssh-keygen never prompt on the operator's tty). */
struct child_run_opts {
	const char *const *env;
	const char *cwd;
	int new_session;
	int no_core;
	int64_t timeout_ms;
};
SB_MUST_CHECK int child_run(const char *const *argv, const struct child_run_opts *o,
	      const void *input, size_t input_len,
	      struct buf *out, struct buf *err, int *exit_code, struct sb_error *e);

/* Make an fd non-blocking / close-on-exec. */
SB_MUST_CHECK int fd_set_nonblock(int fd);
SB_MUST_CHECK int fd_set_cloexec(int fd);

#endif
