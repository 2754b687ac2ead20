// SPDX-License-Identifier: MIT
/*
 * Handing the userfaultfd to another process: a "VMM" parent sends its
 * handle and two registered regions to a forked "page server" child, which
 * serves the parent's faults (COPY from its own memory, CONTINUE after
 * filling the page cache through the received memfd); every malformed
 * message is refused with its errno and reason and without leaking an fd;
 * the sender refuses bad input before anything is sent. Each socket test
 * runs on SOCK_STREAM and SOCK_SEQPACKET.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const int sock_types[] = { SOCK_STREAM, SOCK_SEQPACKET };

static void make_pair(int type, int sv[2])
{
	ck_assert_int_eq(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv), 0);
}

static void close_pair(int sv[2])
{
	close(sv[0]);
	close(sv[1]);
}

/* ==== the wire format, written by hand (doc/handover.md) ==== */

#define W_MAGIC 0x4f484655u
#define W_HDR 32u
#define W_REC 48u
#define W_NO_FD 0xffffffffu
#define W_MAX_MSG (128u * (UFFD_HANDOVER_MAX_REGIONS + 1))

/* Header and record field offsets. */
enum { H_MAGIC = 0, H_VERSION = 4, H_HSIZE = 6, H_RSIZE = 8, H_FLAGS = 10,
       H_COUNT = 12, H_NFDS = 16, H_TOTAL = 20, H_RESERVED = 24 };
enum { R_ADDR = 0, R_LEN = 8, R_PSIZE = 16, R_FOFF = 24, R_BACKEND = 32,
       R_MODES = 36, R_FDIDX = 40, R_RESERVED = 44 };

