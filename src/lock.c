#include "lock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "entropy.h"
#include "secret.h"
#include "validate.h"

/* KEYS = slot keys 0..n-1, then the fence key; ARGV = token, ttl_ms, job_id.
 * Lua 5.1 turns 16-digit numbers into "1.7957270284007e+15" when it
 * concatenates them: every number is string.format('%d')-ed first. */
static struct kv_script acquire_script = KV_SCRIPT("lock_acquire",
	"local n = #KEYS - 3\n"
	"local job = KEYS[n+3]\n"
	"if redis.call('EXISTS', job) == 1 then return -2 end\n"
	"for i = 1, n do\n"
	"  if redis.call('EXISTS', KEYS[i]) == 0 then\n"
	"    local t = redis.call('TIME')\n"
	"    if redis.call('EXISTS', KEYS[n+1]) == 0 then\n"
	"      redis.call('SET', KEYS[n+1], string.format('%d', t[1] * 1000000 + t[2]))\n"
	"    end\n"
	"    local fence = redis.call('INCR', KEYS[n+1])\n"
	"    local value = ARGV[1] .. ':' .. string.format('%d', fence) .. ':' .. ARGV[3]\n"
	"    redis.call('SET', KEYS[i], value, 'PX', ARGV[2])\n"
	"    redis.call('SET', job, value, 'PX', ARGV[2])\n"
	"    redis.call('HSET', KEYS[n+2], string.format('%d', i - 1), string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000)))\n"
	"    return {i - 1, fence}\n"
	"  end\n"
	"end\n"
	"return false\n");

/* 1 renewed, 0 not ours (gone or someone else's). */
static struct kv_script renew_script = KV_SCRIPT("lock_renew",
	"if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
	"  if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end\n"
	"  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
	"end\n"
	"return 0\n");

/* 1 released, 0 held by someone else, -1 already gone. */
static struct kv_script unlock_script = KV_SCRIPT("lock_unlock",
	"if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end\n"
	"local v = redis.call('GET', KEYS[1])\n"
	"if v == false then return -1 end\n"
	"if v == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
	"return 0\n");

/* Flat quads slot, value, pttl, age_ms for every held slot (age -1 when
 * unknown).  KEYS: the slots, then the since hash. */
static struct kv_script holders_script = KV_SCRIPT("lock_holders",
	"local r = {}\n"
	"local n = #KEYS - 1\n"
	"local t = redis.call('TIME')\n"
	"local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
	"for i = 1, n do\n"
	"  local v = redis.call('GET', KEYS[i])\n"
	"  if v then\n"
	"    r[#r + 1] = i - 1\n"
	"    r[#r + 1] = v\n"
	"    r[#r + 1] = redis.call('PTTL', KEYS[i])\n"
	"    local since = tonumber(redis.call('HGET', KEYS[n+1], string.format('%d', i - 1)))\n"
	"    if since then r[#r + 1] = now - since else r[#r + 1] = -1 end\n"
	"  end\n"
	"end\n"
	"return r\n");

static SB_MUST_CHECK int check_sandbox(const char *account, const char *host, char canon[VALIDATE_HOST_MAX + 1],
			 struct sb_error *e)
{
	int r = validate_account(account, e);

	if (r)
		return r;
	return validate_host_canonical(host, canon, VALIDATE_HOST_MAX + 1, e);
}

int lock_key_job(char *out, size_t outsz, const char *account, const char *job_id, struct sb_error *e)
{
	int r = validate_account(account, e);

	if (!r)
		r = validate_job_id(job_id, e);
	if (r)
		return r;
	if (snprintf(out, outsz, LOCK_KEY_JOB_FMT, account, job_id) >= (int)outsz)
		return sb_error_set(e, SB_ERR_INTERNAL, "lock key name too long");
	return 0;
}

int lock_key_slot(char *out, size_t outsz, const char *account, const char *host, int slot,
		  struct sb_error *e)
{
	char canon[VALIDATE_HOST_MAX + 1];
	int r = check_sandbox(account, host, canon, e), n;

