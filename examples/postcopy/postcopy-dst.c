// SPDX-License-Identifier: MIT
/*
 * postcopy-dst: the destination of a post-copy live migration.
 *
 * It maps empty memory the size of the source's image and starts its
 * workload at once; libuffd's loop fills each page on first touch from a
 * user-defined page source that talks to postcopy-src (PROTOCOL.md):
 *
 *  - a receiver thread reads DATA messages into a staging copy of the image
 *    and marks their pages as arrived;
 *  - the source's fetch() completes at once when its pages have arrived.
 *    Otherwise it parks the fetch, and the receiver completes it when the
 *    last of its pages comes in. An urgent fetch (a thread is faulting)
 *    also sends a REQUEST, which the source answers before its push;
 *  - background fetches (the loop's prefetch) send nothing: the push brings
 *    their pages anyway, in the same address order, so asking would only
 *    compete with the urgent requests. (A fault on a page of such a fetch
 *    waits for the push, which is close: the prefetch takes the lowest
 *    missing pages, the push sends the lowest unsent ones.) Prefetch is
 *    what brings pushed pages into the memory, so the restore completes
 *    by itself, and uffd_loop_wait_complete() says when.
 *
 * The workload reads all over the memory and writes to it only in a way
 * that leaves the image's bytes as they were (each write is undone by the
 * next: see touch_write()); what it computes goes to a scratch area
 * outside the image. So the checksum of the memory must equal the source's
 * at the end, and the exit status is 0 only when it does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libuffd.h>

#include "postcopy-proto.h"

#define SOCK_BUF (64 * 1024) /* small: see PROTOCOL.md, "Why this shape" */

struct options {
	const char *address;
	uint64_t port, timeout_s;
};

/* A fetch waiting for pages that have not arrived yet. */
struct pending {
	struct pending *next;
	struct uffd_fetch *fetch;
	size_t first, n, missing;
};

struct dst {
	int sock;
	size_t size, ps, npages;
	uint64_t checksum;        /* the source's, from HELLO */
	unsigned char *staging;   /* pages as they arrive */
	unsigned char *mem;       /* the registered memory */
	pthread_mutex_t send_lock;
	/* shared between fetch() and the receiver, under lock */
	pthread_mutex_t lock;
	unsigned char *arrived;   /* one byte per page */
	size_t narrived;
	struct pending *pending;
	bool broken;
	char why[256];
	uint64_t pages_requested, pages_pushed;
	/* counted by fetch() */
	atomic_ulong fetch_urgent, fetch_urgent_ready, fetch_bg, fetch_bg_ready;
	atomic_ulong requests;
	atomic_ulong failed_pages;
};

