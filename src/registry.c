#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "paths.h"
#include "pool.h"
#include "secret.h"
#include "validate.h"

/* KEYS: account hash, accounts set, version.
 * ARGV: account, expect_version, token, public_key, fingerprint, key_type, now.
 * Returns the new key_version, or -1 when expect_version does not match. */
/* The registry version starts from the server clock (µs) when missing, so
 * after Redis lost its data the numbers never repeat: a local ssh_config
 * made from the old registry can never pass for current. */
#define BUMP_VERSION(k) \
	"if redis.call('EXISTS', KEYS[" k "]) == 0 then\n" \
	"  local t = redis.call('TIME')\n" \
	"  redis.call('SET', KEYS[" k "], string.format('%d', t[1] * 1000000 + t[2]))\n" \
	"end\n" \
	"redis.call('INCR', KEYS[" k "])\n"

static struct kv_script put_key_script = KV_SCRIPT("registry_put_key",
	"local expect = tonumber(ARGV[2])\n"
	"if expect >= 0 then\n"
	"  local cur = redis.call('HGET', KEYS[1], 'key_version')\n"
	"  local have = 0\n"
	"  if cur then have = tonumber(cur) end\n"
	"  if have ~= expect then return -1 end\n"
	"end\n"
	"local v = redis.call('HINCRBY', KEYS[1], 'key_version', 1)\n"
	"redis.call('HSET', KEYS[1], 'key_token', ARGV[3], 'public_key', ARGV[4],\n"
	"           'fingerprint', ARGV[5], 'key_type', ARGV[6], 'updated_at', ARGV[7])\n"
	"redis.call('HSETNX', KEYS[1], 'created_at', ARGV[7])\n"
	"redis.call('SADD', KEYS[2], ARGV[1])\n"
	BUMP_VERSION("3")
	"return v\n");

/* KEYS: account hash, version.  ARGV: expect_version, token, now.
 * 1 done, -1 version changed, -2 no key. */
static struct kv_script set_token_script = KV_SCRIPT("registry_set_token",
	"local cur = redis.call('HGET', KEYS[1], 'key_version')\n"
	"if not cur then return -2 end\n"
	"if cur ~= ARGV[1] then return -1 end\n"
	"redis.call('HSET', KEYS[1], 'key_token', ARGV[2], 'updated_at', ARGV[3])\n"
	BUMP_VERSION("2")
	"return 1\n");

/* KEYS: sandbox hash, account's sandboxes set, accounts set, version.
 * ARGV: host, account, field, value, ...  1 added, 0 already there. */
static struct kv_script sandbox_add_script = KV_SCRIPT("registry_sandbox_add",
	"if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
	"local me = ARGV[2] .. ' ' .. ARGV[1]\n"
	"local owner = redis.call('HGET', KEYS[5], ARGV[3])\n"
	"if owner and owner ~= me then return -2 end\n"
	"if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end\n"
	"redis.call('HSET', KEYS[5], ARGV[3], me)\n"
	"redis.call('HSET', KEYS[1], unpack(ARGV, 4))\n"
	"redis.call('SADD', KEYS[3], ARGV[2])\n"
	BUMP_VERSION("4")
	"return 1\n");

/* KEYS: sandbox hash, version.  ARGV: state, now.  1 done, 0 absent. */
static struct kv_script set_state_script = KV_SCRIPT("registry_sandbox_set_state",
	"if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
	"redis.call('HSET', KEYS[1], 'state', ARGV[1], 'updated_at', ARGV[2])\n"
	BUMP_VERSION("2")
	"return 1\n");

/* KEYS: sandbox hash, account's sandboxes set, accounts set, account hash,
 * version, aliases, repository-affinity set.  ARGV: host, account, alias.
 * 1 removed, 0 absent. */
static struct kv_script remove_script = KV_SCRIPT("registry_sandbox_remove",
	"local a = redis.call('DEL', KEYS[1])\n"
	"if redis.call('HGET', KEYS[6], ARGV[3]) == ARGV[2] .. ' ' .. ARGV[1] then redis.call('HDEL', KEYS[6], ARGV[3]) end\n"
	"local b = redis.call('SREM', KEYS[2], ARGV[1])\n"
	"if a == 0 and b == 0 then return 0 end\n"
	"redis.call('DEL', KEYS[7])\n"
	"if redis.call('SCARD', KEYS[2]) == 0 and redis.call('EXISTS', KEYS[4]) == 0 then\n"
	"  redis.call('SREM', KEYS[3], ARGV[2])\n"
	"end\n"
	BUMP_VERSION("5")
	"return 1\n");

