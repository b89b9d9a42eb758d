#include "kv.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "secret.h"
#include "validate.h"

#define KV_MAX_ARGS 64
#define KV_URL_MAX 4096
#define KV_DEFAULT_TIMEOUT_MS 2000

struct kv {
	redisContext *c;      /* NULL after a dead reply: the next call reconnects */
	int is_unix;
	char *host;           /* TCP: name or IPv6 literal without brackets */
	int port;
	char *path;           /* unix socket */
	char *user;           /* ACL user, or NULL */
	char *password;       /* secret: wiped on free; NULL = no AUTH */
	long db;
	int timeout_ms;
	char where[300];
	int pending;          /* pipelined replies not read yet (kv_pipe_*) */
};

/* Printable one-line copy of a server or hiredis text, cut at outsz. */
static const char *echo_text(char *out, size_t outsz, const char *s, size_t len)
{
	size_t i, o = 0;

	for (i = 0; i < len && o + 4 < outsz; i++) {
		unsigned char c = (unsigned char)s[i];

		out[o++] = (c >= 0x20 && c <= 0x7e) ? (char)c : '?';
	}
	if (i < len) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

const char *kv_where(const struct kv *kv)
{
	return kv ? kv->where : "(none)";
}

/* ---- replies as values (the only place hiredis replies are freed) ---- */

void kv_value_release(struct kv_value *v)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; i < v->n; i++)
		kv_value_release(&v->elem[i]);
	free(v->elem);
	if (v->str) {
		secret_wipe(v->str, v->len);
		free(v->str);
	}
	*v = (struct kv_value)KV_VALUE_INIT;
}

/* Deep-copy r into out, wiping r's text as it goes (the reply may hold a
 * key token and freeReplyObject does not wipe).  On failure out is
 * KV_VALUE_INIT. */
static SB_MUST_CHECK int value_from_reply(struct kv_value *out, redisReply *r)
{
	size_t i;

	*out = (struct kv_value)KV_VALUE_INIT;
	switch (r->type) {
	case REDIS_REPLY_NIL:
		return 0;
	case REDIS_REPLY_INTEGER:
		out->type = KV_INTEGER;
		out->integer = r->integer;
		return 0;
	case REDIS_REPLY_STRING:
	case REDIS_REPLY_STATUS:
	case REDIS_REPLY_ERROR:
		out->type = r->type == REDIS_REPLY_STRING ? KV_STRING :
			    r->type == REDIS_REPLY_STATUS ? KV_STATUS : KV_ERROR;
		out->str = malloc(r->len + 1);
		if (!out->str) {
			*out = (struct kv_value)KV_VALUE_INIT;
			return SB_ERR_NOMEM;
		}
		if (r->len)
			memcpy(out->str, r->str, r->len);
		out->str[r->len] = '\0';
		out->len = r->len;
		if (r->str)
			secret_wipe(r->str, r->len);
		return 0;
	case REDIS_REPLY_ARRAY:
		out->type = KV_ARRAY;
		if (r->elements == 0)
			return 0;
		out->elem = calloc(r->elements, sizeof(*out->elem));
		if (!out->elem) {
			*out = (struct kv_value)KV_VALUE_INIT;
			return SB_ERR_NOMEM;
		}
		for (i = 0; i < r->elements; i++) {
			out->n = i + 1;
			if (value_from_reply(&out->elem[i], r->element[i]) != 0) {
				kv_value_release(out);
				return SB_ERR_NOMEM;
			}
		}
		return 0;
	default:   /* RESP2 has no other type; hiredis 0.14 makes none */
		return SB_ERR_INTERNAL;
	}
}

/* Hand r to the caller as a value (or drop it when out is NULL); frees r. */
/* Every string of r, however deep: a reply may hold a key token, and a copy
 * that ran out of memory half-way has not wiped the rest. */
static void wipe_reply(redisReply *r)
{
	size_t i;

	if (r->str && r->len)
		secret_wipe(r->str, r->len);
	if (r->type == REDIS_REPLY_ARRAY)
		for (i = 0; i < r->elements; i++)
			if (r->element[i])
				wipe_reply(r->element[i]);
}

