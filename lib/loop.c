// SPDX-License-Identifier: MIT
/*
 * The loop: its configuration, regions, workers and life cycle, and the
 * poll driver. Faults and events are served in serve.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"

uint64_t uffd_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- configuration ---- */

UFFD_EXPORT int uffd_loop_config_new(struct uffd_loop_config **cfg)
{
	if (!cfg)
		return uffd_err(EINVAL, "loop config: NULL result");
	*cfg = calloc(1, sizeof(**cfg));
	if (!*cfg)
		return uffd_err(ENOMEM, "out of memory for a loop config");
	(*cfg)->threads = 1;
	return 0;
}

UFFD_EXPORT void uffd_loop_config_free(struct uffd_loop_config *cfg)
{
	free(cfg);
}

UFFD_EXPORT int uffd_loop_config_set_driver(struct uffd_loop_config *cfg,
					    enum uffd_loop_driver driver)
{
	UFFD_CHECK_OBJ(cfg);
	if (driver == UFFD_DRIVER_URING) {
#ifndef LIBUFFD_HAVE_URING
		return uffd_err(ENOTSUP, "this libuffd was built without "
					 "io_uring support");
#endif
	} else if (driver != UFFD_DRIVER_POLL) {
		return uffd_errf(EINVAL, "unknown driver %d", (int)driver);
	}
	cfg->driver = driver;
	return 0;
}

UFFD_EXPORT int uffd_loop_config_set_threads(struct uffd_loop_config *cfg,
					     unsigned threads)
{
	cpu_set_t cpus;

	UFFD_CHECK_OBJ(cfg);
	if (threads > LOOP_MAX_THREADS)
		return uffd_errf(EINVAL, "threads must be 0..%d, not %u",
				 LOOP_MAX_THREADS, threads);
	if (!threads) { /* one per CPU this thread may run on */
		threads = sched_getaffinity(0, sizeof(cpus), &cpus)
				  ? 1
				  : (unsigned)CPU_COUNT(&cpus);
		if (threads > LOOP_MAX_THREADS)
			threads = LOOP_MAX_THREADS;
	}
	cfg->threads = threads;
	return 0;
}

UFFD_EXPORT int uffd_loop_config_set_fail_policy(struct uffd_loop_config *cfg,
						 enum uffd_fail_policy policy)
{
	UFFD_CHECK_OBJ(cfg);
	if (policy != UFFD_FAIL_POISON && policy != UFFD_FAIL_ZERO)
		return uffd_errf(EINVAL, "unknown failure policy %d",
				 (int)policy);
	cfg->fail = policy;
	return 0;
}

UFFD_EXPORT int uffd_loop_config_set_stop_policy(struct uffd_loop_config *cfg,
						 enum uffd_stop_policy policy)
{
	UFFD_CHECK_OBJ(cfg);
	if (policy != UFFD_STOP_RESOLVE && policy != UFFD_STOP_POISON)
		return uffd_errf(EINVAL, "unknown stop policy %d", (int)policy);
	cfg->stop = policy;
	return 0;
}

UFFD_EXPORT int
uffd_loop_config_set_error_callback(struct uffd_loop_config *cfg,
				    uffd_error_fn fn, void *arg)
{
	UFFD_CHECK_OBJ(cfg);
	cfg->error_fn = fn;
	cfg->error_arg = arg;
	return 0;
}

UFFD_EXPORT int uffd_loop_config_set_fork_callback(struct uffd_loop_config *cfg,
						   uffd_fork_fn fn, void *arg)
{
	UFFD_CHECK_OBJ(cfg);
	cfg->fork_fn = fn;
	cfg->fork_arg = arg;
	return 0;
}

/* ---- the poll driver ---- */

int uffd_loop_poll_wait(struct uffd_worker *w, int timeout_ms)
{
	struct uffd_loop *loop = w->loop;
	struct pollfd fds[3] = {
		{ .fd = loop->uffd, .events = POLLIN },
		{ .fd = loop->done_efd, .events = POLLIN },
		{ .fd = loop->stop_efd, .events = POLLIN },
	};
	int n = poll(fds, 3, timeout_ms), handled = 0;
	eventfd_t v;

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	if (fds[1].revents & POLLIN) {
		eventfd_read(loop->done_efd, &v);
		handled += uffd_serve_completions(w);
	}
	if (fds[0].revents & POLLIN)
		handled += uffd_serve_ready(w);
	return handled;
}

