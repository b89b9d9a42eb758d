/* Unit tests for sshconf.c and paths.c: one Host block per sandbox with
 * exactly the documented options, ControlPath digests that separate accounts
 * and key versions and stay within 90 bytes (an error, never truncation),
 * known_hosts lines, and what the real ssh (`ssh -G`) makes of the file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "child.h"
#include "config.h"
#include "err.h"
#include "paths.h"
#include "sshconf.h"
#include "unit.h"

static struct config make_cfg(const char *state)
{
	struct config c = CONFIG_INIT;

	c.state_dir = (char *)state;
	c.control_persist_s = 617;
	c.ssh_alive_interval_s = 13;
	c.ssh_connect_timeout_s = 9;
	return c;
}

#define KEY1 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
#define KEY2 "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBA=="

/* ---- a tiny ssh_config reader ----------------------------------------- */

struct opt { char key[64]; char val[256]; };
struct block { char host[128]; struct opt o[64]; int n; };

/* Split rendered text into Host blocks (comments and blank lines skipped).
 * Returns the number of blocks, -1 on an option outside a block. */
static int split_blocks(const char *text, struct block *b, int maxb)
{
	const char *p = text;
	int nb = 0;

	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		char line[512];

		if (len >= sizeof(line))
			return -1;
		memcpy(line, p, len);
		line[len] = '\0';
		p += len + (eol ? 1 : 0);
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if (strncmp(line, "Host ", 5) == 0) {
			if (nb == maxb)
				return -1;
			snprintf(b[nb].host, sizeof(b[nb].host), "%s", line + 5);
			b[nb].n = 0;
			nb++;
		} else {
			char *sp;
			struct opt *o;
			if (nb == 0 || strncmp(line, "  ", 2) != 0 || b[nb - 1].n == 64)
				return -1;
			sp = strchr(line + 2, ' ');
			if (!sp)
				return -1;
			*sp = '\0';
			o = &b[nb - 1].o[b[nb - 1].n++];
			snprintf(o->key, sizeof(o->key), "%s", line + 2);
			snprintf(o->val, sizeof(o->val), "%s", sp + 1);
		}
	}
	return nb;
}

static const char *opt_get(const struct block *b, const char *key, int *count)
{
	const char *v = NULL;
	int i;

	*count = 0;
	for (i = 0; i < b->n; i++)
		if (strcmp(b->o[i].key, key) == 0) {
			if (!v)
				v = b->o[i].val;
			(*count)++;
		}
	return v;
}

/* The block must hold exactly these options, each once, with these values. */
static void check_block(const struct block *b, const char *const (*want)[2], int nwant, int line)
{
	int i, j, count;

	for (i = 0; i < nwant; i++) {
		const char *v = opt_get(b, want[i][0], &count);
		if (count != 1 || strcmp(v, want[i][1]) != 0) {
			unit_failed_checks++;
			printf("#   %s: line %d: Host %s: %s is %s (x%d), expected %s\n", unit_current, line, b->host,
			       want[i][0], v ? v : "(missing)", count, want[i][1]);
		}
	}
	for (j = 0; j < b->n; j++) {
		for (i = 0; i < nwant; i++)
			if (strcmp(b->o[j].key, want[i][0]) == 0)
				break;
		if (i == nwant) {
			unit_failed_checks++;
			printf("#   %s: line %d: Host %s: unexpected option %s %s\n", unit_current, line, b->host,
			       b->o[j].key, b->o[j].val);
		}
	}
}

static char *cp_of_key(const char *st, const char *acct, long long kv, const char *host, int port, const char *user,
		       const char *host_key)
{
	struct buf b = BUF_INIT;
	struct sb_error e = SB_ERROR_INIT;

	if (paths_control(st, acct, kv, host, port, user, host_key, &b, &e) != 0) {
		buf_release(&b);
		return NULL;
	}
	return buf_detach(&b, NULL);
}

