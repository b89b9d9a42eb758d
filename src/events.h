/* layer 3: the NDJSON event stream on stdout (docs/events.md).
 *
 * Events are queued in memory and written with non-blocking writes from the
 * job's poll loop, so a slow reader never delays lease renewal; the loop
 * stops reading the sandbox while the queue is over EVENTS_HIGH_WATER
 * (backpressure instead of unbounded memory).  sshbox's own events carry
 * "type":"sshbox.*", "job_id" and "ts"; Claude Code's lines are forwarded
 * byte for byte. */
#ifndef SSHBOX_EVENTS_H
#define SSHBOX_EVENTS_H

#include <stddef.h>

#include "buf.h"

#define EVENTS_HIGH_WATER (8 * 1024 * 1024)

struct events {
	int fd;
	char job_id[80];
	struct buf q;        /* bytes not yet written */
	int broken;          /* the reader went away (EPIPE): drop output */
	int result_sent;
};

void events_init(struct events *ev, int fd);
void events_set_job_id(struct events *ev, const char *job_id);
/* Start an sshbox event in e (reset first): {"type":..,"job_id":..,"ts":.. */
void events_begin(struct events *ev, struct buf *e, const char *type);
/* Field helpers: ,"key":value */
void events_str(struct buf *e, const char *key, const char *val);
void events_strn(struct buf *e, const char *key, const char *val, size_t len);
void events_int(struct buf *e, const char *key, long long val);
void events_raw(struct buf *e, const char *key, const char *json, size_t len);
void events_null(struct buf *e, const char *key);
/* Close e and queue it. */
void events_end(struct events *ev, struct buf *e);
/* Queue a forwarded line verbatim (a newline is added). */
void events_forward(struct events *ev, const char *line, size_t len);
/* The final sshbox.result (exactly once: later calls are ignored).  Any
 * pointer may be NULL (null in the event); session_id, cost and turns are
 * raw JSON spans copied from Claude's result line. */
struct events_result {
	const char *status;
	int exit_code;
	const char *sandbox;
	const char *session_id; size_t session_id_len;
	const char *cost; size_t cost_len;
	const char *turns; size_t turns_len;
	long long duration_ms;
	const char *error;
};
void events_result(struct events *ev, const struct events_result *res);
/* Write what the fd takes now (block = 1: everything, waiting as needed). */
void events_flush(struct events *ev, int block);
size_t events_pending(const struct events *ev);
void events_release(struct events *ev);

#endif
