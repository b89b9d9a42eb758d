/* layer 1: Fernet tokens (pyca/cryptography Fernet and MultiFernet) and a strict base64url codec.
 *
 * Token = base64url(0x80 | ts[8, big-endian] | IV[16] | AES-128-CBC/PKCS#7 | HMAC-SHA256[32])
 * with the key's first 16 bytes signing and the last 16 encrypting.  Tokens
 * we emit are byte-identical in format to Python's; tokens we accept are
 * exactly the ones Python emits: no '+'/'/', no missing padding, no
 * whitespace, no trailing garbage, no non-zero unused bits (Python itself is
 * more lenient).  Callers trim surrounding whitespace where a key or token is
 * read from a file, stdin or the environment — never the decoder.
 *
 * Every failure to verify a token is the same SB_ERR_CRYPTO and the same
 * sentence, "invalid Fernet token": no oracle.  Key bytes, decoded tokens and
 * plaintexts are wiped (secret_wipe) before they are freed; buffers that
 * receive plaintext are the caller's to wipe (buf_wipe_release). */
#ifndef SSHBOX_FERNET_H
#define SSHBOX_FERNET_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define FERNET_KEY_B64_LEN 44
#define FERNET_MAX_PLAINTEXT (1024 * 1024)
/* Decoded token = 57 + 16k bytes; the longest token for FERNET_MAX_PLAINTEXT. */
#define FERNET_MAX_TOKEN_RAW (57 + (FERNET_MAX_PLAINTEXT / 16 + 1) * 16)
#define FERNET_MAX_TOKEN_LEN ((FERNET_MAX_TOKEN_RAW + 2) / 3 * 4)
/* Python's _MAX_CLOCK_SKEW: a token at most this far in the future passes a ttl check. */
#define FERNET_MAX_CLOCK_SKEW 60

struct fernet_key {
	unsigned char signing[16];
	unsigned char encryption[16];
};

/* MultiFernet: keys[0] encrypts, any key decrypts (tried in order). */
struct fernet_keyring {
	struct fernet_key *keys;
	size_t n;
};
#define FERNET_KEYRING_INIT { NULL, 0 }

/* Strict base64url codec (url alphabet, padded, len % 4 == 0, '=' only as
 * the 1-2 final chars, zero unused bits).  Both append to out; on failure out
 * is unchanged.  decode: SB_ERR_USAGE on any deviation. */
SB_MUST_CHECK int b64url_encode(const void *data, size_t len, struct buf *out);
SB_MUST_CHECK int b64url_decode(const char *s, size_t len, struct buf *out);

/* A 44-char key (exactly; no whitespace).  Invalid: SB_ERR_CRYPTO and a
 * sentence that never contains key material. */
SB_MUST_CHECK int fernet_key_decode(const char *b64, size_t len, struct fernet_key *out, struct sb_error *e);

/* Keys separated by commas and/or newlines; whitespace around each key
 * trimmed; empty entries and lines starting with '#' skipped; zero keys is an
 * error.  Error messages say which key (1-based position among the keys) is
 * invalid and never print key material.  On success kr's previous keys are
 * cleared and replaced; on failure kr is unchanged. */
SB_MUST_CHECK int fernet_keyring_parse(struct fernet_keyring *kr, const char *text, size_t len, struct sb_error *e);
/* Wipes and frees; kr is FERNET_KEYRING_INIT afterwards. */
void fernet_keyring_clear(struct fernet_keyring *kr);

/* Appends a fresh 44-char key (32 bytes from getrandom). */
SB_MUST_CHECK int fernet_genkey(struct buf *out);

/* Append a token for msg (len <= FERNET_MAX_PLAINTEXT, else SB_ERR_TOOBIG)
 * with timestamp now and the given IV.  Deterministic: for test vectors. */
SB_MUST_CHECK int fernet_encrypt_at(const struct fernet_key *k, const void *msg, size_t len, uint64_t now,
		      const unsigned char iv[16], struct buf *out);
/* First key, time(NULL), a getrandom IV. */
/* What a failure code of these functions means, in words; names the
 * missing library when libcrypto could not be loaded (ossl.h). */
const char *fernet_strerror(int r);

SB_MUST_CHECK int fernet_encrypt(const struct fernet_keyring *kr, const void *msg, size_t len, struct buf *out);

/* ttl_s < 0: no time check at all (stored keys).  Otherwise Python's rules:
 * ts + ttl < now invalid; now + 60 < ts invalid.  Tries each key in order.
 * On success appends the plaintext to out.  On failure returns SB_ERR_CRYPTO,
 * fills e with "invalid Fernet token" (same for every cause), leaves out
 * unchanged (other codes only for resource failures: SB_ERR_NOMEM, or
 * SB_ERR_TOOBIG when out's bound is hit or a genuine token holds more than
 * FERNET_MAX_PLAINTEXT bytes).  out should be wiped by the caller
 * (buf_wipe_release). */
SB_MUST_CHECK int fernet_decrypt_at(const struct fernet_keyring *kr, const char *token, size_t len, int64_t ttl_s,
		      uint64_t now, struct buf *out, struct sb_error *e);
SB_MUST_CHECK int fernet_decrypt(const struct fernet_keyring *kr, const char *token, size_t len, int64_t ttl_s,
		   struct buf *out, struct sb_error *e);

/* MultiFernet.rotate: decrypt with any key ignoring ttl, re-encrypt under the
 * first key with a fresh IV and the ORIGINAL timestamp.  Appends the new
 * token to out; failures as fernet_decrypt. */
SB_MUST_CHECK int fernet_rotate(const struct fernet_keyring *kr, const char *token, size_t len, struct buf *out,
		  struct sb_error *e);

/* The timestamp of a token, after verifying its HMAC with any key (no ttl):
 * Python's extract_timestamp.  Failures as fernet_decrypt. */
SB_MUST_CHECK int fernet_token_timestamp(const struct fernet_keyring *kr, const char *token, size_t len,
			   uint64_t *ts, struct sb_error *e);

#endif
