#include "ndjson.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

struct ndjson {
	size_t max;        /* longest line kept, '\n' excluded */
	char *buf;         /* the unfinished line carried between chunks */
	size_t len, cap;   /* cap <= max */
	int dropping;      /* discarding an over-long line up to its '\n' */
	size_t dropped;    /* its length so far */
};

struct ndjson *ndjson_new(size_t max_line)
{
	struct ndjson *f = calloc(1, sizeof(*f));

	if (f)
		f->max = max_line;
	return f;
}

void ndjson_free(struct ndjson *f)
{
	if (!f)
		return;
	free(f->buf);
	free(f);
}

size_t ndjson_pending(const struct ndjson *f)
{
	return f->len;
}

size_t ndjson_allocated(const struct ndjson *f)
{
	return f->cap;
}

/* Keep p[0..n) after what is held; the caller checked len + n <= max. */
static SB_MUST_CHECK int hold(struct ndjson *f, const char *p, size_t n)
{
	size_t need = f->len + n;

	if (need > f->cap) {
		size_t ncap = f->cap ? f->cap : 4096;
		char *nb;

		while (ncap < need)
			ncap = ncap > f->max / 2 ? f->max : ncap * 2;
		if (ncap > f->max)
			ncap = f->max;
		nb = realloc(f->buf, ncap);
		if (!nb)
			return SB_ERR_NOMEM;
		f->buf = nb;
		f->cap = ncap;
	}
	memcpy(f->buf + f->len, p, n);
	f->len = need;
	return 0;
}

static void start_dropping(struct ndjson *f, size_t n)
{
	f->dropping = 1;
	f->dropped = f->len + n;
	f->len = 0;
}

int ndjson_feed(struct ndjson *f, const void *data, size_t len, ndjson_line_fn *on_line,
		ndjson_drop_fn *on_drop, void *ctx)
{
	const char *p = data, *end = p + len, *nl;
	size_t n;
	int r = 0;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl) {
			/* an unfinished line: keep it for the next chunk */
			n = (size_t)(end - p);
			if (f->dropping) {
				f->dropped += n;
			} else if (n > f->max - f->len) {
				start_dropping(f, n);
			} else if (hold(f, p, n)) {
				start_dropping(f, n);
				r = SB_ERR_NOMEM;
			}
			return r;
		}
		n = (size_t)(nl - p);
		if (f->dropping) {
			f->dropping = 0;
			on_drop(ctx, f->dropped + n);
		} else if (n > f->max - f->len) {
			n += f->len;
			f->len = 0;
			on_drop(ctx, n);
		} else if (!f->len) {
			on_line(ctx, p, n);
		} else if (hold(f, p, n)) {
			/* the line fits but memory for it did not */
			n += f->len;
			f->len = 0;
			r = SB_ERR_NOMEM;
			on_drop(ctx, n);
		} else {
			n = f->len;
			f->len = 0;
			on_line(ctx, f->buf, n);
		}
		p = nl + 1;
	}
	return r;
}

void ndjson_finish(struct ndjson *f, ndjson_line_fn *on_line, ndjson_drop_fn *on_drop, void *ctx)
{
	if (f->dropping) {
		f->dropping = 0;
		on_drop(ctx, f->dropped);
	} else if (f->len) {
		size_t n = f->len;

		f->len = 0;
		on_line(ctx, f->buf, n);
	}
	f->dropped = 0;
}
