// SPDX-License-Identifier: MIT
/*
 * Events, end to end with the real kernel: page faults and their flags,
 * THREAD_ID, EXACT_ADDRESS, batched reads, and the FORK, REMOVE, UNMAP and
 * REMAP events. The thread that calls fork/madvise/munmap/mremap blocks in
 * the kernel until the event is read, so those calls run on a helper thread
 * and the test thread reads the event.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "libuffd.h"

/* ---- local helpers ---------------------------------------------------- */

/* Waits (bounded) until the handle's fd is readable, without reading. */
static void wait_readable(struct uffd_handle *h)
{
	struct pollfd pfd = { .fd = uffd_handle_get_fd(h), .events = POLLIN };
	int n = poll(&pfd, 1, TEST_WAIT_MS);

	ck_assert_msg(n == 1 && (pfd.revents & POLLIN),
		      "no userfaultfd event within %d ms", TEST_WAIT_MS);
}

/* Waits (bounded) until want faults are queued unread. */
static void wait_pending(struct uffd_handle *h, long want)
{
	for (int waited = 0; fdinfo_count(h, "pending") < want; waited++) {
		ck_assert_msg(waited < TEST_WAIT_MS,
			      "%ld faults not queued within %d ms", want,
			      TEST_WAIT_MS);
		/* fdinfo has no notification: re-read it each ms */
		poll(NULL, 0, 1);
	}
}

/* A reading toucher that records its own thread id before it faults. */
struct tid_toucher {
	pthread_t thread;
	volatile unsigned char *addr;
	pid_t tid;
	unsigned char seen;
};

static void *tid_touch_main(void *arg)
{
	struct tid_toucher *t = arg;

	t->tid = gettid();
	t->seen = t->addr[0];
	return NULL;
}

static void tid_toucher_start(struct tid_toucher *t, void *addr)
{
	t->addr = addr;
	t->tid = 0;
	t->seen = 0;
	ck_assert_int_eq(pthread_create(&t->thread, NULL, tid_touch_main, t),
			 0);
}

/* A helper thread running one call that blocks until its event is read. */
enum mm_call { CALL_MADV_DONTNEED, CALL_MUNMAP, CALL_MREMAP, CALL_FORK };

struct mm_helper {
	pthread_t thread;
	enum mm_call call;
	void *addr;
	size_t len;
	void *new_addr; /* MREMAP: the fixed target */
	/* results */
	atomic_bool finished;
	int ret;
	int err;
	void *result; /* MREMAP */
	pid_t pid;    /* FORK */
	int status;   /* FORK: the child's wait status */
};

static void *mm_helper_main(void *arg)
{
	struct mm_helper *m = arg;

	errno = 0;
	switch (m->call) {
	case CALL_MADV_DONTNEED:
		m->ret = madvise(m->addr, m->len, MADV_DONTNEED);
		break;
	case CALL_MUNMAP:
		m->ret = munmap(m->addr, m->len);
		break;
	case CALL_MREMAP:
		m->result = mremap(m->addr, m->len, m->len,
				   MREMAP_MAYMOVE | MREMAP_FIXED, m->new_addr);
		m->ret = m->result == MAP_FAILED ? -1 : 0;
		break;
	case CALL_FORK:
		m->pid = fork();
		if (m->pid == 0)
			_exit(0);
		m->ret = m->pid < 0 ? -1 : 0;
		if (m->pid > 0 && waitpid(m->pid, &m->status, 0) != m->pid)
			m->ret = -1;
		break;
	}
	m->err = errno;
	atomic_store(&m->finished, true);
	return NULL;
}

static void mm_helper_start(struct mm_helper *m, enum mm_call call,
			    void *addr, size_t len, void *new_addr)
{
	memset(m, 0, sizeof(*m));
	m->call = call;
	m->addr = addr;
	m->len = len;
	m->new_addr = new_addr;
	atomic_init(&m->finished, false);
	ck_assert_int_eq(pthread_create(&m->thread, NULL, mm_helper_main, m),
			 0);
}

