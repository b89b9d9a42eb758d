/* layer 0: bounded growable byte buffers.
 *
 * A buf always keeps a NUL after its data (when data is not NULL), so
 * buf_cstr() is cheap; the NUL is not counted in len.  `max` bounds len:
 * appends past it fail with SB_ERR_TOOBIG and leave the buffer unchanged. */
#ifndef SSHBOX_BUF_H
#define SSHBOX_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;   /* 0 = no bound beyond memory */
	int secret;   /* growth copies and wipes the old block; release wipes */
};
#define BUF_INIT { NULL, 0, 0, 0, 0 }

void buf_init(struct buf *b, size_t max);
/* A buffer for secrets: no stale copies are left behind by growth. */
void buf_init_secret(struct buf *b, size_t max);
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *data, size_t len);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Drop the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
/* Keep the allocation, forget the contents (not wiped). */
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
