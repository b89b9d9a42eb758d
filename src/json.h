/* layer 1: strict JSON: an RFC 8259 + UTF-8 validator, jsmn tokens behind
 * typed getters, and writers for NDJSON events.
 *
 * jsmn tokenizes but does not validate (strict mode still accepts many
 * invalid documents), so every
 * document passes json_validate() first; its token count sizes the single
 * jsmn pass exactly.  jsmn is compiled into json.c only: no other file needs
 * jsmn.h.
 *
 * A parsed document points into the caller's bytes (they must outlive it)
 * and names values by index; JSON_ROOT is the top-level object.  Functions
 * return 0 (or an index >= 0) or a negative SB_ERR_*. */
#ifndef SSHBOX_JSON_H
#define SSHBOX_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define JSON_MAX_DEPTH 512

enum json_mode {
	JSON_MODE_ANY = 0,      /* any single value */
	JSON_MODE_OBJECT = 1,   /* the value must be an object */
};

/* Is s[0..len) exactly one JSON value: RFC 8259 grammar, strict UTF-8 (no
 * overlongs, no encoded surrogates, <= U+10FFFF), no raw control characters
 * in strings, no NUL byte anywhere, nesting <= JSON_MAX_DEPTH, and only
 * ' ' \t \r \n around it?  Escaped lone surrogates ("\ud800") are valid
 * syntax and accepted.  On success returns 0 and, if ntokens is not NULL,
 * stores the number of tokens jsmn makes of it (objects + arrays + strings
 * including keys + numbers and literals).  Otherwise SB_ERR_USAGE. */
SB_MUST_CHECK int json_validate(const char *s, size_t len, enum json_mode mode, size_t *ntokens);

/* What a line of Claude Code's stream is, in one validating pass (the
 * stream's hot path: issue 7 wants it at >= 500 MB/s on one core):
 *   JSON_LINE_INVALID  not a valid JSON object
 *   JSON_LINE_SSHBOX   an object with a top-level "type" that starts with
 *                      "sshbox." (it would pass for one of sshbox's events)
 *   JSON_LINE_RESULT   an object whose top-level "type" is "result"
 *   JSON_LINE_OBJECT   any other object
 * Duplicate "type" members all count (SSHBOX wins over RESULT); keys and
 * values with escapes are compared unescaped (a slower, rare path). */
enum json_line_kind { JSON_LINE_INVALID = 0, JSON_LINE_SSHBOX, JSON_LINE_RESULT, JSON_LINE_OBJECT };
enum json_line_kind json_classify_line(const char *s, size_t len);

struct json_tokens;   /* private to json.c */

/* A parsed object.  Fields are read-only for callers. */
struct json_doc {
	const char *js;            /* the caller's bytes, not copied */
	size_t len;
	struct json_tokens *tok;
	int ntok;
};
#define JSON_DOC_INIT { NULL, 0, NULL, 0 }
#define JSON_ROOT 0

/* Validate s as an object and tokenize it.  More than max_tokens tokens is
 * SB_ERR_TOOBIG; invalid JSON is SB_ERR_USAGE with e saying where
 * ("invalid JSON at byte 17: expected ',' or '}'").  Releases whatever doc
 * held before. */
SB_MUST_CHECK int json_parse_object(struct json_doc *doc, const char *s, size_t len, size_t max_tokens,
		      struct sb_error *e);
void json_doc_release(struct json_doc *doc);

enum json_type {
	JSON_INVALID = 0,   /* not a value of this document */
	JSON_NULL,
	JSON_FALSE,
	JSON_TRUE,
	JSON_NUMBER,
	JSON_STRING,
	JSON_ARRAY,
	JSON_OBJECT,
};

enum json_type json_type(const struct json_doc *doc, int v);
/* Members of an object, elements of an array, 0 for anything else. */
size_t json_count(const struct json_doc *doc, int v);
/* The value's bytes as they are in the document, strings with their quotes:
 * a valid JSON value to copy verbatim (json_obj_raw). */
SB_MUST_CHECK int json_raw(const struct json_doc *doc, int v, const char **p, size_t *len);

/* Walk an object's members (keys are string values) or an array's
 * elements, in document order; duplicate keys are all visited:
 *   struct json_iter it;  int k, v;
 *   json_iter_init(doc, obj, &it);
 *   while (json_iter_member(doc, &it, &k, &v)) ...
 * The next functions return 1 while there is one, 0 at the end or when the
 * iterator was started on a value of the other kind. */