static void put_le(unsigned char *p, uint64_t v, unsigned size)
{
	for (unsigned i = 0; i < size; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static unsigned char *rec(unsigned char *buf, unsigned i)
{
	return buf + W_HDR + i * W_REC;
}

/* A valid version 1 message of count anonymous regions without fds
 * (nfds: the userfaultfd only); returns its length. */
static size_t build(unsigned char *buf, unsigned count)
{
	size_t len = W_HDR + count * W_REC;

	memset(buf, 0, len);
	put_le(buf + H_MAGIC, W_MAGIC, 4);
	put_le(buf + H_VERSION, UFFD_HANDOVER_VERSION, 2);
	put_le(buf + H_HSIZE, W_HDR, 2);
	put_le(buf + H_RSIZE, W_REC, 2);
	put_le(buf + H_COUNT, count, 4);
	put_le(buf + H_NFDS, 1, 4);
	put_le(buf + H_TOTAL, len, 4);
	for (unsigned i = 0; i < count; i++) {
		put_le(rec(buf, i) + R_ADDR, 0x100000 + i * 0x10000, 8);
		put_le(rec(buf, i) + R_LEN, 0x10000, 8);
		put_le(rec(buf, i) + R_PSIZE, 4096, 8);
		put_le(rec(buf, i) + R_BACKEND, UFFD_BACKEND_ANON_PRIVATE, 4);
		put_le(rec(buf, i) + R_MODES, UFFD_MODE_MISSING, 4);
		put_le(rec(buf, i) + R_FDIDX, W_NO_FD, 4);
	}
	return len;
}

/* Writes raw bytes, with fds as SCM_RIGHTS when nfds > 0, then shuts the
 * writing side so a short stream message reads as the peer closing. */
static void send_raw(int sock, const void *buf, size_t len, const int *fds,
		     size_t nfds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} ctl;
	struct iovec iov = { (void *)buf, len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;

	ck_assert_uint_le(nfds, 4);
	memset(&ctl, 0, sizeof(ctl));
	if (nfds) {
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	ck_assert_msg(sendmsg(sock, &msg, MSG_NOSIGNAL) == (ssize_t)len,
		      "sendmsg: %s", strerror(errno));
	ck_assert_int_eq(shutdown(sock, SHUT_WR), 0);
}

/* What a malformed message is sent with: a real userfaultfd first and,
 * when with_memfd, a memfd (so the receiver has fds it must close). */
struct attach {
	struct uffd_handle *h;
	int fds[2];
	size_t nfds;
};

static void attach_open(struct attach *a, bool with_memfd)
{
	a->h = open_handle();
	a->fds[0] = uffd_handle_get_fd(a->h);
	a->nfds = 1;
	if (with_memfd)
		a->fds[a->nfds++] = make_memfd(test_page());
}

static void attach_close(struct attach *a)
{
	if (a->nfds > 1)
		close(a->fds[1]);
	uffd_handle_free(a->h);
}

/* Sends buf with the given fds on a fresh pair of type and checks the
 * receiver refuses it with err and a reason containing text, leaving no
 * new fd and no output behind. */
static void check_refused_fds(int type, const void *buf, size_t len,
			      const int *fds, size_t nfds, int err,
			      const char *text)
{
	struct uffd_handover_region *regions = NULL;
	struct uffd_handle *h = NULL;
	size_t n = 77;
	int sv[2], before;

	make_pair(type, sv);
	send_raw(sv[0], buf, len, fds, nfds);
	before = count_fds();
	ck_assert_uffd_err(uffd_handover_recv(sv[1], &h, &regions, &n), err,
			   text);
	ck_assert_int_eq(count_fds(), before);
	ck_assert_ptr_null(h);
	ck_assert_ptr_null(regions);
	ck_assert_uint_eq(n, 77);
	close_pair(sv);
}

/* The same, with a real userfaultfd (and a memfd) attached. */
static void check_refused(int type, const void *buf, size_t len,
			  bool with_memfd, int err, const char *text)
{
	struct attach a;

	attach_open(&a, with_memfd);
	check_refused_fds(type, buf, len, a.fds, a.nfds, err, text);
	attach_close(&a);
}

/* ==== malformed messages ==== */

START_TEST(test_bad_magic)
{
	unsigned char buf[W_HDR + W_REC];
	size_t len = build(buf, 1);

	put_le(buf + H_MAGIC, 0x12345678, 4);
	check_refused(sock_types[_i], buf, len, false, EPROTO,
		      "not a libuffd handover: bad magic 0x12345678");
}
END_TEST

START_TEST(test_bad_version)
{
	unsigned char buf[W_HDR + W_REC];
	size_t len = build(buf, 1);

	put_le(buf + H_VERSION, UFFD_HANDOVER_VERSION + 1, 2);
	check_refused(sock_types[_i], buf, len, false, EPROTO,
		      "unsupported handover version 2");
}
END_TEST

START_TEST(test_bad_sizes)
{
	unsigned char buf[W_HDR + W_REC];
	size_t len = build(buf, 1);

	put_le(buf + H_HSIZE, 33, 2);
	check_refused(sock_types[_i], buf, len, false, EPROTO,
		      "header size 33 is invalid");
	build(buf, 1);
	put_le(buf + H_RSIZE, 40, 2);
	check_refused(sock_types[_i], buf, len, false, EPROTO,
		      "record size 40 is invalid");
	build(buf, 1);
	put_le(buf + H_TOTAL, len + 8, 4);
	check_refused(sock_types[_i], buf, len, false, EPROTO,
		      "total size 88 is not 32 + 1 regions of 48 bytes");
}
END_TEST

START_TEST(test_header_reserved_not_zero)
{
	unsigned char buf[W_HDR + W_REC];
	size_t len = build(buf, 1);

	put_le(buf + H_FLAGS, 1, 2);
	check_refused(sock_types[_i], buf, len, false, EPROTO,
		      "flags (0x1) or reserved field (0) are not zero");
	build(buf, 1);
	put_le(buf + H_RESERVED, 1, 8);
	check_refused(sock_types[_i], buf, len, false, EPROTO,
		      "are not zero");
}
END_TEST

START_TEST(test_truncated_header)
{
	unsigned char buf[W_HDR + W_REC];

	build(buf, 1);
	check_refused(sock_types[_i], buf, 10, true, EPROTO,
		      "truncated header");
}
END_TEST

START_TEST(test_truncated_table)
{
	unsigned char buf[W_HDR + 2 * W_REC];
	size_t len = build(buf, 2);

	check_refused(sock_types[_i], buf, len - W_REC, true, EPROTO,
		      "truncated region table");
}
END_TEST

START_TEST(test_too_many_regions)
{
	unsigned char buf[W_HDR];

	build(buf, 0);
	put_le(buf + H_COUNT, UFFD_HANDOVER_MAX_REGIONS + 1, 4);
	put_le(buf + H_TOTAL, W_HDR + (UFFD_HANDOVER_MAX_REGIONS + 1) * W_REC,
	       4);
	check_refused(sock_types[_i], buf, sizeof(buf), false, EPROTO,
		      "announces 1025 regions, more than the limit of 1024");
}
END_TEST

START_TEST(test_fd_count_mismatch)
{
	unsigned char buf[W_HDR + W_REC];
	size_t len = build(buf, 1);
	int type = sock_types[_i];

	/* The header announces a memfd, only the userfaultfd comes. */
	put_le(buf + H_NFDS, 2, 4);
	put_le(rec(buf, 0) + R_FDIDX, 0, 4);
	check_refused(type, buf, len, false, EPROTO,
		      "the header announces 2 fds but 1 came with the message");
	/* Both come, but no region uses the memfd. */
	put_le(rec(buf, 0) + R_FDIDX, W_NO_FD, 4);
	check_refused(type, buf, len, true, EPROTO,
		      "backing fd 0 came with the message but no region "
		      "refers to it");
	/* A region refers to a backing fd beyond those that came. */
	put_le(rec(buf, 0) + R_FDIDX, 1, 4);
	check_refused(type, buf, len, true, EPROTO,
		      "region 0 refers to backing fd 1 but 1 came");
	/* More fds announced than regions could use. */
	put_le(buf + H_NFDS, 3, 4);
	check_refused(type, buf, len, true, EPROTO,
		      "announces 3 fds for 1 regions");
}
END_TEST

/* Region 1 of a two-region message gets field off set to v. */
static void check_bad_region(int type, unsigned off, uint64_t v,
			     unsigned size, const char *text)
{
	unsigned char buf[W_HDR + 2 * W_REC];
	size_t len = build(buf, 2);

	put_le(rec(buf, 1) + off, v, size);
	check_refused(type, buf, len, false, EPROTO, text);
}

START_TEST(test_bad_regions)
{
	int type = sock_types[_i];

	check_bad_region(type, R_LEN, 0, 8, "region 1 has length 0");
	check_bad_region(type, R_ADDR, UINT64_C(0xffffffffffff0000), 8,
			 "region 1 at 0xffffffffffff0000 of 0x10000 bytes "
			 "wraps around");
	check_bad_region(type, R_PSIZE, 3, 8,
			 "region 1: page size 3 is not a power of two");
	check_bad_region(type, R_PSIZE, 0, 8,
			 "region 1: page size 0 is not a power of two");
	check_bad_region(type, R_ADDR, 0x100800, 8,
			 "is not aligned to its page size 4096");
	check_bad_region(type, R_BACKEND, 99, 4,
			 "region 1 has unknown backend 99");
	check_bad_region(type, R_BACKEND, UFFD_BACKEND_COUNT, 4,
			 "unknown backend");
	check_bad_region(type, R_MODES, 0, 4,
			 "region 1 has no registration mode");
	check_bad_region(type, R_MODES, UFFD_MODE_MISSING | 0x8, 4,
			 "region 1 has unknown mode bits 0x8");
	check_bad_region(type, R_RESERVED, 5, 4,
			 "region 1: the reserved field is 0x5, not 0");
}
END_TEST

START_TEST(test_bad_file_offset)
{
	unsigned char buf[W_HDR + W_REC];
	size_t len = build(buf, 1);

	put_le(buf + H_NFDS, 2, 4);
	put_le(rec(buf, 0) + R_BACKEND, UFFD_BACKEND_MEMFD_SHARED, 4);
	put_le(rec(buf, 0) + R_FDIDX, 0, 4);
	put_le(rec(buf, 0) + R_FOFF, 100, 8);
	check_refused(sock_types[_i], buf, len, true, EPROTO,
		      "region 0: file offset 0x64 is not page aligned");
}
END_TEST

START_TEST(test_no_fds)
{
	unsigned char buf[W_HDR + W_REC];
	size_t len = build(buf, 1);

	check_refused_fds(sock_types[_i], buf, len, NULL, 0, EPROTO,
			  "no fds came with the message: the userfaultfd is "
			  "missing");
	put_le(buf + H_NFDS, 0, 4);
	check_refused_fds(sock_types[_i], buf, len, NULL, 0, EPROTO,
			  "the header announces no fds");
}
END_TEST

START_TEST(test_not_a_userfaultfd)
{
	unsigned char buf[W_HDR + W_REC];
	size_t len = build(buf, 1);
	int p[2];

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	check_refused_fds(sock_types[_i], buf, len, p, 1, EINVAL,
			  "the handover's first fd is not a usable "
			  "userfaultfd: fd");
	ck_assert_msg(strstr(uffd_last_error(), "is not a userfaultfd"),
		      "%s", uffd_last_error());
	close(p[0]);
	close(p[1]);
}
END_TEST

START_TEST(test_peer_closed)
{
	struct uffd_handover_region *regions = NULL;
	struct uffd_handle *h = NULL;
	size_t n = 0;
	int sv[2], before;

	make_pair(sock_types[_i], sv);
	close(sv[0]);
	before = count_fds();
	ck_assert_uffd_err(uffd_handover_recv(sv[1], &h, &regions, &n), ENODATA,
			   "the peer closed the socket");
	ck_assert_int_eq(count_fds(), before);
	close(sv[1]);
}
END_TEST

/* A packet longer than any valid handover: MSG_TRUNC. */
START_TEST(test_packet_too_large)
{
	size_t len = W_MAX_MSG + 64;
	unsigned char *buf = calloc(1, len);

	ck_assert_ptr_nonnull(buf);
	build(buf, 0);
	check_refused(SOCK_SEQPACKET, buf, len, true, EPROTO,
		      "larger than the largest valid handover");
	free(buf);
}
END_TEST

/* Bytes beyond what the header announces, in one packet. */
START_TEST(test_packet_trailing_bytes)
{
	unsigned char buf[W_HDR + 2 * W_REC] = { 0 };

	build(buf, 1);
	check_refused(SOCK_SEQPACKET, buf, W_HDR + W_REC + 8, false, EPROTO,
		      "the message has 88 bytes, more than the 80 its header "
		      "announces");
}
END_TEST

/* A non-blocking socket with nothing to read: -EAGAIN, nothing else. */
START_TEST(test_nothing_waiting)
{
	struct uffd_handover_region *regions = NULL;
	struct uffd_handle *h = NULL;
	size_t n = 0;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, sock_types[_i] | SOCK_NONBLOCK |
				    SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_uffd_err(uffd_handover_recv(sv[1], &h, &regions, &n), EAGAIN,
			   "no handover is waiting");
	close_pair(sv);
}
END_TEST

/* ==== in-process round trips ==== */

static void recv_ok(int sock, struct uffd_handle **h,
		    struct uffd_handover_region **r, size_t *n)
{
	int ret = uffd_handover_recv(sock, h, r, n);

	ck_assert_msg(ret == 0, "uffd_handover_recv: %d: %s", ret,
		      uffd_last_error());
}

static void assert_same_file(int a, int b)
{
	struct stat sa, sb;

	ck_assert_int_eq(fstat(a, &sa), 0);
	ck_assert_int_eq(fstat(b, &sb), 0);
	ck_assert(sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino);
}

static void assert_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	ck_assert_int_ge(fl, 0);
	ck_assert_msg(fl & FD_CLOEXEC, "fd %d lacks FD_CLOEXEC", fd);
}

/* Three regions, two of them sharing one memfd: the message carries the
 * userfaultfd and that memfd once; each received region owns its fd. */
START_TEST(test_round_trip)
{
	size_t ps = test_page(), n = 0;
	struct uffd_handle *h = open_handle(), *rh = NULL;
	int memfd = make_memfd(4 * ps), sv[2], before;
	struct uffd_handover_region *r = NULL, sent[3] = {
		{ 0x7f0000000000, 2 * ps, UFFD_BACKEND_ANON_PRIVATE,
		  UFFD_MODE_MISSING | UFFD_MODE_WP, ps, 0, -1 },
		{ 0x7f1000000000, 2 * ps, UFFD_BACKEND_MEMFD_SHARED,
		  UFFD_MODE_MINOR, ps, 0, memfd },
		{ 0x7f2000000000, 2 * ps, UFFD_BACKEND_MEMFD_SHARED,
		  UFFD_MODE_MISSING | UFFD_MODE_MINOR, ps, 2 * ps, memfd },
	};

	make_pair(sock_types[_i], sv);
	ck_assert_int_eq(uffd_handover_send(sv[0], h, sent, 3), 0);
	before = count_fds();
	recv_ok(sv[1], &rh, &r, &n);
	ck_assert_int_eq(count_fds(), before + 3);
	ck_assert_uint_eq(n, 3);
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_eq(r[i].addr, sent[i].addr);
		ck_assert_uint_eq(r[i].len, sent[i].len);
		ck_assert_uint_eq(r[i].backend, sent[i].backend);
		ck_assert_uint_eq(r[i].modes, sent[i].modes);
		ck_assert_uint_eq(r[i].page_size, sent[i].page_size);
		ck_assert_uint_eq(r[i].file_offset, sent[i].file_offset);
	}
	ck_assert_int_eq(r[0].fd, -1);
	ck_assert_int_ge(r[1].fd, 0);
	ck_assert_int_ge(r[2].fd, 0);
	ck_assert_int_ne(r[1].fd, r[2].fd);
	ck_assert_int_ne(r[1].fd, memfd);
	assert_same_file(r[1].fd, memfd);
	assert_same_file(r[2].fd, memfd);
	assert_same_file(uffd_handle_get_fd(rh), uffd_handle_get_fd(h));
	assert_cloexec(r[1].fd);
	assert_cloexec(r[2].fd);
	assert_cloexec(uffd_handle_get_fd(rh));
	ck_assert_int_eq(uffd_handle_get_open_path(rh), UFFD_OPEN_ADOPTED);
	ck_assert_uint_eq(uffd_handle_get_features(rh),
			  uffd_handle_get_features(h));
	close(r[1].fd);
	close(r[2].fd);
	free(r);
	uffd_handle_free(rh);
	ck_assert_int_eq(count_fds(), before);
	close(memfd);
	uffd_handle_free(h);
	close_pair(sv);
}
END_TEST

/* No regions at all: just the userfaultfd. */
START_TEST(test_round_trip_empty)
{
	struct uffd_handle *h = open_handle(), *rh = NULL;
	struct uffd_handover_region *r = NULL;
	size_t n = 5;
	int sv[2];

	make_pair(sock_types[_i], sv);
	ck_assert_int_eq(uffd_handover_send(sv[0], h, NULL, 0), 0);
	recv_ok(sv[1], &rh, &r, &n);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_nonnull(r);
	free(r);
	uffd_handle_free(rh);
	uffd_handle_free(h);
	close_pair(sv);
}
END_TEST

/* Raises the soft fd limit to at least n (as far as the hard limit
 * goes); false, after saying why, when it cannot. */
static bool enough_fds(rlim_t n)
{
	struct rlimit rl;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur >= n)
		return true;
	if (rl.rlim_max < n) {
		printf("SKIP: needs %lu fds, the hard limit is %lu\n",
		       (unsigned long)n, (unsigned long)rl.rlim_max);
		return false;
	}
	rl.rlim_cur = n;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	return true;
}

