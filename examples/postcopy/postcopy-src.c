// SPDX-License-Identifier: MIT
/*
 * postcopy-src: the source of a post-copy live migration.
 *
 * It holds a memory image (generated from a seed, or read from a file),
 * waits for one destination and sends it every page exactly once: the
 * pages the destination asks for (a thread there is waiting on them) as
 * soon as it asks, and otherwise the remaining pages in address order, the
 * push. A reader thread queues the requests; the sender (the main thread)
 * looks at the queue between push chunks, so a request waits for at most
 * one chunk plus what the socket buffer already holds, which is kept small
 * for that reason. Wire format: PROTOCOL.md.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "postcopy-proto.h"

#define PUSH_PAGES 16            /* pages per push chunk (64 KiB) */
#define QUEUE_MAX 1024           /* requests queued before the reader waits */
#define SOCK_BUF (64 * 1024)    /* see the comment on listen_on() */

struct options {
	const char *listen;
	const char *image_file;
	uint64_t port, size_mib, seed, timeout_s;
};

struct req {
	uint64_t offset, length;
};

struct queue {
	struct req r[QUEUE_MAX];
	size_t head, len;
};

struct src {
	unsigned char *image;
	size_t size, ps, npages;
	uint64_t checksum;
	int sock;
	/* from the reader thread to the sender, under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;       /* queue space; the reader's end */
	struct queue urgent, normal;
	bool ended;                /* END was sent: requests are ignored */
	bool reader_done;
	int reader_err;
	char reader_why[256];
	uint64_t requests, requests_urgent, requests_late;
	/* the sender's own */
	unsigned char *sent;       /* one byte per page */
	size_t nsent, push_next;   /* every page below push_next was sent */
	uint64_t pages_requested, pages_pushed, pages_already_sent;
	char why[256];
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: postcopy-src [options]\n"
		"  -l, --listen ADDR   address to listen on (default 127.0.0.1)\n"
		"  -p, --port PORT     port (default %d; 0: any free port)\n"
		"  -s, --size MIB      size of the generated image (default 64)\n"
		"  -S, --seed N        seed of the generated image (default 1)\n"
		"  -i, --image FILE    send FILE instead (zero padded to a page)\n"
		"  -t, --timeout SEC   longest stall of the destination "
		"(default 30)\n"
		"Prints \"listening on ADDR:PORT\" first, then serves one "
		"destination.\n", PC_DEFAULT_PORT);
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "port", required_argument, NULL, 'p' },
		{ "size", required_argument, NULL, 's' },
		{ "seed", required_argument, NULL, 'S' },
		{ "image", required_argument, NULL, 'i' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*o = (struct options){ "127.0.0.1", NULL, PC_DEFAULT_PORT, 64, 1, 30 };
	while ((c = getopt_long(argc, argv, "l:p:s:S:i:t:h", longopts,
				NULL)) != -1) {
		bool ok = true;

		switch (c) {
		case 'l': o->listen = optarg; break;
		case 'i': o->image_file = optarg; break;
		case 'p': ok = pc_parse_u64(optarg, 0, 65535, &o->port); break;
		case 's':
			ok = pc_parse_u64(optarg, 1, 1u << 20, &o->size_mib);
			break;
		case 'S': ok = pc_parse_u64(optarg, 0, UINT64_MAX, &o->seed);
			break;
		case 't':
			ok = pc_parse_u64(optarg, 1, 3600, &o->timeout_s);
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
		if (!ok) {
			fprintf(stderr, "postcopy-src: bad value \"%s\" for "
				"option -%c (see --help for the ranges)\n",
				optarg, c);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "postcopy-src: unexpected argument \"%s\"\n",
			argv[optind]);
		return -1;
	}
	return 0;
}

static unsigned char *map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* Reads the file into memory, rounded up to whole pages of zeros. */
static int load_file(struct src *s, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	size_t got = 0;

	if (fd < 0 || fstat(fd, &st)) {
		fprintf(stderr, "postcopy-src: %s: %s\n", path,
			strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0) {
		fprintf(stderr, "postcopy-src: %s: not a regular file with "
			"data\n", path);
		goto fail;
	}
	s->size = ((size_t)st.st_size + s->ps - 1) / s->ps * s->ps;
	s->image = map_anon(s->size);
	if (!s->image) {
		fprintf(stderr, "postcopy-src: no memory for %zu bytes\n",
			s->size);
		goto fail;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, s->image + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) { /* shrunk under us, or a read error */
			fprintf(stderr, "postcopy-src: %s: %s\n", path,
				n ? strerror(errno) : "shorter than its size");
			goto fail;
		}
		got += (size_t)n;
	}
	close(fd);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

static int make_image(struct src *s, const struct options *o)
{
	if (o->image_file) {
		if (load_file(s, o->image_file))
			return -1;
	} else {
		s->size = (size_t)o->size_mib << 20;
		s->image = map_anon(s->size);
		if (!s->image) {
			fprintf(stderr, "postcopy-src: no memory for a %" PRIu64
				" MiB image\n", o->size_mib);
			return -1;
		}
		pc_image_fill(s->image, s->size, o->seed);
	}
	s->npages = s->size / s->ps;
	s->sent = calloc(s->npages, 1);
	if (!s->sent) {
		fprintf(stderr, "postcopy-src: out of memory\n");
		return -1;
	}
	s->checksum = pc_checksum(s->image, s->size);
	return 0;
}

/* "ADDR:PORT", IPv6 in brackets. */
static void format_addr(const struct sockaddr *sa, socklen_t len, char *buf,
			size_t size)
{
	char host[NI_MAXHOST], port[NI_MAXSERV];

	if (getnameinfo(sa, len, host, sizeof(host), port, sizeof(port),
			NI_NUMERICHOST | NI_NUMERICSERV)) {
		snprintf(buf, size, "?");
		return;
	}
	snprintf(buf, size, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host,
		 port);
}

/*
 * A small send buffer (inherited by the accepted socket) bounds how much
 * push data can sit in front of the answer to an urgent request.
 */
static int listen_on(const struct options *o)
{
	struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICHOST |
					      AI_NUMERICSERV,
				  .ai_socktype = SOCK_STREAM };
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct addrinfo *ai;
	char port[16], where[NI_MAXHOST + NI_MAXSERV + 4];
	int fd, one = 1, buf = SOCK_BUF, ret;

	snprintf(port, sizeof(port), "%" PRIu64, o->port);
	ret = getaddrinfo(o->listen, port, &hints, &ai);
	if (ret) {
		fprintf(stderr, "postcopy-src: cannot listen on \"%s\": %s "
			"(a numeric address is needed)\n", o->listen,
			gai_strerror(ret));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf)) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 1) ||
	    getsockname(fd, (struct sockaddr *)&ss, &sslen)) {
		fprintf(stderr, "postcopy-src: cannot listen on %s port %s: "
			"%s\n", o->listen, port, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	format_addr((struct sockaddr *)&ss, sslen, where, sizeof(where));
	/* first line, flushed: scripts read the port from it */
	printf("listening on %s\n", where);
	fflush(stdout);
	return fd;
}

static void set_timeout(int fd, int opt, uint64_t seconds)
{
	struct timeval tv = { .tv_sec = (time_t)seconds };

	setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

/* Accepts one destination and does the handshake; the socket or -1. */
static int accept_destination(struct src *s, int lfd, uint64_t timeout_s)
{
	unsigned char hello[PC_HELLO_SIZE], ready[PC_READY_SIZE];
	struct pc_hello h = { PC_VERSION, (uint32_t)s->ps, s->size,
			      s->checksum };
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	char peer[NI_MAXHOST + NI_MAXSERV + 4], why[256];
	int fd, one = 1, ret;

	fd = accept4(lfd, (struct sockaddr *)&ss, &sslen, SOCK_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "postcopy-src: accept: %s\n", strerror(errno));
		return -1;
	}
	format_addr((struct sockaddr *)&ss, sslen, peer, sizeof(peer));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* the handshake and every send are bounded; waiting for requests
	 * later is not (a destination may need none for a long time) */
	set_timeout(fd, SO_SNDTIMEO, timeout_s);
	set_timeout(fd, SO_RCVTIMEO, timeout_s);
	pc_hello_encode(&h, hello);
	ret = pc_send(fd, hello, sizeof(hello), NULL, 0);
	if (!ret)
		ret = pc_recv(fd, ready, sizeof(ready));
	if (ret) {
		fprintf(stderr, "postcopy-src: handshake with %s: %s\n", peer,
			ret == -ENODATA ? "closed by the peer"
					: strerror(-ret));
	} else if (pc_ready_decode(ready, why, sizeof(why))) {
		fprintf(stderr, "postcopy-src: handshake with %s: %s\n", peer,
			why);
		ret = -EPROTO;
	}
	if (ret) {
		close(fd);
		return -1;
	}
	set_timeout(fd, SO_RCVTIMEO, 0);
	printf("destination %s connected\n", peer);
	fflush(stdout);
	return fd;
}

/* ---- the reader thread: requests into the queues ---- */

static void enqueue(struct src *s, const struct pc_msg *m)
{
	bool urgent = m->flags & PC_REQ_URGENT;
	struct queue *q = urgent ? &s->urgent : &s->normal;

	pthread_mutex_lock(&s->lock);
	s->requests++;
	s->requests_urgent += urgent;
	while (q->len == QUEUE_MAX && !s->ended) /* let the sender catch up */
		pthread_cond_wait(&s->cond, &s->lock);
	if (s->ended) {
		s->requests_late++; /* every page went already */
	} else {
		q->r[(q->head + q->len++) % QUEUE_MAX] =
			(struct req){ m->offset, m->length };
	}
	pthread_mutex_unlock(&s->lock);
}

static void reader_finish(struct src *s, int err, const char *why)
{
	pthread_mutex_lock(&s->lock);
	if (err == -ENODATA && s->ended)
		err = 0; /* the destination hung up after END: all done */
	else if (err == -ENODATA)
		why = "the destination closed the connection before the end "
		      "of the stream";
	s->reader_done = true;
	s->reader_err = err;
	snprintf(s->reader_why, sizeof(s->reader_why), "%s", why);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (err) /* a sender blocked in send() must not wait for the peer */
		shutdown(s->sock, SHUT_RDWR);
}

static void *reader_main(void *arg)
{
	struct src *s = arg;
	unsigned char hdr[PC_HDR_SIZE];
	char why[256] = "";
	struct pc_msg m;
	int ret;

	for (;;) {
		ret = pc_recv(s->sock, hdr, sizeof(hdr));
		if (ret) {
			snprintf(why, sizeof(why), "receiving from the "
				 "destination: %s", strerror(-ret));
			break;
		}
		ret = pc_msg_decode(hdr, false, s->ps, s->size, &m, why,
				    sizeof(why));
		if (ret)
			break;
		enqueue(s, &m);
	}
	reader_finish(s, ret, why);
	return NULL;
}

/* ---- the sender ---- */

/* Urgent requests first. Called with the lock held. */
static bool dequeue(struct src *s, struct req *r)
{
	struct queue *q = s->urgent.len ? &s->urgent : &s->normal;

	if (!q->len)
		return false;
	*r = q->r[q->head];
	q->head = (q->head + 1) % QUEUE_MAX;
	q->len--;
	pthread_cond_broadcast(&s->cond);
	return true;
}

static int send_run(struct src *s, size_t first, size_t n, uint32_t flags)
{
	struct pc_msg m = { PC_DATA, flags, (uint64_t)first * s->ps,
			    (uint64_t)n * s->ps };
	unsigned char hdr[PC_HDR_SIZE];
	int ret;

	pc_msg_encode(&m, hdr);
	ret = pc_send(s->sock, hdr, sizeof(hdr), s->image + m.offset,
		      (size_t)m.length);
	if (ret) {
		snprintf(s->why, sizeof(s->why), "sending to the destination: "
			 "%s", ret == -ETIMEDOUT ? "it stopped reading"
						 : strerror(-ret));
		return ret;
	}
	memset(s->sent + first, 1, n);
	s->nsent += n;
	if (flags & PC_DATA_REQUESTED)
		s->pages_requested += n;
	else
		s->pages_pushed += n;
	return 0;
}

/* The pages of the request not sent yet, one message per run. */
static int answer(struct src *s, const struct req *r)
{
	size_t p = (size_t)(r->offset / s->ps);
	size_t end = p + (size_t)(r->length / s->ps);
	size_t max = PC_MAX_DATA / s->ps;

	while (p < end) {
		size_t n = 0;
		int ret;

		if (s->sent[p]) {
			s->pages_already_sent++;
			p++;
			continue;
		}
		while (p + n < end && n < max && !s->sent[p + n])
			n++;
		ret = send_run(s, p, n, PC_DATA_REQUESTED);
		if (ret)
			return ret;
		p += n;
	}
	return 0;
}

static int push_chunk(struct src *s)
{
	size_t n = 0;

	while (s->sent[s->push_next]) /* some page is unsent: it stops */
		s->push_next++;
	while (s->push_next + n < s->npages && n < PUSH_PAGES &&
	       !s->sent[s->push_next + n])
		n++;
	return send_run(s, s->push_next, n, 0);
}

static int send_end(struct src *s)
{
	struct pc_msg m = { PC_END, 0, 0, 0 };
	unsigned char hdr[PC_HDR_SIZE];
	int ret;

	pc_msg_encode(&m, hdr);
	ret = pc_send(s->sock, hdr, sizeof(hdr), NULL, 0);
	if (ret)
		snprintf(s->why, sizeof(s->why), "sending END: %s",
			 strerror(-ret));
	return ret;
}

static int serve(struct src *s)
{
	int ret = 0;

	while (!ret && s->nsent < s->npages) {
		struct req r;
		bool got;

		pthread_mutex_lock(&s->lock);
		if (s->reader_done && s->reader_err) {
			pthread_mutex_unlock(&s->lock);
			return s->reader_err;
		}
		got = dequeue(s, &r);
		pthread_mutex_unlock(&s->lock);
		ret = got ? answer(s, &r) : push_chunk(s);
	}
	if (!ret)
		ret = send_end(s);
	pthread_mutex_lock(&s->lock);
	s->ended = true; /* the reader drops what comes from now on */
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static void print_stats(const struct src *s, double secs)
{
	printf("sent %zu of %zu pages in %.3f s: %" PRIu64 " on request, %"
	       PRIu64 " pushed\n", s->nsent, s->npages, secs,
	       s->pages_requested, s->pages_pushed);
	printf("requests: %" PRIu64 " (%" PRIu64 " urgent), %" PRIu64
	       " after the end; %" PRIu64 " requested pages were already "
	       "sent\n", s->requests, s->requests_urgent, s->requests_late,
	       s->pages_already_sent);
}

static int run(struct src *s, int lfd, const struct options *o)
{
	pthread_t reader;
	uint64_t t0;
	int ret;

	s->sock = accept_destination(s, lfd, o->timeout_s);
	close(lfd);
	if (s->sock < 0)
		return -1;
	ret = pthread_create(&reader, NULL, reader_main, s);
	if (ret) {
		fprintf(stderr, "postcopy-src: thread: %s\n", strerror(ret));
		close(s->sock);
		return -1;
	}
	t0 = pc_now_ns();
	ret = serve(s);
	if (ret) /* make the reader return */
		shutdown(s->sock, SHUT_RDWR);
	pthread_join(reader, NULL);
	print_stats(s, (double)(pc_now_ns() - t0) / 1e9);
	if (s->reader_err) /* the root cause, when there is one */
		fprintf(stderr, "postcopy-src: %s\n", s->reader_why);
	else if (ret)
		fprintf(stderr, "postcopy-src: %s\n", s->why);
	close(s->sock);
	return ret || s->reader_err ? -1 : 0;
}

int main(int argc, char **argv)
{
	struct src s = { .ps = (size_t)sysconf(_SC_PAGESIZE), .sock = -1 };
	struct options o;
	int lfd, ret;

	if (parse_options(argc, argv, &o))
		return 2;
	if (make_image(&s, &o))
		return 1;
	lfd = listen_on(&o);
	if (lfd < 0)
		return 1;
	printf("image: %.1f MiB%s, %zu pages of %zu KiB, checksum 0x%016"
	       PRIx64 "\n", (double)s.size / (1 << 20),
	       o.image_file ? " from a file" : "", s.npages, s.ps >> 10,
	       s.checksum);
	fflush(stdout);
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.cond, NULL);
	ret = run(&s, lfd, &o);
	pthread_mutex_destroy(&s.lock);
	pthread_cond_destroy(&s.cond);
	munmap(s.image, s.size);
	free(s.sent);
	return ret ? 1 : 0;
}
