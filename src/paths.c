#include "paths.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "digest.h"
#include "fsutil.h"

static SB_MUST_CHECK int socket_path(struct buf *out, struct sb_error *e);

static SB_MUST_CHECK int sub(const char *state, const char *rest, struct buf *out)
{
	buf_reset(out);
	return buf_printf(out, "%s/%s", state, rest);
}

int paths_ssh_config(const char *state, struct buf *out) { return sub(state, "ssh_config", out); }
int paths_known_hosts(const char *state, struct buf *out) { return sub(state, "known_hosts", out); }

int paths_agent_sock(const char *state, const char *account, struct buf *out, struct sb_error *e)
{
	buf_reset(out);
	if (buf_printf(out, "%s/agent/%s.sock", state, account) < 0)
		return SB_ERR_NOMEM;
	return socket_path(out, e);
}

static SB_MUST_CHECK int socket_path(struct buf *out, struct sb_error *e)
{
	if (out->len > PATHS_SOCKET_MAX)
		return sb_error_set(e, SB_ERR_USAGE, "agent socket path '%s' longer than %d bytes: use a shorter state_dir",
				    out->data, PATHS_SOCKET_MAX);
	return 0;
}

/* In a directory of their own: "<account>.<pid>" could be an account name. */
int paths_private_agent_sock(const char *state, long pid, struct buf *out, struct sb_error *e)
{
	buf_reset(out);
	if (buf_printf(out, "%s/agent/run/%ld.sock", state, pid) < 0)
		return SB_ERR_NOMEM;
	return socket_path(out, e);
}

int paths_pubkey(const char *state, const char *account, long long key_version, struct buf *out)
{
	buf_reset(out);
	return buf_printf(out, "%s/keys/%s-v%lld.pub", state, account, key_version);
}

int paths_control(const char *state, const char *account, long long key_version,
		  const char *host, int port, const char *user, const char *host_key,
		  struct buf *out, struct sb_error *e)
{
	unsigned char md[SHA256_LEN];
	unsigned int i;
	struct buf in = BUF_INIT;

	/* NUL separators: no two tuples can produce the same input */
	if (buf_printf(&in, "%s%c%lld%c%s%c%d%c%s%c%s", account, 0, key_version, 0, host, 0, port, 0, user,
		       0, host_key ? host_key : "") < 0) {
		buf_release(&in);
		return SB_ERR_NOMEM;
	}
	sha256(in.data, in.len, md);
	buf_release(&in);
	buf_reset(out);
	if (buf_printf(out, "%s/cm/", state) < 0)
		return SB_ERR_NOMEM;
	for (i = 0; i < 10; i++)   /* 80 bits: collisions are not a concern */
		if (buf_printf(out, "%02x", md[i]) < 0)
			return SB_ERR_NOMEM;
	if (out->len > PATHS_CONTROL_MAX)
		return sb_error_set(e, SB_ERR_USAGE, "ControlPath '%s' longer than %d bytes: use a shorter state_dir",
				    out->data, PATHS_CONTROL_MAX);
	return 0;
}

int paths_repo_key(const char *account, const char *url, struct buf *out)
{
	unsigned char md[SHA256_LEN];
	unsigned int i;
	const char *base, *end = url + strlen(url);
	int r;

	sha256(url, strlen(url), md);
	while (end > url && (end[-1] == '/'))
		end--;
	if (end - url > 4 && strncmp(end - 4, ".git", 4) == 0)
		end -= 4;
	for (base = end; base > url && base[-1] != '/'; base--)
		;
	buf_reset(out);
	r = buf_printf(out, "%s/", account);
	for (i = 0; !r && i < 8; i++)
		r = buf_printf(out, "%02x", md[i]);
	if (!r)
		r = buf_putc(out, '-');
	/* a readable name for operators; only characters safe in a path */
	for (; !r && base < end && out->len < 120; base++)
		r = buf_putc(out, (isalnum((unsigned char)*base) || *base == '.' || *base == '_' || *base == '-') &&
				  !(*base == '.' && out->data[out->len - 1] == '-') ? *base : '_');
	return r;
}

int paths_lock(const char *state, const char *name, struct buf *out)
{
	buf_reset(out);
	return buf_printf(out, "%s/lock/%s", state, name);
}

int paths_log(const char *state, const char *name, struct buf *out)
{
	buf_reset(out);
	return buf_printf(out, "%s/log/%s", state, name);
}

int paths_alias(const char *account, const char *host, struct buf *out)
{
	buf_reset(out);
	return buf_printf(out, "sbx-%s-%s", account, host);
}

int paths_prepare_state(const char *state, struct sb_error *e)
{
	static const char *const subs[] = { "agent", "agent/run", "keys", "cm", "lock", "log" };
	struct buf p = BUF_INIT;
	size_t i;
	int r;

	if ((r = fs_mkdir_p(state, 0700, e)) != 0)
		return r;
	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		if ((r = sub(state, subs[i], &p)) < 0 || (r = fs_mkdir_p(p.data, 0700, e)) != 0)
			break;
	}
	buf_release(&p);
	return r;
}