	if (r)
		return r;
	if (slot < 0 || slot >= VALIDATE_SLOTS_MAX)
		return sb_error_set(e, SB_ERR_USAGE, "invalid slot %d for sandbox '%s'", slot, canon);
	n = snprintf(out, outsz, LOCK_KEY_SLOT_FMT, account, canon, slot);
	if (n < 0 || (size_t)n >= outsz)
		return sb_error_set(e, SB_ERR_INTERNAL, "lock key for sandbox '%s' too long", canon);
	return 0;
}

int lock_key_fence(char *out, size_t outsz, const char *account, const char *host,
		   struct sb_error *e)
{
	char canon[VALIDATE_HOST_MAX + 1];
	int r = check_sandbox(account, host, canon, e), n;

	if (r)
		return r;
	n = snprintf(out, outsz, LOCK_KEY_FENCE_FMT, account, canon);
	if (n < 0 || (size_t)n >= outsz)
		return sb_error_set(e, SB_ERR_INTERNAL, "fence key for sandbox '%s' too long", canon);
	return 0;
}

/* The slot keys (and optionally the fence key) of a sandbox, in one block. */
struct keyset {
	char (*names)[LOCK_KEY_MAX];
	const char **ptrs;
	int n;
};

static void keyset_release(struct keyset *ks)
{
	free(ks->names);
	free(ks->ptrs);
	ks->names = NULL;
	ks->ptrs = NULL;
}

static SB_MUST_CHECK int keyset_build(struct keyset *ks, const char *account, const char *host, int slots,
			int with_fence, const char *job_id, struct sb_error *e)
{
	int i, r, k;

	/* slots, [fence], since, [job] */
	ks->n = slots + (with_fence ? 1 : 0) + 1 + (job_id ? 1 : 0);
	ks->names = calloc((size_t)ks->n, sizeof(*ks->names));
	ks->ptrs = calloc((size_t)ks->n, sizeof(*ks->ptrs));
	if (!ks->names || !ks->ptrs) {
		keyset_release(ks);
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	}
	for (i = 0; i < slots; i++) {
		r = lock_key_slot(ks->names[i], LOCK_KEY_MAX, account, host, i, e);
		if (r)
			goto fail;
		ks->ptrs[i] = ks->names[i];
	}
	k = slots;
	if (with_fence) {
		r = lock_key_fence(ks->names[k], LOCK_KEY_MAX, account, host, e);
		if (r)
			goto fail;
		ks->ptrs[k] = ks->names[k];
		k++;
	}
	if (snprintf(ks->names[k], LOCK_KEY_MAX, LOCK_KEY_SINCE_FMT, account, host) >= LOCK_KEY_MAX) {
		r = sb_error_set(e, SB_ERR_INTERNAL, "lock key name too long");
		goto fail;
	}
	ks->ptrs[k] = ks->names[k];
	if (job_id) {
		k++;
		if ((r = lock_key_job(ks->names[k], LOCK_KEY_MAX, account, job_id, e)) != 0)
			goto fail;
		ks->ptrs[k] = ks->names[k];
	}
	return 0;
fail:
	keyset_release(ks);
	return r;
}

static int64_t lease_margin(int64_t ttl_ms)
{
	int64_t m = ttl_ms / 100;

	return m < 1000 ? 1000 : m;
}

