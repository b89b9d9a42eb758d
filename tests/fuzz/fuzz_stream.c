/* libFuzzer harness: the stream framer (src/ndjson.h) and the JSON
 * validator and reader (src/json.h), as sshbox run applies them to the
 * sandbox's stdout (job.c on_stdout_line).
 *
 * Input: a header, then the stream.
 *   byte 0       the maximum line length, from max_lines[]
 *   byte 1       k = 1 + byte % 8: how many chunk sizes follow
 *   bytes 2..k+1 chunk sizes, used in turn: v < 0xf0 is v + 1 bytes,
 *                v >= 0xf0 is 2^(v - 0xe8) bytes (256 B .. 8 MiB)
 * An input shorter than its header is all stream, in one chunk.
 *
 * Checked:
 * - framing: every line handed out is at most max_line bytes and is
 *   exactly the bytes between two '\n' of the stream; every dropped line is
 *   longer than max_line; lines and drops account for every byte; the
 *   framer never holds or allocates more than max_line; chunked and
 *   one-shot framing (the framer reused after ndjson_finish) agree.
 * - validation, per line and on the whole stream: a second call gives the
 *   same verdict and token count; an object is also a valid value; a valid
 *   object always tokenizes (json_parse_object never disagrees with the
 *   validator) to as many tokens as the validator counted; every value's
 *   raw span is itself valid JSON; the typed getters give only their
 *   documented codes.
 * - json_classify_line (the job's one pass per line) agrees with a
 *   reference built from the parsed document: every top-level "type"
 *   string, unescaped, checked for "sshbox." and "result".
 * - the event a line becomes when it is not JSON (sshbox.stdout, built
 *   with the json writer) is always a valid object, and an ASCII line
 *   without NUL reads back from it byte for byte. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "fuzz.h"
#include "json.h"
#include "ndjson.h"

static const size_t max_lines[] = {
	1, 2, 3, 7, 16, 100, 255, 1000, 4096, 4097, 65536, 1 << 20,
};
#define N_MAX_LINES (sizeof(max_lines) / sizeof(max_lines[0]))

/* What a framer pass expects next: the offset in the stream where the
 * next line starts. */
struct pass {
	const unsigned char *data;
	size_t size, max, off;
	size_t lines, drops;
	int check_json;
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

static int is_ascii_no_nul(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] == '\0' || (unsigned char)s[i] >= 0x80)
			return 0;
	return 1;
}

/* The validator's verdict on s[0..n) in both modes, twice; returns the
 * object-mode result, and the any-value one in *any. */
static int check_validate(const char *s, size_t n, size_t *ntok, int *any)
{
	size_t t1 = 0, t2 = 0, ta = 0;
	int r1 = json_validate(s, n, JSON_MODE_OBJECT, &t1);
	int r2 = json_validate(s, n, JSON_MODE_OBJECT, &t2);
	int ra = json_validate(s, n, JSON_MODE_ANY, &ta);

	FUZZ_CHECK(r1 == 0 || r1 == SB_ERR_USAGE);
	FUZZ_CHECK(ra == 0 || ra == SB_ERR_USAGE);
	FUZZ_CHECK(r1 == r2);
	FUZZ_CHECK(json_validate(s, n, JSON_MODE_ANY, NULL) == ra);
	if (r1 == 0) {
		FUZZ_CHECK(t1 == t2 && t1 > 0);
		FUZZ_CHECK(ra == 0 && ta == t1);
	}
	if (ra == 0) {
		/* a valid document has no NUL byte anywhere */
		FUZZ_CHECK(!memchr(s, '\0', n));
	}
	*ntok = t1;
	*any = ra;
	return r1;
}

