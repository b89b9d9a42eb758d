/* kv, lock and registry against a real redis-server that this test starts
 * on a private unix socket and a loopback TCP port (and always stops: at
 * the end, from atexit, and by PR_SET_PDEATHSIG if the test crashes). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "err.h"
#include "kv.h"
#include "lock.h"
#include "registry.h"
#include "unit.h"
#include "validate.h"

#define REDIS_SERVER "/usr/bin/redis-server"

static pid_t parent_pid;
static pid_t redis_pid = -1;
static char tmpdir[64];
static char sock_path[128];
static char unix_url[160];
static char tcp_url[64];
static int tcp_port;

/* ---- the redis-server we own ---- */

static void remove_tmpdir(void)
{
	DIR *d;
	struct dirent *de;
	char p[256];

	if (!tmpdir[0])
		return;
	d = opendir(tmpdir);
	if (d) {
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			snprintf(p, sizeof(p), "%s/%s", tmpdir, de->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(tmpdir);
	tmpdir[0] = '\0';
}

static void dump_redis_log(void)
{
	char p[256], line[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/redis.log", tmpdir);
	f = fopen(p, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		printf("# redis: %s", line);
	fclose(f);
}

static void redis_stop(void)
{
	int64_t deadline;
	int status;

	if (getpid() != parent_pid)
		return;
	if (redis_pid > 0) {
		kill(redis_pid, SIGTERM);
		deadline = clock_deadline_in(5000);
		while (waitpid(redis_pid, &status, WNOHANG) == 0) {
			if (clock_expired(deadline)) {
				kill(redis_pid, SIGKILL);
				waitpid(redis_pid, &status, 0);
				break;
			}
			clock_sleep_ms(10);
		}
		redis_pid = -1;
	}
	remove_tmpdir();
}

static int free_tcp_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = 0;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static int redis_start_once(void)
{
	char port[16], logp[256];
	struct sb_error e = SB_ERROR_INIT;
	int64_t deadline;
	int status;

	tcp_port = free_tcp_port();
	if (tcp_port <= 0)
		return -1;
	snprintf(port, sizeof(port), "%d", tcp_port);
	snprintf(logp, sizeof(logp), "%s/redis.log", tmpdir);
	fflush(stdout);
	redis_pid = fork();
	if (redis_pid < 0)
		return -1;
	if (redis_pid == 0) {
		const char *argv[] = {
			REDIS_SERVER, "--port", port, "--bind", "127.0.0.1",
			"--unixsocket", sock_path, "--unixsocketperm", "700",
			"--save", "", "--appendonly", "no", "--dir", tmpdir,
			"--daemonize", "no", "--databases", "16", NULL,
		};
		int fd;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent_pid)
			_exit(127);
		fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0) {
			dup2(fd, 0);
			close(fd);
		}
		execv(REDIS_SERVER, (char *const *)argv);
		_exit(127);
	}
	snprintf(unix_url, sizeof(unix_url), "unix://%s", sock_path);
	snprintf(tcp_url, sizeof(tcp_url), "redis://127.0.0.1:%d/0", tcp_port);
	/* readiness: a real PING over both transports, bounded */
	deadline = clock_deadline_in(10000);
	while (!clock_expired(deadline)) {
		struct kv *a = NULL, *b = NULL;

		if (waitpid(redis_pid, &status, WNOHANG) == redis_pid) {
			redis_pid = -1;
			return -1;
		}
		if (kv_open(&a, unix_url, 200, &e) == 0 && kv_open(&b, tcp_url, 200, &e) == 0) {
			kv_free(a);
			kv_free(b);
			return 0;
		}
		kv_free(a);
		clock_sleep_ms(10);
	}
	printf("# redis not ready: %s\n", e.msg);
	return -1;
}

static int redis_start(void)
{
	int attempt;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/sshbox-redis-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		tmpdir[0] = '\0';
		return -1;
	}
	snprintf(sock_path, sizeof(sock_path), "%s/redis.sock", tmpdir);
	for (attempt = 0; attempt < 3; attempt++) {
		if (redis_start_once() == 0)
			return 0;
		dump_redis_log();
		if (redis_pid > 0) {
			kill(redis_pid, SIGKILL);
			waitpid(redis_pid, NULL, 0);
			redis_pid = -1;
		}
	}
	return -1;
}

/* ---- helpers ---- */

static struct kv *open_unix(int timeout_ms)
{
	struct sb_error e = SB_ERROR_INIT;
	struct kv *kv = NULL;

	if (kv_open(&kv, unix_url, timeout_ms, &e) != 0)
		printf("# kv_open %s: %s\n", unix_url, e.msg);
	return kv;
}

/* Run a command whose reply we only need as an integer (or -999). */
static long long cmd_int(struct kv *kv, const char *a0, const char *a1, const char *a2,
			 const char *a3)
{
	struct sb_error e = SB_ERROR_INIT;
	struct kv_value r = KV_VALUE_INIT;
	long long v = -999;

	if (kv_cmd(kv, &r, &e, a0, a1, a2, a3, NULL) != 0) {
		printf("# %s: %s\n", a0, e.msg);
		return -999;
	}
	if (r.type == KV_INTEGER)
		v = r.integer;
	else if (r.type == KV_STRING || r.type == KV_STATUS)
		v = strtoll(r.str, NULL, 10);
	kv_value_release(&r);
	return v;
}

/* GET as a malloc'd string ("" for nil). */
static char *cmd_get(struct kv *kv, const char *key)
{
	struct sb_error e = SB_ERROR_INIT;
	struct kv_value r = KV_VALUE_INIT;
	char *s;

	if (kv_cmd(kv, &r, &e, "GET", key, NULL) != 0)
		return strdup("(error)");
	s = strdup(r.type == KV_STRING ? r.str : "");
	kv_value_release(&r);
	return s;
}

static long long client_id(struct kv *kv)
{
	return cmd_int(kv, "CLIENT", "ID", NULL, NULL);
}

static long long commandstat(struct kv *kv, const char *name)
{
	struct sb_error e = SB_ERROR_INIT;
	struct kv_value r = KV_VALUE_INIT;
	char pat[64];
	const char *p;
	long long v = 0;

	if (kv_cmd(kv, &r, &e, "INFO", "commandstats", NULL) != 0)
		return -1;
	snprintf(pat, sizeof(pat), "cmdstat_%s:calls=", name);
	if (r.type == KV_STRING && (p = strstr(r.str, pat)) != NULL)
		v = strtoll(p + strlen(pat), NULL, 10);
	kv_value_release(&r);
	return v;
}

static const char *const HOSTKEY =
	"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

/* ---- kv ---- */

static void test_kv_unix(void)
{
	struct sb_error e = SB_ERROR_INIT;
	struct kv *kv = open_unix(2000);
	const char *argv[3];
	size_t lens[3];
	struct kv_value r = KV_VALUE_INIT;
	long long id;

	CHECK(kv != NULL);
	if (!kv)
		return;
	CHECK_STREQ(kv_where(kv), sock_path);
	CHECK_INT(kv_cmd(kv, &r, &e, "PING", NULL), 0);
	CHECK(r.type == KV_STATUS && strcmp(r.str, "PONG") == 0);
	kv_value_release(&r);
	/* binary-safe arguments: an embedded NUL and a newline travel intact */
	argv[0] = "SET";
	argv[1] = "sshbox:test:bin";
	argv[2] = "a\0b\r\nc";
	lens[0] = 3;
	lens[1] = strlen(argv[1]);
	lens[2] = 6;
	CHECK_INT(kv_cmdv(kv, NULL, &e, 3, argv, lens), 0);
	CHECK_INT(kv_cmd(kv, &r, &e, "STRLEN", "sshbox:test:bin", NULL), 0);
	CHECK(r.type == KV_INTEGER && r.integer == 6);
	kv_value_release(&r);
	/* an ERROR reply is an answer: same connection afterwards */
	id = client_id(kv);
	CHECK(id > 0);
	CHECK_INT(kv_cmd(kv, &r, &e, "INCR", "sshbox:test:bin", NULL), SB_ERR_REDIS);
	CHECK(r.type == KV_NIL);
	CHECK(strstr(e.msg, "rejected INCR: ERR value is not an integer") != NULL);
	CHECK_INT(client_id(kv), id);
	CHECK_INT(kv_cmd(kv, &r, &e, "NOSUCHCOMMAND", "x", NULL), SB_ERR_REDIS);
	CHECK_INT(client_id(kv), id);
	kv_free(kv);
}

static void test_kv_refused(void)
{
	struct sb_error e = SB_ERROR_INIT;
	struct kv *kv = (struct kv *)1;
	char url[64], want[128];
	int port = free_tcp_port();

	snprintf(url, sizeof(url), "redis://:hunter2@127.0.0.1:%d/0", port);
	CHECK_INT(kv_open(&kv, url, 500, &e), SB_ERR_REDIS);
	CHECK(kv == NULL);
	snprintf(want, sizeof(want), "Redis at 127.0.0.1:%d unreachable: Connection refused", port);
	CHECK_STREQ(e.msg, want);
	CHECK(strstr(e.msg, "hunter2") == NULL);
	CHECK_INT(kv_open(&kv, "unix:///nonexistent/sshbox.sock", 500, &e), SB_ERR_REDIS);
	CHECK(strstr(e.msg, "Redis at /nonexistent/sshbox.sock unreachable: No such file or directory") != NULL);
}

static void test_kv_url_errors(void)
{
	static const char *const bad[] = {
		"", "http://127.0.0.1/", "rediss://:hunter2@127.0.0.1:6379", "redis://",
		"redis://:hunter2@", "redis://:hunter2@127.0.0.1:99999/0", "redis://:hunter2@127.0.0.1:0",
		"redis://:hunter2@127.0.0.1:6379/x", "redis://:hunter2@127.0.0.1:6379/0?x=1",
		"redis://:hunter2@-oProxyCommand=x:6379", "redis://hunter2@127.0.0.1",
		"redis://:hunter2%zz@127.0.0.1", "redis://:hunter2%00@127.0.0.1",
		"redis://:hunter2@[::1", "redis://:hunter 2@127.0.0.1", "redis://:hunter2\n@127.0.0.1",
		"unix://relative/path", "unix:///tmp/x.sock?password=hunter2&bogus=1",
		"unix:///tmp/x.sock?db=abc&password=hunter2", "unix:///tmp/x.sock?password=hunter2%zz",
		"unix:///tmp/x.sock#frag",
	};
	struct sb_error e = SB_ERROR_INIT;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct kv *kv = NULL;
		int r = kv_open(&kv, bad[i], 200, &e);

		if (r != SB_ERR_USAGE || kv != NULL || strstr(e.msg, "hunter") ||
		    strncmp(e.msg, "invalid redis_url", 17) != 0) {
			unit_failed_checks++;
			printf("#   url %zu: %d %s\n", i, r, e.msg);
		}
	}
}

