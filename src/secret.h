/* layer 0: secrets in memory: wiping and locked, wiped-on-free buffers.
 *
 * Every buffer that held a private key, token, API key or prompt is wiped
 * with secret_wipe() (explicit_bzero: not optimised away) before it is
 * freed.  secret_process_harden() keeps secrets out of core files. */
#ifndef SSHBOX_SECRET_H
#define SSHBOX_SECRET_H

#include <stddef.h>

void secret_wipe(void *p, size_t len);
/* Wipe a NUL-terminated string and free it; NULL is fine. */
void secret_free_str(char *s);
/* Best effort: no core dumps, not ptrace-able by other users' processes. */
void secret_process_harden(void);
/* Constant-time comparison of two equal-length byte strings: 0 if equal. */
int secret_memcmp(const void *a, const void *b, size_t len);

#endif
