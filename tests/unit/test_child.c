/* Unit tests for child.c: the one fork/exec API.  Real processes: output
 * capture, stdin, exit codes and signals, deadlines that kill (the whole
 * group with new_session), synchronous exec errors, bounded output without
 * deadlock, no fd leaks in either direction, a minimal environment. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "child.h"
#include "clock.h"
#include "err.h"
#include "unit.h"

static const struct child_run_opts opts_default = { NULL, NULL, 0, 0, 10000 };

static int run(const char *const *argv, const struct child_run_opts *o, const char *in, size_t inlen,
	       struct buf *out, struct buf *err, int *rc, struct sb_error *e)
{
	if (out)
		buf_reset(out);
	if (err)
		buf_reset(err);
	return child_run(argv, o ? o : &opts_default, in, inlen, out, err, rc, e);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;   /* the DIR's own fd */
}

static int pid_gone(pid_t pid)
{
	char path[64], st[512];
	FILE *f;
	char *rp;
	int gone = 0;

	if (kill(pid, 0) != 0 && errno == ESRCH)
		return 1;
	/* an unreaped zombie (no init reaping in a container) is gone too */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 1;
	if (fgets(st, sizeof(st), f) && (rp = strrchr(st, ')')) != NULL && rp[1] == ' ' && rp[2] == 'Z')
		gone = 1;
	fclose(f);
	return gone;
}

static int wait_gone(pid_t pid, int64_t ms)
{
	int64_t deadline = clock_deadline_in(ms);

	while (!pid_gone(pid)) {
		if (clock_expired(deadline))
			return 0;
		clock_sleep_ms(10);
	}
	return 1;
}

/* ------------------------------------------------------------------ */

static void test_capture(void)
{
	const char *argv[] = { "/bin/sh", "-c", "printf 'out\\nput'; printf 'err' >&2; printf more", NULL };
	struct buf out = BUF_INIT, err = BUF_INIT;
	struct sb_error e = SB_ERROR_INIT;
	int rc = -1;

	CHECK_INT(run(argv, NULL, NULL, 0, &out, &err, &rc, &e), 0);
	CHECK_INT(rc, 0);
	CHECK_STREQ(buf_cstr(&out), "out\nputmore");
	CHECK_STREQ(buf_cstr(&err), "err");
	/* either may be NULL: discarded */
	CHECK_INT(run(argv, NULL, NULL, 0, NULL, &err, &rc, &e), 0);
	CHECK_STREQ(buf_cstr(&err), "err");
	CHECK_INT(run(argv, NULL, NULL, 0, &out, NULL, &rc, &e), 0);
	CHECK_STREQ(buf_cstr(&out), "out\nputmore");
	CHECK_INT(run(argv, NULL, NULL, 0, NULL, NULL, &rc, &e), 0);
	CHECK_INT(rc, 0);
	buf_release(&out);
	buf_release(&err);
}

static void test_stdin(void)
{
	const char *cat[] = { "/bin/cat", NULL };
	static const char bin[] = "hello\0world\n\xff\x01";
	struct buf out = BUF_INIT;
	struct sb_error e = SB_ERROR_INIT;
	char *big;
	size_t i, n = 3 * 1024 * 1024 + 17;
	int rc = -1;

	CHECK_INT(run(cat, NULL, bin, sizeof(bin) - 1, &out, NULL, &rc, &e), 0);
	CHECK_INT(rc, 0);
	CHECK_INT(out.len, sizeof(bin) - 1);
	CHECK(out.len == sizeof(bin) - 1 && memcmp(out.data, bin, out.len) == 0);

	/* non-NULL input of length 0: EOF at once */
	CHECK_INT(run(cat, NULL, "", 0, &out, NULL, &rc, &e), 0);
	CHECK_INT(rc, 0);
	CHECK_INT(out.len, 0);
	/* NULL input: /dev/null */
	CHECK_INT(run(cat, NULL, NULL, 0, &out, NULL, &rc, &e), 0);
	CHECK_INT(out.len, 0);

	/* more than a pipe holds, both ways at once: no deadlock */
	big = malloc(n);
	if (!big)
		return;
	for (i = 0; i < n; i++)
		big[i] = (char)(i * 7 + i / 4096);
	CHECK_INT(run(cat, NULL, big, n, &out, NULL, &rc, &e), 0);
	CHECK_INT(rc, 0);
	CHECK_INT(out.len, n);
	CHECK(out.len == n && memcmp(out.data, big, n) == 0);

	/* a child that never reads its stdin: no SIGPIPE death, no hang */
	{
		const char *t[] = { "/bin/true", NULL };
		CHECK_INT(run(t, NULL, big, n, &out, NULL, &rc, &e), 0);
		CHECK_INT(rc, 0);
	}
	free(big);
	buf_release(&out);
}

