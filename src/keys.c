#include "keys.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "child.h"
#include "secret.h"

#define SSH_KEYGEN "/usr/bin/ssh-keygen"
#define KEYGEN_TIMEOUT_MS 15000

struct pem_kind {
	const char *header;
	const char *format;
	const char *refusal;   /* non-NULL: refused with this reason */
};

static const struct pem_kind kinds[] = {
	{ "-----BEGIN OPENSSH PRIVATE KEY-----", "OpenSSH", NULL },
	{ "-----BEGIN RSA PRIVATE KEY-----", "PEM RSA", NULL },
	{ "-----BEGIN EC PRIVATE KEY-----", "PEM EC", NULL },
	{ "-----BEGIN PRIVATE KEY-----", "PKCS#8", NULL },
	{ "-----BEGIN ENCRYPTED PRIVATE KEY-----", "encrypted PKCS#8",
	  "passphrase-protected keys are not supported: remove the passphrase (ssh-keygen -p -N '')" },
	{ "-----BEGIN DSA PRIVATE KEY-----", "PEM DSA",
	  "DSA keys are not supported (OpenSSH 9.2 disables ssh-dss): use an ed25519, ECDSA or RSA key" },
};

static const char *skip_space(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return p;
}

/* Standard base64 of n bytes (n % 4 == 0, '=' only at the end) into out;
 * the decoded length, or -1.  Keys are read here without OpenSSL (ossl.h). */
static SB_MUST_CHECK int b64_decode(const unsigned char *in, size_t n, unsigned char *out)
{
	size_t i, o = 0;

	for (i = 0; i < n; i += 4) {
		unsigned v = 0;
		int k, pad = 0;

		for (k = 0; k < 4; k++) {
			unsigned char c = in[i + k];
			int d = c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26 :
				c >= '0' && c <= '9' ? c - '0' + 52 : c == '+' ? 62 : c == '/' ? 63 : -1;

			if (c == '=' && i + 4 == n && k >= 2) {
				pad++;
				d = 0;
			} else if (d < 0 || pad) {
				return -1;
			}
			v = v << 6 | (unsigned)d;
		}
		out[o++] = (unsigned char)(v >> 16);
		if (pad < 2)
			out[o++] = (unsigned char)(v >> 8);
		if (pad < 1)
			out[o++] = (unsigned char)v;
	}
	return (int)o;
}

/* Ed25519's OID 1.3.101.112 in DER, found in the decoded PKCS#8 body. */
static SB_MUST_CHECK int pkcs8_is_ed25519(const char *key, size_t len)
{
	static const unsigned char oid[] = { 0x06, 0x03, 0x2b, 0x65, 0x70 };
	const char *p = memchr(key, '\n', len), *end = key + len;
	unsigned char b64[8192], der[6144];
	size_t n = 0;
	int dlen, found = 0, i;

	if (!p)
		return 0;
	for (p++; p < end && *p != '-'; p++)
		if (*p != '\n' && *p != '\r' && *p != ' ' && n < sizeof(b64) - 1)
			b64[n++] = (unsigned char)*p;
	n -= n % 4;
	dlen = b64_decode(b64, n, der);
	for (i = 0; dlen > 0 && i + (int)sizeof(oid) <= dlen && i < 64; i++)
		if (memcmp(der + i, oid, sizeof(oid)) == 0)
			found = 1;
	secret_wipe(b64, sizeof(b64));
	secret_wipe(der, sizeof(der));
	return found;
}

/* "openssh-key-v1\0" || string ciphername || ...: any cipher but "none" is
 * passphrase-protected.  ssh-keygen reading a pipe cannot tell us (its
 * second read of the exhausted pipe says only "error in libcrypto"). */
