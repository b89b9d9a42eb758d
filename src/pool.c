#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entropy.h"
#include "validate.h"

#define KEY_MAX 400

/* KEYS: seq, queue, alive.  ARGV: job_id, token, ttl.  -> member */
static struct kv_script enqueue_script = KV_SCRIPT("pool_enqueue",
	"local t = redis.call('TIME')\n"
	"local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
	"local ticket = redis.call('INCR', KEYS[1])\n"
	"local m = string.format('%d', ticket) .. ':' .. ARGV[1] .. ':' .. ARGV[2]\n"
	"redis.call('ZADD', KEYS[2], ticket, m)\n"
	"redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), m)\n"
	"return m\n");

/* KEYS: queue, alive.  ARGV: member (may be ""), ttl.  -> {rank or -1, live count} */
static struct kv_script poll_script = KV_SCRIPT("pool_poll",
	"local t = redis.call('TIME')\n"
	"local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
	"local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)\n"
	"for _, m in ipairs(stale) do redis.call('ZREM', KEYS[1], m); redis.call('ZREM', KEYS[2], m) end\n"
	"local rank = -1\n"
	"if ARGV[1] ~= '' then\n"
	"  local r = redis.call('ZRANK', KEYS[1], ARGV[1])\n"
	"  if r then\n"
	"    rank = r\n"
	"    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])\n"
	"  end\n"
	"end\n"
	"return {rank, redis.call('ZCARD', KEYS[1])}\n");

/* KEYS: health, failures.  ARGV: reason, base_ms, cap_ms, jitter_permille.
 * -> backoff ms */
static struct kv_script unhealthy_script = KV_SCRIPT("pool_unhealthy",
	"local n = redis.call('INCR', KEYS[2])\n"
	"redis.call('EXPIRE', KEYS[2], 3600)\n"
	"local ms = tonumber(ARGV[2]) * 2 ^ math.min(n - 1, 20)\n"
	"if ms > tonumber(ARGV[3]) then ms = tonumber(ARGV[3]) end\n"
	"ms = math.floor(ms * (1000 + tonumber(ARGV[4])) / 1000)\n"
	"local t = redis.call('TIME')\n"
	"local since = redis.call('HGET', KEYS[1], 'since') or string.format('%d', t[1])\n"
	"redis.call('HSET', KEYS[1], 'reason', ARGV[1], 'since', since, 'failures', string.format('%d', n))\n"
	"redis.call('PEXPIRE', KEYS[1], string.format('%d', ms))\n"
	"return ms\n");

static SB_MUST_CHECK int queue_keys(const char *account, char q[KEY_MAX], char alive[KEY_MAX], char seq[KEY_MAX],
		      struct sb_error *e)
{
	int r = validate_account(account, e);

	if (r)
		return r;
	snprintf(q, KEY_MAX, "sshbox:queue:%s", account);
	snprintf(alive, KEY_MAX, "sshbox:queue:%s:alive", account);
	snprintf(seq, KEY_MAX, "sshbox:queue:%s:seq", account);
	return 0;
}

static SB_MUST_CHECK int poll_send(struct kv *kv, const char *account, const char *member, struct sb_error *e)
{
	char q[KEY_MAX], alive[KEY_MAX], seq[KEY_MAX], ttl[16];
	const char *keys[2], *args[2];
	int r;

	if ((r = queue_keys(account, q, alive, seq, e)) != 0)
		return r;
	snprintf(ttl, sizeof(ttl), "%d", POOL_QUEUE_TTL_MS);
	keys[0] = q;
	keys[1] = alive;
	args[0] = member;
	args[1] = ttl;
	return kv_pipe_eval(kv, &poll_script, e, 2, keys, 2, args);
}

static SB_MUST_CHECK int poll_recv(struct kv *kv, long long *rank, long long *len, struct sb_error *e)
{
	struct kv_value reply = KV_VALUE_INIT;
	int r;

	if ((r = kv_pipe_reply(kv, &reply, e)) != 0)
		return r;
	if (reply.type != KV_ARRAY || reply.n != 2 || reply.elem[0].type != KV_INTEGER ||
	    reply.elem[1].type != KV_INTEGER)
		r = kv_unexpected(kv, &reply, "script pool_poll", e);
	else {
		if (rank)
			*rank = reply.elem[0].integer;
		if (len)
			*len = reply.elem[1].integer;
	}
	kv_value_release(&reply);
	return r;
}

static SB_MUST_CHECK int run_poll(struct kv *kv, const char *account, const char *member, long long *rank, long long *len,
		    struct sb_error *e)
{
	int r = poll_send(kv, account, member, e);

