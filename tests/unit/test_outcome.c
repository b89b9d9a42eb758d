/* outcome: every end reason has one row (status, exit code, sentence), the
 * sandbox script's whole vocabulary maps to rows, the sentences name what
 * they must, and the statuses and exit codes are only the documented ones
 * (DESIGN.md §2, docs/exit-codes.md). */
#include <string.h>

#include "err.h"
#include "outcome.h"
#include "remote.h"
#include "unit.h"

static const struct outcome_args args = {
	"sbx1", "https://git.example/acme/app.git", "no-such-branch", "ssh said no", 3600, 600, 3, 25,
};

static void test_every_reason_has_a_row(void)
{
	int i;

	for (i = 0; i < JOB_END_COUNT; i++) {
		struct outcome o;
		const char *s;

		CHECK(outcome_template((enum job_end)i) != NULL);
		outcome_of((enum job_end)i, &args, &o);
		s = o.status;
		CHECK(strcmp(s, "succeeded") == 0 || strcmp(s, "failed") == 0 || strcmp(s, "cancelled") == 0 ||
		      strcmp(s, "timeout") == 0 || strcmp(s, "error") == 0);
		CHECK(o.exit_code == SB_EXIT_OK || o.exit_code == SB_EXIT_FAILED || o.exit_code == SB_EXIT_USAGE ||
		      o.exit_code == SB_EXIT_UNAVAILABLE || o.exit_code == SB_EXIT_SOFTWARE ||
		      o.exit_code == SB_EXIT_TEMPFAIL || o.exit_code == SB_EXIT_TIMEOUT ||
		      o.exit_code == SB_EXIT_SIGINT || o.exit_code == SB_EXIT_SIGTERM);
		/* an error always says why; success never carries a sentence */
		if (strcmp(s, "error") == 0)
			CHECK(o.error[0] != '\0');
		if (strcmp(s, "succeeded") == 0)
			CHECK_STREQ(o.error, "");
		/* every placeholder was expanded */
		CHECK(strchr(o.error, '{') == NULL);
	}
}

/* Both directions between the script's vocabulary and the table. */
static void test_remote_words_map_to_rows(void)
{
	int i;

	for (i = 1; i < REMOTE_WHY_COUNT; i++) {
		const char *w = remote_why_word((enum remote_why)i);
		enum job_end end = outcome_remote((enum remote_why)i);

		CHECK(w[0] != '\0');
		CHECK_INT(remote_why_parse(w, strlen(w)), i);
		CHECK(end >= JOB_END_WHY_EXIT && end < JOB_END_COUNT);
		CHECK(outcome_template(end) != NULL);
	}
	CHECK_INT(remote_why_parse("no-such-word", 12), REMOTE_WHY_NONE);
	CHECK_INT(remote_why_parse("exi", 3), REMOTE_WHY_NONE);
	/* an end marker without a known word reads as Claude Code's exit */
	CHECK_INT(outcome_remote(REMOTE_WHY_NONE), JOB_END_WHY_EXIT);
	CHECK_INT(JOB_END_COUNT - JOB_END_WHY_EXIT, REMOTE_WHY_COUNT - 1);
}

static void check_row(enum job_end end, const char *status, int code, const char *error)
{
	struct outcome o;

	outcome_of(end, &args, &o);
	CHECK_STREQ(o.status, status);
	CHECK_INT(o.exit_code, code);
	CHECK_STREQ(o.error, error);
}

static void test_rows(void)
{
	check_row(JOB_END_SUCCEEDED, "succeeded", 0, "");
	check_row(JOB_END_FAILED, "failed", 1, "");
	check_row(JOB_END_SIGINT, "cancelled", 130, "cancelled by SIGINT");
	check_row(JOB_END_SIGTERM, "cancelled", 143, "cancelled by SIGTERM");
	check_row(JOB_END_TIMEOUT, "timeout", 124, "the job ran longer than timeout_s (3600 s)");
	check_row(JOB_END_IDLE, "timeout", 124, "Claude Code printed nothing for idle_timeout_s (600 s)");
	check_row(JOB_END_NOBEGIN, "error", 75, "sandbox 'sbx1' did not start the job within 25 s of the session opening");
	check_row(JOB_END_TRANSPORT_MIDJOB, "error", 75, "lost the connection during the job: ssh said no");
	check_row(JOB_END_SCRIPT_BOOT, "error", 1,
		  "the remote job script on sandbox 'sbx1' ended with status 3 before finishing "
		  "(is /bin/bash 4.1 or later on the sandbox?)");
	check_row(JOB_END_SETUP_UNAVAILABLE, "error", 69, "ssh said no");
	check_row(JOB_END_SETUP_REFUSED, "error", 2, "ssh said no");
	check_row(JOB_END_WHY_EXIT, "failed", 1, "Claude Code exited with status 3 without a result line");
	check_row(JOB_END_WHY_UNKNOWN_REF, "error", 1,
		  "unknown ref 'no-such-branch' in repository 'https://git.example/acme/app.git'");
	check_row(JOB_END_WHY_REPO_UNREACHABLE, "error", 75, "cannot reach 'https://git.example/acme/app.git' from the sandbox");
	check_row(JOB_END_WHY_REPO_AUTH, "error", 1,
		  "authentication to 'https://git.example/acme/app.git' failed: check repo.token (an installation token with access to it)");
	check_row(JOB_END_WHY_HEARTBEAT, "error", 75, "the sandbox stopped the job: no heartbeat from sshbox");
	check_row(JOB_END_WHY_TIMEOUT, "timeout", 124, "the sandbox stopped the job: it ran past timeout_s (3600 s) + 30 s");
	CHECK_INT(outcome_setup(SB_ERR_EXISTS), JOB_END_SETUP_REFUSED);
	CHECK_INT(outcome_setup(SB_ERR_NOMEM), JOB_END_SETUP_SOFTWARE);
	CHECK_INT(outcome_setup(SB_ERR_REDIS), JOB_END_SETUP_TEMPFAIL);
}

/* A sentence longer than the buffer is cut, never overrun. */
static void test_long_detail(void)
{
	char big[4 * SB_ERROR_MSG_MAX];
	struct outcome_args a = args;
	struct outcome o;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	a.detail = big;
	outcome_of(JOB_END_TRANSPORT_MIDJOB, &a, &o);
	CHECK_INT(strlen(o.error), sizeof(o.error) - 1);
	outcome_of((enum job_end)-1, &a, &o);
	CHECK_STREQ(o.status, "error");
	CHECK_INT(o.exit_code, SB_EXIT_SOFTWARE);
}

int main(void)
{
	RUN(test_every_reason_has_a_row);
	RUN(test_remote_words_map_to_rows);
	RUN(test_rows);
	RUN(test_long_detail);
	return unit_done();
}
