#include "events.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "json.h"
#include "log.h"

void events_init(struct events *ev, int fd)
{
	memset(ev, 0, sizeof(*ev));
	ev->fd = fd;
	buf_init(&ev->q, 0);
}

void events_set_job_id(struct events *ev, const char *job_id)
{
	snprintf(ev->job_id, sizeof(ev->job_id), "%s", job_id);
}

void events_begin(struct events *ev, struct buf *e, const char *type)
{
	char ts[CLOCK_RFC3339_LEN];

	clock_rfc3339_now(ts);
	buf_reset(e);
	/* builders: a failure is recorded in e and seen by events_end */
	json_obj_begin(e);
	json_obj_cstr(e, "type", type);
	if (ev->job_id[0])
		json_obj_cstr(e, "job_id", ev->job_id);
	else
		json_obj_null(e, "job_id");
	json_obj_cstr(e, "ts", ts);
}

void events_str(struct buf *e, const char *key, const char *val)
{
	json_obj_cstr(e, key, val);
}

void events_strn(struct buf *e, const char *key, const char *val, size_t len)
{
	json_obj_string(e, key, val, len);
}

void events_int(struct buf *e, const char *key, long long val)
{
	json_obj_int64(e, key, (int64_t)val);
}

void events_raw(struct buf *e, const char *key, const char *json, size_t len)
{
	if (json_obj_raw(e, key, json, len) != 0)
		json_obj_null(e, key);
}

void events_null(struct buf *e, const char *key)
{
	json_obj_null(e, key);
}

void events_end(struct events *ev, struct buf *e)
{
	json_obj_end(e);
	buf_addc(e, '\n');
	if (ev->broken)
		return;
	/* an event is queued whole or not at all: never a torn line */
	if (buf_check(e) != 0 || buf_append(&ev->q, e->data, e->len) != 0)
		log_error("out of memory: an event was dropped");
}

void events_forward(struct events *ev, const char *line, size_t len)
{
	if (ev->broken)
		return;
	/* room for the line and its newline first (the appends then cannot
	 * fail): never a torn line */
	if (buf_reserve(&ev->q, len + 1) != 0 || buf_append(&ev->q, line, len) != 0 || buf_putc(&ev->q, '\n') != 0)
		log_error("out of memory: a line of %zu bytes from the sandbox was dropped", len);
}

void events_flush(struct events *ev, int block)
{
	size_t off = 0;

	while (off < ev->q.len && !ev->broken) {
		ssize_t n = write(ev->fd, ev->q.data + off, ev->q.len - off);

		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = { ev->fd, POLLOUT, 0 };
			if (!block)
				break;
			/* a reader that never reads again cannot hold us forever */
			if (poll(&p, 1, 30000) <= 0)
				ev->broken = 1;
			continue;
		}
		ev->broken = 1;   /* EPIPE: nobody is listening any more */
	}
	buf_consume(&ev->q, ev->broken ? ev->q.len : off);
}

static void raw_or_null(struct buf *e, const char *key, const char *p, size_t len)
{
	if (p && len)
		events_raw(e, key, p, len);
	else
		events_null(e, key);
}

void events_result(struct events *ev, const struct events_result *res)
{
	struct buf e = BUF_INIT;

	if (ev->result_sent)
		return;
	events_begin(ev, &e, "sshbox.result");
	events_str(&e, "status", res->status);
	events_int(&e, "exit_code", res->exit_code);
	if (res->sandbox)
		events_str(&e, "sandbox", res->sandbox);
	else
		events_null(&e, "sandbox");
	raw_or_null(&e, "session_id", res->session_id, res->session_id_len);
	raw_or_null(&e, "total_cost_usd", res->cost, res->cost_len);
	raw_or_null(&e, "num_turns", res->turns, res->turns_len);
	events_int(&e, "duration_ms", res->duration_ms);
	if (res->error)
		events_str(&e, "error", res->error);
	events_end(ev, &e);
	ev->result_sent = 1;
	buf_release(&e);
}

size_t events_pending(const struct events *ev)
{
	return ev->q.len;
}

void events_release(struct events *ev)
{
	buf_release(&ev->q);
}