/* ---- key names ---- */

static SB_MUST_CHECK int fmt_key(size_t outsz, struct sb_error *e, int n)
{
	if (n < 0 || (size_t)n >= outsz)
		return sb_error_set(e, SB_ERR_INTERNAL, "registry key name too long");
	return 0;
}

int registry_key_account(char *out, size_t outsz, const char *account, struct sb_error *e)
{
	int r = validate_account(account, e);

	if (r)
		return r;
	return fmt_key(outsz, e, snprintf(out, outsz, REGISTRY_KEY_ACCOUNT_FMT, account));
}

int registry_key_account_sandboxes(char *out, size_t outsz, const char *account, struct sb_error *e)
{
	int r = validate_account(account, e);

	if (r)
		return r;
	return fmt_key(outsz, e, snprintf(out, outsz, REGISTRY_KEY_ACCOUNT_SANDBOXES_FMT, account));
}

int registry_key_sandbox(char *out, size_t outsz, const char *account, const char *host,
			 struct sb_error *e)
{
	char canon[VALIDATE_HOST_MAX + 1];
	int r = validate_account(account, e);

	if (r)
		return r;
	r = validate_host_canonical(host, canon, sizeof(canon), e);
	if (r)
		return r;
	return fmt_key(outsz, e, snprintf(out, outsz, REGISTRY_KEY_SANDBOX_FMT, account, canon));
}

/* ---- reading records back ---- */

/* A HGETALL reply as parallel field/value views. */
struct fields {
	const struct kv_value *r;
	const char *key;   /* for messages */
};

static const struct kv_value *field_get(const struct fields *f, const char *name)
{
	return kv_value_field(f->r, name);
}

static SB_MUST_CHECK int check_hgetall(struct kv *kv, const struct kv_value *r, const char *key, struct sb_error *e)
{
	size_t i;

	if (r->type != KV_ARRAY || r->n % 2 != 0)
		return kv_unexpected(kv, r, "HGETALL", e);
	for (i = 0; i < r->n; i++)
		if (r->elem[i].type != KV_STRING)
			return sb_error_set(e, SB_ERR_REDIS, "Redis record '%s': a field is not a string", key);
	return 0;
}

/* Copy a field as a C string: present, no NUL byte, at most max bytes. */
static SB_MUST_CHECK int field_str(const struct fields *f, const char *name, size_t max, char **out,
		     struct sb_error *e)
{
	const struct kv_value *v = field_get(f, name);

	*out = NULL;
	if (!v)
		return sb_error_set(e, SB_ERR_REDIS, "Redis record '%s': field '%s' is missing", f->key, name);
	if (v->len > max || memchr(v->str, '\0', v->len))
		return sb_error_set(e, SB_ERR_REDIS, "Redis record '%s': field '%s' is too long or contains a NUL byte",
				    f->key, name);
	*out = strndup(v->str, v->len);
	if (!*out)
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	return 0;
}

/* Turn a validate_*() failure into "Redis record 'k': invalid ...". */
static SB_MUST_CHECK int bad_field(const struct fields *f, const struct sb_error *sub, struct sb_error *e)
{
	return sb_error_set(e, SB_ERR_REDIS, "Redis record '%s': %s", f->key, sub->msg);
}

static SB_MUST_CHECK int field_checked(const struct fields *f, const char *name, size_t max,
			 int (*check)(const char *, struct sb_error *), char **out, struct sb_error *e)
{
	struct sb_error sub = SB_ERROR_INIT;
	int r = field_str(f, name, max, out, e);

	if (r)
		return r;
	if (check(*out, &sub) != 0) {
		free(*out);
		*out = NULL;
		return bad_field(f, &sub, e);
	}
	return 0;
}

/* Non-negative decimal, at most 18 digits. */
static SB_MUST_CHECK int parse_ll(const char *s, size_t len, long long *out)
{
	size_t i;
	long long n = 0;

	if (len == 0 || len > 18)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		n = n * 10 + (s[i] - '0');
	}
	*out = n;
	return 0;
}

static SB_MUST_CHECK int field_ll(const struct fields *f, const char *name, long long *out, struct sb_error *e)
{
	const struct kv_value *v = field_get(f, name);

	if (!v)
		return sb_error_set(e, SB_ERR_REDIS, "Redis record '%s': field '%s' is missing", f->key, name);
	if (parse_ll(v->str, v->len, out) != 0)
		return sb_error_set(e, SB_ERR_REDIS, "Redis record '%s': field '%s' is not a number", f->key, name);
	return 0;
}

