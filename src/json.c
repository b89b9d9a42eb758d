#include "json.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The one translation unit that implements jsmn (JSMN_STRICT and
 * JSMN_PARENT_LINKS come from the build).  Not static, so a unit test can
 * compare our token counts with jsmn's through JSMN_HEADER. */
#include <jsmn.h>

struct json_tokens {
	size_t n;
	jsmntok_t t[];
};

/* ---- validator ----
 *
 * One pass, no recursion: `stack` remembers for each open container whether
 * it is an object.  Strings, the bulk of Claude's stream-json lines, are
 * scanned eight bytes at a time. */

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

struct vstate {
	const unsigned char *at;   /* where it failed */
	const char *why;
};

/* What json_classify_line() needs of the top-level "type" members, noted
 * during validation so that a stream line is read once. */
struct vtop {
	int pending;        /* the last top-level key was "type" */
	int escaped;        /* a top-level key, or a "type" value, has escapes */
	int sshbox;         /* a "type" value starts with "sshbox." */
	int result;         /* a "type" value is "result" */
};

static inline uint64_t load64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* High bit set in a byte of the result for '"', '\\', < 0x20 or >= 0x80.
 * Borrows only run upwards, so the lowest set bit is always exact. */
static inline uint64_t str_special(uint64_t x)
{
	uint64_t q = (x ^ (ONES * '"')) - ONES;
	uint64_t b = (x ^ (ONES * '\\')) - ONES;
	uint64_t c = x - ONES * 0x20;

	return (q | b | c | x) & HIGHS;
}

static inline size_t first_special(uint64_t m)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return (size_t)__builtin_ctzll(m) >> 3;
#else
	(void)m;
	return 0;   /* the byte loop finds it */
#endif
}

/* Length (2..4) of the valid UTF-8 sequence at p, whose lead byte is
 * >= 0x80, or 0; then *bad is the length of the maximal invalid subpart
 * (Unicode's "U+FFFD substitution of maximal subparts"). */
static inline size_t utf8_seq(const unsigned char *p, const unsigned char *end, size_t *bad)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		*bad = 1;
		return 0;
	}
	if ((size_t)(end - p) < 2 || p[1] < lo || p[1] > hi) {
		*bad = 1;
		return 0;
	}
	for (i = 2; i < n; i++) {
		if (p + i >= end || (p[i] & 0xc0) != 0x80) {
			*bad = i;
			return 0;
		}
	}
	return n;
}

static inline int is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* p is just past the opening quote; returns just past the closing one. */
static const unsigned char *scan_string(const unsigned char *p, const unsigned char *end,
					struct vstate *st)
{
	size_t bad, n;
	unsigned char c;

	for (;;) {
		if (end - p >= 8) {
			uint64_t m = str_special(load64(p));

			if (!m) {
				p += 8;
				continue;
			}
			p += first_special(m);
		} else if (p == end) {
			st->why = "unterminated string";
			st->at = p;
			return NULL;
		}
		c = *p;
		if (c == '"')
			return p + 1;
		if (c == '\\') {
			if (end - p < 2)
				goto unterminated;
			switch (p[1]) {
			case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
				p += 2;
				continue;
			case 'u':
				if (end - p < 6 || !is_hex(p[2]) || !is_hex(p[3]) || !is_hex(p[4]) ||
				    !is_hex(p[5])) {
					st->why = "bad \\u escape";
					st->at = p;
					return NULL;
				}
				p += 6;
				continue;
			default:
				st->why = "bad escape";
				st->at = p;
				return NULL;
			}
		}
		if (c < 0x20) {
			st->why = c ? "control character in string" : "NUL byte";
			st->at = p;
			return NULL;
		}
		if (c < 0x80) {
			p++;
			continue;
		}
		n = utf8_seq(p, end, &bad);
		if (!n) {
			st->why = "invalid UTF-8";
			st->at = p;
			return NULL;
		}
		p += n;
	}
unterminated:
	st->why = "unterminated string";
	st->at = p;
	return NULL;
}

