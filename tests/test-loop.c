// SPDX-License-Identifier: MIT
/*
 * The fault-handling engine end to end, against the real kernel: sources
 * (buffer, file, zero, move, custom synchronous and asynchronous), regions
 * on each kind of memory (anonymous, shmem, memfd with MINOR and an alias,
 * WP, fault callbacks, hugetlb), lazy restore of a file image, readahead,
 * prefetch, working-set record and replay, layout events while the loop
 * serves (REMOVE, UNMAP, REMAP, FORK, and races of REMOVE with faults),
 * stop and failure policies, statistics, embedding, and argument checking.
 * The "review" and "move" cases hold the regressions found by these tests.
 *
 * The custom test source (struct tsrc) can complete synchronously or from
 * a "network" thread, fail on a page, hold a fetch forever, or block a
 * fetch at a gate until the test opens it, which is how the tests hold a
 * worker in a known state (a fault queued behind it, a stop under way).
 *
 * Every test that runs the loop runs once per driver (a Check loop test:
 * _i selects the driver); a driver that was not built is skipped with a
 * "SKIP:" line. Nothing here sleeps to synchronise: threads that may hang
 * in a fault are joined with a bound, children are reaped through a pidfd
 * with a bound, and counters without a notification are re-read each
 * millisecond up to TEST_WAIT_MS.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "libuffd.h"

/* ---- drivers ------------------------------------------------------------ */

static const struct {
	enum uffd_loop_driver driver;
	const char *name;
} drivers[] = {
	{ UFFD_DRIVER_POLL, "poll" },
	{ UFFD_DRIVER_URING, "io_uring" },
};
#define NDRIVERS 2

/* A loop configuration for driver index drv with the given worker count,
 * or NULL (after a SKIP line) when that driver was not built. */
static struct uffd_loop_config *loop_config(int drv, unsigned threads,
					    const char *test)
{
	struct uffd_loop_config *cfg = NULL;
	int ret;

	ck_assert_int_eq(uffd_loop_config_new(&cfg), 0);
	ret = uffd_loop_config_set_driver(cfg, drivers[drv].driver);
	if (ret == -ENOTSUP) {
		printf("SKIP: %s [%s]: io_uring driver not built\n", test,
		       drivers[drv].name);
		uffd_loop_config_free(cfg);
		return NULL;
	}
	ck_assert_msg(ret == 0, "set_driver(%s): %s", drivers[drv].name,
		      uffd_last_error());
	ret = uffd_loop_config_set_threads(cfg, threads);
	ck_assert_msg(ret == 0, "set_threads(%u): %s", threads,
		      uffd_last_error());
	return cfg;
}

/* Gets a configuration or returns from the test (driver not built). */
#define LOOP_CONFIG(cfg, drv, threads)                                        \
	do {                                                                   \
		(cfg) = loop_config((drv), (threads), __func__);               \
		if (!(cfg))                                                    \
			return;                                                \
	} while (0)

/* Whether driver drv is built (prints the SKIP line when it is not). */
static bool driver_built(int drv, const char *test)
{
	struct uffd_loop_config *cfg = loop_config(drv, 1, test);

	uffd_loop_config_free(cfg);
	return cfg != NULL;
}

/* A loop over handle h; frees cfg. */
static struct uffd_loop *new_loop(struct uffd_handle *h,
				  struct uffd_loop_config *cfg)
{
	struct uffd_loop *loop = NULL;
	int ret = uffd_loop_new(h, cfg, &loop);

	uffd_loop_config_free(cfg);
	ck_assert_msg(ret == 0, "uffd_loop_new: %s", uffd_last_error());
	ck_assert_ptr_nonnull(loop);
	return loop;
}

static void start_loop(struct uffd_loop *loop)
{
	int ret = uffd_loop_start(loop);

	ck_assert_msg(ret == 0, "uffd_loop_start: %s", uffd_last_error());
}

/* ---- regions and sources ------------------------------------------------ */

static struct uffd_region_config *region_cfg(void *addr, size_t len,
					     struct uffd_source *src,
					     uint64_t off)
{
	struct uffd_region_config *cfg = NULL;

	ck_assert_int_eq(uffd_region_config_new(&cfg), 0);
	ck_assert_int_eq(uffd_region_config_set_range(cfg, addr, len), 0);
	if (src)
		ck_assert_int_eq(uffd_region_config_set_source(cfg, src, off),
				 0);
	return cfg;
}

/* Adds the region (asserting success) and frees cfg. */
static struct uffd_region *add_region(struct uffd_loop *loop,
				      struct uffd_region_config *cfg)
{
	struct uffd_region *r = NULL;
	int ret = uffd_loop_add_region(loop, cfg, &r);

	uffd_region_config_free(cfg);
	ck_assert_msg(ret == 0, "uffd_loop_add_region: %s", uffd_last_error());
	ck_assert_ptr_nonnull(r);
	return r;
}

static struct uffd_source *buffer_source(const void *buf, size_t len)
{
	struct uffd_source *s = NULL;

	ck_assert_msg(uffd_source_new_buffer(buf, len, &s) == 0,
		      "buffer source: %s", uffd_last_error());
	return s;
}

static struct uffd_source *zero_source(void)
{
	struct uffd_source *s = NULL;

	ck_assert_msg(uffd_source_new_zero(&s) == 0, "zero source: %s",
		      uffd_last_error());
	return s;
}

static struct uffd_source *fd_source(int fd, uint64_t off, uint64_t len)
{
	struct uffd_source *s = NULL;

	ck_assert_msg(uffd_source_new_fd(fd, off, len, &s) == 0,
		      "fd source: %s", uffd_last_error());
	return s;
}

/* ---- data ------------------------------------------------------------- */

/* A pattern unique to each 8-byte word and seed (len a multiple of 8). */
static void fill_pattern(unsigned char *buf, size_t len, uint64_t seed)
{
	for (size_t i = 0; i + 8 <= len; i += 8) {
		uint64_t x = (i / 8 + 1) * UINT64_C(0x9e3779b97f4a7c15) ^
			     (seed * UINT64_C(0xd1b54a32d192ed03));

		x ^= x >> 29;
		x *= UINT64_C(0xbf58476d1ce4e5b9);
		x ^= x >> 32;
		memcpy(buf + i, &x, 8);
	}
}

static unsigned char *pattern(size_t len, uint64_t seed)
{
	unsigned char *p = map_anon(len);

	fill_pattern(p, len, seed);
	return p;
}

/* Asserts got == want byte for byte, naming the first difference. Reading
 * got faults its missing pages in (the loop must be serving). */
static void check_mem(const unsigned char *got, const unsigned char *want,
		      size_t len, size_t ps, const char *what)
{
	if (!memcmp(got, want, len))
		return;
	for (size_t i = 0; i < len; i++)
		if (got[i] != want[i])
			ck_abort_msg("%s: byte %zu (page %zu) is %#x, expected "
				     "%#x", what, i, i / ps, got[i], want[i]);
}

static bool all_zero(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* Reads one byte of each page in order, on the calling thread. */
static void touch_pages(const unsigned char *p, size_t len, size_t ps)
{
	for (size_t off = 0; off < len; off += ps)
		(void)*(const volatile unsigned char *)(p + off);
}

/* A temporary file of len bytes holding pattern(seed); *want (munmap it)
 * gets the same bytes. */
static int make_image(size_t len, uint64_t seed, unsigned char **want)
{
	char path[] = "/tmp/libuffd-test-loop-XXXXXX";
	int fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	size_t done = 0;

	if (fd < 0) {
		fd = mkostemp(path, O_CLOEXEC);
		ck_assert_msg(fd >= 0, "mkostemp: %s", strerror(errno));
		unlink(path);
	}
	*want = pattern(len, seed);
	while (done < len) {
		ssize_t n = pwrite(fd, *want + done, len - done, (off_t)done);

		ck_assert_msg(n > 0, "pwrite: %s", strerror(errno));
		done += (size_t)n;
	}
	return fd;
}

/* ---- waiting ------------------------------------------------------------ */

/* Re-evaluates cond each millisecond until it holds, at most TEST_WAIT_MS
 * (for counters the library updates without a notification). */
#define WAIT_UNTIL(cond, what)                                                \
	do {                                                                   \
		for (int w_ = 0; !(cond); w_++) {                              \
			ck_assert_msg(w_ < TEST_WAIT_MS,                       \
				      "timed out after %d ms waiting for %s",  \
				      TEST_WAIT_MS, (what));                   \
			poll(NULL, 0, 1);                                      \
		}                                                              \
	} while (0)

static bool timed_join(pthread_t t, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return pthread_timedjoin_np(t, NULL, &ts) == 0;
}

#define JOIN(t, what)                                                         \
	ck_assert_msg(timed_join((t), TEST_WAIT_MS),                           \
		      "%s did not finish within %d ms (blocked in a fault?)", \
		      (what), TEST_WAIT_MS)

/* Reaps child pid within TEST_WAIT_MS (killing it if it hangs) and
 * returns its wait status. */
static int reap_child(pid_t pid)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0), status = 0, n;
	struct pollfd p = { .fd = pfd, .events = POLLIN };

	ck_assert_msg(pfd >= 0, "pidfd_open: %s", strerror(errno));
	n = poll(&p, 1, TEST_WAIT_MS);
	close(pfd);
	if (n != 1) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		ck_abort_msg("child %d did not exit within %d ms (hung)", pid,
			     TEST_WAIT_MS);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return status;
}

/* The scheduler state letter of one of our threads ('S': sleeping). */
static char thread_state(pid_t tid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return '?';
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

/* How many of our fds are userfaultfds (workers open other fds, such as
 * io_uring rings, when they start: only these say whether a child's uffd
 * was closed). */
static int count_uffd_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d))) {
		char path[300], target[128];
		ssize_t len;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		len = readlink(path, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = 0;
		n += strcmp(target, "anon_inode:[userfaultfd]") == 0;
	}
	closedir(d);
	return n;
}

static struct uffd_loop_stats get_stats(struct uffd_loop *loop)
{
	struct uffd_loop_stats s;

	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(uffd_loop_get_stats(loop, &s, sizeof(s)), 0);
	return s;
}

static uint64_t latency_total(const struct uffd_loop_stats *s)
{
	uint64_t n = 0;

	for (int i = 0; i < UFFD_LATENCY_BUCKETS; i++)
		n += s->latency_us_log2[i];
	return n;
}

#define STAT(loop, field) (get_stats(loop).field)

/* The region's resolved count and the loop's counters are updated just
 * after the resolving ioctl has woken the faulting thread: wait for them. */
#define WAIT_RESOLVED(r, n)                                                   \
	WAIT_UNTIL(uffd_region_get_resolved_pages(r) == (n),                  \
		   "the region's resolved count to reach " #n)

/* ---- threads that touch memory ------------------------------------------- */

/* Reads every page of a list (or all npages in order), passes times, and
 * compares each page with expect; writes efd once done. */
struct walker {
	pthread_t thread;
	const unsigned char *base;
	const unsigned char *expect; /* NULL: no check */
	size_t ps;
	const size_t *order;         /* NULL: 0..n-1 */
	size_t n;
	unsigned passes;
	int efd;
	size_t bad;
	size_t first_bad;
	atomic_size_t at;            /* the page being read now */
};

static void *walker_main(void *arg)
{
	struct walker *w = arg;

	for (unsigned pass = 0; pass < w->passes; pass++) {
		for (size_t k = 0; k < w->n; k++) {
			size_t page = w->order ? w->order[k] : k;
			const unsigned char *p = w->base + page * w->ps;

			atomic_store(&w->at, page);
			(void)*(const volatile unsigned char *)p;
			if (w->expect &&
			    memcmp(p, w->expect + page * w->ps, w->ps) &&
			    !w->bad++)
				w->first_bad = page;
		}
	}
	if (w->efd >= 0)
		eventfd_write(w->efd, 1);
	return NULL;
}

static void walker_start_efd(struct walker *w, const void *base,
			     const void *expect, size_t ps,
			     const size_t *order, size_t n, unsigned passes,
			     int efd)
{
	memset(w, 0, sizeof(*w));
	w->base = base;
	w->expect = expect;
	w->ps = ps;
	w->order = order;
	w->n = n;
	w->passes = passes;
	w->efd = efd;
	ck_assert_int_eq(pthread_create(&w->thread, NULL, walker_main, w), 0);
}

static void walker_start(struct walker *w, const void *base,
			 const void *expect, size_t ps, const size_t *order,
			 size_t n, unsigned passes)
{
	walker_start_efd(w, base, expect, ps, order, n, passes, -1);
}

static void walker_join(struct walker *w, const char *what)
{
	ck_assert_msg(timed_join(w->thread, TEST_WAIT_MS),
		      "%s did not finish within %d ms: blocked reading page "
		      "%zu", what, TEST_WAIT_MS, atomic_load(&w->at));
	ck_assert_msg(w->bad == 0,
		      "%s: %zu pages read wrong data, the first page %zu", what,
		      w->bad, w->first_bad);
}

/* A thread that reads one byte and survives SIGBUS (siglongjmp out of the
 * handler), saying which it got. */
static _Thread_local sigjmp_buf *volatile bus_jmp;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)si;
	(void)uc;
	if (bus_jmp)
		siglongjmp(*bus_jmp, 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

static struct sigaction old_sigbus;

static void sigbus_catch(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGBUS, &sa, &old_sigbus), 0);
}

static void sigbus_restore(void)
{
	sigaction(SIGBUS, &old_sigbus, NULL);
}

struct bus_toucher {
	pthread_t thread;
	const volatile unsigned char *addr;
	bool sigbus;
	unsigned char seen;
};

static void *bus_touch_main(void *arg)
{
	struct bus_toucher *t = arg;
	sigjmp_buf jb;

	if (sigsetjmp(jb, 1)) {
		bus_jmp = NULL;
		t->sigbus = true;
		return NULL;
	}
	bus_jmp = &jb;
	t->seen = t->addr[0];
	bus_jmp = NULL;
	return NULL;
}

static void bus_toucher_start(struct bus_toucher *t, const void *addr)
{
	memset(t, 0, sizeof(*t));
	t->addr = addr;
	ck_assert_int_eq(pthread_create(&t->thread, NULL, bus_touch_main, t),
			 0);
}

/* Calls uffd_loop_stop() on a thread of its own. */
struct stopper {
	pthread_t thread;
	struct uffd_loop *loop;
	atomic_int tid;
	int ret;
};

static void *stopper_main(void *arg)
{
	struct stopper *s = arg;

	atomic_store(&s->tid, (int)gettid());
	s->ret = uffd_loop_stop(s->loop);
	return NULL;
}

/* Starts it and waits (bounded) until it sleeps: in uffd_loop_stop() the
 * only place it can sleep is joining the workers, after it has told them
 * to stop. */
static void stopper_start_and_wait(struct stopper *s, struct uffd_loop *loop)
{
	memset(s, 0, sizeof(*s));
	s->loop = loop;
	s->ret = 1;
	ck_assert_int_eq(pthread_create(&s->thread, NULL, stopper_main, s), 0);
	WAIT_UNTIL(atomic_load(&s->tid) != 0 &&
			   thread_state(atomic_load(&s->tid)) == 'S',
		   "uffd_loop_stop() to wait for the workers");
}

/* ---- a custom source ------------------------------------------------------ */

enum fail_how {
	FAIL_RETURN,   /* fetch() returns the error */
	FAIL_COMPLETE, /* fetch() completes with the error (sync or async) */
};

struct fetch_rec {
	uint64_t off;
	size_t len;
	bool urgent;
};

struct qent {
	struct uffd_fetch *f;
	int result;
};

/*
 * Serves data[] (size bytes; beyond reads as zeros). Counts fetches per
 * page and logs each fetch. Optionally: completes on a "network" thread
 * (async), fails every fetch that covers fail_page, blocks a fetch that
 * covers a gate page until tsrc_open_gate() (after filling the first
 * gate_prefill bytes: a transfer under way), or keeps the fetch of
 * hold_page forever (never completes it).
 */
#define TSRC_GATES 4
struct tsrc {
	const unsigned char *data;
	size_t size, ps, npages;
	bool async;
	long fail_page;
	int fail_err;
	enum fail_how fail_how;
	long gate_page[TSRC_GATES];
	bool gate_open[TSRC_GATES], gate_entered[TSRC_GATES];
	size_t gate_prefill;
	bool gate_d_state;             /* wait uninterruptibly (see below) */
	int gate_pipe[TSRC_GATES][2];
	long hold_page;
	struct uffd_fetch *held;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	atomic_uint *count;
	struct fetch_rec *log;
	size_t nlog, caplog;
	/* network thread */
	pthread_t net;
	bool net_running, net_stop;
	struct qent *q;
	size_t qhead, qtail, qcap;
	atomic_int releases;
};

static void tsrc_init(struct tsrc *s, const unsigned char *data, size_t size,
		      size_t ps)
{
	memset(s, 0, sizeof(*s));
	s->data = data;
	s->size = size;
	s->ps = ps;
	s->npages = size / ps;
	s->fail_page = s->hold_page = -1;
	for (int g = 0; g < TSRC_GATES; g++) {
		s->gate_page[g] = -1;
		s->gate_pipe[g][0] = s->gate_pipe[g][1] = -1;
	}
	s->fail_err = -EIO;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->count = calloc(s->npages + 1, sizeof(*s->count));
	s->caplog = 4096;
	s->log = calloc(s->caplog, sizeof(*s->log));
	s->qcap = 1024;
	s->q = calloc(s->qcap, sizeof(*s->q));
}

static void tsrc_fill(struct tsrc *s, uint64_t off, unsigned char *buf,
		      size_t len)
{
	size_t avail = off >= s->size ? 0
				      : (s->size - off < len ? s->size - off
							     : len);

	memcpy(buf, s->data + off, avail);
	memset(buf + avail, 0, len - avail);
}

/*
 * Waiting at a gate with the fetching thread in an uninterruptible
 * (killable) sleep: the parent of a CLONE_VFORK child sleeps so until the
 * child exits, and the child waits for a byte on the gate's pipe. Unlike
 * a futex wait, such a sleep does not run the thread's pending task work
 * (io_uring completions of the polls it armed), which therefore pile up
 * into one.
 */
static char gate_byte;

__attribute__((no_sanitize_address)) static int gate_child(void *arg)
{
	int fd = (int)(intptr_t)arg;

	while (read(fd, &gate_byte, 1) < 0 && errno == EINTR)
		;
	return 0;
}

