// SPDX-License-Identifier: MIT
/*
 * In-thread fault resolution (UFFD_FEATURE_SIGBUS).
 *
 * With UFFD_FEATURE_SIGBUS a fault on a registered page raises SIGBUS
 * (si_code BUS_ADRERR, si_addr the faulting address) in the faulting thread
 * instead of queueing a message. One process-wide SIGBUS handler, installed
 * while any uffd_sigbus exists, finds the region of si_addr and resolves the
 * page (plus readahead) right there with raw ioctls, then returns: the
 * access is re-executed and finds its page.
 *
 * Signal safety. The handler calls only async-signal-safe functions:
 * atomics, memcpy/memset, pread (uffd_source_read of BUFFER, FD and ZERO
 * sources), ioctl, mincore, madvise, open/close (pagemap), sched_yield,
 * clock_gettime, sigaction, pthread_sigmask, raise and raw syscalls. It
 * never allocates, never takes a lock and never touches uffd_last_error():
 * everything it uses is made when the region is added (staging buffers,
 * a zeroed page, bitmaps). Errno is saved on entry and restored on exit.
 *  - Staging buffers (file sources without an alias) are a per-region pool
 *    claimed with an atomic flag. A claimer waits only for other threads
 *    that hold a buffer, and a holder never waits for anything: between
 *    claim and release it only does pread() into the buffer and the COPY
 *    ioctl, neither of which can fault in user mode, and the handler runs
 *    with every asynchronous signal blocked (sa_mask), so no other handler
 *    can interrupt a holder and need a buffer itself.
 *  - Buffer sources are COPYed from in place (one copy, no staging); zeros
 *    are ZEROPAGE, or on hugetlb (no ZEROPAGE) COPY from a zeroed page
 *    mapped at add time.
 *  - Alias regions (MINOR-capable memory with a second, unregistered
 *    mapping) take a per-page claim (UNKNOWN/BUSY/CACHED byte) before
 *    anything else, so that no thread maps a page another thread is still
 *    writing through the alias. CONTINUE first: if the page is in the page
 *    cache it is a minor fault and that is all. Otherwise (EFAULT) the
 *    source is read through the alias straight into the page cache (one
 *    copy), then CONTINUE; a read that fails part way punches the window
 *    out of the page cache again (MADV_REMOVE), so no half-written page is
 *    ever mapped. Readahead pages are filled only when they are
 *    unclaimed, never filled by us and absent from the page cache
 *    (mincore on the alias); like the loop, a shmem page that exists but
 *    is swapped out cannot be told from a hole there.
 *  - SA_NODEFER: a nested SIGBUS (a buffer source that is itself restored
 *    lazily) is handled, not turned into a kill by the kernel.
 *
 * What is passed on. A SIGBUS whose si_code is not BUS_ADRERR (sent by a
 * process, hardware poison), or whose address is in no region, or that
 * cannot be resolved (the page is ours and poisoned, the kernel refuses the
 * ioctl: past the end of a memfd, a page another process poisoned where
 * ZEROPAGE finds the marker) goes to the handler that was installed before:
 * its sa_sigaction or sa_handler is called with the mask the kernel would
 * have set; SIG_IGN ignores only signals sent by processes (the kernel
 * never lets a fault be ignored); SIG_DFL restores the default action and
 * re-raises the signal with its original siginfo, so the process dies of
 * SIGBUS as it would have without libuffd.
 *
 * A failed source read poisons the page (UFFDIO_POISON) and marks it in
 * the region's poison bitmap; the re-executed access then raises a real
 * SIGBUS that is passed on. (COPY would overwrite a poison marker, so the
 * bitmap, not the kernel, is what makes the second SIGBUS "real".)
 *
 * Region table and lifetime. A fixed array of SB_MAX_REGIONS atomic
 * pointers, shared by all uffd_sigbus objects, published with atomic
 * stores; the handler only loads them, never blocks on a writer. Memory
 * is reclaimed with a two-counter epoch scheme (a minimal userspace SRCU):
 * the handler increments g_active[epoch & 1] before it loads any slot and
 * decrements it when it no longer touches a region (before calling a
 * previous handler, which may longjmp). A remover clears the slots, then
 * twice flips the epoch and waits until the counter of the old parity
 * reads zero; only then are regions, buffers and the uffd_sigbus freed.
 * New handlers go to the other counter, so a steady stream of faults
 * cannot starve the remover. If a counter does not drain within
 * SB_WAIT_NS (a handler stuck in a slow read, or a count inherited by a
 * fork() child from a thread that was inside the handler) the memory is
 * leaked rather than freed: never a use after free.
 *
 * Adding publishes the region before registering it (kind PENDING, which
 * makes the handler wait), so no fault can find the range registered but
 * not in the table. Removing first unregisters (later accesses are
 * ordinary page faults), then unpublishes, and leaves a tombstone: a
 * thread whose SIGBUS was raised before the unregistration but whose
 * handler runs after the slot was cleared finds the tombstone and simply
 * retries the access, instead of having the signal passed on. Tombstones
 * are plain integers (nothing to free) and expire after SB_TOMBSTONE_NS.
 * The last uffd_sigbus_free() puts the previous handler back only once no
 * such late SIGBUS can still be delivered (sb_drain_faults()): the kernel
 * chooses the handler at delivery, and SIG_DFL would kill the process for
 * a page that is fine.
 *
 * Limits, from the kernel: an access made by the kernel on the process's
 * behalf (read(2) into a page not restored yet) fails with EFAULT, as no
 * signal can be raised there; a thread that blocks SIGBUS and faults on a
 * region is killed (the kernel resets the disposition); a page poisoned by
 * someone else with UFFDIO_POISON is refilled from the source (COPY
 * replaces poison markers); while a REMOVE/UNMAP event of a handle that
 * enabled EVENT_* is unread, the ioctls fail with EAGAIN and the access
 * simply faults again until someone reads it. The handle must outlive
 * the uffd_sigbus.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "internal.h"

#define SB_MAX_REGIONS 256                  /* slots, over all objects */
#define SB_MAX_WINDOW_BYTES (1u << 20)      /* largest readahead window */
#define SB_MAX_WINDOW_PAGES 256
#define SB_RA_START 4                       /* adaptive: first window */
#define SB_EAGAIN_TRIES 32                  /* no-progress EAGAINs per op */
#define SB_STAGING_BUDGET (8u << 20)        /* staging bytes per region */
#define SB_MAX_STAGING 64
#define SB_TOMBSTONES 16
#define SB_TOMBSTONE_NS (500LL * 1000 * 1000)
#define SB_WAIT_NS (5LL * 1000 * 1000 * 1000) /* longest wait for a peer */
#define SB_DRAIN_NS (1000LL * 1000 * 1000) /* for queued SIGBUS, at uninstall */

