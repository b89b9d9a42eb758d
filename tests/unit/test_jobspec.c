/* Unit tests for jobspec.c: the job spec of DESIGN.md §2 parsed into typed
 * fields, defaults from the config, a generated job_id, and every malformed
 * spec refused with SB_ERR_USAGE and one sentence naming the field — never
 * quoting the prompt, an env value or the git token. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "err.h"
#include "jobspec.h"
#include "unit.h"

/* Secrets put into (almost) every spec below: no message may quote them. */
#define PROMPT_SECRET "PSECRET-prompt-7f3a"
#define ENV_SECRET "ESECRET-env-91c2"
#define TOKEN_SECRET "TSECRET-token-55d0"

static struct config cfg_defaults(void)
{
	struct config c = CONFIG_INIT;

	c.default_wait_s = 11;
	c.default_timeout_s = 2222;
	c.default_idle_timeout_s = 333;
	return c;
}

static int parse_len(struct jobspec *s, const char *json, size_t len, struct sb_error *e)
{
	struct config c = cfg_defaults();
	char *copy = malloc(len ? len : 1);   /* exact size: ASan sees any over-read */
	int r;

	if (!copy)
		return SB_ERR_NOMEM;
	memcpy(copy, json, len);
	r = jobspec_parse(s, copy, len, &c, e);
	free(copy);
	return r;
}

static int parse(struct jobspec *s, const char *json, struct sb_error *e)
{
	return parse_len(s, json, strlen(json), e);
}

/* One printable line, no secret anywhere in it. */
static int message_clean(const char *msg)
{
	size_t i, n = strlen(msg);

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)msg[i] < 0x20 || (unsigned char)msg[i] > 0x7e)
			return 0;
	return !strstr(msg, PROMPT_SECRET) && !strstr(msg, ENV_SECRET) && !strstr(msg, TOKEN_SECRET) &&
	       !strstr(msg, "PSECRET") && !strstr(msg, "ESECRET") && !strstr(msg, "TSECRET");
}

/* The spec must be refused as a usage error whose message names `field`. */
static void expect_usage_len(const char *json, size_t len, const char *field, int line)
{
	struct jobspec s = JOBSPEC_INIT;
	struct sb_error e = SB_ERROR_INIT;
	int r = parse_len(&s, json, len, &e);

	if (r != SB_ERR_USAGE || e.code != SB_ERR_USAGE || (field && !strstr(e.msg, field)) ||
	    !message_clean(e.msg)) {
		unit_failed_checks++;
		printf("#   %s: line %d: spec %.*s\n#     -> r=%d code=%d msg=\"%s\" (want usage naming '%s')\n",
		       unit_current, line, (int)(len > 300 ? 300 : len), json, r, e.code, e.msg,
		       field ? field : "");
	}
	jobspec_release(&s);
}
#define USAGE(json, field) expect_usage_len((json), strlen(json), (field), __LINE__)

static void expect_ok(const char *json, int line)
{
	struct jobspec s = JOBSPEC_INIT;
	struct sb_error e = SB_ERROR_INIT;
	int r = parse(&s, json, &e);

	if (r != 0) {
		unit_failed_checks++;
		printf("#   %s: line %d: spec %s\n#     -> refused: %d \"%s\"\n", unit_current, line, json, r, e.msg);
	}
	jobspec_release(&s);
}
#define ACCEPT(json) expect_ok((json), __LINE__)

/* A spec with the base members (account, prompt, env, repo with a token),
 * where `field` (if not NULL) replaces its base member or is added. */
static char *spec_with(const char *field, const char *value)
{
	static const char *const base_names[] = { "account", "prompt", "env", "repo" };
	static const char *const base_values[] = {
		"\"acme\"", "\"" PROMPT_SECRET "\"", "{\"K\":\"" ENV_SECRET "\"}",
		"{\"url\":\"https://git.example.com/acme/app.git\",\"token\":\"" TOKEN_SECRET "\"}",
	};
	char *out = malloc(8192);
	size_t i, n = 0;
	int replaced = 0;

	if (!out)
		abort();
	n += (size_t)snprintf(out + n, 8192 - n, "{");
	for (i = 0; i < 4; i++) {
		const char *v = base_values[i];
		if (field && strcmp(field, base_names[i]) == 0) {
			v = value;
			replaced = 1;
		}
		if (v)
			n += (size_t)snprintf(out + n, 8192 - n, "%s\"%s\":%s", n > 1 ? "," : "", base_names[i], v);
	}
	if (field && !replaced)
		n += (size_t)snprintf(out + n, 8192 - n, ",\"%s\":%s", field, value);
	snprintf(out + n, 8192 - n, "}");
	return out;
}