static void mm_helper_join(struct mm_helper *m)
{
	ck_assert_int_eq(pthread_join(m->thread, NULL), 0);
	ck_assert_msg(m->ret == 0, "helper call %d failed: %s", m->call,
		      strerror(m->err));
}

/* Registers [p, p+len) in modes, asserting success. */
static void reg(struct uffd_handle *h, void *p, size_t len, uint64_t modes)
{
	int ret = uffd_handle_register(h, p, len, modes, NULL);

	ck_assert_msg(ret == 0, "register: %s", uffd_last_error());
}

/* A page-sized buffer filled with value. */
static unsigned char *filled_page(unsigned char value)
{
	unsigned char *src = map_anon(test_page());

	memset(src, value, test_page());
	return src;
}

/* ---- page faults ------------------------------------------------------ */

START_TEST(fault_read_resolved_by_copy)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(2 * ps), *src = filled_page(0xa5);
	struct uffd_event ev;
	struct toucher t;
	size_t done = 1;

	reg(h, p, 2 * ps, UFFD_MODE_MISSING);
	toucher_start(&t, p + ps + 17, false, 0);
	wait_event(h, &ev);
	ck_assert_uint_eq(ev.type, UFFD_EVENT_TYPE_PAGEFAULT);
	ck_assert_uint_eq(ev.fault.address, (uintptr_t)(p + ps));
	ck_assert_msg(!(ev.flags & UFFD_FAULT_WRITE),
		      "read fault has flags %#x", ev.flags);
	ck_assert_uint_eq(ev.flags, 0);
	ck_assert_uint_eq(ev.fault.tid, 0);

	ck_assert_msg(uffd_handle_copy(h, p + ps, src, ps, 0, &done) == 0,
		      "copy: %s", uffd_last_error());
	ck_assert_uint_eq(done, ps);
	toucher_join(&t);
	ck_assert_uint_eq(t.seen, 0xa5);
	ck_assert_mem_eq(p + ps, src, ps);

	uffd_handle_free(h);
	munmap(src, ps);
	munmap(p, 2 * ps);
}
END_TEST

START_TEST(fault_read_resolved_by_zeropage)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(ps);
	struct toucher t;
	size_t done = 0;

	reg(h, p, ps, UFFD_MODE_MISSING);
	toucher_start(&t, p, false, 0);
	wait_fault(h, p, 0);
	ck_assert_msg(uffd_handle_zeropage(h, p, ps, 0, &done) == 0,
		      "zeropage: %s", uffd_last_error());
	ck_assert_uint_eq(done, ps);
	toucher_join(&t);
	ck_assert_uint_eq(t.seen, 0);
	for (size_t i = 0; i < ps; i++)
		ck_assert_uint_eq(p[i], 0);

	uffd_handle_free(h);
	munmap(p, ps);
}
END_TEST

START_TEST(fault_write_has_write_flag)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(ps), *src = filled_page(0x11);
	struct uffd_event ev;
	struct toucher t;

	reg(h, p, ps, UFFD_MODE_MISSING);
	toucher_start(&t, p + 100, true, 0x5a);
	wait_event(h, &ev);
	ck_assert_uint_eq(ev.type, UFFD_EVENT_TYPE_PAGEFAULT);
	ck_assert_uint_eq(ev.fault.address, (uintptr_t)p);
	ck_assert_uint_eq(ev.flags, UFFD_FAULT_WRITE);

	ck_assert_msg(uffd_handle_copy(h, p, src, ps, 0, NULL) == 0,
		      "copy: %s", uffd_last_error());
	toucher_join(&t);
	/* The write lands on the copied page once the thread retries. */
	ck_assert_uint_eq(t.seen, 0x5a);
	ck_assert_uint_eq(p[100], 0x5a);
	ck_assert_uint_eq(p[0], 0x11);
	ck_assert_uint_eq(p[ps - 1], 0x11);

	uffd_handle_free(h);
	munmap(src, ps);
	munmap(p, ps);
}
END_TEST

/* ---- THREAD_ID / EXACT_ADDRESS ------------------------------------------ */