enum sb_kind {
	SB_PENDING = 0, /* being added: not registered yet */
	SB_COPY_BUFFER, /* COPY straight from the buffer source */
	SB_COPY_STAGED, /* pread into a staging buffer, then COPY */
	SB_ZEROPAGE,
	SB_COPY_ZERO,   /* COPY from a zeroed page (hugetlb: no ZEROPAGE) */
	SB_ALIAS,       /* CONTINUE; missing pages filled through the alias */
	SB_DEAD,        /* adding failed */
};

/* Alias regions: per-page claim. */
enum { PG_UNKNOWN = 0, PG_BUSY = 1, PG_CACHED = 2 };

enum sb_verdict {
	SB_DONE, /* resolved, or worth retrying: return from the handler */
	SB_PASS, /* a real SIGBUS: pass it on */
};

struct sb_stats {
	_Atomic uint64_t faults_missing;
	_Atomic uint64_t faults_minor;
	_Atomic uint64_t pages_resolved;
	_Atomic uint64_t bytes_resolved;
	_Atomic uint64_t readahead_pages;
	_Atomic uint64_t eexist_races;
	_Atomic uint64_t fetch_failures;
	_Atomic uint64_t pages_poisoned;
};

struct sb_region {
	struct uffd_sigbus *owner;
	uintptr_t start, end;
	size_t page_size;
	unsigned page_shift;
	size_t npages;
	int uffd;
	uint64_t modes;
	_Atomic int kind;   /* enum sb_kind, published last */
	_Atomic int dying;  /* being removed: failures mean "retry" */
	bool hugetlb;
	bool may_fill;      /* alias: MISSING registered, a source to fill */
	bool can_poison;
	bool registered;
	size_t slot;
	struct uffd_source *src; /* our reference, or NULL */
	uint64_t src_offset;
	unsigned char *alias;
	/* readahead */
	size_t ra_max;
	bool ra_adaptive;
	_Atomic size_t ra_window;
	_Atomic size_t ra_next;
	/* one bit per page: mapped by us (advice for readahead), poisoned by
	 * us (a SIGBUS there is real) */
	_Atomic uint64_t *resolved;
	_Atomic uint64_t *poisoned;
	_Atomic unsigned char *state; /* alias regions: PG_* per page */
	/* staging pool (file sources without an alias) */
	unsigned char *staging;
	size_t stride;
	unsigned nstaging;
	_Atomic unsigned char busy[SB_MAX_STAGING];
	/* zero source: zeroed pages to COPY from */
	unsigned char *zero;
	size_t zero_len;
};

struct uffd_sigbus {
	struct uffd_handle *handle;
	struct sb_region **regions;
	size_t nregions, cap;
	struct sb_stats stats;
};

/* ------------------------------------------------------------------------
 * Global state. Writers hold g_lock; the handler reads without locks.
 */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(struct sb_region *) g_slots[SB_MAX_REGIONS];
static _Atomic size_t g_nslots; /* slots in use are below this */
static _Atomic unsigned g_epoch;
static _Atomic long g_active[2];
/* The handler before ours; two copies so that re-installing never writes
 * the one a late handler may still read. */
static struct sigaction g_old[2];
static _Atomic int g_old_idx;
static unsigned g_live;     /* uffd_sigbus objects alive (g_lock) */
static bool g_installed;    /* our handler is in the SIGBUS chain */
static size_t g_base_page;

struct sb_tomb {
	_Atomic uintptr_t start, end;
	_Atomic int64_t until; /* CLOCK_MONOTONIC ns; 0: empty */
};
static struct sb_tomb g_tombs[SB_TOMBSTONES];
static unsigned g_tomb_next;

/* ------------------------------------------------------------------------
 * Helpers usable in the handler.
 */