/* Read every value of a parsed document the ways sshbox does. */
static void walk(const struct json_doc *doc, int deep)
{
	struct buf str = BUF_INIT;
	int i;

	for (i = 0; i < doc->ntok; i++) {
		enum json_type t = json_type(doc, i);
		const char *p = NULL;
		size_t n = 0;
		int64_t iv;
		double dv;
		int r, bv;

		FUZZ_CHECK(t != JSON_INVALID);
		FUZZ_CHECK(json_raw(doc, i, &p, &n) == 0);
		FUZZ_CHECK(p >= doc->js && n <= doc->len && (size_t)(p - doc->js) <= doc->len - n);
		/* every value (and key) is a JSON value by itself; re-validating
		 * each nested span is quadratic in the depth, so big documents
		 * check the root only */
		if (deep || i == JSON_ROOT)
			FUZZ_CHECK(json_validate(p, n, JSON_MODE_ANY, NULL) == 0);
		switch (t) {
		case JSON_STRING:
			buf_reset(&str);
			r = json_get_string(doc, i, &str);
			FUZZ_CHECK(r == 0 || r == SB_ERR_USAGE);
			if (r == 0) {
				FUZZ_CHECK(str.len <= n - 2);   /* unescaping never lengthens */
				FUZZ_CHECK(!str.data || !memchr(str.data, '\0', str.len));
			}
			FUZZ_CHECK(json_strings_equal(doc, i, i));
			break;
		case JSON_NUMBER:
			r = json_get_int64(doc, i, &iv);
			FUZZ_CHECK(r == 0 || r == SB_ERR_USAGE || r == SB_ERR_TOOBIG);
			r = json_get_double(doc, i, &dv);
			FUZZ_CHECK(r == 0 || r == SB_ERR_TOOBIG);
			FUZZ_CHECK(json_get_bool(doc, i, &bv) == SB_ERR_USAGE);
			break;
		case JSON_TRUE:
		case JSON_FALSE:
			FUZZ_CHECK(json_get_bool(doc, i, &bv) == 0 && bv == (t == JSON_TRUE));
			break;
		case JSON_OBJECT:
		case JSON_ARRAY: {
			struct json_iter it;
			size_t count = 0;
			int k, v;

			json_iter_init(doc, i, &it);
			if (t == JSON_OBJECT) {
				while (json_iter_member(doc, &it, &k, &v)) {
					FUZZ_CHECK(k > i && v == k + 1 && v < doc->ntok);
					FUZZ_CHECK(json_type(doc, k) == JSON_STRING);
					count++;
				}
				/* the duplicate check is quadratic: small objects only */
				if (json_count(doc, i) <= 64) {
					k = json_object_dup(doc, i);
					FUZZ_CHECK(k == SB_ERR_NOTFOUND || (k > i && json_type(doc, k) == JSON_STRING));
				}
			} else {
				while (json_iter_elem(doc, &it, &v)) {
					FUZZ_CHECK(v > i && v < doc->ntok);
					count++;
				}
			}
			FUZZ_CHECK(count == json_count(doc, i));
			break;
		}
		default:
			break;
		}
	}
	buf_release(&str);
}

/* What job.c does with a line that is a JSON object: look for a forged
 * sshbox.* type and read a result line's fields. */
static void read_like_job(const struct json_doc *doc)
{
	struct buf type = BUF_INIT;
	const char *p;
	size_t n;
	int t;

	t = json_object_get(doc, JSON_ROOT, "type");
	FUZZ_CHECK(t == SB_ERR_NOTFOUND || (t > 0 && t < doc->ntok));
	if (t >= 0 && json_type(doc, t) == JSON_STRING) {
		int r = json_get_string(doc, t, &type);

		FUZZ_CHECK(r == 0 || r == SB_ERR_USAGE);
		(void)json_string_equals(doc, t, "result");
	}
	if ((t = json_object_get(doc, JSON_ROOT, "session_id")) >= 0)
		FUZZ_CHECK(json_raw(doc, t, &p, &n) == 0);
	if ((t = json_object_get(doc, JSON_ROOT, "total_cost_usd")) >= 0)
		FUZZ_CHECK(json_raw(doc, t, &p, &n) == 0);
	buf_release(&type);
}

/* A complete line of the stream, as on_stdout_line gets it. */
/* json_classify_line's verdict, the slow way */
static enum json_line_kind classify_ref(const struct json_doc *doc)
{
	struct json_iter it;
	struct buf type = BUF_INIT;
	int k, v, sshbox = 0, result = 0;

