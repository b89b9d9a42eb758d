/* layer 3: one job, from the slot lock to the released lock — the state
 * machine of `sshbox run`.
 *
 *   pick sandbox + lock slot → sync ssh config → agent (supervisor's, or a
 *   private one) → master → one ssh session running the remote script →
 *   poll loop (stream, heartbeats, lease renewal, timeouts, signals) →
 *   output closed and exit status in → release lock → sshbox.result.
 *
 * Every exit path releases the lock, stops the private agent and reaps
 * every child.  Returns the exit code of `sshbox run` (DESIGN.md §2). */
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