static void test_exit_codes(void)
{
	static const struct { const char *script; int code; } cases[] = {
		{ "exit 0", 0 }, { "exit 1", 1 }, { "exit 3", 3 }, { "exit 255", 255 },
		{ "kill -KILL $$", 128 + SIGKILL }, { "kill -TERM $$", 128 + SIGTERM },
		{ "kill -INT $$", 128 + SIGINT }, { "kill -SEGV $$", 128 + SIGSEGV },
		{ "kill -PIPE $$", 128 + SIGPIPE }, { "kill -HUP $$", 128 + SIGHUP },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *argv[] = { "/bin/sh", "-c", cases[i].script, NULL };
		struct sb_error e = SB_ERROR_INIT;
		struct child_run_opts o = opts_default;
		int rc = -1, r;

		o.no_core = 1;
		r = run(argv, &o, NULL, 0, NULL, NULL, &rc, &e);
		if (r != 0 || rc != cases[i].code) {
			unit_failed_checks++;
			printf("#   '%s': r=%d rc=%d, expected %d\n", cases[i].script, r, rc, cases[i].code);
		}
	}
}

/* SIG_IGN and blocked signals survive exec; the child must get defaults. */
static void test_signals_reset(void)
{
	const char *argv[] = { "/bin/sh", "-c", "kill -TERM $$; exit 0", NULL };
	const char *status[] = { "/bin/grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status", NULL };
	struct buf out = BUF_INIT;
	struct sb_error e = SB_ERROR_INIT;
	struct sigaction ign, old_term, old_int;
	sigset_t block, old_mask;
	int rc = -1;

	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigaction(SIGTERM, &ign, &old_term);
	sigaction(SIGINT, &ign, &old_int);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGCHLD);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, &old_mask);

	CHECK_INT(run(argv, NULL, NULL, 0, NULL, NULL, &rc, &e), 0);
	CHECK_INT(rc, 128 + SIGTERM);
	CHECK_INT(run(status, NULL, NULL, 0, &out, NULL, &rc, &e), 0);
	CHECK_STREQ(buf_cstr(&out), "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");

	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGINT, &old_int, NULL);
	buf_release(&out);
}

static void test_timeout_kills(void)
{
	const char *argv[] = { "/bin/sleep", "30", NULL };
	struct child_run_opts o = opts_default;
	struct buf out = BUF_INIT;
	struct sb_error e = SB_ERROR_INIT;
	int64_t t0 = clock_now_ms(), dt;
	int rc = -1, r;

	o.timeout_ms = 300;
	r = run(argv, &o, NULL, 0, &out, NULL, &rc, &e);
	dt = clock_now_ms() - t0;
	CHECK_INT(r, SB_ERR_TIMEOUT);
	CHECK_INT(e.code, SB_ERR_TIMEOUT);
	CHECK(strstr(e.msg, "/bin/sleep") != NULL);
	CHECK_INT(rc, 128 + SIGTERM);
	CHECK(dt >= 280 && dt < 2000);
	if (dt >= 2000)
		printf("#   took %lld ms\n", (long long)dt);

	/* TERM ignored: KILL after the grace */
	{
		const char *stubborn[] = { "/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.05; done", NULL };
		o.new_session = 1;
		t0 = clock_now_ms();
		r = run(stubborn, &o, NULL, 0, &out, NULL, &rc, &e);
		dt = clock_now_ms() - t0;
		CHECK_INT(r, SB_ERR_TIMEOUT);
		CHECK_INT(rc, 128 + SIGKILL);
		CHECK(dt < 3000);
		if (dt >= 3000)
			printf("#   stubborn took %lld ms\n", (long long)dt);
	}
	/* a timeout of 0: stopped at once, still reaped */
	o.timeout_ms = 0;
	o.new_session = 0;
	r = run(argv, &o, NULL, 0, NULL, NULL, &rc, &e);
	CHECK_INT(r, SB_ERR_TIMEOUT);
	CHECK(rc == 128 + SIGTERM || rc == 128 + SIGKILL);
	buf_release(&out);
}

