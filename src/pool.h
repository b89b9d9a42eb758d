/* layer 2: the wait queue and sandbox health, in Redis, shared by every
 * orchestrator host.
 *
 * Queue (per account; one Redis, scripts touch keys of several hash tags):
 *   sshbox:queue:<account>        zset  member "<ticket>:<job_id>:<token>",
 *                                       score = ticket (arrival order)
 *   sshbox:queue:<account>:alive  zset  same members, score = expiry (server
 *                                       clock, ms): a waiter that stops
 *                                       polling drops out by itself
 *   sshbox:queue:<account>:seq    counter of tickets
 * Only a waiter whose rank is below the number of free slots tries to take
 * one, so waiters are served in arrival order across hosts.
 *
 * Health (per sandbox):
 *   sshbox:{<account>:<host>}:health    hash reason, since (s), failures;
 *                                       PX = the backoff: unhealthy while it
 *                                       exists, tried again when it expires
 *   sshbox:{<account>:<host>}:failures  consecutive failures (EX 1 h), so
 *                                       the backoff grows: 2 s × 2^(n-1),
 *                                       at most 5 min, ±20 % jitter */
#ifndef SSHBOX_POOL_H
#define SSHBOX_POOL_H

#include "err.h"
#include "kv.h"

#define POOL_QUEUE_TTL_MS 5000

struct pool_ticket {
	char member[200];
	long long ticket;
	int queued;
};
#define POOL_TICKET_INIT { "", 0, 0 }

/* Live waiters of the account (stale ones are removed first). */
SB_MUST_CHECK int pool_queue_len(struct kv *kv, const char *account, long long *len, struct sb_error *e);
/* The same in two halves for a pipeline (kv_pipe_*). */
SB_MUST_CHECK int pool_queue_len_send(struct kv *kv, const char *account, struct sb_error *e);
SB_MUST_CHECK int pool_queue_len_recv(struct kv *kv, long long *len, struct sb_error *e);
SB_MUST_CHECK int pool_enqueue(struct kv *kv, const char *account, const char *job_id, struct pool_ticket *t,
		  struct sb_error *e);
/* Refresh our entry and read our rank (0 = first).  *rank = -1 when our
 * entry had expired (we were too slow): enqueue again. */
SB_MUST_CHECK int pool_poll(struct kv *kv, const char *account, struct pool_ticket *t, long long *rank,
	       struct sb_error *e);
SB_MUST_CHECK int pool_leave(struct kv *kv, const char *account, struct pool_ticket *t, struct sb_error *e);

struct pool_health {
	int unhealthy;
	long long since;       /* unix seconds */
	long long failures;
	long long retry_in_ms; /* until it is tried again */
	char reason[256];
};
SB_MUST_CHECK int pool_health_get(struct kv *kv, const char *account, const char *host, struct pool_health *h,
		     struct sb_error *e);
/* The same in two halves for a pipeline over many sandboxes (kv_pipe_*):
 * _send queues the queries, _recv takes their replies, in the order sent. */
SB_MUST_CHECK int pool_health_send(struct kv *kv, const char *account, const char *host, struct sb_error *e);
SB_MUST_CHECK int pool_health_recv(struct kv *kv, struct pool_health *h, struct sb_error *e);
/* A connection failure: unhealthy for the next backoff period. */
SB_MUST_CHECK int pool_mark_unhealthy(struct kv *kv, const char *account, const char *host, const char *reason,
			 struct sb_error *e);
/* A connection worked: forget the failures. */
SB_MUST_CHECK int pool_mark_healthy(struct kv *kv, const char *account, const char *host, struct sb_error *e);

/* Which repository caches a sandbox holds (sshbox:{<account>:<host>}:repos,
 * a set of paths_repo_key() names): the scheduler prefers a sandbox that
 * already has the job's repository.  Written after a job's checkout, no
 * TTL; registry_sandbox_remove deletes it with the sandbox (a re-added host
 * may be a fresh machine without those caches). */
#define POOL_KEY_REPOS_FMT "sshbox:{%s:%s}:repos"
SB_MUST_CHECK int pool_note_repo(struct kv *kv, const char *account, const char *host, const char *repo_key,
		   struct sb_error *e);
SB_MUST_CHECK int pool_has_repo(struct kv *kv, const char *account, const char *host, const char *repo_key, int *has,
		  struct sb_error *e);
SB_MUST_CHECK int pool_has_repo_send(struct kv *kv, const char *account, const char *host, const char *repo_key,
		       struct sb_error *e);
SB_MUST_CHECK int pool_has_repo_recv(struct kv *kv, int *has, struct sb_error *e);

#endif
