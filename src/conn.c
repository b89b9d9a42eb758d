#include "conn.h"

#include <string.h>

#include "paths.h"
#include "sshstate.h"

#define OPERATOR_AGENT_LIFETIME_S 600

int conn_names(const struct config *cfg, const struct sandbox_rec *sbx, long long key_version, struct buf *alias,
	       struct buf *cpath, struct sb_error *e)
{
	if (paths_alias(sbx->account, sbx->host, alias) != 0)
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	return paths_control(cfg->state_dir, sbx->account, key_version, sbx->host, sbx->port, sbx->user,
			     sbx->host_key, cpath, e);
}

int conn_prepare(struct conn *c, const struct config *cfg, struct kv *kv, const struct sandbox_rec *sbx,
		 int agent_lifetime_s, struct sb_error *e)
{
	int r;

	if (!c->acct.account && (r = registry_account_get(kv, sbx->account, &c->acct, e)) != 0) {
		if (r == SB_ERR_NOTFOUND)
			r = sb_error_set(e, SB_ERR_UNAVAILABLE,
					 "account '%s' has no SSH key: run 'sshbox key set --account %s'", sbx->account,
					 sbx->account);
		return r;
	}
	if ((r = sshstate_sync(kv, cfg, 0, e)) != 0 ||
	    (r = conn_names(cfg, sbx, c->acct.key_version, &c->alias, &c->cpath, e)) != 0)
		return r;
	c->t.cfg = cfg;
	c->t.alias = c->alias.data;
	c->t.host = sbx->host;
	c->t.control_path = c->cpath.data;
	c->t.agent_sock = NULL;
	/* always an agent, even with a warm master: a session whose master
	 * went away falls back to a direct connection, which needs the key */
	if (!c->agent.sock &&
	    (r = agent_prepare(cfg, sbx->account, c->acct.key_version, c->acct.public_key, c->acct.key_token,
			       agent_lifetime_s, &c->agent, &c->agent_sock, e)) != 0)
		return r;
	if (c->agent.sock)
		c->t.agent_sock = c->agent_sock.data;
	return 0;
}

int conn_master(struct conn *c, int64_t vouch_max_age_ms, struct sb_error *e)
{
	/* the supervisor checked this master a moment ago: no -O check of
	 * our own (a master wedged since then is caught by the caller's
	 * deadline on the session) */
	if (vouch_max_age_ms > 0 && ssh_master_vouched(&c->t, vouch_max_age_ms))
		return 0;
	return ssh_master_ensure(&c->t, e);
}

int conn_open(struct conn *c, const struct config *cfg, struct kv *kv, const struct sandbox_rec *sbx,
	      struct sb_error *e)
{
	int r = conn_prepare(c, cfg, kv, sbx, OPERATOR_AGENT_LIFETIME_S, e);

	return r ? r : conn_master(c, 0, e);
}

void conn_release(struct conn *c)
{
	if (c->agent.sock)
		agent_stop(&c->agent);
	account_rec_release(&c->acct);
	buf_release(&c->alias);
	buf_release(&c->cpath);
	buf_release(&c->agent_sock);
	*c = (struct conn)CONN_INIT;
}