static void usage_with(const char *field, const char *value, const char *named, int line)
{
	char *j = spec_with(field, value);

	expect_usage_len(j, strlen(j), named, line);
	free(j);
}
#define USAGE_WITH(field, value, named) usage_with((field), (value), (named), __LINE__)

static void ok_with(const char *field, const char *value, int line)
{
	char *j = spec_with(field, value);

	expect_ok(j, line);
	free(j);
}
#define OK_WITH(field, value) ok_with((field), (value), __LINE__)

/* ------------------------------------------------------------------ */

static const char full_spec[] =
	"{\n"
	"  \"account\": \"acme\",\n"
	"  \"job_id\": \"rb-2041\",\n"
	"  \"repo\": {\"url\": \"https://github.com/acme/app.git\", \"ref\": \"main\",\n"
	"           \"token\": \"ghs_abc123\", \"lfs\": true, \"submodules\": true},\n"
	"  \"prompt\": \"Fix the flaky test in tests/test_api.py\\nline \\\"two\\\" \\u00e9 \\ud83d\\ude00 $(id) `id` '\",\n"
	"  \"claude_args\": [\"--model\", \"sonnet\", \"--max-turns\", \"30\"],\n"
	"  \"env\": {\"ANTHROPIC_API_KEY\": \"sk-\\u0041x\", \"RUNBOOK_ID\": \"2041\", \"EMPTY\": \"\"},\n"
	"  \"timeout_s\": 3600,\n"
	"  \"idle_timeout_s\": 600,\n"
	"  \"wait_s\": 120,\n"
	"  \"sandbox\": \"Box1.Example.COM\"\n"
	"}\n";

static void test_full_spec(void)
{
	static const char want_prompt[] =
		"Fix the flaky test in tests/test_api.py\nline \"two\" \xc3\xa9 \xf0\x9f\x98\x80 $(id) `id` '";
	struct jobspec s = JOBSPEC_INIT;
	struct sb_error e = SB_ERROR_INIT;
	int r = parse(&s, full_spec, &e);

	CHECK_INT(r, 0);
	if (r) {
		printf("#   refused: %s\n", e.msg);
		jobspec_release(&s);
		return;
	}
	CHECK_STREQ(s.account, "acme");
	CHECK_STREQ(s.job_id, "rb-2041");
	CHECK_INT(s.prompt_len, sizeof(want_prompt) - 1);
	CHECK(s.prompt && memcmp(s.prompt, want_prompt, sizeof(want_prompt)) == 0);
	CHECK_STREQ(s.sandbox, "box1.example.com");
	CHECK_INT(s.has_repo, 1);
	CHECK_STREQ(s.repo_url, "https://github.com/acme/app.git");
	CHECK_STREQ(s.repo_ref, "main");
	CHECK_STREQ(s.repo_token, "ghs_abc123");
	CHECK_INT(s.repo_lfs, 1);
	CHECK_INT(s.repo_submodules, 1);
	CHECK_INT(s.claude_args.n, 4);
	if (s.claude_args.n == 4) {
		CHECK_STREQ(s.claude_args.v[0], "--model");
		CHECK_STREQ(s.claude_args.v[1], "sonnet");
		CHECK_STREQ(s.claude_args.v[2], "--max-turns");
		CHECK_STREQ(s.claude_args.v[3], "30");
		CHECK(s.claude_args.v[4] == NULL);
	}
	CHECK_INT(s.env_names.n, 3);
	CHECK_INT(s.env_values.n, 3);
	if (s.env_names.n == 3 && s.env_values.n == 3) {
		CHECK_STREQ(s.env_names.v[0], "ANTHROPIC_API_KEY");
		CHECK_STREQ(s.env_values.v[0], "sk-Ax");
		CHECK_STREQ(s.env_names.v[1], "RUNBOOK_ID");
		CHECK_STREQ(s.env_values.v[1], "2041");
		CHECK_STREQ(s.env_names.v[2], "EMPTY");
		CHECK_STREQ(s.env_values.v[2], "");
	}
	CHECK_INT(s.timeout_s, 3600);
	CHECK_INT(s.idle_timeout_s, 600);
	CHECK_INT(s.wait_s, 120);
	jobspec_release(&s);
	CHECK(s.account == NULL && s.prompt == NULL && s.env_values.n == 0);
	/* release twice is harmless (it zeroes the struct) */
	jobspec_release(&s);
}

