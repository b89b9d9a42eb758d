/* sshbox run: one job, spec on stdin, NDJSON events on stdout. */
#include "cmd.h"

#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "secret.h"
#include "child.h"
#include "events.h"
#include "job.h"
#include "jobspec.h"
#include "log.h"

#define SPEC_READ_TIMEOUT_MS 60000

static int spec_error(struct events *ev, const struct jobspec *spec, const struct sb_error *e, int code)
{
	struct events_result res;

	memset(&res, 0, sizeof(res));
	res.status = "error";
	res.exit_code = code;
	res.error = e->msg;
	if (spec->job_id)
		events_set_job_id(ev, spec->job_id);
	events_result(ev, &res);
	events_flush(ev, 1);
	cmd_print_error(e);
	return code;
}

/* The spec on stdin, bounded in size and time, and interruptible: a caller
 * that never closes stdin must not hold a process forever. */
static int read_spec(struct buf *input, int sigfd, int *signo, struct sb_error *e)
{
	int64_t deadline = clock_deadline_in(SPEC_READ_TIMEOUT_MS);
	char tmp[65536];
	int r = 0;

	for (;;) {
		struct pollfd p[2] = { { STDIN_FILENO, POLLIN, 0 }, { sigfd, POLLIN, 0 } };
		ssize_t n;

		if (clock_expired(deadline)) {
			r = sb_error_set(e, SB_ERR_USAGE, "invalid job spec: standard input not closed within %d s",
					 SPEC_READ_TIMEOUT_MS / 1000);
			break;
		}
		if (poll(p, 2, (int)clock_remaining_ms(deadline)) < 0 && errno != EINTR) {
			r = sb_error_set(e, SB_ERR_IO, "cannot read standard input: %s", strerror(errno));
			break;
		}
		if (p[1].revents) {
			struct signalfd_siginfo si;
			if (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si) &&
			    (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM)) {
				*signo = (int)si.ssi_signo;
				r = sb_error_set(e, SB_ERR_CANCELLED, "cancelled by %s while reading the job spec",
						 si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
				break;
			}
		}
		if (!p[0].revents)
			continue;
		n = read(STDIN_FILENO, tmp, sizeof(tmp));
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			r = sb_error_set(e, SB_ERR_IO, "cannot read standard input: %s", strerror(errno));
			break;
		}
		if (input->len + (size_t)n > JOBSPEC_MAX_BYTES) {
			r = sb_error_set(e, SB_ERR_TOOBIG, "input larger than %d bytes", JOBSPEC_MAX_BYTES);
			break;
		}
		if (buf_append(input, tmp, (size_t)n) < 0) {
			r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
			break;
		}
	}
	secret_wipe(tmp, sizeof(tmp));
	return r;
}

int cmd_run(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct sb_error e = SB_ERROR_INIT;
	struct jobspec spec = JOBSPEC_INIT;
	struct events ev;
	struct buf input;
	sigset_t mask;
	int sigfd = -1, rc, r, signo = 0, out_flags;

	(void)argv;
	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--json") != 0)) {
		sb_error_set(&e, SB_ERR_USAGE, "'run' takes no arguments: the job spec comes on standard input");
		cmd_print_error(&e);
		return SB_EXIT_USAGE;
	}
	/* Signals become events of the job loop; they are blocked from here on
	 * so a SIGTERM while we set up is not lost. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	/* An ignored signal is never pending, so signalfd would not see it:
	 * a parent that started us in the background (bash without job
	 * control ignores SIGINT there) must still be able to cancel. */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sigfd < 0) {
		sb_error_set(&e, SB_ERR_IO, "signalfd failed");
		cmd_print_error(&e);
		return SB_EXIT_SOFTWARE;
	}
	events_init(&ev, STDOUT_FILENO);
	/* a slow reader must never stall lease renewal: events are written
	 * from the job's poll loop as the pipe takes them */
	out_flags = fcntl(STDOUT_FILENO, F_GETFL);
	fd_set_nonblock(STDOUT_FILENO);
	buf_init_secret(&input, JOBSPEC_MAX_BYTES);
	r = read_spec(&input, sigfd, &signo, &e);
	if (r == SB_ERR_CANCELLED) {
		cmd_print_error(&e);
		rc = signo == SIGINT ? SB_EXIT_SIGINT : SB_EXIT_SIGTERM;
		goto out;
	}
	if (r) {
		if (r == SB_ERR_TOOBIG)
			sb_error_set(&e, SB_ERR_USAGE, "invalid job spec: larger than %d bytes", JOBSPEC_MAX_BYTES);
		rc = spec_error(&ev, &spec, &e, SB_EXIT_USAGE);
		goto out;
	}
	r = jobspec_parse(&spec, input.data ? input.data : "", input.len, ctx->cfg, &e);
	buf_release(&input);   /* wiped: it held the prompt and secrets */
	if (r) {
		rc = spec_error(&ev, &spec, &e, SB_EXIT_USAGE);
		goto out;
	}
	events_set_job_id(&ev, spec.job_id);
	rc = job_run(ctx->cfg, &spec, &ev, sigfd);
out:
	buf_release(&input);
	jobspec_release(&spec);
	events_release(&ev);
	/* the open file description may be shared (a terminal, the parent's
	 * pipe): leave it as we found it */
	if (out_flags >= 0)
		(void)fcntl(STDOUT_FILENO, F_SETFL, out_flags);
	close(sigfd);
	return rc;
}
