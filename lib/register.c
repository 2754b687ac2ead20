// SPDX-License-Identifier: MIT
/*
 * Registration, and the handle's table of what it registered. The table is
 * what lets an operation be refused in words before the kernel answers a
 * bare EINVAL; it is kept in the kernel's order by holding the write lock
 * across each (un)registration ioctl.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "internal.h"

struct reg_scan {
	uintptr_t start, end;
	size_t page_size;         /* largest page size met in the range */
	struct uffd_reg *pieces;  /* one per mapping, clipped to the range */
	size_t npieces, cap;
};

static const char *describe_vma(const struct uffd_vma *vma)
{
	if (vma->path[0])
		return vma->path;
	return (vma->flags & UFFD_VMA_SHARED) ? "anonymous shared memory"
					      : "anonymous private memory";
}

static int add_piece(struct reg_scan *scan, const struct uffd_vma *vma)
{
	struct uffd_reg *r;

	if (scan->npieces == scan->cap) {
		size_t cap = scan->cap ? 2 * scan->cap : 4;

		r = realloc(scan->pieces, cap * sizeof(*r));
		if (!r)
			return uffd_err(ENOMEM, "out of memory scanning the range");
		scan->pieces = r;
		scan->cap = cap;
	}
	r = &scan->pieces[scan->npieces++];
	*r = (struct uffd_reg){
		.start = vma->start > scan->start ? vma->start : scan->start,
		.end = vma->end < scan->end ? vma->end : scan->end,
		.page_size = vma->page_size,
		.backend = uffd_vma_backend(vma),
	};
	return 0;
}

static int scan_vma(const struct uffd_vma *vma, void *arg)
{
	struct reg_scan *scan = arg;

	if ((vma->flags & UFFD_VMA_SHARED) && !(vma->flags & UFFD_VMA_MAYWRITE))
		return uffd_errf(EPERM,
				 "the mapping %#lx-%#lx (%s) is shared without "
				 "write access (file opened read-only?); "
				 "userfaultfd needs a mapping that may be written",
				 (unsigned long)vma->start,
				 (unsigned long)vma->end, describe_vma(vma));
	if (vma->page_size > scan->page_size)
		scan->page_size = vma->page_size;
	if (scan->start % vma->page_size || scan->end % vma->page_size)
		return uffd_errf(EINVAL,
				 "the range %#lx-%#lx covers %s with %zu KiB "
				 "pages: address and length must be multiples "
				 "of that page size",
				 (unsigned long)scan->start,
				 (unsigned long)scan->end, describe_vma(vma),
				 vma->page_size / 1024);
	return add_piece(scan, vma);
}

/* The range as one piece of unknown memory (no /proc/self/smaps). */
static int scan_unknown(struct reg_scan *scan)
{
	struct uffd_vma whole = { .start = scan->start, .end = scan->end,
				  .page_size = uffd_page_size() };

	scan->npieces = 0;
	return add_piece(scan, &whole);
}

/* The checks that need no kernel: length, wrap, modes, base alignment. */
static int check_range(struct uffd_handle *h, const void *addr, size_t len,
		       uintptr_t *start, uintptr_t *end)
{
	size_t ps = uffd_page_size();
	int ret;

	if (!h)
		return uffd_err(EINVAL, "handle is NULL");
	ret = uffd_range_from(addr, len, start, end);
	if (ret)
		return ret;
	if (*start % ps || len % ps)
		return uffd_errf(EINVAL,
				 "address %#lx and length %zu must be multiples "
				 "of the page size (%zu)",
				 (unsigned long)*start, len, ps);
	return 0;
}

