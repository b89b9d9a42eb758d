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

#include "agent.h"
#include "child.h"
#include "clock.h"
#include "digest.h"
#include "fernet.h"
#include "json.h"
#include "keys.h"
#include "kv.h"
#include "lock.h"
#include "log.h"
#include "ndjson.h"
#include "paths.h"
#include "registry.h"
#include "remote.h"
#include "pool.h"
#include "secret.h"
#include "ssh.h"
#include "transport.h"
#include "validate.h"

#define HEARTBEAT_MAX_MS 5000
#define REMOTE_HEARTBEAT_MAX_S 30   /* remote kills the job after this long without one */
#define MAX_CONNECT_TRIES 8         /* candidates tried when sandboxes are unreachable */
#define RESULT_GRACE_MS 10000       /* `result` seen, CLI must exit within this */
#define STOP_GRACE_MS 4000          /* remote cleanup after cancel, then SIGTERM ssh */
#define KILL_GRACE_MS 1500
#define STDERR_LINE_MAX (64 * 1024)
#define QUEUE_POLL_MIN_MS 50          /* jittered polling while queued */
#define QUEUE_POLL_MAX_MS 250

enum stop_reason {
	STOP_NONE, STOP_SIGINT, STOP_SIGTERM, STOP_TIMEOUT, STOP_IDLE, STOP_LEASE, STOP_RESULT_GRACE,
	STOP_CONSUMER,   /* nobody reads our stdout any more */
	STOP_INTERNAL,
	STOP_NOBEGIN,    /* the session never started the remote script */
};

struct job {
	const struct config *cfg;
	struct jobspec *spec;
	struct events *ev;
	int sigfd;
	struct kv *kv;
	struct sandbox_rec sbx;
	struct account_rec acct;
	struct lock lock;
	struct agent agent;
	struct buf alias, cpath, agent_sock, ssh_log;
	struct ssh_target target;
	struct child ssh;
	struct buf in;            /* secret: script, prompt, env values, token */
	size_t in_off;
	struct ndjson *out_framer, *err_framer;
	char nonce[33];
	int begun, ended, started;
	int end_rc;
	char end_why[32];
	/* from Claude's result line */
	int have_result, result_is_error;
	struct buf session_id, cost, turns;   /* raw JSON spans */
	enum stop_reason stop;
	int64_t t0, session_t0, last_output, next_heartbeat, next_renew, stop_at, term_at, kill_at;
	int64_t result_deadline;
	int signal_seen;
	int lease_lost;
	char lease_why[SB_ERROR_MSG_MAX];
	struct buf scratch;
	int64_t heartbeat_ms;       /* how often we send one */
	int remote_heartbeat_s;     /* the sandbox stops the job without one */
	int64_t pipes_grace_at;     /* ssh gone, a grandchild still holds its pipes */
	struct buf repo_key;        /* the job's repository cache name, "" without a repo */
	char **excluded;            /* sandboxes that failed to connect this run */
	size_t n_excluded;
};

/* ---- final event ---- */

static int emit_result(struct job *j, const char *status, int exit_code, const char *error)
{
	struct events_result res;

	memset(&res, 0, sizeof(res));
	res.status = status;
	res.exit_code = exit_code;
	res.sandbox = j->sbx.host;
	res.session_id = j->session_id.data;
	res.session_id_len = j->session_id.len;
	res.cost = j->cost.data;
	res.cost_len = j->cost.len;
	res.turns = j->turns.data;
	res.turns_len = j->turns.len;
	res.duration_ms = clock_now_ms() - j->t0;
	res.error = error;
	if (error)
		log_error("%s", error);   /* the same sentence for the operator's log */
	events_result(j->ev, &res);
	return exit_code;
}

/* ---- sandbox choice and slot ---- */

static int by_load(const void *a, const void *b)
{
	const int *x = a, *y = b;

	return x[0] != y[0] ? x[0] - y[0] : x[1] - y[1];
}

static int check_signal(struct job *j)
{
	struct signalfd_siginfo si;

	while (read(j->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGINT && j->stop == STOP_NONE)
			j->stop = STOP_SIGINT;
		else if (si.ssi_signo == SIGTERM && j->stop == STOP_NONE)
			j->stop = STOP_SIGTERM;
	}
	return j->stop == STOP_SIGINT || j->stop == STOP_SIGTERM;
}

static int cancelled_exit(struct job *j)
{
	return emit_result(j, "cancelled", j->stop == STOP_SIGINT ? SB_EXIT_SIGINT : SB_EXIT_SIGTERM,
			   j->stop == STOP_SIGINT ? "cancelled by SIGINT" : "cancelled by SIGTERM");
}

/* Try the healthy candidates, least loaded first, when our place in the
 * queue (rank, -1 = not queued) is within the free slots; 0 when a slot was
 * taken.  *all_unhealthy tells why nothing could be tried. */
static int try_acquire(struct job *j, struct sandbox_rec *cands, size_t n, long long rank,
		       int *all_unhealthy, struct sb_error *e)
{
	int (*order)[3] = calloc(n ? n : 1, sizeof(*order));
	size_t i, ok = 0;
	long long free_slots = 0;
	int r = SB_ERR_UNAVAILABLE;

	*all_unhealthy = 0;
	if (!order)
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	/* every candidate's health, holders (and repository cache) in one
	 * round trip, not three per sandbox */
	for (i = 0; i < n; i++) {
		int rr;

		if ((rr = pool_health_send(j->kv, cands[i].account, cands[i].host, e)) != 0 ||
		    (rr = lock_list_holders_send(j->kv, cands[i].account, cands[i].host, cands[i].slots, e)) != 0 ||
		    (j->repo_key.len &&
		     (rr = pool_has_repo_send(j->kv, cands[i].account, cands[i].host, j->repo_key.data, e)) != 0)) {
			free(order);
			return rr;
		}
	}
	for (i = 0; i < n; i++) {
		struct lock_holder h[VALIDATE_SLOTS_MAX];
		struct pool_health health;
		int used = 0, rr, has_repo = 0;

		if ((rr = pool_health_recv(j->kv, &health, e)) != 0 ||
		    (rr = lock_list_holders_recv(j->kv, cands[i].account, cands[i].host, cands[i].slots, h, &used, e)) != 0 ||
		    (j->repo_key.len && (rr = pool_has_repo_recv(j->kv, &has_repo, e)) != 0)) {
			free(order);
			return rr;
		}
		if (health.unhealthy)
			continue;
		free_slots += cands[i].slots - used;
		if (used >= cands[i].slots)
			has_repo = 0;   /* a full sandbox goes last whatever it caches */
		/* a warm repository cache first, then the fraction used (scaled),
		 * then a random tie-break; and the index */
		order[ok][0] = (has_repo ? 0 : 1000000) + used * 1000 / cands[i].slots;
		order[ok][1] = (int)(random() & 0xffff);
		order[ok][2] = (int)i;
		ok++;
	}
	*all_unhealthy = n > 0 && ok == 0;
	if (rank >= free_slots) {
		free(order);
		return SB_ERR_UNAVAILABLE;   /* earlier arrivals go first */
	}
	qsort(order, ok, sizeof(*order), by_load);
	for (i = 0; i < ok; i++) {
		struct sandbox_rec *s = &cands[order[i][2]];

		r = lock_acquire(j->kv, s->account, s->host, s->slots, j->spec->job_id, j->cfg->lock_ttl_ms,
				 &j->lock, e);
		if (r == 0) {
			j->sbx = *s;
			*s = (struct sandbox_rec)SANDBOX_REC_INIT;   /* moved */
			break;
		}
		if (r != SB_ERR_UNAVAILABLE)
			break;
	}
	free(order);
	return r;
}

