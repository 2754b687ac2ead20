// SPDX-License-Identifier: MIT
/*
 * The resolve operations. The five that fill pages (COPY, ZEROPAGE,
 * CONTINUE, POISON, MOVE) share one driver: validate, check the handle's
 * registration, issue, and on partial progress (-EAGAIN with a positive
 * count) go on with the rest. A negative count is an errno, never bytes.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "internal.h"

/* Issues one ioctl; *progress gets the kernel's count field. */
typedef int (*issue_fn)(int fd, uintptr_t dst, uintptr_t src, size_t len,
			uint64_t mode, int64_t *progress);

struct fill_desc {
	uint64_t op;	     /* UFFD_OP_* */
	unsigned flags;	     /* UFFD_OPF_* accepted */
	uint64_t k_dontwake; /* kernel mode bits for those flags */
	uint64_t k_wp;
	uint64_t k_holes;
	bool src_aligned;    /* src must be page aligned (MOVE) */
	const char *efault;  /* what EFAULT means for this operation */
	const char *einval;  /* what the kernel's EINVAL means */
	issue_fn issue;
};

static int issue_copy(int fd, uintptr_t dst, uintptr_t src, size_t len,
		      uint64_t mode, int64_t *progress)
{
	struct kuffd_copy c = { dst, src, len, mode, 0 };
	int ret = ioctl(fd, KUFFDIO_COPY, &c) ? -errno : 0;

	*progress = c.copy;
	return ret;
}

static int issue_zeropage(int fd, uintptr_t dst, uintptr_t src, size_t len,
			  uint64_t mode, int64_t *progress)
{
	struct kuffd_zeropage z = { { dst, len }, mode, 0 };
	int ret = ioctl(fd, KUFFDIO_ZEROPAGE, &z) ? -errno : 0;

	(void)src;
	*progress = z.zeropage;
	return ret;
}

static int issue_continue(int fd, uintptr_t dst, uintptr_t src, size_t len,
			  uint64_t mode, int64_t *progress)
{
	struct kuffd_continue c = { { dst, len }, mode, 0 };
	int ret = ioctl(fd, KUFFDIO_CONTINUE, &c) ? -errno : 0;

	(void)src;
	*progress = c.mapped;
	return ret;
}

static int issue_poison(int fd, uintptr_t dst, uintptr_t src, size_t len,
			uint64_t mode, int64_t *progress)
{
	struct kuffd_poison p = { { dst, len }, mode, 0 };
	int ret = ioctl(fd, KUFFDIO_POISON, &p) ? -errno : 0;

	(void)src;
	*progress = p.updated;
	return ret;
}

static int issue_move(int fd, uintptr_t dst, uintptr_t src, size_t len,
		      uint64_t mode, int64_t *progress)
{
	struct kuffd_move m = { dst, src, len, mode, 0 };
	int ret = ioctl(fd, KUFFDIO_MOVE, &m) ? -errno : 0;

	*progress = m.move;
	return ret;
}

static const struct fill_desc copy_desc = {
	.op = UFFD_OP_COPY,
	.flags = UFFD_OPF_DONTWAKE | UFFD_OPF_WP,
	.k_dontwake = KUFFD_COPY_DONTWAKE,
	.k_wp = KUFFD_COPY_WP,
	.efault = "COPY could not read the source or fill the destination "
		  "(unreadable source, or a file mapping past its end)",
	.einval = "the kernel refused COPY on this memory",
	.issue = issue_copy,
};

static const struct fill_desc zeropage_desc = {
	.op = UFFD_OP_ZEROPAGE,
	.flags = UFFD_OPF_DONTWAKE,
	.k_dontwake = KUFFD_ZEROPAGE_DONTWAKE,
	.efault = "ZEROPAGE could not fill the destination (a file mapping "
		  "past its end?)",
	.einval = "the kernel refused ZEROPAGE on this memory (hugetlb has "
		  "no ZEROPAGE)",
	.issue = issue_zeropage,
};

static const struct fill_desc continue_desc = {
	.op = UFFD_OP_CONTINUE,
	.flags = UFFD_OPF_DONTWAKE | UFFD_OPF_WP,
	.k_dontwake = KUFFD_CONTINUE_DONTWAKE,
	.k_wp = KUFFD_CONTINUE_WP,
	.efault = "CONTINUE found no page in the page cache there: fill it "
		  "through another mapping or pwrite() first",
	.einval = "the kernel refused CONTINUE (the range must be registered "
		  "in MINOR mode on shmem or hugetlb)",
	.issue = issue_continue,
};