static SB_MUST_CHECK int take_reply(struct kv *kv, redisReply *r, struct kv_value *out, struct sb_error *e)
{
	int rc = 0;

	if (out) {
		rc = value_from_reply(out, r);
		if (rc == SB_ERR_NOMEM)
			sb_error_set(e, rc, "out of memory");
		else if (rc)
			sb_error_set(e, rc, "Redis at %s: a reply of unknown type %d", kv->where, r->type);
	}
	if (rc)
		wipe_reply(r);
	freeReplyObject(r);
	return rc;
}

const struct kv_value *kv_value_field(const struct kv_value *v, const char *name)
{
	size_t i, n = strlen(name);

	if (!v || v->type != KV_ARRAY)
		return NULL;
	for (i = 0; i + 1 < v->n; i += 2) {
		const struct kv_value *k = &v->elem[i];

		if (k->type == KV_STRING && k->len == n && memcmp(k->str, name, n) == 0)
			return &v->elem[i + 1];
	}
	return NULL;
}

const char *kv_value_type_name(const struct kv_value *v)
{
	if (!v)
		return "no reply";
	switch (v->type) {
	case KV_STRING: return "string";
	case KV_ARRAY: return "array";
	case KV_INTEGER: return "integer";
	case KV_NIL: return "nil";
	case KV_STATUS: return "status";
	case KV_ERROR: return "error";
	}
	return "unknown";
}

int kv_unexpected(struct kv *kv, const struct kv_value *r, const char *what, struct sb_error *e)
{
	return sb_error_set(e, SB_ERR_REDIS, "Redis at %s: unexpected reply to %s: %s",
			    kv_where(kv), what, kv_value_type_name(r));
}

int kv_reply_integer(struct kv *kv, const struct kv_value *r, const char *what, long long *out,
		     struct sb_error *e)
{
	if (!r || r->type != KV_INTEGER)
		return kv_unexpected(kv, r, what, e);
	*out = r->integer;
	return 0;
}

static struct timeval ms_to_tv(int ms)
{
	struct timeval tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	return tv;
}

/* ---- URL parsing (no message ever echoes the userinfo or a password) ---- */

