#include "supervise.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "buf.h"
#include "clock.h"
#include "fsutil.h"
#include "kv.h"
#include "lock.h"
#include "log.h"
#include "paths.h"
#include "pool.h"
#include "registry.h"
#include "remote.h"
#include "ssh.h"
#include "transport.h"
#include "validate.h"

#define POLL_MS 500                 /* registry version poll: changes seen within 2 s */
#define AGENT_GRACE_MS 60000        /* a replaced agent lives on this long */
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
#define PROBE_TIMEOUT_MS 10000
#define STOP_WAIT_MS 3000           /* at stop: how long idle masters get to exit */

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

struct sv_sandbox {
	char *account, *host, *user, *workdir, *host_key;
	int port;
	long long key_version;
	struct buf alias, cpath;
	int master;                 /* a master we opened or adopted answers */
	int published;              /* health we last wrote or read: -1 unknown, 0 unhealthy, 1 healthy */
	int64_t next_check;
	int backoff_ms;
	int seen;
};

struct sv {
	struct config *cfg;
	struct kv *kv;
	long long version;          /* registry version reconciled; -1 none */
	struct sv_account *acc;
	size_t nacc;
	struct sv_sandbox *sbx;
	size_t nsbx;
	int64_t next_poll, next_sweep;
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

static int agent_path(const struct config *cfg, const char *account, long long version, struct buf *out,
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
static int agent_bring_up(struct sv *sv, struct sv_account *a, const struct account_rec *rec, struct sb_error *e)
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

static int reconcile_accounts(struct sv *sv, struct sb_error *e)
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

/* ---- masters ---- */

static void target_of(const struct sv *sv, const struct sv_sandbox *s, const char *cpath, struct ssh_target *t)
{
	t->cfg = sv->cfg;
	t->alias = s->alias.data;
	t->host = s->host;
	t->control_path = cpath;
	t->agent_sock = NULL;
}

static void master_stop(struct sv *sv, struct sv_sandbox *s, const char *cpath, const char *why)
{
	struct ssh_target t;
	struct sb_error e = SB_ERROR_INIT;

	target_of(sv, s, cpath, &t);
	ssh_master_vouch(&t, 0);
	if (ssh_master_stop(&t, &e) != 0)
		log_warn("sandbox '%s' of account '%s': %s", s->host, s->account, e.msg);
	else
		log_info("sandbox '%s' of account '%s': master stopped (%s); it exits after its last session",
			 s->host, s->account, why);
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
}

static void sandbox_drop(struct sv *sv, size_t i, const char *why)
{
	struct sv_sandbox *s = &sv->sbx[i];

	if (s->master)
		master_stop(sv, s, s->cpath.data, why);
	sandbox_free(s);
	sv->sbx[i] = sv->sbx[--sv->nsbx];
}

static struct sv_sandbox *sandbox_find(struct sv *sv, const char *account, const char *host)
{
	size_t i;

	for (i = 0; i < sv->nsbx; i++)
		if (strcmp(sv->sbx[i].account, account) == 0 && strcmp(sv->sbx[i].host, host) == 0)
			return &sv->sbx[i];
	return NULL;
}

static int dup_into(char **dst, const char *src)
{
	char *c = strdup(src);

	if (!c)
		return -1;
	free(*dst);
	*dst = c;
	return 0;
}

static int reconcile_sandboxes(struct sv *sv, struct sb_error *e)
{
	struct sandbox_rec *list = NULL;
	size_t n = 0, i;
	int r;

	if ((r = registry_sandbox_list(sv->kv, NULL, &list, &n, e)) != 0)
		return r;
	for (i = 0; i < sv->nsbx; i++)
		sv->sbx[i].seen = 0;
	for (i = 0; i < n && !r; i++) {
		const struct sandbox_rec *rec = &list[i];
		const struct sv_account *a = account_find(sv, rec->account);
		struct sv_sandbox *s;
		struct buf cpath = BUF_INIT;

		if (strcmp(rec->state, REGISTRY_STATE_ACTIVE) != 0 || !a || !a->cur.version)
			continue;   /* not seen: dropped below */
		if ((r = paths_control(sv->cfg->state_dir, rec->account, a->cur.version, rec->host, rec->port, rec->user,
				       rec->host_key, &cpath, e)) != 0)
			break;
		if (!(s = sandbox_find(sv, rec->account, rec->host))) {
			struct sv_sandbox *grown = realloc(sv->sbx, (sv->nsbx + 1) * sizeof(*grown));

			if (!grown) {
				buf_release(&cpath);
				r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
				break;
			}
			sv->sbx = grown;
			s = &sv->sbx[sv->nsbx++];
			memset(s, 0, sizeof(*s));
			s->alias = (struct buf)BUF_INIT;
			s->cpath = (struct buf)BUF_INIT;
			s->published = -1;
			if (dup_into(&s->account, rec->account) || dup_into(&s->host, rec->host) ||
			    paths_alias(rec->account, rec->host, &s->alias)) {
				/* never keep a half-made entry: later lookups read its names */
				sandbox_free(s);
				sv->nsbx--;
				buf_release(&cpath);
				r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
				break;
			}
			log_info("sandbox '%s' of account '%s': watching", rec->host, rec->account);
		}
		s->seen = 1;
		if (s->cpath.data && strcmp(s->cpath.data, cpath.data) != 0) {
			/* new key version or re-pinned host key: a fresh master;
			 * the old one serves its running jobs to their end */
			if (s->master)
				master_stop(sv, s, s->cpath.data, "replaced: key or host key changed");
			s->master = 0;
			s->next_check = 0;
		}
		buf_reset(&s->cpath);
		if (buf_append(&s->cpath, cpath.data, cpath.len) || dup_into(&s->user, rec->user) ||
		    dup_into(&s->workdir, rec->workdir) || dup_into(&s->host_key, rec->host_key)) {
			r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
			if (!s->cpath.data || !s->user || !s->workdir || !s->host_key)
				sandbox_drop(sv, (size_t)(s - sv->sbx), "out of memory");
			buf_release(&cpath);
			break;
		}
		s->port = rec->port;
		s->key_version = a->cur.version;
		buf_release(&cpath);
	}
	sandbox_rec_free_array(list, n);
	if (r)
		return r;
	for (i = sv->nsbx; i-- > 0;)
		if (!sv->sbx[i].seen)
			sandbox_drop(sv, i, "no longer active");
	return 0;
}

static void publish_health(struct sv *sv, struct sv_sandbox *s, int healthy, const char *reason)
{
	struct sb_error e = SB_ERROR_INIT;
	struct pool_health h;
	int r;

	if (healthy) {
		/* a job may have marked it: read before writing */
		if (s->published == 1)
			return;
		if (pool_health_get(sv->kv, s->account, s->host, &h, &e) == 0 && !h.unhealthy) {
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

/* Master up (open it when it is not) and a session through it works. */
static void check_sandbox(struct sv *sv, struct sv_sandbox *s)
{
	struct sb_error e = SB_ERROR_INIT;
	struct ssh_target t;
	int alive = 0, code = -1, r;
	int64_t t0 = clock_now_ms();

	target_of(sv, s, s->cpath.data, &t);
	r = ssh_master_check(&t, &alive, &e);
	if (!r && !alive) {
		if (s->master)
			log_warn("sandbox '%s' of account '%s': its master went away; reopening", s->host, s->account);
		r = ssh_master_open(&t, -1, &e);
		if (!r)
			log_info("sandbox '%s' of account '%s': master up in %lld ms", s->host, s->account,
				 (long long)(clock_now_ms() - t0));
	} else if (!r && !s->master) {
		log_info("sandbox '%s' of account '%s': adopted the running master", s->host, s->account);
	}
	if (!r)
		r = ssh_exec(&t, "true", NULL, 0, NULL, PROBE_TIMEOUT_MS, &code, &e);
	if (!r && code != 0)
		r = sb_error_set(&e, SB_ERR_TRANSPORT, "a check session on sandbox '%s' exited with status %d", s->host,
				 code);
	if (r) {
		s->master = 0;
		s->next_check = backoff_next(&s->backoff_ms, sv->cfg->health_interval_s);
		log_warn("%s (next try in %lld ms)", e.msg, (long long)(s->next_check - clock_now_ms()));
		/* a master that answers -O check but carries no session is wedged */
		if (alive)
			master_stop(sv, s, s->cpath.data, "its check session failed");
		ssh_master_vouch(&t, 0);
		publish_health(sv, s, 0, e.msg);
		return;
	}
	ssh_master_vouch(&t, 1);
	s->master = 1;
	s->backoff_ms = 0;
	s->next_check = clock_now_ms() + (int64_t)sv->cfg->health_interval_s * 1000;
	publish_health(sv, s, 1, NULL);
}

/* ---- sweeping ---- */

static int sock_is_dead(const char *path)
{
	struct sockaddr_un sa;
	int fd, dead;

	if (strlen(path) >= sizeof(sa.sun_path))
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return 0;
	dead = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno == ECONNREFUSED;
	close(fd);
	return dead;
}

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
		} else if (!sock_is_dead(p.data)) {
			continue;
		}
		if (unlink(p.data) == 0)
			log_info("removed the dead socket '%s'", p.data);
	}
	closedir(dh);
	buf_release(&dir);
	buf_release(&p);
}

/* Job dirs older than sweep_min_age_s whose job holds no reservation in
 * any account that shares this sandbox's workdir. */
static void sweep_sandbox(struct sv *sv, struct sv_sandbox *s)
{
	struct sb_error e = SB_ERROR_INIT;
	struct ssh_target t;
	struct buf cmd = BUF_INIT, out = BUF_INIT, rm = BUF_INIT, jobs = BUF_INIT;
	char *line, *save = NULL;
	int code = -1, nrm = 0;
	size_t i;

	target_of(sv, s, s->cpath.data, &t);
	if (buf_printf(&jobs, "%s/jobs", s->workdir))
		goto out;
	buf_puts(&cmd, "cd -- ");
	remote_quote(&cmd, jobs.data);
	buf_printf(&cmd, " 2>/dev/null || exit 0; find . -mindepth 1 -maxdepth 1 -type d -mmin +%d -printf '%%f\\n'",
		   (sv->cfg->sweep_min_age_s + 59) / 60);
	if (ssh_exec(&t, cmd.data, NULL, 0, &out, PROBE_TIMEOUT_MS, &code, &e) != 0 || code != 0) {
		if (code > 0)
			log_warn("sweep of sandbox '%s': listing %s failed with status %d", s->host, jobs.data, code);
		goto out;
	}
	buf_puts(&rm, "cd -- ");
	remote_quote(&rm, jobs.data);
	buf_puts(&rm, " || exit 1; rm -rf --");
	for (line = strtok_r(out.data ? out.data : (char *)"", "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *id = line[0] == '.' ? line + 1 : line;
		int held = 0;

		if (validate_job_id(id, NULL) != 0)
			continue;   /* not ours */
		for (i = 0; i < sv->nsbx && !held; i++) {
			char key[REGISTRY_KEY_MAX];
			long long exists = 0;
			const struct sv_sandbox *o = &sv->sbx[i];

			if (strcmp(o->host, s->host) != 0 || o->port != s->port || strcmp(o->workdir, s->workdir) != 0)
				continue;
			if (lock_key_job(key, sizeof(key), o->account, id, NULL) != 0 ||
			    kv_cmd_integer(sv->kv, &exists, NULL, "EXISTS", key, NULL) != 0)
				held = 1;   /* cannot tell: keep it */
			else
				held = exists != 0;
		}
		if (held)
			continue;
		buf_putc(&rm, ' ');
		remote_quote(&rm, line);
		log_info("sweep of sandbox '%s': removing %s/%s (no job holds it)", s->host, jobs.data, line);
		nrm++;
	}
	if (nrm && (ssh_exec(&t, rm.data, NULL, 0, NULL, PROBE_TIMEOUT_MS, &code, &e) != 0 || code != 0))
		log_warn("sweep of sandbox '%s': removing leftovers failed (%s)", s->host, e.msg[0] ? e.msg : "rm failed");
out:
	buf_release(&cmd);
	buf_release(&out);
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
		if (sv->sbx[i].master)
			sweep_sandbox(sv, &sv->sbx[i]);
}

/* ---- the loop ---- */

static int reconcile(struct sv *sv, int force, struct sb_error *e)
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
	if ((r = transport_sync(sv->kv, sv->cfg, force, e)) != 0 || (r = reconcile_accounts(sv, e)) != 0 ||
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
	free(sv->acc);
	free(sv->sbx);
	sv->acc = NULL;
	sv->sbx = NULL;
}

int supervise_run(struct config *cfg, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload,
		  int (*reload_config)(struct config *cfg, struct sb_error *e), struct sb_error *e)
{
	struct sv sv;
	struct buf lockp = BUF_INIT;
	int lockfd = -1, r = 0, redis_down = 0;
	size_t i;

	memset(&sv, 0, sizeof(sv));
	sv.cfg = cfg;
	sv.version = -1;
	srand((unsigned)(getpid() ^ clock_now_ms()));
	if ((r = paths_prepare_state(cfg->state_dir, e)) != 0)
		return r;
	paths_lock(cfg->state_dir, "supervise", &lockp);
	if (buf_puts(&lockp, ".lock"))
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	if ((lockfd = fs_lock(lockp.data, 1000, e)) < 0) {
		r = sb_error_set(e, SB_ERR_EXISTS, "another sshbox supervise holds '%s'", lockp.data);
		buf_release(&lockp);
		return r;
	}
	buf_release(&lockp);
	{
		struct buf d = BUF_INIT;

		if (buf_printf(&d, "%s/agent/run", cfg->state_dir) == 0)
			(void)fs_mkdir_p(d.data, 0700, NULL);
		buf_release(&d);
	}
	/* a predecessor's dead sockets first; its live masters are adopted below */
	sweep_sockets(&sv, "agent", 0);
	sweep_sockets(&sv, "agent/run", 1);
	sweep_sockets(&sv, "cm", 0);
	log_info("supervisor started (state dir %s, pid %ld)", cfg->state_dir, (long)getpid());
	while (!*stop) {
		int64_t now = clock_now_ms(), wake;
		int force = 0;

		if (*reload) {
			struct sb_error ce = SB_ERROR_INIT;

			*reload = 0;
			if (reload_config(cfg, &ce) != 0) {
				log_error("configuration not reloaded: %s", ce.msg);
			} else {
				log_info("configuration reloaded");
				kv_free(sv.kv);
				sv.kv = NULL;
				force = 1;
			}
		}
		if (!sv.kv) {
			struct sb_error ke = SB_ERROR_INIT;

			if (kv_open(&sv.kv, cfg->redis_url, cfg->redis_timeout_ms, &ke) != 0) {
				if (!redis_down)
					log_error("%s (retrying)", ke.msg);
				redis_down = 1;
				clock_sleep_ms(500);
				continue;
			}
			if (redis_down)
				log_info("Redis at %s is back", kv_where(sv.kv));
			redis_down = 0;
			force = 1;
		}
		if (force || now >= sv.next_poll) {
			struct sb_error re = SB_ERROR_INIT;

			sv.next_poll = now + POLL_MS;
			if (reconcile(&sv, force, &re) != 0) {
				log_error("%s", re.msg);
				if (re.code == SB_ERR_REDIS) {
					kv_free(sv.kv);
					sv.kv = NULL;
					redis_down = 1;
				}
				continue;
			}
		}
		for (i = 0; i < sv.nacc; i++)
			if (sv.acc[i].old.version && now >= sv.acc[i].old.retire_at) {
				log_info("account '%s': the agent of key version %lld stopped", sv.acc[i].name,
					 sv.acc[i].old.version);
				sv_agent_stop(&sv.acc[i].old);
			}
		for (i = 0; i < sv.nsbx && !*stop && !*reload; i++)
			if (clock_now_ms() >= sv.sbx[i].next_check)
				check_sandbox(&sv, &sv.sbx[i]);
		if (sv.next_sweep == 0)
			sv.next_sweep = now + (int64_t)cfg->sweep_interval_s * 1000;
		if (now >= sv.next_sweep && !*stop) {
			sweep(&sv);
			sv.next_sweep = clock_now_ms() + (int64_t)cfg->sweep_interval_s * 1000;
		}
		wake = sv.next_poll;
		for (i = 0; i < sv.nsbx; i++)
			if (sv.sbx[i].next_check < wake)
				wake = sv.sbx[i].next_check;
		now = clock_now_ms();
		if (wake > now && !*stop && !*reload)
			clock_sleep_ms(wake - now > 200 ? 200 : wake - now);   /* signals cut it short */
	}
	log_info("supervisor stopping");
	shutdown_all(&sv);
	kv_free(sv.kv);
	fs_unlock(lockfd);
	log_info("supervisor stopped");
	return 0;
}