	return r ? r : poll_recv(kv, rank, len, e);
}

int pool_queue_len(struct kv *kv, const char *account, long long *len, struct sb_error *e)
{
	return run_poll(kv, account, "", NULL, len, e);
}

int pool_queue_len_send(struct kv *kv, const char *account, struct sb_error *e)
{
	return poll_send(kv, account, "", e);
}

int pool_queue_len_recv(struct kv *kv, long long *len, struct sb_error *e)
{
	return poll_recv(kv, NULL, len, e);
}

int pool_enqueue(struct kv *kv, const char *account, const char *job_id, struct pool_ticket *t,
		  struct sb_error *e)
{
	char q[KEY_MAX], alive[KEY_MAX], seq[KEY_MAX], ttl[16], token[33];
	unsigned char rnd[16];
	const char *keys[3], *args[3];
	struct kv_value reply = KV_VALUE_INIT;
	int r, i;

	if ((r = queue_keys(account, q, alive, seq, e)) != 0 || (r = validate_job_id(job_id, e)) != 0)
		return r;
	if (entropy_fill(rnd, sizeof(rnd)) != 0)
		return sb_error_set(e, SB_ERR_INTERNAL, "no randomness for a queue ticket");
	for (i = 0; i < 16; i++)
		snprintf(token + 2 * i, 3, "%02x", rnd[i]);
	snprintf(ttl, sizeof(ttl), "%d", POOL_QUEUE_TTL_MS);
	keys[0] = seq;
	keys[1] = q;
	keys[2] = alive;
	args[0] = job_id;
	args[1] = token;
	args[2] = ttl;
	if ((r = kv_eval(kv, &enqueue_script, &reply, e, 3, keys, 3, args)) != 0)
		return r;
	if (reply.type != KV_STRING || reply.len >= sizeof(t->member))
		r = kv_unexpected(kv, &reply, "script pool_enqueue", e);
	else {
		memcpy(t->member, reply.str, reply.len + 1);
		t->ticket = strtoll(t->member, NULL, 10);
		t->queued = 1;
	}
	kv_value_release(&reply);
	return r;
}

int pool_poll(struct kv *kv, const char *account, struct pool_ticket *t, long long *rank,
	       struct sb_error *e)
{
	int r = run_poll(kv, account, t->member, rank, NULL, e);

	if (!r && *rank < 0)
		t->queued = 0;
	return r;
}

int pool_leave(struct kv *kv, const char *account, struct pool_ticket *t, struct sb_error *e)
{
	char q[KEY_MAX], alive[KEY_MAX], seq[KEY_MAX];
	int r;

	if (!t->queued)
		return 0;
	t->queued = 0;
	if ((r = queue_keys(account, q, alive, seq, e)) != 0 ||
	    (r = kv_cmd(kv, NULL, e, "ZREM", q, t->member, NULL)) != 0)
		return r;
	return kv_cmd(kv, NULL, e, "ZREM", alive, t->member, NULL);
}

static SB_MUST_CHECK int health_keys(const char *account, const char *host, char h[KEY_MAX], char f[KEY_MAX],
		       struct sb_error *e)
{
	char canon[VALIDATE_HOST_MAX + 1];
	int r;

	if ((r = validate_account(account, e)) != 0 ||
	    (r = validate_host_canonical(host, canon, sizeof(canon), e)) != 0)
		return r;
	snprintf(h, KEY_MAX, "sshbox:{%s:%s}:health", account, canon);
	snprintf(f, KEY_MAX, "sshbox:{%s:%s}:failures", account, canon);
	return 0;
}

int pool_health_send(struct kv *kv, const char *account, const char *host, struct sb_error *e)
{
	char hk[KEY_MAX], fk[KEY_MAX];
	const char *hgetall[] = { "HGETALL", hk }, *pttl[] = { "PTTL", hk };
	int r;

	/* the PTTL goes along: a follow-up command would break a pipeline */
	if ((r = health_keys(account, host, hk, fk, e)) != 0 || (r = kv_pipe_add(kv, e, 2, hgetall)) != 0)
		return r;
	return kv_pipe_add(kv, e, 2, pttl);
}