static SB_MUST_CHECK int openssh_is_encrypted(const char *key, size_t len)
{
	static const char magic[] = "openssh-key-v1";   /* with its NUL: 15 bytes */
	const char *p = memchr(key, '\n', len), *end = key + len;
	unsigned char b64[64], der[48];
	size_t n = 0;
	uint32_t clen;
	int dlen;

	if (!p)
		return 0;
	for (p++; p < end && *p != '-' && n < sizeof(b64); p++)
		if (*p != '\n' && *p != '\r')
			b64[n++] = (unsigned char)*p;
	n -= n % 4;
	dlen = b64_decode(b64, n, der);
	if (dlen < 15 + 4 + 4 || memcmp(der, magic, sizeof(magic)) != 0)
		return 0;
	clen = (uint32_t)der[15] << 24 | (uint32_t)der[16] << 16 | (uint32_t)der[17] << 8 | der[18];
	return !(clen == 4 && memcmp(der + 19, "none", 4) == 0);
}

int keys_normalize(const char *key, size_t len, struct buf *out)
{
	const char *p = key, *end = key + len;
	int r = 0;

	while (p < end && strchr(" \t\r\n", *p))
		p++;
	while (end > p && strchr(" \t\r\n", end[-1]))
		end--;
	for (; p < end && !r; p++)
		if (!(*p == '\r' && p + 1 < end && p[1] == '\n'))
			r = buf_putc(out, *p);
	return r ? r : buf_putc(out, '\n');
}

int keys_fingerprint(const char *pub, char out[128], struct sb_error *e)
{
	const char *argv[] = { SSH_KEYGEN, "-l", "-E", "sha256", "-f", "-", NULL };
	struct child_run_opts o = { NULL, "/", 1, 1, KEYGEN_TIMEOUT_MS };
	struct buf so = BUF_INIT, se = BUF_INIT;
	char line[4096];
	int code = -1, r;
	const char *p;

	buf_init(&so, 4096);
	buf_init(&se, 4096);
	snprintf(line, sizeof(line), "%s\n", pub);
	r = child_run(argv, &o, line, strlen(line), &so, &se, &code, e);
	if (!r && code != 0)
		r = sb_error_set(e, SB_ERR_USAGE, "cannot fingerprint public key: %s",
				 se.len ? strtok(se.data, "\n") : "ssh-keygen failed");
	/* "256 SHA256:abc comment (ED25519)" */
	if (!r) {
		p = strchr(buf_cstr(&so), ' ');
		if (!p || strncmp(p + 1, "SHA256:", 7) != 0) {
			r = sb_error_set(e, SB_ERR_INTERNAL, "unexpected ssh-keygen -l output");
		} else {
			size_t n = strcspn(p + 1, " \n");
			if (n >= 128)
				n = 127;
			memcpy(out, p + 1, n);
			out[n] = '\0';
		}
	}
	buf_release(&so);
	buf_release(&se);
	return r;
}