static const unsigned char *scan_number(const unsigned char *p, const unsigned char *end,
					struct vstate *st)
{
	if (*p == '-')
		p++;
	if (p < end && *p == '0') {
		p++;
	} else if (p < end && *p >= '1' && *p <= '9') {
		while (++p < end && *p >= '0' && *p <= '9')
			;
	} else {
		goto bad;
	}
	if (p < end && *p == '.') {
		if (++p >= end || *p < '0' || *p > '9')
			goto bad;
		while (++p < end && *p >= '0' && *p <= '9')
			;
	}
	if (p < end && (*p | 0x20) == 'e') {
		if (++p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || *p < '0' || *p > '9')
			goto bad;
		while (++p < end && *p >= '0' && *p <= '9')
			;
	}
	return p;
bad:
	st->why = "bad number";
	st->at = p;
	return NULL;
}

static inline const unsigned char *skip_ws(const unsigned char *p, const unsigned char *end)
{
	while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	return p;
}

static void note_type(struct vtop *top, const unsigned char *v, size_t n)
{
	top->pending = 0;
	if (memchr(v, '\\', n))
		top->escaped = 1;
	else if (n >= 7 && memcmp(v, "sshbox.", 7) == 0)
		top->sshbox = 1;
	else if (n == 6 && memcmp(v, "result", 6) == 0)
		top->result = 1;
}

static SB_MUST_CHECK int validate(const char *s, size_t len, enum json_mode mode, size_t *ntokens,
		    struct vstate *st, struct vtop *top)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	unsigned char stack[JSON_MAX_DEPTH];
	size_t depth = 0, ntok = 0;

	st->why = NULL;
	p = skip_ws(p, end);
	if (mode == JSON_MODE_OBJECT && (p == end || *p != '{')) {
		st->why = "not a JSON object";
		st->at = p;
		return SB_ERR_USAGE;
	}
value:
	if (p == end) {
		st->why = "unexpected end";
		goto fail;
	}
	switch (*p) {
	case '{':
	case '[':
		if (depth == JSON_MAX_DEPTH) {
			st->why = "nested too deeply";
			goto fail;
		}
		ntok++;
		stack[depth++] = *p == '{';
		p = skip_ws(p + 1, end);
		if (p < end && *p == (stack[depth - 1] ? '}' : ']')) {
			p++;
			depth--;
			goto after_value;
		}
		if (stack[depth - 1])
			goto key;
		goto value;
	case '"':
		ntok++;
		if (top && top->pending && depth == 1) {
			const unsigned char *vs = p + 1;

			if (!(p = scan_string(p + 1, end, st)))
				return SB_ERR_USAGE;
			note_type(top, vs, (size_t)(p - 1 - vs));
			goto after_value;
		}
		if (!(p = scan_string(p + 1, end, st)))
			return SB_ERR_USAGE;
		goto after_value;
	case 't':
		if (end - p < 4 || memcmp(p, "true", 4) != 0)
			goto bad_literal;
		p += 4;
		ntok++;
		goto after_value;
	case 'f':
		if (end - p < 5 || memcmp(p, "false", 5) != 0)
			goto bad_literal;
		p += 5;
		ntok++;
		goto after_value;
	case 'n':
		if (end - p < 4 || memcmp(p, "null", 4) != 0)
			goto bad_literal;
		p += 4;
		ntok++;
		goto after_value;
	case '-': case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9':
		ntok++;
		if (!(p = scan_number(p, end, st)))
			return SB_ERR_USAGE;
		goto after_value;
	default:
		st->why = *p ? "expected a value" : "NUL byte";
		goto fail;
	}