static void test_kv_auth_select(void)
{
	struct sb_error e = SB_ERROR_INIT;
	struct kv *admin = open_unix(2000), *kv = NULL;
	struct kv_value r = KV_VALUE_INIT;
	char url[200];

	CHECK(admin != NULL);
	if (!admin)
		return;
	/* a password with characters that need %-escaping in a URL */
	CHECK_INT(kv_cmd(admin, NULL, &e, "CONFIG", "SET", "requirepass", "p@ss:w/rd%", NULL), 0);
	snprintf(url, sizeof(url), "redis://:p%%40ss%%3Aw%%2Frd%%25@127.0.0.1:%d/3", tcp_port);
	CHECK_INT(kv_open(&kv, url, 2000, &e), 0);
	if (kv) {
		CHECK_INT(kv_cmd(kv, NULL, &e, "SET", "sshbox:test:db3", "x", NULL), 0);
		CHECK_INT(kv_cmd(kv, &r, &e, "CLIENT", "INFO", NULL), 0);
		CHECK(r.type == KV_STRING && strstr(r.str, " db=3 "));
		kv_value_release(&r);
		kv_free(kv);
		kv = NULL;
	}
	/* db 0 does not see db 3's key */
	CHECK_INT(cmd_int(admin, "EXISTS", "sshbox:test:db3", NULL, NULL), 0);
	/* the literal-'@' form also works (the last '@' ends the userinfo) */
	snprintf(url, sizeof(url), "redis://:p@ss:w/rd%%25@127.0.0.1:%d", tcp_port);
	CHECK_INT(kv_open(&kv, url, 2000, &e), 0);
	kv_free(kv);
	kv = NULL;
	/* no password: PING is refused, clearly */
	CHECK_INT(kv_open(&kv, tcp_url, 2000, &e), SB_ERR_REDIS);
	CHECK(strstr(e.msg, "rejected PING: NOAUTH") != NULL);
	/* wrong password: the message never contains what was sent */
	snprintf(url, sizeof(url), "redis://:WrongSecret@127.0.0.1:%d/0", tcp_port);
	CHECK_INT(kv_open(&kv, url, 2000, &e), SB_ERR_REDIS);
	CHECK(strstr(e.msg, "rejected AUTH") != NULL);
	CHECK(strstr(e.msg, "WrongSecret") == NULL);
	/* unix socket with query parameters */
	snprintf(url, sizeof(url), "unix://%s?db=2&password=p%%40ss:w/rd%%25", sock_path);
	CHECK_INT(kv_open(&kv, url, 2000, &e), 0);
	if (kv) {
		CHECK_INT(kv_cmd(kv, &r, &e, "CLIENT", "INFO", NULL), 0);
		CHECK(r.type == KV_STRING && strstr(r.str, " db=2 "));
		kv_value_release(&r);
		kv_free(kv);
		kv = NULL;
	}
	/* an ACL user */
	CHECK_INT(kv_cmd(admin, NULL, &e, "ACL", "SETUSER", "sshbox", "on", ">s3cret", "~*", "+@all", NULL), 0);
	snprintf(url, sizeof(url), "redis://sshbox:s3cret@127.0.0.1:%d/0", tcp_port);
	CHECK_INT(kv_open(&kv, url, 2000, &e), 0);
	if (kv) {
		CHECK_INT(kv_cmd(kv, &r, &e, "ACL", "WHOAMI", NULL), 0);
		CHECK(r.type == KV_STRING && strcmp(r.str, "sshbox") == 0);
		kv_value_release(&r);
		kv_free(kv);
		kv = NULL;
	}
	CHECK_INT(kv_cmd(admin, NULL, &e, "ACL", "DELUSER", "sshbox", NULL), 0);
	CHECK_INT(kv_cmd(admin, NULL, &e, "CONFIG", "SET", "requirepass", "", NULL), 0);
	CHECK_INT(kv_cmd(admin, NULL, &e, "FLUSHALL", NULL), 0);
	kv_free(admin);
}

static void test_kv_reconnect(void)
{
	struct sb_error e = SB_ERROR_INIT;
	struct kv *kv = open_unix(2000), *admin = open_unix(2000);
	char id[32];
	long long before;

	CHECK(kv && admin);
	if (!kv || !admin)
		goto out;
	before = client_id(kv);
	snprintf(id, sizeof(id), "%lld", before);
	CHECK_INT(cmd_int(admin, "CLIENT", "KILL", "ID", id), 1);
	/* this call fails (no blind retry) ... */
	CHECK_INT(kv_cmd(kv, NULL, &e, "INCR", "sshbox:test:ctr", NULL), SB_ERR_REDIS);
	CHECK(strncmp(e.msg, "Redis at ", 9) == 0);
	CHECK_INT(cmd_int(admin, "EXISTS", "sshbox:test:ctr", NULL, NULL), 0);
	/* ... the next one runs on a new connection */
	CHECK_INT(kv_cmd(kv, NULL, &e, "INCR", "sshbox:test:ctr", NULL), 0);
	CHECK(client_id(kv) > before);
	CHECK_INT(cmd_int(admin, "GET", "sshbox:test:ctr", NULL, NULL), 1);
out:
	kv_free(kv);
	kv_free(admin);
}

static void test_kv_timeout(void)
{
	struct sb_error e = SB_ERROR_INIT;
	struct kv *kv = open_unix(200);
	int64_t t0, dt;
	long long before;

	CHECK(kv != NULL);
	if (!kv)
		return;
	before = client_id(kv);
	t0 = clock_now_ms();
	CHECK_INT(kv_cmd(kv, NULL, &e, "BLPOP", "sshbox:test:nolist", "3", NULL), SB_ERR_REDIS);
	dt = clock_now_ms() - t0;
	CHECK(dt >= 150 && dt < 1500);
	CHECK(strstr(e.msg, "did not answer BLPOP within 200 ms") != NULL);
	/* the timed-out context is gone; the late reply cannot be misread */
	CHECK_INT(kv_cmd(kv, NULL, &e, "PING", NULL), 0);
	CHECK(client_id(kv) > before);
	/* the new context has the timeout again (hiredis#593) */
	t0 = clock_now_ms();
	CHECK_INT(kv_cmd(kv, NULL, &e, "BLPOP", "sshbox:test:nolist", "3", NULL), SB_ERR_REDIS);
	CHECK(clock_now_ms() - t0 < 1500);
	kv_free(kv);
}

static struct kv_script answer_script = KV_SCRIPT("test_answer",
	"return tonumber(ARGV[1]) + #KEYS\n");
static struct kv_script failing_script = KV_SCRIPT("test_failing",
	"return redis.call('INCR', KEYS[1])\n");

