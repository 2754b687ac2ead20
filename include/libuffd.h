/* SPDX-License-Identifier: MIT */
/*
 * libuffd - user-space page-fault handling with Linux userfaultfd.
 *
 * This is the only public header. It never includes <linux/userfaultfd.h>
 * and defines no kernel names, so it can be included before or after the
 * system's kernel headers, whatever their version.
 *
 * Conventions, true for every function unless its comment says otherwise:
 *  - the return value is 0 on success or a negative errno on failure;
 *  - after a failure, uffd_last_error() returns a sentence saying why;
 *  - a NULL object or a NULL required pointer gives -EINVAL;
 *  - output parameters documented as "may be NULL" are optional.
 */
#ifndef LIBUFFD_H
#define LIBUFFD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LIBUFFD_VERSION_MAJOR 0
#define LIBUFFD_VERSION_MINOR 1
#define LIBUFFD_VERSION_PATCH 0

/* The library's version as "MAJOR.MINOR.PATCH" (never NULL). */
const char *uffd_version(void);

/*
 * The reason for the most recent failure of a libuffd call on the calling
 * thread, as one sentence without a trailing newline. Successful calls do not
 * clear it. The string stays valid until the next libuffd call on this thread.
 * Never NULL ("no error" before any failure).
 */
const char *uffd_last_error(void);

/* ------------------------------------------------------------------------
 * Features: the bits of the kernel's UFFDIO_API handshake, with the kernel's
 * values, known up to Linux 6.18. Unknown (newer) bits are passed through.
 */
#define UFFD_FEAT_PAGEFAULT_FLAG_WP   (UINT64_C(1) << 0)
#define UFFD_FEAT_EVENT_FORK          (UINT64_C(1) << 1)
#define UFFD_FEAT_EVENT_REMAP         (UINT64_C(1) << 2)
#define UFFD_FEAT_EVENT_REMOVE        (UINT64_C(1) << 3)
#define UFFD_FEAT_MISSING_HUGETLBFS   (UINT64_C(1) << 4)
#define UFFD_FEAT_MISSING_SHMEM       (UINT64_C(1) << 5)
#define UFFD_FEAT_EVENT_UNMAP         (UINT64_C(1) << 6)
#define UFFD_FEAT_SIGBUS              (UINT64_C(1) << 7)
#define UFFD_FEAT_THREAD_ID           (UINT64_C(1) << 8)
#define UFFD_FEAT_MINOR_HUGETLBFS     (UINT64_C(1) << 9)
#define UFFD_FEAT_MINOR_SHMEM         (UINT64_C(1) << 10)
#define UFFD_FEAT_EXACT_ADDRESS       (UINT64_C(1) << 11)
#define UFFD_FEAT_WP_HUGETLBFS_SHMEM  (UINT64_C(1) << 12)
#define UFFD_FEAT_WP_UNPOPULATED      (UINT64_C(1) << 13)
#define UFFD_FEAT_POISON              (UINT64_C(1) << 14)
#define UFFD_FEAT_WP_ASYNC            (UINT64_C(1) << 15)
#define UFFD_FEAT_MOVE                (UINT64_C(1) << 16)
/* Every bit this version of libuffd has a name for. */
#define UFFD_FEAT_KNOWN               (UINT64_C(0x1ffff))

/*
 * Features that change what the handle does or what its messages carry.
 * libuffd never enables one of these unless the caller asks for it:
 * EVENT_* make munmap/madvise/mremap/fork block until the event is read,
 * SIGBUS replaces fault messages with a signal, WP_ASYNC silently resolves
 * every write-protect fault on the handle, THREAD_ID and EXACT_ADDRESS change
 * message contents.
 */
#define UFFD_FEAT_BEHAVIOUR                                                  \
	(UFFD_FEAT_EVENT_FORK | UFFD_FEAT_EVENT_REMAP | UFFD_FEAT_EVENT_REMOVE | \
	 UFFD_FEAT_EVENT_UNMAP | UFFD_FEAT_SIGBUS | UFFD_FEAT_THREAD_ID |     \
	 UFFD_FEAT_EXACT_ADDRESS | UFFD_FEAT_WP_ASYNC)

/*
 * Features that only make more memory types or operations available. Unless
 * uffd_handle_config_set_default_features(cfg, false) is called, a new
 * handle enables each of these that the kernel supports.
 */
#define UFFD_FEAT_CAPABILITY                                                 \
	(UFFD_FEAT_PAGEFAULT_FLAG_WP | UFFD_FEAT_MISSING_HUGETLBFS |         \
	 UFFD_FEAT_MISSING_SHMEM | UFFD_FEAT_MINOR_HUGETLBFS |               \
	 UFFD_FEAT_MINOR_SHMEM | UFFD_FEAT_WP_HUGETLBFS_SHMEM |              \
	 UFFD_FEAT_WP_UNPOPULATED | UFFD_FEAT_POISON | UFFD_FEAT_MOVE)

/* ------------------------------------------------------------------------
 * Registration modes (kernel values).
 */
#define UFFD_MODE_MISSING (UINT64_C(1) << 0)
#define UFFD_MODE_WP      (UINT64_C(1) << 1)
#define UFFD_MODE_MINOR   (UINT64_C(1) << 2)
#define UFFD_MODE_KNOWN   (UINT64_C(0x7))

/*
 * Operations, as bits of the masks the kernel returns: a registration's
 * allowed resolve operations and the handle's API ioctls. Bit positions are
 * the kernel's, so bits newer than this header are kept, never dropped.
 */
#define UFFD_OP_REGISTER     (UINT64_C(1) << 0)
#define UFFD_OP_UNREGISTER   (UINT64_C(1) << 1)
#define UFFD_OP_WAKE         (UINT64_C(1) << 2)
#define UFFD_OP_COPY         (UINT64_C(1) << 3)
#define UFFD_OP_ZEROPAGE     (UINT64_C(1) << 4)
#define UFFD_OP_MOVE         (UINT64_C(1) << 5)
#define UFFD_OP_WRITEPROTECT (UINT64_C(1) << 6)
#define UFFD_OP_CONTINUE     (UINT64_C(1) << 7)
#define UFFD_OP_POISON       (UINT64_C(1) << 8)
#define UFFD_OP_API          (UINT64_C(1) << 63)