static const struct fill_desc poison_desc = {
	.op = UFFD_OP_POISON,
	.flags = UFFD_OPF_DONTWAKE,
	.k_dontwake = KUFFD_POISON_DONTWAKE,
	.efault = "POISON could not mark the destination (a file mapping past "
		  "its end?)",
	.einval = "the kernel refused POISON on this memory",
	.issue = issue_poison,
};

static const struct fill_desc move_desc = {
	.op = UFFD_OP_MOVE,
	.flags = UFFD_OPF_DONTWAKE | UFFD_OPF_ALLOW_SRC_HOLES,
	.k_dontwake = KUFFD_MOVE_DONTWAKE,
	.k_holes = KUFFD_MOVE_ALLOW_SRC_HOLES,
	.src_aligned = true,
	.efault = "MOVE could not access the source or destination",
	.einval = "the kernel refused MOVE: source and destination must both "
		  "be anonymous private memory, page aligned, not overlapping",
	.issue = issue_move,
};

static const struct fill_desc *fill_desc_of(uint64_t op)
{
	switch (op) {
	case UFFD_OP_COPY: return &copy_desc;
	case UFFD_OP_ZEROPAGE: return &zeropage_desc;
	case UFFD_OP_CONTINUE: return &continue_desc;
	case UFFD_OP_POISON: return &poison_desc;
	case UFFD_OP_MOVE: return &move_desc;
	default: return NULL;
	}
}

int uffd_raw_fill(int fd, uint64_t op, uintptr_t dst, uintptr_t src,
		  size_t len)
{
	int64_t progress;

	return uffd_raw_fill_ex(fd, op, dst, src, len, 0, &progress);
}

int uffd_raw_fill_ex(int fd, uint64_t op, uintptr_t dst, uintptr_t src,
		     size_t len, unsigned flags, int64_t *progress)
{
	const struct fill_desc *d = fill_desc_of(op);
	uint64_t mode;

	*progress = 0;
	if (!d)
		return -EINVAL;
	mode = ((flags & UFFD_OPF_DONTWAKE) ? d->k_dontwake : 0) |
	       ((flags & UFFD_OPF_ALLOW_SRC_HOLES) ? d->k_holes : 0);
	return d->issue(fd, dst, src, len, mode, progress);
}

int uffd_raw_writeprotect(int fd, uintptr_t start, size_t len, bool protect)
{
	struct kuffd_writeprotect wp = {
		{ start, len }, protect ? KUFFD_WRITEPROTECT_WP : 0
	};

	return ioctl(fd, KUFFDIO_WRITEPROTECT, &wp) ? -errno : 0;
}

int uffd_raw_wake(int fd, uintptr_t start, size_t len)
{
	struct kuffd_range range = { start, len };

	return ioctl(fd, KUFFDIO_WAKE, &range) ? -errno : 0;
}

static int explain_fill_error(const struct fill_desc *d, int err)
{
	switch (err) {
	case EEXIST:
		return uffd_err(EEXIST, "a page of the range is already present "
					"(another handler resolved it first)");
	case EAGAIN:
		return uffd_err(EAGAIN, "the memory layout is changing: read the "
					"pending events, then retry the rest");
	case ENOENT:
		return uffd_err(ENOENT, "the range is not registered with this "
					"userfaultfd (or was unmapped)");
	case ESRCH:
		return uffd_err(ESRCH, "the process that owns the memory has "
				       "exited");
	case EFAULT:
		return uffd_err(EFAULT, d->efault);
	case EINVAL:
		return uffd_err(EINVAL, d->einval);
	case EBUSY:
		if (d->op == UFFD_OP_MOVE)
			return uffd_err(EBUSY, "a source page is shared with "
					       "another mapping or process: "
					       "MOVE needs exclusive pages");
		break;
	}
	return uffd_errf(err, "%s failed: %s", uffd_op_name(d->op),
			 strerror(err));
}

/* Checks shared by every operation: handle, range, base alignment, flags,
 * and the handle's own registration table. */
static int check_op(struct uffd_handle *h, uint64_t op, const void *addr,
		    size_t len, unsigned flags, unsigned allowed,
		    uintptr_t *start)
{
	size_t ps = uffd_page_size();
	uintptr_t end;
	int ret;

	if (!h)
		return uffd_err(EINVAL, "handle is NULL");
	ret = uffd_range_from(addr, len, start, &end);
	if (ret)
		return ret;
	if (*start % ps || len % ps)
		return uffd_errf(EINVAL,
				 "%s at %#lx of %zu bytes: address and length "
				 "must be multiples of the page size (%zu)",
				 uffd_op_name(op), (unsigned long)*start, len, ps);
	if (flags & ~allowed)
		return uffd_errf(EINVAL, "%s does not take flags %#x",
				 uffd_op_name(op), flags & ~allowed);
	return uffd_range_check_op(h, op, *start, len, flags);
}

