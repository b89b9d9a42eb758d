/* bench/locks.c — what a slot lease costs on top of Redis itself: cycles of
 * lock_acquire + lock_renew + lock_unlock (the real API: 3 scripts, one
 * round trip each once loaded) per second, against the floor of the same
 * number of round trips as bare PINGs over the same connection, and 3
 * EVAL of a script that only returns (the cost of going through Lua at
 * all).  The variants take turns in short rounds so that drift (CPU
 * frequency, a noisy neighbour) touches all of them alike.
 *
 *	build/bench/locks --url URL [--seconds S] [--max-cycles N] [--slots K]
 *
 * Prints "name value" lines (machine-readable); exits 1 with one line on
 * stderr on the first failure, 2 on a usage error.  Run by bench/locks.sh. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "kv.h"
#include "lock.h"
#include "validate.h"

#define ACCOUNT "bench"
#define HOST "locks-bench"
#define ROUND_NS 50000000LL   /* 50 ms per variant per turn */
#define WARMUP_CYCLES 100     /* Redis compiles and caches the scripts */

struct variant {
	const char *name;
	int (*cycle)(struct kv *kv, long long n, struct sb_error *e);
	long long cycles;
	int64_t wall_ns;
	int64_t cpu_ns;       /* this process: the client's share of a cycle */
};

static int slots = 4;

static struct kv_script noop_script = KV_SCRIPT("bench_noop", "return 1\n");

static int64_t now_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The API as a job uses it, with a fresh job_id each time (a job_id is
 * reserved per account while it holds a slot). */
static int cycle_lock(struct kv *kv, long long n, struct sb_error *e)
{
	struct lock l = LOCK_INIT;
	char job_id[VALIDATE_JOB_ID_MAX + 1];
	int r;

	snprintf(job_id, sizeof(job_id), "bench-%ld-%lld", (long)getpid(), n);
	r = lock_acquire(kv, ACCOUNT, HOST, slots, job_id, LOCK_TTL_DEFAULT_MS, &l, e);
	if (r)
		return r;
	r = lock_renew(kv, &l, e);
	if (r) {
		struct sb_error ignored = SB_ERROR_INIT;

		sb_best_effort(lock_unlock(kv, &l, &ignored));   /* the renewal failed: that is the error */
		return r;
	}
	return lock_unlock(kv, &l, e);
}

static int cycle_ping(struct kv *kv, long long n, struct sb_error *e)
{
	struct kv_value reply = KV_VALUE_INIT;
	int i, r;

	(void)n;
	for (i = 0; i < 3; i++) {
		r = kv_cmd(kv, &reply, e, "PING", NULL);
		if (r)
			return r;
		if (reply.type != KV_STATUS || strcmp(reply.str, "PONG") != 0)
			r = kv_unexpected(kv, &reply, "PING", e);
		kv_value_release(&reply);
		if (r)
			return r;
	}
	return 0;
}

static int cycle_noop_script(struct kv *kv, long long n, struct sb_error *e)
{
	long long v;
	int i, r;

	(void)n;
	for (i = 0; i < 3; i++) {
		r = kv_eval_integer(kv, &noop_script, &v, e, 0, NULL, 0, NULL);
		if (r)
			return r;
	}
	return 0;
}

/* One turn of a variant: cycles until ROUND_NS has passed or max is hit. */
static int run_round(struct kv *kv, struct variant *v, long long max, struct sb_error *e)
{
	int64_t w0 = now_ns(CLOCK_MONOTONIC), c0 = now_ns(CLOCK_PROCESS_CPUTIME_ID), w;
	int r = 0;

	do {
		r = v->cycle(kv, v->cycles, e);
		if (r)
			break;
		v->cycles++;
		w = now_ns(CLOCK_MONOTONIC);
	} while (w - w0 < ROUND_NS && v->cycles < max);
	v->wall_ns += now_ns(CLOCK_MONOTONIC) - w0;
	v->cpu_ns += now_ns(CLOCK_PROCESS_CPUTIME_ID) - c0;
	return r;
}

