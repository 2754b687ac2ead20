// SPDX-License-Identifier: MIT
/*
 * Scenario 2: faults per second with 1 and 2 faulting threads and 1 and 2
 * handler threads (libuffd's loop workers, or as many raw handler
 * threads), anonymous memory, one page per fault.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>

#include "bench.h"
#include "rt.h"

#define MAX_TOUCHERS 2

struct toucher {
	pthread_t thread;
	pthread_barrier_t *start;
	char *addr;
	size_t len, page;
};

static void *toucher_main(void *arg)
{
	struct toucher *t = arg;

	pthread_barrier_wait(t->start);
	bench_touch(t->addr, t->len, t->page, true);
	return NULL;
}

/* Touches m with n threads, each on its own slice; seconds taken. */
static double touch_parallel(struct rt_mem *m, unsigned n)
{
	struct toucher t[MAX_TOUCHERS];
	pthread_barrier_t start;
	size_t slice = m->len / n / m->page * m->page;
	uint64_t t0;

	pthread_barrier_init(&start, NULL, n + 1);
	for (unsigned i = 0; i < n; i++) {
		t[i] = (struct toucher){ .start = &start,
					 .addr = m->addr + i * slice,
					 .len = slice, .page = m->page };
		if (pthread_create(&t[i].thread, NULL, toucher_main, &t[i]))
			bench_die("pthread_create failed");
	}
	pthread_barrier_wait(&start);
	t0 = bench_now_ns();
	for (unsigned i = 0; i < n; i++)
		pthread_join(t[i].thread, NULL);
	pthread_barrier_destroy(&start);
	return (double)(bench_now_ns() - t0) / 1e9;
}

static struct rt_case tp_case(void)
{
	struct rt_case c = rt_cases[0]; /* anon MISSING+COPY */

	return c;
}

static double tp_raw(unsigned touchers, unsigned handlers)
{
	struct rt_case c = tp_case();
	struct raw_loop *raw;
	struct rt_mem m;
	double s;

	rt_mem_make(&c, false, &m);
	raw = raw_loop_start(m.addr, m.len, m.page, c.op,
			     rt_source_pages(m.len), handlers);
	s = touch_parallel(&m, touchers);
	raw_loop_stop(raw);
	rt_mem_free(&m);
	return (double)(m.len / m.page) / s;
}

static double tp_loop(unsigned touchers, unsigned workers)
{
	struct rt_case c = tp_case();
	struct uffd_handle *h = rt_handle(0);
	struct uffd_loop_config *lc;
	struct uffd_region_config *rc;
	struct uffd_loop *loop;
	struct rt_mem m;
	double s;

	rt_mem_make(&c, false, &m);
	rc = rt_region(&c, &m);
	if (uffd_loop_config_new(&lc) ||
	    uffd_loop_config_set_threads(lc, workers) ||
	    uffd_loop_new(h, lc, &loop) ||
	    uffd_loop_add_region(loop, rc, NULL) || uffd_loop_start(loop))
		bench_die("throughput loop: %s", uffd_last_error());
	s = touch_parallel(&m, touchers);
	uffd_loop_free(loop);
	uffd_loop_config_free(lc);
	uffd_region_config_free(rc);
	uffd_handle_free(h);
	rt_mem_free(&m);
	return (double)(m.len / m.page) / s;
}

void scenario_throughput(void)
{
	const char *group = "2 throughput: anon MISSING+COPY, one page per "
			    "fault";
	unsigned saved = opts.rt_faults;

	opts.rt_faults = opts.tp_faults; /* the size rt_mem_make uses */
	bench_progress("%s", group);
	for (unsigned r = 0; r <= opts.reps; r++) {
		for (unsigned t = 1; t <= 2; t++) {
			for (unsigned w = 1; w <= 2; w++) {
				char lib[96], raw[96];
				struct bench_row *lr, *rr;
				double a, b;

				snprintf(lib, sizeof(lib), "libuffd: %u faulting "
					 "x %u worker%s", t, w, w > 1 ? "s" : "");
				snprintf(raw, sizeof(raw), "raw: %u faulting x "
					 "%u handler%s", t, w, w > 1 ? "s" : "");
				b = tp_raw(t, w);
				a = tp_loop(t, w);
				if (!r)
					continue;
				lr = bench_row(group, lib, "faults/s",
					       BENCH_RATE);
				rr = bench_row(group, raw, "faults/s",
					       BENCH_RATE);
				bench_row_refs(lr, raw, NULL);
				bench_add(lr, a);
				bench_add(rr, b);
			}
		}
	}
	opts.rt_faults = saved;
}