static void wait_uninterruptible(int fd)
{
	size_t sz = 256 * 1024;
	char *stack = mmap(NULL, sz, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	pid_t pid;

	if (stack == MAP_FAILED)
		return;
	pid = clone(gate_child, stack + sz, CLONE_VM | CLONE_VFORK,
		    (void *)(intptr_t)fd);
	if (pid > 0)
		waitpid(pid, NULL, __WCLONE);
	munmap(stack, sz);
}

static bool covers(uint64_t off, size_t len, size_t ps, long page)
{
	return page >= 0 && off / ps <= (uint64_t)page &&
	       (uint64_t)page < (off + len) / ps;
}

static int tsrc_fetch(void *arg, struct uffd_fetch *f)
{
	struct tsrc *s = arg;
	uint64_t off = uffd_fetch_get_offset(f);
	size_t len = uffd_fetch_get_length(f);
	unsigned char *buf = uffd_fetch_get_buffer(f);
	int result = 0;

	pthread_mutex_lock(&s->lock);
	if (s->nlog < s->caplog)
		s->log[s->nlog++] = (struct fetch_rec){
			off, len, uffd_fetch_is_urgent(f)
		};
	for (uint64_t p = off / s->ps; p < (off + len) / s->ps; p++)
		atomic_fetch_add(&s->count[p < s->npages ? p : s->npages], 1);
	if (covers(off, len, s->ps, s->hold_page)) {
		s->held = f;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	for (int g = 0; g < TSRC_GATES; g++) {
		struct timespec ts;

		if (!covers(off, len, s->ps, s->gate_page[g]) || s->gate_open[g])
			continue;
		if (s->gate_prefill)
			tsrc_fill(s, off, buf,
				  s->gate_prefill < len ? s->gate_prefill : len);
		s->gate_entered[g] = true;
		pthread_cond_broadcast(&s->cond);
		if (s->gate_d_state) {
			pthread_mutex_unlock(&s->lock);
			wait_uninterruptible(s->gate_pipe[g][0]);
			pthread_mutex_lock(&s->lock);
			continue;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += TEST_WAIT_MS / 1000;
		while (!s->gate_open[g] &&
		       pthread_cond_timedwait(&s->cond, &s->lock, &ts) == 0)
			;
	}
	if (covers(off, len, s->ps, s->fail_page)) {
		result = s->fail_err;
		memset(buf, 0xee, len); /* what a failed transfer left */
		if (s->fail_how == FAIL_RETURN) {
			pthread_mutex_unlock(&s->lock);
			return result;
		}
	}
	if (s->async) {
		/* the network thread fills and completes it */
		s->q[s->qtail++ % s->qcap] = (struct qent){ f, result };
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	pthread_mutex_unlock(&s->lock);
	if (!result)
		tsrc_fill(s, off, buf, len);
	uffd_fetch_complete(f, result);
	return 0;
}

static void tsrc_release(void *arg)
{
	struct tsrc *s = arg;

	atomic_fetch_add(&s->releases, 1);
}

static void *tsrc_net_main(void *arg)
{
	struct tsrc *s = arg;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		struct qent e;

		while (s->qhead == s->qtail && !s->net_stop)
			pthread_cond_wait(&s->cond, &s->lock);
		if (s->qhead == s->qtail)
			break;
		e = s->q[s->qhead++ % s->qcap];
		pthread_mutex_unlock(&s->lock);
		if (!e.result)
			tsrc_fill(s, uffd_fetch_get_offset(e.f),
				  uffd_fetch_get_buffer(e.f),
				  uffd_fetch_get_length(e.f));
		uffd_fetch_complete(e.f, e.result);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* Makes the source asynchronous: a network thread completes fetches. */
static int tsrc_net_start(struct tsrc *s)
{
	s->async = true;
	s->net_running = !pthread_create(&s->net, NULL, tsrc_net_main, s);
	return s->net_running ? 0 : -1;
}

/* Completes what is queued, then ends the network thread. Call while the
 * loop still exists. */
static void tsrc_net_stop(struct tsrc *s)
{
	if (!s->net_running)
		return;
	pthread_mutex_lock(&s->lock);
	s->net_stop = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->net, NULL);
	s->net_running = false;
}

/* Gates wait uninterruptibly from now on. */
static void tsrc_gates_d_state(struct tsrc *s)
{
	for (int g = 0; g < TSRC_GATES; g++)
		ck_assert_int_eq(pipe2(s->gate_pipe[g], O_CLOEXEC), 0);
	s->gate_d_state = true;
}

static void tsrc_open_gate_n(struct tsrc *s, int g)
{
	if (s->gate_d_state)
		ck_assert_int_eq(write(s->gate_pipe[g][1], "", 1), 1);
	pthread_mutex_lock(&s->lock);
	s->gate_open[g] = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void tsrc_open_gate(struct tsrc *s)
{
	tsrc_open_gate_n(s, 0);
}

/* Waits (bounded) until gate g's fetch has started (g < 0: until a fetch
 * is held). */
static bool tsrc_wait_n(struct tsrc *s, int g)
{
	struct timespec ts;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += TEST_WAIT_MS / 1000;
	pthread_mutex_lock(&s->lock);
	while (!(g < 0 ? s->held != NULL : s->gate_entered[g]) &&
	       pthread_cond_timedwait(&s->cond, &s->lock, &ts) == 0)
		;
	ok = g < 0 ? s->held != NULL : s->gate_entered[g];
	pthread_mutex_unlock(&s->lock);
	return ok;
}

static bool tsrc_wait(struct tsrc *s, bool held)
{
	return tsrc_wait_n(s, held ? -1 : 0);
}

static void tsrc_fini(struct tsrc *s)
{
	tsrc_net_stop(s);
	for (int g = 0; g < TSRC_GATES; g++)
		for (int e = 0; e < 2; e++)
			if (s->gate_pipe[g][e] >= 0)
				close(s->gate_pipe[g][e]);
	free(s->count);
	free(s->log);
	free(s->q);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
}

static const struct uffd_source_ops tsrc_ops = {
	.fetch = tsrc_fetch,
	.release = tsrc_release,
};

static int tsrc_source_raw(struct tsrc *s, struct uffd_source **out)
{
	return uffd_source_new_custom(&tsrc_ops, s, out);
}

static struct uffd_source *tsrc_source(struct tsrc *s)
{
	struct uffd_source *src = NULL;

	ck_assert_msg(tsrc_source_raw(s, &src) == 0, "custom source: %s",
		      uffd_last_error());
	return src;
}

static size_t tsrc_pages_fetched(struct tsrc *s)
{
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->nlog; i++)
		n += s->log[i].len / s->ps;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* ========================================================================
 * 1. Backends x modes
 * ======================================================================== */

/*
 * One region over [p, p+len) served from src at offset off by a started
 * loop with one worker; the test thread touches each page and compares the
 * whole range with want. Checks the region's and the loop's counts.
 */
static void serve_simple(int drv, const char *test, unsigned char *p,
			 size_t len, size_t ps, struct uffd_source *src,
			 uint64_t off, const unsigned char *want)
{
	struct uffd_loop_config *lc = loop_config(drv, 1, test);
	struct uffd_handle *h;
	struct uffd_loop *loop;
	struct uffd_region *r;
	struct uffd_loop_stats st;

	if (!lc)
		return;
	h = open_handle();
	loop = new_loop(h, lc);
	r = add_region(loop, region_cfg(p, len, src, off));
	ck_assert_ptr_eq(uffd_region_get_addr(r), p);
	ck_assert_uint_eq(uffd_region_get_len(r), len);
	ck_assert_uint_eq(uffd_region_get_resolved_pages(r), 0);
	start_loop(loop);

	touch_pages(p, len, ps);
	check_mem(p, want, len, ps, test);
	WAIT_RESOLVED(r, len / ps);
	ck_assert_int_eq(uffd_loop_stop(loop), 0); /* exact counters */
	st = get_stats(loop);
	ck_assert_uint_eq(st.pages_resolved, len / ps);
	ck_assert_uint_eq(st.bytes_resolved, len);
	ck_assert_uint_ge(st.faults_missing, 1);
	ck_assert_uint_le(st.faults_missing, len / ps);
	ck_assert_uint_eq(st.faults_minor + st.faults_wp + st.faults_unknown,
			  0);
	ck_assert_uint_eq(st.fetch_failures + st.pages_poisoned +
				  st.pages_zeroed,
			  0);

	uffd_loop_free(loop);
	uffd_handle_free(h);
}

START_TEST(anon_private_buffer)
{
	size_t ps = test_page(), len = 64 * ps;
	unsigned char *p = map_anon(len), *src = pattern(len, 1);
	struct uffd_source *s = buffer_source(src, len);

	serve_simple(_i, __func__, p, len, ps, s, 0, src);
	uffd_source_free(s);
	munmap(p, len);
	munmap(src, len);
}
END_TEST

/* A file source with a file offset and a region offset; the part of the
 * source past the end of the file reads as zeros. */
START_TEST(anon_private_file)
{
	size_t ps = test_page(), file_len = 40 * ps, len = 48 * ps;
	unsigned char *p = map_anon(len), *image, *want = map_anon(len);
	int fd = make_image(file_len, 2, &image);
	/* source byte 0 = file byte 4 pages; region page i = source page
	 * 2 + i = file page 6 + i; file pages 40.. do not exist */
	struct uffd_source *s = fd_source(fd, 4 * ps, 64 * ps);

	for (size_t i = 0; i < 48; i++)
		if (6 + i < 40)
			memcpy(want + i * ps, image + (6 + i) * ps, ps);
	close(fd); /* the source has its own */
	serve_simple(_i, __func__, p, len, ps, s, 2 * ps, want);
	uffd_source_free(s);
	munmap(p, len);
	munmap(image, file_len);
	munmap(want, len);
}
END_TEST

/* Drops fd's pages from the page cache except every other 64 KiB chunk
 * when keep_half; returns the share of pages still cached (0..1; 1 where
 * the filesystem keeps everything, tmpfs say). */
static double drop_cache(int fd, size_t len, bool keep_half)
{
	size_t ps = test_page(), cached = 0, chunk = 64 << 10;
	unsigned char *buf = malloc(chunk), *vec = malloc(len / ps);
	void *map;

	ck_assert_int_eq(fdatasync(fd), 0);
	ck_assert_int_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	for (size_t off = 0; keep_half && off < len; off += 2 * chunk)
		ck_assert_int_gt(pread(fd, buf, chunk, (off_t)off), 0);
	map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(map, MAP_FAILED);
	ck_assert_int_eq(mincore(map, len, vec), 0);
	for (size_t i = 0; i < len / ps; i++)
		cached += vec[i] & 1;
	munmap(map, len);
	free(vec);
	free(buf);
	return (double)cached / (double)(len / ps);
}

/* A file image not (or half) in the page cache: the io_uring driver reads
 * what is missing through its ring and copies what is cached at once; both
 * drivers restore it byte for byte, with faults from two threads in
 * different orders and background prefetch at the same time, with one
 * worker and with two (two rings reading at once). */
static void restore_uncached(int drv, const char *test, bool keep_half,
			     unsigned workers)
{
	size_t ps = test_page(), n = 2048, len = n * ps;
	struct uffd_loop_config *lc = loop_config(drv, workers, test);
	struct uffd_handle *h;
	unsigned char *p, *want;
	size_t *order[2];
	struct uffd_region_config *cfg;
	struct uffd_loop *loop;
	struct uffd_source *s;
	struct walker w[2];
	double cached;
	int fd, ret;

	if (!lc)
		return;
	h = open_handle();
	p = map_anon(len);
	fd = make_image(len, 23, &want);
	cached = drop_cache(fd, len, keep_half);
	printf("%s [%s]: %.0f%% of the image cached at the start\n", test,
	       drivers[drv].name, cached * 100);
	s = fd_source(fd, 0, len);
	loop = new_loop(h, lc);
	cfg = region_cfg(p, len, s, 0);
	ck_assert_int_eq(uffd_region_config_set_prefetch(cfg, true), 0);
	add_region(loop, cfg);
	uffd_source_free(s);
	start_loop(loop);
	for (int k = 0; k < 2; k++) {
		order[k] = calloc(n, sizeof(*order[k]));
		for (size_t i = 0; i < n; i++)
			order[k][i] = k ? (i * 613) % n : n - 1 - i;
		walker_start(&w[k], p, want, ps, order[k], n, 1);
	}
	walker_join(&w[0], "the backward reader");
	walker_join(&w[1], "the scattered reader");
	ret = uffd_loop_wait_complete(loop, TEST_WAIT_MS);
	ck_assert_msg(ret == 0, "wait_complete: %s", uffd_last_error());
	check_mem(p, want, len, ps, "restored image");
	uffd_loop_free(loop);
	uffd_handle_free(h);
	close(fd);
	free(order[0]);
	free(order[1]);
	munmap(p, len);
	munmap(want, len);
}

START_TEST(file_uncached)
{
	restore_uncached(_i, __func__, false, 1);
}
END_TEST

START_TEST(file_half_cached)
{
	restore_uncached(_i, __func__, true, 2);
}
END_TEST

START_TEST(anon_private_zero)
{
	size_t ps = test_page(), len = 32 * ps;
	unsigned char *p = map_anon(len), *zeros = map_anon(len);
	struct uffd_source *s = zero_source();

	serve_simple(_i, __func__, p, len, ps, s, 0, zeros);
	uffd_source_free(s);
	munmap(p, len);
	munmap(zeros, len);
}
END_TEST

START_TEST(anon_shared_buffer)
{
	size_t ps = test_page(), len = 32 * ps;
	unsigned char *p = map_anon_shared(len), *src = pattern(len, 3);
	struct uffd_source *s = buffer_source(src, len);

	serve_simple(_i, __func__, p, len, ps, s, 0, src);
	uffd_source_free(s);
	munmap(p, len);
	munmap(src, len);
}
END_TEST

START_TEST(memfd_buffer)
{
	size_t ps = test_page(), len = 32 * ps;
	int fd = make_memfd(len);
	unsigned char *p = map_fd(fd, len, true), *src = pattern(len, 4);
	struct uffd_source *s = buffer_source(src, len);

	serve_simple(_i, __func__, p, len, ps, s, 0, src);
	uffd_source_free(s);
	munmap(p, len);
	munmap(src, len);
	close(fd);
}
END_TEST

/*
 * memfd registered MISSING|MINOR with an alias: pages not in the page cache
 * fault MISSING and are filled through the alias, then mapped with
 * CONTINUE; pages another writer put in the page cache fault MINOR and are
 * mapped as they are (CONTINUE), keeping their contents.
 */
static void minor_alias_run(int drv, const char *test, size_t ra,
			    size_t first_touch)
{
	size_t ps = test_page(), n = 32, len = n * ps;
	struct uffd_loop_config *lc = loop_config(drv, 1, test);
	int fd = make_memfd(len);
	unsigned char *p = map_fd(fd, len, true), *alias = map_fd(fd, len, true);
	unsigned char *src = pattern(len, 5), *cache = pattern(len, 6);
	unsigned char *want = map_anon(len);
	struct uffd_region_config *cfg;
	struct uffd_loop_stats st;
	struct uffd_source *s;
	struct uffd_handle *h;
	struct uffd_loop *loop;
	struct uffd_region *r;

	if (!lc)
		return;
	/* pages 8..15 are in the page cache already */
	ck_assert_int_eq(pwrite(fd, cache + 8 * ps, 8 * ps, (off_t)(8 * ps)),
			 (ssize_t)(8 * ps));
	memcpy(want, src, len);
	memcpy(want + 8 * ps, cache + 8 * ps, 8 * ps);

	h = open_handle();
	loop = new_loop(h, lc);
	s = buffer_source(src, len);
	cfg = region_cfg(p, len, s, 0);
	uffd_source_free(s);
	ck_assert_int_eq(uffd_region_config_set_modes(cfg, UFFD_MODE_MISSING |
							   UFFD_MODE_MINOR),
			 0);
	ck_assert_int_eq(uffd_region_config_set_alias(cfg, alias), 0);
	ck_assert_int_eq(uffd_region_config_set_readahead(cfg, ra, false), 0);
	r = add_region(loop, cfg);
	start_loop(loop);

	(void)*(volatile unsigned char *)(p + first_touch * ps);
	touch_pages(p, len, ps);
	check_mem(p, want, len, ps, "memfd MISSING|MINOR, registered view");
	check_mem(alias, want, len, ps, "memfd MISSING|MINOR, alias");
	WAIT_RESOLVED(r, n);
	ck_assert_int_eq(uffd_loop_stop(loop), 0);
	st = get_stats(loop);
	ck_assert_uint_eq(st.pages_resolved, n);
	if (ra == 0) {
		ck_assert_uint_eq(st.faults_minor, 8);
		ck_assert_uint_eq(st.faults_missing, n - 8);
	}
	ck_assert_uint_eq(st.fetch_failures, 0);

	uffd_loop_free(loop);
	uffd_handle_free(h);
	munmap(p, len);
	munmap(alias, len);
	munmap(src, len);
	munmap(cache, len);
	munmap(want, len);
	close(fd);
}

START_TEST(memfd_minor_alias)
{
	minor_alias_run(_i, __func__, 0, 0);
}
END_TEST

/* The same with readahead: a window that starts at a missing page must not
 * overwrite the pages of the page cache it runs over (they fault MINOR and
 * keep their contents). */
START_TEST(memfd_minor_readahead_keeps_page_cache)
{
	minor_alias_run(_i, __func__, 16, 4);
}
END_TEST

/* WP faults on a region without a callback are un-protected: the write
 * goes through. */
START_TEST(wp_without_callback_unprotects)
{
	size_t ps = test_page(), n = 8, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 1);
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(len), *orig = pattern(len, 7);
	struct uffd_region_config *cfg;
	struct uffd_loop *loop;
	int ret;

	memcpy(p, orig, len); /* populated before registration */
	loop = new_loop(h, lc);
	cfg = region_cfg(p, len, NULL, 0);
	ck_assert_int_eq(uffd_region_config_set_modes(cfg, UFFD_MODE_WP), 0);
	add_region(loop, cfg);
	start_loop(loop);
	ret = uffd_handle_writeprotect(h, p, len, true, 0);
	ck_assert_msg(ret == 0, "writeprotect: %s", uffd_last_error());
	/* reads do not fault */
	check_mem(p, orig, len, ps, "write-protected, before the writes");
	ck_assert_uint_eq(STAT(loop, faults_wp), 0);

	for (size_t i = 0; i < n; i++)
		p[i * ps + 7] = (unsigned char)(0xa0 + i);
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_eq(p[i * ps + 7], 0xa0 + i);
		orig[i * ps + 7] = (unsigned char)(0xa0 + i);
	}
	check_mem(p, orig, len, ps, "after the writes");
	ck_assert_int_eq(uffd_loop_stop(loop), 0);
	ck_assert_uint_eq(STAT(loop, faults_wp), n);
	ck_assert_uint_eq(STAT(loop, faults_missing), 0);

	uffd_loop_free(loop);
	uffd_handle_free(h);
	munmap(p, len);
	munmap(orig, len);
}
END_TEST

struct cb_ctx {
	struct uffd_loop *loop;
	const unsigned char *src;
	atomic_uint calls;
	atomic_uint errors;
};

static int copy_cb(void *arg, struct uffd_region *r,
		   const struct uffd_event *ev)
{
	struct cb_ctx *c = arg;
	size_t ps = test_page();
	uintptr_t page = (uintptr_t)ev->fault.address & ~(uintptr_t)(ps - 1);
	size_t off = page - (uintptr_t)uffd_region_get_addr(r);
	struct uffd_handle *h = uffd_loop_get_handle(c->loop);
	int ret;

	atomic_fetch_add(&c->calls, 1);
	ret = uffd_handle_copy(h, (void *)page, c->src + off, ps, 0, NULL);
	if (ret == -EEXIST)
		ret = uffd_handle_wake(h, (void *)page, ps);
	if (ret)
		atomic_fetch_add(&c->errors, 1);
	return ret;
}

START_TEST(fault_callback_region)
{
	size_t ps = test_page(), n = 16, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 1);
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(len), *src = pattern(len, 8);
	struct uffd_region_config *cfg;
	struct cb_ctx c;
	struct uffd_loop *loop;

	memset(&c, 0, sizeof(c));
	c.src = src;
	loop = new_loop(h, lc);
	c.loop = loop;
	ck_assert_ptr_eq(uffd_loop_get_handle(loop), h);
	cfg = region_cfg(p, len, NULL, 0);
	ck_assert_int_eq(uffd_region_config_set_fault_callback(cfg, copy_cb,
							       &c),
			 0);
	add_region(loop, cfg);
	start_loop(loop);

	touch_pages(p, len, ps);
	check_mem(p, src, len, ps, "fault callback region");
	ck_assert_uint_eq(atomic_load(&c.calls), n);
	ck_assert_uint_eq(atomic_load(&c.errors), 0);
	ck_assert_uint_eq(STAT(loop, faults_missing), n);
	ck_assert_uint_eq(STAT(loop, fetch_failures), 0);

	uffd_loop_free(loop);
	uffd_handle_free(h);
	munmap(p, len);
	munmap(src, len);
}
END_TEST

/* ---- hugetlb ---- */

#define HUGE_SZ ((size_t)2 << 20)

/* memfd: a MFD_HUGETLB memfd mapped shared, else MAP_HUGETLB private. */
static unsigned char *map_huge(size_t len, bool memfd, int *fd)
{
	void *p;

	*fd = -1;
	if (memfd) {
		*fd = memfd_create("libuffd-test-huge",
				   MFD_HUGETLB | MFD_CLOEXEC);
		ck_assert_msg(*fd >= 0, "memfd_create(MFD_HUGETLB): %s",
			      strerror(errno));
		ck_assert_int_eq(ftruncate(*fd, (off_t)len), 0);
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, *fd,
			 0);
	} else {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	}
	ck_assert_msg(p != MAP_FAILED, "mmap(hugetlb): %s", strerror(errno));
	ck_assert_uint_eq((uintptr_t)p % HUGE_SZ, 0);
	return p;
}

static void hugetlb_run(int drv, const char *test, bool memfd)
{
	size_t len = 2 * HUGE_SZ;
	unsigned char *src, *zeros, *img;
	int img_fd;

	if (!driver_built(drv, test))
		return;
	if (!hugetlb_reserved()) {
		printf("SKIP: %s: no 2 MiB huge pages reserved\n", test);
		return;
	}
	src = pattern(len, 9);
	zeros = map_anon(len);
	img_fd = make_image(len, 9, &img);
	/* buffer, zeros, and a file: read through a staging buffer that must
	 * hold a whole huge page */
	for (int kind = 0; kind < 3; kind++) {
		int fd;
		unsigned char *p = map_huge(len, memfd, &fd);
		struct uffd_source *s = kind == 1   ? zero_source()
					: kind == 2 ? fd_source(img_fd, 0, len)
						    : buffer_source(src, len);

		serve_simple(drv, test, p, len, HUGE_SZ, s, 0,
			     kind == 1 ? zeros : kind == 2 ? img : src);
		uffd_source_free(s);
		munmap(p, len);
		if (fd >= 0)
			close(fd);
	}
	munmap(src, len);
	munmap(zeros, len);
	munmap(img, len);
	close(img_fd);
}

START_TEST(hugetlb_private_buffer_and_zero)
{
	hugetlb_run(_i, __func__, false);
}
END_TEST

START_TEST(hugetlb_memfd_buffer_and_zero)
{
	hugetlb_run(_i, __func__, true);
}
END_TEST

/* ========================================================================
 * 2. Lazy restore of a file image
 * ======================================================================== */

#define IMAGE_BYTES ((size_t)16 << 20)

/* Each of 2 threads reads every page, one in address order, the other with
 * a stride; with 1 and 2 workers. */
START_TEST(restore_touched_by_two_threads)
{
	size_t ps = test_page(), n = IMAGE_BYTES / ps;
	unsigned char *image;
	int fd;
	size_t *strided;

	if (!driver_built(_i, __func__))
		return;
	fd = make_image(IMAGE_BYTES, 10, &image);
	strided = calloc(n, sizeof(*strided));
	for (size_t k = 0; k < n; k++)
		strided[k] = (k * 37) % n; /* 37 is prime to n: a permutation */

	for (unsigned threads = 1; threads <= 2; threads++) {
		struct uffd_loop_config *lc = loop_config(_i, threads, __func__);
		struct uffd_handle *h = open_handle();
		unsigned char *p = map_anon(IMAGE_BYTES);
		struct uffd_source *s = fd_source(fd, 0, IMAGE_BYTES);
		struct uffd_loop *loop = new_loop(h, lc);
		struct uffd_region *r =
			add_region(loop, region_cfg(p, IMAGE_BYTES, s, 0));
		struct walker seq, str;
		struct uffd_loop_stats st;

		uffd_source_free(s);
		start_loop(loop);
		walker_start(&seq, p, image, ps, NULL, n, 1);
		walker_start(&str, p, image, ps, strided, n, 1);
		walker_join(&seq, "the sequential reader");
		walker_join(&str, "the strided reader");
		check_mem(p, image, IMAGE_BYTES, ps, "restored image");
		WAIT_RESOLVED(r, n);
		ck_assert_int_eq(uffd_loop_stop(loop), 0);
		st = get_stats(loop);
		ck_assert_uint_eq(st.pages_resolved, n);
		ck_assert_uint_eq(st.fetch_failures, 0);
		ck_assert_uint_ge(st.faults_missing, 1);

		uffd_loop_free(loop);
		uffd_handle_free(h);
		munmap(p, IMAGE_BYTES);
	}
	free(strided);
	close(fd);
	munmap(image, IMAGE_BYTES);
}
END_TEST

/* Prefetch alone completes the restore: nothing touches the memory. */
START_TEST(restore_by_prefetch_alone)
{
	size_t ps = test_page(), n = IMAGE_BYTES / ps;
	unsigned char *image;
	int fd;

	if (!driver_built(_i, __func__))
		return;
	fd = make_image(IMAGE_BYTES, 11, &image);
	for (unsigned threads = 1; threads <= 2; threads++) {
		struct uffd_loop_config *lc = loop_config(_i, threads, __func__);
		struct uffd_handle *h = open_handle();
		unsigned char *p = map_anon(IMAGE_BYTES);
		struct uffd_source *s = fd_source(fd, 0, IMAGE_BYTES);
		struct uffd_loop *loop = new_loop(h, lc);
		struct uffd_region_config *cfg =
			region_cfg(p, IMAGE_BYTES, s, 0);
		struct uffd_region *r;
		struct uffd_loop_stats st;
		int ret;

		uffd_source_free(s);
		ck_assert_int_eq(uffd_region_config_set_prefetch(cfg, true), 0);
		r = add_region(loop, cfg);
		start_loop(loop);
		ret = uffd_loop_wait_complete(loop, TEST_WAIT_MS);
		ck_assert_msg(ret == 0, "wait_complete (%u workers): %d %s, "
			      "%zu of %zu pages resolved", threads, ret,
			      uffd_last_error(),
			      uffd_region_get_resolved_pages(r), n);
		ck_assert_uint_eq(uffd_region_get_resolved_pages(r), n);
		ck_assert_int_eq(uffd_loop_wait_complete(loop, 0), 0);
		/* nothing faults now: every page is there */
		check_mem(p, image, IMAGE_BYTES, ps, "prefetched image");
		ck_assert_int_eq(uffd_loop_stop(loop), 0);
		st = get_stats(loop);
		ck_assert_uint_eq(st.faults_missing, 0);
		ck_assert_uint_eq(st.pages_resolved, n);
		ck_assert_uint_eq(st.prefetch_pages, n);

		uffd_loop_free(loop);
		uffd_handle_free(h);
		munmap(p, IMAGE_BYTES);
	}
	close(fd);
	munmap(image, IMAGE_BYTES);
}
END_TEST

/* A prefetching region added to a loop whose workers already wait for
 * events: the workers must notice it and prefetch it. */
START_TEST(prefetch_region_added_while_running)
{
	size_t ps = test_page(), n = 256, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 1);
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(len), *src = pattern(len, 12);
	struct uffd_source *s = buffer_source(src, len);
	struct uffd_loop *loop = new_loop(h, lc);
	struct uffd_region_config *cfg = region_cfg(p, len, s, 0);
	struct uffd_region *r;
	int ret;

	uffd_source_free(s);
	start_loop(loop);
	ck_assert_int_eq(uffd_region_config_set_prefetch(cfg, true), 0);
	r = add_region(loop, cfg);
	ret = uffd_loop_wait_complete(loop, TEST_WAIT_MS);
	ck_assert_msg(ret == 0, "a prefetching region added to a running loop "
		      "was not prefetched: wait_complete %d (%s), %zu of %zu "
		      "pages resolved", ret, uffd_last_error(),
		      uffd_region_get_resolved_pages(r), n);
	check_mem(p, src, len, ps, "prefetched region");

	uffd_loop_free(loop);
	uffd_handle_free(h);
	munmap(p, len);
	munmap(src, len);
}
END_TEST