static int poll_wait_and_serve(struct uffd_worker *w, int timeout_ms)
{
	int n = uffd_serve_try_ready(w);

	return n > 0 ? n : uffd_loop_poll_wait(w, timeout_ms);
}

const struct uffd_driver uffd_driver_poll = {
	.name = "poll",
	.wait_and_serve = poll_wait_and_serve,
};

/* ---- regions ---- */

struct uffd_region *uffd_loop_find(struct uffd_loop *loop, uintptr_t addr)
{
	size_t lo = 0, hi = loop->nregions;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		struct uffd_region *r = loop->regions[mid];

		if (addr < r->start)
			hi = mid;
		else if (addr >= r->start + r->len)
			lo = mid + 1;
		else
			return r->dead ? NULL : r;
	}
	return NULL;
}

void uffd_loop_bury(struct uffd_loop *loop, size_t i)
{
	struct uffd_region **g = realloc(loop->graveyard,
					 (loop->ngraveyard + 1) * sizeof(*g));

	if (!g)
		return; /* stays listed, dead: found by nobody, freed at the end */
	loop->graveyard = g;
	g[loop->ngraveyard++] = loop->regions[i];
	memmove(&loop->regions[i], &loop->regions[i + 1],
		(loop->nregions - i - 1) * sizeof(*loop->regions));
	loop->nregions--;
}

static bool overlaps_any(struct uffd_loop *loop, uintptr_t start, size_t len)
{
	for (size_t i = 0; i < loop->nregions; i++) {
		struct uffd_region *r = loop->regions[i];

		if (!r->dead && start < r->start + r->len &&
		    r->start < start + len)
			return true;
	}
	return false;
}

static int region_insert(struct uffd_loop *loop, struct uffd_region *r)
{
	struct uffd_region **v;
	size_t i = 0;

	v = realloc(loop->regions, (loop->nregions + 1) * sizeof(*v));
	if (!v)
		return uffd_err(ENOMEM, "out of memory for the region table");
	loop->regions = v;
	while (i < loop->nregions && v[i]->start < r->start)
		i++;
	memmove(&v[i + 1], &v[i], (loop->nregions - i) * sizeof(*v));
	v[i] = r;
	loop->nregions++;
	return 0;
}

static int prepare_zero_page(struct uffd_loop *loop, size_t page_size)
{
	void *p;

	if (loop->zero_page_size >= page_size)
		return 0;
	p = mmap(NULL, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		 0);
	if (p == MAP_FAILED)
		return uffd_err(ENOMEM, "no memory for a zero page");
	if (loop->zero_page)
		munmap(loop->zero_page, loop->zero_page_size);
	loop->zero_page = p;
	loop->zero_page_size = page_size;
	return 0;
}

/* Removes r from the table again (a registration that failed). */
static void region_unlist(struct uffd_loop *loop, struct uffd_region *r)
{
	pthread_rwlock_wrlock(&loop->regions_lock);
	for (size_t i = 0; i < loop->nregions; i++) {
		if (loop->regions[i] != r)
			continue;
		memmove(&loop->regions[i], &loop->regions[i + 1],
			(loop->nregions - i - 1) * sizeof(*loop->regions));
		loop->nregions--;
		break;
	}
	pthread_rwlock_unlock(&loop->regions_lock);
}

/*
 * Lists the region, then registers it (outside the table lock: a first
 * registration may probe the memory's capabilities). Listed first, so a
 * fault that comes the moment the range is registered finds its region;
 * inactive until then, so no prefetch starts on unregistered memory.
 */
static int add_checked(struct uffd_loop *loop, struct uffd_region *r)
{
	int ret = r->zero_by_copy ? prepare_zero_page(loop, r->page_size) : 0;

	if (ret)
		return ret;
	pthread_rwlock_wrlock(&loop->regions_lock);
	ret = overlaps_any(loop, r->start, r->len)
		      ? uffd_err(EINVAL, "the range overlaps a region of this "
					 "loop")
		      : region_insert(loop, r);
	pthread_rwlock_unlock(&loop->regions_lock);
	if (ret)
		return ret;
	if (!r->remote) {
		ret = uffd_handle_register(loop->h, (void *)r->start, r->len,
					   r->modes, NULL);
		r->registered = !ret;
	}
	if (ret)
		region_unlist(loop, r); /* no fault or prefetch reached it */
	else
		atomic_store(&r->active, true);
	return ret;
}

