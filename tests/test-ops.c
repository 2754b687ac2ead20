// SPDX-License-Identifier: MIT
/* Every resolve operation against a real faulting thread, and every bad
 * input refused with its errno and reason. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

static char *filled_page(char c)
{
	char *p = map_anon(test_page());

	memset(p, c, test_page());
	return p;
}

START_TEST(test_copy_anon_read_and_write_faults)
{
	size_t ps = test_page(), done = 0;
	struct uffd_handle *h = open_handle();
	char *a = map_anon(2 * ps), *src = filled_page('x');
	struct toucher rd, wr;

	ck_assert_int_eq(uffd_handle_register(h, a, 2 * ps, UFFD_MODE_MISSING,
					      NULL), 0);
	toucher_start(&rd, a, false, 0);
	wait_fault(h, a, 0);
	ck_assert_int_eq(uffd_handle_copy(h, a, src, ps, 0, &done), 0);
	ck_assert_uint_eq(done, ps);
	toucher_join(&rd);
	ck_assert_int_eq(rd.seen, 'x');

	toucher_start(&wr, a + ps, true, 'w');
	wait_fault(h, a + ps, UFFD_FAULT_WRITE);
	ck_assert_int_eq(uffd_handle_copy(h, a + ps, src, ps, 0, NULL), 0);
	toucher_join(&wr);
	ck_assert_int_eq(wr.seen, 'w');
	ck_assert_int_eq(a[ps + 1], 'x');
	uffd_handle_free(h);
	munmap(a, 2 * ps);
	munmap(src, ps);
}
END_TEST

START_TEST(test_zeropage_anon)
{
	size_t ps = test_page(), done = 0;
	struct uffd_handle *h = open_handle();
	char *a = map_anon(ps);
	struct toucher t;

	ck_assert_int_eq(uffd_handle_register(h, a, ps, UFFD_MODE_MISSING, NULL),
			 0);
	toucher_start(&t, a, false, 0);
	wait_fault(h, a, 0);
	ck_assert_int_eq(uffd_handle_zeropage(h, a, ps, 0, &done), 0);
	ck_assert_uint_eq(done, ps);
	toucher_join(&t);
	ck_assert_int_eq(t.seen, 0);
	uffd_handle_free(h);
	munmap(a, ps);
}
END_TEST

/* MISSING faults on shared memory: anonymous shared and memfd. */
static void check_shared_missing(char *m, char *alias, size_t ps)
{
	struct uffd_handle *h = open_handle();
	char *src = filled_page('s');
	struct toucher t;

	ck_assert_int_eq(uffd_handle_register(h, m, 2 * ps, UFFD_MODE_MISSING,
					      NULL), 0);
	toucher_start(&t, m, false, 0);
	wait_fault(h, m, 0);
	ck_assert_int_eq(uffd_handle_copy(h, m, src, ps, 0, NULL), 0);
	toucher_join(&t);
	ck_assert_int_eq(t.seen, 's');
	if (alias)
		ck_assert_int_eq(alias[5], 's'); /* in the page cache */

	toucher_start(&t, m + ps, false, 0);
	wait_fault(h, m + ps, 0);
	ck_assert_int_eq(uffd_handle_zeropage(h, m + ps, ps, 0, NULL), 0);
	toucher_join(&t);
	ck_assert_int_eq(t.seen, 0);
	uffd_handle_free(h);
	munmap(src, ps);
}

START_TEST(test_copy_zeropage_memfd)
{
	size_t ps = test_page();
	int fd = make_memfd(2 * ps);
	char *m = map_fd(fd, 2 * ps, true), *alias = map_fd(fd, 2 * ps, true);

	check_shared_missing(m, alias, ps);
	munmap(m, 2 * ps);
	munmap(alias, 2 * ps);
	close(fd);
}
END_TEST

START_TEST(test_copy_zeropage_anon_shared)
{
	size_t ps = test_page();
	char *m = map_anon_shared(2 * ps);

	check_shared_missing(m, NULL, ps);
	munmap(m, 2 * ps);
}
END_TEST

