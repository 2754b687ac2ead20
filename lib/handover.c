// SPDX-License-Identifier: MIT
/*
 * Handing a userfaultfd and the table of its regions to another process
 * over a Unix socket. One message: a fixed header, then one record per
 * region, every field little-endian and fixed-width; the userfaultfd and
 * the distinct backing fds ride on it as one SCM_RIGHTS. doc/handover.md
 * has the format, the fd order and the validation rules.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

#define HO_MAGIC 0x4f484655u /* "UFHO" as bytes on the wire */
#define HO_HDR_SIZE 32u      /* version 1's header and record sizes */
#define HO_REC_SIZE 48u
#define HO_MAX_PART 128u     /* the largest header or record accepted */
#define HO_MAX_FDS 253u      /* the kernel's SCM_MAX_FD */
#define HO_NO_FD 0xffffffffu /* fd index of a region without a file */
#define HO_MIN_PAGE 4096u
#define HO_MAX_MSG ((size_t)HO_MAX_PART * (UFFD_HANDOVER_MAX_REGIONS + 1))
/* Room for the fds plus any other control message (credentials). */
#define HO_CTL_SIZE (CMSG_SPACE(sizeof(int) * HO_MAX_FDS) + 64)

#ifndef SCM_PIDFD
#define SCM_PIDFD 0x04
#endif

/* Byte offsets of the header's fields. */
enum {
	HDR_MAGIC = 0,
	HDR_VERSION = 4,
	HDR_HDR_SIZE = 6,
	HDR_REC_SIZE = 8,
	HDR_FLAGS = 10,
	HDR_COUNT = 12,
	HDR_NFDS = 16,
	HDR_TOTAL = 20,
	HDR_RESERVED = 24,
};

/* Byte offsets of a record's fields. */
enum {
	REC_ADDR = 0,
	REC_LEN = 8,
	REC_PAGE_SIZE = 16,
	REC_FILE_OFFSET = 24,
	REC_BACKEND = 32,
	REC_MODES = 36,
	REC_FD_INDEX = 40,
	REC_RESERVED = 44,
};

struct ho_header {
	uint32_t magic;
	uint16_t version, hdr_size, rec_size, flags;
	uint32_t count, nfds, total;
	uint64_t reserved;
};

/* A message as it is read: its bytes and the fds that came with them. */
struct ho_msg {
	unsigned char *buf;
	size_t len;       /* bytes read so far */
	int fds[HO_MAX_FDS];
	size_t nfds;      /* fds held in fds[] (the caller's to close) */
	size_t extra;     /* fds beyond HO_MAX_FDS, closed on arrival */
};

union ho_ctl {
	struct cmsghdr align;
	char buf[HO_CTL_SIZE];
};

/* ---- little-endian fields ---- */

static void put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static void put64(unsigned char *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static uint16_t get16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const unsigned char *p)
{
	return get16(p) | (uint32_t)get16(p + 2) << 16;
}