/* ------------------------------------------------------------------------
 * Names. Each table maps one bit to its name ("MOVE", "MISSING", "COPY").
 *
 * uffd_*_name(bit): the name of exactly one known bit, or NULL.
 * uffd_*_from_name(name, &bit): case-insensitive; the kernel spelling with
 *   its prefix ("UFFD_FEATURE_MOVE", "UFFDIO_REGISTER_MODE_WP", "UFFDIO_COPY")
 *   is accepted too. -EINVAL: NULL argument; -ENOENT: no such name.
 * uffd_*_format(mask, buf, size): the names of the set bits, comma separated,
 *   unknown bits as "bitN", "none" for 0. -EINVAL: NULL buf or size 0;
 *   -ENOSPC: buf too small (it then holds a truncated, terminated string).
 */
const char *uffd_feature_name(uint64_t bit);
int uffd_feature_from_name(const char *name, uint64_t *bit);
int uffd_features_format(uint64_t mask, char *buf, size_t size);
const char *uffd_mode_name(uint64_t bit);
int uffd_mode_from_name(const char *name, uint64_t *bit);
int uffd_modes_format(uint64_t mask, char *buf, size_t size);
const char *uffd_op_name(uint64_t bit);
int uffd_op_from_name(const char *name, uint64_t *bit);
int uffd_ops_format(uint64_t mask, char *buf, size_t size);

/* ------------------------------------------------------------------------
 * Handle configuration: how to open a userfaultfd and what to negotiate.
 */
enum uffd_open_path {
	UFFD_OPEN_AUTO = 0, /* syscall, then /dev/userfaultfd if refused */
	UFFD_OPEN_SYSCALL,  /* only the userfaultfd(2) system call */
	UFFD_OPEN_DEV,      /* only /dev/userfaultfd + USERFAULTFD_IOC_NEW */
	UFFD_OPEN_ADOPTED,  /* (reported only) fd given to uffd_handle_adopt() */
};

struct uffd_handle_config;

/* A configuration with the defaults: AUTO path, full (not user-mode-only)
 * handle, non-blocking, capability features on, nothing required.
 * -ENOMEM. */
int uffd_handle_config_new(struct uffd_handle_config **cfg);
/* Frees cfg; NULL is allowed. */
void uffd_handle_config_free(struct uffd_handle_config *cfg);
/* -EINVAL: not AUTO, SYSCALL or DEV. */
int uffd_handle_config_set_open_path(struct uffd_handle_config *cfg,
				     enum uffd_open_path path);
/* Ask for UFFD_USER_MODE_ONLY: works without privilege, but faults raised
 * inside the kernel (KVM, copy_to_user in syscalls) are not delivered. */
int uffd_handle_config_set_user_mode_only(struct uffd_handle_config *cfg,
					  bool user_mode_only);
/* Non-blocking (the default) makes uffd_handle_read_events() return 0 when
 * nothing is pending instead of waiting. */
int uffd_handle_config_set_nonblocking(struct uffd_handle_config *cfg,
				       bool nonblocking);
/* Features the handle must have: uffd_handle_new() fails with -ENOTSUP,
 * naming each missing one, if the kernel lacks any. Adds to earlier calls. */
int uffd_handle_config_require_features(struct uffd_handle_config *cfg,
					uint64_t features);
/* Features to enable when the kernel supports them; missing ones are
 * skipped silently. Adds to earlier calls. */
int uffd_handle_config_request_features(struct uffd_handle_config *cfg,
					uint64_t features);
/* Whether to enable UFFD_FEAT_CAPABILITY features the kernel supports
 * (default true). */
int uffd_handle_config_set_default_features(struct uffd_handle_config *cfg,
					    bool enable);

/* ------------------------------------------------------------------------
 * The handle: one userfaultfd, negotiated. Thread-safe: resolve operations
 * and event reads may run on many threads at once; registration changes are
 * serialised internally.
 */
struct uffd_handle;

/*
 * Opens a userfaultfd as cfg says (NULL: defaults), always O_CLOEXEC, and
 * performs the UFFDIO_API handshake: the supported set is probed on a
 * throw-away fd, then the real fd asks for required | requested-and-
 * supported | (capability features, unless disabled). The enabled set is
 * read back from the kernel, not assumed.
 * Errors:
 *  -EPERM / -EACCES: no open path was allowed; the message names the sysctl
 *                    vm.unprivileged_userfaultfd and /dev/userfaultfd's mode;
 *  -ENOSYS: the kernel has no userfaultfd;
 *  -ENOENT: the syscall was refused and /dev/userfaultfd does not exist;
 *  -ENOTSUP: a required feature is missing (each one is named);
 *  -EPERM: a required feature needs privilege (EVENT_FORK: CAP_SYS_PTRACE);
 *  -EMFILE, -ENFILE, -ENOMEM: out of resources.
 */
int uffd_handle_new(const struct uffd_handle_config *cfg,
		    struct uffd_handle **handle);

/*
 * Wraps an fd that is already a negotiated userfaultfd: the child handle of
 * a FORK event, or one received over a socket. On success the handle owns
 * fd and closes it in uffd_handle_free(). Registrations made on fd before
 * are unknown to libuffd; operations on them are left to the kernel to judge.
 * Errors: -EBADF: fd is not open; -EINVAL: not a userfaultfd, or its
 * handshake was never done; -ENOENT: /proc/self/fdinfo cannot be read (the
 * enabled features are learned there); -ENOMEM. On failure fd stays the
 * caller's.
 */
int uffd_handle_adopt(int fd, struct uffd_handle **handle);

/* Closes the fd and frees the handle; NULL is allowed. Faulting threads that
 * are still waiting are woken by the kernel and retry without userfaultfd. */
void uffd_handle_free(struct uffd_handle *handle);

/* The fd to poll for events (readable when a message is pending);
 * -EINVAL for a NULL handle. The fd stays owned by the handle. */