/* ========================================================================
 * 3. Two faulting threads on the same pages, two workers
 * ======================================================================== */

START_TEST(same_pages_two_threads_fetched_once)
{
	size_t ps = test_page(), n = 256, len = n * ps;
	unsigned char *src = pattern(len, 13);
	unsigned worst = 0;
	size_t worst_page = 0, dup_pages = 0;

	if (!driver_built(_i, __func__))
		return;
	for (int round = 0; round < 4; round++) {
		struct uffd_loop_config *lc = loop_config(_i, 2, __func__);
		struct uffd_handle *h = open_handle();
		unsigned char *p = map_anon(len);
		struct tsrc ts;
		struct uffd_source *s;
		struct uffd_loop *loop;
		struct uffd_region *r;
		struct walker a, b;
		struct uffd_loop_stats st;
		size_t urgent = 0, fetched;

		tsrc_init(&ts, src, len, ps);
		s = tsrc_source(&ts);
		loop = new_loop(h, lc);
		r = add_region(loop, region_cfg(p, len, s, 0));
		uffd_source_free(s);
		start_loop(loop);
		walker_start(&a, p, src, ps, NULL, n, 1);
		walker_start(&b, p, src, ps, NULL, n, 1);
		walker_join(&a, "reader 1");
		walker_join(&b, "reader 2");
		check_mem(p, src, len, ps, "after two readers");
		uffd_loop_stop(loop);
		ck_assert_uint_eq(uffd_region_get_resolved_pages(r), n);
		st = get_stats(loop);
		fetched = tsrc_pages_fetched(&ts);
		for (size_t i = 0; i < ts.nlog; i++)
			urgent += ts.log[i].urgent;
		/* the sums, as the header defines the counters */
		ck_assert_uint_eq(st.pages_resolved, n);
		ck_assert_msg(st.faults_missing == urgent + st.readahead_hits,
			      "faults_missing %llu != fetches started by "
			      "faults %zu + readahead_hits %llu",
			      (unsigned long long)st.faults_missing, urgent,
			      (unsigned long long)st.readahead_hits);
		ck_assert_msg(fetched == st.pages_resolved + st.eexist_races,
			      "pages fetched %zu != pages_resolved %llu + "
			      "eexist_races %llu", fetched,
			      (unsigned long long)st.pages_resolved,
			      (unsigned long long)st.eexist_races);
		ck_assert_uint_eq(latency_total(&st), urgent);
		for (size_t i = 0; i < n; i++) {
			unsigned c = atomic_load(&ts.count[i]);

			ck_assert_msg(c >= 1, "page %zu never fetched", i);
			dup_pages += c > 1;
			if (c > worst) {
				worst = c;
				worst_page = i;
			}
		}
		uffd_loop_free(loop);
		ck_assert_int_eq(atomic_load(&ts.releases), 1);
		tsrc_fini(&ts);
		uffd_handle_free(h);
		munmap(p, len);
	}
	munmap(src, len);
	ck_assert_msg(worst == 1, "a page was fetched %u times (page %zu; %zu "
		      "pages fetched more than once over 4 rounds)", worst,
		      worst_page, dup_pages);
}
END_TEST

/* ========================================================================
 * 4. An asynchronous custom source
 * ======================================================================== */

START_TEST(async_source_urgent_flags)
{
	size_t ps = test_page(), na = 64, nb = 128;
	size_t la = na * ps, lb = nb * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 2);
	struct uffd_handle *h = open_handle();
	unsigned char *src = pattern(la + lb, 14);
	unsigned char *pa = map_anon(la), *pb = map_anon(lb);
	size_t *order = calloc(na, sizeof(*order));
	size_t urgent = 0, background = 0;
	struct uffd_region_config *cfg;
	struct uffd_region *rb;
	struct uffd_loop *loop;
	struct uffd_source *s;
	struct walker w;
	struct tsrc ts;
	int ret;

	tsrc_init(&ts, src, la + lb, ps);
	ck_assert_int_eq(tsrc_net_start(&ts), 0);
	s = tsrc_source(&ts);
	loop = new_loop(h, lc);
	/* A: served on faults; B: prefetched, never touched before done */
	add_region(loop, region_cfg(pa, la, s, 0));
	cfg = region_cfg(pb, lb, s, la);
	ck_assert_int_eq(uffd_region_config_set_prefetch(cfg, true), 0);
	rb = add_region(loop, cfg);
	uffd_source_free(s);
	start_loop(loop);

	for (size_t k = 0; k < na; k++)
		order[k] = (k * 7) % na;
	walker_start(&w, pa, src, ps, order, na, 1);
	walker_join(&w, "the reader of the fault-served region");
	ret = uffd_loop_wait_complete(loop, TEST_WAIT_MS);
	ck_assert_msg(ret == 0, "wait_complete: %s (%zu of %zu)",
		      uffd_last_error(), uffd_region_get_resolved_pages(rb),
		      nb);
	check_mem(pa, src, la, ps, "fault-served region");
	check_mem(pb, src + la, lb, ps, "prefetched region");
	ck_assert_int_eq(uffd_loop_stop(loop), 0);
	tsrc_net_stop(&ts);

	pthread_mutex_lock(&ts.lock);
	for (size_t i = 0; i < ts.nlog; i++) {
		const struct fetch_rec *f = &ts.log[i];

		if (f->off < la) {
			ck_assert_msg(f->urgent, "fetch of %#llx+%zu for a "
				      "fault is not urgent",
				      (unsigned long long)f->off, f->len);
			ck_assert_msg(f->off + f->len <= la,
				      "a fault's window crossed into another "
				      "region's part of the source");
			urgent++;
		} else {
			ck_assert_msg(!f->urgent, "prefetch of %#llx+%zu is "
				      "urgent", (unsigned long long)f->off,
				      f->len);
			background++;
		}
	}
	pthread_mutex_unlock(&ts.lock);
	ck_assert_uint_ge(urgent, 1);
	ck_assert_uint_ge(background, 1);
	ck_assert_uint_eq(STAT(loop, prefetch_pages), nb);

	uffd_loop_free(loop);
	ck_assert_int_eq(atomic_load(&ts.releases), 1);
	tsrc_fini(&ts);
	uffd_handle_free(h);
	free(order);
	munmap(pa, la);
	munmap(pb, lb);
	munmap(src, la + lb);
}
END_TEST

/* ========================================================================
 * 5. Layout events while the loop serves
 * ======================================================================== */

/* A started loop (lc says how) over handle h with one region of
 * [p, p+len) from buffer src, readahead ra pages (fixed). */
static struct uffd_loop *event_loop(struct uffd_handle *h,
				    struct uffd_loop_config *lc, void *p,
				    size_t len, const unsigned char *src,
				    size_t ra, struct uffd_region **r)
{
	struct uffd_source *s = buffer_source(src, len);
	struct uffd_loop *loop = new_loop(h, lc);
	struct uffd_region_config *cfg = region_cfg(p, len, s, 0);

	uffd_source_free(s);
	ck_assert_int_eq(uffd_region_config_set_readahead(cfg, ra, false), 0);
	*r = add_region(loop, cfg);
	start_loop(loop);
	return loop;
}

START_TEST(remove_then_touch_again)
{
	size_t ps = test_page(), n = 16, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 2);
	struct uffd_handle *h = open_handle_with(UFFD_FEAT_EVENT_REMOVE);
	unsigned char *p = map_anon(len), *src = pattern(len, 15);
	struct uffd_region *r;
	struct uffd_loop *loop =
		event_loop(h, lc, p, len, src, 0, &r);

	touch_pages(p, len, ps);
	WAIT_RESOLVED(r, n);
	WAIT_UNTIL(STAT(loop, pages_resolved) == n, "pages_resolved == n");
	/* blocks until a worker reads the REMOVE event */
	ck_assert_int_eq(madvise(p + 4 * ps, 4 * ps, MADV_DONTNEED), 0);
	WAIT_UNTIL(STAT(loop, events_remove) == 1, "events_remove == 1");
	WAIT_UNTIL(uffd_region_get_resolved_pages(r) == n - 4,
		   "the resolved count to drop by the 4 removed pages");
	/* served again, from the source */
	check_mem(p, src, len, ps, "after MADV_DONTNEED");
	WAIT_RESOLVED(r, n);
	ck_assert_int_eq(uffd_loop_stop(loop), 0);
	ck_assert_uint_eq(STAT(loop, pages_resolved), n + 4);
	ck_assert_uint_eq(STAT(loop, faults_missing), n + 4);

	uffd_loop_free(loop);
	uffd_handle_free(h);
	munmap(p, len);
	munmap(src, len);
}
END_TEST

START_TEST(unmap_whole_region)
{
	size_t ps = test_page(), n = 8, len = n * ps;
	int fds_before = count_fds();
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 2);
	struct uffd_handle *h = open_handle_with(UFFD_FEAT_EVENT_UNMAP);
	unsigned char *p1 = map_anon(len), *p2 = map_anon(len);
	unsigned char *src = pattern(2 * len, 16);
	struct uffd_source *s = buffer_source(src, 2 * len);
	struct uffd_loop *loop = new_loop(h, lc);
	struct uffd_region *r1 = add_region(loop, region_cfg(p1, len, s, 0));
	struct uffd_region *r2 = add_region(loop, region_cfg(p2, len, s, len));
	unsigned char *again;

	uffd_source_free(s);
	start_loop(loop);
	touch_pages(p1, len / 2, ps);
	ck_assert_int_eq(munmap(p1, len), 0); /* blocks until read */
	WAIT_UNTIL(STAT(loop, events_unmap) == 1, "events_unmap == 1");
	/* the region is gone from the loop */
	ck_assert_uffd_err(uffd_loop_remove_region(loop, r1), ENOENT,
			   "not a region");
	/* new memory there is nobody's */
	again = map_anon(len);
	memset(again, 1, len);
	/* the other region is still served */
	check_mem(p2, src + len, len, ps, "the other region");
	WAIT_RESOLVED(r2, n);
	ck_assert_uint_eq(STAT(loop, faults_unknown), 0);

	uffd_loop_free(loop);
	uffd_handle_free(h);
	munmap(again, len);
	munmap(p2, len);
	munmap(src, 2 * len);
	ck_assert_int_eq(count_fds(), fds_before);
}
END_TEST

/* After uffd_loop_free() the pages of [p, p+len) must be ordinary memory
 * again: a thread reading never-resolved page `page` finishes. Frees h. */
static void check_free_unregistered(struct uffd_handle *h, unsigned char *p,
				    size_t page, const char *what)
{
	size_t ps = test_page();
	struct toucher t;
	bool done;
	int ret;

	toucher_start(&t, p + page * ps, false, 0);
	done = timed_join(t.thread, TEST_WAIT_MS);
	ret = uffd_handle_get_range_ops(h, p + page * ps, ps, NULL, NULL);
	uffd_handle_free(h); /* wakes the thread if it hung */
	if (!done)
		toucher_join(&t);
	ck_assert_msg(done, "%s: after uffd_loop_free() a read of page %zu "
		      "still blocked (the region stayed registered)", what,
		      page);
	ck_assert_msg(ret == -ENOENT, "%s: page %zu is still registered after "
		      "uffd_loop_free() (get_range_ops %d)", what, page, ret);
}

