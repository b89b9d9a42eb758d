/* Unit tests for src/fernet.c: the fernet/spec vectors, Python-made tokens,
 * strictness (the lenient forms Python accepts are rejected here), MultiFernet
 * and rotate, key ring parsing, bounds and truncation.
 *
 * Reference vectors: $SSHBOX_REFS/fernet/{generate,verify,invalid}.json, default
 * ../shared/refs (run with cwd = repo root).  Python tokens:
 * tests/data/fernet-python.txt. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "buf.h"
#include "err.h"
#include "fernet.h"
#include "unit.h"

/* ---- helpers ---------------------------------------------------------- */

static int read_whole(const char *path, struct buf *out)
{
	FILE *f = fopen(path, "rb");
	char tmp[4096];
	size_t n;

	if (!f) {
		printf("#   cannot open '%s': %s\n", path, strerror(errno));
		return -1;
	}
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		if (buf_append(out, tmp, n)) {
			fclose(f);
			return -1;
		}
	fclose(f);
	return 0;
}

static const char *refs_dir(void)
{
	const char *d = getenv("SSHBOX_REFS");

	return d && *d ? d : "../shared/refs";
}

static int ring1(struct fernet_keyring *kr, const char *key)
{
	return fernet_keyring_parse(kr, key, strlen(key), NULL);
}

static int buf_is(const struct buf *b, const void *data, size_t len)
{
	return b->len == len && (len == 0 || memcmp(b->data, data, len) == 0);
}

/* Decode a token to its raw bytes (our strict decoder; test tokens are valid). */
static int token_raw(const char *tok, struct buf *raw)
{
	return b64url_decode(tok, strlen(tok), raw);
}

static uint64_t raw_ts(const struct buf *raw)
{
	uint64_t v = 0;
	int i;

	for (i = 1; i <= 8; i++)
		v = v << 8 | (unsigned char)raw->data[i];
	return v;
}

/* Build a token around arbitrary fields with a correct HMAC: reaches the
 * checks behind the MAC (version, padding, plaintext bound). */
static int forge(const struct fernet_key *k, unsigned version, uint64_t ts, const unsigned char iv[16],
		 const unsigned char *ct, size_t ctlen, struct buf *tok)
{
	struct buf raw = BUF_INIT;
	unsigned char hdr[25], mac[32];
	size_t maclen = 0;
	int i, r;

	hdr[0] = (unsigned char)version;
	for (i = 8; i >= 1; i--) {
		hdr[i] = (unsigned char)ts;
		ts >>= 8;
	}
	memcpy(hdr + 9, iv, 16);
	r = buf_append(&raw, hdr, sizeof(hdr));
	if (!r)
		r = buf_append(&raw, ct, ctlen);
	if (!r && !EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, k->signing, 16, (unsigned char *)raw.data,
			     raw.len, mac, sizeof(mac), &maclen))
		r = -1;
	if (!r)
		r = buf_append(&raw, mac, sizeof(mac));
	if (!r)
		r = b64url_encode(raw.data, raw.len, tok);
	buf_release(&raw);
	return r;
}

/* AES-128-CBC with or without PKCS#7, independent of fernet.c. */
static int aes_enc(const struct fernet_key *k, const unsigned char iv[16], int pad, const void *msg, size_t len,
		   struct buf *ct)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n1 = 0, n2 = 0, r = -1;

	if (buf_reserve(ct, len + 32))
		goto out;
	if (EVP_EncryptInit_ex(c, EVP_aes_128_cbc(), NULL, k->encryption, iv) == 1 &&
	    EVP_CIPHER_CTX_set_padding(c, pad) == 1 &&
	    EVP_EncryptUpdate(c, (unsigned char *)ct->data, &n1, msg, (int)len) == 1 &&
	    EVP_EncryptFinal_ex(c, (unsigned char *)ct->data + n1, &n2) == 1) {
		ct->len = (size_t)(n1 + n2);
		r = 0;
	}
out:
	EVP_CIPHER_CTX_free(c);
	return r;
}

/* Decrypt must fail with the one generic error and leave out alone. */
static int rejected_at(const struct fernet_keyring *kr, const char *tok, size_t len, int64_t ttl, uint64_t now)
{
	struct buf out = BUF_INIT;
	struct sb_error e = SB_ERROR_INIT;
	int r, ok;

	buf_adds(&out, "keep");
	r = fernet_decrypt_at(kr, tok, len, ttl, now, &out, &e);
	ok = r == SB_ERR_CRYPTO && e.code == SB_ERR_CRYPTO && strcmp(e.msg, "invalid Fernet token") == 0 &&
	     buf_is(&out, "keep", 4);
	buf_wipe_release(&out);
	return ok;
}

static int rejected(const struct fernet_keyring *kr, const char *tok, size_t len)
{
	return rejected_at(kr, tok, len, -1, 0);
}

static int decrypts_to(const struct fernet_keyring *kr, const char *tok, size_t len, int64_t ttl, uint64_t now,
		       const void *msg, size_t mlen)
{
	struct buf out = BUF_INIT;
	struct sb_error e = SB_ERROR_INIT;
	int ok;

	ok = fernet_decrypt_at(kr, tok, len, ttl, now, &out, &e) == 0 && buf_is(&out, msg, mlen);
	if (!ok)
		printf("#   decrypt failed: %s\n", e.msg);
	buf_wipe_release(&out);
	return ok;
}

/* ---- a tiny reader for the fernet/spec vector files ------------------- */

struct vec {
	char desc[128], token[512], now[64], src[128], secret[128];
	long long ttl;
	int has_ttl;
	unsigned char iv[16];
	int n_iv;
};

struct cur {
	const char *p, *end;
};

static void skip_ws(struct cur *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n'))
		c->p++;
}

static int eat(struct cur *c, char ch)
{
	skip_ws(c);
	if (c->p < c->end && *c->p == ch) {
		c->p++;
		return 1;
	}
	return 0;
}

static int read_str(struct cur *c, char *dst, size_t cap)
{
	size_t n = 0;

	if (!eat(c, '"'))
		return 0;
	while (c->p < c->end && *c->p != '"') {
		char ch = *c->p++;

		if (ch == '\\') {
			if (c->p >= c->end)
				return 0;
			ch = *c->p++;
			if (ch == 'n')
				ch = '\n';
			else if (ch != '"' && ch != '\\' && ch != '/')
				return 0;   /* not needed by these files */
		}
		if (n + 1 >= cap)
			return 0;
		dst[n++] = ch;
	}
	if (c->p >= c->end)
		return 0;
	c->p++;
	dst[n] = '\0';
	return 1;
}