int keys_inspect(const char *key, size_t len, struct key_info *info, struct sb_error *e)
{
	const char *argv[] = { SSH_KEYGEN, "-y", "-P", "", "-f", "/dev/stdin", NULL };
	struct child_run_opts o = { NULL, "/", 1, 1, KEYGEN_TIMEOUT_MS };
	const struct pem_kind *kind = NULL;
	const char *p = skip_space(key, key + len), *msg;
	struct buf so = BUF_INIT, se = BUF_INIT;
	int code = -1, r;
	size_t i, n;

	if (len == 0 || p == key + len)
		return sb_error_set(e, SB_ERR_USAGE, "invalid private key: empty input");
	if (len > KEYS_MAX_PRIVATE)
		return sb_error_set(e, SB_ERR_USAGE, "invalid private key: larger than %d bytes", KEYS_MAX_PRIVATE);
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if ((size_t)(key + len - p) >= strlen(kinds[i].header) &&
		    strncmp(p, kinds[i].header, strlen(kinds[i].header)) == 0)
			kind = &kinds[i];
	if (!kind)
		return sb_error_set(e, SB_ERR_USAGE,
				    "invalid private key: unrecognised format (expected an OpenSSH, PEM RSA, PEM EC or PKCS#8 private key)");
	if (kind->refusal)
		return sb_error_set(e, SB_ERR_USAGE, "unsupported private key (%s): %s", kind->format, kind->refusal);
	if (memmem(key, len, "Proc-Type: 4,ENCRYPTED", 22))
		return sb_error_set(e, SB_ERR_USAGE,
				    "unsupported private key (%s): passphrase-protected keys are not supported: remove the passphrase (ssh-keygen -p -N '')",
				    kind->format);
	if (strcmp(kind->format, "OpenSSH") == 0 && openssh_is_encrypted(p, (size_t)(key + len - p)))
		return sb_error_set(e, SB_ERR_USAGE,
				    "unsupported private key (OpenSSH): passphrase-protected keys are not supported: remove the passphrase (ssh-keygen -p -N '')");
	if (strcmp(kind->format, "PKCS#8") == 0 && pkcs8_is_ed25519(p, (size_t)(key + len - p)))
		return sb_error_set(e, SB_ERR_USAGE,
				    "unsupported private key (PKCS#8 Ed25519): OpenSSH 9.2 cannot read it; convert it to OpenSSH format (ssh-keygen -p -f KEY on OpenSSH >= 9.6) or generate one with ssh-keygen -t ed25519");

	buf_init(&so, 16384);
	buf_init(&se, 4096);
	r = child_run(argv, &o, key, len, &so, &se, &code, e);
	if (r)
		goto out;
	if (code != 0) {
		msg = se.len ? se.data : "";
		if (strstr(msg, "passphrase"))
			r = sb_error_set(e, SB_ERR_USAGE,
					 "unsupported private key (%s): passphrase-protected keys are not supported: remove the passphrase (ssh-keygen -p -N '')",
					 kind->format);
		else
			r = sb_error_set(e, SB_ERR_USAGE, "invalid private key (%s): OpenSSH cannot load it (%s)",
					 kind->format, strstr(msg, "invalid format") ? "invalid format" : "malformed");
		goto out;
	}
	n = strcspn(buf_cstr(&so), "\n");
	so.len = n;
	if (so.data)
		so.data[n] = '\0';
	/* keep "type base64" only: the comment is the user's business */
	{
		char *sp = strchr(buf_cstr(&so), ' '), *sp2 = sp ? strchr(sp + 1, ' ') : NULL;
		if (sp2) {
			*sp2 = '\0';
			so.len = (size_t)(sp2 - so.data);
		}
	}
	if (strncmp(buf_cstr(&so), "ssh-ed25519 ", 12) == 0)
		strcpy(info->type, "ED25519");
	else if (strncmp(buf_cstr(&so), "ssh-rsa ", 8) == 0)
		strcpy(info->type, "RSA");
	else if (strncmp(buf_cstr(&so), "ecdsa-sha2-nistp", 16) == 0)
		strcpy(info->type, "ECDSA");
	else if (strncmp(buf_cstr(&so), "ssh-dss ", 8) == 0) {
		r = sb_error_set(e, SB_ERR_USAGE,
				 "unsupported private key (%s DSA): DSA keys are not supported (OpenSSH 9.2 disables ssh-dss): use an ed25519, ECDSA or RSA key",
				 kind->format);
		goto out;
	} else {
		r = sb_error_set(e, SB_ERR_USAGE, "unsupported private key (%s): key type '%.32s' is not supported",
				 kind->format, buf_cstr(&so));
		goto out;
	}
	snprintf(info->format, sizeof(info->format), "%s", kind->format);
	if ((r = keys_fingerprint(so.data, info->fingerprint, e)) != 0)
		goto out;
	buf_release(&info->public_key);
	info->public_key = so;
	so = (struct buf)BUF_INIT;
out:
	buf_release(&so);
	buf_release(&se);
	return r;
}

void key_info_release(struct key_info *info)
{
	buf_release(&info->public_key);
}