START_TEST(unmap_part_of_region)
{
	size_t ps = test_page(), n = 16, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 2);
	struct uffd_handle *h = open_handle_with(UFFD_FEAT_EVENT_UNMAP);
	unsigned char *p = map_anon(len), *src = pattern(len, 17);
	struct uffd_region *r;
	struct uffd_loop *loop =
		event_loop(h, lc, p, len, src, 0, &r);

	touch_pages(p, 6 * ps, ps);           /* pages 0..5 */
	touch_pages(p + 12 * ps, ps, ps);     /* page 12 */
	WAIT_RESOLVED(r, 7);
	ck_assert_int_eq(munmap(p + 4 * ps, 4 * ps), 0); /* pages 4..7 */
	WAIT_UNTIL(STAT(loop, events_unmap) == 1, "events_unmap == 1");
	WAIT_UNTIL(uffd_region_get_resolved_pages(r) == 5,
		   "the resolved count to drop by the 2 unmapped pages");
	/* the rest is served, but for page 15, left for later */
	check_mem(p, src, 4 * ps, ps, "pages 0..3");
	check_mem(p + 8 * ps, src + 8 * ps, 7 * ps, ps, "pages 8..14");
	WAIT_RESOLVED(r, 11);
	ck_assert_uint_eq(STAT(loop, faults_unknown), 0);

	uffd_loop_free(loop);
	check_free_unregistered(h, p, 15, "partly unmapped region");
	munmap(p, 4 * ps);
	munmap(p + 8 * ps, 8 * ps);
	munmap(src, len);
}
END_TEST

START_TEST(remap_whole_region)
{
	size_t ps = test_page(), n = 16, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 2);
	struct uffd_handle *h = open_handle_with(UFFD_FEAT_EVENT_REMAP);
	unsigned char *p = map_anon(len), *src = pattern(len, 18);
	unsigned char *target = mmap(NULL, len, PROT_NONE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct uffd_region *r;
	struct uffd_loop *loop;
	void *moved;

	ck_assert(target != MAP_FAILED);
	loop = event_loop(h, lc, p, len, src, 0, &r);
	touch_pages(p, 4 * ps, ps);
	moved = mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, target);
	ck_assert_ptr_eq(moved, target);
	WAIT_UNTIL(STAT(loop, events_remap) == 1, "events_remap == 1");
	WAIT_UNTIL(uffd_region_get_addr(r) == (void *)target,
		   "the region to follow the move");
	check_mem(target, src, len, ps, "the moved region");
	WAIT_RESOLVED(r, n);
	ck_assert_int_eq(uffd_loop_stop(loop), 0);
	ck_assert_uint_eq(STAT(loop, pages_resolved), n);
	ck_assert_uint_eq(STAT(loop, faults_unknown), 0);

	uffd_loop_free(loop);
	ck_assert_int_eq(uffd_handle_get_range_ops(h, target, len, NULL, NULL),
			 -ENOENT);
	uffd_handle_free(h);
	munmap(target, len);
	munmap(src, len);
}
END_TEST

START_TEST(remap_part_of_region)
{
	size_t ps = test_page(), n = 16, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 2);
	struct uffd_handle *h = open_handle_with(UFFD_FEAT_EVENT_REMAP);
	unsigned char *p = map_anon(len), *src = pattern(len, 19);
	unsigned char *target = mmap(NULL, 4 * ps, PROT_NONE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct uffd_region *r;
	struct uffd_loop *loop;
	void *moved;
	int ret;

	ck_assert(target != MAP_FAILED);
	loop = event_loop(h, lc, p, len, src, 0, &r);
	touch_pages(p, 2 * ps, ps);       /* pages 0, 1 */
	touch_pages(p + 9 * ps, ps, ps);  /* page 9: moves with its data */
	moved = mremap(p + 8 * ps, 4 * ps, 4 * ps,
		       MREMAP_MAYMOVE | MREMAP_FIXED, target);
	ck_assert_ptr_eq(moved, target);
	WAIT_UNTIL(STAT(loop, events_remap) == 1, "events_remap == 1");
	/* the moved pages 8..11, served from their place in the source */
	check_mem(target, src + 8 * ps, 4 * ps, ps, "the moved part");
	/* the rest where it was, but for page 15, left for later */
	check_mem(p, src, 8 * ps, ps, "pages 0..7");
	check_mem(p + 12 * ps, src + 12 * ps, 3 * ps, ps, "pages 12..14");
	ck_assert_uint_eq(STAT(loop, faults_unknown), 0);
	ck_assert_uint_eq(STAT(loop, fetch_failures), 0);

	uffd_loop_free(loop);
	ret = uffd_handle_get_range_ops(h, target, 4 * ps, NULL, NULL);
	ck_assert_msg(ret == -ENOENT, "the moved part is still registered "
		      "after uffd_loop_free() (%d)", ret);
	check_free_unregistered(h, p, 15, "partly moved region");
	munmap(target, 4 * ps);
	munmap(p, 8 * ps);
	munmap(p + 12 * ps, 4 * ps);
	munmap(src, len);
}
END_TEST

struct fork_ctx {
	atomic_int calls;
	int adopt_ret;
	uint64_t features;
};

static void fork_cb(void *arg, int child_uffd)
{
	struct fork_ctx *c = arg;
	struct uffd_handle *child = NULL;

	c->adopt_ret = uffd_handle_adopt(child_uffd, &child);
	if (!c->adopt_ret) {
		c->features = uffd_handle_get_features(child);
		uffd_handle_free(child);
	} else {
		close(child_uffd);
	}
	atomic_fetch_add(&c->calls, 1);
}

START_TEST(fork_with_callback)
{
	size_t ps = test_page(), n = 8, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 2);
	struct uffd_handle *h = open_handle_with(UFFD_FEAT_EVENT_FORK);
	unsigned char *p = map_anon(len), *src = pattern(len, 20);
	struct fork_ctx c;
	struct uffd_region *r;
	struct uffd_loop *loop;
	int fds, status;
	pid_t pid;

	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(uffd_loop_config_set_fork_callback(lc, fork_cb, &c),
			 0);
	loop = event_loop(h, lc, p, len, src, 0, &r);
	touch_pages(p, ps, ps);
	fds = count_uffd_fds();
	ck_assert_int_eq(fds, 1);
	pid = fork(); /* returns once a worker has read the FORK event */
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(0);
	status = reap_child(pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	WAIT_UNTIL(atomic_load(&c.calls) == 1, "the fork callback");
	ck_assert_msg(c.adopt_ret == 0, "adopting the child's uffd: %d",
		      c.adopt_ret);
	ck_assert(c.features & UFFD_FEAT_EVENT_FORK);
	WAIT_UNTIL(STAT(loop, events_fork) == 1, "events_fork == 1");
	ck_assert_int_eq(count_uffd_fds(), fds);
	/* still serving */
	check_mem(p, src, len, ps, "after the fork");

	uffd_loop_free(loop);
	uffd_handle_free(h);
	munmap(p, len);
	munmap(src, len);
}
END_TEST

START_TEST(fork_without_callback)
{
	size_t ps = test_page(), n = 8, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 2);
	struct uffd_handle *h = open_handle_with(UFFD_FEAT_EVENT_FORK);
	unsigned char *p = map_anon(len), *src = pattern(len, 21);
	struct uffd_region *r;
	struct uffd_loop *loop;
	int fds, status;
	pid_t pid;

	loop = event_loop(h, lc, p, len, src, 0, &r);
	touch_pages(p, ps, ps);
	fds = count_uffd_fds();
	ck_assert_int_eq(fds, 1);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* page 0 was resolved before the fork; page 5 never: the
		 * child's uffd is closed, so it is an ordinary fault */
		const volatile unsigned char *q = p;

		if (q[0] != src[0])
			_exit(2);
		if (q[5 * ps] != 0 && q[5 * ps] != src[5 * ps])
			_exit(3);
		_exit(0);
	}
	status = reap_child(pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child status %#x", status);
	WAIT_UNTIL(STAT(loop, events_fork) == 1, "events_fork == 1");
	WAIT_UNTIL(count_uffd_fds() == fds, "the child's uffd to be closed");
	check_mem(p, src, len, ps, "after the fork");

	uffd_loop_free(loop);
	uffd_handle_free(h);
	munmap(p, len);
	munmap(src, len);
}
END_TEST

/* ========================================================================
 * 6. REMOVE racing with faults
 * ======================================================================== */

struct madviser {
	pthread_t thread;
	unsigned char *p;
	size_t ps, npages, iters;
	int errors;
};

static void *madviser_main(void *arg)
{
	struct madviser *m = arg;

	for (size_t k = 0; k < m->iters; k++) {
		size_t first = (k * 7) % (m->npages - 8);

		if (madvise(m->p + first * m->ps, 8 * m->ps, MADV_DONTNEED))
			m->errors++;
	}
	return NULL;
}

START_TEST(remove_races_with_faults)
{
	size_t ps = test_page(), n = 64, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 2);
	struct uffd_handle *h = open_handle_with(UFFD_FEAT_EVENT_REMOVE);
	unsigned char *p = map_anon(len), *src = pattern(len, 22);
	size_t *strided = calloc(n, sizeof(*strided));
	struct uffd_source *s = buffer_source(src, len);
	struct uffd_loop *loop = new_loop(h, lc);
	struct uffd_region *r = add_region(loop, region_cfg(p, len, s, 0));
	struct walker a, b;
	struct madviser m = { .p = p, .ps = ps, .npages = n, .iters = 400 };

	uffd_source_free(s);
	for (size_t k = 0; k < n; k++)
		strided[k] = (k * 13) % n;
	start_loop(loop);
	walker_start(&a, p, src, ps, NULL, n, 40);
	walker_start(&b, p, src, ps, strided, n, 40);
	ck_assert_int_eq(pthread_create(&m.thread, NULL, madviser_main, &m),
			 0);
	JOIN(m.thread, "the MADV_DONTNEED thread");
	if (!timed_join(a.thread, TEST_WAIT_MS) ||
	    !timed_join(b.thread, TEST_WAIT_MS)) {
		struct uffd_loop_stats st = get_stats(loop);

		ck_abort_msg("a reader hung: reader 1 at page %zu, reader 2 at "
			     "page %zu; uffd fdinfo pending %ld total %ld; "
			     "faults_missing %llu readahead_hits %llu "
			     "pages_resolved %llu eexist %llu remove events "
			     "%llu of %zu", atomic_load(&a.at),
			     atomic_load(&b.at), fdinfo_count(h, "pending"),
			     fdinfo_count(h, "total"),
			     (unsigned long long)st.faults_missing,
			     (unsigned long long)st.readahead_hits,
			     (unsigned long long)st.pages_resolved,
			     (unsigned long long)st.eexist_races,
			     (unsigned long long)st.events_remove, m.iters);
	}
	ck_assert_msg(a.bad == 0 && b.bad == 0, "wrong data: reader 1 %zu "
		      "pages (first %zu), reader 2 %zu pages (first %zu)",
		      a.bad, a.first_bad, b.bad, b.first_bad);
	ck_assert_int_eq(m.errors, 0);
	check_mem(p, src, len, ps, "after the race");
	/* reading an event wakes its madvise(); the worker counts it just
	 * after: the last ones may still be on their way */
	WAIT_UNTIL(STAT(loop, events_remove) == m.iters,
		   "every REMOVE event to be counted");
	ck_assert_uint_eq(STAT(loop, fetch_failures), 0);
	ck_assert_uint_eq(STAT(loop, pages_poisoned) + STAT(loop, pages_zeroed),
			  0);
	ck_assert_uint_le(uffd_region_get_resolved_pages(r), n);

	uffd_loop_free(loop);
	uffd_handle_free(h);
	free(strided);
	munmap(p, len);
	munmap(src, len);
}
END_TEST

/* ========================================================================
 * 7. Stopping with faults pending
 * ======================================================================== */

/* A fault whose fetch is in flight (and never completes) when the loop
 * stops with STOP_POISON: its thread gets SIGBUS, and stop returns. */
START_TEST(stop_poison_fetch_in_flight)
{
	size_t ps = test_page(), n = 8, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 1);
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(len), *src = pattern(len, 23);
	struct uffd_region_config *cfg;
	struct bus_toucher t;
	struct stopper stop;
	struct uffd_loop *loop;
	struct uffd_source *s;
	struct tsrc ts;

	ck_assert_int_eq(uffd_loop_config_set_stop_policy(lc, UFFD_STOP_POISON),
			 0);
	tsrc_init(&ts, src, len, ps);
	ts.hold_page = 3;
	s = tsrc_source(&ts);
	loop = new_loop(h, lc);
	cfg = region_cfg(p, len, s, 0);
	uffd_source_free(s);
	ck_assert_int_eq(uffd_region_config_set_readahead(cfg, 0, false), 0);
	add_region(loop, cfg);
	start_loop(loop);
	sigbus_catch();

	bus_toucher_start(&t, p + 3 * ps);
	ck_assert_msg(tsrc_wait(&ts, true), "the fault's fetch never started");
	memset(&stop, 0, sizeof(stop));
	stop.loop = loop;
	ck_assert_int_eq(pthread_create(&stop.thread, NULL, stopper_main, &stop),
			 0);
	JOIN(stop.thread, "uffd_loop_stop(POISON)");
	ck_assert_int_eq(stop.ret, 0);
	JOIN(t.thread, "the thread whose fetch was in flight at stop");
	ck_assert_msg(t.sigbus, "the thread read %#x instead of getting "
		      "SIGBUS", t.seen);
	ck_assert_uint_ge(STAT(loop, pages_poisoned), 1);

	uffd_loop_free(loop);
	sigbus_restore();
	tsrc_fini(&ts);
	uffd_handle_free(h);
	munmap(p, len);
	munmap(src, len);
}
END_TEST

/*
 * Faults queued in the kernel (not read yet) while the workers stop: the
 * only worker is held inside a fetch (the gate) when a second thread
 * faults and uffd_loop_stop() is called; then the gate opens. The gated
 * fault is served either way; the queued one is poisoned (STOP_POISON) or
 * served (STOP_RESOLVE) by stop itself.
 */
static void stop_queued_run(int drv, const char *test, bool poison,
			    bool file)
{
	size_t ps = test_page(), n = 8, len = n * ps;
	struct uffd_loop_config *lc = loop_config(drv, 1, test);
	struct uffd_handle *h;
	unsigned char *pa = map_anon(len), *pb = map_anon(len);
	unsigned char *src = pattern(len, 24), *image;
	int fd = make_image(len, 25, &image);
	struct uffd_region_config *cfg;
	struct bus_toucher ta, tb;
	struct stopper stop;
	struct uffd_loop *loop;
	struct uffd_source *s;
	struct tsrc ts;

	if (!lc)
		goto out;
	h = open_handle();
	ck_assert_int_eq(uffd_loop_config_set_stop_policy(
				 lc, poison ? UFFD_STOP_POISON
					    : UFFD_STOP_RESOLVE),
			 0);
	tsrc_init(&ts, src, len, ps);
	ts.gate_page[0] = 0;
	s = tsrc_source(&ts);
	loop = new_loop(h, lc);
	cfg = region_cfg(pa, len, s, 0);
	uffd_source_free(s);
	ck_assert_int_eq(uffd_region_config_set_readahead(cfg, 0, false), 0);
	add_region(loop, cfg);
	s = file ? fd_source(fd, 0, len) : buffer_source(image, len);
	cfg = region_cfg(pb, len, s, 0);
	uffd_source_free(s);
	ck_assert_int_eq(uffd_region_config_set_readahead(cfg, 0, false), 0);
	add_region(loop, cfg);
	start_loop(loop);
	sigbus_catch();

	bus_toucher_start(&ta, pa);
	ck_assert_msg(tsrc_wait(&ts, false), "the gated fetch never started");
	bus_toucher_start(&tb, pb + 5 * ps);
	WAIT_UNTIL(fdinfo_count(h, "pending") == 1,
		   "the second fault to be queued");
	stopper_start_and_wait(&stop, loop);
	tsrc_open_gate(&ts);
	JOIN(stop.thread, "uffd_loop_stop()");
	ck_assert_int_eq(stop.ret, 0);
	JOIN(ta.thread, "the thread of the gated fault");
	ck_assert_msg(!ta.sigbus, "the gated fault got SIGBUS");
	ck_assert_uint_eq(ta.seen, src[0]);
	JOIN(tb.thread, "the thread whose fault was queued during the stop");
	if (poison) {
		ck_assert_msg(tb.sigbus, "the queued fault read %#x instead of "
			      "getting SIGBUS", tb.seen);
		ck_assert_uint_ge(STAT(loop, pages_poisoned), 1);
	} else {
		ck_assert_msg(!tb.sigbus, "the queued fault got SIGBUS");
		ck_assert_uint_eq(tb.seen, image[5 * ps]);
		check_mem(pb + 5 * ps, image + 5 * ps, ps, ps,
			  "the page served by stop");
	}

	uffd_loop_free(loop);
	sigbus_restore();
	tsrc_fini(&ts);
	uffd_handle_free(h);
out:
	close(fd);
	munmap(pa, len);
	munmap(pb, len);
	munmap(src, len);
	munmap(image, len);
}

START_TEST(stop_poison_queued_faults)
{
	stop_queued_run(_i, __func__, true, false);
}
END_TEST

START_TEST(stop_resolve_queued_faults_buffer)
{
	stop_queued_run(_i, __func__, false, false);
}
END_TEST

START_TEST(stop_resolve_queued_faults_file)
{
	stop_queued_run(_i, __func__, false, true);
}
END_TEST

/* ========================================================================
 * 8. A failing source
 * ======================================================================== */

/* _i of the failure tests: driver * 3 + how the source fails. */
enum fail_mode { FM_RETURN, FM_SYNC, FM_ASYNC, FM_COUNT };
static const char *const fail_mode_names[FM_COUNT] = {
	"fetch returns -EIO", "fetch completes with -EIO before returning",
	"completed with -EIO from another thread",
};

static void tsrc_set_failing(struct tsrc *s, enum fail_mode m, long page)
{
	s->fail_page = page;
	s->fail_err = -EIO;
	s->fail_how = m == FM_RETURN ? FAIL_RETURN : FAIL_COMPLETE;
}

struct err_ctx {
	atomic_int calls;
	struct uffd_region *region;
	uint64_t offset;
	int err;
};

static void err_cb(void *arg, struct uffd_region *region, uint64_t offset,
		   int err)
{
	struct err_ctx *c = arg;

	c->region = region;
	c->offset = offset;
	c->err = err;
	atomic_fetch_add(&c->calls, 1);
}

/* In a child: its own handle and loop; the bad page must kill it with
 * SIGBUS. Exit codes name what went wrong instead. */
static int fail_poison_child(int drv, enum fail_mode m)
{
	size_t ps = test_page(), n = 8, len = n * ps;
	unsigned char *src = pattern(len, 26);
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct uffd_loop_config *lc = NULL;
	struct uffd_region_config *cfg = NULL;
	struct uffd_handle *h = NULL;
	struct uffd_loop *loop = NULL;
	struct uffd_source *s = NULL;
	static struct tsrc ts;

	if (p == MAP_FAILED || uffd_handle_new(NULL, &h))
		return 10;
	tsrc_init(&ts, src, len, ps);
	tsrc_set_failing(&ts, m, 2);
	if ((m == FM_ASYNC && tsrc_net_start(&ts)) || tsrc_source_raw(&ts, &s))
		return 11;
	if (uffd_loop_config_new(&lc) ||
	    uffd_loop_config_set_driver(lc, drivers[drv].driver) ||
	    uffd_loop_config_set_fail_policy(lc, UFFD_FAIL_POISON) ||
	    uffd_loop_new(h, lc, &loop))
		return 12;
	if (uffd_region_config_new(&cfg) ||
	    uffd_region_config_set_range(cfg, p, len) ||
	    uffd_region_config_set_source(cfg, s, 0) ||
	    uffd_region_config_set_readahead(cfg, 0, false) ||
	    uffd_loop_add_region(loop, cfg, NULL) || uffd_loop_start(loop))
		return 13;
	signal(SIGBUS, SIG_DFL);
	if (*(volatile unsigned char *)p != src[0])
		return 14;
	(void)*(volatile unsigned char *)(p + 2 * ps);
	return 15; /* it read something */
}

