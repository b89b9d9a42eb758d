#include "sshstate.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "paths.h"
#include "registry.h"
#include "sshconf.h"

static SB_MUST_CHECK int write_pubkeys(struct kv *kv, const struct config *cfg, char **accounts, size_t n,
			 long long *versions, struct sb_error *e)
{
	struct buf path = BUF_INIT, line = BUF_INIT;
	size_t i;
	int r = 0;

	for (i = 0; i < n && !r; i++) {
		struct account_rec a = ACCOUNT_REC_INIT;

		versions[i] = 0;
		r = registry_account_get(kv, accounts[i], &a, e);
		if (r == SB_ERR_NOTFOUND) {
			r = 0;
			continue;
		}
		if (!r) {
			versions[i] = a.key_version;
			buf_reset(&line);
			if (paths_pubkey(cfg->state_dir, a.account, a.key_version, &path) != 0)
				r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
			else if (access(path.data, R_OK) == 0)
				;   /* written once per key version: it never changes */
			else if (buf_printf(&line, "%s\n", a.public_key) != 0)
				r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
			else
				r = fs_write_atomic(path.data, line.data, line.len, 0600, e);
		}
		account_rec_release(&a);
	}
	buf_release(&path);
	buf_release(&line);
	return r;
}

int sshstate_sync(struct kv *kv, const struct config *cfg, int force, struct sb_error *e)
{
	struct sandbox_rec *sbx = NULL;
	struct sshconf_host *hosts = NULL;
	char **accounts = NULL;
	long long version = 0, *versions = NULL;
	size_t nsbx = 0, nacc = 0, i, j;
	struct buf lockp = BUF_INIT;
	int r, fd = -1;

	if ((r = registry_version(kv, &version, e)) != 0)
		return r;
	if (!force && sshconf_file_version(cfg) == version)
		return 0;
	if ((r = paths_prepare_state(cfg->state_dir, e)) != 0)
		return r;
	if (paths_lock(cfg->state_dir, "ssh_config.lock", &lockp) != 0) {
		buf_release(&lockp);
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	}
	fd = fs_lock(lockp.data, 10000, e);
	buf_release(&lockp);
	if (fd < 0)
		return fd;
	if (!force && sshconf_file_version(cfg) == version)
		goto out;   /* written by someone else while we waited */
	if ((r = registry_account_list(kv, &accounts, &nacc, e)) != 0 ||
	    (r = registry_sandbox_list(kv, NULL, &sbx, &nsbx, e)) != 0)
		goto out;
	versions = calloc(nacc ? nacc : 1, sizeof(*versions));
	hosts = calloc(nsbx ? nsbx : 1, sizeof(*hosts));
	if (!versions || !hosts) {
		r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((r = write_pubkeys(kv, cfg, accounts, nacc, versions, e)) != 0)
		goto out;
	for (i = 0; i < nsbx; i++) {
		hosts[i].account = sbx[i].account;
		hosts[i].host = sbx[i].host;
		hosts[i].port = sbx[i].port;
		hosts[i].user = sbx[i].user;
		hosts[i].host_key = sbx[i].host_key;
		for (j = 0; j < nacc; j++)
			if (strcmp(accounts[j], sbx[i].account) == 0)
				hosts[i].key_version = versions[j];
	}
	r = sshconf_write(cfg, hosts, nsbx, version, e);
out:
	fs_unlock(fd);
	free(hosts);
	free(versions);
	sandbox_rec_free_array(sbx, nsbx);
	registry_names_free(accounts, nacc);
	return r;
}
