// SPDX-License-Identifier: MIT
/*
 * A page source that reads an NBD export through libnbd's asynchronous
 * API, built on the custom source interface. Workers only queue reads; a
 * single I/O thread per source drives the connections and completes the
 * fetches, so no worker ever waits on the network.
 *
 * Without libnbd the constructor is still there and says why it fails.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

/* uffd_source_new_nbd()'s limit on connecting and the handshake: longer
 * than any server that answers at all needs, shorter than TCP's own
 * retries against a host that never answers (about two minutes). */
#define NBD_CONNECT_TIMEOUT_MS 30000

UFFD_EXPORT int uffd_source_new_nbd(const char *uri, uint64_t *size,
				    struct uffd_source **src)
{
	return uffd_source_new_nbd_timeout(uri, NBD_CONNECT_TIMEOUT_MS, size,
					   src);
}

#ifndef LIBUFFD_HAVE_NBD

UFFD_EXPORT int uffd_source_new_nbd_timeout(const char *uri, int timeout_ms,
					    uint64_t *size,
					    struct uffd_source **src)
{
	return uffd_err(ENOTSUP, "NBD source: this libuffd was built without "
				 "libnbd");
}

#else

#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libnbd.h>

/*
 * Reads a thread waits on get a connection of their own when the server
 * allows several (multi-conn): otherwise they would queue on the wire
 * behind megabytes of prefetch. A server that does not say so may accept
 * one client only (qemu-nbd by default), so we do not ask it for two.
 */
enum { CONN_BULK, CONN_URGENT, NCONN };

/* The protocol lets a server refuse reads over 32 MiB unless it
 * advertises more; libnbd itself refuses more than 64 MiB. */
#define NBD_DEFAULT_MAX_READ (32u << 20)
#define NBD_LIBNBD_MAX_READ (64u << 20)

struct nbd_src {
	struct nbd_handle *conn[NCONN];
	unsigned nconn;
	uint64_t size;    /* of the export */
	uint32_t max_read;
	int kick_efd;     /* wakes the I/O thread: new writes, or stop */
	pthread_t io_thread;
	bool io_started;
	atomic_bool stopping;
	atomic_ulong inflight; /* NBD reads queued, not completed */
};

/* One fetch, cut into as many NBD reads as the server's limit needs. */
struct nbd_fetch {
	struct nbd_src *s;
	struct uffd_fetch *fetch;
	atomic_uint pending; /* reads not completed, +1 while being cut */
	atomic_int error;    /* the first failure */
};

static void fetch_put(struct nbd_fetch *f)
{
	if (atomic_fetch_sub(&f->pending, 1) != 1)
		return;
	uffd_fetch_complete(f->fetch, -atomic_load(&f->error));
	free(f);
}

static void fetch_fail(struct nbd_fetch *f, int err)
{
	int none = 0;

	atomic_compare_exchange_strong(&f->error, &none, err);
}

/*
 * libnbd calls this with the handle locked, from whichever thread runs
 * its state machine; uffd_fetch_complete() only queues the result for the
 * loop, so nothing here calls back into libnbd.
 */
static int read_done(void *arg, int *error)
{
	struct nbd_fetch *f = arg;
	struct nbd_src *s = f->s;

	if (*error)
		fetch_fail(f, *error);
	fetch_put(f);
	atomic_fetch_sub(&s->inflight, 1);
	return 1; /* retire the command: its status is never asked for */
}

static int nbd_errno(void)
{
	int err = nbd_get_errno();

	return err > 0 ? err : EIO;
}

/* Queues the reads of [off, off + len) into buf on h. Returns how many
 * bytes were queued; *err gets the reason it stopped short. */
static size_t queue_reads(struct nbd_src *s, struct nbd_handle *h,
			  struct nbd_fetch *f, unsigned char *buf,
			  uint64_t off, size_t len, int *err)
{
	nbd_completion_callback cb = { .callback = read_done, .user_data = f };
	size_t done = 0;

	while (done < len) {
		size_t n = len - done < s->max_read ? len - done : s->max_read;

		atomic_fetch_add(&f->pending, 1);
		atomic_fetch_add(&s->inflight, 1);
		if (nbd_aio_pread(h, buf + done, n, off + done, cb, 0) < 0) {
			*err = nbd_errno();
			atomic_fetch_sub(&s->inflight, 1);
			atomic_fetch_sub(&f->pending, 1);
			break;
		}
		done += n;
	}
	return done;
}

static bool conn_live(struct nbd_handle *h)
{
	return !nbd_aio_is_dead(h) && !nbd_aio_is_closed(h);
}

