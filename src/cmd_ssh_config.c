/* sshbox ssh-config: write the ssh_config used for everything, print its path. */
#include "cmd.h"

#include <stdio.h>

#include "buf.h"
#include "kv.h"
#include "paths.h"
#include "sshstate.h"

int cmd_ssh_config(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct sb_error e = SB_ERROR_INIT;
	struct buf path = BUF_INIT;
	struct kv *kv = NULL;
	int r;

	(void)argv;
	if (argc > 2 || (argc == 2 && !ctx->json)) {
		sb_error_set(&e, SB_ERR_USAGE, "'ssh-config' takes no arguments");
		goto fail;
	}
	if ((r = kv_open(&kv, ctx->cfg->redis_url, ctx->cfg->redis_timeout_ms, &e)) != 0)
		goto fail;
	r = sshstate_sync(kv, ctx->cfg, 1, &e);
	kv_free(kv);
	if (r)
		goto fail;
	if (paths_ssh_config(ctx->cfg->state_dir, &path) != 0) {
		sb_error_set(&e, SB_ERR_NOMEM, "out of memory");
		goto fail;
	}
	{
		struct buf out = BUF_INIT;

		if (ctx->json) {
			buf_adds(&out, "{\"ssh_config\":");
			cmd_json_string(&out, path.data);
			buf_adds(&out, "}\n");
		} else {
			buf_addf(&out, "%s\n", path.data);
		}
		r = cmd_write_out(&out, &e);
		buf_release(&out);
		if (r)
			goto fail;
	}
	buf_release(&path);
	return SB_EXIT_OK;
fail:
	buf_release(&path);
	cmd_print_error(&e);
	return sb_err_exit_code(e.code ? e.code : SB_ERR_USAGE);
}
