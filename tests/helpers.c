// SPDX-License-Identifier: MIT
#define _GNU_SOURCE
#include "helpers.h"
#include "hugepool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

size_t test_page(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static void *touch_main(void *arg)
{
	struct toucher *t = arg;

	if (t->write) {
		t->addr[0] = t->value;
		t->seen = t->addr[0];
	} else {
		t->seen = t->addr[0];
	}
	return NULL;
}

void toucher_start(struct toucher *t, void *addr, bool write,
		   unsigned char value)
{
	t->addr = addr;
	t->write = write;
	t->value = value;
	t->seen = 0;
	ck_assert_int_eq(pthread_create(&t->thread, NULL, touch_main, t), 0);
}

void toucher_join(struct toucher *t)
{
	ck_assert_int_eq(pthread_join(t->thread, NULL), 0);
}

void wait_event(struct uffd_handle *h, struct uffd_event *ev)
{
	struct pollfd pfd = { .fd = uffd_handle_get_fd(h), .events = POLLIN };
	int n;

	for (;;) {
		n = poll(&pfd, 1, TEST_WAIT_MS);
		ck_assert_msg(n == 1, "no userfaultfd event within %d ms",
			      TEST_WAIT_MS);
		n = uffd_handle_read_events(h, ev, 1);
		ck_assert_msg(n >= 0, "read_events: %s", uffd_last_error());
		if (n == 1)
			return;
	}
}

void wait_fault(struct uffd_handle *h, void *addr, unsigned want_flags)
{
	struct uffd_event ev;

	wait_event(h, &ev);
	ck_assert_uint_eq(ev.type, UFFD_EVENT_TYPE_PAGEFAULT);
	ck_assert_msg(ev.fault.address == (uintptr_t)addr,
		      "fault at %#lx, expected %p",
		      (unsigned long)ev.fault.address, addr);
	ck_assert_msg((ev.flags & want_flags) == want_flags,
		      "fault flags %#x lack %#x", ev.flags, want_flags);
}

struct uffd_handle *open_handle(void)
{
	struct uffd_handle *h = NULL;
	int ret = uffd_handle_new(NULL, &h);

	ck_assert_msg(ret == 0, "uffd_handle_new: %s", uffd_last_error());
	return h;
}

struct uffd_handle *open_handle_with(uint64_t features)
{
	struct uffd_handle_config *cfg;
	struct uffd_handle *h = NULL;
	int ret;

	ck_assert_int_eq(uffd_handle_config_new(&cfg), 0);
	ck_assert_int_eq(uffd_handle_config_require_features(cfg, features),
			 0);
	ret = uffd_handle_new(cfg, &h);
	uffd_handle_config_free(cfg);
	ck_assert_msg(ret == 0, "uffd_handle_new: %s", uffd_last_error());
	ck_assert((uffd_handle_get_features(h) & features) == features);
	return h;
}

static void *map_checked(size_t len, int flags, int fd)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, fd, 0);

	ck_assert_msg(p != MAP_FAILED, "mmap: %s", strerror(errno));
	return p;
}

void *map_anon(size_t len)
{
	return map_checked(len, MAP_PRIVATE | MAP_ANONYMOUS, -1);
}

void *map_anon_shared(size_t len)
{
	return map_checked(len, MAP_SHARED | MAP_ANONYMOUS, -1);
}

int make_memfd(size_t len)
{
	int fd = memfd_create("libuffd-test", MFD_CLOEXEC);

	ck_assert_msg(fd >= 0, "memfd_create: %s", strerror(errno));
	ck_assert_int_eq(ftruncate(fd, (off_t)len), 0);
	return fd;
}

void *map_fd(int fd, size_t len, bool shared)
{
	return map_checked(len, shared ? MAP_SHARED : MAP_PRIVATE, fd);
}

long fdinfo_count(struct uffd_handle *h, const char *key)
{
	char path[64], line[128];
	size_t klen = strlen(key);
	long value = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d",
		 uffd_handle_get_fd(h));
	f = fopen(path, "re");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':' &&
		    sscanf(line + klen + 1, "%ld", &value) == 1)
			break;
	fclose(f);
	ck_assert_msg(value >= 0, "no \"%s\" in %s", key, path);
	return value;
}

int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

int run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

size_t hugetlb_page_size(void)
{
	return 2u << 20;
}

bool hugetlb_reserve(long n)
{
	char why[160];

	if (hugepool_reserve(n, why, sizeof(why)))
		return true;
	printf("SKIP: huge pages: %s\n", why);
	return false;
}

void hugetlb_release(void)
{
	hugepool_release();
}

static long fixture_pages;
static bool fixture_reserved;

static void fixture_setup(void)
{
	fixture_reserved = hugetlb_reserve(fixture_pages);
}

static void fixture_teardown(void)
{
	hugetlb_release();
	fixture_reserved = false;
}

void hugetlb_fixture_add(TCase *tc, long n)
{
	fixture_pages = n;
	tcase_add_unchecked_fixture(tc, fixture_setup, fixture_teardown);
}

bool hugetlb_reserved(void)
{
	return fixture_reserved;
}
