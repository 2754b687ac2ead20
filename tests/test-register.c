// SPDX-License-Identifier: MIT
/* Registration: the kernel's answer passed through, the handle's table, and
 * every bad input refused with its errno and reason. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "helpers.h"

/* The kernel's own answer for a mapping, from a raw fd the test opens
 * itself: the independent reference for what libuffd reports. */
static uint64_t raw_register_ioctls(void *addr, size_t len, uint64_t mode)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.range = { (uintptr_t)addr, len },
		.mode = mode,
	};
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ioctl(fd, UFFDIO_API, &api), 0);
	ck_assert_int_eq(ioctl(fd, UFFDIO_REGISTER, &reg), 0);
	close(fd); /* closing drops the registration */
	return reg.ioctls;
}

/* VmFlags of the mapping containing addr, read independently of libuffd. */
static bool vma_has_flag(void *addr, const char *flag)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	unsigned long s, e;
	bool inside = false, found = false;
	char line[512];

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') &&
		    line[0] != 'V') {
			inside = (uintptr_t)addr >= s && (uintptr_t)addr < e;
			continue;
		}
		if (inside && !strncmp(line, "VmFlags:", 8)) {
			char pat[8];

			snprintf(pat, sizeof(pat), " %s", flag);
			found = strstr(line + 8, pat) != NULL;
			break;
		}
	}
	fclose(f);
	return found;
}

START_TEST(test_register_passes_kernel_answer)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle();
	char *a = map_anon(4 * ps), *b = map_anon(4 * ps);
	uint64_t ops = 0, want = raw_register_ioctls(b, 4 * ps, UFFD_MODE_MISSING);
	uint64_t got_ops, got_modes;

	ck_assert_int_eq(uffd_handle_register(h, a, 4 * ps, UFFD_MODE_MISSING,
					      &ops), 0);
	ck_assert_uint_eq(ops, want);
	ck_assert(ops & UFFD_OP_COPY);
	ck_assert(ops & UFFD_OP_ZEROPAGE);
	ck_assert(!(ops & UFFD_OP_CONTINUE));
	ck_assert(vma_has_flag(a, "um"));
	ck_assert_int_eq(uffd_handle_get_range_ops(h, a, 4 * ps, &got_ops,
						   &got_modes), 0);
	ck_assert_uint_eq(got_ops, ops);
	ck_assert_uint_eq(got_modes, UFFD_MODE_MISSING);
	/* ops may be NULL */
	ck_assert_int_eq(uffd_handle_register(h, b, ps, UFFD_MODE_MISSING, NULL),
			 0);
	uffd_handle_free(h);
	munmap(a, 4 * ps);
	munmap(b, 4 * ps);
}
END_TEST

START_TEST(test_register_modes_combinations)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle();
	int memfd = make_memfd(ps);
	char *anon = map_anon(ps), *shm = map_fd(memfd, ps, true);
	uint64_t ops, modes, want;

	want = raw_register_ioctls(anon, ps, UFFD_MODE_MISSING | UFFD_MODE_WP);
	ck_assert_int_eq(uffd_handle_register(h, anon, ps,
					      UFFD_MODE_MISSING | UFFD_MODE_WP,
					      &ops), 0);
	ck_assert(ops & UFFD_OP_WRITEPROTECT);
	ck_assert_uint_eq(ops, want);
	ck_assert_int_eq(uffd_handle_register(h, shm, ps, UFFD_MODE_KNOWN, &ops),
			 0);
	ck_assert(ops & UFFD_OP_CONTINUE);
	ck_assert(ops & UFFD_OP_WRITEPROTECT);
	ck_assert_int_eq(uffd_handle_get_range_ops(h, shm, ps, NULL, &modes), 0);
	ck_assert_uint_eq(modes, UFFD_MODE_KNOWN);
	ck_assert(vma_has_flag(shm, "ui"));
	uffd_handle_free(h);
	munmap(anon, ps);
	munmap(shm, ps);
	close(memfd);
}
END_TEST

START_TEST(test_reregister_replaces_modes)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle();
	char *a = map_anon(2 * ps);
	uint64_t ops, modes;

	ck_assert_int_eq(uffd_handle_register(h, a, 2 * ps, UFFD_MODE_MISSING,
					      NULL), 0);
	ck_assert_int_eq(uffd_handle_register(h, a, ps, UFFD_MODE_WP, &ops), 0);
	ck_assert_int_eq(uffd_handle_get_range_ops(h, a, ps, NULL, &modes), 0);
	ck_assert_uint_eq(modes, UFFD_MODE_WP);
	ck_assert_int_eq(uffd_handle_get_range_ops(h, a + ps, ps, NULL, &modes),
			 0);
	ck_assert_uint_eq(modes, UFFD_MODE_MISSING);
	/* spanning both: the intersection (no common mode) */
	ck_assert_int_eq(uffd_handle_get_range_ops(h, a, 2 * ps, NULL, &modes),
			 0);
	ck_assert_uint_eq(modes, 0);
	uffd_handle_free(h);
	munmap(a, 2 * ps);
}
END_TEST

