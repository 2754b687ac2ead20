// SPDX-License-Identifier: MIT
/*
 * The wire protocol's encoding and checks, shared by both programs. Fields
 * are written byte by byte, so the wire format never depends on the host's
 * byte order or struct padding.
 */
#define _GNU_SOURCE
#include "postcopy-proto.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

static void put_le(unsigned char *p, uint64_t v, unsigned size)
{
	for (unsigned i = 0; i < size; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, unsigned size)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static int proto_error(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int proto_error(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return -EPROTO;
}

void pc_hello_encode(const struct pc_hello *h, unsigned char *buf)
{
	memcpy(buf, PC_MAGIC, PC_MAGIC_LEN);
	put_le(buf + 8, h->version, 4);
	put_le(buf + 12, h->page_size, 4);
	put_le(buf + 16, h->image_size, 8);
	put_le(buf + 24, h->checksum, 8);
}

void pc_ready_encode(unsigned char *buf)
{
	memcpy(buf, PC_MAGIC, PC_MAGIC_LEN);
	put_le(buf + 8, PC_VERSION, 4);
	put_le(buf + 12, 0, 4);
}

void pc_msg_encode(const struct pc_msg *m, unsigned char *buf)
{
	put_le(buf, m->type, 4);
	put_le(buf + 4, m->flags, 4);
	put_le(buf + 8, m->offset, 8);
	put_le(buf + 16, m->length, 8);
}

static int check_magic_version(const unsigned char *buf, const char *what,
			       char *why, size_t whylen)
{
	uint64_t version = get_le(buf + 8, 4);

	if (memcmp(buf, PC_MAGIC, PC_MAGIC_LEN))
		return proto_error(why, whylen, "the peer's %s has the wrong "
				   "magic: it does not speak this protocol",
				   what);
	if (version != PC_VERSION)
		return proto_error(why, whylen, "the peer speaks protocol "
				   "version %" PRIu64 ", this program %d",
				   version, PC_VERSION);
	return 0;
}

int pc_hello_decode(const unsigned char *buf, struct pc_hello *h, char *why,
		    size_t whylen)
{
	int ret = check_magic_version(buf, "HELLO", why, whylen);

	if (ret)
		return ret;
	h->version = PC_VERSION;
	h->page_size = (uint32_t)get_le(buf + 12, 4);
	h->image_size = get_le(buf + 16, 8);
	h->checksum = get_le(buf + 24, 8);
	if (h->page_size < PC_MIN_PAGE || (h->page_size & (h->page_size - 1)))
		return proto_error(why, whylen, "HELLO: page size %" PRIu32
				   " is not a power of two of at least %u",
				   h->page_size, PC_MIN_PAGE);
	if (!h->image_size || h->image_size % h->page_size)
		return proto_error(why, whylen, "HELLO: image size %" PRIu64
				   " is not a positive multiple of the page "
				   "size %" PRIu32, h->image_size,
				   h->page_size);
	return 0;
}

int pc_ready_decode(const unsigned char *buf, char *why, size_t whylen)
{
	int ret = check_magic_version(buf, "READY", why, whylen);

	if (!ret && get_le(buf + 12, 4))
		return proto_error(why, whylen, "READY: reserved field is "
				   "not 0");
	return ret;
}

static const char *type_name(uint32_t type)
{
	switch (type) {
	case PC_REQUEST: return "REQUEST";
	case PC_DATA: return "DATA";
	case PC_END: return "END";
	default: return "?";
	}
}

/* Alignment, bounds (without overflow) and size of a REQUEST or DATA. */
static int check_range(const struct pc_msg *m, uint64_t page_size,
		       uint64_t image_size, char *why, size_t whylen)
{
	const char *name = type_name(m->type);

	if (m->offset % page_size || m->length % page_size)
		return proto_error(why, whylen, "%s of %#" PRIx64 "+%#" PRIx64
				   " is not page aligned", name, m->offset,
				   m->length);
	if (!m->length)
		return proto_error(why, whylen, "%s of length 0", name);
	if (m->offset >= image_size || m->length > image_size - m->offset)
		return proto_error(why, whylen, "%s of %#" PRIx64 "+%#" PRIx64
				   " is outside the image (%#" PRIx64
				   " bytes)", name, m->offset, m->length,
				   image_size);
	if (m->type == PC_DATA && m->length > PC_MAX_DATA)
		return proto_error(why, whylen, "DATA of %" PRIu64 " bytes, "
				   "more than the limit of %u", m->length,
				   PC_MAX_DATA);
	return 0;
}

int pc_msg_decode(const unsigned char *buf, bool from_source,
		  uint64_t page_size, uint64_t image_size, struct pc_msg *m,
		  char *why, size_t whylen)
{
	uint32_t allowed;

	m->type = (uint32_t)get_le(buf, 4);
	m->flags = (uint32_t)get_le(buf + 4, 4);
	m->offset = get_le(buf + 8, 8);
	m->length = get_le(buf + 16, 8);
	if (from_source ? m->type != PC_DATA && m->type != PC_END
			: m->type != PC_REQUEST)
		return proto_error(why, whylen, "unexpected message type %"
				   PRIu32 " from the %s", m->type,
				   from_source ? "source" : "destination");
	allowed = m->type == PC_REQUEST ? PC_REQ_URGENT
		  : m->type == PC_DATA  ? PC_DATA_REQUESTED
					: 0;
	if (m->flags & ~allowed)
		return proto_error(why, whylen, "%s with unknown flags %#"
				   PRIx32, type_name(m->type), m->flags);
	if (m->type == PC_END) {
		if (m->offset || m->length)
			return proto_error(why, whylen, "END with a non-zero "
					   "offset or length");
		return 0;
	}
	return check_range(m, page_size, image_size, why, whylen);
}

int pc_send(int fd, const void *hdr, size_t hlen, const void *payload,
	    size_t plen)
{
	struct iovec iov[2] = {
		{ (void *)hdr, hlen },
		{ (void *)payload, payload ? plen : 0 },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };

	while (iov[0].iov_len || iov[1].iov_len) {
		ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
		size_t left;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		left = (size_t)n;
		for (int i = 0; i < 2; i++) {
			size_t k = left < iov[i].iov_len ? left
							 : iov[i].iov_len;

			if (!k) /* also keeps a NULL payload untouched */
				continue;
			iov[i].iov_base = (char *)iov[i].iov_base + k;
			iov[i].iov_len -= k;
			left -= k;
		}
		/* the first entry may be empty now: skip it */
		mh.msg_iov = iov[0].iov_len ? iov : iov + 1;
		mh.msg_iovlen = iov[0].iov_len ? 2 : 1;
	}
	return 0;
}

int pc_recv(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = recv(fd, (char *)buf + got, len - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (n == 0)
			return got ? -EPROTO : -ENODATA;
		got += (size_t)n;
	}
	return 0;
}

uint64_t pc_checksum(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (size_t i = 0; i + 8 <= len; i += 8) {
		h ^= get_le(p + i, 8);
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

void pc_image_fill(void *buf, size_t len, uint64_t seed)
{
	unsigned char *p = buf;
	uint64_t state = seed;

	for (size_t i = 0; i + 8 <= len; i += 8) {
		uint64_t z = (state += UINT64_C(0x9e3779b97f4a7c15));

		z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
		z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
		put_le(p + i, z ^ (z >> 31), 8);
	}
}

bool pc_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return false; /* also refuses "-1", which strtoull accepts */
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

uint64_t pc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
