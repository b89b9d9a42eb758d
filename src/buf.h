/* layer 0: bounded growable byte buffers.
 *
 * A buf always keeps a NUL after its data (when data is not NULL), so
 * buf_cstr() is cheap; the NUL is not counted in len.  `max` bounds len:
 * appends past it fail with SB_ERR_TOOBIG and leave the buffer unchanged.
 *
 * Out of memory (docs/development.md): a failed append also records its
 * error in the buffer.  Code that acts on each append uses the int
 * functions (their result must be used); text built piece by piece (command
 * output, events, JSON) uses the void buf_add* family, which does nothing
 * once an append failed, and checks buf_check() once, where the text is
 * used: a half-built text is never printed or sent. */
#ifndef SSHBOX_BUF_H
#define SSHBOX_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "err.h"

struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;   /* 0 = no bound beyond memory */
	int secret;   /* growth copies and wipes the old block; release wipes */
	int err;      /* the first failed append's SB_ERR_*, 0 while none */
};
#define BUF_INIT { NULL, 0, 0, 0, 0, 0 }

void buf_init(struct buf *b, size_t max);
/* A buffer for secrets: no stale copies are left behind by growth. */
void buf_init_secret(struct buf *b, size_t max);
SB_MUST_CHECK int buf_reserve(struct buf *b, size_t extra);
SB_MUST_CHECK int buf_append(struct buf *b, const void *data, size_t len);
SB_MUST_CHECK int buf_puts(struct buf *b, const char *s);
SB_MUST_CHECK int buf_putc(struct buf *b, char c);
SB_MUST_CHECK int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
SB_MUST_CHECK int buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Builders: append, or do nothing once an append failed (recorded). */
void buf_add(struct buf *b, const void *data, size_t len);
void buf_adds(struct buf *b, const char *s);
void buf_addc(struct buf *b, char c);
void buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* 0, or the error of the first append that failed since the last reset. */
SB_MUST_CHECK int buf_check(const struct buf *b);
/* Drop the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
/* Keep the allocation, forget the contents (not wiped) and any failure. */
void buf_reset(struct buf *b);
/* "" when empty; never NULL. */
const char *buf_cstr(const struct buf *b);
/* Free contents; the struct stays valid (as BUF_INIT with the same max). */
void buf_release(struct buf *b);
/* Wipe every allocated byte, then release: for buffers that held secrets. */
void buf_wipe_release(struct buf *b);
/* Hand the allocation to the caller (NUL-terminated, may be NULL if empty). */
char *buf_detach(struct buf *b, size_t *len);

#endif
