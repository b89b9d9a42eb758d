#include "job.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "child.h"
#include "clock.h"
#include "conn.h"
#include "entropy.h"
#include "kv.h"
#include "lock.h"
#include "log.h"
#include "outcome.h"
#include "paths.h"
#include "pool.h"
#include "registry.h"
#include "remote.h"
#include "schedule.h"
#include "secret.h"
#include "ssh.h"
#include "stream.h"
#include "validate.h"

#define HEARTBEAT_MAX_MS 5000
#define REMOTE_HEARTBEAT_MAX_S 30   /* remote kills the job after this long without one */
#define MAX_CONNECT_TRIES 8         /* candidates tried when sandboxes are unreachable */
#define RESULT_GRACE_MS 10000       /* `result` seen, CLI must exit within this */
#define STOP_GRACE_MS 4000          /* remote cleanup after cancel, then SIGTERM ssh */
#define KILL_GRACE_MS 1500
#define STDERR_LINE_MAX (64 * 1024)
#define ROUND_MAX_MS 1000           /* the longest the loop sleeps between two ticks */

/* The phases of a job.  Each has an enter step (run once, on entry) and a
 * tick (run every loop round while in it); both return the phase to be in
 * next, and job_goto() is the one place a job changes phase. */
enum phase {
	PH_NONE,
	PH_ACQUIRE,   /* a slot on a sandbox: queue, choice, lock */
	PH_CONNECT,   /* account -> agent -> master for the chosen sandbox */
	PH_START,     /* the remote script and its secrets, one ssh session */
	PH_STREAM,    /* Claude Code's output forwarded; heartbeats, lease, timers */
	PH_DRAIN,     /* stopping: cancel sent, then TERM and KILL to ssh */
	PH_DONE,      /* lock given back, outcome decided, sshbox.result written */
};

/* Why a running session is being stopped. */
enum stop_reason {
	STOP_NONE, STOP_SIGINT, STOP_SIGTERM, STOP_TIMEOUT, STOP_IDLE, STOP_LEASE, STOP_RESULT_GRACE,
	STOP_CONSUMER,   /* nobody reads our stdout any more */
	STOP_INTERNAL,
	STOP_NOBEGIN,    /* the session never started the remote script */
};

struct lease {
	struct lock lock;
	int64_t next_renew;
	int lost;
	char why[SB_ERROR_MSG_MAX];
};

struct acquire_data {
	struct schedule *sched;
	int64_t retry_at;
	long long position;          /* last one reported in sshbox.queued */
};

struct session_data {
	struct child ssh;
	struct buf in;               /* secret: script, prompt, env values, token */
	size_t in_off;
	char nonce[33];
	struct buf log;              /* ssh -E */
	struct stream *stream;
	int64_t t0, last_output, next_heartbeat;
	int64_t result_at;           /* Claude Code must exit by then after its result line */
	int64_t pipes_grace_at;      /* ssh gone, a grandchild still holds its pipes */
};

struct stop_data {
	enum stop_reason why;
	int64_t at, term_at, kill_at;
};

struct job {
	const struct config *cfg;
	struct jobspec *spec;
	struct events *ev;
	struct loop *loop;
	int sigfd;
	enum stop_reason signal;     /* SIGINT/SIGTERM seen, else STOP_NONE */
	struct kv *kv;
	int64_t t0;
	int heartbeat_ms, remote_heartbeat_s;
	struct buf repo_key;         /* the repository's cache name, "" without one */
	struct buf scratch;          /* one event being built */

	enum phase phase;
	struct sandbox_rec sbx;      /* the chosen sandbox (ACQUIRE on) */
	struct lease lease;
	struct acquire_data acq;
	struct conn conn;
	int connect_tries;
	struct session_data ses;
	struct stop_data stop;

	/* the end, once known */
	enum job_end end;
	int end_known;
	char detail[SB_ERROR_MSG_MAX];
	int exit_code;
};

/* ---- the end ---- */

static void end_with(struct job *j, enum job_end end, const char *detail)
{
	j->end = end;
	j->end_known = 1;
	if (detail != j->detail)
		snprintf(j->detail, sizeof(j->detail), "%s", detail ? detail : "");
}

static enum job_end signal_end(const struct job *j)
{
	return j->signal == STOP_SIGINT ? JOB_END_SIGINT : JOB_END_SIGTERM;
}

static int read_signals(struct job *j)
{
	struct signalfd_siginfo si;

	while (read(j->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGINT && j->signal == STOP_NONE)
			j->signal = STOP_SIGINT;
		else if (si.ssi_signo == SIGTERM && j->signal == STOP_NONE)
			j->signal = STOP_SIGTERM;
	}
	return j->signal != STOP_NONE;
}

static void on_signal_fd(struct loop *l, int fd, short revents, void *ctx)
{
	(void)l; (void)fd; (void)revents;
	(void)read_signals(ctx);
}

