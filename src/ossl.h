/* layer 0: OpenSSL's libcrypto (AES and HMAC for Fernet), loaded when
 * first needed, not when the process starts.
 *
 * Why: Debian's libcrypto.so.3 is linked BIND_NOW with 5,500 dynamic
 * symbols, so merely linking it made every `sshbox run` resolve them at
 * start: 80 % of the instructions of a no-op job's sshbox process
 * (callgrind), about 0.6 ms and 1.6 MB of resident memory — for code a job
 * uses only when it has to decrypt a key itself (no supervisor agent).
 * The functions are the same OpenSSL 3 ones; only the binding is late.
 * Randomness (digest.h) and wiping (secret.h) do without OpenSSL.
 *
 *	const struct ossl *o = ossl();
 *	if (!o) ... ossl_error() says why (one sentence)
 *	o->EVP_Q_mac(...);
 */
#ifndef SSHBOX_OSSL_H
#define SSHBOX_OSSL_H

#include <openssl/evp.h>

#define OSSL_SONAME "libcrypto.so.3"

struct ossl {
	__typeof__(EVP_CIPHER_CTX_new) *EVP_CIPHER_CTX_new;
	__typeof__(EVP_CIPHER_CTX_free) *EVP_CIPHER_CTX_free;
	__typeof__(EVP_aes_128_cbc) *EVP_aes_128_cbc;
	__typeof__(EVP_EncryptInit_ex) *EVP_EncryptInit_ex;
	__typeof__(EVP_EncryptUpdate) *EVP_EncryptUpdate;
	__typeof__(EVP_EncryptFinal_ex) *EVP_EncryptFinal_ex;
	__typeof__(EVP_DecryptInit_ex) *EVP_DecryptInit_ex;
	__typeof__(EVP_DecryptUpdate) *EVP_DecryptUpdate;
	__typeof__(EVP_DecryptFinal_ex) *EVP_DecryptFinal_ex;
	__typeof__(EVP_Q_mac) *EVP_Q_mac;
};

/* The functions, or NULL when libcrypto cannot be loaded (then every later
 * call is NULL too, and ossl_error() tells why). */
const struct ossl *ossl(void);
const char *ossl_error(void);

#endif
