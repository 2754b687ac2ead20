// SPDX-License-Identifier: MIT
/*
 * Scenarios 3 and 4: lazy restore of a memory image from a file, against
 * an eager read() of the whole image, and what the library keeps resident.
 *
 * The image lives on a disk filesystem (--dir), so "cold" can mean cold:
 * the file's pages are dropped from the page cache with
 * posix_fadvise(DONTNEED), which needs no privilege, and the benchmark
 * checks with mincore() that they really left.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <libuffd.h>

#include "bench.h"

#define PAGE 4096u
#define MAGIC UINT64_C(0x9e3779b97f4a7c15)
#define READ_CHUNK (64u << 20)

struct image {
	int fd;
	size_t len;
	uint32_t *order[2];     /* page order: sequential, random */
};

struct ra_mode {
	const char *name;
	size_t pages;
	bool adaptive;
};

static const struct ra_mode ra_modes[] = {
	{ "RA off", 0, false },
	{ "RA 16", 16, false },
	{ "RA adaptive", 16, true },
};

static uint64_t page_word(size_t i)
{
	return (uint64_t)i * MAGIC ^ UINT64_C(0x5eed);
}

static void image_create(struct image *img)
{
	char path[4096];
	size_t chunk = 8u << 20;
	char *buf = malloc(chunk);

	snprintf(path, sizeof(path), "%s/uffd-bench-image-XXXXXX", opts.dir);
	img->fd = mkostemp(path, O_CLOEXEC);
	if (img->fd < 0 || !buf)
		bench_die("image file in %s: %s", opts.dir, strerror(errno));
	unlink(path); /* gone when the benchmark exits, however it exits */
	img->len = opts.restore_bytes;
	for (size_t off = 0; off < img->len; off += chunk) {
		for (size_t p = 0; p < chunk; p += PAGE) {
			uint64_t w = page_word((off + p) / PAGE);

			memset(buf + p, (int)(w & 0xff), PAGE);
			memcpy(buf + p, &w, sizeof(w));
			memcpy(buf + p + PAGE - sizeof(w), &w, sizeof(w));
		}
		if (pwrite(img->fd, buf, chunk, (off_t)off) != (ssize_t)chunk)
			bench_die("writing the image: %s", strerror(errno));
	}
	free(buf);
	if (fsync(img->fd))
		bench_die("fsync of the image: %s", strerror(errno));
}

static void image_orders(struct image *img)
{
	size_t n = img->len / PAGE;
	uint64_t x = 88172645463325252ull;

	for (int o = 0; o < 2; o++) {
		img->order[o] = malloc(n * sizeof(uint32_t));
		if (!img->order[o])
			bench_die("out of memory");
		for (size_t i = 0; i < n; i++)
			img->order[o][i] = (uint32_t)i;
	}
	for (size_t i = n - 1; i > 0; i--) { /* Fisher-Yates, xorshift64 */
		uint32_t t;
		size_t j;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		j = x % (i + 1);
		t = img->order[1][i];
		img->order[1][i] = img->order[1][j];
		img->order[1][j] = t;
	}
}

/* Fraction of the image in the page cache. */
static double image_resident(const struct image *img)
{
	size_t n = img->len / PAGE, in = 0;
	unsigned char *vec = malloc(n);
	void *map = mmap(NULL, img->len, PROT_READ, MAP_SHARED, img->fd, 0);

	if (!vec || map == MAP_FAILED)
		bench_die("mincore of the image: %s", strerror(errno));
	if (mincore(map, img->len, vec))
		bench_die("mincore: %s", strerror(errno));
	for (size_t i = 0; i < n; i++)
		in += vec[i] & 1;
	munmap(map, img->len);
	free(vec);
	return (double)in / (double)n;
}

static void image_cache(const struct image *img, bool warm)
{
	char *buf;

	if (!warm) {
		posix_fadvise(img->fd, 0, 0, POSIX_FADV_DONTNEED);
		return;
	}
	buf = malloc(READ_CHUNK);
	if (!buf)
		bench_die("out of memory");
	for (size_t off = 0; off < img->len; off += READ_CHUNK)
		if (pread(img->fd, buf, READ_CHUNK, (off_t)off) < 0)
			bench_die("warming the image: %s", strerror(errno));
	free(buf);
}