START_TEST(fail_poison_kills_child)
{
	int drv = _i / FM_COUNT, status;
	enum fail_mode m = (enum fail_mode)(_i % FM_COUNT);
	pid_t pid;

	if (!driver_built(drv, __func__))
		return;
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(fail_poison_child(drv, m));
	status = reap_child(pid);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS,
		      "[%s, %s] the child was not killed by SIGBUS: %s %d "
		      "(exit 15: the bad page read data; 14: a good page "
		      "read wrong data)", drivers[drv].name,
		      fail_mode_names[m],
		      WIFSIGNALED(status) ? "signal" : "exit status",
		      WIFSIGNALED(status) ? WTERMSIG(status)
					  : WEXITSTATUS(status));
}
END_TEST

/* FAIL_ZERO (and FAIL_POISON, caught in a thread): the bad page reads as
 * zeros (SIGBUS); the others are served; the error callback and the
 * counters say what happened. */
static void fail_in_process_run(int drv, enum fail_mode m, bool poison,
				const char *test)
{
	size_t ps = test_page(), n = 8, len = n * ps;
	struct uffd_loop_config *lc = loop_config(drv, 1, test);
	unsigned char *p = map_anon(len), *src = pattern(len, 27);
	struct uffd_region_config *cfg;
	struct uffd_loop_stats st;
	struct uffd_handle *h;
	struct uffd_loop *loop;
	struct uffd_source *s;
	struct uffd_region *r;
	struct err_ctx ec;
	struct tsrc ts;

	if (!lc)
		goto out;
	memset(&ec, 0, sizeof(ec));
	ck_assert_int_eq(uffd_loop_config_set_fail_policy(
				 lc, poison ? UFFD_FAIL_POISON : UFFD_FAIL_ZERO),
			 0);
	ck_assert_int_eq(uffd_loop_config_set_error_callback(lc, err_cb, &ec),
			 0);
	h = open_handle();
	tsrc_init(&ts, src, len, ps);
	tsrc_set_failing(&ts, m, 2);
	if (m == FM_ASYNC)
		ck_assert_int_eq(tsrc_net_start(&ts), 0);
	s = tsrc_source(&ts);
	loop = new_loop(h, lc);
	cfg = region_cfg(p, len, s, 0);
	uffd_source_free(s);
	ck_assert_int_eq(uffd_region_config_set_readahead(cfg, 0, false), 0);
	r = add_region(loop, cfg);
	start_loop(loop);

	check_mem(p, src, 2 * ps, ps, "the pages before the bad one");
	if (poison) {
		struct bus_toucher t;

		sigbus_catch();
		bus_toucher_start(&t, p + 2 * ps);
		JOIN(t.thread, "the reader of the bad page");
		ck_assert_msg(t.sigbus, "[%s] the bad page read %#x instead of "
			      "raising SIGBUS", fail_mode_names[m], t.seen);
		/* and it stays poisoned */
		bus_toucher_start(&t, p + 2 * ps + 100);
		JOIN(t.thread, "the second reader of the bad page");
		ck_assert(t.sigbus);
		sigbus_restore();
	} else {
		volatile unsigned char c = p[2 * ps];

		(void)c;
		ck_assert_msg(all_zero(p + 2 * ps, ps),
			      "[%s] the bad page does not read as zeros "
			      "(first byte %#x)", fail_mode_names[m],
			      p[2 * ps]);
	}
	check_mem(p + 3 * ps, src + 3 * ps, len - 3 * ps, ps,
		  "the pages after the bad one");
	ck_assert_int_eq(uffd_loop_stop(loop), 0);
	ck_assert_int_eq(atomic_load(&ec.calls), 1);
	ck_assert_int_eq(atomic_load(&ec.calls), 1);
	ck_assert_ptr_eq(ec.region, r);
	ck_assert_uint_eq(ec.offset, 2 * ps);
	ck_assert_int_eq(ec.err, -EIO);
	st = get_stats(loop);
	ck_assert_uint_eq(st.fetch_failures, 1);
	ck_assert_uint_eq(st.pages_poisoned, poison ? 1 : 0);
	ck_assert_uint_eq(st.pages_zeroed, poison ? 0 : 1);

	uffd_loop_free(loop);
	tsrc_fini(&ts);
	uffd_handle_free(h);
out:
	munmap(p, len);
	munmap(src, len);
}

START_TEST(fail_zero_reads_zeros)
{
	fail_in_process_run(_i / FM_COUNT, (enum fail_mode)(_i % FM_COUNT),
			    false, __func__);
}
END_TEST

START_TEST(fail_poison_sigbus_in_thread)
{
	fail_in_process_run(_i / FM_COUNT, (enum fail_mode)(_i % FM_COUNT),
			    true, __func__);
}
END_TEST

/* A page that fails only brings down itself: a readahead window that
 * runs over it must not zero (or poison) the good page that faulted. */
START_TEST(fail_in_readahead_spares_faulting_page)
{
	size_t ps = test_page(), n = 16, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 1);
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(len), *src = pattern(len, 28);
	struct uffd_region_config *cfg;
	struct uffd_loop *loop;
	struct uffd_source *s;
	struct tsrc ts;

	ck_assert_int_eq(uffd_loop_config_set_fail_policy(lc, UFFD_FAIL_ZERO),
			 0);
	tsrc_init(&ts, src, len, ps);
	tsrc_set_failing(&ts, FM_RETURN, 5);
	s = tsrc_source(&ts);
	loop = new_loop(h, lc);
	cfg = region_cfg(p, len, s, 0);
	uffd_source_free(s);
	ck_assert_int_eq(uffd_region_config_set_readahead(cfg, 8, false), 0);
	add_region(loop, cfg);
	start_loop(loop);

	/* the fault on page 2 reads ahead over page 5 */
	check_mem(p + 2 * ps, src + 2 * ps, ps, ps,
		  "good page 2, whose readahead window held bad page 5");
	check_mem(p + 6 * ps, src + 6 * ps, 2 * ps, ps,
		  "good pages 6, 7 in the same window");
	ck_assert(all_zero(p + 5 * ps, ps));

	uffd_loop_free(loop);
	tsrc_fini(&ts);
	uffd_handle_free(h);
	munmap(p, len);
	munmap(src, len);
}
END_TEST

/* Every fetch fails, completed later on another thread (so prefetch
 * windows are still in flight while the cursor moves on): the windows are
 * cut to one page and their other pages left for later. Those must still
 * be fetched and settled by the policy: the restore completes instead of
 * spinning forever. */
struct failing_src {
	int pipe[2];
	atomic_uint fetches;
	pthread_t thread;
};

/* Holds the first fetch until a second one comes (the prefetch cursor
 * has moved past the first window by then), then fails both, and every
 * later one at once. */
static void *failing_src_main(void *arg)
{
	struct failing_src *fs = arg;
	struct uffd_fetch *f, *held = NULL;
	bool released = false;

	while (read(fs->pipe[0], &f, sizeof(f)) == sizeof(f)) {
		if (!held && !released) {
			held = f;
			continue;
		}
		if (held)
			uffd_fetch_complete(held, -EIO);
		held = NULL;
		released = true;
		uffd_fetch_complete(f, -EIO);
	}
	return NULL;
}

static int fail_every_fetch(void *arg, struct uffd_fetch *f)
{
	struct failing_src *fs = arg;

	atomic_fetch_add(&fs->fetches, 1);
	return write(fs->pipe[1], &f, sizeof(f)) == sizeof(f) ? 0 : -EIO;
}

START_TEST(prefetch_of_failing_windows_completes)
{
	static const struct uffd_source_ops ops = { .fetch = fail_every_fetch };
	size_t ps = test_page(), n = 256, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 1);
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(len);
	struct uffd_region_config *cfg;
	struct uffd_loop_stats st;
	struct uffd_loop *loop;
	struct uffd_source *s;
	struct failing_src fs = { .fetches = 0 };

	ck_assert_int_eq(pipe2(fs.pipe, O_CLOEXEC), 0);
	ck_assert_int_eq(pthread_create(&fs.thread, NULL, failing_src_main, &fs),
			 0);
	ck_assert_int_eq(uffd_loop_config_set_fail_policy(lc, UFFD_FAIL_ZERO),
			 0);
	ck_assert_int_eq(uffd_source_new_custom(&ops, &fs, &s), 0);
	ck_assert_uint_eq(uffd_source_get_size(s), UINT64_MAX);
	loop = new_loop(h, lc);
	cfg = region_cfg(p, len, s, 0);
	uffd_source_free(s);
	ck_assert_int_eq(uffd_region_config_set_prefetch(cfg, true), 0);
	add_region(loop, cfg);
	start_loop(loop);
	/* a bound, not a synchronisation: the restore ends by itself */
	ck_assert_msg(uffd_loop_wait_complete(loop, 50000) == 0,
		      "wait_complete: %s", uffd_last_error());
	ck_assert_int_eq(uffd_loop_stop(loop), 0);
	ck_assert_int_eq(uffd_loop_get_stats(loop, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.pages_zeroed, n);
	ck_assert_uint_eq(st.fetch_failures, n);
	ck_assert_uint_gt(st.fetch_retries, 0);
	ck_assert_uint_eq(atomic_load(&fs.fetches), n + st.fetch_retries);
	ck_assert(all_zero(p, len));
	uffd_loop_free(loop);
	close(fs.pipe[1]);
	pthread_join(fs.thread, NULL);
	close(fs.pipe[0]);
	uffd_handle_free(h);
	munmap(p, len);
}
END_TEST

/* ========================================================================
 * 9. Statistics, working-set record and replay
 * ======================================================================== */

START_TEST(stats_sequential_readahead)
{
	size_t ps = test_page(), n = 64, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 1);
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(len), *src = pattern(len, 29);
	struct uffd_source *s = buffer_source(src, len);
	struct uffd_loop *loop = new_loop(h, lc);
	struct uffd_region_config *cfg = region_cfg(p, len, s, 0);
	struct uffd_loop_stats st;

	uffd_source_free(s);
	ck_assert_int_eq(uffd_region_config_set_readahead(cfg, 8, false), 0);
	add_region(loop, cfg);
	start_loop(loop);
	touch_pages(p, len, ps);
	check_mem(p, src, len, ps, "sequential touch");
	uffd_loop_stop(loop);
	st = get_stats(loop);
	ck_assert_uint_eq(st.faults_missing, n / 8);
	ck_assert_uint_eq(st.pages_resolved, n);
	ck_assert_uint_eq(st.bytes_resolved, len);
	ck_assert_uint_eq(st.readahead_pages, n - n / 8);
	ck_assert_uint_eq(latency_total(&st), n / 8);
	ck_assert_uint_eq(st.readahead_hits, 0);
	ck_assert_uint_eq(st.eexist_races, 0);
	ck_assert_uint_eq(st.prefetch_pages, 0);
	ck_assert_uint_eq(st.faults_minor + st.faults_wp + st.faults_unknown,
			  0);
	ck_assert_uint_eq(st.events_remove + st.events_unmap +
				  st.events_remap + st.events_fork,
			  0);

	uffd_loop_free(loop);
	uffd_handle_free(h);
	munmap(p, len);
	munmap(src, len);
}
END_TEST

START_TEST(record_then_replay_working_set)
{
	size_t ps = test_page(), n = 64, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 1);
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(len), *p2 = map_anon(len);
	unsigned char *src = pattern(len, 30);
	struct uffd_source *s = buffer_source(src, len);
	struct uffd_loop *loop = new_loop(h, lc);
	struct uffd_region_config *cfg = region_cfg(p, len, s, 0);
	uint64_t touched[13], ws[64], head[4];
	size_t nt = 0, nws = 0, seq_n = 0, *seq;
	struct uffd_region *r;
	struct tsrc ts;
	int ret;

	uffd_source_free(s);
	ck_assert_int_eq(uffd_region_config_set_readahead(cfg, 0, false), 0);
	ck_assert_int_eq(uffd_region_config_set_record(cfg, true), 0);
	r = add_region(loop, cfg);
	start_loop(loop);
	/* strided, from the top down: 61, 56, ..., 1 */
	for (long pg = 61; pg >= 0; pg -= 5) {
		touched[nt++] = (uint64_t)pg;
		check_mem(p + pg * ps, src + pg * ps, ps, ps, "recorded page");
	}
	/* touching them again records nothing */
	for (size_t k = 0; k < nt; k++)
		(void)*(volatile unsigned char *)(p + touched[k] * ps);
	ret = uffd_region_get_working_set(r, ws, 64, &nws);
	ck_assert_msg(ret == 0, "get_working_set: %s", uffd_last_error());
	ck_assert_uint_eq(nws, nt);
	for (size_t k = 0; k < nt; k++)
		ck_assert_msg(ws[k] == touched[k], "working set[%zu] = %llu, "
			      "touched %llu", k, (unsigned long long)ws[k],
			      (unsigned long long)touched[k]);
	/* a smaller array gets the head, n says how many there are */
	nws = 0;
	ck_assert_int_eq(uffd_region_get_working_set(r, head, 4, &nws), 0);
	ck_assert_uint_eq(nws, nt);
	ck_assert(!memcmp(head, touched, sizeof(head)));
	uffd_loop_free(loop);

	/* replay on fresh memory: those pages are fetched first, in order */
	LOOP_CONFIG(lc, _i, 1);
	tsrc_init(&ts, src, len, ps);
	s = tsrc_source(&ts);
	loop = new_loop(h, lc);
	cfg = region_cfg(p2, len, s, 0);
	uffd_source_free(s);
	ck_assert_int_eq(uffd_region_config_set_prefetch_order(cfg, ws, nt), 0);
	r = add_region(loop, cfg);
	start_loop(loop);
	ret = uffd_loop_wait_complete(loop, TEST_WAIT_MS);
	ck_assert_msg(ret == 0, "wait_complete: %s", uffd_last_error());
	check_mem(p2, src, len, ps, "replayed region");
	ck_assert_uint_eq(uffd_region_get_resolved_pages(r), n);

	seq = calloc(tsrc_pages_fetched(&ts), sizeof(*seq));
	for (size_t i = 0; i < ts.nlog; i++)
		for (size_t k = 0; k < ts.log[i].len / ps; k++)
			seq[seq_n++] = ts.log[i].off / ps + k;
	ck_assert_uint_ge(seq_n, n);
	for (size_t k = 0; k < nt; k++)
		ck_assert_msg(seq[k] == ws[k], "fetch #%zu was page %zu, the "
			      "recorded order says page %llu (the order's "
			      "pages are not fetched first)", k, seq[k],
			      (unsigned long long)ws[k]);

	uffd_loop_free(loop);
	tsrc_fini(&ts);
	free(seq);
	uffd_handle_free(h);
	munmap(p, len);
	munmap(p2, len);
	munmap(src, len);
}
END_TEST

/* ========================================================================
 * 10. Embedding
 * ======================================================================== */

/* _i: driver * 2 + (0: buffer source, 1: file source). */
/* Embedded, a restore by prefetch alone completes: each step leaves the
 * loop's fd readable while background work is left. */
START_TEST(embed_prefetch_completes)
{
	size_t ps = test_page(), n = 256, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 1);
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(len), *src = pattern(len, 47);
	struct uffd_source *s = buffer_source(src, len);
	struct uffd_region_config *cfg = region_cfg(p, len, s, 0);
	struct uffd_loop *loop = new_loop(h, lc);
	struct pollfd pfd;

	uffd_source_free(s);
	ck_assert_int_eq(uffd_region_config_set_prefetch(cfg, true), 0);
	add_region(loop, cfg);
	pfd = (struct pollfd){ .fd = uffd_loop_get_fd(loop), .events = POLLIN };
	while (uffd_loop_wait_complete(loop, 0) == -ETIMEDOUT) {
		ck_assert_msg(poll(&pfd, 1, TEST_WAIT_MS) == 1,
			      "[%s] the loop's fd stayed quiet with %zu of %zu "
			      "pages prefetched", drivers[_i].name,
			      (size_t)STAT(loop, prefetch_pages), n);
		ck_assert_int_ge(uffd_loop_process(loop), 0);
	}
	check_mem(p, src, len, ps, "prefetched through uffd_loop_process()");
	uffd_loop_free(loop);
	uffd_handle_free(h);
	munmap(p, len);
	munmap(src, len);
}
END_TEST

START_TEST(embed_poll_and_process)
{
	int drv = _i / 2;
	bool file = _i % 2;
	size_t ps = test_page(), n = 32, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, drv, 1);
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(len), *image;
	int fd = make_image(len, 31, &image);
	struct uffd_source *s = file ? fd_source(fd, 0, len)
				     : buffer_source(image, len);
	struct uffd_loop *loop = new_loop(h, lc);
	struct pollfd fds[2];
	struct walker w;
	int loop_fd, efd;

	add_region(loop, region_cfg(p, len, s, 0));
	uffd_source_free(s);
	loop_fd = uffd_loop_get_fd(loop);
	ck_assert_int_ge(loop_fd, 0);
	efd = eventfd(0, EFD_CLOEXEC);
	ck_assert_int_ge(efd, 0);
	/* the reader writes the eventfd once done */
	walker_start_efd(&w, p, image, ps, NULL, n, 1, efd);
	fds[0] = (struct pollfd){ .fd = loop_fd, .events = POLLIN };
	fds[1] = (struct pollfd){ .fd = efd, .events = POLLIN };
	for (;;) {
		int ret = poll(fds, 2, TEST_WAIT_MS);

		ck_assert_msg(ret > 0, "[%s, %s source] nothing to process for "
			      "%d ms and the reader is still blocked (%zu of "
			      "%zu pages resolved)", drivers[drv].name,
			      file ? "file" : "buffer", TEST_WAIT_MS,
			      (size_t)STAT(loop, pages_resolved), n);
		if (fds[1].revents & POLLIN)
			break;
		if (fds[0].revents & POLLIN) {
			ret = uffd_loop_process(loop);
			ck_assert_msg(ret >= 0, "process: %s",
				      uffd_last_error());
		}
	}
	close(efd);
	walker_join(&w, "the reader");
	check_mem(p, image, len, ps, "served by uffd_loop_process()");
	ck_assert_uint_eq(STAT(loop, pages_resolved), n);

	uffd_loop_free(loop);
	uffd_handle_free(h);
	close(fd);
	munmap(p, len);
	munmap(image, len);
}
END_TEST

struct runner {
	pthread_t thread;
	struct uffd_loop *loop;
	int ret;
};

static void *runner_main(void *arg)
{
	struct runner *r = arg;

	r->ret = uffd_loop_run(r->loop);
	return NULL;
}

START_TEST(run_on_thread_stop_from_another)
{
	size_t ps = test_page(), n = 8, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 1);
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(len), *src = pattern(len, 32);
	struct uffd_source *s = buffer_source(src, len);
	struct uffd_loop *loop = new_loop(h, lc);
	struct runner run = { .loop = loop, .ret = 1 };
	struct runner run2 = { .loop = loop, .ret = 1 };
	struct toucher t;

	add_region(loop, region_cfg(p, len, s, 0));
	uffd_source_free(s);
	ck_assert_int_eq(pthread_create(&run.thread, NULL, runner_main, &run),
			 0);
	/* served: the loop runs */
	toucher_start(&t, p + 3 * ps, false, 0);
	JOIN(t.thread, "the reader served by uffd_loop_run()");
	ck_assert_uint_eq(t.seen, src[3 * ps]);
	/* a second uffd_loop_run() meanwhile is refused */
	ck_assert_int_eq(pthread_create(&run2.thread, NULL, runner_main, &run2),
			 0);
	JOIN(run2.thread, "a second uffd_loop_run()");
	ck_assert_int_eq(run2.ret, -EBUSY);
	ck_assert_int_eq(uffd_loop_stop(loop), 0);
	JOIN(run.thread, "uffd_loop_run() after uffd_loop_stop()");
	ck_assert_int_eq(run.ret, 0);

	uffd_loop_free(loop);
	uffd_handle_free(h);
	munmap(p, len);
	munmap(src, len);
}
END_TEST

