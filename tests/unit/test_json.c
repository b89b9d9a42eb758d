/* Unit tests for json.c: the validator over JSONTestSuite, token counts
 * against jsmn, the typed getters, and the writers. */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "unit.h"

/* jsmn itself lives in json.c; here only its declarations, to compare. */
#define JSMN_HEADER
#include <jsmn.h>

#define LIT(s) (s), (sizeof(s) - 1)

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Read a whole file into an allocation of exactly its size (no NUL after
 * it), so the sanitizers catch any read past the end. */
static char *read_exact(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *d = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		d = malloc(n ? (size_t)n : 1);
		if (d && fread(d, 1, (size_t)n, f) != (size_t)n) {
			free(d);
			d = NULL;
		}
		*len = (size_t)n;
	}
	fclose(f);
	return d;
}

/* An exact-size heap copy of a literal, for the same reason. */
static char *dup_exact(const char *s, size_t len)
{
	char *d = malloc(len ? len : 1);

	if (len)
		memcpy(d, s, len);
	return d;
}

static int valid_any(const char *s, size_t len)
{
	char *d = dup_exact(s, len);
	int r = json_validate(d, len, JSON_MODE_ANY, NULL);

	free(d);
	return r == 0;
}

static int valid_obj(const char *s, size_t len)
{
	char *d = dup_exact(s, len);
	int r = json_validate(d, len, JSON_MODE_OBJECT, NULL);

	free(d);
	return r == 0;
}

/* jsmn's token count, or its negative error. */
static int jsmn_count(const char *s, size_t len)
{
	jsmn_parser p;
	jsmntok_t *t;
	size_t cap = len + 2;
	int r;

	t = malloc(cap * sizeof(*t));
	jsmn_init(&p);
	r = jsmn_parse(&p, s, len, t, (unsigned)cap);
	free(t);
	return r;
}

static unsigned rng_state = 12345;

static unsigned rnd(void)
{
	rng_state = rng_state * 1103515245u + 12345u;
	return (rng_state >> 16) & 0x7fff;
}

/* ---- JSONTestSuite ---- */

/* Our decision for each implementation-defined file.  Rejected: invalid
 * UTF-8 of any kind, UTF-16, a BOM.  Accepted: numbers of any size (the
 * grammar has no limit; getters range-check), escaped lone surrogates (valid
 * syntax; json_get_string refuses them), nesting <= 512. */
static const struct {
	const char *name;
	int accept;
} i_decisions[] = {
	{ "i_number_double_huge_neg_exp.json", 1 },
	{ "i_number_huge_exp.json", 1 },
	{ "i_number_neg_int_huge_exp.json", 1 },
	{ "i_number_pos_double_huge_exp.json", 1 },
	{ "i_number_real_neg_overflow.json", 1 },
	{ "i_number_real_pos_overflow.json", 1 },
	{ "i_number_real_underflow.json", 1 },
	{ "i_number_too_big_neg_int.json", 1 },
	{ "i_number_too_big_pos_int.json", 1 },
	{ "i_number_very_big_negative_int.json", 1 },
	{ "i_object_key_lone_2nd_surrogate.json", 1 },
	{ "i_string_1st_surrogate_but_2nd_missing.json", 1 },
	{ "i_string_1st_valid_surrogate_2nd_invalid.json", 1 },
	{ "i_string_UTF-16LE_with_BOM.json", 0 },
	{ "i_string_UTF-8_invalid_sequence.json", 0 },
	{ "i_string_UTF8_surrogate_U+D800.json", 0 },
	{ "i_string_incomplete_surrogate_and_escape_valid.json", 1 },
	{ "i_string_incomplete_surrogate_pair.json", 1 },
	{ "i_string_incomplete_surrogates_escape_valid.json", 1 },
	{ "i_string_invalid_lonely_surrogate.json", 1 },
	{ "i_string_invalid_surrogate.json", 1 },
	{ "i_string_invalid_utf-8.json", 0 },
	{ "i_string_inverted_surrogates_U+1D11E.json", 1 },
	{ "i_string_iso_latin_1.json", 0 },
	{ "i_string_lone_second_surrogate.json", 1 },
	{ "i_string_lone_utf8_continuation_byte.json", 0 },
	{ "i_string_not_in_unicode_range.json", 0 },
	{ "i_string_overlong_sequence_2_bytes.json", 0 },
	{ "i_string_overlong_sequence_6_bytes.json", 0 },
	{ "i_string_overlong_sequence_6_bytes_null.json", 0 },
	{ "i_string_truncated-utf-8.json", 0 },
	{ "i_string_utf16BE_no_BOM.json", 0 },
	{ "i_string_utf16LE_no_BOM.json", 0 },
	{ "i_structure_500_nested_arrays.json", 1 },
	{ "i_structure_UTF-8_BOM_empty_object.json", 0 },
};
#define N_DECISIONS (sizeof(i_decisions) / sizeof(i_decisions[0]))

static char suite_dir[4096];

static const char *suite_path(void)
{
	const char *refs = getenv("SSHBOX_REFS");

	snprintf(suite_dir, sizeof(suite_dir), "%s/JSONTestSuite/test_parsing",
		 refs && *refs ? refs : "../shared/refs");
	return suite_dir;
}