static int nbd_fetch(void *arg, struct uffd_fetch *fetch)
{
	struct nbd_src *s = arg;
	uint64_t off = uffd_fetch_get_offset(fetch);
	size_t len = uffd_fetch_get_length(fetch), avail, queued;
	unsigned char *buf = uffd_fetch_get_buffer(fetch);
	struct nbd_handle *h;
	struct nbd_fetch *f;
	int err = 0;

	/* past the end of the export reads as zeros, like a file source */
	avail = off >= s->size ? 0
			       : (s->size - off < len ? s->size - off : len);
	memset(buf + avail, 0, len - avail);
	if (!avail) {
		uffd_fetch_complete(fetch, 0);
		return 0;
	}
	f = malloc(sizeof(*f));
	if (!f)
		return uffd_err(ENOMEM, "NBD source: out of memory for a read");
	f->s = s;
	f->fetch = fetch;
	atomic_init(&f->pending, 1);
	atomic_init(&f->error, 0);
	h = s->conn[uffd_fetch_is_urgent(fetch) ? s->nconn - 1 : CONN_BULK];
	if (!conn_live(h)) /* the urgent connection died: the other serves */
		h = s->conn[CONN_BULK];
	queued = queue_reads(s, h, f, buf, off, avail, &err);
	if (!queued) {
		free(f);
		return uffd_errf(err, "NBD source: cannot queue a read of %zu "
				      "bytes at %#llx: %s", avail,
				 (unsigned long long)off, strerror(err));
	}
	if (queued < avail)
		fetch_fail(f, err);
	/* A read that could not be sent whole waits for the socket to take
	 * more: only the I/O thread watches for that. */
	if (nbd_aio_get_direction(h) & LIBNBD_AIO_DIRECTION_WRITE)
		eventfd_write(s->kick_efd, 1);
	fetch_put(f);
	return 0;
}

/* Cuts the connections short: libnbd then fails every read in flight
 * (ENOTCONN) at once instead of waiting for a server that may never
 * answer. */
static void cut_connections(struct nbd_src *s)
{
	for (unsigned i = 0; i < s->nconn; i++)
		if (conn_live(s->conn[i]))
			shutdown(nbd_aio_get_fd(s->conn[i]), SHUT_RDWR);
}

static void poll_setup(struct nbd_src *s, struct pollfd *pfd)
{
	for (unsigned i = 0; i < s->nconn; i++) {
		struct nbd_handle *h = s->conn[i];
		unsigned dir;

		/* a dead connection keeps no fd worth polling: poll(2)
		 * ignores negative ones */
		pfd[i].fd = conn_live(h) ? nbd_aio_get_fd(h) : -1;
		dir = pfd[i].fd >= 0 ? nbd_aio_get_direction(h) : 0;
		pfd[i].events = (dir & LIBNBD_AIO_DIRECTION_READ ? POLLIN : 0) |
				(dir & LIBNBD_AIO_DIRECTION_WRITE ? POLLOUT : 0);
		pfd[i].revents = 0;
	}
	pfd[s->nconn] = (struct pollfd){ .fd = s->kick_efd, .events = POLLIN };
}

/*
 * Moves every connection's state machine on when its socket is ready, until
 * the source is released; then makes sure every read queued has completed
 * (the loop's memory is still there at that point), and returns.
 */
static void *io_main(void *arg)
{
	struct nbd_src *s = arg;
	struct pollfd pfd[NCONN + 1];
	bool cut = false;
	eventfd_t v;

	for (;;) {
		if (atomic_load(&s->stopping)) {
			if (!atomic_load(&s->inflight))
				break;
			if (!cut)
				cut_connections(s);
			cut = true;
		}
		poll_setup(s, pfd);
		if (poll(pfd, s->nconn + 1, -1) < 0)
			continue; /* EINTR; nothing else can fail here */
		if (pfd[s->nconn].revents & POLLIN)
			eventfd_read(s->kick_efd, &v);
		for (unsigned i = 0; i < s->nconn; i++) {
			/* errors: the connection died, and libnbd has
			 * failed its reads; the loop hears of each */
			if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
				nbd_aio_notify_read(s->conn[i]);
			else if (pfd[i].revents & POLLOUT)
				nbd_aio_notify_write(s->conn[i]);
		}
	}
	return NULL;
}

static void src_destroy(struct nbd_src *s)
{
	if (s->io_started) {
		atomic_store(&s->stopping, true);
		eventfd_write(s->kick_efd, 1);
		pthread_join(s->io_thread, NULL);
	}
	for (unsigned i = 0; i < s->nconn; i++) {
		/* say goodbye without waiting for an answer */
		if (nbd_aio_is_ready(s->conn[i]))
			nbd_aio_disconnect(s->conn[i], 0);
		nbd_close(s->conn[i]);
	}
	if (s->kick_efd >= 0)
		close(s->kick_efd);
	free(s);
}

static void nbd_release(void *arg)
{
	src_destroy(arg);
}

