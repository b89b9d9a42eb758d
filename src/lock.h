/* layer 2: per-sandbox N-slot leases in Redis with fencing numbers (the
 * protocol and its pitfalls: docs/locks.md).
 *
 * Keys (the hash tag keeps one sandbox's keys in one Redis Cluster slot;
 * <host> is always the canonical spelling from validate_host_canonical):
 *   sshbox:{<account>:<host>}:slot:<k>  k = 0..slots-1: "token:fence:job_id"
 *                                       with PX ttl; exists = slot taken
 *   sshbox:{<account>:<host>}:fence     integer, no TTL; seeded from the
 *                                       server's TIME in microseconds when
 *                                       missing, so it only ever grows
 *   sshbox:job:<account>:<job_id>       the job_id's reservation, set, renewed
 *                                       and deleted with the slot: a job_id
 *                                       runs once per account at a time
 *   sshbox:{<account>:<host>}:since     hash: slot -> when it was acquired
 *                                       (server clock, ms), for holder ages
 * A slot is taken only by one atomic script that also INCRs the fence, so a
 * fence number maps to exactly one holder.  Renewal is compare-and-pexpire,
 * release is compare-and-delete; the token is 16 fresh getrandom bytes per
 * acquisition.  Lease time is tracked locally on CLOCK_MONOTONIC:
 *   deadline_ms = t_send + ttl_ms - max(ttl_ms / 100, 1000)
 * where t_send is read before the acquire/renew is sent.  Past deadline_ms
 * the lock must be treated as lost: stop the remote work.  Nothing here
 * sleeps or retries; the caller's loop does. */
#ifndef SSHBOX_LOCK_H
#define SSHBOX_LOCK_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "kv.h"

#define LOCK_KEY_SLOT_FMT "sshbox:{%s:%s}:slot:%d"
#define LOCK_KEY_FENCE_FMT "sshbox:{%s:%s}:fence"
#define LOCK_KEY_JOB_FMT "sshbox:job:%s:%s"  /* the job_id's reservation: same value and ttl as its slot */
#define LOCK_KEY_SINCE_FMT "sshbox:{%s:%s}:since"  /* hash slot -> acquired at (ms, server clock) */
#define LOCK_KEY_MAX 400           /* enough for any valid account and host */
#define LOCK_TTL_MIN_MS 2000
#define LOCK_TTL_MAX_MS 86400000
#define LOCK_TTL_DEFAULT_MS 30000  /* renew every ttl/3 */

struct lock {
	char account[65];
	char host[254];          /* canonical */
	int slot;                /* -1 until acquired */
	long long fence;
	char token[33];          /* hex; "" once released for certain */
	char job_id[65];
	int64_t ttl_ms;
	int64_t deadline_ms;     /* CLOCK_MONOTONIC: t_send + ttl - max(ttl/100, 1000) */
	int64_t renewed_ms;      /* CLOCK_MONOTONIC t_send of the last confirmed acquire/renew */
	int held;                /* 1 while we may work under it */
};
#define LOCK_INIT { "", "", -1, 0, "", "", 0, 0, 0, 0 }

/* Key names for a sandbox (for status, the sweeper and tests). */
SB_MUST_CHECK int lock_key_slot(char *out, size_t outsz, const char *account, const char *host, int slot,
		  struct sb_error *e);
SB_MUST_CHECK int lock_key_fence(char *out, size_t outsz, const char *account, const char *host,
		   struct sb_error *e);

SB_MUST_CHECK int lock_key_job(char *out, size_t outsz, const char *account, const char *job_id, struct sb_error *e);

/* Take the lowest free slot of 0..slots-1.  0: acquired, *out filled and
 * held; SB_ERR_EXISTS: job_id already holds a slot of this account (on any
 * sandbox); SB_ERR_UNAVAILABLE: every slot busy; SB_ERR_USAGE: a bad argument
 * (ttl_ms must be LOCK_TTL_MIN_MS..LOCK_TTL_MAX_MS); SB_ERR_REDIS. */
SB_MUST_CHECK int lock_acquire(struct kv *kv, const char *account, const char *host, int slots,
		 const char *job_id, int64_t ttl_ms, struct lock *out, struct sb_error *e);

/* Compare-and-pexpire.  0: renewed, deadline_ms and renewed_ms moved.
 * SB_ERR_NOTFOUND: lost for certain (the key no longer holds our value, or
 * deadline_ms had already passed, or the lock is not held); held becomes 0
 * and the work must stop.  SB_ERR_REDIS: unknown -- try again (the next
 * call reconnects) until deadline_ms, then treat as lost. */
SB_MUST_CHECK int lock_renew(struct kv *kv, struct lock *l, struct sb_error *e);

/* Compare-and-delete.  0: released (or nothing to release: never acquired
 * or already released).  SB_ERR_NOTFOUND: the lease had already expired, or
 * another holder had taken the slot -- the message says which; either way
 * the job did not hold the lock to its end.  SB_ERR_REDIS: unknown (the key
 * expires by itself; the token is kept so a retry is possible).  l->held
 * is 0 afterwards in every case. */
SB_MUST_CHECK int lock_unlock(struct kv *kv, struct lock *l, struct sb_error *e);

struct lock_holder {
	int slot;
	char job_id[65];
	long long fence;
	long long pttl_ms;     /* remaining TTL as Redis sees it, -1 if none */
	long long age_ms;      /* since the slot was acquired, -1 if unknown */
};

/* The held slots of a sandbox, in slot order, in one atomic read.  out has
 * room for `slots` entries; *n_out is how many are held. */
SB_MUST_CHECK int lock_list_holders(struct kv *kv, const char *account, const char *host, int slots,
		      struct lock_holder *out, int *n_out, struct sb_error *e);
/* The same in two halves, for a pipeline of many sandboxes (kv_pipe_*):
 * _send queues the query, _recv takes its reply, in the order sent. */
SB_MUST_CHECK int lock_list_holders_send(struct kv *kv, const char *account, const char *host, int slots,
			   struct sb_error *e);
SB_MUST_CHECK int lock_list_holders_recv(struct kv *kv, const char *account, const char *host, int slots,
			   struct lock_holder *out, int *n_out, struct sb_error *e);

/* *reserved = 1 if job_id holds a slot of any sandbox of the account (its
 * reservation key exists): one round trip, not one per sandbox.  Not
 * atomic with a later lock_acquire, which checks again. */
SB_MUST_CHECK int lock_job_reserved(struct kv *kv, const char *account, const char *job_id, int *reserved,
		      struct sb_error *e);
/* The same in two halves for a pipeline (kv_pipe_*). */
SB_MUST_CHECK int lock_job_reserved_send(struct kv *kv, const char *account, const char *job_id, struct sb_error *e);
SB_MUST_CHECK int lock_job_reserved_recv(struct kv *kv, int *reserved, struct sb_error *e);

/* *running = 1 if job_id holds a slot of this sandbox (duplicate job_id
 * detection; not atomic with a later lock_acquire). */
SB_MUST_CHECK int lock_job_running(struct kv *kv, const char *account, const char *host, int slots,
		     const char *job_id, int *running, struct sb_error *e);

#endif