int uffd_handle_get_fd(const struct uffd_handle *handle);
/* How it was opened: SYSCALL, DEV or ADOPTED (AUTO for a NULL handle). */
enum uffd_open_path uffd_handle_get_open_path(const struct uffd_handle *handle);
/* Whether UFFD_USER_MODE_ONLY was asked for (false for NULL or adopted). */
bool uffd_handle_is_user_mode_only(const struct uffd_handle *handle);
/* Features enabled on this handle (as the kernel reports them); the
 * getters below return 0 for a NULL handle. */
uint64_t uffd_handle_get_features(const struct uffd_handle *handle);
/* Features the kernel supports (0 for an adopted handle: unknown). */
uint64_t uffd_handle_get_supported_features(const struct uffd_handle *handle);
/* The handshake's ioctls answer (UFFD_OP_API|REGISTER|UNREGISTER). */
uint64_t uffd_handle_get_api_ioctls(const struct uffd_handle *handle);

/*
 * The features the running kernel supports, probed on a throw-away fd
 * opened as cfg says (NULL: defaults). Errors as uffd_handle_new().
 */
int uffd_features_probe(const struct uffd_handle_config *cfg,
			uint64_t *supported);

/* ------------------------------------------------------------------------
 * Registration.
 */

/*
 * Registers [addr, addr+len) in the given UFFD_MODE_* combination and, when
 * ops is not NULL, stores the operations the kernel then allows on it (its
 * UFFD_OP_* mask, unknown bits kept). Re-registering a range replaces its
 * modes. The range is checked before the kernel sees it.
 * Errors:
 *  -EINVAL: len is 0; modes is 0 or has unknown bits; addr or len is not a
 *           multiple of the page size (of the huge page size on hugetlb);
 *           the range wraps around; the memory does not support the modes
 *           (e.g. MINOR on anonymous private memory: the message names the
 *           memory type and the modes it supports);
 *  -ENOMEM: part of the range is not mapped;
 *  -EPERM:  part of the range is a shared mapping without write access;
 *  -EBUSY:  part of the range is registered with another userfaultfd.
 */
int uffd_handle_register(struct uffd_handle *handle, void *addr, size_t len,
			 uint64_t modes, uint64_t *ops);

/*
 * Unregisters [addr, addr+len); waiting faulting threads are woken.
 * Errors: -EINVAL: len 0, misaligned, wrapping; -ENOMEM: not mapped.
 */
int uffd_handle_unregister(struct uffd_handle *handle, void *addr, size_t len);

/*
 * The operations libuffd allows on [addr, addr+len): what the kernel
 * advertised at registration, less what the capability probe found not to
 * work on that memory (the intersection when the range spans several
 * registrations), and their modes (the intersection too; either pointer may
 * be NULL).
 * Errors: -EINVAL: len 0 or wrapping; -ENOENT: some page of the range is
 * not registered through this handle.
 */
int uffd_handle_get_range_ops(struct uffd_handle *handle, void *addr,
			      size_t len, uint64_t *ops, uint64_t *modes);

/* ------------------------------------------------------------------------
 * Resolve operations. Each acts on a range that must be page aligned (huge
 * page aligned on hugetlb). On a range registered through this handle an
 * operation the registration does not allow, or that the capability probe
 * found not to work on that memory (MOVE on shmem), is refused with
 * -ENOTSUP before any ioctl is made; ranges unknown to libuffd are left to
 * the kernel.
 *
 * Flags (each operation documents which it takes; others give -EINVAL):
 */
#define UFFD_OPF_DONTWAKE        (1u << 0) /* leave the faulting thread
					      asleep; uffd_handle_wake()
					      later */
#define UFFD_OPF_WP              (1u << 1) /* map write-protected (range
					      must be registered with WP) */
#define UFFD_OPF_ALLOW_SRC_HOLES (1u << 2) /* MOVE: skip unpopulated source
					      pages instead of failing */
/*
 * Common errors of the operations that fill pages (copy, zeropage, continue,
 * poison, move):
 *  -EINVAL:  len 0, misaligned, wrapping, a flag the operation does not take,
 *            or the kernel's own EINVAL (e.g. MOVE outside anonymous memory);
 *  -ENOTSUP: the registration does not allow this operation (the message
 *            names the operation and the modes);
 *  -EEXIST:  the first page not yet done was already present: another
 *            handler won the race. Treat as resolved, then wake the range
 *            if DONTWAKE was used;
 *  -EAGAIN:  the memory layout is changing (an event such as REMOVE or UNMAP
 *            is unread); read events, then retry the rest;
 *  -ENOENT, -EFAULT: the range is not registered/mapped, or the backing
 *            (file, page cache for CONTINUE) has no page there;
 *  -ESRCH:   the process that owns the memory has exited.
 * done (may be NULL) receives the number of bytes completed, also on failure.
 * Partial progress is retried by libuffd until nothing more can be done, so
 * on success *done == len.
 */

/* UFFDIO_COPY: copy len bytes from src into the missing pages at dst.
 * Flags: DONTWAKE, WP. */
int uffd_handle_copy(struct uffd_handle *handle, void *dst, const void *src,
		     size_t len, unsigned flags, size_t *done);
/* UFFDIO_ZEROPAGE: map zero pages. Flags: DONTWAKE. */
int uffd_handle_zeropage(struct uffd_handle *handle, void *addr, size_t len,
			 unsigned flags, size_t *done);
/* UFFDIO_CONTINUE: map the pages already in the page cache (MINOR faults).
 * Flags: DONTWAKE, WP. */
int uffd_handle_continue(struct uffd_handle *handle, void *addr, size_t len,
			 unsigned flags, size_t *done);
/* UFFDIO_POISON: make the pages raise SIGBUS when touched. Flags: DONTWAKE. */
int uffd_handle_poison(struct uffd_handle *handle, void *addr, size_t len,
		       unsigned flags, size_t *done);
/* UFFDIO_MOVE: move the caller's own anonymous pages from src to dst (no
 * copy; src becomes unpopulated). Flags: DONTWAKE, ALLOW_SRC_HOLES.
 * Also -EBUSY: a source page is shared (not exclusive to this process). */
