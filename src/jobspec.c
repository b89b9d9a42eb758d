#include "jobspec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "entropy.h"
#include "json.h"
#include "secret.h"
#include "validate.h"

#define SPEC_MAX_TOKENS 20000

/* A string member into a fresh C string (secret: wiped on free). */
static SB_MUST_CHECK int get_str(const struct json_doc *d, int v, const char *field, size_t max, int secret,
		   char **out, size_t *out_len, struct sb_error *e)
{
	struct buf b;
	int r;

	if (secret)
		buf_init_secret(&b, max);
	else
		buf_init(&b, max);
	if (json_type(d, v) != JSON_STRING)
		return sb_error_set(e, SB_ERR_USAGE, "invalid field '%s' in job spec: expected a string", field);
	r = json_get_string(d, v, &b);
	if (r == SB_ERR_TOOBIG)
		r = sb_error_set(e, SB_ERR_USAGE, "invalid field '%s' in job spec: longer than %zu bytes", field, max);
	else if (r)
		r = sb_error_set(e, SB_ERR_USAGE, "invalid field '%s' in job spec: contains a NUL or an unpaired surrogate", field);
	if (r) {
		buf_release(&b);
		return r;
	}
	if (out_len)
		*out_len = b.len;
	*out = b.data ? buf_detach(&b, NULL) : strdup("");
	if (!*out)
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	return 0;
}

static SB_MUST_CHECK int get_int(const struct json_doc *d, int v, const char *field, int lo, int hi, int *out,
		   struct sb_error *e)
{
	int64_t n;

	if (json_type(d, v) != JSON_NUMBER || json_get_int64(d, v, &n) != 0)
		return sb_error_set(e, SB_ERR_USAGE, "invalid field '%s' in job spec: expected an integer", field);
	if (n < lo || n > hi)
		return sb_error_set(e, SB_ERR_USAGE, "invalid field '%s' in job spec: %lld is outside %d..%d", field,
				    (long long)n, lo, hi);
	*out = (int)n;
	return 0;
}

static SB_MUST_CHECK int get_bool(const struct json_doc *d, int v, const char *field, int *out, struct sb_error *e)
{
	if (json_get_bool(d, v, out) != 0)
		return sb_error_set(e, SB_ERR_USAGE, "invalid field '%s' in job spec: expected true or false", field);
	return 0;
}

static void key_name(const struct json_doc *d, int k, char *out, size_t outsz)
{
	struct buf b;
	char echo[VALIDATE_ECHO_SIZE];

	buf_init(&b, 256);
	if (json_get_string(d, k, &b) != 0) {
		snprintf(out, outsz, "(unreadable)");
	} else {
		validate_echo(echo, sizeof(echo), b.data ? b.data : "");
		snprintf(out, outsz, "%s", echo);
	}
	buf_release(&b);
}

static SB_MUST_CHECK int check_dups(const struct json_doc *d, int obj, const char *where, struct sb_error *e)
{
	int k = json_object_dup(d, obj);
	char name[VALIDATE_ECHO_SIZE];

	if (k < 0)
		return 0;
	key_name(d, k, name, sizeof(name));
	return sb_error_set(e, SB_ERR_USAGE, "invalid job spec: duplicate field '%s%s'", where, name);
}

static SB_MUST_CHECK int parse_repo(struct jobspec *s, const struct json_doc *d, int obj, struct sb_error *e)
{
	struct json_iter it;
	int k, v, r = 0;

	if (json_type(d, obj) != JSON_OBJECT)
		return sb_error_set(e, SB_ERR_USAGE, "invalid field 'repo' in job spec: expected an object");
	if ((r = check_dups(d, obj, "repo.", e)) != 0)
		return r;
	s->has_repo = 1;
	json_iter_init(d, obj, &it);
	while (!r && json_iter_member(d, &it, &k, &v)) {
		if (json_string_equals(d, k, "url")) {
			if (!(r = get_str(d, v, "repo.url", VALIDATE_URL_MAX, 0, &s->repo_url, NULL, e)))
				r = validate_repo_url(s->repo_url, e);
		} else if (json_string_equals(d, k, "ref")) {
			if (!(r = get_str(d, v, "repo.ref", VALIDATE_PATH_MAX, 0, &s->repo_ref, NULL, e)))
				r = validate_ref(s->repo_ref, e);
		} else if (json_string_equals(d, k, "token")) {
			r = get_str(d, v, "repo.token", 16384, 1, &s->repo_token, NULL, e);
			if (!r && strpbrk(s->repo_token, "\n\r"))
				r = sb_error_set(e, SB_ERR_USAGE, "invalid field 'repo.token' in job spec: contains a line break");
		} else if (json_string_equals(d, k, "lfs")) {
			r = get_bool(d, v, "repo.lfs", &s->repo_lfs, e);
		} else if (json_string_equals(d, k, "submodules")) {
			r = get_bool(d, v, "repo.submodules", &s->repo_submodules, e);
		} else {
			char name[VALIDATE_ECHO_SIZE];
			key_name(d, k, name, sizeof(name));
			r = sb_error_set(e, SB_ERR_USAGE, "invalid job spec: unknown field 'repo.%s'", name);
		}
	}
	if (!r && !s->repo_url)
		r = sb_error_set(e, SB_ERR_USAGE, "invalid job spec: missing field 'repo.url'");
	if (!r && s->repo_token && strncasecmp(s->repo_url, "https://", 8) != 0)
		r = sb_error_set(e, SB_ERR_USAGE,
				 "invalid field 'repo.url' in job spec: a token is only sent over https");
	return r;
}

