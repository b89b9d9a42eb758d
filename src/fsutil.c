#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "secret.h"

int fs_mkdir_p(const char *path, unsigned mode, struct sb_error *e)
{
	char tmp[PATH_MAX];
	size_t len = strlen(path), i;
	struct stat st;

	if (len == 0 || len >= sizeof(tmp))
		return sb_error_set(e, SB_ERR_USAGE, "invalid directory '%s': empty or too long", path);
	memcpy(tmp, path, len + 1);
	for (i = 1; i <= len; i++) {
		if (tmp[i] != '/' && tmp[i] != '\0')
			continue;
		tmp[i] = '\0';
		if (mkdir(tmp, (mode_t)mode) < 0 && errno != EEXIST)
			return sb_error_set(e, SB_ERR_IO, "cannot create directory '%s': %s", tmp, strerror(errno));
		if (i < len)
			tmp[i] = '/';
	}
	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
		return sb_error_set(e, SB_ERR_IO, "cannot create directory '%s': not a directory", path);
	if (st.st_uid == geteuid() && (st.st_mode & 07777) != mode)
		(void)chmod(path, (mode_t)mode);
	return 0;
}

int fs_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return SB_ERR_IO;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fs_write_atomic(const char *path, const void *data, size_t len, unsigned mode, struct sb_error *e)
{
	char tmp[PATH_MAX];
	int fd, r = 0;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= sizeof(tmp))
		return sb_error_set(e, SB_ERR_USAGE, "path too long '%s'", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, (mode_t)mode);
	if (fd < 0)
		return sb_error_set(e, SB_ERR_IO, "cannot write '%s': %s", tmp, strerror(errno));
	if (fchmod(fd, (mode_t)mode) < 0 || fs_write_all(fd, data, len) < 0 || fsync(fd) < 0)
		r = sb_error_set(e, SB_ERR_IO, "cannot write '%s': %s", tmp, strerror(errno));
	if (close(fd) < 0 && !r)
		r = sb_error_set(e, SB_ERR_IO, "cannot write '%s': %s", tmp, strerror(errno));
	if (!r && rename(tmp, path) < 0)
		r = sb_error_set(e, SB_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
	if (r)
		(void)unlink(tmp);
	return r;
}

int fs_read_fd(int fd, struct buf *out, size_t max, struct sb_error *e)
{
	char tmp[8192];
	int r = 0;

	for (;;) {
		ssize_t n = read(fd, tmp, sizeof(tmp));
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = sb_error_set(e, SB_ERR_IO, "read failed: %s", strerror(errno));
			break;
		}
		if (out->len + (size_t)n > max) {
			r = sb_error_set(e, SB_ERR_TOOBIG, "input larger than %zu bytes", max);
			break;
		}
		if (buf_append(out, tmp, (size_t)n) < 0) {
			r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
			break;
		}
	}
	secret_wipe(tmp, sizeof(tmp));   /* it may have held a key or a prompt */
	return r;
}

int fs_read_file(const char *path, struct buf *out, size_t max, struct sb_error *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0)
		return sb_error_set(e, errno == ENOENT ? SB_ERR_NOTFOUND : SB_ERR_IO,
				    "cannot read '%s': %s", path, strerror(errno));
	r = fs_read_fd(fd, out, max, e);
	close(fd);
	if (r)
		sb_error_prefix(e, "cannot read '%s'", path);
	return r;
}

int fs_lock(const char *path, int64_t timeout_ms, struct sb_error *e)
{
	int64_t deadline = clock_deadline_in(timeout_ms);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		return sb_error_set(e, SB_ERR_IO, "cannot open lock '%s': %s", path, strerror(errno));
	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return fd;
		if (errno != EWOULDBLOCK && errno != EINTR) {
			sb_error_set(e, SB_ERR_IO, "cannot lock '%s': %s", path, strerror(errno));
			break;
		}
		if (clock_expired(deadline)) {
			sb_error_set(e, SB_ERR_TIMEOUT, "lock '%s' still held after %lld ms", path,
				     (long long)timeout_ms);
			break;
		}
		clock_sleep_ms(10);
	}
	close(fd);
	return e ? e->code : SB_ERR_IO;
}

void fs_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

enum fs_sock fs_sock_probe(const char *path)
{
	struct sockaddr_un sa;
	enum fs_sock st = FS_SOCK_UNKNOWN;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return FS_SOCK_UNKNOWN;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
		return FS_SOCK_UNKNOWN;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EAGAIN || errno == EINPROGRESS)
		st = FS_SOCK_LISTENING;   /* EAGAIN: a full backlog, somebody listens */
	else if (errno == ECONNREFUSED)
		st = FS_SOCK_REFUSED;
	close(fd);
	return st;
}
