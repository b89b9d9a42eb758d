/* sshbox supervise: the daemon (supervise.h), in the foreground. */
#include "cmd.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "supervise.h"

static const char *config_path;

/* Re-read the configuration; the running one stays when the new one is bad. */
static SB_MUST_CHECK int reload(struct config *cfg, struct sb_error *e)
{
	struct config fresh = CONFIG_INIT;
	int r = config_load(&fresh, config_path, e);

	if (r)
		return r;
	/* our lock, agents and masters live in the state dir: moving it takes
	 * a restart */
	if (strcmp(fresh.state_dir, cfg->state_dir) != 0) {
		r = sb_error_set(e, SB_ERR_USAGE, "state_dir changed from '%s' to '%s': restart the supervisor for that",
				 cfg->state_dir, fresh.state_dir);
		config_release(&fresh);
		return r;
	}
	config_release(cfg);
	*cfg = fresh;
	return 0;
}

int cmd_supervise(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct sb_error e = SB_ERROR_INIT;

	(void)argv;
	if (argc > 1) {
		sb_error_set(&e, SB_ERR_USAGE, "'supervise' takes no arguments (it reads the configuration)");
		cmd_print_error(&e);
		return SB_EXIT_USAGE;
	}
	if (!getenv("SSHBOX_LOG_LEVEL"))
		log_set_level(LOG_INFO);
	log_set_timestamps(1);
	config_path = ctx->config_path;
	/* SIGTERM/SIGINT/SIGHUP: supervise_run reads them from a signalfd */
	if (supervise_run(ctx->cfg, reload, &e) != 0) {
		cmd_print_error(&e);
		return e.code == SB_ERR_EXISTS ? SB_EXIT_TEMPFAIL : sb_err_exit_code(e.code);
	}
	return SB_EXIT_OK;
}