START_TEST(thread_id_is_faulting_thread)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle_with(UFFD_FEAT_THREAD_ID);
	unsigned char *p = map_anon(ps);
	struct uffd_event ev;
	struct tid_toucher t;

	reg(h, p, ps, UFFD_MODE_MISSING);
	tid_toucher_start(&t, p);
	wait_event(h, &ev);
	ck_assert_uint_eq(ev.type, UFFD_EVENT_TYPE_PAGEFAULT);
	ck_assert_uint_eq(ev.fault.address, (uintptr_t)p);
	ck_assert_msg(uffd_handle_zeropage(h, p, ps, 0, NULL) == 0,
		      "zeropage: %s", uffd_last_error());
	ck_assert_int_eq(pthread_join(t.thread, NULL), 0);
	ck_assert_int_gt(t.tid, 0);
	ck_assert_int_ne(t.tid, gettid());
	ck_assert_uint_eq(ev.fault.tid, (uint32_t)t.tid);

	uffd_handle_free(h);
	munmap(p, ps);
}
END_TEST

START_TEST(thread_id_zero_without_feature)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(ps);
	struct uffd_event ev;
	struct tid_toucher t;

	ck_assert(!(uffd_handle_get_features(h) & UFFD_FEAT_THREAD_ID));
	reg(h, p, ps, UFFD_MODE_MISSING);
	tid_toucher_start(&t, p);
	wait_event(h, &ev);
	ck_assert_uint_eq(ev.type, UFFD_EVENT_TYPE_PAGEFAULT);
	ck_assert_msg(uffd_handle_zeropage(h, p, ps, 0, NULL) == 0,
		      "zeropage: %s", uffd_last_error());
	ck_assert_int_eq(pthread_join(t.thread, NULL), 0);
	ck_assert_int_gt(t.tid, 0);
	ck_assert_uint_eq(ev.fault.tid, 0);

	uffd_handle_free(h);
	munmap(p, ps);
}
END_TEST

START_TEST(exact_address_keeps_offset)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle_with(UFFD_FEAT_EXACT_ADDRESS);
	unsigned char *p = map_anon(2 * ps);
	struct uffd_event ev;
	struct toucher t;

	reg(h, p, 2 * ps, UFFD_MODE_MISSING);
	toucher_start(&t, p + ps + 123, false, 0);
	wait_event(h, &ev);
	ck_assert_uint_eq(ev.type, UFFD_EVENT_TYPE_PAGEFAULT);
	ck_assert_uint_eq(ev.fault.address, (uintptr_t)(p + ps + 123));
	ck_assert_msg(uffd_handle_zeropage(h, p + ps, ps, 0, NULL) == 0,
		      "zeropage: %s", uffd_last_error());
	toucher_join(&t);
	ck_assert_uint_eq(t.seen, 0);

	uffd_handle_free(h);
	munmap(p, 2 * ps);
}
END_TEST

START_TEST(address_page_aligned_without_exact)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(2 * ps);
	struct uffd_event ev;
	struct toucher t;

	ck_assert(!(uffd_handle_get_features(h) & UFFD_FEAT_EXACT_ADDRESS));
	reg(h, p, 2 * ps, UFFD_MODE_MISSING);
	toucher_start(&t, p + ps + 123, false, 0);
	wait_event(h, &ev);
	ck_assert_uint_eq(ev.type, UFFD_EVENT_TYPE_PAGEFAULT);
	ck_assert_uint_eq(ev.fault.address, (uintptr_t)(p + ps));
	ck_assert_msg(uffd_handle_zeropage(h, p + ps, ps, 0, NULL) == 0,
		      "zeropage: %s", uffd_last_error());
	toucher_join(&t);

	uffd_handle_free(h);
	munmap(p, 2 * ps);
}
END_TEST

/* ---- MINOR and WP faults -------------------------------------------------- */

