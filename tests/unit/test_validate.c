/* Unit tests for validate.c: hostile values refused, ordinary ones accepted,
 * and every message one printable line naming the field. */
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "unit.h"
#include "validate.h"

typedef int (*validator)(const char *, struct sb_error *);

/* The message must be one line of printable ASCII, name the field, and not
 * be absurdly long even for a 3000-byte value. */
static int message_ok(const struct sb_error *e, const char *field)
{
	size_t i, n = strlen(e->msg);
	char want[64];

	if (e->code != SB_ERR_USAGE || n == 0 || n > 300)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)e->msg[i] < 0x20 || (unsigned char)e->msg[i] > 0x7e)
			return 0;
	snprintf(want, sizeof(want), "invalid %s", field);
	return strncmp(e->msg, want, strlen(want)) == 0;
}

static void expect_refused(validator fn, const char *field, const char *v, int line)
{
	struct sb_error e = SB_ERROR_INIT;
	int r = fn(v, &e);

	if (r != SB_ERR_USAGE || !message_ok(&e, field)) {
		unit_failed_checks++;
		printf("#   %s: line %d: %s value \"%s\" -> %d \"%s\"\n", unit_current, line, field,
		       v ? v : "(null)", r, e.msg);
	}
}

static void expect_accepted(validator fn, const char *field, const char *v, int line)
{
	struct sb_error e = SB_ERROR_INIT;
	int r = fn(v, &e);

	if (r != 0) {
		unit_failed_checks++;
		printf("#   %s: line %d: %s value \"%s\" refused: %s\n", unit_current, line, field, v, e.msg);
	}
}

#define REFUSED(fn, field, v) expect_refused(fn, field, v, __LINE__)
#define ACCEPTED(fn, field, v) expect_accepted(fn, field, v, __LINE__)

/* Values no validator may ever accept: each a class of injection. */
static const char *const hostile_common[] = {
	"", "-oProxyCommand=x", "a b", "a\tb", "a\nb", "a\rb", "a\x01" "b", "a\x7f" "b",
	"a'b", "a\"b", "a;b", "a$b", "a`id`", "$(id)", "a%b", "a#b", "a,b", "a\\b",
	"a~b", "a&b", "a|b", "a<b", "a>b", "a(b", "a)b", "a{b", "a}b", "a*b", "a?b",
	"a[b", "a]b", "a!b", "a=b", "a\xc3\xa9", " a", "a ",
};

static void refuse_all_common(validator fn, const char *field, int line)
{
	size_t i;

	for (i = 0; i < sizeof(hostile_common) / sizeof(hostile_common[0]); i++)
		expect_refused(fn, field, hostile_common[i], line);
	expect_refused(fn, field, NULL, line);
}

static void overlong(char *buf, size_t n, char c)
{
	memset(buf, c, n);
	buf[n] = '\0';
}

static void test_account(void)
{
	char big[128];

	refuse_all_common(validate_account, "account", __LINE__);
	REFUSED(validate_account, "account", ".hidden");
	REFUSED(validate_account, "account", "_x");
	REFUSED(validate_account, "account", "a:b");
	REFUSED(validate_account, "account", "a/b");
	REFUSED(validate_account, "account", "a{b}");
	overlong(big, 65, 'a');
	REFUSED(validate_account, "account", big);
	overlong(big, 64, 'a');
	ACCEPTED(validate_account, "account", big);
	ACCEPTED(validate_account, "account", "acme");
	ACCEPTED(validate_account, "account", "Acme-2.org_x");
	ACCEPTED(validate_account, "account", "sshbox-test");
	ACCEPTED(validate_account, "account", "0");
}

