/* layer 1: the one thin hiredis 0.14 wrapper (docs/locks.md has what it
 * is used for).
 *
 * - Commands go only through redisCommandArgv with explicit lengths; data
 *   is never formatted into a command string.
 * - One timeout bounds the connect and every command (redisSetTimeout);
 *   TCP connections get keepalive.  Both are applied again on reconnect.
 * - A NULL reply means the connection is dead (hiredis errors are sticky
 *   and a late reply may still arrive): the context is freed, THIS call
 *   fails with SB_ERR_REDIS, and the next call connects afresh (timeouts,
 *   keepalive, AUTH, SELECT, PING, ROLE).  Nothing is retried blindly, so a
 *   non-idempotent command is never sent twice by this layer.
 * - An error reply is an answer: SB_ERR_REDIS with the server's
 *   text in e, the connection stays usable -- except READONLY, LOADING and
 *   MASTERDOWN, after which the next call reconnects (failover).
 * - Error sentences name the server ("Redis at 127.0.0.1:6379 unreachable:
 *   Connection refused") and never contain the password or command data
 *   (only the command name or script name).
 * - The process must ignore SIGPIPE (hiredis writes with write()).
 * - A struct kv is one connection: not for concurrent use by two threads. */
#ifndef SSHBOX_KV_H
#define SSHBOX_KV_H

#include <stddef.h>

#include "buf.h"
#include "err.h"

struct kv;

/* A reply, deep-copied out of hiredis: callers never see hiredis types and
 * never free a hiredis object.  An error reply is SB_ERR_REDIS, never a
 * value, except as an element of an array (a script may return one).
 * str is NUL-terminated (len does not count the NUL) for KV_STRING,
 * KV_STATUS and KV_ERROR; elem holds n values for KV_ARRAY.  The strings
 * are wiped on release: a reply may hold a key token. */
enum kv_type { KV_NIL, KV_INTEGER, KV_STRING, KV_STATUS, KV_ARRAY, KV_ERROR };

struct kv_value {
	enum kv_type type;
	long long integer;
	char *str;
	size_t len;
	struct kv_value *elem;
	size_t n;
};
#define KV_VALUE_INIT { KV_NIL, 0, NULL, 0, NULL, 0 }

/* Free the contents (wiped); the value becomes KV_VALUE_INIT. */
void kv_value_release(struct kv_value *v);
/* In a flat field/value array (HGETALL, CONFIG GET): the value after the
 * first string element equal to name, or NULL. */
const struct kv_value *kv_value_field(const struct kv_value *v, const char *name);
/* "string", "array", "integer", "nil", "status", "error" or "no reply". */
const char *kv_value_type_name(const struct kv_value *v);

/* url: redis://[[user]:password@]host[:port][/db]   (host may be [IPv6];
 *        user and password are %-decoded; port 6379, db 0 by default)
 *      unix:///absolute/path[?db=N][&password=P][&user=U]
 * rediss:// is refused (hiredis 0.14 has no TLS).  timeout_ms <= 0 means
 * 2000.  Connects, authenticates, selects the db, PINGs and refuses a
 * replica (ROLE).  On failure *out is NULL. */
SB_MUST_CHECK int kv_open(struct kv **out, const char *url, int timeout_ms, struct sb_error *e);
void kv_free(struct kv *kv);

/* "127.0.0.1:6379", "[::1]:6379" or "/run/redis.sock": for messages. */
const char *kv_where(const struct kv *kv);

/* One command from a NULL-terminated list of C strings, e.g.
 * kv_cmd(kv, &v, e, "HGETALL", key, NULL).  At most 64 arguments.  On
 * success *reply (if reply is not NULL) holds the reply: kv_value_release
 * it.  reply may be NULL when only success matters.  On failure *reply is
 * KV_VALUE_INIT (nothing to release). */
SB_MUST_CHECK int kv_cmd(struct kv *kv, struct kv_value *reply, struct sb_error *e, const char *arg0, ...)
	__attribute__((sentinel));