after_value:
	p = skip_ws(p, end);
	if (!depth) {
		if (p != end) {
			st->why = *p ? "trailing bytes after the value" : "NUL byte";
			goto fail;
		}
		if (ntokens)
			*ntokens = ntok;
		return 0;
	}
	if (p == end) {
		st->why = "unexpected end";
		goto fail;
	}
	if (*p == ',') {
		p = skip_ws(p + 1, end);
		if (stack[depth - 1])
			goto key;
		goto value;
	}
	if (*p == (stack[depth - 1] ? '}' : ']')) {
		p++;
		depth--;
		goto after_value;
	}
	st->why = stack[depth - 1] ? "expected ',' or '}'" : "expected ',' or ']'";
	goto fail;
key:
	if (p == end || *p != '"') {
		st->why = "expected a string key";
		goto fail;
	}
	ntok++;
	if (top && depth == 1) {
		const unsigned char *ks = p + 1;

		if (!(p = scan_string(p + 1, end, st)))
			return SB_ERR_USAGE;
		top->pending = p - 1 - ks == 4 && memcmp(ks, "type", 4) == 0;
		if (!top->pending && memchr(ks, '\\', (size_t)(p - 1 - ks)))
			top->escaped = 1;   /* it could spell "type" */
	} else if (!(p = scan_string(p + 1, end, st))) {
		return SB_ERR_USAGE;
	}
	p = skip_ws(p, end);
	if (p == end || *p != ':') {
		st->why = "expected ':'";
		goto fail;
	}
	p = skip_ws(p + 1, end);
	goto value;

bad_literal:
	st->why = "bad literal";
fail:
	st->at = p;
	return SB_ERR_USAGE;
}

int json_validate(const char *s, size_t len, enum json_mode mode, size_t *ntokens)
{
	struct vstate st;

	return validate(s, len, mode, ntokens, &st, NULL);
}

/* ---- documents ---- */

static enum json_line_kind classify_escaped(const char *s, size_t len);

enum json_line_kind json_classify_line(const char *s, size_t len)
{
	struct vstate st;
	struct vtop top = { 0, 0, 0, 0 };

	if (validate(s, len, JSON_MODE_OBJECT, NULL, &st, &top))
		return JSON_LINE_INVALID;
	if (top.escaped)
		return classify_escaped(s, len);
	return top.sshbox ? JSON_LINE_SSHBOX : top.result ? JSON_LINE_RESULT : JSON_LINE_OBJECT;
}


void json_doc_release(struct json_doc *doc)
{
	free(doc->tok);
	doc->js = NULL;
	doc->len = 0;
	doc->tok = NULL;
	doc->ntok = 0;
}

int json_parse_object(struct json_doc *doc, const char *s, size_t len, size_t max_tokens,
		      struct sb_error *e)
{
	struct vstate st;
	struct json_tokens *tok;
	jsmn_parser parser;
	size_t ntok;
	int r;

	json_doc_release(doc);
	if (len > INT_MAX)
		return sb_error_set(e, SB_ERR_TOOBIG, "JSON document of %zu bytes is too large", len);
	if (validate(s, len, JSON_MODE_OBJECT, &ntok, &st, NULL))
		return sb_error_set(e, SB_ERR_USAGE, "invalid JSON at byte %zu: %s",
				    (size_t)(st.at - (const unsigned char *)s), st.why);
	if (ntok > max_tokens)
		return sb_error_set(e, SB_ERR_TOOBIG, "JSON document has %zu tokens, more than the limit of %zu",
				    ntok, max_tokens);
	tok = ntok <= (SIZE_MAX - sizeof(*tok)) / sizeof(jsmntok_t) ?
		malloc(sizeof(*tok) + ntok * sizeof(jsmntok_t)) : NULL;
	if (!tok)
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory for %zu JSON tokens", ntok);
	tok->n = ntok;
	jsmn_init(&parser);
	r = jsmn_parse(&parser, s, len, tok->t, (unsigned int)ntok);
	if (r < 0 || (size_t)r != ntok) {
		free(tok);
		return sb_error_set(e, SB_ERR_INTERNAL, "jsmn made %d tokens of a valid document, expected %zu",
				    r, ntok);
	}
	doc->js = s;
	doc->len = len;
	doc->tok = tok;
	doc->ntok = r;
	return 0;
}

