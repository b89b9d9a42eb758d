/* libFuzzer harness: Fernet tokens and the strict base64url codec
 * (src/fernet.h), under a fixed two-key ring (MultiFernet).
 *
 * For every input:
 * - decrypt it as a token (no ttl, and with a ttl): only the documented
 *   codes, always the same sentence, out untouched on failure; a token that
 *   decrypts also passes fernet_token_timestamp and rotates into a token
 *   that decrypts to the same plaintext with the same timestamp;
 * - forge a token whose HMAC is genuine (version | ts | IV from the input's
 *   first 25 bytes, the rest as ciphertext), so the AES-CBC and padding
 *   checks behind the HMAC are fuzzed too: it decrypts exactly when its
 *   padding is valid, and then re-encrypting the plaintext gives back the
 *   very same token; the ttl rules match Python's arithmetic;
 * - encrypt the input as a plaintext and decrypt it back (both the
 *   deterministic and the random-IV entry points): equal bytes;
 * - base64url: a string that decodes re-encodes to itself (the decoder is
 *   strict, so the encoding is unique), and encode-then-decode is identity;
 * - the input as a key list (fernet_keyring_parse) and as one key. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "buf.h"
#include "err.h"
#include "fernet.h"
#include "fuzz.h"

/* keys[0] encrypts; the second is the fernet/spec test vectors' key, so the
 * spec's tokens in the seed corpus decrypt through the MultiFernet fallback. */
static const char keys_text[] =
	"ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1-f4CBgoM=\n"
	"cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=\n";

/* Read-only after LLVMFuzzerInitialize. */
static struct fernet_keyring kr = FERNET_KEYRING_INIT;

#define TOKEN_LEN(pt) (((57 + ((pt) / 16 + 1) * 16) + 2) / 3 * 4)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sb_error e = SB_ERROR_INIT;

	(void)argc;
	(void)argv;
	if (fernet_keyring_parse(&kr, keys_text, strlen(keys_text), &e) != 0 || kr.n != 2) {
		fprintf(stderr, "fuzz_fernet: cannot parse the fixed key ring: %s\n", e.msg);
		abort();
	}
	return 0;
}

static void check_failure(int r, const struct sb_error *e, const struct buf *out, size_t out_len)
{
	FUZZ_CHECK(r == SB_ERR_CRYPTO || r == SB_ERR_TOOBIG || r == SB_ERR_NOMEM);
	FUZZ_CHECK(fuzz_error_ok(e, r));
	if (r == SB_ERR_CRYPTO)   /* no oracle: one sentence for every cause */
		FUZZ_CHECK(strcmp(e->msg, "invalid Fernet token") == 0);
	FUZZ_CHECK(out->len == out_len);
}

/* A token of ours decrypts to pt, rotates, and keeps its timestamp. */
static void check_token(const char *tok, size_t len, const void *pt, size_t ptlen, uint64_t ts)
{
	struct buf out, rot = BUF_INIT;
	struct sb_error e = SB_ERROR_INIT;
	uint64_t got = 0;

	buf_init_secret(&out, 0);
	FUZZ_CHECK(len == TOKEN_LEN(ptlen));
	FUZZ_CHECK(fernet_decrypt_at(&kr, tok, len, -1, 0, &out, &e) == 0);
	FUZZ_CHECK(out.len == ptlen && (ptlen == 0 || memcmp(out.data, pt, ptlen) == 0));
	FUZZ_CHECK(fernet_token_timestamp(&kr, tok, len, &got, &e) == 0 && got == ts);

	FUZZ_CHECK(fernet_rotate(&kr, tok, len, &rot, &e) == 0);
	FUZZ_CHECK(rot.len == len);
	buf_reset(&out);
	FUZZ_CHECK(fernet_decrypt_at(&kr, rot.data, rot.len, -1, 0, &out, &e) == 0);
	FUZZ_CHECK(out.len == ptlen && (ptlen == 0 || memcmp(out.data, pt, ptlen) == 0));
	FUZZ_CHECK(fernet_token_timestamp(&kr, rot.data, rot.len, &got, &e) == 0 && got == ts);

	/* an output bound one byte too small: TOOBIG, out left as it was
	 * (a bound of 0 means none) */
	if (ptlen > 1) {
		struct buf small;

		buf_init_secret(&small, ptlen - 1);
		FUZZ_CHECK(fernet_decrypt_at(&kr, tok, len, -1, 0, &small, &e) == SB_ERR_TOOBIG);
		FUZZ_CHECK(small.len == 0);
		buf_wipe_release(&small);
	}
	buf_wipe_release(&out);
	buf_release(&rot);
}