/* Printable ASCII without spaces: 1 if every byte of v is. */
static SB_MUST_CHECK int all_graph(const char *v)
{
	for (; *v; v++)
		if ((unsigned char)*v <= 0x20 || (unsigned char)*v >= 0x7f)
			return 0;
	return 1;
}

/* Opaque token: printable ASCII without spaces. */
static SB_MUST_CHECK int check_token(const char *v, struct sb_error *e)
{
	if (!*v)
		return sb_error_set(e, SB_ERR_USAGE, "invalid key token: empty");
	if (!all_graph(v))
		return sb_error_set(e, SB_ERR_USAGE, "invalid key token: contains a space, control or non-ASCII byte");
	return 0;
}

static SB_MUST_CHECK int check_fingerprint(const char *v, struct sb_error *e)
{
	char echo[VALIDATE_ECHO_SIZE];
	size_t n = strlen(v);

	if (n == 0 || n > 128)
		return sb_error_set(e, SB_ERR_USAGE, "invalid fingerprint '%s': empty or too long",
				    validate_echo(echo, sizeof(echo), v));
	if (!all_graph(v))
		return sb_error_set(e, SB_ERR_USAGE, "invalid fingerprint '%s': contains a space, control or non-ASCII byte",
				    validate_echo(echo, sizeof(echo), v));
	return 0;
}

static SB_MUST_CHECK int check_key_type(const char *v, struct sb_error *e)
{
	char echo[VALIDATE_ECHO_SIZE];
	size_t i, n = strlen(v);

	if (n == 0 || n > 64)
		return sb_error_set(e, SB_ERR_USAGE, "invalid key type '%s': empty or too long",
				    validate_echo(echo, sizeof(echo), v));
	for (i = 0; i < n; i++) {
		char c = v[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '@' || c == '.' || c == '_' || c == '-'))
			return sb_error_set(e, SB_ERR_USAGE, "invalid key type '%s': character not allowed",
					    validate_echo(echo, sizeof(echo), v));
	}
	return 0;
}

static SB_MUST_CHECK int check_state(const char *v, struct sb_error *e)
{
	char echo[VALIDATE_ECHO_SIZE];

	if (v && (strcmp(v, REGISTRY_STATE_ACTIVE) == 0 || strcmp(v, REGISTRY_STATE_DRAINING) == 0 ||
		  strcmp(v, REGISTRY_STATE_DISABLED) == 0))
		return 0;
	if (!v)
		return sb_error_set(e, SB_ERR_USAGE, "invalid state: missing");
	return sb_error_set(e, SB_ERR_USAGE, "invalid state '%s': must be active, draining or disabled",
			    validate_echo(echo, sizeof(echo), v));
}

/* ---- accounts ---- */

void account_rec_release(struct account_rec *rec)
{
	if (!rec)
		return;
	free(rec->account);
	secret_free_str(rec->key_token);
	free(rec->public_key);
	free(rec->fingerprint);
	free(rec->key_type);
	*rec = (struct account_rec)ACCOUNT_REC_INIT;
}

int registry_account_get(struct kv *kv, const char *account, struct account_rec *out,
			 struct sb_error *e)
{
	struct account_rec rec = ACCOUNT_REC_INIT;
	char key[REGISTRY_KEY_MAX];
	struct kv_value reply = KV_VALUE_INIT;
	struct fields f;
	int r;

