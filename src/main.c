/* layer 4: startup hygiene and the command table. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "secret.h"

struct command {
	const char *name;
	const char *usage;
	int (*fn)(struct cmd_ctx *ctx, int argc, char **argv);
	int needs_config;
};

static const struct command commands[] = {
	{ "fernet", "fernet genkey | encrypt | decrypt [--ttl S]", cmd_fernet, 1 },
	{ "key", "key set|show|rotate --account A [--encrypted] | key reencrypt", cmd_key, 1 },
	{ "sandbox", "sandbox add|list|show|check|enable|disable|drain|remove ...", cmd_sandbox, 1 },
	{ "ssh-config", "ssh-config", cmd_ssh_config, 1 },
	{ "run", "run  (job spec as JSON on stdin)", cmd_run, 1 },
	{ "status", "status [--json]", cmd_status, 1 },
	{ "supervise", "supervise  (the daemon, in the foreground)", cmd_supervise, 1 },
	{ "ssh", "ssh --account A --host H [-- CMD...]", cmd_ssh, 1 },
};

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: sshbox [--config FILE] [--json] <command> [options]\n\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  sshbox %s\n", commands[i].usage);
	fprintf(f, "\nSee sshbox(1) and docs/ for details.\n");
}

/* fds 0-2 must be open, or the first file we open becomes "stdout". */
static void ensure_std_fds(void)
{
	int fd;

	while ((fd = open("/dev/null", O_RDWR | O_CLOEXEC)) >= 0 && fd <= 2) {
		int fl = fcntl(fd, F_GETFD);
		(void)fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
	}
	if (fd > 2)
		close(fd);
}

/* What this process itself used (bench/scale.sh reads it): /usr/bin/time
 * cannot tell, its peak RSS is the largest of the whole tree, and the ssh
 * client a job runs is bigger than sshbox. */
static void log_own_usage(const char *name)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) == 0)
		log_debug("%s: own usage: %ld.%03ld s user, %ld.%03ld s sys, peak RSS %ld KiB", name,
			  (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec / 1000, (long)ru.ru_stime.tv_sec,
			  (long)ru.ru_stime.tv_usec / 1000, ru.ru_maxrss);
}

int main(int argc, char **argv)
{
	struct cmd_ctx ctx = { NULL, NULL, 0 };
	struct config cfg = CONFIG_INIT;
	struct sb_error e = SB_ERROR_INIT;
	const struct command *cmd = NULL;
	const char *lvl;
	int i, rc;

	ensure_std_fds();
	signal(SIGPIPE, SIG_IGN);     /* EPIPE is an error we handle */
	signal(SIGCHLD, SIG_DFL);     /* an inherited SIG_IGN would hide exit statuses */
	umask(077);
	secret_process_harden();
	if ((lvl = getenv("SSHBOX_LOG_LEVEL")) != NULL && log_level_parse(lvl) >= 0)
		log_set_level((enum log_level)log_level_parse(lvl));

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			ctx.config_path = argv[++i];
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			ctx.config_path = argv[i] + 9;
		} else if (strcmp(argv[i], "--json") == 0) {
			ctx.json = 1;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0 ||
			   strcmp(argv[i], "help") == 0) {
			usage(stdout);
			return SB_EXIT_OK;
		} else if (argv[i][0] == '-') {
			sb_error_set(&e, SB_ERR_USAGE, "unknown option '%.64s' (see sshbox --help)", argv[i]);
			cmd_print_error(&e);
			return SB_EXIT_USAGE;
		} else {
			break;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return SB_EXIT_USAGE;
	}
	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
		if (strcmp(argv[i], commands[k].name) == 0)
			cmd = &commands[k];
	if (!cmd) {
		sb_error_set(&e, SB_ERR_USAGE, "unknown command '%.64s' (see sshbox --help)", argv[i]);
		cmd_print_error(&e);
		return SB_EXIT_USAGE;
	}
	/* options after the command name that belong to everyone */
	for (int k = i + 1; k < argc; k++)
		if (strcmp(argv[k], "--json") == 0)
			ctx.json = 1;
	if (cmd->needs_config) {
		if (config_load(&cfg, ctx.config_path, &e) != 0) {
			cmd_print_error(&e);
			return SB_EXIT_USAGE;
		}
		ctx.cfg = &cfg;
	}
	rc = cmd->fn(&ctx, argc - i, argv + i);
	config_release(&cfg);
	log_own_usage(cmd->name);
	return rc;
}