static char *cp_of(const char *st, const char *acct, long long kv, const char *host, int port, const char *user)
{
	return cp_of_key(st, acct, kv, host, port, user, KEY1);
}

static void test_render_blocks(void)
{
	const char *st = "/run/sshbox-test";
	struct config cfg = make_cfg(st);
	struct sshconf_host h[3] = {
		{ "acme", "box1.example.com", 22, "root", 3, KEY1 },
		{ "acme", "10.0.0.5", 2222, "runner", 3, KEY2 },
		{ "globex", "::1", 22, "ci_user", 1, NULL },
	};
	struct buf conf = BUF_INIT, kh = BUF_INIT;
	struct sb_error e = SB_ERROR_INIT;
	static struct block b[8];
	int r, nb, i;

	r = sshconf_render(&cfg, h, 3, 42, &conf, &kh, &e);
	CHECK_INT(r, 0);
	if (r) {
		printf("#   %s\n", e.msg);
		goto out;
	}
	CHECK(strncmp(buf_cstr(&conf), "# sshbox generated ssh_config: registry version 42\n", 51) == 0);
	nb = split_blocks(buf_cstr(&conf), b, 8);
	CHECK_INT(nb, 3);
	for (i = 0; i < nb && i < 3; i++) {
		char alias[300], port[16], agent[300], idf[300], persist[16], *cp = cp_of_key(st, h[i].account,
				h[i].key_version, h[i].host, h[i].port, h[i].user, h[i].host_key);
		const char *const want[][2] = {
			{ "HostName", h[i].host }, { "Port", port }, { "User", h[i].user },
			{ "HostKeyAlias", alias }, { "UserKnownHostsFile", "/run/sshbox-test/known_hosts" },
			{ "GlobalKnownHostsFile", "/dev/null" }, { "StrictHostKeyChecking", "yes" },
			{ "UpdateHostKeys", "no" }, { "CheckHostIP", "no" }, { "IdentityAgent", agent },
			{ "IdentityFile", idf }, { "IdentitiesOnly", "yes" }, { "PubkeyAuthentication", "yes" },
			{ "PasswordAuthentication", "no" }, { "KbdInteractiveAuthentication", "no" },
			{ "BatchMode", "yes" }, { "ControlMaster", "auto" }, { "ControlPath", cp ? cp : "?" },
			{ "ControlPersist", persist }, { "ServerAliveInterval", "13" },
			{ "ServerAliveCountMax", "3" }, { "ConnectTimeout", "9" }, { "ForwardAgent", "no" },
			{ "ForwardX11", "no" }, { "ClearAllForwardings", "yes" }, { "RequestTTY", "no" },
			{ "LogLevel", "INFO" },
		};
		snprintf(alias, sizeof(alias), "sbx-%s-%s", h[i].account, h[i].host);
		snprintf(port, sizeof(port), "%d", h[i].port);
		snprintf(agent, sizeof(agent), "%s/agent/%s.sock", st, h[i].account);
		snprintf(idf, sizeof(idf), "%s/keys/%s-v%lld.pub", st, h[i].account, h[i].key_version);
		snprintf(persist, sizeof(persist), "%d", 617);
		CHECK_STREQ(b[i].host, alias);
		check_block(&b[i], want, (int)(sizeof(want) / sizeof(want[0])), __LINE__);
		CHECK(cp && strlen(cp) <= PATHS_CONTROL_MAX);
		CHECK(cp && strncmp(cp, "/run/sshbox-test/cm/", 20) == 0 && strlen(cp) == 40);
		free(cp);
	}
	CHECK_STREQ(buf_cstr(&kh), "sbx-acme-box1.example.com " KEY1 "\n"
				   "sbx-acme-10.0.0.5 " KEY2 "\n");
out:
	buf_release(&conf);
	buf_release(&kh);
}