static int is_excluded(const struct job *j, const char *host)
{
	size_t i;

	for (i = 0; i < j->n_excluded; i++)
		if (strcmp(j->excluded[i], host) == 0)
			return 1;
	return 0;
}

static int acquire_slot(struct job *j, struct sb_error *e)
{
	struct sandbox_rec *all = NULL, *cands;
	size_t n = 0, nc = 0, i;
	int64_t wait_deadline = clock_deadline_in((int64_t)j->spec->wait_s * 1000);
	struct pool_ticket ticket = POOL_TICKET_INIT;
	long long qlen = 0, position = 0;
	int r, registered = 0, reserved = 0;

	if ((r = registry_sandbox_list(j->kv, j->spec->account, &all, &n, e)) != 0)
		return r;
	cands = calloc(n ? n : 1, sizeof(*cands));
	if (!cands) {
		sandbox_rec_free_array(all, n);
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	}
	/* a job_id runs once per account: one look at its reservation (and
	 * only when it is taken a look per sandbox to say where); the queue's
	 * length comes in the same round trip */
	if ((r = lock_job_reserved_send(j->kv, j->spec->account, j->spec->job_id, e)) != 0 ||
	    (r = pool_queue_len_send(j->kv, j->spec->account, e)) != 0 ||
	    (r = lock_job_reserved_recv(j->kv, &reserved, e)) != 0 || (r = pool_queue_len_recv(j->kv, &qlen, e)) != 0)
		goto out;
	for (i = 0; reserved && i < n; i++) {
		int running = 0;

		if ((r = lock_job_running(j->kv, all[i].account, all[i].host, all[i].slots, j->spec->job_id,
					  &running, e)) != 0)
			goto out;
		if (running) {
			r = sb_error_set(e, SB_ERR_EXISTS, "job_id '%s' is already running on sandbox '%s'",
					 j->spec->job_id, all[i].host);
			goto out;
		}
	}
	if (reserved) {
		r = sb_error_set(e, SB_ERR_EXISTS, "job_id '%s' is already running (account '%s')", j->spec->job_id,
				 j->spec->account);
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (j->spec->sandbox && strcmp(j->spec->sandbox, all[i].host) != 0)
			continue;
		registered++;
		if (strcmp(all[i].state, REGISTRY_STATE_ACTIVE) != 0 || is_excluded(j, all[i].host))
			continue;
		cands[nc++] = all[i];
		all[i] = (struct sandbox_rec)SANDBOX_REC_INIT;
	}
	if (!registered) {
		r = j->spec->sandbox ?
			sb_error_set(e, SB_ERR_UNAVAILABLE, "sandbox '%s' is not registered for account '%s'",
				     j->spec->sandbox, j->spec->account) :
			sb_error_set(e, SB_ERR_UNAVAILABLE, "no sandbox registered for account '%s'", j->spec->account);
		goto out;
	}
	if (!nc && j->n_excluded) {
		r = j->spec->sandbox ?
			sb_error_set(e, SB_ERR_TRANSPORT, "sandbox '%s' is unreachable: %s", j->spec->sandbox, j->lease_why) :
			sb_error_set(e, SB_ERR_TRANSPORT, "every active sandbox of account '%s' is unreachable (last: %s)",
				     j->spec->account, j->lease_why);
		goto out;
	}
	if (!nc) {
		r = sb_error_set(e, SB_ERR_UNAVAILABLE, "no active sandbox for account '%s' (all disabled or draining)",
				 j->spec->account);
		goto out;
	}
	/* Newcomers queue behind earlier arrivals (on any host): only the
	 * first waiters, as many as there are free slots, try to take one. */
	for (;;) {
		long long rank = -1;
		int all_unhealthy = 0;

		if (qlen > 0 || ticket.queued) {
			if (!ticket.queued && (r = pool_enqueue(j->kv, j->spec->account, j->spec->job_id, &ticket, e)) != 0)
				goto out;
			if ((r = pool_poll(j->kv, j->spec->account, &ticket, &rank, e)) != 0)
				goto out;
			if (rank < 0)
				continue;   /* our entry lapsed: queue again, at the end */
		}
		r = try_acquire(j, cands, nc, rank, &all_unhealthy, e);
		if (r != SB_ERR_UNAVAILABLE)
			break;
		if (!ticket.queued) {
			qlen = 1;
			continue;
		}
		if (rank + 1 != position) {
			struct buf *ev = &j->scratch;
			position = rank + 1;
			events_begin(j->ev, ev, "sshbox.queued");
			events_int(ev, "position", position);
			events_int(ev, "wait_s", j->spec->wait_s);
			events_end(j->ev, ev);
			events_flush(j->ev, 0);
		}
		if (clock_expired(wait_deadline)) {
			if (all_unhealthy && j->spec->sandbox)
				r = sb_error_set(e, SB_ERR_TRANSPORT,
						 "sandbox '%s' is marked unhealthy (see sshbox status)", j->spec->sandbox);
			else if (all_unhealthy)
				r = sb_error_set(e, SB_ERR_TRANSPORT,
						 "every active sandbox of account '%s' is marked unhealthy (see sshbox status)",
						 j->spec->account);
			else
				r = sb_error_set(e, SB_ERR_UNAVAILABLE,
						 "no free slot on the %zu active sandbox%s of account '%s' within %d s",
						 nc, nc == 1 ? "" : "es", j->spec->account, j->spec->wait_s);
			break;
		}
		{
			struct pollfd p = { j->sigfd, POLLIN, 0 };
			int64_t left = clock_remaining_ms(wait_deadline);
			int64_t delay = QUEUE_POLL_MIN_MS + (random() % (QUEUE_POLL_MAX_MS - QUEUE_POLL_MIN_MS));
			(void)poll(&p, 1, (int)(delay < left ? delay : left));
		}
		if (check_signal(j)) {
			r = SB_ERR_CANCELLED;
			break;
		}
	}
out:
	if (ticket.queued) {
		struct sb_error ignored = SB_ERROR_INIT;
		(void)pool_leave(j->kv, j->spec->account, &ticket, &ignored);
	}
	sandbox_rec_free_array(cands, nc);
	sandbox_rec_free_array(all, n);
	return r;
}