START_TEST(test_continue_minor_memfd)
{
	size_t ps = test_page(), done = 0;
	struct uffd_handle *h = open_handle();
	int fd = make_memfd(ps);
	char *m = map_fd(fd, ps, true), *alias = map_fd(fd, ps, true);
	struct toucher t;

	ck_assert_int_eq(uffd_handle_register(h, m, ps, UFFD_MODE_MINOR, NULL),
			 0);
	memset(alias, 'c', ps); /* the page cache gets the page */
	toucher_start(&t, m, false, 0);
	wait_fault(h, m, UFFD_FAULT_MINOR);
	ck_assert_int_eq(uffd_handle_continue(h, m, ps, 0, &done), 0);
	ck_assert_uint_eq(done, ps);
	toucher_join(&t);
	ck_assert_int_eq(t.seen, 'c');
	uffd_handle_free(h);
	munmap(m, ps);
	munmap(alias, ps);
	close(fd);
}
END_TEST

START_TEST(test_continue_without_page_cache)
{
	size_t ps = test_page(), done = 99;
	struct uffd_handle *h = open_handle();
	int fd = make_memfd(ps);
	char *m = map_fd(fd, ps, true);

	ck_assert_int_eq(uffd_handle_register(h, m, ps, UFFD_MODE_MINOR, NULL),
			 0);
	ck_assert_uffd_err(uffd_handle_continue(h, m, ps, 0, &done), EFAULT,
			   "page cache");
	ck_assert_uint_eq(done, 0);
	uffd_handle_free(h);
	munmap(m, ps);
	close(fd);
}
END_TEST

static void check_wp_cycle(char *m, size_t ps)
{
	struct uffd_handle *h = open_handle();
	struct toucher t;

	m[0] = 1; /* populated before protection */
	ck_assert_int_eq(uffd_handle_register(h, m, ps, UFFD_MODE_WP, NULL), 0);
	ck_assert_int_eq(uffd_handle_writeprotect(h, m, ps, true, 0), 0);
	toucher_start(&t, m, true, 5);
	wait_fault(h, m, UFFD_FAULT_WP | UFFD_FAULT_WRITE);
	ck_assert_int_eq(m[0], 1); /* the write has not happened yet */
	ck_assert_int_eq(uffd_handle_writeprotect(h, m, ps, false, 0), 0);
	toucher_join(&t);
	ck_assert_int_eq(m[0], 5);
	uffd_handle_free(h);
}

START_TEST(test_writeprotect_anon)
{
	size_t ps = test_page();
	char *a = map_anon(ps);

	check_wp_cycle(a, ps);
	munmap(a, ps);
}
END_TEST

START_TEST(test_writeprotect_memfd)
{
	size_t ps = test_page();
	int fd = make_memfd(ps);
	char *m = map_fd(fd, ps, true);

	check_wp_cycle(m, ps);
	munmap(m, ps);
	close(fd);
}
END_TEST

START_TEST(test_copy_wp_flag_maps_protected)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle();
	char *a = map_anon(ps), *src = filled_page('p');
	struct toucher rd, wr;

	ck_assert_int_eq(uffd_handle_register(h, a, ps,
					      UFFD_MODE_MISSING | UFFD_MODE_WP,
					      NULL), 0);
	toucher_start(&rd, a, false, 0);
	wait_fault(h, a, 0);
	ck_assert_int_eq(uffd_handle_copy(h, a, src, ps, UFFD_OPF_WP, NULL), 0);
	toucher_join(&rd);
	ck_assert_int_eq(rd.seen, 'p');
	toucher_start(&wr, a, true, 'q');
	wait_fault(h, a, UFFD_FAULT_WP);
	ck_assert_int_eq(uffd_handle_writeprotect(h, a, ps, false, 0), 0);
	toucher_join(&wr);
	ck_assert_int_eq(a[0], 'q');
	uffd_handle_free(h);
	munmap(a, ps);
	munmap(src, ps);
}
END_TEST

START_TEST(test_dontwake_then_wake)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle();
	char *a = map_anon(ps), *src = filled_page('d');
	struct toucher t;

	ck_assert_int_eq(uffd_handle_register(h, a, ps, UFFD_MODE_MISSING, NULL),
			 0);
	toucher_start(&t, a, false, 0);
	wait_fault(h, a, 0);
	ck_assert_int_eq(fdinfo_count(h, "total"), 1);
	ck_assert_int_eq(uffd_handle_copy(h, a, src, ps, UFFD_OPF_DONTWAKE,
					  NULL), 0);
	ck_assert_int_eq(fdinfo_count(h, "total"), 1); /* still asleep */
	ck_assert_int_eq(uffd_handle_wake(h, a, ps), 0);
	ck_assert_int_eq(fdinfo_count(h, "total"), 0);
	toucher_join(&t);
	ck_assert_int_eq(t.seen, 'd');
	uffd_handle_free(h);
	munmap(a, ps);
	munmap(src, ps);
}
END_TEST

