/* SPDX-License-Identifier: MIT */
/* Round-trip runs, shared by the round-trip, SIGBUS and throughput
 * scenarios. */
#ifndef UFFD_BENCH_RT_H
#define UFFD_BENCH_RT_H

#include <libuffd.h>

#include "bench.h"

#define RT_NCASES 5

struct rt_case {
	const char *name;
	enum raw_op op;
	bool huge;
	bool write; /* touch by writing (else reading) */
};

struct rt_mem {
	char *addr;
	size_t len, page;
	int memfd;
};

extern const struct rt_case rt_cases[RT_NCASES];

size_t rt_pages(const struct rt_case *c);
const char *rt_source_pages(size_t len);
void rt_mem_make(const struct rt_case *c, bool populate, struct rt_mem *m);
void rt_mem_free(struct rt_mem *m);
struct uffd_handle *rt_handle(uint64_t features);
struct uffd_region_config *rt_region(const struct rt_case *c,
				     struct rt_mem *m);
/* Nanoseconds per fault; pin_cpu < 0: not pinned. */
double rt_run_first_touch(const struct rt_case *c);
double rt_run_raw(const struct rt_case *c, int pin_cpu);
double rt_run_loop(const struct rt_case *c, enum uffd_loop_driver driver,
		   int pin_cpu);
double rt_run_sigbus(const struct rt_case *c);

#endif