/* new_session: the whole group goes on timeout, grandchildren included. */
static void test_timeout_kills_group(void)
{
	const char *argv[] = { "/bin/sh", "-c", "sleep 30 & echo $!; sleep 31 & echo $!; wait", NULL };
	struct child_run_opts o = opts_default;
	struct buf out = BUF_INIT;
	struct sb_error e = SB_ERROR_INIT;
	int64_t t0 = clock_now_ms(), dt;
	int rc = -1, r;
	long g1 = 0, g2 = 0;

	o.timeout_ms = 400;
	o.new_session = 1;
	r = run(argv, &o, NULL, 0, &out, NULL, &rc, &e);
	dt = clock_now_ms() - t0;
	CHECK_INT(r, SB_ERR_TIMEOUT);
	CHECK(dt < 3000);
	CHECK_INT(sscanf(buf_cstr(&out), "%ld %ld", &g1, &g2), 2);
	CHECK(g1 > 0 && wait_gone((pid_t)g1, 2000));
	CHECK(g2 > 0 && wait_gone((pid_t)g2, 2000));
	if (g1 > 0 && !pid_gone((pid_t)g1))
		kill((pid_t)g1, SIGKILL);
	if (g2 > 0 && !pid_gone((pid_t)g2))
		kill((pid_t)g2, SIGKILL);
	buf_release(&out);
}

/* "Everything happens under timeout_ms": a grandchild that keeps the
 * output pipe open must not keep child_run past its deadline (here the
 * child itself is killed on time, but its background job lives on). */
static void test_timeout_bounded_with_lingering_grandchild(void)
{
	const char *argv[] = { "/bin/sh", "-c", "sleep 5 & echo $!; exec sleep 30", NULL };
	struct child_run_opts o = opts_default;
	struct buf out = BUF_INIT;
	struct sb_error e = SB_ERROR_INIT;
	int64_t t0 = clock_now_ms(), dt;
	int rc = -1, r;
	long g = 0;

	o.timeout_ms = 300;
	r = run(argv, &o, NULL, 0, &out, NULL, &rc, &e);
	dt = clock_now_ms() - t0;
	CHECK_INT(r, SB_ERR_TIMEOUT);
	if (dt > 2500) {
		unit_failed_checks++;
		printf("#   child_run with timeout_ms 300 returned after %lld ms (a grandchild held stdout)\n",
		       (long long)dt);
	}
	if (sscanf(buf_cstr(&out), "%ld", &g) == 1 && g > 0 && !pid_gone((pid_t)g))
		kill((pid_t)g, SIGKILL);
	buf_release(&out);
}

/* The same with new_session, when the group leader exits by itself and
 * leaves a member of its group holding stdout. */
static void test_timeout_bounded_leader_gone(void)
{
	const char *argv[] = { "/bin/sh", "-c", "sleep 5 & echo $!", NULL };
	struct child_run_opts o = opts_default;
	struct buf out = BUF_INIT;
	struct sb_error e = SB_ERROR_INIT;
	int64_t t0 = clock_now_ms(), dt;
	int rc = -1;
	long g = 0;

	o.timeout_ms = 300;
	o.new_session = 1;
	(void)run(argv, &o, NULL, 0, &out, NULL, &rc, &e);
	dt = clock_now_ms() - t0;
	if (dt > 2500) {
		unit_failed_checks++;
		printf("#   child_run with timeout_ms 300 returned after %lld ms (the group outlived its leader)\n",
		       (long long)dt);
	}
	if (sscanf(buf_cstr(&out), "%ld", &g) == 1 && g > 0) {
		if (!wait_gone((pid_t)g, 500)) {
			unit_failed_checks++;
			printf("#   the leader's group member %ld survived the deadline\n", g);
			kill((pid_t)g, SIGKILL);
		}
	}
	buf_release(&out);
}