	r = registry_key_account(key, sizeof(key), account, e);
	if (r)
		return r;
	r = kv_cmd(kv, &reply, e, "HGETALL", key, NULL);
	if (r)
		return r;
	f.r = &reply;
	f.key = key;
	r = check_hgetall(kv, &reply, key, e);
	if (r)
		goto out;
	if (reply.n == 0 || !field_get(&f, "key_version")) {
		r = sb_error_set(e, SB_ERR_NOTFOUND, "no key stored for account '%s'", account);
		goto out;
	}
	rec.account = strdup(account);
	if (!rec.account) {
		r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((r = field_checked(&f, "key_token", REGISTRY_TOKEN_MAX, check_token, &rec.key_token, e)) ||
	    (r = field_checked(&f, "public_key", VALIDATE_HOST_KEY_MAX, validate_public_key, &rec.public_key, e)) ||
	    (r = field_checked(&f, "fingerprint", 128, check_fingerprint, &rec.fingerprint, e)) ||
	    (r = field_checked(&f, "key_type", 64, check_key_type, &rec.key_type, e)) ||
	    (r = field_ll(&f, "key_version", &rec.key_version, e)) ||
	    (r = field_ll(&f, "created_at", &rec.created_at, e)) ||
	    (r = field_ll(&f, "updated_at", &rec.updated_at, e)))
		goto out;
	if (rec.key_version <= 0) {
		r = sb_error_set(e, SB_ERR_REDIS, "Redis record '%s': field 'key_version' is not positive", key);
		goto out;
	}
	*out = rec;
	rec = (struct account_rec)ACCOUNT_REC_INIT;
out:
	account_rec_release(&rec);
	kv_value_release(&reply);   /* wipes the token it held */
	return r;
}

int registry_account_put_key(struct kv *kv, const struct account_rec *rec, long long expect_version,
			     long long *new_version, struct sb_error *e)
{
	char k_acc[REGISTRY_KEY_MAX], expect[24], now[24];
	const char *keys[3], *args[7];
	struct sb_error sub = SB_ERROR_INIT;
	long long v;
	int r;

	r = registry_key_account(k_acc, sizeof(k_acc), rec->account, e);
	if (r)
		return r;
	if (!rec->key_token || strlen(rec->key_token) > REGISTRY_TOKEN_MAX || check_token(rec->key_token, &sub) ||
	    validate_public_key(rec->public_key, &sub) ||
	    !rec->fingerprint || check_fingerprint(rec->fingerprint, &sub) ||
	    !rec->key_type || check_key_type(rec->key_type, &sub)) {
		if (!sub.msg[0])
			snprintf(sub.msg, sizeof(sub.msg), "a key field is missing");
		return sb_error_set(e, SB_ERR_USAGE, "cannot store the key of account '%s': %s", rec->account, sub.msg);
	}
	if (expect_version < -1)
		return sb_error_set(e, SB_ERR_INTERNAL, "registry_account_put_key: bad expect_version");
	snprintf(expect, sizeof(expect), "%lld", expect_version);
	snprintf(now, sizeof(now), "%lld", (long long)clock_wall_s());
	keys[0] = k_acc;
	keys[1] = REGISTRY_KEY_ACCOUNTS;
	keys[2] = REGISTRY_KEY_VERSION;
	args[0] = rec->account;
	args[1] = expect;
	args[2] = rec->key_token;
	args[3] = rec->public_key;
	args[4] = rec->fingerprint;
	args[5] = rec->key_type;
	args[6] = now;
	r = kv_eval_integer(kv, &put_key_script, &v, e, 3, keys, 7, args);
	if (r)
		return r;
	if (v == -1) {
		if (expect_version == 0)
			return sb_error_set(e, SB_ERR_EXISTS, "account '%s' already has a key (use key rotate)",
					    rec->account);
		return sb_error_set(e, SB_ERR_EXISTS,
				    "the key of account '%s' changed concurrently (expected version %lld)",
				    rec->account, expect_version);
	}
	if (v <= 0)
		return sb_error_set(e, SB_ERR_REDIS, "Redis at %s: bad key_version %lld for account '%s'",
				    kv_where(kv), v, rec->account);
	if (new_version)
		*new_version = v;
	return 0;
}

int registry_account_set_token(struct kv *kv, const char *account, long long expect_version,
			       const char *key_token, struct sb_error *e)
{
	char k_acc[REGISTRY_KEY_MAX], expect[24], now[24];
	const char *keys[2], *args[3];
	struct sb_error sub = SB_ERROR_INIT;
	long long v;
	int r;

	r = registry_key_account(k_acc, sizeof(k_acc), account, e);
	if (r)
		return r;
	if (!key_token || strlen(key_token) > REGISTRY_TOKEN_MAX || check_token(key_token, &sub))
		return sb_error_set(e, SB_ERR_USAGE, "cannot store the key of account '%s': invalid key token",
				    account);
	snprintf(expect, sizeof(expect), "%lld", expect_version);
	snprintf(now, sizeof(now), "%lld", (long long)clock_wall_s());
	keys[0] = k_acc;
	keys[1] = REGISTRY_KEY_VERSION;
	args[0] = expect;
	args[1] = key_token;
	args[2] = now;
	r = kv_eval_integer(kv, &set_token_script, &v, e, 2, keys, 3, args);
	if (r)
		return r;
	if (v == -2)
		return sb_error_set(e, SB_ERR_NOTFOUND, "no key stored for account '%s'", account);
	if (v == -1)
		return sb_error_set(e, SB_ERR_EXISTS,
				    "the key of account '%s' changed concurrently (expected version %lld)",
				    account, expect_version);
	if (v != 1)
		return sb_error_set(e, SB_ERR_REDIS, "Redis at %s: unexpected reply to script registry_set_token",
				    kv_where(kv));
	return 0;
}

void registry_names_free(char **names, size_t n)
{
	size_t i;

	if (!names)
		return;
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static SB_MUST_CHECK int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* SMEMBERS key, each member checked by check() (when not NULL), sorted. */
static SB_MUST_CHECK int smembers_sorted(struct kv *kv, const char *key, int (*check)(const char *, struct sb_error *),
			   char ***names, size_t *n, struct sb_error *e)
{
	struct kv_value reply = KV_VALUE_INIT;
	char **v = NULL;
	size_t i, k = 0;
	int r;

	*names = NULL;
	*n = 0;
	r = kv_cmd(kv, &reply, e, "SMEMBERS", key, NULL);
	if (r)
		return r;
	if (reply.type != KV_ARRAY) {
		r = kv_unexpected(kv, &reply, "SMEMBERS", e);
		goto out;
	}
	v = calloc(reply.n + 1, sizeof(*v));
	if (!v) {
		r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < reply.n; i++) {
		const struct kv_value *m = &reply.elem[i];
		struct sb_error sub = SB_ERROR_INIT;

		if (m->type != KV_STRING || m->len > 1024 || memchr(m->str, '\0', m->len)) {
			r = sb_error_set(e, SB_ERR_REDIS, "Redis set '%s': a member is not a valid name", key);
			goto out;
		}
		v[k] = strndup(m->str, m->len);
		if (!v[k]) {
			r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
			goto out;
		}
		k++;
		if (check && check(v[k - 1], &sub) != 0) {
			r = sb_error_set(e, SB_ERR_REDIS, "Redis set '%s': %s", key, sub.msg);
			goto out;
		}
	}
	qsort(v, k, sizeof(*v), cmp_str);
	*names = v;
	*n = k;
	v = NULL;
out:
	registry_names_free(v, k);
	kv_value_release(&reply);
	return r;
}

int registry_account_list(struct kv *kv, char ***names, size_t *n, struct sb_error *e)
{
	return smembers_sorted(kv, REGISTRY_KEY_ACCOUNTS, validate_account, names, n, e);
}

/* ---- sandboxes ---- */

void sandbox_rec_release(struct sandbox_rec *rec)
{
	if (!rec)
		return;
	free(rec->account);
	free(rec->host);
	free(rec->user);
	free(rec->workdir);
	free(rec->claude);
	free(rec->state);
	free(rec->host_key);
	*rec = (struct sandbox_rec)SANDBOX_REC_INIT;
}

void sandbox_rec_free_array(struct sandbox_rec *recs, size_t n)
{
	size_t i;

	if (!recs)
		return;
	for (i = 0; i < n; i++)
		sandbox_rec_release(&recs[i]);
	free(recs);
}

/* Only a canonical host is a valid stored host name. */
static SB_MUST_CHECK int check_canonical_host(const char *v, struct sb_error *e)
{
	char canon[VALIDATE_HOST_MAX + 1], echo[VALIDATE_ECHO_SIZE];
	int r = validate_host_canonical(v, canon, sizeof(canon), e);

	if (r)
		return r;
	if (strcmp(v, canon) != 0)
		return sb_error_set(e, SB_ERR_USAGE, "invalid host '%s': not in canonical form",
				    validate_echo(echo, sizeof(echo), v));
	return 0;
}

static SB_MUST_CHECK int check_sandbox_state(const char *v, struct sb_error *e)
{
	return check_state(v, e);
}

static SB_MUST_CHECK int check_port_str(const char *v, struct sb_error *e)
{
	return validate_port(v, e);
}

static SB_MUST_CHECK int check_slots_str(const char *v, struct sb_error *e)
{
	return validate_slots(v, e);
}

/* Fill rec from a HGETALL reply of key; every field validated. */
static SB_MUST_CHECK int sandbox_from_reply(const struct kv_value *reply, const char *key, const char *account,
			      const char *host, struct sandbox_rec *out, struct sb_error *e)
{
	struct sandbox_rec rec = SANDBOX_REC_INIT;
	struct fields f = { reply, key };
	char *port = NULL, *slots = NULL;
	int r;

	rec.account = strdup(account);
	if (!rec.account)
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	if ((r = field_checked(&f, "host", VALIDATE_HOST_MAX, check_canonical_host, &rec.host, e)) ||
	    (r = field_checked(&f, "port", 64, check_port_str, &port, e)) ||
	    (r = field_checked(&f, "user", VALIDATE_USER_MAX, validate_user, &rec.user, e)) ||
	    (r = field_checked(&f, "workdir", VALIDATE_PATH_MAX, validate_workdir, &rec.workdir, e)) ||
	    (r = field_checked(&f, "slots", 64, check_slots_str, &slots, e)) ||
	    (r = field_checked(&f, "claude", VALIDATE_PATH_MAX, validate_claude_path, &rec.claude, e)) ||
	    (r = field_checked(&f, "state", 64, check_sandbox_state, &rec.state, e)) ||
	    (r = field_checked(&f, "host_key", VALIDATE_HOST_KEY_MAX, validate_host_key, &rec.host_key, e)) ||
	    (r = field_ll(&f, "created_at", &rec.created_at, e)) ||
	    (r = field_ll(&f, "updated_at", &rec.updated_at, e)))
		goto out;
	if (strcmp(rec.host, host) != 0) {
		r = sb_error_set(e, SB_ERR_REDIS, "Redis record '%s': field 'host' does not match the key", key);
		goto out;
	}
	if (validate_port_parse(port, &rec.port, NULL) != 0 || validate_slots_parse(slots, &rec.slots, NULL) != 0) {
		r = sb_error_set(e, SB_ERR_REDIS, "Redis record '%s': field 'port' or 'slots' is invalid", key);
		goto out;
	}
	*out = rec;
	rec = (struct sandbox_rec)SANDBOX_REC_INIT;
out:
	free(port);
	free(slots);
	sandbox_rec_release(&rec);
	return r;
}

int registry_sandbox_get(struct kv *kv, const char *account, const char *host,
			 struct sandbox_rec *out, struct sb_error *e)
{
	char canon[VALIDATE_HOST_MAX + 1], key[REGISTRY_KEY_MAX];
	struct kv_value reply = KV_VALUE_INIT;
	int r;

	r = validate_account(account, e);
	if (r)
		return r;
	r = validate_host_canonical(host, canon, sizeof(canon), e);
	if (r)
		return r;
	r = registry_key_sandbox(key, sizeof(key), account, canon, e);
	if (r)
		return r;
	r = kv_cmd(kv, &reply, e, "HGETALL", key, NULL);
	if (r)
		return r;
	r = check_hgetall(kv, &reply, key, e);
	if (r)
		goto out;
	if (reply.n == 0) {
		r = sb_error_set(e, SB_ERR_NOTFOUND, "sandbox '%s' is not registered for account '%s'",
				 canon, account);
		goto out;
	}
	r = sandbox_from_reply(&reply, key, account, canon, out, e);
out:
	kv_value_release(&reply);
	return r;
}

int registry_sandbox_add(struct kv *kv, const struct sandbox_rec *rec, struct sb_error *e)
{
	char canon[VALIDATE_HOST_MAX + 1], k_sbx[REGISTRY_KEY_MAX], k_set[REGISTRY_KEY_MAX];
	char port[8], slots[8], now[24];
	const char *keys[5], *args[3 + 2 * 10];
	struct buf alias = BUF_INIT;
	const char *claude = rec->claude ? rec->claude : "claude";
	const char *state = rec->state ? rec->state : REGISTRY_STATE_ACTIVE;
	long long v;
	int r, n = 0;

	if ((r = validate_account(rec->account, e)) ||
	    (r = validate_host_canonical(rec->host, canon, sizeof(canon), e)) ||
	    (r = validate_port_num(rec->port, e)) ||
	    (r = validate_user(rec->user, e)) ||
	    (r = validate_workdir(rec->workdir, e)) ||
	    (r = validate_slots_num(rec->slots, e)) ||
	    (r = validate_claude_path(claude, e)) ||
	    (r = check_state(state, e)) ||
	    (r = validate_host_key(rec->host_key, e)))
		return r;
	if ((r = registry_key_sandbox(k_sbx, sizeof(k_sbx), rec->account, canon, e)) ||
	    (r = registry_key_account_sandboxes(k_set, sizeof(k_set), rec->account, e)))
		return r;
	snprintf(port, sizeof(port), "%d", rec->port);
	snprintf(slots, sizeof(slots), "%d", rec->slots);
	snprintf(now, sizeof(now), "%lld", (long long)clock_wall_s());
	keys[0] = k_sbx;
	keys[1] = k_set;
	keys[2] = REGISTRY_KEY_ACCOUNTS;
	keys[3] = REGISTRY_KEY_VERSION;
	keys[4] = REGISTRY_KEY_ALIASES;
	if (paths_alias(rec->account, canon, &alias) != 0) {
		buf_release(&alias);
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	}
	args[n++] = canon;
	args[n++] = rec->account;
	args[n++] = buf_cstr(&alias);
	args[n++] = "host";       args[n++] = canon;
	args[n++] = "port";       args[n++] = port;
	args[n++] = "user";       args[n++] = rec->user;
	args[n++] = "workdir";    args[n++] = rec->workdir;
	args[n++] = "slots";      args[n++] = slots;
	args[n++] = "claude";     args[n++] = claude;
	args[n++] = "state";      args[n++] = state;
	args[n++] = "host_key";   args[n++] = rec->host_key;
	args[n++] = "created_at"; args[n++] = now;
	args[n++] = "updated_at"; args[n++] = now;
	r = kv_eval_integer(kv, &sandbox_add_script, &v, e, 5, keys, n, args);
	if (r) {
		buf_release(&alias);
		return r;
	}
	if (v == -2) {
		r = sb_error_set(e, SB_ERR_EXISTS,
				 "sandbox '%s' of account '%s' would share the ssh alias '%s' with another account's sandbox: use another host name or account",
				 canon, rec->account, buf_cstr(&alias));
		buf_release(&alias);
		return r;
	}
	buf_release(&alias);
	if (v == 0)
		return sb_error_set(e, SB_ERR_EXISTS, "sandbox '%s' already registered for account '%s'",
				    canon, rec->account);
	if (v != 1)
		return sb_error_set(e, SB_ERR_REDIS, "Redis at %s: unexpected reply to script registry_sandbox_add",
				    kv_where(kv));
	return 0;
}

int registry_sandbox_list(struct kv *kv, const char *account, struct sandbox_rec **out, size_t *n,
			  struct sb_error *e)
{
	char **accounts = NULL, **hosts = NULL;
	size_t n_acc = 0, n_hosts = 0, i, j, len = 0, cap = 0;
	struct sandbox_rec *recs = NULL;
	int r = 0;

	*out = NULL;
	*n = 0;
	if (account) {
		r = validate_account(account, e);
		if (r)
			return r;
		accounts = calloc(1, sizeof(*accounts));
		if (!accounts || !(accounts[0] = strdup(account))) {
			free(accounts);
			return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
		}
		n_acc = 1;
	} else {
		r = registry_account_list(kv, &accounts, &n_acc, e);
		if (r)
			return r;
	}
	for (i = 0; i < n_acc; i++) {
		char k_set[REGISTRY_KEY_MAX];

		r = registry_key_account_sandboxes(k_set, sizeof(k_set), accounts[i], e);
		if (r)
			goto out;
		r = smembers_sorted(kv, k_set, check_canonical_host, &hosts, &n_hosts, e);
		if (r)
			goto out;
		/* every record in one round trip (a job lists them all) */
		for (j = 0; j < n_hosts; j++) {
			char key[REGISTRY_KEY_MAX];
			const char *argv[] = { "HGETALL", key };

			if ((r = registry_key_sandbox(key, sizeof(key), accounts[i], hosts[j], e)) != 0 ||
			    (r = kv_pipe_add(kv, e, 2, argv)) != 0)
				goto out;
		}
		for (j = 0; j < n_hosts; j++) {
			struct sandbox_rec rec = SANDBOX_REC_INIT;
			char key[REGISTRY_KEY_MAX];
			struct kv_value reply = KV_VALUE_INIT;

			if ((r = registry_key_sandbox(key, sizeof(key), accounts[i], hosts[j], e)) == 0 &&
			    (r = kv_pipe_reply(kv, &reply, e)) == 0 && (r = check_hgetall(kv, &reply, key, e)) == 0 &&
			    reply.n > 0)
				r = sandbox_from_reply(&reply, key, accounts[i], hosts[j], &rec, e);
			kv_value_release(&reply);
			if (!r && !rec.account)   /* removed while we listed */
				continue;
			if (r)
				goto out;
			if (len == cap) {
				size_t ncap = cap ? cap * 2 : 8;
				struct sandbox_rec *nr = realloc(recs, ncap * sizeof(*nr));

				if (!nr) {
					sandbox_rec_release(&rec);
					r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
					goto out;
				}
				recs = nr;
				cap = ncap;
			}
			recs[len++] = rec;
		}
		registry_names_free(hosts, n_hosts);
		hosts = NULL;
		n_hosts = 0;
	}
	*out = recs;
	*n = len;
	recs = NULL;
	len = 0;
out:
	registry_names_free(hosts, n_hosts);
	registry_names_free(accounts, n_acc);
	sandbox_rec_free_array(recs, len);
	return r;
}

int registry_sandbox_set_state(struct kv *kv, const char *account, const char *host,
			       const char *state, struct sb_error *e)
{
	char canon[VALIDATE_HOST_MAX + 1], key[REGISTRY_KEY_MAX], now[24];
	const char *keys[2], *args[2];
	long long v;
	int r;

	if ((r = validate_account(account, e)) ||
	    (r = validate_host_canonical(host, canon, sizeof(canon), e)) ||
	    (r = check_state(state, e)) ||
	    (r = registry_key_sandbox(key, sizeof(key), account, canon, e)))
		return r;
	snprintf(now, sizeof(now), "%lld", (long long)clock_wall_s());
	keys[0] = key;
	keys[1] = REGISTRY_KEY_VERSION;
	args[0] = state;
	args[1] = now;
	r = kv_eval_integer(kv, &set_state_script, &v, e, 2, keys, 2, args);
	if (r)
		return r;
	if (v == 0)
		return sb_error_set(e, SB_ERR_NOTFOUND, "sandbox '%s' is not registered for account '%s'",
				    canon, account);
	return 0;
}

int registry_sandbox_remove(struct kv *kv, const char *account, const char *host,
			    struct sb_error *e)
{
	char canon[VALIDATE_HOST_MAX + 1], k_sbx[REGISTRY_KEY_MAX], k_set[REGISTRY_KEY_MAX];
	char k_acc[REGISTRY_KEY_MAX], k_repos[REGISTRY_KEY_MAX];
	const char *keys[7], *args[3];
	struct buf alias = BUF_INIT;
	long long v;
	int r;

	if ((r = validate_account(account, e)) ||
	    (r = validate_host_canonical(host, canon, sizeof(canon), e)) ||
	    (r = registry_key_sandbox(k_sbx, sizeof(k_sbx), account, canon, e)) ||
	    (r = registry_key_account_sandboxes(k_set, sizeof(k_set), account, e)) ||
	    (r = registry_key_account(k_acc, sizeof(k_acc), account, e)))
		return r;
	keys[0] = k_sbx;
	keys[1] = k_set;
	keys[2] = REGISTRY_KEY_ACCOUNTS;
	keys[3] = k_acc;
	keys[4] = REGISTRY_KEY_VERSION;
	keys[5] = REGISTRY_KEY_ALIASES;
	/* the scheduler must not prefer a re-added host for caches it lost */
	if ((r = fmt_key(sizeof(k_repos), e, snprintf(k_repos, sizeof(k_repos), POOL_KEY_REPOS_FMT, account, canon))))
		return r;
	keys[6] = k_repos;
	if (paths_alias(account, canon, &alias) != 0) {
		buf_release(&alias);
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	}
	args[0] = canon;
	args[1] = account;
	args[2] = buf_cstr(&alias);
	r = kv_eval_integer(kv, &remove_script, &v, e, 7, keys, 3, args);
	buf_release(&alias);
	if (r)
		return r;
	if (v == 0)
		return sb_error_set(e, SB_ERR_NOTFOUND, "sandbox '%s' is not registered for account '%s'",
				    canon, account);
	return 0;
}

int registry_version(struct kv *kv, long long *out, struct sb_error *e)
{
	struct buf v = BUF_INIT;
	int r, found = 0;

	*out = 0;
	r = kv_cmd_string(kv, &v, &found, e, "GET", REGISTRY_KEY_VERSION, NULL);
	if (!r && found && parse_ll(v.data, v.len, out) != 0)
		r = sb_error_set(e, SB_ERR_REDIS, "Redis at %s: '%s' is not a number", kv_where(kv),
				 REGISTRY_KEY_VERSION);
	buf_release(&v);
	return r;
}