START_TEST(minor_fault_resolved_by_continue)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle();
	int fd = make_memfd(ps);
	unsigned char *reg_map = map_fd(fd, ps, true);
	unsigned char *fill = map_fd(fd, ps, true);
	struct uffd_event ev;
	struct toucher t;
	uint64_t ops = 0;
	size_t done = 0;

	ck_assert(uffd_handle_get_features(h) & UFFD_FEAT_MINOR_SHMEM);
	ck_assert_msg(uffd_handle_register(h, reg_map, ps, UFFD_MODE_MINOR,
					   &ops) == 0,
		      "register: %s", uffd_last_error());
	ck_assert(ops & UFFD_OP_CONTINUE);
	/* Fill the page cache through the unregistered mapping. */
	memset(fill, 0x3c, ps);

	toucher_start(&t, reg_map + 9, false, 0);
	wait_event(h, &ev);
	ck_assert_uint_eq(ev.type, UFFD_EVENT_TYPE_PAGEFAULT);
	ck_assert_uint_eq(ev.fault.address, (uintptr_t)reg_map);
	ck_assert_msg(ev.flags & UFFD_FAULT_MINOR, "flags %#x lack MINOR",
		      ev.flags);
	ck_assert(!(ev.flags & UFFD_FAULT_WRITE));
	ck_assert_msg(uffd_handle_continue(h, reg_map, ps, 0, &done) == 0,
		      "continue: %s", uffd_last_error());
	ck_assert_uint_eq(done, ps);
	toucher_join(&t);
	ck_assert_uint_eq(t.seen, 0x3c);
	ck_assert_mem_eq(reg_map, fill, ps);

	uffd_handle_free(h);
	munmap(fill, ps);
	munmap(reg_map, ps);
	close(fd);
}
END_TEST

START_TEST(wp_fault_resolved_by_unprotect)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(ps);
	struct uffd_event ev;
	struct toucher t;

	memset(p, 0x77, ps); /* populated before registration */
	reg(h, p, ps, UFFD_MODE_WP);
	ck_assert_msg(uffd_handle_writeprotect(h, p, ps, true, 0) == 0,
		      "protect: %s", uffd_last_error());
	/* Reads of a protected page do not fault. */
	ck_assert_uint_eq(p[5], 0x77);

	toucher_start(&t, p + 5, true, 0x99);
	wait_event(h, &ev);
	ck_assert_uint_eq(ev.type, UFFD_EVENT_TYPE_PAGEFAULT);
	ck_assert_uint_eq(ev.fault.address, (uintptr_t)p);
	ck_assert_uint_eq(ev.flags & (UFFD_FAULT_WP | UFFD_FAULT_WRITE),
			  UFFD_FAULT_WP | UFFD_FAULT_WRITE);
	ck_assert(!(ev.flags & UFFD_FAULT_MINOR));
	/* Still protected and unchanged while the writer waits. */
	ck_assert_uint_eq(p[5], 0x77);
	ck_assert_msg(uffd_handle_writeprotect(h, p, ps, false, 0) == 0,
		      "unprotect: %s", uffd_last_error());
	toucher_join(&t);
	ck_assert_uint_eq(t.seen, 0x99);
	ck_assert_uint_eq(p[5], 0x99);
	ck_assert_uint_eq(p[6], 0x77);

	uffd_handle_free(h);
	munmap(p, ps);
}
END_TEST

/* ---- reading ------------------------------------------------------------ */