static void test_kv_noscript(void)
{
	struct sb_error e = SB_ERROR_INIT;
	struct kv *kv = open_unix(2000);
	const char *keys[] = { "sshbox:test:k1" }, *args[] = { "41" };
	struct kv_value r = KV_VALUE_INIT;
	long long v = 0;

	CHECK(kv != NULL);
	if (!kv)
		return;
	CHECK_INT(kv_cmd(kv, NULL, &e, "CONFIG", "RESETSTAT", NULL), 0);
	CHECK_INT(kv_eval(kv, &answer_script, &r, &e, 1, keys, 1, args), 0);
	CHECK_INT(kv_reply_integer(kv, &r, "x", &v, &e), 0);
	CHECK_INT(v, 42);
	kv_value_release(&r);
	/* EVAL every time: one round trip, also after SCRIPT FLUSH (a restart) */
	CHECK_INT(kv_eval(kv, &answer_script, &r, &e, 1, keys, 1, args), 0);
	kv_value_release(&r);
	CHECK_INT(cmd_int(kv, "SCRIPT", "FLUSH", NULL, NULL), 0);
	CHECK_INT(kv_eval(kv, &answer_script, &r, &e, 1, keys, 1, args), 0);
	CHECK(r.type == KV_INTEGER && r.integer == 42);
	kv_value_release(&r);
	CHECK_INT(commandstat(kv, "eval"), 3);
	CHECK_INT(commandstat(kv, "evalsha"), 0);
	/* a script error is an error naming the script; the connection lives */
	CHECK_INT(kv_cmd(kv, NULL, &e, "SET", "sshbox:test:str", "abc", NULL), 0);
	keys[0] = "sshbox:test:str";
	CHECK_INT(kv_eval(kv, &failing_script, &r, &e, 1, keys, 0, NULL), SB_ERR_REDIS);
	CHECK(r.type == KV_NIL);
	CHECK(strstr(e.msg, "rejected script test_failing") != NULL);
	CHECK_INT(kv_cmd(kv, NULL, &e, "PING", NULL), 0);
	/* kv_reply_integer checks the type */
	CHECK_INT(kv_cmd(kv, &r, &e, "GET", "sshbox:test:str", NULL), 0);
	CHECK_INT(kv_reply_integer(kv, &r, "GET", &v, &e), SB_ERR_REDIS);
	CHECK(strstr(e.msg, "unexpected reply to GET: string") != NULL);
	kv_value_release(&r);
	kv_free(kv);
}

static struct kv_script nested_script = KV_SCRIPT("test_nested",
	"return {1, 'two', {3, false, 'four'}, redis.error_reply('ERR boom')}\n");

/* Replies come back as owned kv_values, one type per RESP2 shape. */
static void test_kv_values(void)
{
	struct sb_error e = SB_ERROR_INIT;
	struct kv *kv = open_unix(2000);
	const char *set[] = { "SET", "sshbox:test:v", "a\0b" };
	const size_t set_lens[] = { 3, 13, 3 };
	struct kv_value r = KV_VALUE_INIT;
	struct buf b = BUF_INIT;
	long long n = -1;
	int found = -1;

	CHECK(kv != NULL);
	if (!kv)
		return;
	/* nil */
	CHECK_INT(kv_cmd(kv, NULL, &e, "DEL", "sshbox:test:v", "sshbox:test:h", NULL), 0);
	CHECK_INT(kv_cmd(kv, &r, &e, "GET", "sshbox:test:v", NULL), 0);
	CHECK(r.type == KV_NIL && r.str == NULL && r.n == 0);
	CHECK_STREQ(kv_value_type_name(&r), "nil");
	kv_value_release(&r);
	CHECK_INT(kv_cmd_string(kv, &b, &found, &e, "GET", "sshbox:test:v", NULL), 0);
	CHECK_INT(found, 0);
	CHECK_INT(b.len, 0);
	/* status and a binary string (the NUL travels, len counts it) */
	CHECK_INT(kv_cmdv(kv, &r, &e, 3, set, set_lens), 0);
	CHECK(r.type == KV_STATUS && r.len == 2 && strcmp(r.str, "OK") == 0);
	kv_value_release(&r);
	CHECK_INT(kv_cmd(kv, &r, &e, "GET", "sshbox:test:v", NULL), 0);
	CHECK(r.type == KV_STRING && r.len == 3 && memcmp(r.str, "a\0b", 4) == 0);
	kv_value_release(&r);
	CHECK(r.type == KV_NIL && r.str == NULL);
	kv_value_release(&r);   /* twice is harmless */
	CHECK_INT(kv_cmd_string(kv, &b, &found, &e, "GET", "sshbox:test:v", NULL), 0);
	CHECK_INT(found, 1);
	CHECK(b.len == 3 && memcmp(b.data, "a\0b", 3) == 0);
	/* integer */
	CHECK_INT(kv_cmd(kv, &r, &e, "STRLEN", "sshbox:test:v", NULL), 0);
	CHECK(r.type == KV_INTEGER && r.integer == 3);
	kv_value_release(&r);
	CHECK_INT(kv_cmd_integer(kv, &n, &e, "EXISTS", "sshbox:test:v", NULL), 0);
	CHECK_INT(n, 1);
	/* the wrong shape is an error naming the command and what came */
	CHECK_INT(kv_cmd_integer(kv, &n, &e, "GET", "sshbox:test:v", NULL), SB_ERR_REDIS);
	CHECK(strstr(e.msg, "unexpected reply to GET: string") != NULL);
	CHECK_INT(kv_cmd_string(kv, &b, &found, &e, "EXISTS", "sshbox:test:v", NULL), SB_ERR_REDIS);
	CHECK(strstr(e.msg, "unexpected reply to EXISTS: integer") != NULL);
	CHECK_INT(found, 0);
	CHECK_INT(kv_eval_integer(kv, &nested_script, &n, &e, 0, NULL, 0, NULL), SB_ERR_REDIS);
	CHECK(strstr(e.msg, "unexpected reply to script test_nested: array") != NULL);
	/* a nested array, with a nil and an error element */
	CHECK_INT(kv_eval(kv, &nested_script, &r, &e, 0, NULL, 0, NULL), 0);
	CHECK(r.type == KV_ARRAY && r.n == 4);
	if (r.type == KV_ARRAY && r.n == 4) {
		CHECK(r.elem[0].type == KV_INTEGER && r.elem[0].integer == 1);
		CHECK(r.elem[1].type == KV_STRING && strcmp(r.elem[1].str, "two") == 0);
		CHECK(r.elem[2].type == KV_ARRAY && r.elem[2].n == 3);
		if (r.elem[2].n == 3) {
			CHECK(r.elem[2].elem[0].type == KV_INTEGER && r.elem[2].elem[0].integer == 3);
			CHECK(r.elem[2].elem[1].type == KV_NIL);
			CHECK(r.elem[2].elem[2].type == KV_STRING && strcmp(r.elem[2].elem[2].str, "four") == 0);
		}
		CHECK(r.elem[3].type == KV_ERROR && strcmp(r.elem[3].str, "ERR boom") == 0);
		CHECK_STREQ(kv_value_type_name(&r.elem[3]), "error");
	}
	kv_value_release(&r);
	CHECK(r.type == KV_NIL && r.elem == NULL && r.n == 0);
	/* an empty array is an array */
	CHECK_INT(kv_cmd(kv, &r, &e, "HGETALL", "sshbox:test:h", NULL), 0);
	CHECK(r.type == KV_ARRAY && r.n == 0 && kv_value_field(&r, "a") == NULL);
	kv_value_release(&r);
	/* a flat field/value array */
	CHECK_INT(kv_cmd(kv, NULL, &e, "HSET", "sshbox:test:h", "a", "1", "bb", "22", NULL), 0);
	CHECK_INT(kv_cmd(kv, &r, &e, "HGETALL", "sshbox:test:h", NULL), 0);
	{
		const struct kv_value *f = kv_value_field(&r, "bb");

		CHECK(f && f->type == KV_STRING && strcmp(f->str, "22") == 0);
		CHECK(kv_value_field(&r, "b") == NULL);
		CHECK(kv_value_field(&r, "1") == NULL);   /* values are not fields */
	}
	kv_value_release(&r);
	/* an error reply: SB_ERR_REDIS, and nothing to release */
	r.type = KV_INTEGER;
	CHECK_INT(kv_cmd(kv, &r, &e, "HGET", "sshbox:test:v", "x", NULL), SB_ERR_REDIS);
	CHECK(r.type == KV_NIL && r.str == NULL && r.elem == NULL);
	CHECK(strstr(e.msg, "rejected HGET: WRONGTYPE") != NULL);
	CHECK_INT(kv_cmd_integer(kv, &n, &e, "INCR", "sshbox:test:v", NULL), SB_ERR_REDIS);
	CHECK(strstr(e.msg, "rejected INCR: ERR value is not an integer") != NULL);
	CHECK_INT(kv_cmd(kv, NULL, &e, "DEL", "sshbox:test:v", "sshbox:test:h", NULL), 0);
	buf_release(&b);
	kv_free(kv);
}