static void test_host(void)
{
	char big[300];
	size_t i;

	refuse_all_common(validate_host, "host", __LINE__);
	REFUSED(validate_host, "host", "-x");
	REFUSED(validate_host, "host", "-");
	REFUSED(validate_host, "host", "[::1]");
	REFUSED(validate_host, "host", "fe80::1%eth0");
	REFUSED(validate_host, "host", "user@host");
	REFUSED(validate_host, "host", "host:22");
	REFUSED(validate_host, "host", "a..b");
	REFUSED(validate_host, "host", ".a");
	REFUSED(validate_host, "host", "a.");
	REFUSED(validate_host, "host", "a.-b");
	REFUSED(validate_host, "host", "a-.b");
	REFUSED(validate_host, "host", "a_b");
	REFUSED(validate_host, "host", "a/b");
	REFUSED(validate_host, "host", "999.1.1.1");
	REFUSED(validate_host, "host", "127.1");
	REFUSED(validate_host, "host", "12345");
	REFUSED(validate_host, "host", "0x7f.1");
	REFUSED(validate_host, "host", "0x7f000001");
	REFUSED(validate_host, "host", "01.2.3.4");
	REFUSED(validate_host, "host", ":::");
	REFUSED(validate_host, "host", "1:2:3:4:5:6:7:8:9");
	/* 64-character label */
	overlong(big, 64, 'a');
	REFUSED(validate_host, "host", big);
	/* 254 characters of labels */
	for (i = 0; i < 254; i++)
		big[i] = (i % 2) ? '.' : 'a';
	big[254] = '\0';
	big[253] = 'a';
	REFUSED(validate_host, "host", big);
	big[253] = '\0';
	ACCEPTED(validate_host, "host", big);

	ACCEPTED(validate_host, "host", "127.0.0.2");
	ACCEPTED(validate_host, "host", "10.0.0.5");
	ACCEPTED(validate_host, "host", "box-1.example.com");
	ACCEPTED(validate_host, "host", "Box1.Example.COM");
	ACCEPTED(validate_host, "host", "localhost");
	ACCEPTED(validate_host, "host", "::1");
	ACCEPTED(validate_host, "host", "fe80::1");
	ACCEPTED(validate_host, "host", "2001:db8::42");
	ACCEPTED(validate_host, "host", "::ffff:127.0.0.2");
	ACCEPTED(validate_host, "host", "x1");
}

static void test_host_canonical(void)
{
	struct sb_error e = SB_ERROR_INIT;
	char out[VALIDATE_HOST_MAX + 1];

	CHECK_INT(validate_host_canonical("Box-1.Example.COM", out, sizeof(out), &e), 0);
	CHECK_STREQ(out, "box-1.example.com");
	CHECK_INT(validate_host_canonical("0:0::1", out, sizeof(out), &e), 0);
	CHECK_STREQ(out, "::1");
	CHECK_INT(validate_host_canonical("FE80:0::1", out, sizeof(out), &e), 0);
	CHECK_STREQ(out, "fe80::1");
	CHECK_INT(validate_host_canonical("127.0.0.2", out, sizeof(out), &e), 0);
	CHECK_STREQ(out, "127.0.0.2");
	CHECK_INT(validate_host_canonical("-x", out, sizeof(out), &e), SB_ERR_USAGE);
	CHECK_STREQ(e.msg, "invalid host '-x': must not start with '-'");
}

static void test_user(void)
{
	char big[64];

	refuse_all_common(validate_user, "user", __LINE__);
	REFUSED(validate_user, "user", "-l");
	REFUSED(validate_user, "user", "1root");
	REFUSED(validate_user, "user", ".x");
	REFUSED(validate_user, "user", "a@b");
	REFUSED(validate_user, "user", "a:b");
	REFUSED(validate_user, "user", "a/b");
	overlong(big, 33, 'a');
	REFUSED(validate_user, "user", big);
	overlong(big, 32, 'a');
	ACCEPTED(validate_user, "user", big);
	ACCEPTED(validate_user, "user", "root");
	ACCEPTED(validate_user, "user", "sshbox-test");
	ACCEPTED(validate_user, "user", "_svc");
	ACCEPTED(validate_user, "user", "Deploy.user_1");
}

