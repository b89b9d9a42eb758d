#include "fernet.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "entropy.h"
#include "ossl.h"
#include "secret.h"

#define FERNET_VERSION 0x80
#define FERNET_BLOCK 16
#define FERNET_HDR_LEN 25                               /* version, ts, IV */
#define FERNET_MAC_LEN 32
#define FERNET_OVERHEAD (FERNET_HDR_LEN + FERNET_MAC_LEN)  /* 57 */
#define FERNET_MIN_RAW (FERNET_OVERHEAD + FERNET_BLOCK)   /* 73 */

/* EVP_*Update take int lengths: the caps must keep us far below INT_MAX. */
_Static_assert(FERNET_MAX_TOKEN_RAW < 0x7fffffff / 2, "Fernet caps must fit in an int");

static const char b64url_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static SB_MUST_CHECK int b64url_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

static void b64url_encode_raw(const unsigned char *in, size_t n, char *dst)
{
	size_t i, o = 0;

	for (i = 0; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		dst[o++] = b64url_alphabet[v >> 18 & 63];
		dst[o++] = b64url_alphabet[v >> 12 & 63];
		dst[o++] = b64url_alphabet[v >> 6 & 63];
		dst[o++] = b64url_alphabet[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;

		dst[o++] = b64url_alphabet[v >> 18 & 63];
		dst[o++] = b64url_alphabet[v >> 12 & 63];
		dst[o++] = '=';
		dst[o++] = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

		dst[o++] = b64url_alphabet[v >> 18 & 63];
		dst[o++] = b64url_alphabet[v >> 12 & 63];
		dst[o++] = b64url_alphabet[v >> 6 & 63];
		dst[o++] = '=';
	}
}

/* Strict decode of s into dst (room for len / 4 * 3 bytes).  On failure dst
 * may hold a partial result: the caller wipes it. */
static SB_MUST_CHECK int b64url_decode_raw(const char *s, size_t len, unsigned char *dst, size_t *dlen)
{
	size_t i, o = 0, pad = 0;

	if (len % 4)
		return SB_ERR_USAGE;
	if (len && s[len - 1] == '=')
		pad = (len >= 2 && s[len - 2] == '=') ? 2 : 1;
	for (i = 0; i < len; i += 4) {
		size_t k, nchar = (i + 4 == len) ? 4 - pad : 4;
		uint32_t v = 0;

		/* Every char outside the final padding must be in the alphabet,
		 * so an '=' anywhere else is rejected here. */
		for (k = 0; k < nchar; k++) {
			int d = b64url_val((unsigned char)s[i + k]);

			if (d < 0)
				return SB_ERR_USAGE;
			v |= (uint32_t)d << (18 - 6 * k);
		}
		dst[o++] = (unsigned char)(v >> 16);
		if (nchar == 2) {
			if (v & 0xffff)   /* the 4 unused bits of the 2nd char */
				return SB_ERR_USAGE;
			continue;
		}
		dst[o++] = (unsigned char)(v >> 8);
		if (nchar == 3) {
			if (v & 0xff)     /* the 2 unused bits of the 3rd char */
				return SB_ERR_USAGE;
			continue;
		}
		dst[o++] = (unsigned char)v;
	}
	*dlen = o;
	return 0;
}

int b64url_encode(const void *data, size_t len, struct buf *out)
{
	size_t olen;
	int r;

	if (len > (SIZE_MAX / 4) * 3 - 3)
		return SB_ERR_TOOBIG;
	olen = (len + 2) / 3 * 4;
	r = buf_reserve(out, olen);
	if (r)
		return r;
	b64url_encode_raw(data, len, out->data + out->len);
	out->len += olen;
	out->data[out->len] = '\0';
	return 0;
}

int b64url_decode(const char *s, size_t len, struct buf *out)
{
	size_t room = len / 4 * 3, dlen = 0;
	int r;

	if (len % 4)
		return SB_ERR_USAGE;
	r = buf_reserve(out, room);
	if (r)
		return r;
	r = b64url_decode_raw(s, len, (unsigned char *)out->data + out->len, &dlen);
	if (r) {
		/* The partial output may be secret (a key): wipe it. */
		secret_wipe(out->data + out->len, room);
		out->data[out->len] = '\0';
		return r;
	}
	out->len += dlen;
	out->data[out->len] = '\0';
	return 0;
}

static SB_MUST_CHECK int key_decode(const char *b64, size_t len, struct fernet_key *out)
{
	unsigned char raw[33];
	size_t dlen = 0;
	int r = SB_ERR_CRYPTO;

	if (!b64 || len != FERNET_KEY_B64_LEN)
		return SB_ERR_CRYPTO;
	if (b64url_decode_raw(b64, len, raw, &dlen) == 0 && dlen == 32) {
		memcpy(out->signing, raw, 16);
		memcpy(out->encryption, raw + 16, 16);
		r = 0;
	}
	secret_wipe(raw, sizeof(raw));
	return r;
}

int fernet_key_decode(const char *b64, size_t len, struct fernet_key *out, struct sb_error *e)
{
	if (key_decode(b64, len, out))
		return sb_error_set(e, SB_ERR_CRYPTO,
				    "invalid Fernet key: expected %d url-safe base64 characters encoding 32 bytes",
				    FERNET_KEY_B64_LEN);
	return 0;
}

/* Walks the entries of a key list: split on ',' and '\n', whitespace trimmed,
 * empty entries and lines whose first non-blank char is '#' skipped. */
struct key_iter {
	const char *text;
	size_t len, pos;
	int line_start;
};

static SB_MUST_CHECK int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static SB_MUST_CHECK int key_iter_next(struct key_iter *it, const char **s, size_t *n)
{
	while (it->pos < it->len) {
		size_t a = it->pos, b;

		if (it->line_start) {
			size_t q = a;

			while (q < it->len && is_blank(it->text[q]))
				q++;
			if (q < it->len && it->text[q] == '#') {
				while (q < it->len && it->text[q] != '\n')
					q++;
				it->pos = q < it->len ? q + 1 : q;
				continue;
			}
		}
		b = a;
		while (b < it->len && it->text[b] != ',' && it->text[b] != '\n')
			b++;
		it->line_start = b < it->len && it->text[b] == '\n';
		it->pos = b < it->len ? b + 1 : b;
		while (a < b && is_blank(it->text[a]))
			a++;
		while (b > a && is_blank(it->text[b - 1]))
			b--;
		if (a < b) {
			*s = it->text + a;
			*n = b - a;
			return 1;
		}
	}
	return 0;
}

int fernet_keyring_parse(struct fernet_keyring *kr, const char *text, size_t len, struct sb_error *e)
{
	struct key_iter it = { text, text ? len : 0, 0, 1 };
	struct fernet_keyring nk = FERNET_KEYRING_INIT;
	const char *s;
	size_t n, count = 0;
	int r = 0;

	while (key_iter_next(&it, &s, &n))
		count++;
	if (count == 0)
		return sb_error_set(e, SB_ERR_CRYPTO, "no Fernet key configured: the key list is empty");
	nk.keys = calloc(count, sizeof(*nk.keys));
	if (!nk.keys)
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory reading the Fernet keys");
	it.pos = 0;
	it.line_start = 1;
	while (nk.n < count && key_iter_next(&it, &s, &n)) {
		if (key_decode(s, n, &nk.keys[nk.n])) {
			/* Position and length only: never the key's characters. */
			if (n != FERNET_KEY_B64_LEN)
				r = sb_error_set(e, SB_ERR_CRYPTO,
						 "invalid Fernet key %zu of %zu: %zu characters, expected %d",
						 nk.n + 1, count, n, FERNET_KEY_B64_LEN);
			else
				r = sb_error_set(e, SB_ERR_CRYPTO,
						 "invalid Fernet key %zu of %zu: not url-safe base64 of 32 bytes",
						 nk.n + 1, count);
			goto out;
		}
		nk.n++;
	}
	fernet_keyring_clear(kr);
	*kr = nk;
	nk.keys = NULL;
	nk.n = 0;
out:
	if (nk.keys) {
		secret_wipe(nk.keys, count * sizeof(*nk.keys));
		free(nk.keys);
	}
	return r;
}

void fernet_keyring_clear(struct fernet_keyring *kr)
{
	if (!kr)
		return;
	if (kr->keys) {
		secret_wipe(kr->keys, kr->n * sizeof(*kr->keys));
		free(kr->keys);
	}
	kr->keys = NULL;
	kr->n = 0;
}

int fernet_genkey(struct buf *out)
{
	unsigned char k[32];
	int r;

	if (entropy_fill(k, sizeof(k)) != 0)
		return SB_ERR_INTERNAL;
	r = b64url_encode(k, sizeof(k), out);
	secret_wipe(k, sizeof(k));
	return r;
}

static SB_MUST_CHECK int hmac_sha256(const unsigned char key[16], const unsigned char *data, size_t len,
		       unsigned char mac[FERNET_MAC_LEN])
{
	const struct ossl *o = ossl();
	size_t outlen = 0;

	if (!o || !o->EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, 16, data, len, mac, FERNET_MAC_LEN, &outlen) ||
	    outlen != FERNET_MAC_LEN)
		return SB_ERR_INTERNAL;
	return 0;
}

