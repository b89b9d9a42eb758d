/* tests/fuzz: what every libFuzzer harness shares.
 *
 * A harness checks invariants of the module it drives; a broken one is
 * reported with FUZZ_CHECK, which aborts, so libFuzzer saves the input as
 * a crash like any sanitizer report. */
#ifndef SSHBOX_FUZZ_H
#define SSHBOX_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond)                                                                   \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "fuzz: %s:%d: invariant broken: %s\n", __FILE__, __LINE__, \
				#cond);                                                    \
			abort();                                                           \
		}                                                                          \
	} while (0)

extern char **environ;

/* Settings of the caller's environment must not steer a harness: every
 * SSHBOX_* variable goes before the first input. */
static inline void fuzz_clear_sshbox_env(void)
{
	char name[256];
	int again = 1;

	while (again) {
		char **p;

		again = 0;
		for (p = environ; p && *p; p++) {
			const char *eq = strchr(*p, '=');
			size_t n = eq ? (size_t)(eq - *p) : strlen(*p);

			if (strncmp(*p, "SSHBOX_", 7) != 0 || n >= sizeof(name))
				continue;
			memcpy(name, *p, n);
			name[n] = '\0';
			unsetenv(name);   /* changes environ: start over */
			again = 1;
			break;
		}
	}
}

/* An error sentence as the project promises them: the code that was
 * returned, one non-empty line. */
static inline int fuzz_error_ok(const struct sb_error *e, int r)
{
	size_t n = strnlen(e->msg, sizeof(e->msg));

	return e->code == r && n > 0 && n < sizeof(e->msg) && !memchr(e->msg, '\n', n);
}

/* ... and printable ASCII only (sentences that echo user input sanitize it). */
static inline int fuzz_printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

/* Does hay contain needle?  A plain loop, not memmem: libFuzzer's memmem
 * hook would feed the needle back into the mutations. */
static inline int fuzz_contains(const char *hay, const char *needle, size_t nlen)
{
	size_t hlen = strlen(hay), i;

	if (nlen == 0 || nlen > hlen)
		return 0;
	for (i = 0; i + nlen <= hlen; i++) {
		size_t k = 0;

		while (k < nlen && hay[i + k] == needle[k])
			k++;
		if (k == nlen)
			return 1;
	}
	return 0;
}

/* An exact-size heap copy, so ASan sees a read one byte past the end. */
static inline char *fuzz_dup(const void *p, size_t n)
{
	char *c = malloc(n ? n : 1);

	if (!c)
		abort();
	if (n)
		memcpy(c, p, n);
	return c;
}

#endif