static void test_kv_pipeline(void)
{
	struct sb_error e = SB_ERROR_INIT;
	struct kv *kv = open_unix(2000);
	const char *set[] = { "SET", "sshbox:test:p1", "abc" }, *get[] = { "GET", "sshbox:test:p1" };
	const char *incr[] = { "INCR", "sshbox:test:p1" }, *ping[] = { "PING" };
	struct kv_value r = KV_VALUE_INIT;

	CHECK(kv != NULL);
	if (!kv)
		return;
	/* replies come back in order */
	CHECK_INT(kv_pipe_add(kv, &e, 3, set), 0);
	CHECK_INT(kv_pipe_add(kv, &e, 2, get), 0);
	CHECK_INT(kv_pipe_add(kv, &e, 2, incr), 0);
	CHECK_INT(kv_pipe_add(kv, &e, 1, ping), 0);
	CHECK_INT(kv_pipe_reply(kv, &r, &e), 0);
	CHECK(r.type == KV_STATUS && strcmp(r.str, "OK") == 0);
	kv_value_release(&r);
	CHECK_INT(kv_pipe_reply(kv, &r, &e), 0);
	CHECK(r.type == KV_STRING && strcmp(r.str, "abc") == 0);
	kv_value_release(&r);
	/* an error reply is an error for its command only */
	CHECK_INT(kv_pipe_reply(kv, &r, &e), SB_ERR_REDIS);
	CHECK(r.type == KV_NIL && strstr(e.msg, "not an integer") != NULL);
	CHECK_INT(kv_pipe_reply(kv, &r, &e), 0);
	CHECK(r.type == KV_STATUS && strcmp(r.str, "PONG") == 0);
	kv_value_release(&r);
	CHECK_INT(kv_pipe_reply(kv, &r, &e), SB_ERR_INTERNAL);
	/* replies left unread never reach the next command */
	CHECK_INT(kv_pipe_add(kv, &e, 2, get), 0);
	CHECK_INT(kv_pipe_add(kv, &e, 2, get), 0);
	CHECK_INT(kv_pipe_reply(kv, &r, &e), 0);
	kv_value_release(&r);
	CHECK_INT(kv_cmd(kv, &r, &e, "PING", NULL), 0);
	CHECK(r.type == KV_STATUS && strcmp(r.str, "PONG") == 0);
	kv_value_release(&r);
	CHECK_INT(kv_cmd(kv, NULL, &e, "DEL", "sshbox:test:p1", NULL), 0);
	kv_free(kv);
}

/* ---- lock ---- */

static void test_lock_acquire(void)
{
	struct sb_error e = SB_ERROR_INIT;
	struct kv *kv = open_unix(2000);
	struct lock a = LOCK_INIT, b = LOCK_INIT, c = LOCK_INIT;
	char key[LOCK_KEY_MAX];
	int64_t t0;
	long long pttl;

	CHECK(kv != NULL);
	if (!kv)
		return;
	t0 = clock_now_ms();
	CHECK_INT(lock_acquire(kv, "acme", "Box1.Example.com", 2, "job-a", 30000, &a, &e), 0);
	CHECK_INT(a.slot, 0);
	CHECK_INT(a.held, 1);
	CHECK_STREQ(a.host, "box1.example.com");
	CHECK_INT(strlen(a.token), 32);
	CHECK(a.fence > 1000000000000000LL);   /* seeded from TIME in microseconds */
	CHECK(a.deadline_ms >= t0 + 30000 - 1000 && a.deadline_ms <= clock_now_ms() + 30000 - 1000);
	CHECK_INT(lock_acquire(kv, "acme", "box1.example.com", 2, "job-b", 30000, &b, &e), 0);
	CHECK_INT(b.slot, 1);
	CHECK(b.fence > a.fence);
	CHECK(strcmp(a.token, b.token) != 0);
	CHECK_INT(lock_acquire(kv, "acme", "box1.example.com", 2, "job-c", 30000, &c, &e), SB_ERR_UNAVAILABLE);
	CHECK_STREQ(e.msg, "all 2 slots of sandbox 'box1.example.com' (account 'acme') are busy");
	CHECK_INT(c.held, 0);
	/* the key holds token:fence:job_id with a PX ttl */
	CHECK_INT(lock_key_slot(key, sizeof(key), "acme", "BOX1.example.com", 1, &e), 0);
	CHECK_STREQ(key, "sshbox:{acme:box1.example.com}:slot:1");
	{
		char want[160], *got = cmd_get(kv, key);

		snprintf(want, sizeof(want), "%s:%lld:job-b", b.token, b.fence);
		CHECK_STREQ(got, want);
		free(got);
	}
	pttl = cmd_int(kv, "PTTL", key, NULL, NULL);
	CHECK(pttl > 25000 && pttl <= 30000);
	/* a released slot is taken again, with a higher fence */
	CHECK_INT(lock_unlock(kv, &a, &e), 0);
	CHECK_INT(lock_acquire(kv, "acme", "box1.example.com", 2, "job-c", 30000, &c, &e), 0);
	CHECK_INT(c.slot, 0);
	CHECK(c.fence > b.fence);
	/* bad arguments never reach Redis */
	CHECK_INT(lock_acquire(kv, "acme", "-oProxyCommand=x", 2, "j", 30000, &c, &e), SB_ERR_USAGE);
	CHECK_INT(lock_acquire(kv, "acme", "box1", 0, "j", 30000, &c, &e), SB_ERR_USAGE);
	CHECK_INT(lock_acquire(kv, "acme", "box1", 2, "a:b", 30000, &c, &e), SB_ERR_USAGE);
	CHECK_INT(lock_acquire(kv, "acme", "box1", 2, "j", 1000, &c, &e), SB_ERR_USAGE);
	CHECK_INT(lock_unlock(kv, &b, &e), 0);
	CHECK_INT(lock_unlock(kv, &c, &e), 0);
	kv_free(kv);
}

static void test_lock_renew(void)
{
	struct sb_error e = SB_ERROR_INIT;
	struct kv *kv = open_unix(2000), *admin = open_unix(2000);
	struct lock l = LOCK_INIT;
	char key[LOCK_KEY_MAX], id[32];
	int64_t old_deadline;

	CHECK(kv && admin);
	if (!kv || !admin)
		goto out;
	CHECK_INT(lock_acquire(kv, "acme", "renew.example", 1, "job-r", 10000, &l, &e), 0);
	CHECK_INT(lock_key_slot(key, sizeof(key), "acme", "renew.example", 0, &e), 0);
	/* pretend time passed on the server; renewal restores the full TTL */
	CHECK_INT(cmd_int(admin, "PEXPIRE", key, "3000", NULL), 1);
	old_deadline = l.deadline_ms;
	CHECK_INT(lock_renew(kv, &l, &e), 0);
	CHECK(cmd_int(admin, "PTTL", key, NULL, NULL) > 9000);
	CHECK(l.deadline_ms >= old_deadline);
	CHECK_INT(l.held, 1);
	/* Redis trouble is "unknown, try again": the lock stays held */
	snprintf(id, sizeof(id), "%lld", client_id(kv));
	CHECK_INT(cmd_int(admin, "CLIENT", "KILL", "ID", id), 1);
	CHECK_INT(lock_renew(kv, &l, &e), SB_ERR_REDIS);
	CHECK_INT(l.held, 1);
	CHECK_INT(lock_renew(kv, &l, &e), 0);
	/* past the local deadline: lost, without asking Redis */
	old_deadline = l.deadline_ms;
	l.deadline_ms = clock_now_ms() - 1;
	CHECK_INT(lock_renew(kv, &l, &e), SB_ERR_NOTFOUND);
	CHECK(strstr(e.msg, "no renewal was confirmed before the lease deadline") != NULL);
	CHECK_INT(l.held, 0);
	l.held = 1;
	l.deadline_ms = old_deadline;
	/* the key is gone: lost for certain */
	CHECK_INT(cmd_int(admin, "DEL", key, NULL, NULL), 1);
	CHECK_INT(lock_renew(kv, &l, &e), SB_ERR_NOTFOUND);
	CHECK_STREQ(e.msg, "lost the lock on sandbox 'renew.example' slot 0 (account 'acme'): the lease expired or another job holds the slot");
	CHECK_INT(l.held, 0);
	/* renewal never resurrects the key */
	CHECK_INT(cmd_int(admin, "EXISTS", key, NULL, NULL), 0);
	CHECK_INT(lock_renew(kv, &l, &e), SB_ERR_NOTFOUND);
	/* someone else's value is never extended */
	CHECK_INT(lock_acquire(kv, "acme", "renew.example", 1, "job-r2", 10000, &l, &e), 0);
	CHECK_INT(kv_cmd(admin, NULL, &e, "SET", key, "0123456789abcdef0123456789abcdef:1:other", "PX", "3000", NULL), 0);
	CHECK_INT(lock_renew(kv, &l, &e), SB_ERR_NOTFOUND);
	CHECK(cmd_int(admin, "PTTL", key, NULL, NULL) <= 3000);
	CHECK_INT(cmd_int(admin, "DEL", key, NULL, NULL), 1);
out:
	kv_free(kv);
	kv_free(admin);
}