/* ---- transport ---- */

/* The account's key in an agent: the supervisor's when it holds the key,
 * else a private one for this run.  Always prepared, even with a warm
 * master: a session whose master went away falls back to a direct
 * connection, which needs the key. */
static int setup_agent(struct job *j, struct sb_error *e)
{
	int r = agent_prepare(j->cfg, j->spec->account, j->acct.key_version, j->acct.public_key, j->acct.key_token,
			      j->spec->timeout_s + 300, &j->agent, &j->agent_sock, e);

	if (!r && j->agent.sock)
		j->target.agent_sock = j->agent_sock.data;
	return r;
}

static int setup_transport(struct job *j, struct sb_error *e)
{
	int r;

	if (!j->acct.account && (r = registry_account_get(j->kv, j->spec->account, &j->acct, e)) != 0) {
		if (r == SB_ERR_NOTFOUND)
			r = sb_error_set(e, SB_ERR_UNAVAILABLE,
					 "account '%s' has no SSH key: run 'sshbox key set --account %s'",
					 j->spec->account, j->spec->account);
		return r;
	}
	if ((r = transport_sync(j->kv, j->cfg, 0, e)) != 0)
		return r;
	paths_alias(j->sbx.account, j->sbx.host, &j->alias);
	if ((r = paths_control(j->cfg->state_dir, j->sbx.account, j->acct.key_version, j->sbx.host,
			       j->sbx.port, j->sbx.user, j->sbx.host_key, &j->cpath, e)) != 0)
		return r;
	j->target.cfg = j->cfg;
	j->target.alias = j->alias.data;
	j->target.host = j->sbx.host;
	j->target.control_path = j->cpath.data;
	j->target.agent_sock = NULL;
	if (!j->agent.sock && (r = setup_agent(j, e)) != 0)
		return r;
	if (j->agent.sock)
		j->target.agent_sock = j->agent_sock.data;
	if (check_signal(j))
		return SB_ERR_CANCELLED;
	/* the supervisor checked this master a moment ago: no -O check of our
	 * own (a master wedged since then is caught by the begin deadline) */
	if (ssh_master_vouched(&j->target, (int64_t)j->cfg->health_interval_s * 2000 + 2000))
		return 0;
	r = ssh_master_ensure(&j->target, e);
	if (!r && check_signal(j))
		return SB_ERR_CANCELLED;
	return r;
}

/* ---- the session ---- */

static int build_input(struct job *j)
{
	char origin[VALIDATE_URL_MAX + 1] = "", slot_key[VALIDATE_ACCOUNT_MAX + VALIDATE_HOST_MAX + 16];
	struct buf repo_key = BUF_INIT;
	struct remote_params p;
	const char *const *names = (const char *const *)strvec_argv(&j->spec->env_names);
	const char *const *vals = (const char *const *)strvec_argv(&j->spec->env_values);
	size_t i;
	int r;

	memset(&p, 0, sizeof(p));
	p.nonce = j->nonce;
	p.job_id = j->spec->job_id;
	p.workdir = j->sbx.workdir;
	p.slot = j->lock.slot;
	p.fence = j->lock.fence;
	p.claude = j->sbx.claude;
	p.timeout_s = j->spec->timeout_s + 30;
	p.heartbeat_s = j->remote_heartbeat_s;
	p.env_names = names;
	p.claude_args = (const char *const *)strvec_argv(&j->spec->claude_args);
	p.repo_url = j->spec->has_repo ? j->spec->repo_url : NULL;
	p.repo_ref = j->spec->has_repo ? j->spec->repo_ref : NULL;
	p.have_token = j->spec->repo_token != NULL;
	if (p.repo_url) {
		const char *h = strstr(p.repo_url, "://");
		size_t n = h ? (size_t)(h + 3 - p.repo_url) + strcspn(h + 3, "/?#") : 0;
		snprintf(origin, sizeof(origin), "%.*s", (int)n, p.repo_url);
		p.repo_origin = origin;
	}
	if (p.repo_url) {
		size_t k, n = p.repo_ref ? strlen(p.repo_ref) : 0;
		if ((r = paths_repo_key(j->sbx.account, p.repo_url, &repo_key)) != 0)
			goto out;
		p.repo_key = repo_key.data;
		p.repo_ref_is_sha = n == 40;
		for (k = 0; k < n; k++)
			if (!isxdigit((unsigned char)p.repo_ref[k]))
				p.repo_ref_is_sha = 0;
		p.repo_lfs = j->spec->repo_lfs;
		p.repo_submodules = j->spec->repo_submodules;
	}
	snprintf(slot_key, sizeof(slot_key), "%s@%s.%d", j->sbx.account, j->sbx.host, j->lock.slot);
	p.slot_key = slot_key;
	if ((r = remote_script(&j->in, &p)) != 0 ||
	    (r = remote_put_blob(&j->in, j->spec->prompt, j->spec->prompt_len)) != 0)
		goto out;
	for (i = 0; i < j->spec->env_values.n; i++)
		if ((r = remote_put_blob(&j->in, vals[i], strlen(vals[i]))) != 0)
			goto out;
	if (p.have_token)
		r = remote_put_blob(&j->in, j->spec->repo_token, strlen(j->spec->repo_token));
out:
	buf_release(&repo_key);
	return r;
}