	json_iter_init(doc, JSON_ROOT, &it);
	while (json_iter_member(doc, &it, &k, &v)) {
		if (!json_string_equals(doc, k, "type"))
			continue;
		buf_reset(&type);
		if (json_get_string(doc, v, &type) != 0)
			continue;
		if (type.len >= 7 && memcmp(type.data, "sshbox.", 7) == 0)
			sshbox = 1;
		else if (type.len == 6 && memcmp(type.data, "result", 6) == 0)
			result = 1;
	}
	buf_release(&type);
	return sshbox ? JSON_LINE_SSHBOX : result ? JSON_LINE_RESULT : JSON_LINE_OBJECT;
}

static void check_line(const char *line, size_t len)
{
	char *copy = fuzz_dup(line, len);   /* exact size: over-reads show */
	struct json_doc doc = JSON_DOC_INIT;
	struct sb_error e = SB_ERROR_INIT;
	struct buf ev = BUF_INIT, back = BUF_INIT;
	size_t ntok = 0;
	int r, any;

	if (check_validate(copy, len, &ntok, &any) == 0) {
		r = json_parse_object(&doc, copy, len, (size_t)1 << 30, &e);
		if (r != 0)
			fprintf(stderr, "fuzz_stream: json_parse_object refused a valid object: %s\n", e.msg);
		FUZZ_CHECK(r == 0);
		FUZZ_CHECK(doc.ntok >= 1 && (size_t)doc.ntok == ntok);
		FUZZ_CHECK(json_type(&doc, JSON_ROOT) == JSON_OBJECT);
		walk(&doc, ntok * len <= (1u << 22));
		read_like_job(&doc);
		FUZZ_CHECK(json_classify_line(copy, len) == classify_ref(&doc));
		/* the limit is enforced, and refusing releases the old doc */
		if (ntok > 1) {
			r = json_parse_object(&doc, copy, len, ntok - 1, &e);
			FUZZ_CHECK(r == SB_ERR_TOOBIG && doc.tok == NULL && doc.ntok == 0);
		}
		json_doc_release(&doc);
		FUZZ_CHECK(json_obj_raw(&ev, "x", copy, len) == 0);
		buf_reset(&ev);
	} else {
		r = json_parse_object(&doc, copy, len, (size_t)1 << 30, &e);
		FUZZ_CHECK(r == SB_ERR_USAGE && fuzz_error_ok(&e, r) && doc.tok == NULL);
		FUZZ_CHECK(json_classify_line(copy, len) == JSON_LINE_INVALID);
		/* a valid value that is not an object is still raw JSON */
		r = json_obj_raw(&ev, "x", copy, len);
		FUZZ_CHECK(any == 0 ? r == 0 : (r == SB_ERR_USAGE && ev.len == 0));
		buf_reset(&ev);
	}

	/* the line wrapped as an event, as emit_line does */
	FUZZ_CHECK(json_obj_begin(&ev) == 0 && json_obj_cstr(&ev, "type", "sshbox.stdout") == 0 &&
		   json_obj_string(&ev, "line", copy, len) == 0 && json_obj_end(&ev) == 0);
	FUZZ_CHECK(json_validate(ev.data, ev.len, JSON_MODE_OBJECT, NULL) == 0);
	FUZZ_CHECK(json_parse_object(&doc, ev.data, ev.len, 16, NULL) == 0);
	r = json_get_string(&doc, json_object_get(&doc, JSON_ROOT, "line"), &back);
	if (is_ascii_no_nul(copy, len))
		FUZZ_CHECK(r == 0 && back.len == len && (len == 0 || memcmp(back.data, copy, len) == 0));
	else
		FUZZ_CHECK(r == 0 || (r == SB_ERR_USAGE && memchr(copy, '\0', len)));
	json_doc_release(&doc);
	buf_release(&back);
	buf_release(&ev);
	free(copy);
}

static void on_line(void *ctx, const char *line, size_t len)
{
	struct pass *p = ctx;

	FUZZ_CHECK(len <= p->max);
	FUZZ_CHECK(p->off <= p->size && len <= p->size - p->off);
	FUZZ_CHECK(len == 0 || memcmp(line, p->data + p->off, len) == 0);
	FUZZ_CHECK(p->off + len == p->size || p->data[p->off + len] == '\n');
	p->off += len + 1;
	p->lines++;
	if (p->check_json)
		check_line(line, len);
}