START_TEST(test_eexist_reports_progress)
{
	size_t ps = test_page(), done = 99;
	struct uffd_handle *h = open_handle();
	char *a = map_anon(2 * ps), *src = map_anon(2 * ps);

	memset(src, 'e', 2 * ps);
	ck_assert_int_eq(uffd_handle_register(h, a, 2 * ps, UFFD_MODE_MISSING,
					      NULL), 0);
	/* the second page first, as another handler would */
	ck_assert_int_eq(uffd_handle_copy(h, a + ps, src, ps, 0, &done), 0);
	/* now both: the first is done, the second exists */
	ck_assert_uffd_err(uffd_handle_copy(h, a, src, 2 * ps, 0, &done), EEXIST,
			   "already present");
	ck_assert_uint_eq(done, ps);
	ck_assert_int_eq(a[0], 'e');
	/* nothing new: EEXIST with zero done, never a negative count */
	ck_assert_uffd_err(uffd_handle_zeropage(h, a, ps, 0, &done), EEXIST,
			   "already present");
	ck_assert_uint_eq(done, 0);
	uffd_handle_free(h);
	munmap(a, 2 * ps);
	munmap(src, 2 * ps);
}
END_TEST

START_TEST(test_move_anon)
{
	size_t ps = test_page(), done = 0;
	struct uffd_handle *h = open_handle();
	char *dst = map_anon(ps), *src = filled_page('m');
	struct toucher t;

	ck_assert_int_eq(uffd_handle_register(h, dst, ps, UFFD_MODE_MISSING,
					      NULL), 0);
	toucher_start(&t, dst, false, 0);
	wait_fault(h, dst, 0);
	ck_assert_int_eq(uffd_handle_move(h, dst, src, ps, 0, &done), 0);
	ck_assert_uint_eq(done, ps);
	toucher_join(&t);
	ck_assert_int_eq(t.seen, 'm');
	ck_assert_int_eq(src[0], 0); /* the page left the source */
	uffd_handle_free(h);
	munmap(dst, ps);
	munmap(src, ps);
}
END_TEST

START_TEST(test_move_allow_src_holes)
{
	size_t ps = test_page(), done = 0;
	struct uffd_handle *h = open_handle();
	char *dst = map_anon(ps), *src = map_anon(ps); /* never touched */

	ck_assert_int_eq(uffd_handle_register(h, dst, ps, UFFD_MODE_MISSING,
					      NULL), 0);
	ck_assert_int_lt(uffd_handle_move(h, dst, src, ps, 0, &done), 0);
	ck_assert_int_eq(uffd_handle_move(h, dst, src, ps,
					  UFFD_OPF_ALLOW_SRC_HOLES, &done), 0);
	uffd_handle_free(h);
	munmap(dst, ps);
	munmap(src, ps);
}
END_TEST

/* The kernel advertises MOVE on shmem but fails it with EINVAL: libuffd
 * refuses it up front, from the capability probe, and says why. */
START_TEST(test_move_on_shmem_refused_by_probe)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle();
	int fd = make_memfd(ps);
	char *m = map_fd(fd, ps, true), *src = filled_page('z');
	uint64_t ops;

	ck_assert_int_eq(uffd_handle_register(h, m, ps, UFFD_MODE_MISSING, &ops),
			 0);
	ck_assert(ops & UFFD_OP_MOVE); /* advertised ... */
	ck_assert_uffd_err(uffd_handle_move(h, m, src, ps, 0, NULL), ENOTSUP,
			   "MOVE does not work on a shared mapping of a memfd");
	ck_assert(strstr(uffd_last_error(), "anonymous private"));
	ck_assert(strstr(uffd_last_error(), "Invalid argument"));
	/* ... and no longer offered for the range */
	ck_assert_int_eq(uffd_handle_get_range_ops(h, m, ps, &ops, NULL), 0);
	ck_assert(!(ops & UFFD_OP_MOVE));
	ck_assert(ops & UFFD_OP_COPY);
	ck_assert_int_eq(src[0], 'z'); /* nothing moved */
	uffd_handle_free(h);
	munmap(m, ps);
	munmap(src, ps);
	close(fd);
}
END_TEST

/* the pointer itself is volatile: its store must precede the faulting read */
static char *volatile poison_addr;

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
	(void)sig;
	(void)ctx;
	_exit(si->si_addr == (void *)poison_addr ? 42 : 43);
}