static int start_session(struct job *j, struct sb_error *e)
{
	struct strvec argv = STRVEC_INIT;
	unsigned char rnd[16];
	char name[160];
	int r, i;

	if (random_bytes(rnd, sizeof(rnd)) != 0)
		return sb_error_set(e, SB_ERR_INTERNAL, "no randomness for the job nonce");
	for (i = 0; i < 16; i++)
		snprintf(j->nonce + 2 * i, 3, "%02x", rnd[i]);
	snprintf(name, sizeof(name), "job-%s-%ld.log", j->spec->job_id, (long)getpid());
	paths_log(j->cfg->state_dir, name, &j->ssh_log);
	if ((r = build_input(j)) != 0)
		return sb_error_set(e, r, "cannot build the remote script");
	if (ssh_argv_start(&argv, &j->target) || strvec_push(&argv, "-oControlMaster=no") ||
	    strvec_push(&argv, "-E") || strvec_push(&argv, j->ssh_log.data) ||
	    ssh_argv_finish(&argv, &j->target, remote_bootstrap())) {
		strvec_clear(&argv);
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	}
	j->ssh.argv = (const char *const *)strvec_argv(&argv);
	j->ssh.in = CHILD_PIPE;
	j->ssh.out = CHILD_PIPE;
	j->ssh.err = CHILD_PIPE;
	j->ssh.new_session = 1;
	r = child_start(&j->ssh, e);
	strvec_clear(&argv);
	if (r)
		return r;
	fd_set_nonblock(j->ssh.in_fd);
	/* a deeper pipe from ssh: fewer wake-ups of the two processes per MB
	 * (best effort: pipe-max-size may refuse) */
	(void)fcntl(j->ssh.out_fd, F_SETPIPE_SZ, 1 << 20);
	fd_set_nonblock(j->ssh.out_fd);
	fd_set_nonblock(j->ssh.err_fd);
	j->session_t0 = j->last_output = clock_now_ms();
	j->next_heartbeat = j->session_t0 + j->heartbeat_ms;
	return 0;
}

/* ---- stream handling ---- */

static void copy_span(struct buf *dst, const char *p, size_t len)
{
	buf_reset(dst);
	(void)buf_append(dst, p, len);
}

static void note_result_line(struct job *j, const char *line, size_t len)
{
	struct json_doc doc = JSON_DOC_INIT;
	const char *p;
	size_t n;
	int t;

	if (json_parse_object(&doc, line, len, 1 << 20, NULL) != 0)
		return;
	t = json_object_get(&doc, 0, "type");
	if (t < 0 || !json_string_equals(&doc, t, "result"))
		goto out;
	j->have_result = 1;
	j->result_deadline = clock_now_ms() + RESULT_GRACE_MS;
	if ((t = json_object_get(&doc, 0, "session_id")) >= 0 && json_type(&doc, t) == JSON_STRING &&
	    json_raw(&doc, t, &p, &n) == 0)
		copy_span(&j->session_id, p, n);
	if ((t = json_object_get(&doc, 0, "total_cost_usd")) >= 0 && json_type(&doc, t) == JSON_NUMBER &&
	    json_raw(&doc, t, &p, &n) == 0)
		copy_span(&j->cost, p, n);
	if ((t = json_object_get(&doc, 0, "num_turns")) >= 0 && json_type(&doc, t) == JSON_NUMBER &&
	    json_raw(&doc, t, &p, &n) == 0)
		copy_span(&j->turns, p, n);
	j->result_is_error = 0;
	if ((t = json_object_get(&doc, 0, "is_error")) >= 0 && json_type(&doc, t) == JSON_TRUE)
		j->result_is_error = 1;
out:
	json_doc_release(&doc);
}

/* "sshbox-<what> <nonce> ..." — 1 if it was one of ours */
static int marker(struct job *j, const char *line, size_t len)
{
	const char *rest;
	size_t nl = strlen(j->nonce);
	char what[16];
	size_t wl;

	if (len < 8 || memcmp(line, "sshbox-", 7) != 0)
		return 0;
	{
		/* lines are not NUL-terminated: search within len only */
		const char *sp = memchr(line + 7, ' ', len - 7);
		wl = sp ? (size_t)(sp - (line + 7)) : len - 7;
	}
	if (wl >= sizeof(what) || 7 + wl + 1 + nl > len || line[7 + wl] != ' ' ||
	    memcmp(line + 8 + wl, j->nonce, nl) != 0)
		return 0;
	memcpy(what, line + 7, wl);
	what[wl] = '\0';
	rest = line + 8 + wl + nl;
	len -= 8 + wl + nl;
	if (len && *rest == ' ') {
		rest++;
		len--;
	}
	if (strcmp(what, "begin") == 0) {
		j->begun = 1;
	} else if (strcmp(what, "repo") == 0) {
		char action[16] = "";
		long long ms = 0;
		struct buf *e = &j->scratch;
		char tmp[64];
		snprintf(tmp, sizeof(tmp), "%.*s", (int)(len < 63 ? len : 63), rest);
		if (sscanf(tmp, "%15s %lld", action, &ms) == 2) {
			struct sb_error ignored = SB_ERROR_INIT;
			if (j->repo_key.len)
				(void)pool_note_repo(j->kv, j->sbx.account, j->sbx.host, j->repo_key.data, &ignored);
			events_begin(j->ev, e, "sshbox.repo");
			events_str(e, "action", action);
			events_int(e, "duration_ms", ms);
			events_end(j->ev, e);
		}
	} else if (strcmp(what, "started") == 0) {
		struct buf *e = &j->scratch;
		j->started = 1;
		events_begin(j->ev, e, "sshbox.started");
		events_strn(e, "workdir", rest, len);
		events_end(j->ev, e);
	} else if (strcmp(what, "end") == 0) {
		char tmp[64];
		int rc = -1;
		snprintf(tmp, sizeof(tmp), "%.*s", (int)(len < 63 ? len : 63), rest);
		if (sscanf(tmp, "%d %31s", &rc, j->end_why) >= 1) {
			j->ended = 1;
			j->end_rc = rc;
		}
	} else {
		return 0;
	}
	return 1;
}

/* One line of remote output wrapped as an sshbox event of this type. */
static void emit_line(struct job *j, const char *type, const char *line, size_t len)
{
	struct buf *e = &j->scratch;

	events_begin(j->ev, e, type);
	events_strn(e, "line", line, len);
	events_end(j->ev, e);
}

static void on_stdout_line(void *ctx, const char *line, size_t len)
{
	struct job *j = ctx;

	if (!j->begun) {
		if (!marker(j, line, len))
			log_debug("discarding %zu bytes of remote output before the start marker", len);
		return;
	}
	if (len == 0 || marker(j, line, len))
		return;
	/* one pass over the line; one whose "type" starts with "sshbox."
	 * would pass for one of our events (a second sshbox.result): wrapped */
	switch (json_classify_line(line, len)) {
	case JSON_LINE_RESULT:
		events_forward(j->ev, line, len);
		note_result_line(j, line, len);
		return;
	case JSON_LINE_OBJECT:
		events_forward(j->ev, line, len);
		return;
	case JSON_LINE_SSHBOX:
	case JSON_LINE_INVALID:
		break;
	}
	emit_line(j, "sshbox.stdout", line, len);
}