/* A step before the session failed: a signal that came meanwhile wins. */
static enum phase setup_failed(struct job *j, int r, const struct sb_error *e)
{
	if (r == SB_ERR_CANCELLED || read_signals(j))
		end_with(j, signal_end(j), NULL);
	else
		end_with(j, outcome_setup(r), e->msg);
	return PH_DONE;
}

/* ---- ACQUIRE ---- */

static void emit_acquired(struct job *j)
{
	struct buf *b = &j->scratch;

	events_begin(j->ev, b, "sshbox.acquired");
	events_str(b, "sandbox", j->sbx.host);
	events_int(b, "slot", j->lease.lock.slot);
	events_int(b, "fence", j->lease.lock.fence);
	events_end(j->ev, b);
	events_flush(j->ev, 0);
}

static void emit_queued(struct job *j, long long position)
{
	struct buf *b = &j->scratch;

	if (position <= 0 || position == j->acq.position)
		return;
	j->acq.position = position;
	events_begin(j->ev, b, "sshbox.queued");
	events_int(b, "position", position);
	events_int(b, "wait_s", j->spec->wait_s);
	events_end(j->ev, b);
	events_flush(j->ev, 0);
}

static enum phase acquire_enter(struct job *j)
{
	struct sb_error e = SB_ERROR_INIT;
	struct schedule_req q;
	int r;

	if (!j->acq.sched) {
		memset(&q, 0, sizeof(q));
		q.account = j->spec->account;
		q.job_id = j->spec->job_id;
		q.pinned = j->spec->sandbox;
		q.repo_key = j->repo_key.len ? j->repo_key.data : NULL;
		q.wait_s = j->spec->wait_s;
		q.lock_ttl_ms = j->cfg->lock_ttl_ms;
		if ((r = schedule_new(&j->acq.sched, j->kv, &q, &e)) != 0)
			return setup_failed(j, r, &e);
	}
	j->acq.retry_at = 0;
	j->acq.position = 0;   /* a new round (after an exclusion) announces its place again */
	return PH_ACQUIRE;
}

static enum phase acquire_tick(struct job *j, int64_t now, int64_t *next)
{
	struct sb_error e = SB_ERROR_INIT;
	long long position = 0;
	int r;

	if (j->signal != STOP_NONE) {
		end_with(j, signal_end(j), NULL);
		return PH_DONE;
	}
	if (now < j->acq.retry_at) {
		*next = j->acq.retry_at;
		return PH_ACQUIRE;
	}
	r = schedule_step(j->acq.sched, &j->sbx, &j->lease.lock, &position, &e);
	emit_queued(j, position);
	if (r == SCHEDULE_WAIT) {
		j->acq.retry_at = clock_now_ms() + schedule_retry_ms();
		*next = j->acq.retry_at;
		return PH_ACQUIRE;
	}
	if (r)
		return setup_failed(j, r, &e);
	j->lease.next_renew = j->lease.lock.renewed_ms + j->lease.lock.ttl_ms / 3;
	emit_acquired(j);
	return PH_CONNECT;
}

/* ---- CONNECT ---- */

/* Setup may take a while (a cold connection): the lease must still be ours,
 * with room to spare, before anything starts on the sandbox. */
static SB_MUST_CHECK int lease_fresh(struct job *j, struct sb_error *e)
{
	struct lease *ls = &j->lease;
	int r;

	if (clock_now_ms() < ls->lock.renewed_ms + ls->lock.ttl_ms / 3)
		return 0;
	r = lock_renew(j->kv, &ls->lock, e);
	if (r == 0)
		ls->next_renew = ls->lock.renewed_ms + ls->lock.ttl_ms / 3;
	return r == SB_ERR_NOTFOUND ? SB_ERR_REDIS : r;
}

/* The steps run one after the other (each under its own deadline); a
 * signal is looked for between them. */
static enum phase connect_enter(struct job *j)
{
	struct sb_error e = SB_ERROR_INIT;
	int r;

	r = conn_prepare(&j->conn, j->cfg, j->kv, &j->sbx, j->spec->timeout_s + 300, &e);
	if (!r && read_signals(j))
		r = SB_ERR_CANCELLED;
	if (!r)
		r = conn_master(&j->conn, (int64_t)j->cfg->health_interval_s * 2000 + 2000, &e);
	if (!r && read_signals(j))
		r = SB_ERR_CANCELLED;
	if (r == SB_ERR_HOSTKEY) {
		/* never retried silently: every job skips it until fixed */
		struct sb_error ignored = SB_ERROR_INIT;
		sb_best_effort(pool_mark_unhealthy(j->kv, j->sbx.account, j->sbx.host, e.msg, &ignored));   /* a hint to other jobs */
	}
	if (r == SB_ERR_TRANSPORT && ++j->connect_tries < MAX_CONNECT_TRIES) {
		/* unreachable: its slot back, and another sandbox */
		if ((r = schedule_exclude(j->acq.sched, &j->sbx, &j->lease.lock, &e)) != 0)
			return setup_failed(j, r, &e);
		return PH_ACQUIRE;
	}
	if (!r && (r = lease_fresh(j, &e)) != 0)
		sb_error_prefix(&e, "lost the lock on sandbox '%s' slot %d while connecting", j->sbx.host,
				j->lease.lock.slot);
	return r ? setup_failed(j, r, &e) : PH_START;
}