static void test_render_empty(void)
{
	struct config cfg = make_cfg("/run/sshbox");
	struct buf conf = BUF_INIT, kh = BUF_INIT;
	struct sb_error e = SB_ERROR_INIT;
	static struct block b[2];

	CHECK_INT(sshconf_render(&cfg, NULL, 0, 0, &conf, &kh, &e), 0);
	CHECK_INT(split_blocks(buf_cstr(&conf), b, 2), 0);
	CHECK_INT(kh.len, 0);
	buf_release(&conf);
	buf_release(&kh);
}

static void test_control_path_distinct(void)
{
	const char *st = "/run/sshbox";
	char *a = cp_of(st, "acme", 1, "h1", 22, "root");
	char *b = cp_of(st, "globex", 1, "h1", 22, "root");
	char *c = cp_of(st, "acme", 2, "h1", 22, "root");
	char *d = cp_of(st, "acme", 1, "h1", 2222, "root");
	char *f = cp_of(st, "acme", 1, "h1", 22, "ubuntu");
	char *g = cp_of(st, "acme", 1, "h2", 22, "root");
	char *a2 = cp_of(st, "acme", 1, "h1", 22, "root");
	/* field boundaries matter: ("ab","c") vs ("a","bc") */
	char *x = cp_of(st, "ab", 1, "c", 22, "root");
	char *y = cp_of(st, "a", 1, "bc", 22, "root");
	char *z = cp_of(st, "a", 11, "1.x", 22, "root");
	char *w = cp_of(st, "a", 1, "11.x", 22, "root");
	/* a re-pinned host key opens a fresh master instead of riding the old one */
	char *k2 = cp_of_key(st, "acme", 1, "h1", 22, "root", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAA");

	CHECK(a && b && c && d && f && g && a2 && x && y && z && w);
	if (a && b && c && d && f && g && a2 && x && y && z && w) {
		CHECK(strcmp(a, b) != 0);
		CHECK(strcmp(a, c) != 0);
		CHECK(strcmp(a, d) != 0);
		CHECK(strcmp(a, f) != 0);
		CHECK(strcmp(a, g) != 0);
		CHECK_STREQ(a, a2);   /* deterministic */
		CHECK(strcmp(x, y) != 0);
		CHECK(strcmp(z, w) != 0);
		CHECK(k2 && strcmp(a, k2) != 0);
	}
	free(a); free(b); free(c); free(d); free(f); free(g); free(a2); free(x); free(y); free(z); free(w); free(k2);

	/* the same through sshconf_render: two accounts, same host/port/user */
	{
		struct config cfg = make_cfg(st);
		struct sshconf_host h[2] = {
			{ "acme", "h1", 22, "root", 1, KEY1 },
			{ "globex", "h1", 22, "root", 1, KEY1 },
		};
		struct buf conf = BUF_INIT, kh = BUF_INIT;
		struct sb_error e = SB_ERROR_INIT;
		static struct block bl[2];
		int cnt0, cnt1;

		CHECK_INT(sshconf_render(&cfg, h, 2, 1, &conf, &kh, &e), 0);
		CHECK_INT(split_blocks(buf_cstr(&conf), bl, 2), 2);
		{
			const char *p0 = opt_get(&bl[0], "ControlPath", &cnt0);
			const char *p1 = opt_get(&bl[1], "ControlPath", &cnt1);
			CHECK(p0 && p1 && strcmp(p0, p1) != 0);
			p0 = opt_get(&bl[0], "IdentityAgent", &cnt0);
			p1 = opt_get(&bl[1], "IdentityAgent", &cnt1);
			CHECK(p0 && p1 && strcmp(p0, p1) != 0);
		}
		/* a new key version: a new ControlPath, a new IdentityFile */
		buf_reset(&conf);
		buf_reset(&kh);
		{
			static struct block bl2[2];
			const char *p0, *p1;
			h[1].key_version = 2;
			CHECK_INT(sshconf_render(&cfg, h, 2, 2, &conf, &kh, &e), 0);
			CHECK_INT(split_blocks(buf_cstr(&conf), bl2, 2), 2);
			p0 = opt_get(&bl[1], "ControlPath", &cnt0);
			p1 = opt_get(&bl2[1], "ControlPath", &cnt1);
			CHECK(p0 && p1 && strcmp(p0, p1) != 0);
			p0 = opt_get(&bl[1], "IdentityFile", &cnt0);
			p1 = opt_get(&bl2[1], "IdentityFile", &cnt1);
			CHECK(p0 && p1 && strcmp(p0, p1) != 0);
			p0 = opt_get(&bl[0], "ControlPath", &cnt0);
			p1 = opt_get(&bl2[0], "ControlPath", &cnt1);
			CHECK(p0 && p1 && strcmp(p0, p1) == 0);   /* the other account's is unchanged */
		}
		buf_release(&conf);
		buf_release(&kh);
	}
}

static char *repeat(char c, size_t n, const char *prefix)
{
	size_t pl = strlen(prefix);
	char *s = malloc(pl + n + 1);

	if (!s)
		abort();
	memcpy(s, prefix, pl);
	memset(s + pl, c, n);
	s[pl + n] = '\0';
	return s;
}

static void test_control_path_length(void)
{
	/* "<st>/cm/" + 20 hex: a 66-byte state dir gives exactly 90 */
	char *st66 = repeat('s', 65, "/"), *st67 = repeat('s', 66, "/");
	struct buf out = BUF_INIT;
	struct sb_error e = SB_ERROR_INIT;
	int r;

	CHECK_INT(strlen(st66), 66);
	r = paths_control(st66, "a", 1, "h", 22, "u", KEY1, &out, &e);
	CHECK_INT(r, 0);
	CHECK_INT(out.len, PATHS_CONTROL_MAX);
	r = paths_control(st67, "a", 1, "h", 22, "u", KEY1, &out, &e);
	CHECK_INT(r, SB_ERR_USAGE);
	CHECK(strstr(e.msg, "ControlPath") != NULL);
	/* long account, host and user do not lengthen it: it is a digest */
	{
		char *acct = repeat('a', 64, ""), *host = repeat('h', 200, "");
		e = (struct sb_error)SB_ERROR_INIT;
		CHECK_INT(paths_control("/run/sshbox", acct, 123456789012LL, host, 65535, "u_u.u-u", KEY1, &out, &e), 0);
		CHECK_INT(out.len, strlen("/run/sshbox/cm/") + 20);
		free(acct);
		free(host);
	}

	/* sshconf_render: an error, not a truncated path */
	{
		struct config cfg = make_cfg(st67);
		struct sshconf_host h = { "a", "h", 22, "u", 1, KEY1 };
		struct buf conf = BUF_INIT, kh = BUF_INIT;
		e = (struct sb_error)SB_ERROR_INIT;
		r = sshconf_render(&cfg, &h, 1, 1, &conf, &kh, &e);
		CHECK_INT(r, SB_ERR_USAGE);
		CHECK_INT(e.code, SB_ERR_USAGE);
		CHECK(strstr(e.msg, "state_dir") != NULL || strstr(e.msg, "ControlPath") != NULL);
		buf_release(&conf);
		buf_release(&kh);

		cfg = make_cfg(st66);
		e = (struct sb_error)SB_ERROR_INIT;
		r = sshconf_render(&cfg, &h, 1, 1, &conf, &kh, &e);
		CHECK_INT(r, 0);
		buf_release(&conf);
		buf_release(&kh);
	}
	buf_release(&out);
	free(st66);
	free(st67);
}

static void test_agent_socket_length(void)
{
	struct buf out = BUF_INIT;
	struct sb_error e = SB_ERROR_INIT;
	/* "<st>/agent/" (st + 7) + account + ".sock" (5): 107 allowed */
	char *st = repeat('s', 30, "/");          /* 31 bytes */
	char *acct64 = repeat('a', 64, "");       /* 31 + 7 + 64 + 5 = 107 */
	char *st2 = repeat('s', 31, "/");         /* 108 */

	CHECK_INT(paths_agent_sock(st, acct64, &out, &e), 0);
	CHECK_INT(out.len, PATHS_SOCKET_MAX);
	CHECK(strncmp(buf_cstr(&out), st, 31) == 0);
	CHECK(strcmp(buf_cstr(&out) + out.len - 5, ".sock") == 0);
	CHECK_INT(paths_agent_sock(st2, acct64, &out, &e), SB_ERR_USAGE);
	CHECK(strstr(e.msg, "agent socket") != NULL);

	e = (struct sb_error)SB_ERROR_INIT;
	CHECK_INT(paths_agent_sock("/run/sshbox", "acme", &out, &e), 0);
	CHECK_STREQ(buf_cstr(&out), "/run/sshbox/agent/acme.sock");
	CHECK_INT(paths_private_agent_sock("/run/sshbox", 4242, &out, &e), 0);
	CHECK_STREQ(buf_cstr(&out), "/run/sshbox/agent/run/4242.sock");
	/* a long state dir makes the private one too long: checked too */
	{
		char *st100 = repeat('p', 95, "/");
		CHECK_INT(paths_private_agent_sock(st100, 4242, &out, &e), SB_ERR_USAGE);
		free(st100);
	}

	/* sshconf_render refuses a config whose agent path would not fit */
	{
		char *st80 = repeat('s', 40, "/");
		struct config cfg = make_cfg(st80);
		struct sshconf_host h = { acct64, "h", 22, "u", 1, KEY1 };
		struct buf conf = BUF_INIT, kh = BUF_INIT;
		e = (struct sb_error)SB_ERROR_INIT;
		CHECK_INT(sshconf_render(&cfg, &h, 1, 1, &conf, &kh, &e), SB_ERR_USAGE);
		CHECK(e.msg[0] != '\0');
		buf_release(&conf);
		buf_release(&kh);
		free(st80);
	}
	buf_release(&out);
	free(st);
	free(st2);
	free(acct64);
}

static void test_other_paths(void)
{
	struct buf out = BUF_INIT;

	CHECK_INT(paths_alias("acme", "box1", &out), 0);
	CHECK_STREQ(buf_cstr(&out), "sbx-acme-box1");
	CHECK_INT(paths_alias("acme", "10.0.0.5", &out), 0);
	CHECK_STREQ(buf_cstr(&out), "sbx-acme-10.0.0.5");
	CHECK_INT(paths_ssh_config("/st", &out), 0);
	CHECK_STREQ(buf_cstr(&out), "/st/ssh_config");
	CHECK_INT(paths_known_hosts("/st", &out), 0);
	CHECK_STREQ(buf_cstr(&out), "/st/known_hosts");
	CHECK_INT(paths_pubkey("/st", "acme", 7, &out), 0);
	CHECK_STREQ(buf_cstr(&out), "/st/keys/acme-v7.pub");
	CHECK_INT(paths_lock("/st", "x", &out), 0);
	CHECK_STREQ(buf_cstr(&out), "/st/lock/x");
	CHECK_INT(paths_log("/st", "y", &out), 0);
	CHECK_STREQ(buf_cstr(&out), "/st/log/y");
	buf_release(&out);
}

static void test_state_dir_refused(void)
{
	static const char *const bad[] = {
		"/run/ssh box", "/run/ssh%box", "/run/%C", "/run/a\tb", "/run/a\"b", "/run/a'b", "/run/a#b",
		"/run/a\\b", "/run/~x", "/run/a$b", "/run/a,b", "/run/a\nb",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct config cfg = make_cfg(bad[i]);
		struct sshconf_host h = { "acme", "h", 22, "root", 1, KEY1 };
		struct buf conf = BUF_INIT, kh = BUF_INIT;
		struct sb_error e = SB_ERROR_INIT;
		int r = sshconf_render(&cfg, &h, 1, 1, &conf, &kh, &e);

		if (r != SB_ERR_USAGE || !strstr(e.msg, "state_dir")) {
			unit_failed_checks++;
			printf("#   state_dir \"%s\": r=%d \"%s\"\n", bad[i], r, e.msg);
		}
		buf_release(&conf);
		buf_release(&kh);
	}
}

/* ---- what ssh itself reads from the file ------------------------------- */

static char tmpdir[] = "/tmp/sshbox-sshconf-XXXXXX";

static int write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "w");
	int ok;

	if (!f)
		return -1;
	ok = fwrite(data, 1, len, f) == len;
	return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* `ssh -G -F conf -- alias`: the value of `key` (lowercase) ssh would use. */