struct json_iter {
	int next;
	size_t left;
	int kind;
};
void json_iter_init(const struct json_doc *doc, int v, struct json_iter *it);
int json_iter_member(const struct json_doc *doc, struct json_iter *it, int *key, int *val);
int json_iter_elem(const struct json_doc *doc, struct json_iter *it, int *val);

/* The value of the first member named key (compared after unescaping), or
 * SB_ERR_NOTFOUND (also when obj is not an object). */
int json_object_get(const struct json_doc *doc, int obj, const char *key);
/* The key of the first member whose name repeats an earlier one, or
 * SB_ERR_NOTFOUND.  Quadratic in the member count: for small objects such as
 * a job spec whose token count the caller bounded. */
SB_MUST_CHECK int json_object_dup(const struct json_doc *doc, int obj);
/* 1 if v is a string equal to s once unescaped, else 0. */
int json_string_equals(const struct json_doc *doc, int v, const char *s);
/* 1 if a and b are strings with equal unescaped contents, else 0. */
int json_strings_equal(const struct json_doc *doc, int a, int b);

/* Append the unescaped string v to out as UTF-8 (out stays NUL-terminated,
 * so it is usable as a C string).  Not a string, or a "\u0000" or an
 * unpaired surrogate escape in it: SB_ERR_USAGE.  out's bound: SB_ERR_TOOBIG.
 * On failure out's length is what it was (the bytes past it are zeroed). */
SB_MUST_CHECK int json_get_string(const struct json_doc *doc, int v, struct buf *out);
/* Integer grammar only (-?(0|[1-9][0-9]*)): 1.5, 1e3, 1.0 or a non-number
 * are SB_ERR_USAGE; outside int64_t is SB_ERR_TOOBIG. */
SB_MUST_CHECK int json_get_int64(const struct json_doc *doc, int v, int64_t *out);
/* Any number; one that overflows a double is SB_ERR_TOOBIG (underflow
 * gives 0 or a subnormal).  Uses strtod: the process must keep the C
 * locale for LC_NUMERIC. */
SB_MUST_CHECK int json_get_double(const struct json_doc *doc, int v, double *out);
SB_MUST_CHECK int json_get_bool(const struct json_doc *doc, int v, int *out);

/* Writers.  Each appends to b and returns 0, or fails (SB_ERR_TOOBIG when
 * b's bound is hit, SB_ERR_NOMEM) leaving b as it was, so an event is never
 * half-written.
 *
 * json_put_string writes s[0..len) as a JSON string: '"' and '\' escaped,
 * control characters as \b \f \n \r \t or \u00XX, each maximal invalid
 * UTF-8 subsequence replaced by U+FFFD, so the output is always valid UTF-8
 * JSON whatever the input. */
int json_put_string(struct buf *b, const char *s, size_t len);
int json_put_int64(struct buf *b, int64_t v);
/* Shortest of %.15g/%.17g that reads back exactly; NaN and infinities are
 * written as null. */
int json_put_double(struct buf *b, double v);

/* Build an object: json_obj_begin, members, json_obj_end.  A member is
 * preceded by ',' unless b ends in '{'.  Keys are escaped like values.
 *
 * The writers are builders (buf.h): a value or member that does not fit
 * leaves b as it was, returns the error and records it in b, so a caller
 * may test each result or check buf_check(b) once before using b. */
int json_obj_begin(struct buf *b);
int json_obj_string(struct buf *b, const char *key, const char *s, size_t len);
/* s may be NULL: the value is then null. */
int json_obj_cstr(struct buf *b, const char *key, const char *s);
int json_obj_int64(struct buf *b, const char *key, int64_t v);
int json_obj_double(struct buf *b, const char *key, double v);
int json_obj_bool(struct buf *b, const char *key, int v);
int json_obj_null(struct buf *b, const char *key);
/* raw must be one valid JSON value (checked: SB_ERR_USAGE otherwise), e.g.
 * a span from json_raw or an object built in another buf. */
SB_MUST_CHECK int json_obj_raw(struct buf *b, const char *key, const char *raw, size_t len);
int json_obj_end(struct buf *b);

#endif
