/* Unit tests for remote.c, run against a real local /bin/bash:
 * remote_quote round-trips any bytes through the shell, remote_script and
 * remote_put_blob frame byte-exactly, the bootstrap reads exactly the
 * script, and the whole job script (markers, job dirs, secrets in the
 * environment and on Claude's stdin, EOF / cancel / heartbeat / timeout
 * stopping the job) works locally with a stub `claude`. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "child.h"
#include "clock.h"
#include "err.h"
#include "remote.h"
#include "unit.h"

static char tmp[] = "/tmp/sshbox-remote-XXXXXX";

static const char *const test_env[] = {
	"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/",
	/* inherited Claude Code variables must not reach the CLI */
	"CLAUDECODE=1", "CLAUDE_CODE_ENTRYPOINT=parent", NULL
};

static int write_file(const char *path, const char *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	int ok;

	if (fd < 0)
		return -1;
	ok = write(fd, data, len) == (ssize_t)len;
	return (close(fd) == 0 && ok) ? 0 : -1;
}

/* Whole file into b (reset first); -1 when missing. */
static int read_file(const char *path, struct buf *b)
{
	char tmpb[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	buf_reset(b);
	if (fd < 0)
		return -1;
	while ((n = read(fd, tmpb, sizeof(tmpb))) > 0)
		buf_add(b, tmpb, (size_t)n);
	close(fd);
	return 0;
}

static int exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* -1 when missing */
static long long file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static void pathf(char *out, size_t n, const char *rest)
{
	snprintf(out, n, "%s/%s", tmp, rest);
}

/* ---- remote_quote ------------------------------------------------------ */

static void check_quote_roundtrip(const char *s, int line)
{
	struct buf cmd = BUF_INIT, out = BUF_INIT, err = BUF_INIT;
	struct child_run_opts o = { test_env, NULL, 1, 0, 10000 };
	struct sb_error e = SB_ERROR_INIT;
	const char *argv[] = { "/bin/bash", "-c", NULL, NULL };
	int rc = -1, r;

	CHECK_INT(buf_puts(&cmd, "printf %s "), 0);
	CHECK_INT(remote_quote(&cmd, s), 0);
	argv[2] = buf_cstr(&cmd);
	r = child_run(argv, &o, NULL, 0, &out, &err, &rc, &e);
	if (r != 0 || rc != 0 || out.len != strlen(s) || memcmp(buf_cstr(&out), s, out.len) != 0) {
		unit_failed_checks++;
		printf("#   %s: line %d: quoted %s -> r=%d rc=%d out=[%s] err=[%s]\n", unit_current, line,
		       buf_cstr(&cmd), r, rc, buf_cstr(&out), buf_cstr(&err));
	}
	buf_release(&cmd);
	buf_release(&out);
	buf_release(&err);
}
#define ROUNDTRIP(s) check_quote_roundtrip((s), __LINE__)

static void test_quote_roundtrip(void)
{
	static const char *const cases[] = {
		"", "plain", "a b  c", "'", "''", "'''", "a'b", "'a", "a'", "\"", "\"'\"", "\\", "\\'", "'\\",
		"$(touch /tmp/sshbox-remote-pwned)", "`touch /tmp/sshbox-remote-pwned`", "${HOME}", "$HOME", "$",
		"$'x'", "a\nb", "\n", "\n\n", "trailing\n", "\tx\t", "*", "?", "[a]", "~", "~root", "!x", "!!",
		"a;b", "a&&b", "a|b", "a>b", "<x", "#c", "%s %n", "-n", "--", "-e\\n", "\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80",
		"\xff\xfe", "\x01\x02\x7f", "'$(id)'\"`id`\"", "x'\n'y",
	};
	char all[256];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ROUNDTRIP(cases[i]);
	/* every byte but NUL */
	for (i = 1; i < 256; i++)
		all[i - 1] = (char)i;
	all[255] = '\0';
	ROUNDTRIP(all);
	/* the quoted form has no unquoted byte besides \' */
	{
		struct buf b = BUF_INIT;
		CHECK_INT(remote_quote(&b, "a'b"), 0);
		CHECK_STREQ(buf_cstr(&b), "'a'\\''b'");
		buf_reset(&b);
		CHECK_INT(remote_quote(&b, ""), 0);
		CHECK_STREQ(buf_cstr(&b), "''");
		buf_release(&b);
	}
	CHECK(!exists("/tmp/sshbox-remote-pwned"));
}

/* ---- framing ------------------------------------------------------------ */

/* "<len>\n<body>": returns body and its length, or NULL. */
static const char *unframe(const char *p, size_t avail, size_t *body_len, size_t *frame_len)
{
	char *end;
	unsigned long long n;
	const char *nl = memchr(p, '\n', avail);

	if (!nl || nl == p)
		return NULL;
	for (end = (char *)p; end < nl; end++)
		if (*end < '0' || *end > '9')
			return NULL;
	n = strtoull(p, &end, 10);
	if (end != nl || (size_t)(nl + 1 - p) + n > avail)
		return NULL;
	*body_len = (size_t)n;
	*frame_len = (size_t)(nl + 1 - p) + (size_t)n;
	return nl + 1;
}

static void test_put_blob(void)
{
	struct buf b = BUF_INIT;
	static const char bin[] = "a\nb\0c'\"$";
	size_t bl, fl;
	const char *body;

	CHECK_INT(remote_put_blob(&b, "hello", 5), 0);
	CHECK_INT(remote_put_blob(&b, "", 0), 0);
	CHECK_INT(remote_put_blob(&b, bin, sizeof(bin) - 1), 0);
	CHECK_INT(b.len, 7 + 2 + 2 + sizeof(bin) - 1);
	CHECK(b.len == 19 && memcmp(b.data, "5\nhello0\n8\na\nb\0c'\"$", b.len) == 0);
	body = unframe(b.data, b.len, &bl, &fl);
	CHECK(body && bl == 5 && fl == 7);
	buf_release(&b);
}

static void default_params(struct remote_params *p)
{
	static const char *const none[] = { NULL };

	memset(p, 0, sizeof(*p));
	p->nonce = "0123456789abcdef";
	p->job_id = "job-1";
	p->workdir = "/srv/sshbox";
	p->slot = 0;
	p->fence = 1;
	p->claude = "claude";
	p->timeout_s = 3600;
	p->heartbeat_s = 30;
	p->env_names = none;
	p->claude_args = none;
}

static void test_script_frame(void)
{
	static const char *const names[] = { "A", "B_2", NULL };
	static const char *const args[] = { "--model", "it's \"x\" $(id)\n`id`", NULL };
	struct remote_params p;
	struct buf b = BUF_INIT;
	size_t bl = 0, fl = 0;
	const char *body;

	default_params(&p);
	p.env_names = names;
	p.claude_args = args;
	p.repo_url = "https://h/r.git";
	p.repo_ref = "main";
	p.have_token = 1;
	CHECK_INT(buf_puts(&b, "PRE"), 0);   /* appends, does not reset */
	CHECK_INT(remote_script(&b, &p), 0);
	CHECK(strncmp(b.data, "PRE", 3) == 0);
	body = unframe(b.data + 3, b.len - 3, &bl, &fl);
	CHECK(body != NULL);
	CHECK_INT(fl, b.len - 3);          /* the prefix is exact: nothing after the body */
	CHECK(body && bl > 1000);
	CHECK(body && body[bl - 1] == '\n');
	CHECK(strstr(b.data, "sb_nonce='0123456789abcdef'") != NULL);
	CHECK(strstr(b.data, "sb_envnames=( 'A' 'B_2' )") != NULL);
	CHECK(strstr(b.data, "'it'\\''s \"x\" $(id)\n`id`'") != NULL);
	CHECK(strstr(b.data, "sb_have_token=1") != NULL);
	buf_release(&b);

	/* bash can parse the whole script */
	{
		struct buf s = BUF_INIT, out = BUF_INIT, err = BUF_INIT;
		struct child_run_opts o = { test_env, NULL, 1, 0, 10000 };
		struct sb_error e = SB_ERROR_INIT;
		const char *argv[] = { "/bin/bash", "-n", NULL };
		int rc = -1;

		default_params(&p);
		CHECK_INT(remote_script(&s, &p), 0);
		body = unframe(s.data, s.len, &bl, &fl);
		CHECK(body != NULL);
		if (body) {
			CHECK_INT(child_run(argv, &o, body, bl, &out, &err, &rc, &e), 0);
			CHECK_INT(rc, 0);
			if (rc)
				printf("#   bash -n: %s\n", buf_cstr(&err));
		}
		buf_release(&s);
		buf_release(&out);
		buf_release(&err);
	}
}

/* ---- the end-reason words ---------------------------------------------- */

struct words {
	const char *w[64];
	size_t len[64];
	int n;
};

static void words_add(struct words *ws, const char *w, size_t len)
{
	int i;

	for (i = 0; i < ws->n; i++)
		if (ws->len[i] == len && memcmp(ws->w[i], w, len) == 0)
			return;
	CHECK(ws->n < 64);
	if (ws->n < 64) {
		ws->w[ws->n] = w;
		ws->len[ws->n++] = len;
	}
}

static int is_ident(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* A literal end word at p: [a-z-]+ ended by a shell separator; its length,
 * 0 when p holds anything else (a quote, an expansion). */
static size_t literal_word(const char *p)
{
	size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz-");

	return n && (p[n] == ';' || p[n] == '\n' || p[n] == ' ') ? n : 0;
}

/* Where name occurs in text as a whole shell word start (not a part of
 * sb_end_s or my_sb_end); NULL when no more. */
static const char *find_name(const char *text, const char *from, const char *name)
{
	size_t n = strlen(name);
	const char *p;

	for (p = strstr(from, name); p; p = strstr(p + 1, name))
		if ((p == text || !is_ident(p[-1])) && !is_ident(p[n]))
			return p;
	return NULL;
}

/* Both directions between the job script and REMOTE_WHY_LIST.  The script
 * prints its end line only in sb_end, and every call names its word as a
 * literal (`sb_end RC word`) or, for the job's own end, as `"$sb_why"`, set
 * by the watchdog's `sb_why=word`: both forms are read here, and any other
 * call fails the test (a word this test cannot read is a word it cannot
 * check). */
static void test_script_end_words(void)
{
	struct remote_params p;
	struct buf b = BUF_INIT;
	struct words said = { { NULL }, { 0 }, 0 };
	const char *text, *q;
	int i, defs = 0, calls = 0, via_why = 0, why_sets = 0;

	default_params(&p);
	p.repo_url = "https://h/r.git";   /* every part of the script */
	CHECK_INT(remote_script(&b, &p), 0);
	text = buf_cstr(&b);
	/* the end line has one printf, in sb_end */
	q = strstr(text, "sshbox-end");
	CHECK(q != NULL && strstr(q + 1, "sshbox-end") == NULL);

	for (q = find_name(text, text, "sb_end"); q; q = find_name(text, q + 1, "sb_end")) {
		const char *a = q + strlen("sb_end");
		size_t n;

		if (strncmp(a, "() {", 4) == 0) {
			defs++;
			continue;
		}
		calls++;
		if (*a++ != ' ') {
			printf("#   sb_end without arguments at: %.60s\n", q);
			CHECK(!"sb_end called with a readable rc and word");
			continue;
		}
		if (strncmp(a, "\"$sb_rc\" ", 9) == 0)
			a += 9;
		else if (*a >= '0' && *a <= '9' && (n = strspn(a, "0123456789")) && a[n] == ' ')
			a += n + 1;
		else {
			printf("#   sb_end with an rc this test cannot read: %.60s\n", q);
			CHECK(!"sb_end called with a readable rc");
			continue;
		}
		if (strncmp(a, "\"$sb_why\"", 9) == 0 && strchr(";\n ", a[9]) && a[9]) {
			via_why++;
		} else if ((n = literal_word(a)) != 0) {
			words_add(&said, a, n);
		} else {
			printf("#   sb_end with a word this test cannot read: %.60s\n", q);
			CHECK(!"sb_end called with a literal word");
		}
	}
	for (q = find_name(text, text, "sb_why"); q; q = find_name(text, q + 1, "sb_why")) {
		size_t n;

		if (q > text && q[-1] == '$')
			continue;   /* the use, "$sb_why" */
		if (q[6] != '=' || (n = literal_word(q + 7)) == 0) {
			printf("#   sb_why set to what this test cannot read: %.60s\n", q);
			CHECK(!"sb_why=word with a literal word");
			continue;
		}
		why_sets++;
		words_add(&said, q + 7, n);
	}
	CHECK_INT(defs, 1);
	CHECK(calls > 10);
	/* the watchdog's words are printed through "$sb_why", and only so */
	CHECK(via_why == 1 && why_sets >= 4);

	for (i = 0; i < said.n; i++)
		if (remote_why_parse(said.w[i], said.len[i]) == REMOTE_WHY_NONE) {
			printf("#   the script prints '%.*s', not in REMOTE_WHY_LIST\n", (int)said.len[i], said.w[i]);
			CHECK(!"every word the script prints is in REMOTE_WHY_LIST");
		}
	for (i = REMOTE_WHY_NONE + 1; i < REMOTE_WHY_COUNT; i++) {
		const char *w = remote_why_word((enum remote_why)i);
		int j, found = 0;

		for (j = 0; j < said.n && !found; j++)
			found = said.len[j] == strlen(w) && memcmp(said.w[j], w, said.len[j]) == 0;
		if (!found) {
			printf("#   REMOTE_WHY_LIST has '%s', which the script never prints\n", w);
			CHECK(!"every word of REMOTE_WHY_LIST is printed by the script");
		}
	}
	buf_release(&b);
}

/* ---- the bootstrap ------------------------------------------------------ */

static int run_bootstrap(const char *input, size_t len, struct buf *out, struct buf *err)
{
	const char *argv[] = { "/bin/bash", "-c", remote_bootstrap(), NULL };
	struct child_run_opts o = { test_env, NULL, 1, 0, 10000 };
	struct sb_error e = SB_ERROR_INIT;
	int rc = -1;

	buf_reset(out);
	buf_reset(err);
	if (child_run(argv, &o, input, len, out, err, &rc, &e) != 0)
		return -1;
	return rc;
}

static void test_bootstrap(void)
{
	struct buf in = BUF_INIT, out = BUF_INIT, err = BUF_INIT;

	CHECK(strchr(remote_bootstrap(), '\n') == NULL);
	CHECK(remote_bootstrap()[0] != '-');

	CHECK_INT(remote_put_blob(&in, "printf ok", 9), 0);
	CHECK_INT(run_bootstrap(in.data, in.len, &out, &err), 0);
	CHECK_STREQ(buf_cstr(&out), "ok");

	/* byte-exact: what follows the script is left on stdin for it */
	buf_reset(&in);
	CHECK_INT(remote_put_blob(&in, "printf ok; exec /bin/cat", 24), 0);
	CHECK_INT(buf_puts(&in, "REST\nof 'stdin' $(x)"), 0);
	CHECK_INT(run_bootstrap(in.data, in.len, &out, &err), 0);
	CHECK_STREQ(buf_cstr(&out), "okREST\nof 'stdin' $(x)");

	/* lengths are bytes, not characters */
	buf_reset(&in);
	{
		static const char body[] = "printf '%s' '\xc3\xa9\xf0\x9f\x98\x80'; exec /bin/cat";
		CHECK_INT(remote_put_blob(&in, body, sizeof(body) - 1), 0);
	}
	CHECK_INT(buf_puts(&in, "Z"), 0);
	CHECK_INT(run_bootstrap(in.data, in.len, &out, &err), 0);
	CHECK_STREQ(buf_cstr(&out), "\xc3\xa9\xf0\x9f\x98\x80Z");

	/* a script of several lines */
	buf_reset(&in);
	{
		static const char body[] = "x=1\nif [ $x = 1 ]; then\n  printf 'multi'\nfi\n";
		CHECK_INT(remote_put_blob(&in, body, sizeof(body) - 1), 0);
	}
	CHECK_INT(run_bootstrap(in.data, in.len, &out, &err), 0);
	CHECK_STREQ(buf_cstr(&out), "multi");

	/* truncated or garbled framing: the documented exit codes, nothing run */
	CHECK_INT(run_bootstrap("", 0, &out, &err), 97);
	CHECK_INT(run_bootstrap("x\nprintf no", 11, &out, &err), 98);
	CHECK_INT(out.len, 0);
	CHECK_INT(run_bootstrap("\nprintf no", 10, &out, &err), 98);
	CHECK_INT(run_bootstrap("-1\nprintf no", 12, &out, &err), 98);
	CHECK_INT(run_bootstrap("9 \nprintf no", 12, &out, &err), 98);
	CHECK_INT(out.len, 0);
	buf_release(&in);
	buf_release(&out);
	buf_release(&err);
}

/* ---- the job script, locally -------------------------------------------- */

struct job {
	struct child c;
	struct buf out;
	int err_fd;
	char err_path[256];
	int eof;
};

/* Start bash running the bootstrap and send it the script and secrets;
 * stdin stays open (EOF stops the job). */
static int job_start(struct job *j, const struct remote_params *p, const char *prompt, size_t prompt_len,
		     const char *const *values, const char *token)
{
	static const char *argv[] = { "/bin/bash", "-c", NULL, NULL };
	struct buf in = BUF_INIT;
	struct sb_error e = SB_ERROR_INIT;
	size_t off = 0, total;
	int r;

	memset(j, 0, sizeof(*j));
	buf_init(&j->out, 1 << 20);
	argv[2] = remote_bootstrap();
	snprintf(j->err_path, sizeof(j->err_path), "%s/stderr.%d", tmp, (int)p->fence);
	j->err_fd = open(j->err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	j->c = (struct child)CHILD_INIT;
	j->c.argv = argv;
	j->c.env = test_env;
	j->c.in = CHILD_PIPE;
	j->c.out = CHILD_PIPE;
	j->c.err = j->err_fd >= 0 ? j->err_fd : CHILD_NULL;
	j->c.new_session = 1;
	r = remote_script(&in, p) | remote_put_blob(&in, prompt, prompt_len);
	for (; values && *values; values++)
		r |= remote_put_blob(&in, *values, strlen(*values));
	if (token)
		r |= remote_put_blob(&in, token, strlen(token));
	if (r || child_start(&j->c, &e) != 0) {
		printf("#   cannot start the job: %s\n", e.msg);
		buf_release(&in);
		return -1;
	}
	total = in.len;
	while (off < in.len) {
		ssize_t n = write(j->c.in_fd, in.data + off, in.len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	buf_release(&in);
	return off == total ? 0 : -1;
}

/* Read stdout until a complete line containing `needle` (or EOF, or the
 * deadline, or shortly after the script itself exited: a leftover Claude
 * may hold stdout open).  1 when found. */
static int job_read_until(struct job *j, const char *needle, int64_t ms)
{
	int64_t deadline = clock_deadline_in(ms), exited_at = 0;

	for (;;) {
		const char *hit = strstr(buf_cstr(&j->out), needle);
		struct pollfd pf;
		char b[4096];
		ssize_t n;

		if (hit && strchr(hit, '\n'))
			return 1;
		if (j->eof || clock_expired(deadline))
			return 0;
		if (!exited_at && child_poll(&j->c))
			exited_at = clock_deadline_in(500);
		if (exited_at && clock_expired(exited_at))
			return 0;
		pf.fd = j->c.out_fd;
		pf.events = POLLIN;
		if (poll(&pf, 1, (int)(clock_remaining_ms(deadline) > 100 ? 100 : clock_remaining_ms(deadline) + 1)) <= 0)
			continue;
		n = read(j->c.out_fd, b, sizeof(b));
		if (n > 0)
			buf_add(&j->out, b, (size_t)n);
		else if (n == 0 || (errno != EINTR && errno != EAGAIN))
			j->eof = 1;
	}
}

/* Close stdin, read the rest, reap (bounded); 1 if it ended by itself. */
static int job_finish(struct job *j, int64_t ms)
{
	int64_t deadline = clock_deadline_in(ms);
	int r;

	if (j->c.in_fd >= 0) {
		close(j->c.in_fd);
		j->c.in_fd = -1;
	}
	job_read_until(j, "\x01never\x01", ms);
	r = child_wait(&j->c, deadline, 500);
	child_close_fds(&j->c);
	if (j->err_fd >= 0)
		close(j->err_fd);
	j->err_fd = -1;
	return r == 0;
}

/* Every line behind "# " so the test runner never mistakes one for a result. */
static void print_commented(const char *label, const char *text)
{
	printf("#   %s:\n", label);
	while (*text) {
		size_t n = strcspn(text, "\n");
		printf("#     | %.*s\n", (int)n, text);
		text += n + (text[n] ? 1 : 0);
	}
}

static void job_dump(struct job *j)
{
	struct buf err = BUF_INIT;

	read_file(j->err_path, &err);
	print_commented("stdout", buf_cstr(&j->out));
	print_commented("stderr", buf_cstr(&err));
	buf_release(&err);
}

static void job_release(struct job *j)
{
	if (j->c.pid > 0 && !j->c.reaped) {
		child_signal(&j->c, SIGKILL);
		sb_best_effort(child_wait(&j->c, clock_deadline_in(2000), 100));   /* killed: reaped either way */
	}
	child_close_fds(&j->c);
	if (j->err_fd >= 0)
		close(j->err_fd);
	buf_release(&j->out);
}

/* Position of the line starting with `prefix`, or -1. */
static long line_at(const char *text, const char *prefix)
{
	const char *p = text;
	size_t pl = strlen(prefix);

	while (p && *p) {
		if (strncmp(p, prefix, pl) == 0)
			return (long)(p - text);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -1;
}

/* The "sshbox-end NONCE RC WHY" line's rc and why. */
static int end_marker(const char *text, const char *nonce, int *rc, char *why, size_t whysz)
{
	char prefix[128];
	long at;
	const char *p;
	char w[64];

	snprintf(prefix, sizeof(prefix), "sshbox-end %s ", nonce);
	at = line_at(text, prefix);
	if (at < 0)
		return 0;
	p = text + at + strlen(prefix);
	if (sscanf(p, "%d %63s", rc, w) != 2)
		return 0;
	snprintf(why, whysz, "%s", w);
	return 1;
}

static int pid_gone(pid_t pid)
{
	char path[64], st[512];
	FILE *f;
	char *rp;
	int gone = 0;

	if (kill(pid, 0) != 0 && errno == ESRCH)
		return 1;
	/* a zombie nobody reaped (no init in a container) is gone too */
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
		clock_sleep_ms(20);
	}
	return 1;
}

/* No process is left in process group pg (zombies aside: see pid_gone). */
static int wait_gone_group(pid_t pg, int64_t ms)
{
	int64_t deadline = clock_deadline_in(ms);

	while (kill(-pg, 0) == 0) {
		if (clock_expired(deadline))
			return 0;
		clock_sleep_ms(20);
	}
	return 1;
}

static pid_t read_pid(const char *path)
{
	struct buf b = BUF_INIT;
	pid_t pid = -1;

	if (read_file(path, &b) == 0)
		pid = (pid_t)atoi(buf_cstr(&b));
	buf_release(&b);
	return pid;
}

static char workdir[200], outdir[200], stub_ok[220], stub_sleep[220];

/* Stubs for Claude Code: record prompt, args, cwd and environment. */
static int make_stubs(void)
{
	char text[2048];
	int n;

	pathf(workdir, sizeof(workdir), "work");
	pathf(outdir, sizeof(outdir), "out");
	pathf(stub_ok, sizeof(stub_ok), "claude-ok");
	pathf(stub_sleep, sizeof(stub_sleep), "claude-sleep");
	if (mkdir(outdir, 0700) != 0)
		return -1;
	n = snprintf(text, sizeof(text),
		     "#!/bin/bash\n"
		     "d='%s'\n"
		     "/bin/cat > \"$d/prompt\"\n"
		     "printf '%%s\\0' \"$@\" > \"$d/args\"\n"
		     "printf '%%s' \"$PWD\" > \"$d/pwd\"\n"
		     "/usr/bin/env -0 > \"$d/environ\"\n"
		     "echo '{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false}'\n"
		     "echo 'to stderr' >&2\n"
		     "exit 0\n", outdir);
	if (write_file(stub_ok, text, (size_t)n, 0755) != 0)
		return -1;
	n = snprintf(text, sizeof(text),
		     "#!/bin/bash\n"
		     "d='%s'\n"
		     "/bin/sleep 300 &\n"
		     "echo $! > \"$d/child.pid\"\n"
		     "echo $$ > \"$d/sleep.pid\"\n"
		     "echo '{\"type\":\"system\",\"subtype\":\"init\"}'\n"
		     "exec /bin/sleep 300\n", outdir);
	return write_file(stub_sleep, text, (size_t)n, 0755);
}

static int64_t next_fence = 1;

static const char *outfile(const char *name)
{
	static char path[400];

	snprintf(path, sizeof(path), "%s/%s", outdir, name);
	return path;
}

static void job_params(struct remote_params *p, const char *claude, const char *const *names,
		       const char *const *args)
{
	static const char *const none[] = { NULL };

	memset(p, 0, sizeof(*p));
	p->nonce = "f00dfeed12345678";
	p->job_id = "job-7";
	p->workdir = workdir;
	p->slot = 0;
	p->fence = next_fence++;
	p->claude = claude;
	p->timeout_s = 60;
	p->heartbeat_s = 30;
	p->env_names = names ? names : none;
	p->claude_args = args ? args : none;
}

/* The job dir and its aux dir are gone; the group the pgid record names
 * (the record stays for the slot's next holder) has no process left. */
static void check_cleaned(const char *job_id)
{
	char p[400];

	snprintf(p, sizeof(p), "%s/jobs/%s", workdir, job_id);
	CHECK(!exists(p));
	snprintf(p, sizeof(p), "%s/jobs/.%s", workdir, job_id);
	CHECK(!exists(p));
	snprintf(p, sizeof(p), "%s/slots/0.pgid", workdir);
	if (file_size(p) > 0) {
		FILE *f = fopen(p, "re");
		long pg = 0;

		CHECK(f && fscanf(f, "%ld", &pg) == 1 && pg > 1);
		if (f)
			fclose(f);
		if (pg > 1)
			CHECK(wait_gone_group((pid_t)pg, 3000));
	}
}

/* NAME=value from a NUL-separated environment dump; NULL if absent. */
static const char *env_get(const struct buf *env, const char *name)
{
	const char *p = env->data, *end = env->data + env->len;
	size_t nl = strlen(name);

	while (p && p < end) {
		size_t l = strlen(p);
		if (l > nl && strncmp(p, name, nl) == 0 && p[nl] == '=')
			return p + nl + 1;
		p += l + 1;
	}
	return NULL;
}

static void test_job_runs(void)
{
	char m1[300], m2[300], m3[300], m4[300], m5[300], m6[300];
	char v_sub[400], v_tick[400], v_quote[400], v_dq[400], arg_sub[400];
	const char *names[] = { "ANTHROPIC_API_KEY", "V_SUB", "V_TICK", "V_QUOTE", "V_DQ", "V_NL", "V_EMPTY",
				"CLAUDE_CODE_FROM_JOB", NULL };
	const char *values[9];
	const char *args[] = { "--model", "sonnet", "it's a \"test\"", arg_sub, "", "a\nb", NULL };
	char prompt[1024], start_prefix[400], dir[300], why[64];
	struct remote_params p;
	struct job j;
	struct buf f = BUF_INIT;
	int rc = -1;
	long at_begin, at_started, at_end, at_json;
	size_t i;

	pathf(m1, sizeof(m1), "pwned-1");
	pathf(m2, sizeof(m2), "pwned-2");
	pathf(m3, sizeof(m3), "pwned-3");
	pathf(m4, sizeof(m4), "pwned-4");
	pathf(m5, sizeof(m5), "pwned-5");
	pathf(m6, sizeof(m6), "pwned-6");
	snprintf(v_sub, sizeof(v_sub), "$(touch %s)", m1);
	snprintf(v_tick, sizeof(v_tick), "`touch %s`", m2);
	snprintf(v_quote, sizeof(v_quote), "'; touch %s; '", m3);
	snprintf(v_dq, sizeof(v_dq), "\"; touch %s; \"$(touch %s)\\", m4, m4);
	snprintf(arg_sub, sizeof(arg_sub), "$(touch %s)`touch %s`", m5, m5);
	snprintf(prompt, sizeof(prompt),
		 "Fix the test.\nIt's \"quoted\" and $(touch %s) `touch %s` \\ ${HOME} 'single'\n"
		 "\xc3\xa9\xf0\x9f\x98\x80\n\n", m6, m6);
	values[0] = "sk-ant-secret";
	values[1] = v_sub;
	values[2] = v_tick;
	values[3] = v_quote;
	values[4] = v_dq;
	values[5] = "line1\nline2\n\n";
	values[6] = "";
	values[7] = "set-by-the-job";
	values[8] = NULL;

	job_params(&p, stub_ok, names, args);
	if (job_start(&j, &p, prompt, strlen(prompt), values, NULL) != 0) {
		CHECK(0);
		return;
	}
	CHECK(job_read_until(&j, "sshbox-end ", 20000));
	CHECK(job_finish(&j, 10000));
	CHECK_INT(child_exit_code(&j.c), 0);

	at_begin = line_at(buf_cstr(&j.out), "sshbox-begin f00dfeed12345678\n");
	snprintf(dir, sizeof(dir), "%s/jobs/job-7", workdir);
	snprintf(start_prefix, sizeof(start_prefix), "sshbox-started f00dfeed12345678 %s\n", dir);
	at_started = line_at(buf_cstr(&j.out), start_prefix);
	at_end = line_at(buf_cstr(&j.out), "sshbox-end f00dfeed12345678 ");
	at_json = line_at(buf_cstr(&j.out), "{\"type\":\"result\"");
	CHECK(at_begin >= 0);
	CHECK(at_started > at_begin);
	CHECK(at_end > at_started);
	CHECK(at_json > at_begin && at_json < at_end);
	CHECK(end_marker(buf_cstr(&j.out), p.nonce, &rc, why, sizeof(why)));
	CHECK_INT(rc, 0);
	CHECK_STREQ(why, "exit");
	/* the end marker is the last line */
	CHECK(at_end >= 0 && strchr(buf_cstr(&j.out) + at_end, '\n') ==
	      buf_cstr(&j.out) + j.out.len - 1);

	/* the prompt arrived byte-exact on Claude's stdin */
	CHECK_INT(read_file(outfile("prompt"), &f), 0);
	CHECK_INT(f.len, strlen(prompt));
	CHECK(f.len == strlen(prompt) && memcmp(f.data, prompt, f.len) == 0);

	/* argv: the fixed flags, then the job's arguments verbatim */
	{
		static const char fixed[] = "-p\0--output-format\0stream-json\0--verbose\0--model\0sonnet\0";
		struct buf want = BUF_INIT;
		buf_add(&want, fixed, sizeof(fixed) - 1);
		for (i = 2; args[i]; i++)
			buf_add(&want, args[i], strlen(args[i]) + 1);
		CHECK_INT(read_file(outfile("args"), &f), 0);
		CHECK_INT(f.len, want.len);
		CHECK(f.len == want.len && memcmp(f.data, want.data, f.len) == 0);
		buf_release(&want);
	}
	CHECK_INT(read_file(outfile("pwd"), &f), 0);
	CHECK_STREQ(buf_cstr(&f), dir);

	/* environment: values verbatim, nothing executed */
	CHECK_INT(read_file(outfile("environ"), &f), 0);
	for (i = 0; names[i]; i++) {
		const char *v = env_get(&f, names[i]);
		if (!v || strcmp(v, values[i]) != 0) {
			unit_failed_checks++;
			printf("#   env %s = [%s], expected [%s]\n", names[i], v ? v : "(unset)", values[i]);
		}
	}
	CHECK_STREQ(env_get(&f, "IS_SANDBOX"), "1");
	CHECK_STREQ(env_get(&f, "SSHBOX_JOB"), "job-7");
	CHECK(env_get(&f, "CLAUDECODE") == NULL);
	CHECK(env_get(&f, "CLAUDE_CODE_ENTRYPOINT") == NULL);
	{
		char want[400];
		snprintf(want, sizeof(want), "%s/jobs/.job-7/claude", workdir);
		CHECK_STREQ(env_get(&f, "CLAUDE_CONFIG_DIR"), want);
		snprintf(want, sizeof(want), "%s/jobs/.job-7/tmp", workdir);
		CHECK_STREQ(env_get(&f, "TMPDIR"), want);
	}
	CHECK(env_get(&f, "GH_TOKEN") == NULL);
	CHECK(!exists(m1) && !exists(m2) && !exists(m3) && !exists(m4) && !exists(m5) && !exists(m6));
	check_cleaned("job-7");
	if (unit_failed_checks)
		job_dump(&j);
	job_release(&j);
	buf_release(&f);
}

/* stdin closes (orchestrator gone) while Claude runs: the whole group dies. */
static void stop_case(const char *what, int heartbeat_s, int timeout_s, const char *send, int close_stdin,
		      const char *want_why, int want_rc)
{
	char pidf[300], childf[300], why[64];
	struct remote_params p;
	struct job j;
	pid_t pid = -1, cpid = -1;
	int rc = -1, found;
	int64_t t0;

	snprintf(pidf, sizeof(pidf), "%s/sleep.pid", outdir);
	snprintf(childf, sizeof(childf), "%s/child.pid", outdir);
	unlink(pidf);
	unlink(childf);
	job_params(&p, stub_sleep, NULL, NULL);
	p.job_id = "job-sleep";
	p.heartbeat_s = heartbeat_s;
	p.timeout_s = timeout_s;
	if (job_start(&j, &p, "wait", 4, NULL, NULL) != 0) {
		CHECK(0);
		return;
	}
	CHECK(job_read_until(&j, "sshbox-started ", 10000));
	CHECK(job_read_until(&j, "{\"type\":\"system\"", 10000));
	pid = read_pid(pidf);
	cpid = read_pid(childf);
	CHECK(pid > 0 && cpid > 0);
	t0 = clock_now_ms();
	if (send)
		CHECK(write(j.c.in_fd, send, strlen(send)) == (ssize_t)strlen(send));
	if (close_stdin) {
		close(j.c.in_fd);
		j.c.in_fd = -1;
	}
	found = job_read_until(&j, "sshbox-end ", 20000);
	CHECK(found);
	if (found && clock_now_ms() - t0 > 15000) {
		unit_failed_checks++;
		printf("#   %s: the end took %lld ms\n", what, (long long)(clock_now_ms() - t0));
	}
	CHECK(end_marker(buf_cstr(&j.out), p.nonce, &rc, why, sizeof(why)));
	CHECK_STREQ(why, want_why);
	if (want_rc >= 0)
		CHECK_INT(rc, want_rc);
	CHECK(pid > 0 && wait_gone(pid, 5000));
	CHECK(cpid > 0 && wait_gone(cpid, 5000));   /* the whole group, not just the leader */
	CHECK(job_finish(&j, 10000));
	CHECK_INT(child_exit_code(&j.c), 0);
	check_cleaned("job-sleep");
	if (unit_failed_checks) {
		printf("#   case: %s\n", what);
		job_dump(&j);
	}
	if (pid > 0 && !pid_gone(pid))
		kill(pid, SIGKILL);
	if (cpid > 0 && !pid_gone(cpid))
		kill(cpid, SIGKILL);
	job_release(&j);
}

static void test_eof_kills_job(void)
{
	stop_case("eof", 30, 60, NULL, 1, "eof", -1);
}

static void test_cancel_kills_job(void)
{
	stop_case("cancel", 30, 60, "\n\ncancel\n", 0, "cancel", -1);
}

static void test_missing_heartbeat_kills_job(void)
{
	stop_case("heartbeat", 2, 60, NULL, 0, "heartbeat", -1);
}

static void test_remote_timeout(void)
{
	/* the watchdog's backstop ends it: TERM to the group */
	stop_case("timeout", 30, 1, NULL, 0, "timeout", 143);
}

static void test_claude_missing(void)
{
	char why[64], missing[300];
	struct remote_params p;
	struct job j;
	int rc = -1;

	pathf(missing, sizeof(missing), "no-such-claude");
	job_params(&p, missing, NULL, NULL);
	p.job_id = "job-missing";
	if (job_start(&j, &p, "x", 1, NULL, NULL) != 0) {
		CHECK(0);
		return;
	}
	CHECK(job_read_until(&j, "sshbox-end ", 10000));
	CHECK(end_marker(buf_cstr(&j.out), p.nonce, &rc, why, sizeof(why)));
	CHECK_INT(rc, 127);
	CHECK_STREQ(why, "claude-missing");
	CHECK(job_finish(&j, 10000));
	check_cleaned("job-missing");
	if (unit_failed_checks)
		job_dump(&j);
	job_release(&j);
}

/* A group in a session of its own, like a job's: its leader runs sleep
 * with env (NULL: none), or, with orphan, exits at once and leaves the
 * sleep behind in the group.  Returns the group id (the leader's pid). */
static pid_t spawn_group(const char *env, int orphan, pid_t *sleeper)
{
	char *envp[] = { (char *)env, NULL };
	char *argv[] = { (char *)"sleep", (char *)"60", NULL };
	int fds[2];
	pid_t leader, s = -1;

	if (pipe(fds) != 0)
		return -1;
	leader = fork();
	if (leader == 0) {
		close(fds[0]);
		setsid();
		if (orphan) {
			pid_t c = fork();
			if (c == 0) {
				close(fds[1]);
				execve("/bin/sleep", argv, env ? envp : envp + 1);
				_exit(127);
			}
			(void)!write(fds[1], &c, sizeof(c));
			_exit(0);
		}
		s = getpid();
		(void)!write(fds[1], &s, sizeof(s));
		close(fds[1]);
		execve("/bin/sleep", argv, env ? envp : envp + 1);
		_exit(127);
	}
	close(fds[1]);
	if (leader < 0 || read(fds[0], &s, sizeof(s)) != (ssize_t)sizeof(s))
		s = -1;
	close(fds[0]);
	if (orphan && leader > 0)
		(void)waitpid(leader, NULL, 0);
	*sleeper = s;
	return leader;
}

/* The slot's next holder stops the previous holder's group (found by the
 * .pgid record and SSHBOX_FENCE), and nothing else. */
static void takeover_case(const char *what, const char *env, int orphan, int want_killed)
{
	char rec[400], line[64];
	struct remote_params p;
	struct job j;
	pid_t sleeper = -1, pg = spawn_group(env, orphan, &sleeper);

	CHECK(pg > 0 && sleeper > 0);
	if (pg <= 0 || sleeper <= 0)
		return;
	snprintf(rec, sizeof(rec), "%s/slots/0.pgid", workdir);
	snprintf(line, sizeof(line), "%d 77\n", (int)pg);
	CHECK(write_file(rec, line, strlen(line), 0600) == 0);
	job_params(&p, stub_ok, NULL, NULL);
	p.job_id = "job-next";
	if (job_start(&j, &p, "x", 1, NULL, NULL) != 0) {
		CHECK(0);
	} else {
		CHECK(job_read_until(&j, "sshbox-end ", 20000));
		CHECK(job_finish(&j, 10000));
		job_release(&j);
	}
	if (want_killed) {
		CHECK(wait_gone(sleeper, 3000));
	} else {
		CHECK(!pid_gone(sleeper));
	}
	if (unit_failed_checks)
		printf("#   case: %s\n", what);
	kill(-pg, SIGKILL);
	if (!orphan)
		(void)waitpid(pg, NULL, 0);
	wait_gone(sleeper, 3000);
}

static void test_takeover(void)
{
	takeover_case("the holder's leader still runs", "SSHBOX_FENCE=77", 0, 1);
	takeover_case("the holder's leader is gone, a child runs on", "SSHBOX_FENCE=77", 1, 1);
	takeover_case("the pid names a group of another job", "SSHBOX_FENCE=78", 0, 0);
	takeover_case("the pid names a group that is not a job", NULL, 0, 0);
	takeover_case("the pid names a leaderless group that is not a job", NULL, 1, 0);
}

static void test_lower_fence_refused(void)
{
	char why[64];
	struct remote_params p;
	struct job j;
	int rc = -1;

	job_params(&p, stub_ok, NULL, NULL);
	p.fence = 0;   /* lower than every fence the tests before used */
	p.job_id = "job-old";
	if (job_start(&j, &p, "x", 1, NULL, NULL) != 0) {
		CHECK(0);
		return;
	}
	CHECK(job_read_until(&j, "sshbox-end ", 40000));
	CHECK(end_marker(buf_cstr(&j.out), p.nonce, &rc, why, sizeof(why)));
	CHECK_STREQ(why, "fenced");
	CHECK(line_at(buf_cstr(&j.out), "sshbox-started ") < 0);
	CHECK(job_finish(&j, 10000));
	if (unit_failed_checks)
		job_dump(&j);
	job_release(&j);
}

/* The job's env names are the job's business (DESIGN.md §2 allows any
 * `[A-Za-z_][A-Za-z0-9_]*` but SSHBOX_*): a name that happens to equal one
 * of the script's own variables (sb_pid, sb_dir, ...) or PATH must not
 * break the wrapper.  Here: the job must still start, be stopped on EOF,
 * and be cleaned up. */
static void env_name_case(const char *name, const char *value)
{
	char pidf[300], childf[300], why[64], work_marker[300];
	const char *names[] = { name, NULL };
	const char *values[] = { value, NULL };
	struct remote_params p;
	struct job j;
	pid_t pid = -1, cpid = -1;
	int rc = -1;

	snprintf(pidf, sizeof(pidf), "%s/sleep.pid", outdir);
	snprintf(childf, sizeof(childf), "%s/child.pid", outdir);
	unlink(pidf);
	unlink(childf);
	job_params(&p, stub_sleep, names, NULL);
	p.job_id = "job-env";
	if (job_start(&j, &p, "x", 1, values, NULL) != 0) {
		CHECK(0);
		return;
	}
	if (!job_read_until(&j, "sshbox-started ", 10000)) {
		unit_failed_checks++;
		printf("#   env name %s: no sshbox-started marker\n", name);
	}
	job_read_until(&j, "{\"type\":\"system\"", 3000);
	pid = read_pid(pidf);
	cpid = read_pid(childf);
	close(j.c.in_fd);
	j.c.in_fd = -1;
	if (!job_read_until(&j, "sshbox-end ", 15000) || !end_marker(buf_cstr(&j.out), p.nonce, &rc, why, sizeof(why))) {
		unit_failed_checks++;
		printf("#   env name %s: no sshbox-end marker after EOF\n", name);
	} else {
		CHECK_STREQ(why, "eof");
	}
	if (pid <= 0 || !wait_gone(pid, 3000) || cpid <= 0 || !wait_gone(cpid, 3000)) {
		unit_failed_checks++;
		printf("#   env name %s: Claude (pid %d) %s after EOF\n", name, (int)pid,
		       pid <= 0 ? "never started" : "still runs");
	}
	job_finish(&j, 10000);
	snprintf(work_marker, sizeof(work_marker), "%s/jobs/job-env", workdir);
	if (exists(work_marker)) {
		unit_failed_checks++;
		printf("#   env name %s: job dir %s left behind\n", name, work_marker);
	}
	if (unit_failed_checks)
		job_dump(&j);
	if (pid > 0 && !pid_gone(pid))
		kill(pid, SIGKILL);
	if (cpid > 0 && !pid_gone(cpid))
		kill(cpid, SIGKILL);
	job_release(&j);
	/* leave a clean workdir for the next case */
	{
		char cmd[700];
		snprintf(cmd, sizeof(cmd), "%s/jobs/job-env", workdir);
		if (exists(cmd)) {
			const char *argv[] = { "/bin/rm", "-rf", "--", cmd, NULL };
			struct child_run_opts o = { NULL, NULL, 0, 0, 10000 };
			struct sb_error e = SB_ERROR_INIT;
			int xrc;
			char aux[400];
			sb_best_effort(child_run(argv, &o, NULL, 0, NULL, NULL, &xrc, &e));   /* cleanup */
			snprintf(aux, sizeof(aux), "%s/jobs/.job-env", workdir);
			argv[3] = aux;
			sb_best_effort(child_run(argv, &o, NULL, 0, NULL, NULL, &xrc, &e));   /* cleanup */
		}
		snprintf(cmd, sizeof(cmd), "%s/slots/0.pgid", workdir);
		unlink(cmd);
	}
}

static void test_env_name_sb_pid(void)
{
	env_name_case("sb_pid", "1");
}

static void test_env_name_sb_dir(void)
{
	env_name_case("sb_dir", "/nonexistent-sshbox-test");
}

/* A bash special variable: unset after the launch, then read by the loop. */
static void test_env_name_seconds(void)
{
	env_name_case("SECONDS", "5");
}

/* An ordinary PATH: exported into the wrapper itself, then unset, so the
 * wrapper's own `sleep` and `rm` are no longer found. */
static void test_env_name_path(void)
{
	env_name_case("PATH", "/usr/local/bin:/usr/bin:/bin");
}

int main(void)
{
	int rc;

	signal(SIGPIPE, SIG_IGN);   /* as sshbox's main() does */
	if (!mkdtemp(tmp)) {
		perror("mkdtemp");
		return 1;
	}
	if (make_stubs() != 0) {
		perror("stubs");
		return 1;
	}
	RUN(test_quote_roundtrip);
	RUN(test_put_blob);
	RUN(test_script_frame);
	RUN(test_script_end_words);
	RUN(test_bootstrap);
	RUN(test_job_runs);
	RUN(test_eof_kills_job);
	RUN(test_cancel_kills_job);
	RUN(test_missing_heartbeat_kills_job);
	RUN(test_remote_timeout);
	RUN(test_claude_missing);
	RUN(test_takeover);
	RUN(test_lower_fence_refused);
	RUN(test_env_name_sb_pid);
	RUN(test_env_name_sb_dir);
	RUN(test_env_name_seconds);
	RUN(test_env_name_path);
	rc = unit_done();
	{
		const char *argv[] = { "/bin/rm", "-rf", "--", tmp, NULL };
		struct child_run_opts o = { NULL, NULL, 0, 0, 30000 };
		struct sb_error e = SB_ERROR_INIT;
		int xrc;
		sb_best_effort(child_run(argv, &o, NULL, 0, NULL, NULL, &xrc, &e));   /* cleanup */
	}
	return rc;
}