static void test_lock_unlock(void)
{
	struct sb_error e = SB_ERROR_INIT;
	struct kv *kv = open_unix(2000);
	struct lock l = LOCK_INIT, never = LOCK_INIT;
	char key[LOCK_KEY_MAX], *v;
	int64_t deadline;

	CHECK(kv != NULL);
	if (!kv)
		return;
	CHECK_INT(lock_key_slot(key, sizeof(key), "acme", "rel.example", 0, &e), 0);
	/* 1: released */
	CHECK_INT(lock_acquire(kv, "acme", "rel.example", 1, "job", 10000, &l, &e), 0);
	CHECK_INT(lock_unlock(kv, &l, &e), 0);
	CHECK_INT(l.held, 0);
	CHECK_INT(cmd_int(kv, "EXISTS", key, NULL, NULL), 0);
	/* releasing twice, or a lock never acquired, is a no-op */
	CHECK_INT(lock_unlock(kv, &l, &e), 0);
	CHECK_INT(lock_unlock(kv, &never, &e), 0);
	/* 0: taken by another holder -- and their key is left alone */
	CHECK_INT(lock_acquire(kv, "acme", "rel.example", 1, "job", 10000, &l, &e), 0);
	CHECK_INT(kv_cmd(kv, NULL, &e, "SET", key, "0123456789abcdef0123456789abcdef:7:other", NULL), 0);
	CHECK_INT(lock_unlock(kv, &l, &e), SB_ERR_NOTFOUND);
	CHECK_STREQ(e.msg, "the lock on sandbox 'rel.example' slot 0 (account 'acme') had been taken by another holder");
	CHECK_INT(l.held, 0);
	v = cmd_get(kv, key);
	CHECK_STREQ(v, "0123456789abcdef0123456789abcdef:7:other");
	free(v);
	CHECK_INT(cmd_int(kv, "DEL", key, NULL, NULL), 1);
	/* -1: already expired (deleted) */
	CHECK_INT(lock_acquire(kv, "acme", "rel.example", 1, "job", 10000, &l, &e), 0);
	CHECK_INT(cmd_int(kv, "DEL", key, NULL, NULL), 1);
	CHECK_INT(lock_unlock(kv, &l, &e), SB_ERR_NOTFOUND);
	CHECK_STREQ(e.msg, "the lock on sandbox 'rel.example' slot 0 (account 'acme') had already expired");
	/* -1: expired by its TTL */
	CHECK_INT(lock_acquire(kv, "acme", "rel.example", 1, "job", 10000, &l, &e), 0);
	CHECK_INT(cmd_int(kv, "PEXPIRE", key, "1", NULL), 1);
	deadline = clock_deadline_in(2000);
	while (cmd_int(kv, "EXISTS", key, NULL, NULL) != 0 && !clock_expired(deadline))
		clock_sleep_ms(1);
	CHECK_INT(lock_unlock(kv, &l, &e), SB_ERR_NOTFOUND);
	CHECK(strstr(e.msg, "had already expired") != NULL);
	kv_free(kv);
}

static void test_lock_holders(void)
{
	struct sb_error e = SB_ERROR_INIT;
	struct kv *kv = open_unix(2000);
	struct lock a = LOCK_INIT, b = LOCK_INIT, c = LOCK_INIT;
	struct lock_holder h[3];
	char key[LOCK_KEY_MAX];
	int n = -1, running = -1;

	CHECK(kv != NULL);
	if (!kv)
		return;
	CHECK_INT(lock_list_holders(kv, "acme", "hold.example", 3, h, &n, &e), 0);
	CHECK_INT(n, 0);
	CHECK_INT(lock_acquire(kv, "acme", "hold.example", 3, "job-1", 20000, &a, &e), 0);
	CHECK_INT(lock_acquire(kv, "acme", "hold.example", 3, "job-2", 20000, &b, &e), 0);
	CHECK_INT(lock_acquire(kv, "acme", "hold.example", 3, "job-3", 20000, &c, &e), 0);
	CHECK_INT(lock_unlock(kv, &b, &e), 0);
	CHECK_INT(lock_list_holders(kv, "acme", "hold.example", 3, h, &n, &e), 0);
	CHECK_INT(n, 2);
	CHECK_INT(h[0].slot, 0);
	CHECK_STREQ(h[0].job_id, "job-1");
	CHECK_INT(h[0].fence, a.fence);
	CHECK(h[0].pttl_ms > 0 && h[0].pttl_ms <= 20000);
	CHECK_INT(h[1].slot, 2);
	CHECK_STREQ(h[1].job_id, "job-3");
	CHECK_INT(h[1].fence, c.fence);
	CHECK_INT(lock_job_running(kv, "acme", "hold.example", 3, "job-3", &running, &e), 0);
	CHECK_INT(running, 1);
	CHECK_INT(lock_job_running(kv, "acme", "hold.example", 3, "job-2", &running, &e), 0);
	CHECK_INT(running, 0);
	/* the account-wide reservation: held with the slot, gone with it */
	CHECK_INT(lock_job_reserved(kv, "acme", "job-3", &running, &e), 0);
	CHECK_INT(running, 1);
	CHECK_INT(lock_job_reserved(kv, "acme", "job-2", &running, &e), 0);
	CHECK_INT(running, 0);
	CHECK_INT(lock_job_reserved(kv, "other", "job-3", &running, &e), 0);
	CHECK_INT(running, 0);
	CHECK_INT(lock_job_reserved(kv, "acme", "bad id!", &running, &e), SB_ERR_USAGE);
	/* a value lock_acquire never wrote is an error, not a holder */
	CHECK_INT(lock_key_slot(key, sizeof(key), "acme", "hold.example", 1, &e), 0);
	CHECK_INT(kv_cmd(kv, NULL, &e, "SET", key, "garbage", NULL), 0);
	CHECK_INT(lock_list_holders(kv, "acme", "hold.example", 3, h, &n, &e), SB_ERR_REDIS);
	CHECK(strstr(e.msg, "malformed lock value in key 'sshbox:{acme:hold.example}:slot:1'") != NULL);
	CHECK_INT(cmd_int(kv, "DEL", key, NULL, NULL), 1);
	CHECK_INT(lock_unlock(kv, &a, &e), 0);
	CHECK_INT(lock_unlock(kv, &c, &e), 0);
	kv_free(kv);
}

static void test_lock_fence_reseed(void)
{
	struct sb_error e = SB_ERROR_INIT;
	struct kv *kv = open_unix(2000);
	struct lock l = LOCK_INIT;
	char fkey[LOCK_KEY_MAX];
	long long f1;
	int i;

	CHECK(kv != NULL);
	if (!kv)
		return;
	CHECK_INT(lock_key_fence(fkey, sizeof(fkey), "acme", "fence.example", &e), 0);
	CHECK_STREQ(fkey, "sshbox:{acme:fence.example}:fence");
	for (i = 0; i < 5; i++) {
		CHECK_INT(lock_acquire(kv, "acme", "fence.example", 1, "job", 10000, &l, &e), 0);
		CHECK_INT(lock_unlock(kv, &l, &e), 0);
	}
	f1 = l.fence;
	CHECK_INT(cmd_int(kv, "GET", fkey, NULL, NULL), f1);
	/* data loss: the counter is gone; TIME in microseconds has moved on by
	 * more than the five grants above, so the next fence is still larger */
	clock_sleep_ms(2);
	CHECK_INT(cmd_int(kv, "DEL", fkey, NULL, NULL), 1);
	CHECK_INT(lock_acquire(kv, "acme", "fence.example", 1, "job", 10000, &l, &e), 0);
	CHECK(l.fence > f1);
	CHECK_INT(lock_unlock(kv, &l, &e), 0);
	kv_free(kv);
}

static void test_lock_lua_16_digits(void)
{
	struct sb_error e = SB_ERROR_INIT;
	struct kv *kv = open_unix(2000);
	struct lock l = LOCK_INIT;
	char fkey[LOCK_KEY_MAX], key[LOCK_KEY_MAX], want[160], *v;

	CHECK(kv != NULL);
	if (!kv)
		return;
	CHECK_INT(lock_key_fence(fkey, sizeof(fkey), "acme", "lua.example", &e), 0);
	CHECK_INT(lock_key_slot(key, sizeof(key), "acme", "lua.example", 0, &e), 0);
	CHECK_INT(kv_cmd(kv, NULL, &e, "SET", fkey, "1795727028400663", NULL), 0);
	CHECK_INT(lock_acquire(kv, "acme", "lua.example", 1, "job-lua", 10000, &l, &e), 0);
	CHECK_INT(l.fence, 1795727028400664LL);
	v = cmd_get(kv, key);
	snprintf(want, sizeof(want), "%s:1795727028400664:job-lua", l.token);
	CHECK_STREQ(v, want);       /* not "...:1.7957270284007e+15:..." */
	CHECK(strchr(v, 'e') == NULL || strstr(v, "e+") == NULL);
	free(v);
	/* renew and release compare the exact bytes, so they succeed only if
	 * Lua and C formatted the number the same way */
	CHECK_INT(lock_renew(kv, &l, &e), 0);
	CHECK_INT(lock_unlock(kv, &l, &e), 0);
	kv_free(kv);
}

/* ---- concurrency: 8 processes x 200 cycles on a 2-slot sandbox ---- */

#define CONC_PROCS 8
#define CONC_CYCLES 200
#define CONC_SLOTS 2

struct shared {
	atomic_int occ[CONC_SLOTS];          /* holders per slot as seen by us */
	atomic_int total;                    /* holders of any slot */
	atomic_int overlaps;                 /* a slot found occupied on acquire */
	atomic_int over_capacity;            /* more holders than slots */
	atomic_int fence_regressions;        /* a fence not above the slot's last */
	atomic_int both_slots_busy;          /* times two holders coexisted */
	atomic_int acquired;
	atomic_int release_errors;
	atomic_int other_errors;
	atomic_llong last_fence[CONC_SLOTS];
	atomic_llong fences[CONC_PROCS * CONC_CYCLES * 4];
	atomic_int n_fences;
};

typedef int (*acquire_fn)(struct kv *, const char *, const char *, int, const char *, int64_t,
			  struct lock *, struct sb_error *);

/* A classic broken lock (check, then set without NX) for the negative
 * control: the harness must catch it. */