/* ========================================================================
 * Further engine behaviour
 * ======================================================================== */

/* A toucher that waits at a barrier first, so that many fault at once. */
struct burst_toucher {
	pthread_t thread;
	pthread_barrier_t *barrier;
	const volatile unsigned char *addr;
	unsigned char seen;
};

static void *burst_touch_main(void *arg)
{
	struct burst_toucher *t = arg;

	pthread_barrier_wait(t->barrier);
	t->seen = t->addr[0];
	return NULL;
}

/* More faults queued at once than the loop reads in one batch: the
 * single worker is held in a gated fetch while they queue up, then let go.
 * Several rounds, as the driver may or may not see them as one wakeup. */
START_TEST(burst_of_faults_beyond_one_batch)
{
	size_t ps = test_page(), n = 128, len = n * ps, nt = 100;
	struct uffd_loop_config *lc;

	if (!driver_built(_i, __func__))
		return;
	for (int round = 0; round < 4; round++) {
		struct uffd_handle *h = open_handle();
		unsigned char *p = map_anon(len), *src = pattern(len, 33);
		struct burst_toucher *t = calloc(nt, sizeof(*t));
		struct toucher first;
		pthread_barrier_t barrier;
		struct uffd_region_config *cfg;
		struct uffd_loop *loop;
		struct uffd_source *s;
		struct tsrc ts;

		lc = loop_config(_i, 1, __func__);
		tsrc_init(&ts, src, len, ps);
		ts.gate_page[0] = 0;
		/* odd rounds: the held worker runs no task work meanwhile */
		if (round % 2)
			tsrc_gates_d_state(&ts);
		s = tsrc_source(&ts);
		loop = new_loop(h, lc);
		cfg = region_cfg(p, len, s, 0);
		uffd_source_free(s);
		ck_assert_int_eq(uffd_region_config_set_readahead(cfg, 0, false),
				 0);
		add_region(loop, cfg);
		start_loop(loop);

		toucher_start(&first, p, false, 0);
		ck_assert_msg(tsrc_wait(&ts, false),
			      "the gated fetch never started");
		ck_assert_int_eq(pthread_barrier_init(&barrier, NULL,
						      (unsigned)nt), 0);
		for (size_t k = 1; k < nt; k++) {
			t[k].barrier = &barrier;
			t[k].addr = p + k * ps;
			ck_assert_int_eq(pthread_create(&t[k].thread, NULL,
							burst_touch_main,
							&t[k]),
					 0);
		}
		pthread_barrier_wait(&barrier); /* all fault at once */
		WAIT_UNTIL(fdinfo_count(h, "pending") == (long)(nt - 1),
			   "all faults to be queued");
		tsrc_open_gate(&ts);
		JOIN(first.thread, "the reader of page 0");
		for (size_t k = 1; k < nt; k++) {
			ck_assert_msg(timed_join(t[k].thread, TEST_WAIT_MS),
				      "round %d: the reader of page %zu is "
				      "still blocked (%ld faults unread in the "
				      "kernel queue, %ld threads asleep)",
				      round, k, fdinfo_count(h, "pending"),
				      fdinfo_count(h, "total"));
			ck_assert_uint_eq(t[k].seen, src[k * ps]);
		}
		pthread_barrier_destroy(&barrier);

		uffd_loop_free(loop);
		tsrc_fini(&ts);
		uffd_handle_free(h);
		free(t);
		munmap(p, len);
		munmap(src, len);
	}
}
END_TEST

/* uffd_loop_free() unregisters: later faults are ordinary ones. */
START_TEST(free_unregisters_regions)
{
	size_t ps = test_page(), n = 8, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 2);
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(len), *src = pattern(len, 34);
	struct uffd_source *s = buffer_source(src, len);
	struct uffd_loop *loop = new_loop(h, lc);
	struct uffd_region_config *cfg = region_cfg(p, len, s, 0);

	uffd_source_free(s);
	ck_assert_int_eq(uffd_region_config_set_readahead(cfg, 0, false), 0);
	add_region(loop, cfg);
	start_loop(loop);
	check_mem(p, src, 2 * ps, ps, "pages 0, 1");
	uffd_loop_free(loop);
	check_free_unregistered(h, p, 6, "freed loop");
	ck_assert_uint_eq(p[6 * ps], 0);
	munmap(p, len);
	munmap(src, len);
}
END_TEST

/* A removed region is forgotten: its range can be added again, and
 * removing it again is -ENOENT. */
START_TEST(remove_region_then_add_again)
{
	size_t ps = test_page(), n = 8, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 1);
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(len), *src = pattern(len, 35);
	struct uffd_source *s = buffer_source(src, len);
	struct uffd_loop *loop = new_loop(h, lc);
	struct uffd_region *r = add_region(loop, region_cfg(p, len, s, 0));
	struct uffd_region *r2 = NULL;
	struct uffd_region_config *cfg;
	int ret;

	start_loop(loop);
	check_mem(p, src, ps, ps, "page 0");
	ck_assert_int_eq(uffd_loop_remove_region(loop, r), 0);
	ck_assert_int_eq(uffd_handle_get_range_ops(h, p, len, NULL, NULL),
			 -ENOENT);
	cfg = region_cfg(p + ps, len - ps, s, ps);
	ret = uffd_loop_add_region(loop, cfg, &r2);
	uffd_region_config_free(cfg);
	ck_assert_msg(ret == 0, "adding a removed region's range again: %d %s",
		      ret, uffd_last_error());
	check_mem(p + ps, src + ps, len - ps, ps, "the region added again");

	uffd_source_free(s);
	uffd_loop_free(loop);
	uffd_handle_free(h);
	munmap(p, len);
	munmap(src, len);
}
END_TEST

/* Threads of this process, from /proc/self/task. */
static size_t task_count(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	size_t n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* threads 0: one worker per CPU of the caller's affinity mask, and they
 * serve as one worker does. */
START_TEST(threads_per_cpu)
{
	size_t ps = test_page(), n = 128, len = n * ps, before, cpus;
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(len), *src = pattern(len, 21);
	size_t *order = calloc(n, sizeof(*order));
	struct uffd_source *s = buffer_source(src, len);
	struct uffd_loop_config *lc;
	struct uffd_loop *loop;
	struct walker w[2];
	cpu_set_t set;

	LOOP_CONFIG(lc, _i, 1);
	ck_assert_int_eq(sched_getaffinity(0, sizeof(set), &set), 0);
	cpus = (size_t)CPU_COUNT(&set);
	ck_assert_int_eq(uffd_loop_config_set_threads(lc, 0), 0);
	loop = new_loop(h, lc);
	add_region(loop, region_cfg(p, len, s, 0));
	before = task_count();
	start_loop(loop);
	ck_assert_uint_eq(task_count() - before, cpus < 64 ? cpus : 64);
	for (size_t k = 0; k < n; k++)
		order[k] = (k * 37) % n;
	walker_start(&w[0], p, src, ps, order, n, 1);
	walker_start(&w[1], p, src, ps, order, n, 1);
	walker_join(&w[0], "first reader");
	walker_join(&w[1], "second reader");
	check_mem(p, src, len, ps, "region");
	uffd_loop_free(loop);
	uffd_source_free(s);
	uffd_handle_free(h);
	free(order);
	munmap(p, len);
	munmap(src, len);
}
END_TEST

/* ========================================================================
 * 11. Errors
 * ======================================================================== */

START_TEST(errors_loop_new_and_config)
{
	struct uffd_handle *h = open_handle();
	struct uffd_loop_config *lc = NULL;
	struct uffd_loop *loop = NULL;
	int ret;

	ck_assert_uffd_err(uffd_loop_new(NULL, NULL, &loop), EINVAL, "NULL");
	ck_assert_uffd_err(uffd_loop_new(h, NULL, NULL), EINVAL, "NULL");
	ck_assert_uffd_err(uffd_loop_config_new(NULL), EINVAL, "NULL");

	ck_assert_int_eq(uffd_loop_config_new(&lc), 0);
	ck_assert_uffd_err(uffd_loop_config_set_threads(lc, 65), EINVAL,
			   "threads");
	ck_assert_int_eq(uffd_loop_config_set_threads(lc, 1), 0);
	ck_assert_int_eq(uffd_loop_config_set_threads(lc, 64), 0);
	ck_assert_uffd_err(uffd_loop_config_set_driver(
				   lc, (enum uffd_loop_driver)7),
			   EINVAL, "unknown driver");
	ck_assert_int_eq(uffd_loop_config_set_driver(lc, UFFD_DRIVER_POLL), 0);
	ret = uffd_loop_config_set_driver(lc, UFFD_DRIVER_URING);
	ck_assert_msg(ret == 0 || ret == -ENOTSUP, "set_driver(URING): %d",
		      ret);
	ck_assert_uffd_err(uffd_loop_config_set_fail_policy(
				   lc, (enum uffd_fail_policy)9),
			   EINVAL, "unknown failure policy");
	ck_assert_uffd_err(uffd_loop_config_set_stop_policy(
				   lc, (enum uffd_stop_policy)9),
			   EINVAL, "unknown stop policy");
	ck_assert_int_eq(uffd_loop_config_set_fail_policy(lc, UFFD_FAIL_ZERO),
			 0);
	ck_assert_int_eq(uffd_loop_config_set_stop_policy(lc,
							  UFFD_STOP_POISON),
			 0);
	ck_assert_uffd_err(uffd_loop_config_set_threads(NULL, 1), EINVAL,
			   "NULL");
	ck_assert_uffd_err(uffd_loop_config_set_driver(NULL, UFFD_DRIVER_POLL),
			   EINVAL, "NULL");
	ck_assert_uffd_err(uffd_loop_config_set_fail_policy(NULL,
							    UFFD_FAIL_ZERO),
			   EINVAL, "NULL");
	ck_assert_uffd_err(uffd_loop_config_set_stop_policy(NULL,
							    UFFD_STOP_POISON),
			   EINVAL, "NULL");
	ck_assert_uffd_err(uffd_loop_config_set_error_callback(NULL, NULL,
							       NULL),
			   EINVAL, "NULL");
	ck_assert_uffd_err(uffd_loop_config_set_fork_callback(NULL, NULL, NULL),
			   EINVAL, "NULL");
	uffd_loop_config_free(lc);

	/* the NULL-loop entry points */
	ck_assert_int_eq(uffd_loop_start(NULL), -EINVAL);
	ck_assert_int_eq(uffd_loop_run(NULL), -EINVAL);
	ck_assert_int_eq(uffd_loop_stop(NULL), -EINVAL);
	ck_assert_int_eq(uffd_loop_process(NULL), -EINVAL);
	ck_assert_int_eq(uffd_loop_get_fd(NULL), -EINVAL);
	ck_assert_int_eq(uffd_loop_wait_complete(NULL, 0), -EINVAL);
	ck_assert_ptr_null(uffd_loop_get_handle(NULL));
	ck_assert_int_eq(uffd_loop_add_region(NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(uffd_loop_remove_region(NULL, NULL), -EINVAL);
	ck_assert_ptr_null(uffd_region_get_addr(NULL));
	ck_assert_uint_eq(uffd_region_get_len(NULL), 0);
	ck_assert_uint_eq(uffd_region_get_resolved_pages(NULL), 0);

	/* free(NULL)s */
	uffd_loop_free(NULL);
	uffd_loop_config_free(NULL);
	uffd_region_config_free(NULL);
	uffd_source_free(NULL);
	uffd_handle_free(h);
}
END_TEST

START_TEST(errors_sources_and_region_config)
{
	struct uffd_region_config *cfg = NULL;
	struct uffd_source *s = NULL;
	struct uffd_source_ops no_fetch = { 0 };
	char buf[16];

	ck_assert_uffd_err(uffd_source_new_buffer(NULL, 16, &s), EINVAL,
			   "buffer");
	ck_assert_uffd_err(uffd_source_new_buffer(buf, 0, &s), EINVAL,
			   "buffer");
	ck_assert_uffd_err(uffd_source_new_buffer(buf, 16, NULL), EINVAL,
			   "buffer");
	ck_assert_uffd_err(uffd_source_new_fd(-1, 0, 16, &s), EBADF, "not open");
	ck_assert_uffd_err(uffd_source_new_fd(0, 0, 0, &s), EINVAL, "length 0");
	ck_assert_uffd_err(uffd_source_new_fd(0, UINT64_MAX, 2, &s), EINVAL,
			   "overflow");
	ck_assert_uffd_err(uffd_source_new_zero(NULL), EINVAL, "NULL");
	ck_assert_uint_eq(uffd_source_get_size(NULL), 0);
	ck_assert_int_eq(uffd_source_new_buffer(buf, 16, &s), 0);
	ck_assert_uint_eq(uffd_source_get_size(s), 16);
	uffd_source_free(s);
	ck_assert_int_eq(uffd_source_new_fd(0, 4096, 8192, &s), 0);
	ck_assert_uint_eq(uffd_source_get_size(s), 8192);
	uffd_source_free(s);
	ck_assert_int_eq(uffd_source_new_zero(&s), 0);
	ck_assert_uint_eq(uffd_source_get_size(s), UINT64_MAX);
	uffd_source_free(s);
	s = NULL;
	ck_assert_uffd_err(uffd_source_new_custom(NULL, NULL, &s), EINVAL,
			   "NULL ops");
	ck_assert_uffd_err(uffd_source_new_custom(&no_fetch, NULL, &s), EINVAL,
			   "fetch");

	ck_assert_int_eq(uffd_region_config_new(&cfg), 0);
	ck_assert_int_eq(uffd_region_config_set_range(cfg, buf, 0), -EINVAL);
	ck_assert_int_eq(uffd_region_config_set_range(cfg, (void *)-4096,
						      8192),
			 -EINVAL);
	ck_assert_uffd_err(uffd_region_config_set_modes(cfg, 0), EINVAL,
			   "modes");
	ck_assert_uffd_err(uffd_region_config_set_modes(cfg, 8), EINVAL,
			   "modes");
	ck_assert_uffd_err(uffd_region_config_set_source(cfg, NULL, 0), EINVAL,
			   "NULL");
	ck_assert_uffd_err(uffd_region_config_set_prefetch_order(cfg, NULL, 3),
			   EINVAL, "NULL");
	ck_assert_int_eq(uffd_region_config_set_prefetch_order(cfg, NULL, 0),
			 0);
	ck_assert_uffd_err(uffd_region_config_set_remote(
				   cfg, UFFD_BACKEND_ANON_PRIVATE, 3000),
			   EINVAL, "power of two");
	ck_assert_int_eq(uffd_region_config_set_readahead(NULL, 1, true),
			 -EINVAL);
	ck_assert_int_eq(uffd_region_config_set_record(NULL, true), -EINVAL);
	ck_assert_int_eq(uffd_region_config_set_prefetch(NULL, true), -EINVAL);
	ck_assert_int_eq(uffd_region_config_set_alias(NULL, buf), -EINVAL);
	ck_assert_int_eq(uffd_region_config_set_fault_callback(NULL, NULL,
							       NULL),
			 -EINVAL);
	uffd_region_config_free(cfg);
}
END_TEST

START_TEST(errors_add_region)
{
	size_t ps = test_page(), len = 8 * ps;
	struct uffd_handle *h = open_handle();
	struct uffd_loop *loop = new_loop(h, NULL);
	struct uffd_loop *other = new_loop(h, NULL);
	unsigned char *p = map_anon(len), *q = map_anon(len);
	unsigned char *mixed = map_anon(2 * ps), *src = pattern(len, 36);
	struct uffd_source *s = buffer_source(src, len);
	struct uffd_source *small = buffer_source(src, len - ps);
	struct uffd_region_config *cfg;
	struct uffd_region *r, *rq, *out = NULL;
	uint64_t page = 0;
	size_t nws = 0;
	void *m;

	/* no range */
	ck_assert_int_eq(uffd_region_config_new(&cfg), 0);
	ck_assert_int_eq(uffd_region_config_set_source(cfg, s, 0), 0);
	ck_assert_uffd_err(uffd_loop_add_region(loop, cfg, &out), EINVAL,
			   "no range");
	uffd_region_config_free(cfg);
	/* MISSING with neither a source nor a callback */
	cfg = region_cfg(p, len, NULL, 0);
	ck_assert_uffd_err(uffd_loop_add_region(loop, cfg, &out), EINVAL,
			   "needs a source");
	uffd_region_config_free(cfg);
	/* a buffer smaller than the region, also through an offset */
	cfg = region_cfg(p, len, small, 0);
	ck_assert_uffd_err(uffd_loop_add_region(loop, cfg, &out), EINVAL,
			   "fewer than");
	uffd_region_config_free(cfg);
	cfg = region_cfg(p, len, s, ps);
	ck_assert_uffd_err(uffd_loop_add_region(loop, cfg, &out), EINVAL,
			   "fewer than");
	uffd_region_config_free(cfg);
	/* a range over two kinds of memory: private, then shared */
	m = mmap(mixed + ps, ps, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ck_assert(m == mixed + ps);
	cfg = region_cfg(mixed, 2 * ps, s, 0);
	ck_assert_uffd_err(uffd_loop_add_region(loop, cfg, &out), EINVAL,
			   "different kinds");
	uffd_region_config_free(cfg);
	ck_assert_ptr_null(out);
	/* none of those left a registration behind */
	ck_assert_int_eq(uffd_handle_get_range_ops(h, p, len, NULL, NULL),
			 -ENOENT);
	ck_assert_int_eq(uffd_handle_get_range_ops(h, mixed, ps, NULL, NULL),
			 -ENOENT);

	/* overlapping regions */
	r = add_region(loop, region_cfg(p, len, s, 0));
	cfg = region_cfg(p + 4 * ps, len - 4 * ps, s, 0);
	ck_assert_uffd_err(uffd_loop_add_region(loop, cfg, &out), EINVAL,
			   "overlaps");
	uffd_region_config_free(cfg);
	/* the working set of a region that does not record */
	ck_assert_uffd_err(uffd_region_get_working_set(r, &page, 1, &nws),
			   EINVAL, "record");
	ck_assert_int_eq(uffd_region_get_working_set(r, NULL, 1, &nws),
			 -EINVAL);
	/* remove: of another loop, twice */
	rq = add_region(other, region_cfg(q, len, s, 0));
	ck_assert_uffd_err(uffd_loop_remove_region(loop, rq), ENOENT,
			   "not a region");
	ck_assert_int_eq(uffd_loop_remove_region(loop, r), 0);
	ck_assert_uffd_err(uffd_loop_remove_region(loop, r), ENOENT,
			   "not a region");
	/* no prefetching region */
	ck_assert_uffd_err(uffd_loop_wait_complete(loop, 0), EINVAL,
			   "prefetch");
	/* get_stats */
	{
		struct uffd_loop_stats st[2];

		ck_assert_uffd_err(uffd_loop_get_stats(loop, st,
						       sizeof(st[0]) + 8),
				   EINVAL, "larger");
		ck_assert_int_eq(uffd_loop_get_stats(loop, NULL, 8), -EINVAL);
		memset(st, 0xff, sizeof(st));
		ck_assert_int_eq(uffd_loop_get_stats(loop, st, 8), 0);
		ck_assert_uint_eq(st[0].faults_missing, 0);
		ck_assert_uint_eq(st[0].faults_minor, UINT64_MAX);
	}

	uffd_loop_free(other);
	uffd_loop_free(loop);
	uffd_source_free(s);
	uffd_source_free(small);
	uffd_handle_free(h);
	munmap(p, len);
	munmap(q, len);
	munmap(mixed, 2 * ps);
	munmap(src, len);
}
END_TEST

START_TEST(errors_start_twice)
{
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 2);
	struct uffd_handle *h = open_handle();
	struct uffd_loop *loop = new_loop(h, lc);

	start_loop(loop);
	ck_assert_uffd_err(uffd_loop_start(loop), EBUSY, "running");
	ck_assert_int_eq(uffd_loop_stop(loop), 0);
	/* stopped: it starts again */
	start_loop(loop);
	uffd_loop_free(loop);
	uffd_handle_free(h);
}
END_TEST

/* Loops, their workers and their sources leave no fd behind. */
START_TEST(no_fd_leak)
{
	size_t ps = test_page(), len = 8 * ps;
	int before;
	unsigned char *image;
	int fd;

	if (!driver_built(_i, __func__))
		return;
	fd = make_image(len, 37, &image);
	before = count_fds();
	for (int round = 0; round < 3; round++) {
		struct uffd_loop_config *lc = loop_config(_i, 2, __func__);
		struct uffd_handle *h = open_handle();
		unsigned char *p = map_anon(len);
		struct uffd_source *s = fd_source(fd, 0, len);
		struct uffd_loop *loop = new_loop(h, lc);

		add_region(loop, region_cfg(p, len, s, 0));
		uffd_source_free(s);
		start_loop(loop);
		check_mem(p, image, len, ps, "served");
		ck_assert_int_eq(uffd_loop_stop(loop), 0);
		uffd_loop_free(loop);
		uffd_handle_free(h);
		munmap(p, len);
		ck_assert_int_eq(count_fds(), before);
	}
	close(fd);
	munmap(image, len);
}
END_TEST

/* ========================================================================
 * Found while reviewing the engine fixes
 * ======================================================================== */

/*
 * A window fails while another thread waits on one of its pages (counted
 * as a readahead hit: "that request wakes this thread"). Whatever the loop
 * does with the failed window, that thread must get its page.
 */
START_TEST(failed_window_wakes_its_other_waiters)
{
	size_t ps = test_page(), n = 16, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 2);
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(len), *src = pattern(len, 40);
	struct uffd_region_config *cfg;
	struct uffd_loop *loop;
	struct uffd_source *s;
	struct toucher t1, t2;
	struct tsrc ts;
	bool woken;

	ck_assert_int_eq(uffd_loop_config_set_fail_policy(lc, UFFD_FAIL_ZERO),
			 0);
	tsrc_init(&ts, src, len, ps);
	tsrc_set_failing(&ts, FM_RETURN, 5);
	ts.gate_page[0] = 2; /* the window [2, 10) waits at the gate */
	s = tsrc_source(&ts);
	loop = new_loop(h, lc);
	cfg = region_cfg(p, len, s, 0);
	uffd_source_free(s);
	ck_assert_int_eq(uffd_region_config_set_readahead(cfg, 8, false), 0);
	add_region(loop, cfg);
	start_loop(loop);

	toucher_start(&t1, p + 2 * ps, false, 0);
	ck_assert_msg(tsrc_wait(&ts, false), "the window's fetch never started");
	toucher_start(&t2, p + 6 * ps, false, 0);
	WAIT_UNTIL(STAT(loop, readahead_hits) == 1,
		   "the fault on page 6 to join the window in flight");
	tsrc_open_gate(&ts); /* the window covers bad page 5: it fails */
	JOIN(t1.thread, "the reader of page 2");
	ck_assert_uint_eq(t1.seen, src[2 * ps]);
	woken = timed_join(t2.thread, TEST_WAIT_MS);
	if (!woken) {
		long asleep = fdinfo_count(h, "total");
		long unread = fdinfo_count(h, "pending");

		uffd_loop_free(loop); /* unregisters: wakes it */
		toucher_join(&t2);
		ck_abort_msg("the thread waiting on page 6 of the failed window "
			     "[2, 10) was never woken (%ld faulting threads "
			     "asleep, %ld faults unread)", asleep, unread);
	}
	ck_assert_uint_eq(t2.seen, src[6 * ps]);
	check_mem(p + 6 * ps, src + 6 * ps, 4 * ps, ps, "pages 6..9");

	uffd_loop_free(loop);
	tsrc_fini(&ts);
	uffd_handle_free(h);
	munmap(p, len);
	munmap(src, len);
}
END_TEST

/*
 * With an alias, a window is written into the page cache before it is
 * mapped. A thread that reads one of its pages meanwhile faults MINOR (the
 * page is in the page cache, half written): it must wait for the window,
 * not be mapped the half-written page.
 */
/* _i: driver * 2 + prefetch. With prefetch, the idle worker's background
 * step finds the pages being filled in the page cache too: it must leave
 * them to the request that fills them. */
START_TEST(minor_fault_waits_for_alias_fill)
{
	size_t ps = test_page(), n = 16, len = n * ps, at = 4 * ps + ps - 8;
	bool prefetch = _i % 2;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i / 2, 2);
	struct uffd_handle *h = open_handle();
	int fd = make_memfd(len);
	unsigned char *p = map_fd(fd, len, true), *alias = map_fd(fd, len, true);
	unsigned char *src = pattern(len, 41);
	struct uffd_region_config *cfg;
	struct uffd_loop *loop;
	struct uffd_source *s;
	struct toucher t1, t2;
	struct tsrc ts;
	bool early;

	tsrc_init(&ts, src, len, ps);
	ts.gate_page[0] = 0;
	ts.gate_prefill = 4 * ps + ps / 2; /* pages 0..3 and half of 4 */
	s = tsrc_source(&ts);
	loop = new_loop(h, lc);
	cfg = region_cfg(p, len, s, 0);
	uffd_source_free(s);
	ck_assert_int_eq(uffd_region_config_set_modes(cfg, UFFD_MODE_MISSING |
							   UFFD_MODE_MINOR),
			 0);
	ck_assert_int_eq(uffd_region_config_set_alias(cfg, alias), 0);
	ck_assert_int_eq(uffd_region_config_set_readahead(cfg, 8, false), 0);
	ck_assert_int_eq(uffd_region_config_set_prefetch(cfg, prefetch), 0);
	add_region(loop, cfg);
	start_loop(loop);

	toucher_start(&t1, p, false, 0);
	ck_assert_msg(tsrc_wait(&ts, false), "the window's fetch never started");
	toucher_start(&t2, p + at, false, 0); /* the unwritten half */
	WAIT_UNTIL(STAT(loop, faults_minor) + STAT(loop, faults_missing) >= 2,
		   "the second fault to be handled");
	/* a bounded check that it keeps waiting for the window */
	early = timed_join(t2.thread, 500);
	if (early)
		ck_assert_msg(t2.seen == src[at], "page 4 was mapped while its "
			      "fill through the alias was still under way: "
			      "read %#x, the source has %#x", t2.seen,
			      src[at]);
	tsrc_open_gate(&ts);
	JOIN(t1.thread, "the reader of page 0");
	if (!early)
		JOIN(t2.thread, "the reader of page 4");
	ck_assert_uint_eq(t2.seen, src[at]);
	check_mem(p, src, len, ps, "the region");

	uffd_loop_free(loop);
	tsrc_fini(&ts);
	uffd_handle_free(h);
	munmap(p, len);
	munmap(alias, len);
	munmap(src, len);
	close(fd);
}
END_TEST

/*
 * A failed window of an alias region: what the source left in the buffer
 * (the alias, so the page cache) must not become the pages' contents: the
 * neighbours of the bad page read the source's data, the bad page zeros.
 */
START_TEST(failed_alias_window_leaves_no_garbage)
{
	size_t ps = test_page(), n = 16, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 1);
	struct uffd_handle *h = open_handle();
	int fd = make_memfd(len);
	unsigned char *p = map_fd(fd, len, true), *alias = map_fd(fd, len, true);
	unsigned char *src = pattern(len, 42);
	struct uffd_region_config *cfg;
	struct uffd_loop *loop;
	struct uffd_source *s;
	struct tsrc ts;

	ck_assert_int_eq(uffd_loop_config_set_fail_policy(lc, UFFD_FAIL_ZERO),
			 0);
	tsrc_init(&ts, src, len, ps);
	tsrc_set_failing(&ts, FM_RETURN, 5); /* leaves 0xee in the buffer */
	s = tsrc_source(&ts);
	loop = new_loop(h, lc);
	cfg = region_cfg(p, len, s, 0);
	uffd_source_free(s);
	ck_assert_int_eq(uffd_region_config_set_modes(cfg, UFFD_MODE_MISSING |
							   UFFD_MODE_MINOR),
			 0);
	ck_assert_int_eq(uffd_region_config_set_alias(cfg, alias), 0);
	ck_assert_int_eq(uffd_region_config_set_readahead(cfg, 8, false), 0);
	add_region(loop, cfg);
	start_loop(loop);

	/* the window [2, 10) fails on page 5 */
	check_mem(p + 2 * ps, src + 2 * ps, ps, ps, "page 2 (faulted)");
	check_mem(p + 3 * ps, src + 3 * ps, 2 * ps, ps,
		  "pages 3, 4 of the failed window");
	check_mem(p + 6 * ps, src + 6 * ps, 4 * ps, ps,
		  "pages 6..9 of the failed window");
	ck_assert_msg(all_zero(p + 5 * ps, ps), "bad page 5 does not read as "
		      "zeros (first byte %#x)", p[5 * ps]);

	uffd_loop_free(loop);
	tsrc_fini(&ts);
	uffd_handle_free(h);
	munmap(p, len);
	munmap(alias, len);
	munmap(src, len);
	close(fd);
}
END_TEST