static int64_t sb_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void count(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static bool bit_test(_Atomic uint64_t *bm, size_t i)
{
	return atomic_load_explicit(&bm[i / 64], memory_order_relaxed) &
	       (UINT64_C(1) << (i % 64));
}

static void bit_set(_Atomic uint64_t *bm, size_t i)
{
	atomic_fetch_or_explicit(&bm[i / 64], UINT64_C(1) << (i % 64),
				 memory_order_relaxed);
}

static uintptr_t pg_addr(const struct sb_region *r, size_t page)
{
	return r->start + ((uintptr_t)page << r->page_shift);
}

static uint64_t src_off(const struct sb_region *r, size_t page)
{
	return r->src_offset + ((uint64_t)page << r->page_shift);
}

static unsigned sb_enter(void)
{
	unsigned e = atomic_load(&g_epoch) & 1;

	atomic_fetch_add(&g_active[e], 1);
	return e;
}

static void sb_leave(unsigned e)
{
	atomic_fetch_sub(&g_active[e], 1);
}

/* One turn of a bounded wait for another thread: yields, and answers
 * false once SB_WAIT_NS have passed since the first turn. */
static bool sb_wait_turn(int64_t *deadline)
{
	int64_t now = sb_now();

	if (!*deadline)
		*deadline = now + SB_WAIT_NS;
	else if (now > *deadline)
		return false;
	sched_yield();
	return true;
}

/* Readahead: up to ra_max pages from the faulting one, stopping at a page
 * already mapped by us. Adaptive: the window doubles while faults land
 * just past the previous window, and falls back when they do not. */
static size_t sb_window(struct sb_region *r, size_t page)
{
	size_t win = r->ra_max, n = 1;

	if (r->ra_adaptive) {
		win = atomic_load_explicit(&r->ra_window, memory_order_relaxed);
		if (page == atomic_load_explicit(&r->ra_next,
						 memory_order_relaxed))
			win = win * 2 > r->ra_max ? r->ra_max : win * 2;
		else
			win = r->ra_max < SB_RA_START ? r->ra_max : SB_RA_START;
		atomic_store_explicit(&r->ra_window, win, memory_order_relaxed);
	}
	while (n < win && page + n < r->npages &&
	       !bit_test(r->resolved, page + n))
		n++;
	atomic_store_explicit(&r->ra_next, page + n, memory_order_relaxed);
	return n;
}

/*
 * One operation over pages [page, page+n): partial progress is continued,
 * EAGAIN without progress retried a bounded number of times. *mapped gets
 * the pages done from page on; returns 0 or the error that stopped it.
 * Nobody sleeps on a SIGBUS handle, so no wake is asked for.
 */
static int sb_fill(const struct sb_region *r, uint64_t op, size_t page,
		   size_t n, uintptr_t src, size_t *mapped)
{
	uintptr_t dst = pg_addr(r, page);
	size_t len = n << r->page_shift, done = 0;
	int ret = 0, again = 0;

	while (done < len) {
		int64_t progress = 0;

		ret = uffd_raw_fill_ex(r->uffd, op, dst + done,
				       src ? src + done : 0, len - done, true,
				       &progress);
		if (!ret) {
			done = len;
			break;
		}
		if (progress > 0)
			done += (size_t)progress;
		if (ret != -EAGAIN)
			break;
		if (progress <= 0) {
			if (++again >= SB_EAGAIN_TRIES)
				break;
			sched_yield();
		}
	}
	*mapped = done >> r->page_shift;
	return done >= len ? 0 : ret;
}

static void sb_account(struct sb_region *r, size_t page, size_t mapped)
{
	struct sb_stats *st = &r->owner->stats;

	for (size_t i = 0; i < mapped; i++)
		bit_set(r->resolved, page + i);
	count(&st->pages_resolved, mapped);
	count(&st->bytes_resolved, (uint64_t)mapped << r->page_shift);
	if (mapped > 1)
		count(&st->readahead_pages, mapped - 1);
}

/* Whether the page at addr is mapped, from /proc/self/pagemap (opened
 * here: an fd kept open would show the parent after a fork). */
static int sb_page_present(uintptr_t addr)
{
	uint64_t entry = 0;
	ssize_t n;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	n = pread(fd, &entry, sizeof(entry),
		  (off_t)(addr / g_base_page * sizeof(entry)));
	close(fd);
	return n == (ssize_t)sizeof(entry) ? (int)(entry >> 63) : -1;
}

/*
 * The faulting page was there already (EEXIST): another thread resolved
 * it, and the access will succeed when retried. COPY and CONTINUE replace
 * a poison marker, so their EEXIST always means a real page; ZEROPAGE
 * stops at a marker too, and a marker is a real SIGBUS.
 */
static enum sb_verdict sb_eexist(struct sb_region *r, size_t page,
				 uint64_t op)
{
	if (op == UFFD_OP_ZEROPAGE && sb_page_present(pg_addr(r, page)) == 0)
		return SB_PASS;
	count(&r->owner->stats.eexist_races, 1);
	return SB_DONE;
}

/* The ioctl failed for the faulting page itself. */
static enum sb_verdict sb_failed(struct sb_region *r, int err)
{
	if (err == -EAGAIN) /* the layout is changing: let it refault */
		return SB_DONE;
	/* being removed: the range is (or is about to be) unregistered, and
	 * the retried access will be an ordinary page fault */
	if (atomic_load(&r->dying))
		return SB_DONE;
	return SB_PASS;
}

/* What a fill of the faulting page came to: mapped (counted), taken by
 * someone else, or failed. */
static enum sb_verdict sb_outcome(struct sb_region *r, size_t page,
				  uint64_t op, size_t mapped, int ret)
{
	if (mapped) {
		sb_account(r, page, mapped);
		return SB_DONE;
	}
	if (ret == -EEXIST)
		return sb_eexist(r, page, op);
	return sb_failed(r, ret);
}

/*
 * The source could not give the page: poison it, so that this access and
 * every later one gets a SIGBUS that is passed on; without POISON, pass
 * this one on now.
 */
static enum sb_verdict sb_source_failed(struct sb_region *r, size_t page)
{
	size_t done;
	int ret;

	count(&r->owner->stats.fetch_failures, 1);
	if (!r->can_poison)
		return SB_PASS;
	ret = sb_fill(r, UFFD_OP_POISON, page, 1, 0, &done);
	if (!ret) {
		bit_set(r->poisoned, page);
		count(&r->owner->stats.pages_poisoned, 1);
		return SB_DONE;
	}
	/* EEXIST: mapped or poisoned by another thread meanwhile */
	return ret == -EEXIST ? SB_DONE : sb_failed(r, ret);
}

static int sb_staging_claim(struct sb_region *r, size_t hint)
{
	int64_t deadline = 0;

	do {
		for (unsigned k = 0; k < r->nstaging; k++) {
			unsigned i = (unsigned)((hint + k) % r->nstaging);

			if (!atomic_load_explicit(&r->busy[i],
						  memory_order_relaxed) &&
			    !atomic_exchange_explicit(&r->busy[i], 1,
						      memory_order_acquire))
				return (int)i;
		}
	} while (sb_wait_turn(&deadline));
	return -1;
}

static void sb_staging_release(struct sb_region *r, int i)
{
	atomic_store_explicit(&r->busy[i], 0, memory_order_release);
}

/* Reads every page of [p, p+len) of a buffer source once, in user mode: a
 * page of it that is itself restored lazily faults in (nested SIGBUS). */
static void sb_touch(uintptr_t p, size_t len)
{
	for (size_t at = 0; at < len; at += g_base_page)
		(void)*(volatile const unsigned char *)(p + at);
}

/* MISSING faults without an alias: COPY (or ZEROPAGE) the window. */
static enum sb_verdict sb_resolve_copy(struct sb_region *r, size_t page,
				       int kind)
{
	size_t n = sb_window(r, page), mapped = 0;
	uint64_t op = UFFD_OP_COPY;
	uintptr_t src = 0;
	int slot = -1, ret;

	count(&r->owner->stats.faults_missing, 1);
	switch (kind) {
	case SB_COPY_BUFFER:
		src = (uintptr_t)(r->src->buf + src_off(r, page));
		break;
	case SB_ZEROPAGE:
		op = UFFD_OP_ZEROPAGE;
		break;
	case SB_COPY_ZERO:
		src = (uintptr_t)r->zero;
		break;
	default: /* SB_COPY_STAGED */
		slot = sb_staging_claim(r, page);
		if (slot < 0)
			return SB_DONE; /* refault and try again */
		src = (uintptr_t)(r->staging + (size_t)slot * r->stride);
		ret = uffd_source_read(r->src, src_off(r, page), (void *)src,
				       n << r->page_shift);
		if (ret && n > 1) { /* the window failed: the page alone? */
			n = 1;
			ret = uffd_source_read(r->src, src_off(r, page),
					       (void *)src, r->page_size);
		}
		if (ret) {
			sb_staging_release(r, slot);
			return sb_source_failed(r, page);
		}
	}
	ret = sb_fill(r, op, page, n, src, &mapped);
	if (ret == -EFAULT && !mapped && kind == SB_COPY_BUFFER) {
		sb_touch(src, n << r->page_shift);
		ret = sb_fill(r, op, page, n, src, &mapped);
	}
	if (slot >= 0)
		sb_staging_release(r, slot);
	return sb_outcome(r, page, op, mapped, ret);
}

/* Claims an alias page: BUSY, remembering what it was. Waits for another
 * thread's claim only when wait is set, and at most SB_WAIT_NS. */
static bool sb_claim(struct sb_region *r, size_t page, bool wait,
		     unsigned char *prev)
{
	int64_t deadline = 0;

	for (;;) {
		unsigned char s = atomic_load(&r->state[page]);

		if (s != PG_BUSY &&
		    atomic_compare_exchange_strong(&r->state[page], &s,
						   PG_BUSY)) {
			*prev = s;
			return true;
		}
		if (!wait || !sb_wait_turn(&deadline))
			return false;
	}
}

static void sb_release(struct sb_region *r, size_t page, size_t n,
		       const unsigned char *state)
{
	for (size_t i = 0; i < n; i++)
		atomic_store(&r->state[page + i], state[i]);
}

/*
 * Of the claimed readahead pages [page+1, page+n), keeps the leading ones
 * that we never filled and that are absent from the page cache (mincore
 * on the alias); releases the rest. Returns the new window length.
 */
static size_t sb_trim_cached(struct sb_region *r, size_t page, size_t n,
			     const unsigned char *prev)
{
	unsigned char vec[SB_MAX_WINDOW_BYTES / 4096];
	size_t ratio = r->page_size / g_base_page, keep = 1;

	if (n > 1 && (n - 1) * ratio <= sizeof(vec) &&
	    !mincore(r->alias + ((page + 1) << r->page_shift),
		     (n - 1) << r->page_shift, vec))
		while (keep < n && prev[keep] == PG_UNKNOWN &&
		       !(vec[(keep - 1) * ratio] & 1))
			keep++;
	sb_release(r, page + keep, n - keep, prev + keep);
	return keep;
}

/*
 * Reads pages [page, page+n) of the source through the alias, straight
 * into the page cache. A read that fails part way (a file error in the
 * middle of the window) leaves some of them in the page cache, maybe half
 * written: they were all absent before (the caller holds their claims),
 * so they are punched out again, and no later CONTINUE maps them.
 */
static int sb_fill_alias(struct sb_region *r, size_t page, size_t n)
{
	unsigned char *dst = r->alias + (page << r->page_shift);
	int ret = uffd_source_read(r->src, src_off(r, page), dst,
				   n << r->page_shift);

	if (ret)
		madvise(dst, n << r->page_shift, MADV_REMOVE);
	return ret;
}

/* Regions with an alias: CONTINUE what is in the page cache, fill what is
 * missing through the alias first. */
static enum sb_verdict sb_resolve_alias(struct sb_region *r, size_t page)
{
	struct sb_stats *st = &r->owner->stats;
	unsigned char prev[SB_MAX_WINDOW_PAGES], cached[SB_MAX_WINDOW_PAGES];
	size_t n = sb_window(r, page), m, mapped = 0;
	int ret;

	/* a claim held past SB_WAIT_NS: its thread died filling the page
	 * (a SIGBUS on the alias itself); do not hang behind it */
	if (!sb_claim(r, page, true, &prev[0]))
		return SB_PASS;
	for (m = 1; m < n && sb_claim(r, page + m, false, &prev[m]); m++)
		;
	memset(cached, PG_CACHED, sizeof(cached));

	/* in the page cache already: a minor fault, map what is there */
	ret = sb_fill(r, UFFD_OP_CONTINUE, page, m, 0, &mapped);
	if (mapped || ret == -EEXIST) {
		/* the pages mapped now, or (EEXIST) the faulting page that
		 * was mapped already: all in the page cache */
		size_t done = mapped ? mapped : 1;

		sb_release(r, page, done, cached);
		sb_release(r, page + done, m - done, prev + done);
		if (!mapped) {
			count(&st->eexist_races, 1);
			return SB_DONE;
		}
		count(&st->faults_minor, 1);
		sb_account(r, page, mapped);
		return SB_DONE;
	}
	if (ret != -EFAULT || !r->may_fill) {
		sb_release(r, page, m, prev);
		return sb_failed(r, ret);
	}

	/* missing: fill through the alias (one copy), then map */
	count(&st->faults_missing, 1);
	m = sb_trim_cached(r, page, m, prev);
	ret = sb_fill_alias(r, page, m);
	if (ret && m > 1) {
		sb_release(r, page + 1, m - 1, prev + 1);
		m = 1;
		ret = sb_fill_alias(r, page, 1);
	}
	if (ret) {
		sb_release(r, page, 1, prev);
		return sb_source_failed(r, page);
	}
	ret = sb_fill(r, UFFD_OP_CONTINUE, page, m, 0, &mapped);
	sb_release(r, page, m, cached);
	return sb_outcome(r, page, UFFD_OP_CONTINUE, mapped, ret);
}

static enum sb_verdict sb_resolve(struct sb_region *r, uintptr_t addr)
{
	size_t page = (addr - r->start) >> r->page_shift;
	int kind = atomic_load_explicit(&r->kind, memory_order_acquire);
	int64_t deadline = 0;

	/* being added: registered, but the operation not chosen yet */
	while (kind == SB_PENDING) {
		if (!sb_wait_turn(&deadline))
			return SB_DONE;
		kind = atomic_load_explicit(&r->kind, memory_order_acquire);
	}
	if (kind == SB_DEAD || bit_test(r->poisoned, page))
		return SB_PASS;
	if (kind == SB_ALIAS)
		return sb_resolve_alias(r, page);
	return sb_resolve_copy(r, page, kind);
}

static struct sb_region *sb_lookup(uintptr_t addr)
{
	size_t n = atomic_load(&g_nslots);

	for (size_t i = 0; i < n && i < SB_MAX_REGIONS; i++) {
		struct sb_region *r = atomic_load(&g_slots[i]);

		if (r && addr >= r->start && addr < r->end)
			return r;
	}
	return NULL;
}

static bool sb_tombstoned(uintptr_t addr)
{
	int64_t now = 0;

	for (size_t i = 0; i < SB_TOMBSTONES; i++) {
		int64_t until = atomic_load(&g_tombs[i].until);

		if (!until)
			continue;
		if (!now)
			now = sb_now();
		if (until > now && addr >= atomic_load(&g_tombs[i].start) &&
		    addr < atomic_load(&g_tombs[i].end))
			return true;
	}
	return false;
}

/* The signal mask the kernel would have set for the old handler: the
 * interrupted context's, its sa_mask, and the signal unless SA_NODEFER. */
static void sb_old_mask(const struct sigaction *old, int sig, void *uctx)
{
	sigset_t mask;

	sigemptyset(&mask);
	if (uctx) {
		const ucontext_t *uc = uctx;

		/* only the kernel's 64 signals: the rest of glibc's sigset_t
		 * is not part of the kernel's frame */
		for (int s = 1; s < 65; s++)
			if (sigismember(&uc->uc_sigmask, s) == 1)
				sigaddset(&mask, s);
	} else {
		pthread_sigmask(SIG_SETMASK, NULL, &mask);
	}
	for (int s = 1; s < 65; s++)
		if (sigismember(&old->sa_mask, s) == 1)
			sigaddset(&mask, s);
	if (!(old->sa_flags & SA_NODEFER))
		sigaddset(&mask, sig);
	pthread_sigmask(SIG_SETMASK, &mask, NULL);
}

/* Default action: restore it and raise the signal again with its original
 * siginfo (a fault stays a fault, si_addr and all); the process dies of
 * it as it would have without libuffd. */
static void sb_default(int sig, siginfo_t *info)
{
	struct sigaction dfl;
	sigset_t unblock;

	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigaction(sig, &dfl, NULL);
	sigemptyset(&unblock);
	sigaddset(&unblock, sig);
	pthread_sigmask(SIG_UNBLOCK, &unblock, NULL);
	if (!info || syscall(SYS_rt_tgsigqueueinfo, getpid(),
			     (pid_t)syscall(SYS_gettid), sig, info))
		raise(sig);
	/* if still alive, returning re-executes the access: it faults again
	 * and the default action applies */
}

static void sb_pass_on(const struct sigaction *old, int sig, siginfo_t *info,
		       void *uctx)
{
	bool sent = info && info->si_code <= 0; /* by kill, raise, queue */

	if (old->sa_handler == SIG_IGN) {
		if (sent)
			return; /* ignored, as it would have been */
		sb_default(sig, info); /* the kernel never lets a fault be
					  ignored */
	} else if (old->sa_handler == SIG_DFL) {
		sb_default(sig, info);
	} else if (old->sa_flags & SA_SIGINFO) {
		sb_old_mask(old, sig, uctx);
		old->sa_sigaction(sig, info, uctx);
	} else {
		sb_old_mask(old, sig, uctx);
		old->sa_handler(sig);
	}
}

static void sb_handler(int sig, siginfo_t *info, void *uctx)
{
	int saved_errno = errno;
	enum sb_verdict verdict = SB_PASS;
	struct sigaction old;
	unsigned e = sb_enter();

	if (info && info->si_code == BUS_ADRERR) {
		uintptr_t addr = (uintptr_t)info->si_addr;
		struct sb_region *r = sb_lookup(addr);

		if (r)
			verdict = sb_resolve(r, addr);
		else if (sb_tombstoned(addr))
			verdict = SB_DONE; /* unregistered just now: retry */
	}
	if (verdict == SB_PASS)
		memcpy(&old, &g_old[atomic_load(&g_old_idx)], sizeof(old));
	sb_leave(e); /* the old handler may longjmp: nothing of ours after */
	errno = saved_errno;
	if (verdict == SB_PASS) {
		sb_pass_on(&old, sig, info, uctx);
		errno = saved_errno;
	}
}

/* ------------------------------------------------------------------------
 * Installing and removing (g_lock held).
 */
static bool sb_is_ours(const struct sigaction *sa)
{
	return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == sb_handler;
}

static int sb_install(void)
{
	struct sigaction sa, cur;
	int idx = !atomic_load(&g_old_idx);

	if (sigaction(SIGBUS, NULL, &cur))
		return -errno;
	if (sb_is_ours(&cur)) { /* never chain to ourselves */
		g_installed = true;
		return 0;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sb_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER | SA_RESTART;
	/* no asynchronous signal while a handler holds a staging buffer or a
	 * page claim: see the comment at the top */
	sigfillset(&sa.sa_mask);
	sigdelset(&sa.sa_mask, SIGBUS);
	sigdelset(&sa.sa_mask, SIGSEGV);
	sigdelset(&sa.sa_mask, SIGILL);
	sigdelset(&sa.sa_mask, SIGFPE);
	sigdelset(&sa.sa_mask, SIGTRAP);
	sigdelset(&sa.sa_mask, SIGSYS);
	sigdelset(&sa.sa_mask, SIGABRT);
	g_old[idx] = cur;
	atomic_store(&g_old_idx, idx);
	if (sigaction(SIGBUS, &sa, NULL))
		return -errno;
	g_installed = true;
	return 0;
}

/* Whether a thread of the process has a SIGBUS queued, not yet delivered
 * (SigPnd, ShdPnd in /proc/self/task/<tid>/status). */
static bool sb_sigbus_queued(void)
{
	const unsigned long long bit = 1ULL << (SIGBUS - 1);
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	bool queued = false;

	if (!d)
		return false;
	while (!queued && (e = readdir(d))) {
		char path[320], line[128];
		unsigned long long mask;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/status",
			 e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f))
			if ((!strncmp(line, "SigPnd:", 7) ||
			     !strncmp(line, "ShdPnd:", 7)) &&
			    sscanf(line + 7, "%llx", &mask) == 1 &&
			    (mask & bit))
				queued = true;
		fclose(f);
	}
	closedir(d);
	return queued;
}

