/* layer 0: files: private directories, atomic writes, bounded reads, locks. */
#ifndef SSHBOX_FSUTIL_H
#define SSHBOX_FSUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

/* mkdir -p with `mode` for every directory created; an existing final
 * directory gets chmod'ed to mode when owned by us. */
SB_MUST_CHECK int fs_mkdir_p(const char *path, unsigned mode, struct sb_error *e);
/* Write via "<path>.tmp.<pid>", fsync, rename: readers see old or new. */
SB_MUST_CHECK int fs_write_atomic(const char *path, const void *data, size_t len, unsigned mode, struct sb_error *e);
/* Read a whole file, at most max bytes (SB_ERR_TOOBIG beyond). */
SB_MUST_CHECK int fs_read_file(const char *path, struct buf *out, size_t max, struct sb_error *e);
/* Read all of an fd until EOF, bounded by max. */
SB_MUST_CHECK int fs_read_fd(int fd, struct buf *out, size_t max, struct sb_error *e);
/* Write all of data to a blocking fd (EINTR-safe). */
SB_MUST_CHECK int fs_write_all(int fd, const void *data, size_t len);
/* Exclusive flock on path (created 0600), waiting at most timeout_ms.
 * Returns the fd (>= 0) or a negative SB_ERR_*. */
SB_MUST_CHECK int fs_lock(const char *path, int64_t timeout_ms, struct sb_error *e);
void fs_unlock(int fd);

/* Who is behind the Unix socket at path, asked without blocking (a wedged
 * listener with a full backlog must not hold the caller). */
enum fs_sock { FS_SOCK_UNKNOWN, FS_SOCK_LISTENING, FS_SOCK_REFUSED };
enum fs_sock fs_sock_probe(const char *path);

#endif