/* Run fn on every file of the suite; returns the number of files. */
static int for_each_suite_file(void (*fn)(const char *name, const char *data, size_t len))
{
	char path[8192];
	struct dirent *de;
	DIR *d = opendir(suite_path());
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		char *data;
		size_t len = 0;

		if (de->d_name[0] == '.' || !strstr(de->d_name, ".json"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", suite_dir, de->d_name);
		data = read_exact(path, &len);
		CHECK(data != NULL);
		if (!data)
			continue;
		fn(de->d_name, data, len);
		free(data);
		n++;
	}
	closedir(d);
	return n;
}

static int n_y, n_n, n_i, i_seen[N_DECISIONS];

static void check_suite_file(const char *name, const char *data, size_t len)
{
	size_t ntok = 0;
	int ok = json_validate(data, len, JSON_MODE_ANY, &ntok) == 0;
	size_t k;

	if (name[0] == 'y') {
		n_y++;
		if (!ok)
			printf("#   y_ file rejected: %s\n", name);
		CHECK(ok);
		CHECK(ntok >= 1);
	} else if (name[0] == 'n') {
		n_n++;
		if (ok)
			printf("#   n_ file accepted: %s\n", name);
		CHECK(!ok);
	} else if (name[0] == 'i') {
		n_i++;
		for (k = 0; k < N_DECISIONS; k++)
			if (strcmp(name, i_decisions[k].name) == 0)
				break;
		if (k == N_DECISIONS) {
			printf("#   i_ file without a recorded decision: %s (we %s it)\n", name,
			       ok ? "accept" : "reject");
			CHECK(k < N_DECISIONS);
			return;
		}
		i_seen[k]++;
		if (ok != i_decisions[k].accept)
			printf("#   i_ decision changed: %s now %s\n", name, ok ? "accepted" : "rejected");
		CHECK(ok == i_decisions[k].accept);
	}
	/* object mode accepts exactly the valid documents that are objects */
	if (ok) {
		size_t lead = 0;

		while (lead < len && strchr(" \t\r\n", data[lead]))
			lead++;
		CHECK((json_validate(data, len, JSON_MODE_OBJECT, NULL) == 0) == (data[lead] == '{'));
	}
}

static void test_json_test_suite(void)
{
	size_t k;
	int n = for_each_suite_file(check_suite_file);

	if (n < 0) {
		printf("#   cannot open %s (set SSHBOX_REFS)\n", suite_path());
		CHECK(n >= 0);
		return;
	}
	CHECK_INT(n, 318);
	CHECK_INT(n_y, 95);
	CHECK_INT(n_n, 188);
	CHECK_INT(n_i, 35);
	for (k = 0; k < N_DECISIONS; k++) {
		if (i_seen[k] != 1)
			printf("#   i_ file in the table but not in the suite: %s\n", i_decisions[k].name);
		CHECK_INT(i_seen[k], 1);
	}
}

static int n_counted;

static void check_tokens_file(const char *name, const char *data, size_t len)
{
	struct json_doc doc = JSON_DOC_INIT;
	size_t ntok, lead;
	int r;

	if (json_validate(data, len, JSON_MODE_ANY, &ntok) != 0)
		return;
	for (lead = 0; lead < len && strchr(" \t\r\n", data[lead]); lead++)
		;
	if (lead >= len || (data[lead] != '[' && data[lead] != '{'))
		return;   /* strict jsmn refuses a lone top-level scalar */
	n_counted++;
	r = jsmn_count(data, len);
	if (r < 0 || (size_t)r != ntok)
		printf("#   %s: jsmn counts %d tokens, the validator %zu\n", name, r, ntok);
	CHECK_INT(r, ntok);
	if (data[lead] == '{') {
		r = json_parse_object(&doc, data, len, ntok, NULL);
		CHECK_INT(r, 0);
		CHECK_INT(doc.ntok, ntok);
		CHECK_INT(json_parse_object(&doc, data, len, ntok - 1, NULL), SB_ERR_TOOBIG);
		json_doc_release(&doc);
	}
}

static void test_token_counts_match_jsmn(void)
{
	static const char *docs[] = {
		"{}", "[]", "[[]]", "{\"a\":{}}", "{\"a\":[]}", "[{},{}]",
		"{\"a\":1,\"b\":[1,2,{\"c\":null}],\"d\":\"x\"}",
		" [ 1 , \"two\" , [ true , false , null ] , { \"k\" : -1.5e3 } ] ",
		"{\"a\":{\"b\":{\"c\":[[[\"d\"]]]}},\"e\":[{\"f\":{}}]}",
		"{\"\\u00e9\":\"\\ud83d\\ude00\",\"x\\\"y\":\"\\\\\"}",
	};
	size_t k, ntok;

	n_counted = 0;
	CHECK(for_each_suite_file(check_tokens_file) > 0);
	CHECK(n_counted > 100);
	for (k = 0; k < sizeof(docs) / sizeof(docs[0]); k++) {
		CHECK_INT(json_validate(docs[k], strlen(docs[k]), JSON_MODE_ANY, &ntok), 0);
		CHECK_INT(jsmn_count(docs[k], strlen(docs[k])), ntok);
	}
	CHECK_INT(json_validate(LIT("{\"a\":[1,2,{\"b\":\"c\"}]}"), JSON_MODE_OBJECT, &ntok), 0);
	CHECK_INT(ntok, 8);
}

/* Random documents, then random byte mutations of them: whatever the
 * validator accepts, jsmn must tokenize into exactly the counted tokens. */
static void gen_value(struct buf *b, int depth)
{
	static const char *ws[] = { "", "", "", " ", "\n", "\t", "\r\n " };
	static const char *scalars[] = {
		"0", "-1", "12.5e-3", "1E+2", "true", "false", "null", "\"\"", "\"s\"",
		"\"\\u00e9\\n\\\"\"", "\"\xe2\x82\xac\"", "\"\\ud83d\\ude00\"", "-0.0",
	};
	int k = (int)(rnd() % 10), n, i;

	buf_adds(b, ws[rnd() % 7]);
	if (depth > 4 || k < 5) {
		buf_adds(b, scalars[rnd() % (sizeof(scalars) / sizeof(scalars[0]))]);
	} else if (k < 8) {
		n = (int)(rnd() % 4);
		buf_addc(b, '{');
		for (i = 0; i < n; i++) {
			buf_addf(b, "%s%s\"k%d\"%s:", i ? "," : "", ws[rnd() % 7], (int)(rnd() % 3), ws[rnd() % 7]);
			gen_value(b, depth + 1);
		}
		buf_adds(b, ws[rnd() % 7]);
		buf_addc(b, '}');
	} else {
		n = (int)(rnd() % 4);
		buf_addc(b, '[');
		for (i = 0; i < n; i++) {
			if (i)
				buf_addc(b, ',');
			gen_value(b, depth + 1);
		}
		buf_adds(b, ws[rnd() % 7]);
		buf_addc(b, ']');
	}
	buf_adds(b, ws[rnd() % 7]);
}

static void test_fuzz_counts_match_jsmn(void)
{
	static const char bytes[] = "{}[],:\"\\ 0-1.eEtfnu\x00\x80\xc3\n";
	struct buf b = BUF_INIT;
	struct json_doc doc = JSON_DOC_INIT;
	int round, m, accepted = 0, mismatched = 0, parse_failed = 0, gen_bad = 0;
	size_t ntok;

	for (round = 0; round < 20000; round++) {
		char *d;

		buf_reset(&b);
		gen_value(&b, round % 2 ? 0 : 1);
		if (json_validate(b.data, b.len, JSON_MODE_ANY, NULL) != 0)
			gen_bad++;
		for (m = (int)(rnd() % 3); m > 0 && b.len; m--) {
			size_t at = rnd() % b.len;

			switch (rnd() % 3) {
			case 0:
				b.data[at] = bytes[rnd() % (sizeof(bytes) - 1)];
				break;
			case 1:
				memmove(b.data + at, b.data + at + 1, b.len - at - 1);
				b.len--;
				break;
			default:
				b.len = at;
			}
		}
		d = dup_exact(b.data ? b.data : "", b.len);
		if (json_validate(d, b.len, JSON_MODE_ANY, &ntok) == 0) {
			size_t lead = 0;

			while (lead < b.len && strchr(" \t\r\n", d[lead]))
				lead++;
			accepted++;
			if (d[lead] == '[' || d[lead] == '{') {
				if (jsmn_count(d, b.len) != (int)ntok)
					mismatched++;
				if (d[lead] == '{') {
					if (json_parse_object(&doc, d, b.len, ntok, NULL) != 0)
						parse_failed++;
					json_doc_release(&doc);
				}
			}
		}
		free(d);
	}
	CHECK_INT(gen_bad, 0);
	CHECK(accepted > 5000);
	CHECK_INT(mismatched, 0);
	CHECK_INT(parse_failed, 0);
	buf_release(&b);
}

/* ---- validator details ---- */

static void test_validator_edges(void)
{
	char *deep;
	size_t i, n;
	double t0;

	CHECK(!valid_any(LIT("")));
	CHECK(!valid_any(LIT(" \t\r\n")));
	CHECK(valid_any(LIT(" \t\r\n{} \r\n")));
	CHECK(!valid_any(LIT("{}{}")));
	CHECK(!valid_any(LIT("{\"a\":1}\0junk")));
	CHECK(!valid_any(LIT("{\"a\":1}\0")));
	CHECK(!valid_any(LIT("\"a\0b\"")));
	CHECK(!valid_any(LIT("{} \f")));
	CHECK(!valid_any(LIT("\xef\xbb\xbf{}")));
	CHECK(valid_any(LIT("\"\\ud800\"")));
	CHECK(!valid_any(LIT("\"\xed\xa0\x80\"")));
	CHECK(valid_any(LIT("\"\xf4\x8f\xbf\xbf\"")));
	CHECK(!valid_any(LIT("\"\xf4\x90\x80\x80\"")));
	CHECK(!valid_any(LIT("\"\xe0\x9f\xbf\"")));
	CHECK(!valid_any(LIT("\"\xf0\x8f\xbf\xbf\"")));
	CHECK(valid_any(LIT("\"\xe0\xa0\x80\"")));
	CHECK(!valid_any(LIT("\"\x7f\x1f\"")));
	CHECK(valid_any(LIT("\"\x7f\"")));
	CHECK(!valid_any(LIT("\"abcdefgh\tijk\"")));   /* raw tab past the first 8 bytes */
	CHECK(!valid_any(LIT("\"abcdefghijklmnop")));
	CHECK(!valid_any(LIT("\"abcdefghijklmnop\\")));
	CHECK(!valid_any(LIT("\"\\u12\"")));
	CHECK(!valid_any(LIT("\"\\x41\"")));
	CHECK(valid_any(LIT("-0.0e+0")));
	CHECK(!valid_any(LIT("-")));
	CHECK(!valid_any(LIT("01")));
	CHECK(!valid_any(LIT("1.")));
	CHECK(!valid_any(LIT("1e")));
	CHECK(!valid_any(LIT("tru")));
	CHECK(!valid_any(LIT("truee")));
	CHECK(!valid_any(LIT("{\"a\" \"b\"}")));
	CHECK(!valid_any(LIT("{\"a\":1,}")));
	CHECK(!valid_any(LIT("[1 \"b\"]")));
	CHECK(!valid_any(LIT("{,}")));
	CHECK(!valid_any(LIT("[1,]")));
	CHECK(!valid_any(LIT("{\"a\":::\"b\"}")));
	CHECK(!valid_any(LIT("[}")));
	CHECK(!valid_any(LIT("{]")));
	/* object mode */
	CHECK(valid_obj(LIT("{}")));
	CHECK(!valid_obj(LIT("[]")));
	CHECK(!valid_obj(LIT("\"{}\"")));
	CHECK(!valid_obj(LIT("1")));
	CHECK(!valid_obj(LIT("")));

	/* depth: 512 is fine, 513 is not, 100000 fails fast */
	n = 100000;
	deep = malloc(2 * n);
	for (i = 0; i < n; i++) {
		deep[i] = '[';
		deep[2 * n - 1 - i] = ']';
	}
	t0 = now_s();
	CHECK(json_validate(deep, 2 * n, JSON_MODE_ANY, NULL) != 0);
	CHECK(now_s() - t0 < 0.1);
	CHECK(json_validate(deep + n - JSON_MAX_DEPTH, 2 * JSON_MAX_DEPTH, JSON_MODE_ANY, NULL) == 0);
	CHECK(json_validate(deep + n - JSON_MAX_DEPTH - 1, 2 * JSON_MAX_DEPTH + 2, JSON_MODE_ANY, NULL) != 0);
	free(deep);
}

static void test_parse_errors(void)
{
	struct json_doc doc = JSON_DOC_INIT;
	struct sb_error e = SB_ERROR_INIT;

	CHECK_INT(json_parse_object(&doc, LIT("[1,2]"), 100, &e), SB_ERR_USAGE);
	CHECK(strstr(e.msg, "not a JSON object") != NULL);
	CHECK_INT(json_parse_object(&doc, LIT("{\"a\":1 \"b\":2}"), 100, &e), SB_ERR_USAGE);
	CHECK_STREQ(e.msg, "invalid JSON at byte 7: expected ',' or '}'");
	CHECK_INT(json_parse_object(&doc, LIT("{\"a\":\"\x80\"}"), 100, &e), SB_ERR_USAGE);
	CHECK_STREQ(e.msg, "invalid JSON at byte 6: invalid UTF-8");
	CHECK_INT(json_parse_object(&doc, LIT("{\"a\":[1,2,3]}"), 5, &e), SB_ERR_TOOBIG);
	CHECK(strstr(e.msg, "6 tokens") != NULL);
	CHECK(doc.tok == NULL);
	CHECK_INT(json_parse_object(&doc, LIT("{\"a\":[1,2,3]}"), 6, &e), 0);
	CHECK_INT(doc.ntok, 6);
	/* a failed parse leaves a released document */
	CHECK_INT(json_parse_object(&doc, LIT("{"), 6, NULL), SB_ERR_USAGE);
	CHECK(doc.tok == NULL && doc.ntok == 0);
	CHECK_INT(json_type(&doc, JSON_ROOT), JSON_INVALID);
	json_doc_release(&doc);
	json_doc_release(&doc);
}

/* ---- getters ---- */

static void test_result_line(void)
{
	static const char line[] =
		"{\"subtype\":\"success\",\"is_error\":false,\"duration_ms\":12,\"num_turns\":2,"
		"\"result\":\"ok\",\"session_id\":\"abc\",\"total_cost_usd\":0.0123,\"type\":\"result\"}";
	char *s = dup_exact(line, sizeof(line) - 1);
	struct json_doc doc = JSON_DOC_INIT;
	const char *p;
	size_t n;
	int64_t i64;
	double d;
	int v, b = -1;

	CHECK_INT(json_parse_object(&doc, s, sizeof(line) - 1, 64, NULL), 0);
	CHECK(doc.js == s);
	CHECK_INT(json_type(&doc, JSON_ROOT), JSON_OBJECT);
	CHECK_INT(json_count(&doc, JSON_ROOT), 8);
	v = json_object_get(&doc, JSON_ROOT, "type");
	CHECK(v > 0);
	CHECK(json_string_equals(&doc, v, "result"));
	CHECK(!json_string_equals(&doc, v, "resul"));
	CHECK(!json_string_equals(&doc, v, "results"));
	CHECK(json_string_equals(&doc, json_object_get(&doc, JSON_ROOT, "subtype"), "success"));
	CHECK_INT(json_get_bool(&doc, json_object_get(&doc, JSON_ROOT, "is_error"), &b), 0);
	CHECK_INT(b, 0);
	CHECK_INT(json_get_int64(&doc, json_object_get(&doc, JSON_ROOT, "duration_ms"), &i64), 0);
	CHECK_INT(i64, 12);
	CHECK_INT(json_get_int64(&doc, json_object_get(&doc, JSON_ROOT, "num_turns"), &i64), 0);
	CHECK_INT(i64, 2);
	v = json_object_get(&doc, JSON_ROOT, "total_cost_usd");
	CHECK_INT(json_type(&doc, v), JSON_NUMBER);
	CHECK_INT(json_get_double(&doc, v, &d), 0);
	CHECK(d == 0.0123);
	CHECK_INT(json_get_int64(&doc, v, &i64), SB_ERR_USAGE);
	CHECK_INT(json_raw(&doc, v, &p, &n), 0);
	CHECK(n == 6 && memcmp(p, "0.0123", 6) == 0);
	v = json_object_get(&doc, JSON_ROOT, "session_id");
	CHECK_INT(json_raw(&doc, v, &p, &n), 0);
	CHECK(n == 5 && memcmp(p, "\"abc\"", 5) == 0);
	CHECK_INT(json_object_get(&doc, JSON_ROOT, "usage"), SB_ERR_NOTFOUND);
	CHECK_INT(json_object_get(&doc, v, "x"), SB_ERR_NOTFOUND);   /* not an object */
	CHECK_INT(json_object_dup(&doc, JSON_ROOT), SB_ERR_NOTFOUND);
	json_doc_release(&doc);
	free(s);
}

static void test_members_and_duplicates(void)
{
	static const char spec[] =
		"{\"account\":\"acme\",\"prompt\":\"p\",\"bogus\":{\"x\":[1,{\"y\":2}]},"
		"\"wait_s\":5,\"acc\\u006funt\":\"evil\"}";
	static const char *names[] = { "account", "prompt", "bogus", "wait_s", "account" };
	struct json_doc doc = JSON_DOC_INIT;
	struct buf key = BUF_INIT;
	struct json_iter it;
	int k, v, i = 0, d;

	CHECK_INT(json_parse_object(&doc, LIT(spec), 64, NULL), 0);
	json_iter_init(&doc, JSON_ROOT, &it);
	while (json_iter_member(&doc, &it, &k, &v)) {
		CHECK(i < 5);
		if (i >= 5)
			break;
		CHECK_INT(json_type(&doc, k), JSON_STRING);
		buf_reset(&key);
		CHECK_INT(json_get_string(&doc, k, &key), 0);
		CHECK_STREQ(buf_cstr(&key), names[i]);
		CHECK(json_string_equals(&doc, k, names[i]));
		if (i == 2)
			CHECK_INT(json_type(&doc, v), JSON_OBJECT);
		if (i == 3)
			CHECK_INT(json_type(&doc, v), JSON_NUMBER);
		i++;
	}
	CHECK_INT(i, 5);
	/* element iteration on an object yields nothing */
	json_iter_init(&doc, JSON_ROOT, &it);
	CHECK(!json_iter_elem(&doc, &it, &v));
	/* the escaped "account" is the duplicate; get finds the first */
	d = json_object_dup(&doc, JSON_ROOT);
	CHECK(d > 0);
	CHECK(json_string_equals(&doc, d, "account"));
	CHECK(json_string_equals(&doc, json_object_get(&doc, JSON_ROOT, "account"), "acme"));
	json_doc_release(&doc);

	CHECK_INT(json_parse_object(&doc, LIT("{\"a\":1,\"b\":2,\"a\":3}"), 64, NULL), 0);
	d = json_object_dup(&doc, JSON_ROOT);
	CHECK_INT(d, 5);
	CHECK_INT(json_get_int64(&doc, json_object_get(&doc, JSON_ROOT, "a"), &(int64_t){ 0 }), 0);
	json_doc_release(&doc);

	/* raw UTF-8 and escapes of the same key are duplicates */
	CHECK_INT(json_parse_object(&doc, LIT("{\"\xc3\xa9\":1,\"\\u00e9\":2}"), 64, NULL), 0);
	CHECK_INT(json_object_dup(&doc, JSON_ROOT), 3);
	CHECK(json_object_get(&doc, JSON_ROOT, "\xc3\xa9") == 2);
	json_doc_release(&doc);
	CHECK_INT(json_parse_object(&doc, LIT("{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}"), 64, NULL), 0);
	CHECK_INT(json_object_dup(&doc, JSON_ROOT), 3);
	json_doc_release(&doc);
	CHECK_INT(json_parse_object(&doc, LIT("{\"\\ud800\":1,\"\\uD800\":2,\"\\u0000\":3}"), 64, NULL), 0);
	CHECK_INT(json_object_dup(&doc, JSON_ROOT), 3);
	CHECK_INT(json_object_get(&doc, JSON_ROOT, ""), SB_ERR_NOTFOUND);
	json_doc_release(&doc);
	CHECK_INT(json_parse_object(&doc, LIT("{\"ab\":1,\"a\":2,\"a\\\\\":3,\"a\\\\b\":4}"), 64, NULL), 0);
	CHECK_INT(json_object_dup(&doc, JSON_ROOT), SB_ERR_NOTFOUND);
	CHECK_INT(json_object_get(&doc, JSON_ROOT, "a\\"), 6);
	CHECK_INT(json_object_get(&doc, JSON_ROOT, "a\\b"), 8);
	json_doc_release(&doc);
	buf_release(&key);
}

static void test_arrays_and_types(void)
{
	static const char text[] =
		"{\"a\":[[1,2],{\"x\":[3]},\"s\",4,true,false,null,[]],\"b\":null,\"c\":{}}";
	static const enum json_type want[] = {
		JSON_ARRAY, JSON_OBJECT, JSON_STRING, JSON_NUMBER, JSON_TRUE, JSON_FALSE, JSON_NULL, JSON_ARRAY,
	};
	struct json_doc doc = JSON_DOC_INIT;
	struct json_iter it;
	int a, v, k, i = 0, b;

	CHECK_INT(json_parse_object(&doc, LIT(text), 64, NULL), 0);
	a = json_object_get(&doc, JSON_ROOT, "a");
	CHECK_INT(json_type(&doc, a), JSON_ARRAY);
	CHECK_INT(json_count(&doc, a), 8);
	json_iter_init(&doc, a, &it);
	while (json_iter_elem(&doc, &it, &v)) {
		CHECK(i < 8);
		if (i >= 8)
			break;
		CHECK_INT(json_type(&doc, v), want[i]);
		i++;
	}
	CHECK_INT(i, 8);
	json_iter_init(&doc, a, &it);
	CHECK(!json_iter_member(&doc, &it, &k, &v));
	CHECK_INT(json_type(&doc, json_object_get(&doc, JSON_ROOT, "b")), JSON_NULL);
	CHECK_INT(json_type(&doc, json_object_get(&doc, JSON_ROOT, "c")), JSON_OBJECT);
	CHECK_INT(json_count(&doc, json_object_get(&doc, JSON_ROOT, "c")), 0);
	CHECK_INT(json_get_bool(&doc, json_object_get(&doc, JSON_ROOT, "b"), &b), SB_ERR_USAGE);
	CHECK_INT(json_type(&doc, -1), JSON_INVALID);
	CHECK_INT(json_type(&doc, doc.ntok), JSON_INVALID);
	CHECK_INT(json_count(&doc, doc.ntok), 0);
	json_doc_release(&doc);
}

static int get_str(const char *text, size_t len, struct buf *out)
{
	struct json_doc doc = JSON_DOC_INIT;
	char *s = dup_exact(text, len);
	int r = json_parse_object(&doc, s, len, 8, NULL);

	if (!r)
		r = json_get_string(&doc, json_object_get(&doc, JSON_ROOT, "s"), out);
	json_doc_release(&doc);
	free(s);
	return r;
}

static void test_unescape(void)
{
	struct buf b = BUF_INIT;

	CHECK_INT(get_str(LIT("{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}"), &b), 0);
	CHECK_STREQ(buf_cstr(&b), "\"\\/\b\f\n\r\t");
	buf_reset(&b);
	CHECK_INT(get_str(LIT("{\"s\":\"caf\\u00e9 \\u20AC \\ud83d\\ude00 \xe2\x82\xac \\u0041\"}"), &b), 0);
	CHECK_STREQ(buf_cstr(&b), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x82\xac A");
	buf_reset(&b);
	CHECK_INT(get_str(LIT("{\"s\":\"\\uDBFF\\uDFFF\\u007f\\u0080\\u07FF\\u0800\\uFFFF\"}"), &b), 0);
	CHECK_STREQ(buf_cstr(&b), "\xf4\x8f\xbf\xbf\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf");
	buf_reset(&b);
	CHECK_INT(get_str(LIT("{\"s\":\"\"}"), &b), 0);
	CHECK_INT(b.len, 0);

	/* appends; failures leave out as it was */
	buf_reset(&b);
	buf_adds(&b, "keep:");
	CHECK_INT(get_str(LIT("{\"s\":\"ab\\u0000cd\"}"), &b), SB_ERR_USAGE);
	CHECK_STREQ(buf_cstr(&b), "keep:");
	CHECK_INT(get_str(LIT("{\"s\":\"\\ud800\"}"), &b), SB_ERR_USAGE);
	CHECK_INT(get_str(LIT("{\"s\":\"x\\udc00\"}"), &b), SB_ERR_USAGE);
	CHECK_INT(get_str(LIT("{\"s\":\"\\ud800\\u0041\"}"), &b), SB_ERR_USAGE);
	CHECK_INT(get_str(LIT("{\"s\":\"\\ude00\\ud83d\"}"), &b), SB_ERR_USAGE);
	CHECK_INT(get_str(LIT("{\"s\":\"\\ud800\\n\"}"), &b), SB_ERR_USAGE);
	CHECK_INT(get_str(LIT("{\"s\":1}"), &b), SB_ERR_USAGE);
	CHECK_STREQ(buf_cstr(&b), "keep:");
	CHECK_INT(get_str(LIT("{\"s\":\"\\u00e9\"}"), &b), 0);
	CHECK_STREQ(buf_cstr(&b), "keep:\xc3\xa9");
	CHECK_INT(b.len, 7);
	buf_release(&b);

	/* out's bound */
	buf_init(&b, 4);
	CHECK_INT(get_str(LIT("{\"s\":\"abcd\"}"), &b), 0);
	buf_reset(&b);
	CHECK_INT(get_str(LIT("{\"s\":\"abcde\"}"), &b), SB_ERR_TOOBIG);
	CHECK_INT(b.len, 0);
	buf_release(&b);
}

static int get_int(const char *num, int64_t *out)
{
	char text[128];
	struct json_doc doc = JSON_DOC_INIT;
	int r;

	snprintf(text, sizeof(text), "{\"n\":%s}", num);
	r = json_parse_object(&doc, text, strlen(text), 8, NULL);
	if (!r)
		r = json_get_int64(&doc, json_object_get(&doc, JSON_ROOT, "n"), out);
	json_doc_release(&doc);
	return r;
}

static int get_dbl(const char *num, double *out)
{
	struct json_doc doc = JSON_DOC_INIT;
	struct buf t = BUF_INIT;
	int r;

	buf_addf(&t, "{\"n\":%s}", num);
	r = json_parse_object(&doc, t.data, t.len, 8, NULL);
	if (!r)
		r = json_get_double(&doc, json_object_get(&doc, JSON_ROOT, "n"), out);
	json_doc_release(&doc);
	buf_release(&t);
	return r;
}

static void test_numbers(void)
{
	int64_t v = 42;
	double d = 0;
	char big[400];

	CHECK_INT(get_int("0", &v), 0);
	CHECK_INT(v, 0);
	CHECK_INT(get_int("-0", &v), 0);
	CHECK_INT(v, 0);
	CHECK_INT(get_int("3600", &v), 0);
	CHECK_INT(v, 3600);
	CHECK_INT(get_int("-17", &v), 0);
	CHECK_INT(v, -17);
	CHECK_INT(get_int("9223372036854775807", &v), 0);
	CHECK(v == INT64_MAX);
	CHECK_INT(get_int("-9223372036854775808", &v), 0);
	CHECK(v == INT64_MIN);
	v = 42;
	CHECK_INT(get_int("9223372036854775808", &v), SB_ERR_TOOBIG);
	CHECK_INT(get_int("-9223372036854775809", &v), SB_ERR_TOOBIG);
	CHECK_INT(get_int("100000000000000000000000", &v), SB_ERR_TOOBIG);
	CHECK_INT(get_int("1.5", &v), SB_ERR_USAGE);
	CHECK_INT(get_int("1e3", &v), SB_ERR_USAGE);
	CHECK_INT(get_int("1E3", &v), SB_ERR_USAGE);
	CHECK_INT(get_int("1.0", &v), SB_ERR_USAGE);
	CHECK_INT(get_int("\"5\"", &v), SB_ERR_USAGE);
	CHECK_INT(get_int("true", &v), SB_ERR_USAGE);
	CHECK_INT(get_int("null", &v), SB_ERR_USAGE);
	CHECK_INT(v, 42);

	CHECK_INT(get_dbl("12", &d), 0);
	CHECK(d == 12.0);
	CHECK_INT(get_dbl("-1.5e-3", &d), 0);
	CHECK(d == -1.5e-3);
	CHECK_INT(get_dbl("1e400", &d), SB_ERR_TOOBIG);
	CHECK_INT(get_dbl("-1e400", &d), SB_ERR_TOOBIG);
	CHECK_INT(get_dbl("1e-400", &d), 0);
	CHECK(d == 0.0);
	CHECK_INT(get_dbl("\"1\"", &d), SB_ERR_USAGE);
	/* longer than the getter's stack copy */
	memset(big, '1', 300);
	memcpy(big + 300, ".5", 3);
	CHECK_INT(get_dbl(big, &d), 0);
	CHECK(d > 1e299 && d < 1e300);
}

/* ---- writers ---- */

static int put(struct buf *b, const char *s, size_t len)
{
	char *d = dup_exact(s, len);
	int r;

	buf_reset(b);
	r = json_put_string(b, d, len);
	free(d);
	return r;
}

static void test_writer_escaping(void)
{
	struct buf b = BUF_INIT;

	CHECK_INT(put(&b, LIT("plain text")), 0);
	CHECK_STREQ(buf_cstr(&b), "\"plain text\"");
	CHECK_INT(put(&b, LIT("")), 0);
	CHECK_STREQ(buf_cstr(&b), "\"\"");
	CHECK_INT(put(&b, LIT("a\"b\\c/\n\t\r\b\f\x01\x1f\x7f")), 0);
	CHECK_STREQ(buf_cstr(&b), "\"a\\\"b\\\\c/\\n\\t\\r\\b\\f\\u0001\\u001f\x7f\"");
	CHECK_INT(put(&b, LIT("nul\0byte")), 0);
	CHECK_STREQ(buf_cstr(&b), "\"nul\\u0000byte\"");
	/* valid UTF-8 is kept */
	CHECK_INT(put(&b, LIT("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf")), 0);
	CHECK_STREQ(buf_cstr(&b), "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\"");
	/* one U+FFFD per maximal invalid subpart */
#define FFFD "\xef\xbf\xbd"
	CHECK_INT(put(&b, LIT("a\xff" "b")), 0);
	CHECK_STREQ(buf_cstr(&b), "\"a" FFFD "b\"");
	CHECK_INT(put(&b, LIT("\xe2\x82")), 0);   /* truncated at the end */
	CHECK_STREQ(buf_cstr(&b), "\"" FFFD "\"");
	CHECK_INT(put(&b, LIT("\xe2\x82x")), 0);
	CHECK_STREQ(buf_cstr(&b), "\"" FFFD "x\"");
	CHECK_INT(put(&b, LIT("\xc0\xaf")), 0);   /* overlong */
	CHECK_STREQ(buf_cstr(&b), "\"" FFFD FFFD "\"");
	CHECK_INT(put(&b, LIT("\xed\xa0\x80")), 0);   /* encoded surrogate */
	CHECK_STREQ(buf_cstr(&b), "\"" FFFD FFFD FFFD "\"");
	CHECK_INT(put(&b, LIT("\xf4\x90\x80\x80")), 0);   /* above U+10FFFF */
	CHECK_STREQ(buf_cstr(&b), "\"" FFFD FFFD FFFD FFFD "\"");
	CHECK_INT(put(&b, LIT("\xf0\x9f\x98")), 0);
	CHECK_STREQ(buf_cstr(&b), "\"" FFFD "\"");
	CHECK_INT(put(&b, LIT("\x80\x80\xe9t\xe9")), 0);   /* latin-1 */
	CHECK_STREQ(buf_cstr(&b), "\"" FFFD FFFD FFFD "t" FFFD "\"");
#undef FFFD
	/* all-or-nothing under a bound */
	buf_release(&b);
	buf_init(&b, 8);
	buf_adds(&b, "x");
	CHECK_INT(json_put_string(&b, LIT("\n\n\n")), SB_ERR_TOOBIG);
	CHECK_STREQ(buf_cstr(&b), "x");
	CHECK_INT(json_put_string(&b, LIT("abcde")), 0);
	CHECK_STREQ(buf_cstr(&b), "x\"abcde\"");
	buf_release(&b);
}

static void test_writer_fuzz(void)
{
	static const char pieces[][5] = {
		"a", "\"", "\\", "\n", "\x01", "\x7f", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
		"\xff", "\xc3", "\xe2\x82", "\xed\xa0\x80", "\xf4\x90", "\x80", "/", "u",
	};
	struct buf in = BUF_INIT, out = BUF_INIT, back = BUF_INIT, obj = BUF_INIT;
	struct json_doc doc = JSON_DOC_INIT;
	int round, i, bad = 0, rt_bad = 0;

	for (round = 0; round < 3000; round++) {
		int n = (int)(rnd() % 40), valid_text = 1;

		buf_reset(&in);
		for (i = 0; i < n; i++) {
			size_t k = rnd() % (sizeof(pieces) / sizeof(pieces[0]));

			if (k >= 9 && k <= 14)
				valid_text = 0;
			buf_adds(&in, pieces[k]);
		}
		if (round % 3 == 0) {   /* raw random bytes too */
			buf_reset(&in);
			for (i = 0; i < n; i++)
				buf_addc(&in, (char)(rnd() & 0xff));
			valid_text = 0;
		}
		buf_reset(&out);
		CHECK_INT(json_put_string(&out, in.data ? in.data : "", in.len), 0);
		if (json_validate(out.data, out.len, JSON_MODE_ANY, NULL) != 0)
			bad++;
		/* valid UTF-8 without NUL comes back unchanged */
		if (valid_text) {
			buf_reset(&obj);
			json_obj_begin(&obj);
			json_obj_string(&obj, "s", in.data ? in.data : "", in.len);
			json_obj_end(&obj);
			buf_reset(&back);
			if (json_parse_object(&doc, obj.data, obj.len, 8, NULL) != 0 ||
			    json_get_string(&doc, json_object_get(&doc, JSON_ROOT, "s"), &back) != 0 ||
			    back.len != in.len || (in.len && memcmp(back.data, in.data, in.len) != 0))
				rt_bad++;
		}
	}
	CHECK_INT(bad, 0);
	CHECK_INT(rt_bad, 0);
	json_doc_release(&doc);
	buf_release(&in);
	buf_release(&out);
	buf_release(&back);
	buf_release(&obj);
}

static void test_writer_object(void)
{
	struct buf b = BUF_INIT, inner = BUF_INIT;
	struct json_doc doc = JSON_DOC_INIT, src = JSON_DOC_INIT;
	const char *p;
	size_t n;
	double d;
	int64_t i64;
	int v, flag;

	/* a raw span copied from another document */
	CHECK_INT(json_parse_object(&src, LIT("{\"session_id\":\"s\\u00e9\",\"cost\":1.5e-2}"), 8, NULL), 0);

	CHECK_INT(json_obj_begin(&b), 0);
	CHECK_INT(json_obj_cstr(&b, "type", "sshbox.result"), 0);
	CHECK_INT(json_obj_string(&b, "line", LIT("bin\0\xff")), 0);
	CHECK_INT(json_obj_int64(&b, "min", INT64_MIN), 0);
	CHECK_INT(json_obj_int64(&b, "exit_code", 124), 0);
	CHECK_INT(json_obj_double(&b, "tenth", 0.1), 0);
	CHECK_INT(json_obj_double(&b, "cost", 0.0123), 0);
	CHECK_INT(json_obj_double(&b, "third", 1.0 / 3), 0);
	CHECK_INT(json_obj_double(&b, "huge", 1e300), 0);
	CHECK_INT(json_obj_double(&b, "tiny", 5e-324), 0);
	CHECK_INT(json_obj_double(&b, "negzero", -0.0), 0);
	CHECK_INT(json_obj_double(&b, "nan", NAN), 0);
	CHECK_INT(json_obj_double(&b, "inf", -INFINITY), 0);
	CHECK_INT(json_obj_bool(&b, "ok", 1), 0);
	CHECK_INT(json_obj_bool(&b, "bad", 0), 0);
	CHECK_INT(json_obj_null(&b, "error"), 0);
	CHECK_INT(json_obj_cstr(&b, "none", NULL), 0);
	CHECK_INT(json_raw(&src, json_object_get(&src, JSON_ROOT, "session_id"), &p, &n), 0);
	CHECK_INT(json_obj_raw(&b, "session_id", p, n), 0);
	CHECK_INT(json_raw(&src, json_object_get(&src, JSON_ROOT, "cost"), &p, &n), 0);
	CHECK_INT(json_obj_raw(&b, "total_cost_usd", p, n), 0);
	json_obj_begin(&inner);
	json_obj_end(&inner);
	CHECK_INT(json_obj_raw(&b, "empty", inner.data, inner.len), 0);
	CHECK_INT(json_obj_raw(&b, "bad", LIT("{\"a\":}")), SB_ERR_USAGE);
	CHECK_INT(json_obj_raw(&b, "two", LIT("1 2")), SB_ERR_USAGE);
	CHECK_INT(json_obj_cstr(&b, "k\"ey\n", "v"), 0);
	CHECK_INT(json_obj_end(&b), 0);
	CHECK(b.data && strstr(b.data, "\"nan\":null,\"inf\":null") != NULL);
	CHECK(strstr(b.data, "\"cost\":0.0123,") != NULL);
	CHECK(strstr(b.data, "\"tenth\":0.1,") != NULL);
	CHECK(strstr(b.data, "\"negzero\":-0,") != NULL);
	CHECK(strstr(b.data, "\"line\":\"bin\\u0000\xef\xbf\xbd\"") != NULL);
	CHECK(strstr(b.data, "\"session_id\":\"s\\u00e9\"") != NULL);
	CHECK(strncmp(b.data, "{\"type\":\"sshbox.result\",\"line\"", 30) == 0);

	CHECK_INT(json_parse_object(&doc, b.data, b.len, 64, NULL), 0);
	CHECK_INT(json_object_dup(&doc, JSON_ROOT), SB_ERR_NOTFOUND);
	CHECK_INT(json_get_int64(&doc, json_object_get(&doc, JSON_ROOT, "min"), &i64), 0);
	CHECK(i64 == INT64_MIN);
	CHECK_INT(json_get_double(&doc, json_object_get(&doc, JSON_ROOT, "third"), &d), 0);
	CHECK(d == 1.0 / 3);
	CHECK_INT(json_get_double(&doc, json_object_get(&doc, JSON_ROOT, "huge"), &d), 0);
	CHECK(d == 1e300);
	CHECK_INT(json_get_double(&doc, json_object_get(&doc, JSON_ROOT, "tiny"), &d), 0);
	CHECK(d == 5e-324);
	CHECK_INT(json_get_bool(&doc, json_object_get(&doc, JSON_ROOT, "ok"), &flag), 0);
	CHECK_INT(flag, 1);
	CHECK_INT(json_type(&doc, json_object_get(&doc, JSON_ROOT, "none")), JSON_NULL);
	CHECK_INT(json_type(&doc, json_object_get(&doc, JSON_ROOT, "empty")), JSON_OBJECT);
	/* "bad" is the bool; the refused raw left nothing behind */
	CHECK_INT(json_type(&doc, json_object_get(&doc, JSON_ROOT, "bad")), JSON_FALSE);
	v = json_object_get(&doc, JSON_ROOT, "k\"ey\n");
	CHECK(json_string_equals(&doc, v, "v"));
	json_doc_release(&doc);

	/* all-or-nothing under a bound */
	buf_release(&b);
	buf_init(&b, 20);
	json_obj_begin(&b);
	CHECK_INT(json_obj_cstr(&b, "a", "b"), 0);
	CHECK_INT(json_obj_cstr(&b, "c", "0123456789"), SB_ERR_TOOBIG);
	CHECK_STREQ(buf_cstr(&b), "{\"a\":\"b\"");
	CHECK_INT(json_obj_int64(&b, "n", 1234567890), SB_ERR_TOOBIG);
	CHECK_INT(json_obj_double(&b, "d", 0.125), 0);
	CHECK_INT(json_obj_end(&b), 0);
	CHECK_STREQ(buf_cstr(&b), "{\"a\":\"b\",\"d\":0.125}");
	CHECK_INT(json_validate(b.data, b.len, JSON_MODE_OBJECT, NULL), 0);

	json_doc_release(&src);
	buf_release(&b);
	buf_release(&inner);
}

/* ---- size and speed ---- */

static void test_big_array_line(void)
{
	struct buf line = BUF_INIT;
	struct json_doc doc = JSON_DOC_INIT;
	struct json_iter it;
	long long sum = 0;
	double t0, t;
	int a, v, k, count = 0;

	buf_adds(&line, "{\"type\":\"user\",\"a\":[");
	for (k = 0; k < 80000; k++)
		buf_addf(&line, "%s{\"key\":%d}", k ? ", " : "", k % 1000);
	buf_adds(&line, "],\"session_id\":\"abc\"}");
	CHECK(line.len > 1000000 && line.len < 1200000);

	t0 = now_s();
	CHECK_INT(json_parse_object(&doc, line.data, line.len, 1 << 20, NULL), 0);
	a = json_object_get(&doc, JSON_ROOT, "a");
	json_iter_init(&doc, a, &it);
	while (json_iter_elem(&doc, &it, &v)) {
		int64_t x = 0;

		CHECK_INT(json_type(&doc, v), JSON_OBJECT);
		CHECK_INT(json_get_int64(&doc, json_object_get(&doc, v, "key"), &x), 0);
		sum += x;
		count++;
	}
	CHECK(json_string_equals(&doc, json_object_get(&doc, JSON_ROOT, "session_id"), "abc"));
	t = now_s() - t0;
	CHECK_INT(count, 80000);
	CHECK_INT(sum, 80LL * 499500);
	/* not a performance figure (bench/ has those): a walk that is
	 * quadratic in the elements takes minutes here, a linear one well
	 * under a second even on a loaded 2-core VM */
	CHECK(t < 30.0);
	printf("# 80000-element line of %zu bytes: parsed and walked in %.1f ms\n", line.len, t * 1e3);
	json_doc_release(&doc);
	buf_release(&line);
}

/* Not a timed test: prints the validator's throughput on a stream-json-like
 * line (a tool result carrying a source file: long strings with escapes). */
static void test_throughput_report(void)
{
	struct buf text = BUF_INIT, line = BUF_INIT;
	double t0, t;
	size_t bytes = 0, ntok;
	int k;

	for (k = 0; k < 400; k++)
		buf_addf(&text, "\tif (p->len > max) {\t/* line %d: caf\xc3\xa9 \"quoted\" \xe2\x80\x94 */\n", k);
	buf_adds(&line, "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
		 "\"tool_use_id\":\"toolu_01\",\"content\":");
	json_put_string(&line, text.data, text.len);
	buf_adds(&line, ",\"is_error\":false}]},\"session_id\":\"5bd5f7cd-79e2-4826-b9b2-78bea45925e1\"}");
	t0 = now_s();
	do {
		for (k = 0; k < 50; k++) {
			CHECK_INT(json_validate(line.data, line.len, JSON_MODE_OBJECT, &ntok), 0);
			bytes += line.len;
		}
		t = now_s() - t0;
	} while (t < 0.2);
	printf("# validator: %.0f MB/s on a %zu-byte tool_result line\n", (double)bytes / t / 1e6, line.len);
	buf_release(&text);
	buf_release(&line);
}

/* json_classify_line: the stream's one pass, fast path and escaped path */
static void test_classify_line(void)
{
	static const struct { const char *line; enum json_line_kind want; } t[] = {
		{ "{\"type\":\"assistant\",\"message\":{\"content\":[]}}", JSON_LINE_OBJECT },
		{ "{\"type\":\"result\",\"subtype\":\"success\"}", JSON_LINE_RESULT },
		{ " { \"is_error\" : false , \"type\" : \"result\" } ", JSON_LINE_RESULT },
		{ "{\"type\":\"sshbox.result\",\"status\":\"succeeded\"}", JSON_LINE_SSHBOX },
		{ "{\"type\":\"sshbox.\"}", JSON_LINE_SSHBOX },
		{ "{\"type\":\"sshbox\"}", JSON_LINE_OBJECT },
		{ "{\"type\":\"results\"}", JSON_LINE_OBJECT },
		{ "{\"type\":5,\"x\":\"sshbox.y\"}", JSON_LINE_OBJECT },
		{ "{\"a\":{\"type\":\"sshbox.x\"},\"b\":[{\"type\":\"result\"}]}", JSON_LINE_OBJECT },
		{ "{\"types\":\"sshbox.x\",\"typ\":\"result\"}", JSON_LINE_OBJECT },
		/* duplicates: every top-level "type" counts, sshbox wins */
		{ "{\"type\":\"assistant\",\"type\":\"sshbox.result\"}", JSON_LINE_SSHBOX },
		{ "{\"type\":\"sshbox.x\",\"type\":\"result\"}", JSON_LINE_SSHBOX },
		{ "{\"type\":\"result\",\"type\":\"assistant\"}", JSON_LINE_RESULT },
		/* escapes: compared once decoded */
		{ "{\"\\u0074ype\":\"sshbox.result\"}", JSON_LINE_SSHBOX },
		{ "{\"type\":\"sshbox\\u002eresult\"}", JSON_LINE_SSHBOX },
		{ "{\"type\":\"resul\\u0074\"}", JSON_LINE_RESULT },
		{ "{\"t\\u0079pe\":\"result\"}", JSON_LINE_RESULT },
		{ "{\"ty\\\"pe\":\"sshbox.x\"}", JSON_LINE_OBJECT },
		{ "{\"type\":\"\\u0000sshbox.x\"}", JSON_LINE_OBJECT },
		{ "{\"x\":\"\\u0000\",\"type\":\"result\"}", JSON_LINE_RESULT },
		/* not objects, not JSON */
		{ "[{\"type\":\"result\"}]", JSON_LINE_INVALID },
		{ "\"type\"", JSON_LINE_INVALID },
		{ "{\"type\":\"result\"", JSON_LINE_INVALID },
		{ "{\"type\":\"result\"}x", JSON_LINE_INVALID },
		{ "{\"type\":\"sshbox.\xff\"}", JSON_LINE_INVALID },
		{ "", JSON_LINE_INVALID },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		enum json_line_kind got = json_classify_line(t[i].line, strlen(t[i].line));

		if (got != t[i].want) {
			CHECK_INT(got, t[i].want);
			printf("#   line: %s\n", t[i].line);
		}
	}
}

int main(void)
{
	RUN(test_json_test_suite);
	RUN(test_token_counts_match_jsmn);
	RUN(test_fuzz_counts_match_jsmn);
	RUN(test_validator_edges);
	RUN(test_parse_errors);
	RUN(test_result_line);
	RUN(test_members_and_duplicates);
	RUN(test_arrays_and_types);
	RUN(test_unescape);
	RUN(test_numbers);
	RUN(test_writer_escaping);
	RUN(test_writer_fuzz);
	RUN(test_writer_object);
	RUN(test_big_array_line);
	RUN(test_throughput_report);
	RUN(test_classify_line);
	return unit_done();
}
