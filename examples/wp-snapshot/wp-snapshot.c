// SPDX-License-Identifier: MIT
/*
 * wp-snapshot: a consistent snapshot of memory that keeps being written,
 * then dirty-page tracking without a fault handler.
 *
 * Part 1, the background snapshot (QEMU's technique for live snapshots):
 * writer threads modify memory without pause. The snapshotter stops them
 * for an instant, write-protects all the memory and lets them run again.
 * From then on it saves the pages in order in the background; a writer
 * that wants to change a page not saved yet faults, the loop's fault
 * callback saves that page first and un-protects it, and the writer goes
 * on. The snapshot is thus exactly the memory at the instant of protection,
 * although most of it was saved while the writers kept writing. Each write
 * stores the writer's generation number, so that instant's contents can be
 * recomputed and compared with the snapshot byte for byte.
 *
 * Part 2, dirty tracking: with UFFD_FEAT_WP_ASYNC a write to a protected
 * page is let through by the kernel at once, with no message; the page is
 * then "written". One PAGEMAP_SCAN ioctl on /proc/self/pagemap lists the
 * written pages and protects them again, ready for the next round.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/fs.h>

#include <libuffd.h>

/*
 * PAGEMAP_SCAN (Linux 6.7) is newer than the system headers here: the ABI
 * is defined locally when they lack it, and the kernel is asked at run
 * time (an older one answers ENOTTY).
 */
#ifndef PAGEMAP_SCAN
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN   (1 << 1)

struct page_region {
	__u64 start;
	__u64 end;
	__u64 categories;
};

#define PM_SCAN_WP_MATCHING   (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)

struct pm_scan_arg {
	__u64 size;
	__u64 flags;
	__u64 start;
	__u64 end;
	__u64 walk_end;
	__u64 vec;
	__u64 vec_len;
	__u64 max_pages;
	__u64 category_inverted;
	__u64 category_mask;
	__u64 category_anyof_mask;
	__u64 return_mask;
};

#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

#define MAX_WRITERS 16
#define MAX_PAGES   (1u << 18)
#define NLOCKS      64

static size_t ps;