static const jsmntok_t *tok_at(const struct json_doc *doc, int v)
{
	if (!doc || !doc->tok || v < 0 || v >= doc->ntok)
		return NULL;
	return &doc->tok->t[v];
}

enum json_type json_type(const struct json_doc *doc, int v)
{
	const jsmntok_t *t = tok_at(doc, v);

	if (!t)
		return JSON_INVALID;
	switch (t->type) {
	case JSMN_OBJECT:
		return JSON_OBJECT;
	case JSMN_ARRAY:
		return JSON_ARRAY;
	case JSMN_STRING:
		return JSON_STRING;
	case JSMN_PRIMITIVE:
		switch (doc->js[t->start]) {
		case 't': return JSON_TRUE;
		case 'f': return JSON_FALSE;
		case 'n': return JSON_NULL;
		default: return JSON_NUMBER;
		}
	default:
		return JSON_INVALID;
	}
}

size_t json_count(const struct json_doc *doc, int v)
{
	const jsmntok_t *t = tok_at(doc, v);

	if (!t || (t->type != JSMN_OBJECT && t->type != JSMN_ARRAY))
		return 0;
	return (size_t)t->size;
}

int json_raw(const struct json_doc *doc, int v, const char **p, size_t *len)
{
	const jsmntok_t *t = tok_at(doc, v);
	int q;

	if (!t)
		return SB_ERR_INTERNAL;
	q = t->type == JSMN_STRING;
	*p = doc->js + t->start - q;
	*len = (size_t)(t->end - t->start + 2 * q);
	return 0;
}

/* The token after v and everything inside it.  Tokens are in document
 * order and a container's descendants all start before its end, so its
 * next sibling is the first later token starting at or after its end. */
static SB_MUST_CHECK int tok_after(const struct json_doc *doc, int v)
{
	const jsmntok_t *t = doc->tok->t;
	int lo = v + 1, hi = doc->ntok, end;

	if (t[v].type != JSMN_OBJECT && t[v].type != JSMN_ARRAY)
		return v + 1;
	end = t[v].end;
	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;

		if (t[mid].start < end)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void json_iter_init(const struct json_doc *doc, int v, struct json_iter *it)
{
	const jsmntok_t *t = tok_at(doc, v);

	it->next = v + 1;
	it->left = 0;
	it->kind = 0;
	if (t && (t->type == JSMN_OBJECT || t->type == JSMN_ARRAY)) {
		it->left = (size_t)t->size;
		it->kind = t->type;
	}
}

int json_iter_member(const struct json_doc *doc, struct json_iter *it, int *key, int *val)
{
	if (!it->left || it->kind != JSMN_OBJECT || it->next + 1 >= doc->ntok)
		return 0;
	*key = it->next;
	*val = it->next + 1;
	it->next = tok_after(doc, *val);
	it->left--;
	return 1;
}

int json_iter_elem(const struct json_doc *doc, struct json_iter *it, int *val)
{
	if (!it->left || it->kind != JSMN_ARRAY || it->next >= doc->ntok)
		return 0;
	*val = it->next;
	it->next = tok_after(doc, *val);
	it->left--;
	return 1;
}

/* ---- unescaping ---- */

static unsigned hex4(const char *p)
{
	unsigned v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		unsigned char c = (unsigned char)p[i];

		v <<= 4;
		if (c <= '9')
			v |= c - '0';
		else
			v |= (c | 0x20) - 'a' + 10;
	}
	return v;
}

