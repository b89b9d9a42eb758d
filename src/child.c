#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/close_range.h>
#include <sys/syscall.h>

#include "clock.h"

static const char *const minimal_env[] = {
	"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", NULL
};

int fd_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return SB_ERR_IO;
	return 0;
}

int fd_set_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
		return SB_ERR_IO;
	return 0;
}

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/* Child side of fork(): only async-signal-safe calls from here on. */
static void child_setup_fd(int want, int target, int pipe_child_end, int devnull)
{
	int src = -1;

	if (want == CHILD_INHERIT)
		return;
	if (want == CHILD_NULL)
		src = devnull;
	else if (want == CHILD_PIPE)
		src = pipe_child_end;
	else
		src = want;
	if (src == target) {
		/* dup2 to itself keeps CLOEXEC: clear it */
		int fl = fcntl(src, F_GETFD);
		if (fl >= 0)
			fcntl(src, F_SETFD, fl & ~FD_CLOEXEC);
		return;
	}
	if (dup2(src, target) < 0)
		_exit(127);
}

/* fds 0..2 are about to be overwritten: move one that sits there above 2. */
static SB_MUST_CHECK int lift_fd(int fd)
{
	int n;

	if (fd < 0 || fd > 2)
		return fd;
	n = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	return n >= 0 ? n : fd;
}

static void __attribute__((noreturn))
child_exec(struct child *c, int pin[2], int pout[2], int perr[2], int errpipe, int devnull)
{
	struct sigaction sa;
	sigset_t none;
	int sig, saved;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (sig = 1; sig < NSIG; sig++) {
		if (sigaction(sig, &sa, NULL) < 0 && errno == EINVAL) {
			/* glibc keeps 32 and 33 for itself and refuses them, but an
			 * ignored disposition there is inherited across exec too */
			struct { void *handler; unsigned long flags; void *restorer; unsigned long mask; } k;
			memset(&k, 0, sizeof(k));   /* SIG_DFL */
			(void)syscall(SYS_rt_sigaction, sig, &k, NULL, sizeof(k.mask));
		}
	}
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);

	if (c->new_session && setsid() < 0)
		goto fail;
	if (c->die_with_parent)
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (c->no_core) {
		struct rlimit rl = { 0, 0 };
		(void)setrlimit(RLIMIT_CORE, &rl);
	}
	/* Move pipe ends that sit on 0..2 out of the way before dup2 (the
	 * parent may have been started with closed stdio). */
	pin[0] = lift_fd(pin[0]);
	pout[1] = lift_fd(pout[1]);
	perr[1] = lift_fd(perr[1]);
	devnull = lift_fd(devnull);
	errpipe = lift_fd(errpipe);
	child_setup_fd(c->in, 0, pin[0], devnull);
	child_setup_fd(c->out, 1, pout[1], devnull);
	child_setup_fd(c->err, 2, perr[1], devnull);
	/* Everything above 2 is close-on-exec, including what other threads
	 * or libraries opened without O_CLOEXEC. */
	if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
		int fd;
		for (fd = 3; fd < 1024; fd++)
			if (fd != errpipe)
				(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	}
	if (c->cwd && chdir(c->cwd) < 0)
		goto fail;
	execve(c->argv[0], (char *const *)c->argv,
	       (char *const *)(c->env ? c->env : minimal_env));
fail:
	saved = errno;
	(void)!write(errpipe, &saved, sizeof(saved));
	_exit(127);
}