static SB_MUST_CHECK int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* %-decode s[0..len) into a new string; NULL on a bad escape or %00. */
static char *pct_decode(const char *s, size_t len)
{
	char *out = malloc(len + 1);
	size_t i, o = 0;

	if (!out)
		return NULL;
	for (i = 0; i < len; i++) {
		if (s[i] == '%') {
			int hi, lo;

			if (len - i < 3)
				goto bad;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hi < 0 ? -1 : hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				goto bad;
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return out;
bad:
	secret_wipe(out, len + 1);
	free(out);
	return NULL;
}

static SB_MUST_CHECK int parse_db(const char *s, size_t len, long *db, struct sb_error *e)
{
	size_t i;
	long n = 0;

	if (len == 0 || len > 6)
		return sb_error_set(e, SB_ERR_USAGE, "invalid redis_url: the database must be a number 0..999999");
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return sb_error_set(e, SB_ERR_USAGE, "invalid redis_url: the database must be a number 0..999999");
		n = n * 10 + (s[i] - '0');
	}
	*db = n;
	return 0;
}

static SB_MUST_CHECK int parse_userinfo(struct kv *kv, const char *s, size_t len, struct sb_error *e)
{
	const char *colon = memchr(s, ':', len);

	if (!colon)
		return sb_error_set(e, SB_ERR_USAGE,
				    "invalid redis_url: credentials must be written ':password@' or 'user:password@'");
	if (colon > s) {
		kv->user = pct_decode(s, (size_t)(colon - s));
		if (!kv->user)
			return sb_error_set(e, SB_ERR_USAGE, "invalid redis_url: bad %%-escape in the user name");
	}
	kv->password = pct_decode(colon + 1, len - (size_t)(colon + 1 - s));
	if (!kv->password)
		return sb_error_set(e, SB_ERR_USAGE, "invalid redis_url: bad %%-escape in the password");
	if (!kv->password[0]) {
		free(kv->password);
		kv->password = NULL;
	}
	return 0;
}

static SB_MUST_CHECK int parse_tcp(struct kv *kv, const char *rest, struct sb_error *e)
{
	const char *at = strrchr(rest, '@'), *hp, *hend, *p;
	char host[VALIDATE_HOST_MAX + 1], port[8];
	struct sb_error sub = SB_ERROR_INIT;
	size_t hlen;
	int r;

	if (at) {
		r = parse_userinfo(kv, rest, (size_t)(at - rest), e);
		if (r)
			return r;
		hp = at + 1;
	} else {
		hp = rest;
	}
	if (*hp == '[') {
		hp++;
		hend = strchr(hp, ']');
		if (!hend)
			return sb_error_set(e, SB_ERR_USAGE, "invalid redis_url: unterminated '[' in the host");
		p = hend + 1;
	} else {
		hend = hp + strcspn(hp, ":/?#");
		p = hend;
	}
	hlen = (size_t)(hend - hp);
	if (hlen == 0)
		return sb_error_set(e, SB_ERR_USAGE, "invalid redis_url: no host");
	if (hlen > VALIDATE_HOST_MAX)
		return sb_error_set(e, SB_ERR_USAGE, "invalid redis_url: the host is too long");
	memcpy(host, hp, hlen);
	host[hlen] = '\0';
	if (validate_host(host, &sub) != 0)
		return sb_error_set(e, SB_ERR_USAGE, "invalid redis_url: %s", sub.msg);
	kv->port = 6379;
	if (*p == ':') {
		size_t plen = strcspn(p + 1, "/?#");

		if (plen == 0 || plen >= sizeof(port))
			return sb_error_set(e, SB_ERR_USAGE, "invalid redis_url: invalid port");
		memcpy(port, p + 1, plen);
		port[plen] = '\0';
		if (validate_port_parse(port, &kv->port, &sub) != 0)
			return sb_error_set(e, SB_ERR_USAGE, "invalid redis_url: %s", sub.msg);
		p += 1 + plen;
	}
	if (*p == '/') {
		size_t dlen = strcspn(p + 1, "?#");

		if (dlen > 0) {
			r = parse_db(p + 1, dlen, &kv->db, e);
			if (r)
				return r;
		}
		p += 1 + dlen;
	}
	if (*p)
		return sb_error_set(e, SB_ERR_USAGE,
				    "invalid redis_url: unexpected text after the host, port and database");
	kv->host = strdup(host);
	if (!kv->host)
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	if (strchr(host, ':'))
		snprintf(kv->where, sizeof(kv->where), "[%s]:%d", host, kv->port);
	else
		snprintf(kv->where, sizeof(kv->where), "%s:%d", host, kv->port);
	return 0;
}

static SB_MUST_CHECK int parse_unix(struct kv *kv, const char *rest, struct sb_error *e)
{
	size_t plen = strcspn(rest, "?#");
	const char *q;
	int r;

	if (rest[0] != '/')
		return sb_error_set(e, SB_ERR_USAGE, "invalid redis_url: unix:// needs an absolute path (unix:///path)");
	if (plen >= 108)
		return sb_error_set(e, SB_ERR_USAGE, "invalid redis_url: the socket path is longer than 107 bytes");
	kv->path = strndup(rest, plen);
	if (!kv->path)
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	q = rest + plen;
	if (*q == '#')
		return sb_error_set(e, SB_ERR_USAGE, "invalid redis_url: unexpected '#'");
	if (*q == '?')
		q++;
	while (*q) {
		size_t n = strcspn(q, "&"), klen;
		const char *eq = memchr(q, '=', n);

		if (!eq)
			return sb_error_set(e, SB_ERR_USAGE, "invalid redis_url: query parameters must be name=value");
		klen = (size_t)(eq - q);
		if (klen == 2 && memcmp(q, "db", 2) == 0) {
			r = parse_db(eq + 1, n - 3, &kv->db, e);
			if (r)
				return r;
		} else if (klen == 8 && memcmp(q, "password", 8) == 0) {
			secret_free_str(kv->password);
			kv->password = pct_decode(eq + 1, n - 9);
			if (!kv->password)
				return sb_error_set(e, SB_ERR_USAGE, "invalid redis_url: bad %%-escape in the password");
		} else if (klen == 4 && memcmp(q, "user", 4) == 0) {
			free(kv->user);
			kv->user = pct_decode(eq + 1, n - 5);
			if (!kv->user)
				return sb_error_set(e, SB_ERR_USAGE, "invalid redis_url: bad %%-escape in the user name");
		} else {
			char name[32];

			return sb_error_set(e, SB_ERR_USAGE, "invalid redis_url: unknown parameter '%s'",
					    echo_text(name, sizeof(name), q, klen));
		}
		q += n;
		if (*q == '&')
			q++;
	}
	if (kv->password && !kv->password[0]) {
		free(kv->password);
		kv->password = NULL;
	}
	snprintf(kv->where, sizeof(kv->where), "%s", kv->path);
	return 0;
}

static SB_MUST_CHECK int parse_url(struct kv *kv, const char *url, struct sb_error *e)
{
	size_t len, i;

	if (!url || !url[0])
		return sb_error_set(e, SB_ERR_USAGE, "invalid redis_url: empty");
	len = strnlen(url, KV_URL_MAX + 1);
	if (len > KV_URL_MAX)
		return sb_error_set(e, SB_ERR_USAGE, "invalid redis_url: longer than %d bytes", KV_URL_MAX);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)url[i];

		if (c <= 0x20 || c >= 0x7f)
			return sb_error_set(e, SB_ERR_USAGE,
					    "invalid redis_url: contains whitespace, a control character or a non-ASCII byte");
	}
	if (strncasecmp(url, "redis://", 8) == 0)
		return parse_tcp(kv, url + 8, e);
	if (strncasecmp(url, "unix://", 7) == 0) {
		kv->is_unix = 1;
		return parse_unix(kv, url + 7, e);
	}
	if (strncasecmp(url, "rediss://", 9) == 0)
		return sb_error_set(e, SB_ERR_USAGE,
				    "invalid redis_url: rediss:// (TLS) is not supported by hiredis 0.14; use a unix socket or a local TLS tunnel");
	{
		char scheme[24];
		const char *colon = strchr(url, ':');
		size_t n = colon ? (size_t)(colon - url) : 0;

		if (n == 0 || n > 16)
			return sb_error_set(e, SB_ERR_USAGE,
					    "invalid redis_url: must start with redis:// or unix://");
		return sb_error_set(e, SB_ERR_USAGE,
				    "invalid redis_url: unsupported scheme '%s' (use redis:// or unix://)",
				    echo_text(scheme, sizeof(scheme), url, n));
	}
}

