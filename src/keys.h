/* layer 2: validating SSH private keys without writing them anywhere.
 *
 * The key is handed to `ssh-keygen -y -P '' -f /dev/stdin` on a pipe (new
 * session, no tty), which proves OpenSSH 9.2 can load it and yields the
 * public key; `ssh-keygen -l` gives the SHA256 fingerprint. */
#ifndef SSHBOX_KEYS_H
#define SSHBOX_KEYS_H

#include <stddef.h>

#include "buf.h"
#include "err.h"

#define KEYS_MAX_PRIVATE (64 * 1024)

struct key_info {
	char type[16];          /* ED25519, RSA, ECDSA */
	char format[48];        /* "OpenSSH", "PEM RSA", "PEM EC", "PKCS#8" */
	char fingerprint[128];  /* SHA256:... */
	struct buf public_key;  /* "ssh-ed25519 AAAA..." (no comment) */
};
#define KEY_INFO_INIT { "", "", "", BUF_INIT }

/* Accepts OpenSSH ed25519/RSA/ECDSA, PEM RSA, PEM EC, PKCS#8 RSA/EC.
 * Refuses passphrase-protected keys, DSA, PKCS#8 Ed25519 (OpenSSH 9.2
 * cannot read it) and anything else, with one sentence naming the format. */
SB_MUST_CHECK int keys_inspect(const char *key, size_t len, struct key_info *info, struct sb_error *e);
void key_info_release(struct key_info *info);
/* Append key to out the way OpenSSH wants it: surrounding blank space
 * trimmed, CRLF as LF, one final newline (web forms lose or add these).
 * out should be a secret buffer. */
SB_MUST_CHECK int keys_normalize(const char *key, size_t len, struct buf *out);
/* Fingerprint of a public key line ("type base64"). */
SB_MUST_CHECK int keys_fingerprint(const char *pub, char out[128], struct sb_error *e);

#endif