int uffd_handle_move(struct uffd_handle *handle, void *dst, void *src,
		     size_t len, unsigned flags, size_t *done);
/* UFFDIO_WRITEPROTECT: protect (true) or unprotect (false) the range.
 * Flags: DONTWAKE (unprotect only). Errors as above, without -EEXIST. */
int uffd_handle_writeprotect(struct uffd_handle *handle, void *addr,
			     size_t len, bool protect, unsigned flags);
/* UFFDIO_WAKE: wake threads waiting on the range. Errors: -EINVAL. */
int uffd_handle_wake(struct uffd_handle *handle, void *addr, size_t len);

/* ------------------------------------------------------------------------
 * Events.
 */
enum uffd_event_type {
	UFFD_EVENT_TYPE_PAGEFAULT = 0x12,
	UFFD_EVENT_TYPE_FORK = 0x13,   /* needs UFFD_FEAT_EVENT_FORK */
	UFFD_EVENT_TYPE_REMAP = 0x14,  /* needs UFFD_FEAT_EVENT_REMAP */
	UFFD_EVENT_TYPE_REMOVE = 0x15, /* needs UFFD_FEAT_EVENT_REMOVE */
	UFFD_EVENT_TYPE_UNMAP = 0x16,  /* needs UFFD_FEAT_EVENT_UNMAP */
};

/* Page-fault flags. */
#define UFFD_FAULT_WRITE (1u << 0) /* a write access */
#define UFFD_FAULT_WP    (1u << 1) /* a write to a write-protected page */
#define UFFD_FAULT_MINOR (1u << 2) /* page in the page cache, PTE missing */

struct uffd_event_fault {
	uint64_t address; /* page aligned unless EXACT_ADDRESS is on */
	uint32_t tid;     /* faulting thread when THREAD_ID is on, else 0 */
};

struct uffd_event_fork {
	int fd; /* the child's userfaultfd, now the caller's to close or to
		   pass to uffd_handle_adopt() */
};

struct uffd_event_remap {
	uint64_t from, to, len;
};

struct uffd_event_range {
	uint64_t start, end; /* REMOVE and UNMAP: [start, end) */
};

struct uffd_event {
	uint32_t type;  /* enum uffd_event_type; other values: newer kernel */
	uint32_t flags; /* PAGEFAULT: UFFD_FAULT_* */
	union {
		struct uffd_event_fault fault;
		struct uffd_event_fork fork;
		struct uffd_event_remap remap;
		struct uffd_event_range range;
	};
};

/*
 * Reads up to max pending events, in the kernel's order, with one read().
 * UNMAP and REMAP events also update the handle's table of registered
 * ranges, as the kernel has dropped or moved those registrations. (A munmap
 * or mremap with EVENT_UNMAP / EVENT_REMAP off cannot be seen: the table then
 * keeps stale entries, which only change how libuffd explains a refusal on
 * memory that is no longer registered.)
 * Returns the number read (0 when none is pending on a non-blocking handle)
 * or a negative errno: -EINVAL: NULL argument or max 0; -EINTR: a blocking
 * read was interrupted; -EBADF; -EIO: the kernel returned a truncated
 * message.
 */
int uffd_handle_read_events(struct uffd_handle *handle,
			    struct uffd_event *events, size_t max);

/* ------------------------------------------------------------------------
 * Memory backends: the kinds of memory userfaultfd treats differently.
 */
enum uffd_backend {
	UFFD_BACKEND_UNKNOWN = 0,
	UFFD_BACKEND_ANON_PRIVATE,         /* MAP_PRIVATE|MAP_ANONYMOUS */
	UFFD_BACKEND_ANON_SHARED,          /* MAP_SHARED|MAP_ANONYMOUS (shmem) */
	UFFD_BACKEND_MEMFD_SHARED,         /* memfd (or tmpfs file) MAP_SHARED */
	UFFD_BACKEND_MEMFD_PRIVATE,        /* memfd (or tmpfs file) MAP_PRIVATE */
	UFFD_BACKEND_HUGETLB_PRIVATE,      /* MAP_HUGETLB|MAP_PRIVATE */
	UFFD_BACKEND_HUGETLB_SHARED,       /* MAP_HUGETLB|MAP_SHARED, SysV
					      SHM_HUGETLB */
	UFFD_BACKEND_MEMFD_HUGETLB_SHARED, /* MFD_HUGETLB memfd or hugetlbfs
					      file, MAP_SHARED */
	UFFD_BACKEND_MEMFD_HUGETLB_PRIVATE,
	UFFD_BACKEND_TMPFS_FILE,           /* a named tmpfs file, MAP_SHARED */
	UFFD_BACKEND_DISK_FILE,            /* a file on a disk filesystem */
	UFFD_BACKEND_GUEST_MEMFD,          /* KVM guest_memfd, mmap()ed */
	UFFD_BACKEND_SYSV_SHM,             /* shmget() without SHM_HUGETLB */
	UFFD_BACKEND_MEMFD_SECRET,         /* memfd_secret(2) */
	UFFD_BACKEND_DEV_ZERO_PRIVATE,     /* MAP_PRIVATE of /dev/zero */
	UFFD_BACKEND_COUNT                 /* number of values (may grow) */
};

/* Short name ("anon-private", "memfd-hugetlb-shared", ...) or NULL. */
const char *uffd_backend_name(enum uffd_backend backend);
/* Words for messages ("anonymous private memory") or NULL. */
const char *uffd_backend_describe(enum uffd_backend backend);
/* -EINVAL: NULL argument; -ENOENT: no backend has that short name. */
int uffd_backend_from_name(const char *name, enum uffd_backend *backend);