/* ---- connection ---- */

static void drop_context(struct kv *kv)
{
	if (kv->c) {
		redisFree(kv->c);
		kv->c = NULL;
	}
	kv->pending = 0;
}

/* A NULL reply: the context is dead.  Describe it, then free it. */
static SB_MUST_CHECK int dead_reply(struct kv *kv, const char *what, struct sb_error *e)
{
	char txt[160];
	int err = kv->c ? kv->c->err : REDIS_ERR_OTHER;
	const char *es = kv->c ? kv->c->errstr : "no context";

	echo_text(txt, sizeof(txt), es, strnlen(es, 128));
	if (err == REDIS_ERR_IO && strcmp(es, strerror(EAGAIN)) == 0)
		sb_error_set(e, SB_ERR_REDIS, "Redis at %s did not answer %s within %d ms",
			     kv->where, what, kv->timeout_ms);
	else if (err == REDIS_ERR_EOF)
		sb_error_set(e, SB_ERR_REDIS, "Redis at %s closed the connection during %s",
			     kv->where, what);
	else
		sb_error_set(e, SB_ERR_REDIS, "Redis at %s: %s failed: %s", kv->where, what, txt);
	drop_context(kv);
	return SB_ERR_REDIS;
}

static SB_MUST_CHECK int starts_with(const redisReply *r, const char *prefix)
{
	size_t n = strlen(prefix);

	return r->str && r->len >= n && memcmp(r->str, prefix, n) == 0;
}