START_TEST(batch_read_two_faults)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(4 * ps), *src = filled_page(0x42);
	unsigned char *pages[2] = { p + ps, p + 3 * ps };
	struct uffd_event evs[8];
	bool seen[2] = { false, false };
	struct toucher t[2];
	int n;

	reg(h, p, 4 * ps, UFFD_MODE_MISSING);
	toucher_start(&t[0], pages[0], false, 0);
	toucher_start(&t[1], pages[1], true, 0x24);
	/* Both threads are asleep in the kernel with their faults unread. */
	wait_pending(h, 2);
	ck_assert_int_eq(fdinfo_count(h, "pending"), 2);
	n = uffd_handle_read_events(h, evs, 8);
	ck_assert_msg(n == 2, "one read returned %d events: %s", n,
		      n < 0 ? uffd_last_error() : "");
	for (int i = 0; i < n; i++) {
		int k;

		ck_assert_uint_eq(evs[i].type, UFFD_EVENT_TYPE_PAGEFAULT);
		if (evs[i].fault.address == (uintptr_t)pages[0])
			k = 0;
		else if (evs[i].fault.address == (uintptr_t)pages[1])
			k = 1;
		else
			ck_abort_msg("fault at unexpected %#lx",
				     (unsigned long)evs[i].fault.address);
		ck_assert_msg(!seen[k], "fault %d reported twice", k);
		seen[k] = true;
		ck_assert_uint_eq(evs[i].flags & UFFD_FAULT_WRITE,
				  k == 1 ? UFFD_FAULT_WRITE : 0);
	}
	ck_assert(seen[0] && seen[1]);
	ck_assert_int_eq(fdinfo_count(h, "pending"), 0);
	/* Nothing else is pending. */
	ck_assert_int_eq(uffd_handle_read_events(h, evs, 8), 0);

	for (int k = 0; k < 2; k++)
		ck_assert_msg(uffd_handle_copy(h, pages[k], src, ps, 0,
					       NULL) == 0,
			      "copy: %s", uffd_last_error());
	toucher_join(&t[0]);
	toucher_join(&t[1]);
	ck_assert_uint_eq(t[0].seen, 0x42);
	ck_assert_uint_eq(t[1].seen, 0x24);
	ck_assert_uint_eq(pages[1][1], 0x42);

	uffd_handle_free(h);
	munmap(src, ps);
	munmap(p, 4 * ps);
}
END_TEST

/* Several faults, each read in a call of its own when max is 1, in the
 * kernel's order; the rest stay queued. */
START_TEST(read_max_one_leaves_rest_queued)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(3 * ps);
	struct uffd_event ev[3];
	struct toucher t[3];

	reg(h, p, 3 * ps, UFFD_MODE_MISSING);
	for (int k = 0; k < 3; k++)
		toucher_start(&t[k], p + (size_t)k * ps, false, 0);
	wait_pending(h, 3);
	for (int k = 0; k < 3; k++) {
		ck_assert_int_eq(uffd_handle_read_events(h, &ev[k], 1), 1);
		ck_assert_uint_eq(ev[k].type, UFFD_EVENT_TYPE_PAGEFAULT);
		ck_assert_int_eq(fdinfo_count(h, "pending"), 2 - k);
	}
	ck_assert_int_eq(uffd_handle_read_events(h, ev, 1), 0);
	/* Three distinct pages. */
	ck_assert(ev[0].fault.address != ev[1].fault.address &&
		  ev[1].fault.address != ev[2].fault.address &&
		  ev[0].fault.address != ev[2].fault.address);
	ck_assert_msg(uffd_handle_zeropage(h, p, 3 * ps, 0, NULL) == 0,
		      "zeropage: %s", uffd_last_error());
	for (int k = 0; k < 3; k++)
		toucher_join(&t[k]);

	uffd_handle_free(h);
	munmap(p, 3 * ps);
}
END_TEST

START_TEST(read_nothing_pending_returns_zero)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle();
	unsigned char *p = map_anon(ps);
	struct uffd_event evs[4];

	ck_assert_int_eq(uffd_handle_read_events(h, evs, 4), 0);
	reg(h, p, ps, UFFD_MODE_MISSING);
	ck_assert_int_eq(uffd_handle_read_events(h, evs, 1), 0);
	/* More than the library's internal batch is fine too. */
	{
		struct uffd_event many[100];

		ck_assert_int_eq(uffd_handle_read_events(h, many, 100), 0);
	}
	uffd_handle_free(h);
	munmap(p, ps);
}
END_TEST

START_TEST(read_invalid_arguments)
{
	struct uffd_handle *h = open_handle();
	struct uffd_event evs[2];

	ck_assert_uffd_err(uffd_handle_read_events(NULL, evs, 1), EINVAL,
			   "read_events");
	ck_assert_uffd_err(uffd_handle_read_events(h, NULL, 1), EINVAL,
			   "read_events");
	ck_assert_uffd_err(uffd_handle_read_events(h, evs, 0), EINVAL,
			   "max 0");
	uffd_handle_free(h);
}
END_TEST

/* ---- non-fault events ------------------------------------------------------ */

