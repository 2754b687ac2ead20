// SPDX-License-Identifier: MIT
/*
 * In-thread resolution (UFFD_FEAT_SIGBUS): lazy restore from buffer, file
 * and zero sources touched by several threads at once, MINOR faults
 * through an alias, readahead, a failing source (the process gets a real
 * SIGBUS, never a hang), signals that are not ours reaching the
 * application's own handler, hugetlb, and the refusals.
 *
 * Every test installs signal handlers; Check runs each test in its own
 * forked process, so they never leak into another test. Tests whose
 * expected outcome is a dead process fork once more and check the child's
 * fate with waitpid(); the child arms alarm() so a hang shows as SIGALRM,
 * not as a stuck test.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "libuffd.h"

/*
 * Under AddressSanitizer: ASan installs its own SIGBUS handler at start-up
 * (handle_sigbus=1 by default). libuffd then finds ASan's handler as "the
 * previous one" and passes every SIGBUS that is not its own to it, so a
 * child that must die of SIGBUS ends in an ASan report and exit(1)
 * instead, and the "previous handler" the tests restore is ASan's, not
 * SIG_DFL. Turning ASan's SIGBUS handling off makes the disposition before
 * libuffd SIG_DFL, as in a normal build; ASan keeps handling SIGSEGV.
 * Only this test's executable is affected (a normal build ignores it).
 */
const char *__asan_default_options(void);
__attribute__((used, visibility("default"))) const char *
__asan_default_options(void)
{
	return "handle_sigbus=0";
}

#define HUGE_SZ ((size_t)2 << 20)
#define NTHREADS 4

/* ---- helpers ---- */

static unsigned char pat(size_t i, unsigned seed)
{
	uint32_t x = (uint32_t)i * 2654435761u + seed * 40503u;

	return (unsigned char)((x >> 24) ^ (x >> 11) ^ seed);
}

static unsigned char *pattern_buffer(size_t len, unsigned seed)
{
	unsigned char *b = malloc(len);

	ck_assert_ptr_nonnull(b);
	for (size_t i = 0; i < len; i++)
		b[i] = pat(i, seed);
	return b;
}

static struct uffd_handle *sigbus_handle(void)
{
	return open_handle_with(UFFD_FEAT_SIGBUS);
}

static struct uffd_sigbus *new_sigbus(struct uffd_handle *h)
{
	struct uffd_sigbus *sb = NULL;
	int ret = uffd_sigbus_new(h, &sb);

	ck_assert_msg(ret == 0, "uffd_sigbus_new: %s", uffd_last_error());
	return sb;
}

/* A region config; ra_max (size_t)-1 keeps the default readahead. */
static struct uffd_region_config *region_cfg(void *addr, size_t len,
					     uint64_t modes,
					     struct uffd_source *src,
					     size_t ra_max, bool adaptive)
{
	struct uffd_region_config *cfg;

	ck_assert_int_eq(uffd_region_config_new(&cfg), 0);
	ck_assert_int_eq(uffd_region_config_set_range(cfg, addr, len), 0);
	ck_assert_int_eq(uffd_region_config_set_modes(cfg, modes), 0);
	if (src)
		ck_assert_int_eq(uffd_region_config_set_source(cfg, src, 0), 0);
	if (ra_max != (size_t)-1)
		ck_assert_int_eq(uffd_region_config_set_readahead(cfg, ra_max,
								  adaptive),
				 0);
	return cfg;
}

static void add_region(struct uffd_sigbus *sb, struct uffd_region_config *cfg)
{
	int ret = uffd_sigbus_add_region(sb, cfg);

	ck_assert_msg(ret == 0, "uffd_sigbus_add_region: %s",
		      uffd_last_error());
	uffd_region_config_free(cfg);
}

static struct uffd_loop_stats get_stats(struct uffd_sigbus *sb)
{
	struct uffd_loop_stats st;

	ck_assert_int_eq(uffd_sigbus_get_stats(sb, &st, sizeof(st)), 0);
	return st;
}

/* A file of len bytes of pattern seed (unlinked: gone with its fds). */
static int pattern_file(size_t len, unsigned seed)
{
	char path[] = "/tmp/libuffd-sigbus-XXXXXX";
	unsigned char *b = pattern_buffer(len, seed);
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(pwrite(fd, b, len, 0), (ssize_t)len);
	free(b);
	return fd;
}

/* Compares page by page, in address order, so that the faults (and the
 * readahead windows) come in a known order whatever memcmp does. */
static bool pages_equal(const unsigned char *mem, const unsigned char *want,
			size_t npages)
{
	size_t ps = test_page();

	for (size_t i = 0; i < npages; i++)
		if (memcmp(mem + i * ps, want + i * ps, ps))
			return false;
	return true;
}

static bool resident(const void *p, size_t ps)
{
	unsigned char v = 0;

	ck_assert_int_eq(mincore((void *)p, ps, &v), 0);
	return v & 1;
}

/* ---- several threads touching the same pages ---- */

struct shared_touch {
	pthread_barrier_t barrier;
	volatile unsigned char *mem;
	const unsigned char *expect;
	size_t npages, ps;
	_Atomic long mismatches;
};

struct touch_arg {
	struct shared_touch *s;
	unsigned id;
};

/* Each thread visits every page in its own order (forward, backward,
 * strided, from the middle) and checks what it read at both ends and in
 * the middle of the page; the last thread writes back the expected value
 * (a write fault, and a harmless one). */