/* An ERROR reply: the answer becomes the message; frees r. */
static SB_MUST_CHECK int error_reply(struct kv *kv, redisReply *r, const char *what, struct sb_error *e)
{
	char txt[200];

	echo_text(txt, sizeof(txt), r->str ? r->str : "", r->str ? r->len : 0);
	sb_error_set(e, SB_ERR_REDIS, "Redis at %s rejected %s: %s", kv->where, what, txt);
	/* after a failover the old master answers READONLY: find the new one */
	if (starts_with(r, "READONLY") || starts_with(r, "LOADING") || starts_with(r, "MASTERDOWN"))
		drop_context(kv);
	freeReplyObject(r);
	return SB_ERR_REDIS;
}

/* Send on the current (live) context.  With raw_errors, an ERROR reply is
 * handed back as a reply (kv_eval needs to see NOSCRIPT). */
static SB_MUST_CHECK int send_argv(struct kv *kv, int argc, const char **argv, const size_t *lens,
		     const char *what, int raw_errors, redisReply **out, struct sb_error *e)
{
	redisReply *r;

	*out = NULL;
	r = redisCommandArgv(kv->c, argc, argv, lens);
	if (!r)
		return dead_reply(kv, what, e);
	if (r->type == REDIS_REPLY_ERROR && !raw_errors)
		return error_reply(kv, r, what, e);
	*out = r;
	return 0;
}

static SB_MUST_CHECK int send_simple(struct kv *kv, const char *what, int argc, const char **argv,
		       redisReply **out, struct sb_error *e)
{
	size_t lens[3];
	int i;

	for (i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	return send_argv(kv, argc, argv, lens, what, 0, out, e);
}

static SB_MUST_CHECK int check_role(struct kv *kv, struct sb_error *e)
{
	const char *argv[] = { "ROLE" };
	redisReply *r;
	int rc;

	r = redisCommandArgv(kv->c, 1, argv, NULL);
	if (!r)
		return dead_reply(kv, "ROLE", e);
	rc = 0;
	/* ROLE may be renamed or refused by ACLs on managed Redis: not fatal */
	if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
	    r->element[0]->type == REDIS_REPLY_STRING &&
	    !(r->element[0]->len == 6 && memcmp(r->element[0]->str, "master", 6) == 0)) {
		char role[32];

		echo_text(role, sizeof(role), r->element[0]->str, r->element[0]->len);
		rc = sb_error_set(e, SB_ERR_REDIS,
				  "Redis at %s is not a master (ROLE %s): point redis_url at the master",
				  kv->where, role);
	}
	freeReplyObject(r);
	return rc;
}

static SB_MUST_CHECK int kv_connect(struct kv *kv, struct sb_error *e)
{
	struct timeval tv = ms_to_tv(kv->timeout_ms);
	redisReply *r = NULL;
	redisContext *c;
	int rc;

	drop_context(kv);
	if (kv->is_unix)
		c = redisConnectUnixWithTimeout(kv->path, tv);
	else
		c = redisConnectWithTimeout(kv->host, kv->port, tv);
	if (!c)
		return sb_error_set(e, SB_ERR_REDIS, "Redis at %s unreachable: out of memory", kv->where);
	if (c->err) {
		char txt[160];

		echo_text(txt, sizeof(txt), c->errstr, strnlen(c->errstr, sizeof(c->errstr)));
		rc = sb_error_set(e, SB_ERR_REDIS, "Redis at %s unreachable: %s", kv->where, txt);
		redisFree(c);
		return rc;
	}
	kv->c = c;
	/* the connect timeout does not cover commands; keepalive is per socket */
	if (redisSetTimeout(c, tv) != REDIS_OK ||
	    (!kv->is_unix && redisEnableKeepAlive(c) != REDIS_OK)) {
		rc = sb_error_set(e, SB_ERR_REDIS, "Redis at %s: cannot set socket options: %s",
				  kv->where, strerror(errno));
		drop_context(kv);
		return rc;
	}
	if (kv->password) {
		const char *argv[3];
		int argc = 0;

		argv[argc++] = "AUTH";
		if (kv->user)
			argv[argc++] = kv->user;
		argv[argc++] = kv->password;
		rc = send_simple(kv, "AUTH", argc, argv, &r, e);
		if (rc)
			goto fail;
		freeReplyObject(r);
	}
	if (kv->db != 0) {
		char db[24];
		const char *argv[2] = { "SELECT", db };

		snprintf(db, sizeof(db), "%ld", kv->db);
		rc = send_simple(kv, "SELECT", 2, argv, &r, e);
		if (rc)
			goto fail;
		freeReplyObject(r);
	}
	{
		const char *argv[1] = { "PING" };

		rc = send_simple(kv, "PING", 1, argv, &r, e);
		if (rc)
			goto fail;
		if (r->type != REDIS_REPLY_STATUS || !starts_with(r, "PONG")) {
			struct kv_value v = KV_VALUE_INIT;

			/* out of memory: the sentence names no reply type */
			sb_best_effort(take_reply(kv, r, &v, e));
			rc = kv_unexpected(kv, &v, "PING", e);
			kv_value_release(&v);
			goto fail;
		}
		freeReplyObject(r);
	}
	rc = check_role(kv, e);
	if (rc)
		goto fail;
	return 0;
fail:
	drop_context(kv);
	return rc;
}