static SB_MUST_CHECK int parse_args(struct jobspec *s, const struct json_doc *d, int arr, struct sb_error *e)
{
	struct json_iter it;
	int v, r = 0;

	if (json_type(d, arr) != JSON_ARRAY)
		return sb_error_set(e, SB_ERR_USAGE, "invalid field 'claude_args' in job spec: expected an array of strings");
	if (json_count(d, arr) > JOBSPEC_MAX_ARGS)
		return sb_error_set(e, SB_ERR_USAGE, "invalid field 'claude_args' in job spec: more than %d items",
				    JOBSPEC_MAX_ARGS);
	json_iter_init(d, arr, &it);
	while (!r && json_iter_elem(d, &it, &v)) {
		char *a = NULL;
		if ((r = get_str(d, v, "claude_args", JOBSPEC_MAX_ARG, 0, &a, NULL, e)) == 0 &&
		    strvec_push(&s->claude_args, a) != 0)
			r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
		free(a);
	}
	return r;
}

static SB_MUST_CHECK int parse_env(struct jobspec *s, const struct json_doc *d, int obj, struct sb_error *e)
{
	struct json_iter it;
	int k, v, r = 0;

	if (json_type(d, obj) != JSON_OBJECT)
		return sb_error_set(e, SB_ERR_USAGE, "invalid field 'env' in job spec: expected an object of strings");
	if (json_count(d, obj) > JOBSPEC_MAX_ENV)
		return sb_error_set(e, SB_ERR_USAGE, "invalid field 'env' in job spec: more than %d variables", JOBSPEC_MAX_ENV);
	if ((r = check_dups(d, obj, "env.", e)) != 0)
		return r;
	json_iter_init(d, obj, &it);
	while (!r && json_iter_member(d, &it, &k, &v)) {
		char *name = NULL, *val = NULL;
		char field[VALIDATE_ENV_NAME_MAX + 8];

		if ((r = get_str(d, k, "env", VALIDATE_ENV_NAME_MAX + 1, 0, &name, NULL, e)) != 0)
			break;
		if ((r = validate_env_name(name, e)) == 0 && strncmp(name, "SSHBOX_", 7) == 0)
			r = sb_error_set(e, SB_ERR_USAGE, "invalid env name '%s' in job spec: SSHBOX_ variables are reserved", name);
		snprintf(field, sizeof(field), "env.%s", name);
		if (!r && (r = get_str(d, v, field, JOBSPEC_MAX_ENV_VALUE, 1, &val, NULL, e)) == 0 &&
		    (strvec_push(&s->env_names, name) != 0 || strvec_push(&s->env_values, val) != 0))
			r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
		free(name);
		secret_free_str(val);
	}
	return r;
}

