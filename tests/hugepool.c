// SPDX-License-Identifier: MIT
/* Borrowing huge pages from the system pool: see hugepool.h. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <unistd.h>

#include "hugepool.h"

#define NR_HUGEPAGES "/proc/sys/vm/nr_hugepages"
#define POOL_LOCK "/tmp/libuffd-tests-hugetlb.lock"

static long added = -1; /* pages this process added, -1: none */
static int lock_fd = -1;

static long read_long(const char *path)
{
	FILE *f = fopen(path, "re");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static bool write_long(const char *path, long v)
{
	FILE *f = fopen(path, "we");
	bool ok;

	if (!f)
		return false;
	ok = fprintf(f, "%ld\n", v) > 0;
	return fclose(f) == 0 && ok;
}

static long free_pages(void)
{
	return read_long("/sys/kernel/mm/hugepages/hugepages-2048kB/"
			 "free_hugepages");
}

bool hugepool_reserve(long n, char *why, size_t size)
{
	long before;

	if (geteuid() != 0) {
		snprintf(why, size, "not root, cannot reserve %ld huge pages",
			 n);
		return false;
	}
	/* held until hugepool_release(), or until the process ends */
	lock_fd = open(POOL_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock_fd >= 0)
		flock(lock_fd, LOCK_EX);
	before = read_long(NR_HUGEPAGES);
	if (before < 0 || !write_long(NR_HUGEPAGES, before + n)) {
		snprintf(why, size, "cannot write " NR_HUGEPAGES);
		hugepool_release();
		return false;
	}
	added = read_long(NR_HUGEPAGES) - before;
	if (free_pages() < n) {
		snprintf(why, size, "the kernel could only reserve %ld of %ld "
			 "huge pages", added, n);
		hugepool_release();
		return false;
	}
	return true;
}

void hugepool_release(void)
{
	long now;

	if (added > 0) {
		now = read_long(NR_HUGEPAGES);
		if (now >= added)
			write_long(NR_HUGEPAGES, now - added);
	}
	added = -1;
	if (lock_fd >= 0)
		close(lock_fd); /* releases the flock */
	lock_fd = -1;
}
