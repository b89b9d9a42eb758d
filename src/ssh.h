/* layer 2: running ssh against one sandbox: argv building and masters.
 *
 * Every ssh argv is `ssh -F <state>/ssh_config [-o K=V]... -- <alias> [CMD]`
 * (the `--` keeps a hostile alias from becoming an option; each -o appears
 * once because ssh keeps the first value).  Every call runs under our own
 * deadline: a wedged 9.2 master hangs its clients forever.  Masters are
 * opened explicitly, under a per-ControlPath flock, after `-O check`, so
 * concurrent jobs never race `ControlMaster auto` into extra connections. */
#ifndef SSHBOX_SSH_H
#define SSHBOX_SSH_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "child.h"
#include "config.h"
#include "err.h"
#include "strvec.h"

#define SSH_BIN "/usr/bin/ssh"

struct ssh_target {
	const struct config *cfg;
	const char *alias;          /* sbx-<account>-<host> */
	const char *host;           /* for messages */
	const char *control_path;
	const char *agent_sock;     /* IdentityAgent override, NULL = the config's */
};

/* Push "ssh -F <cfg> [-o IdentityAgent=...]" — the caller adds its own -o
 * options, then ssh_argv_finish() adds "-- alias [cmd]". */
SB_MUST_CHECK int ssh_argv_start(struct strvec *argv, const struct ssh_target *t);
SB_MUST_CHECK int ssh_argv_finish(struct strvec *argv, const struct ssh_target *t, const char *cmd);
/* `ssh -O check`: *alive = 1 when a master answers. */
SB_MUST_CHECK int ssh_master_check(const struct ssh_target *t, int *alive, struct sb_error *e);
/* Make sure a master is up (open one under the ControlPath's flock when
 * not).  Failures are classified: SB_ERR_HOSTKEY for a host key mismatch,
 * SB_ERR_TRANSPORT otherwise, each with ssh's own reason in the sentence. */
SB_MUST_CHECK int ssh_master_ensure(const struct ssh_target *t, struct sb_error *e);
/* The same with its own ControlPersist: seconds, or < 0 for "yes" (the
 * supervisor's masters live until it stops them). */
SB_MUST_CHECK int ssh_master_open(const struct ssh_target *t, int persist_s, struct sb_error *e);
/* The supervisor vouches for a master it has just checked (ok = 1), or
 * withdraws (ok = 0); a job may then skip its own -O check while the
 * vouch is younger than max_age_ms and the socket is there. */
void ssh_master_vouch(const struct ssh_target *t, int ok);
int ssh_master_vouched(const struct ssh_target *t, int64_t max_age_ms);
/* `ssh -O stop`: the master takes no new sessions and exits when its last
 * one ends (never `-O exit`, which would cut running jobs). */
SB_MUST_CHECK int ssh_master_stop(const struct ssh_target *t, struct sb_error *e);
/* One session running cmd (no secrets in it: it is argv on both hosts),
 * in on its stdin, its stdout into out (may be NULL), under timeout_ms.
 * SB_ERR_TRANSPORT when ssh itself failed (255) or the deadline passed;
 * else *exit_code is the remote command's status. */
SB_MUST_CHECK int ssh_exec(const struct ssh_target *t, const char *cmd, const char *in, size_t in_len, struct buf *out,
	     int64_t timeout_ms, int *exit_code, struct sb_error *e);
/* Non-blocking twins for a process with an event loop (the supervisor).
 * Each _start runs the same ssh as its synchronous version in c (its own
 * session, stdin /dev/null) and returns at once; the caller watches c
 * (loop_watch_child), enforces the deadline (SSH_CONTROL_TIMEOUT_MS,
 * ssh_master_open_timeout_ms, its own for exec) by signalling c, and once c
 * is reaped calls the _finish, which gives the result and sentence the
 * synchronous version would have (timed_out: the caller's deadline stopped
 * it). */
#define SSH_CONTROL_TIMEOUT_MS 5000
/* 1: no socket, nothing to ask (*alive = 0 is the answer); 0: started. */
SB_MUST_CHECK int ssh_master_check_start(const struct ssh_target *t, struct child *c, struct sb_error *e);
SB_MUST_CHECK int ssh_master_check_finish(const struct ssh_target *t, struct child *c, int timed_out, int *alive,
			    struct sb_error *e);
/* `-O stop`: 1: no socket, nothing to stop; 0: started.  The finish kills
 * a master that did not answer (as ssh_master_stop does). */
SB_MUST_CHECK int ssh_master_stop_start(const struct ssh_target *t, struct child *c, struct sb_error *e);
void ssh_master_stop_finish(const struct ssh_target *t, struct child *c, int timed_out);
/* Takes the ControlPath's flock without waiting and keeps it in *lockfd
 * until ssh_master_open_finish (or fs_unlock when the caller gives up).
 * 1: not started — the flock is busy (someone else is opening it) or a
 * master already listens there; 0: started. */
int64_t ssh_master_open_timeout_ms(const struct ssh_target *t);
SB_MUST_CHECK int ssh_master_open_start(const struct ssh_target *t, int persist_s, struct child *c, int *lockfd,
			  struct sb_error *e);
SB_MUST_CHECK int ssh_master_open_finish(const struct ssh_target *t, struct child *c, int timed_out, int *lockfd,
			   struct sb_error *e);
/* capture: the remote stdout arrives on c->out_fd (non-blocking), else
 * it goes to /dev/null.  No stdin. */
SB_MUST_CHECK int ssh_exec_start(const struct ssh_target *t, const char *cmd, int capture, struct child *c, struct sb_error *e);
SB_MUST_CHECK int ssh_exec_finish(const struct ssh_target *t, struct child *c, int timed_out, int64_t timeout_ms,
		    int *exit_code, struct sb_error *e);
/* Turn the last lines of an ssh -E log into an error (code + sentence). */
int ssh_classify_failure(const struct ssh_target *t, const char *log_path, int exit_code, struct sb_error *e);

#endif