static int read_int(struct cur *c, long long *v)
{
	char *endp;

	skip_ws(c);
	errno = 0;
	*v = strtoll(c->p, &endp, 10);   /* the file buffer is NUL-terminated */
	if (endp == c->p || errno)
		return 0;
	c->p = endp;
	return 1;
}

/* Returns the number of vectors, -1 on a parse error. */
static int parse_vectors(const struct buf *json, struct vec *v, int max)
{
	struct cur c = { json->data, json->data + json->len };
	int n = 0;

	if (!eat(&c, '['))
		return -1;
	if (eat(&c, ']'))
		return 0;
	do {
		struct vec *x;

		if (n >= max || !eat(&c, '{'))
			return -1;
		x = &v[n];
		memset(x, 0, sizeof(*x));
		do {
			char key[32];

			if (!read_str(&c, key, sizeof(key)) || !eat(&c, ':'))
				return -1;
			if (!strcmp(key, "token")) {
				if (!read_str(&c, x->token, sizeof(x->token)))
					return -1;
			} else if (!strcmp(key, "now")) {
				if (!read_str(&c, x->now, sizeof(x->now)))
					return -1;
			} else if (!strcmp(key, "src")) {
				if (!read_str(&c, x->src, sizeof(x->src)))
					return -1;
			} else if (!strcmp(key, "secret")) {
				if (!read_str(&c, x->secret, sizeof(x->secret)))
					return -1;
			} else if (!strcmp(key, "desc")) {
				if (!read_str(&c, x->desc, sizeof(x->desc)))
					return -1;
			} else if (!strcmp(key, "ttl_sec")) {
				if (!read_int(&c, &x->ttl))
					return -1;
				x->has_ttl = 1;
			} else if (!strcmp(key, "iv")) {
				if (!eat(&c, '['))
					return -1;
				do {
					long long b;

					if (x->n_iv >= 16 || !read_int(&c, &b) || b < 0 || b > 255)
						return -1;
					x->iv[x->n_iv++] = (unsigned char)b;
				} while (eat(&c, ','));
				if (!eat(&c, ']'))
					return -1;
			} else {
				return -1;
			}
		} while (eat(&c, ','));
		if (!eat(&c, '}'))
			return -1;
		n++;
	} while (eat(&c, ','));
	if (!eat(&c, ']'))
		return -1;
	skip_ws(&c);
	return c.p == c.end ? n : -1;
}

static long long days_from_civil(long long y, unsigned m, unsigned d)
{
	long long era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long long)doe - 719468;
}

/* "1985-10-26T01:20:01-07:00" -> Unix seconds; 0 on a parse error. */
static uint64_t rfc3339(const char *s)
{
	int y, mo, d, h, mi, sec, oh, om, n = 0;
	char sign;
	long long t;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &sign, &oh, &om, &n) != 9 ||
	    s[n] != '\0' || (sign != '+' && sign != '-'))
		return 0;
	t = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec;
	t -= (sign == '+' ? 1 : -1) * (oh * 3600 + om * 60);
	return (uint64_t)t;
}

static int load_vectors(const char *name, struct vec *v, int max)
{
	struct buf json = BUF_INIT;
	char path[1024];
	int n = -1;

	snprintf(path, sizeof(path), "%s/fernet/%s", refs_dir(), name);
	if (read_whole(path, &json) == 0) {
		n = parse_vectors(&json, v, max);
		if (n < 0)
			printf("#   cannot parse '%s'\n", path);
	}
	if (n <= 0)
		printf("#   no vectors from '%s' (set SSHBOX_REFS to the shared refs dir)\n", path);
	buf_release(&json);
	return n;
}

/* ---- the spec's vectors ----------------------------------------------- */

static void test_rfc3339(void)
{
	CHECK_INT(rfc3339("1985-10-26T01:20:01-07:00"), 499162801);
	CHECK_INT(rfc3339("1970-01-01T00:00:00+00:00"), 0);
	CHECK_INT(rfc3339("2000-03-01T00:00:00+01:00"), 951865200);
}

static void test_vectors_generate(void)
{
	struct vec v[8];
	int n = load_vectors("generate.json", v, 8), i;

	CHECK(n >= 1);
	for (i = 0; i < n; i++) {
		struct fernet_key k;
		struct buf tok = BUF_INIT;

		CHECK_INT(v[i].n_iv, 16);
		CHECK_INT(fernet_key_decode(v[i].secret, strlen(v[i].secret), &k, NULL), 0);
		CHECK_INT(fernet_encrypt_at(&k, v[i].src, strlen(v[i].src), rfc3339(v[i].now), v[i].iv, &tok), 0);
		CHECK_STREQ(buf_cstr(&tok), v[i].token);
		buf_release(&tok);
	}
}

static void test_vectors_verify(void)
{
	struct vec v[8];
	int n = load_vectors("verify.json", v, 8), i;

	CHECK(n >= 1);
	for (i = 0; i < n; i++) {
		struct fernet_keyring kr = FERNET_KEYRING_INIT;
		uint64_t now = rfc3339(v[i].now);

		CHECK(v[i].has_ttl);
		CHECK_INT(ring1(&kr, v[i].secret), 0);
		CHECK(decrypts_to(&kr, v[i].token, strlen(v[i].token), v[i].ttl, now, v[i].src, strlen(v[i].src)));
		CHECK(decrypts_to(&kr, v[i].token, strlen(v[i].token), -1, now, v[i].src, strlen(v[i].src)));
		fernet_keyring_clear(&kr);
	}
}

static void test_vectors_invalid(void)
{
	struct vec v[16];
	int n = load_vectors("invalid.json", v, 16), i;

	CHECK(n >= 8);
	for (i = 0; i < n; i++) {
		struct fernet_keyring kr = FERNET_KEYRING_INIT;

		CHECK(v[i].has_ttl);
		CHECK_INT(ring1(&kr, v[i].secret), 0);
		if (!rejected_at(&kr, v[i].token, strlen(v[i].token), v[i].ttl, rfc3339(v[i].now))) {
			printf("#   accepted invalid vector '%s'\n", v[i].desc);
			CHECK(0);
		}
		fernet_keyring_clear(&kr);
	}
}

/* ---- base64url -------------------------------------------------------- */