static void *touch_all(void *arg)
{
	struct touch_arg *a = arg;
	struct shared_touch *s = a->s;
	size_t n = s->npages;

	pthread_barrier_wait(&s->barrier);
	for (size_t k = 0; k < n; k++) {
		size_t page;

		switch (a->id % 4) {
		case 0: page = k; break;
		case 1: page = n - 1 - k; break;
		case 2: page = (k * 7) % n; break; /* n is a power of two */
		default: page = (k + n / 2) % n; break;
		}
		for (size_t off = 0; off < s->ps; off += s->ps / 2 - 1) {
			size_t i = page * s->ps + off;

			if (a->id == NTHREADS - 1 && off == 0)
				s->mem[i] = s->expect[i];
			if (s->mem[i] != s->expect[i])
				atomic_fetch_add(&s->mismatches, 1);
		}
	}
	return NULL;
}

static void touch_from_threads(unsigned char *mem, const unsigned char *expect,
			       size_t npages)
{
	struct shared_touch s = { .mem = mem, .expect = expect,
				  .npages = npages, .ps = test_page() };
	struct touch_arg args[NTHREADS];
	pthread_t t[NTHREADS];

	pthread_barrier_init(&s.barrier, NULL, NTHREADS);
	for (unsigned i = 0; i < NTHREADS; i++) {
		args[i] = (struct touch_arg){ &s, i };
		ck_assert_int_eq(pthread_create(&t[i], NULL, touch_all,
						&args[i]), 0);
	}
	for (unsigned i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&s.barrier);
	ck_assert_int_eq(atomic_load(&s.mismatches), 0);
	ck_assert_msg(!memcmp(mem, expect, npages * s.ps),
		      "the restored memory differs from the source");
}

START_TEST(buffer_restore_threads)
{
	size_t ps = test_page(), n = 256, len = n * ps;
	struct uffd_handle *h = sigbus_handle();
	struct uffd_sigbus *sb = new_sigbus(h);
	unsigned char *mem = map_anon(len), *img = pattern_buffer(len, 1);
	struct uffd_source *src;
	struct uffd_loop_stats st;

	ck_assert_int_eq(uffd_source_new_buffer(img, len, &src), 0);
	/* no readahead: the threads race for the very same pages */
	add_region(sb, region_cfg(mem, len, UFFD_MODE_MISSING, src, 0, false));
	uffd_source_free(src); /* the region keeps its own reference */
	touch_from_threads(mem, img, n);
	st = get_stats(sb);
	ck_assert_uint_eq(st.pages_resolved, n);
	ck_assert_uint_eq(st.bytes_resolved, len);
	ck_assert_uint_ge(st.faults_missing, n);
	ck_assert_uint_eq(st.fetch_failures, 0);
	uffd_sigbus_free(sb);
	uffd_handle_free(h);
	munmap(mem, len);
	free(img);
}
END_TEST

START_TEST(file_restore_threads)
{
	size_t ps = test_page(), n = 256, len = n * ps;
	/* the file ends 100 bytes short of the region: the rest reads 0 */
	size_t flen = len - 100;
	int fd = pattern_file(flen, 2);
	struct uffd_handle *h = sigbus_handle();
	struct uffd_sigbus *sb = new_sigbus(h);
	unsigned char *mem = map_anon(len), *expect = pattern_buffer(len, 2);
	struct uffd_source *src;
	struct uffd_loop_stats st;

	memset(expect + flen, 0, len - flen);
	ck_assert_int_eq(uffd_source_new_fd(fd, 0, len, &src), 0);
	close(fd); /* the source has its own */
	/* the default adaptive readahead: windows through the staging pool */
	add_region(sb, region_cfg(mem, len, UFFD_MODE_MISSING, src,
				  (size_t)-1, true));
	uffd_source_free(src);
	touch_from_threads(mem, expect, n);
	st = get_stats(sb);
	ck_assert_uint_eq(st.pages_resolved, n);
	ck_assert_uint_eq(st.fetch_failures, 0);
	ck_assert_uint_gt(st.faults_missing, 0);
	uffd_sigbus_free(sb);
	uffd_handle_free(h);
	munmap(mem, len);
	free(expect);
}
END_TEST

START_TEST(zero_source)
{
	size_t ps = test_page(), n = 64, len = n * ps;
	struct uffd_handle *h = sigbus_handle();
	struct uffd_sigbus *sb = new_sigbus(h);
	unsigned char *mem = map_anon(len);
	unsigned char *zeros = calloc(1, len);
	struct uffd_source *src;
	struct uffd_loop_stats st;

	ck_assert_int_eq(uffd_source_new_zero(&src), 0);
	add_region(sb, region_cfg(mem, len, UFFD_MODE_MISSING, src, 4, false));
	uffd_source_free(src);
	ck_assert(pages_equal(mem, zeros, n));
	mem[5 * ps + 3] = 'w'; /* a zero page is read-only: write fault */
	ck_assert_int_eq(mem[5 * ps + 3], 'w');
	st = get_stats(sb);
	ck_assert_uint_eq(st.pages_resolved, n);
	ck_assert_uint_eq(st.faults_missing, n / 4);
	uffd_sigbus_free(sb);
	uffd_handle_free(h);
	munmap(mem, len);
	free(zeros);
}
END_TEST

/* A memfd seen twice: mem (registered) and alias; the pages i with
 * cached(i) are put in the page cache through the alias beforehand. */
struct memfd_pair {
	int fd;
	unsigned char *mem, *alias;
	size_t len;
};

static struct memfd_pair memfd_pair(size_t len)
{
	struct memfd_pair m = { .fd = make_memfd(len), .len = len };

	m.mem = map_fd(m.fd, len, true);
	m.alias = map_fd(m.fd, len, true);
	return m;
}

static void memfd_pair_free(struct memfd_pair *m)
{
	munmap(m->mem, m->len);
	munmap(m->alias, m->len);
	close(m->fd);
}

/* MISSING|MINOR with an alias: pages already in the page cache are only
 * mapped (CONTINUE); the others are filled through the alias, then
 * mapped. No readahead, so each page is one fault of a known kind. */
