#include "validate.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

const char *validate_echo_n(char *out, size_t outsz, const char *value, size_t len)
{
	size_t limit, i, o = 0;

	if (!out || outsz == 0)
		return "";
	if (!value) {
		out[0] = '\0';
		return out;
	}
	/* room for "..." and the NUL; never more than 48 characters of value */
	limit = outsz > 4 ? outsz - 4 : 0;
	if (limit > 48)
		limit = 48;
	for (i = 0; i < len && o < limit; i++) {
		unsigned char c = (unsigned char)value[i];

		out[o++] = (c >= 0x20 && c <= 0x7e) ? (char)c : '?';
	}
	if (i < len && outsz >= 4) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

const char *validate_echo(char *out, size_t outsz, const char *value)
{
	/* never read more of value than can be shown (+1 to know it was cut) */
	return validate_echo_n(out, outsz, value, value ? strnlen(value, 49) : 0);
}

/* "invalid <field> '<value>': <why>" */
__attribute__((format(printf, 4, 5)))
static SB_MUST_CHECK int refuse(struct sb_error *e, const char *field, const char *value, const char *fmt, ...)
{
	char echo[VALIDATE_ECHO_SIZE], why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (!value)
		return sb_error_set(e, SB_ERR_USAGE, "invalid %s: %s", field, why);
	return sb_error_set(e, SB_ERR_USAGE, "invalid %s '%s': %s", field,
			    validate_echo(echo, sizeof(echo), value), why);
}

static SB_MUST_CHECK int is_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static SB_MUST_CHECK int is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* Shared first pass: present, non-empty, not too long, printable ASCII, every
 * character in `allowed` (a predicate).  Names the first offending byte. */
#define CK_NO_DASH 1   /* a leading '-' is reported before anything else */

static SB_MUST_CHECK int check_chars(const char *field, const char *v, size_t max,
		       int (*allowed)(int c), int flags, struct sb_error *e)
{
	size_t len, i;

	if (!v)
		return refuse(e, field, NULL, "missing");
	len = strnlen(v, max + 1);
	if (len == 0)
		return refuse(e, field, v, "must not be empty");
	if ((flags & CK_NO_DASH) && v[0] == '-')
		return refuse(e, field, v, "must not start with '-'");
	if (len > max)
		return refuse(e, field, v, "longer than %zu characters", max);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c < 0x20 || c == 0x7f)
			return refuse(e, field, v, "contains a control character (0x%02x)", c);
		if (c > 0x7f)
			return refuse(e, field, v, "contains a non-ASCII byte (0x%02x)", c);
		if (c == ' ')
			return refuse(e, field, v, "contains a space");
		if (!allowed(c))
			return refuse(e, field, v, "character '%c' is not allowed", c);
	}
	return 0;
}

static SB_MUST_CHECK int account_char(int c)
{
	return is_alnum(c) || c == '.' || c == '_' || c == '-';
}

int validate_account(const char *value, struct sb_error *e)
{
	int r = check_chars("account", value, VALIDATE_ACCOUNT_MAX, account_char, CK_NO_DASH, e);

	if (r)
		return r;
	if (!is_alnum((unsigned char)value[0]))
		return refuse(e, "account", value, "must start with a letter or digit");
	return 0;
}

static SB_MUST_CHECK int host_char(int c)
{
	return is_alnum(c) || c == '.' || c == '-' || c == ':';
}