UFFD_EXPORT int uffd_loop_add_region(struct uffd_loop *loop,
				     const struct uffd_region_config *cfg,
				     struct uffd_region **region)
{
	struct uffd_region *r = NULL;
	bool overlap;
	int ret;

	if (!loop || !cfg)
		return uffd_err(EINVAL, "add_region: NULL argument");
	pthread_rwlock_rdlock(&loop->regions_lock);
	overlap = overlaps_any(loop, cfg->start, cfg->len);
	pthread_rwlock_unlock(&loop->regions_lock);
	if (overlap)
		return uffd_err(EINVAL, "the range overlaps a region of this "
					"loop");
	ret = uffd_region_create(loop, cfg, &r);
	if (!ret)
		ret = add_checked(loop, r);
	if (ret) {
		if (r && r->registered)
			uffd_handle_unregister(loop->h, (void *)r->start, r->len);
		uffd_region_destroy(r);
		return ret;
	}
	if (region)
		*region = r;
	/* a sleeping worker may have background work now: wake one */
	if (r->prefetch) {
		atomic_store(&loop->any_prefetch, true);
		eventfd_write(loop->done_efd, 1);
	}
	return 0;
}

/* Ends a region's service: the kernel unregisters whatever is still
 * mapped in its range (holes left by a partial munmap or mremap are fine
 * for it, not for uffd_handle_unregister's checks), which also wakes
 * waiting threads; remote regions only get the wake. */
static void region_retire(struct uffd_loop *loop, struct uffd_region *r)
{
	struct kuffd_range range = { r->start, r->len };

	if (r->registered && !r->dead) {
		ioctl(loop->uffd, KUFFDIO_UNREGISTER, &range);
		uffd_regs_remove(loop->h, r->start, r->start + r->len);
	} else if (!r->dead) {
		uffd_raw_wake(loop->uffd, r->start, r->len);
	}
	r->dead = true;
}

UFFD_EXPORT int uffd_loop_remove_region(struct uffd_loop *loop,
					struct uffd_region *region)
{
	int ret = -ENOENT;

	if (!loop || !region)
		return uffd_err(EINVAL, "remove_region: NULL argument");
	pthread_rwlock_wrlock(&loop->regions_lock);
	for (size_t i = 0; i < loop->nregions; i++) {
		if (loop->regions[i] != region)
			continue;
		region_retire(loop, region);
		/* requests in flight may still point at it: keep it dead */
		uffd_loop_bury(loop, i);
		ret = 0;
		break;
	}
	pthread_rwlock_unlock(&loop->regions_lock);
	return ret ? uffd_err(ENOENT, "not a region of this loop") : 0;
}

/* ---- life cycle ---- */

static int loop_fds(struct uffd_loop *loop)
{
	struct epoll_event ev = { .events = EPOLLIN };

	loop->done_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	loop->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	loop->embed_epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->done_efd < 0 || loop->stop_efd < 0 || loop->embed_epfd < 0)
		return uffd_errf(errno, "cannot create the loop's fds: %s",
				 strerror(errno));
	if (epoll_ctl(loop->embed_epfd, EPOLL_CTL_ADD, loop->uffd, &ev) ||
	    epoll_ctl(loop->embed_epfd, EPOLL_CTL_ADD, loop->done_efd, &ev))
		return uffd_errf(errno, "epoll_ctl: %s", strerror(errno));
	return 0;
}

static void loop_close_fds(struct uffd_loop *loop)
{
	if (loop->done_efd >= 0)
		close(loop->done_efd);
	if (loop->stop_efd >= 0)
		close(loop->stop_efd);
	if (loop->embed_epfd >= 0)
		close(loop->embed_epfd);
	if (loop->pagemap >= 0)
		close(loop->pagemap);
}

