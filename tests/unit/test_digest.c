/* digest: sha256() against FIPS 180-4's examples and against OpenSSL on
 * every length around the block and padding edges. */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "entropy.h"
#include "unit.h"

static void hex(const unsigned char *md, char out[2 * SHA256_LEN + 1])
{
	int i;

	for (i = 0; i < SHA256_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void check_vector(const char *in, size_t len, const char *want)
{
	unsigned char md[SHA256_LEN];
	char got[2 * SHA256_LEN + 1];

	sha256(in, len, md);
	hex(md, got);
	CHECK_STREQ(got, want);
}

static void test_fips_vectors(void)
{
	char *million = malloc(1000000);

	check_vector("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	check_vector("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	check_vector("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
		     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	check_vector("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
		     112, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
	CHECK(million != NULL);
	if (million) {
		memset(million, 'a', 1000000);
		check_vector(million, 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	}
	free(million);
}

static void test_against_openssl(void)
{
	unsigned char data[300], md[SHA256_LEN], ref[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	size_t len;

	CHECK_INT(entropy_fill(data, sizeof(data)), 0);
	for (len = 0; len <= sizeof(data); len++) {
		sha256(data, len, md);
		CHECK(EVP_Digest(data, len, ref, &n, EVP_sha256(), NULL) == 1 && n == SHA256_LEN);
		if (memcmp(md, ref, SHA256_LEN) != 0) {
			CHECK(!"sha256 differs from OpenSSL");
			printf("#   at length %zu\n", len);
			break;
		}
	}
}

int main(void)
{
	RUN(test_fips_vectors);
	RUN(test_against_openssl);
	return unit_done();
}
