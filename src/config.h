/* layer 2: configuration: defaults < config file < SSHBOX_<KEY> environment.
 *
 * File: --config FILE, else $SSHBOX_CONFIG, else /etc/sshbox/sshbox.conf
 * (a missing default file means defaults).  `key = value` lines, `#`
 * comments.  Every key has an environment override SSHBOX_<KEY>. */
#ifndef SSHBOX_CONFIG_H
#define SSHBOX_CONFIG_H

#include "err.h"
#include "fernet.h"

struct config {
	char *redis_url;          /* redis://host:port/db or unix:///path */
	char *state_dir;          /* local state, 0700 */
	char *fernet_keys_file;   /* one key a line, first encrypts */
	char *fernet_keys;        /* SSHBOX_FERNET_KEYS: comma-separated (secret) */
	int redis_timeout_ms;     /* every Redis call */
	int lock_ttl_ms;          /* slot lease */
	int ssh_connect_timeout_s;
	int ssh_alive_interval_s;
	int control_persist_s;    /* idle masters opened by jobs */
	int max_line_bytes;       /* stdout line bound */
	int default_wait_s;
	int default_timeout_s;
	int default_idle_timeout_s;
	int health_interval_s;    /* supervisor: probe period per sandbox */
	int sweep_interval_s;     /* supervisor: leftovers sweep period */
	int sweep_min_age_s;      /* a job dir with no reservation and older is removed */
};
#define CONFIG_INIT { 0 }

/* path may be NULL (then $SSHBOX_CONFIG, then the default path). */
SB_MUST_CHECK int config_load(struct config *cfg, const char *path, struct sb_error *e);
void config_release(struct config *cfg);
/* The MultiFernet key ring from SSHBOX_FERNET_KEYS or fernet_keys_file. */
SB_MUST_CHECK int config_fernet_keyring(const struct config *cfg, struct fernet_keyring *kr, struct sb_error *e);

#endif
