/* SPDX-License-Identifier: MIT */
/*
 * The engine's private structures: regions at run time, requests (a window
 * of pages being fetched), workers and the loop. Shared by loop.c (life
 * cycle, workers), serve.c (faults and events), region.c and the drivers.
 *
 * Data flows one way: fault -> region -> request (window) -> source fetch
 * -> resolve (COPY / CONTINUE / ZEROPAGE) -> wake.
 */
#ifndef LIBUFFD_LOOP_H
#define LIBUFFD_LOOP_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "internal.h"

#define LOOP_MAX_THREADS 64
#define LOOP_BATCH 32          /* events taken per read() */
#define LOOP_SLOTS 64          /* requests in flight at once */
#define LOOP_MAX_WINDOW_BYTES (1u << 20) /* largest fetch window */
#define LOOP_PREFETCH_PAGES 64 /* pages per background prefetch step */
#define LOOP_RA_START 4        /* adaptive readahead's first window */
#define LOOP_PREFETCH_DEPTH 8  /* background requests in flight at most */
#define LOOP_ADVISE_BYTES (32u << 20) /* kernel readahead ahead of prefetch */
#define LOOP_READ_BACKOFF_MAX 16 /* most queue reads skipped after an empty one */

struct uffd_loop;

struct uffd_region {
	struct uffd_loop *loop;
	uintptr_t start;
	size_t len;
	size_t page_size;
	unsigned page_shift;
	size_t npages;
	uint64_t modes;
	enum uffd_backend backend;
	struct uffd_source *src; /* NULL with a fault callback */
	uint64_t src_offset;
	unsigned char *alias;    /* MINOR fill path, or NULL */
	uffd_fault_fn fault_fn;
	void *fault_arg;
	bool continue_fill;      /* fill through alias, then CONTINUE */
	bool zero_by_copy;       /* no ZEROPAGE here (hugetlb) */
	bool can_poison;
	bool remote;
	bool registered;         /* by the loop: unregister at the end */
	bool dead;               /* unmapped: kept until the loop goes */
	_Atomic bool active;     /* registered: prefetch may start */
	/* readahead */
	size_t ra_max;
	bool ra_adaptive;
	_Atomic size_t ra_window;
	_Atomic size_t ra_next;  /* page after the last window */
	/* prefetch */
	bool prefetch;
	_Atomic size_t prefetch_cursor;
	_Atomic size_t advised;  /* file source: readahead asked up to here */
	uint64_t *order;
	size_t norder;
	_Atomic size_t order_pos;
	/* working-set record */
	bool record;
	uint64_t *ws;
	_Atomic size_t ws_len;
	/* one bit per page: resolved by the loop (advisory: a fault is
	 * always served, whatever the bit says) */
	_Atomic uint64_t *populated;
	_Atomic size_t resolved;
	struct uffd_region *derived_from; /* a remapped part's original */
};

/* A window of pages being fetched and resolved. */
struct uffd_request {
	struct uffd_fetch fetch; /* first: container_of by cast */
	struct uffd_loop *loop;
	struct uffd_region *region;
	size_t page;             /* first page of the window */
	size_t npages;
	size_t fault_page;       /* the page a thread waits on, or SIZE_MAX */
	bool prefetch;
	bool in_use;
	int result;
	unsigned char *staging;  /* owned, made on first use */
	size_t staging_len;      /* 1 MiB, or a huge page */
	uint64_t t_start_ns;     /* fault read, for the latency histogram */
	struct uffd_request *next_done; /* completion queue link */
};

struct uffd_worker {
	struct uffd_loop *loop;
	pthread_t thread;
	struct uffd_loop_stats stats; /* this worker's own counts */
	struct uffd_event events[LOOP_BATCH];
	struct uffd_request *retry[LOOP_SLOTS]; /* EAGAIN: after the batch */
	size_t nretry;
	/* reads to skip before trying the queue without waiting again
	 * (uffd_serve_try_ready) */
	unsigned read_skip, read_backoff;
	void *driver;             /* the driver's per-worker state */
};

struct uffd_driver {
	const char *name;
	int (*worker_init)(struct uffd_worker *w);
	void (*worker_fini)(struct uffd_worker *w);
	/* Waits for work (timeout_ms -1: forever) and does it; returns the
	 * number of things handled, 0 on timeout, or -errno. */
	int (*wait_and_serve)(struct uffd_worker *w, int timeout_ms);
	/* An fd that is readable when the worker has completions to reap
	 * (for embedding), or -1; may be NULL. */
	int (*poll_fd)(struct uffd_worker *w);
	/* Reads [off, off+len) of a file source into buf for req: returns
	 * 0 when the read was started asynchronously (it ends in
	 * uffd_serve_read_done()), 1 when it was done here and now (the
	 * caller completes req), or -1 to have the caller read it
	 * synchronously. May be NULL. */
	int (*read_async)(struct uffd_worker *w, struct uffd_request *req,
			  const struct uffd_source *src, uint64_t off,
			  void *buf, size_t len);
};

