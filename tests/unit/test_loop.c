/* Unit tests for loop.c: timers fire in deadline order and can re-arm
 * themselves without spinning a round, fd readiness and back-pressure
 * (events 0), callbacks that remove other watches and timers (and their
 * own) mid-round, real children watched by pidfd, a wait bounded by a
 * timer.  Every test is bounded in rounds and time. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "child.h"
#include "clock.h"
#include "err.h"
#include "loop.h"
#include "unit.h"

static struct loop *new_loop(void)
{
	struct loop *l = NULL;
	struct sb_error e;

	CHECK(loop_new(&l, &e) == 0);
	return l;
}

/* ---- timers ---- */

static char tag_a[] = "a", tag_b[] = "b", tag_c[] = "c", tag_d[] = "d", tag_B[] = "B", tag_k[] = "k", tag_v[] = "v";
static char order[32];
static size_t norder;

static void note_timer(struct loop *l, void *ctx)
{
	(void)l;
	if (norder < sizeof(order) - 1)
		order[norder++] = *(const char *)ctx;
}

static void test_timer_order(void)
{
	struct loop *l = new_loop();
	struct loop_timer a = LOOP_TIMER_INIT, b = LOOP_TIMER_INIT, c = LOOP_TIMER_INIT, d = LOOP_TIMER_INIT;
	int64_t now = clock_now_ms(), start = now;
	int rounds = 0;

	memset(order, 0, sizeof(order));
	norder = 0;
	loop_timer_arm(l, &c, now + 30, note_timer, tag_c);
	loop_timer_arm(l, &a, now + 10, note_timer, tag_a);
	loop_timer_arm(l, &b, now + 20, note_timer, tag_b);
	loop_timer_arm(l, &d, now + 20, note_timer, tag_d);   /* same time as b: after it */
	CHECK(a.armed && b.armed);
	while (norder < 4 && rounds++ < 100)
		CHECK(loop_run_once(l, 1000) == 0);
	CHECK_STREQ(order, "abdc");
	CHECK(!a.armed && !c.armed);
	CHECK(clock_now_ms() - start >= 30);
	CHECK(clock_now_ms() - start < 1000);

	/* disarm before due: never fires; re-arm moves it */
	norder = 0;
	memset(order, 0, sizeof(order));
	now = clock_now_ms();
	loop_timer_arm(l, &a, now + 10, note_timer, tag_a);
	loop_timer_arm(l, &b, now + 20, note_timer, tag_b);
	loop_timer_disarm(l, &a);
	loop_timer_arm(l, &b, now + 5, note_timer, tag_B);
	rounds = 0;
	while (norder < 1 && rounds++ < 100)
		CHECK(loop_run_once(l, 1000) == 0);
	CHECK(loop_run_once(l, 30) == 0);
	CHECK_STREQ(order, "B");
	loop_free(l);
}

struct rearm {
	struct loop_timer t;
	int fired;
	int limit;
	int64_t step;
};

static void rearm_fire(struct loop *l, void *ctx)
{
	struct rearm *r = ctx;

	r->fired++;
	if (r->fired < r->limit)
		loop_timer_arm(l, &r->t, clock_now_ms() + r->step, rearm_fire, r);
}

static void test_timer_rearm(void)
{
	struct loop *l = new_loop();
	struct rearm r = { LOOP_TIMER_INIT, 0, 5, 5 };
	struct rearm z = { LOOP_TIMER_INIT, 0, 1000, 0 };
	int rounds = 0;

	loop_timer_arm(l, &r.t, clock_now_ms() + 5, rearm_fire, &r);
	while (r.fired < 5 && rounds++ < 200)
		CHECK(loop_run_once(l, 1000) == 0);
	CHECK_INT(r.fired, 5);
	CHECK(!r.t.armed);

	/* a timer that re-arms itself for "now" fires once per round, never
	 * spinning inside one */
	loop_timer_arm(l, &z.t, clock_now_ms(), rearm_fire, &z);
	CHECK(loop_run_once(l, 0) == 0);
	CHECK_INT(z.fired, 1);
	CHECK(loop_run_once(l, 0) == 0);
	CHECK_INT(z.fired, 2);
	CHECK(z.t.armed);
	loop_timer_disarm(l, &z.t);
	CHECK(!z.t.armed);
	loop_free(l);
}