/* The input itself as a token. */
static void fuzz_decrypt(const char *tok, size_t len)
{
	struct buf out, out2;
	struct sb_error e = SB_ERROR_INIT;
	uint64_t ts = 0;
	int r, r2, rt;

	buf_init_secret(&out, 0);
	buf_init_secret(&out2, 0);
	r = fernet_decrypt_at(&kr, tok, len, -1, 0, &out, &e);
	if (r)
		check_failure(r, &e, &out, 0);
	rt = fernet_token_timestamp(&kr, tok, len, &ts, &e);
	if (rt)
		check_failure(rt, &e, &out2, 0);
	/* the timestamp needs only the HMAC; decryption also the padding */
	FUZZ_CHECK(r != 0 || rt == 0);
	/* the spec vectors' "now" with their ttl of 60 s */
	r2 = fernet_decrypt_at(&kr, tok, len, 60, 499162801, &out2, &e);
	if (r2)
		check_failure(r2, &e, &out2, 0);
	else
		FUZZ_CHECK(r == 0 && out.len == out2.len && memcmp(out.data, out2.data, out.len) == 0);
	if (r == 0)
		check_token(tok, len, out.data, out.len, ts);
	buf_wipe_release(&out);
	buf_wipe_release(&out2);
}

/* A token with a genuine HMAC under keys[k] over header and ciphertext
 * taken from the input. */
static void fuzz_forged(const uint8_t *data, size_t size)
{
	unsigned char *raw;
	size_t ctlen, rawlen, maclen = 0, k = data[0] & 1;
	struct buf tok = BUF_INIT, out, again = BUF_INIT;
	struct sb_error e = SB_ERROR_INIT;
	uint64_t ts = 0, now, got = 0;
	int64_t delta = (int64_t)(data[0] >> 1) - 64;
	unsigned __int128 wide_ts, wide_now;
	int i, r, rttl, expired, future;

	ctlen = (size - 25) / 16 * 16;
	if (ctlen == 0)
		return;
	rawlen = 25 + ctlen + 32;
	raw = malloc(rawlen);
	FUZZ_CHECK(raw != NULL);
	raw[0] = 0x80;
	memcpy(raw + 1, data + 1, 24);
	memcpy(raw + 25, data + 25, ctlen);
	FUZZ_CHECK(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, kr.keys[k].signing, 16, raw, 25 + ctlen,
			     raw + 25 + ctlen, 32, &maclen) != NULL && maclen == 32);
	for (i = 0; i < 8; i++)
		ts = ts << 8 | raw[1 + i];
	FUZZ_CHECK(b64url_encode(raw, rawlen, &tok) == 0);

	buf_init_secret(&out, 0);
	r = fernet_decrypt_at(&kr, tok.data, tok.len, -1, 0, &out, &e);
	FUZZ_CHECK(fernet_token_timestamp(&kr, tok.data, tok.len, &got, &e) == 0 && got == ts);
	if (r == 0) {
		/* PKCS#7 took 1..16 bytes; CBC with the same key, IV and time
		 * is deterministic */
		FUZZ_CHECK(out.len < ctlen && out.len + 16 >= ctlen);
		FUZZ_CHECK(fernet_encrypt_at(&kr.keys[k], out.data, out.len, ts, raw + 9, &again) == 0);
		FUZZ_CHECK(again.len == tok.len && memcmp(again.data, tok.data, tok.len) == 0);
		check_token(tok.data, tok.len, out.data, out.len, ts);
	} else {
		check_failure(r, &e, &out, 0);
		FUZZ_CHECK(r == SB_ERR_CRYPTO);   /* bad padding */
	}

	/* Python: invalid when ts + ttl < now or now + 60 < ts, in unbounded
	 * integers */
	now = delta < 0 ? (ts < (uint64_t)-delta ? 0 : ts - (uint64_t)-delta)
			: (ts > UINT64_MAX - (uint64_t)delta ? UINT64_MAX : ts + (uint64_t)delta);
	wide_ts = ts;
	wide_now = now;
	expired = wide_ts + 60 < wide_now;
	future = wide_now + FERNET_MAX_CLOCK_SKEW < wide_ts;
	buf_reset(&out);
	rttl = fernet_decrypt_at(&kr, tok.data, tok.len, 60, now, &out, &e);
	FUZZ_CHECK((rttl == 0) == (r == 0 && !expired && !future));
	if (rttl)
		FUZZ_CHECK(rttl == SB_ERR_CRYPTO && out.len == 0);

	buf_wipe_release(&out);
	buf_release(&again);
	buf_release(&tok);
	free(raw);
}