static void test_child_wait(void)
{
	const char *argv[] = { "/bin/sh", "-c", "trap '' TERM; sleep 0.05 & while :; do sleep 0.05; done", NULL };
	struct child c = CHILD_INIT;
	struct sb_error e = SB_ERROR_INIT;
	int64_t t0;
	int r;

	c.argv = argv;
	c.new_session = 1;
	CHECK_INT(child_start(&c, &e), 0);
	CHECK(c.pid > 0);
	CHECK_INT(c.in_fd, -1);
	CHECK_INT(c.out_fd, -1);
	CHECK_INT(child_poll(&c), 0);
	CHECK_INT(child_exit_code(&c), -1);
	t0 = clock_now_ms();
	r = child_wait(&c, clock_deadline_in(200), 300);
	CHECK_INT(r, SB_ERR_TIMEOUT);
	CHECK(clock_now_ms() - t0 < 2000);
	CHECK_INT(c.reaped, 1);
	CHECK_INT(child_exit_code(&c), 128 + SIGKILL);
	CHECK_INT(child_poll(&c), 1);
	child_signal(&c, SIGKILL);   /* harmless after reaping */

	/* exits before the deadline: 0 */
	{
		const char *t[] = { "/bin/sh", "-c", "exit 7", NULL };
		struct child d = CHILD_INIT;
		d.argv = t;
		CHECK_INT(child_start(&d, &e), 0);
		CHECK_INT(child_wait(&d, clock_deadline_in(5000), 100), 0);
		CHECK_INT(child_exit_code(&d), 7);
	}
}

static void test_pipes_with_child_start(void)
{
	const char *argv[] = { "/bin/sh", "-c", "read x; echo \"got $x\"; echo e >&2", NULL };
	struct child c = CHILD_INIT;
	struct sb_error e = SB_ERROR_INIT;
	char b[64];
	ssize_t n;

	c.argv = argv;
	c.in = CHILD_PIPE;
	c.out = CHILD_PIPE;
	c.err = CHILD_PIPE;
	CHECK_INT(child_start(&c, &e), 0);
	CHECK(c.in_fd >= 0 && c.out_fd >= 0 && c.err_fd >= 0);
	CHECK(fcntl(c.in_fd, F_GETFD) & FD_CLOEXEC);
	CHECK(fcntl(c.out_fd, F_GETFD) & FD_CLOEXEC);
	CHECK(write(c.in_fd, "abc\n", 4) == 4);
	n = read(c.out_fd, b, sizeof(b) - 1);
	CHECK(n == 8);
	if (n > 0) {
		b[n] = '\0';
		CHECK_STREQ(b, "got abc\n");
	}
	n = read(c.err_fd, b, sizeof(b) - 1);
	CHECK(n == 2);
	CHECK_INT(child_wait(&c, clock_deadline_in(5000), 100), 0);
	CHECK_INT(child_exit_code(&c), 0);
	child_close_fds(&c);
	CHECK(c.in_fd == -1 && c.out_fd == -1 && c.err_fd == -1);
	child_close_fds(&c);   /* twice is fine */
}

