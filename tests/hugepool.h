/* SPDX-License-Identifier: MIT */
/*
 * Borrowing 2 MiB huge pages from the system-wide pool
 * (/proc/sys/vm/nr_hugepages) and giving back exactly what was added.
 * Shared by the test helpers and uffd-bench, so that programs running at
 * the same time (meson runs tests in parallel) take the same lock file
 * from reserve to release and never count each other's pages as their own.
 * No Check dependency.
 */
#ifndef LIBUFFD_HUGEPOOL_H
#define LIBUFFD_HUGEPOOL_H

#include <stdbool.h>
#include <stddef.h>

/* Adds n pages to the pool and checks that n are free; false with the
 * reason in why (not root, the sysctl is not writable, the kernel found
 * fewer pages), having given back whatever it added. */
bool hugepool_reserve(long n, char *why, size_t size);
/* Gives back what hugepool_reserve() added and drops the lock; harmless
 * when nothing is reserved. */
void hugepool_release(void);

#endif