/*
 * The loop stops while a file read it started (io_uring: asynchronous) is
 * still to be reaped: with STOP_RESOLVE, that fault is served all the same.
 * One worker is held in a gated fetch of region A while it has read, in
 * the same batch, a fault on region B (file source) before it.
 */
START_TEST(stop_with_file_read_in_flight)
{
	size_t ps = test_page(), n = 8, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 1);
	struct uffd_handle *h = open_handle();
	unsigned char *pa = map_anon(len), *pb = map_anon(len);
	unsigned char *src = pattern(len, 43), *image;
	int fd = make_image(len, 44, &image);
	struct uffd_region_config *cfg;
	struct toucher t0, t1, t2;
	struct stopper stop;
	struct uffd_loop *loop;
	struct uffd_source *s;
	struct tsrc ts;

	ck_assert_int_eq(uffd_loop_config_set_stop_policy(lc,
							  UFFD_STOP_RESOLVE),
			 0);
	tsrc_init(&ts, src, len, ps);
	ts.gate_page[0] = 0;
	ts.gate_page[1] = 3;
	s = tsrc_source(&ts);
	loop = new_loop(h, lc);
	cfg = region_cfg(pa, len, s, 0);
	uffd_source_free(s);
	ck_assert_int_eq(uffd_region_config_set_readahead(cfg, 0, false), 0);
	add_region(loop, cfg);
	s = fd_source(fd, 0, len);
	cfg = region_cfg(pb, len, s, 0);
	uffd_source_free(s);
	ck_assert_int_eq(uffd_region_config_set_readahead(cfg, 0, false), 0);
	add_region(loop, cfg);
	start_loop(loop);

	toucher_start(&t0, pa, false, 0);
	ck_assert_msg(tsrc_wait_n(&ts, 0), "the first gated fetch");
	toucher_start(&t1, pb + 5 * ps, false, 0);
	WAIT_UNTIL(fdinfo_count(h, "pending") == 1, "the file fault queued");
	toucher_start(&t2, pa + 3 * ps, false, 0);
	WAIT_UNTIL(fdinfo_count(h, "pending") == 2, "the second gated fault");
	tsrc_open_gate_n(&ts, 0);
	/* the worker reads both faults: starts the file read, then waits
	 * at the second gate */
	ck_assert_msg(tsrc_wait_n(&ts, 1), "the second gated fetch");
	stopper_start_and_wait(&stop, loop);
	tsrc_open_gate_n(&ts, 1);
	JOIN(stop.thread, "uffd_loop_stop()");
	JOIN(t0.thread, "the reader of A page 0");
	JOIN(t2.thread, "the reader of A page 3");
	ck_assert_uint_eq(t0.seen, src[0]);
	ck_assert_uint_eq(t2.seen, src[3 * ps]);
	ck_assert_msg(timed_join(t1.thread, TEST_WAIT_MS),
		      "the fault whose file read was in flight when the loop "
		      "stopped was never served (STOP_RESOLVE)");
	ck_assert_uint_eq(t1.seen, image[5 * ps]);

	uffd_loop_free(loop);
	tsrc_fini(&ts);
	uffd_handle_free(h);
	close(fd);
	munmap(pa, len);
	munmap(pb, len);
	munmap(src, len);
	munmap(image, len);
}
END_TEST

/*
 * Memory the kernel still has registered with the loop's uffd, but that no
 * region covers any more, must not leave a thread faulting forever (the
 * loop waking it, the thread faulting again): mremap() growing a region in
 * place extends the registration without any event.
 */
START_TEST(mremap_grow_in_place_does_not_hang)
{
	size_t ps = test_page(), n = 8, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 1);
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(2 * len), *src = pattern(len, 45);
	struct uffd_loop *loop;
	struct uffd_region *r;
	struct toucher t;
	bool done;
	void *q;

	loop = event_loop(h, lc, p, len, src, 0, &r);
	check_mem(p, src, 2 * ps, ps, "pages 0, 1");
	ck_assert_int_eq(munmap(p + len, len), 0); /* room to grow into */
	q = mremap(p, len, 2 * len, 0); /* in place */
	ck_assert_msg(q == p, "mremap in place: %s", strerror(errno));
	check_mem(p + 2 * ps, src + 2 * ps, len - 2 * ps, ps,
		  "the rest of the region");
	toucher_start(&t, p + len + 3 * ps, false, 0);
	done = timed_join(t.thread, TEST_WAIT_MS);
	if (!done) {
		uint64_t unknown = STAT(loop, faults_unknown);

		uffd_loop_free(loop);
		uffd_handle_free(h); /* releases the thread */
		toucher_join(&t);
		ck_abort_msg("a read of the grown part never finished: the loop "
			     "woke it %llu times (faults_unknown) and it "
			     "faulted again", (unsigned long long)unknown);
	}
	ck_assert_uint_eq(t.seen, 0);

	uffd_loop_free(loop);
	uffd_handle_free(h);
	munmap(p, 2 * len);
	munmap(src, len);
}
END_TEST

/* The same after mremap(MREMAP_DONTUNMAP): the old range stays mapped (and
 * registered) while the region follows the pages to the new address. */
START_TEST(mremap_dontunmap_old_range_does_not_hang)
{
	size_t ps = test_page(), n = 8, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 1);
	struct uffd_handle *h = open_handle_with(UFFD_FEAT_EVENT_REMAP);
	unsigned char *p = map_anon(len), *src = pattern(len, 46);
	unsigned char *target = mmap(NULL, len, PROT_NONE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct uffd_loop *loop;
	struct uffd_region *r;
	struct toucher t;
	bool done;
	void *q;

	ck_assert(target != MAP_FAILED);
	loop = event_loop(h, lc, p, len, src, 0, &r);
	check_mem(p, src, 4 * ps, ps, "pages 0..3");
	q = mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED |
			       MREMAP_DONTUNMAP, target);
	ck_assert_msg(q == target, "mremap(DONTUNMAP): %s", strerror(errno));
	WAIT_UNTIL(STAT(loop, events_remap) == 1, "events_remap == 1");
	/* the pages moved; the new range is the region */
	check_mem(target, src, len, ps, "the moved region");
	/* the old range is still mapped: reading it must finish */
	toucher_start(&t, p + 2 * ps, false, 0);
	done = timed_join(t.thread, TEST_WAIT_MS);
	if (!done) {
		uint64_t unknown = STAT(loop, faults_unknown);

		uffd_loop_free(loop);
		uffd_handle_free(h);
		toucher_join(&t);
		ck_abort_msg("a read of the range left by MREMAP_DONTUNMAP "
			     "never finished: the loop woke it %llu times "
			     "(faults_unknown)", (unsigned long long)unknown);
	}

	uffd_loop_free(loop);
	uffd_handle_free(h);
	munmap(p, len);
	munmap(target, len);
	munmap(src, len);
}
END_TEST

/* ---- the move source ---- */

static struct uffd_source *move_source(void *buf, size_t len)
{
	struct uffd_source *s = NULL;

	ck_assert_msg(uffd_source_new_move(buf, len, &s) == 0,
		      "move source: %s", uffd_last_error());
	return s;
}

/* The region takes the buffer's own pages: the data arrives, the buffer
 * is left without them. */
START_TEST(move_source_moves_pages)
{
	size_t ps = test_page(), n = 16, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 1);
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(len), *buf = pattern(len, 47);
	unsigned char *want = pattern(len, 47);
	struct uffd_source *s = move_source(buf, len);
	struct uffd_loop *loop = new_loop(h, lc);
	struct uffd_region *r = add_region(loop, region_cfg(p, len, s, 0));

	uffd_source_free(s);
	start_loop(loop);
	check_mem(p, want, len, ps, "moved pages");
	WAIT_RESOLVED(r, n);
	ck_assert_msg(all_zero(buf, len), "the buffer still holds the pages");
	ck_assert_int_eq(uffd_loop_stop(loop), 0);
	ck_assert_uint_eq(STAT(loop, pages_resolved), n);
	ck_assert_uint_eq(STAT(loop, fetch_failures), 0);

	uffd_loop_free(loop);
	uffd_handle_free(h);
	munmap(p, len);
	munmap(buf, len);
	munmap(want, len);
}
END_TEST

/* A page of the buffer that was never written holds zeros: so does the
 * region's page (not SIGBUS, not the failure policy). */
START_TEST(move_source_unwritten_page_reads_zeros)
{
	size_t ps = test_page(), n = 8, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 1);
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(len), *buf = map_anon(len);
	unsigned char *want = pattern(len, 48);
	struct uffd_source *s;
	struct uffd_loop *loop;
	struct bus_toucher t;

	memset(want + 3 * ps, 0, ps);
	for (size_t i = 0; i < n; i++) /* all but page 3 */
		if (i != 3)
			memcpy(buf + i * ps, want + i * ps, ps);
	s = move_source(buf, len);
	loop = new_loop(h, lc);
	add_region(loop, region_cfg(p, len, s, 0));
	uffd_source_free(s);
	start_loop(loop);
	sigbus_catch();
	bus_toucher_start(&t, p + 3 * ps);
	JOIN(t.thread, "the reader of page 3");
	ck_assert_msg(!t.sigbus, "page 3, never written in the move "
		      "source's buffer, raised SIGBUS (fetch_failures %llu)",
		      (unsigned long long)STAT(loop, fetch_failures));
	sigbus_restore();
	check_mem(p, want, len, ps, "region");

	uffd_loop_free(loop);
	uffd_handle_free(h);
	munmap(p, len);
	munmap(buf, len);
	munmap(want, len);
}
END_TEST

/* After a fork the buffer's pages are shared with the child (MOVE refuses
 * them with EBUSY): they are still served, by copy. */
START_TEST(move_source_after_fork_still_served)
{
	size_t ps = test_page(), n = 8, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 1);
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(len), *buf = pattern(len, 49);
	unsigned char *want = pattern(len, 49);
	struct uffd_source *s;
	struct uffd_loop *loop;
	struct bus_toucher t;
	int pipefd[2], status;
	pid_t pid;
	char c = 0;

	s = move_source(buf, len);
	loop = new_loop(h, lc);
	add_region(loop, region_cfg(p, len, s, 0));
	uffd_source_free(s);
	start_loop(loop);
	ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
	fflush(NULL);
	pid = fork(); /* the child shares buf's pages until it exits */
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(pipefd[1]);
		_exit(read(pipefd[0], &c, 1) < 0);
	}
	close(pipefd[0]);
	sigbus_catch();
	bus_toucher_start(&t, p + 2 * ps);
	JOIN(t.thread, "the reader of page 2");
	ck_assert_msg(!t.sigbus, "page 2 raised SIGBUS: the move source's "
		      "page is shared with a child (fetch_failures %llu)",
		      (unsigned long long)STAT(loop, fetch_failures));
	ck_assert_uint_eq(t.seen, want[2 * ps]);
	sigbus_restore();
	ck_assert_int_eq(write(pipefd[1], &c, 1), 1);
	close(pipefd[1]);
	status = reap_child(pid);
	ck_assert(WIFEXITED(status));
	check_mem(p, want, len, ps, "region");

	uffd_loop_free(loop);
	uffd_handle_free(h);
	munmap(p, len);
	munmap(buf, len);
	munmap(want, len);
}
END_TEST

