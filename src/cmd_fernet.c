/* sshbox fernet genkey | encrypt | decrypt [--ttl S]: stdin to stdout with
 * the configured MultiFernet keys (operators, migrations, interop). */
#include "cmd.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "fernet.h"

#define FERNET_SUBCOMMANDS "expected genkey, encrypt or decrypt [--ttl SECONDS]"
/* A token read from stdin may carry some whitespace around it (a newline). */
#define FERNET_TOKEN_INPUT_MAX (FERNET_MAX_TOKEN_LEN + 4096)

/* Read fd to EOF into out (at most max bytes).  Growing copies into a fresh
 * allocation and wipes the old one: a realloc would leave stale plaintext
 * behind in freed memory. */
static SB_MUST_CHECK int read_all(int fd, size_t max, struct buf *out, struct sb_error *e)
{
	for (;;) {
		ssize_t n;

		if (!out->data || out->cap - out->len <= 1) {
			struct buf nb = BUF_INIT;
			size_t want = out->cap ? out->cap * 2 : 4096;
			int r;

			if (want > max + 2)
				want = max + 2;   /* room for max + 1 bytes and the NUL */
			r = buf_reserve(&nb, want - 1);
			if (!r)
				r = buf_append(&nb, out->data, out->len);
			if (r) {
				buf_wipe_release(&nb);
				return sb_error_set(e, r, "cannot read standard input: %s", sb_err_str(r));
			}
			buf_wipe_release(out);
			*out = nb;
		}
		n = read(fd, out->data + out->len, out->cap - out->len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return sb_error_set(e, SB_ERR_IO, "cannot read standard input: %s", strerror(errno));
		}
		if (n == 0)
			return 0;
		out->len += (size_t)n;
		out->data[out->len] = '\0';
		if (out->len > max)
			return sb_error_set(e, SB_ERR_TOOBIG, "standard input is larger than %zu bytes", max);
	}
}

static SB_MUST_CHECK int write_all(int fd, const char *p, size_t len, struct sb_error *e)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return sb_error_set(e, SB_ERR_IO, "cannot write standard output: %s", strerror(errno));
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static SB_MUST_CHECK int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static SB_MUST_CHECK int parse_ttl(const char *s, int64_t *ttl, struct sb_error *e)
{
	char *end;
	long long v;

	errno = 0;
	if (!s || *s < '0' || *s > '9')
		goto bad;
	v = strtoll(s, &end, 10);
	if (errno || *end != '\0')
		goto bad;
	*ttl = v;
	return 0;
bad:
	return sb_error_set(e, SB_ERR_USAGE, "invalid --ttl '%.64s': expected a number of seconds", s ? s : "");
}

static SB_MUST_CHECK int fernet_genkey_cmd(struct sb_error *e)
{
	struct buf key = BUF_INIT;
	int r;

	r = fernet_genkey(&key);
	if (!r)
		r = buf_putc(&key, '\n');
	if (r)
		sb_error_set(e, r, "cannot generate a Fernet key: %s", sb_err_str(r));
	else
		r = write_all(STDOUT_FILENO, key.data, key.len, e);
	buf_wipe_release(&key);
	return r;
}

static SB_MUST_CHECK int fernet_encrypt_cmd(struct cmd_ctx *ctx, struct sb_error *e)
{
	struct fernet_keyring kr = FERNET_KEYRING_INIT;
	struct buf in = BUF_INIT, tok = BUF_INIT;
	int r;

	r = config_fernet_keyring(ctx->cfg, &kr, e);
	if (r)
		goto out;
	r = read_all(STDIN_FILENO, FERNET_MAX_PLAINTEXT, &in, e);
	if (r)
		goto out;
	r = fernet_encrypt(&kr, in.data, in.len, &tok);
	if (!r)
		r = buf_putc(&tok, '\n');
	if (r) {
		sb_error_set(e, r, "cannot encrypt standard input: %s", fernet_strerror(r));
		goto out;
	}
	r = write_all(STDOUT_FILENO, tok.data, tok.len, e);
out:
	buf_wipe_release(&in);
	buf_release(&tok);
	fernet_keyring_clear(&kr);
	return r;
}

static SB_MUST_CHECK int fernet_decrypt_cmd(struct cmd_ctx *ctx, int64_t ttl, struct sb_error *e)
{
	struct fernet_keyring kr = FERNET_KEYRING_INIT;
	struct buf in = BUF_INIT, pt = BUF_INIT;
	size_t a = 0, b;
	int r;

	r = config_fernet_keyring(ctx->cfg, &kr, e);
	if (r)
		goto out;
	r = read_all(STDIN_FILENO, FERNET_TOKEN_INPUT_MAX, &in, e);
	if (r)
		goto out;
	b = in.len;
	while (a < b && is_space(in.data[a]))
		a++;
	while (b > a && is_space(in.data[b - 1]))
		b--;
	r = fernet_decrypt(&kr, in.data ? in.data + a : "", b - a, ttl, &pt, e);
	if (r)
		goto out;
	r = write_all(STDOUT_FILENO, pt.data, pt.len, e);
out:
	buf_wipe_release(&in);
	buf_wipe_release(&pt);
	fernet_keyring_clear(&kr);
	return r;
}

int cmd_fernet(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct sb_error e = SB_ERROR_INIT;
	const char *sub = argc >= 2 ? argv[1] : NULL;
	int64_t ttl = -1;
	int i, r;

	if (!sub) {
		r = sb_error_set(&e, SB_ERR_USAGE, "missing fernet subcommand: " FERNET_SUBCOMMANDS);
		goto out;
	}
	if (!strcmp(sub, "genkey") || !strcmp(sub, "encrypt")) {
		if (argc > 2) {
			r = sb_error_set(&e, SB_ERR_USAGE, "unexpected argument '%.64s' to 'fernet %s'", argv[2], sub);
			goto out;
		}
	} else if (!strcmp(sub, "decrypt")) {
		for (i = 2; i < argc; i++) {
			if (!strcmp(argv[i], "--ttl")) {
				if (i + 1 < argc)
					r = parse_ttl(argv[++i], &ttl, &e);
				else
					r = sb_error_set(&e, SB_ERR_USAGE, "option '--ttl' needs a number of seconds");
			} else if (!strncmp(argv[i], "--ttl=", 6)) {
				r = parse_ttl(argv[i] + 6, &ttl, &e);
			} else {
				r = sb_error_set(&e, SB_ERR_USAGE, "unexpected argument '%.64s' to 'fernet decrypt'",
						 argv[i]);
			}
			if (r)
				goto out;
		}
	} else {
		r = sb_error_set(&e, SB_ERR_USAGE, "unknown fernet subcommand '%.64s': " FERNET_SUBCOMMANDS, sub);
		goto out;
	}
	if (sub[0] != 'g' && (!ctx || !ctx->cfg)) {
		r = sb_error_set(&e, SB_ERR_INTERNAL, "no configuration loaded for 'fernet %s'", sub);
		goto out;
	}
	if (sub[0] == 'g')
		r = fernet_genkey_cmd(&e);
	else if (sub[0] == 'e')
		r = fernet_encrypt_cmd(ctx, &e);
	else
		r = fernet_decrypt_cmd(ctx, ttl, &e);
out:
	if (r) {
		if (!e.msg[0])
			sb_error_set(&e, r, "fernet %s: %s", sub ? sub : "", sb_err_str(r));
		cmd_print_error(&e);
	}
	return sb_err_exit_code(r);
}