static int cmp_reg(const void *a, const void *b)
{
	const struct uffd_reg *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/*
 * Copies the n entries of in to out with [start, end) carved out of each;
 * returns how many were written. out must hold n + 1 entries: only an
 * entry that strictly contains the range splits in two, and then it is the
 * only one the range touches.
 */
static size_t regs_carve(const struct uffd_reg *in, size_t n,
			 struct uffd_reg *out, uintptr_t start, uintptr_t end)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		struct uffd_reg r = in[i];

		if (r.end <= start || r.start >= end) {
			out[k++] = r;
			continue;
		}
		if (r.start < start) {
			out[k] = r;
			out[k++].end = start;
		}
		if (r.end > end) {
			out[k] = r;
			out[k++].start = end;
		}
	}
	return k;
}

/* Installs out (k entries, any order) as the table. */
static void regs_install(struct uffd_handle *h, struct uffd_reg *out, size_t k)
{
	qsort(out, k, sizeof(*out), cmp_reg);
	free(h->regs);
	h->regs = out;
	h->nregs = k;
}

/*
 * Replaces the table with one where [start, end) is carved out of every
 * entry and covered by the nadd entries of add. out must hold
 * nregs + 1 + nadd entries.
 */
static void regs_rebuild(struct uffd_handle *h, struct uffd_reg *out,
			 uintptr_t start, uintptr_t end,
			 const struct uffd_reg *add, size_t nadd)
{
	size_t k = regs_carve(h->regs, h->nregs, out, start, end);

	if (nadd) /* add may be NULL then, and memcpy must not see it */
		memcpy(out + k, add, nadd * sizeof(*add));
	regs_install(h, out, k + nadd);
}

static struct uffd_reg *regs_alloc(const struct uffd_handle *h, size_t nadd)
{
	return malloc((h->nregs + 1 + nadd) * sizeof(struct uffd_reg));
}

/* "MINOR mode is not supported on anonymous private memory (supported
 * here: MISSING, WP)", from the capability probe, when it knows. */
static bool explain_by_caps(const struct uffd_handle *h, uint64_t modes,
			    const struct uffd_reg *piece)
{
	const struct uffd_caps *caps = uffd_caps_lookup(h->features,
							piece->backend);
	char want[64], have[64];

	if (!caps || uffd_caps_get_register(caps, modes) == 0)
		return false;
	uffd_modes_format(modes, want, sizeof(want));
	uffd_modes_format(uffd_caps_get_modes(caps), have, sizeof(have));
	for (char *c = have; (c = strchr(c, ',')); c++)
		*c = '/';
	uffd_errf(EINVAL, "%s mode is not supported on %s (supported here: "
		  "%s%s)", want, uffd_backend_describe(piece->backend), have,
		  (uffd_caps_get_modes(caps) & modes) == modes
			  ? ", but not in this combination"
			  : "");
	return true;
}

static int explain_register_error(const struct uffd_handle *h, int err,
				  uint64_t modes, const struct reg_scan *scan)
{
	char names[64];

	uffd_modes_format(modes, names, sizeof(names));
	switch (err) {
	case EINVAL:
		for (size_t i = 0; i < scan->npieces; i++)
			if (explain_by_caps(h, modes, &scan->pieces[i]))
				return -EINVAL;
		return uffd_errf(EINVAL,
				 "the kernel refused to register %s mode on %s "
				 "(%#lx-%#lx): the memory type does not support it",
				 names,
				 uffd_backend_describe(scan->pieces[0].backend),
				 (unsigned long)scan->start,
				 (unsigned long)scan->end);
	case EBUSY:
		return uffd_err(EBUSY, "part of the range is already registered "
				       "with another userfaultfd");
	case ENOMEM:
		return uffd_err(ENOMEM, "part of the range is not mapped");
	default:
		return uffd_errf(err, "UFFDIO_REGISTER (%s) failed: %s", names,
				 strerror(err));
	}
}

/* All operations but those the probe tried on this backend in these modes
 * and saw fail. Operations newer than libuffd, or that the probe could not
 * try, pass; so does everything where the probe cannot speak for this
 * memory (unknown backend, or its own registration disagreed).
 * Computed before the table lock: a first probe takes milliseconds. */
