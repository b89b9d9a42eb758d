/* layer 4: the command table's interface.  One cmd_*.c per command. */
#ifndef SSHBOX_CMD_H
#define SSHBOX_CMD_H

#include "buf.h"
#include "config.h"
#include "kv.h"
#include "registry.h"

struct cmd_ctx {
	const char *config_path;  /* --config, or NULL */
	struct config *cfg;       /* loaded before the command runs */
	int json;                 /* --json given */
};

/* Each returns the process exit code (enum sb_exit).  argv[0] is the
 * command's own name ("fernet", "key", ...). */
SB_MUST_CHECK int cmd_fernet(struct cmd_ctx *ctx, int argc, char **argv);
SB_MUST_CHECK int cmd_key(struct cmd_ctx *ctx, int argc, char **argv);
SB_MUST_CHECK int cmd_sandbox(struct cmd_ctx *ctx, int argc, char **argv);
SB_MUST_CHECK int cmd_ssh_config(struct cmd_ctx *ctx, int argc, char **argv);
SB_MUST_CHECK int cmd_run(struct cmd_ctx *ctx, int argc, char **argv);
SB_MUST_CHECK int cmd_status(struct cmd_ctx *ctx, int argc, char **argv);
SB_MUST_CHECK int cmd_supervise(struct cmd_ctx *ctx, int argc, char **argv);
SB_MUST_CHECK int cmd_ssh(struct cmd_ctx *ctx, int argc, char **argv);

/* "sshbox: error: <msg>" on stderr (one line). */
void cmd_print_error(const struct sb_error *e);
/* Append s as a JSON string (for --json output); a builder (buf.h). */
struct buf;
void cmd_json_string(struct buf *out, const char *s);
/* Write a built output to stdout: SB_ERR_NOMEM/TOOBIG when it could not be
 * built whole (nothing is written then), SB_ERR_IO when stdout refused. */
SB_MUST_CHECK int cmd_write_out(const struct buf *out, struct sb_error *e);

#endif