/* The most regions a handover carries, all sharing one memfd: one fd on
 * the wire, 1024 on arrival. */
START_TEST(test_round_trip_max)
{
	size_t ps = test_page(), n = 0, max = UFFD_HANDOVER_MAX_REGIONS;
	struct uffd_handover_region *sent = calloc(max, sizeof(*sent)), *r;
	struct uffd_handle *h, *rh = NULL;
	int memfd, sv[2], before;

	ck_assert_ptr_nonnull(sent);
	if (!enough_fds(2 * max + 64)) {
		free(sent);
		return;
	}
	h = open_handle();
	memfd = make_memfd(ps);
	for (size_t i = 0; i < max; i++)
		sent[i] = (struct uffd_handover_region){
			0x10000000 + i * ps, ps, UFFD_BACKEND_MEMFD_SHARED,
			UFFD_MODE_MINOR, ps, 0, memfd };
	make_pair(sock_types[_i], sv);
	ck_assert_int_eq(uffd_handover_send(sv[0], h, sent, max), 0);
	before = count_fds();
	recv_ok(sv[1], &rh, &r, &n);
	ck_assert_uint_eq(n, max);
	ck_assert_int_eq(count_fds(), before + 1 + (int)max);
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_eq(r[i].addr, sent[i].addr);
		close(r[i].fd);
	}
	free(r);
	uffd_handle_free(rh);
	ck_assert_int_eq(count_fds(), before);
	free(sent);
	close(memfd);
	uffd_handle_free(h);
	close_pair(sv);
}
END_TEST