static uint64_t allowed_mask(const struct uffd_handle *h,
			     enum uffd_backend backend, uint64_t modes)
{
	const struct uffd_caps *caps = uffd_caps_lookup(h->features, backend);

	uint64_t mask = ~UINT64_C(0);

	if (!caps || uffd_caps_get_register(caps, modes) != 0)
		return mask;
	for (uint64_t op = UFFD_OP_WAKE; op <= UFFD_OP_POISON; op <<= 1) {
		int res = uffd_caps_get_op_result(caps, modes, op, NULL);

		/* -ENODATA: not advertised, or could not be tried */
		if (res != 0 && res != -ENODATA)
			mask &= ~op;
	}
	return mask;
}

static int scan_range(struct uffd_handle *h, const void *addr, size_t len,
		      uint64_t modes, struct reg_scan *scan)
{
	int ret = check_range(h, addr, len, &scan->start, &scan->end);

	if (ret)
		return ret;
	if (!modes || (modes & ~UFFD_MODE_KNOWN))
		return uffd_errf(EINVAL,
				 "modes %#llx: give one or more of MISSING, "
				 "WP, MINOR and no other bit",
				 (unsigned long long)modes);
	ret = uffd_vma_walk(scan->start, scan->end, scan_vma, scan);
	/* smaps unreadable (-ENOENT): leave the checks to the kernel. */
	return ret == -ENOENT ? scan_unknown(scan) : ret;
}

UFFD_EXPORT int uffd_handle_register(struct uffd_handle *handle, void *addr,
				     size_t len, uint64_t modes, uint64_t *ops)
{
	struct reg_scan scan = { .page_size = uffd_page_size() };
	struct kuffd_register reg = { 0 };
	struct uffd_reg *table;
	int ret;

	ret = scan_range(handle, addr, len, modes, &scan);
	if (ret)
		goto out;
	for (size_t i = 0; i < scan.npieces; i++)
		scan.pieces[i].allowed =
			allowed_mask(handle, scan.pieces[i].backend, modes);
	reg.range.start = scan.start;
	reg.range.len = len;
	reg.mode = modes;
	pthread_rwlock_wrlock(&handle->reg_lock);
	table = regs_alloc(handle, scan.npieces); /* sized under the lock */
	if (!table) {
		pthread_rwlock_unlock(&handle->reg_lock);
		ret = uffd_err(ENOMEM, "out of memory for the registration table");
		goto out;
	}
	if (ioctl(handle->fd, KUFFDIO_REGISTER, &reg)) {
		ret = errno;
		pthread_rwlock_unlock(&handle->reg_lock);
		free(table);
		ret = explain_register_error(handle, ret, modes, &scan);
		goto out;
	}
	for (size_t i = 0; i < scan.npieces; i++) {
		struct uffd_reg *r = &scan.pieces[i];

		r->modes = modes;
		r->ops = reg.ioctls;
		r->allowed &= reg.ioctls;
	}
	regs_rebuild(handle, table, scan.start, scan.end, scan.pieces,
		     scan.npieces);
	pthread_rwlock_unlock(&handle->reg_lock);
	if (ops)
		*ops = reg.ioctls;
out:
	free(scan.pieces);
	return ret;
}

/* Huge page alignment of a range, from the table (no smaps walk). */
static int check_table_alignment(struct uffd_handle *h, uintptr_t start,
				 uintptr_t end)
{
	for (size_t i = 0; i < h->nregs; i++) {
		const struct uffd_reg *r = &h->regs[i];

		if (r->end <= start || r->start >= end)
			continue;
		if (start % r->page_size || end % r->page_size)
			return uffd_errf(EINVAL,
					 "the range %#lx-%#lx is on memory with "
					 "%zu KiB pages: address and length must "
					 "be multiples of that page size",
					 (unsigned long)start,
					 (unsigned long)end,
					 r->page_size / 1024);
	}
	return 0;
}