static uint64_t get64(const unsigned char *p)
{
	return get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* ---- what both sides check ---- */

static int check_modes(uint32_t modes, size_t i, int err)
{
	if (!modes)
		return uffd_errf(err, "region %zu has no registration mode", i);
	if (modes & ~UFFD_MODE_KNOWN)
		return uffd_errf(err, "region %zu has unknown mode bits %#" PRIx64,
				 i, (uint64_t)modes & ~UFFD_MODE_KNOWN);
	return 0;
}

/* One region's description; err is EINVAL when sending and EPROTO when
 * receiving. */
static int check_region(const struct uffd_handover_region *r, size_t i,
			bool has_fd, int err)
{
	uint64_t ps = r->page_size;

	if (r->len == 0)
		return uffd_errf(err, "region %zu has length 0", i);
	if (r->addr + r->len < r->addr)
		return uffd_errf(err, "region %zu at %#" PRIx64 " of %#" PRIx64
				 " bytes wraps around the end of the address "
				 "space", i, r->addr, r->len);
	if (ps < HO_MIN_PAGE || (ps & (ps - 1)))
		return uffd_errf(err, "region %zu: page size %" PRIu64 " is not "
				 "a power of two of at least %u", i, ps,
				 HO_MIN_PAGE);
	if ((r->addr | r->len) & (ps - 1))
		return uffd_errf(err, "region %zu at %#" PRIx64 " of %#" PRIx64
				 " bytes is not aligned to its page size %" PRIu64,
				 i, r->addr, r->len, ps);
	if (check_modes(r->modes, i, err))
		return -err;
	if (r->backend >= UFFD_BACKEND_COUNT)
		return uffd_errf(err, "region %zu has unknown backend %" PRIu32,
				 i, r->backend);
	if (has_fd && ((r->file_offset & (ps - 1)) ||
		       r->file_offset + r->len < r->file_offset))
		return uffd_errf(err, "region %zu: file offset %#" PRIx64
				 " is not page aligned or the range wraps", i,
				 r->file_offset);
	return 0;
}

/* ---- sending ---- */

/* Where fd is among the backing fds (fds[1..nfds)), or -1. */
static int backing_index(const int *fds, size_t nfds, int fd)
{
	for (size_t i = 1; i < nfds; i++)
		if (fds[i] == fd)
			return (int)(i - 1);
	return -1;
}

/* Checks the regions and lists the fds to send: the uffd, then each
 * distinct backing fd in order of first use. */
static int collect_fds(int uffd, const struct uffd_handover_region *regions,
		       size_t n, int *fds, size_t *nfds)
{
	fds[0] = uffd;
	*nfds = 1;
	for (size_t i = 0; i < n; i++) {
		int fd = regions[i].fd, ret;

		ret = check_region(&regions[i], i, fd != -1, EINVAL);
		if (ret)
			return ret;
		if (fd == -1 || backing_index(fds, *nfds, fd) >= 0)
			continue;
		if (fd < 0 || fcntl(fd, F_GETFD) < 0)
			return uffd_errf(EBADF, "region %zu: fd %d is not open",
					 i, fd);
		if (*nfds == HO_MAX_FDS)
			return uffd_errf(EINVAL, "the regions have more than %u "
					 "distinct backing fds: with the "
					 "userfaultfd, one message carries at "
					 "most %u", HO_MAX_FDS - 1, HO_MAX_FDS);
		fds[(*nfds)++] = fd;
	}
	return 0;
}

static void encode(unsigned char *buf, const struct uffd_handover_region *r,
		   size_t n, const int *fds, size_t nfds)
{
	memset(buf, 0, HO_HDR_SIZE + n * HO_REC_SIZE);
	put32(buf + HDR_MAGIC, HO_MAGIC);
	put16(buf + HDR_VERSION, UFFD_HANDOVER_VERSION);
	put16(buf + HDR_HDR_SIZE, HO_HDR_SIZE);
	put16(buf + HDR_REC_SIZE, HO_REC_SIZE);
	put32(buf + HDR_COUNT, (uint32_t)n);
	put32(buf + HDR_NFDS, (uint32_t)nfds);
	put32(buf + HDR_TOTAL, (uint32_t)(HO_HDR_SIZE + n * HO_REC_SIZE));
	for (size_t i = 0; i < n; i++) {
		unsigned char *p = buf + HO_HDR_SIZE + i * HO_REC_SIZE;
		int idx = r[i].fd == -1 ? -1 : backing_index(fds, nfds, r[i].fd);

		put64(p + REC_ADDR, r[i].addr);
		put64(p + REC_LEN, r[i].len);
		put64(p + REC_PAGE_SIZE, r[i].page_size);
		put64(p + REC_FILE_OFFSET, idx < 0 ? 0 : r[i].file_offset);
		put32(p + REC_BACKEND, r[i].backend);
		put32(p + REC_MODES, r[i].modes);
		put32(p + REC_FD_INDEX, idx < 0 ? HO_NO_FD : (uint32_t)idx);
	}
}

static int send_error(int sock, int err)
{
	return uffd_errf(err, "cannot send the handover on socket %d: %s", sock,
			 strerror(err));
}

/* What a stream socket did not take at once (no fds: they went with the
 * first byte). */
static int send_rest(int sock, const unsigned char *p, size_t len)
{
	struct pollfd pfd = { .fd = sock, .events = POLLOUT };

	while (len) {
		ssize_t sent = send(sock, p, len, MSG_NOSIGNAL);

		if (sent < 0 && errno == EAGAIN)
			poll(&pfd, 1, -1);
		else if (sent < 0 && errno != EINTR)
			return send_error(sock, errno);
		if (sent > 0) {
			p += sent;
			len -= (size_t)sent;
		}
	}
	return 0;
}

static int send_message(int sock, const unsigned char *buf, size_t len,
			const int *fds, size_t nfds)
{
	union ho_ctl ctl;
	struct iovec iov = { (void *)buf, len };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctl.buf,
		.msg_controllen = CMSG_SPACE(sizeof(int) * nfds),
	};
	struct cmsghdr *c;
	ssize_t sent;

	memset(&ctl, 0, sizeof(ctl));
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	do
		sent = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (sent < 0 && errno == EINTR);
	if (sent < 0)
		return send_error(sock, errno);
	return send_rest(sock, buf + sent, len - (size_t)sent);
}

