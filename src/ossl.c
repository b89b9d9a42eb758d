#include "ossl.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

static struct ossl api;
static int state;   /* 0 not tried, 1 loaded, -1 failed */
static char why[300];

const struct ossl *ossl(void)
{
	void *h, *sym;

	if (state)
		return state > 0 ? &api : NULL;
	state = -1;
	if (!(h = dlopen(OSSL_SONAME, RTLD_NOW | RTLD_LOCAL))) {
		snprintf(why, sizeof(why), "cannot load OpenSSL's %s: %s", OSSL_SONAME, dlerror());
		return NULL;
	}
	/* memcpy: an object pointer converted to a function pointer without a cast ISO C lacks */
#define OSSL_SYM(name)                                                                            \
	do {                                                                                      \
		if (!(sym = dlsym(h, #name))) {                                                   \
			snprintf(why, sizeof(why), "%s has no symbol %s (not OpenSSL 3?)", OSSL_SONAME, #name); \
			return NULL;                                                              \
		}                                                                                 \
		memcpy(&api.name, &sym, sizeof(sym));                                             \
	} while (0)
	OSSL_SYM(EVP_CIPHER_CTX_new);
	OSSL_SYM(EVP_CIPHER_CTX_free);
	OSSL_SYM(EVP_aes_128_cbc);
	OSSL_SYM(EVP_EncryptInit_ex);
	OSSL_SYM(EVP_EncryptUpdate);
	OSSL_SYM(EVP_EncryptFinal_ex);
	OSSL_SYM(EVP_DecryptInit_ex);
	OSSL_SYM(EVP_DecryptUpdate);
	OSSL_SYM(EVP_DecryptFinal_ex);
	OSSL_SYM(EVP_Q_mac);
#undef OSSL_SYM
	state = 1;
	return &api;
}

const char *ossl_error(void)
{
	return why[0] ? why : "libcrypto is loaded";
}