START_TEST(fork_event_gives_adoptable_fd)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle_with(UFFD_FEAT_EVENT_FORK);
	struct uffd_handle *child = NULL;
	unsigned char *p = map_anon(2 * ps);
	struct uffd_event ev;
	struct mm_helper m;
	int ret;

	reg(h, p, 2 * ps, UFFD_MODE_MISSING);
	mm_helper_start(&m, CALL_FORK, NULL, 0, NULL);
	wait_readable(h);
	/* fork() cannot return before the event is read. */
	ck_assert(!atomic_load(&m.finished));
	wait_event(h, &ev);
	ck_assert_uint_eq(ev.type, UFFD_EVENT_TYPE_FORK);
	ck_assert_int_ge(ev.fork.fd, 0);
	ck_assert_int_ne(ev.fork.fd, uffd_handle_get_fd(h));

	ret = uffd_handle_adopt(ev.fork.fd, &child);
	ck_assert_msg(ret == 0, "adopt: %s", uffd_last_error());
	ck_assert_int_eq(uffd_handle_get_fd(child), ev.fork.fd);
	ck_assert_int_eq(uffd_handle_get_open_path(child), UFFD_OPEN_ADOPTED);
	/* The child's context inherits the parent's features. */
	ck_assert_msg(uffd_handle_get_features(child) & UFFD_FEAT_EVENT_FORK,
		      "adopted features %#llx",
		      (unsigned long long)uffd_handle_get_features(child));
	ck_assert_uint_eq(uffd_handle_get_features(child),
			  uffd_handle_get_features(h));
	uffd_handle_free(child);

	mm_helper_join(&m);
	ck_assert_int_gt(m.pid, 0);
	ck_assert(WIFEXITED(m.status));
	ck_assert_int_eq(WEXITSTATUS(m.status), 0);

	uffd_handle_free(h);
	munmap(p, 2 * ps);
}
END_TEST

START_TEST(remove_event_on_madvise_dontneed)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle_with(UFFD_FEAT_EVENT_REMOVE);
	unsigned char *p = map_anon(4 * ps), *src = filled_page(0x66);
	struct uffd_event ev;
	struct mm_helper m;

	reg(h, p, 4 * ps, UFFD_MODE_MISSING);
	ck_assert_msg(uffd_handle_copy(h, p, src, ps, 0, NULL) == 0 &&
			      uffd_handle_copy(h, p + 3 * ps, src, ps, 0,
					       NULL) == 0,
		      "copy: %s", uffd_last_error());

	mm_helper_start(&m, CALL_MADV_DONTNEED, p + ps, 2 * ps, NULL);
	wait_readable(h);
	ck_assert(!atomic_load(&m.finished));
	wait_event(h, &ev);
	ck_assert_uint_eq(ev.type, UFFD_EVENT_TYPE_REMOVE);
	ck_assert_uint_eq(ev.range.start, (uintptr_t)(p + ps));
	ck_assert_uint_eq(ev.range.end, (uintptr_t)(p + 3 * ps));
	mm_helper_join(&m);
	ck_assert(atomic_load(&m.finished));
	/* The pages around the range are untouched. */
	ck_assert_uint_eq(p[0], 0x66);
	ck_assert_uint_eq(p[3 * ps], 0x66);
	/* No second event is queued. */
	ck_assert_int_eq(uffd_handle_read_events(h, &ev, 1), 0);

	uffd_handle_free(h);
	munmap(src, ps);
	munmap(p, 4 * ps);
}
END_TEST

START_TEST(unmap_event_on_munmap)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle_with(UFFD_FEAT_EVENT_UNMAP);
	unsigned char *p = map_anon(4 * ps);
	struct uffd_event ev;
	struct mm_helper m;

	reg(h, p, 4 * ps, UFFD_MODE_MISSING);
	mm_helper_start(&m, CALL_MUNMAP, p + ps, 2 * ps, NULL);
	wait_readable(h);
	ck_assert(!atomic_load(&m.finished));
	wait_event(h, &ev);
	ck_assert_uint_eq(ev.type, UFFD_EVENT_TYPE_UNMAP);
	ck_assert_uint_eq(ev.range.start, (uintptr_t)(p + ps));
	ck_assert_uint_eq(ev.range.end, (uintptr_t)(p + 3 * ps));
	mm_helper_join(&m);
	ck_assert_int_eq(uffd_handle_read_events(h, &ev, 1), 0);

	/* Free first: munmap of the rest would otherwise wait for a reader. */
	uffd_handle_free(h);
	/* Only the ends: the middle is gone, and something else (an
	 * allocator's mapping under ASan) may live there now. */
	munmap(p, ps);
	munmap(p + 3 * ps, ps);
}
END_TEST