/* A message with a larger header and records than version 1's (a
 * compatible extension): the extra bytes are skipped. */
START_TEST(test_larger_sizes_accepted)
{
	unsigned char buf[48 + 2 * 64] = { 0 }, base[W_HDR + 2 * W_REC];
	struct uffd_handover_region *r = NULL;
	struct uffd_handle *rh = NULL;
	size_t n = 0;
	int sv[2];
	struct attach a;

	build(base, 2);
	memcpy(buf, base, W_HDR);
	put_le(buf + H_HSIZE, 48, 2);
	put_le(buf + H_RSIZE, 64, 2);
	put_le(buf + H_TOTAL, sizeof(buf), 4);
	for (unsigned i = 0; i < 2; i++) {
		memcpy(buf + 48 + i * 64, rec(base, i), W_REC);
		memset(buf + 48 + i * 64 + W_REC, 0xee, 64 - W_REC);
	}
	memset(buf + W_HDR, 0xdd, 48 - W_HDR);
	attach_open(&a, false);
	make_pair(sock_types[_i], sv);
	send_raw(sv[0], buf, sizeof(buf), a.fds, 1);
	recv_ok(sv[1], &rh, &r, &n);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(r[1].addr, 0x110000);
	ck_assert_uint_eq(r[1].len, 0x10000);
	ck_assert_int_eq(r[1].fd, -1);
	free(r);
	uffd_handle_free(rh);
	attach_close(&a);
	close_pair(sv);
}
END_TEST