UFFD_EXPORT int uffd_handover_send(int sock, const struct uffd_handle *handle,
				   const struct uffd_handover_region *regions,
				   size_t n)
{
	int fds[HO_MAX_FDS], ret;
	unsigned char *buf;
	size_t nfds, len;

	if (!handle || (n && !regions))
		return uffd_err(EINVAL, "uffd_handover_send: the handle or the "
				"regions are NULL");
	if (n > UFFD_HANDOVER_MAX_REGIONS)
		return uffd_errf(EINVAL, "%zu regions are more than a handover "
				 "carries (%d)", n, UFFD_HANDOVER_MAX_REGIONS);
	ret = collect_fds(handle->fd, regions, n, fds, &nfds);
	if (ret)
		return ret;
	len = HO_HDR_SIZE + n * HO_REC_SIZE;
	buf = malloc(len);
	if (!buf)
		return uffd_err(ENOMEM, "out of memory for the handover message");
	encode(buf, regions, n, fds, nfds);
	ret = send_message(sock, buf, len, fds, nfds);
	free(buf);
	return ret;
}

/* ---- receiving: the bytes and the fds ---- */

static void close_fds(struct ho_msg *m)
{
	for (size_t i = 0; i < m->nfds; i++)
		close(m->fds[i]);
	m->nfds = 0;
}

/* Keeps the fds of SCM_RIGHTS; closes any other fd (SCM_PIDFD). */
static void take_fds(struct msghdr *msg, struct ho_msg *m)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c;
	     c = CMSG_NXTHDR(msg, c)) {
		size_t cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		bool keep = c->cmsg_type == SCM_RIGHTS;

		if (c->cmsg_level != SOL_SOCKET ||
		    (!keep && c->cmsg_type != SCM_PIDFD))
			continue;
		for (size_t k = 0; k < cnt; k++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof(fd));
			if (keep && m->nfds < HO_MAX_FDS)
				m->fds[m->nfds++] = fd;
			else {
				close(fd);
				m->extra += keep;
			}
		}
	}
}

/* One recvmsg of up to want bytes; returns the count or -errno. */
static ssize_t recv_some(int sock, struct ho_msg *m, size_t want, int *flags)
{
	union ho_ctl ctl;
	struct iovec iov = { m->buf + m->len, want };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctl.buf,
		.msg_controllen = sizeof(ctl.buf),
	};
	ssize_t got = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);

	if (got < 0)
		return -errno;
	take_fds(&msg, m);
	m->len += (size_t)got;
	*flags = msg.msg_flags;
	return got;
}

/* As recv_some(), but once part of a message is in, a signal or an empty
 * non-blocking socket only make it wait for the rest. */
static ssize_t recv_more(int sock, struct ho_msg *m, size_t want, int *flags)
{
	struct pollfd pfd = { .fd = sock, .events = POLLIN };

	for (;;) {
		ssize_t got = recv_some(sock, m, want, flags);

		if (got >= 0 || m->len == 0 || (got != -EINTR && got != -EAGAIN))
			return got;
		if (got == -EAGAIN)
			poll(&pfd, 1, -1);
	}
}