static void on_stdout_drop(void *ctx, size_t dropped)
{
	struct job *j = ctx;
	char msg[160];

	snprintf(msg, sizeof(msg), "sshbox: dropped a stdout line of %zu bytes (over max_line_bytes %d)",
		 dropped, j->cfg->max_line_bytes);
	emit_line(j, "sshbox.stderr", msg, strlen(msg));
}

static void on_stderr_line(void *ctx, const char *line, size_t len)
{
	emit_line(ctx, "sshbox.stderr", line, len);
}

static void on_stderr_drop(void *ctx, size_t dropped)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "sshbox: dropped a stderr line of %zu bytes", dropped);
	emit_line(ctx, "sshbox.stderr", msg, strlen(msg));
}

/* Read what is there now (bounded rounds); closes *fd at EOF. */
static void pump(struct job *j, int *fd, struct ndjson *fr, int is_stdout)
{
	/* a quarter of the 1 MiB pipe a call (148 MB stream: 389 ms with 64 KiB
	 * reads, 333-346 ms with these; raw ssh 294 ms); static: one job a
	 * process, and off the stack */
	static char tmp[1 << 18];
	int rounds;

	for (rounds = 0; rounds < 16 && *fd >= 0; rounds++) {
		ssize_t n = read(*fd, tmp, sizeof(tmp));

		if (n > 0) {
			j->last_output = clock_now_ms();
			if (!fr)
				continue;   /* no framer (out of memory): the job is being stopped */
			if (is_stdout)
				ndjson_feed(fr, tmp, (size_t)n, on_stdout_line, on_stdout_drop, j);
			else
				ndjson_feed(fr, tmp, (size_t)n, on_stderr_line, on_stderr_drop, j);
			if (events_pending(j->ev) > EVENTS_HIGH_WATER)
				return;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (fr && is_stdout)
			ndjson_finish(fr, on_stdout_line, on_stdout_drop, j);
		else if (fr)
			ndjson_finish(fr, on_stderr_line, on_stderr_drop, j);
		close(*fd);
		*fd = -1;
		return;
	}
}

static void write_input(struct job *j)
{
	while (j->ssh.in_fd >= 0 && j->in_off < j->in.len) {
		ssize_t n = write(j->ssh.in_fd, j->in.data + j->in_off, j->in.len - j->in_off);
		if (n > 0) {
			j->in_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		/* EPIPE: the session is gone; the exit status will tell */
		close(j->ssh.in_fd);
		j->ssh.in_fd = -1;
		break;
	}
	if (j->in_off >= j->in.len && j->in.len) {
		/* the secrets are out: wipe our copy at once */
		secret_wipe(j->in.data, j->in.cap);
		buf_reset(&j->in);
		j->in_off = 0;
	}
}

static void begin_stop(struct job *j, enum stop_reason why)
{
	int64_t now = clock_now_ms();

	if (j->stop_at)
		return;
	if (j->stop == STOP_NONE || why == STOP_LEASE)
		j->stop = why;
	j->stop_at = now;
	j->term_at = now + STOP_GRACE_MS;
	/* In-band cancel: the remote script kills the process group. Unsent
	 * secrets are dropped. */
	if (j->ssh.in_fd >= 0) {
		if (j->in.len) {
			secret_wipe(j->in.data, j->in.cap);
			buf_reset(&j->in);
			j->in_off = 0;
		}
		if (j->begun)
			(void)!write(j->ssh.in_fd, "cancel\n", 7);
		close(j->ssh.in_fd);
		j->ssh.in_fd = -1;
	}
}

/* The remote script's first line comes within moments of the session
 * opening; a session that shows nothing for the connect timeout plus a
 * margin rides a wedged master or a hung sshd. */
static int64_t begin_deadline(const struct job *j)
{
	return j->session_t0 + (int64_t)j->cfg->ssh_connect_timeout_s * 1000 + 10000;
}

static void renew_lease(struct job *j, int64_t now)
{
	struct sb_error e = SB_ERROR_INIT;
	int r;

	if (now < j->next_renew)
		return;
	r = lock_renew(j->kv, &j->lock, &e);
	now = clock_now_ms();   /* the call may have waited for Redis */
	if (r == 0) {
		j->next_renew = j->lock.renewed_ms + j->lock.ttl_ms / 3;
		return;
	}
	if (r == SB_ERR_NOTFOUND) {
		snprintf(j->lease_why, sizeof(j->lease_why), "%s", e.msg);
		j->lease_lost = 1;
		begin_stop(j, STOP_LEASE);
		return;
	}
	log_warn("cannot renew the lock on sandbox '%s' slot %d: %s", j->sbx.host, j->lock.slot, e.msg);
	j->next_renew = now + 1000;
	/* stop early enough to be done before Redis can hand the slot on */
	if (now >= j->lock.renewed_ms + 2 * j->lock.ttl_ms / 3) {
		snprintf(j->lease_why, sizeof(j->lease_why),
			 "lost the lock on sandbox '%s' slot %d: cannot renew it: %s", j->sbx.host, j->lock.slot, e.msg);
		j->lease_lost = 1;
		begin_stop(j, STOP_LEASE);
	}
}

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static void run_loop(struct job *j)
{
	int64_t timeout_at = j->session_t0 + (int64_t)j->spec->timeout_s * 1000;
	int64_t idle_ms = (int64_t)j->spec->idle_timeout_s * 1000;

	for (;;) {
		struct pollfd p[5];
		int np = 0, i, wait_ms, backpressure;
		int64_t now = clock_now_ms(), next;

		if (child_poll(&j->ssh) && j->ssh.out_fd < 0 && j->ssh.err_fd < 0)
			break;
		if (j->ssh.reaped && (j->ssh.out_fd >= 0 || j->ssh.err_fd >= 0) && !j->pipes_grace_at)
			j->pipes_grace_at = now + KILL_GRACE_MS;   /* a grandchild holds the pipes */
		if (j->ssh.reaped && j->pipes_grace_at && now >= j->pipes_grace_at) {
			if (j->ssh.out_fd >= 0) { close(j->ssh.out_fd); j->ssh.out_fd = -1; }
			if (j->ssh.err_fd >= 0) { close(j->ssh.err_fd); j->ssh.err_fd = -1; }
			break;
		}
		if (j->ev->broken && !j->stop_at)
			begin_stop(j, STOP_CONSUMER);
		/* timers */
		if (!j->lease_lost && !(j->ssh.reaped))
			renew_lease(j, now);
		/* while the reader of our events holds us back we do not read the
		 * sandbox: its silence then says nothing about Claude Code */
		if (events_pending(j->ev) > EVENTS_HIGH_WATER)
			j->last_output = now;
		if (!j->stop_at) {
			if (!j->begun && now >= begin_deadline(j))
				begin_stop(j, STOP_NOBEGIN);
			else if (now >= timeout_at)
				begin_stop(j, STOP_TIMEOUT);
			else if (now - j->last_output >= idle_ms)
				begin_stop(j, STOP_IDLE);
			else if (j->have_result && now >= j->result_deadline)
				begin_stop(j, STOP_RESULT_GRACE);
			else if (now >= j->lock.deadline_ms) {
				snprintf(j->lease_why, sizeof(j->lease_why),
					 "lost the lock on sandbox '%s' slot %d: its lease ran out before a renewal was confirmed",
					 j->sbx.host, j->lock.slot);
				j->lease_lost = 1;
				begin_stop(j, STOP_LEASE);
			}
		}
		if (j->stop_at && !j->ssh.reaped) {
			if (j->term_at && now >= j->term_at) {
				child_signal(&j->ssh, SIGTERM);
				j->term_at = 0;
				j->kill_at = now + KILL_GRACE_MS;
			} else if (j->kill_at && now >= j->kill_at) {
				child_signal(&j->ssh, SIGKILL);
				j->kill_at = now + KILL_GRACE_MS;
			}
		}
		if (!j->stop_at && j->ssh.in_fd >= 0 && now >= j->next_heartbeat && j->in.len == 0) {
			(void)buf_putc(&j->in, '\n');
			j->next_heartbeat = now + j->heartbeat_ms;
		}
		/* fds */
		backpressure = events_pending(j->ev) > EVENTS_HIGH_WATER;
		p[np].fd = j->sigfd; p[np].events = POLLIN; np++;
		if (j->ssh.out_fd >= 0 && !backpressure) { p[np].fd = j->ssh.out_fd; p[np].events = POLLIN; np++; }
		if (j->ssh.err_fd >= 0 && !backpressure) { p[np].fd = j->ssh.err_fd; p[np].events = POLLIN; np++; }
		if (j->ssh.in_fd >= 0 && j->in.len > j->in_off) { p[np].fd = j->ssh.in_fd; p[np].events = POLLOUT; np++; }
		if (events_pending(j->ev) && !j->ev->broken) { p[np].fd = j->ev->fd; p[np].events = POLLOUT; np++; }
		next = min64(j->next_heartbeat, j->next_renew);
		if (!j->stop_at) {
			if (!j->begun)
				next = min64(next, begin_deadline(j));
			next = min64(next, timeout_at);
			next = min64(next, j->last_output + idle_ms);
			next = min64(next, j->lock.deadline_ms);
			if (j->have_result)
				next = min64(next, j->result_deadline);
		} else {
			if (j->term_at)
				next = min64(next, j->term_at);
			if (j->kill_at)
				next = min64(next, j->kill_at);
		}
		wait_ms = (int)(next - now < 0 ? 0 : next - now > 1000 ? 1000 : next - now);
		if (poll(p, (nfds_t)np, wait_ms) < 0 && errno != EINTR)
			break;
		for (i = 0; i < np; i++) {
			if (!p[i].revents)
				continue;
			if (p[i].fd == j->sigfd) {
				if (check_signal(j))
					begin_stop(j, j->stop);
				else if (j->stop == STOP_NONE)
					(void)0;   /* SIGCHLD: reaped at the top */
			} else if (p[i].fd == j->ssh.out_fd) {
				pump(j, &j->ssh.out_fd, j->out_framer, 1);
			} else if (p[i].fd == j->ssh.err_fd) {
				pump(j, &j->ssh.err_fd, j->err_framer, 0);
			} else if (p[i].fd == j->ssh.in_fd) {
				write_input(j);
			} else if (p[i].fd == j->ev->fd) {
				events_flush(j->ev, 0);
			}
		}
	}
}

/* ---- the outcome ---- */

static const char *why_sentence(const char *why)
{
	static const struct { const char *why, *text; } t[] = {
		{ "fenced", "the sandbox refused the job: its slot already ran a job with a newer fencing number" },
		{ "workdir", "cannot create the job's directories under the sandbox workdir" },
		{ "jobdir", "cannot create the job directory on the sandbox" },
		{ "claude-missing", "the Claude Code executable was not found on the sandbox" },
		{ "heartbeat", "the sandbox stopped the job: no heartbeat from sshbox" },
		{ "eof", "the sandbox stopped the job: the session's input closed early" },
		{ "busy", "the sandbox's slot is still held by a process of an earlier job (flock timed out)" },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strcmp(why, t[i].why) == 0)
			return t[i].text;
	return NULL;
}

/* The repository step's failures, each a sentence naming the repository
 * (the spec's URL, which holds no credentials).  Returns 0 for other whys. */
static int repo_sentence(const char *why, const char *url, char *out, size_t size)
{
	static const struct { const char *why, *before, *after; } t[] = {
		{ "repo-auth", "authentication to ", " failed: check repo.token (an installation token with access to it)" },
		{ "repo-tls", "the TLS certificate of ", " was not accepted by git on the sandbox (is its CA installed?)" },
		{ "repo-unreachable", "cannot reach ", " from the sandbox" },
		{ "repo-not-found", "repository ", " was not found (or repo.token cannot see it)" },
		{ "clone", "cannot clone or fetch ", " on the sandbox (see sshbox.stderr)" },
		{ "checkout", "cannot check out the requested ref of ", " on the sandbox (see sshbox.stderr)" },
		{ "submodules", "cannot fetch the submodules of ", " on the sandbox (see sshbox.stderr)" },
		{ "cache-locked", "the sandbox's cache of ", " stayed locked by another job for 600 s" },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strcmp(why, t[i].why) == 0) {
			snprintf(out, size, "%s'%s'%s", t[i].before, url ? url : "", t[i].after);
			return 1;
		}
	return 0;
}

static int finish(struct job *j)
{
	struct sb_error e = SB_ERROR_INIT, rel = SB_ERROR_INIT;
	int ssh_rc = child_exit_code(&j->ssh), rr;
	char msg[SB_ERROR_MSG_MAX + 64];

	rr = lock_unlock(j->kv, &j->lock, &rel);
	if (rr == SB_ERR_REDIS && !j->lease_lost && clock_now_ms() >= j->lock.deadline_ms &&
	    j->stop != STOP_SIGINT && j->stop != STOP_SIGTERM) {
		snprintf(j->lease_why, sizeof(j->lease_why),
			 "lost the lock on sandbox '%s' slot %d: no renewal was confirmed before its lease ran out (%s)",
			 j->sbx.host, j->lock.slot, rel.msg);
		j->lease_lost = 1;
	} else if (rr == SB_ERR_NOTFOUND && !j->lease_lost && j->stop != STOP_SIGINT && j->stop != STOP_SIGTERM) {
		snprintf(j->lease_why, sizeof(j->lease_why), "%s", rel.msg);
		j->lease_lost = 1;
	} else if (rr) {
		log_warn("%s", rel.msg);
	}
	if (j->stop == STOP_SIGINT || j->stop == STOP_SIGTERM)
		return cancelled_exit(j);
	if (j->lease_lost)
		return emit_result(j, "error", SB_EXIT_TEMPFAIL, j->lease_why);
	if (j->stop == STOP_CONSUMER)
		return emit_result(j, "error", SB_EXIT_TEMPFAIL,
				   "the reader of the event stream went away: stopped the job");
	if (j->stop == STOP_INTERNAL)
		return emit_result(j, "error", SB_EXIT_SOFTWARE, "out of memory while starting the stream");
	if (j->stop == STOP_NOBEGIN) {
		struct sb_error ignored = SB_ERROR_INIT;
		int alive = 0;

		/* a master that does not answer is unlinked and killed here */
		(void)ssh_master_check(&j->target, &alive, &ignored);
		snprintf(msg, sizeof(msg), "sandbox '%s' did not start the job within %lld s of the session opening",
			 j->sbx.host, (long long)(begin_deadline(j) - j->session_t0) / 1000);
		return emit_result(j, "error", SB_EXIT_TEMPFAIL, msg);
	}
	if (j->stop == STOP_TIMEOUT) {
		snprintf(msg, sizeof(msg), "the job ran longer than timeout_s (%d s)", j->spec->timeout_s);
		return emit_result(j, "timeout", SB_EXIT_TIMEOUT, msg);
	}
	if (j->stop == STOP_IDLE) {
		snprintf(msg, sizeof(msg), "Claude Code printed nothing for idle_timeout_s (%d s)", j->spec->idle_timeout_s);
		return emit_result(j, "timeout", SB_EXIT_TIMEOUT, msg);
	}
	if (j->have_result && (j->stop == STOP_RESULT_GRACE || j->ended)) {
		if (j->stop == STOP_RESULT_GRACE)
			log_warn("Claude Code did not exit within %d s of its result line; stopped it", RESULT_GRACE_MS / 1000);
		if (!j->result_is_error && (j->stop == STOP_RESULT_GRACE || j->end_rc == 0))
			return emit_result(j, "succeeded", SB_EXIT_OK, NULL);
		return emit_result(j, "failed", SB_EXIT_FAILED, NULL);
	}
	if (j->ended && strcmp(j->end_why, "timeout") == 0) {
		/* the sandbox's backstop: only when our own timer could not act */
		snprintf(msg, sizeof(msg), "the sandbox stopped the job: it ran past timeout_s (%d s) + 30 s",
			 j->spec->timeout_s);
		return emit_result(j, "timeout", SB_EXIT_TIMEOUT, msg);
	}
	if (j->ended && strcmp(j->end_why, "unknown-ref") == 0) {
		snprintf(msg, sizeof(msg), "unknown ref '%s' in repository '%s'", j->spec->repo_ref ? j->spec->repo_ref : "",
			 j->spec->repo_url ? j->spec->repo_url : "");
		return emit_result(j, "error", SB_EXIT_FAILED, msg);
	}
	if (j->ended && repo_sentence(j->end_why, j->spec->repo_url, msg, sizeof(msg)))
		return emit_result(j, "error",
				   strcmp(j->end_why, "repo-unreachable") == 0 || strcmp(j->end_why, "cache-locked") == 0
					   ? SB_EXIT_TEMPFAIL
					   : SB_EXIT_FAILED,
				   msg);
	if (j->ended) {
		const char *s = why_sentence(j->end_why);
		/* heartbeat/eof: the transport failed us, not the job */
		if (s)
			return emit_result(j, "error", strcmp(j->end_why, "heartbeat") == 0 || strcmp(j->end_why, "eof") == 0 ||
						    strcmp(j->end_why, "busy") == 0 ? SB_EXIT_TEMPFAIL : SB_EXIT_FAILED, s);
		snprintf(msg, sizeof(msg), "Claude Code exited with status %d without a result line", j->end_rc);
		return emit_result(j, "failed", SB_EXIT_FAILED, msg);
	}
	if (ssh_rc == 255 || ssh_rc < 0 || ssh_rc >= 128) {
		ssh_classify_failure(&j->target, j->ssh_log.data, ssh_rc, &e);
		snprintf(msg, sizeof(msg), "%s%s", j->started ? "lost the connection during the job: " : "", e.msg);
		return emit_result(j, "error", SB_EXIT_TEMPFAIL, msg);
	}
	snprintf(msg, sizeof(msg), "the remote job script on sandbox '%s' ended with status %d before finishing%s",
		 j->sbx.host, ssh_rc, ssh_rc >= 97 && ssh_rc <= 99 ? " (is /bin/bash 4.1 or later on the sandbox?)" : "");
	return emit_result(j, "error", SB_EXIT_FAILED, msg);
}

static void emit_acquired(struct job *j)
{
	struct buf *b = &j->scratch;

	events_begin(j->ev, b, "sshbox.acquired");
	events_str(b, "sandbox", j->sbx.host);
	events_int(b, "slot", j->lock.slot);
	events_int(b, "fence", j->lock.fence);
	events_end(j->ev, b);
	events_flush(j->ev, 0);
}

/* A sandbox that cannot be reached: give its slot back and never pick it
 * again in this run. */
static int exclude_current(struct job *j, const struct sb_error *why)
{
	struct sb_error rel = SB_ERROR_INIT;
	char **n = realloc(j->excluded, (j->n_excluded + 1) * sizeof(*n));

	(void)lock_unlock(j->kv, &j->lock, &rel);
	(void)pool_mark_unhealthy(j->kv, j->sbx.account, j->sbx.host, why->msg, &rel);
	log_warn("%s; trying another sandbox", why->msg);
	snprintf(j->lease_why, sizeof(j->lease_why), "%s", why->msg);
	if (!n)
		return SB_ERR_NOMEM;
	j->excluded = n;
	if (!(j->excluded[j->n_excluded] = strdup(j->sbx.host)))
		return SB_ERR_NOMEM;
	j->n_excluded++;
	sandbox_rec_release(&j->sbx);
	j->lock = (struct lock)LOCK_INIT;
	return 0;
}

/* Setup may take a while (a cold connection): the lease must still be ours,
 * with room to spare, before anything starts on the sandbox. */
static int lease_fresh(struct job *j, struct sb_error *e)
{
	int64_t now = clock_now_ms();
	int r;

	if (now < j->lock.renewed_ms + j->lock.ttl_ms / 3)
		return 0;
	r = lock_renew(j->kv, &j->lock, e);
	if (r == 0)
		j->next_renew = j->lock.renewed_ms + j->lock.ttl_ms / 3;
	return r == SB_ERR_NOTFOUND ? SB_ERR_REDIS : r;
}

static int exit_for(int r)
{
	switch (r) {
	case SB_ERR_UNAVAILABLE: return SB_EXIT_UNAVAILABLE;
	case SB_ERR_USAGE:
	case SB_ERR_EXISTS: return SB_EXIT_USAGE;
	case SB_ERR_NOMEM:
	case SB_ERR_INTERNAL: return SB_EXIT_SOFTWARE;
	default: return SB_EXIT_TEMPFAIL;
	}
}

int job_run(const struct config *cfg, struct jobspec *spec, struct events *ev, int sigfd)
{
	struct job j;
	struct sb_error e = SB_ERROR_INIT;
	int rc, r, tries;

	memset(&j, 0, sizeof(j));
	j.cfg = cfg;
	j.spec = spec;
	j.ev = ev;
	j.sigfd = sigfd;
	j.t0 = clock_now_ms();
	j.lock = (struct lock)LOCK_INIT;
	j.agent = (struct agent)AGENT_INIT;
	j.ssh = (struct child)CHILD_INIT;
	j.sbx = (struct sandbox_rec)SANDBOX_REC_INIT;
	j.acct = (struct account_rec)ACCOUNT_REC_INIT;
	buf_init_secret(&j.in, 0);
	/* the sandbox stops a job that hears nothing for half a lease, so a
	 * vanished orchestrator's job is gone before its slot can be reused */
	j.remote_heartbeat_s = cfg->lock_ttl_ms / 2000;
	if (j.remote_heartbeat_s > REMOTE_HEARTBEAT_MAX_S)
		j.remote_heartbeat_s = REMOTE_HEARTBEAT_MAX_S;
	if (j.remote_heartbeat_s < 3)
		j.remote_heartbeat_s = 3;
	j.heartbeat_ms = (int64_t)j.remote_heartbeat_s * 1000 / 3;
	if (j.heartbeat_ms > HEARTBEAT_MAX_MS)
		j.heartbeat_ms = HEARTBEAT_MAX_MS;
	srandom((unsigned)(getpid() ^ (unsigned)clock_now_ms()));
	if (spec->has_repo)
		(void)paths_repo_key(spec->account, spec->repo_url, &j.repo_key);

	/* a renewal that waits longer than a quarter lease would eat the
	 * margin that lets us stop before Redis hands the slot on */
	if ((r = kv_open(&j.kv, cfg->redis_url,
			 cfg->redis_timeout_ms < cfg->lock_ttl_ms / 4 ? cfg->redis_timeout_ms : cfg->lock_ttl_ms / 4,
			 &e)) != 0) {
		rc = emit_result(&j, "error", SB_EXIT_TEMPFAIL, e.msg);
		goto out;
	}
	for (tries = 0;; tries++) {
		r = acquire_slot(&j, &e);
		if (r)
			break;
		j.next_renew = j.lock.renewed_ms + j.lock.ttl_ms / 3;
		emit_acquired(&j);
		r = setup_transport(&j, &e);
		if (r == SB_ERR_HOSTKEY) {
			/* never retried silently: every job skips it until fixed */
			struct sb_error ignored = SB_ERROR_INIT;
			(void)pool_mark_unhealthy(j.kv, j.sbx.account, j.sbx.host, e.msg, &ignored);
		}
		if (r == SB_ERR_TRANSPORT && tries + 1 < MAX_CONNECT_TRIES) {
			if ((r = exclude_current(&j, &e)) != 0)
				break;
			continue;
		}
		if (!r && (r = lease_fresh(&j, &e)) != 0)
			sb_error_prefix(&e, "lost the lock on sandbox '%s' slot %d while connecting", j.sbx.host, j.lock.slot);
		break;
	}
	if (!r && (r = start_session(&j, &e)) == 0) {
		struct sb_error ignored = SB_ERROR_INIT;

		jobspec_drop_secrets(spec);   /* they are in j.in now, wiped once sent */
		/* the transport worked: forget its failures, while ssh starts */
		(void)pool_mark_healthy(j.kv, j.sbx.account, j.sbx.host, &ignored);
	}
	if (r) {
		if (r == SB_ERR_CANCELLED || check_signal(&j))
			rc = cancelled_exit(&j);
		else
			rc = emit_result(&j, "error", exit_for(r), e.msg);
		goto out;
	}
	j.out_framer = ndjson_new((size_t)cfg->max_line_bytes);
	j.err_framer = ndjson_new(STDERR_LINE_MAX);
	if (!j.out_framer || !j.err_framer)
		begin_stop(&j, STOP_INTERNAL);
	write_input(&j);
	run_loop(&j);
	child_close_fds(&j.ssh);
	if (!j.ssh.reaped)
		(void)child_wait(&j.ssh, clock_deadline_in(0), KILL_GRACE_MS);
	rc = finish(&j);
out:
	if (j.lock.held) {
		struct sb_error rel = SB_ERROR_INIT;
		(void)lock_unlock(j.kv, &j.lock, &rel);
	}
	if (j.agent.sock)
		agent_stop(&j.agent);
	if (j.ssh_log.data)
		(void)unlink(j.ssh_log.data);
	while (j.n_excluded)
		free(j.excluded[--j.n_excluded]);
	free(j.excluded);
	ndjson_free(j.out_framer);
	ndjson_free(j.err_framer);
	buf_release(&j.in);
	buf_release(&j.alias);
	buf_release(&j.cpath);
	buf_release(&j.agent_sock);
	buf_release(&j.ssh_log);
	buf_release(&j.session_id);
	buf_release(&j.cost);
	buf_release(&j.turns);
	buf_release(&j.scratch);
	buf_release(&j.repo_key);
	sandbox_rec_release(&j.sbx);
	account_rec_release(&j.acct);
	kv_free(j.kv);
	events_flush(ev, 1);
	return rc;
}