static int run_fill(struct uffd_handle *h, const struct fill_desc *d,
		    void *dst, const void *src, size_t len, unsigned flags,
		    size_t *done)
{
	uint64_t mode = ((flags & UFFD_OPF_DONTWAKE) ? d->k_dontwake : 0) |
			((flags & UFFD_OPF_WP) ? d->k_wp : 0) |
			((flags & UFFD_OPF_ALLOW_SRC_HOLES) ? d->k_holes : 0);
	uintptr_t start, src_addr = (uintptr_t)src;
	size_t total = 0;
	int ret;

	if (done)
		*done = 0;
	ret = check_op(h, d->op, dst, len, flags, d->flags, &start);
	if (ret)
		return ret;
	if (d->src_aligned && src_addr % uffd_page_size())
		return uffd_errf(EINVAL, "%s: the source %#lx must be page "
				 "aligned", uffd_op_name(d->op),
				 (unsigned long)src_addr);
	for (;;) {
		int64_t progress = 0;

		ret = d->issue(h->fd, start + total, src_addr + total,
			       len - total, mode, &progress);
		if (progress > 0)
			total += (size_t)progress;
		if (!ret || ret != -EAGAIN || progress <= 0)
			break;
	}
	if (done)
		*done = ret ? total : len;
	return ret ? explain_fill_error(d, -ret) : 0;
}

UFFD_EXPORT int uffd_handle_copy(struct uffd_handle *handle, void *dst,
				 const void *src, size_t len, unsigned flags,
				 size_t *done)
{
	if (!src)
		return uffd_err(EINVAL, "COPY: the source is NULL");
	return run_fill(handle, &copy_desc, dst, src, len, flags, done);
}

UFFD_EXPORT int uffd_handle_zeropage(struct uffd_handle *handle, void *addr,
				     size_t len, unsigned flags, size_t *done)
{
	return run_fill(handle, &zeropage_desc, addr, NULL, len, flags, done);
}

UFFD_EXPORT int uffd_handle_continue(struct uffd_handle *handle, void *addr,
				     size_t len, unsigned flags, size_t *done)
{
	return run_fill(handle, &continue_desc, addr, NULL, len, flags, done);
}

UFFD_EXPORT int uffd_handle_poison(struct uffd_handle *handle, void *addr,
				   size_t len, unsigned flags, size_t *done)
{
	return run_fill(handle, &poison_desc, addr, NULL, len, flags, done);
}

UFFD_EXPORT int uffd_handle_move(struct uffd_handle *handle, void *dst,
				 void *src, size_t len, unsigned flags,
				 size_t *done)
{
	if (!src)
		return uffd_err(EINVAL, "MOVE: the source is NULL");
	return run_fill(handle, &move_desc, dst, src, len, flags, done);
}

UFFD_EXPORT int uffd_handle_writeprotect(struct uffd_handle *handle,
					 void *addr, size_t len, bool protect,
					 unsigned flags)
{
	struct kuffd_writeprotect wp;
	uintptr_t start;
	int ret;

	ret = check_op(handle, UFFD_OP_WRITEPROTECT, addr, len, flags,
		       UFFD_OPF_DONTWAKE, &start);
	if (ret)
		return ret;
	/* Protecting wakes nobody, so the kernel rejects DONTWAKE there. */
	if (protect && (flags & UFFD_OPF_DONTWAKE))
		return uffd_err(EINVAL, "WRITEPROTECT: DONTWAKE applies only to "
					"unprotecting");
	wp = (struct kuffd_writeprotect){
		{ start, len },
		(protect ? KUFFD_WRITEPROTECT_WP : 0) |
			((flags & UFFD_OPF_DONTWAKE) ? KUFFD_WRITEPROTECT_DONTWAKE
						     : 0),
	};
	if (!ioctl(handle->fd, KUFFDIO_WRITEPROTECT, &wp))
		return 0;
	if (errno == ENOENT || errno == EINVAL)
		return uffd_errf(errno,
				 "WRITEPROTECT failed (%s): the range must be "
				 "registered in WP mode with this userfaultfd",
				 strerror(errno));
	return uffd_errf(errno, "WRITEPROTECT failed: %s", strerror(errno));
}

UFFD_EXPORT int uffd_handle_wake(struct uffd_handle *handle, void *addr,
				 size_t len)
{
	struct kuffd_range range;
	uintptr_t start;
	int ret;

	ret = check_op(handle, UFFD_OP_WAKE, addr, len, 0, 0, &start);
	if (ret)
		return ret;
	range = (struct kuffd_range){ start, len };
	if (ioctl(handle->fd, KUFFDIO_WAKE, &range))
		return uffd_errf(errno, "WAKE failed: %s", strerror(errno));
	return 0;
}
