// SPDX-License-Identifier: MIT
/*
 * uffd_range_classify: each kind of mapping the test makes itself comes
 * back as the right backend and page size; ranges over several mappings
 * report how many and whether they differ; bad ranges and holes give their
 * errno. Hugetlb kinds need huge pages, reserved by an unchecked fixture
 * (runner process) so they are given back even when a test fails.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "helpers.h"
#include "libuffd.h"

#define HUGE_SZ ((size_t)2 << 20)
#define TMPFS_MAGIC_ 0x01021994

#ifndef SYS_memfd_secret
#define SYS_memfd_secret 447
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

/* KVM guest_memfd, defined here (the system <linux/kvm.h> is older). */
struct test_kvm_guest_memfd {
	uint64_t size;
	uint64_t flags;
	uint64_t reserved[6];
};
#define TEST_KVM_CREATE_VM _IO(0xAE, 0x01)
#define TEST_KVM_CREATE_GUEST_MEMFD \
	_IOWR(0xAE, 0xd4, struct test_kvm_guest_memfd)
#define TEST_GUEST_MEMFD_FLAG_MMAP (UINT64_C(1) << 0)

/* Classifies [p, p+len), which must be one mapping of backend want with
 * pages of page_size. */
static void expect_one(const void *p, size_t len, enum uffd_backend want,
		       size_t page_size)
{
	struct uffd_range_info info;
	int ret;

	memset(&info, 0xa5, sizeof(info));
	ret = uffd_range_classify(p, len, &info);
	ck_assert_msg(ret == 0, "classify %p: %d %s", p, ret,
		      uffd_last_error());
	ck_assert_msg(info.backend == want, "%p: classified as %s, expected %s",
		      p, uffd_backend_name(info.backend) ?
			     uffd_backend_name(info.backend) : "?",
		      uffd_backend_name(want));
	ck_assert_uint_eq(info.page_size, page_size);
	ck_assert_uint_eq(info.nr_mappings, 1);
	ck_assert(!info.mixed);
	/* The kernel may merge the mapping with a like neighbour. */
	ck_assert_uint_ge(info.first_end, (uintptr_t)p + len);
}

static void *map_or_fail(size_t len, int flags, int fd)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, fd, 0);

	ck_assert_msg(p != MAP_FAILED, "mmap: %s", strerror(errno));
	return p;
}

/* An unlinked file of len bytes in dir, which must (not) be tmpfs. */
static int temp_file(const char *dir, bool want_tmpfs, size_t len)
{
	char path[256];
	struct statfs sf;
	int fd;

	ck_assert_msg(statfs(dir, &sf) == 0, "statfs %s: %s", dir,
		      strerror(errno));
	ck_assert_msg((sf.f_type == TMPFS_MAGIC_) == want_tmpfs,
		      "%s is %s tmpfs", dir, want_tmpfs ? "not" : "");
	snprintf(path, sizeof(path), "%s/test-classify-XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	ck_assert_msg(fd >= 0, "mkostemp %s: %s", path, strerror(errno));
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)len), 0);
	return fd;
}

START_TEST(anon_private)
{
	const size_t len = 2 * test_page();
	void *p = map_anon(len);

	expect_one(p, len, UFFD_BACKEND_ANON_PRIVATE, test_page());
	munmap(p, len);
}
END_TEST

START_TEST(anon_shared)
{
	const size_t len = 2 * test_page();
	void *p = map_anon_shared(len);

	expect_one(p, len, UFFD_BACKEND_ANON_SHARED, test_page());
	munmap(p, len);
}
END_TEST

START_TEST(memfd_shared_and_private)
{
	const size_t len = 2 * test_page();
	int fd = make_memfd(len);
	void *s = map_fd(fd, len, true);
	void *p = map_fd(fd, len, false);

	expect_one(s, len, UFFD_BACKEND_MEMFD_SHARED, test_page());
	expect_one(p, len, UFFD_BACKEND_MEMFD_PRIVATE, test_page());
	munmap(s, len);
	munmap(p, len);
	close(fd);
}
END_TEST