static size_t utf8_put(unsigned char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char)(0xc0 | cp >> 6);
		o[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (unsigned char)(0xe0 | cp >> 12);
		o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (unsigned char)(0xf0 | cp >> 18);
	o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

/* A validated string's contents, decoded piece by piece: runs without
 * escapes are handed out in place, each escape as 1-4 bytes in tmp.  A
 * lone surrogate comes out as its 3-byte (WTF-8) form, which raw UTF-8 can
 * never contain, so comparisons stay exact; it and "\u0000" set unsafe. */
struct ustr {
	const char *p, *end;
	int plain;            /* bytes as they are (a C string), no escapes */
	int unsafe;
	unsigned char tmp[4];
};

static void ustr_init_tok(struct ustr *u, const struct json_doc *doc, const jsmntok_t *t)
{
	u->p = doc->js + t->start;
	u->end = doc->js + t->end;
	u->plain = 0;
	u->unsafe = 0;
}

static size_t ustr_next(struct ustr *u, const char **out)
{
	const char *p = u->p, *q;
	unsigned cp;

	if (p >= u->end)
		return 0;
	if (u->plain || *p != '\\') {
		q = u->plain ? u->end : memchr(p, '\\', (size_t)(u->end - p));
		if (!q)
			q = u->end;
		*out = p;
		u->p = q;
		return (size_t)(q - p);
	}
	*out = (const char *)u->tmp;
	if (u->end - p < 2) {   /* cannot happen after validation */
		u->p = u->end;
		u->unsafe = 1;
		return 0;
	}
	u->p = p + 2;
	switch (p[1]) {
	case 'b': u->tmp[0] = '\b'; return 1;
	case 'f': u->tmp[0] = '\f'; return 1;
	case 'n': u->tmp[0] = '\n'; return 1;
	case 'r': u->tmp[0] = '\r'; return 1;
	case 't': u->tmp[0] = '\t'; return 1;
	case 'u': break;
	default: u->tmp[0] = (unsigned char)p[1]; return 1;
	}
	if (u->end - p < 6) {
		u->p = u->end;
		u->unsafe = 1;
		return 0;
	}
	cp = hex4(p + 2);
	u->p = p + 6;
	if (cp >= 0xd800 && cp <= 0xdbff && u->end - p >= 12 && p[6] == '\\' && p[7] == 'u') {
		unsigned lo = hex4(p + 8);

		if (lo >= 0xdc00 && lo <= 0xdfff) {
			u->p = p + 12;
			return utf8_put(u->tmp, 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00));
		}
	}
	if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff))
		u->unsafe = 1;
	return utf8_put(u->tmp, cp);
}

static SB_MUST_CHECK int ustr_equal(struct ustr *a, struct ustr *b)
{
	const char *pa = NULL, *pb = NULL;
	size_t na = 0, nb = 0, m;

	for (;;) {
		if (!na)
			na = ustr_next(a, &pa);
		if (!nb)
			nb = ustr_next(b, &pb);
		if (!na || !nb)
			return !na && !nb;
		m = na < nb ? na : nb;
		if (memcmp(pa, pb, m) != 0)
			return 0;
		pa += m;
		pb += m;
		na -= m;
		nb -= m;
	}
}

int json_string_equals(const struct json_doc *doc, int v, const char *s)
{
	const jsmntok_t *t = tok_at(doc, v);
	struct ustr a, b;
	size_t n = strlen(s);

	if (!t || t->type != JSMN_STRING)
		return 0;
	ustr_init_tok(&a, doc, t);
	if ((size_t)(t->end - t->start) == n && !memchr(a.p, '\\', n))
		return memcmp(a.p, s, n) == 0;
	b.p = s;
	b.end = s + n;
	b.plain = 1;
	b.unsafe = 0;
	return ustr_equal(&a, &b);
}