START_TEST(minor_alias)
{
	size_t ps = test_page(), n = 32, len = n * ps, prefilled = 0;
	struct memfd_pair m = memfd_pair(len);
	struct uffd_handle *h = sigbus_handle();
	struct uffd_sigbus *sb = new_sigbus(h);
	unsigned char *img = pattern_buffer(len, 3);
	unsigned char *old = pattern_buffer(len, 4);
	struct uffd_region_config *cfg;
	struct uffd_source *src;
	struct uffd_loop_stats st;

	for (size_t i = 0; i < n; i += 4, prefilled++)
		memcpy(m.alias + i * ps, old + i * ps, ps);
	ck_assert_int_eq(uffd_source_new_buffer(img, len, &src), 0);
	cfg = region_cfg(m.mem, len, UFFD_MODE_MISSING | UFFD_MODE_MINOR, src,
			 0, false);
	uffd_source_free(src);
	ck_assert_int_eq(uffd_region_config_set_alias(cfg, m.alias), 0);
	add_region(sb, cfg);
	for (size_t i = 0; i < n; i++) {
		const unsigned char *want = (i % 4 ? img : old) + i * ps;

		ck_assert_msg(!memcmp(m.mem + i * ps, want, ps),
			      "page %zu holds the wrong data", i);
		/* the fill went into the page cache: the alias sees it */
		ck_assert(!memcmp(m.alias + i * ps, want, ps));
	}
	st = get_stats(sb);
	ck_assert_uint_eq(st.faults_minor, prefilled);
	ck_assert_uint_eq(st.faults_missing, n - prefilled);
	ck_assert_uint_eq(st.pages_resolved, n);
	uffd_sigbus_free(sb);
	uffd_handle_free(h);
	memfd_pair_free(&m);
	free(img);
	free(old);
}
END_TEST

/* The same with readahead and a file source: windows must stop at pages
 * that are in the page cache already and never overwrite them. */
START_TEST(minor_alias_readahead)
{
	size_t ps = test_page(), n = 64, len = n * ps;
	struct memfd_pair m = memfd_pair(len);
	struct uffd_handle *h = sigbus_handle();
	struct uffd_sigbus *sb = new_sigbus(h);
	int fd = pattern_file(len, 5);
	unsigned char *img = pattern_buffer(len, 5);
	unsigned char *old = pattern_buffer(len, 6);
	struct uffd_region_config *cfg;
	struct uffd_source *src;
	struct uffd_loop_stats st;

	for (size_t i = 2; i < n; i += 5)
		memcpy(m.alias + i * ps, old + i * ps, ps);
	ck_assert_int_eq(uffd_source_new_fd(fd, 0, len, &src), 0);
	close(fd);
	cfg = region_cfg(m.mem, len, UFFD_MODE_MISSING | UFFD_MODE_MINOR, src,
			 8, false);
	uffd_source_free(src);
	ck_assert_int_eq(uffd_region_config_set_alias(cfg, m.alias), 0);
	add_region(sb, cfg);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(!memcmp(m.mem + i * ps,
				      (i % 5 == 2 ? old : img) + i * ps, ps),
			      "page %zu holds the wrong data", i);
	st = get_stats(sb);
	ck_assert_uint_eq(st.pages_resolved, n);
	ck_assert_uint_lt(st.faults_missing + st.faults_minor, n);
	ck_assert_uint_gt(st.faults_minor, 0);
	uffd_sigbus_free(sb);
	uffd_handle_free(h);
	memfd_pair_free(&m);
	free(img);
	free(old);
}
END_TEST

/* MINOR only: pages in the page cache are mapped by CONTINUE; the others
 * are ordinary shmem faults (zeros), never seen by the handler. */
START_TEST(minor_only)
{
	size_t ps = test_page(), n = 16, len = n * ps;
	struct memfd_pair m = memfd_pair(len);
	struct uffd_handle *h = sigbus_handle();
	struct uffd_sigbus *sb = new_sigbus(h);
	struct uffd_region_config *cfg;
	struct uffd_loop_stats st;

	for (size_t i = 0; i < n; i += 2)
		memset(m.alias + i * ps, 'a' + (int)i, ps);
	cfg = region_cfg(m.mem, len, UFFD_MODE_MINOR, NULL, 0, false);
	ck_assert_int_eq(uffd_region_config_set_alias(cfg, m.alias), 0);
	add_region(sb, cfg);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(m.mem[i * ps + 9], i % 2 ? 0 : 'a' + (int)i);
	st = get_stats(sb);
	ck_assert_uint_eq(st.faults_minor, n / 2);
	ck_assert_uint_eq(st.faults_missing, 0);
	uffd_sigbus_free(sb);
	uffd_handle_free(h);
	memfd_pair_free(&m);
}
END_TEST

/* One fault maps the window: the next pages are present (mincore) before
 * anyone touched them, and the stats count one fault per window. */
