#include "stream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "log.h"
#include "ndjson.h"

#define NONCE_MAX 64

struct stream {
	struct events *ev;
	struct ndjson *out, *err;
	char nonce[NONCE_MAX + 1];
	size_t max_line;
	struct stream_hooks hooks;
	struct stream_state st;
	struct buf scratch;          /* one event being built */
};

struct stream *stream_new(struct events *ev, const char *nonce, size_t max_line, size_t max_err_line,
			  const struct stream_hooks *hooks)
{
	struct stream *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->ev = ev;
	s->max_line = max_line;
	snprintf(s->nonce, sizeof(s->nonce), "%s", nonce);
	if (hooks)
		s->hooks = *hooks;
	s->st.session_id = (struct buf)BUF_INIT;
	s->st.cost = (struct buf)BUF_INIT;
	s->st.turns = (struct buf)BUF_INIT;
	s->scratch = (struct buf)BUF_INIT;
	s->out = ndjson_new(max_line);
	s->err = ndjson_new(max_err_line);
	if (!s->out || !s->err) {
		stream_free(s);
		return NULL;
	}
	return s;
}

void stream_free(struct stream *s)
{
	if (!s)
		return;
	ndjson_free(s->out);
	ndjson_free(s->err);
	buf_release(&s->st.session_id);
	buf_release(&s->st.cost);
	buf_release(&s->st.turns);
	buf_release(&s->scratch);
	free(s);
}

const struct stream_state *stream_state(const struct stream *s)
{
	return &s->st;
}

/* A span kept from the result line; on out of memory the field is left
 * empty (null in sshbox.result) rather than ending the job. */
static void copy_span(struct buf *dst, const char *p, size_t len)
{
	buf_reset(dst);
	if (buf_append(dst, p, len) != 0)
		buf_reset(dst);
}

static void raw_field(const struct json_doc *doc, const char *key, enum json_type type, struct buf *dst)
{
	const char *p;
	size_t n;
	int t = json_object_get(doc, 0, key);

	if (t >= 0 && json_type(doc, t) == type && json_raw(doc, t, &p, &n) == 0)
		copy_span(dst, p, n);
}

static void note_result_line(struct stream *s, const char *line, size_t len)
{
	struct json_doc doc = JSON_DOC_INIT;
	int t;

	if (json_parse_object(&doc, line, len, 1 << 20, NULL) != 0)
		return;
	t = json_object_get(&doc, 0, "type");
	if (t < 0 || !json_string_equals(&doc, t, "result"))
		goto out;
	s->st.have_result = 1;
	raw_field(&doc, "session_id", JSON_STRING, &s->st.session_id);
	raw_field(&doc, "total_cost_usd", JSON_NUMBER, &s->st.cost);
	raw_field(&doc, "num_turns", JSON_NUMBER, &s->st.turns);
	t = json_object_get(&doc, 0, "is_error");
	s->st.result_is_error = t >= 0 && json_type(&doc, t) == JSON_TRUE;
	if (s->hooks.on_result)
		s->hooks.on_result(s->hooks.ctx);
out:
	json_doc_release(&doc);
}

/* One line of remote output wrapped as an sshbox event of this type. */
static void emit_line(struct stream *s, const char *type, const char *line, size_t len)
{
	struct buf *e = &s->scratch;

	events_begin(s->ev, e, type);
	events_strn(e, "line", line, len);
	events_end(s->ev, e);
}

static void on_repo_marker(struct stream *s, const char *rest, size_t len)
{
	char action[16] = "", tmp[64];
	long long ms = 0;
	struct buf *e = &s->scratch;

	snprintf(tmp, sizeof(tmp), "%.*s", (int)(len < 63 ? len : 63), rest);
	if (sscanf(tmp, "%15s %lld", action, &ms) != 2)
		return;
	if (s->hooks.on_repo)
		s->hooks.on_repo(s->hooks.ctx);
	events_begin(s->ev, e, "sshbox.repo");
	events_str(e, "action", action);
	events_int(e, "duration_ms", ms);
	events_end(s->ev, e);
}

static void on_end_marker(struct stream *s, const char *rest, size_t len)
{
	char tmp[64];
	int rc = -1;

	snprintf(tmp, sizeof(tmp), "%.*s", (int)(len < 63 ? len : 63), rest);
	if (sscanf(tmp, "%d %31s", &rc, s->st.end_word) < 1)
		return;
	s->st.ended = 1;
	s->st.end_rc = rc;
	s->st.end_why = remote_why_parse(s->st.end_word, strlen(s->st.end_word));
}