static uint64_t mix(uint64_t x)
{
	x += UINT64_C(0x9e3779b97f4a7c15);
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

/* ------------------------------------------------------------------------
 * Part 1: the background snapshot.
 */

struct snap;

struct writer {
	struct snap *s;
	pthread_t thread;
	unsigned id;
	size_t owned;        /* pages id, id + nwriters, ... */
	uint64_t warmup;     /* writes before it may be stopped */
	uint64_t after;      /* writes after it is let go again */
	uint64_t gen;        /* writes done */
	uint64_t frozen_gen; /* writes done when the memory was protected */
	uint64_t total;      /* writes in all: frozen_gen + after */
	unsigned char *buf;  /* the next contents of a page */
};

struct snap {
	size_t pages, len;
	unsigned char *mem;   /* written by the writers, registered WP */
	unsigned char *image; /* the snapshot */
	bool *saved;          /* page is in the image (under its lock) */
	pthread_mutex_t locks[NLOCKS];
	struct uffd_handle *h;
	struct uffd_loop *loop;
	atomic_ulong by_fault, by_saver, errors;

	/* stopping and resuming the writers */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	atomic_bool stop;
	bool resumed;
	unsigned warmed, parked, wrote_after;

	unsigned nwriters;
	struct writer w[MAX_WRITERS];
};

/* Writer k writes generation g (1, 2, ...) into one of its own pages. */
static size_t target_page(const struct writer *w, uint64_t g)
{
	unsigned n = w->s->nwriters;

	return w->id + n * (size_t)(mix((uint64_t)w->id << 40 | g) % w->owned);
}

/* The contents of a page after generation gen wrote it (0: initial). */
static void page_contents(unsigned char *page, size_t index, uint64_t gen)
{
	uint64_t head[2] = { index, gen };

	memcpy(page, head, sizeof(head));
	for (size_t i = sizeof(head); i < ps; i++)
		page[i] = (unsigned char)(index * 131 + gen * 29 + i);
}

static void sync_point(struct snap *s, unsigned *counter, bool *until)
{
	pthread_mutex_lock(&s->mu);
	++*counter;
	pthread_cond_broadcast(&s->cv);
	while (until && !*until)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct snap *s = w->s;

	/* it writes on until it is stopped, then "after" more times */
	while (!w->total || w->gen < w->total) {
		if (w->gen == w->warmup)
			sync_point(s, &s->warmed, NULL);
		/* the snapshotter's stop: park between two writes, so no page
		 * is half written when the memory is protected */
		if (w->gen >= w->warmup && !w->total &&
		    atomic_load(&s->stop)) {
			w->frozen_gen = w->gen;
			w->total = w->gen + w->after;
			sync_point(s, &s->parked, &s->resumed);
		}
		w->gen++;
		page_contents(w->buf, target_page(w, w->gen), w->gen);
		/* the first store to a protected page raises the WP fault */
		memcpy(s->mem + target_page(w, w->gen) * ps, w->buf, ps);
		if (w->total && w->gen == w->frozen_gen + 1)
			sync_point(s, &s->wrote_after, NULL);
	}
	return NULL;
}

static void wait_count(struct snap *s, const unsigned *counter)
{
	pthread_mutex_lock(&s->mu);
	while (*counter < s->nwriters)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
}

/* Saves page p into the image unless it is there already; true if this
 * call saved it. The lock makes the saver and the fault callback agree on
 * who saves a page, and never lets either un-protect it before it is
 * saved. */
static bool save_page(struct snap *s, size_t p)
{
	pthread_mutex_t *lock = &s->locks[p % NLOCKS];
	bool mine;

	pthread_mutex_lock(lock);
	mine = !s->saved[p];
	if (mine) {
		memcpy(s->image + p * ps, s->mem + p * ps, ps);
		s->saved[p] = true;
	}
	pthread_mutex_unlock(lock);
	return mine;
}

static int unprotect(struct snap *s, size_t p)
{
	/* un-protecting also wakes a writer waiting on the page */
	int ret = uffd_handle_writeprotect(s->h, s->mem + p * ps, ps, false, 0);

	if (ret) {
		fprintf(stderr, "wp-snapshot: un-protecting page %zu: %s\n", p,
			uffd_last_error());
		atomic_fetch_add(&s->errors, 1);
	}
	return ret;
}

/* A writer hit a page that is not saved yet: save it now, then let the
 * writer through. Runs on the loop's worker thread. */
static int on_wp_fault(void *arg, struct uffd_region *region,
		       const struct uffd_event *ev)
{
	struct snap *s = arg;
	size_t p = (size_t)(ev->fault.address - (uintptr_t)s->mem) / ps;

	if (p >= s->pages || !(ev->flags & UFFD_FAULT_WP)) {
		atomic_fetch_add(&s->errors, 1);
		return -EINVAL;
	}
	if (save_page(s, p))
		atomic_fetch_add(&s->by_fault, 1);
	return unprotect(s, p);
}

static int snap_setup(struct snap *s)
{
	struct uffd_region_config *rc = NULL;
	int ret;

	s->mem = mmap(NULL, s->len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	s->image = malloc(s->len);
	s->saved = calloc(s->pages, sizeof(*s->saved));
	if (s->mem == MAP_FAILED || !s->image || !s->saved) {
		fprintf(stderr, "wp-snapshot: out of memory for %zu pages\n",
			s->pages);
		return -ENOMEM;
	}
	for (size_t p = 0; p < s->pages; p++)
		page_contents(s->mem + p * ps, p, 0);
	for (int i = 0; i < NLOCKS; i++)
		pthread_mutex_init(&s->locks[i], NULL);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);

	ret = uffd_handle_new(NULL, &s->h);
	if (!ret)
		ret = uffd_loop_new(s->h, NULL, &s->loop);
	if (!ret)
		ret = uffd_region_config_new(&rc);
	if (!ret)
		ret = uffd_region_config_set_range(rc, s->mem, s->len);
	if (!ret)
		ret = uffd_region_config_set_modes(rc, UFFD_MODE_WP);
	if (!ret)
		ret = uffd_region_config_set_fault_callback(rc, on_wp_fault, s);
	if (!ret)
		ret = uffd_loop_add_region(s->loop, rc, NULL);
	if (!ret)
		ret = uffd_loop_start(s->loop);
	uffd_region_config_free(rc);
	if (ret)
		fprintf(stderr, "wp-snapshot: %s\n", uffd_last_error());
	return ret;
}

static void snap_free(struct snap *s)
{
	uffd_loop_free(s->loop);
	uffd_handle_free(s->h);
	if (s->mem && s->mem != MAP_FAILED)
		munmap(s->mem, s->len);
	free(s->image);
	free(s->saved);
}

/* Stop the writers, protect everything, let them go: the snapshot's
 * instant. Returns with at least one write per writer done after it, so
 * some pages are sure to be saved by the fault path. */
static int snap_begin(struct snap *s)
{
	int ret;

	wait_count(s, &s->warmed);
	atomic_store(&s->stop, true);
	wait_count(s, &s->parked);
	ret = uffd_handle_writeprotect(s->h, s->mem, s->len, true, 0);
	if (ret)
		fprintf(stderr, "wp-snapshot: write-protecting: %s\n",
			uffd_last_error());
	pthread_mutex_lock(&s->mu);
	s->resumed = true; /* also on failure: never leave them parked */
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	if (!ret)
		wait_count(s, &s->wrote_after);
	return ret;
}

/* The background part: every page in order, unless a fault saved it. */
static int snap_save_all(struct snap *s)
{
	for (size_t p = 0; p < s->pages; p++) {
		if (!save_page(s, p))
			continue;
		atomic_fetch_add(&s->by_saver, 1);
		if (unprotect(s, p))
			return -1;
	}
	return 0;
}

/* Replays writer w's generations 1..upto into mem. */
static void replay(const struct writer *w, unsigned char *mem, uint64_t upto,
		   uint64_t *last)
{
	for (size_t i = 0; i < w->owned; i++)
		last[i] = 0;
	for (uint64_t g = 1; g <= upto; g++)
		last[(target_page(w, g) - w->id) / w->s->nwriters] = g;
	for (size_t i = 0; i < w->owned; i++) {
		size_t p = w->id + i * w->s->nwriters;

		page_contents(mem + p * ps, p, last[i]);
	}
}

/* mem must equal the replay of each writer up to frozen (true: to its
 * frozen generation) or to the end. */
static bool check_state(const struct snap *s, const unsigned char *mem,
			bool frozen, const char *what)
{
	unsigned char *want = malloc(s->len);
	uint64_t *last = calloc(s->pages, sizeof(*last));
	unsigned bad = 0;

	if (!want || !last) {
		fprintf(stderr, "wp-snapshot: out of memory to check the %s\n",
			what);
		bad = 1;
	}
	for (unsigned k = 0; !bad && k < s->nwriters; k++)
		replay(&s->w[k], want, frozen ? s->w[k].frozen_gen
					       : s->w[k].total, last);
	for (size_t p = 0; want && last && p < s->pages; p++) {
		uint64_t got[2], exp[2];

		if (!memcmp(mem + p * ps, want + p * ps, ps) || ++bad > 5)
			continue;
		memcpy(got, mem + p * ps, sizeof(got));
		memcpy(exp, want + p * ps, sizeof(exp));
		fprintf(stderr, "wp-snapshot: %s: page %zu holds page %llu "
				"generation %llu, expected generation %llu\n",
			what, p, (unsigned long long)got[0],
			(unsigned long long)got[1],
			(unsigned long long)exp[1]);
	}
	if (bad > 5)
		fprintf(stderr, "wp-snapshot: %s: %u pages differ in all\n",
			what, bad);
	free(want);
	free(last);
	return !bad;
}

static int snap_report(struct snap *s)
{
	struct uffd_loop_stats st;
	uint64_t writes = 0, during = 0;
	unsigned long by_fault = atomic_load(&s->by_fault);
	unsigned long by_saver = atomic_load(&s->by_saver);
	bool ok;

	uffd_loop_get_stats(s->loop, &st, sizeof(st));
	for (unsigned k = 0; k < s->nwriters; k++) {
		writes += s->w[k].total;
		during += s->w[k].total - s->w[k].frozen_gen;
	}
	printf("snapshot: %zu pages: %lu saved first because a writer "
	       "faulted on them (%llu WP faults), %lu saved in order in the "
	       "background\n", s->pages, by_fault,
	       (unsigned long long)st.faults_wp, by_saver);
	ok = by_fault + by_saver == s->pages && by_fault >= s->nwriters &&
	     !atomic_load(&s->errors);
	if (!ok)
		fprintf(stderr, "wp-snapshot: expected every page saved once "
				"and at least %u by faults\n", s->nwriters);
	if (ok && check_state(s, s->image, true, "snapshot"))
		printf("snapshot consistent: all %zu pages equal the memory "
		       "at the instant of protection\n", s->pages);
	else
		ok = false;
	if (ok && check_state(s, s->mem, false, "memory after the writes"))
		printf("writers never blocked for good: %u threads did all "
		       "%llu writes, %llu of them after the protection; every "
		       "write landed\n", s->nwriters,
		       (unsigned long long)writes,
		       (unsigned long long)during);
	else
		ok = false;
	return ok ? 0 : -1;
}

static int background_snapshot(size_t pages, unsigned nwriters)
{
	struct snap *s = calloc(1, sizeof(*s));
	unsigned started = 0;
	int ret;

	if (!s)
		return -ENOMEM;
	s->pages = pages;
	s->len = pages * ps;
	s->nwriters = nwriters;
	printf("part 1: background snapshot of %zu pages, %u writer "
	       "threads\n", pages, nwriters);
	ret = snap_setup(s);
	for (unsigned k = 0; !ret && k < nwriters; k++) {
		struct writer *w = &s->w[k];

		*w = (struct writer){ .s = s, .id = k };
		w->owned = (pages - k + nwriters - 1) / nwriters;
		w->warmup = 4 * w->owned;
		w->after = 8 * w->owned;
		w->buf = malloc(ps);
		ret = w->buf ? -pthread_create(&w->thread, NULL, writer_main, w)
			     : -ENOMEM;
		if (!ret)
			started++;
	}
	if (!ret)
		ret = snap_begin(s);
	if (!ret)
		ret = snap_save_all(s);
	if (ret) {
		/* whatever failed, every writer must stop, and none may stay
		 * parked or protected */
		atomic_store(&s->stop, true);
		pthread_mutex_lock(&s->mu);
		s->resumed = true;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
		uffd_handle_unregister(s->h, s->mem, s->len);
	}
	for (unsigned k = 0; k < started; k++)
		pthread_join(s->w[k].thread, NULL);
	for (unsigned k = 0; k < nwriters; k++)
		free(s->w[k].buf);
	if (!ret)
		ret = uffd_loop_stop(s->loop);
	if (!ret)
		ret = snap_report(s);
	snap_free(s);
	free(s);
	return ret;
}

/* ------------------------------------------------------------------------
 * Part 2: dirty tracking with WP_ASYNC and PAGEMAP_SCAN.
 */

struct tracker {
	struct uffd_handle *h;
	int pagemap;
	unsigned char *mem;
	size_t pages;
	bool *written;  /* what the program wrote this round */
	bool *found;    /* what the scan reported */
	size_t nranges; /* page_region entries the scan returned */
};

/*
 * One round: lists the pages written since the last round and protects
 * them again, in one walk of the page tables. A small vector is used on
 * purpose: when it fills, the kernel stops at walk_end and the scan goes
 * on from there.
 */
static int scan_written(struct tracker *t)
{
	struct page_region vec[32];
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		.start = (uintptr_t)t->mem,
		.end = (uintptr_t)t->mem + t->pages * ps,
		.vec = (uintptr_t)vec,
		.vec_len = sizeof(vec) / sizeof(vec[0]),
		.category_mask = PAGE_IS_WRITTEN,
		.return_mask = PAGE_IS_WRITTEN,
	};

	memset(t->found, 0, t->pages * sizeof(*t->found));
	t->nranges = 0;
	while (arg.start < arg.end) {
		int n = ioctl(t->pagemap, PAGEMAP_SCAN, &arg);

		if (n < 0)
			return -errno;
		for (int i = 0; i < n; i++) {
			size_t first = (vec[i].start - (uintptr_t)t->mem) / ps;
			size_t end = (vec[i].end - (uintptr_t)t->mem) / ps;

			for (size_t p = first; p < end && p < t->pages; p++)
				t->found[p] = true;
		}
		t->nranges += (size_t)n;
		if (arg.walk_end <= arg.start)
			return -EPROTO; /* no progress: never spin */
		arg.start = arg.walk_end;
	}
	return 0;
}