/* ------------------------------------------------------------------------
 * Capabilities: what each backend supports on the running kernel, learned
 * by probing it, for a given set of enabled features (some answers depend
 * on them: WP_ASYNC lets WP register on disk files and guest_memfd).
 *
 * For each combination of modes the probe records two layers:
 *  - advertised: the operations UFFDIO_REGISTER reports for a probe mapping;
 *  - verified: those of them that, performed once on the probe mapping, had
 *    their effect (checked through /proc/self/pagemap and the data).
 * They differ on real kernels (6.18 advertises MOVE on shmem, where it fails
 * with EINVAL, and CONTINUE on private hugetlb, which has no page cache).
 * libuffd's own checks use the verified layer. The probe leaves no mapping,
 * file or huge page behind.
 */
enum uffd_caps_status {
	UFFD_CAPS_UNKNOWN = 0,  /* could not be probed here; see the reason */
	UFFD_CAPS_SUPPORTED,    /* at least one mode registers */
	UFFD_CAPS_UNSUPPORTED,  /* no mode registers */
};

struct uffd_caps;

/*
 * The capabilities of backend for a handle with the given enabled features
 * (uffd_handle_get_features()), probed on first use and cached for the life
 * of the process: the pointer stays valid and must not be freed. Probing is
 * serialised by a lock; the cache is the library's only global state.
 * Errors: -EINVAL: backend out of range or UNKNOWN, NULL caps;
 * -ENOTSUP: features has bits the kernel does not support; the errors of
 * uffd_handle_new() when no userfaultfd can be opened at all.
 * A backend that cannot be created here (no huge pages, no KVM) is not an
 * error: its status is UFFD_CAPS_UNKNOWN, with the reason.
 */
int uffd_caps_get(uint64_t features, enum uffd_backend backend,
		  const struct uffd_caps **caps);
/* The same, probed now and not cached; free it with uffd_caps_free(). */
int uffd_caps_probe(uint64_t features, enum uffd_backend backend,
		    struct uffd_caps **caps);
void uffd_caps_free(struct uffd_caps *caps);

enum uffd_backend uffd_caps_get_backend(const struct uffd_caps *caps);
uint64_t uffd_caps_get_features(const struct uffd_caps *caps);
enum uffd_caps_status uffd_caps_get_status(const struct uffd_caps *caps);
/* Why the status is UNKNOWN or UNSUPPORTED ("" when SUPPORTED). */
const char *uffd_caps_get_reason(const struct uffd_caps *caps);
/* Page size of the backend's memory (0 when unknown). */
size_t uffd_caps_get_page_size(const struct uffd_caps *caps);
/* The single modes (UFFD_MODE_*) that register on their own. */
uint64_t uffd_caps_get_modes(const struct uffd_caps *caps);
/*
 * For one combination of modes (any non-zero subset of UFFD_MODE_KNOWN):
 * register: 0 if it registered, else the kernel's negative errno
 * (-ENODATA when the backend is UNKNOWN); advertised and verified: the
 * operation masks (0 when it did not register).
 */
int uffd_caps_get_register(const struct uffd_caps *caps, uint64_t modes);
uint64_t uffd_caps_get_advertised(const struct uffd_caps *caps,
				  uint64_t modes);
uint64_t uffd_caps_get_verified(const struct uffd_caps *caps, uint64_t modes);
/*
 * How one advertised operation fared in verification: 0 when verified, else
 * a negative errno (the operation's own, or -EIO when it returned success
 * without the expected effect); note, when not NULL, receives a sentence
 * (never NULL). -ENODATA: the operation was not advertised for these modes.
 */
int uffd_caps_get_op_result(const struct uffd_caps *caps, uint64_t modes,
			    uint64_t op, const char **note);
/* Where the probe disagrees with what the feature bits promise, one
 * sentence per line; "" when they agree. */
const char *uffd_caps_get_notes(const struct uffd_caps *caps);

/* ------------------------------------------------------------------------
 * Range classification.
 */
struct uffd_range_info {
	enum uffd_backend backend; /* of the mapping at the range's start */
	size_t page_size;          /* its page size */
	size_t nr_mappings;        /* how many mappings the range spans */
	bool mixed;                /* they are of more than one backend or
				      page size */
	uintptr_t first_end;       /* where the first mapping ends */
};

/*
 * Says what memory [addr, addr+len) is, from /proc/self/smaps and, for
 * files, the filesystem type in /proc/self/mountinfo.
 * Errors: -EINVAL: NULL info, len 0, wrapping; -ENOMEM: part of the range is
 * not mapped; -ENOENT: /proc is not readable.
 */
int uffd_range_classify(const void *addr, size_t len,
			struct uffd_range_info *info);

/* ========================================================================
 * The fault-handling engine: page sources, regions, and the loop that
 * serves their faults.
 * ======================================================================== */

/* ------------------------------------------------------------------------
 * Page sources: where a region's contents come from. A source is
 * reference counted: regions keep their own reference, so the caller may
 * free it as soon as the regions are added.
 */
struct uffd_source;

/* Page i of a region comes from buf + region's source offset + i * page.
 * The buffer must stay valid while any region uses the source.
 * Errors: -EINVAL: NULL buf or len 0; -ENOMEM. */
int uffd_source_new_buffer(const void *buf, size_t len,
			   struct uffd_source **src);
/* From a file (a memory image): bytes [offset, offset+len) of fd, read with
 * pread() (poll driver) or io_uring reads (io_uring driver). Bytes past the
 * end of the file read as zeros. fd is duplicated; the caller keeps its own.
 * Errors: -EBADF; -EINVAL: len 0 or offset + len overflows; -ENOMEM. */
int uffd_source_new_fd(int fd, uint64_t offset, uint64_t len,
		       struct uffd_source **src);
/* Every page is zero (ZEROPAGE; on hugetlb, COPY from a zeroed page).
 * Errors: -ENOMEM. */
int uffd_source_new_zero(struct uffd_source **src);
/* The caller's own pages, moved rather than copied (UFFDIO_MOVE): page i
 * of the region takes the page at buf + offset + i * page, which leaves
 * buf. buf must be page aligned anonymous private memory, and so must the
 * region (uffd_loop_add_region() refuses others with -EINVAL): the
 * zero-copy way to hand prepared pages over (garbage collectors, restore
 * from memory already read). Errors: -EINVAL: NULL, len 0, misaligned. */
int uffd_source_new_move(void *buf, size_t len, struct uffd_source **src);