static void test_port(void)
{
	struct sb_error e = SB_ERROR_INIT;
	int p = 0;

	refuse_all_common(validate_port, "port", __LINE__);
	REFUSED(validate_port, "port", "0");
	REFUSED(validate_port, "port", "65536");
	REFUSED(validate_port, "port", "99999999999999999999");
	REFUSED(validate_port, "port", "-1");
	REFUSED(validate_port, "port", "+22");
	REFUSED(validate_port, "port", " 22");
	REFUSED(validate_port, "port", "22 ");
	REFUSED(validate_port, "port", "22x");
	REFUSED(validate_port, "port", "0x16");
	REFUSED(validate_port, "port", "022");
	REFUSED(validate_port, "port", "2.2");
	ACCEPTED(validate_port, "port", "1");
	ACCEPTED(validate_port, "port", "22");
	ACCEPTED(validate_port, "port", "65535");
	CHECK_INT(validate_port_parse("2222", &p, &e), 0);
	CHECK_INT(p, 2222);
	CHECK_INT(validate_port_num(0, &e), SB_ERR_USAGE);
	CHECK_INT(validate_port_num(65536, &e), SB_ERR_USAGE);
	CHECK_INT(validate_port_num(-22, &e), SB_ERR_USAGE);
	CHECK_INT(validate_port_num(22, &e), 0);
	CHECK_INT(validate_port_num(65535, &e), 0);
}

static void test_workdir(void)
{
	char big[256];

	refuse_all_common(validate_workdir, "workdir", __LINE__);
	REFUSED(validate_workdir, "workdir", "/");
	REFUSED(validate_workdir, "workdir", "srv/sshbox");
	REFUSED(validate_workdir, "workdir", "./x");
	REFUSED(validate_workdir, "workdir", "~/x");
	REFUSED(validate_workdir, "workdir", "/srv//x");
	REFUSED(validate_workdir, "workdir", "/srv/./x");
	REFUSED(validate_workdir, "workdir", "/srv/../etc");
	REFUSED(validate_workdir, "workdir", "/srv/..");
	REFUSED(validate_workdir, "workdir", "/srv/.");
	REFUSED(validate_workdir, "workdir", "/..");
	REFUSED(validate_workdir, "workdir", "/srv/");
	REFUSED(validate_workdir, "workdir", "/srv/a b");
	REFUSED(validate_workdir, "workdir", "/srv/$HOME");
	REFUSED(validate_workdir, "workdir", "/srv/%d");
	REFUSED(validate_workdir, "workdir", "/srv/x\n/y");
	big[0] = '/';
	overlong(big + 1, 200, 'a');
	REFUSED(validate_workdir, "workdir", big);
	big[200] = '\0';
	ACCEPTED(validate_workdir, "workdir", big);
	ACCEPTED(validate_workdir, "workdir", "/srv/sshbox");
	ACCEPTED(validate_workdir, "workdir", "/var/lib/sshbox-work");
	ACCEPTED(validate_workdir, "workdir", "/home/u/.sshbox");
	ACCEPTED(validate_workdir, "workdir", "/a/..b/c...");
	ACCEPTED(validate_workdir, "workdir", "/x");
}

static void test_slots(void)
{
	struct sb_error e = SB_ERROR_INIT;
	int n = 0;

	refuse_all_common(validate_slots, "slots", __LINE__);
	REFUSED(validate_slots, "slots", "0");
	REFUSED(validate_slots, "slots", "65");
	REFUSED(validate_slots, "slots", "-1");
	REFUSED(validate_slots, "slots", "01");
	ACCEPTED(validate_slots, "slots", "1");
	ACCEPTED(validate_slots, "slots", "64");
	CHECK_INT(validate_slots_parse("8", &n, &e), 0);
	CHECK_INT(n, 8);
	CHECK_INT(validate_slots_num(0, &e), SB_ERR_USAGE);
	CHECK_INT(validate_slots_num(65, &e), SB_ERR_USAGE);
	CHECK_INT(validate_slots_num(64, &e), 0);
}

