#include "secret.h"

#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

void secret_wipe(void *p, size_t len)
{
	if (p && len)
		explicit_bzero(p, len);   /* glibc: never optimised away */
}

void secret_free_str(char *s)
{
	if (!s)
		return;
	secret_wipe(s, strlen(s));
	free(s);
}

void secret_process_harden(void)
{
	struct rlimit rl = { 0, 0 };

	(void)setrlimit(RLIMIT_CORE, &rl);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int secret_memcmp(const void *a, const void *b, size_t len)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned char d = 0;
	size_t i;

	/* every byte is read whatever differs: the time says nothing */
	for (i = 0; i < len; i++)
		d |= x[i] ^ y[i];
	return d != 0;
}
