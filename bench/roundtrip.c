// SPDX-License-Identifier: MIT
/*
 * Scenarios 1, 5 and 6: the cost of one fault, touched one page at a time
 * by one thread and resolved by one handler, through libuffd's loop, the
 * hand-written raw loop, in-thread SIGBUS resolution, and with no
 * userfaultfd at all (the kernel's own first-touch fault). Run unpinned
 * and with every thread pinned to one CPU, since on a VM waking a handler
 * on another CPU costs more than everything else.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <libuffd.h>

#include "bench.h"
#include "rt.h"

#define HUGE_PAGE (2u << 20)

const struct rt_case rt_cases[RT_NCASES] = {
	{ "anon MISSING+COPY", RAW_COPY, false, true },
	{ "anon MISSING+ZEROPAGE", RAW_ZEROPAGE, false, false },
	{ "memfd MINOR+CONTINUE", RAW_CONTINUE, false, false },
	{ "anon WP unprotect", RAW_UNPROTECT, false, true },
	{ "hugetlb 2 MiB MISSING+COPY", RAW_COPY, true, true },
};

static char *rt_src;     /* page contents for COPY, reused by every run */
static size_t rt_src_len;

static size_t rt_page(const struct rt_case *c)
{
	return c->huge ? HUGE_PAGE : (size_t)sysconf(_SC_PAGESIZE);
}

size_t rt_pages(const struct rt_case *c)
{
	return c->huge ? opts.hugepages : opts.rt_faults;
}

const char *rt_source_pages(size_t len)
{
	if (rt_src_len < len) {
		bench_unmap(rt_src, rt_src_len);
		rt_src = bench_map_anon(len);
		rt_src_len = len;
		for (size_t i = 0; i < len; i += 64)
			rt_src[i] = (char)(i / 4096 + 1);
	}
	return rt_src;
}

/* Fresh memory for one run: the faults must be first touches. */
void rt_mem_make(const struct rt_case *c, bool populate, struct rt_mem *m)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS;

	m->page = rt_page(c);
	m->len = rt_pages(c) * m->page;
	m->memfd = -1;
	if (c->op == RAW_CONTINUE) {
		m->memfd = memfd_create("uffd-bench", MFD_CLOEXEC);
		/* fallocate puts (zeroed) pages in the page cache: a minor
		 * fault away from being mapped */
		if (m->memfd < 0 || fallocate(m->memfd, 0, 0, (off_t)m->len))
			bench_die("memfd: %s", strerror(errno));
		flags = MAP_SHARED;
	}
	if (c->huge)
		flags |= MAP_HUGETLB;
	m->addr = mmap(NULL, m->len, PROT_READ | PROT_WRITE, flags, m->memfd,
		       0);
	if (m->addr == MAP_FAILED)
		bench_die("mmap for %s: %s", c->name, strerror(errno));
	if (populate)
		memset(m->addr, 1, m->len);
}

void rt_mem_free(struct rt_mem *m)
{
	munmap(m->addr, m->len);
	if (m->memfd >= 0)
		close(m->memfd);
}

/* Nanoseconds per fault of a touch pass over m. */
static double rt_touch(const struct rt_case *c, struct rt_mem *m)
{
	uint64_t t0 = bench_now_ns();

	bench_touch(m->addr, m->len, m->page, c->write);
	return (double)(bench_now_ns() - t0) / (double)(m->len / m->page);
}

double rt_run_first_touch(const struct rt_case *c)
{
	struct rt_mem m;
	double ns;

	rt_mem_make(c, false, &m);
	ns = rt_touch(c, &m);
	rt_mem_free(&m);
	return ns;
}

double rt_run_raw(const struct rt_case *c, int pin_cpu)
{
	struct rt_mem m;
	struct raw_loop *raw;
	double ns;

	rt_mem_make(c, c->op == RAW_UNPROTECT, &m);
	if (pin_cpu >= 0)
		bench_pin_self(pin_cpu);
	raw = raw_loop_start(m.addr, m.len, m.page, c->op,
			     rt_source_pages(m.len), 1);
	ns = rt_touch(c, &m);
	if (raw_loop_faults(raw) != m.len / m.page)
		bench_die("raw loop: %llu faults for %zu pages",
			  (unsigned long long)raw_loop_faults(raw),
			  m.len / m.page);
	raw_loop_stop(raw);
	if (pin_cpu >= 0)
		bench_unpin_self();
	rt_mem_free(&m);
	return ns;
}