void kv_free(struct kv *kv)
{
	if (!kv)
		return;
	drop_context(kv);
	free(kv->host);
	free(kv->path);
	secret_free_str(kv->user);
	secret_free_str(kv->password);
	free(kv);
}

int kv_open(struct kv **out, const char *url, int timeout_ms, struct sb_error *e)
{
	struct kv *kv;
	int rc;

	*out = NULL;
	kv = calloc(1, sizeof(*kv));
	if (!kv)
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	kv->timeout_ms = timeout_ms > 0 ? timeout_ms : KV_DEFAULT_TIMEOUT_MS;
	rc = parse_url(kv, url, e);
	if (rc == 0)
		rc = kv_connect(kv, e);
	if (rc) {
		kv_free(kv);
		return rc;
	}
	*out = kv;
	return 0;
}

/* ---- commands ---- */

static SB_MUST_CHECK int run_argv(struct kv *kv, int argc, const char **argv, const size_t *lens, const char *what,
		    int raw_errors, redisReply **reply, struct sb_error *e)
{
	int rc;

	/* a pipeline left unread would hand its replies to this command */
	if (kv->pending)
		drop_context(kv);
	if (!kv->c) {
		rc = kv_connect(kv, e);
		if (rc)
			return rc;
	}
	return send_argv(kv, argc, argv, lens, what, raw_errors, reply, e);
}

int kv_cmdv(struct kv *kv, struct kv_value *reply, struct sb_error *e, int argc, const char **argv,
	    const size_t *lens)
{
	size_t own[KV_MAX_ARGS], *heap = NULL;
	const size_t *use = lens;
	char what[40];
	redisReply *r = NULL;
	int rc, i;

	if (reply)
		*reply = (struct kv_value)KV_VALUE_INIT;
	if (!kv || argc <= 0 || !argv || !argv[0])
		return sb_error_set(e, SB_ERR_INTERNAL, "kv_cmdv: no command");
	if (!lens) {
		size_t *l = own;

		if (argc > KV_MAX_ARGS) {
			heap = calloc((size_t)argc, sizeof(*heap));
			if (!heap)
				return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
			l = heap;
		}
		for (i = 0; i < argc; i++)
			l[i] = strlen(argv[i]);
		use = l;
	}
	echo_text(what, sizeof(what), argv[0], use[0]);
	rc = run_argv(kv, argc, argv, use, what, 0, &r, e);
	free(heap);
	if (rc)
		return rc;
	return take_reply(kv, r, reply, e);
}

/* "EVAL <lua> <nkeys> <keys...> <args...>" in a new array for the caller
 * to free (its strings are borrowed; nk holds the count's digits). */
static const char **eval_argv(const struct kv_script *script, char nk[16], int nkeys, const char **keys,
			      int nargs, const char **args)
{
	const char **argv = calloc((size_t)nkeys + (size_t)nargs + 3, sizeof(*argv));
	int i;

	if (!argv)
		return NULL;
	snprintf(nk, 16, "%d", nkeys);
	argv[0] = "EVAL";
	argv[1] = script->lua;
	argv[2] = nk;
	for (i = 0; i < nkeys; i++)
		argv[3 + i] = keys[i];
	for (i = 0; i < nargs; i++)
		argv[3 + nkeys + i] = args[i];
	return argv;
}

