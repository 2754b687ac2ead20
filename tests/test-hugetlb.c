// SPDX-License-Identifier: MIT
/*
 * Hugetlb (2 MiB pages): registration alignment, COPY of whole huge pages,
 * no ZEROPAGE, and MINOR faults on a hugetlb memfd. Huge pages are reserved
 * by an unchecked fixture, which runs in the runner process, so they are
 * given back even when a test fails; without them the tests skip.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "helpers.h"
#include "libuffd.h"

#define HUGE_SZ ((size_t)2 << 20)

/* A private anonymous hugetlb mapping of len bytes, 2 MiB aligned. */
static unsigned char *map_huge(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);

	ck_assert_msg(p != MAP_FAILED, "mmap(MAP_HUGETLB): %s",
		      strerror(errno));
	ck_assert_uint_eq((uintptr_t)p % HUGE_SZ, 0);
	return p;
}

START_TEST(page_size_matches_meminfo)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[128];
	long kb = -1;

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Hugepagesize: %ld kB", &kb) == 1)
			break;
	fclose(f);
	ck_assert_msg(kb > 0, "no Hugepagesize in /proc/meminfo");
	ck_assert_uint_eq(hugetlb_page_size(), HUGE_SZ);
	ck_assert_uint_eq(hugetlb_page_size(), (size_t)kb * 1024);
}
END_TEST

START_TEST(missing_copy_full_huge_page)
{
	REQUIRE_HUGEPAGES();
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_huge(HUGE_SZ);
	unsigned char *src = map_anon(HUGE_SZ);
	struct uffd_event ev;
	struct toucher t;
	uint64_t ops = 0;
	size_t done = 0;

	ck_assert(uffd_handle_get_features(h) & UFFD_FEAT_MISSING_HUGETLBFS);
	for (size_t i = 0; i < HUGE_SZ; i++)
		src[i] = (unsigned char)(i * 7 + 1);
	ck_assert_msg(uffd_handle_register(h, p, HUGE_SZ, UFFD_MODE_MISSING,
					   &ops) == 0,
		      "register: %s", uffd_last_error());
	ck_assert(ops & UFFD_OP_COPY);
	ck_assert(!(ops & UFFD_OP_ZEROPAGE));

	/* Touch a byte well inside the huge page. */
	toucher_start(&t, p + 5 * 4096 + 3, false, 0);
	wait_event(h, &ev);
	ck_assert_uint_eq(ev.type, UFFD_EVENT_TYPE_PAGEFAULT);
	/* Without EXACT_ADDRESS the address is the huge page's start. */
	ck_assert_msg(ev.fault.address == (uintptr_t)p,
		      "fault at %#lx, expected the huge page %p",
		      (unsigned long)ev.fault.address, (void *)p);
	ck_assert(!(ev.flags & UFFD_FAULT_WRITE));

	ck_assert_msg(uffd_handle_copy(h, p, src, HUGE_SZ, 0, &done) == 0,
		      "copy: %s", uffd_last_error());
	ck_assert_uint_eq(done, HUGE_SZ);
	toucher_join(&t);
	ck_assert_uint_eq(t.seen, src[5 * 4096 + 3]);
	ck_assert_mem_eq(p, src, HUGE_SZ);

	uffd_handle_free(h);
	munmap(src, HUGE_SZ);
	munmap(p, HUGE_SZ);
}
END_TEST

START_TEST(register_misaligned_refused)
{
	REQUIRE_HUGEPAGES();
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_huge(2 * HUGE_SZ);
	unsigned char *src = map_anon(4096);
	size_t done = 1;

	/* 4 KiB aligned, not 2 MiB aligned: length, then address. */
	ck_assert_uffd_err(uffd_handle_register(h, p, 4096, UFFD_MODE_MISSING,
						NULL),
			   EINVAL, "2048 KiB");
	ck_assert_uffd_err(uffd_handle_register(h, p, HUGE_SZ + 4096,
						UFFD_MODE_MISSING, NULL),
			   EINVAL, "2048 KiB");
	ck_assert_uffd_err(uffd_handle_register(h, p + 4096, HUGE_SZ,
						UFFD_MODE_MISSING, NULL),
			   EINVAL, "2048 KiB");
	/* Nothing was registered by the refusals. */
	ck_assert_int_eq(uffd_handle_get_range_ops(h, p, HUGE_SZ, NULL, NULL),
			 -ENOENT);

	ck_assert_msg(uffd_handle_register(h, p, 2 * HUGE_SZ,
					   UFFD_MODE_MISSING, NULL) == 0,
		      "register: %s", uffd_last_error());
	/* A 4 KiB COPY is refused by the library before the kernel. */
	ck_assert_uffd_err(uffd_handle_copy(h, p, src, 4096, 0, &done), EINVAL,
			   "2048 KiB");
	ck_assert_uint_eq(done, 0);
	ck_assert_uffd_err(uffd_handle_copy(h, p + HUGE_SZ - 4096, src, 4096,
					    0, NULL),
			   EINVAL, "2048 KiB");
	/* Unregistering needs the same alignment. */
	ck_assert_uffd_err(uffd_handle_unregister(h, p, 4096), EINVAL,
			   "2048 KiB");
	ck_assert_msg(uffd_handle_unregister(h, p, 2 * HUGE_SZ) == 0,
		      "unregister: %s", uffd_last_error());

	uffd_handle_free(h);
	munmap(src, 4096);
	munmap(p, 2 * HUGE_SZ);
}
END_TEST

