#include "ssh.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "child.h"
#include "clock.h"
#include "fsutil.h"
#include "log.h"
#include "paths.h"

#define CHECK_TIMEOUT_MS SSH_CONTROL_TIMEOUT_MS

int ssh_argv_start(struct strvec *argv, const struct ssh_target *t)
{
	struct buf p = BUF_INIT;
	int r;

	r = paths_ssh_config(t->cfg->state_dir, &p);
	if (!r) r = strvec_push(argv, SSH_BIN);
	if (!r) r = strvec_push(argv, "-F");
	if (!r) r = strvec_push(argv, p.data);
	if (!r && t->agent_sock)
		r = strvec_pushf(argv, "-oIdentityAgent=%s", t->agent_sock);
	/* the caller's ControlPath wins over the config's: after a key rotation
	 * the config names the new master, and the old one is still ours */
	if (!r && t->control_path)
		r = strvec_pushf(argv, "-oControlPath=%s", t->control_path);
	buf_release(&p);
	return r;
}

int ssh_argv_finish(struct strvec *argv, const struct ssh_target *t, const char *cmd)
{
	int r = strvec_push(argv, "--");

	if (!r) r = strvec_push(argv, t->alias);
	if (!r && cmd) r = strvec_push(argv, cmd);
	return r;
}

/* `ssh -O <op>` against t's ControlPath under CHECK_TIMEOUT_MS; its stderr
 * (where -O check prints the pid) into err when not NULL. */
static SB_MUST_CHECK int control_op(const struct ssh_target *t, const char *op, struct buf *err, int *code, struct sb_error *e)
{
	struct strvec argv = STRVEC_INIT;
	struct child_run_opts o = { NULL, "/", 1, 0, CHECK_TIMEOUT_MS };
	int r;

	*code = -1;
	if (ssh_argv_start(&argv, t) || strvec_push(&argv, op) || ssh_argv_finish(&argv, t, NULL)) {
		strvec_clear(&argv);
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	}
	r = child_run((const char *const *)strvec_argv(&argv), &o, NULL, 0, NULL, err, code, e);
	strvec_clear(&argv);
	return r;
}

/* <state>/lock/<digest><suffix>: the files that go with the master at a
 * ControlPath — .lock (opening it), .pid (the pid of the master we opened),
 * .ok (the supervisor's vouch). */
static SB_MUST_CHECK int master_file(const struct ssh_target *t, const char *suffix, struct buf *out)
{
	int r = paths_lock(t->cfg->state_dir, strrchr(t->control_path, '/') + 1, out);

	return r ? r : buf_puts(out, suffix);
}

/* Is argv (NUL-separated, /proc/<pid>/cmdline) that of the master we open
 * for t: -oControlPath=<its path> and -oControlMaster=yes? */
static int is_master_cmdline(const struct ssh_target *t, const struct buf *cmd)
{
	char want[PATHS_CONTROL_MAX + 32];
	const char *p, *end;
	int has_path = 0, is_master = 0;

	snprintf(want, sizeof(want), "-oControlPath=%s", t->control_path);
	for (p = cmd->data, end = cmd->data + cmd->len; p && p < end; p += strlen(p) + 1) {
		has_path |= strcmp(p, want) == 0;
		is_master |= strcmp(p, "-oControlMaster=yes") == 0;
	}
	return has_path && is_master;
}

/* The process start time (clock ticks since boot) of pid; 0 if unknown. */
static unsigned long long start_time(long pid)
{
	char path[64];
	struct buf st = BUF_INIT;
	unsigned long long t = 0;
	const char *p;
	int field;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if (fs_read_file(path, &st, 4096, NULL) == 0 && (p = strrchr(buf_cstr(&st), ')')) != NULL) {
		/* after "pid (comm)": state is field 3, starttime field 22 */
		for (field = 2; *p && field < 22; p++)
			if (*p == ' ')
				field++;
		t = strtoull(p, NULL, 10);
	}
	buf_release(&st);
	return t;
}

/* The pid of the master just opened for t, from /proc (ssh -f forks, and
 * asking the master with -O check could wait on it): the youngest process
 * whose argv is that master's.  Recorded in <state>/lock/<digest>.pid so
 * that a master found wedged later can be killed, not only unlinked. */