static void verify(const struct image *img, const char *mem, const char *what)
{
	for (size_t i = 0; i < img->len / PAGE; i++) {
		uint64_t w = page_word(i), a, b;

		memcpy(&a, mem + i * PAGE, sizeof(a));
		memcpy(&b, mem + (i + 1) * PAGE - sizeof(b), sizeof(b));
		if (a != w || b != w)
			bench_die("%s: page %zu has the wrong contents", what, i);
	}
}

static void touch_order(char *mem, const uint32_t *order, size_t from,
			size_t n)
{
	volatile char *p = mem;

	for (size_t i = from; i < n; i++)
		(void)p[(size_t)order[i] * PAGE];
}

struct restore_time {
	double first_ms; /* until the first touched page was readable */
	double total_s;  /* until the whole image was in memory */
};

static struct restore_time restore_read(const struct image *img, int order)
{
	char *mem = bench_map_anon(img->len);
	uint64_t t0 = bench_now_ns();
	struct restore_time t;

	for (size_t off = 0; off < img->len; off += READ_CHUNK) {
		size_t n = img->len - off < READ_CHUNK ? img->len - off
						       : READ_CHUNK;

		if (pread(img->fd, mem + off, n, (off_t)off) != (ssize_t)n)
			bench_die("read() of the image: %s", strerror(errno));
	}
	touch_order(mem, img->order[order], 0, 1);
	t.first_ms = (double)(bench_now_ns() - t0) / 1e6;
	touch_order(mem, img->order[order], 1, img->len / PAGE);
	t.total_s = (double)(bench_now_ns() - t0) / 1e9;
	verify(img, mem, "read()");
	bench_unmap(mem, img->len);
	return t;
}

struct lazy {
	struct uffd_handle *h;
	struct uffd_loop *loop;
	char *mem;
};

static void lazy_setup(const struct image *img, enum uffd_loop_driver drv,
		       const struct ra_mode *ra, unsigned workers,
		       struct lazy *lz)
{
	struct uffd_loop_config *lc;
	struct uffd_region_config *rc;
	struct uffd_source *src;

	lz->mem = bench_map_anon(img->len);
	if (uffd_handle_new(NULL, &lz->h) || uffd_loop_config_new(&lc) ||
	    uffd_loop_config_set_driver(lc, drv) ||
	    uffd_loop_config_set_threads(lc, workers) ||
	    uffd_loop_new(lz->h, lc, &lz->loop) ||
	    uffd_source_new_fd(img->fd, 0, img->len, &src) ||
	    uffd_region_config_new(&rc) ||
	    uffd_region_config_set_range(rc, lz->mem, img->len) ||
	    uffd_region_config_set_source(rc, src, 0) ||
	    uffd_region_config_set_readahead(rc, ra->pages, ra->adaptive) ||
	    uffd_region_config_set_prefetch(rc, true) ||
	    uffd_loop_add_region(lz->loop, rc, NULL))
		bench_die("lazy restore setup: %s", uffd_last_error());
	uffd_source_free(src);
	uffd_region_config_free(rc);
	uffd_loop_config_free(lc);
}

static void lazy_teardown(const struct image *img, struct lazy *lz)
{
	uffd_loop_free(lz->loop);
	uffd_handle_free(lz->h);
	bench_unmap(lz->mem, img->len);
}

static struct restore_time restore_lazy(const struct image *img, int order,
					enum uffd_loop_driver drv,
					const struct ra_mode *ra, unsigned workers)
{
	struct restore_time t;
	struct lazy lz;
	uint64_t t0;

	lazy_setup(img, drv, ra, workers, &lz);
	t0 = bench_now_ns();
	if (uffd_loop_start(lz.loop))
		bench_die("loop start: %s", uffd_last_error());
	touch_order(lz.mem, img->order[order], 0, 1);
	t.first_ms = (double)(bench_now_ns() - t0) / 1e6;
	touch_order(lz.mem, img->order[order], 1, img->len / PAGE);
	if (uffd_loop_wait_complete(lz.loop, -1))
		bench_die("wait_complete: %s", uffd_last_error());
	t.total_s = (double)(bench_now_ns() - t0) / 1e9;
	verify(img, lz.mem, "lazy restore");
	lazy_teardown(img, &lz);
	return t;
}

static const char *order_name[2] = { "sequential", "random" };

