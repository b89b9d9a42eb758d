#include "supervise.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "buf.h"
#include "clock.h"
#include "conn.h"
#include "fsutil.h"
#include "kv.h"
#include "lock.h"
#include "log.h"
#include "loop.h"
#include "paths.h"
#include "pool.h"
#include "registry.h"
#include "remote.h"
#include "ssh.h"
#include "sshstate.h"
#include "validate.h"

#define POLL_MS 500                 /* registry version poll: changes seen within 2 s */
#define AGENT_GRACE_MS 60000        /* a replaced agent lives on this long */
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
#define PROBE_TIMEOUT_MS 10000
#define STOP_WAIT_MS 3000           /* at stop: how long idle masters get to exit */
#define OP_GRACE_MS 1000            /* a step past its deadline: TERM, then KILL after this */
#define OP_OUT_MAX (1024 * 1024)    /* a sweep listing kept at most */
#define LOCK_BUSY_RETRY_MS 500      /* someone else is opening the master: look again */

struct sv_agent {
	struct agent ag;
	struct buf sock;            /* agent/<account>.v<N>.sock */
	long long version;          /* 0: none */
	int64_t retire_at;
};

struct sv_account {
	char *name;
	struct sv_agent cur, old;
	int64_t retry_at;
	int backoff_ms;
	int seen;
};

struct sv;
struct sv_sandbox;

/* One child process of a sandbox (a health-check step or a sweep command)
 * watched by the loop, with its own deadline: TERM when it passes, KILL
 * OP_GRACE_MS later.  done runs once the child is reaped and its captured
 * output (if any) has closed; a frozen sandbox thus holds only its own op. */
struct sv_op {
	struct child c;
	struct loop_timer deadline;
	struct buf out;
	int64_t timeout_ms;
	int running, exited, timed_out;
	void (*done)(struct sv_sandbox *s, struct sv_op *op);
	struct sv_sandbox *s;
};

struct sv_sandbox {
	struct sv *sv;
	char *account, *host, *user, *workdir, *host_key;
	int port;
	long long key_version;
	struct buf alias, cpath;
	int master;                 /* a master we opened or adopted answers */
	int published;              /* health we last wrote or read: -1 unknown, 0 unhealthy, 1 healthy */
	struct loop_timer when;     /* the next health check */
	int backoff_ms;
	int seen;
	/* the check in progress: -O check, then open if needed, then `true` */
	struct sv_op check;
	int alive;                  /* -O check answered in this check */
	int lockfd;                 /* the ControlPath's flock while our master's ssh runs */
	int64_t t0;
	struct sv_op sweep;
	int sweep_rm;               /* the sweep op is the rm (else the listing) */
};

/* A master told to stop (-O stop) while the loop runs: its sandbox entry
 * may be gone before ssh answers, so it keeps its own copy of the names. */
struct sv_stop {
	struct sv *sv;
	struct child c;
	struct loop_timer deadline;
	struct buf alias, cpath;
	struct ssh_target t;
	int timed_out;
	struct sv_stop *next;
};

struct sv {
	struct config *cfg;
	struct kv *kv;
	long long version;          /* registry version reconciled; -1 none */
	struct sv_account *acc;
	size_t nacc;
	struct sv_sandbox **sbx;    /* each entry owns timers and children: never moved */
	size_t nsbx;
	int64_t next_sweep;
	struct loop *loop;
	struct loop_timer tick;     /* registry poll, agent retirement, sweeps */
	int force, redis_down;
	int stopping;               /* shutting down: the loop no longer runs */
	struct sv_stop *stops;      /* masters being stopped */
	int (*reload_config)(struct config *cfg, struct sb_error *e);
};

/* Doubling from 1 s up to 4 health periods (at most 60 s), with jitter. */
static int64_t backoff_next(int *backoff_ms, int period_s)
{
	int b = *backoff_ms ? *backoff_ms * 2 : BACKOFF_MIN_MS, max = period_s * 4000;

	if (max > BACKOFF_MAX_MS)
		max = BACKOFF_MAX_MS;
	if (max < BACKOFF_MIN_MS)
		max = BACKOFF_MIN_MS;
	if (b > max)
		b = max;
	*backoff_ms = b;
	/* jitter: supervisors on several hosts must not retry in step */
	return clock_now_ms() + b / 2 + (int64_t)(rand() % (b / 2 + 1));
}

/* ---- agents ---- */

static SB_MUST_CHECK int agent_path(const struct config *cfg, const char *account, long long version, struct buf *out,
		      struct sb_error *e)
{
	struct buf base = BUF_INIT;
	int r = paths_agent_sock(cfg->state_dir, account, &base, e);

	if (!r) {
		buf_reset(out);
		/* ".sock" -> ".v<N>.sock" */
		r = buf_append(out, base.data, base.len - 5) || buf_printf(out, ".v%lld.sock", version) ? SB_ERR_NOMEM : 0;
		if (!r && out->len > PATHS_SOCKET_MAX)
			r = sb_error_set(e, SB_ERR_USAGE, "agent socket path '%s' is too long for a Unix socket", out->data);
		else if (r)
			r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	}
	buf_release(&base);
	return r;
}

/* Point agent/<account>.sock at the current agent (or remove it). */
static void agent_link(const struct config *cfg, struct sv_account *a)
{
	struct buf link = BUF_INIT, tmp = BUF_INIT;
	struct sb_error e = SB_ERROR_INIT;
	const char *target;

	if (paths_agent_sock(cfg->state_dir, a->name, &link, &e) != 0) {
		log_error("%s", e.msg);
		goto out;
	}
	if (!a->cur.version) {
		(void)unlink(link.data);
		goto out;
	}
	target = strrchr(a->cur.sock.data, '/') + 1;
	if (buf_printf(&tmp, "%s.tmp", link.data) == 0) {
		(void)unlink(tmp.data);
		if (symlink(target, tmp.data) != 0 || rename(tmp.data, link.data) != 0) {
			log_error("cannot link '%s' to the agent of account '%s': %s", link.data, a->name, strerror(errno));
			(void)unlink(tmp.data);
		}
	}
out:
	buf_release(&link);
	buf_release(&tmp);
}

