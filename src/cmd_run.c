/* sshbox run: one job, spec on stdin, NDJSON events on stdout. */
#include "cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
#include "loop.h"

#define SPEC_READ_TIMEOUT_MS 60000

static SB_MUST_CHECK int spec_error(struct events *ev, const struct jobspec *spec, const struct sb_error *e, int code)
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

struct spec_reader {
	struct buf *input;
	int signo, done, r;
	struct sb_error *e;
};

static void on_spec_signal(struct loop *l, int fd, short revents, void *ctx)
{
	struct spec_reader *sr = ctx;
	struct signalfd_siginfo si;

	(void)l; (void)revents;
	while (!sr->done && read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM) {
			sr->signo = (int)si.ssi_signo;
			sr->r = sb_error_set(sr->e, SB_ERR_CANCELLED, "cancelled by %s while reading the job spec",
					     si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
			sr->done = 1;
		}
}

static void on_spec_input(struct loop *l, int fd, short revents, void *ctx)
{
	struct spec_reader *sr = ctx;
	char tmp[65536];
	ssize_t n;

	(void)l; (void)revents;
	if (sr->done)
		return;
	n = read(fd, tmp, sizeof(tmp));
	if (n == 0) {
		sr->done = 1;
	} else if (n < 0) {
		if (errno != EINTR && errno != EAGAIN) {
			sr->r = sb_error_set(sr->e, SB_ERR_IO, "cannot read standard input: %s", strerror(errno));
			sr->done = 1;
		}
	} else if (sr->input->len + (size_t)n > JOBSPEC_MAX_BYTES) {
		sr->r = sb_error_set(sr->e, SB_ERR_TOOBIG, "input larger than %d bytes", JOBSPEC_MAX_BYTES);
		sr->done = 1;
	} else if (buf_append(sr->input, tmp, (size_t)n) < 0) {
		sr->r = sb_error_set(sr->e, SB_ERR_NOMEM, "out of memory");
		sr->done = 1;
	}
	secret_wipe(tmp, sizeof(tmp));
}

/* The spec on stdin, bounded in size and time, and interruptible: a caller
 * that never closes stdin must not hold a process forever. */
static SB_MUST_CHECK int read_spec(struct loop *loop, struct buf *input, int sigfd, int *signo, struct sb_error *e)
{
	struct spec_reader sr = { input, 0, 0, 0, e };
	int64_t deadline = clock_deadline_in(SPEC_READ_TIMEOUT_MS);

	if (loop_watch(loop, STDIN_FILENO, POLLIN, on_spec_input, &sr) != 0 ||
	    loop_watch(loop, sigfd, POLLIN, on_spec_signal, &sr) != 0) {
		sr.r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
		goto out;
	}
	while (!sr.done) {
		if (clock_expired(deadline)) {
			sr.r = sb_error_set(e, SB_ERR_USAGE, "invalid job spec: standard input not closed within %d s",
					    SPEC_READ_TIMEOUT_MS / 1000);
			break;
		}
		if (loop_run_once(loop, clock_remaining_ms(deadline)) != 0) {
			sr.r = sb_error_set(e, SB_ERR_IO, "cannot read standard input: %s", strerror(errno));
			break;
		}
	}
out:
	loop_unwatch(loop, STDIN_FILENO);
	loop_unwatch(loop, sigfd);
	*signo = sr.signo;
	return sr.r;
}

int cmd_run(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct sb_error e = SB_ERROR_INIT;
	struct jobspec spec = JOBSPEC_INIT;
	struct events ev;
	struct buf input;
	struct loop *loop = NULL;
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
	if (loop_new(&loop, &e) != 0) {
		cmd_print_error(&e);
		close(sigfd);
		return SB_EXIT_SOFTWARE;
	}
	events_init(&ev, STDOUT_FILENO);
	/* a slow reader must never stall lease renewal: events are written
	 * from the job's poll loop as the pipe takes them */
	out_flags = fcntl(STDOUT_FILENO, F_GETFL);
	if (fd_set_nonblock(STDOUT_FILENO) != 0) {
		sb_error_set(&e, SB_ERR_IO, "cannot write standard output without blocking");
		cmd_print_error(&e);
		loop_free(loop);
		close(sigfd);
		return SB_EXIT_SOFTWARE;
	}
	buf_init_secret(&input, JOBSPEC_MAX_BYTES);
	r = read_spec(loop, &input, sigfd, &signo, &e);
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
	rc = job_run(ctx->cfg, &spec, &ev, loop, sigfd);
out:
	buf_release(&input);
	jobspec_release(&spec);
	events_release(&ev);
	/* the open file description may be shared (a terminal, the parent's
	 * pipe): leave it as we found it */
	if (out_flags >= 0)
		(void)fcntl(STDOUT_FILENO, F_SETFL, out_flags);
	loop_free(loop);
	close(sigfd);
	return rc;
}