static int enc_is(const void *data, size_t len, const char *want)
{
	struct buf b = BUF_INIT;
	int ok = b64url_encode(data, len, &b) == 0 && strcmp(buf_cstr(&b), want) == 0;

	buf_release(&b);
	return ok;
}

static int dec_is(const char *s, const void *want, size_t wlen)
{
	struct buf b = BUF_INIT;
	int ok = b64url_decode(s, strlen(s), &b) == 0 && buf_is(&b, want, wlen);

	buf_release(&b);
	return ok;
}

static int dec_rejects(const char *s, size_t len)
{
	struct buf b = BUF_INIT;
	int ok;

	buf_adds(&b, "x");
	ok = b64url_decode(s, len, &b) == SB_ERR_USAGE && buf_is(&b, "x", 1) && b.data[1] == '\0';
	buf_release(&b);
	return ok;
}

#define DEC_REJECTS(lit) dec_rejects(lit, sizeof(lit) - 1)

static void test_b64url(void)
{
	static const unsigned char url[] = { 0xfb, 0xff, 0xbf };
	static const char *rfc[][2] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	};
	unsigned char rnd[100];
	size_t i;

	for (i = 0; i < sizeof(rfc) / sizeof(rfc[0]); i++) {
		CHECK(enc_is(rfc[i][0], strlen(rfc[i][0]), rfc[i][1]));
		CHECK(dec_is(rfc[i][1], rfc[i][0], strlen(rfc[i][0])));
	}
	CHECK(enc_is(url, 3, "-_-_"));
	CHECK(dec_is("-_-_", url, 3));
	CHECK(enc_is(url, 2, "-_8="));

	CHECK(DEC_REJECTS("+/+/"));      /* standard alphabet */
	CHECK(DEC_REJECTS("Zm9v+w=="));
	CHECK(DEC_REJECTS("Zg"));        /* unpadded */
	CHECK(DEC_REJECTS("Zg="));
	CHECK(DEC_REJECTS("Zm8"));
	CHECK(DEC_REJECTS("Zg==="));     /* over-padded */
	CHECK(DEC_REJECTS("Zm8=="));
	CHECK(DEC_REJECTS("===="));
	CHECK(DEC_REJECTS("A==="));
	CHECK(DEC_REJECTS("Zg==Zg=="));  /* '=' before the end */
	CHECK(DEC_REJECTS("Z=g="));
	CHECK(DEC_REJECTS("Zh=="));      /* non-zero unused bits */
	CHECK(DEC_REJECTS("Zv=="));
	CHECK(DEC_REJECTS("Zm9="));
	CHECK(DEC_REJECTS("Zm-="));
	CHECK(DEC_REJECTS("Zm9v Zg=="));
	CHECK(DEC_REJECTS("Zm9vZg==\n"));
	CHECK(DEC_REJECTS(" Zm9vZg=="));
	CHECK(DEC_REJECTS("Zm9v\nZg=="));
	CHECK(DEC_REJECTS("Zm9v\0Zg="));
	CHECK(DEC_REJECTS("Zm%v"));
	CHECK(DEC_REJECTS("Zm9v\x80Zg="));

	for (i = 0; i <= sizeof(rnd); i++) {
		struct buf e = BUF_INIT, d = BUF_INIT;

		CHECK(RAND_bytes(rnd, sizeof(rnd)) == 1);
		CHECK_INT(b64url_encode(rnd, i, &e), 0);
		CHECK_INT(e.len, (i + 2) / 3 * 4);
		CHECK_INT(b64url_decode(e.data, e.len, &d), 0);
		CHECK(buf_is(&d, rnd, i));
		buf_release(&e);
		buf_release(&d);
	}
}

/* ---- keys -------------------------------------------------------------- */

static const char key_a[] = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";

static int msg_leaks(const char *msg, const char *key)
{
	size_t i, n = strlen(key);

	/* Any 6 consecutive key characters in the message count as a leak. */
	for (i = 0; i + 6 <= n; i++) {
		char sub[7];

		memcpy(sub, key + i, 6);
		sub[6] = '\0';
		if (strstr(msg, sub))
			return 1;
	}
	return 0;
}