static void record(const char *group, const char *name,
		   const struct image *img, struct restore_time t)
{
	char first[128];
	struct bench_row *rate = bench_row(group, name, "GB/s", BENCH_RATE);
	struct bench_row *ft;

	snprintf(first, sizeof(first), "%s: 1st touch", name);
	ft = bench_row(group, first, "ms", BENCH_TIME);
	bench_add(rate, (double)img->len / t.total_s / 1e9);
	bench_add(ft, t.first_ms);
	if (strcmp(name, "read()")) {
		bench_row_refs(rate, "read()", rate->ref[1]);
		bench_row_refs(ft, "read(): 1st touch", NULL);
	}
}

/* One way to restore the image: read(), or the loop with a driver,
 * readahead mode and number of workers. */
struct restore_way {
	char name[64];
	bool lazy;
	enum uffd_loop_driver drv;
	const struct ra_mode *ra;
	unsigned workers;
};

static size_t restore_ways(struct restore_way *ways)
{
	static const char *drv_name[2] = { "poll", "io_uring" };
	unsigned ndrv = bench_have_uring() ? 2 : 1, ncpus = (unsigned)bench_ncpus();
	size_t n = 0;

	ways[n++] = (struct restore_way){ .name = "read()" };
	for (unsigned d = 0; d < ndrv; d++) {
		for (size_t m = 0; m < 3; m++) {
			ways[n] = (struct restore_way){
				.lazy = true, .drv = d ? UFFD_DRIVER_URING
						       : UFFD_DRIVER_POLL,
				.ra = &ra_modes[m], .workers = 1 };
			snprintf(ways[n++].name, sizeof(ways[0].name), "%s, %s",
				 drv_name[d], ra_modes[m].name);
		}
		if (ncpus < 2)
			continue;
		ways[n] = (struct restore_way){
			.lazy = true, .drv = d ? UFFD_DRIVER_URING
					       : UFFD_DRIVER_POLL,
			.ra = &ra_modes[2], .workers = ncpus };
		snprintf(ways[n++].name, sizeof(ways[0].name),
			 "%s, RA adaptive, %u workers", drv_name[d], ncpus);
	}
	return n;
}

static void restore_group(const struct image *img, int order, bool warm)
{
	struct restore_way ways[16];
	size_t n = restore_ways(ways);
	char group[128];
	/* one warm-up for the scenario, not per group: each run maps fresh
	 * memory for the whole image, so the full run stays short */
	static bool warmed;

	snprintf(group, sizeof(group), "3 lazy restore %zu MiB: %s, %s",
		 img->len >> 20, order_name[order],
		 warm ? "page cache (warm)" : "cold file");
	bench_progress("%s", group);
	for (size_t i = 0; i < n; i++) { /* rows in table order */
		char first[128];

		snprintf(first, sizeof(first), "%.64s: 1st touch", ways[i].name);
		bench_row(group, ways[i].name, "GB/s", BENCH_RATE);
		bench_row(group, first, "ms", BENCH_TIME);
	}
	for (unsigned r = warmed ? 1 : 0; r <= opts.restore_reps; r++) {
		warmed = true;
		/* each repetition starts one way further on, so no way is
		 * always the one after the same neighbour */
		for (size_t i = 0; i < n; i++) {
			const struct restore_way *w = &ways[(i + r) % n];
			struct restore_time t;

			image_cache(img, warm);
			bench_prewarm(img->len);
			t = w->lazy ? restore_lazy(img, order, w->drv, w->ra,
						   w->workers)
				    : restore_read(img, order);
			if (r)
				record(group, w->name, img, t);
		}
	}
}

/* Warm images with the defaults (poll driver, adaptive readahead, one
 * worker); cold ones with the io_uring driver, which the guide recommends
 * for images that come from the disk. */
static void restore_targets(const struct image *img)
{
	char group[128], what[160];

	for (int warm = 1; warm >= 0; warm--) {
		for (int o = 0; o < 2; o++) {
			snprintf(group, sizeof(group),
				 "3 lazy restore %zu MiB: %s, %s",
				 img->len >> 20, order_name[o],
				 warm ? "page cache (warm)" : "cold file");
			snprintf(what, sizeof(what), "lazy restore >= 1.0x "
				 "read(): %s, %s (%s, RA adaptive)",
				 order_name[o], warm ? "warm" : "cold",
				 warm ? "poll" : "io_uring");
			bench_target(what, group,
				     warm ? "poll, RA adaptive"
					  : "io_uring, RA adaptive", 0, 1.0);
		}
	}
	snprintf(group, sizeof(group), "3 lazy restore %zu MiB: random, cold "
		 "file", img->len >> 20);
	bench_target("io_uring ahead of poll on cold random restore (adaptive)",
		     group, "io_uring, RA adaptive", 1, 1.0);
}