/* A user-defined source, such as a network page server. */
struct uffd_fetch;
struct uffd_source_ops {
	/* Start filling uffd_fetch_get_buffer(fetch) with
	 * uffd_fetch_get_length(fetch) bytes from uffd_fetch_get_offset(fetch)
	 * of the image, and call uffd_fetch_complete() once they are there,
	 * from any thread, before or after returning. Return 0, or a negative
	 * errno if the fetch could not be started (as if completed with it).
	 * Urgent fetches (a thread is waiting) should jump ahead of others. */
	int (*fetch)(void *arg, struct uffd_fetch *fetch);
	/* Called once, when the last reference to the source goes; may be
	 * NULL. */
	void (*release)(void *arg);
};
/* Errors: -EINVAL: NULL ops or ops->fetch; -ENOMEM. */
int uffd_source_new_custom(const struct uffd_source_ops *ops, void *arg,
			   struct uffd_source **src);
/*
 * An export of an NBD server (a memory image served by nbdkit, qemu-nbd,
 * another host), read with libnbd: uri as nbd_connect_uri() takes it, such
 * as "nbd://host/name" or "nbd+unix:///name?socket=/run/image.sock".
 * Connects at once; *size (NULL allowed) gets the export's size, and bytes
 * past it read as zeros. Reads are asynchronous, done by one I/O thread of
 * the source's own; reads that a faulting thread waits on get a second
 * connection when the server advertises multi-conn. A failed read, or a
 * lost connection (not re-established), goes to the loop's failure policy.
 * A custom source inside (so not for uffd_sigbus_add_region()). Free your
 * reference before uffd_loop_free(), as soon as the regions are added:
 * dropping the last one cuts the connections and waits for the reads in
 * flight to end, which must happen while the loop still exists.
 * Connecting and the handshake may take 30 s at most.
 * Errors: -EINVAL: NULL uri or src; -ENOTSUP: built without libnbd;
 * -ETIMEDOUT: no handshake within the time limit; libnbd's errno for a URI
 * it refuses or a failed connection (the reason gives its message);
 * -ENOMEM.
 */
int uffd_source_new_nbd(const char *uri, uint64_t *size,
			struct uffd_source **src);
/* The same with its own limit on connecting and the handshake, for each
 * connection: timeout_ms, or -1 for none. -EINVAL also for a timeout_ms
 * below -1. */
int uffd_source_new_nbd_timeout(const char *uri, int timeout_ms,
				uint64_t *size, struct uffd_source **src);
/* Drops the caller's reference; NULL is allowed. */
void uffd_source_free(struct uffd_source *src);
/* The bytes a source holds, which bound the regions it can serve: a buffer
 * or move source's length, a file source's len. UINT64_MAX for zero,
 * custom and NBD sources (any region length; uffd_source_new_nbd() gives
 * the export's size); 0 for NULL. */
uint64_t uffd_source_get_size(const struct uffd_source *src);

uint64_t uffd_fetch_get_offset(const struct uffd_fetch *fetch);
size_t uffd_fetch_get_length(const struct uffd_fetch *fetch);
void *uffd_fetch_get_buffer(struct uffd_fetch *fetch);
/* Whether a faulting thread waits on this fetch (not readahead/prefetch). */
bool uffd_fetch_is_urgent(const struct uffd_fetch *fetch);
/* Reports the fetch done: result 0, or a negative errno (the failure
 * policy then decides what the waiting threads get). Call exactly once. */
void uffd_fetch_complete(struct uffd_fetch *fetch, int result);

/* ------------------------------------------------------------------------
 * Regions: a range the loop serves, and how.
 */
struct uffd_region;
struct uffd_region_config;

/*
 * Called for each fault on a region that has a fault callback instead of a
 * source (and for every write-protect fault when one is set). It resolves
 * the fault with the uffd_handle_* operations on uffd_loop_get_handle()
 * and returns 0, or a negative errno to have the failure policy applied.
 */
typedef int (*uffd_fault_fn)(void *arg, struct uffd_region *region,
			     const struct uffd_event *fault);

/* Defaults: no range, MISSING mode, no source, adaptive readahead up to 16
 * pages, no prefetch, registered by the loop. -ENOMEM. */
int uffd_region_config_new(struct uffd_region_config **cfg);
void uffd_region_config_free(struct uffd_region_config *cfg);
/* -EINVAL: NULL, len 0, wrapping. */
int uffd_region_config_set_range(struct uffd_region_config *cfg, void *addr,
				 size_t len);
/* UFFD_MODE_* (MISSING, MINOR, WP in any combination). -EINVAL: 0 or
 * unknown bits. */
int uffd_region_config_set_modes(struct uffd_region_config *cfg,
				 uint64_t modes);
/* Page i of the region is byte offset + i * page of src. */
int uffd_region_config_set_source(struct uffd_region_config *cfg,
				  struct uffd_source *src, uint64_t offset);
/* For MINOR-capable memory (shmem, memfd, hugetlbfs): a second mapping of
 * the same pages that is not registered. Missing pages are filled through it
 * straight into the page cache, then mapped with CONTINUE: one copy. */
int uffd_region_config_set_alias(struct uffd_region_config *cfg, void *alias);
/* Resolve faults with fn instead of a source (and WP faults too). */
int uffd_region_config_set_fault_callback(struct uffd_region_config *cfg,
					  uffd_fault_fn fn, void *arg);
/* Readahead: fill up to max_pages missing pages from the faulting one on
 * (0: only the faulting page). adaptive: start small and grow the window
 * while faults are sequential; with prefetch on, every page is fetched
 * anyway, so an adaptive window is max_pages from the first fault. */
int uffd_region_config_set_readahead(struct uffd_region_config *cfg,
				     size_t max_pages, bool adaptive);
/* Fill the rest of the region in the background while the loop is idle,
 * so a lazy restore completes by itself. */
int uffd_region_config_set_prefetch(struct uffd_region_config *cfg,
				    bool enable);
/* Record the order in which pages are first faulted
 * (uffd_region_get_working_set()). */