static void put_be64(unsigned char *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--) {
		p[i] = (unsigned char)v;
		v >>= 8;
	}
}

static uint64_t get_be64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

int fernet_encrypt_at(const struct fernet_key *k, const void *msg, size_t len, uint64_t now,
		      const unsigned char iv[16], struct buf *out)
{
	static const unsigned char empty[1];
	const struct ossl *o = ossl();
	EVP_CIPHER_CTX *c = NULL;
	unsigned char *raw = NULL;
	size_t ctlen, rawlen, alloc;
	int n1 = 0, n2 = 0, r;

	if (!k || !iv || (len && !msg) || !o)
		return SB_ERR_INTERNAL;
	if (len > FERNET_MAX_PLAINTEXT)
		return SB_ERR_TOOBIG;
	ctlen = (len / FERNET_BLOCK + 1) * FERNET_BLOCK;
	rawlen = FERNET_OVERHEAD + ctlen;
	alloc = rawlen + FERNET_BLOCK;   /* EVP's documented slack for Update */
	raw = malloc(alloc);
	if (!raw)
		return SB_ERR_NOMEM;
	raw[0] = FERNET_VERSION;
	put_be64(raw + 1, now);
	memcpy(raw + 9, iv, 16);
	r = SB_ERR_NOMEM;
	c = o->EVP_CIPHER_CTX_new();
	if (!c)
		goto out;
	r = SB_ERR_INTERNAL;
	if (o->EVP_EncryptInit_ex(c, o->EVP_aes_128_cbc(), NULL, k->encryption, iv) != 1 ||
	    o->EVP_EncryptUpdate(c, raw + FERNET_HDR_LEN, &n1, len ? msg : empty, (int)len) != 1 ||
	    o->EVP_EncryptFinal_ex(c, raw + FERNET_HDR_LEN + n1, &n2) != 1 ||
	    (size_t)n1 + (size_t)n2 != ctlen)
		goto out;
	r = hmac_sha256(k->signing, raw, FERNET_HDR_LEN + ctlen, raw + FERNET_HDR_LEN + ctlen);
	if (r)
		goto out;
	r = b64url_encode(raw, rawlen, out);
out:
	o->EVP_CIPHER_CTX_free(c);   /* cleanses the key schedule */
	secret_wipe(raw, alloc);
	free(raw);
	return r;
}