static void record_master_pid(const struct ssh_target *t)
{
	struct buf cmd = BUF_INIT, pf = BUF_INIT;
	unsigned long long best_start = 0;
	long best = 0;
	struct dirent *d;
	DIR *dh = opendir("/proc");
	char path[64], line[32];
	int n;

	if (!dh)
		return;
	while ((d = readdir(dh)) != NULL) {
		long pid = strtol(d->d_name, NULL, 10);
		unsigned long long st;

		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
		buf_reset(&cmd);
		if (fs_read_file(path, &cmd, 65536, NULL) != 0 || !cmd.len || !is_master_cmdline(t, &cmd))
			continue;
		if ((st = start_time(pid)) >= best_start) {
			best_start = st;
			best = pid;
		}
	}
	closedir(dh);
	n = snprintf(line, sizeof(line), "%ld\n", best);
	if (best > 0 && master_file(t, ".pid", &pf) == 0)
		/* without it a wedged master is unlinked, not killed */
		sb_best_effort(fs_write_atomic(pf.data, line, (size_t)n, 0600, NULL));
	buf_release(&cmd);
	buf_release(&pf);
}

/* A master that does not answer -O check (SIGSTOPped, a wedged 9.2) would
 * hold its connection forever: kill the one we recorded for this path, if
 * that pid is still an ssh master of this ControlPath (pids are reused). */
static void kill_wedged_master(const struct ssh_target *t)
{
	struct buf pf = BUF_INIT, pidtxt = BUF_INIT, cmd = BUF_INIT;
	char path[64];
	long pid;

	if (master_file(t, ".pid", &pf) != 0 || fs_read_file(pf.data, &pidtxt, 64, NULL) != 0 ||
	    (pid = strtol(buf_cstr(&pidtxt), NULL, 10)) <= 0)
		goto out;
	snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
	if (fs_read_file(path, &cmd, 65536, NULL) != 0 || !cmd.len)
		goto out;
	if (is_master_cmdline(t, &cmd)) {
		log_warn("killing the wedged ControlMaster (pid %ld) of '%s'", pid, t->alias);
		(void)kill((pid_t)pid, SIGKILL);
	}
	(void)unlink(pf.data);
out:
	buf_release(&pf);
	buf_release(&pidtxt);
	buf_release(&cmd);
}

/* A master that did not answer within its deadline: its socket is useless
 * to everyone; the master itself is killed when we recorded it. */
static void drop_wedged_master(const struct ssh_target *t)
{
	log_warn("ControlMaster for '%s' does not answer; removing its socket", t->alias);
	kill_wedged_master(t);
	(void)unlink(t->control_path);
}

int ssh_master_check(const struct ssh_target *t, int *alive, struct sb_error *e)
{
	int r, code;

	*alive = 0;
	if (access(t->control_path, F_OK) != 0)
		return 0;   /* no socket: nothing to ask */
	r = control_op(t, "-Ocheck", NULL, &code, e);
	if (r == SB_ERR_TIMEOUT) {
		/* a wedged master: its socket is useless to everyone */
		drop_wedged_master(t);
		return 0;
	}
	if (r)
		return r;
	*alive = code == 0;
	return 0;
}

static const char *last_matching_line(const char *log, char *line, size_t linesz)
{
	static const char *const keys[] = {
		"REMOTE HOST IDENTIFICATION HAS CHANGED", "Host key verification failed",
		"No ED25519 host key is known", "host key is known", "Permission denied",
		"Connection refused", "Connection timed out", "timed out", "No route to host",
		"Could not resolve", "Connection closed", "Connection reset", "not responding",
		"too long for Unix domain socket", "Bad configuration", "Too many authentication failures",
	};
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *p = strstr(log, keys[i]), *s, *end;
		if (!p)
			continue;
		for (s = p; s > log && s[-1] != '\n'; s--)
			;
		end = s + strcspn(s, "\r\n");
		snprintf(line, linesz, "%.*s", (int)(end - s), s);
		return line;
	}
	return NULL;
}