/* Runs in a child: a SIGBUS is the expected outcome. */
static int poison_child(void)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus,
				.sa_flags = SA_SIGINFO };
	size_t ps = test_page(), done = 0;
	struct uffd_handle *h;
	char *a;

	if (sigaction(SIGBUS, &sa, NULL) || uffd_handle_new(NULL, &h))
		return 2;
	a = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (a == MAP_FAILED ||
	    uffd_handle_register(h, a, ps, UFFD_MODE_MISSING, NULL))
		return 3;
	if (uffd_handle_poison(h, a, ps, 0, &done) || done != ps)
		return 4;
	poison_addr = a;
	/* volatile: the read must not move above the store to poison_addr */
	return *(volatile char *)a == 0 ? 5 : 6; /* not reached: SIGBUS */
}

START_TEST(test_poison_raises_sigbus)
{
	int status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(poison_child());
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 42,
		      "child status %#x (42 = SIGBUS at the poisoned page)",
		      status);
}
END_TEST

/* A private /dev/zero mapping registers as anonymous memory, but COPY
 * fails there with EFAULT (the file has size 0): refused up front. */
START_TEST(test_dev_zero_private_refused)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle();
	int fd = open("/dev/zero", O_RDWR | O_CLOEXEC);
	char *m, *src = filled_page('0');

	ck_assert_int_ge(fd, 0);
	m = map_fd(fd, ps, false);
	ck_assert_int_eq(uffd_handle_register(h, m, ps, UFFD_MODE_MISSING, NULL),
			 0);
	ck_assert_uffd_err(uffd_handle_copy(h, m, src, ps, 0, NULL), ENOTSUP,
			   "COPY does not work on a private mapping of /dev/zero");
	ck_assert(strstr(uffd_last_error(), "Bad address"));
	uffd_handle_free(h);
	munmap(m, ps);
	munmap(src, ps);
	close(fd);
}
END_TEST

START_TEST(test_refused_by_registration)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle();
	char *a = map_anon(ps), *src = filled_page('r');

	ck_assert_int_eq(uffd_handle_register(h, a, ps, UFFD_MODE_MISSING, NULL),
			 0);
	ck_assert_uffd_err(uffd_handle_continue(h, a, ps, 0, NULL), ENOTSUP,
			   "CONTINUE is not allowed");
	ck_assert(strstr(uffd_last_error(), "MISSING mode"));
	ck_assert(strstr(uffd_last_error(), "COPY"));
	ck_assert_uffd_err(uffd_handle_writeprotect(h, a, ps, true, 0), ENOTSUP,
			   "WRITEPROTECT is not allowed");
	ck_assert_uffd_err(uffd_handle_copy(h, a, src, ps, UFFD_OPF_WP, NULL),
			   EINVAL, "WP mode");
	/* the page is still missing: the refused calls did nothing */
	ck_assert_int_eq(uffd_handle_copy(h, a, src, ps, 0, NULL), 0);
	uffd_handle_free(h);
	munmap(a, ps);
	munmap(src, ps);
}
END_TEST

START_TEST(test_unregistered_range_left_to_kernel)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle();
	char *a = map_anon(ps), *src = filled_page('u');

	ck_assert_uffd_err(uffd_handle_copy(h, a, src, ps, 0, NULL), ENOENT,
			   "not registered");
	uffd_handle_free(h);
	munmap(a, ps);
	munmap(src, ps);
}
END_TEST

