// SPDX-License-Identifier: MIT
/*
 * Capability discovery: for each backend, which mode combinations register
 * and which operations then work, learned from the running kernel.
 *
 * For every combination of modes the probe makes a fresh probe mapping,
 * registers it on a scratch handle, and performs each advertised operation
 * once, each on its own page, checking the effect through /proc/self/pagemap
 * before it reads any byte: the probe never touches a missing page of a
 * registered range, so it can never block on its own fault.
 *
 * Results are cached per (relevant features, backend) for the life of the
 * process: the library's only global mutable state, behind cache_lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

#define NR_COMBOS 7 /* every non-empty subset of MISSING, WP, MINOR */
#define NR_OP_BITS 9
/* Features that change no capability; EVENT_* would even make the probe's
 * own munmap wait for a reader. They are left out of the probe. */
#define CAPS_IRRELEVANT                                                      \
	(UFFD_FEAT_EVENT_FORK | UFFD_FEAT_EVENT_REMAP |                      \
	 UFFD_FEAT_EVENT_REMOVE | UFFD_FEAT_EVENT_UNMAP | UFFD_FEAT_SIGBUS |  \
	 UFFD_FEAT_THREAD_ID | UFFD_FEAT_EXACT_ADDRESS)

/* Pages of the probe mapping, one per operation. */
enum { PG_COPY, PG_ZERO, PG_CONTINUE, PG_POISON, PG_WP, PG_MOVE };

#define PM_PRESENT (UINT64_C(1) << 63)
#define PM_SWAP (UINT64_C(1) << 62) /* also pte markers (poison) */
#define PM_UFFD_WP (UINT64_C(1) << 57)

struct caps_combo {
	int reg; /* 0, or the kernel's -errno */
	uint64_t advertised;
	uint64_t verified;
	int op_err[NR_OP_BITS];
	const char *op_note[NR_OP_BITS];
};

struct uffd_caps {
	enum uffd_backend backend;
	uint64_t features;
	enum uffd_caps_status status;
	char reason[320];
	size_t page_size;
	uint64_t modes;
	struct caps_combo combo[NR_COMBOS];
	char notes[768];
};

struct probe {
	int uffd;
	int pagemap;
	struct uffd_probe_mem mem;
	unsigned char *pattern; /* one page of recognisable bytes */
	size_t pattern_size;
};

/* A page of recognisable bytes, of the probed memory's page size: sized on
 * demand, as fresh memory is costly (2 MiB only for hugetlb). */
static int size_pattern(struct probe *p, size_t size)
{
	unsigned char *buf;

	if (p->pattern_size >= size)
		return 0;
	buf = realloc(p->pattern, size);
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < size; i++)
		buf[i] = (unsigned char)(i * 7 + 1);
	p->pattern = buf;
	p->pattern_size = size;
	return 0;
}

static unsigned char *page_at(const struct probe *p, int page)
{
	return (unsigned char *)p->mem.addr + (size_t)page * p->mem.page_size;
}

static uint64_t pagemap_of(const struct probe *p, const void *addr)
{
	uint64_t entry = 0;
	off_t off = (off_t)((uintptr_t)addr / uffd_page_size() * 8);

	if (pread(p->pagemap, &entry, sizeof(entry), off) != sizeof(entry))
		return 0;
	return entry;
}

/* The page is mapped and holds want (pattern) or zeros (want NULL). Only
 * called once pagemap says present, so reading cannot fault. */
