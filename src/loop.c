/* The one event loop: poll() over the watched fds and the children's pidfds,
 * a sorted intrusive list of timers.
 *
 * Callbacks may change anything, so dispatch never holds a pointer into the
 * watch arrays across a callback: each watch has a serial number, the round
 * remembers (serial, revents) pairs and looks the watch up again before each
 * call.  A watch removed earlier in the round is then simply not found, and a
 * new watch on a recycled fd number has a new serial and does not inherit
 * the old fd's readiness.  Due timers are moved to a separate list before
 * any of them runs, so a timer re-armed for "now" by a callback fires on the
 * next round instead of spinning this one. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clock.h"
#include "loop.h"

/* without a pidfd (very old kernel) a child is polled this often */
#define LOOP_CHILD_POLL_MS 20

struct loop_fd {
	int fd;
	short events;
	loop_fd_fn fn;
	void *ctx;
	uint64_t serial;
};

struct loop_child {
	struct child *c;
	int pidfd;                   /* -1: polled with child_poll each round */
	loop_child_fn fn;
	void *ctx;
	uint64_t serial;
};

struct loop_ready {
	uint64_t serial;
	short revents;
	int is_child;
};

struct loop {
	struct loop_fd *fds;
	size_t nfds, fds_cap;
	struct loop_child *kids;
	size_t nkids, kids_cap;
	struct loop_timer *timers;   /* armed, sorted by at */
	struct loop_timer *due;      /* taken off `timers`, firing this round */
	uint64_t next_serial;
	struct pollfd *pfd;
	struct loop_ready *ready;
	size_t pfd_cap;
	int stopped;
};

int loop_new(struct loop **out, struct sb_error *e)
{
	struct loop *l = calloc(1, sizeof(*l));

	*out = NULL;
	if (!l)
		return sb_error_set(e, SB_ERR_NOMEM, "cannot create the event loop: out of memory");
	l->next_serial = 1;
	*out = l;
	return 0;
}

void loop_free(struct loop *l)
{
	size_t i;

	if (!l)
		return;
	for (i = 0; i < l->nkids; i++)
		if (l->kids[i].pidfd >= 0)
			close(l->kids[i].pidfd);
	/* timers live in their owners' structs: only forget them */
	while (l->timers)
		loop_timer_disarm(l, l->timers);
	while (l->due)
		loop_timer_disarm(l, l->due);
	free(l->fds);
	free(l->kids);
	free(l->pfd);
	free(l->ready);
	free(l);
}

static struct loop_fd *find_fd(struct loop *l, int fd)
{
	size_t i;

	for (i = 0; i < l->nfds; i++)
		if (l->fds[i].fd == fd)
			return &l->fds[i];
	return NULL;
}

int loop_watch(struct loop *l, int fd, short events, loop_fd_fn fn, void *ctx)
{
	struct loop_fd *w;

	if (fd < 0 || !fn)
		return SB_ERR_INTERNAL;
	if ((w = find_fd(l, fd)) != NULL) {
		/* a new owner (or the same again): readiness polled for the old
		 * one must not reach it this round */
		w->events = events;
		w->fn = fn;
		w->ctx = ctx;
		w->serial = l->next_serial++;
		return 0;
	}
	if (l->nfds == l->fds_cap) {
		size_t cap = l->fds_cap ? l->fds_cap * 2 : 8;
		struct loop_fd *n = realloc(l->fds, cap * sizeof(*n));

		if (!n)
			return SB_ERR_NOMEM;
		l->fds = n;
		l->fds_cap = cap;
	}
	w = &l->fds[l->nfds++];
	w->fd = fd;
	w->events = events;
	w->fn = fn;
	w->ctx = ctx;
	w->serial = l->next_serial++;
	return 0;
}

int loop_watch_events(struct loop *l, int fd, short events)
{
	struct loop_fd *w = find_fd(l, fd);

	if (!w)
		return -1;
	w->events = events;
	return 0;
}

void loop_unwatch(struct loop *l, int fd)
{
	struct loop_fd *w = find_fd(l, fd);
	size_t i;

	if (!w)
		return;
	i = (size_t)(w - l->fds);
	memmove(&l->fds[i], &l->fds[i + 1], (l->nfds - i - 1) * sizeof(*w));
	l->nfds--;
}

