/* layer 2: the generated ssh_config and known_hosts.
 *
 * One `Host sbx-<account>-<host>` block per sandbox, so an operator's
 * `ssh -F <state>/ssh_config sbx-acme-box1` goes through the same options,
 * agent and ControlMaster as sshbox.  Every value was validated before it
 * got here (validate.h); rendering re-checks the paths' lengths.  The first
 * line records the registry version the file was made from, so a reader can
 * tell cheaply whether it is current.  docs/ssh.md explains each option. */
#ifndef SSHBOX_SSHCONF_H
#define SSHBOX_SSHCONF_H

#include <stddef.h>

#include "buf.h"
#include "config.h"
#include "err.h"

struct sshconf_host {
	const char *account;
	const char *host;
	int port;
	const char *user;
	long long key_version;   /* the account's key: part of the ControlPath */
	const char *host_key;    /* "type base64" */
};

SB_MUST_CHECK int sshconf_render(const struct config *cfg, const struct sshconf_host *hosts, size_t n,
		   long long registry_version, struct buf *ssh_config, struct buf *known_hosts,
		   struct sb_error *e);
/* Render and write both files atomically (0600) under the state dir. */
SB_MUST_CHECK int sshconf_write(const struct config *cfg, const struct sshconf_host *hosts, size_t n,
		  long long registry_version, struct sb_error *e);
/* The registry version recorded in <state>/ssh_config; -1 when missing. */
long long sshconf_file_version(const struct config *cfg);

#endif