int fernet_encrypt(const struct fernet_keyring *kr, const void *msg, size_t len, struct buf *out)
{
	unsigned char iv[16];
	time_t now = time(NULL);

	if (!kr || !kr->n)
		return SB_ERR_USAGE;
	if (entropy_fill(iv, sizeof(iv)) != 0)
		return SB_ERR_INTERNAL;
	return fernet_encrypt_at(&kr->keys[0], msg, len, now < 0 ? 0 : (uint64_t)now, iv, out);
}

static SB_MUST_CHECK int aes_cbc_decrypt(const unsigned char key[16], const unsigned char iv[16], const unsigned char *ct,
			   size_t ctlen, unsigned char *pt, size_t *ptlen)
{
	const struct ossl *o = ossl();
	EVP_CIPHER_CTX *c;
	int n1 = 0, n2 = 0, r = SB_ERR_CRYPTO;

	if (!o)
		return SB_ERR_INTERNAL;
	if (!(c = o->EVP_CIPHER_CTX_new()))
		return SB_ERR_NOMEM;
	if (o->EVP_DecryptInit_ex(c, o->EVP_aes_128_cbc(), NULL, key, iv) != 1) {
		r = SB_ERR_INTERNAL;
		goto out;
	}
	/* Final failing is bad PKCS#7 padding: SB_ERR_CRYPTO like every other cause. */
	if (o->EVP_DecryptUpdate(c, pt, &n1, ct, (int)ctlen) != 1 ||
	    o->EVP_DecryptFinal_ex(c, pt + n1, &n2) != 1)
		goto out;
	*ptlen = (size_t)n1 + (size_t)n2;
	r = 0;
out:
	o->EVP_CIPHER_CTX_free(c);
	return r;
}