static void test_job_id(void)
{
	char big[128];

	refuse_all_common(validate_job_id, "job_id", __LINE__);
	REFUSED(validate_job_id, "job_id", ".");
	REFUSED(validate_job_id, "job_id", "..");
	REFUSED(validate_job_id, "job_id", "a/b");
	REFUSED(validate_job_id, "job_id", "a:b");
	overlong(big, 65, 'j');
	REFUSED(validate_job_id, "job_id", big);
	overlong(big, 64, 'j');
	ACCEPTED(validate_job_id, "job_id", big);
	ACCEPTED(validate_job_id, "job_id", "rb-2041");
	ACCEPTED(validate_job_id, "job_id", "A.b_c-9");
	REFUSED(validate_job_id, "job_id", "...");
	REFUSED(validate_job_id, "job_id", ".hidden");
}

static void test_claude(void)
{
	refuse_all_common(validate_claude_path, "claude", __LINE__);
	REFUSED(validate_claude_path, "claude", "-c");
	REFUSED(validate_claude_path, "claude", "bin/claude");
	REFUSED(validate_claude_path, "claude", "./claude");
	REFUSED(validate_claude_path, "claude", "..");
	REFUSED(validate_claude_path, "claude", "/usr/../bin/claude");
	REFUSED(validate_claude_path, "claude", "/");
	REFUSED(validate_claude_path, "claude", "claude --x");
	ACCEPTED(validate_claude_path, "claude", "claude");
	ACCEPTED(validate_claude_path, "claude", "claude-code_2.1");
	ACCEPTED(validate_claude_path, "claude", "/usr/local/bin/claude");
	ACCEPTED(validate_claude_path, "claude", "/root/.npm-global/bin/claude");
}

static void test_env_name(void)
{
	char big[200];

	refuse_all_common(validate_env_name, "env name", __LINE__);
	REFUSED(validate_env_name, "env name", "1X");
	REFUSED(validate_env_name, "env name", "A-B");
	REFUSED(validate_env_name, "env name", "A.B");
	REFUSED(validate_env_name, "env name", "LD_PRELOAD=x");
	overlong(big, 129, 'A');
	REFUSED(validate_env_name, "env name", big);
	overlong(big, 128, 'A');
	ACCEPTED(validate_env_name, "env name", big);
	ACCEPTED(validate_env_name, "env name", "ANTHROPIC_API_KEY");
	ACCEPTED(validate_env_name, "env name", "_x1");
	ACCEPTED(validate_env_name, "env name", "RUNBOOK_ID");
}

static void test_ref(void)
{
	char big[256];

	refuse_all_common(validate_ref, "repo.ref", __LINE__);
	REFUSED(validate_ref, "repo.ref", "-b");
	REFUSED(validate_ref, "repo.ref", "--upload-pack=x");
	REFUSED(validate_ref, "repo.ref", "a..b");
	REFUSED(validate_ref, "repo.ref", "a//b");
	REFUSED(validate_ref, "repo.ref", "/main");
	REFUSED(validate_ref, "repo.ref", "main/");
	REFUSED(validate_ref, "repo.ref", "main.");
	REFUSED(validate_ref, "repo.ref", ".hidden");
	REFUSED(validate_ref, "repo.ref", "refs/.x");
	REFUSED(validate_ref, "repo.ref", "main.lock");
	REFUSED(validate_ref, "repo.ref", "refs/x.lock/y");
	REFUSED(validate_ref, "repo.ref", "HEAD@{1}");
	REFUSED(validate_ref, "repo.ref", "main^");
	REFUSED(validate_ref, "repo.ref", "main:x");
	overlong(big, 201, 'r');
	REFUSED(validate_ref, "repo.ref", big);
	ACCEPTED(validate_ref, "repo.ref", "main");
	ACCEPTED(validate_ref, "repo.ref", "feature/x-1.2_b");
	ACCEPTED(validate_ref, "repo.ref", "refs/heads/main");
	ACCEPTED(validate_ref, "repo.ref", "v1.2.3");
	ACCEPTED(validate_ref, "repo.ref", "0123456789abcdef0123456789abcdef01234567");
}

