/* Minimal unit-test harness for the C unit tests (one binary per module).
 *
 * Each check that fails prints "not ok - <test>: <file>:<line>: <expr>";
 * each test function prints one "ok - <test>" or "not ok - <test>" line
 * (TAP-like, counted by tests/run).  The binary exits 1 if anything failed.
 *
 *   static void test_roundtrip(void) { CHECK(x == 1); CHECK_STREQ(a, b); }
 *   int main(void) { RUN(test_roundtrip); return unit_done(); }
 */
#ifndef SSHBOX_UNIT_H
#define SSHBOX_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_failed_checks;   /* in the current test */
static int unit_failed_tests;
static int unit_passed_tests;
static const char *unit_current = "?";

#define CHECK(expr) do { \
	if (!(expr)) { \
		unit_failed_checks++; \
		printf("#   %s: %s:%d: check failed: %s\n", unit_current, __FILE__, __LINE__, #expr); \
	} \
} while (0)

#define CHECK_INT(a, b) do { \
	long long unit_a_ = (long long)(a), unit_b_ = (long long)(b); \
	if (unit_a_ != unit_b_) { \
		unit_failed_checks++; \
		printf("#   %s: %s:%d: %s == %lld, expected %lld\n", unit_current, __FILE__, __LINE__, #a, unit_a_, unit_b_); \
	} \
} while (0)

#define CHECK_STREQ(a, b) do { \
	const char *unit_a_ = (a), *unit_b_ = (b); \
	if (!unit_a_ || !unit_b_ || strcmp(unit_a_, unit_b_) != 0) { \
		unit_failed_checks++; \
		printf("#   %s: %s:%d: %s == \"%s\", expected \"%s\"\n", unit_current, __FILE__, __LINE__, #a, \
		       unit_a_ ? unit_a_ : "(null)", unit_b_ ? unit_b_ : "(null)"); \
	} \
} while (0)

#define RUN(fn) do { \
	unit_current = #fn; \
	unit_failed_checks = 0; \
	fn(); \
	if (unit_failed_checks) { unit_failed_tests++; printf("not ok - %s\n", #fn); } \
	else { unit_passed_tests++; printf("ok - %s\n", #fn); } \
	fflush(stdout); \
} while (0)

static inline int unit_done(void)
{
	printf("# %d passed, %d failed\n", unit_passed_tests, unit_failed_tests);
	return unit_failed_tests ? 1 : 0;
}

#endif