/* ==== send-side errors ==== */

/* Nothing may have been sent on sv[0]. */
static void assert_nothing_sent(int sv[2])
{
	struct pollfd pfd = { .fd = sv[1], .events = POLLIN };

	ck_assert_int_eq(poll(&pfd, 1, 0), 0);
}

START_TEST(test_send_errors)
{
	size_t ps = test_page(), max = UFFD_HANDOVER_MAX_REGIONS;
	struct uffd_handover_region *many = calloc(max + 1, sizeof(*many));
	struct uffd_handover_region r = { 0x100000, ps,
		UFFD_BACKEND_ANON_PRIVATE, UFFD_MODE_MISSING, ps, 0, -1 };
	struct uffd_handle *h = open_handle();
	int sv[2], p[2];

	ck_assert_ptr_nonnull(many);
	make_pair(sock_types[_i], sv);
	ck_assert_uffd_err(uffd_handover_send(sv[0], NULL, &r, 1), EINVAL,
			   "NULL");
	ck_assert_uffd_err(uffd_handover_send(sv[0], h, NULL, 1), EINVAL,
			   "NULL");
	ck_assert_uffd_err(uffd_handover_send(sv[0], h, many, max + 1), EINVAL,
			   "1025 regions are more than a handover carries");
	r.len = 0;
	ck_assert_uffd_err(uffd_handover_send(sv[0], h, &r, 1), EINVAL,
			   "region 0 has length 0");
	r.len = ps;
	r.addr = UINT64_MAX - ps + 1;
	r.len = 2 * ps;
	ck_assert_uffd_err(uffd_handover_send(sv[0], h, &r, 1), EINVAL,
			   "wraps around");
	r.addr = 0x100000;
	r.len = ps;
	r.page_size = 12345;
	ck_assert_uffd_err(uffd_handover_send(sv[0], h, &r, 1), EINVAL,
			   "not a power of two");
	r.page_size = ps;
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	close(p[0]);
	close(p[1]);
	r.fd = p[0];
	ck_assert_uffd_err(uffd_handover_send(sv[0], h, &r, 1), EBADF,
			   "is not open");
	r.fd = -5;
	ck_assert_uffd_err(uffd_handover_send(sv[0], h, &r, 1), EBADF,
			   "fd -5 is not open");
	assert_nothing_sent(sv);
	free(many);
	uffd_handle_free(h);
	close_pair(sv);
}
END_TEST

/* More distinct backing fds than one SCM_RIGHTS message carries. */
START_TEST(test_send_too_many_fds)
{
	size_t ps = test_page(), n = 253;
	struct uffd_handover_region *r = calloc(n, sizeof(*r));
	struct uffd_handle *h = open_handle();
	int memfd = make_memfd(ps), sv[2];

	ck_assert_ptr_nonnull(r);
	for (size_t i = 0; i < n; i++) {
		r[i] = (struct uffd_handover_region){ 0x10000000 + i * ps, ps,
			UFFD_BACKEND_MEMFD_SHARED, UFFD_MODE_MINOR, ps, 0,
			fcntl(memfd, F_DUPFD_CLOEXEC, 0) };
		ck_assert_int_ge(r[i].fd, 0);
	}
	make_pair(sock_types[_i], sv);
	ck_assert_uffd_err(uffd_handover_send(sv[0], h, r, n), EINVAL,
			   "more than 252 distinct backing fds");
	assert_nothing_sent(sv);
	/* One fewer fits. */
	ck_assert_int_eq(uffd_handover_send(sv[0], h, r, n - 1), 0);
	for (size_t i = 0; i < n; i++)
		close(r[i].fd);
	free(r);
	close(memfd);
	uffd_handle_free(h);
	close_pair(sv);
}
END_TEST

/* ==== end to end: a VMM and its page server in two processes ==== */

#define E2E_ANON 8    /* pages of the anonymous region (COPY) */
#define E2E_MEMFD 8   /* pages of the memfd region (CONTINUE) */
#define E2E_THREADS 4

/* Byte j of page i of region r, as the page server provides it. */
static unsigned char pattern(unsigned r, size_t i, size_t j)
{
	return (unsigned char)(0x5a ^ (r << 7) ^ (i * 31) ^ j ^ (j >> 8));
}

static void fill_page(unsigned char *p, unsigned r, size_t i, size_t ps)
{
	for (size_t j = 0; j < ps; j++)
		p[j] = pattern(r, i, j);
}

/* What the page server saw, sent back to the parent at the end. */
struct server_stats {
	uint32_t anon_missing;
	uint32_t memfd_missing;
	uint32_t memfd_minor;
};

/* The page server's state (the child; no Check asserts in there). */
struct server {
	struct uffd_handle *h;
	struct uffd_handover_region *r;
	size_t n, ps;
	unsigned char *map;  /* the received memfd, mapped here */
	unsigned char *page; /* the COPY source */
	struct server_stats st;
};

static bool in_region(const struct uffd_handover_region *r, uint64_t a)
{
	return a >= r->addr && a - r->addr < r->len;
}