int pool_health_recv(struct kv *kv, struct pool_health *h, struct sb_error *e)
{
	struct kv_value reply = KV_VALUE_INIT, ttl = KV_VALUE_INIT;
	const struct kv_value *v;
	size_t i;
	int r;

	memset(h, 0, sizeof(*h));
	if ((r = kv_pipe_reply(kv, &reply, e)) != 0)
		return r;
	if ((r = kv_pipe_reply(kv, &ttl, e)) != 0)
		goto out;
	if (reply.type != KV_ARRAY) {
		r = kv_unexpected(kv, &reply, "HGETALL health", e);
		goto out;
	}
	for (i = 0; i + 1 < reply.n; i += 2)
		if (reply.elem[i].type == KV_STRING && reply.elem[i + 1].type == KV_STRING)
			h->unhealthy = 1;
	if ((v = kv_value_field(&reply, "reason")) && v->type == KV_STRING)
		snprintf(h->reason, sizeof(h->reason), "%s", v->str);
	if ((v = kv_value_field(&reply, "since")) && v->type == KV_STRING)
		h->since = strtoll(v->str, NULL, 10);
	if ((v = kv_value_field(&reply, "failures")) && v->type == KV_STRING)
		h->failures = strtoll(v->str, NULL, 10);
	if (h->unhealthy && ttl.type == KV_INTEGER)
		h->retry_in_ms = ttl.integer;
out:
	kv_value_release(&ttl);
	kv_value_release(&reply);
	return r;
}

int pool_health_get(struct kv *kv, const char *account, const char *host, struct pool_health *h,
		     struct sb_error *e)
{
	int r = pool_health_send(kv, account, host, e);

	if (r) {
		memset(h, 0, sizeof(*h));
		return r;
	}
	return pool_health_recv(kv, h, e);
}

int pool_mark_unhealthy(struct kv *kv, const char *account, const char *host, const char *reason,
			 struct sb_error *e)
{
	char hk[KEY_MAX], fk[KEY_MAX], jitter[16], why[256];
	const char *keys[2], *args[4];
	unsigned char rnd[2];
	int r;

	if ((r = health_keys(account, host, hk, fk, e)) != 0)
		return r;
	if (entropy_fill(rnd, sizeof(rnd)) != 0)
		rnd[0] = rnd[1] = 0;
	/* -200..+200 permille */
	snprintf(jitter, sizeof(jitter), "%d", (int)(((unsigned)rnd[0] << 8 | rnd[1]) % 401) - 200);
	snprintf(why, sizeof(why), "%s", reason);
	keys[0] = hk;
	keys[1] = fk;
	args[0] = why;
	args[1] = "2000";
	args[2] = "300000";
	args[3] = jitter;
	return kv_eval(kv, &unhealthy_script, NULL, e, 2, keys, 4, args);
}

int pool_mark_healthy(struct kv *kv, const char *account, const char *host, struct sb_error *e)
{
	char hk[KEY_MAX], fk[KEY_MAX];
	int r;

	if ((r = health_keys(account, host, hk, fk, e)) != 0)
		return r;
	return kv_cmd(kv, NULL, e, "DEL", hk, fk, NULL);
}

static SB_MUST_CHECK int repos_key(const char *account, const char *host, char out[KEY_MAX], struct sb_error *e)
{
	char canon[VALIDATE_HOST_MAX + 1];
	int r;

	if ((r = validate_account(account, e)) != 0 ||
	    (r = validate_host_canonical(host, canon, sizeof(canon), e)) != 0)
		return r;
	snprintf(out, KEY_MAX, POOL_KEY_REPOS_FMT, account, canon);
	return 0;
}

int pool_note_repo(struct kv *kv, const char *account, const char *host, const char *repo_key,
		   struct sb_error *e)
{
	char k[KEY_MAX];
	int r;

	if ((r = repos_key(account, host, k, e)) != 0)
		return r;
	return kv_cmd(kv, NULL, e, "SADD", k, repo_key, NULL);
}

int pool_has_repo_send(struct kv *kv, const char *account, const char *host, const char *repo_key,
		       struct sb_error *e)
{
	char k[KEY_MAX];
	const char *argv[] = { "SISMEMBER", k, repo_key };
	int r;

	if ((r = repos_key(account, host, k, e)) != 0)
		return r;
	return kv_pipe_add(kv, e, 3, argv);
}

int pool_has_repo_recv(struct kv *kv, int *has, struct sb_error *e)
{
	long long v = 0;
	int r = kv_pipe_reply_integer(kv, "SISMEMBER", &v, e);

	*has = !r && v == 1;
	return r;
}

int pool_has_repo(struct kv *kv, const char *account, const char *host, const char *repo_key, int *has,
		  struct sb_error *e)
{
	int r = pool_has_repo_send(kv, account, host, repo_key, e);

	*has = 0;
	return r ? r : pool_has_repo_recv(kv, has, e);
}