static int broken_acquire(struct kv *kv, const char *account, const char *host, int slots,
			  const char *job_id, int64_t ttl_ms, struct lock *out, struct sb_error *e)
{
	char key[LOCK_KEY_MAX], fkey[LOCK_KEY_MAX], value[160], ttl[24];
	struct timespec gap = { 0, 200000 };
	int k;

	for (k = 0; k < slots; k++) {
		long long exists;

		CHECK_INT(lock_key_slot(key, sizeof(key), account, host, k, e), 0);
		exists = cmd_int(kv, "EXISTS", key, NULL, NULL);
		if (exists != 0)
			continue;
		nanosleep(&gap, NULL);
		CHECK_INT(lock_key_fence(fkey, sizeof(fkey), account, host, e), 0);
		*out = (struct lock)LOCK_INIT;
		snprintf(out->account, sizeof(out->account), "%s", account);
		snprintf(out->host, sizeof(out->host), "%s", host);
		snprintf(out->job_id, sizeof(out->job_id), "%s", job_id);
		snprintf(out->token, sizeof(out->token), "%032x", (unsigned)getpid() * 2654435761u + (unsigned)k);
		out->slot = k;
		out->fence = cmd_int(kv, "INCR", fkey, NULL, NULL);
		out->ttl_ms = ttl_ms;
		out->held = 1;
		snprintf(value, sizeof(value), "%s:%lld:%s", out->token, out->fence, job_id);
		snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
		CHECK_INT(kv_cmd(kv, NULL, e, "SET", key, value, "PX", ttl, NULL), 0);
		return 0;
	}
	return SB_ERR_UNAVAILABLE;
}

