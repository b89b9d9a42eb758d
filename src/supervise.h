/* layer 3: `sshbox supervise`, the daemon that keeps the pool warm.
 *
 * It holds the state dir's supervise lock (one supervisor per state dir),
 * and then, until SIGTERM or SIGINT:
 *   - polls the registry version (every 500 ms) and, when it changed (or
 *     *reload was set), rewrites ssh_config/known_hosts and reconciles:
 *     one ssh-agent per account with a key, at agent/<account>.v<N>.sock,
 *     reached through the symlink agent/<account>.sock (a rotated key gets
 *     a fresh agent and the link is swapped; the old agent lives on for a
 *     grace period), and one ControlMaster (ControlPersist=yes) per active
 *     sandbox; a sandbox no longer active loses its master by `-O stop`
 *     (it exits when its last job's session ends);
 *   - health-checks each active sandbox every health_interval_s (the master
 *     answers and a `true` session through it works), reopens dead masters
 *     with backoff, and writes health to Redis only when it changed;
 *   - sweeps every sweep_interval_s: job dirs on sandboxes whose job holds
 *     no reservation and that are older than sweep_min_age_s, sockets of
 *     dead processes in the state dir, stale queue entries.
 * At stop: every master gets `-O stop`, agents are stopped, its sockets and
 * links are removed.  Leftovers of a predecessor killed by SIGKILL are
 * adopted (live masters) or removed (dead sockets) at start. */
#ifndef SSHBOX_SUPERVISE_H
#define SSHBOX_SUPERVISE_H

#include "config.h"
#include "err.h"

/* Runs one event loop (loop.h) until SIGTERM or SIGINT; it blocks those
 * and SIGHUP and reads them from a signalfd (restoring the mask on return).
 * On SIGHUP reload_config is called to re-read the configuration into cfg
 * (0 = ok; on error the old one stays).  Every ssh it runs (health-check
 * steps, sweeps) is a child on the loop with its own deadline, so a frozen
 * sandbox delays nothing but its own checks.  Returns 0 after a requested
 * stop. */
SB_MUST_CHECK int supervise_run(struct config *cfg, int (*reload_config)(struct config *cfg, struct sb_error *e),
		  struct sb_error *e);

#endif