static int recv_error(int sock, int err)
{
	if (err == EAGAIN)
		return uffd_errf(err, "no handover is waiting on non-blocking "
				 "socket %d", sock);
	return uffd_errf(err, "cannot receive a handover on socket %d: %s",
			 sock, strerror(err));
}

static int closed_error(void)
{
	return uffd_err(ENODATA, "the peer closed the socket before sending a "
			"handover");
}

static int ctrunc_error(void)
{
	return uffd_err(EPROTO, "the message's control data was truncated "
			"(MSG_CTRUNC): more fds than a handover carries");
}

/* Reads a stream until it holds total bytes of the message. */
static int recv_until(int sock, struct ho_msg *m, size_t total,
		      const char *what)
{
	while (m->len < total) {
		int flags = 0;
		ssize_t got = recv_more(sock, m, total - m->len, &flags);

		if (got < 0)
			return recv_error(sock, (int)-got);
		if (got == 0 && m->len == 0)
			return closed_error();
		if (got == 0)
			return uffd_errf(EPROTO, "truncated %s: the peer closed "
					 "the socket after %zu of %zu bytes",
					 what, m->len, total);
		if (flags & MSG_CTRUNC)
			return ctrunc_error();
	}
	return 0;
}

/* ---- receiving: the header ---- */

static void decode_header(const unsigned char *p, struct ho_header *h)
{
	h->magic = get32(p + HDR_MAGIC);
	h->version = get16(p + HDR_VERSION);
	h->hdr_size = get16(p + HDR_HDR_SIZE);
	h->rec_size = get16(p + HDR_REC_SIZE);
	h->flags = get16(p + HDR_FLAGS);
	h->count = get32(p + HDR_COUNT);
	h->nfds = get32(p + HDR_NFDS);
	h->total = get32(p + HDR_TOTAL);
	h->reserved = get64(p + HDR_RESERVED);
}

static int check_part_size(const char *what, unsigned size, unsigned min)
{
	if (size >= min && size <= HO_MAX_PART && size % 8 == 0)
		return 0;
	return uffd_errf(EPROTO, "the %s size %u is invalid (version %d needs "
			 "%u to %u bytes, a multiple of 8)", what, size,
			 UFFD_HANDOVER_VERSION, min, HO_MAX_PART);
}

static int check_counts(const struct ho_header *h)
{
	if (h->count > UFFD_HANDOVER_MAX_REGIONS)
		return uffd_errf(EPROTO, "the header announces %" PRIu32
				 " regions, more than the limit of %d",
				 h->count, UFFD_HANDOVER_MAX_REGIONS);
	if (h->total != h->hdr_size + h->count * h->rec_size)
		return uffd_errf(EPROTO, "the header's total size %" PRIu32
				 " is not %u + %" PRIu32 " regions of %u bytes",
				 h->total, h->hdr_size, h->count, h->rec_size);
	if (h->nfds == 0)
		return uffd_err(EPROTO, "the header announces no fds: the "
				"userfaultfd is missing");
	if (h->nfds > h->count + 1 || h->nfds > HO_MAX_FDS)
		return uffd_errf(EPROTO, "the header announces %" PRIu32 " fds "
				 "for %" PRIu32 " regions (at most one per "
				 "region, plus the userfaultfd)", h->nfds,
				 h->count);
	return 0;
}

static int parse_header(const unsigned char *p, struct ho_header *h)
{
	int ret;

	decode_header(p, h);
	if (h->magic != HO_MAGIC)
		return uffd_errf(EPROTO, "not a libuffd handover: bad magic "
				 "%#" PRIx32 " (expected %#x)", h->magic,
				 HO_MAGIC);
	if (h->version != UFFD_HANDOVER_VERSION)
		return uffd_errf(EPROTO, "unsupported handover version %u (this "
				 "libuffd speaks version %d)", h->version,
				 UFFD_HANDOVER_VERSION);
	ret = check_part_size("header", h->hdr_size, HO_HDR_SIZE);
	if (!ret)
		ret = check_part_size("record", h->rec_size, HO_REC_SIZE);
	if (ret)
		return ret;
	if (h->flags || h->reserved)
		return uffd_errf(EPROTO, "the header's flags (%#x) or reserved "
				 "field (%#" PRIx64 ") are not zero", h->flags,
				 h->reserved);
	return check_counts(h);
}

