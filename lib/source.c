// SPDX-License-Identifier: MIT
/*
 * Page sources: buffers, files, zeros and user-defined fetchers. Reference
 * counted, since regions outlive the caller's handle on them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static int source_alloc(enum uffd_source_kind kind, struct uffd_source **out)
{
	struct uffd_source *src = calloc(1, sizeof(*src));

	if (!src)
		return uffd_err(ENOMEM, "out of memory for a source");
	src->kind = kind;
	src->refs = 1;
	src->fd = -1;
	*out = src;
	return 0;
}

UFFD_EXPORT int uffd_source_new_buffer(const void *buf, size_t len,
				       struct uffd_source **src)
{
	int ret;

	if (!buf || !len || !src)
		return uffd_err(EINVAL, "buffer source: NULL buffer, length 0 "
					"or NULL result");
	ret = source_alloc(UFFD_SOURCE_BUFFER, src);
	if (!ret) {
		(*src)->buf = buf;
		(*src)->buf_len = len;
	}
	return ret;
}

UFFD_EXPORT int uffd_source_new_fd(int fd, uint64_t offset, uint64_t len,
				   struct uffd_source **src)
{
	int dup_fd, ret;

	if (!src || !len || offset + len < offset)
		return uffd_err(EINVAL, "file source: NULL result, length 0 or "
					"an offset + length that overflows");
	dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (dup_fd < 0)
		return uffd_errf(EBADF, "file source: fd %d is not open", fd);
	ret = source_alloc(UFFD_SOURCE_FD, src);
	if (ret) {
		close(dup_fd);
		return ret;
	}
	(*src)->fd = dup_fd;
	(*src)->fd_offset = offset;
	(*src)->fd_len = len;
	return 0;
}

UFFD_EXPORT int uffd_source_new_move(void *buf, size_t len,
				     struct uffd_source **src)
{
	int ret;

	if (!buf || !len || !src || (uintptr_t)buf % uffd_page_size() ||
	    len % uffd_page_size())
		return uffd_err(EINVAL, "move source: NULL, length 0, or a "
					"buffer that is not page aligned");
	ret = source_alloc(UFFD_SOURCE_MOVE, src);
	if (!ret) {
		(*src)->buf = buf;
		(*src)->buf_len = len;
	}
	return ret;
}

UFFD_EXPORT int uffd_source_new_zero(struct uffd_source **src)
{
	if (!src)
		return uffd_err(EINVAL, "zero source: NULL result");
	return source_alloc(UFFD_SOURCE_ZERO, src);
}

UFFD_EXPORT int uffd_source_new_custom(const struct uffd_source_ops *ops,
				       void *arg, struct uffd_source **src)
{
	int ret;

	if (!ops || !ops->fetch || !src)
		return uffd_err(EINVAL, "custom source: NULL ops, fetch or "
					"result");
	ret = source_alloc(UFFD_SOURCE_CUSTOM, src);
	if (!ret) {
		(*src)->ops = *ops;
		(*src)->arg = arg;
	}
	return ret;
}

struct uffd_source *uffd_source_ref(struct uffd_source *src)
{
	__atomic_add_fetch(&src->refs, 1, __ATOMIC_RELAXED);
	return src;
}

UFFD_EXPORT void uffd_source_free(struct uffd_source *src)
{
	if (!src || __atomic_sub_fetch(&src->refs, 1, __ATOMIC_ACQ_REL))
		return;
	if (src->kind == UFFD_SOURCE_CUSTOM && src->ops.release)
		src->ops.release(src->arg);
	if (src->fd >= 0)
		close(src->fd);
	free(src);
}

UFFD_EXPORT uint64_t uffd_source_get_size(const struct uffd_source *src)
{
	return src ? uffd_source_size(src) : 0;
}

uint64_t uffd_source_size(const struct uffd_source *src)
{
	switch (src->kind) {
	case UFFD_SOURCE_BUFFER:
	case UFFD_SOURCE_MOVE: return src->buf_len;
	case UFFD_SOURCE_FD: return src->fd_len;
	default: return UINT64_MAX;
	}
}

/* pread until len bytes or end of file; the rest is zero-filled. */
static int read_file(const struct uffd_source *src, uint64_t off,
		     unsigned char *dst, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(src->fd, dst + got, len - got,
				  (off_t)(src->fd_offset + off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	memset(dst + got, 0, len - got);
	return 0;
}

int uffd_source_read(const struct uffd_source *src, uint64_t off, void *dst,
		     size_t len)
{
	uint64_t size = uffd_source_size(src);
	size_t avail = off >= size ? 0 : (size_t)(size - off < len ? size - off
								     : len);

	switch (src->kind) {
	case UFFD_SOURCE_BUFFER:
		memcpy(dst, src->buf + off, avail);
		memset((unsigned char *)dst + avail, 0, len - avail);
		return 0;
	case UFFD_SOURCE_FD:
		memset((unsigned char *)dst + avail, 0, len - avail);
		return avail ? read_file(src, off, dst, avail) : 0;
	case UFFD_SOURCE_ZERO:
		memset(dst, 0, len);
		return 0;
	default:
		return -ENOTSUP;
	}
}

UFFD_EXPORT uint64_t uffd_fetch_get_offset(const struct uffd_fetch *fetch)
{
	return fetch ? fetch->offset : 0;
}

UFFD_EXPORT size_t uffd_fetch_get_length(const struct uffd_fetch *fetch)
{
	return fetch ? fetch->len : 0;
}

UFFD_EXPORT void *uffd_fetch_get_buffer(struct uffd_fetch *fetch)
{
	return fetch ? fetch->buf : NULL;
}

UFFD_EXPORT bool uffd_fetch_is_urgent(const struct uffd_fetch *fetch)
{
	return fetch && fetch->urgent;
}

UFFD_EXPORT void uffd_fetch_complete(struct uffd_fetch *fetch, int result)
{
	if (fetch && fetch->done)
		fetch->done(fetch, result > 0 ? 0 : result);
}
