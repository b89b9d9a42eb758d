/* layer 0: NULL-terminated string vectors (argv, envp) that own their strings. */
#ifndef SSHBOX_STRVEC_H
#define SSHBOX_STRVEC_H

#include <stddef.h>

#include "err.h"

struct strvec {
	char **v;     /* always NULL-terminated once anything was pushed */
	size_t n;
	size_t cap;
};
#define STRVEC_INIT { NULL, 0, 0 }

SB_MUST_CHECK int strvec_push(struct strvec *sv, const char *s);
SB_MUST_CHECK int strvec_pushf(struct strvec *sv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
SB_MUST_CHECK int strvec_pushv(struct strvec *sv, const char *const *v);
/* Set NAME=value in an environment vector, replacing an existing NAME. */
SB_MUST_CHECK int strvec_setenv(struct strvec *sv, const char *name, const char *value);
/* v, or a static empty vector when nothing was pushed. */
char *const *strvec_argv(const struct strvec *sv);
void strvec_clear(struct strvec *sv);

#endif