static int accept_vma(const struct uffd_vma *vma, void *arg)
{
	(void)vma;
	(void)arg;
	return 0;
}

UFFD_EXPORT int uffd_handle_unregister(struct uffd_handle *handle, void *addr,
				       size_t len)
{
	struct kuffd_range range;
	uintptr_t start, end;
	struct uffd_reg *table;
	int ret;

	ret = check_range(handle, addr, len, &start, &end);
	if (ret)
		return ret;
	/* The kernel answers a bare EINVAL for a hole; say what it is. */
	ret = uffd_vma_walk(start, end, accept_vma, NULL);
	if (ret && ret != -ENOENT)
		return ret;
	range = (struct kuffd_range){ start, len };
	pthread_rwlock_wrlock(&handle->reg_lock);
	table = regs_alloc(handle, 0);
	ret = table ? check_table_alignment(handle, start, end)
		    : uffd_err(ENOMEM, "out of memory for the registration table");
	if (!ret && ioctl(handle->fd, KUFFDIO_UNREGISTER, &range))
		ret = uffd_errf(errno, "UFFDIO_UNREGISTER failed: %s",
				strerror(errno));
	if (!ret) {
		regs_rebuild(handle, table, start, end, NULL, 0);
		table = NULL;
	}
	pthread_rwlock_unlock(&handle->reg_lock);
	free(table);
	return ret;
}

int uffd_regs_remove(struct uffd_handle *h, uintptr_t start, uintptr_t end)
{
	struct uffd_reg *table;

	pthread_rwlock_wrlock(&h->reg_lock);
	table = regs_alloc(h, 0);
	if (table)
		regs_rebuild(h, table, start, end, NULL, 0);
	pthread_rwlock_unlock(&h->reg_lock);
	return table ? 0
		     : uffd_err(ENOMEM, "out of memory for the registration table");
}

/*
 * The kernel moved [from, from+len) to [to, to+len) (mremap): the
 * registrations went with the mapping, and whatever was at the target is
 * gone. Entries are clipped to the moved range and shifted.
 */
int uffd_regs_move(struct uffd_handle *h, uintptr_t from, uintptr_t to,
		   size_t len)
{
	struct uffd_reg *moved, *tmp, *out;
	size_t m = 0, k;

	pthread_rwlock_wrlock(&h->reg_lock);
	moved = malloc((h->nregs + 1) * sizeof(*moved));
	tmp = malloc((h->nregs + 1) * sizeof(*tmp));
	out = malloc((2 * h->nregs + 2) * sizeof(*out));
	if (!moved || !tmp || !out) {
		pthread_rwlock_unlock(&h->reg_lock);
		free(moved);
		free(tmp);
		free(out);
		return uffd_err(ENOMEM, "out of memory for the registration table");
	}
	for (size_t i = 0; i < h->nregs; i++) {
		struct uffd_reg r = h->regs[i];

		if (r.end <= from || r.start >= from + len)
			continue;
		r.start = (r.start < from ? from : r.start) - from + to;
		r.end = (r.end > from + len ? from + len : r.end) - from + to;
		moved[m++] = r;
	}
	k = regs_carve(h->regs, h->nregs, tmp, from, from + len);
	k = regs_carve(tmp, k, out, to, to + len);
	memcpy(out + k, moved, m * sizeof(*moved));
	regs_install(h, out, k + m);
	pthread_rwlock_unlock(&h->reg_lock);
	free(moved);
	free(tmp);
	return 0;
}

