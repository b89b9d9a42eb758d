#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "fsutil.h"
#include "log.h"
#include "secret.h"
#include "validate.h"

#define CONFIG_DEFAULT_PATH "/etc/sshbox/sshbox.conf"
#define CONFIG_MAX_BYTES (64 * 1024)

enum ctype { C_STR, C_INT };

struct option_def {
	const char *key;
	enum ctype type;
	size_t offset;
	const char *def_str;
	int def_int, min, max;
};

#define S(k, d) { #k, C_STR, offsetof(struct config, k), d, 0, 0, 0 }
#define I(k, d, lo, hi) { #k, C_INT, offsetof(struct config, k), NULL, d, lo, hi }
static const struct option_def options[] = {
	S(redis_url, "redis://127.0.0.1:6379/0"),
	S(state_dir, "/run/sshbox"),
	S(fernet_keys_file, ""),
	S(fernet_keys, ""),
	I(redis_timeout_ms, 2000, 50, 60000),
	I(lock_ttl_ms, 30000, 3000, 600000),
	I(ssh_connect_timeout_s, 10, 1, 300),
	I(ssh_alive_interval_s, 15, 1, 300),
	I(control_persist_s, 300, 0, 86400),
	I(max_line_bytes, 16 * 1024 * 1024, 4096, 256 * 1024 * 1024),
	I(default_wait_s, 120, 0, 86400),
	I(default_timeout_s, 3600, 1, 7 * 86400),
	I(default_idle_timeout_s, 600, 1, 7 * 86400),
	I(health_interval_s, 15, 1, 3600),
	I(sweep_interval_s, 300, 1, 86400),
	I(sweep_min_age_s, 900, 60, 30 * 86400),
};
#undef S
#undef I

static const struct option_def *find_option(const char *key, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(options) / sizeof(options[0]); i++)
		if (strlen(options[i].key) == len && strncmp(options[i].key, key, len) == 0)
			return &options[i];
	return NULL;
}

static SB_MUST_CHECK int set_option(struct config *cfg, const struct option_def *o, const char *value,
		      const char *where, struct sb_error *e)
{
	void *field = (char *)cfg + o->offset;

	if (o->type == C_STR) {
		char **dst = field, *v = strdup(value);
		if (!v)
			return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
		secret_free_str(*dst);   /* fernet_keys is a secret */
		*dst = v;
		return 0;
	} else {
		char *end;
		long n;
		errno = 0;
		n = strtol(value, &end, 10);
		if (errno || end == value || *end || n < o->min || n > o->max) {
			char shown[80];

			return sb_error_set(e, SB_ERR_USAGE, "invalid %s '%s' in %s: expected an integer from %d to %d",
					    o->key, validate_echo(shown, sizeof(shown), value), where, o->min, o->max);
		}
		*(int *)field = (int)n;
		return 0;
	}
}

static char *trim(char *s, char *end)
{
	while (s < end && isspace((unsigned char)*s))
		s++;
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	return s;
}

static SB_MUST_CHECK int parse_file(struct config *cfg, const char *path, char *text, size_t len, struct sb_error *e)
{
	char *line = text, *end = text + len;
	int lineno = 0, r;

	while (line < end) {
		char *nl = memchr(line, '\n', (size_t)(end - line)), *eq, *key, *val;
		const struct option_def *o;
		char where[PATH_MAX + 32];

		if (!nl)
			nl = end;
		lineno++;
		/* a NUL would silently cut the value (or hide the line) */
		if (memchr(line, '\0', (size_t)(nl - line)))
			return sb_error_set(e, SB_ERR_USAGE, "invalid line in %s line %d: contains a NUL byte", path, lineno);
		*nl = '\0';
		key = trim(line, nl);
		line = nl + 1;
		if (*key == '\0' || *key == '#')
			continue;
		snprintf(where, sizeof(where), "%s line %d", path, lineno);
		eq = strchr(key, '=');
		if (!eq)
			return sb_error_set(e, SB_ERR_USAGE, "invalid line in %s: expected 'key = value'", where);
		val = trim(eq + 1, eq + 1 + strlen(eq + 1));
		key = trim(key, eq);
		o = find_option(key, strlen(key));
		if (!o) {
			char shown[80];

			/* the file's bytes go to a terminal or the daemon's log */
			return sb_error_set(e, SB_ERR_USAGE, "unknown key '%s' in %s", validate_echo(shown, sizeof(shown), key),
					    where);
		}
		if ((r = set_option(cfg, o, val, where, e)) != 0)
			return r;
	}
	return 0;
}