int child_start(struct child *c, struct sb_error *e)
{
	int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
	int errpipe[2] = { -1, -1 }, devnull = -1, child_errno = 0, r = SB_ERR_IO;
	ssize_t n;
	pid_t pid;

	c->pid = -1;
	c->in_fd = c->out_fd = c->err_fd = -1;
	c->reaped = 0;
	c->status = 0;
	if (!c->argv || !c->argv[0] || c->argv[0][0] != '/')
		return sb_error_set(e, SB_ERR_INTERNAL, "cannot run '%s': not an absolute path",
				    c->argv && c->argv[0] ? c->argv[0] : "(null)");
	if ((c->in == CHILD_PIPE && pipe2(pin, O_CLOEXEC) < 0) ||
	    (c->out == CHILD_PIPE && pipe2(pout, O_CLOEXEC) < 0) ||
	    (c->err == CHILD_PIPE && pipe2(perr, O_CLOEXEC) < 0) ||
	    pipe2(errpipe, O_CLOEXEC) < 0 ||
	    (devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0) {
		sb_error_set(e, SB_ERR_IO, "cannot run '%s': %s", c->argv[0], strerror(errno));
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		sb_error_set(e, SB_ERR_IO, "cannot run '%s': fork: %s", c->argv[0], strerror(errno));
		goto out;
	}
	if (pid == 0)
		child_exec(c, pin, pout, perr, errpipe[1], devnull);

	c->pid = pid;
	close_fd(&errpipe[1]);
	do {
		n = read(errpipe[0], &child_errno, sizeof(child_errno));
	} while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(child_errno)) {
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		c->pid = -1;
		sb_error_set(e, SB_ERR_IO, "cannot run '%s': %s", c->argv[0], strerror(child_errno));
		goto out;
	}
	c->argv = NULL;   /* the caller's vector may go away now */
	c->in_fd = pin[1]; pin[1] = -1;
	c->out_fd = pout[0]; pout[0] = -1;
	c->err_fd = perr[0]; perr[0] = -1;
	r = 0;
out:
	close_fd(&pin[0]); close_fd(&pin[1]);
	close_fd(&pout[0]); close_fd(&pout[1]);
	close_fd(&perr[0]); close_fd(&perr[1]);
	close_fd(&errpipe[0]); close_fd(&errpipe[1]);
	close_fd(&devnull);
	return r;
}

int child_poll(struct child *c)
{
	pid_t p;

	if (c->reaped)
		return 1;
	if (c->pid <= 0)
		return 1;
	do {
		p = waitpid(c->pid, &c->status, WNOHANG);
	} while (p < 0 && errno == EINTR);
	if (p == c->pid) {
		c->reaped = 1;
		return 1;
	}
	if (p < 0 && errno == ECHILD) {
		/* reaped behind our back (SIGCHLD ignored): the status is lost,
		 * which must never read as success */
		c->reaped = 1;
		c->status = -1;
		return 1;
	}
	return 0;
}

void child_signal(struct child *c, int sig)
{
	if (c->pid <= 0 || c->reaped)
		return;
	if (c->new_session)
		(void)kill(-c->pid, sig);
	(void)kill(c->pid, sig);
}

int child_wait(struct child *c, int64_t deadline, int64_t grace_ms)
{
	int64_t kill_at = 0;
	int timed_out = 0;

	while (!child_poll(c)) {
		if (!timed_out && clock_expired(deadline)) {
			timed_out = 1;
			child_signal(c, SIGTERM);
			kill_at = clock_deadline_in(grace_ms);
		} else if (timed_out && kill_at && clock_expired(kill_at)) {
			child_signal(c, SIGKILL);
			kill_at = 0;
		}
		clock_sleep_ms(5);
	}
	return timed_out ? SB_ERR_TIMEOUT : 0;
}

void child_close_fds(struct child *c)
{
	close_fd(&c->in_fd);
	close_fd(&c->out_fd);
	close_fd(&c->err_fd);
}

int child_exit_code(const struct child *c)
{
	if (!c->reaped)
		return -1;
	if (c->status == -1)
		return -1;
	if (WIFEXITED(c->status))
		return WEXITSTATUS(c->status);
	if (WIFSIGNALED(c->status))
		return 128 + WTERMSIG(c->status);
	return -1;
}