static void conc_child(struct shared *sh, acquire_fn acquire, const char *host, int cycles, int idx)
{
	struct sb_error e = SB_ERROR_INIT;
	struct kv *kv = NULL;
	struct timespec hold = { 0, 100000 }, backoff = { 0, 50000 };
	char job[32];
	int64_t deadline = clock_deadline_in(60000);
	int done = 0;

	if (kv_open(&kv, unix_url, 2000, &e) != 0) {
		atomic_fetch_add(&sh->other_errors, 1);
		_exit(1);
	}
	snprintf(job, sizeof(job), "conc-%d", idx);
	while (done < cycles && !clock_expired(deadline)) {
		struct lock l = LOCK_INIT;
		long long prev;
		int r = acquire(kv, "acme", host, CONC_SLOTS, job, 10000, &l, &e), tot, nf;

		if (r == SB_ERR_UNAVAILABLE) {
			nanosleep(&backoff, NULL);
			continue;
		}
		if (r != 0) {
			atomic_fetch_add(&sh->other_errors, 1);
			continue;
		}
		if (atomic_fetch_add(&sh->occ[l.slot], 1) != 0)
			atomic_fetch_add(&sh->overlaps, 1);
		tot = atomic_fetch_add(&sh->total, 1) + 1;
		if (tot > CONC_SLOTS)
			atomic_fetch_add(&sh->over_capacity, 1);
		if (tot == CONC_SLOTS)
			atomic_fetch_add(&sh->both_slots_busy, 1);
		prev = atomic_load(&sh->last_fence[l.slot]);
		if (l.fence <= prev)
			atomic_fetch_add(&sh->fence_regressions, 1);
		atomic_store(&sh->last_fence[l.slot], l.fence);
		nf = atomic_fetch_add(&sh->n_fences, 1);
		if (nf < CONC_PROCS * CONC_CYCLES * 4)
			atomic_store(&sh->fences[nf], l.fence);
		nanosleep(&hold, NULL);
		atomic_fetch_sub(&sh->total, 1);
		atomic_fetch_sub(&sh->occ[l.slot], 1);
		if (lock_unlock(kv, &l, &e) != 0)
			atomic_fetch_add(&sh->release_errors, 1);
		atomic_fetch_add(&sh->acquired, 1);
		done++;
	}
	kv_free(kv);
	_exit(done == cycles ? 0 : 2);
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

/* Run the harness; returns the shared results (munmap by the caller). */
static struct shared *conc_run(acquire_fn acquire, const char *host, int cycles, int *child_failures)
{
	struct shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t pids[CONC_PROCS];
	int i, status;
	int64_t deadline;

	*child_failures = 0;
	if (sh == MAP_FAILED)
		return NULL;
	memset(sh, 0, sizeof(*sh));
	fflush(stdout);
	for (i = 0; i < CONC_PROCS; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			conc_child(sh, acquire, host, cycles, i);
		if (pids[i] < 0)
			(*child_failures)++;
	}
	deadline = clock_deadline_in(90000);
	for (i = 0; i < CONC_PROCS; i++) {
		if (pids[i] <= 0)
			continue;
		while (waitpid(pids[i], &status, WNOHANG) == 0) {
			if (clock_expired(deadline)) {
				kill(pids[i], SIGKILL);
				waitpid(pids[i], &status, 0);
				break;
			}
			clock_sleep_ms(5);
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			(*child_failures)++;
	}
	return sh;
}

static void test_lock_concurrency(void)
{
	struct kv *kv = open_unix(2000);
	struct shared *sh;
	long long *f;
	int failures = 0, n, i, dups = 0;
	char key[LOCK_KEY_MAX];
	struct sb_error e = SB_ERROR_INIT;

	sh = conc_run(lock_acquire, "conc.example", CONC_CYCLES, &failures);
	CHECK(sh != NULL);
	if (!sh)
		goto out;
	printf("# real lock: %d cycles, overlaps %d, over capacity %d, fence regressions %d, "
	       "both slots busy %d times, release errors %d, other errors %d\n",
	       atomic_load(&sh->acquired), atomic_load(&sh->overlaps), atomic_load(&sh->over_capacity),
	       atomic_load(&sh->fence_regressions), atomic_load(&sh->both_slots_busy),
	       atomic_load(&sh->release_errors), atomic_load(&sh->other_errors));
	CHECK_INT(failures, 0);
	CHECK_INT(atomic_load(&sh->acquired), CONC_PROCS * CONC_CYCLES);
	CHECK_INT(atomic_load(&sh->overlaps), 0);
	CHECK_INT(atomic_load(&sh->over_capacity), 0);
	CHECK_INT(atomic_load(&sh->fence_regressions), 0);
	CHECK_INT(atomic_load(&sh->release_errors), 0);
	CHECK_INT(atomic_load(&sh->other_errors), 0);
	/* both slots were really used at once: not a 1-slot mutex */
	CHECK(atomic_load(&sh->both_slots_busy) > 0);
	/* every grant had its own fence */
	n = atomic_load(&sh->n_fences);
	CHECK_INT(n, CONC_PROCS * CONC_CYCLES);
	f = calloc((size_t)n + 1, sizeof(*f));
	if (f) {
		for (i = 0; i < n; i++)
			f[i] = atomic_load(&sh->fences[i]);
		qsort(f, (size_t)n, sizeof(*f), cmp_ll);
		for (i = 1; i < n; i++)
			if (f[i] == f[i - 1])
				dups++;
		CHECK_INT(dups, 0);
		free(f);
	}
	/* nothing left behind */
	for (i = 0; i < CONC_SLOTS && kv; i++) {
		CHECK_INT(lock_key_slot(key, sizeof(key), "acme", "conc.example", i, &e), 0);
		CHECK_INT(cmd_int(kv, "EXISTS", key, NULL, NULL), 0);
	}
	munmap(sh, sizeof(*sh));

	/* negative control: the same harness catches a check-then-set lock */
	sh = conc_run(broken_acquire, "broken.example", 50, &failures);
	CHECK(sh != NULL);
	if (!sh)
		goto out;
	printf("# broken lock (control): %d cycles, overlaps %d, over capacity %d, fence regressions %d\n",
	       atomic_load(&sh->acquired), atomic_load(&sh->overlaps), atomic_load(&sh->over_capacity),
	       atomic_load(&sh->fence_regressions));
	CHECK(atomic_load(&sh->overlaps) + atomic_load(&sh->over_capacity) > 0);
	munmap(sh, sizeof(*sh));
out:
	kv_free(kv);
}

static double bench_cycles(const char *url, const char *host, int n)
{
	struct sb_error e = SB_ERROR_INIT;
	struct kv *kv = NULL;
	struct timespec t0, t1;
	int i, ok = 0;
	double s;

	if (kv_open(&kv, url, 2000, &e) != 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++) {
		struct lock l = LOCK_INIT;

		if (lock_acquire(kv, "bench", host, 2, "bench-job", 30000, &l, &e) == 0 &&
		    lock_unlock(kv, &l, &e) == 0)
			ok++;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	kv_free(kv);
	if (ok != n)
		return -1;
	s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	return s > 0 ? n / s : -1;
}

static void test_lock_throughput(void)
{
	double u = bench_cycles(unix_url, "bench-unix", 3000);
	double t = bench_cycles(tcp_url, "bench-tcp", 3000);

	CHECK(u > 0);
	CHECK(t > 0);
	printf("# lock acquire+release (one process, 2 slots, 3000 cycles): unix socket %.0f cycles/s, "
	       "TCP 127.0.0.1 %.0f cycles/s (%.2fx)\n", u, t, t > 0 ? u / t : 0.0);
}

/* ---- registry ---- */

static struct sandbox_rec make_rec(const char *account, const char *host)
{
	struct sandbox_rec r = SANDBOX_REC_INIT;

	r.account = (char *)account;
	r.host = (char *)host;
	r.port = 2222;
	r.user = (char *)"root";
	r.workdir = (char *)"/srv/sshbox";
	r.slots = 2;
	r.host_key = (char *)HOSTKEY;
	return r;
}

static void test_registry_sandboxes(void)
{
	struct sb_error e = SB_ERROR_INIT;
	struct kv *kv = open_unix(2000);
	struct sandbox_rec rec, got = SANDBOX_REC_INIT, *list = NULL;
	long long v0 = -1, v1 = -1, v;
	size_t n = 0;

	CHECK(kv != NULL);
	if (!kv)
		return;
	CHECK_INT(registry_version(kv, &v0, &e), 0);
	rec = make_rec("acme", "Box1.Example.com");
	CHECK_INT(registry_sandbox_add(kv, &rec, &e), 0);
	CHECK_INT(registry_version(kv, &v1, &e), 0);
	/* a missing counter starts from the server clock (µs): it never repeats
	 * a number from before Redis lost its data */
	if (v0 == 0)
		CHECK(v1 > 1600000000000000LL);
	else
		CHECK_INT(v1, v0 + 1);
	/* unique per account, whatever the spelling */
	rec.host = (char *)"box1.example.COM";
	CHECK_INT(registry_sandbox_add(kv, &rec, &e), SB_ERR_EXISTS);
	CHECK_STREQ(e.msg, "sandbox 'box1.example.com' already registered for account 'acme'");
	CHECK_INT(registry_version(kv, &v, &e), 0);
	CHECK_INT(v, v1);
	/* the same host under another account is another sandbox */
	rec = make_rec("zeta", "box1.example.com");
	rec.claude = (char *)"/usr/local/bin/claude";
	rec.state = (char *)REGISTRY_STATE_DISABLED;
	CHECK_INT(registry_sandbox_add(kv, &rec, &e), 0);
	rec = make_rec("acme", "::1");
	rec.slots = 4;
	CHECK_INT(registry_sandbox_add(kv, &rec, &e), 0);
	rec = make_rec("acme", "0:0::1");
	CHECK_INT(registry_sandbox_add(kv, &rec, &e), SB_ERR_EXISTS);
	/* invalid input is refused before Redis */
	rec = make_rec("acme", "box2");
	rec.user = (char *)"-oProxyCommand=x";
	CHECK_INT(registry_sandbox_add(kv, &rec, &e), SB_ERR_USAGE);
	CHECK_STREQ(e.msg, "invalid user '-oProxyCommand=x': must not start with '-'");
	rec = make_rec("acme", "box2");
	rec.host_key = (char *)"ssh-ed25519 AAAA\nProxyCommand x";
	CHECK_INT(registry_sandbox_add(kv, &rec, &e), SB_ERR_USAGE);
	rec = make_rec("acme", "box2");
	rec.state = (char *)"paused";
	CHECK_INT(registry_sandbox_add(kv, &rec, &e), SB_ERR_USAGE);

	CHECK_INT(registry_sandbox_get(kv, "acme", "BOX1.example.com", &got, &e), 0);
	CHECK_STREQ(got.account, "acme");
	CHECK_STREQ(got.host, "box1.example.com");
	CHECK_INT(got.port, 2222);
	CHECK_STREQ(got.user, "root");
	CHECK_STREQ(got.workdir, "/srv/sshbox");
	CHECK_INT(got.slots, 2);
	CHECK_STREQ(got.claude, "claude");
	CHECK_STREQ(got.state, "active");
	CHECK_STREQ(got.host_key, HOSTKEY);
	CHECK(got.created_at > 1600000000 && got.updated_at == got.created_at);
	sandbox_rec_release(&got);
	CHECK(got.host == NULL);
	CHECK_INT(registry_sandbox_get(kv, "acme", "nope.example", &got, &e), SB_ERR_NOTFOUND);
	CHECK_STREQ(e.msg, "sandbox 'nope.example' is not registered for account 'acme'");

	/* listing: all accounts sorted by account then host, or one account */
	CHECK_INT(registry_sandbox_list(kv, NULL, &list, &n, &e), 0);
	CHECK_INT(n, 3);
	if (n == 3) {
		CHECK_STREQ(list[0].account, "acme");
		CHECK_STREQ(list[0].host, "::1");
		CHECK_INT(list[0].slots, 4);
		CHECK_STREQ(list[1].account, "acme");
		CHECK_STREQ(list[1].host, "box1.example.com");
		CHECK_STREQ(list[2].account, "zeta");
		CHECK_STREQ(list[2].claude, "/usr/local/bin/claude");
		CHECK_STREQ(list[2].state, "disabled");
	}
	sandbox_rec_free_array(list, n);
	CHECK_INT(registry_sandbox_list(kv, "zeta", &list, &n, &e), 0);
	CHECK_INT(n, 1);
	sandbox_rec_free_array(list, n);
	CHECK_INT(registry_sandbox_list(kv, "nobody", &list, &n, &e), 0);
	CHECK_INT(n, 0);
	sandbox_rec_free_array(list, n);

	/* state changes */
	CHECK_INT(registry_version(kv, &v1, &e), 0);
	CHECK_INT(registry_sandbox_set_state(kv, "acme", "box1.example.com", REGISTRY_STATE_DRAINING, &e), 0);
	CHECK_INT(registry_version(kv, &v, &e), 0);
	CHECK_INT(v, v1 + 1);
	CHECK_INT(registry_sandbox_get(kv, "acme", "box1.example.com", &got, &e), 0);
	CHECK_STREQ(got.state, "draining");
	sandbox_rec_release(&got);
	CHECK_INT(registry_sandbox_set_state(kv, "acme", "box1.example.com", "paused", &e), SB_ERR_USAGE);
	CHECK_INT(registry_sandbox_set_state(kv, "acme", "nope.example", REGISTRY_STATE_ACTIVE, &e), SB_ERR_NOTFOUND);
	CHECK_INT(registry_version(kv, &v1, &e), 0);
	CHECK_INT(v1, v);

	/* removal */
	CHECK_INT(registry_sandbox_remove(kv, "zeta", "box1.example.com", &e), 0);
	CHECK_INT(registry_version(kv, &v, &e), 0);
	CHECK_INT(v, v1 + 1);
	CHECK_INT(registry_sandbox_remove(kv, "zeta", "box1.example.com", &e), SB_ERR_NOTFOUND);
	CHECK_STREQ(e.msg, "sandbox 'box1.example.com' is not registered for account 'zeta'");
	CHECK_INT(registry_sandbox_get(kv, "zeta", "box1.example.com", &got, &e), SB_ERR_NOTFOUND);
	{
		char **names = NULL;
		size_t nn = 0;

		/* zeta had no key and no sandbox left: gone from the account set */
		CHECK_INT(registry_account_list(kv, &names, &nn, &e), 0);
		CHECK_INT(nn, 1);
		if (nn == 1)
			CHECK_STREQ(names[0], "acme");
		registry_names_free(names, nn);
	}
	/* and it can be registered again */
	rec = make_rec("zeta", "box1.example.com");
	CHECK_INT(registry_sandbox_add(kv, &rec, &e), 0);
	CHECK_INT(registry_sandbox_remove(kv, "zeta", "box1.example.com", &e), 0);
	kv_free(kv);
}

static void test_registry_hostile(void)
{
	static const struct {
		const char *field, *value, *expect;
	} cases[] = {
		{ "user", "-oProxyCommand=touch /tmp/pwned", "invalid user '-oProxyCommand=touch /tmp/pwned': must not start with '-'" },
		{ "host", "-oProxyCommand=x", "invalid host" },
		{ "host", "other.example", "field 'host' does not match the key" },
		{ "port", "22; rm -rf /", "invalid port" },
		{ "port", "0", "invalid port" },
		{ "workdir", "/srv/../etc", "invalid workdir" },
		{ "workdir", "/srv/x\nProxyCommand x", "invalid workdir" },
		{ "slots", "1000", "invalid slots" },
		{ "claude", "$(id)", "invalid claude" },
		{ "claude", "claude --dangerously", "invalid claude" },
		{ "state", "evil", "invalid state" },
		{ "host_key", "ssh-ed25519 AAAA\nProxyCommand x", "invalid host key" },
		{ "host_key", "ssh-ed25519 AAAA @cert-authority *", "invalid host key" },
		{ "created_at", "yesterday", "field 'created_at' is not a number" },
	};
	struct sb_error e = SB_ERROR_INIT;
	struct kv *kv = open_unix(2000);
	struct sandbox_rec rec = make_rec("evil", "h.example"), got = SANDBOX_REC_INIT, *list = NULL;
	char key[REGISTRY_KEY_MAX], set[REGISTRY_KEY_MAX];
	size_t i, n = 0;

	CHECK(kv != NULL);
	if (!kv)
		return;
	CHECK_INT(registry_sandbox_add(kv, &rec, &e), 0);
	CHECK_INT(registry_key_sandbox(key, sizeof(key), "evil", "h.example", &e), 0);
	CHECK_STREQ(key, "sshbox:{evil:h.example}:sandbox");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kv_value old = KV_VALUE_INIT;

		CHECK_INT(kv_cmd(kv, &old, &e, "HGET", key, cases[i].field, NULL), 0);
		CHECK_INT(kv_cmd(kv, NULL, &e, "HSET", key, cases[i].field, cases[i].value, NULL), 0);
		if (registry_sandbox_get(kv, "evil", "h.example", &got, &e) != SB_ERR_REDIS ||
		    strncmp(e.msg, "Redis record 'sshbox:{evil:h.example}:sandbox': ", 48) != 0 ||
		    !strstr(e.msg, cases[i].expect) || strchr(e.msg, '\n')) {
			unit_failed_checks++;
			printf("#   hostile %s: %s\n", cases[i].field, e.msg);
			sandbox_rec_release(&got);
		}
		CHECK_INT(registry_sandbox_list(kv, "evil", &list, &n, &e), SB_ERR_REDIS);
		if (old.type == KV_STRING)
			CHECK_INT(kv_cmd(kv, NULL, &e, "HSET", key, cases[i].field, old.str, NULL), 0);
		kv_value_release(&old);
	}
	/* a field with a NUL byte */
	{
		const char *argv[] = { "HSET", key, "user", "root\0-oProxyCommand=x" };
		size_t lens[] = { 4, strlen(key), 4, 21 };

		CHECK_INT(kv_cmdv(kv, NULL, &e, 4, argv, lens), 0);
		CHECK_INT(registry_sandbox_get(kv, "evil", "h.example", &got, &e), SB_ERR_REDIS);
		CHECK(strstr(e.msg, "field 'user' is too long or contains a NUL byte") != NULL);
		CHECK_INT(kv_cmd(kv, NULL, &e, "HSET", key, "user", "root", NULL), 0);
	}
	/* a missing field */
	CHECK_INT(kv_cmd(kv, NULL, &e, "HDEL", key, "workdir", NULL), 0);
	CHECK_INT(registry_sandbox_get(kv, "evil", "h.example", &got, &e), SB_ERR_REDIS);
	CHECK(strstr(e.msg, "field 'workdir' is missing") != NULL);
	CHECK_INT(kv_cmd(kv, NULL, &e, "HSET", key, "workdir", "/srv/sshbox", NULL), 0);
	CHECK_INT(registry_sandbox_get(kv, "evil", "h.example", &got, &e), 0);
	sandbox_rec_release(&got);
	/* a hostile member of the account's host set */
	CHECK_INT(registry_key_account_sandboxes(set, sizeof(set), "evil", &e), 0);
	CHECK_INT(kv_cmd(kv, NULL, &e, "SADD", set, "-oProxyCommand=x", NULL), 0);
	CHECK_INT(registry_sandbox_list(kv, "evil", &list, &n, &e), SB_ERR_REDIS);
	CHECK(strstr(e.msg, "must not start with '-'") != NULL);
	CHECK_INT(kv_cmd(kv, NULL, &e, "SREM", set, "-oProxyCommand=x", NULL), 0);
	/* a hostile account name in the account set */
	CHECK_INT(kv_cmd(kv, NULL, &e, "SADD", REGISTRY_KEY_ACCOUNTS, "-x", NULL), 0);
	CHECK_INT(registry_sandbox_list(kv, NULL, &list, &n, &e), SB_ERR_REDIS);
	CHECK(strstr(e.msg, "invalid account '-x'") != NULL);
	CHECK_INT(kv_cmd(kv, NULL, &e, "SREM", REGISTRY_KEY_ACCOUNTS, "-x", NULL), 0);
	CHECK_INT(registry_sandbox_remove(kv, "evil", "h.example", &e), 0);
	kv_free(kv);
}

static void test_registry_accounts(void)
{
	struct sb_error e = SB_ERROR_INIT;
	struct kv *kv = open_unix(2000);
	struct account_rec in = ACCOUNT_REC_INIT, got = ACCOUNT_REC_INIT;
	long long ver = 0, rv0 = 0, rv = 0;
	char **names = NULL, key[REGISTRY_KEY_MAX];
	size_t n = 0;

	CHECK(kv != NULL);
	if (!kv)
		return;
	in.account = (char *)"keyco";
	in.key_token = (char *)"gAAAAABnTOKEN_one-part==";
	in.public_key = (char *)"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl sshbox";
	in.fingerprint = (char *)"SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
	in.key_type = (char *)"ed25519";
	CHECK_INT(registry_account_get(kv, "keyco", &got, &e), SB_ERR_NOTFOUND);
	CHECK_STREQ(e.msg, "no key stored for account 'keyco'");
	CHECK_INT(registry_version(kv, &rv0, &e), 0);
	CHECK_INT(registry_account_put_key(kv, &in, 0, &ver, &e), 0);
	CHECK_INT(ver, 1);
	CHECK_INT(registry_version(kv, &rv, &e), 0);
	CHECK_INT(rv, rv0 + 1);
	/* "key set" twice is refused; "rotate" needs the current version */
	CHECK_INT(registry_account_put_key(kv, &in, 0, &ver, &e), SB_ERR_EXISTS);
	CHECK_STREQ(e.msg, "account 'keyco' already has a key (use key rotate)");
	CHECK_INT(registry_account_put_key(kv, &in, 5, &ver, &e), SB_ERR_EXISTS);
	in.key_token = (char *)"gAAAAABnTOKEN_two";
	CHECK_INT(registry_account_put_key(kv, &in, 1, &ver, &e), 0);
	CHECK_INT(ver, 2);
	CHECK_INT(registry_account_get(kv, "keyco", &got, &e), 0);
	CHECK_STREQ(got.account, "keyco");
	CHECK_STREQ(got.key_token, "gAAAAABnTOKEN_two");
	CHECK_STREQ(got.public_key, in.public_key);
	CHECK_STREQ(got.fingerprint, in.fingerprint);
	CHECK_STREQ(got.key_type, "ed25519");
	CHECK_INT(got.key_version, 2);
	CHECK(got.created_at > 1600000000 && got.updated_at >= got.created_at);
	account_rec_release(&got);
	/* re-encryption keeps the version */
	CHECK_INT(registry_account_set_token(kv, "keyco", 2, "gAAAAABnTOKEN_three", &e), 0);
	CHECK_INT(registry_account_set_token(kv, "keyco", 1, "gAAAAABnTOKEN_four", &e), SB_ERR_EXISTS);
	CHECK_INT(registry_account_set_token(kv, "nokey", 1, "gAAAAABnTOKEN_four", &e), SB_ERR_NOTFOUND);
	CHECK_INT(registry_account_get(kv, "keyco", &got, &e), 0);
	CHECK_STREQ(got.key_token, "gAAAAABnTOKEN_three");
	CHECK_INT(got.key_version, 2);
	account_rec_release(&got);
	/* bad input, and the token never appears in a message */
	in.key_token = (char *)"secret token with spaces";
	CHECK_INT(registry_account_put_key(kv, &in, -1, &ver, &e), SB_ERR_USAGE);
	CHECK(strstr(e.msg, "secret") == NULL);
	in.key_token = (char *)"gAAAAABnTOKEN_two";
	in.public_key = (char *)"ssh-ed25519 AAAA\nx";
	CHECK_INT(registry_account_put_key(kv, &in, -1, &ver, &e), SB_ERR_USAGE);
	/* hostile content read back */
	CHECK_INT(registry_key_account(key, sizeof(key), "keyco", &e), 0);
	CHECK_INT(kv_cmd(kv, NULL, &e, "HSET", key, "public_key", "ssh-ed25519 AAAA\nProxyCommand x", NULL), 0);
	CHECK_INT(registry_account_get(kv, "keyco", &got, &e), SB_ERR_REDIS);
	CHECK(strstr(e.msg, "invalid public key") != NULL);
	CHECK_INT(kv_cmd(kv, NULL, &e, "HSET", key, "public_key", "ssh-ed25519 AAAA", "key_token", "a b", NULL), 0);
	CHECK_INT(registry_account_get(kv, "keyco", &got, &e), SB_ERR_REDIS);
	CHECK(strstr(e.msg, "invalid key token") != NULL);
	CHECK(strstr(e.msg, "a b") == NULL);
	CHECK_INT(registry_account_list(kv, &names, &n, &e), 0);
	CHECK(n >= 1);
	registry_names_free(names, n);
	kv_free(kv);
}

int main(void)
{
	parent_pid = getpid();
	signal(SIGPIPE, SIG_IGN);
	if (access(REDIS_SERVER, X_OK) != 0) {
		printf("not ok - redis_start: %s not found (apt-get install redis-server)\n", REDIS_SERVER);
		return 1;
	}
	atexit(redis_stop);
	if (redis_start() != 0) {
		printf("not ok - redis_start\n");
		return 1;
	}
	RUN(test_kv_unix);
	RUN(test_kv_refused);
	RUN(test_kv_url_errors);
	RUN(test_kv_auth_select);
	RUN(test_kv_reconnect);
	RUN(test_kv_timeout);
	RUN(test_kv_noscript);
	RUN(test_kv_values);
	RUN(test_kv_pipeline);
	RUN(test_lock_acquire);
	RUN(test_lock_renew);
	RUN(test_lock_unlock);
	RUN(test_lock_holders);
	RUN(test_lock_fence_reseed);
	RUN(test_lock_lua_16_digits);
	RUN(test_lock_concurrency);
	RUN(test_lock_throughput);
	RUN(test_registry_sandboxes);
	RUN(test_registry_hostile);
	RUN(test_registry_accounts);
	if (unit_failed_tests)
		dump_redis_log();
	redis_stop();
	return unit_done();
}