int uffd_region_config_set_record(struct uffd_region_config *cfg, bool record);
/* Prefetch these page indices first, in this order (a recorded working
 * set), then the rest; implies prefetch. The array is copied. */
int uffd_region_config_set_prefetch_order(struct uffd_region_config *cfg,
					  const uint64_t *pages, size_t n);
/* The memory belongs to the process that owns the handle (received by
 * uffd_handover_recv()) and is already registered in the configured
 * modes: the loop neither registers it nor classifies it, and never
 * touches it but through the handle. */
int uffd_region_config_set_remote(struct uffd_region_config *cfg,
				  enum uffd_backend backend, size_t page_size);

/* The region's range, and how many of its pages the loop has resolved. */
void *uffd_region_get_addr(const struct uffd_region *region);
size_t uffd_region_get_len(const struct uffd_region *region);
size_t uffd_region_get_resolved_pages(const struct uffd_region *region);
/* Copies up to max recorded page indices (first-touch order) into pages;
 * *n gets how many there are. -EINVAL: recording not enabled. */
int uffd_region_get_working_set(struct uffd_region *region, uint64_t *pages,
				size_t max, size_t *n);

/* ------------------------------------------------------------------------
 * The loop.
 */
struct uffd_loop;
struct uffd_loop_config;

enum uffd_loop_driver {
	UFFD_DRIVER_POLL = 0, /* poll(2) + synchronous reads */
	UFFD_DRIVER_URING,    /* io_uring: multishot poll, async file reads */
};

/* What a faulting thread gets when its page cannot be had (the source
 * failed). Either way it never stays blocked. */
enum uffd_fail_policy {
	UFFD_FAIL_POISON = 0, /* SIGBUS on access (UFFDIO_POISON) */
	UFFD_FAIL_ZERO,       /* a zero page */
};

/* What uffd_loop_stop() does with faults already raised. */
enum uffd_stop_policy {
	UFFD_STOP_RESOLVE = 0, /* serve them from their sources */
	UFFD_STOP_POISON,      /* poison their pages (SIGBUS) */
};

/* Reports a failed fetch: the region, the byte offset in it, and the
 * error as a negative errno (-EIO...). */
typedef void (*uffd_error_fn)(void *arg, struct uffd_region *region,
			      uint64_t offset, int err);
/* Hands over the userfaultfd of a forked child (EVENT_FORK); the callee
 * owns fd (uffd_handle_adopt() it, or close it: the child's faults then
 * proceed as ordinary page faults). Without a callback the fd is closed. */
typedef void (*uffd_fork_fn)(void *arg, int child_uffd);

/* Defaults: poll driver, 1 thread, POISON on failure, RESOLVE on stop.
 * -ENOMEM. */
int uffd_loop_config_new(struct uffd_loop_config **cfg);
void uffd_loop_config_free(struct uffd_loop_config *cfg);
/* -ENOTSUP: io_uring support was not built in; -EINVAL: unknown driver. */
int uffd_loop_config_set_driver(struct uffd_loop_config *cfg,
				enum uffd_loop_driver driver);
/* Worker threads for uffd_loop_start() (1..64); 0: one per CPU the
 * calling thread may run on (its affinity now), at most 64. With more than
 * one, fault callbacks and fetches run on several threads at once.
 * -EINVAL: more than 64. */
int uffd_loop_config_set_threads(struct uffd_loop_config *cfg,
				 unsigned threads);
int uffd_loop_config_set_fail_policy(struct uffd_loop_config *cfg,
				     enum uffd_fail_policy policy);
int uffd_loop_config_set_stop_policy(struct uffd_loop_config *cfg,
				     enum uffd_stop_policy policy);
int uffd_loop_config_set_error_callback(struct uffd_loop_config *cfg,
					uffd_error_fn fn, void *arg);
int uffd_loop_config_set_fork_callback(struct uffd_loop_config *cfg,
				       uffd_fork_fn fn, void *arg);

/* A loop serving faults of handle (which must outlive it). cfg NULL:
 * defaults. Errors: -EINVAL; -ENOMEM; -EMFILE; the io_uring setup errors. */
int uffd_loop_new(struct uffd_handle *handle,
		  const struct uffd_loop_config *cfg, struct uffd_loop **loop);
/* Stops the loop, unregisters the regions it registered (later faults
 * there are ordinary page faults) and frees it; NULL is allowed. Custom
 * sources must have completed every fetch they were given before: a late
 * uffd_fetch_complete() would touch freed memory. */
void uffd_loop_free(struct uffd_loop *loop);
struct uffd_handle *uffd_loop_get_handle(const struct uffd_loop *loop);

/* Adds a region: registers its range (unless remote), and serves it from
 * now on. Errors: those of uffd_handle_register(); -EINVAL: no range, MISSING
 * mode with neither a source nor a fault callback, overlap with another
 * region, a range over mappings of different kinds, a source smaller than
 * the region; -ENOTSUP: a move source on a kernel without UFFDIO_MOVE. */
int uffd_loop_add_region(struct uffd_loop *loop,
			 const struct uffd_region_config *cfg,
			 struct uffd_region **region);
/* Unregisters (unless remote) and forgets a region; waiting threads are
 * woken first. -ENOENT: not a region of this loop. */
int uffd_loop_remove_region(struct uffd_loop *loop,
			    struct uffd_region *region);

/* Starts the configured worker threads. -EBUSY: already running. */
int uffd_loop_start(struct uffd_loop *loop);
/* Serves faults on the calling thread until uffd_loop_stop().
 * -EBUSY: already running on another thread. Do not mix with
 * uffd_loop_process() on another thread. */
int uffd_loop_run(struct uffd_loop *loop);
/* From any thread but a callback of this loop: makes the workers and
 * uffd_loop_run() return, then serves or poisons (stop policy) the faults
 * already raised. Returns when it has. Faults raised later wait for the
 * loop to run again, or for uffd_loop_free(). */
int uffd_loop_stop(struct uffd_loop *loop);

/* Embedding in another event loop: an fd that is readable when the loop
 * has work; then call uffd_loop_process(), which does what is ready without
 * blocking and returns the number of events handled (or -errno). */
