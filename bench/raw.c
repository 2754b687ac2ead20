// SPDX-License-Identifier: MIT
/*
 * The reference handler: what a program would write by hand against the
 * kernel's ioctls, with no library in between: poll(), read() a batch of
 * messages, one ioctl per fault. Its cost is the kernel's floor, which
 * libuffd's loop is measured against.
 *
 * It uses the system's <linux/userfaultfd.h> (Linux 6.1 here), which has
 * every ioctl the benchmark needs (COPY, ZEROPAGE, CONTINUE, WRITEPROTECT).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"

#define RAW_MAX_THREADS 8
#define RAW_BATCH 16

struct raw_loop {
	int uffd, stop_fd;
	char *addr;
	size_t len, page;
	enum raw_op op;
	const char *src;
	unsigned nthreads;
	pthread_t threads[RAW_MAX_THREADS];
	atomic_uint_fast64_t faults;
};

static int raw_open(enum raw_op op, bool huge)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		bench_die("raw loop: userfaultfd(): %s", strerror(errno));
	if (op == RAW_CONTINUE)
		api.features = huge ? UFFD_FEATURE_MINOR_HUGETLBFS
				    : UFFD_FEATURE_MINOR_SHMEM;
	if (op == RAW_UNPROTECT)
		api.features = UFFD_FEATURE_PAGEFAULT_FLAG_WP;
	if (ioctl(fd, UFFDIO_API, &api))
		bench_die("raw loop: UFFDIO_API: %s", strerror(errno));
	return fd;
}

static void raw_register(struct raw_loop *raw)
{
	struct uffdio_register reg = {
		.range = { (uintptr_t)raw->addr, raw->len },
		.mode = raw->op == RAW_CONTINUE	   ? UFFDIO_REGISTER_MODE_MINOR
			: raw->op == RAW_UNPROTECT ? UFFDIO_REGISTER_MODE_WP
						   : UFFDIO_REGISTER_MODE_MISSING,
	};
	struct uffdio_writeprotect wp = {
		.range = { (uintptr_t)raw->addr, raw->len },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};

	if (ioctl(raw->uffd, UFFDIO_REGISTER, &reg))
		bench_die("raw loop: UFFDIO_REGISTER: %s", strerror(errno));
	if (raw->op == RAW_UNPROTECT && ioctl(raw->uffd, UFFDIO_WRITEPROTECT, &wp))
		bench_die("raw loop: UFFDIO_WRITEPROTECT: %s", strerror(errno));
}

/* One page; EEXIST (another handler thread won) still needs a wake. */
static void raw_resolve(struct raw_loop *raw, uintptr_t page_addr)
{
	struct uffdio_range range = { page_addr, raw->page };
	int ret;

	switch (raw->op) {
	case RAW_COPY: {
		struct uffdio_copy c = {
			.dst = page_addr,
			.src = (uintptr_t)raw->src +
			       (page_addr - (uintptr_t)raw->addr),
			.len = raw->page,
		};
		ret = ioctl(raw->uffd, UFFDIO_COPY, &c);
		break;
	}
	case RAW_ZEROPAGE: {
		struct uffdio_zeropage z = { .range = range };
		ret = ioctl(raw->uffd, UFFDIO_ZEROPAGE, &z);
		break;
	}
	case RAW_CONTINUE: {
		struct uffdio_continue c = { .range = range };
		ret = ioctl(raw->uffd, UFFDIO_CONTINUE, &c);
		break;
	}
	default: {
		struct uffdio_writeprotect w = { .range = range };
		ret = ioctl(raw->uffd, UFFDIO_WRITEPROTECT, &w);
		break;
	}
	}
	if (ret && errno == EEXIST)
		ret = ioctl(raw->uffd, UFFDIO_WAKE, &range);
	if (ret)
		bench_die("raw loop: resolving %#lx: %s",
			  (unsigned long)page_addr, strerror(errno));
}

static void *raw_worker(void *arg)
{
	struct raw_loop *raw = arg;
	struct uffd_msg msgs[RAW_BATCH];
	struct pollfd pfd[2] = {
		{ .fd = raw->uffd, .events = POLLIN },
		{ .fd = raw->stop_fd, .events = POLLIN },
	};

	for (;;) {
		ssize_t n;

		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			bench_die("raw loop: poll: %s", strerror(errno));
		if (pfd[1].revents)
			return NULL;
		n = read(raw->uffd, msgs, sizeof(msgs));
		if (n < 0 && errno == EAGAIN)
			continue; /* another handler thread took it */
		if (n < 0)
			bench_die("raw loop: read: %s", strerror(errno));
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++) {
			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			/* counted first: the wake lets the toucher go on */
			atomic_fetch_add(&raw->faults, 1);
			raw_resolve(raw, msgs[i].arg.pagefault.address &
						 ~(uint64_t)(raw->page - 1));
		}
	}
}

struct raw_loop *raw_loop_start(void *addr, size_t len, size_t page,
				enum raw_op op, const char *src,
				unsigned threads)
{
	struct raw_loop *raw = calloc(1, sizeof(*raw));

	if (!raw || threads > RAW_MAX_THREADS)
		bench_die("raw loop: out of memory or too many threads");
	raw->addr = addr;
	raw->len = len;
	raw->page = page;
	raw->op = op;
	raw->src = src;
	raw->nthreads = threads;
	raw->uffd = raw_open(op, page > 4096);
	raw->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (raw->stop_fd < 0)
		bench_die("raw loop: eventfd: %s", strerror(errno));
	raw_register(raw);
	for (unsigned i = 0; i < threads; i++)
		if (pthread_create(&raw->threads[i], NULL, raw_worker, raw))
			bench_die("raw loop: pthread_create failed");
	return raw;
}

void raw_loop_stop(struct raw_loop *raw)
{
	uint64_t one = 1;

	if (write(raw->stop_fd, &one, sizeof(one)) != sizeof(one))
		bench_die("raw loop: eventfd write: %s", strerror(errno));
	for (unsigned i = 0; i < raw->nthreads; i++)
		pthread_join(raw->threads[i], NULL);
	close(raw->stop_fd);
	close(raw->uffd); /* unregisters the range */
	free(raw);
}

uint64_t raw_loop_faults(const struct raw_loop *raw)
{
	return atomic_load(&raw->faults);
}
