/* layer 2: accounts and sandboxes in Redis.
 *
 * Keys (every registry key name is here; lock keys are in lock.h):
 *   sshbox:accounts                     set: every account known to the
 *                                       registry (with a key or sandboxes)
 *   sshbox:account:<account>            hash: key_token (Fernet token of the
 *                                       private key, opaque here), public_key,
 *                                       fingerprint, key_type, key_version,
 *                                       created_at, updated_at
 *   sshbox:account:<account>:sandboxes  set: canonical host names
 *   sshbox:{<account>:<host>}:sandbox   hash: host, port, user, workdir,
 *                                       slots, claude, state, host_key,
 *                                       created_at, updated_at
 *   sshbox:registry:version             counter: INCRed by every change (the
 *                                       supervisor watches it)
 *   sshbox:aliases                      hash: ssh alias sbx-<account>-<host>
 *                                       -> "<account> <host>"; both names may
 *                                       contain '-', so two sandboxes could
 *                                       spell the same alias: the second is
 *                                       refused
 * Every write is one Lua script, so uniqueness, the record and the version
 * change together.  <host> is always validate_host_canonical()'s spelling
 * (lowercase, canonical IPv6); callers may pass any spelling.  Times are
 * Unix seconds.  Scripts touch keys of several hash tags: this needs a
 * single Redis (with Sentinel), not Redis Cluster.
 *
 * Everything read back is validated again with validate.h (Redis content is
 * not trusted to be safe for argv or ssh_config): a record that fails is an
 * SB_ERR_REDIS error naming the key and the field. */
#ifndef SSHBOX_REGISTRY_H
#define SSHBOX_REGISTRY_H

#include <stddef.h>

#include "err.h"
#include "kv.h"

#define REGISTRY_KEY_ACCOUNTS "sshbox:accounts"
#define REGISTRY_KEY_VERSION "sshbox:registry:version"
#define REGISTRY_KEY_ALIASES "sshbox:aliases"
#define REGISTRY_KEY_ACCOUNT_FMT "sshbox:account:%s"
#define REGISTRY_KEY_ACCOUNT_SANDBOXES_FMT "sshbox:account:%s:sandboxes"
#define REGISTRY_KEY_SANDBOX_FMT "sshbox:{%s:%s}:sandbox"
#define REGISTRY_KEY_MAX 400

#define REGISTRY_STATE_ACTIVE "active"
#define REGISTRY_STATE_DRAINING "draining"
#define REGISTRY_STATE_DISABLED "disabled"

#define REGISTRY_TOKEN_MAX 65536      /* bound on a stored Fernet token */

SB_MUST_CHECK int registry_key_account(char *out, size_t outsz, const char *account, struct sb_error *e);
SB_MUST_CHECK int registry_key_account_sandboxes(char *out, size_t outsz, const char *account, struct sb_error *e);
SB_MUST_CHECK int registry_key_sandbox(char *out, size_t outsz, const char *account, const char *host,
			 struct sb_error *e);

/* ---- accounts ---- */

struct account_rec {
	char *account;
	char *key_token;     /* Fernet token; wiped on release */
	char *public_key;    /* "ssh-ed25519 AAAA... [comment]" */
	char *fingerprint;   /* "SHA256:..." */
	char *key_type;      /* e.g. "ed25519", "rsa", "ecdsa" */
	long long key_version;
	long long created_at, updated_at;
};
#define ACCOUNT_REC_INIT { NULL, NULL, NULL, NULL, NULL, 0, 0, 0 }

/* SB_ERR_NOTFOUND "no key stored for account 'a'" when there is none. */
SB_MUST_CHECK int registry_account_get(struct kv *kv, const char *account, struct account_rec *out,
			 struct sb_error *e);

/* Store a key: rec->account, key_token, public_key, fingerprint, key_type
 * (the other fields are ignored).  In one script: bump key_version, write
 * the fields, set created_at once and updated_at, add the account to
 * sshbox:accounts, bump the registry version.  expect_version guards races:
 *   -1  any state (overwrite)
 *    0  the account must have no key yet ("key set")
 *    n  the stored key_version must be n ("key rotate" after reading n)
 * A mismatch is SB_ERR_EXISTS naming the account.  *new_version (may be
 * NULL) gets the new key_version. */
