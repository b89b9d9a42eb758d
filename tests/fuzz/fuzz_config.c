/* libFuzzer harness: the configuration file parser (src/config.h).
 *
 * The input is written to a memfd (a temporary file, unique to the
 * process and removed at exit, where memfd_create is missing) and loaded
 * with config_load by path, as `sshbox --config FILE` does.  No SSHBOX_*
 * variable of the caller's environment takes part: they are all unset
 * before the first input.
 *
 * Checked: only the documented codes, one sentence; a refused file leaves
 * no string behind; an accepted one has every string set and an absolute
 * state_dir; loading is deterministic; and the loaded values, written back
 * as `key = value` lines, load again to the same configuration.  A fernet_keys
 * value is also parsed as a key ring (never fernet_keys_file: a path from
 * the input is not opened). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "err.h"
#include "fernet.h"
#include "fuzz.h"

static int cfg_fd = -1;
static char cfg_path[4096];

static void remove_tmp(void)
{
	unlink(cfg_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_clear_sshbox_env();
	cfg_fd = memfd_create("sshbox-fuzz-config", MFD_CLOEXEC);
	if (cfg_fd >= 0) {
		snprintf(cfg_path, sizeof(cfg_path), "/proc/self/fd/%d", cfg_fd);
		if (access(cfg_path, R_OK) == 0)
			return 0;
		close(cfg_fd);
	}
	{
		const char *tmp = getenv("TMPDIR");

		snprintf(cfg_path, sizeof(cfg_path), "%s/sshbox-fuzz-config.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	}
	cfg_fd = mkstemp(cfg_path);
	if (cfg_fd < 0) {
		fprintf(stderr, "fuzz_config: cannot create '%s': %s\n", cfg_path, strerror(errno));
		abort();
	}
	atexit(remove_tmp);
	return 0;
}

/* Make the file hold exactly data[0..size). */
static void put_file(const void *data, size_t size)
{
	size_t off = 0;

	FUZZ_CHECK(ftruncate(cfg_fd, 0) == 0);
	while (off < size) {
		ssize_t n = pwrite(cfg_fd, (const char *)data + off, size - off, (off_t)off);

		FUZZ_CHECK(n > 0 || (n < 0 && errno == EINTR));
		if (n > 0)
			off += (size_t)n;
	}
}

#define STR_KEYS(X) X(redis_url) X(state_dir) X(fernet_keys_file) X(fernet_keys)
#define INT_KEYS(X)                                                                        \
	X(redis_timeout_ms) X(lock_ttl_ms) X(ssh_connect_timeout_s) X(ssh_alive_interval_s) \
	X(control_persist_s) X(max_line_bytes) X(default_wait_s) X(default_timeout_s)       \
	X(default_idle_timeout_s) X(health_interval_s) X(sweep_interval_s) X(sweep_min_age_s)

static void check_loaded(const struct config *c)
{
#define X(k) FUZZ_CHECK(c->k != NULL);
	STR_KEYS(X)
#undef X
#define X(k) FUZZ_CHECK(c->k >= 0);
	INT_KEYS(X)
#undef X
	FUZZ_CHECK(c->state_dir[0] == '/');
	FUZZ_CHECK(c->max_line_bytes > 0);
}

static void check_refused(const struct config *c, int r, const struct sb_error *e)
{
	FUZZ_CHECK(r == SB_ERR_USAGE || r == SB_ERR_TOOBIG || r == SB_ERR_NOMEM);
	FUZZ_CHECK(fuzz_error_ok(e, r));
#define X(k) FUZZ_CHECK(c->k == NULL);
	STR_KEYS(X)
#undef X
}

static int same(const struct config *a, const struct config *b)
{
#define X(k) if (strcmp(a->k, b->k) != 0) return 0;
	STR_KEYS(X)
#undef X
#define X(k) if (a->k != b->k) return 0;
	INT_KEYS(X)
#undef X
	return 1;
}

static void serialize(const struct config *c, struct buf *out)
{
#define X(k) FUZZ_CHECK(buf_printf(out, "%s = %s\n", #k, c->k) == 0);
	STR_KEYS(X)
#undef X
#define X(k) FUZZ_CHECK(buf_printf(out, "%s = %d\n", #k, c->k) == 0);
	INT_KEYS(X)
#undef X
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c = CONFIG_INIT, c2 = CONFIG_INIT;
	struct sb_error e = SB_ERROR_INIT, e2 = SB_ERROR_INIT;
	struct buf text = BUF_INIT;
	int r, r2;

	put_file(data, size);
	r = config_load(&c, cfg_path, &e);
	if (r == 0)
		check_loaded(&c);
	else
		check_refused(&c, r, &e);

	r2 = config_load(&c2, cfg_path, &e2);
	FUZZ_CHECK(r2 == r);
	if (r == 0)
		FUZZ_CHECK(same(&c, &c2));
	else
		FUZZ_CHECK(strcmp(e.msg, e2.msg) == 0);
	config_release(&c2);

	if (r == 0) {
		/* what was loaded is what a file saying so loads */
		serialize(&c, &text);
		put_file(text.data, text.len);
		r2 = config_load(&c2, cfg_path, &e2);
		if (r2 != 0)
			fprintf(stderr, "fuzz_config: the loaded values do not load again: %s\n", e2.msg);
		FUZZ_CHECK(r2 == 0 && same(&c, &c2));
		config_release(&c2);
		buf_wipe_release(&text);

		if (c.fernet_keys[0]) {
			struct fernet_keyring kr = FERNET_KEYRING_INIT;

			r2 = config_fernet_keyring(&c, &kr, &e2);
			FUZZ_CHECK(r2 == 0 || r2 == SB_ERR_CRYPTO || r2 == SB_ERR_NOMEM);
			if (r2 == 0)
				FUZZ_CHECK(kr.n >= 1);
			else
				FUZZ_CHECK(fuzz_error_ok(&e2, r2) && fuzz_printable(e2.msg));
			fernet_keyring_clear(&kr);
		}
	}
	config_release(&c);
	config_release(&c);   /* releasing twice is safe */
	return 0;
}