/* Resolves one fault; returns 0 or the child's exit status. */
static int serve_fault(struct server *s, const struct uffd_event *ev)
{
	uint64_t addr = ev->fault.address & ~(uint64_t)(s->ps - 1);
	void *dst = (void *)(uintptr_t)addr;
	size_t i;
	int ret;

	if (ev->type != UFFD_EVENT_TYPE_PAGEFAULT)
		return 15;
	if (in_region(&s->r[0], addr)) {
		i = (addr - s->r[0].addr) / s->ps;
		fill_page(s->page, 0, i, s->ps);
		s->st.anon_missing++;
		ret = uffd_handle_copy(s->h, dst, s->page, s->ps, 0, NULL);
	} else if (in_region(&s->r[1], addr)) {
		i = (addr - s->r[1].addr) / s->ps;
		fill_page(s->map + i * s->ps, 1, i, s->ps);
		if (ev->flags & UFFD_FAULT_MINOR)
			s->st.memfd_minor++;
		else
			s->st.memfd_missing++;
		ret = uffd_handle_continue(s->h, dst, s->ps, 0, NULL);
	} else {
		return 16;
	}
	if (ret == -EEXIST)
		ret = uffd_handle_wake(s->h, dst, s->ps);
	if (ret)
		fprintf(stderr, "page server: resolving %#llx: %s\n",
			(unsigned long long)addr, uffd_last_error());
	return ret ? 17 : 0;
}

/* Serves faults until the parent says it is done (or goes away). */
static int serve_loop(struct server *s, int sock)
{
	struct pollfd pfd[2] = {
		{ .fd = uffd_handle_get_fd(s->h), .events = POLLIN },
		{ .fd = sock, .events = POLLIN },
	};
	struct uffd_event ev[16];

	for (;;) {
		int k = poll(pfd, 2, TEST_WAIT_MS), ret;

		if (k <= 0)
			return 13;
		if (pfd[1].revents) {
			char c;

			/* Read it: closing with unread data would make
			 * the parent's read of the statistics fail
			 * (ECONNRESET). */
			return recv(sock, &c, 1, 0) == 1 ? 0 : 19;
		}
		k = uffd_handle_read_events(s->h, ev, 16);
		if (k < 0)
			return 14;
		for (int e = 0; e < k; e++) {
			ret = serve_fault(s, &ev[e]);
			if (ret)
				return ret;
		}
	}
}

