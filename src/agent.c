#include "agent.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "fernet.h"
#include "keys.h"
#include "paths.h"
#include "strvec.h"

#define SSH_AGENT "/usr/bin/ssh-agent"
#define SSH_ADD "/usr/bin/ssh-add"
#define AGENT_TIMEOUT_MS 10000

static int sock_connects(const char *path)
{
	struct sockaddr_un sa;
	int fd, ok;

	if (strlen(path) >= sizeof(sa.sun_path))
		return 0;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, path);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* ssh-agent is setgid on Debian, and the kernel drops PR_SET_PDEATHSIG
 * across a setgid exec: a killed sshbox would leave the agent (and the key)
 * behind.  So a plain shell sits between us and the agent: it stops the
 * agent when its stdin -- a pipe whose only writer is this process -- closes,
 * which happens however this process ends. */
static const char agent_keeper[] =
	"\"$0\" -D -a \"$1\" </dev/null >/dev/null 2>&1 & a=$!; "
	"trap 'kill $a 2>/dev/null' TERM INT; read -r _; kill $a 2>/dev/null; wait $a";

int agent_start(struct agent *a, const char *sock, struct sb_error *e)
{
	const char *argv[] = { "/bin/sh", "-c", agent_keeper, SSH_AGENT, sock, NULL };
	int64_t deadline;
	int r;

	if (sock_connects(sock))
		return sb_error_set(e, SB_ERR_EXISTS, "an ssh-agent already listens on '%s'", sock);
	(void)unlink(sock);   /* stale: nobody answers on it */
	a->sock = strdup(sock);
	if (!a->sock)
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	a->proc = (struct child)CHILD_INIT;
	a->proc.argv = argv;
	a->proc.no_core = 1;          /* -D skips the agent's own RLIMIT_CORE */
	a->proc.new_session = 1;
	a->proc.in = CHILD_PIPE;
	a->proc.out = CHILD_NULL;
	a->proc.err = CHILD_NULL;
	if ((r = child_start(&a->proc, e)) != 0) {
		free(a->sock);
		a->sock = NULL;
		return r;
	}
	deadline = clock_deadline_in(AGENT_TIMEOUT_MS);
	while (!sock_connects(sock)) {
		if (child_poll(&a->proc)) {
			r = sb_error_set(e, SB_ERR_IO, "ssh-agent exited with status %d before listening on '%s'",
					 child_exit_code(&a->proc), sock);
			agent_stop(a);
			return r;
		}
		if (clock_expired(deadline)) {
			agent_stop(a);
			return sb_error_set(e, SB_ERR_TIMEOUT, "ssh-agent did not listen on '%s' within %d ms",
					    sock, AGENT_TIMEOUT_MS);
		}
		clock_sleep_ms(2);
	}
	return 0;
}

void agent_stop(struct agent *a)
{
	if (a->proc.pid > 0 && !a->proc.reaped) {
		child_close_fds(&a->proc);   /* the keeper stops the agent */
		if (child_wait(&a->proc, clock_deadline_in(2000), 1000) != 0)
			child_signal(&a->proc, SIGKILL);   /* the whole group */
	}
	child_close_fds(&a->proc);
	if (a->sock) {
		(void)unlink(a->sock);
		free(a->sock);
		a->sock = NULL;
	}
	a->proc = (struct child)CHILD_INIT;
}

static int agent_env(struct strvec *env, const char *sock)
{
	if (strvec_push(env, "PATH=/usr/bin:/bin") < 0 ||
	    strvec_push(env, "SSH_ASKPASS_REQUIRE=never") < 0 ||
	    strvec_pushf(env, "SSH_AUTH_SOCK=%s", sock) < 0)
		return SB_ERR_NOMEM;
	return 0;
}

static void first_line(struct buf *b)
{
	char *nl;

	if (b->data && (nl = strchr(b->data, '\n')) != NULL) {
		*nl = '\0';
		b->len = (size_t)(nl - b->data);
	}
}

int agent_add_key(const char *sock, const char *key, size_t key_len, int lifetime_s, struct sb_error *e)
{
	struct strvec argv = STRVEC_INIT, env = STRVEC_INIT;
	struct child_run_opts o = { NULL, "/", 1, 1, AGENT_TIMEOUT_MS };
	struct buf err = BUF_INIT;
	int r, code = -1;

	buf_init(&err, 4096);
	if ((r = agent_env(&env, sock)) != 0 ||
	    strvec_push(&argv, SSH_ADD) < 0 || strvec_push(&argv, "-q") < 0 ||
	    strvec_push(&argv, "-k") < 0)
		goto nomem;
	if (lifetime_s > 0 && (strvec_push(&argv, "-t") < 0 || strvec_pushf(&argv, "%d", lifetime_s) < 0))
		goto nomem;
	if (strvec_push(&argv, "-") < 0)
		goto nomem;
	o.env = (const char *const *)strvec_argv(&env);
	r = child_run((const char *const *)strvec_argv(&argv), &o, key, key_len, NULL, &err, &code, e);
	if (!r && code != 0) {
		first_line(&err);
		r = sb_error_set(e, code == 2 ? SB_ERR_IO : SB_ERR_USAGE,
				 code == 2 ? "cannot reach ssh-agent at '%s': %s" : "ssh-add refused the key for agent '%s': %s",
				 sock, err.len ? err.data : "no message");
	}
	goto out;
nomem:
	r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
out:
	strvec_clear(&argv);
	strvec_clear(&env);
	buf_release(&err);
	return r;
}

