/* layer 3: one job, from the slot lock to the released lock — the state
 * machine of `sshbox run`, as explicit phases (job.c's table):
 *
 *   ACQUIRE  queue, sandbox choice and slot lock (schedule.h)
 *   CONNECT  account -> agent -> master (conn.h)
 *   START    the remote script and its secrets on one ssh session
 *   STREAM   output forwarded (stream.h); heartbeats, lease, timers, signals
 *   DRAIN    stopping: in-band cancel, then TERM and KILL to ssh
 *   DONE     output closed and exit status in -> lock given back ->
 *            outcome (outcome.h) -> sshbox.result
 *
 * Every exit path releases the lock, stops the private agent and reaps
 * every child.  Returns the exit code of `sshbox run` (docs/exit-codes.md). */
#ifndef SSHBOX_JOB_H
#define SSHBOX_JOB_H

#include "config.h"
#include "events.h"
#include "jobspec.h"
#include "loop.h"

/* sigfd: a signalfd for SIGINT/SIGTERM/SIGCHLD (already blocked).  The
 * job watches it, the ssh session and ev's fd on loop, and leaves no watch
 * behind. */
SB_MUST_CHECK int job_run(const struct config *cfg, struct jobspec *spec, struct events *ev, struct loop *loop, int sigfd);

#endif