/* A thread's scheduler state and CPU time (ns from schedstat, else
 * clock ticks from stat); false when it is gone. */
static bool sb_thread_info(const char *tid, char *state,
			   unsigned long long *run)
{
	char path[320], buf[512], *p;
	unsigned long utime = 0, stime = 0;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%s/stat", tid);
	f = fopen(path, "re");
	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
	if (!p || sscanf(p + 1, " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			 "%lu %lu", state, &utime, &stime) != 3)
		return false;
	*run = (unsigned long long)utime + stime;
	snprintf(path, sizeof(path), "/proc/self/task/%s/schedstat", tid);
	f = fopen(path, "re");
	if (f) {
		if (fscanf(f, "%llu", run) != 1)
			*run = (unsigned long long)utime + stime;
		fclose(f);
	}
	return true;
}

struct sb_runnable {
	char tid[24];
	unsigned long long run;
};

/*
 * Waits until no SIGBUS for one of our (now unregistered) ranges can still
 * arrive, before the previous handler goes back: the kernel picks the
 * handler when it delivers a signal, and the previous one (SIG_DFL) would
 * kill the process for a page that is fine now. Such a SIGBUS is either
 *  - queued and not yet delivered: seen in SigPnd/ShdPnd, waited for; or
 *  - not queued yet: its thread decided the fault while the range was
 *    registered and has not reached force_sig_fault() (preempted in
 *    between: no sleep is possible there). So every other thread must be
 *    seen not runnable, or to have run again, after the unregistration;
 *    a thread that sleeps (or faults anew) sees the range unregistered.
 * One delivered already runs our handler, which finds the tombstone and
 * lets the access retry. Bounded by SB_DRAIN_NS; usually one pass (or one
 * scheduler tick with threads busy in user mode).
 */
static void sb_drain_faults(void)
{
	int64_t deadline = sb_now() + SB_DRAIN_NS;
	char self[24];
	struct sb_runnable *r = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	DIR *d;

	snprintf(self, sizeof(self), "%ld", (long)syscall(SYS_gettid));
	d = opendir("/proc/self/task");
	while (d && (e = readdir(d))) {
		unsigned long long run;
		char state;

		if (e->d_name[0] == '.' || !strcmp(e->d_name, self) ||
		    strlen(e->d_name) >= sizeof(r->tid) ||
		    !sb_thread_info(e->d_name, &state, &run) || state != 'R')
			continue;
		if (n == cap) {
			size_t ncap = cap ? 2 * cap : 16;
			struct sb_runnable *v = realloc(r, ncap * sizeof(*v));

			if (!v)
				break;
			r = v;
			cap = ncap;
		}
		strcpy(r[n].tid, e->d_name);
		r[n++].run = run;
	}
	if (d)
		closedir(d);
	for (;;) {
		size_t left = 0;

		for (size_t i = 0; i < n; i++) {
			unsigned long long run;
			char state;

			if (sb_thread_info(r[i].tid, &state, &run) &&
			    state == 'R' && run == r[i].run)
				r[left++] = r[i];
		}
		n = left;
		if ((!n && !sb_sigbus_queued()) || sb_now() > deadline)
			break;
		sched_yield();
	}
	free(r);
}

/* Puts the previous handler back, once no SIGBUS of ours can arrive. */
static void sb_uninstall(void)
{
	struct sigaction cur;

	if (!g_installed)
		return;
	sb_drain_faults();
	if (sigaction(SIGBUS, NULL, &cur))
		return;
	/* someone installed a handler over ours (and may chain to it): leave
	 * both in place, ours passes everything on */
	if (!sb_is_ours(&cur))
		return;
	if (!sigaction(SIGBUS, &g_old[atomic_load(&g_old_idx)], NULL))
		g_installed = false;
}

/* Waits until no handler can still use what was unpublished before the
 * call: see the comment at the top. False when a counter did not drain. */
static bool sb_synchronize(void)
{
	int64_t deadline = sb_now() + SB_WAIT_NS;

	for (int flip = 0; flip < 2; flip++) {
		unsigned old = atomic_fetch_add(&g_epoch, 1) & 1;
		unsigned spins = 0;

		while (atomic_load(&g_active[old])) {
			if (++spins < 1000) {
				sched_yield();
				continue;
			}
			if (sb_now() > deadline)
				return false;
			nanosleep(&(struct timespec){ 0, 100000 }, NULL);
		}
	}
	return true;
}

static void sb_tomb_add(uintptr_t start, uintptr_t end)
{
	struct sb_tomb *t = &g_tombs[g_tomb_next++ % SB_TOMBSTONES];

	atomic_store(&t->until, 0);
	atomic_store(&t->start, start);
	atomic_store(&t->end, end);
	atomic_store(&t->until, sb_now() + SB_TOMBSTONE_NS);
}

static void sb_unpublish(struct sb_region *r)
{
	size_t n = atomic_load(&g_nslots);

	atomic_store(&g_slots[r->slot], NULL);
	while (n && !atomic_load(&g_slots[n - 1]))
		n--;
	atomic_store(&g_nslots, n);
}

static void sb_region_destroy(struct sb_region *r)
{
	if (!r)
		return;
	if (r->staging)
		munmap(r->staging, r->stride * r->nstaging);
	if (r->zero)
		munmap(r->zero, r->zero_len);
	free((void *)r->resolved);
	free((void *)r->poisoned);
	free((void *)r->state);
	uffd_source_free(r->src);
	free(r);
}

/* ------------------------------------------------------------------------
 * Adding regions.
 */
struct sb_shape {
	size_t page_size;
	enum uffd_backend backend;
	unsigned flags;
	size_t nmaps;
	bool mixed;
};

static int shape_vma(const struct uffd_vma *vma, void *arg)
{
	struct sb_shape *s = arg;
	enum uffd_backend b = uffd_vma_backend(vma);

	if (s->nmaps++ == 0) {
		s->page_size = vma->page_size;
		s->backend = b;
		s->flags = vma->flags;
	} else if (b != s->backend || vma->page_size != s->page_size) {
		s->mixed = true;
	}
	return 0;
}

static int sb_shape_of(uintptr_t start, size_t len, struct sb_shape *s)
{
	int ret;

	memset(s, 0, sizeof(*s));
	ret = uffd_vma_walk(start, start + len, shape_vma, s);
	if (ret == -ENOENT) { /* no /proc: leave the checks to the kernel */
		s->page_size = g_base_page;
		s->backend = UFFD_BACKEND_UNKNOWN;
		s->flags = UFFD_VMA_SHARED;
		return 0;
	}
	if (!ret && !s->page_size)
		s->page_size = g_base_page;
	return ret;
}

static int sb_check_config(const struct uffd_region_config *cfg)
{
	if (!cfg->len)
		return uffd_err(EINVAL, "the region has no range: call "
					"uffd_region_config_set_range()");
	if (cfg->modes & UFFD_MODE_WP)
		return uffd_err(ENOTSUP, "in-thread resolution serves MISSING "
					 "and MINOR faults only: write-protect "
					 "faults need a handler thread "
					 "(uffd_loop)");
	if (!(cfg->modes & (UFFD_MODE_MISSING | UFFD_MODE_MINOR)))
		return uffd_err(EINVAL, "the region needs MISSING and/or MINOR "
					"mode");
	if (cfg->fault_fn)
		return uffd_err(ENOTSUP, "a fault callback cannot run in a "
					 "SIGBUS handler: use a buffer, file or "
					 "zero source, or a uffd_loop");
	if (cfg->prefetch || cfg->norder)
		return uffd_err(ENOTSUP, "background prefetch needs a thread: "
					 "use a uffd_loop");
	if (cfg->record)
		return uffd_err(ENOTSUP, "working-set recording is done by the "
					 "loop, not in a SIGBUS handler");
	if (cfg->remote)
		return uffd_err(ENOTSUP, "a remote region faults in another "
					 "process: its faults never arrive as "
					 "signals here");
	if (cfg->src && cfg->src->kind != UFFD_SOURCE_BUFFER &&
	    cfg->src->kind != UFFD_SOURCE_FD &&
	    cfg->src->kind != UFFD_SOURCE_ZERO)
		return uffd_err(ENOTSUP, "only buffer, file and zero sources "
					 "can be read in a SIGBUS handler (a "
					 "custom fetch is not async-signal-safe)");
	if ((cfg->modes & UFFD_MODE_MISSING) && !cfg->src)
		return uffd_err(EINVAL, "a MISSING region needs a source");
	if ((cfg->modes & UFFD_MODE_MINOR) && !cfg->alias)
		return uffd_err(EINVAL, "MINOR mode needs an alias: a second, "
					"unregistered MAP_SHARED mapping of the "
					"same pages "
					"(uffd_region_config_set_alias())");
	if (cfg->src && cfg->src->kind != UFFD_SOURCE_ZERO &&
	    (cfg->src_offset + cfg->len < cfg->src_offset ||
	     cfg->src_offset + cfg->len > uffd_source_size(cfg->src)))
		return uffd_errf(EINVAL, "the source holds %llu bytes, fewer "
				 "than offset %llu + the region's %zu",
				 (unsigned long long)uffd_source_size(cfg->src),
				 (unsigned long long)cfg->src_offset, cfg->len);
	return 0;
}

/* The region's memory and its alias: one kind of memory, aligned. */
static int sb_check_memory(const struct uffd_region_config *cfg,
			   struct sb_shape *shape)
{
	struct sb_shape ashape;
	uintptr_t alias = (uintptr_t)cfg->alias;
	int ret = sb_shape_of(cfg->start, cfg->len, shape);

	if (ret)
		return ret;
	if (shape->mixed)
		return uffd_err(EINVAL, "the region spans memory of different "
					"kinds or page sizes: add one region "
					"per mapping");
	if (cfg->start % shape->page_size || cfg->len % shape->page_size)
		return uffd_errf(EINVAL, "the region must be aligned to its "
				 "%zu KiB pages", shape->page_size / 1024);
	if (!cfg->alias || !(cfg->modes & UFFD_MODE_MINOR))
		return 0;
	if (alias + cfg->len < alias ||
	    (alias < cfg->start + cfg->len && cfg->start < alias + cfg->len))
		return uffd_err(EINVAL, "the alias overlaps the region (or "
					"wraps around)");
	ret = sb_shape_of(alias, cfg->len, &ashape);
	if (ret)
		return ret;
	if (!(ashape.flags & UFFD_VMA_SHARED) || ashape.mixed ||
	    ashape.page_size != shape->page_size ||
	    alias % shape->page_size)
		return uffd_err(EINVAL, "the alias must be one MAP_SHARED "
					"mapping of the same memory, as long as "
					"the region and aligned like it");
	return 0;
}

static void *sb_map(size_t len, int prot, int flags)
{
	void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | flags,
		       -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static int sb_region_new(struct uffd_sigbus *sb,
			 const struct uffd_region_config *cfg,
			 const struct sb_shape *shape, struct sb_region **out)
{
	struct sb_region *r = calloc(1, sizeof(*r));
	size_t words, max_pages;
	bool alias_path;

	if (!r)
		return uffd_err(ENOMEM, "out of memory for a region");
	r->owner = sb;
	r->start = cfg->start;
	r->end = cfg->start + cfg->len;
	r->page_size = shape->page_size;
	r->page_shift = (unsigned)__builtin_ctzll(shape->page_size);
	r->npages = cfg->len >> r->page_shift;
	r->uffd = sb->handle->fd;
	r->modes = cfg->modes;
	r->hugetlb = uffd_backend_is_hugetlb(shape->backend);
	r->src = cfg->src ? uffd_source_ref(cfg->src) : NULL;
	r->src_offset = cfg->src_offset;
	alias_path = cfg->alias && (cfg->modes & UFFD_MODE_MINOR);
	r->alias = alias_path ? cfg->alias : NULL;
	max_pages = SB_MAX_WINDOW_BYTES / r->page_size;
	if (max_pages > SB_MAX_WINDOW_PAGES)
		max_pages = SB_MAX_WINDOW_PAGES;
	if (!max_pages)
		max_pages = 1;
	r->ra_max = cfg->ra_max ? cfg->ra_max : 1;
	if (r->ra_max > max_pages)
		r->ra_max = max_pages;
	r->ra_adaptive = cfg->ra_adaptive;
	atomic_init(&r->ra_window, r->ra_max < SB_RA_START ? r->ra_max
							   : SB_RA_START);
	atomic_init(&r->ra_next, SIZE_MAX);
	atomic_init(&r->kind, SB_PENDING);
	r->stride = r->ra_max * r->page_size;

	words = (r->npages + 63) / 64;
	r->resolved = calloc(words, sizeof(uint64_t));
	r->poisoned = calloc(words, sizeof(uint64_t));
	if (alias_path)
		r->state = calloc(r->npages, 1);
	if (!r->resolved || !r->poisoned || (alias_path && !r->state))
		goto nomem;
	if (r->src && r->src->kind == UFFD_SOURCE_FD && !alias_path) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		size_t n = SB_STAGING_BUDGET / r->stride;

		if (cpus > 0 && n > 2 * (size_t)cpus)
			n = 2 * (size_t)cpus;
		if (n > SB_MAX_STAGING)
			n = SB_MAX_STAGING;
		if (n < 2)
			n = 2;
		r->nstaging = (unsigned)n;
		r->staging = sb_map(r->stride * n, PROT_READ | PROT_WRITE, 0);
		if (!r->staging)
			goto nomem;
		/* fault it in now: fresh memory is the costly part of a fault,
		 * and the handler must not take one */
		memset(r->staging, 0, r->stride * n);
	}
	if (r->src && r->src->kind == UFFD_SOURCE_ZERO) {
		/* read-only and populated: every page maps the zero page */
		r->zero_len = r->stride;
		r->zero = sb_map(r->zero_len, PROT_READ, MAP_POPULATE);
		if (!r->zero)
			goto nomem;
	}
	*out = r;
	return 0;
nomem:
	sb_region_destroy(r);
	return uffd_err(ENOMEM, "out of memory for the region's bitmaps and "
				"buffers");
}

/* Publishes r in the table and in sb's list (g_lock held). */
static int sb_publish(struct uffd_sigbus *sb, struct sb_region *r)
{
	size_t n = atomic_load(&g_nslots), slot = SB_MAX_REGIONS;

	for (size_t i = 0; i < SB_MAX_REGIONS; i++) {
		struct sb_region *o = atomic_load(&g_slots[i]);

		if (!o) {
			if (slot == SB_MAX_REGIONS)
				slot = i;
			continue;
		}
		if (o->start < r->end && r->start < o->end)
			return uffd_errf(EINVAL, "the region overlaps %#lx-%#lx, "
					 "already served in-thread",
					 (unsigned long)o->start,
					 (unsigned long)o->end);
	}
	if (slot == SB_MAX_REGIONS)
		return uffd_errf(ENOSPC, "at most %d regions are served in-thread "
				 "at once", SB_MAX_REGIONS);
	if (sb->nregions == sb->cap) {
		size_t cap = sb->cap ? 2 * sb->cap : 4;
		struct sb_region **v = realloc(sb->regions, cap * sizeof(*v));

		if (!v)
			return uffd_err(ENOMEM, "out of memory for the region "
						"list");
		sb->regions = v;
		sb->cap = cap;
	}
	sb->regions[sb->nregions++] = r;
	r->slot = slot;
	atomic_store(&g_slots[slot], r);
	if (slot >= n)
		atomic_store(&g_nslots, slot + 1);
	return 0;
}

/* Takes back a region whose adding failed; never registered (or
 * unregistered already). */
static void sb_withdraw(struct uffd_sigbus *sb, struct sb_region *r)
{
	bool quiet;

	atomic_store(&r->kind, SB_DEAD);
	pthread_mutex_lock(&g_lock);
	sb_unpublish(r);
	for (size_t i = 0; i < sb->nregions; i++)
		if (sb->regions[i] == r) {
			sb->regions[i] = sb->regions[--sb->nregions];
			break;
		}
	quiet = sb_synchronize();
	pthread_mutex_unlock(&g_lock);
	if (quiet)
		sb_region_destroy(r);
}

/*
 * The operation for the region's faults. Feasibility is what the kernel
 * advertised at registration; the capability probe's verdict (allowed)
 * only picks between ZEROPAGE and COPY of zeros. It is not a reason to
 * refuse: the probe caches a failure for the life of the process, also
 * one caused by its own lack of resources (a COPY on hugetlb that found no
 * free huge page), and a handler that really cannot resolve a page passes
 * the SIGBUS on, it never hangs.
 */
static int sb_choose(struct sb_region *r, uint64_t advertised,
		     uint64_t allowed)
{
	int kind = SB_DEAD;

	if (r->alias) {
		if (!(advertised & UFFD_OP_CONTINUE))
			return uffd_err(ENOTSUP, "CONTINUE is not available on "
						 "this memory: its MINOR faults "
						 "cannot be resolved");
		r->may_fill = (r->modes & UFFD_MODE_MISSING) && r->src;
		kind = SB_ALIAS;
	} else if (r->src->kind == UFFD_SOURCE_ZERO) {
		if (!r->hugetlb && (advertised & allowed & UFFD_OP_ZEROPAGE))
			kind = SB_ZEROPAGE;
		else if (advertised & UFFD_OP_COPY)
			kind = SB_COPY_ZERO;
		else if (!r->hugetlb && (advertised & UFFD_OP_ZEROPAGE))
			kind = SB_ZEROPAGE;
	} else if (advertised & UFFD_OP_COPY) {
		kind = r->src->kind == UFFD_SOURCE_BUFFER ? SB_COPY_BUFFER
							  : SB_COPY_STAGED;
	}
	if (kind == SB_DEAD)
		return uffd_err(ENOTSUP, "neither COPY nor ZEROPAGE is "
					 "available on this memory: its MISSING "
					 "faults cannot be resolved");
	r->can_poison = advertised & UFFD_OP_POISON;
	atomic_store_explicit(&r->kind, kind, memory_order_release);
	return 0;
}

/* ------------------------------------------------------------------------
 * The API.
 */
UFFD_EXPORT int uffd_sigbus_new(struct uffd_handle *handle,
				struct uffd_sigbus **sigbus)
{
	struct uffd_sigbus *sb;
	int ret = 0;

	if (!handle || !sigbus)
		return uffd_err(EINVAL, "sigbus_new: NULL handle or result");
	if (!(uffd_handle_get_features(handle) & UFFD_FEAT_SIGBUS))
		return uffd_err(EINVAL, "the handle lacks UFFD_FEAT_SIGBUS: ask "
					"for it with "
					"uffd_handle_config_require_features()");
	sb = calloc(1, sizeof(*sb));
	if (!sb)
		return uffd_err(ENOMEM, "out of memory for a uffd_sigbus");
	sb->handle = handle;
	pthread_mutex_lock(&g_lock);
	if (!g_base_page)
		g_base_page = uffd_page_size();
	if (!g_installed)
		ret = sb_install();
	if (!ret)
		g_live++;
	pthread_mutex_unlock(&g_lock);
	if (ret) {
		free(sb);
		return uffd_errf(-ret, "cannot install the SIGBUS handler: %s",
				 strerror(-ret));
	}
	*sigbus = sb;
	return 0;
}

UFFD_EXPORT int uffd_sigbus_add_region(struct uffd_sigbus *sigbus,
				       const struct uffd_region_config *cfg)
{
	struct sb_shape shape;
	struct sb_region *r = NULL;
	uint64_t advertised = 0, allowed = 0;
	int ret;

	if (!sigbus || !cfg)
		return uffd_err(EINVAL, "sigbus_add_region: NULL argument");
	ret = sb_check_config(cfg);
	if (!ret)
		ret = sb_check_memory(cfg, &shape);
	if (!ret)
		ret = sb_region_new(sigbus, cfg, &shape, &r);
	if (ret)
		return ret;
	/* in the table before it is registered: no fault can miss it */
	pthread_mutex_lock(&g_lock);
	ret = sb_publish(sigbus, r);
	pthread_mutex_unlock(&g_lock);
	if (ret) {
		sb_region_destroy(r);
		return ret;
	}
	ret = uffd_handle_register(sigbus->handle, (void *)r->start,
				   r->end - r->start, r->modes, &advertised);
	if (ret) {
		sb_withdraw(sigbus, r);
		return ret;
	}
	r->registered = true;
	if (uffd_handle_get_range_ops(sigbus->handle, (void *)r->start,
				      r->end - r->start, &allowed, NULL))
		allowed = advertised;
	ret = sb_choose(r, advertised, allowed);
	if (ret) {
		const char *why = uffd_last_error();
		char copy[256];

		strncpy(copy, why, sizeof(copy) - 1);
		copy[sizeof(copy) - 1] = '\0';
		uffd_handle_unregister(sigbus->handle, (void *)r->start,
				       r->end - r->start);
		sb_withdraw(sigbus, r);
		return uffd_errf(-ret, "%s", copy);
	}
	return 0;
}

UFFD_EXPORT void uffd_sigbus_free(struct uffd_sigbus *sigbus)
{
	bool quiet;

	if (!sigbus)
		return;
	pthread_mutex_lock(&g_lock);
	for (size_t i = 0; i < sigbus->nregions; i++) {
		atomic_store(&sigbus->regions[i]->dying, 1);
		sb_tomb_add(sigbus->regions[i]->start, sigbus->regions[i]->end);
	}
	pthread_mutex_unlock(&g_lock);
	/* from here, accesses are ordinary page faults */
	for (size_t i = 0; i < sigbus->nregions; i++) {
		struct sb_region *r = sigbus->regions[i];

		if (r->registered)
			uffd_handle_unregister(sigbus->handle, (void *)r->start,
					       r->end - r->start);
	}
	pthread_mutex_lock(&g_lock);
	for (size_t i = 0; i < sigbus->nregions; i++)
		sb_unpublish(sigbus->regions[i]);
	if (--g_live == 0)
		sb_uninstall();
	quiet = sb_synchronize();
	pthread_mutex_unlock(&g_lock);
	if (!quiet)
		return; /* a handler may still read them: leak, never free */
	for (size_t i = 0; i < sigbus->nregions; i++)
		sb_region_destroy(sigbus->regions[i]);
	free(sigbus->regions);
	free(sigbus);
}

UFFD_EXPORT int uffd_sigbus_get_stats(struct uffd_sigbus *sigbus,
				      struct uffd_loop_stats *stats,
				      size_t size)
{
	struct uffd_loop_stats s;
	const struct sb_stats *st;

	if (!sigbus || !stats || size > sizeof(s))
		return uffd_err(EINVAL, "sigbus_get_stats: NULL argument or a "
					"size larger than this library knows");
	st = &sigbus->stats;
	memset(&s, 0, sizeof(s));
	s.faults_missing = atomic_load(&st->faults_missing);
	s.faults_minor = atomic_load(&st->faults_minor);
	s.pages_resolved = atomic_load(&st->pages_resolved);
	s.bytes_resolved = atomic_load(&st->bytes_resolved);
	s.readahead_pages = atomic_load(&st->readahead_pages);
	s.eexist_races = atomic_load(&st->eexist_races);
	s.fetch_failures = atomic_load(&st->fetch_failures);
	s.pages_poisoned = atomic_load(&st->pages_poisoned);
	memcpy(stats, &s, size);
	return 0;
}