extern const struct uffd_driver uffd_driver_poll;
#ifdef LIBUFFD_HAVE_URING
extern const struct uffd_driver uffd_driver_uring;
#endif

struct uffd_loop_config {
	enum uffd_loop_driver driver;
	unsigned threads;
	enum uffd_fail_policy fail;
	enum uffd_stop_policy stop;
	uffd_error_fn error_fn;
	void *error_arg;
	uffd_fork_fn fork_fn;
	void *fork_arg;
};

struct uffd_loop {
	struct uffd_handle *h;
	int uffd;
	struct uffd_loop_config cfg;
	const struct uffd_driver *driver;
	/* regions, sorted by start; dead ones move to the graveyard */
	pthread_rwlock_t regions_lock;
	struct uffd_region **regions;
	size_t nregions;
	struct uffd_region **graveyard;
	size_t ngraveyard;
	/* requests in flight */
	pthread_mutex_t slots_lock;
	struct uffd_request slots[LOOP_SLOTS];
	size_t slots_used;       /* in_use slots (under slots_lock) */
	/* completions from other threads (custom sources) */
	_Atomic(struct uffd_request *) done_head;
	int done_efd;
	_Atomic bool any_prefetch; /* a prefetching region was ever added */
	_Atomic unsigned prefetch_inflight;
	int pagemap; /* /proc/self/pagemap, to tell a stale fault */
	/* stopping */
	atomic_bool stopping;
	int stop_efd;
	/* workers */
	struct uffd_worker *workers;
	unsigned nworkers;
	bool running;
	struct uffd_worker embed; /* for uffd_loop_process / run */
	bool running_inline;      /* uffd_loop_run() active (done_lock) */
	bool embed_ready;
	int embed_epfd;
	/* completion of prefetching regions */
	pthread_mutex_t done_lock;
	pthread_cond_t done_cond;
	/* stats of workers that have exited */
	pthread_mutex_t stats_lock;
	struct uffd_loop_stats retired;
	/* a zeroed page for zero fill by COPY (hugetlb) */
	unsigned char *zero_page;
	size_t zero_page_size;
};

/* ---- region.c ---- */
int uffd_region_create(struct uffd_loop *loop,
		       const struct uffd_region_config *cfg,
		       struct uffd_region **out);
void uffd_region_destroy(struct uffd_region *r);
bool uffd_region_test(const struct uffd_region *r, size_t page);
/* Marks [page, page+n) resolved; returns how many were new. */
size_t uffd_region_mark(struct uffd_region *r, size_t page, size_t n);
void uffd_region_clear(struct uffd_region *r, size_t page, size_t n);
bool uffd_region_complete(const struct uffd_region *r);
void uffd_region_record(struct uffd_region *r, size_t page);
/* A new region for [page, page+n) of r, placed at new_start (a partial
 * mremap), sharing its source; NULL when out of memory. */
struct uffd_region *uffd_region_derive(struct uffd_region *r, size_t page,
				       size_t n, uintptr_t new_start);

/* ---- serve.c ---- */
/* Handles a batch of events read by w: layout events first, then faults. */
void uffd_serve_batch(struct uffd_worker *w, size_t n);
/* Resolves requests that got -EAGAIN, after pending events are read. */
void uffd_serve_retries(struct uffd_worker *w);
/* Completes requests finished on other threads. Returns how many. */
int uffd_serve_completions(struct uffd_worker *w);
/* A file read started by the driver ended (on the worker's thread):
 * result is bytes read or -errno; short reads are finished here. */
void uffd_serve_read_done(struct uffd_worker *w, struct uffd_request *req,
			  ssize_t result);
/* Whether a background step may start now (work left, depth not full). */
bool uffd_serve_prefetch_wanted(struct uffd_loop *loop);
/* One background prefetch step; false when there is nothing to do. */
bool uffd_serve_prefetch(struct uffd_worker *w);
/* A request's fetch is done (any thread). */
void uffd_request_done(struct uffd_request *req, int result);
/* Reads and serves what the uffd has now, without blocking. */
int uffd_serve_ready(struct uffd_worker *w);
/* uffd_serve_ready() before a driver's wait, unless recent tries found
 * the queue empty; also serves completions when it found work. */
int uffd_serve_try_ready(struct uffd_worker *w);
/* stop: serves (or poisons) the faults still queued. */
void uffd_serve_drain(struct uffd_worker *w);

/* ---- loop.c ---- */
struct uffd_region *uffd_loop_find(struct uffd_loop *loop, uintptr_t addr);
/* Moves regions[i] to the graveyard (write lock held): dead regions stay
 * allocated while requests may still point at them. */
void uffd_loop_bury(struct uffd_loop *loop, size_t i);
void uffd_loop_notify_progress(struct uffd_loop *loop);
/* The poll driver's wait: poll() on the uffd and the loop's eventfds
 * (timeout_ms -1: forever), then serves what is ready; returns the number
 * of things handled, or -errno. */
int uffd_loop_poll_wait(struct uffd_worker *w, int timeout_ms);

#endif /* LIBUFFD_LOOP_H */
