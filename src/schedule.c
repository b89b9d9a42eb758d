#include "schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "pool.h"
#include "validate.h"

#define RETRY_MIN_MS 50              /* jittered polling while queued */
#define RETRY_MAX_MS 250
#define STEP_ROUNDS 4                /* enqueue, lapsed entries: then wait */

struct schedule {
	struct kv *kv;
	struct schedule_req req;
	int loaded;                      /* candidates read for this round */
	struct sandbox_rec *cands;
	size_t nc;
	long long qlen;
	int64_t wait_deadline;
	struct pool_ticket ticket;
	char **excluded;                 /* hosts that failed to connect */
	size_t n_excluded;
	char last_why[SB_ERROR_MSG_MAX]; /* the last of those failures */
};

int schedule_new(struct schedule **out, struct kv *kv, const struct schedule_req *req, struct sb_error *e)
{
	struct schedule *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	s->kv = kv;
	s->req = *req;
	s->ticket = (struct pool_ticket)POOL_TICKET_INIT;
	srandom((unsigned)(getpid() ^ (unsigned)clock_now_ms()));
	*out = s;
	return 0;
}

/* The end of a round: out of the queue, candidates let go. */
static void round_end(struct schedule *s)
{
	if (s->ticket.queued) {
		struct sb_error ignored = SB_ERROR_INIT;
		sb_best_effort(pool_leave(s->kv, s->req.account, &s->ticket, &ignored));   /* else the entry lapses */
	}
	sandbox_rec_free_array(s->cands, s->nc);
	s->cands = NULL;
	s->nc = 0;
	s->loaded = 0;
}

void schedule_free(struct schedule *s)
{
	if (!s)
		return;
	round_end(s);
	while (s->n_excluded)
		free(s->excluded[--s->n_excluded]);
	free(s->excluded);
	free(s);
}

int64_t schedule_retry_ms(void)
{
	return RETRY_MIN_MS + random() % (RETRY_MAX_MS - RETRY_MIN_MS);
}

static SB_MUST_CHECK int is_excluded(const struct schedule *s, const char *host)
{
	size_t i;

	for (i = 0; i < s->n_excluded; i++)
		if (strcmp(s->excluded[i], host) == 0)
			return 1;
	return 0;
}

/* A job_id runs once per account: one look at its reservation (and only
 * when it is taken a look per sandbox to say where); the queue's length
 * comes in the same round trip. */
static SB_MUST_CHECK int check_unique(struct schedule *s, const struct sandbox_rec *all, size_t n, struct sb_error *e)
{
	const struct schedule_req *q = &s->req;
	int r, reserved = 0;
	size_t i;

	if ((r = lock_job_reserved_send(s->kv, q->account, q->job_id, e)) != 0 ||
	    (r = pool_queue_len_send(s->kv, q->account, e)) != 0 ||
	    (r = lock_job_reserved_recv(s->kv, &reserved, e)) != 0 ||
	    (r = pool_queue_len_recv(s->kv, &s->qlen, e)) != 0)
		return r;
	for (i = 0; reserved && i < n; i++) {
		int running = 0;

		if ((r = lock_job_running(s->kv, all[i].account, all[i].host, all[i].slots, q->job_id, &running, e)) != 0)
			return r;
		if (running)
			return sb_error_set(e, SB_ERR_EXISTS, "job_id '%s' is already running on sandbox '%s'", q->job_id,
					    all[i].host);
	}
	if (reserved)
		return sb_error_set(e, SB_ERR_EXISTS, "job_id '%s' is already running (account '%s')", q->job_id,
				    q->account);
	return 0;
}

