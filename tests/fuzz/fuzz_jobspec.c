/* libFuzzer harness: the job spec parser (src/jobspec.h).
 *
 * The input is the document `sshbox run` reads on stdin, parsed with the
 * defaults of an empty configuration file.  Beyond "no crash, no leak, no
 * UB", every accepted spec must satisfy the rules of docs/job-spec.md (the
 * same validators agree with the parsed values), every refused one gets
 * one sentence of printable ASCII that quotes no secret, a second parse
 * agrees with the first, and release leaves a zeroed struct. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "err.h"
#include "fuzz.h"
#include "jobspec.h"
#include "validate.h"

/* Read-only after LLVMFuzzerInitialize: nothing carries from one input to
 * the next. */
static struct config cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sb_error e = SB_ERROR_INIT;

	(void)argc;
	(void)argv;
	fuzz_clear_sshbox_env();
	if (config_load(&cfg, "/dev/null", &e) != 0) {
		fprintf(stderr, "fuzz_jobspec: cannot load the default configuration: %s\n", e.msg);
		abort();
	}
	return 0;
}

static int is_zero(const void *p, size_t n)
{
	const unsigned char *c = p;

	while (n--)
		if (*c++)
			return 0;
	return 1;
}

/* A strvec as the header promises: n strings, then NULL (or nothing yet). */
static void check_strvec(const struct strvec *sv, size_t max)
{
	size_t i;

	FUZZ_CHECK(sv->n <= max);
	if (!sv->v) {
		FUZZ_CHECK(sv->n == 0);
		return;
	}
	for (i = 0; i < sv->n; i++)
		FUZZ_CHECK(sv->v[i] != NULL);
	FUZZ_CHECK(sv->v[sv->n] == NULL);
}

static void check_accepted(const struct jobspec *s)
{
	char canon[VALIDATE_HOST_MAX + 1];
	size_t i, j;

	FUZZ_CHECK(s->account && validate_account(s->account, NULL) == 0);
	FUZZ_CHECK(s->job_id && validate_job_id(s->job_id, NULL) == 0);
	FUZZ_CHECK(s->prompt && s->prompt_len > 0 && s->prompt_len <= JOBSPEC_MAX_PROMPT);
	FUZZ_CHECK(strlen(s->prompt) == s->prompt_len);   /* "\u0000" is refused */
	FUZZ_CHECK(!s->has_repo == !s->repo_url);
	if (s->repo_url)
		FUZZ_CHECK(validate_repo_url(s->repo_url, NULL) == 0);
	if (s->repo_ref)
		FUZZ_CHECK(s->has_repo && validate_ref(s->repo_ref, NULL) == 0);
	if (s->repo_token) {
		FUZZ_CHECK(s->has_repo && strncasecmp(s->repo_url, "https://", 8) == 0);
		FUZZ_CHECK(!strpbrk(s->repo_token, "\r\n"));
	}
	if (!s->has_repo)
		FUZZ_CHECK(!s->repo_lfs && !s->repo_submodules);
	if (s->sandbox) {
		/* stored canonical: canonicalizing again changes nothing */
		FUZZ_CHECK(validate_host_canonical(s->sandbox, canon, sizeof(canon), NULL) == 0);
		FUZZ_CHECK(strcmp(canon, s->sandbox) == 0);
	}
	check_strvec(&s->claude_args, JOBSPEC_MAX_ARGS);
	for (i = 0; i < s->claude_args.n; i++)
		FUZZ_CHECK(strlen(s->claude_args.v[i]) <= JOBSPEC_MAX_ARG);
	check_strvec(&s->env_names, JOBSPEC_MAX_ENV);
	check_strvec(&s->env_values, JOBSPEC_MAX_ENV);
	FUZZ_CHECK(s->env_names.n == s->env_values.n);
	for (i = 0; i < s->env_names.n; i++) {
		const char *n = s->env_names.v[i];

		FUZZ_CHECK(validate_env_name(n, NULL) == 0 && strncmp(n, "SSHBOX_", 7) != 0);
		FUZZ_CHECK(strlen(s->env_values.v[i]) <= JOBSPEC_MAX_ENV_VALUE);
		for (j = 0; j < i; j++)   /* duplicates are refused */
			FUZZ_CHECK(strcmp(n, s->env_names.v[j]) != 0);
	}
	FUZZ_CHECK(s->timeout_s >= 1 && s->timeout_s <= 7 * 86400);
	FUZZ_CHECK(s->idle_timeout_s >= 1 && s->idle_timeout_s <= 7 * 86400);
	FUZZ_CHECK(s->wait_s >= 0 && s->wait_s <= 86400);
}