/* "sshbox-<what> <nonce> ..." — 1 if it was one of ours */
static SB_MUST_CHECK int marker(struct stream *s, const char *line, size_t len)
{
	size_t nl = strlen(s->nonce), wl;
	const char *sp, *rest;

	if (len < 8 || memcmp(line, "sshbox-", 7) != 0)
		return 0;
	/* lines are not NUL-terminated: search within len only */
	sp = memchr(line + 7, ' ', len - 7);
	wl = sp ? (size_t)(sp - (line + 7)) : len - 7;
	if (wl >= 16 || 7 + wl + 1 + nl > len || line[7 + wl] != ' ' || memcmp(line + 8 + wl, s->nonce, nl) != 0)
		return 0;
	rest = line + 8 + wl + nl;
	len -= 8 + wl + nl;
	if (len && *rest == ' ') {
		rest++;
		len--;
	}
#define IS(word) (wl == sizeof(word) - 1 && memcmp(line + 7, word, wl) == 0)
	if (IS("begin")) {
		s->st.begun = 1;
	} else if (IS("repo")) {
		on_repo_marker(s, rest, len);
	} else if (IS("started")) {
		struct buf *e = &s->scratch;
		s->st.started = 1;
		events_begin(s->ev, e, "sshbox.started");
		events_strn(e, "workdir", rest, len);
		events_end(s->ev, e);
	} else if (IS("end")) {
		on_end_marker(s, rest, len);
	} else {
		return 0;
	}
#undef IS
	return 1;
}

static void on_stdout_line(void *ctx, const char *line, size_t len)
{
	struct stream *s = ctx;

	if (!s->st.begun) {
		if (!marker(s, line, len))
			log_debug("discarding %zu bytes of remote output before the start marker", len);
		return;
	}
	if (len == 0 || marker(s, line, len))
		return;
	/* one pass over the line; one whose "type" starts with "sshbox."
	 * would pass for one of our events (a second sshbox.result): wrapped */
	switch (json_classify_line(line, len)) {
	case JSON_LINE_RESULT:
		events_forward(s->ev, line, len);
		note_result_line(s, line, len);
		return;
	case JSON_LINE_OBJECT:
		events_forward(s->ev, line, len);
		return;
	case JSON_LINE_SSHBOX:
	case JSON_LINE_INVALID:
		break;
	}
	emit_line(s, "sshbox.stdout", line, len);
}

static void on_stdout_drop(void *ctx, size_t dropped)
{
	struct stream *s = ctx;
	char msg[160];

	snprintf(msg, sizeof(msg), "sshbox: dropped a stdout line of %zu bytes (over max_line_bytes %zu)", dropped,
		 s->max_line);
	emit_line(s, "sshbox.stderr", msg, strlen(msg));
}

static void on_stderr_line(void *ctx, const char *line, size_t len)
{
	emit_line(ctx, "sshbox.stderr", line, len);
}

static void on_stderr_drop(void *ctx, size_t dropped)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "sshbox: dropped a stderr line of %zu bytes", dropped);
	emit_line(ctx, "sshbox.stderr", msg, strlen(msg));
}

int stream_pump(struct stream *s, int fd, int is_stdout)
{
	/* a quarter of the 1 MiB pipe a call: fewer wake-ups per MB than
	 * 64 KiB reads (docs/performance.md); static: one job a process, and
	 * off the stack */
	static char tmp[1 << 18];
	struct ndjson *fr = !s ? NULL : is_stdout ? s->out : s->err;
	ndjson_line_fn *on_line = is_stdout ? on_stdout_line : on_stderr_line;
	ndjson_drop_fn *on_drop = is_stdout ? on_stdout_drop : on_stderr_drop;
	int rounds, got = 0;

	for (rounds = 0; rounds < 16; rounds++) {
		ssize_t n = read(fd, tmp, sizeof(tmp));

		if (n > 0) {
			got = STREAM_GOT;
			if (!s)
				continue;   /* no stream (out of memory): drained while the job stops */
			/* a line that could not be kept (out of memory) is
			 * reported as a drop when it ends; framing goes on */
			sb_best_effort(ndjson_feed(fr, tmp, (size_t)n, on_line, on_drop, s));
			if (events_pending(s->ev) > EVENTS_HIGH_WATER)
				break;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (s)
			ndjson_finish(fr, on_line, on_drop, s);
		return got | STREAM_EOF;
	}
	return got;
}