START_TEST(readahead_window)
{
	size_t ps = test_page(), n = 64, len = n * ps, ra = 8;
	struct uffd_handle *h = sigbus_handle();
	struct uffd_sigbus *sb = new_sigbus(h);
	unsigned char *mem = map_anon(len), *img = pattern_buffer(len, 7);
	struct uffd_source *src;
	struct uffd_loop_stats st;

	ck_assert_int_eq(uffd_source_new_buffer(img, len, &src), 0);
	add_region(sb, region_cfg(mem, len, UFFD_MODE_MISSING, src, ra, false));
	uffd_source_free(src);
	for (size_t i = 0; i < ra + 1; i++)
		ck_assert(!resident(mem + i * ps, ps));
	ck_assert_int_eq(mem[1], img[1]);
	for (size_t i = 0; i < ra; i++)
		ck_assert_msg(resident(mem + i * ps, ps),
			      "page %zu of the window is not present", i);
	ck_assert(!resident(mem + ra * ps, ps));
	st = get_stats(sb);
	ck_assert_uint_eq(st.faults_missing, 1);
	ck_assert_uint_eq(st.pages_resolved, ra);
	ck_assert_uint_eq(st.readahead_pages, ra - 1);

	ck_assert(pages_equal(mem, img, n)); /* sequential: a fault per 8 */
	st = get_stats(sb);
	ck_assert_uint_eq(st.faults_missing, n / ra);
	ck_assert_uint_eq(st.pages_resolved, n);
	uffd_sigbus_free(sb);
	uffd_handle_free(h);
	munmap(mem, len);
	free(img);
}
END_TEST

START_TEST(readahead_adaptive)
{
	size_t ps = test_page(), n = 256, len = n * ps;
	struct uffd_handle *h = sigbus_handle();
	struct uffd_sigbus *sb = new_sigbus(h);
	unsigned char *mem = map_anon(len), *img = pattern_buffer(len, 8);
	struct uffd_source *src;
	struct uffd_loop_stats st;

	ck_assert_int_eq(uffd_source_new_buffer(img, len, &src), 0);
	add_region(sb, region_cfg(mem, len, UFFD_MODE_MISSING, src, 16, true));
	uffd_source_free(src);
	ck_assert(pages_equal(mem, img, n));
	st = get_stats(sb);
	ck_assert_uint_eq(st.pages_resolved, n);
	/* windows of 4, 8, then 16 pages: 2 + 244 / 16 faults */
	ck_assert_uint_le(st.faults_missing, 2 + (n - 12 + 15) / 16);
	uffd_sigbus_free(sb);
	uffd_handle_free(h);
	munmap(mem, len);
	free(img);
}
END_TEST

/* A buffer source that is itself restored lazily by another region: the
 * COPY cannot read it (EFAULT), the handler touches it, which raises a
 * nested SIGBUS (SA_NODEFER) that restores it, and retries. */
START_TEST(chained_buffer_source)
{
	size_t ps = test_page(), n = 8, len = n * ps;
	struct uffd_handle *h = sigbus_handle();
	struct uffd_sigbus *sb = new_sigbus(h);
	unsigned char *a = map_anon(len), *b = map_anon(len);
	unsigned char *img = pattern_buffer(len, 9);
	struct uffd_source *src_a, *src_b;

	ck_assert_int_eq(uffd_source_new_buffer(img, len, &src_a), 0);
	ck_assert_int_eq(uffd_source_new_buffer(a, len, &src_b), 0);
	add_region(sb, region_cfg(a, len, UFFD_MODE_MISSING, src_a, 0, false));
	add_region(sb, region_cfg(b, len, UFFD_MODE_MISSING, src_b, 0, false));
	uffd_source_free(src_a);
	uffd_source_free(src_b);
	ck_assert(!memcmp(b, img, len));
	ck_assert(!memcmp(a, img, len));
	uffd_sigbus_free(sb);
	uffd_handle_free(h);
	munmap(a, len);
	munmap(b, len);
	free(img);
}
END_TEST

/* ---- the application's own SIGBUS handler ---- */

static sigjmp_buf app_jb;
static volatile sig_atomic_t app_hits;
static void *volatile app_addr;
static volatile int app_code;

static void app_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	app_hits++;
	app_addr = si->si_addr;
	app_code = si->si_code;
	siglongjmp(app_jb, 1);
}

static void install_app_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = app_handler;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGBUS, &sa, NULL), 0);
}

/* Reads *p; true when that raised a SIGBUS the application's handler got.
 * noinline: the sigsetjmp frame must be this function's own. */
static __attribute__((noinline)) bool caught(volatile unsigned char *p)
{
	if (sigsetjmp(app_jb, 1))
		return true;
	(void)*p;
	return false;
}

static struct sigaction current_action(void)
{
	struct sigaction cur;

	ck_assert_int_eq(sigaction(SIGBUS, NULL, &cur), 0);
	return cur;
}

static bool same_action(const struct sigaction *a, const struct sigaction *b)
{
	return a->sa_sigaction == b->sa_sigaction &&
	       (a->sa_flags & SA_SIGINFO) == (b->sa_flags & SA_SIGINFO);
}