/* Verify (and, when out is not NULL, decrypt and append) a token in the
 * spec's order: length and version, timestamp (only with a ttl), HMAC in
 * constant time, then AES-CBC and padding.  Returns SB_ERR_CRYPTO for every
 * kind of bad token; other codes are resource failures. */
static SB_MUST_CHECK int fernet_open(const struct fernet_keyring *kr, const char *token, size_t len, int64_t ttl_s,
		       uint64_t now, struct buf *out, uint64_t *ts_out)
{
	unsigned char *raw = NULL, *pt = NULL;
	size_t rawcap = 0, rawlen = 0, ctlen = 0, ptlen = 0, i;
	uint64_t ts;
	int r = SB_ERR_CRYPTO;

	if (!kr || !kr->n || !token || len % 4 || len < 4 || len > FERNET_MAX_TOKEN_LEN)
		goto out;
	rawcap = len / 4 * 3;
	raw = malloc(rawcap);
	if (!raw) {
		r = SB_ERR_NOMEM;
		goto out;
	}
	if (b64url_decode_raw(token, len, raw, &rawlen))
		goto out;
	/* Length before any field is read. */
	if (rawlen < FERNET_MIN_RAW || (rawlen - FERNET_OVERHEAD) % FERNET_BLOCK || raw[0] != FERNET_VERSION)
		goto out;
	ts = get_be64(raw + 1);
	if (ttl_s >= 0) {
		/* Python's arithmetic is unbounded: an overflowing sum never expires. */
		if ((uint64_t)ttl_s <= UINT64_MAX - ts && ts + (uint64_t)ttl_s < now)
			goto out;
		if (now <= UINT64_MAX - FERNET_MAX_CLOCK_SKEW && now + FERNET_MAX_CLOCK_SKEW < ts)
			goto out;
	}
	ctlen = rawlen - FERNET_OVERHEAD;
	if (out) {
		pt = malloc(ctlen + FERNET_BLOCK);
		if (!pt) {
			r = SB_ERR_NOMEM;
			goto out;
		}
	}
	r = SB_ERR_CRYPTO;
	for (i = 0; i < kr->n; i++) {
		unsigned char mac[FERNET_MAC_LEN];
		int rr;

		rr = hmac_sha256(kr->keys[i].signing, raw, rawlen - FERNET_MAC_LEN, mac);
		if (rr) {
			r = rr;
			goto out;
		}
		if (secret_memcmp(mac, raw + rawlen - FERNET_MAC_LEN, FERNET_MAC_LEN) != 0)
			continue;
		if (!out) {
			r = 0;
			break;
		}
		rr = aes_cbc_decrypt(kr->keys[i].encryption, raw + 9, raw + FERNET_HDR_LEN, ctlen, pt, &ptlen);
		if (rr == 0) {
			r = 0;
			break;
		}
		if (rr != SB_ERR_CRYPTO) {
			r = rr;
			goto out;
		}
		/* MultiFernet: a bad token for this key may be good for the next. */
	}
	if (r)
		goto out;
	if (out) {
		/* Plaintexts MAX+1..MAX+15 share the longest token size: keep one bound. */
		if (ptlen > FERNET_MAX_PLAINTEXT) {
			r = SB_ERR_TOOBIG;
			goto out;
		}
		r = buf_append(out, pt, ptlen);
		if (r)
			goto out;
	}
	if (ts_out)
		*ts_out = ts;
out:
	if (raw) {
		secret_wipe(raw, rawcap);
		free(raw);
	}
	if (pt) {
		secret_wipe(pt, ctlen + FERNET_BLOCK);
		free(pt);
	}
	return r;
}