START_TEST(tmpfs_file)
{
	const size_t len = 2 * test_page();
	int fd = temp_file("/dev/shm", true, len);
	void *s = map_fd(fd, len, true);
	void *p = map_fd(fd, len, false);

	expect_one(s, len, UFFD_BACKEND_TMPFS_FILE, test_page());
	/* A private mapping of a shmem file is what memfd-private is. */
	expect_one(p, len, UFFD_BACKEND_MEMFD_PRIVATE, test_page());
	munmap(s, len);
	munmap(p, len);
	close(fd);
}
END_TEST

START_TEST(disk_file)
{
	const size_t len = 2 * test_page();
	int fd = temp_file("/var/tmp", false, len);
	void *s = map_fd(fd, len, true);
	void *p = map_fd(fd, len, false);

	expect_one(s, len, UFFD_BACKEND_DISK_FILE, test_page());
	expect_one(p, len, UFFD_BACKEND_DISK_FILE, test_page());
	munmap(s, len);
	munmap(p, len);
	close(fd);
}
END_TEST

START_TEST(sysv_shm)
{
	const size_t len = 2 * test_page();
	int id = shmget(IPC_PRIVATE, len, IPC_CREAT | 0600);
	void *p;

	ck_assert_msg(id >= 0, "shmget: %s", strerror(errno));
	p = shmat(id, NULL, 0);
	ck_assert_int_eq(shmctl(id, IPC_RMID, NULL), 0);
	ck_assert_msg(p != (void *)-1, "shmat: %s", strerror(errno));
	expect_one(p, len, UFFD_BACKEND_SYSV_SHM, test_page());
	ck_assert_int_eq(shmdt(p), 0);
}
END_TEST

START_TEST(memfd_secret)
{
	const size_t len = 2 * test_page();
	int fd = (int)syscall(SYS_memfd_secret, O_CLOEXEC);
	void *p;

	if (fd < 0) {
		printf("SKIP: memfd_secret: %s\n", strerror(errno));
		return;
	}
	ck_assert_int_eq(ftruncate(fd, (off_t)len), 0);
	p = map_fd(fd, len, true);
	expect_one(p, len, UFFD_BACKEND_MEMFD_SECRET, test_page());
	munmap(p, len);
	close(fd);
}
END_TEST

START_TEST(dev_zero)
{
	const size_t len = 2 * test_page();
	int fd = open("/dev/zero", O_RDWR | O_CLOEXEC);
	void *p, *s;

	ck_assert_msg(fd >= 0, "/dev/zero: %s", strerror(errno));
	p = map_fd(fd, len, false);
	s = map_fd(fd, len, true);
	expect_one(p, len, UFFD_BACKEND_DEV_ZERO_PRIVATE, test_page());
	/* A shared mapping of /dev/zero is turned into shmem. */
	expect_one(s, len, UFFD_BACKEND_ANON_SHARED, test_page());
	munmap(p, len);
	munmap(s, len);
	close(fd);
}
END_TEST

START_TEST(guest_memfd)
{
	const size_t len = 2 * test_page();
	struct test_kvm_guest_memfd args = {
		.size = len, .flags = TEST_GUEST_MEMFD_FLAG_MMAP
	};
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC), vm, fd;
	void *p;

	if (kvm < 0) {
		printf("SKIP: guest_memfd: /dev/kvm: %s\n", strerror(errno));
		return;
	}
	vm = ioctl(kvm, TEST_KVM_CREATE_VM, 0);
	close(kvm);
	if (vm < 0) {
		printf("SKIP: guest_memfd: KVM_CREATE_VM: %s\n",
		       strerror(errno));
		return;
	}
	fd = ioctl(vm, TEST_KVM_CREATE_GUEST_MEMFD, &args);
	if (fd < 0) {
		printf("SKIP: guest_memfd: KVM_CREATE_GUEST_MEMFD: %s\n",
		       strerror(errno));
		close(vm);
		return;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		printf("SKIP: guest_memfd: mmap: %s\n", strerror(errno));
	} else {
		expect_one(p, len, UFFD_BACKEND_GUEST_MEMFD, test_page());
		munmap(p, len);
	}
	close(fd);
	close(vm);
}
END_TEST

/* ---- hugetlb ---- */