/* WP faults while REMOVE events come and go on other memory of the same
 * mm (resolve ioctls then fail with EAGAIN until the event is read): every
 * writer gets through. */
struct wp_writer {
	pthread_t thread;
	struct uffd_handle *h;
	unsigned char *p;
	size_t ps, npages, iters;
	atomic_size_t done;
	int errors;
};

static void *wp_writer_main(void *arg)
{
	struct wp_writer *w = arg;

	for (size_t k = 0; k < w->iters; k++) {
		unsigned char *page = w->p + (k % w->npages) * w->ps;
		int ret;

		do
			ret = uffd_handle_writeprotect(w->h, page, w->ps, true,
						       0);
		while (ret == -EAGAIN);
		if (ret)
			w->errors++;
		page[k % w->ps] = (unsigned char)k; /* WP fault */
		atomic_store(&w->done, k + 1);
	}
	return NULL;
}

START_TEST(wp_faults_race_with_remove_events)
{
	size_t ps = test_page(), n = 64, len = n * ps, nw = 8;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 2);
	struct uffd_handle *h = open_handle_with(UFFD_FEAT_EVENT_REMOVE);
	unsigned char *pb = map_anon(len), *src = pattern(len, 50);
	unsigned char *pw = map_anon(nw * ps);
	struct uffd_source *s = buffer_source(src, len);
	struct uffd_loop *loop = new_loop(h, lc);
	struct uffd_region_config *cfg;
	struct madviser m = { .p = pb, .ps = ps, .npages = n, .iters = 3000 };
	struct wp_writer w = { .h = h, .p = pw, .ps = ps, .npages = nw,
			       .iters = 3000 };

	memset(pw, 1, nw * ps); /* populated, then registered WP */
	add_region(loop, region_cfg(pb, len, s, 0));
	uffd_source_free(s);
	cfg = region_cfg(pw, nw * ps, NULL, 0);
	ck_assert_int_eq(uffd_region_config_set_modes(cfg, UFFD_MODE_WP), 0);
	add_region(loop, cfg);
	start_loop(loop);
	check_mem(pb, src, len, ps, "the MISSING region");

	ck_assert_int_eq(pthread_create(&w.thread, NULL, wp_writer_main, &w),
			 0);
	ck_assert_int_eq(pthread_create(&m.thread, NULL, madviser_main, &m),
			 0);
	JOIN(m.thread, "the MADV_DONTNEED thread");
	ck_assert_msg(timed_join(w.thread, TEST_WAIT_MS),
		      "the writer hung in a WP fault after %zu of %zu writes "
		      "(faults_wp %llu)", atomic_load(&w.done), w.iters,
		      (unsigned long long)STAT(loop, faults_wp));
	ck_assert_int_eq(w.errors, 0);
	ck_assert_int_eq(m.errors, 0);

	uffd_loop_free(loop);
	uffd_handle_free(h);
	munmap(pb, len);
	munmap(pw, nw * ps);
	munmap(src, len);
}
END_TEST

/* uffd_loop_wait_complete() on a thread of its own. */
struct completer {
	pthread_t thread;
	struct uffd_loop *loop;
	atomic_int tid;
	int ret;
};

static void *completer_main(void *arg)
{
	struct completer *c = arg;

	atomic_store(&c->tid, (int)gettid());
	c->ret = uffd_loop_wait_complete(c->loop, -1); /* no limit */
	return NULL;
}

/*
 * A prefetching alias region whose last page is already in the page cache
 * (mapped, not fetched) completes by that mapping: a thread already
 * waiting in wait_complete(-1) must be told. The window [0, 15) is held at
 * a gate while the waiter goes to sleep.
 */
START_TEST(prefetch_completes_over_page_cache_pages)
{
	size_t ps = test_page(), n = 16, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 1);
	struct uffd_handle *h = open_handle();
	int fd = make_memfd(len);
	unsigned char *p = map_fd(fd, len, true), *alias = map_fd(fd, len, true);
	unsigned char *src = pattern(len, 51), *want = pattern(len, 51);
	unsigned char *cache = pattern(ps, 52);
	struct uffd_region_config *cfg;
	struct completer c = { .ret = 1 };
	struct uffd_loop *loop;
	struct uffd_source *s;
	struct uffd_region *r;
	struct tsrc ts;

	ck_assert_int_eq(pwrite(fd, cache, ps, (off_t)(15 * ps)),
			 (ssize_t)ps);
	memcpy(want + 15 * ps, cache, ps);
	tsrc_init(&ts, src, len, ps);
	ts.gate_page[0] = 0;
	s = tsrc_source(&ts);
	loop = new_loop(h, lc);
	cfg = region_cfg(p, len, s, 0);
	uffd_source_free(s);
	ck_assert_int_eq(uffd_region_config_set_modes(cfg, UFFD_MODE_MISSING |
							   UFFD_MODE_MINOR),
			 0);
	ck_assert_int_eq(uffd_region_config_set_alias(cfg, alias), 0);
	ck_assert_int_eq(uffd_region_config_set_prefetch(cfg, true), 0);
	r = add_region(loop, cfg);
	start_loop(loop);

	ck_assert_msg(tsrc_wait(&ts, false), "the prefetch never started");
	c.loop = loop;
	ck_assert_int_eq(pthread_create(&c.thread, NULL, completer_main, &c),
			 0);
	WAIT_UNTIL(atomic_load(&c.tid) != 0 &&
			   thread_state(atomic_load(&c.tid)) == 'S',
		   "wait_complete() to sleep");
	tsrc_open_gate(&ts);
	ck_assert_msg(timed_join(c.thread, TEST_WAIT_MS),
		      "wait_complete(-1) did not return although the region "
		      "has %zu of its %zu pages resolved (the last one mapped "
		      "from the page cache: nobody told the waiter)",
		      uffd_region_get_resolved_pages(r), n);
	ck_assert_msg(c.ret == 0, "wait_complete: %d although the region has "
		      "%zu of its %zu pages resolved (the last one mapped from "
		      "the page cache)", c.ret,
		      uffd_region_get_resolved_pages(r), n);
	check_mem(p, want, len, ps, "the prefetched region");

	uffd_loop_free(loop);
	tsrc_fini(&ts);
	uffd_handle_free(h);
	munmap(p, len);
	munmap(alias, len);
	munmap(src, len);
	munmap(want, len);
	munmap(cache, ps);
	close(fd);
}
END_TEST

/* uffd_loop_add_region() on a thread of its own. */
struct adder {
	pthread_t thread;
	struct uffd_loop *loop;
	struct uffd_region_config *cfg;
	struct uffd_region *region;
	int ret;
};

static void *adder_main(void *arg)
{
	struct adder *a = arg;

	a->ret = uffd_loop_add_region(a->loop, a->cfg, &a->region);
	return NULL;
}

/*
 * Adding a region while a worker holds the loop's table (here inside a
 * gated fetch): the region is listed before its range is registered, so
 * there is no moment when a fault on it finds no region (an earlier
 * design registered first and made such a fault ordinary zero memory).
 * The add completes once the worker lets go, and a touch of the new
 * region is served from its source, never taken for unknown memory.
 */
START_TEST(fault_during_add_region_is_served)
{
	size_t ps = test_page(), n = 8, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 2);
	struct uffd_handle *h = open_handle();
	unsigned char *p1 = map_anon(len), *p2 = map_anon(len);
	unsigned char *src1 = pattern(len, 54), *src2 = pattern(len, 55);
	struct uffd_region_config *cfg;
	struct uffd_loop *loop;
	struct uffd_source *s;
	struct toucher t1, t2;
	struct adder a;
	struct tsrc ts;

	tsrc_init(&ts, src1, len, ps);
	ts.gate_page[0] = 0;
	s = tsrc_source(&ts);
	loop = new_loop(h, lc);
	cfg = region_cfg(p1, len, s, 0);
	uffd_source_free(s);
	ck_assert_int_eq(uffd_region_config_set_readahead(cfg, 0, false), 0);
	add_region(loop, cfg);
	start_loop(loop);

	/* a worker holds the table's read lock, in the gated fetch */
	toucher_start(&t1, p1, false, 0);
	ck_assert_msg(tsrc_wait(&ts, false), "the gated fetch never started");
	/* the second region is added meanwhile: it waits for the table */
	memset(&a, 0, sizeof(a));
	a.loop = loop;
	s = buffer_source(src2, len);
	a.cfg = region_cfg(p2, len, s, 0);
	uffd_source_free(s);
	ck_assert_int_eq(pthread_create(&a.thread, NULL, adder_main, &a), 0);
	tsrc_open_gate(&ts);
	JOIN(a.thread, "uffd_loop_add_region()");
	ck_assert_msg(a.ret == 0, "add_region: %s", uffd_last_error());
	toucher_start(&t2, p2 + 3 * ps, false, 0);
	JOIN(t1.thread, "the reader of the first region");
	ck_assert_uint_eq(t1.seen, src1[0]);
	JOIN(t2.thread, "the reader of the region being added");
	ck_assert_msg(t2.seen == src2[3 * ps],
		      "the page faulted while its region was being added read "
		      "%#x, not the source's %#x (faults_unknown %llu: the "
		      "loop made it ordinary memory)", t2.seen, src2[3 * ps],
		      (unsigned long long)STAT(loop, faults_unknown));
	ck_assert_int_eq(uffd_handle_get_range_ops(h, p2, len, NULL, NULL), 0);
	check_mem(p2, src2, len, ps, "the region added");

	uffd_region_config_free(a.cfg);
	uffd_loop_free(loop);
	tsrc_fini(&ts);
	uffd_handle_free(h);
	munmap(p1, len);
	munmap(p2, len);
	munmap(src1, len);
	munmap(src2, len);
}
END_TEST

/* A prefetching region whose last page fails (zeroed by the failure
 * policy) is complete all the same: a thread already waiting in
 * wait_complete(-1) is told. */
START_TEST(prefetch_completes_with_failed_last_page)
{
	size_t ps = test_page(), n = 16, len = n * ps;
	struct uffd_loop_config *lc;
	LOOP_CONFIG(lc, _i, 1);
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(len), *src = pattern(len, 56);
	struct uffd_region_config *cfg;
	struct completer c = { .ret = 1 };
	struct uffd_loop *loop;
	struct uffd_source *s;
	struct uffd_region *r;
	struct tsrc ts;

	ck_assert_int_eq(uffd_loop_config_set_fail_policy(lc, UFFD_FAIL_ZERO),
			 0);
	tsrc_init(&ts, src, len, ps);
	tsrc_set_failing(&ts, FM_RETURN, 15);
	ts.gate_page[0] = 0;
	s = tsrc_source(&ts);
	loop = new_loop(h, lc);
	cfg = region_cfg(p, len, s, 0);
	uffd_source_free(s);
	ck_assert_int_eq(uffd_region_config_set_prefetch(cfg, true), 0);
	r = add_region(loop, cfg);
	start_loop(loop);

	ck_assert_msg(tsrc_wait(&ts, false), "the prefetch never started");
	c.loop = loop;
	ck_assert_int_eq(pthread_create(&c.thread, NULL, completer_main, &c),
			 0);
	WAIT_UNTIL(atomic_load(&c.tid) != 0 &&
			   thread_state(atomic_load(&c.tid)) == 'S',
		   "wait_complete() to sleep");
	tsrc_open_gate(&ts);
	ck_assert_msg(timed_join(c.thread, TEST_WAIT_MS),
		      "wait_complete(-1) did not return although the region "
		      "has %zu of its %zu pages resolved (the last one by the "
		      "failure policy: nobody told the waiter)",
		      uffd_region_get_resolved_pages(r), n);
	ck_assert_int_eq(c.ret, 0);
	check_mem(p, src, 15 * ps, ps, "pages 0..14");
	ck_assert(all_zero(p + 15 * ps, ps));
	ck_assert_int_eq(uffd_loop_stop(loop), 0);
	ck_assert_uint_eq(STAT(loop, fetch_failures), 1);
	ck_assert_uint_eq(STAT(loop, pages_zeroed), 1);

	uffd_loop_free(loop);
	tsrc_fini(&ts);
	uffd_handle_free(h);
	munmap(p, len);
	munmap(src, len);
}
END_TEST

/* ---- the suite ---- */

static Suite *loop_suite(void)
{
	Suite *s = suite_create("loop");
	TCase *tc;

	tc = tcase_create("backends");
	tcase_add_loop_test(tc, anon_private_buffer, 0, NDRIVERS);
	tcase_add_loop_test(tc, threads_per_cpu, 0, NDRIVERS);
	tcase_add_loop_test(tc, file_uncached, 0, NDRIVERS);
	tcase_add_loop_test(tc, file_half_cached, 0, NDRIVERS);
	tcase_add_loop_test(tc, anon_private_file, 0, NDRIVERS);
	tcase_add_loop_test(tc, anon_private_zero, 0, NDRIVERS);
	tcase_add_loop_test(tc, anon_shared_buffer, 0, NDRIVERS);
	tcase_add_loop_test(tc, memfd_buffer, 0, NDRIVERS);
	tcase_add_loop_test(tc, memfd_minor_alias, 0, NDRIVERS);
	tcase_add_loop_test(tc, memfd_minor_readahead_keeps_page_cache, 0,
			    NDRIVERS);
	tcase_add_loop_test(tc, wp_without_callback_unprotects, 0, NDRIVERS);
	tcase_add_loop_test(tc, fault_callback_region, 0, NDRIVERS);
	suite_add_tcase(s, tc);

	tc = tcase_create("hugetlb");
	hugetlb_fixture_add(tc, 8);
	tcase_add_loop_test(tc, hugetlb_private_buffer_and_zero, 0, NDRIVERS);
	tcase_add_loop_test(tc, hugetlb_memfd_buffer_and_zero, 0, NDRIVERS);
	suite_add_tcase(s, tc);

	tc = tcase_create("restore");
	tcase_add_loop_test(tc, restore_touched_by_two_threads, 0, NDRIVERS);
	tcase_add_loop_test(tc, restore_by_prefetch_alone, 0, NDRIVERS);
	tcase_add_loop_test(tc, prefetch_region_added_while_running, 0,
			    NDRIVERS);
	suite_add_tcase(s, tc);

	tc = tcase_create("concurrency");
	tcase_add_loop_test(tc, same_pages_two_threads_fetched_once, 0,
			    NDRIVERS);
	tcase_add_loop_test(tc, async_source_urgent_flags, 0, NDRIVERS);
	tcase_add_loop_test(tc, burst_of_faults_beyond_one_batch, 0, NDRIVERS);
	suite_add_tcase(s, tc);

	tc = tcase_create("events");
	tcase_add_loop_test(tc, remove_then_touch_again, 0, NDRIVERS);
	tcase_add_loop_test(tc, unmap_whole_region, 0, NDRIVERS);
	tcase_add_loop_test(tc, unmap_part_of_region, 0, NDRIVERS);
	tcase_add_loop_test(tc, remap_whole_region, 0, NDRIVERS);
	tcase_add_loop_test(tc, remap_part_of_region, 0, NDRIVERS);
	tcase_add_loop_test(tc, fork_with_callback, 0, NDRIVERS);
	tcase_add_loop_test(tc, fork_without_callback, 0, NDRIVERS);
	tcase_add_loop_test(tc, remove_races_with_faults, 0, NDRIVERS);
	suite_add_tcase(s, tc);

	tc = tcase_create("stop");
	tcase_add_loop_test(tc, stop_poison_fetch_in_flight, 0, NDRIVERS);
	tcase_add_loop_test(tc, stop_poison_queued_faults, 0, NDRIVERS);
	tcase_add_loop_test(tc, stop_resolve_queued_faults_buffer, 0,
			    NDRIVERS);
	tcase_add_loop_test(tc, stop_resolve_queued_faults_file, 0, NDRIVERS);
	suite_add_tcase(s, tc);

	tc = tcase_create("failures");
	tcase_add_loop_test(tc, fail_poison_kills_child, 0,
			    NDRIVERS * FM_COUNT);
	tcase_add_loop_test(tc, fail_zero_reads_zeros, 0, NDRIVERS * FM_COUNT);
	tcase_add_loop_test(tc, fail_poison_sigbus_in_thread, 0,
			    NDRIVERS * FM_COUNT);
	tcase_add_loop_test(tc, prefetch_of_failing_windows_completes, 0,
			    NDRIVERS);
	tcase_add_loop_test(tc, fail_in_readahead_spares_faulting_page, 0,
			    NDRIVERS);
	suite_add_tcase(s, tc);

	tc = tcase_create("stats");
	tcase_add_loop_test(tc, stats_sequential_readahead, 0, NDRIVERS);
	tcase_add_loop_test(tc, record_then_replay_working_set, 0, NDRIVERS);
	suite_add_tcase(s, tc);

	tc = tcase_create("embedding");
	tcase_add_loop_test(tc, embed_prefetch_completes, 0, NDRIVERS);
	tcase_add_loop_test(tc, embed_poll_and_process, 0, NDRIVERS * 2);
	tcase_add_loop_test(tc, run_on_thread_stop_from_another, 0, NDRIVERS);
	suite_add_tcase(s, tc);

	tc = tcase_create("lifecycle");
	tcase_add_loop_test(tc, free_unregisters_regions, 0, NDRIVERS);
	tcase_add_loop_test(tc, remove_region_then_add_again, 0, NDRIVERS);
	tcase_add_loop_test(tc, errors_start_twice, 0, NDRIVERS);
	tcase_add_loop_test(tc, no_fd_leak, 0, NDRIVERS);
	suite_add_tcase(s, tc);

	tc = tcase_create("review");
	tcase_add_loop_test(tc, failed_window_wakes_its_other_waiters, 0,
			    NDRIVERS);
	tcase_add_loop_test(tc, minor_fault_waits_for_alias_fill, 0,
			    NDRIVERS * 2);
	tcase_add_loop_test(tc, failed_alias_window_leaves_no_garbage, 0,
			    NDRIVERS);
	tcase_add_loop_test(tc, stop_with_file_read_in_flight, 0, NDRIVERS);
	tcase_add_loop_test(tc, mremap_grow_in_place_does_not_hang, 0,
			    NDRIVERS);
	tcase_add_loop_test(tc, mremap_dontunmap_old_range_does_not_hang, 0,
			    NDRIVERS);
	tcase_add_loop_test(tc, wp_faults_race_with_remove_events, 0,
			    NDRIVERS);
	tcase_add_loop_test(tc, prefetch_completes_over_page_cache_pages, 0,
			    NDRIVERS);
	tcase_add_loop_test(tc, fault_during_add_region_is_served, 0,
			    NDRIVERS);
	tcase_add_loop_test(tc, prefetch_completes_with_failed_last_page, 0,
			    NDRIVERS);
	suite_add_tcase(s, tc);

	tc = tcase_create("move");
	tcase_add_loop_test(tc, move_source_moves_pages, 0, NDRIVERS);
	tcase_add_loop_test(tc, move_source_unwritten_page_reads_zeros, 0,
			    NDRIVERS);
	tcase_add_loop_test(tc, move_source_after_fork_still_served, 0,
			    NDRIVERS);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_test(tc, errors_loop_new_and_config);
	tcase_add_test(tc, errors_sources_and_region_config);
	tcase_add_test(tc, errors_add_region);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(loop_suite());
}