static SB_MUST_CHECK int check_dns_name(const char *v, struct sb_error *e)
{
	const char *p = v, *label = v;
	int numeric = 1;

	for (;; p++) {
		if (*p == '.' || *p == '\0') {
			size_t n = (size_t)(p - label);

			if (n == 0)
				return refuse(e, "host", v, "empty label (leading, trailing or double dot)");
			if (n > 63)
				return refuse(e, "host", v, "a label is longer than 63 characters");
			if (label[0] == '-' || label[n - 1] == '-')
				return refuse(e, "host", v, "a label must not start or end with '-'");
			if (*p == '\0')
				break;
			label = p + 1;
		} else if (*p == ':') {
			return refuse(e, "host", v, "':' is only allowed in an IPv6 address");
		} else if (!is_digit((unsigned char)*p)) {
			numeric = 0;
		}
	}
	if (numeric) {
		struct in_addr a;

		if (inet_pton(AF_INET, v, &a) != 1)
			return refuse(e, "host", v, "not a valid IPv4 address");
	} else {
		struct in_addr a;

		/* "0x7f.1" is a name to us but 127.0.0.1 to getaddrinfo */
		if (inet_aton(v, &a) != 0)
			return refuse(e, "host", v, "ambiguous numeric address (use dotted decimal)");
	}
	return 0;
}

int validate_host(const char *value, struct sb_error *e)
{
	int r = check_chars("host", value, VALIDATE_HOST_MAX, host_char, CK_NO_DASH, e);

	if (r)
		return r;
	if (value[0] == '-')
		return refuse(e, "host", value, "must not start with '-'");
	if (strchr(value, ':')) {
		struct in6_addr a6;

		if (inet_pton(AF_INET6, value, &a6) != 1)
			return refuse(e, "host", value, "not a valid IPv6 address");
		return 0;
	}
	return check_dns_name(value, e);
}