/* ---- START ---- */

static SB_MUST_CHECK int build_input(struct job *j)
{
	char origin[VALIDATE_URL_MAX + 1] = "", slot_key[VALIDATE_ACCOUNT_MAX + VALIDATE_HOST_MAX + 16];
	const struct jobspec *spec = j->spec;
	const char *const *vals = (const char *const *)strvec_argv(&spec->env_values);
	struct remote_params p;
	size_t i;
	int r;

	memset(&p, 0, sizeof(p));
	p.nonce = j->ses.nonce;
	p.job_id = spec->job_id;
	p.workdir = j->sbx.workdir;
	p.slot = j->lease.lock.slot;
	p.fence = j->lease.lock.fence;
	p.claude = j->sbx.claude;
	p.timeout_s = spec->timeout_s + 30;
	p.heartbeat_s = j->remote_heartbeat_s;
	p.env_names = (const char *const *)strvec_argv(&spec->env_names);
	p.claude_args = (const char *const *)strvec_argv(&spec->claude_args);
	if (spec->has_repo) {
		const char *h = strstr(spec->repo_url, "://");
		size_t k, n = h ? (size_t)(h + 3 - spec->repo_url) + strcspn(h + 3, "/?#") : 0;

		snprintf(origin, sizeof(origin), "%.*s", (int)n, spec->repo_url);
		p.repo_url = spec->repo_url;
		p.repo_ref = spec->repo_ref;
		p.repo_origin = origin;
		p.repo_key = j->repo_key.data;
		n = p.repo_ref ? strlen(p.repo_ref) : 0;
		p.repo_ref_is_sha = n == 40;
		for (k = 0; k < n; k++)
			if (!isxdigit((unsigned char)p.repo_ref[k]))
				p.repo_ref_is_sha = 0;
		p.repo_lfs = spec->repo_lfs;
		p.repo_submodules = spec->repo_submodules;
		p.have_token = spec->repo_token != NULL;
	}
	snprintf(slot_key, sizeof(slot_key), "%s@%s.%d", j->sbx.account, j->sbx.host, j->lease.lock.slot);
	p.slot_key = slot_key;
	if ((r = remote_script(&j->ses.in, &p)) != 0 ||
	    (r = remote_put_blob(&j->ses.in, spec->prompt, spec->prompt_len)) != 0)
		return r;
	for (i = 0; i < spec->env_values.n; i++)
		if ((r = remote_put_blob(&j->ses.in, vals[i], strlen(vals[i]))) != 0)
			return r;
	return p.have_token ? remote_put_blob(&j->ses.in, spec->repo_token, strlen(spec->repo_token)) : 0;
}

static void on_repo(void *ctx)
{
	struct job *j = ctx;
	struct sb_error ignored = SB_ERROR_INIT;

	/* the scheduler prefers sandboxes that cache the job's repository */
	if (j->repo_key.len)
		sb_best_effort(pool_note_repo(j->kv, j->sbx.account, j->sbx.host, j->repo_key.data, &ignored));   /* a hint */
}

static void on_result(void *ctx)
{
	struct job *j = ctx;

	j->ses.result_at = clock_now_ms() + RESULT_GRACE_MS;
}

static void close_watched(struct job *j, int *fd)
{
	if (*fd < 0)
		return;
	loop_unwatch(j->loop, *fd);
	close(*fd);
	*fd = -1;
}

static void wipe_input(struct session_data *s)
{
	secret_wipe(s->in.data, s->in.cap);
	buf_reset(&s->in);
	s->in_off = 0;
}

