#include "strvec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

static SB_MUST_CHECK int strvec_push_owned(struct strvec *sv, char *s)
{
	if (sv->n + 2 > sv->cap) {
		size_t ncap = sv->cap ? sv->cap * 2 : 8;
		char **nv = realloc(sv->v, ncap * sizeof(*nv));

		if (!nv) {
			free(s);
			return SB_ERR_NOMEM;
		}
		sv->v = nv;
		sv->cap = ncap;
	}
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;
	return 0;
}

int strvec_push(struct strvec *sv, const char *s)
{
	char *d = strdup(s);

	if (!d)
		return SB_ERR_NOMEM;
	return strvec_push_owned(sv, d);
}

int strvec_pushf(struct strvec *sv, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return SB_ERR_NOMEM;
	return strvec_push_owned(sv, s);
}

int strvec_pushv(struct strvec *sv, const char *const *v)
{
	int r;

	for (; v && *v; v++)
		if ((r = strvec_push(sv, *v)) != 0)
			return r;
	return 0;
}

int strvec_setenv(struct strvec *sv, const char *name, const char *value)
{
	size_t nl = strlen(name), i;
	char *s;

	if (asprintf(&s, "%s=%s", name, value) < 0)
		return SB_ERR_NOMEM;
	for (i = 0; i < sv->n; i++) {
		if (strncmp(sv->v[i], name, nl) == 0 && sv->v[i][nl] == '=') {
			free(sv->v[i]);
			sv->v[i] = s;
			return 0;
		}
	}
	return strvec_push_owned(sv, s);
}

char *const *strvec_argv(const struct strvec *sv)
{
	static char *const empty[] = { NULL };

	return sv->v ? sv->v : empty;
}

void strvec_clear(struct strvec *sv)
{
	size_t i;

	for (i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = sv->cap = 0;
}