int validate_host_canonical(const char *value, char *out, size_t outsz, struct sb_error *e)
{
	size_t i, len;
	int r = validate_host(value, e);

	if (r)
		return r;
	if (!out || outsz < VALIDATE_HOST_MAX + 1)
		return sb_error_set(e, SB_ERR_INTERNAL, "host canonicalization buffer too small");
	if (strchr(value, ':')) {
		struct in6_addr a6;

		if (inet_pton(AF_INET6, value, &a6) != 1 ||
		    !inet_ntop(AF_INET6, &a6, out, (socklen_t)outsz))
			return refuse(e, "host", value, "not a valid IPv6 address");
		return 0;
	}
	len = strlen(value);
	for (i = 0; i < len; i++) {
		char c = value[i];

		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	out[len] = '\0';
	return 0;
}

static SB_MUST_CHECK int user_char(int c)
{
	return is_alnum(c) || c == '_' || c == '.' || c == '-';
}

int validate_user(const char *value, struct sb_error *e)
{
	int r = check_chars("user", value, VALIDATE_USER_MAX, user_char, CK_NO_DASH, e);
	unsigned char c0;

	if (r)
		return r;
	c0 = (unsigned char)value[0];
	if (c0 == '-')
		return refuse(e, "user", value, "must not start with '-'");
	if (!((c0 >= 'a' && c0 <= 'z') || (c0 >= 'A' && c0 <= 'Z') || c0 == '_'))
		return refuse(e, "user", value, "must start with a letter or '_'");
	return 0;
}

/* Strict decimal in [lo, hi]: digits only, no sign, no leading zero. */
static SB_MUST_CHECK int parse_small_uint(const char *field, const char *value, long lo, long hi,
			    long *out, struct sb_error *e)
{
	size_t len, i;
	long n = 0;

	if (!value)
		return refuse(e, field, NULL, "missing");
	len = strnlen(value, 8);
	if (len == 0)
		return refuse(e, field, value, "must not be empty");
	for (i = 0; i < len; i++)
		if (!is_digit((unsigned char)value[i]))
			return refuse(e, field, value, "must be a decimal number between %ld and %ld", lo, hi);
	if (len > 6)
		return refuse(e, field, value, "must be between %ld and %ld", lo, hi);
	if (len > 1 && value[0] == '0')
		return refuse(e, field, value, "must not have a leading zero");
	for (i = 0; i < len; i++)
		n = n * 10 + (value[i] - '0');
	if (n < lo || n > hi)
		return refuse(e, field, value, "must be between %ld and %ld", lo, hi);
	*out = n;
	return 0;
}

int validate_port_parse(const char *value, int *port, struct sb_error *e)
{
	long n;
	int r = parse_small_uint("port", value, 1, 65535, &n, e);

	if (r)
		return r;
	if (port)
		*port = (int)n;
	return 0;
}

int validate_port(const char *value, struct sb_error *e)
{
	return validate_port_parse(value, NULL, e);
}

int validate_port_num(long port, struct sb_error *e)
{
	if (port < 1 || port > 65535)
		return sb_error_set(e, SB_ERR_USAGE, "invalid port %ld: must be between 1 and 65535", port);
	return 0;
}

int validate_slots_parse(const char *value, int *slots, struct sb_error *e)
{
	long n;
	int r = parse_small_uint("slots", value, 1, VALIDATE_SLOTS_MAX, &n, e);

	if (r)
		return r;
	if (slots)
		*slots = (int)n;
	return 0;
}

int validate_slots(const char *value, struct sb_error *e)
{
	return validate_slots_parse(value, NULL, e);
}

int validate_slots_num(long slots, struct sb_error *e)
{
	if (slots < 1 || slots > VALIDATE_SLOTS_MAX)
		return sb_error_set(e, SB_ERR_USAGE, "invalid slots %ld: must be between 1 and %d",
				    slots, VALIDATE_SLOTS_MAX);
	return 0;
}

static SB_MUST_CHECK int path_char(int c)
{
	return is_alnum(c) || c == '.' || c == '_' || c == '/' || c == '-';
}

static SB_MUST_CHECK int check_abs_path(const char *field, const char *value, struct sb_error *e)
{
	const char *seg;
	int r = check_chars(field, value, VALIDATE_PATH_MAX, path_char, 0, e);

	if (r)
		return r;
	if (value[0] != '/')
		return refuse(e, field, value, "must be an absolute path");
	if (value[1] == '\0')
		return refuse(e, field, value, "must not be the root directory");
	if (strstr(value, "//"))
		return refuse(e, field, value, "must not contain \"//\"");
	if (value[strlen(value) - 1] == '/')
		return refuse(e, field, value, "must not end with '/'");
	for (seg = value; seg; seg = strchr(seg + 1, '/')) {
		const char *s = seg + 1;
		size_t n = strcspn(s, "/");

		if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return refuse(e, field, value, "must not contain \".\" or \"..\" segments");
	}
	return 0;
}

int validate_workdir(const char *value, struct sb_error *e)
{
	return check_abs_path("workdir", value, e);
}

static SB_MUST_CHECK int job_id_char(int c)
{
	return is_alnum(c) || c == '.' || c == '_' || c == '-';
}

int validate_job_id(const char *value, struct sb_error *e)
{
	int r = check_chars("job_id", value, VALIDATE_JOB_ID_MAX, job_id_char, 0, e);

	if (r)
		return r;
	/* jobs/.<job_id> is the job's private side directory on the sandbox */
	if (value[0] == '.')
		return refuse(e, "job_id", value, "must not start with '.'");
	return 0;
}

int validate_claude_path(const char *value, struct sb_error *e)
{
	int r;

	if (value && value[0] == '/')
		return check_abs_path("claude", value, e);
	if (value && strchr(value, '/'))
		return refuse(e, "claude", value, "must be a command name or an absolute path");
	r = check_chars("claude", value, VALIDATE_PATH_MAX, job_id_char, CK_NO_DASH, e);
	if (r)
		return r;
	if (value[0] == '-')
		return refuse(e, "claude", value, "must not start with '-'");
	if (strcmp(value, ".") == 0 || strcmp(value, "..") == 0)
		return refuse(e, "claude", value, "must not be \".\" or \"..\"");
	return 0;
}

static SB_MUST_CHECK int env_char(int c)
{
	return is_alnum(c) || c == '_';
}

int validate_env_name(const char *value, struct sb_error *e)
{
	int r = check_chars("env name", value, VALIDATE_ENV_NAME_MAX, env_char, 0, e);

	if (r)
		return r;
	if (is_digit((unsigned char)value[0]))
		return refuse(e, "env name", value, "must not start with a digit");
	return 0;
}

int validate_ref(const char *value, struct sb_error *e)
{
	const char *s;
	size_t len;
	int r = check_chars("repo.ref", value, VALIDATE_PATH_MAX, path_char, CK_NO_DASH, e);

	if (r)
		return r;
	len = strlen(value);
	if (value[0] == '-')
		return refuse(e, "repo.ref", value, "must not start with '-'");
	if (value[0] == '/' || value[len - 1] == '/')
		return refuse(e, "repo.ref", value, "must not start or end with '/'");
	if (value[len - 1] == '.')
		return refuse(e, "repo.ref", value, "must not end with '.'");
	if (strstr(value, ".."))
		return refuse(e, "repo.ref", value, "must not contain \"..\"");
	if (strstr(value, "//"))
		return refuse(e, "repo.ref", value, "must not contain \"//\"");
	for (s = value;;) {
		size_t n = strcspn(s, "/");

		if (s[0] == '.')
			return refuse(e, "repo.ref", value, "no component may start with '.'");
		if (n >= 5 && memcmp(s + n - 5, ".lock", 5) == 0)
			return refuse(e, "repo.ref", value, "no component may end with \".lock\"");
		if (!s[n])
			break;
		s += n + 1;
	}
	return 0;
}

/* RFC 3986 unreserved, reserved and '%' — minus the single quote, which has
 * no business in a repository URL and is the one character that breaks a
 * single-quoted shell word. */
static SB_MUST_CHECK int url_char(int c)
{
	return is_alnum(c) || (c && strchr("-._~:/?#[]@!$&()*+,;=%", c) != NULL);
}

int validate_repo_url(const char *value, struct sb_error *e)
{
	const char *auth, *end, *hostp, *hend, *portp = NULL;
	char host[VALIDATE_HOST_MAX + 1], port[8];
	struct sb_error sub = SB_ERROR_INIT;
	size_t hlen;
	int r;

	/* credentials are secrets: refuse them before anything echoes the value */
	if (value && (auth = strstr(value, "://")) != NULL) {
		auth += 3;
		end = auth + strcspn(auth, "/?#");
		if (memchr(auth, '@', (size_t)(end - auth)))
			return refuse(e, "repo.url", NULL,
				      "must not contain credentials (pass the token in repo.token)");
	}
	r = check_chars("repo.url", value, VALIDATE_URL_MAX, url_char, 0, e);
	if (r)
		return r;
	if (strncasecmp(value, "https://", 8) == 0)
		auth = value + 8;
	else if (strncasecmp(value, "http://", 7) == 0)
		auth = value + 7;
	else
		return refuse(e, "repo.url", value, "must start with https:// or http://");
	end = auth + strcspn(auth, "/?#");
	if (memchr(auth, '@', (size_t)(end - auth)))
		return refuse(e, "repo.url", value,
			      "must not contain credentials (pass the token in repo.token)");
	if (end == auth)
		return refuse(e, "repo.url", value, "has no host");
	if (auth[0] == '[') {
		hostp = auth + 1;
		hend = memchr(hostp, ']', (size_t)(end - hostp));
		if (!hend)
			return refuse(e, "repo.url", value, "has an unterminated '[' in its host");
		if (hend + 1 < end) {
			if (hend[1] != ':')
				return refuse(e, "repo.url", value, "has garbage after its IPv6 host");
			portp = hend + 2;
		}
	} else {
		hostp = auth;
		hend = memchr(hostp, ':', (size_t)(end - hostp));
		if (hend)
			portp = hend + 1;
		else
			hend = end;
	}
	hlen = (size_t)(hend - hostp);
	if (hlen == 0 || hlen > VALIDATE_HOST_MAX)
		return refuse(e, "repo.url", value, "has an empty or overlong host");
	memcpy(host, hostp, hlen);
	host[hlen] = '\0';
	if (auth[0] == '[' && !strchr(host, ':'))
		return refuse(e, "repo.url", value, "has a non-IPv6 address in brackets");
	if (auth[0] != '[' && strchr(host, ':'))
		return refuse(e, "repo.url", value, "has an IPv6 host without brackets");
	if (validate_host(host, &sub) != 0)
		return refuse(e, "repo.url", value, "has an invalid host");
	if (portp) {
		size_t plen = (size_t)(end - portp);

		if (plen == 0 || plen >= sizeof(port))
			return refuse(e, "repo.url", value, "has an invalid port");
		memcpy(port, portp, plen);
		port[plen] = '\0';
		if (validate_port(port, &sub) != 0)
			return refuse(e, "repo.url", value, "has an invalid port");
	}
	return 0;
}

static SB_MUST_CHECK int is_b64(int c)
{
	return is_alnum(c) || c == '+' || c == '/';
}

/* "TYPE BASE64" at the start of v; *rest points after the base64. */
static SB_MUST_CHECK int check_key_line(const char *field, const char *v, size_t len, const char **rest,
			  struct sb_error *e)
{
	size_t i = 0, b64, pad = 0;

	if (!((v[0] >= 'a' && v[0] <= 'z')))
		return refuse(e, field, v, "must start with a key type such as ssh-ed25519");
	while (i < len && v[i] != ' ') {
		char c = v[i];

		if (!((c >= 'a' && c <= 'z') || is_digit((unsigned char)c) || c == '@' ||
		      c == '.' || c == '-'))
			return refuse(e, field, v, "has an invalid key type");
		i++;
	}
	if (i > 64)
		return refuse(e, field, v, "has an overlong key type");
	if (i == len || v[i] != ' ')
		return refuse(e, field, v, "must be \"TYPE BASE64\"");
	i++;
	b64 = i;
	while (i < len && is_b64((unsigned char)v[i]))
		i++;
	while (i < len && v[i] == '=' && pad < 2) {
		i++;
		pad++;
	}
	if (i == b64 || (i - b64) % 4 != 0)
		return refuse(e, field, v, "has an invalid base64 key blob");
	*rest = v + i;
	return 0;
}

static SB_MUST_CHECK int printable_char(int c)
{
	return c >= 0x21 && c <= 0x7e;
}

/* Present, 1..VALIDATE_HOST_KEY_MAX bytes, printable ASCII (spaces allowed:
 * check_key_line decides where). */
static SB_MUST_CHECK int check_key_text(const char *field, const char *value, size_t *len, struct sb_error *e)
{
	size_t i;

	if (!value)
		return refuse(e, field, NULL, "missing");
	*len = strnlen(value, VALIDATE_HOST_KEY_MAX + 1);
	if (*len == 0)
		return refuse(e, field, value, "must not be empty");
	if (*len > VALIDATE_HOST_KEY_MAX)
		return refuse(e, field, value, "longer than %d characters", VALIDATE_HOST_KEY_MAX);
	for (i = 0; i < *len; i++) {
		unsigned char c = (unsigned char)value[i];

		if (c < 0x20 || c >= 0x7f)
			return refuse(e, field, value, "contains a control or non-ASCII byte (0x%02x)", c);
	}
	return 0;
}

int validate_host_key(const char *value, struct sb_error *e)
{
	const char *rest;
	size_t len;
	int r = check_key_text("host key", value, &len, e);

	if (r)
		return r;
	r = check_key_line("host key", value, len, &rest, e);
	if (r)
		return r;
	if (*rest)
		return refuse(e, "host key", value, "must be exactly \"TYPE BASE64\" (no comment)");
	return 0;
}

int validate_public_key(const char *value, struct sb_error *e)
{
	const char *rest;
	size_t len;
	int r = check_key_text("public key", value, &len, e);

	if (r)
		return r;
	r = check_key_line("public key", value, len, &rest, e);
	if (r)
		return r;
	/* an optional comment: one space, then printable text */
	if (*rest && (rest[0] != ' ' || !printable_char((unsigned char)rest[1])))
		return refuse(e, "public key", value, "has garbage after the key blob");
	return 0;
}