int config_load(struct config *cfg, const char *path, struct sb_error *e)
{
	struct buf text = BUF_INIT;
	int explicit = 1, r = 0;
	size_t i;

	memset(cfg, 0, sizeof(*cfg));
	for (i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
		const struct option_def *o = &options[i];
		char num[16];

		if (o->type == C_INT)
			snprintf(num, sizeof(num), "%d", o->def_int);
		if ((r = set_option(cfg, o, o->type == C_STR ? o->def_str : num, "defaults", e)) != 0)
			goto out;
	}
	if (!path)
		path = getenv("SSHBOX_CONFIG");
	if (!path || !*path) {
		path = CONFIG_DEFAULT_PATH;
		explicit = 0;
	}
	r = fs_read_file(path, &text, CONFIG_MAX_BYTES, e);
	if (r == SB_ERR_NOTFOUND && !explicit) {
		r = 0;
	} else if (r) {
		goto out;
	} else if ((r = parse_file(cfg, path, text.data ? text.data : (char *)"", text.len, e)) != 0) {
		goto out;
	}
	for (i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
		char env[64], *p;
		const char *v;

		snprintf(env, sizeof(env), "SSHBOX_%s", options[i].key);
		for (p = env; *p; p++)
			*p = (char)toupper((unsigned char)*p);
		v = getenv(env);
		if (v && (r = set_option(cfg, &options[i], v, env, e)) != 0)
			goto out;
	}
	if (cfg->state_dir[0] != '/')
		r = sb_error_set(e, SB_ERR_USAGE, "invalid state_dir '%s': must be an absolute path", cfg->state_dir);
out:
	buf_wipe_release(&text);
	if (r)
		config_release(cfg);
	return r;
}

void config_release(struct config *cfg)
{
	size_t i;

	for (i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
		if (options[i].type == C_STR) {
			char **p = (char **)((char *)cfg + options[i].offset);
			secret_free_str(*p);
			*p = NULL;
		}
	}
}

int config_fernet_keyring(const struct config *cfg, struct fernet_keyring *kr, struct sb_error *e)
{
	struct buf text = BUF_INIT;
	struct stat st;
	int r;

	if (cfg->fernet_keys && *cfg->fernet_keys) {
		r = fernet_keyring_parse(kr, cfg->fernet_keys, strlen(cfg->fernet_keys), e);
		if (r)
			sb_error_prefix(e, "SSHBOX_FERNET_KEYS (or fernet_keys)");
		return r;
	}
	if (!cfg->fernet_keys_file || !*cfg->fernet_keys_file)
		return sb_error_set(e, SB_ERR_USAGE,
				    "no Fernet keys configured: set SSHBOX_FERNET_KEYS or fernet_keys_file");
	if (stat(cfg->fernet_keys_file, &st) == 0 && (st.st_mode & 077))
		log_warn("fernet_keys_file '%s' is readable by group or others", cfg->fernet_keys_file);
	r = fs_read_file(cfg->fernet_keys_file, &text, CONFIG_MAX_BYTES, e);
	if (!r)
		r = fernet_keyring_parse(kr, text.data ? text.data : "", text.len, e);
	if (r)
		sb_error_prefix(e, "fernet_keys_file '%s'", cfg->fernet_keys_file);
	buf_wipe_release(&text);
	return r;
}
