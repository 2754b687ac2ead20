// SPDX-License-Identifier: MIT
/*
 * Serving faults and events.
 *
 * A batch of events is handled in causal order: layout events (REMOVE,
 * UNMAP, REMAP, FORK) change the bookkeeping first, under the regions'
 * write lock; then the faults, under the read lock. A fault becomes a
 * request: a window of missing pages from the faulting one on (readahead),
 * claimed in the in-flight table so no page is fetched twice, fetched from
 * the source and resolved with one ioctl that also wakes the window.
 *
 * The populated bitmap is advice, never a reason to skip a fault: every
 * fault gets a resolve attempt, and EEXIST means another handler won (wake
 * and count it). So stale bookkeeping can waste a readahead, but can never
 * leave a thread blocked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "loop.h"

/* ---- the in-flight table ---- */

static bool window_overlaps(const struct uffd_request *q,
			    const struct uffd_region *r, size_t page, size_t n)
{
	return q->in_use && q->region == r && page < q->page + q->npages &&
	       q->page < page + n;
}

/*
 * Claims a slot for [page, page+*n) of r, trimming the window where it runs
 * into another request. NULL with *busy when page itself is already on its
 * way, NULL without it when every slot is taken.
 */
static struct uffd_request *request_claim(struct uffd_loop *loop,
					  struct uffd_region *r, size_t page,
					  size_t *n, bool *busy)
{
	struct uffd_request *free_slot = NULL;
	size_t seen = 0;

	*busy = false;
	pthread_mutex_lock(&loop->slots_lock);
	/* every slot in use is looked at, and the first free one taken */
	for (size_t i = 0; i < LOOP_SLOTS &&
			   (seen < loop->slots_used || !free_slot); i++) {
		struct uffd_request *q = &loop->slots[i];

		seen += q->in_use;
		if (window_overlaps(q, r, page, 1)) {
			*busy = true;
			free_slot = NULL;
			break;
		}
		if (window_overlaps(q, r, page, *n))
			*n = q->page - page; /* q starts inside: stop there */
		if (!q->in_use && !free_slot)
			free_slot = q;
	}
	for (size_t k = 1; free_slot && k < *n; k++)
		if (uffd_region_test(r, page + k))
			*n = k;
	if (free_slot) {
		loop->slots_used++;
		free_slot->in_use = true;
		free_slot->region = r;
		free_slot->page = page;
		free_slot->npages = *n;
	}
	pthread_mutex_unlock(&loop->slots_lock);
	return free_slot;
}

static void request_release(struct uffd_request *req)
{
	if (req->prefetch)
		atomic_fetch_sub(&req->loop->prefetch_inflight, 1);
	pthread_mutex_lock(&req->loop->slots_lock);
	req->in_use = false;
	req->loop->slots_used--;
	pthread_mutex_unlock(&req->loop->slots_lock);
}

/* The slot's staging buffer, made once and reused: fresh memory is the
 * expensive part of a fault on a VM. */