int kv_pipe_add(struct kv *kv, struct sb_error *e, int argc, const char **argv)
{
	int rc;

	if (!kv || argc <= 0 || !argv || !argv[0])
		return sb_error_set(e, SB_ERR_INTERNAL, "kv_pipe_add: bad command");
	if (!kv->c && (rc = kv_connect(kv, e)) != 0)
		return rc;
	if (redisAppendCommandArgv(kv->c, argc, argv, NULL) != REDIS_OK)
		return dead_reply(kv, argv[0], e);
	kv->pending++;
	return 0;
}

int kv_pipe_eval(struct kv *kv, const struct kv_script *script, struct sb_error *e, int nkeys,
		 const char **keys, int nargs, const char **args)
{
	const char **argv;
	char nk[16];
	int r;

	if (!script || nkeys < 0 || nargs < 0 || nkeys > 100000 || nargs > 100000)
		return sb_error_set(e, SB_ERR_INTERNAL, "kv_pipe_eval: bad arguments");
	if (!(argv = eval_argv(script, nk, nkeys, keys, nargs, args)))
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	r = kv_pipe_add(kv, e, 3 + nkeys + nargs, argv);
	free(argv);
	return r;
}

int kv_pipe_reply(struct kv *kv, struct kv_value *reply, struct sb_error *e)
{
	void *r = NULL;

	if (reply)
		*reply = (struct kv_value)KV_VALUE_INIT;
	if (!kv)
		return sb_error_set(e, SB_ERR_INTERNAL, "kv_pipe_reply: no connection");
	if (!kv->c)   /* dropped by an earlier reply (READONLY after a failover) */
		return sb_error_set(e, SB_ERR_REDIS, "Redis at %s: the connection was dropped during a pipeline",
				    kv->where);
	if (kv->pending <= 0)
		return sb_error_set(e, SB_ERR_INTERNAL, "kv_pipe_reply: no reply pending");
	if (redisGetReply(kv->c, &r) != REDIS_OK || !r)
		return dead_reply(kv, "a pipelined command", e);
	kv->pending--;
	if (((redisReply *)r)->type == REDIS_REPLY_ERROR)
		return error_reply(kv, r, "a pipelined command", e);
	return take_reply(kv, r, reply, e);
}

int kv_pipe_reply_integer(struct kv *kv, const char *what, long long *out, struct sb_error *e)
{
	struct kv_value v = KV_VALUE_INIT;
	int r;

	*out = 0;
	if ((r = kv_pipe_reply(kv, &v, e)) != 0)
		return r;
	r = kv_reply_integer(kv, &v, what, out, e);
	kv_value_release(&v);
	return r;
}

/* The NULL-terminated arguments after arg0 into argv; the count or -1. */
static SB_MUST_CHECK int collect_args(const char *argv[KV_MAX_ARGS], const char *arg0, va_list ap)
{
	const char *a;
	int argc = 0;

	for (a = arg0; a; a = va_arg(ap, const char *)) {
		if (argc == KV_MAX_ARGS)
			return -1;
		argv[argc++] = a;
	}
	return argc;
}

#define KV_COLLECT(argv, argc, arg0, e) do { \
		va_list ap_; \
		va_start(ap_, arg0); \
		argc = collect_args(argv, arg0, ap_); \
		va_end(ap_); \
		if (argc < 0) \
			return sb_error_set(e, SB_ERR_INTERNAL, "kv_cmd: more than %d arguments", KV_MAX_ARGS); \
	} while (0)

int kv_cmd(struct kv *kv, struct kv_value *reply, struct sb_error *e, const char *arg0, ...)
{
	const char *argv[KV_MAX_ARGS];
	int argc;

	if (reply)
		*reply = (struct kv_value)KV_VALUE_INIT;
	KV_COLLECT(argv, argc, arg0, e);
	return kv_cmdv(kv, reply, e, argc, argv, NULL);
}