static int server_setup(struct server *s, int sock)
{
	const struct uffd_handover_region *m;

	s->ps = test_page();
	if (uffd_handover_recv(sock, &s->h, &s->r, &s->n)) {
		fprintf(stderr, "page server: %s\n", uffd_last_error());
		return 10;
	}
	m = &s->r[1];
	if (s->n != 2 || s->r[0].fd != -1 || m->fd < 0 ||
	    s->r[0].modes != UFFD_MODE_MISSING ||
	    m->modes != (UFFD_MODE_MISSING | UFFD_MODE_MINOR) ||
	    m->backend != UFFD_BACKEND_MEMFD_SHARED)
		return 11;
	s->map = mmap(NULL, m->len, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd,
		      (off_t)m->file_offset);
	s->page = mmap(NULL, s->ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return s->map == MAP_FAILED || s->page == MAP_FAILED ? 12 : 0;
}

/*
 * The page server's exit status: 0 served and reported; 10 receiving the
 * handover failed; 11 the region table is not what was sent; 12 mmap
 * failed; 13 no event within TEST_WAIT_MS; 14 reading events failed; 15 an
 * event that is not a page fault; 16 a fault outside both regions; 17 COPY
 * or CONTINUE failed; 18 sending the statistics failed; 19 reading the
 * parent's "done" failed.
 */
static int page_server(int sock)
{
	struct server s = { .h = NULL };
	int ret = server_setup(&s, sock);

	if (!ret)
		ret = serve_loop(&s, sock);
	if (!ret && send(sock, &s.st, sizeof(s.st), MSG_NOSIGNAL) !=
		    (ssize_t)sizeof(s.st))
		ret = 18;
	return ret;
}

/* A thread of the VMM reading pages of both regions. */
struct reader {
	pthread_t thread;
	unsigned char *anon, *mem;
	size_t ps;
	unsigned id;
	int done_fd;
	unsigned bad; /* pages whose contents were wrong */
};

static unsigned check_page(const unsigned char *p, unsigned r, size_t i,
			   size_t ps)
{
	for (size_t j = 0; j < ps; j++)
		if (p[j] != pattern(r, i, j))
			return 1;
	return 0;
}

static void *reader_main(void *arg)
{
	struct reader *t = arg;

	for (size_t i = t->id; i < E2E_ANON; i += E2E_THREADS)
		t->bad += check_page(t->anon + i * t->ps, 0, i, t->ps);
	for (size_t i = t->id; i < E2E_MEMFD; i += E2E_THREADS)
		t->bad += check_page(t->mem + i * t->ps, 1, i, t->ps);
	if (write(t->done_fd, "x", 1) != 1)
		t->bad++;
	return NULL;
}

/* Waits (bounded) for n readers to finish; false if the page server went
 * away or the bound passed first. */
static bool wait_readers(int done_fd, int sock, unsigned n)
{
	struct pollfd pfd[2] = {
		{ .fd = done_fd, .events = POLLIN },
		{ .fd = sock, .events = POLLIN },
	};
	char c;

	while (n) {
		if (poll(pfd, 2, TEST_WAIT_MS) <= 0 || pfd[1].revents)
			return false;
		if (read(done_fd, &c, 1) == 1)
			n--;
	}
	return true;
}

/* The VMM's side of the test. */
struct vmm {
	struct uffd_handle *h;
	unsigned char *anon, *mem;
	int memfd;
	size_t ps;
};

static void vmm_setup(struct vmm *v)
{
	size_t ps = v->ps = test_page();
	unsigned char *zero = calloc(1, ps);

	ck_assert_ptr_nonnull(zero);
	v->h = open_handle();
	v->anon = map_anon(E2E_ANON * ps);
	v->memfd = make_memfd(E2E_MEMFD * ps);
	v->mem = map_fd(v->memfd, E2E_MEMFD * ps, true);
	ck_assert_int_eq(uffd_handle_register(v->h, v->anon, E2E_ANON * ps,
					      UFFD_MODE_MISSING, NULL), 0);
	ck_assert_int_eq(uffd_handle_register(v->h, v->mem, E2E_MEMFD * ps,
					      UFFD_MODE_MISSING |
					      UFFD_MODE_MINOR, NULL), 0);
	/* Odd memfd pages are in the page cache already (stale zeros): the
	 * readers' faults there are MINOR, the others MISSING. */
	for (size_t i = 1; i < E2E_MEMFD; i += 2)
		ck_assert_int_eq(pwrite(v->memfd, zero, ps, (off_t)(i * ps)),
				 (ssize_t)ps);
	free(zero);
}

static void vmm_send(struct vmm *v, int sock)
{
	struct uffd_handover_region r[2] = {
		{ (uintptr_t)v->anon, E2E_ANON * v->ps,
		  UFFD_BACKEND_ANON_PRIVATE, UFFD_MODE_MISSING, v->ps, 0, -1 },
		{ (uintptr_t)v->mem, E2E_MEMFD * v->ps,
		  UFFD_BACKEND_MEMFD_SHARED,
		  UFFD_MODE_MISSING | UFFD_MODE_MINOR, v->ps, 0, v->memfd },
	};
	int ret = uffd_handover_send(sock, v->h, r, 2);

	ck_assert_msg(ret == 0, "uffd_handover_send: %s", uffd_last_error());
}

/* Runs the readers; returns how many pages they found wrong, or -1 when
 * the page server stopped answering (it is then killed). */
static int vmm_run_readers(struct vmm *v, int sock, pid_t child)
{
	struct reader t[E2E_THREADS];
	int done[2], bad = 0;
	bool ok;

	ck_assert_int_eq(pipe2(done, O_CLOEXEC), 0);
	for (unsigned i = 0; i < E2E_THREADS; i++) {
		t[i] = (struct reader){ .anon = v->anon, .mem = v->mem,
					.ps = v->ps, .id = i,
					.done_fd = done[1] };
		ck_assert_int_eq(pthread_create(&t[i].thread, NULL,
						reader_main, &t[i]), 0);
	}
	ok = wait_readers(done[0], sock, E2E_THREADS);
	if (!ok) {
		/* Let the stuck readers go: with every copy of the
		 * userfaultfd closed their faults are ordinary ones. */
		kill(child, SIGKILL);
		uffd_handle_free(v->h);
		v->h = NULL;
	}
	for (unsigned i = 0; i < E2E_THREADS; i++) {
		pthread_join(t[i].thread, NULL);
		bad += (int)t[i].bad;
	}
	close(done[0]);
	close(done[1]);
	return ok ? bad : -1;
}

static void vmm_get_stats(int sock, struct server_stats *st)
{
	struct pollfd pfd = { .fd = sock, .events = POLLIN };

	ck_assert_int_eq(send(sock, "D", 1, MSG_NOSIGNAL), 1);
	ck_assert_msg(poll(&pfd, 1, TEST_WAIT_MS) == 1,
		      "no statistics from the page server within %d ms",
		      TEST_WAIT_MS);
	ck_assert_msg(recv(sock, st, sizeof(*st), MSG_WAITALL) ==
		      (ssize_t)sizeof(*st), "statistics from the page server: %s",
		      strerror(errno));
}

static void check_child(pid_t child)
{
	int status;

	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "page server: status %#x (exit %d: see the comment "
		      "on page_server())", status,
		      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

START_TEST(test_end_to_end)
{
	struct server_stats st = { 0 };
	struct vmm v;
	pid_t child;
	int sv[2], bad;
	unsigned char page[64];

	make_pair(sock_types[_i], sv);
	/* Forked first, so the page server inherits neither the
	 * userfaultfd nor the mappings: it has only what it receives. */
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		close(sv[0]);
		_exit(page_server(sv[1]));
	}
	close(sv[1]);
	vmm_setup(&v);
	vmm_send(&v, sv[0]);
	bad = vmm_run_readers(&v, sv[0], child);
	if (bad < 0)
		check_child(child);
	ck_assert_msg(bad >= 0, "the page server stopped serving faults");
	vmm_get_stats(sv[0], &st);
	check_child(child);
	ck_assert_int_eq(bad, 0);
	ck_assert_uint_eq(st.anon_missing, E2E_ANON);
	ck_assert_uint_eq(st.memfd_minor, E2E_MEMFD / 2);
	ck_assert_uint_eq(st.memfd_missing, E2E_MEMFD - E2E_MEMFD / 2);
	/* The page cache holds what the server wrote through its mapping. */
	ck_assert_int_eq(pread(v.memfd, page, sizeof(page), 3 * (off_t)v.ps),
			 (ssize_t)sizeof(page));
	ck_assert_int_eq(check_page(page, 1, 3, sizeof(page)), 0);
	uffd_handle_free(v.h);
	munmap(v.anon, E2E_ANON * v.ps);
	munmap(v.mem, E2E_MEMFD * v.ps);
	close(v.memfd);
	close(sv[0]);
}
END_TEST

/* ------------------------------------------------------------------------
 * Receiving into a loop: the page server builds a loop whose region is
 * remote (the sender's memory, registered by the sender) and serves it
 * from a buffer of its own, with the loop's workers.
 */
#define LOOP_PAGES 32

static unsigned char loop_byte(size_t i)
{
	return (unsigned char)(i * 13 + 5);
}

/* In the child: receive, serve with a loop until the parent says done. */
static int loop_server(int sock)
{
	size_t ps = test_page(), len = LOOP_PAGES * ps, n = 0;
	struct uffd_handover_region *regions = NULL;
	struct uffd_region_config *rc = NULL;
	struct uffd_handle *h = NULL;
	struct uffd_source *src = NULL;
	struct uffd_loop *loop = NULL;
	unsigned char *image = malloc(len), done;

	if (!image)
		return 20;
	for (size_t i = 0; i < len; i++)
		image[i] = loop_byte(i);
	if (uffd_handover_recv(sock, &h, &regions, &n) || n != 1)
		return 21;
	if (uffd_source_new_buffer(image, len, &src) ||
	    uffd_region_config_new(&rc) ||
	    uffd_region_config_set_range(rc, (void *)(uintptr_t)regions[0].addr,
					 regions[0].len) ||
	    uffd_region_config_set_remote(rc, regions[0].backend,
					  regions[0].page_size) ||
	    uffd_region_config_set_source(rc, src, 0) ||
	    uffd_loop_new(h, NULL, &loop) ||
	    uffd_loop_add_region(loop, rc, NULL) || uffd_loop_start(loop))
		return 22;
	if (write(sock, "r", 1) != 1) /* ready: the parent may touch */
		return 23;
	if (read(sock, &done, 1) != 1) /* the parent checked everything */
		return 24;
	uffd_loop_free(loop);
	uffd_handle_free(h);
	uffd_region_config_free(rc);
	uffd_source_free(src);
	free(regions);
	free(image);
	return 0;
}

START_TEST(test_receive_into_loop)
{
	size_t ps = test_page(), len = LOOP_PAGES * ps;
	struct uffd_handover_region region;
	struct uffd_handle *h;
	unsigned char *mem, ready;
	int sv[2], status;
	pid_t child;

	make_pair(sock_types[_i], sv);
	fflush(NULL);
	child = fork(); /* before the handle: the child has only what it gets */
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		close(sv[0]);
		_exit(loop_server(sv[1]));
	}
	close(sv[1]);
	h = open_handle();
	mem = map_anon(len);
	ck_assert_int_eq(uffd_handle_register(h, mem, len, UFFD_MODE_MISSING,
					      NULL), 0);
	region = (struct uffd_handover_region){
		.addr = (uintptr_t)mem, .len = len,
		.backend = UFFD_BACKEND_ANON_PRIVATE, .modes = UFFD_MODE_MISSING,
		.page_size = ps, .fd = -1,
	};
	ck_assert_int_eq(uffd_handover_send(sv[0], h, &region, 1), 0);
	ck_assert_int_eq(read(sv[0], &ready, 1), 1);
	/* every page faults into the other process's loop; check all bytes */
	for (size_t i = 0; i < len; i++)
		if (mem[i] != loop_byte(i))
			ck_abort_msg("byte %zu is %#x, the server's image has %#x",
				     i, mem[i], loop_byte(i));
	ck_assert_int_eq(write(sv[0], "d", 1), 1);
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "page server status %#x", status);
	uffd_handle_free(h);
	munmap(mem, len);
	close(sv[0]);
}
END_TEST