/* a timer whose callback disarms another timer due in the same round */
static struct loop_timer victim = LOOP_TIMER_INIT;

static void kill_victim(struct loop *l, void *ctx)
{
	note_timer(l, ctx);
	loop_timer_disarm(l, &victim);
}

static void test_timer_disarm_in_callback(void)
{
	struct loop *l = new_loop();
	struct loop_timer killer = LOOP_TIMER_INIT;
	int64_t now = clock_now_ms();

	norder = 0;
	memset(order, 0, sizeof(order));
	loop_timer_arm(l, &killer, now - 2, kill_victim, tag_k);
	loop_timer_arm(l, &victim, now - 1, note_timer, tag_v);
	CHECK(loop_run_once(l, 0) == 0);
	CHECK(loop_run_once(l, 0) == 0);
	CHECK_STREQ(order, "k");
	CHECK(!victim.armed);
	loop_free(l);
}

/* ---- fds ---- */

struct reader {
	int fd;
	int calls;
	size_t got;
	int hup;
	int unwatch_other;   /* an fd to unwatch (and close) from the callback */
	int unwatch_self;
};

static void reader_fn(struct loop *l, int fd, short revents, void *ctx)
{
	struct reader *r = ctx;
	char tmp[256];
	ssize_t n;

	r->calls++;
	if (revents & POLLIN) {
		n = read(fd, tmp, sizeof(tmp));
		if (n > 0)
			r->got += (size_t)n;
		else if (n == 0)
			r->hup = 1;
	}
	if (revents & (POLLHUP | POLLERR))
		r->hup = 1;
	if (r->unwatch_other >= 0) {
		loop_unwatch(l, r->unwatch_other);
		r->unwatch_other = -1;
	}
	if (r->unwatch_self)
		loop_unwatch(l, fd);
}

static void test_fd_ready_and_backpressure(void)
{
	struct loop *l = new_loop();
	struct reader r = { -1, 0, 0, 0, -1, 0 };
	int p[2];
	int64_t t0;

	CHECK(pipe(p) == 0);
	CHECK(loop_watch(l, p[0], POLLIN, reader_fn, &r) == 0);
	/* nothing to read: the wait is bounded by max_wait_ms */
	t0 = clock_now_ms();
	CHECK(loop_run_once(l, 30) == 0);
	CHECK(clock_now_ms() - t0 >= 25);
	CHECK_INT(r.calls, 0);

	CHECK(write(p[1], "hello", 5) == 5);
	CHECK(loop_run_once(l, 1000) == 0);
	CHECK_INT(r.calls, 1);
	CHECK_INT(r.got, 5);

	/* paused: data waits in the pipe, no callback, not even on hang-up */
	CHECK(loop_watch_events(l, p[0], 0) == 0);
	CHECK(write(p[1], "more", 4) == 4);
	close(p[1]);
	t0 = clock_now_ms();
	CHECK(loop_run_once(l, 30) == 0);
	CHECK(clock_now_ms() - t0 >= 25);   /* slept: the HUP did not wake it */
	CHECK_INT(r.calls, 1);

	/* resumed: the data, then the hang-up */
	CHECK(loop_watch_events(l, p[0], POLLIN) == 0);
	CHECK(loop_run_once(l, 1000) == 0);
	CHECK_INT(r.got, 9);
	CHECK(loop_run_once(l, 1000) == 0);
	CHECK(r.hup);
	CHECK(loop_watch_events(l, 12345, POLLIN) == -1);
	loop_unwatch(l, p[0]);
	close(p[0]);
	loop_free(l);
}