static bool app_handler_installed(void)
{
	struct sigaction cur = current_action();

	return (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == app_handler;
}

/* A SIGBUS that is not for a region (a file mapping past its end, a
 * raise()) reaches the handler installed before libuffd; regions still
 * work; freeing the last uffd_sigbus puts that handler back, and the
 * range is then unregistered (ordinary page faults). */
START_TEST(unrelated_sigbus_reaches_app_handler)
{
	size_t ps = test_page(), len = 8 * ps;
	int fd = make_memfd(ps);
	unsigned char *file = map_fd(fd, 2 * ps, true);
	struct uffd_handle *h;
	struct uffd_sigbus *sb;
	unsigned char *mem = map_anon(len), *img = pattern_buffer(len, 10);
	struct uffd_source *src;

	install_app_handler();
	h = sigbus_handle();
	sb = new_sigbus(h);
	ck_assert(!app_handler_installed());
	ck_assert_int_eq(uffd_source_new_buffer(img, len, &src), 0);
	add_region(sb, region_cfg(mem, len, UFFD_MODE_MISSING, src, 0, false));
	uffd_source_free(src);

	ck_assert(caught(file + ps + 5)); /* past the end of the memfd */
	ck_assert_int_eq(app_hits, 1);
	ck_assert_ptr_eq(app_addr, file + ps + 5);
	ck_assert_int_eq(app_code, BUS_ADRERR);

	ck_assert(!caught(mem + 3 * ps + 1)); /* ours: resolved */
	ck_assert_int_eq(mem[3 * ps + 1], img[3 * ps + 1]);
	ck_assert_int_eq(app_hits, 1);

	if (!sigsetjmp(app_jb, 1))
		raise(SIGBUS);
	ck_assert_int_eq(app_hits, 2);
	ck_assert_int_le(app_code, 0); /* sent, not a fault */

	uffd_sigbus_free(sb);
	ck_assert(app_handler_installed());
	/* unregistered: untouched pages are ordinary zero-fill faults now */
	ck_assert(!caught(mem + 6 * ps));
	ck_assert_int_eq(mem[6 * ps], 0);
	ck_assert_int_eq(uffd_handle_get_range_ops(h, mem, len, NULL, NULL),
			 -ENOENT);
	uffd_handle_free(h);
	munmap(mem, len);
	munmap(file, 2 * ps);
	close(fd);
	free(img);
}
END_TEST

/* One process-wide handler for any number of uffd_sigbus objects; the
 * previous disposition comes back with the last one. */
START_TEST(handler_installed_while_any_exists)
{
	size_t ps = test_page();
	struct sigaction before = current_action(), ours, now;
	struct uffd_handle *h1 = sigbus_handle(), *h2 = sigbus_handle();
	struct uffd_sigbus *a = new_sigbus(h1), *b = new_sigbus(h2);
	unsigned char *m1 = map_anon(ps), *m2 = map_anon(ps);
	struct uffd_source *zero;

	ours = current_action();
	ck_assert(!same_action(&ours, &before));
	ck_assert(ours.sa_flags & SA_NODEFER);
	ck_assert_int_eq(uffd_source_new_zero(&zero), 0);
	add_region(a, region_cfg(m1, ps, UFFD_MODE_MISSING, zero, 0, false));
	add_region(b, region_cfg(m2, ps, UFFD_MODE_MISSING, zero, 0, false));
	uffd_source_free(zero);
	uffd_sigbus_free(a);
	now = current_action();
	ck_assert(same_action(&now, &ours));
	ck_assert_int_eq(m2[7], 0); /* b still serves its region */
	ck_assert_uint_eq(get_stats(b).pages_resolved, 1);
	uffd_sigbus_free(b);
	now = current_action();
	ck_assert(same_action(&now, &before));
	uffd_handle_free(h1);
	uffd_handle_free(h2);
	munmap(m1, ps);
	munmap(m2, ps);
}
END_TEST

/* ---- a source that fails ---- */

/* A file source over an fd opened write-only: every pread() fails with
 * EBADF, deterministically. */
static struct uffd_source *failing_source(size_t len)
{
	char path[] = "/tmp/libuffd-sigbus-XXXXXX";
	int fd = mkstemp(path), wfd;
	struct uffd_source *src = NULL;

	if (fd < 0)
		return NULL;
	wfd = open(path, O_WRONLY | O_CLOEXEC);
	unlink(path);
	close(fd);
	if (wfd < 0 || ftruncate(wfd, (off_t)len) ||
	    uffd_source_new_fd(wfd, 0, len, &src))
		src = NULL;
	if (wfd >= 0)
		close(wfd);
	return src;
}

enum { CHILD_SETUP = 10, CHILD_SURVIVED, CHILD_NOT_CAUGHT, CHILD_BAD_ADDR,
       CHILD_BAD_STATS, CHILD_RETOUCH };

/* The child's side: a region over a failing source; returns the address
 * to touch, or NULL (the child then exits CHILD_SETUP). */
static unsigned char *child_failing_region(struct uffd_sigbus **sbp,
					   size_t len)
{
	struct uffd_handle_config *hc;
	struct uffd_handle *h = NULL;
	struct uffd_region_config *cfg;
	struct uffd_source *src = failing_source(len);
	unsigned char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (!src || mem == MAP_FAILED || uffd_handle_config_new(&hc) ||
	    uffd_handle_config_require_features(hc, UFFD_FEAT_SIGBUS) ||
	    uffd_handle_new(hc, &h) || uffd_sigbus_new(h, sbp) ||
	    uffd_region_config_new(&cfg) ||
	    uffd_region_config_set_range(cfg, mem, len) ||
	    uffd_region_config_set_source(cfg, src, 0) ||
	    uffd_sigbus_add_region(*sbp, cfg))
		return NULL;
	return mem;
}

static int wait_child(pid_t pid)
{
	int status;

	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return status;
}

START_TEST(failing_source_kills_with_sigbus)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct uffd_sigbus *sb = NULL;
		unsigned char *mem;

		alarm(30); /* a hang dies of SIGALRM, visibly */
		mem = child_failing_region(&sb, 4 * test_page());
		if (!mem)
			_exit(CHILD_SETUP);
		(void)*(volatile unsigned char *)(mem + test_page() + 3);
		_exit(CHILD_SURVIVED);
	} else {
		int status = wait_child(pid);

		ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS,
			      "the child should die of SIGBUS: %s %d",
			      WIFSIGNALED(status) ? "signal" : "exit code",
			      WIFSIGNALED(status) ? WTERMSIG(status)
						  : WEXITSTATUS(status));
	}
}
END_TEST