static Suite *handover_suite(void)
{
	Suite *s = suite_create("handover");
	TCase *e2e = tcase_create("end-to-end");
	TCase *bad = tcase_create("malformed");
	TCase *ok = tcase_create("round-trip");
	TCase *snd = tcase_create("send-errors");
	int nt = (int)(sizeof(sock_types) / sizeof(sock_types[0]));

	tcase_add_loop_test(e2e, test_end_to_end, 0, nt);
	tcase_add_loop_test(e2e, test_receive_into_loop, 0, nt);
	tcase_add_loop_test(bad, test_bad_magic, 0, nt);
	tcase_add_loop_test(bad, test_bad_version, 0, nt);
	tcase_add_loop_test(bad, test_bad_sizes, 0, nt);
	tcase_add_loop_test(bad, test_header_reserved_not_zero, 0, nt);
	tcase_add_loop_test(bad, test_truncated_header, 0, nt);
	tcase_add_loop_test(bad, test_truncated_table, 0, nt);
	tcase_add_loop_test(bad, test_too_many_regions, 0, nt);
	tcase_add_loop_test(bad, test_fd_count_mismatch, 0, nt);
	tcase_add_loop_test(bad, test_bad_regions, 0, nt);
	tcase_add_loop_test(bad, test_bad_file_offset, 0, nt);
	tcase_add_loop_test(bad, test_no_fds, 0, nt);
	tcase_add_loop_test(bad, test_not_a_userfaultfd, 0, nt);
	tcase_add_loop_test(bad, test_peer_closed, 0, nt);
	tcase_add_loop_test(bad, test_nothing_waiting, 0, nt);
	tcase_add_test(bad, test_packet_too_large);
	tcase_add_test(bad, test_packet_trailing_bytes);
	tcase_add_loop_test(ok, test_round_trip, 0, nt);
	tcase_add_loop_test(ok, test_round_trip_empty, 0, nt);
	tcase_add_loop_test(ok, test_round_trip_max, 0, nt);
	tcase_add_loop_test(ok, test_larger_sizes_accepted, 0, nt);
	tcase_add_loop_test(snd, test_send_errors, 0, nt);
	tcase_add_loop_test(snd, test_send_too_many_fds, 0, nt);
	suite_add_tcase(s, e2e);
	suite_add_tcase(s, bad);
	suite_add_tcase(s, ok);
	suite_add_tcase(s, snd);
	return s;
}

int main(void)
{
	return run_suite(handover_suite());
}
