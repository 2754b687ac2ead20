// SPDX-License-Identifier: MIT
/*
 * The reason behind the last failure, kept per thread so concurrent callers
 * never see each other's messages (and no lock is needed).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "internal.h"

static _Thread_local const char *last_reason;
static _Thread_local char reason_buf[512];

int uffd_err(int err, const char *reason)
{
	last_reason = reason;
	return -err;
}

int uffd_errf(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason_buf, sizeof(reason_buf), fmt, ap);
	va_end(ap);
	last_reason = reason_buf;
	return -err;
}

UFFD_EXPORT const char *uffd_last_error(void)
{
	return last_reason ? last_reason : "no error";
}

UFFD_EXPORT const char *uffd_version(void)
{
	return LIBUFFD_VERSION_STRING;
}

size_t uffd_page_size(void)
{
	/* Asked on every fault. The answer is fixed for the life of the
	 * process, so it is kept after the first call; a relaxed atomic makes
	 * the (idempotent) first store race-free and signal-safe. */
	static _Atomic size_t page;
	size_t p = atomic_load_explicit(&page, memory_order_relaxed);

	if (!p) {
		p = (size_t)sysconf(_SC_PAGESIZE);
		atomic_store_explicit(&page, p, memory_order_relaxed);
	}
	return p;
}

int uffd_range_from(const void *addr, size_t len, uintptr_t *start,
		    uintptr_t *end)
{
	uintptr_t s = (uintptr_t)addr;

	if (len == 0)
		return uffd_err(EINVAL, "the range is empty (length 0)");
	if (s + len < s)
		return uffd_errf(EINVAL,
				 "the range at %#lx of %zu bytes wraps around "
				 "the end of the address space",
				 (unsigned long)s, len);
	*start = s;
	*end = s + len;
	return 0;
}