static void test_repo_url(void)
{
	struct sb_error e = SB_ERROR_INIT;
	static char big[2100];

	REFUSED(validate_repo_url, "repo.url", NULL);
	REFUSED(validate_repo_url, "repo.url", "");
	REFUSED(validate_repo_url, "repo.url", "-https://x");
	REFUSED(validate_repo_url, "repo.url", "ssh://git@github.com/a/b.git");
	REFUSED(validate_repo_url, "repo.url", "git@github.com:a/b.git");
	REFUSED(validate_repo_url, "repo.url", "file:///etc/passwd");
	REFUSED(validate_repo_url, "repo.url", "ext::sh -c touch% /tmp/pwned");
	REFUSED(validate_repo_url, "repo.url", "https://");
	REFUSED(validate_repo_url, "repo.url", "https:///a/b");
	REFUSED(validate_repo_url, "repo.url", "https://user:ghp_secret@github.com/a/b.git");
	REFUSED(validate_repo_url, "repo.url", "https://x-access-token@github.com/a");
	REFUSED(validate_repo_url, "repo.url", "https://github.com/a b");
	REFUSED(validate_repo_url, "repo.url", "https://github.com/a\nb");
	REFUSED(validate_repo_url, "repo.url", "https://github.com/a\tb");
	REFUSED(validate_repo_url, "repo.url", "https://github.com/a'b");
	REFUSED(validate_repo_url, "repo.url", "https://github.com/a\"b");
	REFUSED(validate_repo_url, "repo.url", "https://github.com/a`id`");
	REFUSED(validate_repo_url, "repo.url", "https://github.com/a\\b");
	REFUSED(validate_repo_url, "repo.url", "https://github.com/a<b>");
	REFUSED(validate_repo_url, "repo.url", "https://github.com/\xc3\xa9");
	REFUSED(validate_repo_url, "repo.url", "https://-oProxy/x");
	REFUSED(validate_repo_url, "repo.url", "https://git hub.com/x");
	REFUSED(validate_repo_url, "repo.url", "https://github.com:0/x");
	REFUSED(validate_repo_url, "repo.url", "https://github.com:99999/x");
	REFUSED(validate_repo_url, "repo.url", "https://github.com:/x");
	REFUSED(validate_repo_url, "repo.url", "https://::1/x");
	REFUSED(validate_repo_url, "repo.url", "https://[github.com]/x");
	REFUSED(validate_repo_url, "repo.url", "https://[::1/x");
	memcpy(big, "https://h/", 10);
	overlong(big + 10, 2039, 'a');
	REFUSED(validate_repo_url, "repo.url", big);
	big[2048] = '\0';
	ACCEPTED(validate_repo_url, "repo.url", big);
	ACCEPTED(validate_repo_url, "repo.url", "https://github.com/acme/app.git");
	ACCEPTED(validate_repo_url, "repo.url", "HTTPS://GitHub.com/acme/app");
	ACCEPTED(validate_repo_url, "repo.url", "http://127.0.0.1:8080/repo.git");
	ACCEPTED(validate_repo_url, "repo.url", "http://[::1]:8080/r.git");
	ACCEPTED(validate_repo_url, "repo.url", "https://h.example/a/b@v1?x=1#frag");
	ACCEPTED(validate_repo_url, "repo.url", "https://h.example");
	/* the credential refusal never echoes the secret past the cut */
	CHECK_INT(validate_repo_url("https://ghp_0123456789012345678901234567890123456789@github.com/a", &e),
		  SB_ERR_USAGE);
	CHECK(strstr(e.msg, "repo.token") != NULL);
}

