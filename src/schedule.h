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
 * schedule_step again after schedule_retry_ms(). */
#ifndef SSHBOX_SCHEDULE_H
#define SSHBOX_SCHEDULE_H

#include <stdint.h>

#include "err.h"
#include "kv.h"
#include "lock.h"
#include "registry.h"

struct schedule_req {
	const char *account, *job_id;
	const char *pinned;          /* the spec's sandbox, or NULL */
	const char *repo_key;        /* the repository's cache name, or NULL */
	int wait_s;
	int64_t lock_ttl_ms;
};

struct schedule;

#define SCHEDULE_WAIT 1

int schedule_new(struct schedule **out, struct kv *kv, const struct schedule_req *req, struct sb_error *e)
	__attribute__((warn_unused_result));
/* Leaves the queue (best effort). */
void schedule_free(struct schedule *s);

/* One attempt.  0: a slot is taken: *sbx (the caller's now) and *lock are
 * filled.  SCHEDULE_WAIT: nothing free yet; try again after schedule_retry_ms().
 * < 0: an error with its sentence: a duplicate job_id (SB_ERR_EXISTS),
 * nothing registered or active, or no slot within wait_s
 * (SB_ERR_UNAVAILABLE), every candidate unreachable or unhealthy
 * (SB_ERR_TRANSPORT), Redis.  *position is the job's place in the queue
 * (1 = first) while queued, else 0; it is set on errors too. */
int schedule_step(struct schedule *s, struct sandbox_rec *sbx, struct lock *lock, long long *position, struct sb_error *e)
	__attribute__((warn_unused_result));

/* The jittered pause between two attempts (ms). */
int64_t schedule_retry_ms(void);

/* sbx could not be reached: its slot is given back, it is marked
 * unhealthy, and this job never picks it again.  The next schedule_step
 * starts over (the registry read again, a fresh wait_s).  SB_ERR_NOMEM. */
int schedule_exclude(struct schedule *s, struct sandbox_rec *sbx, struct lock *lock, const struct sb_error *why)
	__attribute__((warn_unused_result));

#endif