/* Unlink t from *head if it is there; 1 when it was. */
static int timer_unlink(struct loop_timer **head, struct loop_timer *t)
{
	struct loop_timer **pp;

	for (pp = head; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			t->next = NULL;
			return 1;
		}
	return 0;
}

void loop_timer_disarm(struct loop *l, struct loop_timer *t)
{
	if (!t->armed)
		return;
	if (!timer_unlink(&l->timers, t))
		(void)timer_unlink(&l->due, t);
	t->armed = 0;
	t->at = 0;
}

void loop_timer_arm(struct loop *l, struct loop_timer *t, int64_t at_ms, loop_timer_fn fn, void *ctx)
{
	struct loop_timer **pp;

	loop_timer_disarm(l, t);
	if (at_ms <= 0)
		at_ms = 1;   /* 0 means disarmed; anything <= now fires next round */
	t->at = at_ms;
	t->fn = fn;
	t->ctx = ctx;
	t->armed = 1;
	/* after the timers due at the same time: equal deadlines fire in the
	 * order they were armed */
	for (pp = &l->timers; *pp && (*pp)->at <= at_ms; pp = &(*pp)->next)
		;
	t->next = *pp;
	*pp = t;
}

int loop_watch_child(struct loop *l, struct child *c, loop_child_fn fn, void *ctx)
{
	struct loop_child *k;
	size_t i;
	int pidfd = -1;

	if (!c || !fn)
		return SB_ERR_INTERNAL;
	for (i = 0; i < l->nkids; i++)
		if (l->kids[i].c == c)
			return SB_ERR_EXISTS;
	if (l->nkids == l->kids_cap) {
		size_t cap = l->kids_cap ? l->kids_cap * 2 : 8;
		struct loop_child *n = realloc(l->kids, cap * sizeof(*n));

		if (!n)
			return SB_ERR_NOMEM;
		l->kids = n;
		l->kids_cap = cap;
	}
	/* a zombie still has a pidfd (readable at once); without pidfd
	 * support, or for a child already reaped, fall back to polling */
	if (!c->reaped && c->pid > 0) {
#ifdef SYS_pidfd_open
		pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
		if (pidfd >= 0)
			sb_best_effort(fd_set_cloexec(pidfd));   /* child_start closes it in children anyway */
#endif
	}
	k = &l->kids[l->nkids++];
	k->c = c;
	k->pidfd = pidfd;
	k->fn = fn;
	k->ctx = ctx;
	k->serial = l->next_serial++;
	return 0;
}

static void kid_remove(struct loop *l, size_t i)
{
	if (l->kids[i].pidfd >= 0)
		close(l->kids[i].pidfd);
	memmove(&l->kids[i], &l->kids[i + 1], (l->nkids - i - 1) * sizeof(l->kids[0]));
	l->nkids--;
}

void loop_unwatch_child(struct loop *l, struct child *c)
{
	size_t i;

	for (i = 0; i < l->nkids; i++)
		if (l->kids[i].c == c) {
			kid_remove(l, i);
			return;
		}
}

static SB_MUST_CHECK int pfd_reserve(struct loop *l, size_t n)
{
	struct pollfd *p;
	struct loop_ready *r;
	size_t cap;

	if (n <= l->pfd_cap)
		return 0;
	cap = l->pfd_cap ? l->pfd_cap : 16;
	while (cap < n)
		cap *= 2;
	p = realloc(l->pfd, cap * sizeof(*p));
	if (!p)
		return SB_ERR_NOMEM;
	l->pfd = p;
	r = realloc(l->ready, cap * sizeof(*r));
	if (!r)
		return SB_ERR_NOMEM;
	l->ready = r;
	l->pfd_cap = cap;
	return 0;
}

/* The child watch with this serial: reap it if it has exited and call back. */
static void dispatch_child(struct loop *l, uint64_t serial)
{
	struct child *c;
	loop_child_fn fn;
	void *ctx;
	size_t i;

	for (i = 0; i < l->nkids && l->kids[i].serial != serial; i++)
		;
	if (i == l->nkids)
		return;
	c = l->kids[i].c;
	if (!child_poll(c))
		return;   /* not yet (cannot happen with a readable pidfd) */
	fn = l->kids[i].fn;
	ctx = l->kids[i].ctx;
	kid_remove(l, i);
	fn(l, c, ctx);
}