START_TEST(test_unregister_middle_splits)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle();
	char *a = map_anon(4 * ps);
	uint64_t ops;

	ck_assert_int_eq(uffd_handle_register(h, a, 4 * ps, UFFD_MODE_MISSING,
					      NULL), 0);
	ck_assert_int_eq(uffd_handle_unregister(h, a + ps, 2 * ps), 0);
	ck_assert_int_eq(uffd_handle_get_range_ops(h, a, ps, &ops, NULL), 0);
	ck_assert_int_eq(uffd_handle_get_range_ops(h, a + 3 * ps, ps, &ops,
						   NULL), 0);
	ck_assert_uffd_err(uffd_handle_get_range_ops(h, a + ps, ps, &ops, NULL),
			   ENOENT, "not registered");
	ck_assert_uffd_err(uffd_handle_get_range_ops(h, a, 4 * ps, &ops, NULL),
			   ENOENT, "not registered");
	/* the kernel agrees: the middle lost its registration */
	ck_assert(!vma_has_flag(a + ps, "um"));
	ck_assert(vma_has_flag(a, "um"));
	/* a touch of the unregistered middle is an ordinary fault */
	a[ps] = 7;
	ck_assert_int_eq(a[ps], 7);
	uffd_handle_free(h);
	munmap(a, 4 * ps);
}
END_TEST

START_TEST(test_register_bad_input)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle();
	char *a = map_anon(4 * ps);

	ck_assert_uffd_err(uffd_handle_register(NULL, a, ps, UFFD_MODE_MISSING,
						NULL), EINVAL, "NULL");
	ck_assert_uffd_err(uffd_handle_register(h, a, 0, UFFD_MODE_MISSING,
						NULL), EINVAL, "length 0");
	ck_assert_uffd_err(uffd_handle_register(h, a + 1, ps, UFFD_MODE_MISSING,
						NULL), EINVAL, "page size");
	ck_assert_uffd_err(uffd_handle_register(h, a, ps + 1, UFFD_MODE_MISSING,
						NULL), EINVAL, "page size");
	ck_assert_uffd_err(uffd_handle_register(h, (void *)(UINTPTR_MAX - ps + 1),
						2 * ps, UFFD_MODE_MISSING, NULL),
			   EINVAL, "wraps");
	ck_assert_uffd_err(uffd_handle_register(h, a, ps, 0, NULL), EINVAL,
			   "MISSING, WP, MINOR");
	ck_assert_uffd_err(uffd_handle_register(h, a, ps, UINT64_C(1) << 3,
						NULL), EINVAL,
			   "MISSING, WP, MINOR");
	/* nothing was registered by any of these */
	ck_assert(!vma_has_flag(a, "um"));
	uffd_handle_free(h);
	munmap(a, 4 * ps);
}
END_TEST

/*
 * Three pages with the middle one unmapped, placed far below the area the
 * kernel's top-down allocator uses: a 4 KiB gap next to other mappings is
 * handed to the next small mmap (an allocator's, under ASan), which would
 * fill the hole behind the test's back.
 */
static char *map_with_hole(size_t ps)
{
	void *want = (void *)(uintptr_t)0x300000000000ULL;
	char *a = mmap(want, 3 * ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	ck_assert_msg(a == want, "mmap at %p: %s", want, strerror(errno));
	ck_assert_int_eq(munmap(a + ps, ps), 0);
	return a;
}

START_TEST(test_register_unmapped_hole)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle();
	char *a = map_with_hole(ps);

	ck_assert_uffd_err(uffd_handle_register(h, a, 3 * ps, UFFD_MODE_MISSING,
						NULL), ENOMEM, "nothing is mapped");
	ck_assert_uffd_err(uffd_handle_register(h, a + ps, ps, UFFD_MODE_MISSING,
						NULL), ENOMEM, "nothing is mapped");
	ck_assert_uffd_err(uffd_handle_unregister(h, a + ps, ps), ENOMEM,
			   "nothing is mapped");
	uffd_handle_free(h);
	munmap(a, 3 * ps);
}
END_TEST