static int ssh_G(const char *conf, const char *alias, const char *key, char *out, size_t outsz)
{
	const char *argv[] = { "/usr/bin/ssh", "-G", "-F", conf, "--", alias, NULL };
	struct child_run_opts o = { NULL, NULL, 1, 0, 10000 };
	struct buf so = BUF_INIT, se = BUF_INIT;
	struct sb_error e = SB_ERROR_INIT;
	int rc = -1, r;
	const char *p;
	size_t kl = strlen(key);

	buf_init(&so, 1 << 20);
	buf_init(&se, 1 << 16);
	r = child_run(argv, &o, NULL, 0, &so, &se, &rc, &e);
	if (r != 0 || rc != 0) {
		printf("#   ssh -G %s: r=%d rc=%d %s %s\n", alias, r, rc, e.msg, buf_cstr(&se));
		buf_release(&so);
		buf_release(&se);
		return -1;
	}
	out[0] = '\0';
	r = -1;
	for (p = buf_cstr(&so); *p;) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		if (len > kl && strncmp(p, key, kl) == 0 && p[kl] == ' ') {
			snprintf(out, outsz, "%.*s", (int)(len - kl - 1), p + kl + 1);
			r = 0;
			break;
		}
		p += len + (eol ? 1 : 0);
	}
	buf_release(&so);
	buf_release(&se);
	return r;
}