int json_strings_equal(const struct json_doc *doc, int x, int y)
{
	const jsmntok_t *tx = tok_at(doc, x), *ty = tok_at(doc, y);
	struct ustr a, b;

	if (!tx || !ty || tx->type != JSMN_STRING || ty->type != JSMN_STRING)
		return 0;
	ustr_init_tok(&a, doc, tx);
	ustr_init_tok(&b, doc, ty);
	return ustr_equal(&a, &b);
}

int json_object_get(const struct json_doc *doc, int obj, const char *key)
{
	struct json_iter it;
	int k, v;

	json_iter_init(doc, obj, &it);
	while (json_iter_member(doc, &it, &k, &v))
		if (json_string_equals(doc, k, key))
			return v;
	return SB_ERR_NOTFOUND;
}

int json_object_dup(const struct json_doc *doc, int obj)
{
	struct json_iter it, it2;
	int k, v, k2, v2;

	json_iter_init(doc, obj, &it);
	while (json_iter_member(doc, &it, &k, &v)) {
		json_iter_init(doc, obj, &it2);
		while (json_iter_member(doc, &it2, &k2, &v2) && k2 < k)
			if (json_strings_equal(doc, k, k2))
				return k;
	}
	return SB_ERR_NOTFOUND;
}

int json_get_string(const struct json_doc *doc, int v, struct buf *out)
{
	const jsmntok_t *t = tok_at(doc, v);
	size_t n, len = 0;
	struct ustr u;
	const char *piece;
	int r;

	if (!t || t->type != JSMN_STRING)
		return SB_ERR_USAGE;
	/* A bounded buffer limits the string's bytes, not its escaped spelling
	 * ("\u4e2d" is 6 bytes of JSON and 3 of UTF-8; Python's json.dumps
	 * escapes every non-ASCII character): count them first. */
	ustr_init_tok(&u, doc, t);
	while ((n = ustr_next(&u, &piece)) && !u.unsafe)
		len += n;
	if (u.unsafe)
		return SB_ERR_USAGE;
	if ((r = buf_reserve(out, len)))
		return r;
	ustr_init_tok(&u, doc, t);
	while ((n = ustr_next(&u, &piece))) {
		memcpy(out->data + out->len, piece, n);
		out->len += n;
	}
	out->data[out->len] = '\0';
	return 0;
}

int json_get_int64(const struct json_doc *doc, int v, int64_t *out)
{
	const jsmntok_t *t = tok_at(doc, v);
	const char *p, *end;
	uint64_t acc = 0, limit = (uint64_t)INT64_MAX;
	int neg = 0;

	if (json_type(doc, v) != JSON_NUMBER)
		return SB_ERR_USAGE;
	p = doc->js + t->start;
	end = doc->js + t->end;
	if (*p == '-') {
		neg = 1;
		limit++;
		p++;
	}
	for (; p < end; p++) {
		unsigned d;

		if (*p < '0' || *p > '9')
			return SB_ERR_USAGE;
		d = (unsigned)(*p - '0');
		if (acc > (limit - d) / 10)
			return SB_ERR_TOOBIG;
		acc = acc * 10 + d;
	}
	if (neg)
		*out = acc ? -(int64_t)(acc - 1) - 1 : 0;
	else
		*out = (int64_t)acc;
	return 0;
}

int json_get_double(const struct json_doc *doc, int v, double *out)
{
	const jsmntok_t *t = tok_at(doc, v);
	char small[64], *copy = small, *end;
	size_t n;
	double d;
	int r = 0;

	if (json_type(doc, v) != JSON_NUMBER)
		return SB_ERR_USAGE;
	n = (size_t)(t->end - t->start);
	if (n >= sizeof(small) && !(copy = malloc(n + 1)))
		return SB_ERR_NOMEM;
	memcpy(copy, doc->js + t->start, n);
	copy[n] = '\0';
	errno = 0;
	d = strtod(copy, &end);
	if (end != copy + n)
		r = SB_ERR_INTERNAL;
	else if (errno == ERANGE && isinf(d))
		r = SB_ERR_TOOBIG;
	else
		*out = d;
	if (copy != small)
		free(copy);
	return r;
}