static const struct uffd_driver *driver_of(enum uffd_loop_driver d)
{
#ifdef LIBUFFD_HAVE_URING
	if (d == UFFD_DRIVER_URING)
		return &uffd_driver_uring;
#endif
	(void)d;
	return &uffd_driver_poll;
}

static int worker_init(struct uffd_worker *w);

/* The worker uffd_loop_run() and uffd_loop_process() use, made with the
 * loop: its driver's fd (io_uring completions) joins the embedding fd. */
static int embed_ready(struct uffd_loop *loop)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int ret, fd;

	if (loop->embed_ready)
		return 0;
	ret = worker_init(&loop->embed);
	if (ret)
		return ret;
	loop->embed_ready = true;
	fd = loop->driver->poll_fd ? loop->driver->poll_fd(&loop->embed) : -1;
	if (fd >= 0 && epoll_ctl(loop->embed_epfd, EPOLL_CTL_ADD, fd, &ev))
		return uffd_errf(errno, "epoll_ctl: %s", strerror(errno));
	return 0;
}

UFFD_EXPORT int uffd_loop_new(struct uffd_handle *handle,
			      const struct uffd_loop_config *cfg,
			      struct uffd_loop **loop)
{
	struct uffd_loop *l;
	int ret;

	if (!handle || !loop)
		return uffd_err(EINVAL, "loop_new: NULL argument");
	l = calloc(1, sizeof(*l));
	if (!l)
		return uffd_err(ENOMEM, "out of memory for a loop");
	l->h = handle;
	l->uffd = uffd_handle_get_fd(handle);
	l->cfg = cfg ? *cfg : (struct uffd_loop_config){ .threads = 1 };
	l->driver = driver_of(l->cfg.driver);
	l->done_efd = l->stop_efd = l->embed_epfd = -1;
	l->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	pthread_rwlock_init(&l->regions_lock, NULL);
	pthread_mutex_init(&l->slots_lock, NULL);
	pthread_mutex_init(&l->done_lock, NULL);
	pthread_cond_init(&l->done_cond, NULL);
	pthread_mutex_init(&l->stats_lock, NULL);
	for (size_t i = 0; i < LOOP_SLOTS; i++)
		l->slots[i].loop = l;
	l->embed.loop = l;
	ret = loop_fds(l);
	if (!ret)
		ret = embed_ready(l);
	if (ret) {
		uffd_loop_free(l);
		return ret;
	}
	*loop = l;
	return 0;
}

static void retire_stats(struct uffd_loop *loop, struct uffd_worker *w)
{
	uint64_t *dst = (uint64_t *)&loop->retired;
	const uint64_t *src = (const uint64_t *)&w->stats;

	pthread_mutex_lock(&loop->stats_lock);
	for (size_t i = 0; i < sizeof(w->stats) / sizeof(uint64_t); i++)
		dst[i] += src[i];
	pthread_mutex_unlock(&loop->stats_lock);
	memset(&w->stats, 0, sizeof(w->stats));
}

UFFD_EXPORT void uffd_loop_free(struct uffd_loop *loop)
{
	if (!loop)
		return;
	uffd_loop_stop(loop);
	if (loop->embed_ready && loop->driver->worker_fini)
		loop->driver->worker_fini(&loop->embed);
	for (size_t i = 0; i < loop->nregions; i++) {
		region_retire(loop, loop->regions[i]);
		uffd_region_destroy(loop->regions[i]);
	}
	for (size_t i = 0; i < loop->ngraveyard; i++)
		uffd_region_destroy(loop->graveyard[i]);
	for (size_t i = 0; i < LOOP_SLOTS; i++)
		if (loop->slots[i].staging)
			munmap(loop->slots[i].staging,
			       loop->slots[i].staging_len);
	if (loop->zero_page)
		munmap(loop->zero_page, loop->zero_page_size);
	free(loop->regions);
	free(loop->graveyard);
	loop_close_fds(loop);
	pthread_rwlock_destroy(&loop->regions_lock);
	pthread_mutex_destroy(&loop->slots_lock);
	pthread_mutex_destroy(&loop->done_lock);
	pthread_cond_destroy(&loop->done_cond);
	pthread_mutex_destroy(&loop->stats_lock);
	free(loop->workers);
	free(loop);
}