/* For each sandbox, the real ssh must resolve its alias to that sandbox's
 * host, port, user, ControlPath and agent. */
static void check_with_ssh(const struct sshconf_host *h, size_t n, const char *what)
{
	struct config cfg = make_cfg("/run/sshbox");
	struct buf conf = BUF_INIT, kh = BUF_INIT, alias = BUF_INIT, cp = BUF_INIT, agent = BUF_INIT;
	struct sb_error e = SB_ERROR_INIT;
	char path[128], v[512], port[16];
	size_t i;
	int r;

	if (access("/usr/bin/ssh", X_OK) != 0) {
		printf("#   no /usr/bin/ssh: skipped\n");
		return;
	}
	r = sshconf_render(&cfg, h, n, 1, &conf, &kh, &e);
	if (r != 0) {
		/* refusing an ambiguous set of sandboxes is an acceptable answer */
		CHECK_INT(r, SB_ERR_USAGE);
		printf("#   %s: refused: %s\n", what, e.msg);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/ssh_config", tmpdir);
	CHECK_INT(write_file(path, conf.data, conf.len), 0);
	for (i = 0; i < n; i++) {
		CHECK_INT(paths_alias(h[i].account, h[i].host, &alias), 0);
		CHECK_INT(paths_control(cfg.state_dir, h[i].account, h[i].key_version, h[i].host, h[i].port, h[i].user, h[i].host_key, &cp, &e), 0);
		CHECK_INT(paths_agent_sock(cfg.state_dir, h[i].account, &agent, &e), 0);
		snprintf(port, sizeof(port), "%d", h[i].port);
		if (ssh_G(path, alias.data, "hostname", v, sizeof(v)) != 0 || strcmp(v, h[i].host) != 0 ||
		    ssh_G(path, alias.data, "port", v, sizeof(v)) != 0 || strcmp(v, port) != 0 ||
		    ssh_G(path, alias.data, "user", v, sizeof(v)) != 0 || strcmp(v, h[i].user) != 0 ||
		    ssh_G(path, alias.data, "controlpath", v, sizeof(v)) != 0 || strcmp(v, cp.data) != 0 ||
		    ssh_G(path, alias.data, "identityagent", v, sizeof(v)) != 0 || strcmp(v, agent.data) != 0) {
			unit_failed_checks++;
			printf("#   %s: ssh -G %s resolves to another sandbox (got '%s'; want %s@%s:%d of account %s)\n",
			       what, alias.data, v, h[i].user, h[i].host, h[i].port, h[i].account);
		}
		if (ssh_G(path, alias.data, "controlmaster", v, sizeof(v)) != 0 || strcmp(v, "auto") != 0 ||
		    ssh_G(path, alias.data, "stricthostkeychecking", v, sizeof(v)) != 0 || strcmp(v, "true") != 0 ||
		    ssh_G(path, alias.data, "batchmode", v, sizeof(v)) != 0 || strcmp(v, "yes") != 0 ||
		    ssh_G(path, alias.data, "forwardagent", v, sizeof(v)) != 0 || strcmp(v, "no") != 0 ||
		    ssh_G(path, alias.data, "identitiesonly", v, sizeof(v)) != 0 || strcmp(v, "yes") != 0) {
			unit_failed_checks++;
			printf("#   %s: ssh -G %s: unexpected option value '%s'\n", what, alias.data, v);
		}
	}
out:
	buf_release(&conf);
	buf_release(&kh);
	buf_release(&alias);
	buf_release(&cp);
	buf_release(&agent);
}

static void test_ssh_reads_it(void)
{
	struct sshconf_host h[] = {
		{ "acme", "box1.example.com", 22, "root", 3, KEY1 },
		{ "acme", "10.0.0.5", 2222, "runner", 3, KEY2 },
		{ "globex", "10.0.0.5", 22, "root", 1, KEY2 },
		{ "globex", "::1", 2200, "ci_user", 1, KEY1 },
	};

	check_with_ssh(h, sizeof(h) / sizeof(h[0]), "ordinary sandboxes");
}

/* Account names may contain '-' and hosts may too, so "sbx-<account>-<host>"
 * alone is ambiguous: two sandboxes of two accounts must never resolve to
 * one Host block (the second account would use the first's host, its
 * ControlPath — that is, the first account's authenticated master — and
 * its agent). */
static void test_alias_collision_dash(void)
{
	struct sshconf_host h[] = {
		{ "a-b", "c.example.com", 22, "root", 1, KEY1 },
		{ "a", "b-c.example.com", 22, "root", 1, KEY2 },
	};

	check_with_ssh(h, 2, "accounts 'a-b'/'a' with hosts 'c.example.com'/'b-c.example.com'");
}

/* ssh matches Host patterns case-insensitively, while accounts "Acme" and
 * "acme" are two accounts. */
static void test_alias_collision_case(void)
{
	struct sshconf_host h[] = {
		{ "Acme", "box1", 22, "root", 1, KEY1 },
		{ "acme", "box1", 2222, "other", 1, KEY2 },
	};

	check_with_ssh(h, 2, "accounts 'Acme'/'acme' on host 'box1'");
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_render_blocks);
	RUN(test_render_empty);
	RUN(test_control_path_distinct);
	RUN(test_control_path_length);
	RUN(test_agent_socket_length);
	RUN(test_other_paths);
	RUN(test_state_dir_refused);
	RUN(test_ssh_reads_it);
	RUN(test_alias_collision_dash);
	RUN(test_alias_collision_case);
	{
		char p[128];
		snprintf(p, sizeof(p), "%s/ssh_config", tmpdir);
		unlink(p);
		rmdir(tmpdir);
	}
	return unit_done();
}