/* "type base64 [comment]" → length of "type base64" */
static size_t pub_core_len(const char *p)
{
	const char *s1 = strchr(p, ' '), *s2;

	if (!s1)
		return strcspn(p, "\r\n");
	s2 = s1 + 1 + strcspn(s1 + 1, " \r\n");
	return (size_t)(s2 - p);
}

int agent_has_key(const char *sock, const char *pub, int *has_key, struct sb_error *e)
{
	const char *argv[] = { SSH_ADD, "-L", NULL };
	struct strvec env = STRVEC_INIT;
	struct child_run_opts o = { NULL, "/", 1, 0, AGENT_TIMEOUT_MS };
	struct buf out = BUF_INIT;
	size_t want = pub_core_len(pub);
	const char *line;
	int r, code = -1;

	*has_key = 0;
	buf_init(&out, 1024 * 1024);
	if (agent_env(&env, sock) < 0) {
		r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
		goto out;
	}
	o.env = (const char *const *)strvec_argv(&env);
	r = child_run(argv, &o, NULL, 0, &out, NULL, &code, e);
	if (r)
		goto out;
	if (code == 2 || (code != 0 && code != 1)) {
		r = sb_error_set(e, SB_ERR_IO, "ssh-agent at '%s' does not answer (ssh-add exit %d)", sock, code);
		goto out;
	}
	for (line = buf_cstr(&out); *line; ) {
		size_t len = strcspn(line, "\n");
		if (pub_core_len(line) == want && strncmp(line, pub, want) == 0) {
			*has_key = 1;
			break;
		}
		line += len + (line[len] == '\n');
	}
out:
	strvec_clear(&env);
	buf_release(&out);
	return r;
}

int agent_load_token(const char *sock, const struct config *cfg, const char *account, const char *key_token,
		     int lifetime_s, struct sb_error *e)
{
	struct fernet_keyring kr = FERNET_KEYRING_INIT;
	struct buf plain, raw;
	int r;

	buf_init_secret(&plain, FERNET_MAX_PLAINTEXT + 1);
	buf_init_secret(&raw, FERNET_MAX_PLAINTEXT);
	if ((r = config_fernet_keyring(cfg, &kr, e)) != 0) {
		r = SB_ERR_UNAVAILABLE;
		goto out;
	}
	if (fernet_decrypt(&kr, key_token, strlen(key_token), -1, &raw, e) != 0) {
		r = sb_error_set(e, SB_ERR_UNAVAILABLE,
				 "cannot decrypt the SSH key of account '%s': invalid Fernet token under the configured keys",
				 account);
		goto out;
	}
	if ((r = keys_normalize(buf_cstr(&raw), raw.len, &plain)) != 0) {
		r = sb_error_set(e, SB_ERR_NOMEM, "cannot load the SSH key of account '%s': %s", account, sb_err_str(r));
		goto out;
	}
	if ((r = agent_add_key(sock, plain.data, plain.len, lifetime_s, e)) != 0) {
		sb_error_prefix(e, "cannot load the SSH key of account '%s'", account);
		r = e->code = SB_ERR_UNAVAILABLE;
	}
out:
	buf_release(&plain);
	buf_release(&raw);
	fernet_keyring_clear(&kr);
	return r;
}

/* The supervisor links agent/<account>.sock to <account>.v<N>.sock only
 * once key version N is loaded there: the link's name and a live socket
 * say what `ssh-add -L` would, without a fork and exec per job. */
static int supervisor_holds(const char *link, const char *account, long long key_version)
{
	char target[256], want[256];
	ssize_t n = readlink(link, target, sizeof(target) - 1);

	if (n <= 0)
		return 0;
	target[n] = '\0';
	snprintf(want, sizeof(want), "%s.v%lld.sock", account, key_version);
	return strcmp(target, want) == 0 && sock_connects(link);
}

int agent_prepare(const struct config *cfg, const char *account, long long key_version, const char *public_key,
		  const char *key_token, int lifetime_s, struct agent *priv, struct buf *priv_sock, struct sb_error *e)
{
	struct buf sup = BUF_INIT;
	struct stat st;
	int r, has_key = 0;

	if ((r = paths_agent_sock(cfg->state_dir, account, &sup, e)) != 0)
		goto out;
	if (supervisor_holds(sup.data, account, key_version))
		goto out;   /* the config's IdentityAgent is the supervisor's */
	/* not a link of ours (an agent someone else put there): ask it */
	if (lstat(sup.data, &st) == 0 && !S_ISLNK(st.st_mode) &&
	    agent_has_key(sup.data, public_key, &has_key, NULL) == 0 && has_key)
		goto out;
	if ((r = paths_private_agent_sock(cfg->state_dir, (long)getpid(), priv_sock, e)) != 0 ||
	    (r = agent_start(priv, priv_sock->data, e)) != 0)
		goto out;
	r = agent_load_token(priv_sock->data, cfg, account, key_token, lifetime_s, e);
out:
	buf_release(&sup);
	return r;
}
