/* layer 3: one session's output, from the ssh pipes to the event stream.
 *
 * stdout is framed on '\n' (at most max_line bytes a line), everything
 * before the "sshbox-begin <nonce>" marker is rc-file noise and dropped,
 * the script's markers (sshbox-repo, -started, -end with the per-job nonce)
 * are taken out of the stream, a line that is one valid JSON object is
 * forwarded verbatim (Claude Code's result line is also read for the
 * final event), and anything else is wrapped as sshbox.stdout.  stderr
 * lines become sshbox.stderr.  docs/remote-protocol.md has the markers,
 * docs/events.md the events. */
#ifndef SSHBOX_STREAM_H
#define SSHBOX_STREAM_H

#include <stddef.h>

#include "buf.h"
#include "events.h"
#include "remote.h"
#include "err.h"

struct stream_hooks {
	void (*on_repo)(void *ctx);     /* before the sshbox.repo event */
	void (*on_result)(void *ctx);   /* after each result line */
	void *ctx;
};

/* What the stream has shown so far. */
struct stream_state {
	int begun;                   /* the start marker came */
	int started;                 /* Claude Code runs */
	int ended;                   /* the end marker came */
	int end_rc;
	enum remote_why end_why;     /* REMOTE_WHY_NONE for an unknown word */
	char end_word[32];           /* the word as printed, for messages */
	/* from Claude Code's result line (the last one) */
	int have_result, result_is_error;
	struct buf session_id, cost, turns;   /* raw JSON spans */
};

struct stream;

/* NULL when out of memory. */
SB_MUST_CHECK struct stream *stream_new(struct events *ev, const char *nonce, size_t max_line, size_t max_err_line,
			  const struct stream_hooks *hooks);
void stream_free(struct stream *s);
const struct stream_state *stream_state(const struct stream *s);

/* Read what fd has now (a bounded number of reads) as stdout (is_stdout)
 * or stderr, and pass it on.  At EOF the unfinished last line is passed
 * on; closing fd is the caller's (it may be watched).  Returns
 * STREAM_GOT when bytes came, | STREAM_EOF at the end.  Stops early while
 * the event queue is over EVENTS_HIGH_WATER.  s may be NULL (it could not
 * be made): the bytes are read and dropped. */
#define STREAM_GOT 1
#define STREAM_EOF 2
int stream_pump(struct stream *s, int fd, int is_stdout);

#endif