START_TEST(failing_source_reaches_app_handler)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct uffd_sigbus *sb = NULL;
		struct uffd_loop_stats st;
		unsigned char *mem;
		size_t ps = test_page();

		alarm(30);
		install_app_handler();
		mem = child_failing_region(&sb, 4 * ps);
		if (!mem)
			_exit(CHILD_SETUP);
		if (!caught(mem + 2 * ps + 7))
			_exit(CHILD_NOT_CAUGHT);
		if (app_addr != mem + 2 * ps + 7 || app_hits != 1)
			_exit(CHILD_BAD_ADDR);
		if (uffd_sigbus_get_stats(sb, &st, sizeof(st)) ||
		    st.fetch_failures != 1 || st.pages_poisoned != 1)
			_exit(CHILD_BAD_STATS);
		/* poisoned for good: the next access is passed on at once */
		if (!caught(mem + 2 * ps) || app_hits != 2 ||
		    uffd_sigbus_get_stats(sb, &st, sizeof(st)) ||
		    st.fetch_failures != 1)
			_exit(CHILD_RETOUCH);
		_exit(0);
	} else {
		int status = wait_child(pid);

		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "child: %s %d", WIFEXITED(status) ? "exit code"
								: "signal",
			      WIFEXITED(status) ? WEXITSTATUS(status)
						: WTERMSIG(status));
	}
}
END_TEST

/*
 * A file read that fails part way through a readahead window: the source
 * is /proc/self/mem over a buffer with a hole, offset by half a page, so
 * reading region page 4 stops in its middle (EIO after a short read).
 * The pages of the failed window must not stay in the page cache (a later
 * CONTINUE would map a half-written page): page 3 is then restored on its
 * own, page 4 gets a SIGBUS (poisoned), pages from 6 on are fine.
 */
START_TEST(partial_read_leaves_no_garbage)
{
	size_t ps = test_page(), n = 16, len = n * ps;
	struct memfd_pair m = memfd_pair(len);
	struct uffd_handle *h = sigbus_handle();
	struct uffd_sigbus *sb;
	unsigned char *buf = map_anon(len + ps), *want;
	struct uffd_region_config *cfg;
	struct uffd_source *src;
	struct uffd_loop_stats st;
	int fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	for (size_t i = 0; i < len + ps; i++)
		buf[i] = pat(i, 14);
	ck_assert_int_eq(munmap(buf + 5 * ps, ps), 0); /* the hole */
	want = buf + ps / 2; /* region page k is want + k * ps */
	ck_assert_int_eq(uffd_source_new_fd(fd, (uintptr_t)want, len, &src),
			 0);
	close(fd);
	install_app_handler();
	sb = new_sigbus(h);
	cfg = region_cfg(m.mem, len, UFFD_MODE_MISSING | UFFD_MODE_MINOR, src,
			 8, false);
	uffd_source_free(src);
	ck_assert_int_eq(uffd_region_config_set_alias(cfg, m.alias), 0);
	add_region(sb, cfg);

	/* window [2, 10) fails in page 4: page 2 alone is restored */
	ck_assert(!caught(m.mem + 2 * ps));
	ck_assert(!memcmp(m.mem + 2 * ps, want + 2 * ps, ps));
	for (size_t i = 3; i < 10; i++)
		ck_assert_msg(!resident(m.alias + i * ps, ps),
			      "page %zu of the failed window was left in the "
			      "page cache", i);
	ck_assert(!caught(m.mem + 3 * ps));
	ck_assert(!memcmp(m.mem + 3 * ps, want + 3 * ps, ps));
	ck_assert(!resident(m.alias + 4 * ps, ps));

	/* page 4 cannot be had: SIGBUS, for good */
	ck_assert(caught(m.mem + 4 * ps + 1));
	ck_assert_ptr_eq(app_addr, m.mem + 4 * ps + 1);
	ck_assert(caught(m.mem + 4 * ps + 2));
	st = get_stats(sb);
	ck_assert_uint_eq(st.pages_poisoned, 1);
	ck_assert_uint_ge(st.fetch_failures, 1);

	ck_assert(!caught(m.mem + 6 * ps));
	ck_assert(!memcmp(m.mem + 6 * ps, want + 6 * ps, 10 * ps));
	uffd_sigbus_free(sb);
	uffd_handle_free(h);
	memfd_pair_free(&m);
	munmap(buf, 5 * ps);
	munmap(buf + 6 * ps, len - 5 * ps);
}
END_TEST

/* ---- refusals ---- */

START_TEST(errors_handle_without_sigbus)
{
	struct uffd_handle *h = open_handle();
	struct uffd_sigbus *sb = NULL;

	ck_assert_uffd_err(uffd_sigbus_new(h, &sb), EINVAL, "UFFD_FEAT_SIGBUS");
	ck_assert_ptr_null(sb);
	ck_assert_int_eq(uffd_sigbus_new(NULL, &sb), -EINVAL);
	ck_assert_int_eq(uffd_sigbus_new(h, NULL), -EINVAL);
	uffd_sigbus_free(NULL);
	uffd_handle_free(h);
}
END_TEST

static int fetch_nothing(void *arg, struct uffd_fetch *fetch)
{
	(void)arg;
	(void)fetch;
	return -EIO;
}

static int callback_nothing(void *arg, struct uffd_region *region,
			    const struct uffd_event *fault)
{
	(void)arg;
	(void)region;
	(void)fault;
	return 0;
}

