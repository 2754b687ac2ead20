// SPDX-License-Identifier: MIT
/*
 * The io_uring driver: one ring per worker. The uffd, the completion
 * eventfd and the stop eventfd are watched with multishot polls, and file
 * sources are read with io_uring reads, so one worker keeps many fetches in
 * flight (a prefetch queue, other faults) while the disk works, and
 * resolves each on its completion.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>

#include "loop.h"

#define RING_ENTRIES 128

/* user_data of the polls; reads carry their request's address */
enum { TAG_UFFD = 1, TAG_DONE, TAG_STOP, TAG_LAST };

/*
 * The eventfd polls are armed lazily, by the thread about to block
 * serving: a poll completion is task work for its ring's owner, and if the
 * owner were a thread faulting on registered memory (the one that made the
 * loop, say), its fault would be interrupted and raised again. Embedding
 * (uffd_loop_process) never arms them: it reaps read completions only.
 *
 * The uffd itself is watched through the ring only while the worker waits
 * there, that is while reads are in flight, with a one-shot poll: each
 * completion through the ring costs task work, and a wait with nothing in
 * the ring is a plain poll(), as in the poll driver.
 */
struct uring_worker {
	struct io_uring ring;
	bool armed;      /* eventfd polls (multishot) */
	bool uffd_armed; /* the uffd's one-shot poll */
	unsigned reads;  /* file reads in flight */
};

static struct io_uring *ring_of(struct uffd_worker *w)
{
	return &((struct uring_worker *)w->driver)->ring;
}

static struct io_uring_sqe *get_sqe(struct io_uring *ring)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	if (!sqe) { /* full: hand what is queued to the kernel, then retry */
		io_uring_submit(ring);
		sqe = io_uring_get_sqe(ring);
	}
	return sqe;
}

static int arm_poll(struct io_uring *ring, int fd, uint64_t tag)
{
	struct io_uring_sqe *sqe = get_sqe(ring);

	if (!sqe)
		return -EBUSY;
	if (tag == TAG_UFFD)
		io_uring_prep_poll_add(sqe, fd, POLLIN);
	else
		io_uring_prep_poll_multishot(sqe, fd, POLLIN);
	io_uring_sqe_set_data64(sqe, tag);
	return 0;
}

static int arm_polls(struct uffd_worker *w);

static int uring_init(struct uffd_worker *w)
{
	struct uring_worker *uw = calloc(1, sizeof(*uw));
	struct uffd_loop *loop = w->loop;
	int ret;

	if (!uw)
		return uffd_err(ENOMEM, "out of memory for an io_uring");
	/* Cooperative task work: completions are run when the worker next
	 * enters the kernel, not by interrupting it with an IPI while it
	 * copies; the flag in the ring tells liburing's peek when to enter
	 * for them. Kernels before 5.19 refuse both: then without. */
	ret = io_uring_queue_init(RING_ENTRIES, &uw->ring,
				  IORING_SETUP_COOP_TASKRUN |
					  IORING_SETUP_TASKRUN_FLAG);
	if (ret == -EINVAL)
		ret = io_uring_queue_init(RING_ENTRIES, &uw->ring, 0);
	if (ret) {
		free(uw);
		return uffd_errf(-ret, "io_uring_queue_init: %s", strerror(-ret));
	}
	w->driver = uw;
	/* worker threads only serve: arm now; the embedding worker waits
	 * until it blocks in uffd_loop_run() on its serving thread */
	return w == &loop->embed ? 0 : arm_polls(w);
}

static int arm_polls(struct uffd_worker *w)
{
	struct uring_worker *uw = w->driver;
	struct uffd_loop *loop = w->loop;
	int ret;

	if (uw->armed)
		return 0;
	ret = arm_poll(&uw->ring, loop->done_efd, TAG_DONE);
	if (!ret)
		ret = arm_poll(&uw->ring, loop->stop_efd, TAG_STOP);
	if (!ret && io_uring_submit(&uw->ring) < 0)
		ret = -EIO;
	uw->armed = !ret;
	return ret ? uffd_err(-ret, "cannot arm the io_uring polls") : 0;
}

static void handle_read(struct uffd_worker *w, uint64_t tag, int res);

static void uring_fini(struct uffd_worker *w)
{
	struct uring_worker *uw = w->driver;
	struct io_uring_cqe *cqe;

	if (!uw)
		return;
	/* a thread may wait on a read still in flight: finish them all */
	while (uw->reads && !io_uring_wait_cqe(&uw->ring, &cqe)) {
		uint64_t tag = cqe->user_data;
		int res = cqe->res;

		io_uring_cqe_seen(&uw->ring, cqe);
		if (tag >= TAG_LAST)
			handle_read(w, tag, res);
	}
	io_uring_queue_exit(&uw->ring);
	free(uw);
	w->driver = NULL;
}

/* true when all of [off, off+len) was in the page cache and is in buf */
static bool read_cached(const struct uffd_source *src, uint64_t off,
			void *buf, size_t len)
{
	struct iovec iov = { buf, len };

	return preadv2(src->fd, &iov, 1, (off_t)(src->fd_offset + off),
		       RWF_NOWAIT) == (ssize_t)len;
}

