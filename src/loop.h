/* layer 1: the one event loop of a process (run's job, the supervisor):
 * fds, timers on CLOCK_MONOTONIC, children watched by pidfd, signals as an
 * fd the caller watches (signalfd).  Single-threaded; callbacks may add,
 * change or remove any watch or timer, their own included.
 *
 * Every wait has a deadline: loop_run_once() sleeps until the next timer,
 * the next ready fd or max_wait_ms, whichever comes first. */
#ifndef SSHBOX_LOOP_H
#define SSHBOX_LOOP_H

#include <stdint.h>

#include "child.h"
#include "err.h"

struct loop;

typedef void (*loop_fd_fn)(struct loop *l, int fd, short revents, void *ctx);
typedef void (*loop_timer_fn)(struct loop *l, void *ctx);
/* c has been reaped (c->reaped, c->status are set) */
typedef void (*loop_child_fn)(struct loop *l, struct child *c, void *ctx);

/* A timer lives in its owner's struct (no allocation); LOOP_TIMER_INIT
 * makes a disarmed one. */
struct loop_timer {
	int64_t at;                  /* CLOCK_MONOTONIC ms; 0 = disarmed */
	loop_timer_fn fn;
	void *ctx;
	struct loop_timer *next;     /* the loop's */
	int armed;
};
#define LOOP_TIMER_INIT { 0, NULL, NULL, NULL, 0 }

int loop_new(struct loop **out, struct sb_error *e) __attribute__((warn_unused_result));
void loop_free(struct loop *l);

/* Watch fd for events (POLLIN/POLLOUT); a second call for the same fd
 * replaces the first.  POLLHUP/POLLERR are always reported with them.
 * events 0 keeps the watch but polls nothing, not even POLLHUP/POLLERR
 * (back-pressure: a hung-up pipe would otherwise wake every round; the
 * hang-up is seen once reading resumes). */
int loop_watch(struct loop *l, int fd, short events, loop_fd_fn fn, void *ctx) __attribute__((warn_unused_result));
int loop_watch_events(struct loop *l, int fd, short events);   /* -1: fd not watched */
void loop_unwatch(struct loop *l, int fd);

/* Arm (or re-arm) t to fire once at at_ms (absolute).  at_ms <= now fires
 * on the next round. */
void loop_timer_arm(struct loop *l, struct loop_timer *t, int64_t at_ms, loop_timer_fn fn, void *ctx);
void loop_timer_disarm(struct loop *l, struct loop_timer *t);

/* Call fn once c (started, not yet reaped) has exited, after reaping it.
 * Uses a pidfd; the watch ends when fn has been called or with
 * loop_unwatch_child. */
int loop_watch_child(struct loop *l, struct child *c, loop_child_fn fn, void *ctx) __attribute__((warn_unused_result));
void loop_unwatch_child(struct loop *l, struct child *c);

/* One round: wait (at most max_wait_ms, < 0 = no bound but the timers'),
 * then run every due timer, then every ready fd's and exited child's
 * callback.  A timer armed by a callback for now or earlier fires on the
 * next round, never in the same one.  Not reentrant: callbacks must not
 * call loop_run_once/loop_run.  Returns 0, SB_ERR_NOMEM, or
 * SB_ERR_INTERNAL when poll itself failed (not EINTR). */
SB_MUST_CHECK int loop_run_once(struct loop *l, int64_t max_wait_ms);
/* Rounds until loop_stop() is called. */
SB_MUST_CHECK int loop_run(struct loop *l);
void loop_stop(struct loop *l);
int loop_stopped(const struct loop *l);

#endif