static void test_exec_failure(void)
{
	char noexec[] = "/tmp/sshbox-child-noexec-XXXXXX";
	const char *paths[] = { "/nonexistent/sshbox-prog", noexec, "/tmp" };
	static const int errs[] = { ENOENT, EACCES, EACCES };
	size_t i;
	int fd = mkstemp(noexec);   /* mode 0600: not executable */

	if (fd >= 0)
		close(fd);
	for (i = 0; i < 3; i++) {
		const char *argv[] = { paths[i], NULL };
		struct child c = CHILD_INIT;
		struct sb_error e = SB_ERROR_INIT;
		int64_t t0 = clock_now_ms();
		int r, st;

		if (i == 1 && fd < 0)
			continue;
		c.argv = argv;
		c.out = CHILD_PIPE;
		r = child_start(&c, &e);
		CHECK_INT(r, SB_ERR_IO);
		CHECK_INT(e.code, SB_ERR_IO);
		CHECK(strstr(e.msg, strerror(errs[i])) != NULL);
		CHECK(strstr(e.msg, paths[i]) != NULL);
		CHECK(c.pid == -1 && c.out_fd == -1);
		CHECK(clock_now_ms() - t0 < 1000);
		/* the failed child was reaped: no zombie left */
		CHECK(waitpid(-1, &st, WNOHANG) == -1 && errno == ECHILD);
		if (!strstr(e.msg, strerror(errs[i])))
			printf("#   %s: \"%s\"\n", paths[i], e.msg);
	}
	if (fd >= 0)
		unlink(noexec);
	/* through child_run too */
	{
		const char *argv[] = { "/nonexistent/sshbox-prog", "x", NULL };
		struct buf out = BUF_INIT;
		struct sb_error e = SB_ERROR_INIT;
		int rc = 12345;
		CHECK_INT(run(argv, NULL, "in", 2, &out, NULL, &rc, &e), SB_ERR_IO);
		CHECK(strstr(e.msg, "No such file or directory") != NULL);
		buf_release(&out);
	}
	/* a cwd that does not exist: also synchronous */
	{
		const char *argv[] = { "/bin/true", NULL };
		struct child_run_opts o = opts_default;
		struct sb_error e = SB_ERROR_INIT;
		int rc = -1;
		o.cwd = "/nonexistent/dir";
		CHECK_INT(run(argv, &o, NULL, 0, NULL, NULL, &rc, &e), SB_ERR_IO);
		CHECK(strstr(e.msg, strerror(ENOENT)) != NULL);
	}
}

static void test_relative_refused(void)
{
	static const char *const names[] = { "sh", "./sh", "bin/sh", "", "../bin/sh" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *argv[] = { names[i], "-c", "exit 0", NULL };
		struct sb_error e = SB_ERROR_INIT;
		int rc = -1, st;
		int r = run(argv, NULL, NULL, 0, NULL, NULL, &rc, &e);
		if (r == 0 || e.msg[0] == '\0') {
			unit_failed_checks++;
			printf("#   argv[0] \"%s\" was run: r=%d rc=%d\n", names[i], r, rc);
		}
		CHECK(waitpid(-1, &st, WNOHANG) == -1 && errno == ECHILD);   /* nothing forked */
	}
	{
		const char *argv[] = { NULL };
		struct sb_error e = SB_ERROR_INIT;
		int rc = -1;
		CHECK(run(argv, NULL, NULL, 0, NULL, NULL, &rc, &e) != 0);
	}
	{
		struct child c = CHILD_INIT;
		struct sb_error e = SB_ERROR_INIT;
		CHECK(child_start(&c, &e) != 0);   /* argv NULL */
	}
}

static void test_output_bounded(void)
{
	const char *argv[] = { "/bin/sh", "-c",
			       "head -c 10485760 /dev/zero; head -c 10485760 /dev/zero >&2; echo done >&2", NULL };
	struct buf out, err;
	struct sb_error e = SB_ERROR_INIT;
	int64_t t0 = clock_now_ms();
	int rc = -1, r;

	buf_init(&out, 1024);
	buf_init(&err, 1024);
	r = run(argv, NULL, NULL, 0, &out, &err, &rc, &e);
	CHECK_INT(r, 0);
	CHECK_INT(rc, 0);
	CHECK_INT(out.len, 1024);
	CHECK_INT(err.len, 1024);
	CHECK(out.len == 1024 && out.data[0] == 0 && out.data[1023] == 0 && out.data[1024] == 0);
	CHECK(clock_now_ms() - t0 < 8000);
	buf_release(&out);
	buf_release(&err);

	/* with stdin given as well, and the output bound of 1 byte */
	{
		const char *cat[] = { "/bin/cat", NULL };
		size_t n = 2 * 1024 * 1024;
		char *in = calloc(1, n);
		if (!in)
			return;
		memset(in, 'x', n);
		buf_init(&out, 1);
		CHECK_INT(run(cat, NULL, in, n, &out, NULL, &rc, &e), 0);
		CHECK_INT(rc, 0);
		CHECK_INT(out.len, 1);
		CHECK_STREQ(buf_cstr(&out), "x");
		buf_release(&out);
		free(in);
	}
}

