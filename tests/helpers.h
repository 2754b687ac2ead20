/* SPDX-License-Identifier: MIT */
/* Helpers shared by the Check tests: a faulting thread, bounded waits for
 * events (a bound that fails the test, never a sleep), and memory setup. */
#ifndef LIBUFFD_TEST_HELPERS_H
#define LIBUFFD_TEST_HELPERS_H

#include <check.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "libuffd.h"

/* How long a test waits for the kernel before it fails (not a sleep: the
 * wait ends as soon as the event arrives). */
#define TEST_WAIT_MS 10000

size_t test_page(void);

/* A thread that touches one byte (read, or write of value) and records what
 * it read; it blocks in the kernel until the fault is resolved. */
struct toucher {
	pthread_t thread;
	volatile unsigned char *addr;
	bool write;
	unsigned char value;
	unsigned char seen;
};
void toucher_start(struct toucher *t, void *addr, bool write,
		   unsigned char value);
void toucher_join(struct toucher *t);

/* Waits (bounded) until the handle has an event and reads exactly one. */
void wait_event(struct uffd_handle *h, struct uffd_event *ev);
/* Waits for one page fault at addr and checks its flags contain want. */
void wait_fault(struct uffd_handle *h, void *addr, unsigned want_flags);

/* A handle with the defaults (asserts success). */
struct uffd_handle *open_handle(void);
/* A handle with extra behaviour features requested (asserts they are on). */
struct uffd_handle *open_handle_with(uint64_t features);

/* Mappings; all assert success. */
void *map_anon(size_t len);          /* MAP_PRIVATE|MAP_ANONYMOUS */
void *map_anon_shared(size_t len);   /* MAP_SHARED|MAP_ANONYMOUS */
int make_memfd(size_t len);          /* sized memfd */
void *map_fd(int fd, size_t len, bool shared);

/* A counter from the handle's /proc/self/fdinfo: "pending" (faults queued,
 * not yet read) or "total" (faults whose thread is still asleep, read or
 * not). Lets tests see the kernel's queue without any timing. */
long fdinfo_count(struct uffd_handle *h, const char *key);

/* Number of open fds of this process. */
int count_fds(void);

/* Asserts ret == -err and that uffd_last_error() contains text. */
#define ck_assert_uffd_err(ret, err, text)                                    \
	do {                                                                   \
		int ret_ = (ret);                                              \
		ck_assert_msg(ret_ == -(err), "expected %d (%s), got %d: %s", \
			      -(err), #err, ret_, uffd_last_error());          \
		ck_assert_msg(strstr(uffd_last_error(), (text)) != NULL,       \
			      "message \"%s\" lacks \"%s\"",                   \
			      uffd_last_error(), (text));                      \
	} while (0)

/* Runs a suite and returns the process exit status. */
int run_suite(Suite *s);

/* Huge pages: reserve n 2 MiB pages via /proc/sys/vm/nr_hugepages when
 * root; returns false (after printing why) when they cannot be had. The
 * release gives back exactly what was added. */
bool hugetlb_reserve(long n);
void hugetlb_release(void);
size_t hugetlb_page_size(void);

/* Reserves n huge pages around the tests of tc (an unchecked fixture: it
 * runs in the runner process, so the pages come back even when a test
 * fails); hugetlb_reserved() says whether they could be had. */
void hugetlb_fixture_add(TCase *tc, long n);
bool hugetlb_reserved(void);

#define REQUIRE_HUGEPAGES()                                                   \
	do {                                                                   \
		if (!hugetlb_reserved()) {                                     \
			printf("SKIP: %s: no 2 MiB huge pages reserved\n",     \
			       __func__);                                      \
			return;                                                \
		}                                                              \
	} while (0)

#endif