/* ---- receiving: the whole message ---- */

static int read_stream(int sock, struct ho_msg *m, struct ho_header *h)
{
	unsigned char *grown;
	int ret;

	m->buf = malloc(HO_HDR_SIZE);
	if (!m->buf)
		return uffd_err(ENOMEM, "out of memory for a handover");
	ret = recv_until(sock, m, HO_HDR_SIZE, "header");
	if (!ret)
		ret = parse_header(m->buf, h);
	if (ret)
		return ret;
	grown = realloc(m->buf, h->total);
	if (!grown)
		return uffd_err(ENOMEM, "out of memory for a handover");
	m->buf = grown;
	return recv_until(sock, m, h->total, "region table");
}

static int read_packet(int sock, struct ho_msg *m, struct ho_header *h)
{
	int flags = 0, ret;
	ssize_t got;

	m->buf = malloc(HO_MAX_MSG);
	if (!m->buf)
		return uffd_err(ENOMEM, "out of memory for a handover");
	got = recv_more(sock, m, HO_MAX_MSG, &flags);
	if (got < 0)
		return recv_error(sock, (int)-got);
	if (got == 0)
		return closed_error();
	if (flags & MSG_CTRUNC)
		return ctrunc_error();
	if (flags & MSG_TRUNC)
		return uffd_errf(EPROTO, "the message is larger than the largest "
				 "valid handover (%zu bytes)", HO_MAX_MSG);
	if (m->len < HO_HDR_SIZE)
		return uffd_errf(EPROTO, "truncated header: the message has %zu "
				 "bytes, the header alone %u", m->len,
				 HO_HDR_SIZE);
	ret = parse_header(m->buf, h);
	if (ret || m->len == h->total)
		return ret;
	if (m->len < h->total)
		return uffd_errf(EPROTO, "truncated region table: the message "
				 "has %zu of the %" PRIu32 " bytes its header "
				 "announces", m->len, h->total);
	return uffd_errf(EPROTO, "the message has %zu bytes, more than the %"
			 PRIu32 " its header announces", m->len, h->total);
}