/* Drain what is readable from *fd into b (bounded: the excess is dropped). */
static void drain_into(int *fd, struct buf *b)
{
	char tmp[16384];
	ssize_t n;

	for (;;) {
		n = read(*fd, tmp, sizeof(tmp));
		if (n > 0) {
			if (b) {
				size_t room = b->max ? b->max - b->len : (size_t)n;
				/* out of memory: the rest is read and dropped,
				 * as past the bound */
				sb_best_effort(buf_append(b, tmp, (size_t)n < room ? (size_t)n : room));
			}
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		close_fd(fd);   /* EOF or hard error */
		return;
	}
}

int child_run(const char *const *argv, const struct child_run_opts *o,
	      const void *input, size_t input_len,
	      struct buf *out, struct buf *err, int *exit_code, struct sb_error *e)
{
	struct child c = CHILD_INIT;
	int64_t deadline = clock_deadline_in(o->timeout_ms), kill_at = 0;
	size_t written = 0;
	int r, timed_out = 0;

	c.argv = argv;
	c.env = o->env;
	c.cwd = o->cwd;
	c.new_session = o->new_session;
	c.no_core = o->no_core;
	c.in = input ? CHILD_PIPE : CHILD_NULL;
	c.out = CHILD_PIPE;
	c.err = CHILD_PIPE;
	if ((r = child_start(&c, e)) != 0)
		return r;
	if ((c.in_fd >= 0 && fd_set_nonblock(c.in_fd) != 0) || fd_set_nonblock(c.out_fd) != 0 ||
	    fd_set_nonblock(c.err_fd) != 0) {
		child_signal(&c, SIGKILL);
		child_close_fds(&c);
		sb_best_effort(child_wait(&c, clock_deadline_in(0), 1000));   /* killed: it ends */
		return sb_error_set(e, SB_ERR_IO, "cannot read '%s' without blocking", argv[0]);
	}
	if (c.in_fd >= 0 && input_len == 0)
		close_fd(&c.in_fd);

	while (c.out_fd >= 0 || c.err_fd >= 0 || !child_poll(&c)) {
		struct pollfd p[3];
		int np = 0, i, wait_ms;

		if (!timed_out && clock_expired(deadline)) {
			timed_out = 1;
			child_signal(&c, SIGTERM);
			kill_at = clock_deadline_in(1000);
			close_fd(&c.in_fd);
		}
		if (timed_out && kill_at && clock_expired(kill_at)) {
			child_signal(&c, SIGKILL);
			kill_at = 0;
		}
		/* past the deadline and the grace, a grandchild that still holds
		 * the pipes is not waited for */
		if (timed_out && !kill_at && child_poll(&c) && clock_now_ms() > deadline + 2000) {
			close_fd(&c.out_fd);
			close_fd(&c.err_fd);
			close_fd(&c.in_fd);
			break;
		}
		if (c.in_fd >= 0) { p[np].fd = c.in_fd; p[np].events = POLLOUT; np++; }
		if (c.out_fd >= 0) { p[np].fd = c.out_fd; p[np].events = POLLIN; np++; }
		if (c.err_fd >= 0) { p[np].fd = c.err_fd; p[np].events = POLLIN; np++; }
		wait_ms = (c.out_fd < 0 && c.err_fd < 0 && c.in_fd < 0) ? 5 : 100;
		if (np == 0) {
			clock_sleep_ms(wait_ms);
			continue;
		}
		if (poll(p, (nfds_t)np, wait_ms) < 0 && errno != EINTR)
			break;
		for (i = 0; i < np; i++) {
			if (!p[i].revents)
				continue;
			if (p[i].fd == c.in_fd) {
				ssize_t n = write(c.in_fd, (const char *)input + written, input_len - written);
				if (n > 0)
					written += (size_t)n;
				else if (n < 0 && errno != EAGAIN && errno != EINTR)
					written = input_len;   /* EPIPE: the child stopped reading */
				if (written >= input_len)
					close_fd(&c.in_fd);
			} else if (p[i].fd == c.out_fd) {
				drain_into(&c.out_fd, out);
			} else if (p[i].fd == c.err_fd) {
				drain_into(&c.err_fd, err);
			}
		}
	}
	child_close_fds(&c);
	if (!c.reaped)
		sb_best_effort(child_wait(&c, clock_deadline_in(0), 1000));   /* reaped either way */
	*exit_code = child_exit_code(&c);
	if (timed_out)
		return sb_error_set(e, SB_ERR_TIMEOUT, "'%s' did not finish within %lld ms",
				    argv[0], (long long)o->timeout_ms);
	return 0;
}