START_TEST(hugetlb_anon)
{
	REQUIRE_HUGEPAGES();
	void *p = map_or_fail(HUGE_SZ,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1);
	void *s = map_or_fail(HUGE_SZ,
			      MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB, -1);

	expect_one(p, HUGE_SZ, UFFD_BACKEND_HUGETLB_PRIVATE, HUGE_SZ);
	expect_one(s, HUGE_SZ, UFFD_BACKEND_HUGETLB_SHARED, HUGE_SZ);
	munmap(p, HUGE_SZ);
	munmap(s, HUGE_SZ);
}
END_TEST

START_TEST(hugetlb_memfd)
{
	REQUIRE_HUGEPAGES();
	int fd = memfd_create("test-classify-huge", MFD_CLOEXEC | MFD_HUGETLB);
	void *s, *p;

	ck_assert_msg(fd >= 0, "memfd_create(MFD_HUGETLB): %s",
		      strerror(errno));
	ck_assert_int_eq(ftruncate(fd, (off_t)HUGE_SZ), 0);
	s = map_fd(fd, HUGE_SZ, true);
	p = map_fd(fd, HUGE_SZ, false);
	expect_one(s, HUGE_SZ, UFFD_BACKEND_MEMFD_HUGETLB_SHARED, HUGE_SZ);
	expect_one(p, HUGE_SZ, UFFD_BACKEND_MEMFD_HUGETLB_PRIVATE, HUGE_SZ);
	munmap(s, HUGE_SZ);
	munmap(p, HUGE_SZ);
	close(fd);
}
END_TEST

START_TEST(hugetlb_sysv)
{
	REQUIRE_HUGEPAGES();
	int id = shmget(IPC_PRIVATE, HUGE_SZ, IPC_CREAT | SHM_HUGETLB | 0600);
	void *p;

	ck_assert_msg(id >= 0, "shmget(SHM_HUGETLB): %s", strerror(errno));
	p = shmat(id, NULL, 0);
	ck_assert_int_eq(shmctl(id, IPC_RMID, NULL), 0);
	ck_assert_msg(p != (void *)-1, "shmat: %s", strerror(errno));
	/* SysV with SHM_HUGETLB behaves as (and is) shared hugetlb. */
	expect_one(p, HUGE_SZ, UFFD_BACKEND_HUGETLB_SHARED, HUGE_SZ);
	ck_assert_int_eq(shmdt(p), 0);
}
END_TEST

/* ---- ranges over several mappings ---- */

START_TEST(two_kinds_are_mixed)
{
	const size_t ps = test_page();
	char *p = map_anon(2 * ps);
	int fd = make_memfd(ps);
	void *q = mmap(p + ps, ps, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_FIXED, fd, 0);
	struct uffd_range_info info;

	ck_assert_msg(q == p + ps, "mmap(MAP_FIXED): %s", strerror(errno));
	ck_assert_msg(uffd_range_classify(p, 2 * ps, &info) == 0, "%s",
		      uffd_last_error());
	ck_assert_int_eq(info.backend, UFFD_BACKEND_ANON_PRIVATE);
	ck_assert_uint_eq(info.page_size, ps);
	ck_assert_uint_eq(info.nr_mappings, 2);
	ck_assert(info.mixed);
	ck_assert_uint_eq(info.first_end, (uintptr_t)(p + ps));

	/* From the memfd page on: one mapping of the other kind. */
	expect_one(p + ps, ps, UFFD_BACKEND_MEMFD_SHARED, ps);
	/* Only the anonymous page: not mixed. */
	ck_assert_int_eq(uffd_range_classify(p, ps, &info), 0);
	ck_assert_uint_eq(info.nr_mappings, 1);
	ck_assert(!info.mixed);

	munmap(p, 2 * ps);
	close(fd);
}
END_TEST

START_TEST(two_protections_not_mixed)
{
	const size_t ps = test_page();
	char *p = map_anon(2 * ps);
	struct uffd_range_info info;

	ck_assert_int_eq(mprotect(p + ps, ps, PROT_READ), 0);
	ck_assert_msg(uffd_range_classify(p, 2 * ps, &info) == 0, "%s",
		      uffd_last_error());
	ck_assert_int_eq(info.backend, UFFD_BACKEND_ANON_PRIVATE);
	ck_assert_uint_eq(info.page_size, ps);
	ck_assert_uint_eq(info.nr_mappings, 2);
	ck_assert(!info.mixed);
	ck_assert_uint_eq(info.first_end, (uintptr_t)(p + ps));
	munmap(p, 2 * ps);
}
END_TEST

