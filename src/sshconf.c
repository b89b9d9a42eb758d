#include "sshconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "paths.h"

#define HEADER "# sshbox generated ssh_config: registry version "

int sshconf_render(const struct config *cfg, const struct sshconf_host *hosts, size_t n,
		   long long registry_version, struct buf *out, struct buf *kh, struct sb_error *e)
{
	struct buf alias = BUF_INIT, cp = BUF_INIT, agent = BUF_INIT, pub = BUF_INIT, khp = BUF_INIT;
	const char *st = cfg->state_dir;
	size_t i, j;
	int r = 0;

	if (strpbrk(st, " \t\"'\\#%$~,\n") != NULL)
		return sb_error_set(e, SB_ERR_USAGE, "invalid state_dir '%s': contains characters ssh_config would interpret", st);
	if (paths_known_hosts(st, &khp) != 0)
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	/* builders: a failure is recorded in out or kh, checked at the end */
	buf_addf(out, HEADER "%lld\n"
			"# Do not edit: `sshbox ssh-config` rewrites it.  Use: ssh -F %s/ssh_config sbx-<account>-<host>\n",
			registry_version, st);
	for (i = 0; i < n; i++) {
		const struct sshconf_host *h = &hosts[i];

		if ((r = paths_control(st, h->account, h->key_version, h->host, h->port, h->user, h->host_key, &cp, e)) != 0 ||
		    (r = paths_agent_sock(st, h->account, &agent, e)) != 0)
			break;
		if (paths_alias(h->account, h->host, &alias) != 0 ||
		    paths_pubkey(st, h->account, h->key_version, &pub) != 0) {
			r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
			break;
		}
		/* "sbx-<account>-<host>" is ambiguous ('-' is legal in both):
		 * ssh takes the first matching block, so a second sandbox
		 * with the same alias would use the first one's host,
		 * ControlPath (master) and agent. */
		for (j = 0; j < i; j++) {
			struct buf other = BUF_INIT;
			int same, rr = paths_alias(hosts[j].account, hosts[j].host, &other);

			same = rr == 0 && strcmp(buf_cstr(&other), alias.data) == 0;
			buf_release(&other);
			if (rr) {
				r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
				break;
			}
			if (same) {
				r = sb_error_set(e, SB_ERR_USAGE, "sandboxes %s/%s and %s/%s share the ssh alias '%s'",
						 hosts[j].account, hosts[j].host, h->account, h->host, alias.data);
				break;
			}
		}
		if (r)
			break;
		buf_addf(out,
				"\nHost %s\n"
				"  HostName %s\n"
				"  Port %d\n"
				"  User %s\n"
				"  HostKeyAlias %s\n"
				"  UserKnownHostsFile %s\n"
				"  GlobalKnownHostsFile /dev/null\n"
				"  StrictHostKeyChecking yes\n"
				"  UpdateHostKeys no\n"
				"  CheckHostIP no\n"
				"  IdentityAgent %s\n"
				"  IdentityFile %s\n"
				"  IdentitiesOnly yes\n"
				"  PubkeyAuthentication yes\n"
				"  PasswordAuthentication no\n"
				"  KbdInteractiveAuthentication no\n"
				"  BatchMode yes\n"
				"  ControlMaster auto\n"
				"  ControlPath %s\n"
				"  ControlPersist %d\n"
				"  ServerAliveInterval %d\n"
				"  ServerAliveCountMax 3\n"
				"  ConnectTimeout %d\n"
				"  ForwardAgent no\n"
				"  ForwardX11 no\n"
				"  ClearAllForwardings yes\n"
				"  RequestTTY no\n"
				"  LogLevel INFO\n",
				alias.data, h->host, h->port, h->user, alias.data, khp.data, agent.data,
				pub.data, cp.data, cfg->control_persist_s, cfg->ssh_alive_interval_s,
				cfg->ssh_connect_timeout_s);
		if (h->host_key && *h->host_key)
			buf_addf(kh, "%s %s\n", alias.data, h->host_key);
	}
	if (!r && (buf_check(out) != 0 || buf_check(kh) != 0))
		r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	buf_release(&alias);
	buf_release(&cp);
	buf_release(&agent);
	buf_release(&pub);
	buf_release(&khp);
	return r;
}

int sshconf_write(const struct config *cfg, const struct sshconf_host *hosts, size_t n,
		  long long registry_version, struct sb_error *e)
{
	struct buf conf = BUF_INIT, kh = BUF_INIT, path = BUF_INIT;
	int r;

	if ((r = paths_prepare_state(cfg->state_dir, e)) != 0 ||
	    (r = sshconf_render(cfg, hosts, n, registry_version, &conf, &kh, e)) != 0)
		goto out;
	/* known_hosts first: a config that names it must never be ahead of it */
	if (paths_known_hosts(cfg->state_dir, &path) != 0) {
		r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((r = fs_write_atomic(path.data, buf_cstr(&kh), kh.len, 0600, e)) != 0)
		goto out;
	if (paths_ssh_config(cfg->state_dir, &path) != 0) {
		r = sb_error_set(e, SB_ERR_NOMEM, "out of memory");
		goto out;
	}
	r = fs_write_atomic(path.data, buf_cstr(&conf), conf.len, 0600, e);
out:
	buf_release(&conf);
	buf_release(&kh);
	buf_release(&path);
	return r;
}

long long sshconf_file_version(const struct config *cfg)
{
	struct buf path = BUF_INIT;
	char line[128];
	long long v = -1;
	FILE *f;

	if (paths_ssh_config(cfg->state_dir, &path) != 0) {
		buf_release(&path);
		return -1;   /* as if there were none: it is written again */
	}
	f = fopen(path.data, "re");
	buf_release(&path);
	if (!f)
		return -1;
	if (fgets(line, sizeof(line), f) && strncmp(line, HEADER, strlen(HEADER)) == 0)
		v = strtoll(line + strlen(HEADER), NULL, 10);
	fclose(f);
	return v;
}
