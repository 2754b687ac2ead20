/* SPDX-License-Identifier: MIT */
/* libuffd internals: shared by lib/ only, never installed. */
#ifndef LIBUFFD_INTERNAL_H
#define LIBUFFD_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libuffd.h"
#include "uapi.h"

#define UFFD_EXPORT __attribute__((visibility("default")))
#define UFFD_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define UFFD_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* For setters: a NULL object is -EINVAL, with the function named. */
#define UFFD_CHECK_OBJ(obj)                                                   \
	do {                                                                  \
		if (!(obj))                                                   \
			return uffd_errf(EINVAL, "%s: configuration is NULL", \
					 __func__);                           \
	} while (0)

/* ---- error.c: the per-thread reason behind the last failure ---- */

/* Records a constant reason (no formatting: cheap enough for the fault
 * path) and returns -err. */
int uffd_err(int err, const char *reason);
/* Records a formatted reason and returns -err. */
int uffd_errf(int err, const char *fmt, ...) UFFD_PRINTF(2, 3);

/* ---- config.c ---- */
struct uffd_handle_config {
	enum uffd_open_path path;
	bool user_mode_only;
	bool nonblocking;
	bool default_features;
	uint64_t required;
	uint64_t requested;
};

/* The defaults, for a NULL configuration. */
void uffd_config_init_defaults(struct uffd_handle_config *cfg);

/* ---- handle.c ---- */

/* One registration made through the handle; the table is sorted by start
 * and its entries never overlap. */
struct uffd_reg {
	uintptr_t start;
	uintptr_t end;
	uint64_t modes;
	uint64_t ops;     /* what the kernel advertised */
	uint64_t allowed; /* ops less those the probe found broken here */
	size_t page_size;
	enum uffd_backend backend;
};

struct uffd_handle {
	int fd;
	enum uffd_open_path path;
	bool user_mode_only;
	uint64_t features;
	uint64_t supported;
	uint64_t api_ioctls;
	pthread_rwlock_t reg_lock; /* guards regs/nregs/cap */
	struct uffd_reg *regs;
	size_t nregs;
	size_t cap;
};

/* Opens a bare userfaultfd (no handshake) as cfg says; *path_used receives
 * the path that worked. */
int uffd_fd_open(const struct uffd_handle_config *cfg,
		 enum uffd_open_path *path_used);

/* ---- features.c ---- */

/* Reads the enabled features of a uffd from /proc/self/fdinfo. Returns 0,
 * -EINVAL if fd is not a userfaultfd, or -ENOENT if /proc is unavailable. */
int uffd_fdinfo_features(int fd, uint64_t *features, bool *initialized);
/* Performs the handshake on fd for cfg; fills the handle's feature fields. */
int uffd_features_negotiate(struct uffd_handle *h,
			    const struct uffd_handle_config *cfg);

/* ---- maps.c: what is mapped where, from /proc/self/smaps ---- */

#define UFFD_VMA_READ (1u << 0)
#define UFFD_VMA_WRITE (1u << 1)
#define UFFD_VMA_EXEC (1u << 2)
#define UFFD_VMA_SHARED (1u << 3)
#define UFFD_VMA_MAYWRITE (1u << 4) /* VmFlags "mw" */
#define UFFD_VMA_HUGETLB (1u << 5)  /* VmFlags "ht" */

struct uffd_vma {
	uintptr_t start;
	uintptr_t end;
	unsigned flags; /* UFFD_VMA_* */
	uint64_t offset;
	uint64_t inode;
	unsigned dev_major, dev_minor;
	size_t page_size; /* KernelPageSize */
	char path[256];   /* "" for anonymous; may be truncated */
};

/* Calls cb for each mapping that overlaps [start, end), in address order,
 * stopping early when cb returns non-zero (that value is returned). A gap
 * in the range gives -ENOMEM with the reason recorded. */
int uffd_vma_walk(uintptr_t start, uintptr_t end,
		  int (*cb)(const struct uffd_vma *vma, void *arg), void *arg);

/* ---- register.c ---- */

/* Checks that op (one UFFD_OP_* bit) may run on [start, start+len) with the
 * given UFFD_OPF_* flags; ranges unknown to the handle pass. */
int uffd_range_check_op(struct uffd_handle *h, uint64_t op, uintptr_t start,
			size_t len, unsigned flags);
/* Keep the table in step with the kernel after UNMAP and REMAP events:
 * drop [start, end); move [from, from+len) to [to, to+len). */
int uffd_regs_remove(struct uffd_handle *h, uintptr_t start, uintptr_t end);
int uffd_regs_move(struct uffd_handle *h, uintptr_t from, uintptr_t to,
		   size_t len);

