#include "buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "secret.h"

void buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = b->cap = 0;
	b->max = max;
	b->secret = 0;
	b->err = 0;
}

void buf_init_secret(struct buf *b, size_t max)
{
	buf_init(b, max);
	b->secret = 1;
}

static SB_MUST_CHECK int reserve(struct buf *b, size_t extra);

int buf_reserve(struct buf *b, size_t extra)
{
	int r = reserve(b, extra);

	if (r && !b->err)
		b->err = r;
	return r;
}

static SB_MUST_CHECK int reserve(struct buf *b, size_t extra)
{
	size_t need, ncap;
	char *n;

	if (extra > SIZE_MAX - b->len - 1)
		return SB_ERR_TOOBIG;
	if (b->max && b->len + extra > b->max)
		return SB_ERR_TOOBIG;
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 64;
	while (ncap < need)
		ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
	if (b->secret) {
		n = malloc(ncap);
		if (!n)
			return SB_ERR_NOMEM;
		if (b->data) {
			memcpy(n, b->data, b->len + 1);
			secret_wipe(b->data, b->cap);
			free(b->data);
		}
	} else {
		n = realloc(b->data, ncap);
		if (!n)
			return SB_ERR_NOMEM;
	}
	b->data = n;
	b->cap = ncap;
	return 0;
}

int buf_append(struct buf *b, const void *data, size_t len)
{
	int r = buf_reserve(b, len);

	if (r)
		return r;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int buf_puts(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int buf_putc(struct buf *b, char c)
{
	return buf_append(b, &c, 1);
}

int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n, r;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0) {
		if (!b->err)
			b->err = SB_ERR_INTERNAL;
		return SB_ERR_INTERNAL;
	}
	r = buf_reserve(b, (size_t)n);
	if (r)
		return r;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

void buf_add(struct buf *b, const void *data, size_t len)
{
	if (!b->err)
		sb_best_effort(buf_append(b, data, len));   /* recorded in b->err */
}

void buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void buf_addc(struct buf *b, char c)
{
	buf_add(b, &c, 1);
}

void buf_addf(struct buf *b, const char *fmt, ...)
{
	va_list ap;

	if (b->err)
		return;
	va_start(ap, fmt);
	sb_best_effort(buf_vprintf(b, fmt, ap));   /* recorded in b->err */
	va_end(ap);
}

int buf_check(const struct buf *b)
{
	return b->err;
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
	} else {
		memmove(b->data, b->data + n, b->len - n);
		b->len -= n;
	}
	if (b->data)
		b->data[b->len] = '\0';
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	b->err = 0;
	if (b->data)
		b->data[0] = '\0';
}

const char *buf_cstr(const struct buf *b)
{
	return b->data ? b->data : "";
}

void buf_release(struct buf *b)
{
	if (b->secret && b->data)
		secret_wipe(b->data, b->cap);
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->err = 0;
}

void buf_wipe_release(struct buf *b)
{
	if (b->data)
		secret_wipe(b->data, b->cap);
	buf_release(b);
}

char *buf_detach(struct buf *b, size_t *len)
{
	char *d = b->data;

	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return d;
}
