/* layer 0: validation of every user- or Redis-supplied value before it can
 * reach an ssh argv, the generated ssh_config, a remote script, a path or a
 * Redis key name.
 *
 * Each validate_*() returns 0 or SB_ERR_USAGE and fills e with one sentence
 * naming the field and echoing the value sanitized (printable ASCII only,
 * truncated), e.g. "invalid host '-oProxyCommand=x': must not start with '-'".
 * A NULL value is refused ("missing").  The rules are deliberately narrower
 * than what ssh, git or the shell would accept: a hostile value must never
 * become an ssh option, a config directive or shell syntax. */
#ifndef SSHBOX_VALIDATE_H
#define SSHBOX_VALIDATE_H

#include <stddef.h>

#include "err.h"

#define VALIDATE_ACCOUNT_MAX 64
#define VALIDATE_HOST_MAX 253
#define VALIDATE_USER_MAX 32
#define VALIDATE_PATH_MAX 200      /* workdir, absolute claude path, repo.ref */
#define VALIDATE_JOB_ID_MAX 64
#define VALIDATE_ENV_NAME_MAX 128
#define VALIDATE_URL_MAX 2048
#define VALIDATE_SLOTS_MAX 64
#define VALIDATE_HOST_KEY_MAX 16384

/* `[A-Za-z0-9][A-Za-z0-9._-]{0,63}` */
SB_MUST_CHECK int validate_account(const char *value, struct sb_error *e);
/* A DNS name (labels `[A-Za-z0-9-]{1,63}`, no label starts or ends with '-',
 * no empty label, no trailing dot), a dotted-quad IPv4 address (inet_pton;
 * all-numeric names and inet_aton-only forms such as "127.1" or "0x7f.1" are
 * refused), or an IPv6 literal without brackets or zone (inet_pton).
 * 1..253 characters. */
SB_MUST_CHECK int validate_host(const char *value, struct sb_error *e);
/* validate_host(), then write the canonical spelling to out (outsz >=
 * VALIDATE_HOST_MAX + 1): lowercase DNS name, inet_ntop form of an IPv6
 * address.  Registry and lock keys always use this form, so "Box1" and
 * "box1" (or "0::1" and "::1") are the same sandbox. */
SB_MUST_CHECK int validate_host_canonical(const char *value, char *out, size_t outsz, struct sb_error *e);
/* `[A-Za-z_][A-Za-z0-9_.-]{0,31}` */
SB_MUST_CHECK int validate_user(const char *value, struct sb_error *e);
/* Decimal 1..65535: digits only, no sign, no leading zero, no whitespace. */
SB_MUST_CHECK int validate_port(const char *value, struct sb_error *e);
/* Same, and store the number in *port (may be NULL). */
SB_MUST_CHECK int validate_port_parse(const char *value, int *port, struct sb_error *e);
SB_MUST_CHECK int validate_port_num(long port, struct sb_error *e);
/* Absolute path of `[A-Za-z0-9._/-]`, no "//", no "." or ".." segment, no
 * trailing '/', not "/" itself, at most 200 characters. */
SB_MUST_CHECK int validate_workdir(const char *value, struct sb_error *e);
/* Slots per sandbox: 1..64 (same digit rules as ports). */
SB_MUST_CHECK int validate_slots(const char *value, struct sb_error *e);
SB_MUST_CHECK int validate_slots_parse(const char *value, int *slots, struct sb_error *e);
SB_MUST_CHECK int validate_slots_num(long slots, struct sb_error *e);
/* `[A-Za-z0-9._-]{1,64}`, not starting with '.' (it names jobs/<id>/ and
 * jobs/.<id>/ on the sandbox). */
SB_MUST_CHECK int validate_job_id(const char *value, struct sb_error *e);
/* A bare command name `[A-Za-z0-9._-]{1,200}` not starting with '-' and not
 * "." or "..", or an absolute path under the workdir rules.  Field "claude". */
SB_MUST_CHECK int validate_claude_path(const char *value, struct sb_error *e);
/* `[A-Za-z_][A-Za-z0-9_]{0,127}`.  Field "env name". */
SB_MUST_CHECK int validate_env_name(const char *value, struct sb_error *e);
/* A git ref or object name: `[A-Za-z0-9._/-]{1,200}`, no leading '-' or '/',
 * no trailing '/' or '.', no "..", no "//", no component starting with '.',
 * no ".lock" component suffix.  Field "repo.ref". */
SB_MUST_CHECK int validate_ref(const char *value, struct sb_error *e);
/* http:// or https:// (scheme case-insensitive) URL with a non-empty host
 * (DNS name, IPv4, or [IPv6]) and an optional port; RFC 3986 characters only
 * (no whitespace, control, non-ASCII, quotes, backslash, backquote, '<', '>',
 * '^', '{', '}', '|'); no '@' in the authority (credentials belong in
 * repo.token); at most 2048 characters.  Field "repo.url". */
SB_MUST_CHECK int validate_repo_url(const char *value, struct sb_error *e);
/* A pinned host key "TYPE BASE64": TYPE `[a-z0-9@.-]{1,64}` starting with a
 * letter, one space, standard base64 with optional '=' padding, nothing
 * else.  Field "host key". */
SB_MUST_CHECK int validate_host_key(const char *value, struct sb_error *e);
/* An OpenSSH public key line "TYPE BASE64[ COMMENT]": as a host key plus an
 * optional comment of printable ASCII.  Field "public key". */
SB_MUST_CHECK int validate_public_key(const char *value, struct sb_error *e);

/* Copy value into out as printable ASCII for an error message: bytes
 * outside 0x20..0x7e become '?', and more than 48 characters are cut with
 * "...".  Returns out.  outsz >= VALIDATE_ECHO_SIZE is enough. */
#define VALIDATE_ECHO_SIZE 56
const char *validate_echo(char *out, size_t outsz, const char *value);
/* The same for a counted string that may contain NUL bytes (Redis data). */
const char *validate_echo_n(char *out, size_t outsz, const char *value, size_t len);

#endif