static unsigned char *request_staging(struct uffd_request *req)
{
	/* a window is at most 1 MiB, or one page where pages are larger
	 * (hugetlb) */
	size_t need = req->region->page_size > LOOP_MAX_WINDOW_BYTES
			      ? req->region->page_size
			      : LOOP_MAX_WINDOW_BYTES;

	if (req->staging && req->staging_len < need) {
		munmap(req->staging, req->staging_len);
		req->staging = NULL;
	}
	if (!req->staging) {
		void *p = mmap(NULL, need, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		req->staging = p == MAP_FAILED ? NULL : p;
		req->staging_len = req->staging ? need : 0;
	}
	return req->staging;
}

/* ---- resolving ---- */

static uintptr_t page_addr(const struct uffd_region *r, size_t page)
{
	return r->start + ((uintptr_t)page << r->page_shift);
}

static void wake(struct uffd_loop *loop, uintptr_t start, size_t len)
{
	uffd_raw_wake(loop->uffd, start, len);
}

/*
 * One operation over [dst, dst+len): pages another handler mapped first
 * (EEXIST) are skipped and counted, partial progress is continued. Once a
 * piece was skipped the rest goes with DONTWAKE and one wake covers all.
 * Returns 0, -EAGAIN with *done set (layout changing: retry later) or the
 * operation's error.
 */
static int resolve_range(struct uffd_worker *w, struct uffd_region *r,
			 uint64_t op, uintptr_t dst, uintptr_t src, size_t len,
			 size_t *done)
{
	bool dontwake = false;
	int ret = 0;

	while (*done < len) {
		int64_t progress;

		ret = uffd_raw_fill_ex(w->loop->uffd, op, dst + *done,
				       src ? src + *done : 0, len - *done,
				       (dontwake ? UFFD_OPF_DONTWAKE : 0) |
					       (op == UFFD_OP_MOVE
							? UFFD_OPF_ALLOW_SRC_HOLES
							: 0),
				       &progress);
		if (progress > 0)
			*done += (size_t)progress;
		if (!ret || (ret == -EAGAIN && progress > 0))
			continue;
		if (ret != -EEXIST)
			break;
		w->stats.eexist_races++;
		dontwake = true;
		*done += r->page_size; /* that page is someone else's */
		ret = 0;
	}
	/* pieces mapped with DONTWAKE are woken whatever happens next */
	if (dontwake && *done)
		wake(w->loop, dst, *done < len ? *done : len);
	return *done >= len ? 0 : ret;
}

static uint64_t fill_op(const struct uffd_region *r, uintptr_t *src,
			const struct uffd_request *req)
{
	uint64_t off = r->src_offset + ((uint64_t)req->page << r->page_shift);

	if (r->continue_fill) {
		*src = 0;
		return UFFD_OP_CONTINUE;
	}
	if (r->src->kind == UFFD_SOURCE_ZERO && !r->zero_by_copy) {
		*src = 0;
		return UFFD_OP_ZEROPAGE;
	}
	if (r->src->kind == UFFD_SOURCE_MOVE) {
		*src = (uintptr_t)(r->src->buf + off);
		return UFFD_OP_MOVE; /* zero copy: the page itself moves */
	}
	if (r->src->kind == UFFD_SOURCE_ZERO)
		*src = (uintptr_t)r->loop->zero_page;
	else if (r->src->kind == UFFD_SOURCE_BUFFER)
		*src = (uintptr_t)(r->src->buf + off); /* no staging copy */
	else
		*src = (uintptr_t)req->staging;
	return UFFD_OP_COPY;
}

/* Zero fill when POISON is not to be had: ZEROPAGE, or COPY of zeros. */
static int zero_fill(struct uffd_worker *w, struct uffd_region *r,
		     uintptr_t dst, size_t len)
{
	size_t done = 0;

	if (!r->zero_by_copy)
		return resolve_range(w, r, UFFD_OP_ZEROPAGE, dst, 0, len, &done);
	for (size_t at = 0; at < len; at += r->page_size) {
		int ret;

		done = 0;
		ret = resolve_range(w, r, UFFD_OP_COPY, dst + at,
				    (uintptr_t)w->loop->zero_page, r->page_size,
				    &done);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * The page(s) cannot be had: poison them (SIGBUS on access) or map zeros,
 * as the policy says, so that no thread stays blocked. Reported to the
 * error callback.
 */
static void fail_pages(struct uffd_worker *w, struct uffd_region *r,
		       size_t page, size_t n, int err, bool report)
{
	struct uffd_loop *loop = w->loop;
	uintptr_t dst = page_addr(r, page);
	size_t len = n << r->page_shift, done = 0;
	int ret = -1;

	if (report) {
		w->stats.fetch_failures++;
		if (loop->cfg.error_fn)
			loop->cfg.error_fn(loop->cfg.error_arg, r,
					   (uint64_t)page << r->page_shift, err);
	}
	if (loop->cfg.fail == UFFD_FAIL_POISON && r->can_poison)
		ret = resolve_range(w, r, UFFD_OP_POISON, dst, 0, len, &done);
	if (!ret) {
		w->stats.pages_poisoned += n;
	} else if (!zero_fill(w, r, dst, len)) {
		w->stats.pages_zeroed += n;
	} else {
		/* nothing could be mapped: at least let it retry (it refaults
		 * and comes back here, never blocked for good) */
		wake(loop, dst, len);
	}
	/* settled, one way or the other: a region may be complete now */
	if (uffd_region_mark(r, page, n) && r->prefetch &&
	    uffd_region_complete(r))
		uffd_loop_notify_progress(loop);
}

static void latency(struct uffd_worker *w, uint64_t t0)
{
	uint64_t us = (uffd_now_ns() - t0) / 1000;
	unsigned b = us ? 63u - (unsigned)__builtin_clzll(us) : 0;

	w->stats.latency_us_log2[b < UFFD_LATENCY_BUCKETS ? b
							  : UFFD_LATENCY_BUCKETS - 1]++;
}

/* Counts pages newly resolved in r, and wakes wait_complete() when that
 * completes a prefetching region. */
static void account(struct uffd_worker *w, struct uffd_region *r,
		    size_t fresh)
{
	w->stats.pages_resolved += fresh;
	w->stats.bytes_resolved += fresh << r->page_shift;
	if (fresh && r->prefetch && uffd_region_complete(r))
		uffd_loop_notify_progress(w->loop);
}

/* Accounts a resolved request and frees its slot. */
static void request_finish(struct uffd_worker *w, struct uffd_request *req,
			   size_t fresh)
{
	struct uffd_region *r = req->region;

	account(w, r, fresh);
	if (req->prefetch)
		w->stats.prefetch_pages += fresh;
	else if (req->npages > 1)
		w->stats.readahead_pages += req->npages - 1;
	if (req->fault_page != SIZE_MAX)
		latency(w, req->t_start_ns);
	request_release(req);
}

/*
 * A move source: a page shared since (a fork) cannot move (EBUSY) and is
 * copied instead, the same data; pages never written in the source are
 * holes, skipped by the move: they read as zeros, so ZEROPAGE fills what is
 * still missing (EEXIST on the pages that moved).
 */
static int finish_move(struct uffd_worker *w, struct uffd_region *r,
		       uintptr_t dst, uintptr_t src, size_t len, int ret)
{
	uint64_t races = w->stats.eexist_races;
	size_t done = 0;

	if (ret == -EBUSY)
		ret = resolve_range(w, r, UFFD_OP_COPY, dst, src, len, &done);
	if (!ret)
		ret = zero_fill(w, r, dst, len);
	/* the zero pass meets every moved page: expected, not races */
	w->stats.eexist_races = races;
	return ret;
}

/*
 * Maps the fetched window. -EAGAIN: the layout is changing (an event is
 * unread); the request goes to the worker's retry list with what is left.
 */
static int resolve_request(struct uffd_worker *w, struct uffd_request *req)
{
	struct uffd_region *r = req->region;
	uintptr_t src, dst = page_addr(r, req->page);
	size_t len = req->npages << r->page_shift, done = 0;
	uint64_t op;
	int ret;

	if (r->dead) { /* unmapped meanwhile: only wake whoever waits */
		wake(w->loop, dst, len);
		request_release(req);
		return 0;
	}
	op = fill_op(r, &src, req);
	ret = resolve_range(w, r, op, dst, src, len, &done);
	if (op == UFFD_OP_MOVE)
		ret = finish_move(w, r, dst, src, len, ret);
	if (ret == -EAGAIN) {
		size_t pages = done >> r->page_shift;

		account(w, r, uffd_region_mark(r, req->page, pages));
		/* claims read the window under the lock: never half of it */
		pthread_mutex_lock(&w->loop->slots_lock);
		req->page += pages;
		req->npages -= pages;
		pthread_mutex_unlock(&w->loop->slots_lock);
		if (req->staging && src == (uintptr_t)req->staging)
			memmove(req->staging, req->staging + done, len - done);
		return -EAGAIN;
	}
	if (ret)
		fail_pages(w, r, req->page, req->npages, ret, true);
	request_finish(w, req, ret ? 0 : uffd_region_mark(r, req->page,
							  req->npages));
	return 0;
}

/* A request whose fetch ended, on the worker's thread. */
static void start_fetch(struct uffd_worker *w, struct uffd_request *req);

static void complete_request(struct uffd_worker *w, struct uffd_request *req)
{
	if (req->result < 0 && req->npages > 1) {
		/* a window failed: which page is bad is unknown, so fetch the
		 * one a thread waits on (or the first) alone; the others are
		 * left missing (their partial fill taken out of the page
		 * cache) and their waiters woken to fault on their own */
		size_t keep = req->fault_page != SIZE_MAX ? req->fault_page
							  : req->page;
		struct uffd_region *r = req->region;
		uintptr_t first = page_addr(r, req->page);
		size_t len = req->npages << r->page_shift;

		if (r->continue_fill)
			madvise(r->alias + (req->page << r->page_shift), len,
				MADV_REMOVE);
		/* shrink first: a waiter woken now must not find its page
		 * still claimed by this request */
		pthread_mutex_lock(&w->loop->slots_lock);
		req->page = keep;
		req->npages = 1;
		pthread_mutex_unlock(&w->loop->slots_lock);
		w->stats.fetch_retries++;
		wake(w->loop, first, len);
		start_fetch(w, req);
		return;
	}
	if (req->result < 0) {
		if (req->region->continue_fill) /* no partial data left */
			madvise(req->region->alias +
					(req->page << req->region->page_shift),
				req->npages << req->region->page_shift,
				MADV_REMOVE);
		fail_pages(w, req->region, req->page, req->npages, req->result,
			   true);
		request_finish(w, req, 0);
		return;
	}
	if (resolve_request(w, req) == -EAGAIN && w->nretry < LOOP_SLOTS)
		w->retry[w->nretry++] = req;
}

/* ---- fetching ---- */

static void fetch_done_async(struct uffd_fetch *fetch, int result)
{
	uffd_request_done((struct uffd_request *)fetch, result);
}

void uffd_request_done(struct uffd_request *req, int result)
{
	struct uffd_loop *loop = req->loop;
	struct uffd_request *head = atomic_load(&loop->done_head);

	req->result = result;
	do {
		req->next_done = head;
	} while (!atomic_compare_exchange_weak(&loop->done_head, &head, req));
	eventfd_write(loop->done_efd, 1);
}

int uffd_serve_completions(struct uffd_worker *w)
{
	struct uffd_loop *loop = w->loop;
	struct uffd_request *list = atomic_exchange(&loop->done_head, NULL);
	int n = 0;

	if (!list)
		return 0;
	pthread_rwlock_rdlock(&loop->regions_lock);
	while (list) {
		struct uffd_request *next = list->next_done;

		complete_request(w, list);
		list = next;
		n++;
	}
	pthread_rwlock_unlock(&loop->regions_lock);
	return n;
}

/* Where the fetched bytes go: straight into the page cache through the
 * alias (one copy), or the slot's staging buffer. */
static void *fetch_target(struct uffd_request *req)
{
	struct uffd_region *r = req->region;

	if (r->continue_fill)
		return r->alias + ((size_t)req->page << r->page_shift);
	return request_staging(req);
}

/* Starts the fetch; synchronous sources complete here and now. */
static void start_fetch(struct uffd_worker *w, struct uffd_request *req)
{
	struct uffd_region *r = req->region;
	struct uffd_source *src = r->src;
	uint64_t off = r->src_offset + ((uint64_t)req->page << r->page_shift);
	size_t len = req->npages << r->page_shift;
	void *buf = NULL;

	req->loop = w->loop;
	req->result = 0;
	/* buffers, moves and zeros without an alias are used in place */
	if (r->continue_fill || (src->kind != UFFD_SOURCE_BUFFER &&
				 src->kind != UFFD_SOURCE_MOVE &&
				 src->kind != UFFD_SOURCE_ZERO)) {
		buf = fetch_target(req);
		if (!buf) {
			req->result = -ENOMEM;
			complete_request(w, req);
			return;
		}
	}
	if (src->kind == UFFD_SOURCE_CUSTOM) {
		int started;

		req->fetch = (struct uffd_fetch){ src, off, len, buf,
						  req->fault_page != SIZE_MAX,
						  fetch_done_async };
		/* Only a failure to start is ours to complete: the fetch may
		 * already have completed (with its own result) before it
		 * returned, here or on another thread. */
		started = src->ops.fetch(src->arg, &req->fetch);
		if (started < 0) {
			req->result = started;
			complete_request(w, req);
		}
		return;
	}
	if (src->kind == UFFD_SOURCE_FD && w->loop->driver->read_async) {
		int how = w->loop->driver->read_async(w, req, src, off, buf,
						      len);

		if (how == 0)
			return; /* in flight */
		if (how > 0)
			buf = NULL; /* read already */
	}
	if (buf)
		req->result = uffd_source_read(src, off, buf, len);
	complete_request(w, req);
}

void uffd_serve_read_done(struct uffd_worker *w, struct uffd_request *req,
			  ssize_t result)
{
	struct uffd_region *r = req->region;
	size_t len = req->npages << r->page_shift;
	uint64_t off = r->src_offset + ((uint64_t)req->page << r->page_shift);
	unsigned char *buf = fetch_target(req);

	/* a short read (rare: end of file, or a signal) is finished here */
	if (result >= 0 && (size_t)result < len)
		result = uffd_source_read(r->src, off + (size_t)result,
					  buf + result, len - (size_t)result);
	req->result = result < 0 ? (int)result : 0;
	pthread_rwlock_rdlock(&w->loop->regions_lock);
	complete_request(w, req);
	pthread_rwlock_unlock(&w->loop->regions_lock);
	uffd_serve_retries(w);
}

/* ---- faults ---- */

/* Adaptive readahead: the window doubles while faults are sequential (each
 * lands just past the previous window) and falls back when they are not. */
/*
 * With an alias, a window is filled into the page cache: it must stop at
 * the first page already there (it may hold newer data than the source;
 * it is mapped by its own MINOR fault). mincore() on the alias says.
 */
static size_t cut_at_cached(const struct uffd_region *r, size_t page,
			    size_t n)
{
	unsigned char vec[LOOP_MAX_WINDOW_BYTES / 4096];
	size_t base = uffd_page_size();

	if (!r->continue_fill)
		return n;
	if (r->page_size == base) { /* one call for the window */
		if (n > sizeof(vec) ||
		    mincore(r->alias + (page << r->page_shift), n * base, vec))
			return n;
		for (size_t i = 0; i < n; i++)
			if (vec[i] & 1)
				return i;
		return n;
	}
	for (size_t i = 0; i < n; i++) /* huge pages: their first base page */
		if (!mincore(r->alias + ((page + i) << r->page_shift), base,
			     vec) && (vec[0] & 1))
			return i;
	return n;
}

static size_t readahead_window(struct uffd_region *r, size_t page)
{
	size_t win = atomic_load(&r->ra_window), n = 1;

	if (r->ra_adaptive && r->prefetch) {
		/* prefetch fetches every page anyway: a larger window wastes
		 * no I/O, and saves faults */
		win = r->ra_max;
	} else if (r->ra_adaptive) {
		/* Sequential: the fault follows the last window, or the page
		 * before it is resolved already (a thread following the
		 * prefetch frontier, whose windows never set ra_next). */
		if (page == atomic_load(&r->ra_next) ||
		    (page && uffd_region_test(r, page - 1)))
			win = win * 2 > r->ra_max ? r->ra_max : win * 2;
		else
			win = r->ra_max < LOOP_RA_START ? r->ra_max
							: LOOP_RA_START;
		atomic_store(&r->ra_window, win);
	}
	while (n < win && page + n < r->npages && !uffd_region_test(r, page + n))
		n++;
	atomic_store(&r->ra_next, page + n);
	return cut_at_cached(r, page, n);
}

static void map_cached(struct uffd_worker *w, struct uffd_region *r,
		       size_t page);
static bool in_flight(struct uffd_loop *loop, const struct uffd_region *r,
		      size_t page);

static struct uffd_request *claim_or_wait(struct uffd_worker *w,
					  struct uffd_region *r, size_t page,
					  size_t *n, bool *busy)
{
	struct uffd_request *req;

	/* all slots taken only with slow asynchronous sources: finish some */
	while (!(req = request_claim(w->loop, r, page, n, busy)) && !*busy) {
		pthread_rwlock_unlock(&w->loop->regions_lock);
		if (!uffd_serve_completions(w))
			sched_yield();
		pthread_rwlock_rdlock(&w->loop->regions_lock);
	}
	return req;
}

/* Resolved by the loop and really mapped (pagemap; local memory only):
 * the bitmap alone is never trusted, it may be stale after a REMOVE. */
static bool already_mapped(struct uffd_loop *loop, struct uffd_region *r,
			   size_t page)
{
	uint64_t entry = 0;
	off_t off;

	if (r->remote || loop->pagemap < 0 || !uffd_region_test(r, page))
		return false;
	off = (off_t)(page_addr(r, page) / uffd_page_size() * 8);
	return pread(loop->pagemap, &entry, 8, off) == 8 &&
	       (entry & (UINT64_C(1) << 63));
}

static void serve_missing(struct uffd_worker *w, struct uffd_region *r,
			  size_t page, uint64_t t0)
{
	struct uffd_request *req;
	size_t n;
	bool busy;

	if (already_mapped(w->loop, r, page)) {
		w->stats.faults_missing++;
		w->stats.readahead_hits++;
		wake(w->loop, page_addr(r, page), r->page_size);
		return;
	}
	w->stats.faults_missing++;
	uffd_region_record(r, page);
	n = readahead_window(r, page);
	if (!n) {
		/* in the page cache: being filled through the alias right now
		 * (that request maps it and wakes this thread), or there for
		 * good (map it) */
		if (in_flight(w->loop, r, page))
			w->stats.readahead_hits++;
		else
			map_cached(w, r, page);
		return;
	}
	req = claim_or_wait(w, r, page, &n, &busy);
	if (!req) { /* on its way already: that request wakes this thread */
		w->stats.readahead_hits++;
		return;
	}
	/* resolved by another worker between the check above and the claim
	 * (pages are marked before their slot is freed, so now it shows) */
	if (already_mapped(w->loop, r, page)) {
		req->prefetch = false;
		request_release(req);
		w->stats.readahead_hits++;
		wake(w->loop, page_addr(r, page), r->page_size);
		return;
	}
	req->fault_page = page;
	req->prefetch = false;
	req->t_start_ns = t0;
	start_fetch(w, req);
}

/* The page is in the page cache already: map it (CONTINUE). */
static void map_cached(struct uffd_worker *w, struct uffd_region *r,
		       size_t page)
{
	size_t done = 0;
	int ret = resolve_range(w, r, UFFD_OP_CONTINUE, page_addr(r, page), 0,
				r->page_size, &done);

	if (ret == -EAGAIN) /* layout changing: let it fault again */
		wake(w->loop, page_addr(r, page), r->page_size);
	else if (ret)
		fail_pages(w, r, page, 1, ret, true);
	else
		account(w, r, uffd_region_mark(r, page, 1));
}

/* Whether a request in flight covers the page. */
static bool in_flight(struct uffd_loop *loop, const struct uffd_region *r,
		      size_t page)
{
	bool found = false;

	pthread_mutex_lock(&loop->slots_lock);
	for (size_t i = 0; i < LOOP_SLOTS && !found; i++)
		found = window_overlaps(&loop->slots[i], r, page, 1);
	pthread_mutex_unlock(&loop->slots_lock);
	return found;
}

/* MINOR: a fault on a page the page cache has. If the loop is filling it
 * through the alias right now, that request maps it and wakes the thread:
 * mapping it here could show a half-filled page. */
static void serve_minor(struct uffd_worker *w, struct uffd_region *r,
			size_t page)
{
	w->stats.faults_minor++;
	uffd_region_record(r, page);
	if (r->continue_fill && in_flight(w->loop, r, page)) {
		w->stats.readahead_hits++;
		return;
	}
	map_cached(w, r, page);
}

static void serve_callback(struct uffd_worker *w, struct uffd_region *r,
			   const struct uffd_event *ev, size_t page)
{
	int ret = r->fault_fn(r->fault_arg, r, ev);

	if (ret < 0)
		fail_pages(w, r, page, 1, ret, true);
}

static void serve_wp(struct uffd_worker *w, struct uffd_region *r,
		     const struct uffd_event *ev, size_t page)
{
	w->stats.faults_wp++;
	if (r->fault_fn)
		serve_callback(w, r, ev, page);
	else if (uffd_raw_writeprotect(w->loop->uffd, page_addr(r, page),
				       r->page_size, false))
		/* layout changing (EAGAIN): let it write again, it faults
		 * again once the event is read; never left asleep */
		wake(w->loop, page_addr(r, page), r->page_size);
}

/*
 * A fault outside every region: memory the kernel still has registered
 * but the loop does not serve (the grown part of an mremap in place, the
 * range MREMAP_DONTUNMAP leaves behind). Waking alone would let it fault
 * again forever, so the page is unregistered (at the base or a 2 MiB huge
 * page size) and becomes ordinary memory; on an unmapped address the wake
 * lets the thread meet its SIGSEGV.
 */
static void release_unknown(struct uffd_loop *loop, uintptr_t addr)
{
	static const size_t sizes[] = { 4096, 2u << 20 };

	for (size_t i = 0; i < UFFD_ARRAY_SIZE(sizes); i++) {
		struct kuffd_range range = { addr & ~(uintptr_t)(sizes[i] - 1),
					     sizes[i] };

		if (!ioctl(loop->uffd, KUFFDIO_UNREGISTER, &range))
			break;
	}
	wake(loop, addr & ~(uintptr_t)(uffd_page_size() - 1), uffd_page_size());
}

static void serve_fault(struct uffd_worker *w, const struct uffd_event *ev,
			uint64_t t0)
{
	struct uffd_region *r = uffd_loop_find(w->loop, ev->fault.address);
	size_t page;

	if (!r) {
		w->stats.faults_unknown++;
		release_unknown(w->loop, ev->fault.address);
		return;
	}
	page = (ev->fault.address - r->start) >> r->page_shift;
	if (ev->flags & UFFD_FAULT_WP)
		serve_wp(w, r, ev, page);
	else if (r->fault_fn)
		(ev->flags & UFFD_FAULT_MINOR ? w->stats.faults_minor++
					      : w->stats.faults_missing++),
			serve_callback(w, r, ev, page);
	else if (ev->flags & UFFD_FAULT_MINOR)
		serve_minor(w, r, page);
	else
		serve_missing(w, r, page, t0);
}

/* ---- layout events ---- */

static void clear_overlap(struct uffd_region *r, uintptr_t start,
			  uintptr_t end)
{
	uintptr_t s = start > r->start ? start : r->start;
	uintptr_t e = end < r->start + r->len ? end : r->start + r->len;

	if (s < e)
		uffd_region_clear(r, (s - r->start) >> r->page_shift,
				  (e - s) >> r->page_shift);
}

static bool overlaps(const struct uffd_region *r, uintptr_t start,
		     uintptr_t end)
{
	return start < r->start + r->len && r->start < end;
}

static void on_unmap(struct uffd_loop *loop, uintptr_t start, uintptr_t end)
{
	for (size_t i = 0; i < loop->nregions;) {
		struct uffd_region *r = loop->regions[i];

		if (!overlaps(r, start, end)) {
			i++;
		} else if (start <= r->start && r->start + r->len <= end) {
			r->dead = true; /* the kernel dropped it */
			uffd_loop_bury(loop, i);
		} else {
			clear_overlap(r, start, end);
			i++;
		}
	}
}

static int cmp_region(const void *a, const void *b)
{
	const struct uffd_region *x = *(struct uffd_region *const *)a;
	const struct uffd_region *y = *(struct uffd_region *const *)b;

	return x->start < y->start ? -1 : x->start > y->start;
}

static void insert_region(struct uffd_loop *loop, struct uffd_region *d)
{
	struct uffd_region **v;

	if (!d) /* out of memory: the moved part goes unserved (its faults
		   are then treated as memory nobody serves) */
		return;
	v = realloc(loop->regions, (loop->nregions + 1) * sizeof(*v));
	if (!v) {
		uffd_region_destroy(d);
		return;
	}
	loop->regions = v;
	v[loop->nregions++] = d;
}

/* mremap moved [from, from+len) to [to, to+len): whole regions move with
 * it; a moved part becomes a region of its own over the same source. */
static void on_remap(struct uffd_loop *loop, uintptr_t from, uintptr_t to,
		     size_t len)
{
	size_t n = loop->nregions;

	for (size_t i = 0; i < n; i++) {
		struct uffd_region *r = loop->regions[i];
		uintptr_t s, e;

		if (!overlaps(r, from, from + len))
			continue;
		if (from <= r->start && r->start + r->len <= from + len) {
			r->start = r->start - from + to;
			continue;
		}
		s = from > r->start ? from : r->start;
		e = from + len < r->start + r->len ? from + len
						  : r->start + r->len;
		insert_region(loop, uffd_region_derive(
					    r, (s - r->start) >> r->page_shift,
					    (e - s) >> r->page_shift,
					    s - from + to));
		clear_overlap(r, s, e);
	}
	qsort(loop->regions, loop->nregions, sizeof(*loop->regions),
	      cmp_region);
}

static void serve_layout(struct uffd_worker *w, const struct uffd_event *ev)
{
	struct uffd_loop *loop = w->loop;

	switch (ev->type) {
	case UFFD_EVENT_TYPE_REMOVE:
		w->stats.events_remove++;
		for (size_t i = 0; i < loop->nregions; i++)
			clear_overlap(loop->regions[i], ev->range.start,
				      ev->range.end);
		break;
	case UFFD_EVENT_TYPE_UNMAP:
		w->stats.events_unmap++;
		on_unmap(loop, ev->range.start, ev->range.end);
		break;
	case UFFD_EVENT_TYPE_REMAP:
		w->stats.events_remap++;
		on_remap(loop, ev->remap.from, ev->remap.to, ev->remap.len);
		break;
	case UFFD_EVENT_TYPE_FORK:
		w->stats.events_fork++;
		if (loop->cfg.fork_fn)
			loop->cfg.fork_fn(loop->cfg.fork_arg, ev->fork.fd);
		else
			close(ev->fork.fd);
		break;
	}
}

void uffd_serve_batch(struct uffd_worker *w, size_t n)
{
	struct uffd_loop *loop = w->loop;
	uint64_t t0 = uffd_now_ns();
	bool layout = false;

	for (size_t i = 0; i < n && !layout; i++)
		layout = w->events[i].type != UFFD_EVENT_TYPE_PAGEFAULT;
	if (layout) { /* before any fault of the batch is served */
		pthread_rwlock_wrlock(&loop->regions_lock);
		for (size_t i = 0; i < n; i++)
			if (w->events[i].type != UFFD_EVENT_TYPE_PAGEFAULT)
				serve_layout(w, &w->events[i]);
		pthread_rwlock_unlock(&loop->regions_lock);
	}
	pthread_rwlock_rdlock(&loop->regions_lock);
	for (size_t i = 0; i < n; i++)
		if (w->events[i].type == UFFD_EVENT_TYPE_PAGEFAULT)
			serve_fault(w, &w->events[i], t0);
	pthread_rwlock_unlock(&loop->regions_lock);
}

static int read_batch(struct uffd_worker *w)
{
	int n = uffd_handle_read_events(w->loop->h, w->events, LOOP_BATCH);

	if (n > 0)
		uffd_serve_batch(w, (size_t)n);
	return n;
}

void uffd_serve_retries(struct uffd_worker *w)
{
	while (w->nretry) {
		struct uffd_request *pending[LOOP_SLOTS];
		size_t n = w->nretry;

		/* take the list first: the batch read below may add to it */
		memcpy(pending, w->retry, n * sizeof(*pending));
		w->nretry = 0;
		/* the event that blocks the ioctls is in the queue, or being
		 * handled by another worker: read what is there first */
		if (read_batch(w) <= 0)
			sched_yield();
		pthread_rwlock_rdlock(&w->loop->regions_lock);
		for (size_t i = 0; i < n; i++)
			complete_request(w, pending[i]);
		pthread_rwlock_unlock(&w->loop->regions_lock);
	}
}

/* Reads until the queue is empty: a full batch means more may wait, and
 * an edge-style wakeup (io_uring's multishot poll) will not come again. */
int uffd_serve_ready(struct uffd_worker *w)
{
	int n, total = 0;

	do {
		n = read_batch(w);
		if (n > 0)
			total += n;
		uffd_serve_retries(w);
	} while (n == LOOP_BATCH);
	return total ? total : n;
}

/*
 * The queue is read once without waiting before a driver waits: a handler
 * that has just resolved a fault often finds the next one raised already
 * (the woken thread preempted it on its CPU, or ran on another one), and
 * then one read() replaces a wait and a read. An empty read costs a
 * syscall, so after each one the next tries are skipped, twice as many
 * each time (up to LOOP_READ_BACKOFF_MAX), until one finds work again.
 */
int uffd_serve_try_ready(struct uffd_worker *w)
{
	int n;

	if (w->read_skip) {
		w->read_skip--;
		return 0;
	}
	n = uffd_serve_ready(w);
	if (n > 0) {
		w->read_backoff = 0;
		/* completions would otherwise wait for an empty queue */
		if (atomic_load(&w->loop->done_head))
			n += uffd_serve_completions(w);
		return n;
	}
	w->read_backoff = w->read_backoff ? w->read_backoff * 2 : 1;
	if (w->read_backoff > LOOP_READ_BACKOFF_MAX)
		w->read_backoff = LOOP_READ_BACKOFF_MAX;
	w->read_skip = w->read_backoff;
	return 0;
}

/* ---- background prefetch ---- */

/* The next page to prefetch in r: the recorded order first, then in
 * address order; SIZE_MAX when all are done. */
static size_t next_missing(struct uffd_region *r, bool *wrapped)
{
	size_t pos;

	while ((pos = atomic_load(&r->order_pos)) < r->norder) {
		size_t page = (size_t)r->order[pos];

		atomic_compare_exchange_strong(&r->order_pos, &pos, pos + 1);
		if (page < r->npages && !uffd_region_test(r, page))
			return page;
	}
	/* From the cursor to the end, then from the start: pages behind the
	 * cursor can be missing again (a failed window leaves all but one of
	 * its pages for later, a REMOVE drops pages). */
	for (size_t i = 0, c = atomic_load(&r->prefetch_cursor);
	     i < r->npages; i++) {
		size_t p = (c + i) % r->npages;

		if (!uffd_region_test(r, p)) {
			*wrapped = p < c;
			atomic_store(&r->prefetch_cursor, p);
			return p;
		}
	}
	return SIZE_MAX;
}

/* How many pages from page to fetch at once: while the recorded order
 * is being replayed, only the order's own consecutive pages; after it, a
 * window of missing pages. */
static size_t prefetch_window(struct uffd_region *r, size_t page, size_t max)
{
	size_t n = 1, pos = atomic_load(&r->order_pos);

	if (pos && pos <= r->norder && r->order[pos - 1] == page) {
		while (n < max && pos < r->norder &&
		       r->order[pos] == page + n && page + n < r->npages &&
		       !uffd_region_test(r, page + n)) {
			n++;
			pos++;
		}
		atomic_store(&r->order_pos, pos);
		return n;
	}
	while (n < max && page + n < r->npages && !uffd_region_test(r, page + n))
		n++;
	return n;
}

/*
 * A file source is read in order by prefetch: ask the kernel to read the
 * next few MiB ahead (POSIX_FADV_WILLNEED starts the I/O and returns), so
 * a cold image streams from the disk while the worker copies what has
 * arrived, and faults in between find their pages on the way.
 */
static void prefetch_advise(struct uffd_region *r, size_t page)
{
	size_t ahead = LOOP_ADVISE_BYTES >> r->page_shift;
	size_t from = atomic_load(&r->advised), to;

	if (r->src->kind != UFFD_SOURCE_FD || r->norder)
		return;
	if (from < page || from > page + 2 * ahead)
		from = page; /* the cursor jumped: start over from it */
	else if (from > page + ahead)
		return; /* far enough ahead still */
	to = page + 2 * ahead < r->npages ? page + 2 * ahead : r->npages;
	if (to <= from)
		return;
	atomic_store(&r->advised, to);
	posix_fadvise(r->src->fd,
		      (off_t)(r->src->fd_offset + r->src_offset +
			      ((uint64_t)from << r->page_shift)),
		      (off_t)((uint64_t)(to - from) << r->page_shift),
		      POSIX_FADV_WILLNEED);
}

static bool prefetch_region(struct uffd_worker *w, struct uffd_region *r)
{
	size_t max = LOOP_MAX_WINDOW_BYTES >> r->page_shift, page, n;
	struct uffd_request *req;
	bool busy, wrapped = false;

	if (!r->prefetch || r->dead || !r->active || !r->src ||
	    uffd_region_complete(r))
		return false;
	page = next_missing(r, &wrapped);
	if (page == SIZE_MAX)
		return false;
	if (max > LOOP_PREFETCH_PAGES)
		max = LOOP_PREFETCH_PAGES;
	n = prefetch_window(r, page, max ? max : 1);
	n = cut_at_cached(r, page, n);
	if (!n) {
		/* in the page cache: being filled by a request now (never map
		 * a half-filled page: look further next time), or for good */
		if (in_flight(w->loop, r, page)) {
			atomic_store(&r->prefetch_cursor, page + 1);
			return !wrapped;
		}
		map_cached(w, r, page);
		return true;
	}
	req = request_claim(w->loop, r, page, &n, &busy);
	if (!req) {
		/* being fetched already: look further next time; if the
		 * search went round, all that is left is on its way, so
		 * nothing is to be done until something completes */
		if (busy)
			atomic_store(&r->prefetch_cursor, page + 1);
		return busy && !wrapped;
	}
	atomic_store(&r->prefetch_cursor, page + n);
	prefetch_advise(r, page + n);
	req->fault_page = SIZE_MAX;
	req->prefetch = true;
	atomic_fetch_add(&w->loop->prefetch_inflight, 1);
	start_fetch(w, req);
	return true;
}

bool uffd_serve_prefetch_wanted(struct uffd_loop *loop)
{
	bool pending = false;

	/* asked before every wait: most loops never prefetch, and they
	 * should not pay the regions lock for it */
	if (!atomic_load_explicit(&loop->any_prefetch, memory_order_relaxed) ||
	    atomic_load(&loop->prefetch_inflight) >= LOOP_PREFETCH_DEPTH)
		return false;
	pthread_rwlock_rdlock(&loop->regions_lock);
	for (size_t i = 0; i < loop->nregions && !pending; i++) {
		struct uffd_region *r = loop->regions[i];

		pending = r->prefetch && !r->dead && r->active && r->src &&
			  !uffd_region_complete(r);
	}
	pthread_rwlock_unlock(&loop->regions_lock);
	return pending;
}

bool uffd_serve_prefetch(struct uffd_worker *w)
{
	struct uffd_loop *loop = w->loop;
	bool worked = false;

	pthread_rwlock_rdlock(&loop->regions_lock);
	for (size_t i = 0; i < loop->nregions && !worked; i++)
		worked = prefetch_region(w, loop->regions[i]);
	pthread_rwlock_unlock(&loop->regions_lock);
	uffd_serve_retries(w);
	return worked;
}

/* ---- stopping ---- */

static void poison_fault(struct uffd_worker *w, const struct uffd_event *ev)
{
	struct uffd_region *r = uffd_loop_find(w->loop, ev->fault.address);

	if (!r) {
		release_unknown(w->loop, ev->fault.address);
		return;
	}
	fail_pages(w, r, (ev->fault.address - r->start) >> r->page_shift, 1,
		   -ECANCELED, false);
}

/* Threads waiting on fetches still in flight get their pages poisoned
 * now; a late completion then finds them resolved (or maps the data over
 * the poison marker, which is as good). */
static void poison_inflight(struct uffd_worker *w)
{
	struct uffd_loop *loop = w->loop;

	pthread_rwlock_rdlock(&loop->regions_lock);
	pthread_mutex_lock(&loop->slots_lock);
	for (size_t i = 0; i < LOOP_SLOTS; i++) {
		struct uffd_request *q = &loop->slots[i];

		if (q->in_use && q->fault_page != SIZE_MAX && !q->region->dead)
			fail_pages(w, q->region, q->fault_page, 1, -ECANCELED,
				   false);
	}
	pthread_mutex_unlock(&loop->slots_lock);
	pthread_rwlock_unlock(&loop->regions_lock);
}

void uffd_serve_drain(struct uffd_worker *w)
{
	struct uffd_loop *loop = w->loop;
	int n;

	if (loop->cfg.stop == UFFD_STOP_RESOLVE) {
		while (uffd_serve_ready(w) > 0)
			;
		return;
	}
	poison_inflight(w);
	while ((n = uffd_handle_read_events(loop->h, w->events,
					    LOOP_BATCH)) > 0) {
		pthread_rwlock_rdlock(&loop->regions_lock);
		for (int i = 0; i < n; i++)
			if (w->events[i].type == UFFD_EVENT_TYPE_PAGEFAULT)
				poison_fault(w, &w->events[i]);
		pthread_rwlock_unlock(&loop->regions_lock);
		pthread_rwlock_wrlock(&loop->regions_lock);
		for (int i = 0; i < n; i++)
			if (w->events[i].type != UFFD_EVENT_TYPE_PAGEFAULT)
				serve_layout(w, &w->events[i]);
		pthread_rwlock_unlock(&loop->regions_lock);
	}
}