struct uffd_handle *rt_handle(uint64_t features)
{
	struct uffd_handle_config *cfg;
	struct uffd_handle *h;

	if (uffd_handle_config_new(&cfg) ||
	    (features && uffd_handle_config_require_features(cfg, features)) ||
	    uffd_handle_new(cfg, &h))
		bench_die("handle: %s", uffd_last_error());
	uffd_handle_config_free(cfg);
	return h;
}

/* A region config for one run: no readahead, so a fault is one page. */
struct uffd_region_config *rt_region(const struct rt_case *c,
				     struct rt_mem *m)
{
	struct uffd_region_config *rc;
	struct uffd_source *src = NULL;
	uint64_t modes = c->op == RAW_CONTINUE	  ? UFFD_MODE_MINOR
			 : c->op == RAW_UNPROTECT ? UFFD_MODE_WP
						  : UFFD_MODE_MISSING;
	int ret = 0;

	if (c->op == RAW_COPY)
		ret = uffd_source_new_buffer(rt_source_pages(m->len), m->len,
					     &src);
	else if (c->op == RAW_ZEROPAGE)
		ret = uffd_source_new_zero(&src);
	if (ret || uffd_region_config_new(&rc) ||
	    uffd_region_config_set_range(rc, m->addr, m->len) ||
	    uffd_region_config_set_modes(rc, modes) ||
	    uffd_region_config_set_readahead(rc, 0, false) ||
	    (src && uffd_region_config_set_source(rc, src, 0)))
		bench_die("region config: %s", uffd_last_error());
	uffd_source_free(src); /* the config holds its own reference */
	return rc;
}

double rt_run_loop(const struct rt_case *c, enum uffd_loop_driver driver,
		   int pin_cpu)
{
	struct uffd_handle *h = rt_handle(0);
	struct uffd_loop_config *lc;
	struct uffd_region_config *rc;
	struct uffd_loop *loop;
	struct rt_mem m;
	double ns;

	rt_mem_make(c, c->op == RAW_UNPROTECT, &m);
	rc = rt_region(c, &m);
	if (uffd_loop_config_new(&lc) ||
	    uffd_loop_config_set_driver(lc, driver) ||
	    uffd_loop_new(h, lc, &loop) || uffd_loop_add_region(loop, rc, NULL))
		bench_die("loop for %s: %s", c->name, uffd_last_error());
	if (c->op == RAW_UNPROTECT &&
	    uffd_handle_writeprotect(h, m.addr, m.len, true, 0))
		bench_die("write-protect: %s", uffd_last_error());
	if (pin_cpu >= 0)
		bench_pin_self(pin_cpu);
	if (uffd_loop_start(loop))
		bench_die("loop start: %s", uffd_last_error());
	ns = rt_touch(c, &m);
	uffd_loop_free(loop);
	if (pin_cpu >= 0)
		bench_unpin_self();
	uffd_loop_config_free(lc);
	uffd_region_config_free(rc);
	uffd_handle_free(h);
	rt_mem_free(&m);
	return ns;
}

double rt_run_sigbus(const struct rt_case *c)
{
	struct uffd_handle *h = rt_handle(UFFD_FEAT_SIGBUS);
	struct uffd_region_config *rc;
	struct uffd_sigbus *sb;
	struct rt_mem m;
	double ns;

	rt_mem_make(c, false, &m);
	rc = rt_region(c, &m);
	if (uffd_sigbus_new(h, &sb) || uffd_sigbus_add_region(sb, rc))
		bench_die("sigbus for %s: %s", c->name, uffd_last_error());
	ns = rt_touch(c, &m);
	uffd_sigbus_free(sb);
	uffd_region_config_free(rc);
	uffd_handle_free(h);
	rt_mem_free(&m);
	return ns;
}

#define ROW_LOOP "libuffd loop, poll"
#define ROW_URING "libuffd loop, io_uring"
#define ROW_RAW "raw loop"
#define ROW_TOUCH "no uffd, first touch"

