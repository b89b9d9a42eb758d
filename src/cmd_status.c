/* sshbox status [--json]: sandboxes, slots and their holders, and whether
 * this host has a live ControlMaster to each. */
#include "cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "kv.h"
#include "lock.h"
#include "paths.h"
#include "registry.h"
#include "pool.h"
#include "ssh.h"
#include "validate.h"

/* The account's key_version, 0 when it has no key (then no master can
 * exist).  Only that field: status has no use for the key token. */
static SB_MUST_CHECK int key_version_get(struct kv *kv, const char *account, long long *out, struct sb_error *e)
{
	char key[REGISTRY_KEY_MAX];
	struct buf v = BUF_INIT;
	int r, found = 0;

	*out = 0;
	if ((r = registry_key_account(key, sizeof(key), account, e)) != 0 ||
	    (r = kv_cmd_string(kv, &v, &found, e, "HGET", key, "key_version", NULL)) != 0)
		goto out;
	if (found)
		*out = strtoll(buf_cstr(&v), NULL, 10);
out:
	buf_release(&v);
	return r;
}

/* "up" or "down": is there a master at the ControlPath a job of this host
 * would use (the supervisor's or a job's own)?  "unknown" when ssh could
 * not be asked.  No socket answers at once; a wedged master costs
 * ssh_master_check's deadline once (it is killed and its socket removed). */
static const char *master_state(const struct config *cfg, const struct sandbox_rec *s, long long key_version)
{
	struct sb_error e = SB_ERROR_INIT;
	struct buf cp = BUF_INIT, alias = BUF_INIT;
	struct ssh_target t;
	const char *state = "unknown";
	int alive = 0;

	if (key_version <= 0)
		return "down";
	if (paths_control(cfg->state_dir, s->account, key_version, s->host, s->port, s->user, s->host_key, &cp,
			  &e) != 0 || paths_alias(s->account, s->host, &alias) != 0)
		goto out;
	t.cfg = cfg;
	t.alias = buf_cstr(&alias);
	t.host = s->host;
	t.control_path = buf_cstr(&cp);
	t.agent_sock = NULL;
	if (ssh_master_check(&t, &alive, &e) == 0)
		state = alive ? "up" : "down";
out:
	buf_release(&cp);
	buf_release(&alias);
	return state;
}

int cmd_status(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct sb_error e = SB_ERROR_INIT;
	struct sandbox_rec *list = NULL;
	struct buf out = BUF_INIT, queues = BUF_INIT;
	struct pool_health health;
	long long qlen = 0, key_version = 0;
	const char *master;
	int nq = 0;
	struct kv *kv = NULL;
	size_t n = 0, i;
	int r = 0, k;

	(void)argv;
	if (argc > 2 || (argc == 2 && !ctx->json)) {
		sb_error_set(&e, SB_ERR_USAGE, "'status' takes no arguments besides --json");
		goto fail;
	}
	if ((r = kv_open(&kv, ctx->cfg->redis_url, ctx->cfg->redis_timeout_ms, &e)) != 0 ||
	    (r = registry_sandbox_list(kv, NULL, &list, &n, &e)) != 0)
		goto fail;
	buf_adds(&out, ctx->json ? "{\"sandboxes\":[" : "");
	for (i = 0; i < n && !r; i++) {
		struct lock_holder h[VALIDATE_SLOTS_MAX];
		int used = 0;

		if ((r = lock_list_holders(kv, list[i].account, list[i].host, list[i].slots, h, &used, &e)) != 0 ||
		    (r = pool_health_get(kv, list[i].account, list[i].host, &health, &e)) != 0)
			break;
		if (i == 0 || strcmp(list[i].account, list[i - 1].account) != 0) {
			if ((r = pool_queue_len(kv, list[i].account, &qlen, &e)) != 0 ||
			    (r = key_version_get(kv, list[i].account, &key_version, &e)) != 0)
				break;
			if (ctx->json) {
				if (nq)
					buf_addc(&queues, ',');
				cmd_json_string(&queues, list[i].account);
				buf_addf(&queues, ":%lld", qlen);
				nq++;
			} else {
				buf_addf(&out, "account %s: %lld job%s waiting\n", list[i].account, qlen, qlen == 1 ? "" : "s");
			}
		}
		master = master_state(ctx->cfg, &list[i], key_version);
		if (ctx->json) {
			buf_adds(&out, i ? ",{\"account\":" : "{\"account\":");
			cmd_json_string(&out, list[i].account);
			buf_adds(&out, ",\"host\":");
			cmd_json_string(&out, list[i].host);
			buf_adds(&out, ",\"state\":");
			cmd_json_string(&out, list[i].state);
			buf_adds(&out, ",\"health\":");
			cmd_json_string(&out, health.unhealthy ? "unhealthy" : "healthy");
			buf_adds(&out, ",\"master\":");
			cmd_json_string(&out, master);
			if (health.unhealthy) {
				buf_addf(&out, ",\"unhealthy_since\":%lld,\"failures\":%lld,\"retry_in_ms\":%lld,\"reason\":",
					   health.since, health.failures, health.retry_in_ms);
				cmd_json_string(&out, health.reason);
			}
			buf_addf(&out, ",\"slots\":%d,\"slots_used\":%d,\"holders\":[", list[i].slots, used);
			for (k = 0; k < used; k++) {
				buf_addf(&out, "%s{\"slot\":%d,\"job_id\":", k ? "," : "", h[k].slot);
				cmd_json_string(&out, h[k].job_id);
				buf_addf(&out, ",\"fence\":%lld,\"age_ms\":%lld,\"lease_ms\":%lld}", h[k].fence,
					   h[k].age_ms, h[k].pttl_ms);
			}
			buf_adds(&out, "]}");
		} else {
			buf_addf(&out, "  %s  %s, %s", list[i].host, list[i].state,
				   health.unhealthy ? "UNHEALTHY" : "healthy");
			if (health.unhealthy)
				buf_addf(&out, " since %lld (%lld failures, retry in %lld s: %s)", health.since,
					   health.failures, health.retry_in_ms / 1000, health.reason);
			buf_addf(&out, ", slots %d/%d, master %s\n", used, list[i].slots, master);
			for (k = 0; k < used; k++)
				buf_addf(&out, "    slot %d: job %s, running %lld s (fence %lld, lease %lld ms left)\n",
					   h[k].slot, h[k].job_id, h[k].age_ms / 1000, h[k].fence, h[k].pttl_ms);
		}
	}
	if (!r && ctx->json)
		buf_addf(&out, "],\"queues\":{%s}", buf_cstr(&queues));
	if (r)
		goto fail;
	if (ctx->json)
		buf_adds(&out, "}\n");
	else if (!n)
		buf_adds(&out, "no sandboxes registered\n");
	if (buf_check(&queues) != 0) {
		sb_error_set(&e, SB_ERR_NOMEM, "out of memory");
		goto fail;
	}
	if (cmd_write_out(&out, &e) != 0)
		goto fail;
	sandbox_rec_free_array(list, n);
	buf_release(&out);
	buf_release(&queues);
	kv_free(kv);
	return SB_EXIT_OK;
fail:
	sandbox_rec_free_array(list, n);
	buf_release(&out);
	buf_release(&queues);
	kv_free(kv);
	cmd_print_error(&e);
	return sb_err_exit_code(e.code ? e.code : SB_ERR_USAGE);
}