/* The round's candidates from the registry. */
static SB_MUST_CHECK int load(struct schedule *s, struct sb_error *e)
{
	const struct schedule_req *q = &s->req;
	struct sandbox_rec *all = NULL;
	size_t n = 0, i, registered = 0;
	int r;

	if ((r = registry_sandbox_list(s->kv, q->account, &all, &n, e)) != 0)
		return r;
	if (!(s->cands = calloc(n ? n : 1, sizeof(*s->cands)))) {
		r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((r = check_unique(s, all, n, e)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if (q->pinned && strcmp(q->pinned, all[i].host) != 0)
			continue;
		registered++;
		if (strcmp(all[i].state, REGISTRY_STATE_ACTIVE) != 0 || is_excluded(s, all[i].host))
			continue;
		s->cands[s->nc++] = all[i];
		all[i] = (struct sandbox_rec)SANDBOX_REC_INIT;   /* moved */
	}
	if (!registered)
		r = q->pinned ? sb_error_set(e, SB_ERR_UNAVAILABLE, "sandbox '%s' is not registered for account '%s'",
					     q->pinned, q->account)
			      : sb_error_set(e, SB_ERR_UNAVAILABLE, "no sandbox registered for account '%s'", q->account);
	else if (!s->nc && s->n_excluded)
		r = q->pinned ? sb_error_set(e, SB_ERR_TRANSPORT, "sandbox '%s' is unreachable: %s", q->pinned, s->last_why)
			      : sb_error_set(e, SB_ERR_TRANSPORT,
					     "every active sandbox of account '%s' is unreachable (last: %s)", q->account,
					     s->last_why);
	else if (!s->nc)
		r = sb_error_set(e, SB_ERR_UNAVAILABLE, "no active sandbox for account '%s' (all disabled or draining)",
				 q->account);
	s->wait_deadline = clock_deadline_in((int64_t)q->wait_s * 1000);
	s->loaded = 1;
out:
	sandbox_rec_free_array(all, n);
	return r;
}

static SB_MUST_CHECK int by_load(const void *a, const void *b)
{
	const int *x = a, *y = b;

	return x[0] != y[0] ? x[0] - y[0] : x[1] - y[1];
}

/* Try the healthy candidates, least loaded first, when our place in the
 * queue (rank, -1 = not queued) is within the free slots; 0 when a slot was
 * taken.  *all_unhealthy tells why nothing could be tried. */
static SB_MUST_CHECK int try_acquire(struct schedule *s, long long rank, struct sandbox_rec *sbx, struct lock *lock,
		       int *all_unhealthy, struct sb_error *e)
{
	const char *repo_key = s->req.repo_key && *s->req.repo_key ? s->req.repo_key : NULL;
	size_t n = s->nc, i, ok = 0;
	int (*order)[3] = calloc(n ? n : 1, sizeof(*order));
	long long free_slots = 0;
	int r = SB_ERR_UNAVAILABLE;

	*all_unhealthy = 0;
	if (!order)
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	/* every candidate's health, holders (and repository cache) in one
	 * round trip, not three per sandbox */
	for (i = 0; i < n; i++) {
		const struct sandbox_rec *c = &s->cands[i];

		if ((r = pool_health_send(s->kv, c->account, c->host, e)) != 0 ||
		    (r = lock_list_holders_send(s->kv, c->account, c->host, c->slots, e)) != 0 ||
		    (repo_key && (r = pool_has_repo_send(s->kv, c->account, c->host, repo_key, e)) != 0))
			goto out;
	}
	for (i = 0; i < n; i++) {
		const struct sandbox_rec *c = &s->cands[i];
		struct lock_holder h[VALIDATE_SLOTS_MAX];
		struct pool_health health;
		int used = 0, has_repo = 0;

		if ((r = pool_health_recv(s->kv, &health, e)) != 0 ||
		    (r = lock_list_holders_recv(s->kv, c->account, c->host, c->slots, h, &used, e)) != 0 ||
		    (repo_key && (r = pool_has_repo_recv(s->kv, &has_repo, e)) != 0))
			goto out;
		if (health.unhealthy)
			continue;
		free_slots += c->slots - used;
		if (used >= c->slots)
			has_repo = 0;   /* a full sandbox goes last whatever it caches */
		/* a warm repository cache first, then the fraction used (scaled),
		 * then a random tie-break; and the index */
		order[ok][0] = (has_repo ? 0 : 1000000) + used * 1000 / c->slots;
		order[ok][1] = (int)(random() & 0xffff);
		order[ok][2] = (int)i;
		ok++;
	}
	*all_unhealthy = n > 0 && ok == 0;
	r = SB_ERR_UNAVAILABLE;
	if (rank >= free_slots)
		goto out;   /* earlier arrivals go first */
	qsort(order, ok, sizeof(*order), by_load);
	for (i = 0; i < ok; i++) {
		struct sandbox_rec *c = &s->cands[order[i][2]];

		r = lock_acquire(s->kv, c->account, c->host, c->slots, s->req.job_id, s->req.lock_ttl_ms, lock, e);
		if (r == 0) {
			*sbx = *c;
			*c = (struct sandbox_rec)SANDBOX_REC_INIT;   /* moved */
			break;
		}
		if (r != SB_ERR_UNAVAILABLE)
			break;
	}
out:
	free(order);
	return r;
}

static SB_MUST_CHECK int wait_over(const struct schedule *s, int all_unhealthy, struct sb_error *e)
{
	const struct schedule_req *q = &s->req;

	if (all_unhealthy && q->pinned)
		return sb_error_set(e, SB_ERR_TRANSPORT, "sandbox '%s' is marked unhealthy (see sshbox status)", q->pinned);
	if (all_unhealthy)
		return sb_error_set(e, SB_ERR_TRANSPORT,
				    "every active sandbox of account '%s' is marked unhealthy (see sshbox status)",
				    q->account);
	return sb_error_set(e, SB_ERR_UNAVAILABLE, "no free slot on the %zu active sandbox%s of account '%s' within %d s",
			    s->nc, s->nc == 1 ? "" : "es", q->account, q->wait_s);
}

int schedule_step(struct schedule *s, struct sandbox_rec *sbx, struct lock *lock, long long *position, struct sb_error *e)
{
	int r = 0, round;

	*position = 0;
	if (!s->loaded && (r = load(s, e)) != 0)
		goto done;
	for (round = 0; round < STEP_ROUNDS; round++) {
		long long rank = -1;
		int all_unhealthy = 0;

		/* newcomers queue behind earlier arrivals (on any host) */
		if (s->qlen > 0 || s->ticket.queued) {
			if (!s->ticket.queued &&
			    (r = pool_enqueue(s->kv, s->req.account, s->req.job_id, &s->ticket, e)) != 0)
				goto done;
			if ((r = pool_poll(s->kv, s->req.account, &s->ticket, &rank, e)) != 0)
				goto done;
			if (rank < 0)
				continue;   /* our entry lapsed: queue again, at the end */
		}
		r = try_acquire(s, rank, sbx, lock, &all_unhealthy, e);
		if (r != SB_ERR_UNAVAILABLE)
			goto done;
		if (!s->ticket.queued) {
			s->qlen = 1;
			continue;
		}
		*position = rank + 1;
		if (clock_expired(s->wait_deadline)) {
			r = wait_over(s, all_unhealthy, e);
			goto done;
		}
		return SCHEDULE_WAIT;
	}
	return SCHEDULE_WAIT;
done:
	round_end(s);
	return r;
}

int schedule_exclude(struct schedule *s, struct sandbox_rec *sbx, struct lock *lock, const struct sb_error *why)
{
	struct sb_error ignored = SB_ERROR_INIT;
	char **grown = realloc(s->excluded, (s->n_excluded + 1) * sizeof(*grown));
	int r = 0;

	sb_best_effort(lock_unlock(s->kv, lock, &ignored));   /* else the lease runs out */
	sb_best_effort(pool_mark_unhealthy(s->kv, sbx->account, sbx->host, why->msg, &ignored));   /* a hint to other jobs */
	log_warn("%s; trying another sandbox", why->msg);
	snprintf(s->last_why, sizeof(s->last_why), "%s", why->msg);
	if (!grown)
		r = SB_ERR_NOMEM;
	else if (!(s->excluded = grown, s->excluded[s->n_excluded] = strdup(sbx->host)))
		r = SB_ERR_NOMEM;
	else
		s->n_excluded++;
	sandbox_rec_release(sbx);
	*lock = (struct lock)LOCK_INIT;
	s->loaded = 0;
	return r;
}