START_TEST(errors_region_config)
{
	size_t ps = test_page(), len = 4 * ps;
	struct uffd_handle *h = sigbus_handle();
	struct uffd_sigbus *sb = new_sigbus(h);
	unsigned char *mem = map_anon(len), *img = pattern_buffer(len, 11);
	struct memfd_pair m = memfd_pair(len);
	static const struct uffd_source_ops ops = { .fetch = fetch_nothing };
	const uint64_t order[] = { 1, 0 };
	struct uffd_source *buf, *custom, *small;
	struct uffd_region_config *cfg;
	struct uffd_loop_stats st;

	ck_assert_int_eq(uffd_source_new_buffer(img, len, &buf), 0);
	ck_assert_int_eq(uffd_source_new_buffer(img, ps, &small), 0);
	ck_assert_int_eq(uffd_source_new_custom(&ops, NULL, &custom), 0);

	cfg = region_cfg(mem, len, UFFD_MODE_MISSING | UFFD_MODE_WP, buf,
			 (size_t)-1, true);
	ck_assert_uffd_err(uffd_sigbus_add_region(sb, cfg), ENOTSUP,
			   "write-protect");
	uffd_region_config_free(cfg);

	cfg = region_cfg(mem, len, UFFD_MODE_MISSING, custom, (size_t)-1, true);
	ck_assert_uffd_err(uffd_sigbus_add_region(sb, cfg), ENOTSUP, "custom");
	uffd_region_config_free(cfg);

	cfg = region_cfg(mem, len, UFFD_MODE_MISSING, NULL, (size_t)-1, true);
	uffd_region_config_set_fault_callback(cfg, callback_nothing, NULL);
	ck_assert_uffd_err(uffd_sigbus_add_region(sb, cfg), ENOTSUP,
			   "callback");
	uffd_region_config_free(cfg);

	cfg = region_cfg(mem, len, UFFD_MODE_MISSING, buf, (size_t)-1, true);
	uffd_region_config_set_prefetch(cfg, true);
	ck_assert_uffd_err(uffd_sigbus_add_region(sb, cfg), ENOTSUP,
			   "prefetch");
	uffd_region_config_free(cfg);

	cfg = region_cfg(mem, len, UFFD_MODE_MISSING, buf, (size_t)-1, true);
	uffd_region_config_set_prefetch_order(cfg, order, 2);
	ck_assert_uffd_err(uffd_sigbus_add_region(sb, cfg), ENOTSUP,
			   "prefetch");
	uffd_region_config_free(cfg);

	cfg = region_cfg(mem, len, UFFD_MODE_MISSING, buf, (size_t)-1, true);
	uffd_region_config_set_record(cfg, true);
	ck_assert_uffd_err(uffd_sigbus_add_region(sb, cfg), ENOTSUP,
			   "recording");
	uffd_region_config_free(cfg);

	cfg = region_cfg(mem, len, UFFD_MODE_MISSING, buf, (size_t)-1, true);
	uffd_region_config_set_remote(cfg, UFFD_BACKEND_ANON_PRIVATE, ps);
	ck_assert_uffd_err(uffd_sigbus_add_region(sb, cfg), ENOTSUP, "remote");
	uffd_region_config_free(cfg);

	cfg = region_cfg(m.mem, len, UFFD_MODE_MISSING | UFFD_MODE_MINOR, buf,
			 (size_t)-1, true);
	ck_assert_uffd_err(uffd_sigbus_add_region(sb, cfg), EINVAL, "alias");
	uffd_region_config_free(cfg);

	cfg = region_cfg(mem, len, UFFD_MODE_MISSING, NULL, (size_t)-1, true);
	ck_assert_uffd_err(uffd_sigbus_add_region(sb, cfg), EINVAL, "source");
	uffd_region_config_free(cfg);

	cfg = region_cfg(mem, len, UFFD_MODE_MISSING, small, (size_t)-1, true);
	ck_assert_uffd_err(uffd_sigbus_add_region(sb, cfg), EINVAL, "holds");
	uffd_region_config_free(cfg);

	ck_assert_int_eq(uffd_region_config_new(&cfg), 0);
	ck_assert_int_eq(uffd_region_config_set_source(cfg, buf, 0), 0);
	ck_assert_uffd_err(uffd_sigbus_add_region(sb, cfg), EINVAL, "range");
	ck_assert_int_eq(uffd_region_config_set_range(cfg, mem + 1, ps), 0);
	ck_assert_uffd_err(uffd_sigbus_add_region(sb, cfg), EINVAL, "aligned");
	uffd_region_config_free(cfg);
	ck_assert_int_eq(uffd_sigbus_add_region(NULL, NULL), -EINVAL);

	/* nothing of the refused ones was registered */
	ck_assert_int_eq(uffd_handle_get_range_ops(h, mem, len, NULL, NULL),
			 -ENOENT);

	/* a good one, then the same range again */
	add_region(sb, region_cfg(mem, len, UFFD_MODE_MISSING, buf, 0, false));
	cfg = region_cfg(mem + ps, ps, UFFD_MODE_MISSING, buf, 0, false);
	ck_assert_uffd_err(uffd_sigbus_add_region(sb, cfg), EINVAL,
			   "overlaps");
	uffd_region_config_free(cfg);
	ck_assert_int_eq(mem[ps], img[ps]);

	ck_assert_uffd_err(uffd_sigbus_get_stats(sb, &st, sizeof(st) + 8),
			   EINVAL, "size");
	ck_assert_int_eq(uffd_sigbus_get_stats(sb, NULL, sizeof(st)), -EINVAL);
	ck_assert_int_eq(uffd_sigbus_get_stats(NULL, &st, sizeof(st)), -EINVAL);
	memset(&st, 0xff, sizeof(st));
	/* a caller built against an older, shorter struct */
	ck_assert_int_eq(uffd_sigbus_get_stats(sb, &st, sizeof(uint64_t)), 0);
	ck_assert_uint_eq(st.faults_missing, 1);
	ck_assert_uint_eq(st.faults_minor, UINT64_MAX);

	uffd_source_free(buf);
	uffd_source_free(small);
	uffd_source_free(custom);
	uffd_sigbus_free(sb);
	uffd_handle_free(h);
	munmap(mem, len);
	memfd_pair_free(&m);
	free(img);
}
END_TEST

/* ---- hugetlb ---- */

static unsigned char *map_huge(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);

	ck_assert_msg(p != MAP_FAILED, "mmap(MAP_HUGETLB): %s",
		      strerror(errno));
	return p;
}

