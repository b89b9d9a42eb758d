/* layer 1: NDJSON line framing: split a byte stream into lines on '\n',
 * with a maximum line length.
 *
 * Feed it whatever read() returned; it calls on_line once per complete line
 * (the bytes exactly as received, without the '\n': a '\r' or a NUL stays)
 * and on_drop once per line longer than the maximum, with that line's
 * length.  An over-long line is not kept: once it passes max_line, what
 * was held of it is let go and the rest is discarded up to the next '\n',
 * so the framer never holds more than max_line bytes whatever the input.
 * A line that lies inside one chunk is handed out in place (no copy); only
 * a line split across chunks is assembled in the framer.
 *
 * Lines are NOT NUL-terminated (use the length; a line may contain NUL
 * bytes), and the pointer is valid only during the callback.  Both
 * callbacks are required. */
#ifndef SSHBOX_NDJSON_H
#define SSHBOX_NDJSON_H

#include <stddef.h>

#include "err.h"

struct ndjson;

typedef void ndjson_line_fn(void *ctx, const char *line, size_t len);
typedef void ndjson_drop_fn(void *ctx, size_t len);

/* NULL when out of memory.  Nothing is allocated until a line spans two
 * chunks. */
SB_MUST_CHECK struct ndjson *ndjson_new(size_t max_line);
void ndjson_free(struct ndjson *f);

/* Split data[0..len) and call back for every line it completes.  Returns 0,
 * or SB_ERR_NOMEM when the unfinished tail could not be kept: that line is
 * then reported through on_drop when it ends, and framing goes on. */
SB_MUST_CHECK int ndjson_feed(struct ndjson *f, const void *data, size_t len, ndjson_line_fn *on_line,
		ndjson_drop_fn *on_drop, void *ctx);
/* End of input: an unfinished last line (one without '\n') is still a line
 * (or a drop, if over-long).  The framer is then empty and can be reused. */
void ndjson_finish(struct ndjson *f, ndjson_line_fn *on_line, ndjson_drop_fn *on_drop, void *ctx);

/* Bytes of an unfinished line held, and bytes allocated for them
 * (never more than max_line). */
size_t ndjson_pending(const struct ndjson *f);
size_t ndjson_allocated(const struct ndjson *f);

#endif