START_TEST(huge_and_small_are_mixed)
{
	REQUIRE_HUGEPAGES();
	const size_t ps = test_page();
	/* A window of address space, reserved first so nothing else can take
	 * the slot after the huge page; both mappings are placed inside it. */
	char *win = map_or_fail(3 * HUGE_SZ, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *h = (char *)(((uintptr_t)win + HUGE_SZ - 1) & ~(HUGE_SZ - 1));
	void *a;
	struct uffd_range_info info;

	ck_assert_ptr_eq(mmap(h, HUGE_SZ, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
				      MAP_FIXED, -1, 0),
			 h);
	a = mmap(h + HUGE_SZ, ps, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ck_assert_ptr_eq(a, h + HUGE_SZ);
	ck_assert_msg(uffd_range_classify(h, HUGE_SZ + ps, &info) == 0, "%s",
		      uffd_last_error());
	ck_assert_int_eq(info.backend, UFFD_BACKEND_HUGETLB_PRIVATE);
	ck_assert_uint_eq(info.page_size, HUGE_SZ);
	ck_assert_uint_eq(info.nr_mappings, 2);
	ck_assert(info.mixed);
	ck_assert_uint_eq(info.first_end, (uintptr_t)(h + HUGE_SZ));
	munmap(win, 3 * HUGE_SZ); /* the window and both mappings in it */
}
END_TEST

/* ---- errors ---- */

#define HOLE_BASE ((void *)0x300000000000UL)

START_TEST(errors)
{
	const size_t ps = test_page();
	char *p = map_anon(ps);
	struct uffd_range_info info;
	char *base;

	ck_assert_uffd_err(uffd_range_classify(p, ps, NULL), EINVAL, "NULL");
	ck_assert_uffd_err(uffd_range_classify(p, 0, &info), EINVAL,
			   "length 0");
	ck_assert_uffd_err(uffd_range_classify((void *)(UINTPTR_MAX & ~(ps - 1)),
					       2 * ps, &info),
			   EINVAL, "wraps");

	/* A hole at a fixed address no allocator picks on its own. */
	base = mmap(HOLE_BASE, 3 * ps, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	ck_assert_msg(base == HOLE_BASE, "mmap at %p: %s", HOLE_BASE,
		      base == MAP_FAILED ? strerror(errno) : "elsewhere");
	ck_assert_int_eq(munmap(base + ps, ps), 0);
	ck_assert_uffd_err(uffd_range_classify(base, 3 * ps, &info), ENOMEM,
			   "nothing is mapped");
	ck_assert_uffd_err(uffd_range_classify(base + ps, ps, &info), ENOMEM,
			   "nothing is mapped");
	/* Each side of the hole on its own is fine. */
	expect_one(base, ps, UFFD_BACKEND_ANON_PRIVATE, ps);
	expect_one(base + 2 * ps, ps, UFFD_BACKEND_ANON_PRIVATE, ps);

	munmap(base, ps);
	munmap(base + 2 * ps, ps);
	munmap(p, ps);
}
END_TEST

static Suite *classify_suite(void)
{
	Suite *s = suite_create("classify");
	TCase *tc;

	tc = tcase_create("kinds");
	tcase_add_test(tc, anon_private);
	tcase_add_test(tc, anon_shared);
	tcase_add_test(tc, memfd_shared_and_private);
	tcase_add_test(tc, tmpfs_file);
	tcase_add_test(tc, disk_file);
	tcase_add_test(tc, sysv_shm);
	tcase_add_test(tc, memfd_secret);
	tcase_add_test(tc, dev_zero);
	tcase_add_test(tc, guest_memfd);
	suite_add_tcase(s, tc);

	tc = tcase_create("hugetlb");
	hugetlb_fixture_add(tc, 4);
	tcase_add_test(tc, hugetlb_anon);
	tcase_add_test(tc, hugetlb_memfd);
	tcase_add_test(tc, hugetlb_sysv);
	tcase_add_test(tc, huge_and_small_are_mixed);
	suite_add_tcase(s, tc);

	tc = tcase_create("ranges");
	tcase_add_test(tc, two_kinds_are_mixed);
	tcase_add_test(tc, two_protections_not_mixed);
	tcase_add_test(tc, errors);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(classify_suite());
}