static SB_MUST_CHECK int make_token(char out[33], struct sb_error *e)
{
	unsigned char raw[16];
	static const char hex[] = "0123456789abcdef";
	int i;

	if (entropy_fill(raw, sizeof(raw)) != 0)
		return sb_error_set(e, SB_ERR_INTERNAL, "cannot draw a random lock token (getrandom failed)");
	for (i = 0; i < 16; i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[32] = '\0';
	secret_wipe(raw, sizeof(raw));
	return 0;
}

/* The stored value "token:fence:job_id", byte for byte what the acquire
 * script wrote (it formats the fence with %d, we with %lld). */
static SB_MUST_CHECK int lock_value(const struct lock *l, char *out, size_t outsz)
{
	int n = snprintf(out, outsz, "%s:%lld:%s", l->token, l->fence, l->job_id);

	return (n < 0 || (size_t)n >= outsz) ? -1 : 0;
}

int lock_acquire(struct kv *kv, const char *account, const char *host, int slots,
		 const char *job_id, int64_t ttl_ms, struct lock *out, struct sb_error *e)
{
	struct lock l = LOCK_INIT;
	struct keyset ks = { NULL, NULL, 0 };
	struct kv_value reply = KV_VALUE_INIT;
	char ttl[24];
	const char *args[3];
	int64_t t_send;
	int r;

	r = check_sandbox(account, host, l.host, e);
	if (r)
		return r;
	r = validate_slots_num(slots, e);
	if (r)
		return r;
	r = validate_job_id(job_id, e);
	if (r)
		return r;
	if (ttl_ms < LOCK_TTL_MIN_MS || ttl_ms > LOCK_TTL_MAX_MS)
		return sb_error_set(e, SB_ERR_USAGE, "invalid lock ttl %lld ms: must be between %d and %d",
				    (long long)ttl_ms, LOCK_TTL_MIN_MS, LOCK_TTL_MAX_MS);
	snprintf(l.account, sizeof(l.account), "%s", account);
	snprintf(l.job_id, sizeof(l.job_id), "%s", job_id);
	l.ttl_ms = ttl_ms;
	r = make_token(l.token, e);
	if (r)
		return r;
	r = keyset_build(&ks, account, l.host, slots, 1, job_id, e);
	if (r)
		return r;
	snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
	args[0] = l.token;
	args[1] = ttl;
	args[2] = l.job_id;
	t_send = clock_now_ms();
	r = kv_eval(kv, &acquire_script, &reply, e, ks.n, ks.ptrs, 3, args);
	if (r)
		goto out;
	if (reply.type == KV_INTEGER && reply.integer == -2) {
		r = sb_error_set(e, SB_ERR_EXISTS, "job_id '%s' is already running for account '%s'", l.job_id,
				 l.account);
		goto out;
	}
	if (reply.type == KV_NIL) {
		r = sb_error_set(e, SB_ERR_UNAVAILABLE, "all %d slots of sandbox '%s' (account '%s') are busy",
				 slots, l.host, l.account);
		goto out;
	}
	if (reply.type != KV_ARRAY || reply.n != 2 ||
	    reply.elem[0].type != KV_INTEGER || reply.elem[1].type != KV_INTEGER ||
	    reply.elem[0].integer < 0 || reply.elem[0].integer >= slots || reply.elem[1].integer <= 0) {
		r = kv_unexpected(kv, &reply, "script lock_acquire", e);
		goto out;
	}
	l.slot = (int)reply.elem[0].integer;
	l.fence = reply.elem[1].integer;
	l.deadline_ms = t_send + ttl_ms - lease_margin(ttl_ms);
	l.renewed_ms = t_send;
	l.held = 1;
	*out = l;
out:
	kv_value_release(&reply);
	keyset_release(&ks);
	secret_wipe(&l, sizeof(l));
	return r;
}

int lock_renew(struct kv *kv, struct lock *l, struct sb_error *e)
{
	char key[LOCK_KEY_MAX], jkey[LOCK_KEY_MAX], value[160], ttl[24];
	const char *keys[2], *args[2];
	long long v = 0;
	int64_t t_send;
	int r;

	if (!l->held || !l->token[0])
		return sb_error_set(e, SB_ERR_NOTFOUND, "the lock on sandbox '%s' slot %d (account '%s') is not held",
				    l->host, l->slot, l->account);
	t_send = clock_now_ms();
	if (t_send >= l->deadline_ms) {
		l->held = 0;
		return sb_error_set(e, SB_ERR_NOTFOUND,
				    "lost the lock on sandbox '%s' slot %d (account '%s'): no renewal was confirmed before the lease deadline",
				    l->host, l->slot, l->account);
	}
	r = lock_key_slot(key, sizeof(key), l->account, l->host, l->slot, e);
	if (r)
		return r;
	if (lock_value(l, value, sizeof(value)) < 0)
		return sb_error_set(e, SB_ERR_INTERNAL, "lock value too long");
	snprintf(ttl, sizeof(ttl), "%lld", (long long)l->ttl_ms);
	if ((r = lock_key_job(jkey, sizeof(jkey), l->account, l->job_id, e)) != 0)
		goto out;
	keys[0] = key;
	keys[1] = jkey;
	args[0] = value;
	args[1] = ttl;
	r = kv_eval_integer(kv, &renew_script, &v, e, 2, keys, 2, args);
	if (r)
		goto out;
	if (v != 0 && v != 1) {
		r = sb_error_set(e, SB_ERR_REDIS, "Redis at %s: unexpected reply to script lock_renew: integer",
				 kv_where(kv));
		goto out;
	}
	if (v == 0) {
		l->held = 0;
		r = sb_error_set(e, SB_ERR_NOTFOUND,
				 "lost the lock on sandbox '%s' slot %d (account '%s'): the lease expired or another job holds the slot",
				 l->host, l->slot, l->account);
		goto out;
	}
	l->deadline_ms = t_send + l->ttl_ms - lease_margin(l->ttl_ms);
	l->renewed_ms = t_send;
out:
	secret_wipe(value, sizeof(value));
	return r;
}

int lock_unlock(struct kv *kv, struct lock *l, struct sb_error *e)
{
	char key[LOCK_KEY_MAX], jkey[LOCK_KEY_MAX], value[160];
	const char *keys[2], *args[1];
	long long v = 0;
	int r;

	l->held = 0;
	if (!l->token[0] || l->slot < 0)
		return 0;
	r = lock_key_slot(key, sizeof(key), l->account, l->host, l->slot, e);
	if (r)
		return r;
	if (lock_value(l, value, sizeof(value)) < 0)
		return sb_error_set(e, SB_ERR_INTERNAL, "lock value too long");
	if ((r = lock_key_job(jkey, sizeof(jkey), l->account, l->job_id, e)) != 0)
		return r;
	keys[0] = key;
	keys[1] = jkey;
	args[0] = value;
	r = kv_eval_integer(kv, &unlock_script, &v, e, 2, keys, 1, args);
	if (r)
		goto out;
	if (v < -1 || v > 1) {
		r = sb_error_set(e, SB_ERR_REDIS, "Redis at %s: unexpected reply to script lock_unlock: integer",
				 kv_where(kv));
		goto out;
	}
	if (v == -1)
		r = sb_error_set(e, SB_ERR_NOTFOUND,
				 "the lock on sandbox '%s' slot %d (account '%s') had already expired",
				 l->host, l->slot, l->account);
	else if (v == 0)
		r = sb_error_set(e, SB_ERR_NOTFOUND,
				 "the lock on sandbox '%s' slot %d (account '%s') had been taken by another holder",
				 l->host, l->slot, l->account);
	/* a definite answer: nothing of ours is left to release */
	secret_wipe(l->token, sizeof(l->token));
out:
	secret_wipe(value, sizeof(value));
	return r;
}

/* "token:fence:job_id" with a 32-hex token, a positive fence and a valid
 * job_id; anything else was not written by lock_acquire. */
static SB_MUST_CHECK int parse_value(const char *v, size_t len, long long *fence, char job_id[65])
{
	size_t i = 0;
	long long f = 0;

	if (len < 35 || memchr(v, '\0', len))
		return -1;
	for (i = 0; i < 32; i++)
		if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f')))
			return -1;
	if (v[32] != ':')
		return -1;
	for (i = 33; i < len && v[i] != ':'; i++) {
		if (v[i] < '0' || v[i] > '9' || i - 33 >= 18)
			return -1;
		f = f * 10 + (v[i] - '0');
	}
	if (i == 33 || i >= len || f <= 0)
		return -1;
	i++;
	if (len - i == 0 || len - i > 64)
		return -1;
	memcpy(job_id, v + i, len - i);
	job_id[len - i] = '\0';
	if (validate_job_id(job_id, NULL) != 0)
		return -1;
	*fence = f;
	return 0;
}

int lock_list_holders_send(struct kv *kv, const char *account, const char *host, int slots,
			   struct sb_error *e)
{
	struct keyset ks = { NULL, NULL, 0 };
	char canon[VALIDATE_HOST_MAX + 1];
	int r;

	if ((r = check_sandbox(account, host, canon, e)) != 0 || (r = validate_slots_num(slots, e)) != 0 ||
	    (r = keyset_build(&ks, account, canon, slots, 0, NULL, e)) != 0)
		return r;
	r = kv_pipe_eval(kv, &holders_script, e, ks.n, ks.ptrs, 0, NULL);
	keyset_release(&ks);
	return r;
}

int lock_list_holders_recv(struct kv *kv, const char *account, const char *host, int slots,
			   struct lock_holder *out, int *n_out, struct sb_error *e)
{
	struct kv_value reply = KV_VALUE_INIT;
	size_t i;
	int r, n = 0, last = -1;

	*n_out = 0;
	if ((r = kv_pipe_reply(kv, &reply, e)) != 0)
		return r;
	if (reply.type != KV_ARRAY || reply.n % 4 != 0 || reply.n / 4 > (size_t)slots) {
		r = kv_unexpected(kv, &reply, "script lock_holders", e);
		goto out;
	}
	for (i = 0; i < reply.n; i += 4) {
		const struct kv_value *rs = &reply.elem[i], *rv = &reply.elem[i + 1], *rt = &reply.elem[i + 2];
		const struct kv_value *ra = &reply.elem[i + 3];
		struct lock_holder h;

		if (rs->type != KV_INTEGER || rv->type != KV_STRING || rt->type != KV_INTEGER ||
		    ra->type != KV_INTEGER || rs->integer <= last || rs->integer >= slots) {
			r = kv_unexpected(kv, &reply, "script lock_holders", e);
			goto out;
		}
		memset(&h, 0, sizeof(h));
		h.slot = (int)rs->integer;
		last = h.slot;
		if (parse_value(rv->str, rv->len, &h.fence, h.job_id) != 0) {
			char key[LOCK_KEY_MAX] = "?";

			sb_best_effort(lock_key_slot(key, sizeof(key), account, host, h.slot, e));   /* "?" stays */
			r = sb_error_set(e, SB_ERR_REDIS, "Redis at %s: malformed lock value in key '%s'",
					 kv_where(kv), key);
			goto out;
		}
		h.pttl_ms = rt->integer;
		h.age_ms = ra->integer;
		out[n++] = h;
	}
	*n_out = n;
out:
	kv_value_release(&reply);
	return r;
}

int lock_list_holders(struct kv *kv, const char *account, const char *host, int slots,
		      struct lock_holder *out, int *n_out, struct sb_error *e)
{
	int r = lock_list_holders_send(kv, account, host, slots, e);

	*n_out = 0;
	return r ? r : lock_list_holders_recv(kv, account, host, slots, out, n_out, e);
}

int lock_job_reserved_send(struct kv *kv, const char *account, const char *job_id, struct sb_error *e)
{
	char key[LOCK_KEY_MAX];
	const char *argv[] = { "EXISTS", key };
	int r;

	if ((r = lock_key_job(key, sizeof(key), account, job_id, e)) != 0)
		return r;
	return kv_pipe_add(kv, e, 2, argv);
}

int lock_job_reserved_recv(struct kv *kv, int *reserved, struct sb_error *e)
{
	long long v = 0;
	int r = kv_pipe_reply_integer(kv, "EXISTS", &v, e);

	*reserved = !r && v > 0;
	return r;
}

int lock_job_reserved(struct kv *kv, const char *account, const char *job_id, int *reserved,
		      struct sb_error *e)
{
	int r = lock_job_reserved_send(kv, account, job_id, e);

	*reserved = 0;
	return r ? r : lock_job_reserved_recv(kv, reserved, e);
}

int lock_job_running(struct kv *kv, const char *account, const char *host, int slots,
		     const char *job_id, int *running, struct sb_error *e)
{
	struct lock_holder *h;
	int r, n = 0, i;

	*running = 0;
	r = validate_job_id(job_id, e);
	if (r)
		return r;
	r = validate_slots_num(slots, e);
	if (r)
		return r;
	h = calloc((size_t)slots, sizeof(*h));
	if (!h)
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	r = lock_list_holders(kv, account, host, slots, h, &n, e);
	for (i = 0; r == 0 && i < n; i++)
		if (strcmp(h[i].job_id, job_id) == 0)
			*running = 1;
	free(h);
	return r;
}