static int uring_read(struct uffd_worker *w, struct uffd_request *req,
		      const struct uffd_source *src, uint64_t off, void *buf,
		      size_t len)
{
	struct io_uring *ring = ring_of(w);
	uint64_t size = uffd_source_size(src);
	size_t avail = off >= size ? 0
				   : (size - off < len ? (size_t)(size - off) : len);
	struct io_uring_sqe *sqe;

	/* past the end (zeros), or stopping: the drain waits for nothing,
	 * so it reads synchronously */
	if (!avail || atomic_load(&w->loop->stopping))
		return -1;
	memset((unsigned char *)buf + avail, 0, len - avail);
	/* Pages in the page cache are copied here and now: a read that
	 * cannot block gains nothing from the ring but a completion to wait
	 * for. The rest (a short read is one that met an uncached page) is
	 * read whole by the ring; its start comes from the cache again. */
	if (read_cached(src, off, buf, avail))
		return 1;
	sqe = get_sqe(ring);
	if (!sqe)
		return -1; /* the caller reads synchronously */
	io_uring_prep_read(sqe, src->fd, buf, (unsigned)avail,
			   src->fd_offset + off);
	io_uring_sqe_set_data(sqe, req);
	((struct uring_worker *)w->driver)->reads++;
	/* urgent or not, get it to the disk now: a thread may be waiting */
	io_uring_submit(ring);
	return 0;
}

/* What a completion says, copied out of the ring before handling it. */
struct completion {
	uint64_t tag;
	int32_t res;
	uint32_t flags;
};

/* An eventfd poll's multishot ended (the kernel may drop it): arm it
 * again. */
static void rearm(struct uffd_worker *w, const struct completion *cqe,
		  uint64_t tag)
{
	struct uffd_loop *loop = w->loop;
	int fd = tag == TAG_DONE ? loop->done_efd : loop->stop_efd;

	if (!(cqe->flags & IORING_CQE_F_MORE))
		arm_poll(ring_of(w), fd, tag);
}

static int handle_cqe(struct uffd_worker *w, const struct completion *cqe)
{
	uint64_t tag = cqe->tag;
	eventfd_t v;

	switch (tag) {
	case TAG_UFFD:
		((struct uring_worker *)w->driver)->uffd_armed = false;
		return uffd_serve_ready(w);
	case TAG_DONE:
		rearm(w, cqe, tag);
		eventfd_read(w->loop->done_efd, &v);
		return uffd_serve_completions(w);
	case TAG_STOP:
		rearm(w, cqe, tag);
		return 1;
	default:
		handle_read(w, tag, cqe->res);
		return 1;
	}
}

/* A file read ended; res: bytes or -errno. */
static void handle_read(struct uffd_worker *w, uint64_t tag, int res)
{
	((struct uring_worker *)w->driver)->reads--;
	uffd_serve_read_done(w, (struct uffd_request *)(uintptr_t)tag, res);
}

/* Waits in the ring for a read or an event, the uffd included. */
static int ring_wait(struct uffd_worker *w, int timeout_ms)
{
	struct uring_worker *uw = w->driver;
	struct __kernel_timespec ts = { .tv_sec = timeout_ms / 1000,
					.tv_nsec = (timeout_ms % 1000) * 1000000L };
	struct io_uring_cqe *cqe;

	if (!uw->uffd_armed && !arm_poll(&uw->ring, w->loop->uffd, TAG_UFFD))
		uw->uffd_armed = true;
	return io_uring_submit_and_wait_timeout(
		&uw->ring, &cqe, 1, timeout_ms < 0 ? NULL : &ts, NULL);
}

static int uring_wait_and_serve(struct uffd_worker *w, int timeout_ms)
{
	struct uring_worker *uw = w->driver;
	struct io_uring *ring = &uw->ring;
	struct completion batch[RING_ENTRIES];
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;
	int ret, handled = 0;

	/* a waiting worker: this thread serves and never faults itself */
	if (timeout_ms != 0 && (ret = arm_polls(w)))
		return ret;
	if (!uw->armed) {
		/* embedding: serve the uffd and the completions directly */
		handled = uffd_serve_completions(w);
		ret = uffd_serve_ready(w);
		handled += ret > 0 ? ret : 0;
	} else if (!(handled = uffd_serve_try_ready(w)) && !uw->reads) {
		/* nothing of the ring's own to wait for */
		handled = uffd_loop_poll_wait(w, timeout_ms);
		if (handled < 0)
			return handled;
	} else if (!handled) {
		ret = ring_wait(w, timeout_ms);
		if (ret == -ETIME || ret == -EINTR)
			return 0;
		if (ret < 0)
			return ret;
	}
	/* then what the ring has finished */
	io_uring_submit(ring);
	if (io_uring_peek_cqe(ring, &cqe))
		return handled;
	/* Take the batch, then handle it: handling may add entries. */
	io_uring_for_each_cqe(ring, head, cqe) {
		batch[seen++] = (struct completion){ cqe->user_data, cqe->res,
						     cqe->flags };
		if (seen == RING_ENTRIES)
			break;
	}
	io_uring_cq_advance(ring, seen);
	for (unsigned i = 0; i < seen; i++) {
		ret = handle_cqe(w, &batch[i]);
		if (ret > 0)
			handled += ret;
	}
	io_uring_submit(ring);
	return handled;
}

static int uring_poll_fd(struct uffd_worker *w)
{
	return w->driver ? ring_of(w)->ring_fd : -1;
}

const struct uffd_driver uffd_driver_uring = {
	.poll_fd = uring_poll_fd,
	.name = "io_uring",
	.worker_init = uring_init,
	.worker_fini = uring_fini,
	.wait_and_serve = uring_wait_and_serve,
	.read_async = uring_read,
};