/* The same with counted arguments (binary-safe); lens may be NULL (strlen). */
SB_MUST_CHECK int kv_cmdv(struct kv *kv, struct kv_value *reply, struct sb_error *e, int argc, const char **argv,
	    const size_t *lens);
/* The common shapes, checked (kv_reply_integer's message otherwise):
 * an integer reply into *out; */
SB_MUST_CHECK int kv_cmd_integer(struct kv *kv, long long *out, struct sb_error *e, const char *arg0, ...)
	__attribute__((sentinel));
/* a string or nil reply: *found = 0 for nil, else 1 and the bytes in out
 * (reset first). */
SB_MUST_CHECK int kv_cmd_string(struct kv *kv, struct buf *out, int *found, struct sb_error *e, const char *arg0, ...)
	__attribute__((sentinel));

/* A Lua script kept in the binary.
 *   static struct kv_script renew = KV_SCRIPT("lock_renew", "...lua..."); */
struct kv_script {
	const char *name;
	const char *lua;
};
#define KV_SCRIPT(name, lua) { (name), (lua) }

/* EVAL: the server caches the compiled script by its SHA1 either way.  Not
 * EVALSHA: that needs the SHA1 here (OpenSSL's first digest is a cost
 * `sshbox run` avoids, see digest.h), and a NOSCRIPT after a restart or
 * failover costs a second round trip; the scripts are under 2 KB.  Every
 * key goes in keys[]. */
SB_MUST_CHECK int kv_eval(struct kv *kv, struct kv_script *script, struct kv_value *reply, struct sb_error *e,
	    int nkeys, const char **keys, int nargs, const char **args);
/* A script whose answer is an integer ("unexpected reply to script <name>"
 * otherwise). */
SB_MUST_CHECK int kv_eval_integer(struct kv *kv, struct kv_script *script, long long *out, struct sb_error *e,
		    int nkeys, const char **keys, int nargs, const char **args);

/* Pipelining: queue commands with kv_pipe_add, then take their replies in
 * order with kv_pipe_reply, one round trip for all (hiredis writes the
 * queue on the first read).  An error reply is SB_ERR_REDIS like kv_cmd's;
 * a broken connection fails every reply still pending: after any error,
 * stop and start over (the next command reconnects).  Any other command
 * issued before every reply was taken drops the connection first (the
 * next command reconnects), so replies are never handed to the wrong
 * caller. */
SB_MUST_CHECK int kv_pipe_add(struct kv *kv, struct sb_error *e, int argc, const char **argv);
SB_MUST_CHECK int kv_pipe_reply(struct kv *kv, struct kv_value *reply, struct sb_error *e);
/* The next pipelined reply as an integer (kv_reply_integer's checks). */
SB_MUST_CHECK int kv_pipe_reply_integer(struct kv *kv, const char *what, long long *out, struct sb_error *e);
/* A script in the pipeline (EVAL, as kv_eval). */
SB_MUST_CHECK int kv_pipe_eval(struct kv *kv, const struct kv_script *script, struct sb_error *e, int nkeys,
		 const char **keys, int nargs, const char **args);

/* Reply checks: 0 and the value when the reply has that type, else
 * SB_ERR_REDIS with "Redis at X: unexpected reply to <what>: <type>". */
SB_MUST_CHECK int kv_reply_integer(struct kv *kv, const struct kv_value *r, const char *what, long long *out,
		     struct sb_error *e);
int kv_unexpected(struct kv *kv, const struct kv_value *r, const char *what, struct sb_error *e);

/* The server's maxmemory-policy into out (e.g. "noeviction"); locks need
 * noeviction.  SB_ERR_REDIS if CONFIG GET is refused (managed Redis). */
SB_MUST_CHECK int kv_maxmemory_policy(struct kv *kv, char *out, size_t outsz, struct sb_error *e);

#endif
