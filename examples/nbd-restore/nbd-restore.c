// SPDX-License-Identifier: MIT
/*
 * nbd-restore: a memory image restored lazily from an NBD server.
 *
 * The export (a snapshot served by nbdkit, qemu-nbd, another host) becomes
 * anonymous memory at once: nothing is read up front. A "workload" then
 * touches pages in a random order, each first touch served by the loop
 * from the NBD source (with readahead), while background prefetch pulls
 * in the rest; the program waits until the image is complete and reports
 * how long the first touch and the whole restore took, what the loop did,
 * and a checksum of the memory.
 *
 *   nbd-restore [-t THREADS] [-d poll|uring] [--pattern] URI
 *
 * --pattern checks the memory against what nbdkit's pattern plugin serves
 * (each 8-byte word holds its own offset, big-endian), so that
 *
 *   nbdkit -U - pattern size=64M --run 'nbd-restore --pattern "$uri"'
 *
 * is a complete, self-checking run. The exit status is 0 only when every
 * page came through (and matched, with --pattern).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <libuffd.h>

struct options {
	const char *uri;
	unsigned threads;
	enum uffd_loop_driver driver;
	bool pattern;
};

struct restore {
	struct uffd_handle *h;
	struct uffd_loop *loop;
	unsigned char *mem;
	uint64_t size;  /* of the export */
	size_t len;     /* mapped: size rounded up to pages */
	size_t ps;
	atomic_uint failures;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: nbd-restore [-t THREADS] [-d poll|uring] "
		   "[--pattern] URI\n"
		   "  URI: nbd://host[:port]/export, "
		   "nbd+unix:///export?socket=PATH, ...\n");
}

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longs[] = {
		{ "threads", required_argument, NULL, 't' },
		{ "driver", required_argument, NULL, 'd' },
		{ "pattern", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*o = (struct options){ .threads = 1, .driver = UFFD_DRIVER_POLL };
	while ((c = getopt_long(argc, argv, "t:d:ph", longs, NULL)) != -1) {
		switch (c) {
		case 't':
			o->threads = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'd':
			if (!strcmp(optarg, "poll"))
				o->driver = UFFD_DRIVER_POLL;
			else if (!strcmp(optarg, "uring"))
				o->driver = UFFD_DRIVER_URING;
			else
				return -1;
			break;
		case 'p':
			o->pattern = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -1;
		}
	}
	if (optind != argc - 1)
		return -1;
	o->uri = argv[optind];
	return 0;
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* A page that cannot be had is mapped as zeros (the failure policy) and
 * counted here, so the workload goes on and the exit status tells. */
static void on_error(void *arg, struct uffd_region *region, uint64_t offset,
		     int err)
{
	struct restore *r = arg;

	if (atomic_fetch_add(&r->failures, 1) < 5)
		fprintf(stderr, "nbd-restore: page at %#llx: %s\n",
			(unsigned long long)offset, strerror(-err));
}

static int fail(const char *what, int ret)
{
	fprintf(stderr, "nbd-restore: %s: %s\n", what, uffd_last_error());
	return ret;
}

static int make_loop(struct restore *r, const struct options *o)
{
	struct uffd_loop_config *cfg;
	int ret;

	if (uffd_loop_config_new(&cfg))
		return fail("loop configuration", -1);
	ret = uffd_loop_config_set_driver(cfg, o->driver);
	if (!ret)
		ret = uffd_loop_config_set_threads(cfg, o->threads);
	if (!ret)
		ret = uffd_loop_config_set_fail_policy(cfg, UFFD_FAIL_ZERO);
	if (!ret)
		ret = uffd_loop_config_set_error_callback(cfg, on_error, r);
	if (!ret)
		ret = uffd_loop_new(r->h, cfg, &r->loop);
	uffd_loop_config_free(cfg);
	return ret ? fail("loop", ret) : 0;
}

/* Connects, maps the memory and puts it under the loop; nothing is read
 * from the server yet. */
static int setup(struct restore *r, const struct options *o)
{
	struct uffd_region_config *rc;
	struct uffd_source *src;
	int ret;

	if (uffd_source_new_nbd(o->uri, &r->size, &src))
		return fail("NBD source", -1);
	if (!r->size) {
		uffd_source_free(src);
		fprintf(stderr, "nbd-restore: the export is empty\n");
		return -1;
	}
	r->ps = (size_t)sysconf(_SC_PAGESIZE);
	r->len = (r->size + r->ps - 1) / r->ps * r->ps;
	r->mem = mmap(NULL, r->len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r->mem == MAP_FAILED) {
		uffd_source_free(src);
		perror("nbd-restore: mmap");
		return -1;
	}
	ret = uffd_handle_new(NULL, &r->h) ? fail("userfaultfd", -1)
					   : make_loop(r, o);
	if (!ret && uffd_region_config_new(&rc) == 0) {
		uffd_region_config_set_range(rc, r->mem, r->len);
		uffd_region_config_set_source(rc, src, 0);
		uffd_region_config_set_prefetch(rc, true);
		ret = uffd_loop_add_region(r->loop, rc, NULL);
		uffd_region_config_free(rc);
		if (ret)
			fail("region", ret);
	}
	/* the region holds its own reference; ours must go before the
	 * loop does (see uffd_source_new_nbd) */
	uffd_source_free(src);
	return ret;
}

/* Reads one byte of a quarter of the pages, in a random order, as a
 * program would after a restore; returns the first touch's latency. */
static double workload(const struct restore *r)
{
	size_t npages = r->len / r->ps, touches = npages / 4 + 1;
	uint64_t x = 0x9e3779b97f4a7c15u;
	double first = 0, t;

	for (size_t i = 0; i < touches; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		t = now_us();
		(void)*(volatile unsigned char *)(r->mem + x % npages * r->ps);
		if (!i)
			first = now_us() - t;
	}
	return first;
}

/* FNV-1a over the export's bytes. */
static uint64_t checksum(const unsigned char *p, uint64_t len)
{
	uint64_t h = 0xcbf29ce484222325u;

	for (uint64_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3u;
	return h;
}

/* nbdkit's pattern plugin: the word at offset o holds o, big-endian. */
static int check_pattern(const struct restore *r)
{
	for (uint64_t off = 0; off + 8 <= r->size; off += 8) {
		uint64_t want = off, got = 0;

		for (int b = 0; b < 8; b++)
			got = got << 8 | r->mem[off + (uint64_t)b];
		if (got != want) {
			fprintf(stderr, "nbd-restore: word at %#llx is %#llx, "
					"expected %#llx\n",
				(unsigned long long)off,
				(unsigned long long)got,
				(unsigned long long)want);
			return -1;
		}
	}
	printf("pattern: all %llu bytes verified\n",
	       (unsigned long long)r->size);
	return 0;
}

static void report(const struct restore *r, double first_us, double total_us)
{
	struct uffd_loop_stats st;

	printf("export: %llu bytes (%zu pages)\n", (unsigned long long)r->size,
	       r->len / r->ps);
	printf("first touch: %.0f us; complete after %.1f ms (%.1f MiB/s)\n",
	       first_us, total_us / 1e3,
	       (double)r->size / (1 << 20) / (total_us / 1e6));
	if (uffd_loop_get_stats(r->loop, &st, sizeof(st)) == 0)
		printf("faults %llu, pages resolved %llu (readahead %llu, "
		       "prefetch %llu), failures %llu\n",
		       (unsigned long long)st.faults_missing,
		       (unsigned long long)st.pages_resolved,
		       (unsigned long long)st.readahead_pages,
		       (unsigned long long)st.prefetch_pages,
		       (unsigned long long)st.fetch_failures);
	printf("checksum: %016llx\n",
	       (unsigned long long)checksum(r->mem, r->size));
}

static int run(struct restore *r, const struct options *o)
{
	double start, first;
	int ret;

	start = now_us();
	if (uffd_loop_start(r->loop))
		return fail("loop start", -1);
	first = workload(r);
	/* no limit: the failure policy settles every page, so this ends */
	ret = uffd_loop_wait_complete(r->loop, -1);
	if (ret)
		return fail("wait", ret);
	report(r, first, now_us() - start);
	if (atomic_load(&r->failures)) {
		fprintf(stderr, "nbd-restore: %u pages could not be read\n",
			atomic_load(&r->failures));
		return -1;
	}
	return o->pattern ? check_pattern(r) : 0;
}

int main(int argc, char **argv)
{
	struct restore r = { .mem = MAP_FAILED };
	struct options o;
	int ret;

	if (parse_args(argc, argv, &o)) {
		usage(stderr);
		return 2;
	}
	ret = setup(&r, &o);
	if (!ret)
		ret = run(&r, &o);
	uffd_loop_free(r.loop);
	uffd_handle_free(r.h);
	if (r.mem != MAP_FAILED)
		munmap(r.mem, r.len);
	return ret ? 1 : 0;
}