/* hugetlb has no ZEROPAGE: zeros are COPYed from a zeroed huge page */
START_TEST(hugetlb_zero)
{
	size_t len = 2 * HUGE_SZ;
	struct uffd_handle *h;
	struct uffd_sigbus *sb;
	unsigned char *mem, *zeros;
	struct uffd_source *src;
	struct uffd_loop_stats st;

	REQUIRE_HUGEPAGES();
	h = sigbus_handle();
	sb = new_sigbus(h);
	mem = map_huge(len);
	zeros = calloc(1, len);
	ck_assert_int_eq(uffd_source_new_zero(&src), 0);
	add_region(sb, region_cfg(mem, len, UFFD_MODE_MISSING, src,
				  (size_t)-1, true));
	uffd_source_free(src);
	mem[HUGE_SZ + 12345] = 'z';
	ck_assert_int_eq(mem[HUGE_SZ + 12345], 'z');
	mem[HUGE_SZ + 12345] = 0;
	ck_assert(!memcmp(mem, zeros, len));
	st = get_stats(sb);
	ck_assert_uint_eq(st.pages_resolved, 2);
	ck_assert_uint_eq(st.bytes_resolved, len);
	ck_assert_uint_eq(st.faults_missing, 2);
	uffd_sigbus_free(sb);
	uffd_handle_free(h);
	munmap(mem, len);
	free(zeros);
}
END_TEST

START_TEST(hugetlb_copy)
{
	size_t len = 2 * HUGE_SZ;
	struct uffd_handle *h;
	struct uffd_sigbus *sb;
	unsigned char *mem, *img;
	struct uffd_source *src;

	REQUIRE_HUGEPAGES();
	h = sigbus_handle();
	sb = new_sigbus(h);
	mem = map_huge(len);
	img = pattern_buffer(len, 12);
	ck_assert_int_eq(uffd_source_new_buffer(img, len, &src), 0);
	add_region(sb, region_cfg(mem, len, UFFD_MODE_MISSING, src,
				  (size_t)-1, true));
	uffd_source_free(src);
	ck_assert_int_eq(mem[len - 1], img[len - 1]);
	ck_assert(!memcmp(mem, img, len));
	ck_assert_uint_eq(get_stats(sb).pages_resolved, 2);
	uffd_sigbus_free(sb);
	uffd_handle_free(h);
	munmap(mem, len);
	free(img);
}
END_TEST

/* A hugetlb memfd with an alias: the huge page in the page cache is only
 * mapped; the missing one is filled through the alias. */
START_TEST(hugetlb_minor_alias)
{
	size_t len = 2 * HUGE_SZ;
	struct uffd_handle *h;
	struct uffd_sigbus *sb;
	unsigned char *mem, *alias, *img;
	struct uffd_region_config *cfg;
	struct uffd_source *src;
	struct uffd_loop_stats st;
	int fd;

	REQUIRE_HUGEPAGES();
	fd = memfd_create("libuffd-sigbus-huge", MFD_CLOEXEC | MFD_HUGETLB);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)len), 0);
	mem = map_fd(fd, len, true);
	alias = map_fd(fd, len, true);
	memset(alias, 'c', HUGE_SZ); /* page 0: in the page cache */
	h = sigbus_handle();
	sb = new_sigbus(h);
	img = pattern_buffer(len, 13);
	ck_assert_int_eq(uffd_source_new_buffer(img, len, &src), 0);
	cfg = region_cfg(mem, len, UFFD_MODE_MISSING | UFFD_MODE_MINOR, src,
			 (size_t)-1, true);
	uffd_source_free(src);
	ck_assert_int_eq(uffd_region_config_set_alias(cfg, alias), 0);
	add_region(sb, cfg);
	ck_assert_int_eq(mem[HUGE_SZ - 1], 'c');
	ck_assert(!memcmp(mem + HUGE_SZ, img + HUGE_SZ, HUGE_SZ));
	st = get_stats(sb);
	ck_assert_uint_eq(st.faults_minor, 1);
	ck_assert_uint_eq(st.faults_missing, 1);
	uffd_sigbus_free(sb);
	uffd_handle_free(h);
	munmap(mem, len);
	munmap(alias, len);
	close(fd);
	free(img);
}
END_TEST

static Suite *sigbus_suite(void)
{
	Suite *s = suite_create("sigbus");
	TCase *tc;

	tc = tcase_create("restore");
	tcase_add_test(tc, buffer_restore_threads);
	tcase_add_test(tc, file_restore_threads);
	tcase_add_test(tc, zero_source);
	tcase_add_test(tc, minor_alias);
	tcase_add_test(tc, minor_alias_readahead);
	tcase_add_test(tc, minor_only);
	tcase_add_test(tc, readahead_window);
	tcase_add_test(tc, readahead_adaptive);
	tcase_add_test(tc, chained_buffer_source);
	suite_add_tcase(s, tc);

	tc = tcase_create("signals");
	tcase_add_test(tc, unrelated_sigbus_reaches_app_handler);
	tcase_add_test(tc, handler_installed_while_any_exists);
	tcase_add_test(tc, failing_source_kills_with_sigbus);
	tcase_add_test(tc, failing_source_reaches_app_handler);
	tcase_add_test(tc, partial_read_leaves_no_garbage);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_test(tc, errors_handle_without_sigbus);
	tcase_add_test(tc, errors_region_config);
	suite_add_tcase(s, tc);

	tc = tcase_create("hugetlb");
	hugetlb_fixture_add(tc, 4);
	tcase_add_test(tc, hugetlb_zero);
	tcase_add_test(tc, hugetlb_copy);
	tcase_add_test(tc, hugetlb_minor_alias);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(sigbus_suite());
}