/* ---- the connection ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: postcopy-dst [options]\n"
		"  -a, --address HOST  the source's address (default "
		"127.0.0.1)\n"
		"  -p, --port PORT     its port (default %d)\n"
		"  -t, --timeout SEC   longest silence of the source "
		"(default 30)\n"
		"Exits with 0 only when the restored memory's checksum "
		"matches the source's.\n", PC_DEFAULT_PORT);
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "address", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*o = (struct options){ "127.0.0.1", PC_DEFAULT_PORT, 30 };
	while ((c = getopt_long(argc, argv, "a:p:t:h", longopts, NULL)) != -1) {
		bool ok = true;

		switch (c) {
		case 'a': o->address = optarg; break;
		case 'p': ok = pc_parse_u64(optarg, 1, 65535, &o->port); break;
		case 't':
			ok = pc_parse_u64(optarg, 1, 3600, &o->timeout_s);
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
		if (!ok) {
			fprintf(stderr, "postcopy-dst: bad value \"%s\" for "
				"option -%c (see --help for the ranges)\n",
				optarg, c);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "postcopy-dst: unexpected argument \"%s\"\n",
			argv[optind]);
		return -1;
	}
	return 0;
}

/* A small receive buffer must be set before connect() to take effect. */
static int connect_to(const struct options *o)
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICSERV,
				  .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai, *a;
	char port[16];
	int fd = -1, err = 0, ret, one = 1, buf = SOCK_BUF;

	snprintf(port, sizeof(port), "%" PRIu64, o->port);
	ret = getaddrinfo(o->address, port, &hints, &ai);
	if (ret) {
		fprintf(stderr, "postcopy-dst: %s: %s\n", o->address,
			gai_strerror(ret));
		return -1;
	}
	for (a = ai; a && fd < 0; a = a->ai_next) {
		fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			err = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
		if (connect(fd, a->ai_addr, a->ai_addrlen)) {
			err = errno;
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		fprintf(stderr, "postcopy-dst: cannot connect to %s port %s: "
			"%s\n", o->address, port, strerror(err));
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void set_timeout(int fd, int opt, uint64_t seconds)
{
	struct timeval tv = { .tv_sec = (time_t)seconds };

	setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

static int read_hello(struct dst *d)
{
	unsigned char buf[PC_HELLO_SIZE];
	struct pc_hello h;
	char why[256];
	int ret = pc_recv(d->sock, buf, sizeof(buf));

	if (ret) {
		fprintf(stderr, "postcopy-dst: waiting for the source's HELLO: "
			"%s\n", ret == -ENODATA ? "connection closed"
			: ret == -EPROTO ? "connection closed in the middle"
			: ret == -ETIMEDOUT ? "timed out" : strerror(-ret));
		return -1;
	}
	if (pc_hello_decode(buf, &h, why, sizeof(why))) {
		fprintf(stderr, "postcopy-dst: %s\n", why);
		return -1;
	}
	if (h.page_size != d->ps) {
		fprintf(stderr, "postcopy-dst: the source's pages are of %"
			PRIu32 " bytes, this machine's of %zu\n", h.page_size,
			d->ps);
		return -1;
	}
	if (h.image_size > SIZE_MAX / 4) {
		fprintf(stderr, "postcopy-dst: an image of %" PRIu64 " bytes "
			"cannot be mapped here\n", h.image_size);
		return -1;
	}
	d->size = (size_t)h.image_size;
	d->npages = d->size / d->ps;
	d->checksum = h.checksum;
	return 0;
}

static int send_ready(struct dst *d)
{
	unsigned char buf[PC_READY_SIZE];
	int ret;

	pc_ready_encode(buf);
	ret = pc_send(d->sock, buf, sizeof(buf), NULL, 0);
	if (ret)
		fprintf(stderr, "postcopy-dst: sending READY: %s\n",
			strerror(-ret));
	return ret;
}

/* ---- the page source ---- */

/*
 * Once the connection is lost, fetches are completed with zeros, not with
 * an error: the workload must never block for good, and the checksum and
 * the exit status report the failure. (Failing them with -EIO and letting
 * the loop's failure policy map zeros would be the natural way, but
 * libuffd 0.1.0 then leaves some pages of failed prefetch windows behind
 * its prefetch cursor, and uffd_loop_wait_complete() never returns.)
 */
static void give_zeros(struct dst *d, struct uffd_fetch *f)
{
	memset(uffd_fetch_get_buffer(f), 0, uffd_fetch_get_length(f));
	atomic_fetch_add(&d->failed_pages, uffd_fetch_get_length(f) / d->ps);
	uffd_fetch_complete(f, 0);
}

/* Gives up: keeps the first reason, completes every parked fetch, and
 * makes the receiver return. */
static void dst_break(struct dst *d, const char *why)
{
	struct pending *list;

	pthread_mutex_lock(&d->lock);
	if (!d->broken) {
		d->broken = true;
		snprintf(d->why, sizeof(d->why), "%s", why);
	}
	list = d->pending;
	d->pending = NULL;
	pthread_mutex_unlock(&d->lock);
	shutdown(d->sock, SHUT_RDWR);
	while (list) {
		struct pending *p = list;

		list = p->next;
		give_zeros(d, p->fetch);
		free(p);
	}
}

static void fill(struct dst *d, struct uffd_fetch *f)
{
	memcpy(uffd_fetch_get_buffer(f),
	       d->staging + uffd_fetch_get_offset(f), uffd_fetch_get_length(f));
}

static int send_request(struct dst *d, uint64_t off, uint64_t len)
{
	struct pc_msg m = { PC_REQUEST, PC_REQ_URGENT, off, len };
	unsigned char hdr[PC_HDR_SIZE];
	int ret;

	pc_msg_encode(&m, hdr);
	pthread_mutex_lock(&d->send_lock);
	ret = pc_send(d->sock, hdr, sizeof(hdr), NULL, 0);
	pthread_mutex_unlock(&d->send_lock);
	atomic_fetch_add(&d->requests, 1);
	return ret;
}

static int dst_fetch(void *arg, struct uffd_fetch *f)
{
	struct dst *d = arg;
	uint64_t off = uffd_fetch_get_offset(f);
	size_t len = uffd_fetch_get_length(f);
	bool urgent = uffd_fetch_is_urgent(f);
	struct pending *p;
	size_t missing = 0;

	if (off % d->ps || len % d->ps || !len || off > d->size ||
	    len > d->size - off)
		return -EINVAL; /* not from this loop's region */
	atomic_fetch_add(urgent ? &d->fetch_urgent : &d->fetch_bg, 1);
	p = malloc(sizeof(*p));
	if (!p)
		return -ENOMEM;
	*p = (struct pending){ NULL, f, off / d->ps, len / d->ps, 0 };
	pthread_mutex_lock(&d->lock);
	if (d->broken) {
		pthread_mutex_unlock(&d->lock);
		free(p);
		give_zeros(d, f);
		return 0;
	}
	for (size_t i = 0; i < p->n; i++)
		missing += !d->arrived[p->first + i];
	if (!missing) { /* pushed already: serve it from the staging copy */
		pthread_mutex_unlock(&d->lock);
		free(p);
		atomic_fetch_add(urgent ? &d->fetch_urgent_ready
					: &d->fetch_bg_ready, 1);
		fill(d, f);
		uffd_fetch_complete(f, 0);
		return 0;
	}
	p->missing = missing;
	p->next = d->pending;
	d->pending = p;
	pthread_mutex_unlock(&d->lock);
	/* p may be completed and freed by the receiver from here on */
	if (urgent && send_request(d, off, len))
		dst_break(d, "sending a request to the source failed");
	return 0;
}

/* ---- the receiver thread ---- */

/*
 * Marks [first, first+n) arrived and takes out the parked fetches it
 * completes. Called with the lock held; the caller completes them.
 */
static struct pending *arrive(struct dst *d, size_t first, size_t n,
			      bool requested)
{
	struct pending **pp = &d->pending, *done = NULL;

	memset(d->arrived + first, 1, n);
	d->narrived += n;
	if (requested)
		d->pages_requested += n;
	else
		d->pages_pushed += n;
	while (*pp) {
		struct pending *p = *pp;
		size_t lo = p->first > first ? p->first : first;
		size_t hi = p->first + p->n < first + n ? p->first + p->n
							: first + n;

		if (lo < hi)
			p->missing -= hi - lo; /* these were all missing */
		if (!p->missing) {
			*pp = p->next;
			p->next = done;
			done = p;
		} else {
			pp = &p->next;
		}
	}
	return done;
}

static int receive_data(struct dst *d, const struct pc_msg *m, char *why,
			size_t whylen)
{
	size_t first = (size_t)(m->offset / d->ps);
	size_t n = (size_t)(m->length / d->ps);
	struct pending *done;
	int ret;

	/* only this thread marks pages, so the check holds after unlock */
	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; i < n; i++) {
		if (d->arrived[first + i]) {
			pthread_mutex_unlock(&d->lock);
			snprintf(why, whylen, "page %zu was sent twice",
				 first + i);
			return -EPROTO;
		}
	}
	pthread_mutex_unlock(&d->lock);
	ret = pc_recv(d->sock, d->staging + m->offset, (size_t)m->length);
	if (ret) {
		snprintf(why, whylen, "receiving %" PRIu64 " bytes of data: "
			 "%s", m->length, ret == -EPROTO ? "connection closed"
			 : strerror(-ret));
		return ret;
	}
	pthread_mutex_lock(&d->lock);
	done = arrive(d, first, n, m->flags & PC_DATA_REQUESTED);
	pthread_mutex_unlock(&d->lock);
	while (done) {
		struct pending *p = done;

		done = p->next;
		fill(d, p->fetch);
		uffd_fetch_complete(p->fetch, 0);
		free(p);
	}
	return 0;
}

static int receive_end(struct dst *d, char *why, size_t whylen)
{
	size_t have;

	pthread_mutex_lock(&d->lock);
	have = d->narrived;
	pthread_mutex_unlock(&d->lock);
	if (have == d->npages)
		return 0;
	snprintf(why, whylen, "END after %zu of %zu pages", have, d->npages);
	return -EPROTO;
}

static void *receiver_main(void *arg)
{
	struct dst *d = arg;
	unsigned char hdr[PC_HDR_SIZE];
	char why[256];
	struct pc_msg m;
	int ret;

	for (;;) {
		ret = pc_recv(d->sock, hdr, sizeof(hdr));
		if (ret) {
			snprintf(why, sizeof(why), "receiving from the source: "
				 "%s", ret == -ENODATA ? "connection closed "
				 "before END" : ret == -ETIMEDOUT
				 ? "nothing arrived within the timeout"
				 : strerror(-ret));
			break;
		}
		ret = pc_msg_decode(hdr, true, d->ps, d->size, &m, why,
				    sizeof(why));
		if (ret)
			break;
		if (m.type == PC_END) {
			ret = receive_end(d, why, sizeof(why));
			break;
		}
		ret = receive_data(d, &m, why, sizeof(why));
		if (ret)
			break;
	}
	if (ret)
		dst_break(d, why);
	return NULL;
}

/* ---- the workload ---- */

#define HOT_PAGES 32
#define HOT_ROUNDS 64
#define SCRATCH_WORDS 512

enum wl_kind { WL_HOT, WL_RANDOM, WL_SWEEP, WL_KINDS };

struct workload;

struct wl_thread {
	struct workload *w;
	enum wl_kind kind;
	pthread_t thread;
	uint64_t reads, writes, t_end;
};

struct workload {
	unsigned char *mem;
	size_t npages, ps;
	uint64_t t_start;
	atomic_ullong first_touch; /* ns from t_start; 0 until then */
	uint64_t *scratch;         /* what the threads compute: not image */
	struct wl_thread th[WL_KINDS];
};

static uint64_t rng_next(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *state = x;
}

static uint64_t *word_at(struct workload *w, size_t page, size_t word)
{
	return (uint64_t *)(w->mem + page * w->ps) + word % (w->ps / 8);
}

static uint64_t touch_read(struct wl_thread *t, size_t page, size_t word)
{
	struct workload *w = t->w;
	uint64_t v = __atomic_load_n(word_at(w, page, word), __ATOMIC_RELAXED);
	unsigned long long zero = 0;

	if (!t->reads++ && !t->writes)
		atomic_compare_exchange_strong(&w->first_touch, &zero,
					       pc_now_ns() - w->t_start);
	return v;
}

/*
 * A real write (it faults as one when the page is missing), undone by the
 * second: the image's bytes are as the source has them once the workload
 * has finished, and the final checksum stays honest.
 */
static void touch_write(struct wl_thread *t, size_t page, size_t word)
{
	struct workload *w = t->w;
	uint64_t *p = word_at(w, page, word);
	unsigned long long zero = 0;

	__atomic_fetch_xor(p, UINT64_C(0x5a5a5a5a5a5a5a5a), __ATOMIC_RELAXED);
	__atomic_fetch_xor(p, UINT64_C(0x5a5a5a5a5a5a5a5a), __ATOMIC_RELAXED);
	if (!t->writes++ && !t->reads)
		atomic_compare_exchange_strong(&w->first_touch, &zero,
					       pc_now_ns() - w->t_start);
}

static void record(struct wl_thread *t, uint64_t v)
{
	size_t per = SCRATCH_WORDS / WL_KINDS;

	t->w->scratch[t->kind * per + v % per] += v >> 32;
}

/* A small hot set, read over and over and written now and then. */
static void run_hot(struct wl_thread *t)
{
	struct workload *w = t->w;
	uint64_t rng = 0x9e3779b97f4a7c15u;
	size_t hot[HOT_PAGES];

	for (int i = 0; i < HOT_PAGES; i++)
		hot[i] = rng_next(&rng) % w->npages;
	for (int r = 0; r < HOT_ROUNDS; r++) {
		for (int i = 0; i < HOT_PAGES; i++) {
			record(t, touch_read(t, hot[i], (size_t)r));
			if (r % 8 == i % 8)
				touch_write(t, hot[i], (size_t)r + 1);
		}
	}
}

/* Random pages all over the image: a few words each, every 8th written. */
static void run_random(struct wl_thread *t)
{
	struct workload *w = t->w;
	uint64_t rng = 0x243f6a8885a308d3u;
	size_t count = w->npages / 4 + 1;

	for (size_t k = 0; k < count; k++) {
		size_t page = rng_next(&rng) % w->npages;

		for (size_t word = 0; word < 4; word++)
			record(t, touch_read(t, page, word * 97 + k));
		if (k % 8 == 0)
			touch_write(t, page, k);
	}
}

/* A sequential sweep over the second half, as a scan of a table would. */
static void run_sweep(struct wl_thread *t)
{
	struct workload *w = t->w;
	size_t words = w->ps / 8;

	for (size_t page = w->npages / 2; page < w->npages; page++) {
		uint64_t sum = 0;

		for (size_t word = 0; word < words; word += 8)
			sum += touch_read(t, page, word);
		record(t, sum);
		if (page % 16 == 0)
			touch_write(t, page, 3);
	}
}

static void *workload_main(void *arg)
{
	struct wl_thread *t = arg;

	if (t->kind == WL_HOT)
		run_hot(t);
	else if (t->kind == WL_RANDOM)
		run_random(t);
	else
		run_sweep(t);
	t->t_end = pc_now_ns();
	return NULL;
}

static int workload_start(struct workload *w)
{
	w->scratch = calloc(SCRATCH_WORDS, sizeof(*w->scratch));
	if (!w->scratch)
		return -ENOMEM;
	w->t_start = pc_now_ns();
	for (int k = 0; k < WL_KINDS; k++) {
		w->th[k] = (struct wl_thread){ .w = w, .kind = k };
		if (pthread_create(&w->th[k].thread, NULL, workload_main,
				   &w->th[k])) {
			fprintf(stderr, "postcopy-dst: cannot start the "
				"workload\n");
			exit(1); /* threads already faulting need the loop */
		}
	}
	return 0;
}

static void workload_join(struct workload *w, uint64_t *reads,
			  uint64_t *writes, uint64_t *t_end)
{
	*reads = *writes = *t_end = 0;
	for (int k = 0; k < WL_KINDS; k++) {
		pthread_join(w->th[k].thread, NULL);
		*reads += w->th[k].reads;
		*writes += w->th[k].writes;
		if (w->th[k].t_end > *t_end)
			*t_end = w->th[k].t_end;
	}
	free(w->scratch);
}

/* ---- setting up, reporting ---- */

static void on_fetch_error(void *arg, struct uffd_region *region,
			   uint64_t offset, int err)
{
	struct dst *d = arg;

	atomic_fetch_add(&d->failed_pages, 1); /* the policy maps zeros */
}

static int start_loop(struct dst *d, struct uffd_handle *h,
		      struct uffd_loop **loop)
{
	static const struct uffd_source_ops ops = { .fetch = dst_fetch };
	struct uffd_loop_config *lc = NULL;
	struct uffd_region_config *rc = NULL;
	struct uffd_source *src = NULL;
	int ret;

	ret = uffd_source_new_custom(&ops, d, &src);
	if (!ret)
		ret = uffd_loop_config_new(&lc);
	/* a page the source cannot deliver reads as zeros rather than
	 * killing the workload with SIGBUS: the checksum reports it */
	if (!ret)
		ret = uffd_loop_config_set_fail_policy(lc, UFFD_FAIL_ZERO);
	if (!ret)
		ret = uffd_loop_config_set_error_callback(lc, on_fetch_error,
							  d);
	if (!ret)
		ret = uffd_loop_new(h, lc, loop);
	if (!ret)
		ret = uffd_region_config_new(&rc);
	if (!ret)
		ret = uffd_region_config_set_range(rc, d->mem, d->size);
	if (!ret)
		ret = uffd_region_config_set_source(rc, src, 0);
	if (!ret)
		ret = uffd_region_config_set_prefetch(rc, true);
	if (!ret)
		ret = uffd_loop_add_region(*loop, rc, NULL);
	if (!ret)
		ret = uffd_loop_start(*loop);
	if (ret)
		fprintf(stderr, "postcopy-dst: setting up the loop: %s\n",
			uffd_last_error());
	uffd_source_free(src); /* the region holds its own reference */
	uffd_region_config_free(rc);
	uffd_loop_config_free(lc);
	return ret;
}

static void *map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static int allocate(struct dst *d)
{
	d->staging = map_anon(d->size);
	d->mem = map_anon(d->size);
	d->arrived = calloc(d->npages, 1);
	if (d->staging && d->mem && d->arrived)
		return 0;
	fprintf(stderr, "postcopy-dst: no memory for a %zu-byte image\n",
		d->size);
	return -1;
}

/* The latency below which a fraction q of the faults were served (0: no
 * fault was timed). */
static uint64_t latency_bound_us(const struct uffd_loop_stats *st, double q)
{
	uint64_t total = 0, sum = 0;

	for (int i = 0; i < UFFD_LATENCY_BUCKETS; i++)
		total += st->latency_us_log2[i];
	for (int i = 0; total && i < UFFD_LATENCY_BUCKETS; i++) {
		sum += st->latency_us_log2[i];
		if ((double)sum >= q * (double)total)
			return UINT64_C(2) << i;
	}
	return 0;
}

static void print_stats(struct dst *d, struct uffd_loop *loop)
{
	struct uffd_loop_stats st;

	if (uffd_loop_get_stats(loop, &st, sizeof(st)))
		return;
	printf("faults served: %" PRIu64, st.faults_missing);
	if (latency_bound_us(&st, 0.5))
		printf(" (median < %" PRIu64 " us, 99%% < %" PRIu64 " us)",
		       latency_bound_us(&st, 0.5), latency_bound_us(&st, 0.99));
	printf("; %" PRIu64 " of them found their page already on its way\n",
	       st.readahead_hits);
	printf("pages: %" PRIu64 " fetched urgently (requested), %" PRIu64
	       " pushed; %" PRIu64 " mapped by prefetch, %" PRIu64
	       " by fault windows\n", d->pages_requested, d->pages_pushed,
	       st.prefetch_pages, st.pages_resolved - st.prefetch_pages);
	printf("fetches: %lu urgent (%lu found their pages pushed already, "
	       "%lu requests sent), %lu background (%lu ready at once)\n",
	       atomic_load(&d->fetch_urgent),
	       atomic_load(&d->fetch_urgent_ready), atomic_load(&d->requests),
	       atomic_load(&d->fetch_bg), atomic_load(&d->fetch_bg_ready));
}

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

/* Waits for the restore and the workload; 0 when the memory is right. */
static int finish(struct dst *d, struct uffd_loop *loop, struct workload *w,
		  pthread_t receiver, uint64_t t_connect)
{
	uint64_t reads, writes, t_end, t_done, sum;
	int ret = uffd_loop_wait_complete(loop, -1);
	bool broken;

	t_done = pc_now_ns();
	if (ret) {
		fprintf(stderr, "postcopy-dst: waiting for the restore: %s\n",
			uffd_last_error());
		dst_break(d, "the loop failed");
	}
	workload_join(w, &reads, &writes, &t_end);
	pthread_join(receiver, NULL);
	pthread_mutex_lock(&d->lock);
	broken = d->broken;
	pthread_mutex_unlock(&d->lock);
	printf("workload: %d threads, first access done %.3f ms after they "
	       "started, all done after %.1f ms: %" PRIu64 " reads, %" PRIu64
	       " writes\n", WL_KINDS, ms(atomic_load(&w->first_touch)),
	       ms(t_end - w->t_start), reads, writes);
	if (broken)
		printf("restore gave up %.1f ms after connecting\n",
		       ms(t_done - t_connect));
	else
		printf("restore complete %.1f ms after connecting "
		       "(%.0f MiB/s)\n", ms(t_done - t_connect),
		       (double)d->size / (1 << 20) /
		       ((double)(t_done - t_connect) / 1e9));
	print_stats(d, loop);
	if (broken) {
		fprintf(stderr, "postcopy-dst: restore failed: %s (%lu pages "
			"zero-filled)\n", d->why,
			atomic_load(&d->failed_pages));
		return -1;
	}
	sum = pc_checksum(d->mem, d->size);
	if (sum != d->checksum) {
		printf("checksum MISMATCH: memory 0x%016" PRIx64 ", source "
		       "0x%016" PRIx64 "\n", sum, d->checksum);
		return -1;
	}
	printf("checksum match: 0x%016" PRIx64 "\n", sum);
	return 0;
}

static int migrate(struct dst *d, struct uffd_handle *h, uint64_t t_connect)
{
	struct workload w = { 0 };
	struct uffd_loop *loop = NULL;
	pthread_t receiver;
	int ret;

	if (read_hello(d) || allocate(d))
		return -1;
	printf("image: %.1f MiB, %zu pages, checksum 0x%016" PRIx64 "\n",
	       (double)d->size / (1 << 20), d->npages, d->checksum);
	if (start_loop(d, h, &loop) || send_ready(d)) {
		uffd_loop_free(loop);
		return -1;
	}
	ret = pthread_create(&receiver, NULL, receiver_main, d);
	if (ret) {
		fprintf(stderr, "postcopy-dst: thread: %s\n", strerror(ret));
		uffd_loop_free(loop);
		return -1;
	}
	w.mem = d->mem;
	w.npages = d->npages;
	w.ps = d->ps;
	if (workload_start(&w)) {
		fprintf(stderr, "postcopy-dst: out of memory\n");
		dst_break(d, "out of memory");
		pthread_join(receiver, NULL);
		uffd_loop_free(loop);
		return -1;
	}
	printf("workload started %.3f ms after connecting\n",
	       ms(w.t_start - t_connect));
	fflush(stdout);
	ret = finish(d, loop, &w, receiver, t_connect);
	uffd_loop_free(loop); /* every fetch has completed: no page is left */
	return ret;
}

int main(int argc, char **argv)
{
	struct dst d = { .ps = (size_t)sysconf(_SC_PAGESIZE), .sock = -1 };
	struct uffd_handle *h = NULL;
	struct options o;
	uint64_t t_connect;
	int ret;

	if (parse_options(argc, argv, &o))
		return 2;
	if (uffd_handle_new(NULL, &h)) {
		fprintf(stderr, "postcopy-dst: cannot open a userfaultfd: %s\n",
			uffd_last_error());
		return 1;
	}
	d.sock = connect_to(&o);
	if (d.sock < 0) {
		uffd_handle_free(h);
		return 1;
	}
	t_connect = pc_now_ns();
	printf("connected to %s port %" PRIu64 "\n", o.address, o.port);
	set_timeout(d.sock, SO_RCVTIMEO, o.timeout_s);
	set_timeout(d.sock, SO_SNDTIMEO, o.timeout_s);
	pthread_mutex_init(&d.lock, NULL);
	pthread_mutex_init(&d.send_lock, NULL);
	ret = migrate(&d, h, t_connect);
	close(d.sock);
	uffd_handle_free(h);
	if (d.mem)
		munmap(d.mem, d.size);
	if (d.staging)
		munmap(d.staging, d.size);
	free(d.arrived);
	pthread_mutex_destroy(&d.lock);
	pthread_mutex_destroy(&d.send_lock);
	return ret ? 1 : 0;
}