const char *fernet_strerror(int r)
{
	return r == SB_ERR_INTERNAL && !ossl() ? ossl_error() : sb_err_str(r);
}

static SB_MUST_CHECK int open_error(struct sb_error *e, int r)
{
	if (r == SB_ERR_CRYPTO)
		return sb_error_set(e, r, "invalid Fernet token");
	if (r == SB_ERR_TOOBIG)
		return sb_error_set(e, r, "decrypted Fernet token is larger than %d bytes", FERNET_MAX_PLAINTEXT);
	return sb_error_set(e, r, "cannot decrypt Fernet token: %s", fernet_strerror(r));
}

int fernet_decrypt_at(const struct fernet_keyring *kr, const char *token, size_t len, int64_t ttl_s,
		      uint64_t now, struct buf *out, struct sb_error *e)
{
	int r;

	if (!out)
		return sb_error_set(e, SB_ERR_INTERNAL, "fernet_decrypt_at: no output buffer");
	r = fernet_open(kr, token, len, ttl_s, now, out, NULL);
	return r ? open_error(e, r) : 0;
}

int fernet_decrypt(const struct fernet_keyring *kr, const char *token, size_t len, int64_t ttl_s,
		   struct buf *out, struct sb_error *e)
{
	time_t now = time(NULL);

	return fernet_decrypt_at(kr, token, len, ttl_s, now < 0 ? 0 : (uint64_t)now, out, e);
}

int fernet_rotate(const struct fernet_keyring *kr, const char *token, size_t len, struct buf *out,
		  struct sb_error *e)
{
	struct buf pt = BUF_INIT;
	unsigned char iv[16];
	uint64_t ts = 0;
	int r;

	r = fernet_open(kr, token, len, -1, 0, &pt, &ts);
	if (r) {
		r = open_error(e, r);
		goto out;
	}
	if (entropy_fill(iv, sizeof(iv)) != 0) {
		r = sb_error_set(e, SB_ERR_INTERNAL, "cannot rotate Fernet token: no random IV");
		goto out;
	}
	r = fernet_encrypt_at(&kr->keys[0], pt.data, pt.len, ts, iv, out);
	if (r)
		sb_error_set(e, r, "cannot rotate Fernet token: %s", sb_err_str(r));
out:
	buf_wipe_release(&pt);
	return r;
}

int fernet_token_timestamp(const struct fernet_keyring *kr, const char *token, size_t len,
			   uint64_t *ts, struct sb_error *e)
{
	int r = fernet_open(kr, token, len, -1, 0, NULL, ts);

	return r ? open_error(e, r) : 0;
}