static void test_false_bools_and_no_ref(void)
{
	struct jobspec s = JOBSPEC_INIT;
	struct sb_error e = SB_ERROR_INIT;
	int r = parse(&s, "{\"account\":\"a\",\"prompt\":\"p\",\"repo\":{\"url\":\"http://h:8080/r\","
			  "\"lfs\":false,\"submodules\":false}}", &e);

	CHECK_INT(r, 0);
	CHECK_INT(s.has_repo, 1);
	CHECK_STREQ(s.repo_url, "http://h:8080/r");
	CHECK(s.repo_ref == NULL);
	CHECK(s.repo_token == NULL);
	CHECK_INT(s.repo_lfs, 0);
	CHECK_INT(s.repo_submodules, 0);
	jobspec_release(&s);
}

static void test_defaults(void)
{
	struct jobspec s = JOBSPEC_INIT;
	struct sb_error e = SB_ERROR_INIT;
	int r = parse(&s, "{\"account\":\"acme\",\"prompt\":\"hello\"}", &e);

	CHECK_INT(r, 0);
	CHECK_STREQ(s.account, "acme");
	CHECK_INT(s.prompt_len, 5);
	CHECK(s.prompt && memcmp(s.prompt, "hello", 6) == 0);
	CHECK_INT(s.wait_s, 11);
	CHECK_INT(s.timeout_s, 2222);
	CHECK_INT(s.idle_timeout_s, 333);
	CHECK_INT(s.has_repo, 0);
	CHECK(s.repo_url == NULL && s.repo_ref == NULL && s.repo_token == NULL);
	CHECK(s.sandbox == NULL);
	CHECK_INT(s.claude_args.n, 0);
	CHECK_INT(s.env_names.n, 0);
	CHECK_INT(s.env_values.n, 0);
	jobspec_release(&s);

	/* other defaults from another config */
	{
		struct config c = CONFIG_INIT;
		static const char js[] = "{\"prompt\":\"x\",\"account\":\"b\",\"wait_s\":0}";
		c.default_wait_s = 5;
		c.default_timeout_s = 6;
		c.default_idle_timeout_s = 7;
		r = jobspec_parse(&s, js, sizeof(js) - 1, &c, &e);
		CHECK_INT(r, 0);
		CHECK_INT(s.wait_s, 0);
		CHECK_INT(s.timeout_s, 6);
		CHECK_INT(s.idle_timeout_s, 7);
		jobspec_release(&s);
	}
}