static void on_drop(void *ctx, size_t len)
{
	struct pass *p = ctx;

	FUZZ_CHECK(len > p->max);
	FUZZ_CHECK(p->off <= p->size && len <= p->size - p->off);
	FUZZ_CHECK(p->off + len == p->size || p->data[p->off + len] == '\n');
	p->off += len + 1;
	p->drops++;
}

static void check_held(const struct ndjson *f, size_t max)
{
	FUZZ_CHECK(ndjson_pending(f) <= max);
	FUZZ_CHECK(ndjson_allocated(f) <= max);
	FUZZ_CHECK(ndjson_pending(f) <= ndjson_allocated(f));
}

/* Every byte of the stream was a line's, a drop's or a '\n'. */
static void check_end(const struct pass *p, const struct ndjson *f)
{
	size_t want = p->size + (p->size && p->data[p->size - 1] != '\n');

	FUZZ_CHECK(p->off == want);
	FUZZ_CHECK(ndjson_pending(f) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t chunk[8], nchunk = 1, hdr = 0, max = 65536, pos, i;
	struct pass a, b;
	struct ndjson *f;
	int r;

	chunk[0] = size ? size : 1;
	if (size >= 2 && size >= 2 + 1 + (size_t)data[1] % 8) {
		max = max_lines[data[0] % N_MAX_LINES];
		nchunk = 1 + (size_t)data[1] % 8;
		for (i = 0; i < nchunk; i++) {
			unsigned v = data[2 + i];

			chunk[i] = v < 0xf0 ? v + 1 : (size_t)1 << (v - 0xe8);
		}
		hdr = 2 + nchunk;
	}

	/* the whole input as one document (the JSONTestSuite files) */
	{
		char *copy = fuzz_dup(data, size);
		size_t ntok;
		int any;

		if (check_validate(copy, size, &ntok, &any) == 0) {
			struct json_doc doc = JSON_DOC_INIT;

			FUZZ_CHECK(json_parse_object(&doc, copy, size, (size_t)1 << 30, NULL) == 0);
			FUZZ_CHECK((size_t)doc.ntok == ntok);
			json_doc_release(&doc);
		}
		free(copy);
	}

	f = ndjson_new(max);
	FUZZ_CHECK(f != NULL);
	FUZZ_CHECK(ndjson_pending(f) == 0 && ndjson_allocated(f) == 0);

	/* as read() hands it over: chunks of the sizes above, each in its own
	 * exact-size allocation, so a line handed out in place cannot be read
	 * past its chunk unnoticed */
	memset(&a, 0, sizeof(a));
	a.data = data + hdr;
	a.size = size - hdr;
	a.max = max;
	a.check_json = 1;
	for (pos = 0, i = 0; pos < a.size; i = (i + 1) % nchunk) {
		size_t n = chunk[i] < a.size - pos ? chunk[i] : a.size - pos;
		char *c = fuzz_dup(a.data + pos, n);

		r = ndjson_feed(f, c, n, on_line, on_drop, &a);
		free(c);
		FUZZ_CHECK(r == 0);
		check_held(f, max);
		pos += n;
	}
	ndjson_finish(f, on_line, on_drop, &a);
	check_end(&a, f);
	check_held(f, max);

	/* the same framer again, the whole stream in one read */
	memset(&b, 0, sizeof(b));
	b.data = a.data;
	b.size = a.size;
	b.max = max;
	if (b.size) {
		char *c = fuzz_dup(b.data, b.size);

		FUZZ_CHECK(ndjson_feed(f, c, b.size, on_line, on_drop, &b) == 0);
		check_held(f, max);
		free(c);
	}
	ndjson_finish(f, on_line, on_drop, &b);
	check_end(&b, f);
	FUZZ_CHECK(a.lines == b.lines && a.drops == b.drops);

	/* an empty feed and an empty finish are no-ops */
	FUZZ_CHECK(ndjson_feed(f, "", 0, on_line, on_drop, &b) == 0);
	ndjson_finish(f, on_line, on_drop, &b);
	FUZZ_CHECK(a.lines == b.lines && a.drops == b.drops);
	ndjson_free(f);
	return 0;
}