START_TEST(zeropage_not_supported)
{
	REQUIRE_HUGEPAGES();
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_huge(HUGE_SZ);
	uint64_t ops = 0;
	size_t done = 1;

	ck_assert_msg(uffd_handle_register(h, p, HUGE_SZ, UFFD_MODE_MISSING,
					   &ops) == 0,
		      "register: %s", uffd_last_error());
	ck_assert(!(ops & UFFD_OP_ZEROPAGE));
	ck_assert_uffd_err(uffd_handle_zeropage(h, p, HUGE_SZ, 0, &done),
			   ENOTSUP, "ZEROPAGE");
	ck_assert_uint_eq(done, 0);

	uffd_handle_free(h);
	munmap(p, HUGE_SZ);
}
END_TEST

START_TEST(memfd_minor_continue)
{
	REQUIRE_HUGEPAGES();
	struct uffd_handle *h = open_handle();
	int fd = memfd_create("libuffd-huge", MFD_HUGETLB | MFD_CLOEXEC);
	unsigned char *reg_map, *fill;
	struct uffd_event ev;
	struct toucher t;
	uint64_t ops = 0;
	size_t done = 0;

	ck_assert_msg(fd >= 0, "memfd_create(MFD_HUGETLB): %s",
		      strerror(errno));
	ck_assert_int_eq(ftruncate(fd, (off_t)HUGE_SZ), 0);
	reg_map = map_fd(fd, HUGE_SZ, true);
	fill = map_fd(fd, HUGE_SZ, true);
	ck_assert(uffd_handle_get_features(h) & UFFD_FEAT_MINOR_HUGETLBFS);

	ck_assert_msg(uffd_handle_register(h, reg_map, HUGE_SZ,
					   UFFD_MODE_MINOR, &ops) == 0,
		      "register: %s", uffd_last_error());
	ck_assert(ops & UFFD_OP_CONTINUE);
	/* Fill the page cache through the second mapping. */
	for (size_t i = 0; i < HUGE_SZ; i++)
		fill[i] = (unsigned char)(i * 13 + 5);

	toucher_start(&t, reg_map + HUGE_SZ - 1, false, 0);
	wait_event(h, &ev);
	ck_assert_uint_eq(ev.type, UFFD_EVENT_TYPE_PAGEFAULT);
	ck_assert_msg(ev.fault.address == (uintptr_t)reg_map,
		      "fault at %#lx, expected the huge page %p",
		      (unsigned long)ev.fault.address, (void *)reg_map);
	ck_assert_msg(ev.flags & UFFD_FAULT_MINOR, "flags %#x lack MINOR",
		      ev.flags);
	ck_assert_msg(uffd_handle_continue(h, reg_map, HUGE_SZ, 0, &done) == 0,
		      "continue: %s", uffd_last_error());
	ck_assert_uint_eq(done, HUGE_SZ);
	toucher_join(&t);
	ck_assert_uint_eq(t.seen, fill[HUGE_SZ - 1]);
	ck_assert_mem_eq(reg_map, fill, HUGE_SZ);

	uffd_handle_free(h);
	munmap(fill, HUGE_SZ);
	munmap(reg_map, HUGE_SZ);
	close(fd);
}
END_TEST

static Suite *hugetlb_suite(void)
{
	Suite *s = suite_create("hugetlb");
	TCase *tc;

	tc = tcase_create("page-size");
	tcase_add_test(tc, page_size_matches_meminfo);
	suite_add_tcase(s, tc);

	tc = tcase_create("huge-pages");
	hugetlb_fixture_add(tc, 4);
	tcase_add_test(tc, missing_copy_full_huge_page);
	tcase_add_test(tc, register_misaligned_refused);
	tcase_add_test(tc, zeropage_not_supported);
	tcase_add_test(tc, memfd_minor_continue);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(hugetlb_suite());
}