int jobspec_parse(struct jobspec *s, const char *json, size_t len, const struct config *cfg, struct sb_error *e)
{
	struct json_doc d = JSON_DOC_INIT;
	struct json_iter it;
	int k, v, r;

	memset(s, 0, sizeof(*s));
	s->timeout_s = cfg->default_timeout_s;
	s->idle_timeout_s = cfg->default_idle_timeout_s;
	s->wait_s = cfg->default_wait_s;
	if (len == 0)
		return sb_error_set(e, SB_ERR_USAGE, "invalid job spec: standard input is empty");
	r = json_parse_object(&d, json, len, SPEC_MAX_TOKENS, e);
	if (r == SB_ERR_TOOBIG)
		r = sb_error_set(e, SB_ERR_USAGE, "invalid job spec: more than %d JSON tokens", SPEC_MAX_TOKENS);
	else if (r)
		r = sb_error_prefix(e, "invalid job spec");
	if (r)
		goto out;
	/* the job_id first, so an error event can carry it */
	if ((v = json_object_get(&d, JSON_ROOT, "job_id")) >= 0) {
		char *id = NULL;
		if (get_str(&d, v, "job_id", VALIDATE_JOB_ID_MAX, 0, &id, NULL, NULL) == 0 &&
		    validate_job_id(id, NULL) == 0)
			s->job_id = id;
		else
			free(id);
	}
	if ((r = check_dups(&d, JSON_ROOT, "", e)) != 0)
		goto out;
	json_iter_init(&d, JSON_ROOT, &it);
	while (!r && json_iter_member(&d, &it, &k, &v)) {
		if (json_string_equals(&d, k, "account")) {
			if (!(r = get_str(&d, v, "account", VALIDATE_ACCOUNT_MAX + 1, 0, &s->account, NULL, e)))
				r = validate_account(s->account, e);
		} else if (json_string_equals(&d, k, "job_id")) {
			char *id = NULL;
			if (!(r = get_str(&d, v, "job_id", VALIDATE_JOB_ID_MAX + 1, 0, &id, NULL, e)))
				r = validate_job_id(id, e);
			free(id);
		} else if (json_string_equals(&d, k, "prompt")) {
			r = get_str(&d, v, "prompt", JOBSPEC_MAX_PROMPT, 1, &s->prompt, &s->prompt_len, e);
		} else if (json_string_equals(&d, k, "sandbox")) {
			char *h = NULL, canon[VALIDATE_HOST_MAX + 1];
			if (!(r = get_str(&d, v, "sandbox", VALIDATE_HOST_MAX + 1, 0, &h, NULL, e)) &&
			    !(r = validate_host_canonical(h, canon, sizeof(canon), e)) && !(s->sandbox = strdup(canon)))
				r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
			if (r == SB_ERR_USAGE)
				sb_error_prefix(e, "invalid field 'sandbox' in job spec");
			free(h);
		} else if (json_string_equals(&d, k, "repo")) {
			r = parse_repo(s, &d, v, e);
		} else if (json_string_equals(&d, k, "claude_args")) {
			r = parse_args(s, &d, v, e);
		} else if (json_string_equals(&d, k, "env")) {
			r = parse_env(s, &d, v, e);
		} else if (json_string_equals(&d, k, "timeout_s")) {
			r = get_int(&d, v, "timeout_s", 1, 7 * 86400, &s->timeout_s, e);
		} else if (json_string_equals(&d, k, "idle_timeout_s")) {
			r = get_int(&d, v, "idle_timeout_s", 1, 7 * 86400, &s->idle_timeout_s, e);
		} else if (json_string_equals(&d, k, "wait_s")) {
			r = get_int(&d, v, "wait_s", 0, 86400, &s->wait_s, e);
		} else {
			char name[VALIDATE_ECHO_SIZE];
			key_name(&d, k, name, sizeof(name));
			r = sb_error_set(e, SB_ERR_USAGE, "invalid job spec: unknown field '%s'", name);
		}
	}
	if (r)
		goto out;
	if (!s->account) {
		r = sb_error_set(e, SB_ERR_USAGE, "invalid job spec: missing field 'account'");
		goto out;
	}
	if (!s->prompt) {
		r = sb_error_set(e, SB_ERR_USAGE, "invalid job spec: missing field 'prompt'");
		goto out;
	}
	if (s->prompt_len == 0) {
		r = sb_error_set(e, SB_ERR_USAGE, "invalid field 'prompt' in job spec: empty");
		goto out;
	}
	if (!s->job_id) {
		unsigned char rnd[8];
		char id[32];
		int i;
		if (entropy_fill(rnd, sizeof(rnd)) != 0) {
			r = sb_error_set(e, SB_ERR_INTERNAL, "no randomness for a job_id");
			goto out;
		}
		strcpy(id, "job-");
		for (i = 0; i < 8; i++)
			snprintf(id + 4 + 2 * i, 3, "%02x", rnd[i]);
		if (!(s->job_id = strdup(id)))
			r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	}
out:
	json_doc_release(&d);
	return r;
}

void jobspec_drop_secrets(struct jobspec *s)
{
	size_t i;

	if (s->prompt) {
		secret_wipe(s->prompt, s->prompt_len);
		free(s->prompt);
		s->prompt = NULL;
	}
	secret_free_str(s->repo_token);
	s->repo_token = NULL;
	for (i = 0; i < s->env_values.n; i++)
		secret_wipe(s->env_values.v[i], strlen(s->env_values.v[i]));
	strvec_clear(&s->env_values);
}

void jobspec_release(struct jobspec *s)
{
	jobspec_drop_secrets(s);
	free(s->account);
	free(s->job_id);
	free(s->sandbox);
	free(s->repo_url);
	free(s->repo_ref);
	strvec_clear(&s->claude_args);
	strvec_clear(&s->env_names);
	memset(s, 0, sizeof(*s));
}