UFFD_EXPORT struct uffd_handle *uffd_loop_get_handle(const struct uffd_loop *loop)
{
	return loop ? loop->h : NULL;
}

static int worker_init(struct uffd_worker *w)
{
	return w->loop->driver->worker_init ? w->loop->driver->worker_init(w)
					    : 0;
}

static void worker_fini(struct uffd_worker *w)
{
	if (w->loop->driver->worker_fini)
		w->loop->driver->worker_fini(w);
}

/* Serves until the loop stops; idle time goes to prefetching. */
static int worker_run(struct uffd_worker *w)
{
	struct uffd_loop *loop = w->loop;
	int ret = 0;

	bool stalled = false;

	while (!atomic_load(&loop->stopping)) {
		/* with background work left, only look for events; when the
		 * prefetch depth is full, or what is left is on its way
		 * already, sleep until something happens */
		bool background = !stalled && uffd_serve_prefetch_wanted(loop);

		ret = loop->driver->wait_and_serve(w, background ? 0 : -1);
		if (ret < 0)
			break;
		if (ret > 0)
			stalled = false;
		else if (background)
			stalled = !uffd_serve_prefetch(w);
		ret = 0;
	}
	return ret;
}

static void *worker_main(void *arg)
{
	struct uffd_worker *w = arg;

	if (!worker_init(w)) {
		worker_run(w);
		worker_fini(w);
	}
	retire_stats(w->loop, w);
	return NULL;
}

UFFD_EXPORT int uffd_loop_start(struct uffd_loop *loop)
{
	unsigned n;

	if (!loop)
		return uffd_err(EINVAL, "loop_start: NULL loop");
	if (loop->running)
		return uffd_err(EBUSY, "the loop's workers are running already");
	n = loop->cfg.threads;
	free(loop->workers);
	loop->workers = calloc(n, sizeof(*loop->workers));
	if (!loop->workers)
		return uffd_err(ENOMEM, "out of memory for the workers");
	atomic_store(&loop->stopping, false);
	for (loop->nworkers = 0; loop->nworkers < n; loop->nworkers++) {
		struct uffd_worker *w = &loop->workers[loop->nworkers];

		w->loop = loop;
		if (pthread_create(&w->thread, NULL, worker_main, w)) {
			uffd_loop_stop(loop);
			return uffd_err(EAGAIN, "cannot create a worker thread");
		}
	}
	loop->running = true;
	return 0;
}

UFFD_EXPORT int uffd_loop_run(struct uffd_loop *loop)
{
	int ret;

	if (!loop)
		return uffd_err(EINVAL, "loop_run: NULL loop");
	pthread_mutex_lock(&loop->done_lock);
	if (loop->running_inline) {
		pthread_mutex_unlock(&loop->done_lock);
		return uffd_err(EBUSY, "the loop already runs on another thread");
	}
	loop->running_inline = true;
	pthread_mutex_unlock(&loop->done_lock);
	ret = embed_ready(loop);
	if (!ret)
		ret = worker_run(&loop->embed);
	pthread_mutex_lock(&loop->done_lock);
	loop->running_inline = false;
	pthread_cond_broadcast(&loop->done_cond);
	pthread_mutex_unlock(&loop->done_lock);
	return ret;
}

UFFD_EXPORT int uffd_loop_stop(struct uffd_loop *loop)
{
	eventfd_t v;

	if (!loop)
		return uffd_err(EINVAL, "loop_stop: NULL loop");
	atomic_store(&loop->stopping, true);
	eventfd_write(loop->stop_efd, 1);
	for (unsigned i = 0; i < loop->nworkers; i++)
		pthread_join(loop->workers[i].thread, NULL);
	loop->nworkers = 0;
	loop->running = false;
	/* uffd_loop_run() on another thread sees the flag and returns */
	pthread_mutex_lock(&loop->done_lock);
	while (loop->running_inline)
		pthread_cond_wait(&loop->done_cond, &loop->done_lock);
	pthread_mutex_unlock(&loop->done_lock);
	/* the faults raised so far: served or poisoned, by policy */
	if (!embed_ready(loop)) {
		uffd_serve_completions(&loop->embed);
		uffd_serve_drain(&loop->embed);
	}
	eventfd_read(loop->stop_efd, &v);
	atomic_store(&loop->stopping, false);
	return 0;
}