static void test_host_key(void)
{
	refuse_all_common(validate_host_key, "host key", __LINE__);
	REFUSED(validate_host_key, "host key", "ssh-ed25519");
	REFUSED(validate_host_key, "host key", "ssh-ed25519 ");
	REFUSED(validate_host_key, "host key", "ssh-ed25519 AAAA comment");
	REFUSED(validate_host_key, "host key", "ssh-ed25519 AAA");
	REFUSED(validate_host_key, "host key", "ssh-ed25519 AA$A");
	REFUSED(validate_host_key, "host key", "ssh-ed25519 AAAA\nProxyCommand x");
	REFUSED(validate_host_key, "host key", "SSH-ED25519 AAAA");
	REFUSED(validate_host_key, "host key", "host ssh-ed25519 AAAA");
	ACCEPTED(validate_host_key, "host key",
		 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl");
	ACCEPTED(validate_host_key, "host key", "ecdsa-sha2-nistp256 AAAAE2VjZA==");
	ACCEPTED(validate_host_key, "host key", "sk-ssh-ed25519@openssh.com AAAA");

	REFUSED(validate_public_key, "public key", "ssh-ed25519 AAAA comment\n");
	REFUSED(validate_public_key, "public key", "ssh-ed25519 AAAA\tx");
	REFUSED(validate_public_key, "public key", "ssh-ed25519 AAAA  x");
	REFUSED(validate_public_key, "public key", "ssh-ed25519 AAAAx");
	ACCEPTED(validate_public_key, "public key", "ssh-ed25519 AAAA");
	ACCEPTED(validate_public_key, "public key", "ssh-rsa AAAB user@host (laptop)");
}

static void test_messages(void)
{
	struct sb_error e = SB_ERROR_INIT;
	char big[4000], echo[VALIDATE_ECHO_SIZE];

	CHECK_INT(validate_host("-oProxyCommand=x", &e), SB_ERR_USAGE);
	CHECK_STREQ(e.msg, "invalid host '-oProxyCommand=x': must not start with '-'");
	CHECK_INT(validate_host("a\nProxyCommand x", &e), SB_ERR_USAGE);
	CHECK_STREQ(e.msg, "invalid host 'a?ProxyCommand x': contains a control character (0x0a)");
	CHECK_INT(validate_user(NULL, &e), SB_ERR_USAGE);
	CHECK_STREQ(e.msg, "invalid user: missing");
	CHECK_INT(validate_port("x", &e), SB_ERR_USAGE);
	CHECK_STREQ(e.msg, "invalid port 'x': must be a decimal number between 1 and 65535");
	overlong(big, 3000, 'h');
	CHECK_INT(validate_host(big, &e), SB_ERR_USAGE);
	CHECK(strlen(e.msg) < 120);
	CHECK(strstr(e.msg, "...'") != NULL);
	/* NULL e is allowed: only the code comes back */
	CHECK_INT(validate_account("-x", NULL), SB_ERR_USAGE);
	CHECK_STREQ(validate_echo(echo, sizeof(echo), "a\x1b[31mb\xff"), "a?[31mb?");
	CHECK_STREQ(validate_echo_n(echo, sizeof(echo), "a\0b", 3), "a?b");
	CHECK_STREQ(validate_echo(echo, 6, "abcdefgh"), "ab...");
}

int main(void)
{
	RUN(test_account);
	RUN(test_host);
	RUN(test_host_canonical);
	RUN(test_user);
	RUN(test_port);
	RUN(test_workdir);
	RUN(test_slots);
	RUN(test_job_id);
	RUN(test_claude);
	RUN(test_env_name);
	RUN(test_ref);
	RUN(test_repo_url);
	RUN(test_host_key);
	RUN(test_messages);
	return unit_done();
}