/* Writes the pages picked by seed (about one in five, and a run of 8 in
 * the middle) and remembers which. */
static size_t write_pages(struct tracker *t, uint64_t seed)
{
	size_t n = 0;

	for (size_t p = 0; p < t->pages; p++) {
		t->written[p] = mix(seed << 32 | p) % 5 == 0 ||
				(seed && p >= t->pages / 2 &&
				 p < t->pages / 2 + 8);
		if (t->written[p]) {
			t->mem[p * ps + p % ps] ^= 0x5a;
			n++;
		}
	}
	return n;
}

/* Whether the scan found exactly the written pages; says which differ. */
static bool scan_exact(const struct tracker *t, size_t round)
{
	bool ok = true;

	for (size_t p = 0; p < t->pages; p++) {
		if (t->found[p] == t->written[p])
			continue;
		fprintf(stderr, "wp-snapshot: round %zu: page %zu was %s but "
				"the scan %s it\n", round, p,
			t->written[p] ? "written" : "not written",
			t->found[p] ? "reported" : "missed");
		ok = false;
	}
	return ok;
}

static int tracker_setup(struct tracker *t)
{
	struct uffd_handle_config *cfg = NULL;
	int ret;

	t->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	t->mem = mmap(NULL, t->pages * ps, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	t->written = calloc(t->pages, sizeof(*t->written));
	t->found = calloc(t->pages, sizeof(*t->found));
	if (t->pagemap < 0 || t->mem == MAP_FAILED || !t->written ||
	    !t->found) {
		perror("wp-snapshot: tracker setup");
		return -1;
	}
	memset(t->mem, 1, t->pages * ps);
	/* WP_ASYNC changes every WP registration of the handle: it gets a
	 * handle of its own, never shared with synchronous WP users */
	ret = uffd_handle_config_new(&cfg);
	if (!ret)
		ret = uffd_handle_config_require_features(cfg,
							  UFFD_FEAT_WP_ASYNC);
	if (!ret)
		ret = uffd_handle_new(cfg, &t->h);
	uffd_handle_config_free(cfg);
	if (!ret)
		ret = uffd_handle_register(t->h, t->mem, t->pages * ps,
					   UFFD_MODE_WP, NULL);
	if (!ret)
		ret = uffd_handle_writeprotect(t->h, t->mem, t->pages * ps,
					       true, 0);
	if (ret)
		fprintf(stderr, "wp-snapshot: %s\n", uffd_last_error());
	return ret;
}

static void tracker_free(struct tracker *t)
{
	uffd_handle_free(t->h);
	if (t->mem && t->mem != MAP_FAILED)
		munmap(t->mem, t->pages * ps);
	if (t->pagemap >= 0)
		close(t->pagemap);
	free(t->written);
	free(t->found);
}

/* Three rounds: some pages written, none, others written. */
static int track_rounds(struct tracker *t)
{
	static const uint64_t seeds[] = { 1, 0, 2 };
	size_t counts[3];

	for (size_t r = 0; r < 3; r++) {
		int ret;

		counts[r] = 0;
		memset(t->written, 0, t->pages * sizeof(*t->written));
		if (seeds[r])
			counts[r] = write_pages(t, seeds[r]);
		ret = scan_written(t);
		if (ret) {
			fprintf(stderr, "wp-snapshot: PAGEMAP_SCAN: %s\n",
				strerror(-ret));
			return ret;
		}
		if (!scan_exact(t, r + 1))
			return -1;
		if (counts[r])
			printf("  round %zu: wrote %zu pages; the scan found "
			       "exactly those (%zu ranges) and protected them "
			       "again\n", r + 1, counts[r], t->nranges);
		else
			printf("  round %zu: wrote nothing; the scan found no "
			       "page\n", r + 1);
	}
	printf("dirty tracking exact: 3 rounds over %zu pages, %zu + %zu + "
	       "%zu written pages found, no others\n",
	       t->pages, counts[0], counts[1], counts[2]);
	return 0;
}

static int dirty_tracking(size_t pages)
{
	struct tracker t = { .pagemap = -1, .pages = pages };
	uint64_t supported = 0;
	int ret;

	printf("part 2: dirty tracking with WP_ASYNC and PAGEMAP_SCAN, %zu "
	       "pages\n", pages);
	ret = uffd_features_probe(NULL, &supported);
	if (ret) {
		fprintf(stderr, "wp-snapshot: %s\n", uffd_last_error());
		return ret;
	}
	if (!(supported & UFFD_FEAT_WP_ASYNC)) {
		printf("dirty tracking skipped: this kernel has no "
		       "UFFD_FEATURE_WP_ASYNC\n");
		return 0;
	}
	ret = tracker_setup(&t);
	if (!ret) {
		/* a first scan: nothing written yet, and is PAGEMAP_SCAN
		 * there at all? */
		ret = scan_written(&t);
		if (ret == -ENOTTY) {
			printf("dirty tracking skipped: this kernel has no "
			       "PAGEMAP_SCAN ioctl\n");
			ret = 0;
			goto out;
		}
		if (ret)
			fprintf(stderr, "wp-snapshot: PAGEMAP_SCAN: %s\n",
				strerror(-ret));
		else if (!scan_exact(&t, 0))
			ret = -1;
	}
	if (!ret)
		ret = track_rounds(&t);
out:
	tracker_free(&t);
	return ret;
}

/* ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: wp-snapshot [--pages N] [--writers N]\n"
		"  A consistent snapshot of memory that writer threads keep "
		"changing\n"
		"  (userfaultfd write protection, saved in the background), "
		"then\n"
		"  dirty-page tracking with WP_ASYNC and PAGEMAP_SCAN.\n"
		"  --pages N    pages of memory, writers..%u (default 1024)\n"
		"  --writers N  writer threads, 1..%d (default 2)\n"
		"  --help       this text\n",
		MAX_PAGES, MAX_WRITERS);
}

static int parse_count(const char *opt, const char *s, unsigned long min,
		       unsigned long max, unsigned long *v)
{
	char *end;

	errno = 0;
	*v = strtoul(s, &end, 10);
	if (errno || *end || end == s || *s == '-' || *v < min || *v > max) {
		fprintf(stderr, "wp-snapshot: %s wants a number from %lu to "
				"%lu, not '%s'\n", opt, min, max, s);
		return -1;
	}
	return 0;
}

static int parse_args(int argc, char **argv, unsigned long *pages,
		      unsigned long *writers)
{
	static const struct option opts[] = {
		{ "pages", required_argument, NULL, 'p' },
		{ "writers", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "p:w:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (parse_count("--pages", optarg, 1, MAX_PAGES, pages))
				return -1;
			break;
		case 'w':
			if (parse_count("--writers", optarg, 1, MAX_WRITERS,
					writers))
				return -1;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "wp-snapshot: unexpected argument '%s'\n",
			argv[optind]);
		return -1;
	}
	if (*pages < *writers) {
		fprintf(stderr, "wp-snapshot: %lu writers need at least %lu "
				"pages\n", *writers, *writers);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long pages = 1024, writers = 2;
	int ret;

	ps = (size_t)sysconf(_SC_PAGESIZE);
	if (parse_args(argc, argv, &pages, &writers))
		return 2;
	ret = background_snapshot(pages, (unsigned)writers);
	if (!ret)
		ret = dirty_tracking(pages);
	printf("%s\n", ret ? "wp-snapshot FAILED" : "wp-snapshot: ok");
	return ret ? 1 : 0;
}
