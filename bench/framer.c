/* bench/framer.c — the stream's hot path on one core, without ssh: the
 * line framer (ndjson_feed), then framer + json_classify_line (the one
 * validating pass every line of Claude Code's output gets), then both plus
 * events_forward into the output queue, flushed to /dev/null as `sshbox
 * run` does.  Input: a file of stream-json lines (bench/stream.sh makes
 * one), read into memory and fed in 64 KiB chunks like pump() reads them.
 * A memcpy of the same bytes is the reference measured in the same run.
 *
 *	build/bench/framer FILE [--rounds N]
 *
 * Prints "name MB/s" lines: memcpy, framer, framer+classify,
 * framer+classify+forward, and the counts of each line kind. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "events.h"
#include "json.h"
#include "ndjson.h"

#define CHUNK 65536

struct counts {
	size_t lines, kinds[4];
	struct events *ev;
	int classify;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_line(void *ctx, const char *line, size_t len)
{
	struct counts *c = ctx;
	enum json_line_kind k;

	c->lines++;
	if (!c->classify)
		return;
	k = json_classify_line(line, len);
	c->kinds[k]++;
	if (c->ev && (k == JSON_LINE_OBJECT || k == JSON_LINE_RESULT)) {
		events_forward(c->ev, line, len);
		if (c->ev->q.len > EVENTS_HIGH_WATER / 8)
			events_flush(c->ev, 1);
	}
}

static void on_drop(void *ctx, size_t n)
{
	(void)ctx;
	(void)n;
}

/* MB/s of one pass of mode over data (best of rounds) */
static double run(const char *data, size_t len, int mode, int rounds, struct counts *out)
{
	double best = 0;
	int r;

	for (r = 0; r < rounds; r++) {
		struct ndjson *f = ndjson_new(16 * 1024 * 1024);
		struct events ev;
		struct counts c;
		int devnull = -1;
		double t0, dt;
		size_t off;

		memset(&c, 0, sizeof(c));
		if (!f) {
			fprintf(stderr, "framer: out of memory\n");
			exit(1);
		}
		c.classify = mode >= 1;
		if (mode == 2) {
			if ((devnull = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0) {
				fprintf(stderr, "framer: /dev/null: %s\n", strerror(errno));
				exit(1);
			}
			events_init(&ev, devnull);
			c.ev = &ev;
		}
		t0 = now_s();
		for (off = 0; off < len; off += CHUNK)
			sb_best_effort(ndjson_feed(f, data + off, len - off < CHUNK ? len - off : CHUNK, on_line, on_drop, &c));
		(void)ndjson_finish(f, on_line, on_drop, &c);
		if (c.ev)
			events_flush(c.ev, 1);
		dt = now_s() - t0;
		if (c.ev) {
			buf_release(&ev.q);
			close(devnull);
		}
		ndjson_free(f);
		if (dt > 0 && len / dt / 1e6 > best)
			best = (double)len / dt / 1e6;
		*out = c;
	}
	return best;
}

int main(int argc, char **argv)
{
	struct counts c;
	struct stat st;
	char *data, *copy;
	size_t got = 0;
	int fd, rounds = 3, r;
	double best = 0;

	if (argc == 4 && strcmp(argv[2], "--rounds") == 0)
		rounds = atoi(argv[3]);
	if ((argc != 2 && argc != 4) || rounds < 1 || rounds > 100) {
		fprintf(stderr, "usage: framer FILE [--rounds 1..100]\n");
		return 2;
	}
	if ((fd = open(argv[1], O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) != 0 || st.st_size <= 0) {
		fprintf(stderr, "framer: %s: %s\n", argv[1], fd < 0 ? strerror(errno) : "empty or unreadable");
		return 1;
	}
	data = malloc((size_t)st.st_size);
	copy = malloc((size_t)st.st_size);
	if (!data || !copy) {
		fprintf(stderr, "framer: out of memory for %lld bytes\n", (long long)st.st_size);
		return 1;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, data + got, (size_t)st.st_size - got);
		if (n <= 0) {
			fprintf(stderr, "framer: %s: short read\n", argv[1]);
			return 1;
		}
		got += (size_t)n;
	}
	close(fd);
	for (r = 0; r < rounds; r++) {
		double t0 = now_s(), dt;

		memcpy(copy, data, got);
		dt = now_s() - t0;
		if (dt > 0 && got / dt / 1e6 > best)
			best = (double)got / dt / 1e6;
	}
	printf("bytes %zu\n", got);
	printf("memcpy %.0f\n", best);
	printf("framer %.0f\n", run(data, got, 0, rounds, &c));
	printf("framer+classify %.0f\n", run(data, got, 1, rounds, &c));
	printf("framer+classify+forward %.0f\n", run(data, got, 2, rounds, &c));
	printf("lines %zu object %zu result %zu sshbox %zu invalid %zu\n", c.lines, c.kinds[JSON_LINE_OBJECT],
	       c.kinds[JSON_LINE_RESULT], c.kinds[JSON_LINE_SSHBOX], c.kinds[JSON_LINE_INVALID]);
	free(data);
	free(copy);
	return 0;
}