int uffd_loop_get_fd(const struct uffd_loop *loop);
int uffd_loop_process(struct uffd_loop *loop);

/* Waits until every region with prefetch is fully resolved, at most
 * timeout_ms (-1: no limit). -ETIMEDOUT; -EINVAL: no region prefetches. */
int uffd_loop_wait_complete(struct uffd_loop *loop, int timeout_ms);

#define UFFD_LATENCY_BUCKETS 24
struct uffd_loop_stats {
	uint64_t faults_missing;   /* page faults read, by kind */
	uint64_t faults_minor;
	uint64_t faults_wp;
	uint64_t faults_unknown;   /* outside every region: woken */
	uint64_t pages_resolved;   /* pages made present by the loop */
	uint64_t bytes_resolved;
	uint64_t readahead_pages;  /* resolved ahead of any fault */
	uint64_t readahead_hits;   /* faults whose page was already on its
				      way (readahead, prefetch, another
				      worker) */
	uint64_t prefetch_pages;   /* resolved by background prefetch */
	uint64_t eexist_races;     /* pages another handler mapped first */
	uint64_t events_remove, events_unmap, events_remap, events_fork;
	uint64_t fetch_failures;   /* fetches that failed */
	uint64_t pages_poisoned;   /* by the failure or stop policy */
	uint64_t pages_zeroed;     /* by the failure policy */
	/* Fault read to fault resolved: bucket i counts latencies in
	 * [2^i, 2^(i+1)) microseconds (bucket 0 also below 1 us). */
	uint64_t latency_us_log2[UFFD_LATENCY_BUCKETS];
	/* Windows whose fetch failed and were fetched again page by page
	 * (only pages that still fail count in fetch_failures). */
	uint64_t fetch_retries;
};
/* Fills stats (size = sizeof(struct uffd_loop_stats), so the struct may grow
 * compatibly). While workers run the figures are a moment's reading (a
 * page is counted just after the ioctl that wakes its thread); once
 * uffd_loop_stop() has returned they are exact.
 * -EINVAL: NULL or a size larger than this library knows. */
int uffd_loop_get_stats(struct uffd_loop *loop, struct uffd_loop_stats *stats,
			size_t size);

/* ------------------------------------------------------------------------
 * In-thread resolution (UFFD_FEAT_SIGBUS): a fault raises SIGBUS in the
 * faulting thread, whose signal handler resolves it from a buffer, file
 * or zero source at once: no message, no handler thread, no context switch.
 * For processes that fault on their own memory (lazy restore in-process,
 * garbage collectors). libuffd installs one process-wide SIGBUS handler
 * while any uffd_sigbus exists, and passes signals that are not for its
 * regions to the handler that was there before.
 */
struct uffd_sigbus;

/* -EINVAL: handle lacks UFFD_FEAT_SIGBUS; -ENOMEM. */
int uffd_sigbus_new(struct uffd_handle *handle, struct uffd_sigbus **sigbus);
/* Adds a region (range, modes MISSING and/or MINOR, a buffer, fd or zero
 * source, alias, readahead) and registers it. Errors as
 * uffd_loop_add_region(), and -ENOTSUP: WP mode, a fault callback,
 * prefetch, recording, a remote region, a move, custom or NBD source;
 * -ENOSPC: 256 regions are served in-thread already. */
int uffd_sigbus_add_region(struct uffd_sigbus *sigbus,
			   const struct uffd_region_config *cfg);
/* Unregisters its regions, restores the previous handler when it is the
 * last; NULL is allowed. */
void uffd_sigbus_free(struct uffd_sigbus *sigbus);
/* faults_missing/minor, pages and bytes resolved, fetch_failures and
 * pages_poisoned (a failed read poisons the page: the retried access then
 * gets the real SIGBUS). */
int uffd_sigbus_get_stats(struct uffd_sigbus *sigbus,
			  struct uffd_loop_stats *stats, size_t size);

/* ------------------------------------------------------------------------
 * Handing the userfaultfd to another process (a VMM to an external page
 * server) over a Unix socket: the fd and the backing files' fds go as
 * SCM_RIGHTS, with a versioned table describing the regions. The wire
 * format is documented in doc/handover.md.
 */
#define UFFD_HANDOVER_VERSION 1
#define UFFD_HANDOVER_MAX_REGIONS 1024

struct uffd_handover_region {
	uint64_t addr;        /* in the sender's address space */
	uint64_t len;
	uint32_t backend;     /* enum uffd_backend */
	uint32_t modes;       /* UFFD_MODE_* it is registered in */
	uint64_t page_size;
	uint64_t file_offset; /* where addr is in fd (when fd >= 0) */
	int fd;               /* the backing file (memfd...), or -1; on
				 receipt, the receiver's own fd */
};

/*
 * Sends handle's fd and n region descriptions on the connected Unix socket
 * sock. Regions sharing a backing fd send it once (a message carries at
 * most 253 fds). Errors: -EINVAL: NULL, n > UFFD_HANDOVER_MAX_REGIONS, a
 * zero, wrapping or misaligned range, a page size that is not a power of
 * two of at least 4 KiB, unknown modes or backend, an unaligned file
 * offset, more than 252 distinct backing fds; -EBADF: a region fd is not
 * open; the errors of sendmsg() (-EPIPE when the peer is gone: no SIGPIPE).
 */
int uffd_handover_send(int sock, const struct uffd_handle *handle,
		       const struct uffd_handover_region *regions, size_t n);
/*
 * Receives them: *handle adopts the fd; *regions (free() it) holds *n
 * descriptions whose fds are the caller's to close.
 * Errors: -EPROTO: not a libuffd handover, wrong version, a truncated or
 * inconsistent message (the reason says which); -ENODATA: the peer closed
 * the socket; the errors of recvmsg() and uffd_handle_adopt(). Nothing is
 * leaked on error: fds that arrived are closed.
 */
int uffd_handover_recv(int sock, struct uffd_handle **handle,
		       struct uffd_handover_region **regions, size_t *n);

#ifdef __cplusplus
}
#endif

#endif /* LIBUFFD_H */
