/* entropy: entropy_fill() fills what it is asked to, differently each time. */
#include <string.h>

#include "entropy.h"
#include "unit.h"

static void test_fill(void)
{
	unsigned char a[64], b[64], zero[64];

	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	memset(zero, 0, sizeof(zero));
	CHECK_INT(entropy_fill(a, sizeof(a)), 0);
	CHECK_INT(entropy_fill(b, sizeof(b)), 0);
	CHECK_INT(entropy_fill(b, 0), 0);
	/* 2^-512 chances of a false failure */
	CHECK(memcmp(a, zero, sizeof(a)) != 0);
	CHECK(memcmp(a, b, sizeof(a)) != 0);
}

int main(void)
{
	RUN(test_fill);
	return unit_done();
}
