/* layer 0: SHA-256 for names (control paths, repository cache keys) and a
 * kernel random source for tokens and nonces.
 *
 * Why not OpenSSL here: its first digest or RAND call initialises its
 * providers, which costs every `sshbox run` about 1 ms and 2.4 MB of
 * resident memory (bench/scale.sh), while these uses need neither FIPS
 * providers nor a DRBG.  OpenSSL stays for Fernet (AES, HMAC).  The unit
 * tests check sha256() against OpenSSL and FIPS 180-4's vectors. */
#ifndef SSHBOX_DIGEST_H
#define SSHBOX_DIGEST_H

#include <stddef.h>

#include "err.h"

#define SHA256_LEN 32

void sha256(const void *data, size_t len, unsigned char out[SHA256_LEN]);

/* n bytes from getrandom(2) (blocks only before the kernel's pool is
 * first initialised, at boot).  0, or -1 with errno set. */
SB_MUST_CHECK int random_bytes(void *buf, size_t n);

#endif
