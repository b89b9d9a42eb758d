/* Operator commands' way to a sandbox (sandbox check, ssh): the same
 * ssh_config, agent and ControlMaster as `sshbox run`. */
#include "cmd.h"

#include <string.h>

#include "paths.h"
#include "transport.h"

int cmd_connect(const struct config *cfg, struct kv *kv, const struct sandbox_rec *sbx, struct cmd_conn *c,
		struct sb_error *e)
{
	int r;

	memset(c, 0, sizeof(*c));
	c->acct = (struct account_rec)ACCOUNT_REC_INIT;
	c->alias = (struct buf)BUF_INIT;
	c->cpath = (struct buf)BUF_INIT;
	c->agent_sock = (struct buf)BUF_INIT;
	c->agent = (struct agent)AGENT_INIT;
	if ((r = registry_account_get(kv, sbx->account, &c->acct, e)) != 0) {
		if (r == SB_ERR_NOTFOUND)
			r = sb_error_set(e, SB_ERR_UNAVAILABLE, "account '%s' has no SSH key: run 'sshbox key set --account %s'",
					 sbx->account, sbx->account);
		return r;
	}
	if ((r = transport_sync(kv, cfg, 0, e)) != 0 || (r = paths_alias(sbx->account, sbx->host, &c->alias)) != 0 ||
	    (r = paths_control(cfg->state_dir, sbx->account, c->acct.key_version, sbx->host, sbx->port, sbx->user,
			       sbx->host_key, &c->cpath, e)) != 0)
		return r ? r : SB_ERR_NOMEM;
	c->t.cfg = cfg;
	c->t.alias = c->alias.data;
	c->t.host = sbx->host;
	c->t.control_path = c->cpath.data;
	if ((r = agent_prepare(cfg, sbx->account, c->acct.key_version, c->acct.public_key, c->acct.key_token, 600,
			       &c->agent, &c->agent_sock, e)) != 0)
		return r;
	if (c->agent.sock)
		c->t.agent_sock = c->agent_sock.data;
	return ssh_master_ensure(&c->t, e);
}

void cmd_disconnect(struct cmd_conn *c)
{
	if (c->agent.sock)
		agent_stop(&c->agent);
	account_rec_release(&c->acct);
	buf_release(&c->alias);
	buf_release(&c->cpath);
	buf_release(&c->agent_sock);
}