static void test_no_fd_leaks(void)
{
	int before, after, i, leak_fd, rc = -1;
	struct buf out = BUF_INIT;
	struct sb_error e = SB_ERROR_INIT;

	before = count_fds();
	for (i = 0; i < 5; i++) {
		const char *ok[] = { "/bin/sh", "-c", "cat; echo x >&2", NULL };
		const char *bad[] = { "/nonexistent/x", NULL };
		const char *rel[] = { "sh", NULL };
		const char *slow[] = { "/bin/sleep", "5", NULL };
		struct child_run_opts o = opts_default;
		struct child c = CHILD_INIT;

		run(ok, NULL, "abc", 3, &out, &out, &rc, &e);
		run(ok, NULL, NULL, 0, NULL, NULL, &rc, &e);
		run(bad, NULL, "abc", 3, &out, &out, &rc, &e);
		run(rel, NULL, "abc", 3, &out, &out, &rc, &e);
		o.timeout_ms = 50;
		run(slow, &o, "abc", 3, &out, &out, &rc, &e);
		c.argv = bad;
		c.in = c.out = c.err = CHILD_PIPE;
		sb_best_effort(child_start(&c, &e));   /* a bad argv: only the fds left open count */
		c = (struct child)CHILD_INIT;
		c.argv = ok;
		c.in = c.out = c.err = CHILD_PIPE;
		if (child_start(&c, &e) == 0) {
			child_close_fds(&c);
			sb_best_effort(child_wait(&c, clock_deadline_in(5000), 100));   /* reaped either way */
		}
	}
	after = count_fds();
	CHECK_INT(after, before);

	/* and nothing of ours reaches the child, CLOEXEC or not */
	leak_fd = open("/dev/null", O_RDONLY);   /* deliberately without O_CLOEXEC */
	CHECK(leak_fd >= 3);
	{
		const char *ls[] = { "/bin/ls", "/proc/self/fd", NULL };
		/* no pipeline: the shell's own pipe to it would race into the list */
		const char *sh[] = { "/bin/sh", "-c", "ls /proc/$$/fd", NULL };
		int p[2];
		CHECK_INT(pipe(p), 0);   /* also without CLOEXEC */
		CHECK_INT(run(sh, NULL, "in", 2, &out, NULL, &rc, &e), 0);
		CHECK_STREQ(buf_cstr(&out), "0\n1\n2\n");
		CHECK_INT(run(sh, NULL, NULL, 0, &out, NULL, &rc, &e), 0);
		CHECK_STREQ(buf_cstr(&out), "0\n1\n2\n");
		/* ls itself: 0 1 2 and the directory it reads */
		CHECK_INT(run(ls, NULL, NULL, 0, &out, NULL, &rc, &e), 0);
		CHECK_STREQ(buf_cstr(&out), "0\n1\n2\n3\n");
		close(p[0]);
		close(p[1]);
	}
	close(leak_fd);
	buf_release(&out);
}

