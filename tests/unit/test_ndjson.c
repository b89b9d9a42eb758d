/* Unit tests for ndjson.c: line framing with a maximum length. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ndjson.h"
#include "unit.h"

#define LIT(s) (s), (sizeof(s) - 1)
#define MAX_EVENTS 64

/* What the callbacks saw: each line copied, each drop as its length. */
struct seen {
	int n;
	int dropped[MAX_EVENTS];    /* 1: a drop notice */
	size_t len[MAX_EVENTS];
	char *data[MAX_EVENTS];
	const char *chunk;          /* the chunk being fed, to spot copies */
	size_t chunk_len;
	int in_place;               /* lines handed out inside the chunk */
};

static void seen_line(void *ctx, const char *line, size_t len)
{
	struct seen *s = ctx;

	if (s->chunk && line >= s->chunk && line + len <= s->chunk + s->chunk_len)
		s->in_place++;
	if (s->n >= MAX_EVENTS)
		return;
	s->dropped[s->n] = 0;
	s->len[s->n] = len;
	s->data[s->n] = malloc(len ? len : 1);
	if (len)
		memcpy(s->data[s->n], line, len);
	s->n++;
}

static void seen_drop(void *ctx, size_t len)
{
	struct seen *s = ctx;

	if (s->n >= MAX_EVENTS)
		return;
	s->dropped[s->n] = 1;
	s->len[s->n] = len;
	s->data[s->n] = NULL;
	s->n++;
}

static void seen_clear(struct seen *s)
{
	int i;

	for (i = 0; i < s->n && i < MAX_EVENTS; i++)
		free(s->data[i]);
	memset(s, 0, sizeof(*s));
}

static int is_line(const struct seen *s, int i, const char *text, size_t len)
{
	return i < s->n && !s->dropped[i] && s->len[i] == len && (!len || memcmp(s->data[i], text, len) == 0);
}

static int is_drop(const struct seen *s, int i, size_t len)
{
	return i < s->n && s->dropped[i] && s->len[i] == len;
}

/* Feed text in pieces of `step` bytes (0: all at once), each from its own
 * exact-size allocation so reads past a chunk are caught, then finish. */
static void feed_steps(struct ndjson *f, struct seen *s, const char *text, size_t len, size_t step)
{
	size_t off = 0;

	if (!step)
		step = len ? len : 1;
	while (off < len) {
		size_t n = len - off < step ? len - off : step;
		char *chunk = malloc(n);

		memcpy(chunk, text + off, n);
		s->chunk = chunk;
		s->chunk_len = n;
		CHECK_INT(ndjson_feed(f, chunk, n, seen_line, seen_drop, s), 0);
		s->chunk = NULL;
		free(chunk);
		off += n;
	}
	ndjson_finish(f, seen_line, seen_drop, s);
}

static void test_basic_lines(void)
{
	static const char text[] = "{\"a\":1}\nbb\n\n\r\nccc\r\nlast";
	struct ndjson *f = ndjson_new(100);
	struct seen s = { 0 };

	feed_steps(f, &s, LIT(text), 0);
	CHECK_INT(s.n, 6);
	CHECK(is_line(&s, 0, LIT("{\"a\":1}")));
	CHECK(is_line(&s, 1, LIT("bb")));
	CHECK(is_line(&s, 2, LIT("")));
	CHECK(is_line(&s, 3, LIT("\r")));       /* bytes kept exactly */
	CHECK(is_line(&s, 4, LIT("ccc\r")));
	CHECK(is_line(&s, 5, LIT("last")));     /* unterminated at EOF */
	/* whole lines inside one chunk are not copied (the last one was held) */
	CHECK_INT(s.in_place, 5);
	CHECK_INT(ndjson_pending(f), 0);
	seen_clear(&s);

	/* reusable after finish; a trailing '\n' leaves no extra line */
	feed_steps(f, &s, LIT("x\ny\n"), 0);
	CHECK_INT(s.n, 2);
	CHECK(is_line(&s, 1, LIT("y")));
	seen_clear(&s);
	feed_steps(f, &s, LIT(""), 0);
	CHECK_INT(s.n, 0);
	ndjson_finish(f, seen_line, seen_drop, &s);
	CHECK_INT(s.n, 0);
	feed_steps(f, &s, LIT("\n"), 0);
	CHECK_INT(s.n, 1);
	CHECK(is_line(&s, 0, LIT("")));
	seen_clear(&s);
	ndjson_free(f);
	ndjson_free(NULL);
}

static void test_chunk_boundaries(void)
{
	static const char text[] =
		"{\"type\":\"system\"}\n\n{\"type\":\"assistant\",\"x\":\"" "\xe2\x82\xac" "\"}\nshort\n"
		"a line that is somewhat longer than the others\n\r\nend-without-newline";
	struct ndjson *f = ndjson_new(64);
	struct seen whole = { 0 }, s = { 0 };
	size_t step;
	int i, same;

	feed_steps(f, &whole, LIT(text), 0);
	CHECK_INT(whole.n, 7);
	for (step = 1; step <= sizeof(text); step++) {
		feed_steps(f, &s, LIT(text), step);
		same = s.n == whole.n;
		for (i = 0; same && i < s.n; i++)
			same = whole.dropped[i] ? is_drop(&s, i, whole.len[i])
						: is_line(&s, i, whole.data[i], whole.len[i]);
		if (!same)
			printf("#   feeding %zu bytes at a time differs\n", step);
		CHECK(same);
		CHECK(ndjson_allocated(f) <= 64);
		seen_clear(&s);
	}
	seen_clear(&whole);
	ndjson_free(f);
}

