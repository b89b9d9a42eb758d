/* layer 0: random bytes from the kernel for tokens, nonces, Fernet keys
 * and IVs: getrandom(2), no DRBG of our own (and no OpenSSL: see digest.h
 * for why `sshbox run` avoids initialising it). */
#ifndef SSHBOX_ENTROPY_H
#define SSHBOX_ENTROPY_H

#include <stddef.h>

#include "err.h"

/* n bytes (blocks only before the kernel's pool is first initialised, at
 * boot).  0, or -1 with errno set. */
SB_MUST_CHECK int entropy_fill(void *buf, size_t n);

#endif