START_TEST(test_ops_bad_input)
{
	size_t ps = test_page(), done = 7;
	struct uffd_handle *h = open_handle();
	char *a = map_anon(2 * ps), *src = filled_page('b');
	void *wrap = (void *)(UINTPTR_MAX - ps + 1);

	ck_assert_int_eq(uffd_handle_register(h, a, 2 * ps,
					      UFFD_MODE_MISSING | UFFD_MODE_WP,
					      NULL), 0);
	ck_assert_uffd_err(uffd_handle_copy(NULL, a, src, ps, 0, &done), EINVAL,
			   "NULL");
	ck_assert_uint_eq(done, 0);
	ck_assert_uffd_err(uffd_handle_copy(h, a, NULL, ps, 0, NULL), EINVAL,
			   "source is NULL");
	ck_assert_uffd_err(uffd_handle_copy(h, a, src, 0, 0, NULL), EINVAL,
			   "length 0");
	ck_assert_uffd_err(uffd_handle_copy(h, a + 1, src, ps, 0, NULL), EINVAL,
			   "page size");
	ck_assert_uffd_err(uffd_handle_copy(h, a, src, ps + 1, 0, NULL), EINVAL,
			   "page size");
	ck_assert_uffd_err(uffd_handle_copy(h, wrap, src, 2 * ps, 0, NULL),
			   EINVAL, "wraps");
	ck_assert_uffd_err(uffd_handle_copy(h, a, src, ps,
					    UFFD_OPF_ALLOW_SRC_HOLES, NULL),
			   EINVAL, "does not take flags");
	ck_assert_uffd_err(uffd_handle_copy(h, a, src, ps, 1u << 9, NULL),
			   EINVAL, "does not take flags");
	ck_assert_uffd_err(uffd_handle_zeropage(h, a, ps, UFFD_OPF_WP, NULL),
			   EINVAL, "does not take flags");
	ck_assert_uffd_err(uffd_handle_poison(h, a, ps, UFFD_OPF_WP, NULL),
			   EINVAL, "does not take flags");
	ck_assert_uffd_err(uffd_handle_continue(h, a, ps,
						UFFD_OPF_ALLOW_SRC_HOLES, NULL),
			   EINVAL, "does not take flags");
	ck_assert_uffd_err(uffd_handle_move(h, a, NULL, ps, 0, NULL), EINVAL,
			   "source is NULL");
	ck_assert_uffd_err(uffd_handle_move(h, a, src + 8, ps, 0, NULL), EINVAL,
			   "page aligned");
	ck_assert_uffd_err(uffd_handle_move(h, a, src, ps, UFFD_OPF_WP, NULL),
			   EINVAL, "does not take flags");
	ck_assert_uffd_err(uffd_handle_writeprotect(h, a, ps, true,
						    UFFD_OPF_DONTWAKE),
			   EINVAL, "DONTWAKE");
	ck_assert_uffd_err(uffd_handle_writeprotect(h, a, ps, false,
						    UFFD_OPF_WP),
			   EINVAL, "does not take flags");
	ck_assert_uffd_err(uffd_handle_writeprotect(h, a, 0, true, 0), EINVAL,
			   "length 0");
	ck_assert_uffd_err(uffd_handle_wake(h, a, 0), EINVAL, "length 0");
	ck_assert_uffd_err(uffd_handle_wake(h, a + 3, ps), EINVAL, "page size");
	ck_assert_uffd_err(uffd_handle_wake(NULL, a, ps), EINVAL, "NULL");
	/* none of it touched the range */
	ck_assert_int_eq(uffd_handle_copy(h, a, src, ps, 0, NULL), 0);
	uffd_handle_free(h);
	munmap(a, 2 * ps);
	munmap(src, ps);
}
END_TEST

static Suite *ops_suite(void)
{
	Suite *s = suite_create("ops");
	TCase *fill = tcase_create("fill");
	TCase *wp = tcase_create("writeprotect");
	TCase *bad = tcase_create("errors");

	tcase_add_test(fill, test_copy_anon_read_and_write_faults);
	tcase_add_test(fill, test_zeropage_anon);
	tcase_add_test(fill, test_copy_zeropage_memfd);
	tcase_add_test(fill, test_copy_zeropage_anon_shared);
	tcase_add_test(fill, test_continue_minor_memfd);
	tcase_add_test(fill, test_dontwake_then_wake);
	tcase_add_test(fill, test_eexist_reports_progress);
	tcase_add_test(fill, test_move_anon);
	tcase_add_test(fill, test_move_allow_src_holes);
	tcase_add_test(fill, test_poison_raises_sigbus);
	tcase_add_test(wp, test_writeprotect_anon);
	tcase_add_test(wp, test_writeprotect_memfd);
	tcase_add_test(wp, test_copy_wp_flag_maps_protected);
	tcase_add_test(bad, test_continue_without_page_cache);
	tcase_add_test(bad, test_move_on_shmem_refused_by_probe);
	tcase_add_test(bad, test_dev_zero_private_refused);
	tcase_add_test(bad, test_refused_by_registration);
	tcase_add_test(bad, test_unregistered_range_left_to_kernel);
	tcase_add_test(bad, test_ops_bad_input);
	suite_add_tcase(s, fill);
	suite_add_tcase(s, wp);
	suite_add_tcase(s, bad);
	return s;
}

int main(void)
{
	return run_suite(ops_suite());
}