static void test_fd_remove_in_callback(void)
{
	struct loop *l = new_loop();
	struct reader a = { -1, 0, 0, 0, -1, 0 }, b = { -1, 0, 0, 0, -1, 0 };
	int pa[2], pb[2], i;

	CHECK(pipe(pa) == 0);
	CHECK(pipe(pb) == 0);
	/* both ready in the same round; whichever runs first removes the other
	 * (and itself): exactly one callback, no access to the removed one */
	a.unwatch_other = pb[0];
	a.unwatch_self = 1;
	b.unwatch_other = pa[0];
	b.unwatch_self = 1;
	CHECK(loop_watch(l, pa[0], POLLIN, reader_fn, &a) == 0);
	CHECK(loop_watch(l, pb[0], POLLIN, reader_fn, &b) == 0);
	CHECK(write(pa[1], "x", 1) == 1);
	CHECK(write(pb[1], "y", 1) == 1);
	CHECK(loop_run_once(l, 1000) == 0);
	CHECK_INT(a.calls + b.calls, 1);
	for (i = 0; i < 3; i++)
		CHECK(loop_run_once(l, 0) == 0);
	CHECK_INT(a.calls + b.calls, 1);
	CHECK(loop_watch_events(l, pa[0], POLLIN) == -1);
	CHECK(loop_watch_events(l, pb[0], POLLIN) == -1);
	close(pa[0]); close(pa[1]);
	close(pb[0]); close(pb[1]);
	loop_free(l);
}

/* Adding many watches from a callback (the arrays grow under the round). */
static int grow_fds[40][2];

static void grow_fn(struct loop *l, int fd, short revents, void *ctx)
{
	int i, *calls = ctx;

	(void)revents;
	(*calls)++;
	loop_unwatch(l, fd);
	for (i = 0; i < 40; i++)
		if (loop_watch(l, grow_fds[i][0], POLLIN, grow_fn, ctx) != 0)
			break;
}

static void test_fd_add_in_callback(void)
{
	struct loop *l = new_loop();
	int p[2], calls = 0, i;

	CHECK(pipe(p) == 0);
	for (i = 0; i < 40; i++)
		CHECK(pipe(grow_fds[i]) == 0);
	CHECK(loop_watch(l, p[0], POLLIN, grow_fn, &calls) == 0);
	CHECK(write(p[1], "x", 1) == 1);
	CHECK(loop_run_once(l, 1000) == 0);
	CHECK_INT(calls, 1);
	CHECK(loop_run_once(l, 10) == 0);   /* none of the new ones is ready */
	CHECK_INT(calls, 1);
	for (i = 0; i < 40; i++) {
		loop_unwatch(l, grow_fds[i][0]);
		close(grow_fds[i][0]);
		close(grow_fds[i][1]);
	}
	close(p[0]);
	close(p[1]);
	loop_free(l);
}

/* ---- children ---- */

struct kid {
	int done;
	int code;
	struct loop_timer deadline;
	struct child *c;
	int timed_out;
};

static void kid_exited(struct loop *l, struct child *c, void *ctx)
{
	struct kid *k = ctx;

	k->done = 1;
	k->code = child_exit_code(c);
	loop_timer_disarm(l, &k->deadline);
}

static void kid_deadline(struct loop *l, void *ctx)
{
	struct kid *k = ctx;

	(void)l;
	k->timed_out = 1;
	child_signal(k->c, SIGKILL);
}

static void test_child_pidfd(void)
{
	struct loop *l = new_loop();
	const char *const argv_true[] = { "/bin/true", NULL };
	const char *const argv_false[] = { "/bin/false", NULL };
	struct child ct = CHILD_INIT, cf = CHILD_INIT;
	struct kid kt = { 0, -1, LOOP_TIMER_INIT, NULL, 0 }, kf = { 0, -1, LOOP_TIMER_INIT, NULL, 0 };
	struct sb_error e;
	int rounds = 0;

	ct.argv = argv_true;
	cf.argv = argv_false;
	CHECK(child_start(&ct, &e) == 0);
	CHECK(child_start(&cf, &e) == 0);
	CHECK(loop_watch_child(l, &ct, kid_exited, &kt) == 0);
	CHECK(loop_watch_child(l, &cf, kid_exited, &kf) == 0);
	CHECK(loop_watch_child(l, &ct, kid_exited, &kt) == SB_ERR_EXISTS);
	while ((!kt.done || !kf.done) && rounds++ < 100)
		CHECK(loop_run_once(l, 1000) == 0);
	CHECK(kt.done && kf.done);
	CHECK(ct.reaped && cf.reaped);
	CHECK_INT(kt.code, 0);
	CHECK_INT(kf.code, 1);
	loop_free(l);
}