static bool page_holds(const struct probe *p, const unsigned char *page,
		       const unsigned char *want)
{
	static const unsigned char zeros[64];
	size_t last = p->mem.page_size - 64;

	if (!(pagemap_of(p, page) & PM_PRESENT))
		return false;
	return !memcmp(page, want ? want : zeros, 64) &&
	       !memcmp(page + last, want ? want + last : zeros, 64);
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* Makes pages present by writing, with an error instead of SIGBUS when no
 * page can be had (hugetlb without free huge pages). */
static int populate(void *addr, size_t len)
{
	return madvise(addr, len, MADV_POPULATE_WRITE) ? -errno : 0;
}

/* Records one operation's outcome; returns whether it verified. Running
 * out of memory (huge pages taken by someone else meanwhile) says nothing
 * about the operation: it is recorded unverifiable, never broken, since
 * the result is cached for the life of the process. */
static bool op_result(struct caps_combo *c, uint64_t op, int err,
		      const char *note)
{
	unsigned bit = (unsigned)__builtin_ctzll(op);

	if (err == -ENOMEM || err == -ENOSPC) {
		err = -ENODATA;
		note = "could not be verified: out of memory (huge pages "
		       "taken meanwhile?)";
	}

	c->op_err[bit] = err;
	c->op_note[bit] = note;
	if (!err)
		c->verified |= op;
	return !err;
}

static int fill(const struct probe *p, uint64_t op, int page, const void *src)
{
	return uffd_raw_fill(p->uffd, op, (uintptr_t)page_at(p, page),
			     (uintptr_t)src, p->mem.page_size);
}

static void verify_copy(const struct probe *p, struct caps_combo *c)
{
	int err = fill(p, UFFD_OP_COPY, PG_COPY, p->pattern);

	if (err)
		op_result(c, UFFD_OP_COPY, err, "COPY failed on the probe page");
	else if (!page_holds(p, page_at(p, PG_COPY), p->pattern))
		op_result(c, UFFD_OP_COPY, -EIO,
			  "COPY succeeded but the page does not hold the data");
	else
		op_result(c, UFFD_OP_COPY, 0, "verified");
}

static void verify_zeropage(const struct probe *p, struct caps_combo *c)
{
	int err = fill(p, UFFD_OP_ZEROPAGE, PG_ZERO, NULL);

	if (err)
		op_result(c, UFFD_OP_ZEROPAGE, err,
			  "ZEROPAGE failed on the probe page");
	else if (!page_holds(p, page_at(p, PG_ZERO), NULL))
		op_result(c, UFFD_OP_ZEROPAGE, -EIO,
			  "ZEROPAGE succeeded but no zero page is mapped");
	else
		op_result(c, UFFD_OP_ZEROPAGE, 0, "verified");
}

static void verify_continue(const struct probe *p, struct caps_combo *c)
{
	int err;

	/* The page cache gets the page through the unregistered alias. */
	if (p->mem.alias) {
		err = populate(p->mem.alias + (size_t)PG_CONTINUE *
						      p->mem.page_size,
			       p->mem.page_size);
		if (err) {
			op_result(c, UFFD_OP_CONTINUE, -ENODATA,
				  "could not be verified: no page could be "
				  "put in the page cache");
			return;
		}
		memcpy(p->mem.alias + (size_t)PG_CONTINUE * p->mem.page_size,
		       p->pattern, p->mem.page_size);
	} else if (p->mem.has_page_cache) {
		op_result(c, UFFD_OP_CONTINUE, -ENODATA,
			  "could not be verified: no second mapping of this "
			  "memory could be made to fill its page cache");
		return;
	}
	err = fill(p, UFFD_OP_CONTINUE, PG_CONTINUE, NULL);
	if (err)
		op_result(c, UFFD_OP_CONTINUE, err,
			  p->mem.alias ? "CONTINUE failed with the page in "
					 "the page cache"
				       : "no page cache alias can exist for "
					 "this memory, CONTINUE failed");
	else if (!page_holds(p, page_at(p, PG_CONTINUE), p->pattern))
		op_result(c, UFFD_OP_CONTINUE, -EIO,
			  "CONTINUE succeeded but the page cache page is not "
			  "mapped");
	else
		op_result(c, UFFD_OP_CONTINUE, 0, "verified");
}

/*
 * POISON's effect is a SIGBUS on access, and on hugetlb nothing else shows
 * it (pagemap has no marker there). A child sharing our address space
 * (CLONE_VM, its own signal handlers) touches the page: killed by SIGBUS
 * means poisoned. If it faults into userfaultfd instead, we resolve that
 * fault, so the child can never hang; pidfd and uffd are polled together.
 */
#define TOUCH_STACK (64u << 10)

#define TOUCH_SIGBUS_EXIT 77

static volatile int touch_sink;

/* The kernel's struct sigaction (x86-64 and most others). */
struct kernel_sigaction_ {
	void (*handler)(int);
	unsigned long flags;
	void (*restorer)(void);
	uint64_t mask;
};

#define SA_RESTORER_ 0x04000000UL

static void touch_restorer(void)
{
	syscall(SYS_exit, 1);
}

static void touch_on_sigbus(int sig)
{
	(void)sig;
	syscall(SYS_exit, TOUCH_SIGBUS_EXIT); /* never returns */
}

__attribute__((no_sanitize("address", "undefined")))
static int touch_child(void *arg)
{
	/*
	 * Raw syscalls only: this child shares our memory and TLS. It got a
	 * copy of the caller's signal handlers (maybe its own SIGBUS one),
	 * so it installs its own, which exits: no core dump of the shared
	 * address space, whatever the process's core settings.
	 */
	/* x86-64 refuses to deliver without SA_RESTORER; the handler never
	 * returns, so the restorer is never used. */
	struct kernel_sigaction_ sa = { .handler = touch_on_sigbus,
					.flags = SA_RESTORER_,
					.restorer = touch_restorer };
	uint64_t unblock = UINT64_C(1) << (SIGBUS - 1);

	syscall(SYS_rt_sigaction, SIGBUS, &sa, NULL, sizeof(uint64_t));
	syscall(SYS_rt_sigprocmask, SIG_UNBLOCK, &unblock, NULL,
		sizeof(uint64_t));
	touch_sink = *(volatile const unsigned char *)arg;
	syscall(SYS_exit, 0);
	return 0;
}

/* Resolves the fault of a child that was not stopped by poison. */
static void release_child(const struct probe *p, const unsigned char *page)
{
	struct kuffd_msg msg;

	if (read(p->uffd, &msg, sizeof(msg)) == sizeof(msg) &&
	    uffd_raw_fill(p->uffd, UFFD_OP_COPY, (uintptr_t)page,
			  (uintptr_t)p->pattern, p->mem.page_size))
		uffd_raw_wake(p->uffd, (uintptr_t)page, p->mem.page_size);
}

/* 1: the touch raised SIGBUS; 0: it did not; -errno: no verdict. */
static int touch_raises_sigbus(const struct probe *p, unsigned char *page)
{
	char *stack = mmap(NULL, TOUCH_STACK, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	struct pollfd fds[2] = { { .fd = p->uffd, .events = POLLIN } };
	siginfo_t info = { 0 };
	int pid, ret = -ECHILD;

	if (stack == MAP_FAILED)
		return -ENOMEM;
	/* exit signal 0: no SIGCHLD, invisible to the caller's waitpid(-1) */
	pid = clone(touch_child, stack + TOUCH_STACK, CLONE_VM, page);
	fds[1].fd = pid < 0 ? -1 : (int)syscall(SYS_pidfd_open, pid, 0);
	fds[1].events = POLLIN;
	while (pid > 0 && fds[1].fd >= 0 && poll(fds, 2, -1) >= 0) {
		if (fds[0].revents & POLLIN)
			release_child(p, page);
		if (fds[1].revents & POLLIN)
			break;
	}
	if (pid > 0 && !waitid(P_PID, (id_t)pid, &info, WEXITED | __WCLONE))
		ret = (info.si_code == CLD_EXITED &&
		       info.si_status == TOUCH_SIGBUS_EXIT) ||
		      (info.si_code != CLD_EXITED && info.si_status == SIGBUS);
	if (fds[1].fd >= 0)
		close(fds[1].fd);
	munmap(stack, TOUCH_STACK);
	return ret;
}

static void verify_poison(const struct probe *p, struct caps_combo *c)
{
	unsigned char *page = page_at(p, PG_POISON);
	int err = fill(p, UFFD_OP_POISON, PG_POISON, NULL), hit;

	if (err) {
		op_result(c, UFFD_OP_POISON, err,
			  "POISON failed on the probe page");
		return;
	}
	hit = touch_raises_sigbus(p, page);
	if (hit < 0)
		op_result(c, UFFD_OP_POISON, -ENODATA,
			  "could not be verified: no child could touch the page");
	else if (!hit)
		op_result(c, UFFD_OP_POISON, -EIO,
			  "POISON succeeded but touching the page raised no "
			  "SIGBUS");
	else
		op_result(c, UFFD_OP_POISON, 0, "verified");
}

static void verify_writeprotect(const struct probe *p, struct caps_combo *c)
{
	uintptr_t page = (uintptr_t)page_at(p, PG_WP);
	bool on, off;
	int err;

	if (!(pagemap_of(p, (void *)page) & PM_PRESENT)) {
		op_result(c, UFFD_OP_WRITEPROTECT, -ENODATA,
			  "could not be verified: no page could be populated "
			  "to protect");
		return;
	}
	err = uffd_raw_writeprotect(p->uffd, page, p->mem.page_size, true);
	on = pagemap_of(p, (void *)page) & PM_UFFD_WP;
	if (!err)
		err = uffd_raw_writeprotect(p->uffd, page, p->mem.page_size,
					    false);
	off = !(pagemap_of(p, (void *)page) & PM_UFFD_WP);
	if (err)
		op_result(c, UFFD_OP_WRITEPROTECT, err,
			  "WRITEPROTECT failed on a populated page");
	else if (!on || !off)
		op_result(c, UFFD_OP_WRITEPROTECT, -EIO,
			  "WRITEPROTECT succeeded but the page's uffd-wp bit "
			  "did not follow");
	else
		op_result(c, UFFD_OP_WRITEPROTECT, 0, "verified");
}

static void verify_move(const struct probe *p, struct caps_combo *c)
{
	size_t ps = p->mem.page_size;
	unsigned char *src = mmap(NULL, ps, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int err;

	if (src == MAP_FAILED) {
		op_result(c, UFFD_OP_MOVE, -errno,
			  "no memory for MOVE's source page");
		return;
	}
	memcpy(src, p->pattern, ps);
	err = fill(p, UFFD_OP_MOVE, PG_MOVE, src);
	if (err)
		op_result(c, UFFD_OP_MOVE, err,
			  "MOVE from anonymous memory failed (it works only "
			  "between anonymous private mappings)");
	else if (!page_holds(p, page_at(p, PG_MOVE), p->pattern))
		op_result(c, UFFD_OP_MOVE, -EIO,
			  "MOVE succeeded but the page did not arrive");
	else
		op_result(c, UFFD_OP_MOVE, 0, "verified");
	munmap(src, ps);
}

static void verify_wake(const struct probe *p, struct caps_combo *c)
{
	int err = uffd_raw_wake(p->uffd, (uintptr_t)page_at(p, PG_COPY),
				p->mem.page_size);

	op_result(c, UFFD_OP_WAKE, err, err ? "WAKE failed" : "verified");
}

static void verify_ops(const struct probe *p, struct caps_combo *c)
{
	static void (*const verify[NR_OP_BITS])(const struct probe *,
						struct caps_combo *) = {
		[2] = verify_wake,   [3] = verify_copy,
		[4] = verify_zeropage, [5] = verify_move,
		[6] = verify_writeprotect, [7] = verify_continue,
		[8] = verify_poison,
	};

	/* without pagemap only WAKE and POISON (a touch) can be checked */
	const uint64_t no_pagemap = UFFD_OP_WAKE | UFFD_OP_POISON;

	for (unsigned bit = 0; bit < NR_OP_BITS; bit++) {
		uint64_t op = UINT64_C(1) << bit;

		if (!(c->advertised & op) || !verify[bit])
			continue;
		if (p->pagemap < 0 && !(op & no_pagemap))
			op_result(c, op, -ENODATA,
				  "could not be verified: /proc/self/pagemap "
				  "is not readable");
		else
			verify[bit](p, c);
	}
}

static int register_probe(const struct probe *p, uint64_t modes,
			  uint64_t *ioctls)
{
	struct kuffd_register reg = {
		{ (uintptr_t)p->mem.addr, p->mem.len }, modes, 0
	};

	if (ioctl(p->uffd, KUFFDIO_REGISTER, &reg))
		return -errno;
	*ioctls = reg.ioctls;
	return 0;
}

/*
 * The page write-protect works on, populated before registration, with
 * MADV_POPULATE_WRITE: an error, never a SIGBUS. Secret and guest memory
 * refuse it (no GUP); where a plain write is known to be safe there, it
 * does the job. If neither works, WRITEPROTECT is reported unverifiable.
 */
static void prefill_wp_page(const struct probe *p)
{
	unsigned char *page = page_at(p, PG_WP);

	if (!populate(page, p->mem.page_size) || p->mem.plain_write_ok)
		memset(page, 0x5a, p->mem.page_size);
}

/* One combination on fresh memory; -errno with caps->reason when the
 * memory itself cannot be made. */
static int probe_combo(struct probe *p, struct uffd_caps *caps,
		       uint64_t modes)
{
	struct caps_combo *c = &caps->combo[modes - 1];
	int ret;

	ret = uffd_probe_mem_create(caps->backend, &p->mem, caps->reason,
				    sizeof(caps->reason));
	if (ret)
		return ret;
	if (size_pattern(p, p->mem.page_size)) {
		uffd_probe_mem_destroy(&p->mem);
		snprintf(caps->reason, sizeof(caps->reason),
			 "out of memory for the probe's data page");
		return -ENOMEM;
	}
	caps->page_size = p->mem.page_size;
	prefill_wp_page(p);
	c->reg = register_probe(p, modes, &c->advertised);
	if (!c->reg)
		verify_ops(p, c);
	uffd_probe_mem_destroy(&p->mem); /* also drops the registration */
	return 0;
}

/* ---- cross-check with the feature bits ---- */

struct promise {
	uint64_t mode;
	uint64_t feature;
};

static const struct promise shmem_promises[] = {
	{ UFFD_MODE_MISSING, UFFD_FEAT_MISSING_SHMEM },
	{ UFFD_MODE_MINOR, UFFD_FEAT_MINOR_SHMEM },
	{ UFFD_MODE_WP, UFFD_FEAT_WP_HUGETLBFS_SHMEM },
	{ 0, 0 },
};
static const struct promise hugetlb_promises[] = {
	{ UFFD_MODE_MISSING, UFFD_FEAT_MISSING_HUGETLBFS },
	{ UFFD_MODE_MINOR, UFFD_FEAT_MINOR_HUGETLBFS },
	{ UFFD_MODE_WP, UFFD_FEAT_WP_HUGETLBFS_SHMEM },
	{ 0, 0 },
};
static const struct promise anon_promises[] = {
	{ UFFD_MODE_WP, UFFD_FEAT_PAGEFAULT_FLAG_WP },
	{ 0, 0 },
};

static const struct promise *promises_of(enum uffd_backend b)
{
	switch (b) {
	case UFFD_BACKEND_ANON_SHARED:
	case UFFD_BACKEND_MEMFD_SHARED:
	case UFFD_BACKEND_MEMFD_PRIVATE:
	case UFFD_BACKEND_TMPFS_FILE:
		return shmem_promises;
	case UFFD_BACKEND_HUGETLB_PRIVATE:
	case UFFD_BACKEND_HUGETLB_SHARED:
	case UFFD_BACKEND_MEMFD_HUGETLB_SHARED:
	case UFFD_BACKEND_MEMFD_HUGETLB_PRIVATE:
		return hugetlb_promises;
	case UFFD_BACKEND_ANON_PRIVATE:
		return anon_promises;
	default:
		return NULL;
	}
}

static void add_note(struct uffd_caps *caps, const char *fmt, ...)
	UFFD_PRINTF(2, 3);

static void add_note(struct uffd_caps *caps, const char *fmt, ...)
{
	size_t used = strlen(caps->notes);
	va_list ap;

	if (used + 2 >= sizeof(caps->notes))
		return;
	va_start(ap, fmt);
	vsnprintf(caps->notes + used, sizeof(caps->notes) - used, fmt, ap);
	va_end(ap);
	used = strlen(caps->notes);
	if (used + 1 < sizeof(caps->notes))
		strcat(caps->notes, "\n");
}

static void cross_check(struct uffd_caps *caps, uint64_t supported)
{
	const struct promise *pr = promises_of(caps->backend);
	const char *name = uffd_backend_name(caps->backend);

	for (; pr && pr->mode; pr++) {
		bool registers = caps->modes & pr->mode;
		bool promised = supported & pr->feature;

		if (registers != promised)
			add_note(caps, "%s mode %s on %s, but the kernel %s "
				 "feature %s", uffd_mode_name(pr->mode),
				 registers ? "registers" : "does not register",
				 name, promised ? "reports" : "does not report",
				 uffd_feature_name(pr->feature));
	}
}

static void settle_status(struct uffd_caps *caps)
{
	for (uint64_t m = 1; m <= UFFD_MODE_KNOWN; m <<= 1)
		if (caps->combo[m - 1].reg == 0)
			caps->modes |= m;
	for (int i = 0; i < NR_COMBOS; i++) {
		if (caps->combo[i].reg == 0) {
			caps->status = UFFD_CAPS_SUPPORTED;
			caps->reason[0] = '\0';
			return;
		}
	}
	caps->status = UFFD_CAPS_UNSUPPORTED;
	snprintf(caps->reason, sizeof(caps->reason),
		 "no mode registers on %s (MISSING: %s, WP: %s, MINOR: %s)",
		 uffd_backend_describe(caps->backend),
		 strerror(-caps->combo[0].reg), strerror(-caps->combo[1].reg),
		 strerror(-caps->combo[3].reg));
}

/* A scratch handle with exactly these features. Without privilege only a
 * user-mode-only handle can be had; the probe never needs kernel-mode
 * faults, so that one answers the same. */
/* Back to "nothing known", keeping the reason. */
static void forget_combos(struct uffd_caps *caps)
{
	memset(caps->combo, 0, sizeof(caps->combo));
	for (int i = 0; i < NR_COMBOS; i++)
		caps->combo[i].reg = -ENODATA;
	caps->page_size = 0;
	caps->modes = 0;
	caps->status = UFFD_CAPS_UNKNOWN;
}

static int open_probe_handle(uint64_t features, struct uffd_handle **h)
{
	struct uffd_handle_config cfg;
	int ret;

	uffd_config_init_defaults(&cfg);
	cfg.default_features = false;
	cfg.required = features;
	ret = uffd_handle_new(&cfg, h);
	if (ret == -EPERM || ret == -EACCES) {
		cfg.user_mode_only = true;
		ret = uffd_handle_new(&cfg, h);
	}
	return ret;
}

static int probe_all(struct uffd_handle *h, struct uffd_caps *caps)
{
	struct probe p = { .uffd = h->fd };
	int ret = 0;

	/* Unreadable (a process made non-dumpable by a setuid): the
	 * registration layer is still probed, most operations go unverified. */
	p.pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	for (uint64_t modes = 1; modes <= NR_COMBOS && !ret; modes++)
		ret = probe_combo(&p, caps, modes);
	if (!ret) {
		settle_status(caps);
		cross_check(caps, h->supported);
	} else {
		forget_combos(caps); /* UNKNOWN means no data, not half */
	}
	if (p.pagemap >= 0)
		close(p.pagemap);
	free(p.pattern);
	return 0; /* an unknown backend is a result, not an error */
}

static int caps_compute(uint64_t features, enum uffd_backend backend,
			struct uffd_caps **out)
{
	struct uffd_handle *h;
	struct uffd_caps *caps;
	int ret;

	if ((unsigned)backend >= UFFD_BACKEND_COUNT ||
	    backend == UFFD_BACKEND_UNKNOWN)
		return uffd_errf(EINVAL, "backend %d cannot be probed",
				 (int)backend);
	caps = calloc(1, sizeof(*caps));
	if (!caps)
		return uffd_err(ENOMEM, "out of memory for capabilities");
	caps->backend = backend;
	caps->features = features & ~CAPS_IRRELEVANT;
	forget_combos(caps);
	ret = open_probe_handle(caps->features, &h);
	if (ret) {
		free(caps);
		return ret;
	}
	probe_all(h, caps);
	uffd_handle_free(h);
	*out = caps;
	return 0;
}

/* ---- the cache ---- */

struct caps_set {
	uint64_t features;
	struct uffd_caps *by_backend[UFFD_BACKEND_COUNT];
	struct caps_set *next;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct caps_set *cache;

static struct caps_set *cache_set(uint64_t features)
{
	struct caps_set *s;

	for (s = cache; s; s = s->next)
		if (s->features == features)
			return s;
	s = calloc(1, sizeof(*s));
	if (s) {
		s->features = features;
		s->next = cache;
		cache = s;
	}
	return s;
}

UFFD_EXPORT int uffd_caps_get(uint64_t features, enum uffd_backend backend,
			      const struct uffd_caps **caps)
{
	struct caps_set *set;
	int ret = 0;

	if (!caps)
		return uffd_err(EINVAL, "caps_get: caps is NULL");
	if ((unsigned)backend >= UFFD_BACKEND_COUNT ||
	    backend == UFFD_BACKEND_UNKNOWN)
		return uffd_errf(EINVAL, "backend %d cannot be probed",
				 (int)backend);
	features &= ~CAPS_IRRELEVANT;
	pthread_mutex_lock(&cache_lock);
	set = cache_set(features);
	if (!set)
		ret = uffd_err(ENOMEM, "out of memory for the capability cache");
	else if (!set->by_backend[backend])
		ret = caps_compute(features, backend, &set->by_backend[backend]);
	if (!ret)
		*caps = set->by_backend[backend];
	pthread_mutex_unlock(&cache_lock);
	return ret;
}

const struct uffd_caps *uffd_caps_lookup(uint64_t features,
					 enum uffd_backend backend)
{
	const struct uffd_caps *caps;

	if (backend == UFFD_BACKEND_UNKNOWN ||
	    uffd_caps_get(features, backend, &caps))
		return NULL;
	return caps->status == UFFD_CAPS_UNKNOWN ? NULL : caps;
}

UFFD_EXPORT int uffd_caps_probe(uint64_t features, enum uffd_backend backend,
				struct uffd_caps **caps)
{
	if (!caps)
		return uffd_err(EINVAL, "caps_probe: caps is NULL");
	return caps_compute(features, backend, caps);
}

UFFD_EXPORT void uffd_caps_free(struct uffd_caps *caps)
{
	free(caps);
}

/* ---- accessors ---- */

static const struct caps_combo *combo_of(const struct uffd_caps *caps,
					 uint64_t modes)
{
	if (!caps || !modes || (modes & ~UFFD_MODE_KNOWN))
		return NULL;
	return &caps->combo[modes - 1];
}

UFFD_EXPORT enum uffd_backend uffd_caps_get_backend(const struct uffd_caps *caps)
{
	return caps ? caps->backend : UFFD_BACKEND_UNKNOWN;
}

UFFD_EXPORT uint64_t uffd_caps_get_features(const struct uffd_caps *caps)
{
	return caps ? caps->features : 0;
}

UFFD_EXPORT enum uffd_caps_status
uffd_caps_get_status(const struct uffd_caps *caps)
{
	return caps ? caps->status : UFFD_CAPS_UNKNOWN;
}

UFFD_EXPORT const char *uffd_caps_get_reason(const struct uffd_caps *caps)
{
	return caps ? caps->reason : "no capabilities (NULL)";
}

UFFD_EXPORT size_t uffd_caps_get_page_size(const struct uffd_caps *caps)
{
	return caps ? caps->page_size : 0;
}

UFFD_EXPORT uint64_t uffd_caps_get_modes(const struct uffd_caps *caps)
{
	return caps ? caps->modes : 0;
}

UFFD_EXPORT int uffd_caps_get_register(const struct uffd_caps *caps,
				       uint64_t modes)
{
	const struct caps_combo *c = combo_of(caps, modes);

	return c ? c->reg : uffd_err(EINVAL, "caps: NULL or bad modes");
}

UFFD_EXPORT uint64_t uffd_caps_get_advertised(const struct uffd_caps *caps,
					      uint64_t modes)
{
	const struct caps_combo *c = combo_of(caps, modes);

	return c ? c->advertised : 0;
}

UFFD_EXPORT uint64_t uffd_caps_get_verified(const struct uffd_caps *caps,
					    uint64_t modes)
{
	const struct caps_combo *c = combo_of(caps, modes);

	return c ? c->verified : 0;
}

UFFD_EXPORT int uffd_caps_get_op_result(const struct uffd_caps *caps,
					uint64_t modes, uint64_t op,
					const char **note)
{
	const struct caps_combo *c = combo_of(caps, modes);
	unsigned bit;

	if (note)
		*note = "not advertised";
	if (!c || !op || (op & (op - 1)))
		return uffd_err(EINVAL, "caps: NULL, bad modes or not one op");
	if (!(c->advertised & op))
		return -ENODATA;
	bit = (unsigned)__builtin_ctzll(op);
	if (bit >= NR_OP_BITS || !c->op_note[bit]) {
		if (note)
			*note = "libuffd cannot verify this operation";
		return -ENODATA;
	}
	if (note)
		*note = c->op_note[bit];
	return c->op_err[bit];
}

UFFD_EXPORT const char *uffd_caps_get_notes(const struct uffd_caps *caps)
{
	return caps ? caps->notes : "";
}
