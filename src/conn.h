/* layer 2: the way to one sandbox — account -> agent -> master — the same
 * for jobs, operator commands (sandbox check, ssh, status) and the
 * supervisor.
 *
 * The steps, each usable alone:
 *   conn_names     the ssh alias and ControlPath of (account, key version,
 *                  sandbox): what the supervisor needs for the masters it
 *                  owns (it owns the agents too)
 *   conn_prepare   the account's record (its key), the ssh config in step
 *                  with the registry, the names, and the key in an agent:
 *                  the supervisor's when it holds it, else a private one
 *   conn_master    the master up (skipped while the supervisor vouches for
 *                  it)
 * A struct conn may be prepared again for another sandbox of the same
 * account (a job that moves on from an unreachable one): the account and a
 * private agent are kept. */
#ifndef SSHBOX_CONN_H
#define SSHBOX_CONN_H

#include <stdint.h>

#include "agent.h"
#include "buf.h"
#include "config.h"
#include "err.h"
#include "kv.h"
#include "registry.h"
#include "ssh.h"

struct conn {
	struct account_rec acct;
	struct buf alias, cpath, agent_sock;
	struct agent agent;        /* a private agent, when one was started */
	struct ssh_target t;       /* points into the fields above */
};
#define CONN_INIT { ACCOUNT_REC_INIT, BUF_INIT, BUF_INIT, BUF_INIT, AGENT_INIT, { NULL, NULL, NULL, NULL, NULL } }

/* The alias (sbx-<account>-<host>) and ControlPath of sbx for key_version. */
int conn_names(const struct config *cfg, const struct sandbox_rec *sbx, long long key_version, struct buf *alias,
	       struct buf *cpath, struct sb_error *e) __attribute__((warn_unused_result));

/* Read the account (unless c has it), sync the ssh config, name sbx's
 * target and put the key in an agent (a private one lives agent_lifetime_s
 * at most).  SB_ERR_UNAVAILABLE "account 'a' has no SSH key: run ..." when
 * the account has none. */
int conn_prepare(struct conn *c, const struct config *cfg, struct kv *kv, const struct sandbox_rec *sbx,
		 int agent_lifetime_s, struct sb_error *e) __attribute__((warn_unused_result));

/* The master up: nothing to do while the supervisor vouched for it within
 * vouch_max_age_ms (0: always check); else ssh_master_ensure(). */
int conn_master(struct conn *c, int64_t vouch_max_age_ms, struct sb_error *e) __attribute__((warn_unused_result));

/* conn_prepare then conn_master (no vouch): operator commands. */
int conn_open(struct conn *c, const struct config *cfg, struct kv *kv, const struct sandbox_rec *sbx,
	      struct sb_error *e) __attribute__((warn_unused_result));

/* Stop a private agent, free everything; c becomes CONN_INIT. */
void conn_release(struct conn *c);

#endif
