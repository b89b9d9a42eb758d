/* layer 2: ssh-agent processes and loading keys into them.
 *
 * Keys reach an agent only through `ssh-add -` on a pipe; the plaintext
 * never touches disk or argv.  ssh-add runs in its own session (no
 * controlling tty) with SSH_ASKPASS_REQUIRE=never, so it can never prompt. */
#ifndef SSHBOX_AGENT_H
#define SSHBOX_AGENT_H

#include <stddef.h>

#include "buf.h"
#include "child.h"
#include "config.h"
#include "err.h"

struct agent {
	struct child proc;
	char *sock;
};
#define AGENT_INIT { CHILD_INIT, NULL }

/* Start `ssh-agent -D -a sock` (a stale socket file is removed first) and
 * wait until it accepts connections. */
SB_MUST_CHECK int agent_start(struct agent *a, const char *sock, struct sb_error *e);
/* SIGTERM (the agent removes its socket), reap, unlink as a backstop. */
void agent_stop(struct agent *a);
/* Load a private key; lifetime_s 0 = no lifetime. */
SB_MUST_CHECK int agent_add_key(const char *sock, const char *key, size_t key_len, int lifetime_s, struct sb_error *e);
/* Does the agent at sock answer and hold the key whose public line (type
 * and base64, comment ignored) is pub?  *has_key = 0/1.  An agent that does
 * not answer is an error. */
/* Decrypt an account's stored key (its Fernet token) with the configured
 * keys and load it; the plaintext lives only in wiped buffers.  Errors are
 * SB_ERR_UNAVAILABLE sentences naming the account. */
SB_MUST_CHECK int agent_load_token(const char *sock, const struct config *cfg, const char *account, const char *key_token,
		     int lifetime_s, struct sb_error *e);
/* The account's key in an agent: the supervisor's (agent/<account>.sock)
 * when it holds key_version (its link names it) or public_key, else a private agent started in *priv at
 * agent/run/<pid>.sock (path in priv_sock) with the key loaded for
 * lifetime_s.  priv->sock is NULL when the supervisor's is used; the caller
 * stops a started one with agent_stop(). */
SB_MUST_CHECK int agent_prepare(const struct config *cfg, const char *account, long long key_version, const char *public_key,
		  const char *key_token, int lifetime_s, struct agent *priv, struct buf *priv_sock, struct sb_error *e);
SB_MUST_CHECK int agent_has_key(const char *sock, const char *pub, int *has_key, struct sb_error *e);

#endif