static void test_env(void)
{
	const char *argv[] = { "/usr/bin/env", NULL };
	struct buf out = BUF_INIT;
	struct sb_error e = SB_ERROR_INIT;
	int rc = -1;

	setenv("SSHBOX_TEST_SECRET", "s3cret", 1);
	setenv("LD_PRELOAD", "", 1);
	CHECK_INT(run(argv, NULL, NULL, 0, &out, NULL, &rc, &e), 0);
	CHECK_INT(rc, 0);
	/* exactly PATH and LANG */
	{
		const char *p = buf_cstr(&out);
		int n = 0, path = 0, lang = 0;
		while (*p) {
			size_t l = strcspn(p, "\n");
			n++;
			if (strncmp(p, "PATH=", 5) == 0)
				path++;
			else if (strncmp(p, "LANG=", 5) == 0)
				lang++;
			else
				printf("#   unexpected: %.*s\n", (int)l, p);
			p += l + (p[l] ? 1 : 0);
		}
		CHECK_INT(n, 2);
		CHECK_INT(path, 1);
		CHECK_INT(lang, 1);
	}
	CHECK(strstr(buf_cstr(&out), "s3cret") == NULL);
	CHECK(strstr(buf_cstr(&out), "PATH=/usr/local/bin:/usr/bin:/bin\n") != NULL);

	/* an explicit environment is used as given */
	{
		const char *env[] = { "A=1", "B=two words", NULL };
		struct child_run_opts o = opts_default;
		o.env = env;
		CHECK_INT(run(argv, &o, NULL, 0, &out, NULL, &rc, &e), 0);
		CHECK_STREQ(buf_cstr(&out), "A=1\nB=two words\n");
	}
	{
		const char *env[] = { NULL };
		struct child_run_opts o = opts_default;
		o.env = env;
		CHECK_INT(run(argv, &o, NULL, 0, &out, NULL, &rc, &e), 0);
		CHECK_STREQ(buf_cstr(&out), "");
	}
	unsetenv("SSHBOX_TEST_SECRET");
	unsetenv("LD_PRELOAD");
	buf_release(&out);
}

static void test_options(void)
{
	struct buf out = BUF_INIT;
	struct sb_error e = SB_ERROR_INIT;
	int rc = -1;

	{
		const char *argv[] = { "/bin/pwd", NULL };
		struct child_run_opts o = opts_default;
		o.cwd = "/tmp";
		CHECK_INT(run(argv, &o, NULL, 0, &out, NULL, &rc, &e), 0);
		CHECK_STREQ(buf_cstr(&out), "/tmp\n");
	}
	{
		const char *argv[] = { "/bin/sh", "-c", "ulimit -c", NULL };
		struct child_run_opts o = opts_default;
		o.no_core = 1;
		CHECK_INT(run(argv, &o, NULL, 0, &out, NULL, &rc, &e), 0);
		CHECK_STREQ(buf_cstr(&out), "0\n");
	}
	/* new_session: pid == sid == pgid; without it, ours */
	{
		const char *argv[] = { "/bin/cat", "/proc/self/stat", NULL };
		struct child_run_opts o = opts_default;
		int pid = 0, pgrp = 0, sid = 0;
		char *rp;
		o.new_session = 1;
		CHECK_INT(run(argv, &o, NULL, 0, &out, NULL, &rc, &e), 0);
		rp = strrchr(buf_cstr(&out), ')');
		CHECK(rp && sscanf(buf_cstr(&out), "%d", &pid) == 1 && sscanf(rp + 2, "%*c %*d %d %d", &pgrp, &sid) == 2);
		CHECK(pid > 0 && pgrp == pid && sid == pid);
		o.new_session = 0;
		CHECK_INT(run(argv, &o, NULL, 0, &out, NULL, &rc, &e), 0);
		rp = strrchr(buf_cstr(&out), ')');
		CHECK(rp && sscanf(rp + 2, "%*c %*d %d %d", &pgrp, &sid) == 2);
		CHECK_INT(pgrp, getpgrp());
		CHECK_INT(sid, getsid(0));
	}
	buf_release(&out);
}

/* A parent started with stdin/stdout/stderr closed (a daemon, a careless
 * supervisor): pipe2() then hands out fds 0..2, and child.h promises the
 * child still gets the right ends on 0..2. */
