/* layer 0: every local state path in one place, with socket-length checks.
 *
 * <state>/ssh_config            generated ssh config (sshconf)
 * <state>/known_hosts           pinned host keys, one line per alias
 * <state>/agent/<account>.sock  the supervisor's agent for an account
 * <state>/agent/run/<pid>.sock        a private agent of one `sshbox run`
 * <state>/keys/<account>-v<N>.pub     public key selecting the agent key
 * <state>/cm/<digest>           ControlMaster sockets (<= 90 bytes)
 * <state>/lock/                 local flock files
 * <state>/log/                  ssh -E logs */
#ifndef SSHBOX_PATHS_H
#define SSHBOX_PATHS_H

#include "buf.h"
#include "err.h"

/* The master binds "<path>.<16 random chars>" first: 90 + 17 < 108. */
#define PATHS_CONTROL_MAX 90
#define PATHS_SOCKET_MAX 107

SB_MUST_CHECK int paths_ssh_config(const char *state, struct buf *out);
SB_MUST_CHECK int paths_known_hosts(const char *state, struct buf *out);
SB_MUST_CHECK int paths_agent_sock(const char *state, const char *account, struct buf *out, struct sb_error *e);
SB_MUST_CHECK int paths_private_agent_sock(const char *state, long pid, struct buf *out, struct sb_error *e);
SB_MUST_CHECK int paths_pubkey(const char *state, const char *account, long long key_version, struct buf *out);
/* ControlPath named by a digest of (account, key version, host, port, user,
 * pinned host key): %C alone would let two accounts share one authenticated
 * master; the key version and the host key make a rotated key or a re-pinned
 * host open fresh masters instead of riding old ones. */
SB_MUST_CHECK int paths_control(const char *state, const char *account, long long key_version,
		  const char *host, int port, const char *user, const char *host_key,
		  struct buf *out, struct sb_error *e);
SB_MUST_CHECK int paths_lock(const char *state, const char *name, struct buf *out);
/* The repository cache's name on a sandbox, under <workdir>/repos/:
 * "<account>/<16 hex of sha256(url)>-<readable name>". */
SB_MUST_CHECK int paths_repo_key(const char *account, const char *url, struct buf *out);
SB_MUST_CHECK int paths_log(const char *state, const char *name, struct buf *out);
/* Host alias used in ssh_config and by operators: sbx-<account>-<host>. */
SB_MUST_CHECK int paths_alias(const char *account, const char *host, struct buf *out);
/* Create the state dir and its subdirectories, all 0700. */
SB_MUST_CHECK int paths_prepare_state(const char *state, struct sb_error *e);

#endif