static void sv_agent_stop(struct sv_agent *g)
{
	if (g->version)
		agent_stop(&g->ag);
	buf_release(&g->sock);
	g->version = 0;
	g->retire_at = 0;
}

/* Start an agent for rec's key version and load the key into it. */
static SB_MUST_CHECK int agent_bring_up(struct sv *sv, struct sv_account *a, const struct account_rec *rec, struct sb_error *e)
{
	struct sv_agent g = { AGENT_INIT, BUF_INIT, 0, 0 };
	int r;

	if ((r = agent_path(sv->cfg, a->name, rec->key_version, &g.sock, e)) != 0)
		return r;
	if ((r = agent_start(&g.ag, g.sock.data, e)) != 0) {
		buf_release(&g.sock);
		return r;
	}
	g.version = rec->key_version;
	if ((r = agent_load_token(g.sock.data, sv->cfg, a->name, rec->key_token, 0, e)) != 0) {
		sv_agent_stop(&g);
		return r;
	}
	if (a->old.version)
		sv_agent_stop(&a->old);
	a->old = a->cur;
	a->old.retire_at = clock_now_ms() + AGENT_GRACE_MS;
	a->cur = g;
	agent_link(sv->cfg, a);
	return 0;
}

static struct sv_account *account_find(struct sv *sv, const char *name)
{
	size_t i;

	for (i = 0; i < sv->nacc; i++)
		if (strcmp(sv->acc[i].name, name) == 0)
			return &sv->acc[i];
	return NULL;
}

static void account_drop(struct sv *sv, size_t i)
{
	struct sv_account *a = &sv->acc[i];

	sv_agent_stop(&a->old);
	sv_agent_stop(&a->cur);
	agent_link(sv->cfg, a);
	log_info("account '%s': agent stopped", a->name);
	free(a->name);
	sv->acc[i] = sv->acc[--sv->nacc];
}

static SB_MUST_CHECK int reconcile_accounts(struct sv *sv, struct sb_error *e)
{
	char **names = NULL;
	size_t n = 0, i;
	int r;

	if ((r = registry_account_list(sv->kv, &names, &n, e)) != 0)
		return r;
	for (i = 0; i < sv->nacc; i++)
		sv->acc[i].seen = 0;
	for (i = 0; i < n && !r; i++) {
		struct account_rec rec = ACCOUNT_REC_INIT;
		struct sv_account *a;
		struct sb_error ae = SB_ERROR_INIT;
		int g = registry_account_get(sv->kv, names[i], &rec, &ae);

		if (g == SB_ERR_NOTFOUND)
			continue;   /* sandboxes but no key yet */
		if (g) {
			*e = ae;
			r = g;
			break;
		}
		if (!(a = account_find(sv, names[i]))) {
			struct sv_account *grown = realloc(sv->acc, (sv->nacc + 1) * sizeof(*grown));

			if (!grown || !(grown[sv->nacc].name = strdup(names[i]))) {
				if (grown)
					sv->acc = grown;
				account_rec_release(&rec);
				r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
				break;
			}
			sv->acc = grown;
			a = &sv->acc[sv->nacc++];
			memset((char *)a + sizeof(a->name), 0, sizeof(*a) - sizeof(a->name));
			a->cur.ag = (struct agent)AGENT_INIT;
			a->old.ag = (struct agent)AGENT_INIT;
			a->cur.sock = (struct buf)BUF_INIT;
			a->old.sock = (struct buf)BUF_INIT;
		}
		a->seen = 1;
		if (a->cur.version != rec.key_version && clock_now_ms() >= a->retry_at) {
			long long had = a->cur.version;

			if (agent_bring_up(sv, a, &rec, &ae) == 0) {
				a->backoff_ms = 0;
				a->retry_at = 0;
				if (had)
					log_info("account '%s': key version %lld loaded into a fresh agent; the agent of version %lld stops in %d s",
						 a->name, rec.key_version, had, AGENT_GRACE_MS / 1000);
				else
					log_info("account '%s': key version %lld loaded into its agent (%s)", a->name,
						 rec.key_version, rec.fingerprint);
			} else {
				a->retry_at = backoff_next(&a->backoff_ms, sv->cfg->health_interval_s);
				log_error("%s (retry in %d ms)", ae.msg, (int)(a->retry_at - clock_now_ms()));
			}
		}
		account_rec_release(&rec);
	}
	registry_names_free(names, n);
	if (r)
		return r;
	for (i = sv->nacc; i-- > 0;)
		if (!sv->acc[i].seen)
			account_drop(sv, i);
	return 0;
}

/* ---- child processes on the loop ---- */

static void op_init(struct sv_op *op, struct sv_sandbox *s)
{
	memset(op, 0, sizeof(*op));
	op->c = (struct child)CHILD_INIT;
	op->deadline = (struct loop_timer)LOOP_TIMER_INIT;
	op->out = (struct buf)BUF_INIT;
	op->s = s;
}

/* Ready for the next child (the previous one is reaped and closed). */
static void op_prep(struct sv_op *op)
{
	child_close_fds(&op->c);
	op->c = (struct child)CHILD_INIT;
	buf_reset(&op->out);
	op->exited = op->timed_out = 0;
}

static void op_maybe_done(struct sv_op *op)
{
	struct sv *sv = op->s->sv;

	if (!op->running || !op->exited || op->c.out_fd >= 0)
		return;
	loop_timer_disarm(sv->loop, &op->deadline);
	op->running = 0;
	op->done(op->s, op);   /* may start the next child in op */
}