static struct image img = { .fd = -1 };

static void image_get(void)
{
	double left;

	if (img.fd >= 0)
		return;
	bench_progress("creating a %zu MiB image in %s", opts.restore_bytes >> 20,
		       opts.dir);
	image_create(&img);
	image_orders(&img);
	image_cache(&img, false);
	left = image_resident(&img);
	bench_note("cold runs: the image's pages are dropped with "
		   "posix_fadvise(DONTNEED) before each run; %.1f%% stayed "
		   "cached after it%s", left * 100,
		   left > 0.05 ? " (not cold: the filesystem kept them)" : "");
}

void scenario_restore(void)
{
	image_get();
	for (int warm = 1; warm >= 0; warm--)
		for (int o = 0; o < 2; o++)
			restore_group(&img, o, warm);
	restore_targets(&img);
	/* io_uring vs poll is a second reference on the cold random row */
	{
		char group[128];
		struct bench_row *row;

		snprintf(group, sizeof(group), "3 lazy restore %zu MiB: random, "
			 "cold file", img.len >> 20);
		row = (struct bench_row *)bench_find(
			group, "io_uring, RA adaptive");
		if (row)
			bench_row_refs(row, "read()",
				       "poll, RA adaptive");
	}
}

/* RssAnon growth of a loop serving a restore of the image, minus the
 * image itself: idle (registered, nothing touched) and once complete. */
static void memory_overhead(struct bench_row *idle, struct bench_row *done)
{
	double gib = (double)img.len / (1u << 30);
	uint64_t base = bench_rss_anon_kib();
	struct lazy lz;

	lazy_setup(&img, UFFD_DRIVER_POLL, &ra_modes[2], 1, &lz);
	if (uffd_loop_start(lz.loop))
		bench_die("loop start: %s", uffd_last_error());
	bench_add(idle, (double)(bench_rss_anon_kib() - base) / gib);
	touch_order(lz.mem, img.order[0], 0, img.len / PAGE);
	if (uffd_loop_wait_complete(lz.loop, -1))
		bench_die("wait_complete: %s", uffd_last_error());
	bench_add(done, ((double)bench_rss_anon_kib() - (double)base -
			 (double)(img.len >> 10)) / gib);
	lazy_teardown(&img, &lz);
}

void scenario_memory(void)
{
	const char *group = "4 memory";
	struct bench_row *idle = bench_row(group, "overhead, registered, idle",
					   "KiB/GiB", BENCH_SIZE);
	struct bench_row *done = bench_row(group, "overhead, restore complete",
					   "KiB/GiB", BENCH_SIZE);
	struct bench_row *peak = bench_row(group, "peak RSS, lazy restore",
					   "MiB", BENCH_SIZE);
	struct bench_row *peak_ref = bench_row(group, "peak RSS, read()",
					       "MiB", BENCH_SIZE);
	struct bench_row *above = bench_row(group, "peak RSS above read()",
					    "MiB", BENCH_SIZE);

	image_get();
	bench_progress("%s", group);
	for (unsigned r = 0; r < opts.restore_reps; r++) {
		uint64_t hwm_read, hwm_lazy;

		memory_overhead(idle, done);
		image_cache(&img, true);
		bench_prewarm(img.len);
		bench_reset_hwm();
		restore_read(&img, 0);
		hwm_read = bench_hwm_kib();
		bench_prewarm(img.len);
		bench_reset_hwm();
		restore_lazy(&img, 0, UFFD_DRIVER_POLL, &ra_modes[2], 1);
		hwm_lazy = bench_hwm_kib();
		bench_add(peak, (double)hwm_lazy / 1024);
		bench_add(peak_ref, (double)hwm_read / 1024);
		bench_add(above, ((double)hwm_lazy - (double)hwm_read) / 1024);
	}
}