/* ---- ops.c: raw ioctls for the capability probe (no table checks) ---- */
int uffd_raw_fill(int fd, uint64_t op, uintptr_t dst, uintptr_t src,
		  size_t len);
/* The same with UFFD_OPF_DONTWAKE / ALLOW_SRC_HOLES, and the kernel's
 * count (bytes, or -errno). */
int uffd_raw_fill_ex(int fd, uint64_t op, uintptr_t dst, uintptr_t src,
		     size_t len, unsigned flags, int64_t *progress);
int uffd_raw_writeprotect(int fd, uintptr_t start, size_t len, bool protect);
int uffd_raw_wake(int fd, uintptr_t start, size_t len);

/* ---- backends.c: memory of each kind, made for probing ---- */

/* Pages of a probe mapping; caps.c gives each operation its own page. */
#define UFFD_PROBE_PAGES 6

struct uffd_probe_mem {
	enum uffd_backend backend;
	char *addr;       /* the mapping to register */
	size_t len;
	size_t page_size;
	char *alias;      /* a second, never registered view of the same
			     pages (fills the page cache), or NULL */
	int fd;           /* backing file, or -1 */
	int vm_fd;        /* guest_memfd's VM, or -1 */
	bool sysv;        /* addr and alias are shmat() attachments */
	bool has_page_cache; /* shared or file memory: CONTINUE is possible */
	bool plain_write_ok; /* a write may populate a page that
				MADV_POPULATE_WRITE cannot (never hugetlb) */
};

/* Creates probe memory; on failure returns a negative errno with the
 * reason in why (the backend is then "unknown here"). */
int uffd_probe_mem_create(enum uffd_backend backend,
			  struct uffd_probe_mem *mem, char *why, size_t size);
void uffd_probe_mem_destroy(struct uffd_probe_mem *mem);
bool uffd_backend_is_hugetlb(enum uffd_backend backend);

/* ---- classify.c ---- */
enum uffd_backend uffd_vma_backend(const struct uffd_vma *vma);

/* ---- caps.c ---- */

/* The cached capabilities for (features, backend), or NULL when they
 * cannot be had; never fails loudly (used to explain and to enforce). */
const struct uffd_caps *uffd_caps_lookup(uint64_t features,
					 enum uffd_backend backend);

/* ---- source.c ---- */
enum uffd_source_kind {
	UFFD_SOURCE_BUFFER,
	UFFD_SOURCE_FD,
	UFFD_SOURCE_ZERO,
	UFFD_SOURCE_CUSTOM,
	UFFD_SOURCE_MOVE, /* buf's pages move into the region */
};

struct uffd_source {
	enum uffd_source_kind kind;
	int refs; /* atomic */
	const unsigned char *buf; /* BUFFER */
	size_t buf_len;
	int fd; /* FD: our own dup */
	uint64_t fd_offset;
	uint64_t fd_len;
	struct uffd_source_ops ops; /* CUSTOM */
	void *arg;
};

struct uffd_source *uffd_source_ref(struct uffd_source *src);
/* Bytes the source holds (UINT64_MAX: unbounded, zero and custom). */
uint64_t uffd_source_size(const struct uffd_source *src);
/*
 * Reads [off, off+len) synchronously into dst; bytes past the end read as
 * zeros. Async-signal-safe for BUFFER, FD (pread) and ZERO sources: only
 * memcpy, memset and pread. -ENOTSUP for CUSTOM; -errno of pread.
 */
int uffd_source_read(const struct uffd_source *src, uint64_t off, void *dst,
		     size_t len);

/* One fetch from a source. The loop embeds it in its own request. */
struct uffd_fetch {
	struct uffd_source *src;
	uint64_t offset;
	size_t len;
	void *buf;
	bool urgent;
	void (*done)(struct uffd_fetch *fetch, int result);
};

/* ---- region.c: region configuration ---- */
struct uffd_region_config {
	uintptr_t start;
	size_t len;
	uint64_t modes;
	struct uffd_source *src; /* a reference of the config's own */
	uint64_t src_offset;
	unsigned char *alias;
	uffd_fault_fn fault_fn;
	void *fault_arg;
	size_t ra_max;
	bool ra_adaptive;
	bool prefetch;
	bool record;
	uint64_t *order; /* prefetch order, copied */
	size_t norder;
	bool remote;
	enum uffd_backend backend; /* remote only */
	size_t page_size;          /* remote only */
};

/* ---- misc ---- */
size_t uffd_page_size(void);

/* [addr, addr+len) as integers; -EINVAL with a reason for len 0 or a range
 * that wraps around. */
int uffd_range_from(const void *addr, size_t len, uintptr_t *start,
		    uintptr_t *end);

/* CLOCK_MONOTONIC in nanoseconds (loop.c). */
uint64_t uffd_now_ns(void);

#endif /* LIBUFFD_INTERNAL_H */