static void write_input(struct job *j)
{
	struct session_data *s = &j->ses;

	while (s->ssh.in_fd >= 0 && s->in_off < s->in.len) {
		ssize_t n = write(s->ssh.in_fd, s->in.data + s->in_off, s->in.len - s->in_off);
		if (n > 0) {
			s->in_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		/* EPIPE: the session is gone; the exit status will tell */
		close_watched(j, &s->ssh.in_fd);
		break;
	}
	if (s->in_off >= s->in.len && s->in.len)
		wipe_input(s);   /* the secrets are out: wipe our copy at once */
}

static void on_ssh_out(struct loop *l, int fd, short revents, void *ctx)
{
	struct job *j = ctx;
	int *p = fd == j->ses.ssh.out_fd ? &j->ses.ssh.out_fd : &j->ses.ssh.err_fd;
	int got = stream_pump(j->ses.stream, fd, p == &j->ses.ssh.out_fd);

	(void)l;
	(void)revents;
	if (got & STREAM_GOT)
		j->ses.last_output = clock_now_ms();
	if (got & STREAM_EOF)
		close_watched(j, p);
}

static void on_ssh_in(struct loop *l, int fd, short revents, void *ctx)
{
	(void)l; (void)fd; (void)revents;
	write_input(ctx);
}

static void on_events_out(struct loop *l, int fd, short revents, void *ctx)
{
	struct job *j = ctx;

	(void)l; (void)fd; (void)revents;
	events_flush(j->ev, 0);
}

static void on_ssh_exit(struct loop *l, struct child *c, void *ctx)
{
	(void)l; (void)c; (void)ctx;   /* the tick sees c->reaped */
}

static SB_MUST_CHECK int start_session(struct job *j, struct sb_error *e)
{
	struct session_data *s = &j->ses;
	struct strvec argv = STRVEC_INIT;
	unsigned char rnd[16];
	char name[160];
	int r, i;

	if (entropy_fill(rnd, sizeof(rnd)) != 0)
		return sb_error_set(e, SB_ERR_INTERNAL, "no randomness for the job nonce");
	for (i = 0; i < 16; i++)
		snprintf(s->nonce + 2 * i, 3, "%02x", rnd[i]);
	snprintf(name, sizeof(name), "job-%s-%ld.log", j->spec->job_id, (long)getpid());
	if (paths_log(j->cfg->state_dir, name, &s->log) != 0)
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	if ((r = build_input(j)) != 0)
		return sb_error_set(e, r, "cannot build the remote script");
	if (ssh_argv_start(&argv, &j->conn.t) || strvec_push(&argv, "-oControlMaster=no") ||
	    strvec_push(&argv, "-E") || strvec_push(&argv, s->log.data) ||
	    ssh_argv_finish(&argv, &j->conn.t, remote_bootstrap())) {
		strvec_clear(&argv);
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	}
	s->ssh.argv = (const char *const *)strvec_argv(&argv);
	s->ssh.in = CHILD_PIPE;
	s->ssh.out = CHILD_PIPE;
	s->ssh.err = CHILD_PIPE;
	s->ssh.new_session = 1;
	r = child_start(&s->ssh, e);
	strvec_clear(&argv);
	if (r)
		return r;
	/* a deeper pipe from ssh: fewer wake-ups of the two processes per MB
	 * (best effort: pipe-max-size may refuse) */
	(void)fcntl(s->ssh.out_fd, F_SETPIPE_SZ, 1 << 20);
	if (fd_set_nonblock(s->ssh.in_fd) != 0 || fd_set_nonblock(s->ssh.out_fd) != 0 ||
	    fd_set_nonblock(s->ssh.err_fd) != 0)
		return sb_error_set(e, SB_ERR_IO, "cannot use the session's pipes without blocking");   /* killed in DONE */
	if (loop_watch(j->loop, s->ssh.out_fd, POLLIN, on_ssh_out, j) != 0 ||
	    loop_watch(j->loop, s->ssh.err_fd, POLLIN, on_ssh_out, j) != 0 ||
	    loop_watch(j->loop, s->ssh.in_fd, 0, on_ssh_in, j) != 0 ||
	    loop_watch_child(j->loop, &s->ssh, on_ssh_exit, j) != 0)
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");   /* the session is stopped in DONE */
	s->t0 = s->last_output = clock_now_ms();
	s->next_heartbeat = s->t0 + j->heartbeat_ms;
	return 0;
}

static enum phase start_enter(struct job *j)
{
	struct stream_hooks hooks = { on_repo, on_result, NULL };
	struct sb_error e = SB_ERROR_INIT, ignored = SB_ERROR_INIT;
	int r = start_session(j, &e);

	if (r) {
		if (j->ses.ssh.pid > 0)
			child_signal(&j->ses.ssh, SIGKILL);
		return setup_failed(j, r, &e);
	}
	jobspec_drop_secrets(j->spec);   /* they are in ses.in now, wiped once sent */
	/* the transport worked: forget its failures, while ssh starts */
	sb_best_effort(pool_mark_healthy(j->kv, j->sbx.account, j->sbx.host, &ignored));   /* a hint */
	hooks.ctx = j;
	j->ses.stream = stream_new(j->ev, j->ses.nonce, (size_t)j->cfg->max_line_bytes, STDERR_LINE_MAX, &hooks);
	if (!j->ses.stream) {
		j->stop.why = STOP_INTERNAL;
		return PH_DRAIN;
	}
	write_input(j);
	return PH_STREAM;
}

/* ---- STREAM and DRAIN ---- */

/* The remote script's first line comes within moments of the session
 * opening; a session that shows nothing for the connect timeout plus a
 * margin rides a wedged master or a hung sshd. */
static int64_t begin_deadline(const struct job *j)
{
	return j->ses.t0 + (int64_t)j->cfg->ssh_connect_timeout_s * 1000 + 10000;
}

static void lease_lost(struct job *j, const char *why)
{
	snprintf(j->lease.why, sizeof(j->lease.why), "%s", why);
	j->lease.lost = 1;
}

/* 1 when the lease is gone and the job must stop. */
static int renew_lease(struct job *j, int64_t now)
{
	struct lease *ls = &j->lease;
	struct sb_error e = SB_ERROR_INIT;
	char why[SB_ERROR_MSG_MAX];
	int r;

	if (ls->lost || j->ses.ssh.reaped || now < ls->next_renew)
		return 0;
	r = lock_renew(j->kv, &ls->lock, &e);
	now = clock_now_ms();   /* the call may have waited for Redis */
	if (r == 0) {
		ls->next_renew = ls->lock.renewed_ms + ls->lock.ttl_ms / 3;
		return 0;
	}
	if (r == SB_ERR_NOTFOUND) {
		lease_lost(j, e.msg);
		return 1;
	}
	log_warn("cannot renew the lock on sandbox '%s' slot %d: %s", j->sbx.host, ls->lock.slot, e.msg);
	ls->next_renew = now + 1000;
	/* stop early enough to be done before Redis can hand the slot on */
	if (now >= ls->lock.renewed_ms + 2 * ls->lock.ttl_ms / 3) {
		snprintf(why, sizeof(why), "lost the lock on sandbox '%s' slot %d: cannot renew it: %s", j->sbx.host,
			 ls->lock.slot, e.msg);
		lease_lost(j, why);
		return 1;
	}
	return 0;
}

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

/* Output closed and exit status in (or a grandchild kept the pipes past a
 * grace): the session is over. */
static SB_MUST_CHECK int session_over(struct job *j, int64_t now)
{
	struct session_data *s = &j->ses;

	if (!s->ssh.reaped)
		return 0;
	if (s->ssh.out_fd < 0 && s->ssh.err_fd < 0)
		return 1;
	if (!s->pipes_grace_at)
		s->pipes_grace_at = now + KILL_GRACE_MS;   /* a grandchild holds the pipes */
	if (now < s->pipes_grace_at)
		return 0;
	close_watched(j, &s->ssh.out_fd);
	close_watched(j, &s->ssh.err_fd);
	return 1;
}

/* The timers STREAM and DRAIN share, only while they can fire: a heartbeat
 * once the last input is out, a renewal while the lease is ours and ssh
 * runs (a time left in the past would spin the loop). */
static void session_wakeups(struct job *j, int64_t *next)
{
	struct session_data *s = &j->ses;

	if (j->phase == PH_STREAM && s->ssh.in_fd >= 0 && s->in.len == 0)
		*next = min64(*next, s->next_heartbeat);
	if (!j->lease.lost && !s->ssh.reaped)
		*next = min64(*next, j->lease.next_renew);
	if (s->pipes_grace_at)
		*next = min64(*next, s->pipes_grace_at);
}

/* What the loop watches this round: no reading the sandbox while the
 * reader of our events holds us back. */
static void session_watch(struct job *j)
{
	struct session_data *s = &j->ses;
	int backpressure = events_pending(j->ev) > EVENTS_HIGH_WATER;

	if (s->ssh.out_fd >= 0)
		(void)loop_watch_events(j->loop, s->ssh.out_fd, backpressure ? 0 : POLLIN);
	if (s->ssh.err_fd >= 0)
		(void)loop_watch_events(j->loop, s->ssh.err_fd, backpressure ? 0 : POLLIN);
	if (s->ssh.in_fd >= 0)
		(void)loop_watch_events(j->loop, s->ssh.in_fd, s->in.len > s->in_off ? POLLOUT : 0);
	(void)loop_watch_events(j->loop, j->ev->fd, events_pending(j->ev) && !j->ev->broken ? POLLOUT : 0);
}

/* The timers of a running session; STOP_NONE while none has run out. */
static enum stop_reason session_timers(struct job *j, int64_t now, int64_t *next)
{
	const struct stream_state *st = stream_state(j->ses.stream);
	int64_t timeout_at = j->ses.t0 + (int64_t)j->spec->timeout_s * 1000;
	int64_t idle_at = j->ses.last_output + (int64_t)j->spec->idle_timeout_s * 1000;
	int64_t result_at = j->ses.result_at;

	if (!st->begun && now >= begin_deadline(j))
		return STOP_NOBEGIN;
	if (now >= timeout_at)
		return STOP_TIMEOUT;
	if (now >= idle_at)
		return STOP_IDLE;
	if (st->have_result && now >= result_at)
		return STOP_RESULT_GRACE;
	if (now >= j->lease.lock.deadline_ms) {
		char why[SB_ERROR_MSG_MAX];
		snprintf(why, sizeof(why),
			 "lost the lock on sandbox '%s' slot %d: its lease ran out before a renewal was confirmed",
			 j->sbx.host, j->lease.lock.slot);
		lease_lost(j, why);
		return STOP_LEASE;
	}
	if (!st->begun)
		*next = min64(*next, begin_deadline(j));
	*next = min64(*next, min64(timeout_at, min64(idle_at, j->lease.lock.deadline_ms)));
	if (st->have_result)
		*next = min64(*next, result_at);
	return STOP_NONE;
}

static enum phase stream_tick(struct job *j, int64_t now, int64_t *next)
{
	struct session_data *s = &j->ses;
	enum stop_reason why = STOP_NONE;

	if (session_over(j, now))
		return PH_DONE;
	if (j->signal != STOP_NONE)
		why = j->signal;   /* first: a web app that dies may close our stdout and signal us */
	else if (j->ev->broken)
		why = STOP_CONSUMER;
	else if (renew_lease(j, now))
		why = STOP_LEASE;
	if (events_pending(j->ev) > EVENTS_HIGH_WATER)
		s->last_output = now;   /* held back by our reader: silence says nothing */
	if (why == STOP_NONE)
		why = session_timers(j, now, next);
	if (why != STOP_NONE) {
		j->stop.why = why;
		return PH_DRAIN;
	}
	if (s->ssh.in_fd >= 0 && now >= s->next_heartbeat && s->in.len == 0) {
		if (buf_putc(&s->in, '\n') != 0) {
			/* without heartbeats the sandbox would stop it anyway */
			j->stop.why = STOP_INTERNAL;
			return PH_DRAIN;
		}
		s->next_heartbeat = now + j->heartbeat_ms;
	}
	session_wakeups(j, next);
	session_watch(j);
	return PH_STREAM;
}

/* In-band cancel: the remote script kills Claude Code's process group and
 * cleans up; unsent secrets are dropped.  ssh gets TERM after a grace. */
static enum phase drain_enter(struct job *j)
{
	struct session_data *s = &j->ses;
	int64_t now = clock_now_ms();

	j->stop.at = now;
	j->stop.term_at = now + STOP_GRACE_MS;
	if (s->ssh.in_fd >= 0) {
		if (s->in.len)
			wipe_input(s);
		if (s->stream && stream_state(s->stream)->begun)
			(void)!write(s->ssh.in_fd, "cancel\n", 7);
		close_watched(j, &s->ssh.in_fd);
	}
	return PH_DRAIN;
}

static enum phase drain_tick(struct job *j, int64_t now, int64_t *next)
{
	struct session_data *s = &j->ses;

	if (session_over(j, now))
		return PH_DONE;
	(void)renew_lease(j, now);   /* a lost lease is the outcome, unless cancelled */
	if (!s->ssh.reaped) {
		if (j->stop.term_at && now >= j->stop.term_at) {
			child_signal(&s->ssh, SIGTERM);
			j->stop.term_at = 0;
			j->stop.kill_at = now + KILL_GRACE_MS;
		} else if (j->stop.kill_at && now >= j->stop.kill_at) {
			child_signal(&s->ssh, SIGKILL);
			j->stop.kill_at = now + KILL_GRACE_MS;
		}
	}
	if (j->stop.term_at)
		*next = min64(*next, j->stop.term_at);
	if (j->stop.kill_at)
		*next = min64(*next, j->stop.kill_at);
	session_wakeups(j, next);
	session_watch(j);
	return PH_DRAIN;
}

/* ---- DONE ---- */

/* How a session ended, in order of precedence: our own stop, the lease,
 * Claude Code's result, the sandbox script's word, ssh. */
static enum job_end session_end(struct job *j)
{
	const struct stream_state *st = j->ses.stream ? stream_state(j->ses.stream) : NULL;
	int ssh_rc = child_exit_code(&j->ses.ssh);
	struct sb_error e = SB_ERROR_INIT;

	switch (j->stop.why) {
	case STOP_SIGINT: return JOB_END_SIGINT;
	case STOP_SIGTERM: return JOB_END_SIGTERM;
	default: break;
	}
	if (j->lease.lost) {
		snprintf(j->detail, sizeof(j->detail), "%s", j->lease.why);
		return JOB_END_LEASE;
	}
	switch (j->stop.why) {
	case STOP_CONSUMER: return JOB_END_CONSUMER;
	case STOP_INTERNAL: return JOB_END_INTERNAL;
	case STOP_NOBEGIN: {
		int alive = 0;
		/* a master that does not answer is unlinked and killed here */
		sb_best_effort(ssh_master_check(&j->conn.t, &alive, &e));
		return JOB_END_NOBEGIN;
	}
	case STOP_TIMEOUT: return JOB_END_TIMEOUT;
	case STOP_IDLE: return JOB_END_IDLE;
	default: break;
	}
	if (st && st->have_result && (j->stop.why == STOP_RESULT_GRACE || st->ended)) {
		if (j->stop.why == STOP_RESULT_GRACE)
			log_warn("Claude Code did not exit within %d s of its result line; stopped it", RESULT_GRACE_MS / 1000);
		return !st->result_is_error && (j->stop.why == STOP_RESULT_GRACE || st->end_rc == 0) ? JOB_END_SUCCEEDED
												       : JOB_END_FAILED;
	}
	if (st && st->ended)
		return outcome_remote(st->end_why);
	if (ssh_rc == 255 || ssh_rc < 0 || ssh_rc >= 128) {
		(void)ssh_classify_failure(&j->conn.t, j->ses.log.data, ssh_rc, &e);
		snprintf(j->detail, sizeof(j->detail), "%s", e.msg);
		return st && st->started ? JOB_END_TRANSPORT_MIDJOB : JOB_END_TRANSPORT;
	}
	return ssh_rc >= 97 && ssh_rc <= 99 ? JOB_END_SCRIPT_BOOT : JOB_END_SCRIPT;
}

/* Give the slot back; a release that finds the lease gone means the job
 * did not hold it to its end (unless it was cancelled anyway). */
static void release_lease(struct job *j)
{
	struct sb_error rel = SB_ERROR_INIT;
	int cancelled = j->stop.why == STOP_SIGINT || j->stop.why == STOP_SIGTERM;
	int rr = lock_unlock(j->kv, &j->lease.lock, &rel);
	char why[SB_ERROR_MSG_MAX];

	if (!j->ses.t0 || j->end_known)
		return;   /* no session: nothing ran under it */
	if (rr == SB_ERR_REDIS && !j->lease.lost && clock_now_ms() >= j->lease.lock.deadline_ms && !cancelled) {
		snprintf(why, sizeof(why),
			 "lost the lock on sandbox '%s' slot %d: no renewal was confirmed before its lease ran out (%s)",
			 j->sbx.host, j->lease.lock.slot, rel.msg);
		lease_lost(j, why);
	} else if (rr == SB_ERR_NOTFOUND && !j->lease.lost && !cancelled) {
		lease_lost(j, rel.msg);
	} else if (rr) {
		log_warn("%s", rel.msg);
	}
}

static enum phase done_enter(struct job *j)
{
	const struct stream_state *st = j->ses.stream ? stream_state(j->ses.stream) : NULL;
	struct events_result res;
	struct outcome out;
	struct outcome_args a;

	if (j->ses.ssh.pid > 0) {
		loop_unwatch_child(j->loop, &j->ses.ssh);
		close_watched(j, &j->ses.ssh.in_fd);
		close_watched(j, &j->ses.ssh.out_fd);
		close_watched(j, &j->ses.ssh.err_fd);
		if (!j->ses.ssh.reaped)
			sb_best_effort(child_wait(&j->ses.ssh, clock_deadline_in(0), KILL_GRACE_MS));   /* reaped either way */
	}
	/* whenever a slot was taken, held or not: a lease lost while
	 * connecting or running still leaves the job's reservation to delete */
	if (j->lease.lock.token[0])
		release_lease(j);
	if (!j->end_known)
		end_with(j, session_end(j), j->detail);
	memset(&a, 0, sizeof(a));
	a.host = j->sbx.host;
	a.url = j->spec->repo_url;
	a.ref = j->spec->repo_ref;
	a.detail = j->detail;
	a.timeout_s = j->spec->timeout_s;
	a.idle_s = j->spec->idle_timeout_s;
	a.rc = st ? st->end_rc : 0;
	if (j->end == JOB_END_SCRIPT || j->end == JOB_END_SCRIPT_BOOT)
		a.rc = child_exit_code(&j->ses.ssh);
	a.begin_s = j->ses.t0 ? (begin_deadline(j) - j->ses.t0) / 1000 : 0;
	outcome_of(j->end, &a, &out);

	memset(&res, 0, sizeof(res));
	res.status = out.status;
	res.exit_code = out.exit_code;
	res.sandbox = j->sbx.host;
	if (st) {
		res.session_id = st->session_id.data;
		res.session_id_len = st->session_id.len;
		res.cost = st->cost.data;
		res.cost_len = st->cost.len;
		res.turns = st->turns.data;
		res.turns_len = st->turns.len;
	}
	res.duration_ms = clock_now_ms() - j->t0;
	res.error = out.error[0] ? out.error : NULL;
	if (res.error)
		log_error("%s", res.error);   /* the same sentence for the operator's log */
	events_result(j->ev, &res);
	j->exit_code = out.exit_code;
	return PH_DONE;
}

/* ---- the phase table ---- */

static enum phase stay_tick(struct job *j, int64_t now, int64_t *next)
{
	(void)now; (void)next;
	return j->phase;
}

static const struct {
	const char *name;
	enum phase (*enter)(struct job *j);
	enum phase (*tick)(struct job *j, int64_t now, int64_t *next);
} phases[] = {
	[PH_NONE] = { "none", NULL, stay_tick },
	[PH_ACQUIRE] = { "acquire", acquire_enter, acquire_tick },
	[PH_CONNECT] = { "connect", connect_enter, stay_tick },
	[PH_START] = { "start", start_enter, stay_tick },
	[PH_STREAM] = { "stream", NULL, stream_tick },
	[PH_DRAIN] = { "drain", drain_enter, drain_tick },
	[PH_DONE] = { "done", done_enter, stay_tick },
};

/* The one place a job changes phase: an enter step may move it on again. */
static void job_goto(struct job *j, enum phase to)
{
	while (to != j->phase) {
		log_debug("job '%s': %s -> %s", j->spec->job_id, phases[j->phase].name, phases[to].name);
		j->phase = to;
		if (phases[to].enter)
			to = phases[to].enter(j);
	}
}

static void job_release(struct job *j)
{
	if (j->lease.lock.token[0]) {
		struct sb_error rel = SB_ERROR_INIT;
		sb_best_effort(lock_unlock(j->kv, &j->lease.lock, &rel));   /* else the lease runs out */
	}
	schedule_free(j->acq.sched);
	conn_release(&j->conn);
	if (j->ses.log.data)
		(void)unlink(j->ses.log.data);
	stream_free(j->ses.stream);
	buf_release(&j->ses.in);
	buf_release(&j->ses.log);
	buf_release(&j->scratch);
	buf_release(&j->repo_key);
	sandbox_rec_release(&j->sbx);
	kv_free(j->kv);
}

int job_run(const struct config *cfg, struct jobspec *spec, struct events *ev, struct loop *loop, int sigfd)
{
	struct job j;
	struct sb_error e = SB_ERROR_INIT;
	int r;

	memset(&j, 0, sizeof(j));
	j.cfg = cfg;
	j.spec = spec;
	j.ev = ev;
	j.loop = loop;
	j.sigfd = sigfd;
	j.t0 = clock_now_ms();
	j.lease.lock = (struct lock)LOCK_INIT;
	j.conn = (struct conn)CONN_INIT;
	j.ses.ssh = (struct child)CHILD_INIT;
	j.sbx = (struct sandbox_rec)SANDBOX_REC_INIT;
	buf_init_secret(&j.ses.in, 0);
	/* the sandbox stops a job that hears nothing for half a lease, so a
	 * vanished orchestrator's job is gone before its slot can be reused */
	j.remote_heartbeat_s = cfg->lock_ttl_ms / 2000;
	if (j.remote_heartbeat_s > REMOTE_HEARTBEAT_MAX_S)
		j.remote_heartbeat_s = REMOTE_HEARTBEAT_MAX_S;
	if (j.remote_heartbeat_s < 3)
		j.remote_heartbeat_s = 3;
	j.heartbeat_ms = j.remote_heartbeat_s * 1000 / 3;
	if (j.heartbeat_ms > HEARTBEAT_MAX_MS)
		j.heartbeat_ms = HEARTBEAT_MAX_MS;
	if (spec->has_repo && paths_repo_key(spec->account, spec->repo_url, &j.repo_key) != 0)
		buf_reset(&j.repo_key);   /* no affinity: any sandbox will do */

	if (loop_watch(loop, sigfd, POLLIN, on_signal_fd, &j) != 0 ||
	    loop_watch(loop, ev->fd, 0, on_events_out, &j) != 0) {
		end_with(&j, JOB_END_SETUP_SOFTWARE, "out of memory");
		job_goto(&j, PH_DONE);
	} else if (kv_open(&j.kv, cfg->redis_url,
			   /* a renewal that waits longer than a quarter lease would
			    * eat the margin that lets us stop before Redis hands
			    * the slot on */
			   cfg->redis_timeout_ms < cfg->lock_ttl_ms / 4 ? cfg->redis_timeout_ms : cfg->lock_ttl_ms / 4,
			   &e) != 0) {
		end_with(&j, JOB_END_SETUP_TEMPFAIL, e.msg);
		job_goto(&j, PH_DONE);
	} else {
		job_goto(&j, PH_ACQUIRE);
	}
	while (j.phase != PH_DONE) {
		int64_t now = clock_now_ms(), next = now + ROUND_MAX_MS;
		enum phase to = phases[j.phase].tick(&j, now, &next);

		if (to != j.phase) {
			job_goto(&j, to);
			continue;
		}
		if ((r = loop_run_once(loop, next - now < 0 ? 0 : next - now)) != 0) {
			if (j.ses.ssh.pid > 0 && !j.ses.ssh.reaped)
				child_signal(&j.ses.ssh, SIGKILL);
			end_with(&j, JOB_END_SETUP_SOFTWARE,
				 r == SB_ERR_NOMEM ? "out of memory in the event loop" : "the event loop's poll failed");
			job_goto(&j, PH_DONE);
		}
	}
	loop_unwatch(loop, sigfd);
	loop_unwatch(loop, ev->fd);
	job_release(&j);
	events_flush(ev, 1);
	return j.exit_code;
}