static void stdio_closed_case(int in, int out, int err, const char *what)
{
	int rep[2];
	pid_t pid;
	char res[256] = { 0 };
	ssize_t n;
	int st;

	if (pipe2(rep, O_CLOEXEC) != 0)
		return;
	/* keep the report pipe out of the low fds */
	if (rep[1] < 10) {
		int hi = fcntl(rep[1], F_DUPFD_CLOEXEC, 10);
		close(rep[1]);
		rep[1] = hi;
	}
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		const char *argv[] = { "/bin/sh", "-c", "read x; echo \"o$x\"; echo \"e$x\" >&2", NULL };
		struct child c = CHILD_INIT;
		struct sb_error e = SB_ERROR_INIT;
		char ob[64] = "", eb[64] = "", line[256];
		ssize_t k;
		int len;

		close(rep[0]);
		close(0);
		close(1);
		close(2);
		c.argv = argv;
		c.in = in;
		c.out = out;
		c.err = err;
		if (child_start(&c, &e) != 0) {
			len = snprintf(line, sizeof(line), "start failed: %s", e.msg);
			(void)!write(rep[1], line, (size_t)len);
			_exit(0);
		}
		if (c.in_fd >= 0) {
			(void)!write(c.in_fd, "X\n", 2);
			close(c.in_fd);
			c.in_fd = -1;
		}
		if (c.out_fd >= 0 && (k = read(c.out_fd, ob, sizeof(ob) - 1)) > 0)
			ob[k] = '\0';
		if (c.err_fd >= 0 && (k = read(c.err_fd, eb, sizeof(eb) - 1)) > 0)
			eb[k] = '\0';
		sb_best_effort(child_wait(&c, clock_deadline_in(5000), 100));   /* reaped either way */
		len = snprintf(line, sizeof(line), "out=[%s] err=[%s]", ob, eb);
		(void)!write(rep[1], line, (size_t)len);
		_exit(0);
	}
	close(rep[1]);
	n = read(rep[0], res, sizeof(res) - 1);
	close(rep[0]);
	waitpid(pid, &st, 0);
	if (n < 0)
		n = 0;
	res[n] = '\0';
	{
		char want[128];
		snprintf(want, sizeof(want), "out=[%s] err=[%s]", out == CHILD_PIPE ? (in == CHILD_PIPE ? "oX\n" : "o\n") : "",
			 err == CHILD_PIPE ? (in == CHILD_PIPE ? "eX\n" : "e\n") : "");
		if (strcmp(res, want) != 0) {
			char *q;
			for (q = res; *q; q++)
				if (*q == '\n')
					*q = '|';
			for (q = want; *q; q++)
				if (*q == '\n')
					*q = '|';
			unit_failed_checks++;
			printf("#   parent stdio closed, %s: got %s, expected %s\n", what, res, want);
		}
	}
}

static void test_parent_stdio_closed(void)
{
	stdio_closed_case(CHILD_PIPE, CHILD_PIPE, CHILD_PIPE, "in/out/err piped");
	stdio_closed_case(CHILD_NULL, CHILD_PIPE, CHILD_PIPE, "out/err piped");
	stdio_closed_case(CHILD_PIPE, CHILD_PIPE, CHILD_NULL, "in/out piped");
	stdio_closed_case(CHILD_NULL, CHILD_NULL, CHILD_PIPE, "err piped only");
	stdio_closed_case(CHILD_NULL, CHILD_PIPE, CHILD_NULL, "out piped only");
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);   /* as sshbox's main() does */
	RUN(test_capture);
	RUN(test_stdin);
	RUN(test_exit_codes);
	RUN(test_signals_reset);
	RUN(test_timeout_kills);
	RUN(test_timeout_kills_group);
	RUN(test_timeout_bounded_with_lingering_grandchild);
	RUN(test_timeout_bounded_leader_gone);
	RUN(test_child_wait);
	RUN(test_pipes_with_child_start);
	RUN(test_exec_failure);
	RUN(test_relative_refused);
	RUN(test_output_bounded);
	RUN(test_no_fd_leaks);
	RUN(test_env);
	RUN(test_options);
	RUN(test_parent_stdio_closed);
	return unit_done();
}