static void test_max_length(void)
{
	static const char text[] = "12345\n123456\nab\n1234567890123\n12345";
	struct ndjson *f = ndjson_new(5);
	struct seen s = { 0 };
	size_t step;

	for (step = 0; step <= 7; step++) {
		feed_steps(f, &s, LIT(text), step);
		CHECK_INT(s.n, 5);
		CHECK(is_line(&s, 0, LIT("12345")));   /* exactly max */
		CHECK(is_drop(&s, 1, 6));              /* max + 1 */
		CHECK(is_line(&s, 2, LIT("ab")));
		CHECK(is_drop(&s, 3, 13));
		CHECK(is_line(&s, 4, LIT("12345")));   /* exactly max, at EOF */
		CHECK(ndjson_allocated(f) <= 5);
		seen_clear(&s);
	}
	/* over-long unterminated line at EOF: one notice, its full length */
	feed_steps(f, &s, LIT("ok\n123456789"), 2);
	CHECK_INT(s.n, 2);
	CHECK(is_line(&s, 0, LIT("ok")));
	CHECK(is_drop(&s, 1, 9));
	seen_clear(&s);
	ndjson_free(f);

	/* max 0: only empty lines get through */
	f = ndjson_new(0);
	feed_steps(f, &s, LIT("\na\n\n"), 1);
	CHECK_INT(s.n, 3);
	CHECK(is_line(&s, 0, LIT("")));
	CHECK(is_drop(&s, 1, 1));
	CHECK(is_line(&s, 2, LIT("")));
	seen_clear(&s);
	ndjson_free(f);
}

static void test_nul_bytes(void)
{
	static const char text[] = "a\0b\n\0\n\0\0\0x";
	struct ndjson *f = ndjson_new(16);
	struct seen s = { 0 };
	size_t step;

	for (step = 0; step <= 3; step++) {
		feed_steps(f, &s, LIT(text), step);
		CHECK_INT(s.n, 3);
		CHECK(is_line(&s, 0, "a\0b", 3));
		CHECK(is_line(&s, 1, "\0", 1));
		CHECK(is_line(&s, 2, "\0\0\0x", 4));
		seen_clear(&s);
	}
	ndjson_free(f);
}

/* 64 MiB without a newline, in 64 KiB reads, with the default 16 MiB
 * bound: nothing past the bound is held and one notice comes out. */
static void test_huge_line_bounded(void)
{
	const size_t max = 16u << 20, total = 64u << 20, chunk = 64u << 10;
	struct ndjson *f = ndjson_new(max);
	struct seen s = { 0 };
	char *buf = malloc(chunk);
	size_t off, peak = 0;

	memset(buf, 'x', chunk);
	for (off = 0; off < total; off += chunk) {
		CHECK_INT(ndjson_feed(f, buf, chunk, seen_line, seen_drop, &s), 0);
		if (ndjson_allocated(f) > peak)
			peak = ndjson_allocated(f);
	}
	CHECK_INT(s.n, 0);
	CHECK(peak <= max);
	CHECK_INT(ndjson_pending(f), 0);   /* dropping: the held part was let go */
	ndjson_finish(f, seen_line, seen_drop, &s);
	CHECK_INT(s.n, 1);
	CHECK(is_drop(&s, 0, total));
	seen_clear(&s);

	/* the same, ended by a newline and followed by a good line */
	for (off = 0; off < total; off += chunk)
		CHECK_INT(ndjson_feed(f, buf, chunk, seen_line, seen_drop, &s), 0);
	CHECK_INT(ndjson_feed(f, LIT("yz\nnext\n"), seen_line, seen_drop, &s), 0);
	ndjson_finish(f, seen_line, seen_drop, &s);
	CHECK_INT(s.n, 2);
	CHECK(is_drop(&s, 0, total + 2));
	CHECK(is_line(&s, 1, LIT("next")));
	CHECK(ndjson_allocated(f) <= max);
	seen_clear(&s);
	printf("# 64 MiB line: peak held %zu bytes (bound %zu)\n", peak, max);
	free(buf);
	ndjson_free(f);
}

/* A line assembled from many chunks is handed out whole and correct. */
static void test_long_line_across_chunks(void)
{
	const size_t len = 1000000;
	struct ndjson *f = ndjson_new(len);
	struct seen s = { 0 };
	char *text = malloc(len + 1);
	size_t i;

	for (i = 0; i < len; i++)
		text[i] = (char)('a' + i % 26);
	text[len] = '\n';
	feed_steps(f, &s, text, len + 1, 4093);
	CHECK_INT(s.n, 1);
	CHECK(is_line(&s, 0, text, len));
	CHECK(ndjson_allocated(f) <= len);
	seen_clear(&s);
	free(text);
	ndjson_free(f);
}

int main(void)
{
	RUN(test_basic_lines);
	RUN(test_chunk_boundaries);
	RUN(test_max_length);
	RUN(test_nul_bytes);
	RUN(test_huge_line_bounded);
	RUN(test_long_line_across_chunks);
	return unit_done();
}