int ssh_classify_failure(const struct ssh_target *t, const char *log_path, int exit_code, struct sb_error *e)
{
	struct buf log = BUF_INIT;
	char line[300];
	const char *why = NULL;
	int r;

	if (log_path && fs_read_file(log_path, &log, 1024 * 1024, NULL) == 0 && log.len)
		why = last_matching_line(log.data, line, sizeof(line));
	if (why && (strstr(why, "IDENTIFICATION HAS CHANGED") || strstr(why, "Host key verification failed") ||
		    strstr(why, "host key is known")))
		r = sb_error_set(e, SB_ERR_HOSTKEY,
				 "host key of sandbox '%s' does not match the pinned key (%s): not connecting",
				 t->host, why);
	else if (why)
		r = sb_error_set(e, SB_ERR_TRANSPORT, "cannot connect to sandbox '%s': %s", t->host, why);
	else
		r = sb_error_set(e, SB_ERR_TRANSPORT, "cannot connect to sandbox '%s': ssh exited with status %d",
				 t->host, exit_code);
	buf_release(&log);
	return r;
}

int ssh_master_ensure(const struct ssh_target *t, struct sb_error *e)
{
	return ssh_master_open(t, t->cfg->control_persist_s, e);
}

/* The argv of `ssh -f -N -oControlMaster=yes` for t's master, with its -E
 * log (emptied first, so a failure reads only this attempt) at *logp; a
 * socket left by a killed master is removed first. */
static SB_MUST_CHECK int master_open_argv(const struct ssh_target *t, int persist_s, struct buf *logp,
					  struct strvec *argv, struct sb_error *e)
{
	int logfd;