/* docs/job-spec.md: "Error sentences never contain the prompt, env values
 * or the token."  Short secrets could match the sentence's own words, so
 * only those of 16 bytes or more are looked for. */
static const char *input_doc;   /* the spec being checked */
static size_t input_len;

/* How often needle occurs in the input (overlapping); a plain loop, as in
 * fuzz_contains. */
static size_t occurrences(const char *needle, size_t nlen)
{
	size_t count = 0, i, k;

	for (i = 0; nlen && i + nlen <= input_len; i++) {
		for (k = 0; k < nlen && input_doc[i + k] == needle[k]; k++)
			;
		count += k == nlen;
	}
	return count;
}

static void check_no_secret(const char *msg, const char *secret)
{
	size_t n = secret ? strlen(secret) : 0;

	/* a secret's text that the spec also spells elsewhere (say, inside a
	 * repo.url that an error rightly quotes) is not a leak of the secret */
	if (n >= 16 && occurrences(secret, n) < 2)
		FUZZ_CHECK(!fuzz_contains(msg, secret, n));
}

static void check_refused(const struct jobspec *s, int r, const struct sb_error *e)
{
	size_t i;

	FUZZ_CHECK(r == SB_ERR_USAGE || r == SB_ERR_NOMEM);
	FUZZ_CHECK(fuzz_error_ok(e, r));
	FUZZ_CHECK(fuzz_printable(e->msg));
	/* a job_id kept for the error event is a valid one */
	if (s->job_id)
		FUZZ_CHECK(validate_job_id(s->job_id, NULL) == 0);
	check_no_secret(e->msg, s->prompt);
	check_no_secret(e->msg, s->repo_token);
	for (i = 0; i < s->env_values.n; i++)
		check_no_secret(e->msg, s->env_values.v[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jobspec s = JOBSPEC_INIT, s2 = JOBSPEC_INIT;
	struct sb_error e = SB_ERROR_INIT, e2 = SB_ERROR_INIT;
	char *doc = fuzz_dup(data, size);
	int r, r2;

	if (size > JOBSPEC_MAX_BYTES)   /* cmd_run refuses it before parsing */
		size = JOBSPEC_MAX_BYTES;
	input_doc = doc;
	input_len = size;
	r = jobspec_parse(&s, doc, size, &cfg, &e);
	if (r == 0)
		check_accepted(&s);
	else
		check_refused(&s, r, &e);

	/* the same bytes, the same verdict, the same sentence */
	r2 = jobspec_parse(&s2, doc, size, &cfg, &e2);
	FUZZ_CHECK(r2 == r);
	if (r)
		FUZZ_CHECK(strcmp(e.msg, e2.msg) == 0);
	else
		FUZZ_CHECK(strcmp(s.account, s2.account) == 0 && s.prompt_len == s2.prompt_len &&
			   memcmp(s.prompt, s2.prompt, s.prompt_len) == 0 &&
			   s.env_names.n == s2.env_names.n && s.claude_args.n == s2.claude_args.n &&
			   s.timeout_s == s2.timeout_s && s.wait_s == s2.wait_s &&
			   s.idle_timeout_s == s2.idle_timeout_s);

	/* what cmd_run does once the secrets were handed on, then release;
	 * both must be safe to repeat */
	jobspec_drop_secrets(&s);
	FUZZ_CHECK(!s.prompt && !s.repo_token && s.env_values.n == 0);
	jobspec_drop_secrets(&s);
	jobspec_release(&s);
	FUZZ_CHECK(is_zero(&s, sizeof(s)));
	jobspec_release(&s2);
	free(doc);
	return 0;
}