START_TEST(remap_event_on_mremap)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle_with(UFFD_FEAT_EVENT_REMAP);
	unsigned char *p = map_anon(4 * ps);
	unsigned char *target = mmap(NULL, 4 * ps, PROT_NONE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct uffd_event ev;
	struct mm_helper m;

	ck_assert(target != MAP_FAILED);
	reg(h, p, 4 * ps, UFFD_MODE_MISSING);
	mm_helper_start(&m, CALL_MREMAP, p, 4 * ps, target);
	wait_readable(h);
	ck_assert(!atomic_load(&m.finished));
	wait_event(h, &ev);
	ck_assert_uint_eq(ev.type, UFFD_EVENT_TYPE_REMAP);
	ck_assert_uint_eq(ev.remap.from, (uintptr_t)p);
	ck_assert_uint_eq(ev.remap.to, (uintptr_t)target);
	ck_assert_uint_eq(ev.remap.len, 4 * ps);
	mm_helper_join(&m);
	ck_assert_ptr_eq(m.result, target);
	ck_assert_int_eq(uffd_handle_read_events(h, &ev, 1), 0);

	uffd_handle_free(h);
	munmap(target, 4 * ps); /* p itself was moved away */
}
END_TEST

/*
 * The handle's registration table follows UNMAP and REMAP events: once the
 * event is read, the unmapped range is no longer registered (the kernel
 * dropped it) and a moved range is registered at its new address.
 */
START_TEST(unmap_event_updates_registrations)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle_with(UFFD_FEAT_EVENT_UNMAP);
	unsigned char *p = map_anon(4 * ps);
	struct uffd_event ev;
	struct mm_helper m;
	uint64_t modes = 0;

	reg(h, p, 4 * ps, UFFD_MODE_MISSING);
	mm_helper_start(&m, CALL_MUNMAP, p + ps, 2 * ps, NULL);
	wait_event(h, &ev);
	ck_assert_uint_eq(ev.type, UFFD_EVENT_TYPE_UNMAP);
	mm_helper_join(&m);

	/* The pages on either side stay registered... */
	ck_assert_int_eq(uffd_handle_get_range_ops(h, p, ps, NULL, &modes), 0);
	ck_assert_uint_eq(modes, UFFD_MODE_MISSING);
	ck_assert_int_eq(uffd_handle_get_range_ops(h, p + 3 * ps, ps, NULL,
						   NULL),
			 0);
	/* ...the unmapped ones do not. */
	ck_assert_msg(uffd_handle_get_range_ops(h, p + ps, 2 * ps, NULL,
						NULL) == -ENOENT,
		      "the unmapped range %p+%zu is still in the handle's "
		      "registration table after its UNMAP event",
		      (void *)(p + ps), 2 * ps);

	uffd_handle_free(h);
	/* Only the ends: the middle is gone, and something else (an
	 * allocator's mapping under ASan) may live there now. */
	munmap(p, ps);
	munmap(p + 3 * ps, ps);
}
END_TEST

