/* layer 4: the command table's interface.  One cmd_*.c per command. */
#ifndef SSHBOX_CMD_H
#define SSHBOX_CMD_H

#include "agent.h"
#include "buf.h"
#include "config.h"
#include "kv.h"
#include "registry.h"
#include "ssh.h"

struct cmd_ctx {
	const char *config_path;  /* --config, or NULL */
	struct config *cfg;       /* loaded before the command runs */
	int json;                 /* --json given */
};

/* Each returns the process exit code (enum sb_exit).  argv[0] is the
 * command's own name ("fernet", "key", ...). */
int cmd_fernet(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_key(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_sandbox(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_ssh_config(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_run(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_status(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_supervise(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_ssh(struct cmd_ctx *ctx, int argc, char **argv);

/* A way to one sandbox for operator commands: the account's key in an agent
 * (the supervisor's, else a private one) and the master up.  Free with
 * cmd_disconnect (also after a failed cmd_connect). */
struct cmd_conn {
	struct account_rec acct;
	struct buf alias, cpath, agent_sock;
	struct agent agent;
	struct ssh_target t;
};
int cmd_connect(const struct config *cfg, struct kv *kv, const struct sandbox_rec *sbx, struct cmd_conn *c,
		struct sb_error *e);
void cmd_disconnect(struct cmd_conn *c);

/* "sshbox: error: <msg>" on stderr (one line). */
void cmd_print_error(const struct sb_error *e);
/* Append s as a JSON string (for --json output). */
struct buf;
void cmd_json_string(struct buf *out, const char *s);

#endif
