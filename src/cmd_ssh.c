/* sshbox ssh --account A --host H [-- CMD...]: an operator's shell or
 * command through the same config, agent and pool as the jobs. */
#include "cmd.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "child.h"
#include "clock.h"
#include "conn.h"
#include "strvec.h"
#include "validate.h"

extern char **environ;

int cmd_ssh(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct sb_error e = SB_ERROR_INIT;
	struct sandbox_rec sbx = SANDBOX_REC_INIT;
	struct conn c = CONN_INIT;
	struct strvec av = STRVEC_INIT;
	struct child ch = CHILD_INIT;
	const char *account = NULL, *host = NULL;
	struct kv *kv = NULL;
	int i, r, cmd_at = argc, rc;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			cmd_at = i + 1;
			break;
		} else if (strcmp(argv[i], "--account") == 0 && i + 1 < argc) {
			account = argv[++i];
		} else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
			host = argv[++i];
		} else {
			sb_error_set(&e, SB_ERR_USAGE, "unknown option '%.64s' for 'ssh' (usage: sshbox ssh --account A --host H [-- CMD...])",
				     argv[i]);
			goto fail;
		}
	}
	if (!account || !host) {
		sb_error_set(&e, SB_ERR_USAGE, "'ssh' needs --account and --host");
		goto fail;
	}
	if (validate_account(account, &e) || validate_host(host, &e))
		goto fail;
	if ((r = kv_open(&kv, ctx->cfg->redis_url, ctx->cfg->redis_timeout_ms, &e)) != 0 ||
	    (r = registry_sandbox_get(kv, account, host, &sbx, &e)) != 0 ||
	    (r = conn_open(&c, ctx->cfg, kv, &sbx, &e)) != 0)
		goto fail;
	if (ssh_argv_start(&av, &c.t) || (cmd_at >= argc && isatty(STDIN_FILENO) && strvec_push(&av, "-t")) ||
	    strvec_push(&av, "--") || strvec_push(&av, c.t.alias)) {
		sb_error_set(&e, SB_ERR_NOMEM, "out of memory");
		goto fail;
	}
	for (i = cmd_at; i < argc; i++)
		if (strvec_push(&av, argv[i])) {
			sb_error_set(&e, SB_ERR_NOMEM, "out of memory");
			goto fail;
		}
	ch.argv = (const char *const *)strvec_argv(&av);
	ch.env = (const char *const *)environ;   /* TERM, LANG: it is the operator's session */
	ch.in = ch.out = ch.err = CHILD_INHERIT;
	/* ^C belongs to the remote side (or to ssh), not to us */
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	if (child_start(&ch, &e) != 0)
		goto fail;
	sb_best_effort(child_wait(&ch, INT64_MAX, 1000));   /* no deadline: it returns when ssh has ended */
	rc = child_exit_code(&ch);
	strvec_clear(&av);
	conn_release(&c);
	sandbox_rec_release(&sbx);
	kv_free(kv);
	return rc < 0 ? SB_EXIT_SOFTWARE : rc;
fail:
	strvec_clear(&av);
	conn_release(&c);
	sandbox_rec_release(&sbx);
	kv_free(kv);
	cmd_print_error(&e);
	return sb_err_exit_code(e.code ? e.code : SB_ERR_USAGE);
}