START_TEST(test_register_readonly_shared)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle();
	char path[] = "/tmp/libuffd-test-roXXXXXX";
	int fd = mkstemp(path), ro;
	void *m;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)ps), 0);
	ro = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(ro, 0);
	unlink(path);
	m = mmap(NULL, ps, PROT_READ, MAP_SHARED, ro, 0);
	ck_assert_ptr_ne(m, MAP_FAILED);
	ck_assert_uffd_err(uffd_handle_register(h, m, ps, UFFD_MODE_MISSING,
						NULL), EPERM, "write access");
	munmap(m, ps);
	close(ro);
	close(fd);
	uffd_handle_free(h);
}
END_TEST

START_TEST(test_register_minor_on_anon_refused)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle();
	char *a = map_anon(ps);

	ck_assert_uffd_err(uffd_handle_register(h, a, ps, UFFD_MODE_MINOR, NULL),
			   EINVAL, "MINOR mode");
	ck_assert(strstr(uffd_last_error(), "anonymous private memory"));
	ck_assert_uffd_err(uffd_handle_get_range_ops(h, a, ps, NULL, NULL),
			   ENOENT, "not registered");
	uffd_handle_free(h);
	munmap(a, ps);
}
END_TEST

START_TEST(test_register_busy_other_handle)
{
	size_t ps = test_page();
	struct uffd_handle *h1 = open_handle(), *h2 = open_handle();
	char *a = map_anon(ps);

	ck_assert_int_eq(uffd_handle_register(h1, a, ps, UFFD_MODE_MISSING,
					      NULL), 0);
	ck_assert_uffd_err(uffd_handle_register(h2, a, ps, UFFD_MODE_MISSING,
						NULL), EBUSY, "another userfaultfd");
	uffd_handle_free(h1);
	/* once the first handle is gone, the range is free again */
	ck_assert_int_eq(uffd_handle_register(h2, a, ps, UFFD_MODE_MISSING,
					      NULL), 0);
	uffd_handle_free(h2);
	munmap(a, ps);
}
END_TEST

START_TEST(test_unregister_bad_input)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle();
	char *a = map_anon(ps);

	ck_assert_uffd_err(uffd_handle_unregister(NULL, a, ps), EINVAL, "NULL");
	ck_assert_uffd_err(uffd_handle_unregister(h, a, 0), EINVAL, "length 0");
	ck_assert_uffd_err(uffd_handle_unregister(h, a + 8, ps), EINVAL,
			   "page size");
	ck_assert_uffd_err(uffd_handle_unregister(h, (void *)(UINTPTR_MAX - ps + 1),
						  2 * ps), EINVAL, "wraps");
	ck_assert_uffd_err(uffd_handle_get_range_ops(NULL, a, ps, NULL, NULL),
			   EINVAL, "NULL");
	ck_assert_uffd_err(uffd_handle_get_range_ops(h, a, 0, NULL, NULL),
			   EINVAL, "length 0");
	uffd_handle_free(h);
	munmap(a, ps);
}
END_TEST

START_TEST(test_register_spanning_two_mappings)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle();
	char *a = map_anon(2 * ps);
	uint64_t ops;

	/* different protections split one region into two mappings */
	ck_assert_int_eq(mprotect(a + ps, ps, PROT_READ), 0);
	ck_assert_int_eq(uffd_handle_register(h, a, 2 * ps, UFFD_MODE_MISSING,
					      &ops), 0);
	ck_assert(vma_has_flag(a, "um"));
	ck_assert(vma_has_flag(a + ps, "um"));
	uffd_handle_free(h);
	munmap(a, 2 * ps);
}
END_TEST

static Suite *register_suite(void)
{
	Suite *s = suite_create("register");
	TCase *ok = tcase_create("register");
	TCase *bad = tcase_create("errors");

	tcase_add_test(ok, test_register_passes_kernel_answer);
	tcase_add_test(ok, test_register_modes_combinations);
	tcase_add_test(ok, test_reregister_replaces_modes);
	tcase_add_test(ok, test_unregister_middle_splits);
	tcase_add_test(ok, test_register_spanning_two_mappings);
	tcase_add_test(bad, test_register_bad_input);
	tcase_add_test(bad, test_register_unmapped_hole);
	tcase_add_test(bad, test_register_readonly_shared);
	tcase_add_test(bad, test_register_minor_on_anon_refused);
	tcase_add_test(bad, test_register_busy_other_handle);
	tcase_add_test(bad, test_unregister_bad_input);
	suite_add_tcase(s, ok);
	suite_add_tcase(s, bad);
	return s;
}

int main(void)
{
	return run_suite(register_suite());
}