static void test_key_decode(void)
{
	static const unsigned char want[32] = {
		0x73, 0x0f, 0xf4, 0xc7, 0xaf, 0x3d, 0x46, 0x92, 0x3e, 0x8e, 0xd4, 0x51, 0xee, 0x81, 0x3c, 0x87,
		0xf7, 0x90, 0xb0, 0xa2, 0x26, 0xbc, 0x96, 0xa9, 0x2d, 0xe4, 0x9b, 0x5e, 0x9c, 0x05, 0xe1, 0xee,
	};
	struct fernet_key k;
	struct sb_error e = SB_ERROR_INIT;
	char bad[64];

	CHECK_INT(fernet_key_decode(key_a, strlen(key_a), &k, &e), 0);
	CHECK(memcmp(k.signing, want, 16) == 0);
	CHECK(memcmp(k.encryption, want + 16, 16) == 0);

	CHECK_INT(fernet_key_decode(key_a, 43, &k, &e), SB_ERR_CRYPTO);
	CHECK(!msg_leaks(e.msg, key_a));
	snprintf(bad, sizeof(bad), "%s\n", key_a);
	CHECK_INT(fernet_key_decode(bad, strlen(bad), &k, NULL), SB_ERR_CRYPTO);
	snprintf(bad, sizeof(bad), "%s", key_a);
	bad[2] = '+';                                      /* '_' written in the standard alphabet */
	CHECK_INT(fernet_key_decode(bad, strlen(bad), &k, &e), SB_ERR_CRYPTO);
	CHECK(!msg_leaks(e.msg, bad));
	bad[2] = '_';
	bad[42] = 'f';                                     /* non-zero unused bits */
	CHECK_INT(fernet_key_decode(bad, strlen(bad), &k, NULL), SB_ERR_CRYPTO);
	CHECK_INT(fernet_key_decode("Zm9v", 4, &k, NULL), SB_ERR_CRYPTO);
	CHECK_INT(fernet_key_decode(NULL, 0, &k, NULL), SB_ERR_CRYPTO);
	/* 48 chars that decode to 36 bytes */
	CHECK_INT(fernet_key_decode("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 48, &k, NULL), SB_ERR_CRYPTO);
}

static void test_genkey(void)
{
	struct buf a = BUF_INIT, b = BUF_INIT;
	struct fernet_key k;

	CHECK_INT(fernet_genkey(&a), 0);
	CHECK_INT(fernet_genkey(&b), 0);
	CHECK_INT(a.len, FERNET_KEY_B64_LEN);
	CHECK(a.len == FERNET_KEY_B64_LEN && a.data[43] == '=');
	CHECK_INT(fernet_key_decode(a.data, a.len, &k, NULL), 0);
	CHECK(strcmp(buf_cstr(&a), buf_cstr(&b)) != 0);
	buf_wipe_release(&a);
	buf_wipe_release(&b);
}

static void test_keyring_parse(void)
{
	struct fernet_keyring kr = FERNET_KEYRING_INIT;
	struct sb_error e = SB_ERROR_INIT;
	struct fernet_key ka, kb, kc;
	struct buf gb = BUF_INIT, gc = BUF_INIT, text = BUF_INIT;
	const char *b, *c;
	char bad[64];

	CHECK_INT(fernet_genkey(&gb), 0);
	CHECK_INT(fernet_genkey(&gc), 0);
	b = buf_cstr(&gb);
	c = buf_cstr(&gc);
	CHECK_INT(fernet_key_decode(key_a, 44, &ka, NULL), 0);
	CHECK_INT(fernet_key_decode(b, 44, &kb, NULL), 0);
	CHECK_INT(fernet_key_decode(c, 44, &kc, NULL), 0);

	buf_addf(&text, "%s,%s", key_a, b);
	CHECK_INT(fernet_keyring_parse(&kr, text.data, text.len, &e), 0);
	CHECK_INT(kr.n, 2);
	CHECK(kr.n == 2 && memcmp(&kr.keys[0], &ka, sizeof(ka)) == 0 && memcmp(&kr.keys[1], &kb, sizeof(kb)) == 0);

	buf_reset(&text);   /* replaces the previous ring */
	buf_addf(&text, "%s\n%s\n", b, key_a);
	CHECK_INT(fernet_keyring_parse(&kr, text.data, text.len, &e), 0);
	CHECK(kr.n == 2 && memcmp(&kr.keys[0], &kb, sizeof(kb)) == 0 && memcmp(&kr.keys[1], &ka, sizeof(ka)) == 0);

	buf_reset(&text);
	buf_addf(&text, "  %s \r\n\t %s\t,\n\n", key_a, b);
	CHECK_INT(fernet_keyring_parse(&kr, text.data, text.len, &e), 0);
	CHECK_INT(kr.n, 2);

	buf_reset(&text);
	buf_addf(&text, "# keys, newest first, comma: not a separator here\n%s\n  # old, retired\n\n%s,,%s\n# end",
		   c, b, key_a);
	CHECK_INT(fernet_keyring_parse(&kr, text.data, text.len, &e), 0);
	CHECK(kr.n == 3 && memcmp(&kr.keys[0], &kc, sizeof(kc)) == 0 && memcmp(&kr.keys[1], &kb, sizeof(kb)) == 0 &&
	      memcmp(&kr.keys[2], &ka, sizeof(ka)) == 0);

	/* A bad key: position named, ring unchanged, no key material. */
	snprintf(bad, sizeof(bad), "%s", b);
	bad[10] = bad[10] == '+' ? '/' : '+';
	buf_reset(&text);
	buf_addf(&text, "# comment\n%s\n%s,%s\n", key_a, bad, c);
	CHECK_INT(fernet_keyring_parse(&kr, text.data, text.len, &e), SB_ERR_CRYPTO);
	CHECK_INT(e.code, SB_ERR_CRYPTO);
	CHECK(strstr(e.msg, "key 2 of 3") != NULL);
	CHECK(!msg_leaks(e.msg, bad));
	CHECK(!msg_leaks(e.msg, key_a));
	CHECK(!msg_leaks(e.msg, c));
	CHECK(kr.n == 3 && memcmp(&kr.keys[0], &kc, sizeof(kc)) == 0);
	printf("#   bad key message: %s\n", e.msg);

	buf_reset(&text);
	buf_addf(&text, "%s x,%s", key_a, b);            /* junk after a key: no silent split */
	CHECK_INT(fernet_keyring_parse(&kr, text.data, text.len, &e), SB_ERR_CRYPTO);
	CHECK(strstr(e.msg, "key 1 of 2") != NULL);
	CHECK(!msg_leaks(e.msg, key_a));

	buf_reset(&text);
	buf_addf(&text, "%s,%.43s", key_a, b);           /* truncated key */
	CHECK_INT(fernet_keyring_parse(&kr, text.data, text.len, &e), SB_ERR_CRYPTO);
	CHECK(strstr(e.msg, "key 2 of 2") != NULL);
	CHECK(!msg_leaks(e.msg, b));

	CHECK_INT(fernet_keyring_parse(&kr, "", 0, &e), SB_ERR_CRYPTO);
	CHECK(strstr(e.msg, "empty") != NULL);
	c = " \n# only a comment\n , ,\r\n";
	CHECK_INT(fernet_keyring_parse(&kr, c, strlen(c), &e), SB_ERR_CRYPTO);
	CHECK_INT(fernet_keyring_parse(&kr, NULL, 0, &e), SB_ERR_CRYPTO);
	CHECK_INT(fernet_keyring_parse(&kr, NULL, 44, &e), SB_ERR_CRYPTO);
	CHECK_INT(kr.n, 3);                               /* still the last good ring */

	fernet_keyring_clear(&kr);
	CHECK(kr.keys == NULL && kr.n == 0);
	fernet_keyring_clear(&kr);                        /* idempotent */
	buf_wipe_release(&gb);
	buf_wipe_release(&gc);
	buf_wipe_release(&text);
}

/* ---- round trips, time, MultiFernet, rotate --------------------------- */

static void test_roundtrip_lengths(void)
{
	struct fernet_keyring kr = FERNET_KEYRING_INIT;
	unsigned char msg[50], iv[16];
	size_t n;

	CHECK_INT(ring1(&kr, key_a), 0);
	CHECK(RAND_bytes(msg, sizeof(msg)) == 1);
	for (n = 0; n < sizeof(msg); n++) {
		struct buf tok = BUF_INIT, tok2 = BUF_INIT, out = BUF_INIT;
		struct sb_error e = SB_ERROR_INIT;
		size_t raw = 57 + (n / 16 + 1) * 16;

		CHECK_INT(fernet_encrypt(&kr, msg, n, &tok), 0);
		CHECK_INT(tok.len, (raw + 2) / 3 * 4);
		CHECK(decrypts_to(&kr, tok.data, tok.len, -1, 0, msg, n));
		CHECK_INT(fernet_decrypt(&kr, tok.data, tok.len, 60, &out, &e), 0);
		CHECK(buf_is(&out, msg, n));
		/* Same IV and time give the same token; a fresh IV does not. */
		CHECK(RAND_bytes(iv, sizeof(iv)) == 1);
		buf_reset(&tok);
		CHECK_INT(fernet_encrypt_at(&kr.keys[0], msg, n, 1234, iv, &tok), 0);
		CHECK_INT(fernet_encrypt_at(&kr.keys[0], msg, n, 1234, iv, &tok2), 0);
		CHECK(tok.len == tok2.len && strcmp(tok.data, tok2.data) == 0);
		buf_reset(&tok2);
		CHECK_INT(fernet_encrypt(&kr, msg, n, &tok2), 0);
		CHECK(strcmp(tok.data, tok2.data) != 0);
		buf_release(&tok);
		buf_release(&tok2);
		buf_wipe_release(&out);
	}
	fernet_keyring_clear(&kr);
}

static void test_ttl(void)
{
	struct fernet_keyring kr = FERNET_KEYRING_INIT;
	static const unsigned char iv[16];
	struct buf tok = BUF_INIT, far = BUF_INIT, zero = BUF_INIT;
	const uint64_t t = 1700000000;

	CHECK_INT(ring1(&kr, key_a), 0);
	CHECK_INT(fernet_encrypt_at(&kr.keys[0], "x", 1, t, iv, &tok), 0);
	CHECK(decrypts_to(&kr, tok.data, tok.len, 60, t + 60, "x", 1));
	CHECK(rejected_at(&kr, tok.data, tok.len, 60, t + 61));
	CHECK(decrypts_to(&kr, tok.data, tok.len, 60, t - 60, "x", 1));
	CHECK(rejected_at(&kr, tok.data, tok.len, 60, t - 61));
	CHECK(decrypts_to(&kr, tok.data, tok.len, 0, t, "x", 1));
	CHECK(rejected_at(&kr, tok.data, tok.len, 0, t + 1));
	/* No ttl: no time check at all, not even far-future (Python since PR #2682). */
	CHECK(decrypts_to(&kr, tok.data, tok.len, -1, 0, "x", 1));
	CHECK(decrypts_to(&kr, tok.data, tok.len, -1, UINT64_MAX, "x", 1));
	/* Unbounded arithmetic, as Python's ints. */
	CHECK_INT(fernet_encrypt_at(&kr.keys[0], "x", 1, UINT64_MAX, iv, &far), 0);
	CHECK(decrypts_to(&kr, far.data, far.len, 60, UINT64_MAX - 60, "x", 1));
	CHECK(rejected_at(&kr, far.data, far.len, 60, UINT64_MAX - 61));
	CHECK(decrypts_to(&kr, far.data, far.len, INT64_MAX, UINT64_MAX, "x", 1));
	CHECK_INT(fernet_encrypt_at(&kr.keys[0], "x", 1, 0, iv, &zero), 0);
	CHECK(rejected_at(&kr, zero.data, zero.len, INT64_MAX, UINT64_MAX));
	CHECK(decrypts_to(&kr, zero.data, zero.len, INT64_MAX, (uint64_t)INT64_MAX, "x", 1));
	buf_release(&tok);
	buf_release(&far);
	buf_release(&zero);
	fernet_keyring_clear(&kr);
}

static void test_multifernet(void)
{
	struct fernet_keyring ab = FERNET_KEYRING_INIT, ba = FERNET_KEYRING_INIT, a = FERNET_KEYRING_INIT,
			      b = FERNET_KEYRING_INIT, ca = FERNET_KEYRING_INIT, c = FERNET_KEYRING_INIT,
			      none = FERNET_KEYRING_INIT;
	struct buf kb = BUF_INIT, kc = BUF_INIT, text = BUF_INIT, tok = BUF_INIT;
	static const char msg[] = "multi";

	CHECK_INT(fernet_genkey(&kb), 0);
	CHECK_INT(fernet_genkey(&kc), 0);
	buf_addf(&text, "%s,%s", key_a, kb.data);
	CHECK_INT(fernet_keyring_parse(&ab, text.data, text.len, NULL), 0);
	buf_reset(&text);
	buf_addf(&text, "%s\n%s", kb.data, key_a);
	CHECK_INT(fernet_keyring_parse(&ba, text.data, text.len, NULL), 0);
	buf_reset(&text);
	buf_addf(&text, "%s\n%s", kc.data, key_a);
	CHECK_INT(fernet_keyring_parse(&ca, text.data, text.len, NULL), 0);
	CHECK_INT(ring1(&a, key_a), 0);
	CHECK_INT(ring1(&b, kb.data), 0);
	CHECK_INT(ring1(&c, kc.data), 0);

	/* The first key encrypts ... */
	CHECK_INT(fernet_encrypt(&ab, msg, 5, &tok), 0);
	CHECK(decrypts_to(&a, tok.data, tok.len, -1, 0, msg, 5));
	CHECK(rejected(&b, tok.data, tok.len));
	/* ... any key decrypts, in any position. */
	CHECK(decrypts_to(&ab, tok.data, tok.len, -1, 0, msg, 5));
	CHECK(decrypts_to(&ba, tok.data, tok.len, -1, 0, msg, 5));
	CHECK(decrypts_to(&ca, tok.data, tok.len, 60, (uint64_t)time(NULL), msg, 5));
	/* An unknown key fails; so does an empty ring. */
	CHECK(rejected(&c, tok.data, tok.len));
	CHECK(rejected(&none, tok.data, tok.len));
	CHECK_INT(fernet_encrypt(&none, msg, 5, &tok), SB_ERR_USAGE);

	buf_reset(&tok);
	CHECK_INT(fernet_encrypt(&ba, msg, 5, &tok), 0);
	CHECK(rejected(&a, tok.data, tok.len));
	CHECK(decrypts_to(&b, tok.data, tok.len, -1, 0, msg, 5));

	fernet_keyring_clear(&ab);
	fernet_keyring_clear(&ba);
	fernet_keyring_clear(&a);
	fernet_keyring_clear(&b);
	fernet_keyring_clear(&c);
	fernet_keyring_clear(&ca);
	buf_wipe_release(&kb);
	buf_wipe_release(&kc);
	buf_wipe_release(&text);
	buf_release(&tok);
}

static void test_rotate(void)
{
	struct fernet_keyring old = FERNET_KEYRING_INIT, now_ring = FERNET_KEYRING_INIT, a = FERNET_KEYRING_INIT;
	struct buf kb = BUF_INIT, text = BUF_INIT, tok = BUF_INIT, rot = BUF_INIT, r1 = BUF_INIT, r2 = BUF_INIT;
	struct sb_error e = SB_ERROR_INIT;
	unsigned char iv[16];
	const uint64_t t = 1600000000;
	uint64_t ts = 0;

	CHECK_INT(fernet_genkey(&kb), 0);
	CHECK_INT(ring1(&old, kb.data), 0);
	CHECK_INT(ring1(&a, key_a), 0);
	buf_addf(&text, "%s,%s", key_a, kb.data);
	CHECK_INT(fernet_keyring_parse(&now_ring, text.data, text.len, NULL), 0);

	CHECK(RAND_bytes(iv, sizeof(iv)) == 1);
	CHECK_INT(fernet_encrypt_at(&old.keys[0], "stored key", 10, t, iv, &tok), 0);
	/* rotate ignores any ttl: this token is years old. */
	CHECK_INT(fernet_rotate(&now_ring, tok.data, tok.len, &rot, &e), 0);
	CHECK_INT(fernet_token_timestamp(&a, rot.data, rot.len, &ts, &e), 0);
	CHECK_INT(ts, t);
	CHECK(decrypts_to(&a, rot.data, rot.len, -1, 0, "stored key", 10));
	CHECK(rejected(&old, rot.data, rot.len));
	/* The original timestamp is kept, so a short ttl still fails. */
	CHECK(rejected_at(&a, rot.data, rot.len, 60, t + 1000));
	CHECK(decrypts_to(&a, rot.data, rot.len, 60, t + 30, "stored key", 10));
	/* Fresh IV. */
	CHECK_INT(token_raw(tok.data, &r1), 0);
	CHECK_INT(token_raw(rot.data, &r2), 0);
	CHECK(r1.len == r2.len && r2.len > 25 && memcmp(r1.data + 9, r2.data + 9, 16) != 0);
	CHECK(raw_ts(&r2) == t);
	/* Rotating twice is fine; an invalid token leaves out alone. */
	buf_reset(&tok);
	CHECK_INT(fernet_rotate(&now_ring, rot.data, rot.len, &tok, &e), 0);
	CHECK(decrypts_to(&a, tok.data, tok.len, -1, 0, "stored key", 10));
	buf_reset(&rot);
	buf_adds(&rot, "keep");
	CHECK_INT(fernet_rotate(&old, tok.data, tok.len, &rot, &e), SB_ERR_CRYPTO);
	CHECK_STREQ(e.msg, "invalid Fernet token");
	CHECK(buf_is(&rot, "keep", 4));
	CHECK_INT(fernet_token_timestamp(&old, tok.data, tok.len, &ts, &e), SB_ERR_CRYPTO);

	fernet_keyring_clear(&old);
	fernet_keyring_clear(&now_ring);
	fernet_keyring_clear(&a);
	buf_wipe_release(&kb);
	buf_wipe_release(&text);
	buf_release(&tok);
	buf_release(&rot);
	buf_release(&r1);
	buf_release(&r2);
}

/* ---- strictness and malformed tokens ---------------------------------- */

static int b64val(char ch)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const char *p = strchr(a, ch);

	return p && ch ? (int)(p - a) : -1;
}

static char b64chr(int v)
{
	return "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[v & 63];
}

/* Each lenient form Python accepts (fernet-redis-jsmn.md 1.3) is rejected. */
static void strict_variants(const struct fernet_keyring *kr, const char *tok, const char *msg)
{
	size_t len = strlen(tok), i, mid = len / 2;
	char v[1024];
	int changed = 0;

	CHECK(len + 16 < sizeof(v));
	CHECK(decrypts_to(kr, tok, len, -1, 0, msg, strlen(msg)));

	/* standard alphabet */
	memcpy(v, tok, len + 1);
	for (i = 0; i < len; i++) {
		if (v[i] == '-' || v[i] == '_') {
			v[i] = v[i] == '-' ? '+' : '/';
			changed = 1;
		}
	}
	CHECK(changed);
	CHECK(rejected(kr, v, len));

	/* unpadded, over-padded */
	i = len;
	while (i > 0 && tok[i - 1] == '=')
		i--;
	if (i < len)
		CHECK(rejected(kr, tok, i));
	snprintf(v, sizeof(v), "%s=", tok);
	CHECK(rejected(kr, v, strlen(v)));
	snprintf(v, sizeof(v), "%s====", tok);
	CHECK(rejected(kr, v, strlen(v)));

	/* embedded whitespace and newlines, leading/trailing whitespace */
	snprintf(v, sizeof(v), "%.*s %s", (int)mid, tok, tok + mid);
	CHECK(rejected(kr, v, strlen(v)));
	snprintf(v, sizeof(v), "%.*s\n%s", (int)mid, tok, tok + mid);
	CHECK(rejected(kr, v, strlen(v)));
	snprintf(v, sizeof(v), "%.*s\r\n%.*s\r\n%s", 40, tok, 40, tok + 40, tok + 80);
	CHECK(rejected(kr, v, strlen(v)));
	snprintf(v, sizeof(v), "%s\n", tok);
	CHECK(rejected(kr, v, strlen(v)));
	snprintf(v, sizeof(v), " %s", tok);
	CHECK(rejected(kr, v, strlen(v)));
	snprintf(v, sizeof(v), "%.*s%%%%%s", (int)mid, tok, tok + mid + 2);
	CHECK(rejected(kr, v, strlen(v)));

	/* trailing garbage (pyca/cryptography#1994) */
	snprintf(v, sizeof(v), "%s-GARBAGE", tok);
	CHECK(rejected(kr, v, strlen(v)));
	snprintf(v, sizeof(v), "%sAAAA", tok);
	CHECK(rejected(kr, v, strlen(v)));
	memcpy(v, tok, len);
	memcpy(v + len, "\0AAA", 4);
	CHECK(rejected(kr, v, len + 4));

	/* non-zero unused bits in the last data character */
	i = len;
	while (i > 0 && tok[i - 1] == '=')
		i--;
	if (i < len) {
		int d = b64val(tok[i - 1]);

		memcpy(v, tok, len + 1);
		v[i - 1] = b64chr(d | 1);
		CHECK(v[i - 1] != tok[i - 1]);
		CHECK(rejected(kr, v, len));
	}
}

static void test_strict_tokens(void)
{
	struct fernet_keyring kr = FERNET_KEYRING_INIT;
	static const char vec[] =
		"gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==";
	static const char msg[] = "0123456789abcdef0123456789abcdef0123456789abcdef";
	size_t n, tries;

	CHECK_INT(ring1(&kr, key_a), 0);
	strict_variants(&kr, vec, "hello");
	/* Tokens of each padding length ("==", "=", none), each with '-' or '_'. */
	for (n = 0; n < 48; n += 16) {
		for (tries = 0; tries < 100; tries++) {
			struct buf tok = BUF_INIT;
			char m[64];
			int ok;

			snprintf(m, sizeof(m), "%.*s", (int)(n + 5), msg);
			CHECK_INT(fernet_encrypt(&kr, m, strlen(m), &tok), 0);
			ok = strchr(tok.data, '-') || strchr(tok.data, '_');
			if (ok)
				strict_variants(&kr, tok.data, m);
			buf_release(&tok);
			if (ok)
				break;
		}
		CHECK(tries < 100);
	}
	/* A NUL inside the given length. */
	CHECK(rejected(&kr, "gAAAAAAdwJ6w\0AAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==", 101));
	CHECK(rejected(&kr, NULL, 0));
	CHECK(rejected(&kr, "", 0));
	fernet_keyring_clear(&kr);
}

/* Every prefix, every raw truncation, every bit flip: rejected, no crash. */
static void test_truncated_and_flipped(void)
{
	struct fernet_keyring kr = FERNET_KEYRING_INIT;
	static const char msg[] = "0123456789abcdef0123456789abcdef0123456789abcdefX";   /* 49 */
	struct buf tok = BUF_INIT, raw = BUF_INIT;
	size_t n, bit;

	CHECK_INT(ring1(&kr, key_a), 0);
	CHECK_INT(fernet_encrypt(&kr, msg, 49, &tok), 0);
	CHECK(decrypts_to(&kr, tok.data, tok.len, -1, 0, msg, 49));
	for (n = 0; n < tok.len; n++) {
		char *p = malloc(n ? n : 1);   /* exact size: ASan sees any over-read */

		memcpy(p, tok.data, n);
		CHECK(rejected(&kr, p, n));
		free(p);
	}
	CHECK_INT(token_raw(tok.data, &raw), 0);
	for (n = 0; n < raw.len; n++) {
		struct buf t = BUF_INIT;

		CHECK_INT(b64url_encode(raw.data, n, &t), 0);
		CHECK(rejected(&kr, t.data, t.len));
		buf_release(&t);
	}
	for (bit = 0; bit < raw.len * 8; bit++) {
		struct buf t = BUF_INIT;

		raw.data[bit / 8] ^= (char)(1 << (bit % 8));
		CHECK_INT(b64url_encode(raw.data, raw.len, &t), 0);
		CHECK(rejected(&kr, t.data, t.len));
		raw.data[bit / 8] ^= (char)(1 << (bit % 8));
		buf_release(&t);
	}
	buf_release(&tok);
	buf_release(&raw);
	fernet_keyring_clear(&kr);
}

/* Tokens with a correct MAC but a bad field behind it. */
static void test_forged_fields(void)
{
	struct fernet_keyring kr = FERNET_KEYRING_INIT;
	static const unsigned char iv[16] = { 1, 2, 3 };
	unsigned char zeros[64] = { 0 };
	struct buf ct = BUF_INIT, tok = BUF_INIT;

	CHECK_INT(ring1(&kr, key_a), 0);
	/* control: a forged-but-correct token decrypts */
	CHECK_INT(aes_enc(&kr.keys[0], iv, 1, "abc", 3, &ct), 0);
	CHECK_INT(forge(&kr.keys[0], 0x80, 5, iv, (unsigned char *)ct.data, ct.len, &tok), 0);
	CHECK(decrypts_to(&kr, tok.data, tok.len, -1, 0, "abc", 3));
	/* other versions */
	buf_reset(&tok);
	CHECK_INT(forge(&kr.keys[0], 0x81, 5, iv, (unsigned char *)ct.data, ct.len, &tok), 0);
	CHECK(rejected(&kr, tok.data, tok.len));
	buf_reset(&tok);
	CHECK_INT(forge(&kr.keys[0], 0x00, 5, iv, (unsigned char *)ct.data, ct.len, &tok), 0);
	CHECK(rejected(&kr, tok.data, tok.len));
	/* no ciphertext block (57 bytes), half a block, one and a half blocks */
	buf_reset(&tok);
	CHECK_INT(forge(&kr.keys[0], 0x80, 5, iv, zeros, 0, &tok), 0);
	CHECK(rejected(&kr, tok.data, tok.len));
	buf_reset(&tok);
	CHECK_INT(forge(&kr.keys[0], 0x80, 5, iv, zeros, 8, &tok), 0);
	CHECK(rejected(&kr, tok.data, tok.len));
	buf_reset(&tok);
	CHECK_INT(forge(&kr.keys[0], 0x80, 5, iv, zeros, 24, &tok), 0);
	CHECK(rejected(&kr, tok.data, tok.len));
	/* bad PKCS#7: no padding at all, and a zero pad byte */
	buf_reset(&ct);
	buf_reset(&tok);
	CHECK_INT(aes_enc(&kr.keys[0], iv, 0, "0123456789abcdef", 16, &ct), 0);
	CHECK_INT(forge(&kr.keys[0], 0x80, 5, iv, (unsigned char *)ct.data, ct.len, &tok), 0);
	CHECK(rejected(&kr, tok.data, tok.len));
	buf_reset(&ct);
	buf_reset(&tok);
	CHECK_INT(aes_enc(&kr.keys[0], iv, 0, zeros, 32, &ct), 0);
	CHECK_INT(forge(&kr.keys[0], 0x80, 5, iv, (unsigned char *)ct.data, ct.len, &tok), 0);
	CHECK(rejected(&kr, tok.data, tok.len));
	buf_release(&ct);
	buf_release(&tok);
	fernet_keyring_clear(&kr);
}

static void test_limits(void)
{
	struct fernet_keyring kr = FERNET_KEYRING_INIT;
	static const unsigned char iv[16];
	struct buf tok = BUF_INIT, out = BUF_INIT, ct = BUF_INIT;
	struct sb_error e = SB_ERROR_INIT;
	unsigned char *big = calloc(1, FERNET_MAX_PLAINTEXT + 16);
	char *longtok;

	CHECK(big != NULL);
	if (!big)
		return;
	CHECK_INT(ring1(&kr, key_a), 0);
	big[0] = 'B';
	big[FERNET_MAX_PLAINTEXT - 1] = 'E';
	CHECK_INT(fernet_encrypt(&kr, big, FERNET_MAX_PLAINTEXT + 1, &tok), SB_ERR_TOOBIG);
	CHECK_INT(tok.len, 0);
	CHECK_INT(fernet_encrypt(&kr, big, FERNET_MAX_PLAINTEXT, &tok), 0);
	CHECK_INT(tok.len, FERNET_MAX_TOKEN_LEN);
	CHECK_INT(fernet_decrypt(&kr, tok.data, tok.len, -1, &out, &e), 0);
	CHECK(buf_is(&out, big, FERNET_MAX_PLAINTEXT));
	buf_wipe_release(&out);

	/* Longer than any token we would make: rejected before decoding. */
	longtok = malloc(FERNET_MAX_TOKEN_LEN + 5);
	CHECK(longtok != NULL);
	if (longtok) {
		memcpy(longtok, tok.data, tok.len);
		memcpy(longtok + tok.len, "AAAA", 5);
		CHECK(rejected(&kr, longtok, tok.len + 4));
		free(longtok);
	}

	/* A valid token whose plaintext is over the bound (same size as MAX). */
	buf_reset(&tok);
	CHECK_INT(aes_enc(&kr.keys[0], iv, 1, big, FERNET_MAX_PLAINTEXT + 5, &ct), 0);
	CHECK_INT(forge(&kr.keys[0], 0x80, 5, iv, (unsigned char *)ct.data, ct.len, &tok), 0);
	CHECK_INT(tok.len, FERNET_MAX_TOKEN_LEN);
	buf_adds(&out, "keep");
	CHECK_INT(fernet_decrypt(&kr, tok.data, tok.len, -1, &out, &e), SB_ERR_TOOBIG);
	CHECK(buf_is(&out, "keep", 4));
	buf_wipe_release(&out);

	/* The output buffer's own bound is honoured; out unchanged. */
	buf_reset(&tok);
	CHECK_INT(fernet_encrypt(&kr, "hello", 5, &tok), 0);
	buf_init(&out, 6);
	buf_adds(&out, "ab");
	CHECK_INT(fernet_decrypt(&kr, tok.data, tok.len, -1, &out, &e), SB_ERR_TOOBIG);
	CHECK(buf_is(&out, "ab", 2));
	buf_wipe_release(&out);
	/* appends */
	buf_init(&out, 0);
	buf_adds(&out, "ab");
	CHECK_INT(fernet_decrypt(&kr, tok.data, tok.len, -1, &out, &e), 0);
	CHECK(buf_is(&out, "abhello", 7));
	buf_wipe_release(&out);

	buf_release(&tok);
	buf_release(&ct);
	free(big);
	fernet_keyring_clear(&kr);
}

/* ---- Python-made tokens ----------------------------------------------- */

static int hex_decode(const char *s, size_t n, struct buf *out)
{
	size_t i;

	if (n == 1 && s[0] == '-')
		return 0;
	if (n % 2)
		return -1;
	for (i = 0; i < n; i += 2) {
		unsigned v;
		char two[3] = { s[i], s[i + 1], 0 };

		if (sscanf(two, "%2x", &v) != 1 || buf_putc(out, (char)v))
			return -1;
	}
	return 0;
}

static void test_python_tokens(void)
{
	struct buf file = BUF_INIT;
	const char *path = "tests/data/fernet-python.txt";
	char *line, *save = NULL;
	int records = 0, pads[3] = { 0, 0, 0 };

	CHECK_INT(read_whole(path, &file), 0);
	if (!file.data)
		return;
	for (line = strtok_r(file.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct fernet_keyring kr = FERNET_KEYRING_INIT;
		struct buf msg = BUF_INIT, raw = BUF_INIT, again = BUF_INIT;
		char key[64], hex[8192], tok[8192];
		unsigned long long ts;
		uint64_t got = 0;
		size_t tlen;

		if (line[0] == '#')
			continue;
		if (sscanf(line, "%63s %llu %8191s %8191s", key, &ts, hex, tok) != 4) {
			printf("#   bad line in %s\n", path);
			CHECK(0);
			continue;
		}
		records++;
		tlen = strlen(tok);
		pads[tok[tlen - 1] != '=' ? 0 : tok[tlen - 2] == '=' ? 2 : 1]++;
		CHECK_INT(ring1(&kr, key), 0);
		CHECK_INT(hex_decode(hex, strlen(hex), &msg), 0);
		CHECK(decrypts_to(&kr, tok, tlen, -1, 0, msg.data, msg.len));
		CHECK(decrypts_to(&kr, tok, tlen, 60, ts + 60, msg.data, msg.len));
		CHECK(rejected_at(&kr, tok, tlen, 60, ts + 61));
		CHECK_INT(fernet_token_timestamp(&kr, tok, tlen, &got, NULL), 0);
		CHECK_INT(got, ts);
		/* Byte for byte: our encoder with Python's IV gives Python's token. */
		CHECK_INT(token_raw(tok, &raw), 0);
		CHECK_INT(fernet_encrypt_at(&kr.keys[0], msg.data, msg.len, ts, (unsigned char *)raw.data + 9, &again),
			  0);
		CHECK_STREQ(buf_cstr(&again), tok);
		fernet_keyring_clear(&kr);
		buf_wipe_release(&msg);
		buf_release(&raw);
		buf_release(&again);
	}
	CHECK_INT(records, 52);
	CHECK(pads[0] > 0 && pads[1] > 0 && pads[2] > 0);
	buf_release(&file);
}

int main(void)
{
	RUN(test_rfc3339);
	RUN(test_vectors_generate);
	RUN(test_vectors_verify);
	RUN(test_vectors_invalid);
	RUN(test_b64url);
	RUN(test_key_decode);
	RUN(test_genkey);
	RUN(test_keyring_parse);
	RUN(test_roundtrip_lengths);
	RUN(test_ttl);
	RUN(test_multifernet);
	RUN(test_rotate);
	RUN(test_strict_tokens);
	RUN(test_truncated_and_flipped);
	RUN(test_forged_fields);
	RUN(test_limits);
	RUN(test_python_tokens);
	return unit_done();
}