SB_MUST_CHECK int registry_account_put_key(struct kv *kv, const struct account_rec *rec, long long expect_version,
			     long long *new_version, struct sb_error *e);

/* Replace only key_token (Fernet re-encryption: same key, new ciphertext;
 * key_version is unchanged) if key_version is still expect_version, else
 * SB_ERR_EXISTS; SB_ERR_NOTFOUND if there is no key.  Bumps the registry
 * version. */
SB_MUST_CHECK int registry_account_set_token(struct kv *kv, const char *account, long long expect_version,
			       const char *key_token, struct sb_error *e);

/* Every account name in sshbox:accounts, sorted; free with
 * registry_names_free. */
SB_MUST_CHECK int registry_account_list(struct kv *kv, char ***names, size_t *n, struct sb_error *e);
void registry_names_free(char **names, size_t n);

/* Free the contents (the token is wiped); the struct becomes ACCOUNT_REC_INIT. */
void account_rec_release(struct account_rec *rec);

/* ---- sandboxes ---- */

struct sandbox_rec {
	char *account, *host;   /* host: canonical */
	int port;
	char *user, *workdir;
	int slots;
	char *claude;           /* Claude Code executable on the sandbox */
	char *state;            /* REGISTRY_STATE_* */
	char *host_key;         /* pinned: "ssh-ed25519 AAAA..." */
	long long created_at, updated_at;
};
#define SANDBOX_REC_INIT { NULL, NULL, 0, NULL, NULL, 0, NULL, NULL, NULL, 0, 0 }

/* Register rec (account, host, port, user, workdir, slots, host_key
 * required; claude NULL = "claude"; state NULL = "active"; the times are
 * set here).  Every field is validated first.  One script: SB_ERR_EXISTS
 * "sandbox 'h' already registered for account 'a'" when the host is taken
 * (also when another account's sandbox has the same ssh alias),
 * else write the hash, add the host to the account's set and the account to
 * sshbox:accounts, bump the version. */
SB_MUST_CHECK int registry_sandbox_add(struct kv *kv, const struct sandbox_rec *rec, struct sb_error *e);

/* SB_ERR_NOTFOUND "sandbox 'h' is not registered for account 'a'". */
SB_MUST_CHECK int registry_sandbox_get(struct kv *kv, const char *account, const char *host,
			 struct sandbox_rec *out, struct sb_error *e);

/* All sandboxes of account, or of every account when account is NULL,
 * sorted by account then host.  *out is an array of *n records: free with
 * sandbox_rec_free_array.  A record that vanishes while listing is
 * skipped; one that fails validation fails the call. */
SB_MUST_CHECK int registry_sandbox_list(struct kv *kv, const char *account, struct sandbox_rec **out, size_t *n,
			  struct sb_error *e);

/* state: one of REGISTRY_STATE_*.  SB_ERR_NOTFOUND if absent; bumps the
 * version (also when the state does not change). */
SB_MUST_CHECK int registry_sandbox_set_state(struct kv *kv, const char *account, const char *host,
			       const char *state, struct sb_error *e);

/* Delete the hash, the set member, the alias and the sandbox's
 * repository-affinity set (pool.h) in one script; drop the account from
 * sshbox:accounts when it has neither key nor sandboxes left; bump the
 * version.  SB_ERR_NOTFOUND if absent.  Does not look at slot locks:
 * running jobs keep running (the caller decides whether to refuse). */
SB_MUST_CHECK int registry_sandbox_remove(struct kv *kv, const char *account, const char *host,
			    struct sb_error *e);

void sandbox_rec_release(struct sandbox_rec *rec);
void sandbox_rec_free_array(struct sandbox_rec *recs, size_t n);

/* The registry version counter (0 when never changed). */
SB_MUST_CHECK int registry_version(struct kv *kv, long long *out, struct sb_error *e);

#endif