static int read_message(int sock, struct ho_msg *m, struct ho_header *h)
{
	int type = 0, ret;
	socklen_t len = sizeof(type);

	if (getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return uffd_errf(errno, "socket %d: %s", sock, strerror(errno));
	ret = type == SOCK_STREAM ? read_stream(sock, m, h)
				  : read_packet(sock, m, h);
	if (ret)
		return ret;
	if (m->extra)
		return uffd_errf(EPROTO, "%zu fds came with the message, more "
				 "than a handover carries (%u)",
				 m->nfds + m->extra, HO_MAX_FDS);
	if (m->nfds == 0)
		return uffd_err(EPROTO, "no fds came with the message: the "
				"userfaultfd is missing");
	if (m->nfds != h->nfds)
		return uffd_errf(EPROTO, "the header announces %" PRIu32 " fds "
				 "but %zu came with the message", h->nfds,
				 m->nfds);
	return 0;
}

/* ---- receiving: the regions ---- */

/* Decodes record i; its fd is left as the index of its backing fd. */
static int decode_record(const unsigned char *p, size_t i, size_t nbacking,
			 struct uffd_handover_region *r)
{
	uint32_t idx = get32(p + REC_FD_INDEX);
	uint32_t reserved = get32(p + REC_RESERVED);
	int ret;

	r->addr = get64(p + REC_ADDR);
	r->len = get64(p + REC_LEN);
	r->page_size = get64(p + REC_PAGE_SIZE);
	r->file_offset = get64(p + REC_FILE_OFFSET);
	r->backend = get32(p + REC_BACKEND);
	r->modes = get32(p + REC_MODES);
	r->fd = -1;
	if (reserved)
		return uffd_errf(EPROTO, "region %zu: the reserved field is %#"
				 PRIx32 ", not 0", i, reserved);
	if (idx != HO_NO_FD && idx >= nbacking)
		return uffd_errf(EPROTO, "region %zu refers to backing fd %"
				 PRIu32 " but %zu came with the message", i,
				 idx, nbacking);
	ret = check_region(r, i, idx != HO_NO_FD, EPROTO);
	if (!ret && idx != HO_NO_FD)
		r->fd = (int)idx;
	return ret;
}

static int decode_records(const struct ho_msg *m, const struct ho_header *h,
			  struct uffd_handover_region *out)
{
	bool used[HO_MAX_FDS] = { false };
	size_t nbacking = m->nfds - 1;

	for (size_t i = 0; i < h->count; i++) {
		const unsigned char *p = m->buf + h->hdr_size + i * h->rec_size;
		int ret = decode_record(p, i, nbacking, &out[i]);

		if (ret)
			return ret;
		if (out[i].fd >= 0)
			used[out[i].fd] = true;
	}
	for (size_t k = 0; k < nbacking; k++)
		if (!used[k])
			return uffd_errf(EPROTO, "backing fd %zu came with the "
					 "message but no region refers to it",
					 k);
	return 0;
}

static bool is_received(const struct ho_msg *m, int fd)
{
	for (size_t i = 0; i < m->nfds; i++)
		if (m->fds[i] == fd)
			return true;
	return false;
}

/* Closes the duplicates assign_fds() made for regions [0, n). */
static void drop_dups(const struct ho_msg *m, struct uffd_handover_region *r,
		      size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (r[i].fd >= 0 && !is_received(m, r[i].fd))
			close(r[i].fd);
}

/* Turns each region's backing index into an fd of its own: the received
 * fd for the first region that uses it, a duplicate for the others. */
static int assign_fds(const struct ho_msg *m, struct uffd_handover_region *r,
		      size_t n)
{
	bool given[HO_MAX_FDS] = { false };

	for (size_t i = 0; i < n; i++) {
		int idx = r[i].fd, err;

		if (idx < 0)
			continue;
		if (!given[idx]) {
			given[idx] = true;
			r[i].fd = m->fds[1 + idx];
			continue;
		}
		r[i].fd = fcntl(m->fds[1 + idx], F_DUPFD_CLOEXEC, 0);
		if (r[i].fd < 0) {
			err = errno;
			drop_dups(m, r, i);
			return uffd_errf(err, "cannot duplicate the backing fd "
					 "of region %zu: %s", i, strerror(err));
		}
	}
	return 0;
}

static int adopt_uffd(const struct ho_msg *m, struct uffd_handle **handle)
{
	char why[256];
	int ret = uffd_handle_adopt(m->fds[0], handle);

	if (!ret)
		return 0;
	snprintf(why, sizeof(why), "%s", uffd_last_error());
	return uffd_errf(-ret, "the handover's first fd is not a usable "
			 "userfaultfd: %s", why);
}

/* Validates the records and hands every fd over to *handle and *regions;
 * on failure the fds are still all in m. */
static int unpack(struct ho_msg *m, const struct ho_header *h,
		  struct uffd_handle **handle,
		  struct uffd_handover_region **regions, size_t *n)
{
	struct uffd_handover_region *out;
	int ret;

	out = calloc(h->count ? h->count : 1, sizeof(*out));
	if (!out)
		return uffd_err(ENOMEM, "out of memory for the regions");
	ret = decode_records(m, h, out);
	if (!ret)
		ret = assign_fds(m, out, h->count);
	if (!ret) {
		ret = adopt_uffd(m, handle);
		if (ret)
			drop_dups(m, out, h->count);
	}
	if (ret) {
		free(out);
		return ret;
	}
	m->nfds = 0;
	*regions = out;
	*n = h->count;
	return 0;
}

UFFD_EXPORT int uffd_handover_recv(int sock, struct uffd_handle **handle,
				   struct uffd_handover_region **regions,
				   size_t *n)
{
	struct ho_msg m = { .buf = NULL };
	struct ho_header h;
	int ret;

	if (!handle || !regions || !n)
		return uffd_err(EINVAL, "uffd_handover_recv: NULL argument");
	ret = read_message(sock, &m, &h);
	if (!ret)
		ret = unpack(&m, &h, handle, regions, n);
	if (ret)
		close_fds(&m);
	free(m.buf);
	return ret;
}