UFFD_EXPORT int uffd_loop_get_fd(const struct uffd_loop *loop)
{
	return loop ? loop->embed_epfd : uffd_err(EINVAL, "NULL loop");
}

UFFD_EXPORT int uffd_loop_process(struct uffd_loop *loop)
{
	int ret, n;
	eventfd_t v;

	if (!loop)
		return uffd_err(EINVAL, "loop_process: NULL loop");
	ret = embed_ready(loop);
	if (ret)
		return ret;
	eventfd_read(loop->done_efd, &v);
	n = uffd_serve_completions(&loop->embed);
	/* the driver's own wait, without waiting: io_uring completions */
	ret = loop->driver->wait_and_serve(&loop->embed, 0);
	if (ret < 0)
		return ret;
	n += ret;
	if (uffd_serve_prefetch_wanted(loop)) {
		if (!n)
			n += uffd_serve_prefetch(&loop->embed);
		/* background work is left and nothing else would make the fd
		 * readable again: keep it readable for the next step (not
		 * when all that is left is on its way: a completion will) */
		if (n && uffd_serve_prefetch_wanted(loop))
			eventfd_write(loop->done_efd, 1);
	}
	return n;
}

void uffd_loop_notify_progress(struct uffd_loop *loop)
{
	pthread_mutex_lock(&loop->done_lock);
	pthread_cond_broadcast(&loop->done_cond);
	pthread_mutex_unlock(&loop->done_lock);
}

/* 1: every prefetching region is complete; 0: not yet; -EINVAL: none. */
static int prefetch_state(struct uffd_loop *loop)
{
	bool any = false, all = true;

	pthread_rwlock_rdlock(&loop->regions_lock);
	for (size_t i = 0; i < loop->nregions; i++) {
		struct uffd_region *r = loop->regions[i];

		if (!r->prefetch || r->dead)
			continue;
		any = true;
		all = all && uffd_region_complete(r);
	}
	pthread_rwlock_unlock(&loop->regions_lock);
	return any ? all : -EINVAL;
}

UFFD_EXPORT int uffd_loop_wait_complete(struct uffd_loop *loop, int timeout_ms)
{
	struct timespec deadline;
	int state, ret = 0;

	if (!loop)
		return uffd_err(EINVAL, "wait_complete: NULL loop");
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&loop->done_lock);
	while ((state = prefetch_state(loop)) == 0 && ret != ETIMEDOUT)
		ret = timeout_ms < 0 ? pthread_cond_wait(&loop->done_cond,
							 &loop->done_lock)
				     : pthread_cond_timedwait(&loop->done_cond,
							      &loop->done_lock,
							      &deadline);
	pthread_mutex_unlock(&loop->done_lock);
	if (state < 0)
		return uffd_err(EINVAL, "no region of this loop prefetches");
	return state ? 0 : uffd_err(ETIMEDOUT, "the regions are not complete "
					       "yet");
}

UFFD_EXPORT int uffd_loop_get_stats(struct uffd_loop *loop,
				    struct uffd_loop_stats *stats, size_t size)
{
	struct uffd_loop_stats sum;
	uint64_t *d = (uint64_t *)&sum;

	if (!loop || !stats || size > sizeof(sum))
		return uffd_err(EINVAL, "get_stats: NULL argument or a size "
					"larger than this library knows");
	pthread_mutex_lock(&loop->stats_lock);
	sum = loop->retired;
	pthread_mutex_unlock(&loop->stats_lock);
	/* live workers' counts are read without their cooperation: exact
	 * once they stop, close enough while they run */
	for (unsigned w = 0; w < loop->nworkers; w++)
		for (size_t i = 0; i < sizeof(sum) / sizeof(uint64_t); i++)
			d[i] += ((uint64_t *)&loop->workers[w].stats)[i];
	for (size_t i = 0; i < sizeof(sum) / sizeof(uint64_t); i++)
		d[i] += ((uint64_t *)&loop->embed.stats)[i];
	memcpy(stats, &sum, size);
	return 0;
}