static void op_close_output(struct sv_op *op)
{
	if (op->c.out_fd < 0)
		return;
	loop_unwatch(op->s->sv->loop, op->c.out_fd);
	close(op->c.out_fd);
	op->c.out_fd = -1;
}

static void op_output(struct loop *l, int fd, short revents, void *ctx)
{
	struct sv_op *op = ctx;
	char tmp[16384];
	ssize_t n;

	(void)l;
	(void)fd;
	(void)revents;
	for (;;) {
		n = read(op->c.out_fd, tmp, sizeof(tmp));
		if (n > 0) {
			size_t room = OP_OUT_MAX - op->out.len;

			/* out of memory: the rest is read and dropped, as past
			 * the bound */
			sb_best_effort(buf_append(&op->out, tmp, (size_t)n < room ? (size_t)n : room));
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		break;   /* EOF or a hard error */
	}
	op_close_output(op);
	op_maybe_done(op);
}

static void op_exited(struct loop *l, struct child *c, void *ctx)
{
	struct sv_op *op = ctx;

	(void)l;
	(void)c;
	op->exited = 1;
	op_maybe_done(op);
}

static void op_deadline(struct loop *l, void *ctx)
{
	struct sv_op *op = ctx;

	if (!op->timed_out) {
		op->timed_out = 1;
		child_signal(&op->c, SIGTERM);
		loop_timer_arm(l, &op->deadline, clock_now_ms() + OP_GRACE_MS, op_deadline, op);
		return;
	}
	child_signal(&op->c, SIGKILL);
	/* a grandchild that still holds the pipe is not waited for */
	op_close_output(op);
	op_maybe_done(op);
}

/* c has been started by one of ssh.h's _start functions: watch it, its
 * output and its deadline.  On failure the child is stopped and reaped. */
static SB_MUST_CHECK int op_watch(struct sv_op *op, int64_t timeout_ms, void (*done)(struct sv_sandbox *s, struct sv_op *op),
		    struct sb_error *e)
{
	struct loop *l = op->s->sv->loop;

	op->done = done;
	op->timeout_ms = timeout_ms;
	if (loop_watch_child(l, &op->c, op_exited, op) != 0 ||
	    (op->c.out_fd >= 0 && loop_watch(l, op->c.out_fd, POLLIN, op_output, op) != 0)) {
		loop_unwatch_child(l, &op->c);
		child_signal(&op->c, SIGKILL);
		sb_best_effort(child_wait(&op->c, clock_now_ms(), 100));   /* KILLed: reaped either way */
		child_close_fds(&op->c);
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	}
	op->running = 1;
	loop_timer_arm(l, &op->deadline, clock_now_ms() + timeout_ms, op_deadline, op);
	return 0;
}

/* Stop a running op without calling its done (the sandbox is going away or
 * changed under it).  KILL is immediate, so the reap is short. */
static void op_abort(struct sv_op *op)
{
	struct loop *l = op->s->sv->loop;

	if (op->running) {
		loop_unwatch_child(l, &op->c);
		op_close_output(op);
		loop_timer_disarm(l, &op->deadline);
		child_signal(&op->c, SIGKILL);
		sb_best_effort(child_wait(&op->c, clock_now_ms(), 100));   /* KILLed: reaped either way */
		op->running = 0;
	}
	child_close_fds(&op->c);
}

/* ---- masters ---- */

static void target_of(const struct sv *sv, const struct sv_sandbox *s, const char *cpath, struct ssh_target *t)
{
	t->cfg = sv->cfg;
	t->alias = s->alias.data;
	t->host = s->host;
	t->control_path = cpath;
	t->agent_sock = NULL;
}

static void stop_free(struct sv_stop *st)
{
	struct sv_stop **pp;

	for (pp = &st->sv->stops; *pp; pp = &(*pp)->next)
		if (*pp == st) {
			*pp = st->next;
			break;
		}
	loop_timer_disarm(st->sv->loop, &st->deadline);
	buf_release(&st->alias);
	buf_release(&st->cpath);
	free(st);
}

static void stop_exited(struct loop *l, struct child *c, void *ctx)
{
	struct sv_stop *st = ctx;

	(void)l;
	ssh_master_stop_finish(&st->t, c, st->timed_out);
	stop_free(st);
}

static void stop_deadline(struct loop *l, void *ctx)
{
	struct sv_stop *st = ctx;

	(void)l;
	st->timed_out = 1;
	child_signal(&st->c, SIGKILL);   /* its exit comes to stop_exited */
}

/* `-O stop` as a child on the loop: a wedged master costs its own
 * deadline, nobody else's wait.  While shutting down (no loop any more)
 * and when out of memory it runs to its end here. */
static void master_stop(struct sv *sv, struct sv_sandbox *s, const char *cpath, const char *why)
{
	struct ssh_target t;
	struct sb_error e = SB_ERROR_INIT;
	struct sv_stop *st = sv->stopping ? NULL : calloc(1, sizeof(*st));
	int r;

	target_of(sv, s, cpath, &t);
	ssh_master_vouch(&t, 0);
	if (st) {
		st->sv = sv;
		st->c = (struct child)CHILD_INIT;
		st->deadline = (struct loop_timer)LOOP_TIMER_INIT;
		st->alias = (struct buf)BUF_INIT;
		st->cpath = (struct buf)BUF_INIT;
		if (buf_puts(&st->alias, t.alias) != 0 || buf_puts(&st->cpath, cpath) != 0) {
			buf_release(&st->alias);
			buf_release(&st->cpath);
			free(st);
			st = NULL;
		}
	}
	if (!st) {
		if (ssh_master_stop(&t, &e) != 0)
			log_warn("sandbox '%s' of account '%s': %s", s->host, s->account, e.msg);
		else
			log_info("sandbox '%s' of account '%s': master stopped (%s); it exits after its last session",
				 s->host, s->account, why);
		return;
	}
	st->t = t;
	st->t.alias = st->alias.data;
	st->t.control_path = st->cpath.data;
	st->t.host = NULL;   /* the entry's: not kept */
	r = ssh_master_stop_start(&st->t, &st->c, &e);
	if (r == 0 && loop_watch_child(sv->loop, &st->c, stop_exited, st) != 0) {
		child_signal(&st->c, SIGKILL);
		sb_best_effort(child_wait(&st->c, clock_now_ms(), 100));   /* killed: reaped either way */
		r = sb_error_set(&e, SB_ERR_NOMEM, "out of memory");
	}
	if (r < 0)
		log_warn("sandbox '%s' of account '%s': cannot stop its master: %s", s->host, s->account, e.msg);
	else if (r == 0)
		log_info("sandbox '%s' of account '%s': master stopped (%s); it exits after its last session",
			 s->host, s->account, why);
	if (r != 0) {
		buf_release(&st->alias);
		buf_release(&st->cpath);
		free(st);
		return;
	}
	st->next = sv->stops;
	sv->stops = st;
	loop_timer_arm(sv->loop, &st->deadline, clock_now_ms() + SSH_CONTROL_TIMEOUT_MS, stop_deadline, st);
}

static void check_start(struct loop *l, void *ctx);

/* Stop whatever runs for s: its check (and the flock of a master being
 * opened) and its sweep. */
static void sandbox_quiesce(struct sv_sandbox *s)
{
	op_abort(&s->check);
	fs_unlock(s->lockfd);
	s->lockfd = -1;
	op_abort(&s->sweep);
	loop_timer_disarm(s->sv->loop, &s->when);
}

static void sandbox_free(struct sv_sandbox *s)
{
	free(s->account);
	free(s->host);
	free(s->user);
	free(s->workdir);
	free(s->host_key);
	buf_release(&s->alias);
	buf_release(&s->cpath);
	buf_release(&s->check.out);
	buf_release(&s->sweep.out);
	free(s);
}

static void sandbox_drop(struct sv *sv, size_t i, const char *why)
{
	struct sv_sandbox *s = sv->sbx[i];

	sandbox_quiesce(s);
	if (s->master)
		master_stop(sv, s, s->cpath.data, why);
	sandbox_free(s);
	sv->sbx[i] = sv->sbx[--sv->nsbx];
}

static struct sv_sandbox *sandbox_find(struct sv *sv, const char *account, const char *host)
{
	size_t i;

	for (i = 0; i < sv->nsbx; i++)
		if (strcmp(sv->sbx[i]->account, account) == 0 && strcmp(sv->sbx[i]->host, host) == 0)
			return sv->sbx[i];
	return NULL;
}

static size_t sandbox_index(const struct sv *sv, const struct sv_sandbox *s)
{
	size_t i;

	for (i = 0; i < sv->nsbx && sv->sbx[i] != s; i++)
		;
	return i;
}

static SB_MUST_CHECK int dup_into(char **dst, const char *src)
{
	char *c = strdup(src);

	if (!c)
		return -1;
	free(*dst);
	*dst = c;
	return 0;
}

static SB_MUST_CHECK int reconcile_sandboxes(struct sv *sv, struct sb_error *e)
{
	struct sandbox_rec *list = NULL;
	size_t n = 0, i;
	int r;

	if ((r = registry_sandbox_list(sv->kv, NULL, &list, &n, e)) != 0)
		return r;
	for (i = 0; i < sv->nsbx; i++)
		sv->sbx[i]->seen = 0;
	for (i = 0; i < n && !r; i++) {
		const struct sandbox_rec *rec = &list[i];
		const struct sv_account *a = account_find(sv, rec->account);
		struct sv_sandbox *s;
		struct buf cpath = BUF_INIT, alias = BUF_INIT;

		if (strcmp(rec->state, REGISTRY_STATE_ACTIVE) != 0 || !a || !a->cur.version)
			continue;   /* not seen: dropped below */
		/* the names every job and operator command uses (conn.h) */
		if ((r = conn_names(sv->cfg, rec, a->cur.version, &alias, &cpath, e)) != 0) {
			buf_release(&alias);
			buf_release(&cpath);
			break;
		}
		if (!(s = sandbox_find(sv, rec->account, rec->host))) {
			struct sv_sandbox **grown = realloc(sv->sbx, (sv->nsbx + 1) * sizeof(*grown));

			if (grown)
				sv->sbx = grown;
			if (!grown || !(s = calloc(1, sizeof(*s)))) {
				buf_release(&cpath);
				buf_release(&alias);
				r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
				break;
			}
			s->sv = sv;
			s->alias = (struct buf)BUF_INIT;
			s->cpath = (struct buf)BUF_INIT;
			s->when = (struct loop_timer)LOOP_TIMER_INIT;
			op_init(&s->check, s);
			op_init(&s->sweep, s);
			s->lockfd = -1;
			s->published = -1;
			if (dup_into(&s->account, rec->account) || dup_into(&s->host, rec->host) ||
			    buf_append(&s->alias, alias.data, alias.len)) {
				/* never keep a half-made entry: later lookups read its names */
				sandbox_free(s);
				buf_release(&cpath);
				buf_release(&alias);
				r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
				break;
			}
			sv->sbx[sv->nsbx++] = s;
			loop_timer_arm(sv->loop, &s->when, clock_now_ms(), check_start, s);
			log_info("sandbox '%s' of account '%s': watching", rec->host, rec->account);
		}
		s->seen = 1;
		if (s->cpath.data && strcmp(s->cpath.data, cpath.data) != 0) {
			/* new key version or re-pinned host key: a fresh master;
			 * the old one serves its running jobs to their end */
			sandbox_quiesce(s);
			if (s->master)
				master_stop(sv, s, s->cpath.data, "replaced: key or host key changed");
			s->master = 0;
			loop_timer_arm(sv->loop, &s->when, clock_now_ms(), check_start, s);
		}
		buf_reset(&s->cpath);
		if (buf_append(&s->cpath, cpath.data, cpath.len) || dup_into(&s->user, rec->user) ||
		    dup_into(&s->workdir, rec->workdir) || dup_into(&s->host_key, rec->host_key)) {
			r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
			if (!s->cpath.data || !s->user || !s->workdir || !s->host_key)
				sandbox_drop(sv, sandbox_index(sv, s), "out of memory");
			buf_release(&cpath);
			buf_release(&alias);
			break;
		}
		s->port = rec->port;
		s->key_version = a->cur.version;
		buf_release(&cpath);
		buf_release(&alias);
	}
	sandbox_rec_free_array(list, n);
	if (r)
		return r;
	for (i = sv->nsbx; i-- > 0;)
		if (!sv->sbx[i]->seen)
			sandbox_drop(sv, i, "no longer active");
	return 0;
}

static void publish_health(struct sv *sv, struct sv_sandbox *s, int healthy, const char *reason)
{
	struct sb_error e = SB_ERROR_INIT;
	struct pool_health h;
	int r;

	if (!sv->kv)
		return;   /* Redis is down: published stays, so the next check tries again */
	if (healthy) {
		/* a job may have marked it: read before writing */
		if (s->published == 1)
			return;
		if (pool_health_get(sv->kv, s->account, s->host, &h, &e) == 0 && !h.unhealthy) {
			/* our mark expired on its own (its TTL is the backoff):
			 * nothing to write, but the change is still news */
			if (s->published == 0)
				log_info("sandbox '%s' of account '%s': healthy", s->host, s->account);
			s->published = 1;
			return;
		}
		r = pool_mark_healthy(sv->kv, s->account, s->host, &e);
	} else {
		if (s->published == 0)
			return;
		r = pool_mark_unhealthy(sv->kv, s->account, s->host, reason, &e);
	}
	if (r) {
		log_warn("cannot publish the health of sandbox '%s': %s", s->host, e.msg);
		return;
	}
	s->published = healthy;
	log_info("sandbox '%s' of account '%s': %s%s%s", s->host, s->account, healthy ? "healthy" : "unhealthy",
		 healthy ? "" : ": ", healthy ? "" : reason);
}

/* ---- the health check: master up (open it when it is not) and a session
 * through it works.  Each step is a child on the loop with its own
 * deadline: -O check, then (when no master answers) the master's ssh, then
 * a `true` session. ---- */

static void check_failed(struct sv_sandbox *s, struct sb_error *e)
{
	struct sv *sv = s->sv;
	struct ssh_target t;
	int64_t next;

	target_of(sv, s, s->cpath.data, &t);
	s->master = 0;
	next = backoff_next(&s->backoff_ms, sv->cfg->health_interval_s);
	log_warn("%s (next try in %lld ms)", e->msg, (long long)(next - clock_now_ms()));
	/* a master that answers -O check but carries no session is wedged */
	if (s->alive)
		master_stop(sv, s, s->cpath.data, "its check session failed");
	ssh_master_vouch(&t, 0);
	publish_health(sv, s, 0, e->msg);
	loop_timer_arm(sv->loop, &s->when, next, check_start, s);
}

static void check_passed(struct sv_sandbox *s)
{
	struct sv *sv = s->sv;
	struct ssh_target t;

	target_of(sv, s, s->cpath.data, &t);
	ssh_master_vouch(&t, 1);
	s->master = 1;
	s->backoff_ms = 0;
	publish_health(sv, s, 1, NULL);
	loop_timer_arm(sv->loop, &s->when, clock_now_ms() + (int64_t)sv->cfg->health_interval_s * 1000, check_start,
		       s);
}

static void check_probed(struct sv_sandbox *s, struct sv_op *op)
{
	struct sb_error e = SB_ERROR_INIT;
	struct ssh_target t;
	int code = -1, r;

	target_of(s->sv, s, s->cpath.data, &t);
	r = ssh_exec_finish(&t, &op->c, op->timed_out, op->timeout_ms, &code, &e);
	if (!r && code != 0)
		r = sb_error_set(&e, SB_ERR_TRANSPORT, "a check session on sandbox '%s' exited with status %d", s->host,
				 code);
	if (r)
		check_failed(s, &e);
	else
		check_passed(s);
}

static void check_probe(struct sv_sandbox *s)
{
	struct sb_error e = SB_ERROR_INIT;
	struct ssh_target t;

	target_of(s->sv, s, s->cpath.data, &t);
	op_prep(&s->check);
	if (ssh_exec_start(&t, "true", 0, &s->check.c, &e) != 0 ||
	    op_watch(&s->check, PROBE_TIMEOUT_MS, check_probed, &e) != 0)
		check_failed(s, &e);
}

static void check_opened(struct sv_sandbox *s, struct sv_op *op)
{
	struct sb_error e = SB_ERROR_INIT;
	struct ssh_target t;

	target_of(s->sv, s, s->cpath.data, &t);
	if (ssh_master_open_finish(&t, &op->c, op->timed_out, &s->lockfd, &e) != 0) {
		check_failed(s, &e);
		return;
	}
	log_info("sandbox '%s' of account '%s': master up in %lld ms", s->host, s->account,
		 (long long)(clock_now_ms() - s->t0));
	check_probe(s);
}

static void check_open(struct sv_sandbox *s)
{
	struct sb_error e = SB_ERROR_INIT;
	struct ssh_target t;
	int r;

	target_of(s->sv, s, s->cpath.data, &t);
	op_prep(&s->check);
	r = ssh_master_open_start(&t, -1, &s->check.c, &s->lockfd, &e);
	if (r == 1) {
		/* a job is opening it, or just did: see again shortly */
		loop_timer_arm(s->sv->loop, &s->when, clock_now_ms() + LOCK_BUSY_RETRY_MS, check_start, s);
		return;
	}
	if (!r && (r = op_watch(&s->check, ssh_master_open_timeout_ms(&t), check_opened, &e)) != 0) {
		fs_unlock(s->lockfd);
		s->lockfd = -1;
	}
	if (r)
		check_failed(s, &e);
}

static void check_checked(struct sv_sandbox *s, struct sv_op *op)
{
	struct sb_error e = SB_ERROR_INIT;
	struct ssh_target t;
	int alive = 0;

	target_of(s->sv, s, s->cpath.data, &t);
	if (ssh_master_check_finish(&t, &op->c, op->timed_out, &alive, &e) != 0) {
		check_failed(s, &e);
		return;
	}
	s->alive = alive;
	if (!alive) {
		if (s->master)
			log_warn("sandbox '%s' of account '%s': its master went away; reopening", s->host, s->account);
		check_open(s);
		return;
	}
	if (!s->master)
		log_info("sandbox '%s' of account '%s': adopted the running master", s->host, s->account);
	check_probe(s);
}

/* s->when fired: begin a check unless one is still running. */
static void check_start(struct loop *l, void *ctx)
{
	struct sv_sandbox *s = ctx;
	struct sb_error e = SB_ERROR_INIT;
	struct ssh_target t;
	int r;

	(void)l;
	if (s->check.running)
		return;
	target_of(s->sv, s, s->cpath.data, &t);
	s->t0 = clock_now_ms();
	s->alive = 0;
	op_prep(&s->check);
	r = ssh_master_check_start(&t, &s->check.c, &e);
	if (r == 1) {
		check_open(s);   /* no socket */
		return;
	}
	if (!r)
		r = op_watch(&s->check, SSH_CONTROL_TIMEOUT_MS, check_checked, &e);
	if (r)
		check_failed(s, &e);
}

/* ---- sweeping ---- */

/* Sockets in <state>/<sub> that nobody listens on (and whose process, for
 * private agents named <pid>.sock, is gone). */
static void sweep_sockets(struct sv *sv, const char *sub, int by_pid)
{
	struct buf dir = BUF_INIT, p = BUF_INIT;
	struct dirent *d;
	struct stat st;
	DIR *dh;

	if (buf_printf(&dir, "%s/%s", sv->cfg->state_dir, sub) || !(dh = opendir(dir.data))) {
		buf_release(&dir);
		return;
	}
	while ((d = readdir(dh))) {
		buf_reset(&p);
		if (d->d_name[0] == '.' || buf_printf(&p, "%s/%s", dir.data, d->d_name))
			continue;
		if (lstat(p.data, &st) != 0)
			continue;
		if (S_ISLNK(st.st_mode)) {
			/* an account's agent link whose agent is gone */
			if (stat(p.data, &st) != 0 && errno == ENOENT && unlink(p.data) == 0)
				log_info("removed the dangling link '%s'", p.data);
			continue;
		}
		if (!S_ISSOCK(st.st_mode))
			continue;
		if (by_pid) {
			long pid = strtol(d->d_name, NULL, 10);

			if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
				continue;
		} else if (fs_sock_probe(p.data) != FS_SOCK_REFUSED) {
			continue;
		}
		if (unlink(p.data) == 0)
			log_info("removed the dead socket '%s'", p.data);
	}
	closedir(dh);
	buf_release(&dir);
	buf_release(&p);
}

static void sweep_listed(struct sv_sandbox *s, struct sv_op *op);

static SB_MUST_CHECK int sweep_jobs_dir(const struct sv_sandbox *s, struct buf *jobs)
{
	buf_reset(jobs);
	return buf_printf(jobs, "%s/jobs", s->workdir);
}

/* Job dirs older than sweep_min_age_s whose job holds no reservation in
 * any account that shares this sandbox's workdir: the listing runs as a
 * child on the loop (sweep_listed takes it from there). */
static void sweep_sandbox(struct sv *sv, struct sv_sandbox *s)
{
	struct sb_error e = SB_ERROR_INIT;
	struct ssh_target t;
	struct buf cmd = BUF_INIT, jobs = BUF_INIT;

	if (s->sweep.running)
		return;   /* the last one is still at it */
	target_of(sv, s, s->cpath.data, &t);
	if (sweep_jobs_dir(s, &jobs))
		goto out;
	buf_adds(&cmd, "cd -- ");
	remote_quote(&cmd, jobs.data);   /* builders: checked below */
	buf_addf(&cmd, " 2>/dev/null || exit 0; find . -mindepth 1 -maxdepth 1 -type d -mmin +%d -printf '%%f\\n'",
		 (sv->cfg->sweep_min_age_s + 59) / 60);
	if (buf_check(&cmd) != 0) {
		log_warn("sweep of sandbox '%s': out of memory", s->host);
		goto out;
	}
	op_prep(&s->sweep);
	s->sweep_rm = 0;
	if (ssh_exec_start(&t, cmd.data, 1, &s->sweep.c, &e) != 0 ||
	    op_watch(&s->sweep, PROBE_TIMEOUT_MS, sweep_listed, &e) != 0)
		log_warn("sweep of sandbox '%s': %s", s->host, e.msg);
out:
	buf_release(&cmd);
	buf_release(&jobs);
}

static void sweep_listed(struct sv_sandbox *s, struct sv_op *op)
{
	struct sv *sv = s->sv;
	struct sb_error e = SB_ERROR_INIT;
	struct ssh_target t;
	struct buf rm = BUF_INIT, jobs = BUF_INIT;
	char *line, *save = NULL;
	int code = -1, nrm = 0, redis_down = 0;
	size_t i;

	target_of(sv, s, s->cpath.data, &t);
	if (sweep_jobs_dir(s, &jobs))
		goto out;
	if (s->sweep_rm) {
		if (ssh_exec_finish(&t, &op->c, op->timed_out, op->timeout_ms, &code, &e) != 0 || code != 0)
			log_warn("sweep of sandbox '%s': removing leftovers failed (%s)", s->host, e.msg[0] ? e.msg : "rm failed");
		goto out;
	}
	if (ssh_exec_finish(&t, &op->c, op->timed_out, op->timeout_ms, &code, &e) != 0 || code != 0) {
		if (code > 0)
			log_warn("sweep of sandbox '%s': listing %s failed with status %d", s->host, jobs.data, code);
		goto out;
	}
	if (!sv->kv)
		goto out;   /* Redis went away meanwhile: cannot tell what is held */
	buf_adds(&rm, "cd -- ");
	remote_quote(&rm, jobs.data);   /* builders: checked below */
	buf_adds(&rm, " || exit 1; rm -rf --");
	for (line = strtok_r(op->out.data ? op->out.data : (char *)"", "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *id = line[0] == '.' ? line + 1 : line;
		int held = 0;

		if (validate_job_id(id, NULL) != 0)
			continue;   /* not ours */
		for (i = 0; i < sv->nsbx && !held; i++) {
			char key[REGISTRY_KEY_MAX];
			long long exists = 0;
			const struct sv_sandbox *o = sv->sbx[i];

			if (strcmp(o->host, s->host) != 0 || o->port != s->port || strcmp(o->workdir, s->workdir) != 0)
				continue;
			if (lock_key_job(key, sizeof(key), o->account, id, NULL) != 0)
				held = 1;   /* cannot tell: keep it */
			else if (kv_cmd_integer(sv->kv, &exists, NULL, "EXISTS", key, NULL) != 0)
				held = redis_down = 1;   /* and ask no more: each would wait its timeout */
			else
				held = exists != 0;
		}
		if (redis_down)
			break;
		if (held)
			continue;
		buf_addc(&rm, ' ');
		remote_quote(&rm, line);
		log_info("sweep of sandbox '%s': removing %s/%s (no job holds it)", s->host, jobs.data, line);
		nrm++;
	}
	if (redis_down) {
		log_warn("sweep of sandbox '%s': Redis did not answer; nothing removed", s->host);
	} else if (nrm && buf_check(&rm) != 0) {
		log_warn("sweep of sandbox '%s': out of memory", s->host);
	} else if (nrm) {
		op_prep(op);
		s->sweep_rm = 1;
		if (ssh_exec_start(&t, rm.data, 0, &op->c, &e) != 0 ||
		    op_watch(op, PROBE_TIMEOUT_MS, sweep_listed, &e) != 0)
			log_warn("sweep of sandbox '%s': removing leftovers failed (%s)", s->host, e.msg);
	}
out:
	buf_release(&rm);
	buf_release(&jobs);
}

static void sweep(struct sv *sv)
{
	struct sb_error e = SB_ERROR_INIT;
	long long len;
	size_t i;

	sweep_sockets(sv, "agent/run", 1);
	sweep_sockets(sv, "cm", 0);
	for (i = 0; i < sv->nacc; i++)
		if (pool_queue_len(sv->kv, sv->acc[i].name, &len, &e) != 0)   /* drops stale waiters */
			log_warn("%s", e.msg);
	for (i = 0; i < sv->nsbx; i++)
		if (sv->sbx[i]->master)
			sweep_sandbox(sv, sv->sbx[i]);
}

/* ---- the loop ---- */

static SB_MUST_CHECK int reconcile(struct sv *sv, int force, struct sb_error *e)
{
	struct buf ver = BUF_INIT;
	long long v = 0;
	int r, found = 0;

	r = kv_cmd_string(sv->kv, &ver, &found, e, "GET", REGISTRY_KEY_VERSION, NULL);
	if (found)
		v = strtoll(ver.data, NULL, 10);
	buf_release(&ver);
	if (r)
		return r;
	if (v == sv->version && !force)
		return 0;
	if ((r = sshstate_sync(sv->kv, sv->cfg, force, e)) != 0 || (r = reconcile_accounts(sv, e)) != 0 ||
	    (r = reconcile_sandboxes(sv, e)) != 0)
		return r;
	if (v != sv->version)
		log_info("registry version %lld: %zu account%s, %zu active sandbox%s", v, sv->nacc,
			 sv->nacc == 1 ? "" : "s", sv->nsbx, sv->nsbx == 1 ? "" : "es");
	sv->version = v;
	return 0;
}

static void shutdown_all(struct sv *sv)
{
	int64_t deadline = clock_now_ms() + STOP_WAIT_MS;
	size_t i;

	sv->stopping = 1;
	/* -O stop children still out: bounded by their deadline, finished here */
	while (sv->stops) {
		struct sv_stop *st = sv->stops;

		loop_unwatch_child(sv->loop, &st->c);
		if (child_wait(&st->c, st->deadline.at, 100) == SB_ERR_TIMEOUT)
			st->timed_out = 1;
		ssh_master_stop_finish(&st->t, &st->c, st->timed_out);
		stop_free(st);
	}

	for (i = sv->nsbx; i-- > 0;)
		sandbox_drop(sv, i, "supervisor stopping");
	for (i = sv->nacc; i-- > 0;)
		account_drop(sv, i);
	/* an idle master exits at -O stop at once; give them a moment to go */
	while (clock_now_ms() < deadline) {
		struct buf dir = BUF_INIT;
		DIR *dh;
		struct dirent *d;
		int left = 0;

		if (buf_printf(&dir, "%s/cm", sv->cfg->state_dir) == 0 && (dh = opendir(dir.data))) {
			while ((d = readdir(dh)))
				left += d->d_name[0] != '.' && !strstr(d->d_name, ".lock") && !strstr(d->d_name, ".log");
			closedir(dh);
		}
		buf_release(&dir);
		if (!left)
			break;
		clock_sleep_ms(50);
	}
	loop_timer_disarm(sv->loop, &sv->tick);
	free(sv->acc);
	free(sv->sbx);
	sv->acc = NULL;
	sv->sbx = NULL;
}

/* Every POLL_MS: Redis (re)connected, the registry version polled and
 * reconciled when it changed, old agents retired, sweeps started.  Health
 * checks run on their own timers and never wait for this. */
static void tick(struct loop *l, void *ctx)
{
	struct sv *sv = ctx;
	int64_t now = clock_now_ms();
	int force = sv->force;
	size_t i;

	sv->force = 0;
	loop_timer_arm(l, &sv->tick, now + POLL_MS, tick, sv);
	if (!sv->kv) {
		struct sb_error ke = SB_ERROR_INIT;

		if (kv_open(&sv->kv, sv->cfg->redis_url, sv->cfg->redis_timeout_ms, &ke) != 0) {
			if (!sv->redis_down)
				log_error("%s (retrying)", ke.msg);
			sv->redis_down = 1;
			return;
		}
		if (sv->redis_down)
			log_info("Redis at %s is back", kv_where(sv->kv));
		sv->redis_down = 0;
		force = 1;
	}
	{
		struct sb_error re = SB_ERROR_INIT;

		if (reconcile(sv, force, &re) != 0) {
			log_error("%s", re.msg);
			if (re.code == SB_ERR_REDIS) {
				kv_free(sv->kv);
				sv->kv = NULL;
				sv->redis_down = 1;
			}
			return;
		}
	}
	now = clock_now_ms();
	for (i = 0; i < sv->nacc; i++)
		if (sv->acc[i].old.version && now >= sv->acc[i].old.retire_at) {
			log_info("account '%s': the agent of key version %lld stopped", sv->acc[i].name,
				 sv->acc[i].old.version);
			sv_agent_stop(&sv->acc[i].old);
		}
	if (sv->next_sweep == 0)
		sv->next_sweep = now + (int64_t)sv->cfg->sweep_interval_s * 1000;
	if (now >= sv->next_sweep) {
		sweep(sv);
		sv->next_sweep = clock_now_ms() + (int64_t)sv->cfg->sweep_interval_s * 1000;
	}
}

/* SIGTERM/SIGINT stop the loop; SIGHUP re-reads the configuration (a bad
 * one is refused and the running one stays). */
static void on_signal(struct loop *l, int fd, short revents, void *ctx)
{
	struct sv *sv = ctx;
	struct signalfd_siginfo si;

	(void)revents;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		struct sb_error ce = SB_ERROR_INIT;

		if (si.ssi_signo != SIGHUP) {
			loop_stop(l);
			continue;
		}
		if (sv->reload_config(sv->cfg, &ce) != 0) {
			log_error("configuration not reloaded: %s", ce.msg);
			continue;
		}
		log_info("configuration reloaded");
		kv_free(sv->kv);
		sv->kv = NULL;
		sv->force = 1;
		loop_timer_arm(l, &sv->tick, clock_now_ms(), tick, sv);
	}
}

int supervise_run(struct config *cfg, int (*reload_config)(struct config *cfg, struct sb_error *e),
		  struct sb_error *e)
{
	struct sv sv;
	struct buf lockp = BUF_INIT;
	sigset_t sigs, oldmask;
	int lockfd = -1, sigfd = -1, r = 0, masked = 0;

	memset(&sv, 0, sizeof(sv));
	sv.cfg = cfg;
	sv.version = -1;
	sv.reload_config = reload_config;
	sv.tick = (struct loop_timer)LOOP_TIMER_INIT;
	srand((unsigned)(getpid() ^ clock_now_ms()));
	if ((r = paths_prepare_state(cfg->state_dir, e)) != 0)
		return r;
	if (paths_lock(cfg->state_dir, "supervise", &lockp) != 0 || buf_puts(&lockp, ".lock") != 0) {
		buf_release(&lockp);
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	}
	if ((lockfd = fs_lock(lockp.data, 1000, e)) < 0) {
		r = sb_error_set(e, SB_ERR_EXISTS, "another sshbox supervise holds '%s'", lockp.data);
		buf_release(&lockp);
		return r;
	}
	buf_release(&lockp);
	/* the signals arrive as an fd on the loop; children get a clean mask */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	masked = sigprocmask(SIG_BLOCK, &sigs, &oldmask) == 0;
	if (!masked || (sigfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
		r = sb_error_set(e, SB_ERR_IO, "cannot watch signals: %s", strerror(errno));
		goto out;
	}
	if ((r = loop_new(&sv.loop, e)) != 0)
		goto out;
	if (loop_watch(sv.loop, sigfd, POLLIN, on_signal, &sv) != 0) {
		r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
		goto out;
	}
	{
		struct buf d = BUF_INIT;

		/* jobs make it too when they need a private agent */
		if (buf_printf(&d, "%s/agent/run", cfg->state_dir) == 0)
			sb_best_effort(fs_mkdir_p(d.data, 0700, NULL));
		buf_release(&d);
	}
	/* a predecessor's dead sockets first; its live masters are adopted below */
	sweep_sockets(&sv, "agent", 0);
	sweep_sockets(&sv, "agent/run", 1);
	sweep_sockets(&sv, "cm", 0);
	log_info("supervisor started (state dir %s, pid %ld)", cfg->state_dir, (long)getpid());
	loop_timer_arm(sv.loop, &sv.tick, clock_now_ms(), tick, &sv);
	if (loop_run(sv.loop) != 0)
		log_error("the event loop failed: %s", strerror(errno));
	log_info("supervisor stopping");
	shutdown_all(&sv);
	kv_free(sv.kv);
	log_info("supervisor stopped");
	r = 0;
out:
	loop_free(sv.loop);
	if (sigfd >= 0)
		close(sigfd);
	if (masked)
		(void)sigprocmask(SIG_SETMASK, &oldmask, NULL);
	fs_unlock(lockfd);
	return r;
}