/* One repetition of every implementation, in a fixed order. */
static void rt_case_once(const char *group, const struct rt_case *c,
			 int pin, bool record)
{
	struct bench_row *loop = bench_row(group, ROW_LOOP, "us/fault",
					   BENCH_TIME);
	struct bench_row *raw = bench_row(group, ROW_RAW, "us/fault",
					  BENCH_TIME);
	struct bench_row *touch = bench_row(group, ROW_TOUCH, "us/fault",
					    BENCH_TIME);
	double v[4] = { 0 };

	bench_row_refs(loop, ROW_RAW, ROW_TOUCH);
	bench_row_refs(raw, ROW_TOUCH, NULL);
	v[0] = rt_run_raw(c, pin) / 1000;
	v[1] = rt_run_loop(c, UFFD_DRIVER_POLL, pin) / 1000;
	v[2] = rt_run_first_touch(c) / 1000;
	if (c->op == RAW_COPY && !c->huge && bench_have_uring())
		v[3] = rt_run_loop(c, UFFD_DRIVER_URING, pin) / 1000;
	if (!record)
		return;
	bench_add(raw, v[0]);
	bench_add(loop, v[1]);
	bench_add(touch, v[2]);
	if (c->op == RAW_COPY && !c->huge && bench_have_uring()) {
		struct bench_row *u = bench_row(group, ROW_URING, "us/fault",
						BENCH_TIME);

		bench_row_refs(u, ROW_RAW, ROW_TOUCH);
		bench_add(u, v[3]);
	}
}

static void rt_case_run(const char *group, const struct rt_case *c, int pin)
{
	char why[160];

	if (c->huge && !bench_hugepages_get(opts.hugepages, why, sizeof(why))) {
		bench_skip(group, ROW_LOOP, "%s", why);
		return;
	}
	bench_progress("%s", group);
	for (unsigned r = 0; r <= opts.reps; r++)
		rt_case_once(group, c, pin, r > 0); /* r 0: warm-up */
	if (c->huge)
		bench_hugepages_put();
}

void scenario_roundtrip(void)
{
	char group[96];

	for (int pinned = 0; pinned < 2; pinned++) {
		for (unsigned i = 0; i < RT_NCASES; i++) {
			snprintf(group, sizeof(group), "%s round trip: %s",
				 pinned ? "6 pinned (one CPU)"
					: "1 unpinned",
				 rt_cases[i].name);
			rt_case_run(group, &rt_cases[i], pinned ? 0 : -1);
		}
	}
	bench_target("round trip within 5% of the raw loop (anon COPY, "
		     "unpinned)", "1 unpinned round trip: anon MISSING+COPY",
		     ROW_LOOP, 0, 0.95);
	bench_target("round trip within 5% of the raw loop (anon COPY, "
		     "pinned)", "6 pinned (one CPU) round trip: anon MISSING+COPY",
		     ROW_LOOP, 0, 0.95);
}

#define ROW_SIGBUS "libuffd sigbus, in-thread"
#define ROW_LOOP_PIN "libuffd loop, pinned"

void scenario_sigbus(void)
{
	const struct rt_case *c = &rt_cases[0];
	const char *group = "5 in-thread SIGBUS vs thread loop: anon COPY";
	struct bench_row *sb = bench_row(group, ROW_SIGBUS, "us/fault",
					 BENCH_TIME);
	struct bench_row *loop = bench_row(group, ROW_LOOP, "us/fault",
					   BENCH_TIME);
	struct bench_row *pin = bench_row(group, ROW_LOOP_PIN, "us/fault",
					  BENCH_TIME);

	bench_progress("%s", group);
	bench_row_refs(sb, ROW_LOOP, ROW_LOOP_PIN);
	for (unsigned r = 0; r <= opts.reps; r++) {
		double a = rt_run_sigbus(c) / 1000;
		double b = rt_run_loop(c, UFFD_DRIVER_POLL, -1) / 1000;
		double d = rt_run_loop(c, UFFD_DRIVER_POLL, 0) / 1000;

		if (!r)
			continue;
		bench_add(sb, a);
		bench_add(loop, b);
		bench_add(pin, d);
	}
	bench_target("SIGBUS mode >= 3x faster per fault than the thread "
		     "loop (unpinned)", group, ROW_SIGBUS, 0, 3.0);
	bench_target("SIGBUS mode >= 3x faster per fault than the thread "
		     "loop (pinned)", group, ROW_SIGBUS, 1, 3.0);
}