int json_get_bool(const struct json_doc *doc, int v, int *out)
{
	switch (json_type(doc, v)) {
	case JSON_TRUE:
		*out = 1;
		return 0;
	case JSON_FALSE:
		*out = 0;
		return 0;
	default:
		return SB_ERR_USAGE;
	}
}

/* ---- writers ---- */

/* 0: copy as is; 1: escape; 2: first byte of a multi-byte sequence (check). */
static const unsigned char wclass[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   /* '"' */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,   /* '\\' */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

static SB_MUST_CHECK int put_string(struct buf *b, const char *s, size_t len)
{
	static const char hexd[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s, *end = p + len, *run;
	char esc[6] = { '\\', 'u', '0', '0', 0, 0 };
	size_t n, bad = 1;
	int r;

	/* the output is never shorter than the input plus its quotes */
	if ((r = buf_reserve(b, len + 2)))
		return r;
	if ((r = buf_putc(b, '"')))
		return r;
	while (p < end) {
		run = p;
		for (;;) {
			while (p < end && !wclass[*p])
				p++;
			if (p < end && wclass[*p] == 2 && (n = utf8_seq(p, end, &bad))) {
				p += n;
				continue;
			}
			break;
		}
		if (p > run && (r = buf_append(b, run, (size_t)(p - run))))
			return r;
		if (p == end)
			break;
		if (wclass[*p] == 2) {
			utf8_seq(p, end, &bad);
			r = buf_append(b, "\xef\xbf\xbd", 3);
			p += bad;
		} else {
			switch (*p) {
			case '"': r = buf_append(b, "\\\"", 2); break;
			case '\\': r = buf_append(b, "\\\\", 2); break;
			case '\b': r = buf_append(b, "\\b", 2); break;
			case '\f': r = buf_append(b, "\\f", 2); break;
			case '\n': r = buf_append(b, "\\n", 2); break;
			case '\r': r = buf_append(b, "\\r", 2); break;
			case '\t': r = buf_append(b, "\\t", 2); break;
			default:
				esc[4] = hexd[*p >> 4];
				esc[5] = hexd[*p & 15];
				r = buf_append(b, esc, 6);
			}
			p++;
		}
		if (r)
			return r;
	}
	return buf_putc(b, '"');
}

/* Writers are all-or-nothing: a failed append puts b back as it was. */
static SB_MUST_CHECK int undo(struct buf *b, size_t old_len, int r)
{
	if (r) {
		b->len = old_len;
		if (b->data)
			b->data[old_len] = '\0';
	}
	return r;
}

int json_put_string(struct buf *b, const char *s, size_t len)
{
	size_t old = b->len;

	return undo(b, old, put_string(b, s, len));
}

static SB_MUST_CHECK int put_int64(struct buf *b, int64_t v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);

	return buf_append(b, tmp, (size_t)n);
}

int json_put_int64(struct buf *b, int64_t v)
{
	size_t old = b->len;

	return undo(b, old, put_int64(b, v));
}

static SB_MUST_CHECK int put_double(struct buf *b, double v)
{
	char tmp[40];
	int n;

	if (!isfinite(v))
		return buf_append(b, "null", 4);
	n = snprintf(tmp, sizeof(tmp), "%.15g", v);
	if (strtod(tmp, NULL) != v)
		n = snprintf(tmp, sizeof(tmp), "%.17g", v);
	return buf_append(b, tmp, (size_t)n);
}

int json_put_double(struct buf *b, double v)
{
	size_t old = b->len;

	return undo(b, old, put_double(b, v));
}

int json_obj_begin(struct buf *b)
{
	return buf_putc(b, '{');
}

int json_obj_end(struct buf *b)
{
	return buf_putc(b, '}');
}

static SB_MUST_CHECK int put_key(struct buf *b, const char *key)
{
	int r;

	if (b->len && b->data[b->len - 1] != '{' && (r = buf_putc(b, ',')))
		return r;
	if ((r = put_string(b, key, strlen(key))))
		return r;
	return buf_putc(b, ':');
}

static SB_MUST_CHECK int obj_string(struct buf *b, const char *key, const char *s, size_t len)
{
	int r = put_key(b, key);

	return r ? r : put_string(b, s, len);
}

int json_obj_string(struct buf *b, const char *key, const char *s, size_t len)
{
	size_t old = b->len;

	return undo(b, old, obj_string(b, key, s, len));
}

int json_obj_cstr(struct buf *b, const char *key, const char *s)
{
	size_t old = b->len;

	if (!s)
		return json_obj_null(b, key);
	return undo(b, old, obj_string(b, key, s, strlen(s)));
}

static SB_MUST_CHECK int obj_int64(struct buf *b, const char *key, int64_t v)
{
	int r = put_key(b, key);

	return r ? r : put_int64(b, v);
}

int json_obj_int64(struct buf *b, const char *key, int64_t v)
{
	size_t old = b->len;

	return undo(b, old, obj_int64(b, key, v));
}

static SB_MUST_CHECK int obj_double(struct buf *b, const char *key, double v)
{
	int r = put_key(b, key);

	return r ? r : put_double(b, v);
}

int json_obj_double(struct buf *b, const char *key, double v)
{
	size_t old = b->len;

	return undo(b, old, obj_double(b, key, v));
}

static SB_MUST_CHECK int obj_raw(struct buf *b, const char *key, const char *raw, size_t len)
{
	int r = put_key(b, key);

	return r ? r : buf_append(b, raw, len);
}

int json_obj_bool(struct buf *b, const char *key, int v)
{
	size_t old = b->len;

	return undo(b, old, obj_raw(b, key, v ? "true" : "false", v ? 4 : 5));
}

int json_obj_null(struct buf *b, const char *key)
{
	size_t old = b->len;

	return undo(b, old, obj_raw(b, key, "null", 4));
}

int json_obj_raw(struct buf *b, const char *key, const char *raw, size_t len)
{
	size_t old = b->len;

	if (json_validate(raw, len, JSON_MODE_ANY, NULL))
		return SB_ERR_USAGE;
	return undo(b, old, obj_raw(b, key, raw, len));
}

/* json_classify_line's rare path: a top-level key or "type" value spelled
 * with escapes ("\u0074ype"), compared once decoded.  Out of memory is
 * read as "sshbox." (the line is wrapped, never passed on unchecked). */
static enum json_line_kind classify_escaped(const char *s, size_t len)
{
	struct json_doc doc = JSON_DOC_INIT;
	struct json_iter it;
	struct buf type = BUF_INIT;
	enum json_line_kind kind = JSON_LINE_OBJECT;
	int k, v;

	if (json_parse_object(&doc, s, len, SIZE_MAX, NULL) != 0)
		return JSON_LINE_SSHBOX;
	json_iter_init(&doc, JSON_ROOT, &it);
	while (kind != JSON_LINE_SSHBOX && json_iter_member(&doc, &it, &k, &v)) {
		if (!json_string_equals(&doc, k, "type") || json_type(&doc, v) != JSON_STRING)
			continue;
		buf_reset(&type);
		if (json_get_string(&doc, v, &type) != 0)
			continue;   /* "\u0000" or a lone surrogate: no sshbox type */
		if (type.len >= 7 && memcmp(type.data, "sshbox.", 7) == 0)
			kind = JSON_LINE_SSHBOX;
		else if (strcmp(buf_cstr(&type), "result") == 0)
			kind = JSON_LINE_RESULT;
	}
	buf_release(&type);
	json_doc_release(&doc);
	return kind;
}