static int is_generated_id(const char *id)
{
	size_t i;

	if (!id || strlen(id) != 20 || strncmp(id, "job-", 4) != 0)
		return 0;
	for (i = 4; i < 20; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return 0;
	return 1;
}

static void test_generated_job_id(void)
{
	struct jobspec a = JOBSPEC_INIT, b = JOBSPEC_INIT;
	struct sb_error e = SB_ERROR_INIT;

	CHECK_INT(parse(&a, "{\"account\":\"acme\",\"prompt\":\"x\"}", &e), 0);
	CHECK_INT(parse(&b, "{\"account\":\"acme\",\"prompt\":\"x\"}", &e), 0);
	CHECK(is_generated_id(a.job_id));
	CHECK(is_generated_id(b.job_id));
	CHECK(a.job_id && b.job_id && strcmp(a.job_id, b.job_id) != 0);
	if (!is_generated_id(a.job_id))
		printf("#   generated job_id: %s\n", a.job_id ? a.job_id : "(null)");
	jobspec_release(&a);
	jobspec_release(&b);
}

static void test_bounds_accepted(void)
{
	OK_WITH("timeout_s", "1");
	OK_WITH("timeout_s", "604800");
	OK_WITH("idle_timeout_s", "1");
	OK_WITH("wait_s", "0");
	OK_WITH("wait_s", "86400");
	OK_WITH("job_id", "\"a\"");
	OK_WITH("job_id", "\"A.b_c-9\"");
	OK_WITH("job_id", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""); /* 64 */
	OK_WITH("sandbox", "\"10.0.0.5\"");
	OK_WITH("sandbox", "\"::1\"");
	OK_WITH("env", "{}");
	OK_WITH("env", "{\"_X1\":\"v\",\"lower\":\"y\",\"PATH\":\"/usr/bin:/bin\"}");
	OK_WITH("claude_args", "[]");
	OK_WITH("claude_args", "[\"\", \"--x=$(id)\", \"a b\", \"'\"]");
	OK_WITH("repo", "{\"url\":\"https://h/r\",\"ref\":\"v1.2/rel-x\"}");
	OK_WITH("repo", "{\"url\":\"https://[::1]:8443/r.git\"}");
	ACCEPT("  \t\r\n{\"account\":\"a\",\"prompt\":\"x\"}\n\n ");
	/* limits count a string's bytes, not its escapes (Python's json.dumps
	 * writes every non-ASCII character as \uXXXX): 64 escaped letters */
	OK_WITH("job_id", "\"\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061"
			  "\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061"
			  "\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061"
			  "\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061"
			  "\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061"
			  "\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061"
			  "\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061"
			  "\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\"");
}

/* --- refusals --------------------------------------------------------- */

static void test_unknown_fields(void)
{
	USAGE_WITH("bogus", "1", "bogus");
	USAGE_WITH("Account", "\"acme\"", "Account");
	USAGE_WITH("timeout", "5", "timeout");
	USAGE_WITH("repo", "{\"url\":\"https://h/r\",\"branch\":\"main\"}", "repo.branch");
	USAGE_WITH("repo", "{\"url\":\"https://h/r\",\"token\":\"" TOKEN_SECRET "\",\"x\":null}", "repo.x");
}

static void test_duplicates(void)
{
	USAGE("{\"account\":\"a\",\"prompt\":\"" PROMPT_SECRET "\",\"account\":\"b\"}", "account");
	USAGE("{\"account\":\"a\",\"prompt\":\"" PROMPT_SECRET "\",\"prompt\":\"" PROMPT_SECRET "\"}", "prompt");
	/* the same name spelled with an escape is still the same name */
	USAGE("{\"account\":\"a\",\"prompt\":\"" PROMPT_SECRET "\",\"acc\\u006funt\":\"b\"}", "account");
	USAGE("{\"account\":\"a\",\"prompt\":\"p\",\"timeout_s\":5,\"timeout_s\":5}", "timeout_s");
	USAGE_WITH("env", "{\"A\":\"" ENV_SECRET "\",\"B\":\"1\",\"A\":\"" ENV_SECRET "\"}", "A");
	USAGE_WITH("env", "{\"A\":\"" ENV_SECRET "\",\"A\":\"" ENV_SECRET "\"}", "env.A");
	USAGE_WITH("repo", "{\"url\":\"https://h/r\",\"url\":\"https://h/s\"}", "repo.url");
	USAGE_WITH("repo", "{\"url\":\"https://h/r\",\"token\":\"" TOKEN_SECRET "\",\"token\":\"" TOKEN_SECRET "\"}",
		   "repo.token");
}

enum kind { K_NONE, K_STR, K_INT, K_BOOL, K_ARR, K_OBJ };

static void test_wrong_types(void)
{
	static const struct { const char *v; enum kind k; } samples[] = {
		{ "\"str\"", K_STR }, { "\"\"", K_STR }, { "7", K_INT }, { "-3", K_INT },
		{ "true", K_BOOL }, { "false", K_BOOL }, { "null", K_NONE }, { "1.5", K_NONE },
		{ "[]", K_ARR }, { "[\"a\"]", K_ARR }, { "{}", K_OBJ }, { "{\"a\":\"b\"}", K_OBJ },
	};
	static const struct { const char *field; enum kind k; } top[] = {
		{ "account", K_STR }, { "job_id", K_STR }, { "prompt", K_STR }, { "sandbox", K_STR },
		{ "timeout_s", K_INT }, { "idle_timeout_s", K_INT }, { "wait_s", K_INT },
		{ "claude_args", K_ARR }, { "env", K_OBJ }, { "repo", K_OBJ },
	};
	static const struct { const char *field; enum kind k; } sub[] = {
		{ "url", K_STR }, { "ref", K_STR }, { "token", K_STR }, { "lfs", K_BOOL }, { "submodules", K_BOOL },
	};
	size_t i, j;
	char val[256], named[64];

	for (i = 0; i < sizeof(top) / sizeof(top[0]); i++)
		for (j = 0; j < sizeof(samples) / sizeof(samples[0]); j++) {
			if ((int)samples[j].k == (int)top[i].k)
				continue;
			snprintf(named, sizeof(named), "'%s'", top[i].field);
			USAGE_WITH(top[i].field, samples[j].v, named);
		}
	for (i = 0; i < sizeof(sub) / sizeof(sub[0]); i++)
		for (j = 0; j < sizeof(samples) / sizeof(samples[0]); j++) {
			if ((int)samples[j].k == (int)sub[i].k)
				continue;
			if (strcmp(sub[i].field, "url") == 0)
				snprintf(val, sizeof(val), "{\"url\":%s}", samples[j].v);
			else
				snprintf(val, sizeof(val), "{\"url\":\"https://h/r\",\"%s\":%s}", sub[i].field, samples[j].v);
			snprintf(named, sizeof(named), "'repo.%s'", sub[i].field);
			USAGE_WITH("repo", val, named);
		}
	/* env values and claude_args elements must be strings */
	for (j = 0; j < sizeof(samples) / sizeof(samples[0]); j++) {
		if (samples[j].k == K_STR)
			continue;
		snprintf(val, sizeof(val), "{\"K\":\"" ENV_SECRET "\",\"B\":%s}", samples[j].v);
		USAGE_WITH("env", val, "env.B");
		snprintf(val, sizeof(val), "[\"--model\",%s]", samples[j].v);
		USAGE_WITH("claude_args", val, "claude_args");
	}
}

static void test_numbers(void)
{
	static const char *const fields[] = { "timeout_s", "idle_timeout_s", "wait_s" };
	static const char *const bad[] = {
		"1.5", "1e3", "1E3", "1.0", "-1", "-0.0", "99999999999999999999999", "9223372036854775808",
		"2147483648", "4294967297", "1000000000000",
	};
	size_t i, j;

	for (i = 0; i < 3; i++)
		for (j = 0; j < sizeof(bad) / sizeof(bad[0]); j++)
			USAGE_WITH(fields[i], bad[j], fields[i]);
	USAGE_WITH("timeout_s", "0", "timeout_s");
	USAGE_WITH("idle_timeout_s", "0", "idle_timeout_s");
	USAGE_WITH("timeout_s", "604801", "timeout_s");
	USAGE_WITH("wait_s", "86401", "wait_s");
}

static void test_bad_values(void)
{
	/* job_id */
	USAGE_WITH("job_id", "\"a/b\"", "job_id");
	USAGE_WITH("job_id", "\"..\"", "job_id");
	USAGE_WITH("job_id", "\".\"", "job_id");
	USAGE_WITH("job_id", "\"\"", "job_id");
	USAGE_WITH("job_id", "\"a b\"", "job_id");
	USAGE_WITH("job_id", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"", "job_id"); /* 65 */
	/* account */
	USAGE_WITH("account", "\"a:b\"", "account");
	USAGE_WITH("account", "\"a{b}\"", "account");
	USAGE_WITH("account", "\"{a\"", "account");
	USAGE_WITH("account", "\"\"", "account");
	USAGE_WITH("account", "\"-a\"", "account");
	USAGE_WITH("account", "\"a\\nb\"", "account");
	/* env names */
	USAGE_WITH("env", "{\"K\":\"" ENV_SECRET "\",\"1X\":\"v\"}", "env name");
	USAGE_WITH("env", "{\"K\":\"" ENV_SECRET "\",\"A-B\":\"v\"}", "env name");
	USAGE_WITH("env", "{\"K\":\"" ENV_SECRET "\",\"SSHBOX_X\":\"v\"}", "SSHBOX_X");
	USAGE_WITH("env", "{\"K\":\"" ENV_SECRET "\",\"\":\"v\"}", "env");
	USAGE_WITH("env", "{\"K\":\"" ENV_SECRET "\",\"A=B\":\"v\"}", "env name");
	USAGE_WITH("env", "{\"K\":\"" ENV_SECRET "\",\"A\\u0000\":\"v\"}", "env");
	/* claude_args */
	USAGE_WITH("claude_args", "\"--model sonnet\"", "claude_args");
	USAGE_WITH("claude_args", "[\"--max-turns\", 30]", "claude_args");
	USAGE_WITH("claude_args", "[\"a\\u0000b\"]", "claude_args");
	/* repo */
	USAGE_WITH("repo", "{}", "repo.url");
	USAGE_WITH("repo", "{\"ref\":\"main\",\"token\":\"" TOKEN_SECRET "\"}", "repo.url");
	USAGE_WITH("repo", "{\"url\":\"https://x:y@h/r\"}", "repo.url");
	USAGE_WITH("repo", "{\"url\":\"ssh://h/r\"}", "repo.url");
	USAGE_WITH("repo", "{\"url\":\"-uhttps://h/r\"}", "repo.url");
	USAGE_WITH("repo", "{\"url\":\"ext::sh -c id\"}", "repo.url");
	USAGE_WITH("repo", "{\"url\":\"https://h/r\",\"ref\":\"--upload-pack=x\"}", "repo.ref");
	USAGE_WITH("repo", "{\"url\":\"https://h/r\",\"ref\":\"a..b\"}", "repo.ref");
	USAGE_WITH("repo", "{\"url\":\"https://h/r\",\"ref\":\"\"}", "repo.ref");
	USAGE_WITH("repo", "{\"url\":\"https://h/r\",\"ref\":\"a b\"}", "repo.ref");
	USAGE_WITH("repo", "{\"url\":\"https://h/r\",\"token\":\"" TOKEN_SECRET "\\nX\"}", "repo.token");
	/* sandbox */
	USAGE_WITH("sandbox", "\"-oFoo\"", "sandbox");
	USAGE_WITH("sandbox", "\"-oProxyCommand=id\"", "sandbox");
	USAGE_WITH("sandbox", "\"a b\"", "sandbox");
	USAGE_WITH("sandbox", "\"\"", "sandbox");
	/* prompt */
	USAGE_WITH("prompt", NULL, "prompt");
	USAGE_WITH("prompt", "\"\"", "prompt");
	USAGE_WITH("prompt", "\"" PROMPT_SECRET "\\u0000tail\"", "prompt");
	USAGE_WITH("prompt", "\"" PROMPT_SECRET "\\ud800\"", "prompt");
	/* account missing */
	USAGE_WITH("account", NULL, "account");
}

/* The base spec the refusals are built from is itself valid. */
static void test_base_spec_valid(void)
{
	OK_WITH(NULL, NULL);
}

static void test_invalid_documents(void)
{
	static const char nul_inside[] = "{\"account\":\"a\",\"prompt\":\"x\0y\"}";

	expect_usage_len("", 0, NULL, __LINE__);
	expect_usage_len(nul_inside, sizeof(nul_inside) - 1, NULL, __LINE__);
	USAGE("   ", NULL);
	USAGE("\n", NULL);
	USAGE("{\"account\":", NULL);
	USAGE("{\"account\":\"a\",\"prompt\":\"" PROMPT_SECRET "\"", NULL);
	USAGE("{\"account\":\"a\",\"prompt\":\"" PROMPT_SECRET "\"} x", NULL);
	USAGE("{\"account\":\"a\",\"prompt\":\"" PROMPT_SECRET "\"}{}", NULL);
	USAGE("{\"account\":\"a\",\"prompt\":\"" PROMPT_SECRET "\"},", NULL);
	USAGE("[{\"account\":\"a\",\"prompt\":\"" PROMPT_SECRET "\"}]", NULL);
	USAGE("[]", NULL);
	USAGE("\"" PROMPT_SECRET "\"", NULL);
	USAGE("42", NULL);
	USAGE("null", NULL);
	USAGE("{'account':'a'}", NULL);
	USAGE("{\"account\":\"a\",\"prompt\":\"" PROMPT_SECRET "\",}", NULL);
	USAGE("{\"account\":\"a\",\"prompt\":\"" PROMPT_SECRET "\x01\"}", NULL);
	USAGE("{\"account\":\"a\",\"prompt\":\"" PROMPT_SECRET "\xff\"}", NULL);
	USAGE("{\"account\":\"a\",\"prompt\":\"" PROMPT_SECRET "\\q\"}", NULL);
	USAGE("\xef\xbb\xbf{\"account\":\"a\",\"prompt\":\"x\"}", NULL);
	USAGE("{}", "account");
}

/* An error about one field never quotes a secret given in another. */
static void test_no_secrets_in_messages(void)
{
	static const char *const specs[] = {
		"{\"prompt\":\"" PROMPT_SECRET "\",\"env\":{\"K\":\"" ENV_SECRET "\"},\"account\":\"a b\"}",
		"{\"prompt\":\"" PROMPT_SECRET "\",\"env\":{\"K\":\"" ENV_SECRET "\"},\"account\":\"a\",\"timeout_s\":\"" ENV_SECRET "\"}",
		"{\"prompt\":\"" PROMPT_SECRET "\",\"env\":{\"K\":\"" ENV_SECRET "\",\"K\":\"" ENV_SECRET "\"},\"account\":\"a\"}",
		"{\"prompt\":\"" PROMPT_SECRET "\",\"env\":{\"K\":\"" ENV_SECRET "\"}}",
		"{\"env\":{\"K\":\"" ENV_SECRET "\"},\"account\":\"a\"}",
		"{\"prompt\":\"" PROMPT_SECRET "\",\"env\":{\"K\":\"" ENV_SECRET "\"},\"account\":\"a\",\"repo\":{\"token\":\"" TOKEN_SECRET "\"}}",
		"{\"prompt\":\"" PROMPT_SECRET "\",\"env\":{\"K\":\"" ENV_SECRET "\",\"L\":[\"" ENV_SECRET "\"]},\"account\":\"a\"}",
		"{\"prompt\":[\"" PROMPT_SECRET "\"],\"account\":\"a\"}",
		"{\"prompt\":\"" PROMPT_SECRET "\\u0000\",\"account\":\"a\"}",
		"{\"prompt\":\"" PROMPT_SECRET "\",\"env\":{\"K\":\"" ENV_SECRET "\"},\"account\":\"a\",\"claude_args\":{\"x\":\"" ENV_SECRET "\"}}",
		"{\"prompt\":\"" PROMPT_SECRET "\",\"env\":{\"K\":\"" ENV_SECRET "\"},\"account\":\"a\",\"repo\":{\"url\":\"https://h/r\",\"token\":[\"" TOKEN_SECRET "\"]}}",
	};
	size_t i;

	for (i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
		USAGE(specs[i], NULL);
}

/* repo.url is not a secret, but credentials inside it are (DESIGN.md §5:
 * secrets never appear in error messages). */
static void test_url_credentials_not_echoed(void)
{
	struct jobspec s = JOBSPEC_INIT;
	struct sb_error e = SB_ERROR_INIT;
	int r = parse(&s, "{\"account\":\"a\",\"prompt\":\"p\",\"repo\":{\"url\":"
			  "\"https://x-access-token:ghp_PASSWORD1234@github.com/acme/app.git\"}}", &e);

	CHECK_INT(r, SB_ERR_USAGE);
	CHECK(strstr(e.msg, "repo.url") != NULL);
	CHECK(strstr(e.msg, "ghp_PASSWORD1234") == NULL);
	CHECK(strstr(e.msg, "PASSWORD") == NULL);
	if (strstr(e.msg, "PASSWORD"))
		printf("#   message quotes the credentials: %s\n", e.msg);
	jobspec_release(&s);

	/* also when another rule (a space) is what refuses it */
	e = (struct sb_error)SB_ERROR_INIT;
	r = parse(&s, "{\"account\":\"a\",\"prompt\":\"p\",\"repo\":{\"url\":"
		      "\"https://u:PASS WORD99@github.com/acme/app.git\"}}", &e);
	CHECK_INT(r, SB_ERR_USAGE);
	CHECK(strstr(e.msg, "repo.url") != NULL);
	CHECK(strstr(e.msg, "PASS") == NULL);
	jobspec_release(&s);
}

static void check_job_id_on_failure(const char *json, const char *want, int line)
{
	struct jobspec s = JOBSPEC_INIT;
	struct sb_error e = SB_ERROR_INIT;
	int r = parse(&s, json, &e);
	int bad = r == 0 || (want ? !s.job_id || strcmp(s.job_id, want) != 0 : s.job_id != NULL);

	if (bad) {
		unit_failed_checks++;
		printf("#   %s: line %d: r=%d job_id=%s, expected %s (%s)\n", unit_current, line, r,
		       s.job_id ? s.job_id : "(null)", want ? want : "(null)", e.msg);
	}
	jobspec_release(&s);
}
#define JOB_ID_ON_FAILURE(json, want) check_job_id_on_failure((json), (want), __LINE__)

static void test_job_id_on_failure(void)
{
	JOB_ID_ON_FAILURE("{\"job_id\":\"rb-7\",\"account\":\"acme\",\"prompt\":\"x\",\"bogus\":1}", "rb-7");
	/* the error comes before the job_id in document order */
	JOB_ID_ON_FAILURE("{\"bogus\":1,\"account\":\"acme\",\"job_id\":\"rb-8\",\"prompt\":\"x\"}", "rb-8");
	JOB_ID_ON_FAILURE("{\"account\":\"a b\",\"job_id\":\"rb-9\",\"prompt\":\"x\"}", "rb-9");
	JOB_ID_ON_FAILURE("{\"job_id\":\"rb-10\",\"account\":\"acme\"}", "rb-10");
	JOB_ID_ON_FAILURE("{\"job_id\":\"rb-11\",\"prompt\":\"x\"}", "rb-11");
	JOB_ID_ON_FAILURE("{\"job_id\":\"rb-12\",\"account\":\"acme\",\"prompt\":\"x\",\"timeout_s\":1.5}", "rb-12");
	JOB_ID_ON_FAILURE("{\"job_id\":\"rb-13\",\"account\":\"acme\",\"prompt\":\"x\",\"env\":{\"A\":\"1\",\"A\":\"2\"}}",
			  "rb-13");
	JOB_ID_ON_FAILURE("{\"job_id\":\"r\\u0062-14\",\"account\":\"acme\",\"prompt\":\"\"}", "rb-14");
	/* unreadable or invalid job_id: none */
	JOB_ID_ON_FAILURE("{\"job_id\":\"a/b\",\"account\":\"acme\",\"prompt\":\"x\"}", NULL);
	JOB_ID_ON_FAILURE("{\"job_id\":\"..\",\"account\":\"acme\",\"prompt\":\"x\"}", NULL);
	JOB_ID_ON_FAILURE("{\"job_id\":7,\"account\":\"acme\",\"prompt\":\"x\"}", NULL);
	JOB_ID_ON_FAILURE("{\"job_id\":\"rb-15\",\"account\":\"acme\",\"prompt\":\"x\"", NULL);
	JOB_ID_ON_FAILURE("[{\"job_id\":\"rb-16\"}]", NULL);
	JOB_ID_ON_FAILURE("{\"x\":{\"job_id\":\"rb-17\"},\"account\":\"acme\",\"prompt\":\"x\"}", NULL);
}

/* Repeated parse/release of every kind of spec: ASan/LSan report leaks. */
static void test_release_frees_everything(void)
{
	int i;

	for (i = 0; i < 50; i++) {
		struct jobspec s = JOBSPEC_INIT;
		struct sb_error e = SB_ERROR_INIT;
		CHECK_INT(parse(&s, full_spec, &e), 0);
		jobspec_release(&s);
		/* failures late in the document, after everything was allocated */
		CHECK_INT(parse(&s, "{\"account\":\"a\",\"job_id\":\"j\",\"prompt\":\"p\",\"sandbox\":\"h\","
				   "\"repo\":{\"url\":\"https://h/r\",\"ref\":\"m\",\"token\":\"t\"},"
				   "\"claude_args\":[\"a\",\"b\"],\"env\":{\"A\":\"1\",\"B\":\"2\"},\"zzz\":1}", &e),
			  SB_ERR_USAGE);
		jobspec_release(&s);
		CHECK_INT(parse(&s, "{\"account\":\"a\",\"prompt\":\"p\",\"env\":{\"A\":\"1\",\"B\":2}}", &e),
			  SB_ERR_USAGE);
		jobspec_release(&s);
		CHECK_INT(parse(&s, "{\"account\":\"a\",\"prompt\":\"p\",\"claude_args\":[\"a\",2]}", &e),
			  SB_ERR_USAGE);
		jobspec_release(&s);
		CHECK_INT(parse(&s, "{\"account\":\"a\",\"prompt\":\"p\",\"repo\":{\"token\":\"t\",\"ref\":\"m\"}}", &e),
			  SB_ERR_USAGE);
		jobspec_release(&s);
	}
}

/* A 1 MiB prompt round-trips exactly. */
static void test_large_prompt(void)
{
	size_t n = 1024 * 1024, i;
	char *js = malloc(n + 64);
	struct jobspec s = JOBSPEC_INIT;
	struct sb_error e = SB_ERROR_INIT;
	size_t off;

	if (!js)
		return;
	off = (size_t)sprintf(js, "{\"account\":\"a\",\"prompt\":\"");
	for (i = 0; i < n; i++)
		js[off + i] = (char)('a' + i % 26);
	off += n;
	off += (size_t)sprintf(js + off, "\"}");
	CHECK_INT(parse_len(&s, js, off, &e), 0);
	CHECK_INT(s.prompt_len, n);
	CHECK(s.prompt && s.prompt[0] == 'a' && s.prompt[n - 1] == (char)('a' + (n - 1) % 26) && s.prompt[n] == '\0');
	jobspec_release(&s);
	free(js);
}

int main(void)
{
	RUN(test_full_spec);
	RUN(test_false_bools_and_no_ref);
	RUN(test_defaults);
	RUN(test_generated_job_id);
	RUN(test_bounds_accepted);
	RUN(test_unknown_fields);
	RUN(test_duplicates);
	RUN(test_wrong_types);
	RUN(test_numbers);
	RUN(test_bad_values);
	RUN(test_base_spec_valid);
	RUN(test_invalid_documents);
	RUN(test_no_secrets_in_messages);
	RUN(test_url_credentials_not_echoed);
	RUN(test_job_id_on_failure);
	RUN(test_release_frees_everything);
	RUN(test_large_prompt);
	return unit_done();
}