/* Connects and shakes hands through libnbd's asynchronous calls, so that
 * a server that never answers costs timeout_ms (-1: no limit), not a
 * hang. */
static int connect_wait(struct nbd_handle *h, int timeout_ms)
{
	uint64_t deadline = uffd_now_ns() + (uint64_t)timeout_ms * 1000000u;

	while (nbd_aio_is_connecting(h) == 1) {
		uint64_t now = uffd_now_ns();
		int left = timeout_ms < 0 ? -1
			   : now >= deadline
				   ? 0
				   : (int)((deadline - now + 999999) / 1000000);

		if (!left) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (nbd_poll(h, left) < 0)
			return -1;
	}
	if (nbd_aio_is_ready(h) == 1)
		return 0;
	errno = nbd_errno(); /* closed or dead: libnbd says why */
	return -1;
}

static int connect_one(struct nbd_src *s, const char *uri, int timeout_ms)
{
	struct nbd_handle *h = nbd_create();
	int ret;

	if (!h)
		return uffd_errf(nbd_errno(), "NBD source: %s",
				 nbd_get_error());
	if (nbd_aio_connect_uri(h, uri) < 0) {
		ret = uffd_errf(nbd_errno(), "NBD source: cannot connect to "
				"\"%s\": %s", uri, nbd_get_error());
		nbd_close(h);
		return ret;
	}
	if (connect_wait(h, timeout_ms)) {
		int err = errno;

		ret = err == ETIMEDOUT
			      ? uffd_errf(ETIMEDOUT, "NBD source: cannot "
					  "connect to \"%s\": no handshake "
					  "within %d ms", uri, timeout_ms)
			      : uffd_errf(err, "NBD source: cannot connect to "
					  "\"%s\": %s", uri,
					  nbd_get_error() ? nbd_get_error()
							  : strerror(err));
		nbd_close(h);
		return ret;
	}
	s->conn[s->nconn++] = h;
	return 0;
}

/* The export's size and the largest read its server takes. */
static int learn_export(struct nbd_src *s, const char *uri)
{
	int64_t size = nbd_get_size(s->conn[0]);
	int64_t max = nbd_get_block_size(s->conn[0], LIBNBD_SIZE_MAXIMUM);

	if (size < 0)
		return uffd_errf(nbd_errno(), "NBD source: the size of \"%s\" "
				 "is unknown: %s", uri, nbd_get_error());
	s->size = (uint64_t)size;
	if (max <= 0)
		max = NBD_DEFAULT_MAX_READ;
	if (max > NBD_LIBNBD_MAX_READ)
		max = NBD_LIBNBD_MAX_READ;
	/* whole pages per read where the limit allows it */
	if (max >= (int64_t)uffd_page_size())
		max -= max % (int64_t)uffd_page_size();
	s->max_read = (uint32_t)max;
	return 0;
}

/* The I/O thread takes no signals: they are the application's. */
static int start_io(struct nbd_src *s)
{
	sigset_t all, old;
	int ret;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&s->io_thread, NULL, io_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		return uffd_err(ret, "NBD source: cannot create its I/O thread");
	s->io_started = true;
	return 0;
}

static int src_open(const char *uri, int timeout_ms, struct nbd_src *s)
{
	int ret;

	s->kick_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->kick_efd < 0)
		return uffd_errf(errno, "NBD source: eventfd: %s",
				 strerror(errno));
	ret = connect_one(s, uri, timeout_ms);
	if (!ret)
		ret = learn_export(s, uri);
	/* a second connection is only a bonus: without it, urgent reads
	 * share the first */
	if (!ret && nbd_can_multi_conn(s->conn[0]) == 1)
		connect_one(s, uri, timeout_ms);
	return ret ? ret : start_io(s);
}

UFFD_EXPORT int uffd_source_new_nbd_timeout(const char *uri, int timeout_ms,
					    uint64_t *size,
					    struct uffd_source **src)
{
	static const struct uffd_source_ops ops = {
		.fetch = nbd_fetch,
		.release = nbd_release,
	};
	struct nbd_src *s;
	int ret;

	if (!uri || !src)
		return uffd_err(EINVAL, "NBD source: NULL uri or result");
	if (timeout_ms < -1)
		return uffd_errf(EINVAL, "NBD source: timeout %d ms (-1 for "
				 "none, or 0 and more)", timeout_ms);
	s = calloc(1, sizeof(*s));
	if (!s)
		return uffd_err(ENOMEM, "NBD source: out of memory");
	s->kick_efd = -1;
	ret = src_open(uri, timeout_ms, s);
	if (!ret)
		ret = uffd_source_new_custom(&ops, s, src);
	if (ret) {
		src_destroy(s);
		return ret;
	}
	if (size)
		*size = s->size;
	return 0;
}

#endif /* LIBUFFD_HAVE_NBD */