static void test_child_timer_bounded(void)
{
	struct loop *l = new_loop();
	const char *const argv[] = { "/bin/sleep", "10", NULL };
	const char *const argv_short[] = { "/bin/sleep", "0.05", NULL };
	struct child c = CHILD_INIT, s = CHILD_INIT;
	struct kid k = { 0, -1, LOOP_TIMER_INIT, NULL, 0 }, ks = { 0, -1, LOOP_TIMER_INIT, NULL, 0 };
	struct sb_error e;
	int64_t t0 = clock_now_ms();
	int rounds = 0;

	c.argv = argv;
	s.argv = argv_short;
	CHECK(child_start(&c, &e) == 0);
	CHECK(child_start(&s, &e) == 0);
	k.c = &c;
	ks.c = &s;
	CHECK(loop_watch_child(l, &c, kid_exited, &k) == 0);
	CHECK(loop_watch_child(l, &s, kid_exited, &ks) == 0);
	loop_timer_arm(l, &k.deadline, clock_now_ms() + 100, kid_deadline, &k);
	loop_timer_arm(l, &ks.deadline, clock_now_ms() + 5000, kid_deadline, &ks);
	while ((!k.done || !ks.done) && rounds++ < 100 && clock_now_ms() - t0 < 5000)
		CHECK(loop_run_once(l, 1000) == 0);
	CHECK(ks.done && !ks.timed_out);
	CHECK_INT(ks.code, 0);
	CHECK(!ks.deadline.armed);
	CHECK(k.done && k.timed_out);
	CHECK_INT(k.code, 128 + SIGKILL);
	CHECK(clock_now_ms() - t0 < 2000);
	loop_free(l);
}

static void test_child_unwatch(void)
{
	struct loop *l = new_loop();
	const char *const argv[] = { "/bin/true", NULL };
	struct child c = CHILD_INIT;
	struct kid k = { 0, -1, LOOP_TIMER_INIT, NULL, 0 };
	struct sb_error e;

	c.argv = argv;
	CHECK(child_start(&c, &e) == 0);
	CHECK(loop_watch_child(l, &c, kid_exited, &k) == 0);
	loop_unwatch_child(l, &c);
	CHECK(loop_run_once(l, 50) == 0);
	CHECK(!k.done);
	CHECK(child_wait(&c, clock_deadline_in(2000), 100) == 0);
	CHECK_INT(child_exit_code(&c), 0);
	loop_free(l);
}

/* ---- stop ---- */

static void stop_fn(struct loop *l, void *ctx)
{
	(*(int *)ctx)++;
	loop_stop(l);
}

static void test_run_until_stop(void)
{
	struct loop *l = new_loop();
	struct loop_timer t = LOOP_TIMER_INIT;
	int n = 0;
	int64_t t0 = clock_now_ms();

	loop_timer_arm(l, &t, clock_now_ms() + 20, stop_fn, &n);
	CHECK(!loop_stopped(l));
	CHECK(loop_run(l) == 0);
	CHECK(loop_stopped(l));
	CHECK_INT(n, 1);
	CHECK(clock_now_ms() - t0 >= 20);
	CHECK(clock_now_ms() - t0 < 2000);
	loop_free(l);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	RUN(test_timer_order);
	RUN(test_timer_rearm);
	RUN(test_timer_disarm_in_callback);
	RUN(test_fd_ready_and_backpressure);
	RUN(test_fd_remove_in_callback);
	RUN(test_fd_add_in_callback);
	RUN(test_child_pidfd);
	RUN(test_child_timer_bounded);
	RUN(test_child_unwatch);
	RUN(test_run_until_stop);
	return unit_done();
}