/* The input as a plaintext. */
static void fuzz_roundtrip(const uint8_t *data, size_t size)
{
	unsigned char iv[16];
	struct buf tok = BUF_INIT, out;
	struct sb_error e = SB_ERROR_INIT;
	uint64_t now = 1700000000 + (size ? data[0] : 0);
	size_t i;

	if (size > FERNET_MAX_PLAINTEXT)
		return;
	for (i = 0; i < sizeof(iv); i++)
		iv[i] = size ? data[(i * 7) % size] : (unsigned char)i;
	FUZZ_CHECK(fernet_encrypt_at(&kr.keys[0], data, size, now, iv, &tok) == 0);
	FUZZ_CHECK(tok.len == TOKEN_LEN(size));
	check_token(tok.data, tok.len, data, size, now);
	buf_init_secret(&out, 0);
	FUZZ_CHECK(fernet_decrypt_at(&kr, tok.data, tok.len, 0, now, &out, &e) == 0);
	FUZZ_CHECK(out.len == size && (size == 0 || memcmp(out.data, data, size) == 0));

	buf_reset(&tok);
	buf_reset(&out);
	FUZZ_CHECK(fernet_encrypt(&kr, data, size, &tok) == 0);
	FUZZ_CHECK(fernet_decrypt(&kr, tok.data, tok.len, 3600, &out, &e) == 0);
	FUZZ_CHECK(out.len == size && (size == 0 || memcmp(out.data, data, size) == 0));
	buf_wipe_release(&out);
	buf_release(&tok);
}

static void fuzz_b64url(const char *s, size_t size)
{
	struct buf dec = BUF_INIT, enc = BUF_INIT, back = BUF_INIT;
	int r;

	r = b64url_decode(s, size, &dec);
	FUZZ_CHECK(r == 0 || r == SB_ERR_USAGE);
	if (r == 0) {
		FUZZ_CHECK(size % 4 == 0 && dec.len <= size / 4 * 3);
		FUZZ_CHECK(b64url_encode(dec.data, dec.len, &enc) == 0);
		FUZZ_CHECK(enc.len == size && (size == 0 || memcmp(enc.data, s, size) == 0));
	} else {
		FUZZ_CHECK(dec.len == 0);
	}
	buf_reset(&enc);
	FUZZ_CHECK(b64url_encode(s, size, &enc) == 0);
	FUZZ_CHECK(enc.len == (size + 2) / 3 * 4);
	FUZZ_CHECK(b64url_decode(enc.data, enc.len, &back) == 0);
	FUZZ_CHECK(back.len == size && (size == 0 || memcmp(back.data, s, size) == 0));
	buf_release(&dec);
	buf_release(&enc);
	buf_release(&back);
}

static void fuzz_keys(const char *s, size_t size)
{
	struct fernet_keyring k2 = FERNET_KEYRING_INIT;
	struct fernet_key one;
	struct sb_error e = SB_ERROR_INIT;
	int r;

	r = fernet_keyring_parse(&k2, s, size, &e);
	if (r == 0) {
		FUZZ_CHECK(k2.n >= 1 && k2.keys != NULL);
	} else {
		FUZZ_CHECK(r == SB_ERR_CRYPTO || r == SB_ERR_NOMEM);
		FUZZ_CHECK(fuzz_error_ok(&e, r) && fuzz_printable(e.msg));
		FUZZ_CHECK(k2.n == 0 && k2.keys == NULL);   /* unchanged on failure */
	}
	fernet_keyring_clear(&k2);
	FUZZ_CHECK(k2.n == 0 && k2.keys == NULL);

	r = fernet_key_decode(s, size, &one, &e);
	FUZZ_CHECK(r == 0 || (r == SB_ERR_CRYPTO && fuzz_error_ok(&e, r)));
	if (r == 0)
		FUZZ_CHECK(size == FERNET_KEY_B64_LEN);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_dup(data, size);   /* exact size: over-reads show */

	fuzz_decrypt(s, size);
	if (size > 25)
		fuzz_forged(data, size);
	fuzz_roundtrip(data, size);
	fuzz_b64url(s, size);
	fuzz_keys(s, size);
	free(s);
	ERR_clear_error();   /* OpenSSL's error queue is per thread: start clean */
	return 0;
}
