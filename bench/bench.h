/* SPDX-License-Identifier: MIT */
/*
 * uffd-bench: private header shared by the benchmark's files.
 *
 * Every scenario measures libuffd next to its reference in the same
 * process run, alternating them repetition by repetition, so that a ratio
 * stays meaningful when the machine's speed drifts (a shared VM).
 */
#ifndef UFFD_BENCH_H
#define UFFD_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_MAX_REPS 16

struct bench_opts {
	bool quick;
	bool json;
	unsigned reps;          /* measured repetitions, after one warm-up */
	unsigned restore_reps;  /* the same for the (long) restore runs */
	unsigned rt_faults;     /* faults per round-trip run */
	unsigned tp_faults;     /* faults per throughput run */
	size_t restore_bytes;   /* image size for lazy restore */
	unsigned hugepages;     /* 2 MiB faults per hugetlb run */
	const char *dir;        /* where the restore image lives (a disk) */
	const char *only;       /* run only scenarios whose name has this */
};

extern struct bench_opts opts;

/* How a row's figure compares: time per unit (lower is better) or a rate
 * (higher is better). Ratios are always "speed relative to the
 * reference": >= 1.0 means at least as fast. */
enum bench_kind { BENCH_TIME, BENCH_RATE, BENCH_SIZE };

struct bench_row {
	char group[128];
	char name[96];
	const char *unit;
	enum bench_kind kind;
	double v[BENCH_MAX_REPS];
	unsigned n;
	char ref[2][96];        /* names of reference rows in the group */
	char note[160];         /* e.g. why the row was skipped */
};

/* harness.c */
uint64_t bench_now_ns(void);
struct bench_row *bench_row(const char *group, const char *name,
			    const char *unit, enum bench_kind kind);
void bench_row_refs(struct bench_row *row, const char *ref0,
		    const char *ref1);
void bench_add(struct bench_row *row, double value);
void bench_skip(const char *group, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
double bench_median(const struct bench_row *row);
double bench_ratio(const struct bench_row *row, unsigned ref);
const struct bench_row *bench_find(const char *group, const char *name);
void bench_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bench_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bench_target(const char *what, const char *group, const char *name,
		  unsigned ref, double threshold);
void bench_print(void);
void bench_print_json(void);
/* Fails the whole run: a benchmark that cannot measure says so. */
void bench_die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

/* cpu.c: pinning by affinity, inherited by the threads created while it
 * is in force (libuffd's workers included). */
void bench_pin_self(int cpu);
void bench_unpin_self(void);
int bench_ncpus(void);
bool bench_have_uring(void);
void bench_machine_describe(char *buf, size_t size);

/* mem.c */
void *bench_map_anon(size_t len);
void bench_unmap(void *addr, size_t len);
void bench_prewarm(size_t len);
uint64_t bench_rss_anon_kib(void);
uint64_t bench_hwm_kib(void);
void bench_reset_hwm(void);
/* Reserves n 2 MiB huge pages (serialised with the test suite through
 * its lock file); false with a reason when it cannot. */
bool bench_hugepages_get(unsigned n, char *why, size_t size);
void bench_hugepages_put(void);

/* raw.c: the hand-written reference handler, on raw kernel ioctls. */
enum raw_op { RAW_COPY, RAW_ZEROPAGE, RAW_CONTINUE, RAW_UNPROTECT };
struct raw_loop;
struct raw_loop *raw_loop_start(void *addr, size_t len, size_t page,
				enum raw_op op, const char *src,
				unsigned threads);
void raw_loop_stop(struct raw_loop *raw);
uint64_t raw_loop_faults(const struct raw_loop *raw);

/* scenarios */
void scenario_roundtrip(void);
void scenario_throughput(void);
void scenario_sigbus(void);
void scenario_restore(void);
void scenario_memory(void);

/* Touch every page of [addr, addr+len) once, in order; write or read. */
uint64_t bench_touch(char *addr, size_t len, size_t page, bool write);

#endif
