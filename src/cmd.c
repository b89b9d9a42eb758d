/* layer 4: helpers shared by the cmd_*.c front ends. */
#include "cmd.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "json.h"

void cmd_print_error(const struct sb_error *e)
{
	char line[SB_ERROR_MSG_MAX + 32];
	int n = snprintf(line, sizeof(line), "sshbox: error: %s\n",
			 e->msg[0] ? e->msg : sb_err_str(e->code));

	if (n > 0)
		(void)!write(STDERR_FILENO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

void cmd_json_string(struct buf *out, const char *s)
{
	json_put_string(out, s ? s : "", s ? strlen(s) : 0);   /* recorded in out */
}

int cmd_write_out(const struct buf *out, struct sb_error *e)
{
	int r = buf_check(out);

	if (r)
		return sb_error_set(e, r, "cannot build the output: %s", sb_err_str(r));
	if (fs_write_all(STDOUT_FILENO, buf_cstr(out), out->len) != 0)
		return sb_error_set(e, SB_ERR_IO, "cannot write standard output");
	return 0;
}
