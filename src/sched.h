/* layer 2: choosing a sandbox and taking a slot for one job.
 *
 * Candidates are the account's active sandboxes (or the pinned one) that
 * have not failed to connect in this run.  Among the healthy ones with a
 * free slot it prefers one that caches the job's repository, then the
 * least loaded (fraction of slots used), then chance.  When nothing is
 * free the job waits in the account's FIFO queue (pool.h) up to wait_s:
 * only the first waiters, as many as there are free slots, try to take
 * one, so newcomers never overtake earlier arrivals on any host.  A job_id
 * runs once per account.  Nothing here waits: the caller's loop calls
 * sched_step again after sched_retry_ms(). */
#ifndef SSHBOX_SCHED_H
#define SSHBOX_SCHED_H

#include <stdint.h>

#include "err.h"
#include "kv.h"
#include "lock.h"
#include "registry.h"

struct sched_req {
	const char *account, *job_id;
	const char *pinned;          /* the spec's sandbox, or NULL */
	const char *repo_key;        /* the repository's cache name, or NULL */
	int wait_s;
	int64_t lock_ttl_ms;
};

struct sched;

#define SCHED_WAIT 1

int sched_new(struct sched **out, struct kv *kv, const struct sched_req *req, struct sb_error *e)
	__attribute__((warn_unused_result));
/* Leaves the queue (best effort). */
void sched_free(struct sched *s);

/* One attempt.  0: a slot is taken: *sbx (the caller's now) and *lock are
 * filled.  SCHED_WAIT: nothing free yet; try again after sched_retry_ms().
 * < 0: an error with its sentence: a duplicate job_id (SB_ERR_EXISTS),
 * nothing registered or active, or no slot within wait_s
 * (SB_ERR_UNAVAILABLE), every candidate unreachable or unhealthy
 * (SB_ERR_TRANSPORT), Redis.  *position is the job's place in the queue
 * (1 = first) while queued, else 0; it is set on errors too. */
int sched_step(struct sched *s, struct sandbox_rec *sbx, struct lock *lock, long long *position, struct sb_error *e)
	__attribute__((warn_unused_result));

/* The jittered pause between two attempts (ms). */
int64_t sched_retry_ms(void);

/* sbx could not be reached: its slot is given back, it is marked
 * unhealthy, and this job never picks it again.  The next sched_step
 * starts over (the registry read again, a fresh wait_s).  SB_ERR_NOMEM. */
int sched_exclude(struct sched *s, struct sandbox_rec *sbx, struct lock *lock, const struct sb_error *why)
	__attribute__((warn_unused_result));

#endif
