#include "outcome.h"

#include <stdio.h>
#include <string.h>

struct row {
	const char *status;
	int exit_code;
	/* {host} {url} {ref} {detail} {timeout_s} {idle_s} {rc} {begin_s};
	 * NULL: no sentence */
	const char *text;
};

#define WHY(name) [JOB_END_WHY_##name]
#define REPO_FAIL(why, text) WHY(why) = { "error", SB_EXIT_FAILED, text }

static const struct row table[JOB_END_COUNT] = {
	[JOB_END_SUCCEEDED] = { "succeeded", SB_EXIT_OK, NULL },
	[JOB_END_FAILED] = { "failed", SB_EXIT_FAILED, NULL },
	[JOB_END_SIGINT] = { "cancelled", SB_EXIT_SIGINT, "cancelled by SIGINT" },
	[JOB_END_SIGTERM] = { "cancelled", SB_EXIT_SIGTERM, "cancelled by SIGTERM" },
	[JOB_END_LEASE] = { "error", SB_EXIT_TEMPFAIL, "{detail}" },
	[JOB_END_CONSUMER] = { "error", SB_EXIT_TEMPFAIL, "the reader of the event stream went away: stopped the job" },
	[JOB_END_INTERNAL] = { "error", SB_EXIT_SOFTWARE, "out of memory while starting the stream" },
	[JOB_END_NOBEGIN] = { "error", SB_EXIT_TEMPFAIL,
			      "sandbox '{host}' did not start the job within {begin_s} s of the session opening" },
	[JOB_END_TIMEOUT] = { "timeout", SB_EXIT_TIMEOUT, "the job ran longer than timeout_s ({timeout_s} s)" },
	[JOB_END_IDLE] = { "timeout", SB_EXIT_TIMEOUT, "Claude Code printed nothing for idle_timeout_s ({idle_s} s)" },
	[JOB_END_TRANSPORT] = { "error", SB_EXIT_TEMPFAIL, "{detail}" },
	[JOB_END_TRANSPORT_MIDJOB] = { "error", SB_EXIT_TEMPFAIL, "lost the connection during the job: {detail}" },
	[JOB_END_SCRIPT] = { "error", SB_EXIT_FAILED,
			     "the remote job script on sandbox '{host}' ended with status {rc} before finishing" },
	[JOB_END_SCRIPT_BOOT] = { "error", SB_EXIT_FAILED,
				  "the remote job script on sandbox '{host}' ended with status {rc} before finishing "
				  "(is /bin/bash 4.1 or later on the sandbox?)" },
	[JOB_END_SETUP_UNAVAILABLE] = { "error", SB_EXIT_UNAVAILABLE, "{detail}" },
	[JOB_END_SETUP_REFUSED] = { "error", SB_EXIT_USAGE, "{detail}" },
	[JOB_END_SETUP_SOFTWARE] = { "error", SB_EXIT_SOFTWARE, "{detail}" },
	[JOB_END_SETUP_TEMPFAIL] = { "error", SB_EXIT_TEMPFAIL, "{detail}" },

	/* Claude Code ended (or was ended by the sandbox on our cancel)
	 * without a result line */
	WHY(EXIT) = { "failed", SB_EXIT_FAILED, "Claude Code exited with status {rc} without a result line" },
	WHY(CANCEL) = { "failed", SB_EXIT_FAILED, "Claude Code exited with status {rc} without a result line" },
	/* the transport failed us, not the job */
	WHY(EOF) = { "error", SB_EXIT_TEMPFAIL, "the sandbox stopped the job: the session's input closed early" },
	WHY(HEARTBEAT) = { "error", SB_EXIT_TEMPFAIL, "the sandbox stopped the job: no heartbeat from sshbox" },
	WHY(BUSY) = { "error", SB_EXIT_TEMPFAIL,
		      "the sandbox's slot is still held by a process of an earlier job (flock timed out)" },
	/* the sandbox's backstop: only when our own timer could not act */
	WHY(TIMEOUT) = { "timeout", SB_EXIT_TIMEOUT,
			 "the sandbox stopped the job: it ran past timeout_s ({timeout_s} s) + 30 s" },
	WHY(WORKDIR) = { "error", SB_EXIT_FAILED, "cannot create the job's directories under the sandbox workdir" },
	WHY(JOBDIR) = { "error", SB_EXIT_FAILED, "cannot create the job directory on the sandbox" },
	WHY(FENCED) = { "error", SB_EXIT_FAILED,
			"the sandbox refused the job: its slot already ran a job with a newer fencing number" },
	WHY(CLAUDE_MISSING) = { "error", SB_EXIT_FAILED, "the Claude Code executable was not found on the sandbox" },
	WHY(UNKNOWN_REF) = { "error", SB_EXIT_FAILED, "unknown ref '{ref}' in repository '{url}'" },
	/* the repository step's failures, each naming the repository */
	REPO_FAIL(REPO_AUTH, "authentication to '{url}' failed: check repo.token (an installation token with access to it)"),
	REPO_FAIL(REPO_TLS, "the TLS certificate of '{url}' was not accepted by git on the sandbox (is its CA installed?)"),
	WHY(REPO_UNREACHABLE) = { "error", SB_EXIT_TEMPFAIL, "cannot reach '{url}' from the sandbox" },
	REPO_FAIL(REPO_NOT_FOUND, "repository '{url}' was not found (or repo.token cannot see it)"),
	REPO_FAIL(CLONE, "cannot clone or fetch '{url}' on the sandbox (see sshbox.stderr)"),
	REPO_FAIL(CHECKOUT, "cannot check out the requested ref of '{url}' on the sandbox (see sshbox.stderr)"),
	REPO_FAIL(SUBMODULES, "cannot fetch the submodules of '{url}' on the sandbox (see sshbox.stderr)"),
	WHY(CACHE_LOCKED) = { "error", SB_EXIT_TEMPFAIL, "the sandbox's cache of '{url}' stayed locked by another job for 600 s" },
};

