#include "clock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t clock_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_deadline_in(int64_t ms)
{
	return clock_now_ms() + ms;
}

int64_t clock_remaining_ms(int64_t deadline)
{
	int64_t r = deadline - clock_now_ms();

	return r < 0 ? 0 : r;
}

int clock_expired(int64_t deadline)
{
	return clock_now_ms() >= deadline;
}

int64_t clock_wall_s(void)
{
	return (int64_t)time(NULL);
}

void clock_rfc3339_now(char out[CLOCK_RFC3339_LEN])
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(out, CLOCK_RFC3339_LEN, "%Y-%m-%dT%H:%M:%S", &tm);

	snprintf(out + n, CLOCK_RFC3339_LEN - n, ".%03dZ", (int)(ts.tv_nsec / 1000000));
}

void clock_sleep_ms(int64_t ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}