int kv_cmd_integer(struct kv *kv, long long *out, struct sb_error *e, const char *arg0, ...)
{
	const char *argv[KV_MAX_ARGS];
	struct kv_value v = KV_VALUE_INIT;
	char what[40];
	int argc, r;

	*out = 0;
	KV_COLLECT(argv, argc, arg0, e);
	if ((r = kv_cmdv(kv, &v, e, argc, argv, NULL)) != 0)
		return r;
	r = kv_reply_integer(kv, &v, echo_text(what, sizeof(what), argv[0], strlen(argv[0])), out, e);
	kv_value_release(&v);
	return r;
}

int kv_cmd_string(struct kv *kv, struct buf *out, int *found, struct sb_error *e, const char *arg0, ...)
{
	const char *argv[KV_MAX_ARGS];
	struct kv_value v = KV_VALUE_INIT;
	char what[40];
	int argc, r;

	*found = 0;
	buf_reset(out);
	KV_COLLECT(argv, argc, arg0, e);
	if ((r = kv_cmdv(kv, &v, e, argc, argv, NULL)) != 0)
		return r;
	if (v.type == KV_STRING) {
		if ((r = buf_append(out, v.str, v.len)) == SB_ERR_TOOBIG)
			sb_error_set(e, r, "Redis at %s: the reply to %s is too long", kv->where,
				     echo_text(what, sizeof(what), argv[0], strlen(argv[0])));
		else if (r)
			sb_error_set(e, r, "out of memory");
		else
			*found = 1;
	} else if (v.type != KV_NIL) {
		r = kv_unexpected(kv, &v, echo_text(what, sizeof(what), argv[0], strlen(argv[0])), e);
	}
	kv_value_release(&v);
	return r;
}

int kv_eval(struct kv *kv, struct kv_script *script, struct kv_value *reply, struct sb_error *e,
	    int nkeys, const char **keys, int nargs, const char **args)
{
	const char **argv = NULL;
	size_t *lens = NULL;
	char nk[16], what[80];
	redisReply *r = NULL;
	int argc, i, rc;

	if (reply)
		*reply = (struct kv_value)KV_VALUE_INIT;
	if (!kv || !script || nkeys < 0 || nargs < 0 || nkeys > 100000 || nargs > 100000)
		return sb_error_set(e, SB_ERR_INTERNAL, "kv_eval: bad arguments");
	argc = 3 + nkeys + nargs;
	argv = eval_argv(script, nk, nkeys, keys, nargs, args);
	lens = calloc((size_t)argc, sizeof(*lens));
	if (!argv || !lens) {
		rc = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	snprintf(what, sizeof(what), "script %s", script->name);
	rc = run_argv(kv, argc, argv, lens, what, 1, &r, e);
	if (rc)
		goto out;
	if (r->type == REDIS_REPLY_ERROR)
		rc = error_reply(kv, r, what, e);
	else
		rc = take_reply(kv, r, reply, e);
out:
	free(argv);
	free(lens);
	return rc;
}

int kv_eval_integer(struct kv *kv, struct kv_script *script, long long *out, struct sb_error *e,
		    int nkeys, const char **keys, int nargs, const char **args)
{
	struct kv_value v = KV_VALUE_INIT;
	char what[80];
	int r;

	*out = 0;
	if ((r = kv_eval(kv, script, &v, e, nkeys, keys, nargs, args)) != 0)
		return r;
	snprintf(what, sizeof(what), "script %s", script->name);
	r = kv_reply_integer(kv, &v, what, out, e);
	kv_value_release(&v);
	return r;
}

int kv_maxmemory_policy(struct kv *kv, char *out, size_t outsz, struct sb_error *e)
{
	struct kv_value v = KV_VALUE_INIT;
	const struct kv_value *policy;
	int rc;

	if (outsz)
		out[0] = '\0';
	rc = kv_cmd(kv, &v, e, "CONFIG", "GET", "maxmemory-policy", NULL);
	if (rc)
		return rc;
	policy = kv_value_field(&v, "maxmemory-policy");
	if (v.n != 2 || !policy || policy->type != KV_STRING)
		rc = kv_unexpected(kv, &v, "CONFIG GET maxmemory-policy", e);
	else
		echo_text(out, outsz, policy->str, policy->len);
	kv_value_release(&v);
	return rc;
}
