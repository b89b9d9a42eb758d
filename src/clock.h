/* layer 0: monotonic time and deadlines, wall-clock timestamps for events. */
#ifndef SSHBOX_CLOCK_H
#define SSHBOX_CLOCK_H

#include <stdint.h>
#include <stddef.h>

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t clock_now_ms(void);
/* Deadline helpers: deadline = clock_now_ms() + ms; remaining never < 0. */
int64_t clock_deadline_in(int64_t ms);
int64_t clock_remaining_ms(int64_t deadline);
int clock_expired(int64_t deadline);
/* Wall clock, seconds since the epoch. */
int64_t clock_wall_s(void);
/* RFC 3339 UTC with milliseconds: 2026-11-26T22:51:04.123Z (24 chars + NUL). */
#define CLOCK_RFC3339_LEN 32
void clock_rfc3339_now(char out[CLOCK_RFC3339_LEN]);
/* Sleep for ms milliseconds (restarting on EINTR until the time is up). */
void clock_sleep_ms(int64_t ms);

#endif
