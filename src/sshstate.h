/* layer 2: keep the local ssh state (ssh_config, known_hosts, public key
 * files) in step with the registry.  Regenerated only when the registry
 * version differs from the one recorded in the file (cheap per job), under
 * a local flock so concurrent processes write it once. */
#ifndef SSHBOX_SSHSTATE_H
#define SSHBOX_SSHSTATE_H

#include "config.h"
#include "err.h"
#include "kv.h"

SB_MUST_CHECK int sshstate_sync(struct kv *kv, const struct config *cfg, int force, struct sb_error *e);

#endif