static void dispatch_fd(struct loop *l, uint64_t serial, short revents)
{
	struct loop_fd *w = NULL;
	short mask;
	size_t i;

	for (i = 0; i < l->nfds; i++)
		if (l->fds[i].serial == serial) {
			w = &l->fds[i];
			break;
		}
	if (!w || !w->events)
		return;   /* removed, or paused by an earlier callback this round */
	mask = (short)(w->events | POLLHUP | POLLERR | POLLNVAL);
	if (!(revents & mask))
		return;
	w->fn(l, w->fd, (short)(revents & mask), w->ctx);
}

static void run_timers(struct loop *l)
{
	int64_t now = clock_now_ms();
	struct loop_timer **tail = &l->due;

	/* detach everything due now (the list is sorted) */
	while (l->timers && l->timers->at <= now) {
		struct loop_timer *t = l->timers;

		l->timers = t->next;
		t->next = NULL;
		*tail = t;
		tail = &t->next;
	}
	while (l->due) {
		struct loop_timer *t = l->due;

		l->due = t->next;
		t->next = NULL;
		t->armed = 0;
		t->at = 0;
		t->fn(l, t->ctx);   /* may re-arm t, or free it: not touched after */
	}
}

int loop_run_once(struct loop *l, int64_t max_wait_ms)
{
	size_t n = 0, i, nready = 0;
	int64_t wait = max_wait_ms;
	int polled_kids = 0, r;

	if ((r = pfd_reserve(l, l->nfds + l->nkids)) != 0)
		return r;
	for (i = 0; i < l->nfds; i++) {
		if (!l->fds[i].events)
			continue;   /* back-pressure: not even HUP/ERR until resumed */
		l->pfd[n].fd = l->fds[i].fd;
		l->pfd[n].events = l->fds[i].events;
		l->pfd[n].revents = 0;
		l->ready[n].serial = l->fds[i].serial;
		l->ready[n].is_child = 0;
		n++;
	}
	for (i = 0; i < l->nkids; i++) {
		if (l->kids[i].pidfd < 0) {
			polled_kids = 1;
			continue;
		}
		l->pfd[n].fd = l->kids[i].pidfd;
		l->pfd[n].events = POLLIN;
		l->pfd[n].revents = 0;
		l->ready[n].serial = l->kids[i].serial;
		l->ready[n].is_child = 1;
		n++;
	}
	if (l->timers) {
		int64_t t = clock_remaining_ms(l->timers->at);

		if (wait < 0 || t < wait)
			wait = t;
	}
	if (polled_kids && (wait < 0 || wait > LOOP_CHILD_POLL_MS))
		wait = LOOP_CHILD_POLL_MS;
	if (wait > 3600000)
		wait = 3600000;
	if (poll(l->pfd, (nfds_t)n, wait < 0 ? -1 : (int)wait) < 0) {
		if (errno != EINTR)
			return SB_ERR_INTERNAL;
		for (i = 0; i < n; i++)
			l->pfd[i].revents = 0;
	}
	/* compact the ready set first: callbacks may grow (realloc) the arrays */
	for (i = 0; i < n; i++)
		if (l->pfd[i].revents) {
			l->ready[nready] = l->ready[i];
			l->ready[nready].revents = l->pfd[i].revents;
			nready++;
		}
	run_timers(l);
	for (i = 0; i < nready; i++) {
		struct loop_ready rd = l->ready[i];

		if (rd.is_child)
			dispatch_child(l, rd.serial);
		else
			dispatch_fd(l, rd.serial, rd.revents);
	}
	if (polled_kids) {
		/* serials, not indexes: callbacks reshuffle the array */
		uint64_t hi = l->next_serial;

		for (i = 0; i < l->nkids;) {
			uint64_t s = l->kids[i].serial;

			if (l->kids[i].pidfd < 0 && s < hi && child_poll(l->kids[i].c)) {
				dispatch_child(l, s);
				i = 0;   /* the array changed under us: rescan */
				continue;
			}
			i++;
		}
	}
	return 0;
}

int loop_run(struct loop *l)
{
	int r;

	while (!l->stopped)
		if ((r = loop_run_once(l, -1)) != 0)
			return r;
	return 0;
}

void loop_stop(struct loop *l)
{
	l->stopped = 1;
}

int loop_stopped(const struct loop *l)
{
	return l->stopped;
}