/* The sandbox's fence and since keys outlive their locks by design. */
static int drop_keys(struct kv *kv, struct sb_error *e)
{
	char fence[LOCK_KEY_MAX], since[LOCK_KEY_MAX];
	int r;

	r = lock_key_fence(fence, sizeof(fence), ACCOUNT, HOST, e);
	if (r)
		return r;
	snprintf(since, sizeof(since), LOCK_KEY_SINCE_FMT, ACCOUNT, HOST);
	return kv_cmd(kv, NULL, e, "DEL", fence, since, NULL);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: locks --url URL [--seconds S] [--max-cycles N] [--slots K]\n");
}

static int parse_num(const char *s, double lo, double hi, double *out)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(s, &end);
	if (errno || end == s || *end || !(d >= lo && d <= hi))
		return -1;
	*out = d;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "seconds", required_argument, NULL, 's' },
		{ "max-cycles", required_argument, NULL, 'n' },
		{ "slots", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct variant vs[] = {
		{ "sshbox", cycle_lock, 0, 0, 0 },
		{ "noop_script", cycle_noop_script, 0, 0, 0 },
		{ "floor", cycle_ping, 0, 0, 0 },
	};
	const size_t nv = sizeof(vs) / sizeof(vs[0]);
	struct sb_error e = SB_ERROR_INIT;
	struct kv *kv = NULL;
	const char *url = NULL;
	double seconds = 5, max = 1e6, d;
	int64_t end;
	long long warm;
	size_t i;
	int o, r, busy, rc = 1;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'u':
			url = optarg;
			break;
		case 's':
			if (parse_num(optarg, 0.1, 3600, &seconds)) {
				fprintf(stderr, "locks: error: invalid --seconds '%s': want 0.1..3600\n", optarg);
				return 2;
			}
			break;
		case 'n':
			if (parse_num(optarg, 1, 1e12, &max)) {
				fprintf(stderr, "locks: error: invalid --max-cycles '%s': want 1..1e12\n", optarg);
				return 2;
			}
			break;
		case 'k':
			if (parse_num(optarg, 1, VALIDATE_SLOTS_MAX, &d) || d != (int)d) {
				fprintf(stderr, "locks: error: invalid --slots '%s': want 1..%d\n", optarg,
					VALIDATE_SLOTS_MAX);
				return 2;
			}
			slots = (int)d;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!url || optind != argc) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);   /* kv.h: hiredis writes with write() */

	r = kv_open(&kv, url, 2000, &e);
	if (r)
		goto out;
	/* a crashed earlier run leaves nothing behind that matters (its
	 * leases expire), but start from the same keys every time */
	r = drop_keys(kv, &e);
	for (i = 0; r == 0 && i < nv; i++)
		for (warm = 0; r == 0 && warm < WARMUP_CYCLES; warm++)
			r = vs[i].cycle(kv, -1 - warm, &e);
	if (r)
		goto out;

	end = now_ns(CLOCK_MONOTONIC) + (int64_t)(seconds * 1e9);
	do {
		busy = 0;
		for (i = 0; i < nv; i++) {
			if (vs[i].cycles >= (long long)max)
				continue;
			r = run_round(kv, &vs[i], (long long)max, &e);
			if (r)
				goto out;
			busy = 1;
		}
	} while (busy && now_ns(CLOCK_MONOTONIC) < end);

	r = drop_keys(kv, &e);
	if (r)
		goto out;
	printf("round_trips_per_cycle 3\n");
	for (i = 0; i < nv; i++) {
		double s = vs[i].wall_ns / 1e9;

		printf("%s_cycles %lld\n", vs[i].name, vs[i].cycles);
		printf("%s_seconds %.3f\n", vs[i].name, s);
		printf("%s_per_s %.1f\n", vs[i].name, vs[i].cycles / s);
		printf("%s_us_per_cycle %.2f\n", vs[i].name, vs[i].wall_ns / 1e3 / vs[i].cycles);
		printf("%s_client_cpu_us_per_cycle %.2f\n", vs[i].name, vs[i].cpu_ns / 1e3 / vs[i].cycles);
	}
	/* sshbox cycles/s over floor cycles/s: 1.0 would be "as fast as PING" */
	printf("ratio %.3f\n", ((double)vs[0].cycles / vs[0].wall_ns) /
				((double)vs[nv - 1].cycles / vs[nv - 1].wall_ns));
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "locks: error: cannot write the results: %s\n", strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (rc && r)
		fprintf(stderr, "locks: error: %s\n", e.msg[0] ? e.msg : sb_err_str(r));
	kv_free(kv);
	return rc;
}