START_TEST(remap_event_updates_registrations)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle_with(UFFD_FEAT_EVENT_REMAP);
	unsigned char *p = map_anon(2 * ps);
	unsigned char *target = mmap(NULL, 2 * ps, PROT_NONE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct uffd_event ev;
	struct mm_helper m;
	struct toucher t;
	uint64_t modes = 0;

	ck_assert(target != MAP_FAILED);
	reg(h, p, 2 * ps, UFFD_MODE_MISSING);
	mm_helper_start(&m, CALL_MREMAP, p, 2 * ps, target);
	wait_event(h, &ev);
	ck_assert_uint_eq(ev.type, UFFD_EVENT_TYPE_REMAP);
	mm_helper_join(&m);

	/* The kernel kept the registration on the moved range. */
	toucher_start(&t, target + ps, false, 0);
	wait_fault(h, target + ps, 0);
	ck_assert_msg(uffd_handle_zeropage(h, target + ps, ps, 0, NULL) == 0,
		      "zeropage: %s", uffd_last_error());
	toucher_join(&t);

	ck_assert_msg(uffd_handle_get_range_ops(h, p, 2 * ps, NULL, NULL) ==
			      -ENOENT,
		      "the old range %p is still in the handle's registration "
		      "table after its REMAP event", (void *)p);
	ck_assert_msg(uffd_handle_get_range_ops(h, target, 2 * ps, NULL,
						&modes) == 0,
		      "the new range is not in the table: %s",
		      uffd_last_error());
	ck_assert_uint_eq(modes, UFFD_MODE_MISSING);

	uffd_handle_free(h);
	munmap(target, 2 * ps);
}
END_TEST

START_TEST(copy_eagain_while_remove_unread)
{
	size_t ps = test_page();
	struct uffd_handle *h = open_handle_with(UFFD_FEAT_EVENT_REMOVE);
	unsigned char *p = map_anon(4 * ps), *src = filled_page(0x5e);
	struct uffd_event ev;
	struct mm_helper m;
	size_t done = 99;

	reg(h, p, 4 * ps, UFFD_MODE_MISSING);
	mm_helper_start(&m, CALL_MADV_DONTNEED, p, 2 * ps, NULL);
	wait_readable(h); /* the REMOVE event is queued, not read */

	ck_assert_uffd_err(uffd_handle_copy(h, p + 3 * ps, src, ps, 0, &done),
			   EAGAIN, "pending events");
	ck_assert_uint_eq(done, 0);
	ck_assert(!atomic_load(&m.finished));

	wait_event(h, &ev);
	ck_assert_uint_eq(ev.type, UFFD_EVENT_TYPE_REMOVE);
	ck_assert_uint_eq(ev.range.start, (uintptr_t)p);
	ck_assert_uint_eq(ev.range.end, (uintptr_t)(p + 2 * ps));
	mm_helper_join(&m);

	ck_assert_msg(uffd_handle_copy(h, p + 3 * ps, src, ps, 0, &done) == 0,
		      "copy after the event: %s", uffd_last_error());
	ck_assert_uint_eq(done, ps);
	ck_assert_mem_eq(p + 3 * ps, src, ps);

	uffd_handle_free(h);
	munmap(src, ps);
	munmap(p, 4 * ps);
}
END_TEST

static Suite *events_suite(void)
{
	Suite *s = suite_create("events");
	TCase *tc;

	tc = tcase_create("faults");
	tcase_add_test(tc, fault_read_resolved_by_copy);
	tcase_add_test(tc, fault_read_resolved_by_zeropage);
	tcase_add_test(tc, fault_write_has_write_flag);
	tcase_add_test(tc, thread_id_is_faulting_thread);
	tcase_add_test(tc, thread_id_zero_without_feature);
	tcase_add_test(tc, exact_address_keeps_offset);
	tcase_add_test(tc, address_page_aligned_without_exact);
	tcase_add_test(tc, minor_fault_resolved_by_continue);
	tcase_add_test(tc, wp_fault_resolved_by_unprotect);
	suite_add_tcase(s, tc);

	tc = tcase_create("read");
	tcase_add_test(tc, batch_read_two_faults);
	tcase_add_test(tc, read_max_one_leaves_rest_queued);
	tcase_add_test(tc, read_nothing_pending_returns_zero);
	tcase_add_test(tc, read_invalid_arguments);
	suite_add_tcase(s, tc);

	tc = tcase_create("mm-events");
	tcase_add_test(tc, fork_event_gives_adoptable_fd);
	tcase_add_test(tc, remove_event_on_madvise_dontneed);
	tcase_add_test(tc, unmap_event_on_munmap);
	tcase_add_test(tc, remap_event_on_mremap);
	tcase_add_test(tc, copy_eagain_while_remove_unread);
	tcase_add_test(tc, unmap_event_updates_registrations);
	tcase_add_test(tc, remap_event_updates_registrations);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(events_suite());
}