/* Index of the first entry that ends after addr (table locked). */
static size_t regs_find(const struct uffd_handle *h, uintptr_t addr)
{
	size_t lo = 0, hi = h->nregs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (h->regs[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int refuse_op(const struct uffd_reg *r, uint64_t op)
{
	char modes[64], allowed[128];

	uffd_modes_format(r->modes, modes, sizeof(modes));
	uffd_ops_format(r->allowed & ~(UFFD_OP_REGISTER | UFFD_OP_UNREGISTER),
			allowed, sizeof(allowed));
	return uffd_errf(ENOTSUP,
			 "%s is not allowed on %#lx-%#lx, registered in %s "
			 "mode (allowed there: %s)",
			 uffd_op_name(op), (unsigned long)r->start,
			 (unsigned long)r->end, modes, allowed);
}

/* An operation the kernel advertises but the probe saw fail here. */
static int refuse_unverified(const struct uffd_handle *h,
			     const struct uffd_reg *r, uint64_t op)
{
	const struct uffd_caps *caps = uffd_caps_lookup(h->features,
							r->backend);
	const char *note = "it failed verification";
	int err = 0;

	if (caps)
		err = uffd_caps_get_op_result(caps, r->modes, op, &note);
	return uffd_errf(ENOTSUP,
			 "%s does not work on %s (%#lx-%#lx): the kernel "
			 "advertises it, but the capability probe found: %s%s%s",
			 uffd_op_name(op), uffd_backend_describe(r->backend),
			 (unsigned long)r->start, (unsigned long)r->end, note,
			 err < 0 ? ": " : "", err < 0 ? strerror(-err) : "");
}

static int check_entry(const struct uffd_handle *h, const struct uffd_reg *r,
		       uint64_t op, uintptr_t start, size_t len, unsigned flags)
{
	if (!(r->ops & op))
		return refuse_op(r, op);
	if (!(r->allowed & op))
		return refuse_unverified(h, r, op);
	if ((flags & UFFD_OPF_WP) && !(r->modes & UFFD_MODE_WP))
		return uffd_errf(EINVAL,
				 "%s with the WP flag needs the range registered "
				 "in WP mode", uffd_op_name(op));
	if (start % r->page_size || len % r->page_size)
		return uffd_errf(EINVAL,
				 "%s at %#lx of %zu bytes: the memory has %zu KiB "
				 "pages, so address and length must be "
				 "multiples of that", uffd_op_name(op),
				 (unsigned long)start, len, r->page_size / 1024);
	return 0;
}

int uffd_range_check_op(struct uffd_handle *h, uint64_t op, uintptr_t start,
			size_t len, unsigned flags)
{
	uintptr_t end = start + len;
	int ret = 0;

	pthread_rwlock_rdlock(&h->reg_lock);
	for (size_t i = regs_find(h, start);
	     !ret && i < h->nregs && h->regs[i].start < end; i++)
		ret = check_entry(h, &h->regs[i], op, start, len, flags);
	pthread_rwlock_unlock(&h->reg_lock);
	return ret;
}

UFFD_EXPORT int uffd_handle_get_range_ops(struct uffd_handle *handle,
					  void *addr, size_t len,
					  uint64_t *ops, uint64_t *modes)
{
	uint64_t all_ops = ~UINT64_C(0), all_modes = ~UINT64_C(0);
	uintptr_t start, end, cursor;
	int ret;

	if (!handle)
		return uffd_err(EINVAL, "handle is NULL");
	ret = uffd_range_from(addr, len, &start, &end);
	if (ret)
		return ret;
	cursor = start;
	pthread_rwlock_rdlock(&handle->reg_lock);
	for (size_t i = regs_find(handle, start);
	     i < handle->nregs && handle->regs[i].start <= cursor &&
	     cursor < end;
	     i++) {
		all_ops &= handle->regs[i].allowed;
		all_modes &= handle->regs[i].modes;
		cursor = handle->regs[i].end;
	}
	pthread_rwlock_unlock(&handle->reg_lock);
	if (cursor < end)
		return uffd_errf(ENOENT,
				 "%#lx is not registered through this handle",
				 (unsigned long)cursor);
	if (ops)
		*ops = all_ops;
	if (modes)
		*modes = all_modes;
	return 0;
}