#undef REPO_FAIL
#undef WHY

/* Expand the template's {names}; the result is cut at the buffer's end. */
static void expand(const char *t, const struct outcome_args *a, char *out, size_t size)
{
	size_t n = 0;

	while (*t && n + 1 < size) {
		const char *end = *t == '{' ? strchr(t, '}') : NULL;
		char num[32];
		const char *v = NULL;

		if (!end) {
			out[n++] = *t++;
			continue;
		}
#define NAME(s) ((size_t)(end - t - 1) == sizeof(s) - 1 && memcmp(t + 1, s, sizeof(s) - 1) == 0)
		if (NAME("host"))
			v = a->host;
		else if (NAME("url"))
			v = a->url;
		else if (NAME("ref"))
			v = a->ref;
		else if (NAME("detail"))
			v = a->detail;
		else if (NAME("timeout_s"))
			snprintf(num, sizeof(num), "%d", a->timeout_s), v = num;
		else if (NAME("idle_s"))
			snprintf(num, sizeof(num), "%d", a->idle_s), v = num;
		else if (NAME("rc"))
			snprintf(num, sizeof(num), "%d", a->rc), v = num;
		else if (NAME("begin_s"))
			snprintf(num, sizeof(num), "%lld", a->begin_s), v = num;
#undef NAME
		n += (size_t)snprintf(out + n, size - n, "%s", v ? v : "");
		if (n >= size)
			n = size - 1;
		t = end + 1;
	}
	out[n] = '\0';
}

void outcome_of(enum job_end why, const struct outcome_args *a, struct outcome *out)
{
	static const struct outcome_args none;
	const struct row *r = (unsigned)why < JOB_END_COUNT && table[why].status ? &table[why] : NULL;

	if (!r)
		r = &table[JOB_END_SETUP_SOFTWARE];
	out->status = r->status;
	out->exit_code = r->exit_code;
	out->error[0] = '\0';
	if (r->text)
		expand(r->text, a ? a : &none, out->error, sizeof(out->error));
}

enum job_end outcome_remote(enum remote_why why)
{
	static const enum job_end map[REMOTE_WHY_COUNT] = {
		[REMOTE_WHY_NONE] = JOB_END_WHY_EXIT,
#define OUTCOME_WHY_MAP(name, word) [REMOTE_WHY_##name] = JOB_END_WHY_##name,
		REMOTE_WHY_LIST(OUTCOME_WHY_MAP)
#undef OUTCOME_WHY_MAP
	};

	return (unsigned)why < REMOTE_WHY_COUNT ? map[why] : JOB_END_WHY_EXIT;
}

enum job_end outcome_setup(int err)
{
	switch (err) {
	case SB_ERR_UNAVAILABLE: return JOB_END_SETUP_UNAVAILABLE;
	case SB_ERR_USAGE:
	case SB_ERR_EXISTS: return JOB_END_SETUP_REFUSED;
	case SB_ERR_NOMEM:
	case SB_ERR_INTERNAL: return JOB_END_SETUP_SOFTWARE;
	default: return JOB_END_SETUP_TEMPFAIL;
	}
}

const char *outcome_template(enum job_end why)
{
	return (unsigned)why < JOB_END_COUNT && table[why].status ? (table[why].text ? table[why].text : "") : NULL;
}
