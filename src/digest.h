/* layer 0: SHA-256 for names (control paths, repository cache keys).
 *
 * Why not OpenSSL here: its first digest initialises its providers, which
 * costs every `sshbox run` time and resident memory (docs/performance.md)
 * for a use that needs no FIPS provider.  OpenSSL stays for Fernet (AES,
 * HMAC).  The unit tests check sha256() against OpenSSL and FIPS 180-4's
 * vectors. */
#ifndef SSHBOX_DIGEST_H
#define SSHBOX_DIGEST_H

#include <stddef.h>

#define SHA256_LEN 32

void sha256(const void *data, size_t len, unsigned char out[SHA256_LEN]);

#endif