	(void)unlink(t->control_path);   /* stale socket of a killed master */
	if (paths_log(t->cfg->state_dir, strrchr(t->control_path, '/') + 1, logp) != 0 || buf_puts(logp, ".log") < 0)
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	logfd = open(logp->data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (logfd >= 0)
		close(logfd);
	if (ssh_argv_start(argv, t) || strvec_push(argv, "-f") || strvec_push(argv, "-N") ||
	    strvec_push(argv, "-oControlMaster=yes") ||
	    (persist_s < 0 ? strvec_push(argv, "-oControlPersist=yes")
			   : strvec_pushf(argv, "-oControlPersist=%d", persist_s)) ||
	    strvec_push(argv, "-E") || strvec_push(argv, logp->data) || ssh_argv_finish(argv, t, NULL))
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	return 0;
}

int ssh_master_open(const struct ssh_target *t, int persist_s, struct sb_error *e)
{
	struct strvec argv = STRVEC_INIT;
	struct buf lockp = BUF_INIT, logp = BUF_INIT;
	int64_t timeout = (int64_t)t->cfg->ssh_connect_timeout_s * 1000 + 20000;
	struct child_run_opts o = { NULL, "/", 1, 0, timeout };
	int alive = 0, fd = -1, r, code = -1;

	if ((r = ssh_master_check(t, &alive, e)) != 0 || alive)
		return r;
	if (master_file(t, ".lock", &lockp) < 0)
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	fd = fs_lock(lockp.data, timeout, e);
	if (fd < 0) {
		r = fd;
		goto out;
	}
	/* somebody else may have opened it while we waited */
	if ((r = ssh_master_check(t, &alive, e)) != 0 || alive)
		goto out;
	if ((r = master_open_argv(t, persist_s, &logp, &argv, e)) != 0)
		goto out;
	r = child_run((const char *const *)strvec_argv(&argv), &o, NULL, 0, NULL, NULL, &code, e);
	if (r == SB_ERR_TIMEOUT)
		r = sb_error_set(e, SB_ERR_TRANSPORT, "cannot connect to sandbox '%s': no answer within %lld s",
				 t->host, (long long)timeout / 1000);
	else if (!r && code != 0)
		r = ssh_classify_failure(t, logp.data, code, e);
	if (!r)
		record_master_pid(t);
out:
	fs_unlock(fd);
	strvec_clear(&argv);
	buf_release(&lockp);
	buf_release(&logp);
	return r;
}

int ssh_master_stop(const struct ssh_target *t, struct sb_error *e)
{
	int r, code;

	if (access(t->control_path, F_OK) != 0)
		return 0;
	r = control_op(t, "-Ostop", NULL, &code, e);
	if (r == SB_ERR_TIMEOUT) {
		drop_wedged_master(t);
		return 0;
	}
	return r;
}

int ssh_exec(const struct ssh_target *t, const char *cmd, const char *in, size_t in_len, struct buf *out,
	     int64_t timeout_ms, int *exit_code, struct sb_error *e)
{
	struct strvec argv = STRVEC_INIT;
	struct child_run_opts o = { NULL, "/", 1, 0, timeout_ms };
	int r;

	*exit_code = -1;
	if (ssh_argv_start(&argv, t) || strvec_push(&argv, "-T") || ssh_argv_finish(&argv, t, cmd)) {
		strvec_clear(&argv);
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	}
	r = child_run((const char *const *)strvec_argv(&argv), &o, in, in_len, out, NULL, exit_code, e);
	strvec_clear(&argv);
	if (r == SB_ERR_TIMEOUT)
		return sb_error_set(e, SB_ERR_TRANSPORT, "sandbox '%s' did not answer within %lld ms", t->host,
				    (long long)timeout_ms);
	if (!r && *exit_code == 255)
		return sb_error_set(e, SB_ERR_TRANSPORT, "cannot reach sandbox '%s' (ssh exited with status 255)",
				    t->host);
	return r;
}

/* <state>/lock/<digest>.ok: touched by the supervisor after each check of
 * the master at that ControlPath that passed. */
void ssh_master_vouch(const struct ssh_target *t, int ok)
{
	struct buf p = BUF_INIT;

	if (master_file(t, ".ok", &p) != 0) {
		/* out of memory: nothing touched; a vouch not renewed ages out
		 * within two health periods */
		buf_release(&p);
		return;
	}
	if (ok) {
		/* a touch: only the time matters, and nothing needs syncing */
		int fd = open(p.data, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

		if (fd >= 0) {
			(void)futimens(fd, NULL);
			close(fd);
		}
	} else
		(void)unlink(p.data);
	buf_release(&p);
}

int ssh_master_vouched(const struct ssh_target *t, int64_t max_age_ms)
{
	struct buf p = BUF_INIT;
	struct stat st;
	struct timespec now;
	int64_t age;
	int ok = 0;

	if (master_file(t, ".ok", &p) == 0 && stat(p.data, &st) == 0 && access(t->control_path, F_OK) == 0 &&
	    clock_gettime(CLOCK_REALTIME, &now) == 0) {
		age = (int64_t)(now.tv_sec - st.st_mtim.tv_sec) * 1000 + (now.tv_nsec - st.st_mtim.tv_nsec) / 1000000;
		ok = age >= 0 && age <= max_age_ms;
	}
	buf_release(&p);
	return ok;
}

/* ---- non-blocking twins (ssh.h) ---- */

/* Start argv in c: own session, cwd /, stdin and stderr /dev/null. */
static SB_MUST_CHECK int start_argv(struct strvec *argv, struct child *c, int capture, struct sb_error *e)
{
	int r;

	c->argv = (const char *const *)strvec_argv(argv);
	c->env = NULL;
	c->cwd = "/";
	c->new_session = 1;
	c->in = CHILD_NULL;
	c->out = capture ? CHILD_PIPE : CHILD_NULL;
	c->err = CHILD_NULL;
	r = child_start(c, e);
	if (!r && c->out_fd >= 0 && fd_set_nonblock(c->out_fd) != 0) {
		child_signal(c, SIGKILL);
		child_close_fds(c);
		sb_best_effort(child_wait(c, clock_deadline_in(0), 1000));   /* killed: it ends */
		r = sb_error_set(e, SB_ERR_IO, "cannot read ssh's output without blocking");
	}
	strvec_clear(argv);
	return r;
}

/* `ssh -O <op>` started on c; 1 when there is no socket to ask. */
static SB_MUST_CHECK int control_start(const struct ssh_target *t, const char *op, struct child *c, struct sb_error *e)
{
	struct strvec argv = STRVEC_INIT;

	if (access(t->control_path, F_OK) != 0)
		return 1;
	if (ssh_argv_start(&argv, t) || strvec_push(&argv, op) || ssh_argv_finish(&argv, t, NULL)) {
		strvec_clear(&argv);
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	}
	return start_argv(&argv, c, 0, e);
}

int ssh_master_check_start(const struct ssh_target *t, struct child *c, struct sb_error *e)
{
	return control_start(t, "-Ocheck", c, e);
}

int ssh_master_check_finish(const struct ssh_target *t, struct child *c, int timed_out, int *alive,
			    struct sb_error *e)
{
	(void)e;
	*alive = 0;
	if (timed_out) {
		drop_wedged_master(t);
		return 0;
	}
	*alive = child_exit_code(c) == 0;
	return 0;
}

int ssh_master_stop_start(const struct ssh_target *t, struct child *c, struct sb_error *e)
{
	return control_start(t, "-Ostop", c, e);
}

void ssh_master_stop_finish(const struct ssh_target *t, struct child *c, int timed_out)
{
	(void)c;   /* its status says nothing more: the socket is gone either way */
	if (timed_out) {
		drop_wedged_master(t);
	}
}

int64_t ssh_master_open_timeout_ms(const struct ssh_target *t)
{
	return (int64_t)t->cfg->ssh_connect_timeout_s * 1000 + 20000;
}

int ssh_master_open_start(const struct ssh_target *t, int persist_s, struct child *c, int *lockfd,
			  struct sb_error *e)
{
	struct strvec argv = STRVEC_INIT;
	struct buf lockp = BUF_INIT, logp = BUF_INIT;
	struct sb_error le = SB_ERROR_INIT;
	int fd = -1, r;

	*lockfd = -1;
	if (master_file(t, ".lock", &lockp) < 0)
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	/* never wait for the flock: whoever holds it is opening this master */
	fd = fs_lock(lockp.data, 0, &le);
	if (fd < 0) {
		if (fd != SB_ERR_TIMEOUT && e)
			*e = le;
		r = fd == SB_ERR_TIMEOUT ? 1 : fd;
		goto out;
	}
	/* the caller's -O check said no master; under the flock a listening
	 * socket is one opened since (no -O check here: it could block) */
	if (fs_sock_probe(t->control_path) == FS_SOCK_LISTENING) {
		r = 1;
		goto out;
	}
	if ((r = master_open_argv(t, persist_s, &logp, &argv, e)) != 0) {
		strvec_clear(&argv);
		goto out;
	}
	if ((r = start_argv(&argv, c, 0, e)) != 0)
		goto out;
	*lockfd = fd;   /* held until the finish: the master is ours to open */
	fd = -1;
out:
	fs_unlock(fd);
	buf_release(&lockp);
	buf_release(&logp);
	return r;
}

int ssh_master_open_finish(const struct ssh_target *t, struct child *c, int timed_out, int *lockfd,
			   struct sb_error *e)
{
	struct buf logp = BUF_INIT;
	int r = 0, code = child_exit_code(c);

	if (timed_out) {
		r = sb_error_set(e, SB_ERR_TRANSPORT, "cannot connect to sandbox '%s': no answer within %lld s",
				 t->host, (long long)ssh_master_open_timeout_ms(t) / 1000);
	} else if (code != 0) {
		if (paths_log(t->cfg->state_dir, strrchr(t->control_path, '/') + 1, &logp) != 0 ||
		    buf_puts(&logp, ".log") < 0)
			r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
		else
			r = ssh_classify_failure(t, logp.data, code, e);
	} else {
		record_master_pid(t);
	}
	fs_unlock(*lockfd);
	*lockfd = -1;
	buf_release(&logp);
	return r;
}

int ssh_exec_start(const struct ssh_target *t, const char *cmd, int capture, struct child *c, struct sb_error *e)
{
	struct strvec argv = STRVEC_INIT;

	if (ssh_argv_start(&argv, t) || strvec_push(&argv, "-T") || ssh_argv_finish(&argv, t, cmd)) {
		strvec_clear(&argv);
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	}
	return start_argv(&argv, c, capture, e);
}

int ssh_exec_finish(const struct ssh_target *t, struct child *c, int timed_out, int64_t timeout_ms,
		    int *exit_code, struct sb_error *e)
{
	*exit_code = child_exit_code(c);
	if (timed_out)
		return sb_error_set(e, SB_ERR_TRANSPORT, "sandbox '%s' did not answer within %lld ms", t->host,
				    (long long)timeout_ms);
	if (*exit_code == 255)
		return sb_error_set(e, SB_ERR_TRANSPORT, "cannot reach sandbox '%s' (ssh exited with status 255)",
				    t->host);
	return 0;
}
