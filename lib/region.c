// SPDX-License-Identifier: MIT
/* Region configuration: what a region is and how its faults are served. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

UFFD_EXPORT int uffd_region_config_new(struct uffd_region_config **cfg)
{
	struct uffd_region_config *c;

	if (!cfg)
		return uffd_err(EINVAL, "region config: NULL result");
	c = calloc(1, sizeof(*c));
	if (!c)
		return uffd_err(ENOMEM, "out of memory for a region config");
	c->modes = UFFD_MODE_MISSING;
	c->ra_max = 16;
	c->ra_adaptive = true;
	*cfg = c;
	return 0;
}

UFFD_EXPORT void uffd_region_config_free(struct uffd_region_config *cfg)
{
	if (!cfg)
		return;
	uffd_source_free(cfg->src);
	free(cfg->order);
	free(cfg);
}

UFFD_EXPORT int uffd_region_config_set_range(struct uffd_region_config *cfg,
					     void *addr, size_t len)
{
	uintptr_t start, end;
	int ret;

	UFFD_CHECK_OBJ(cfg);
	ret = uffd_range_from(addr, len, &start, &end);
	if (ret)
		return ret;
	cfg->start = start;
	cfg->len = len;
	return 0;
}

UFFD_EXPORT int uffd_region_config_set_modes(struct uffd_region_config *cfg,
					     uint64_t modes)
{
	UFFD_CHECK_OBJ(cfg);
	if (!modes || (modes & ~UFFD_MODE_KNOWN))
		return uffd_errf(EINVAL, "modes %#llx: give one or more of "
				 "MISSING, WP, MINOR and no other bit",
				 (unsigned long long)modes);
	cfg->modes = modes;
	return 0;
}

UFFD_EXPORT int uffd_region_config_set_source(struct uffd_region_config *cfg,
					      struct uffd_source *src,
					      uint64_t offset)
{
	UFFD_CHECK_OBJ(cfg);
	if (!src)
		return uffd_err(EINVAL, "region config: the source is NULL");
	uffd_source_free(cfg->src);
	cfg->src = uffd_source_ref(src);
	cfg->src_offset = offset;
	return 0;
}

UFFD_EXPORT int uffd_region_config_set_alias(struct uffd_region_config *cfg,
					     void *alias)
{
	UFFD_CHECK_OBJ(cfg);
	cfg->alias = alias;
	return 0;
}

UFFD_EXPORT int
uffd_region_config_set_fault_callback(struct uffd_region_config *cfg,
				      uffd_fault_fn fn, void *arg)
{
	UFFD_CHECK_OBJ(cfg);
	cfg->fault_fn = fn;
	cfg->fault_arg = arg;
	return 0;
}

UFFD_EXPORT int uffd_region_config_set_readahead(struct uffd_region_config *cfg,
						 size_t max_pages, bool adaptive)
{
	UFFD_CHECK_OBJ(cfg);
	cfg->ra_max = max_pages;
	cfg->ra_adaptive = adaptive;
	return 0;
}

UFFD_EXPORT int uffd_region_config_set_prefetch(struct uffd_region_config *cfg,
						bool enable)
{
	UFFD_CHECK_OBJ(cfg);
	cfg->prefetch = enable;
	return 0;
}

UFFD_EXPORT int uffd_region_config_set_record(struct uffd_region_config *cfg,
					      bool record)
{
	UFFD_CHECK_OBJ(cfg);
	cfg->record = record;
	return 0;
}

UFFD_EXPORT int
uffd_region_config_set_prefetch_order(struct uffd_region_config *cfg,
				      const uint64_t *pages, size_t n)
{
	uint64_t *copy = NULL;

	UFFD_CHECK_OBJ(cfg);
	if (n && !pages)
		return uffd_err(EINVAL, "prefetch order: NULL pages");
	if (n) {
		copy = malloc(n * sizeof(*copy));
		if (!copy)
			return uffd_err(ENOMEM, "out of memory for the order");
		memcpy(copy, pages, n * sizeof(*copy));
	}
	free(cfg->order);
	cfg->order = copy;
	cfg->norder = n;
	cfg->prefetch = true;
	return 0;
}

UFFD_EXPORT int uffd_region_config_set_remote(struct uffd_region_config *cfg,
					      enum uffd_backend backend,
					      size_t page_size)
{
	UFFD_CHECK_OBJ(cfg);
	if ((unsigned)backend >= UFFD_BACKEND_COUNT || !page_size ||
	    (page_size & (page_size - 1)))
		return uffd_err(EINVAL, "remote region: unknown backend or a "
					"page size that is not a power of two");
	cfg->remote = true;
	cfg->backend = backend;
	cfg->page_size = page_size;
	return 0;
}

/* ------------------------------------------------------------------------
 * Regions at run time.
 */
#include "loop.h"

static int region_shape(struct uffd_region *r,
			const struct uffd_region_config *cfg)
{
	struct uffd_range_info info;
	int ret;

	if (cfg->remote) {
		r->backend = cfg->backend;
		r->page_size = cfg->page_size;
		return 0;
	}
	ret = uffd_range_classify((void *)cfg->start, cfg->len, &info);
	if (ret)
		return ret;
	if (info.mixed)
		return uffd_err(EINVAL, "the region spans memory of different "
					"kinds or page sizes: add one region "
					"per mapping");
	r->backend = info.backend;
	r->page_size = info.page_size;
	return 0;
}

static int region_check(const struct uffd_region_config *cfg)
{
	if (!cfg->len)
		return uffd_err(EINVAL, "the region has no range");
	if ((cfg->modes & UFFD_MODE_MISSING) && !cfg->src && !cfg->fault_fn)
		return uffd_err(EINVAL, "a MISSING region needs a source or a "
					"fault callback");
	if (cfg->src && cfg->src->kind != UFFD_SOURCE_ZERO &&
	    cfg->src_offset + cfg->len < cfg->src_offset)
		return uffd_err(EINVAL, "source offset + region length "
					"overflows");
	if (cfg->src && uffd_source_size(cfg->src) != UINT64_MAX &&
	    cfg->src_offset + cfg->len > uffd_source_size(cfg->src))
		return uffd_errf(EINVAL, "the source holds %llu bytes, fewer "
				 "than offset %llu + the region's %zu",
				 (unsigned long long)uffd_source_size(cfg->src),
				 (unsigned long long)cfg->src_offset, cfg->len);
	return 0;
}

static int region_alloc_tables(struct uffd_region *r)
{
	r->populated = calloc((r->npages + 63) / 64, sizeof(uint64_t));
	if (r->record)
		r->ws = malloc(r->npages * sizeof(uint64_t));
	if (!r->populated || (r->record && !r->ws))
		return uffd_err(ENOMEM, "out of memory for the region's page "
					"bitmap");
	return 0;
}

static void region_policy(struct uffd_region *r, struct uffd_loop *loop)
{
	const struct uffd_caps *caps =
		uffd_caps_lookup(uffd_handle_get_features(loop->h), r->backend);
	size_t max_window = LOOP_MAX_WINDOW_BYTES / r->page_size;

	r->zero_by_copy = uffd_backend_is_hugetlb(r->backend);
	r->continue_fill = r->alias && r->src && (r->modes & UFFD_MODE_MINOR);
	int poison = caps ? uffd_caps_get_op_result(caps, r->modes,
						    UFFD_OP_POISON, NULL)
			  : 0;

	/* POISON where the probe saw it work or could not try it; zeros
	 * otherwise (the failure path falls back to zeros anyway) */
	r->can_poison = poison == 0 ||
			(poison == -ENODATA &&
			 (uffd_caps_get_advertised(caps, r->modes) &
			  UFFD_OP_POISON));
	if (!max_window)
		max_window = 1;
	if (r->ra_max > max_window)
		r->ra_max = max_window;
	atomic_store(&r->ra_window,
		     r->ra_adaptive && r->ra_max > LOOP_RA_START ? LOOP_RA_START
								 : r->ra_max);
}

int uffd_region_create(struct uffd_loop *loop,
		       const struct uffd_region_config *cfg,
		       struct uffd_region **out)
{
	struct uffd_region *r;
	int ret = region_check(cfg);

	if (ret)
		return ret;
	r = calloc(1, sizeof(*r));
	if (!r)
		return uffd_err(ENOMEM, "out of memory for a region");
	*r = (struct uffd_region){
		.loop = loop, .start = cfg->start, .len = cfg->len,
		.modes = cfg->modes, .src_offset = cfg->src_offset,
		.alias = cfg->alias, .fault_fn = cfg->fault_fn,
		.fault_arg = cfg->fault_arg, .remote = cfg->remote,
		.ra_max = cfg->ra_max ? cfg->ra_max : 1,
		.ra_adaptive = cfg->ra_adaptive, .prefetch = cfg->prefetch,
		.record = cfg->record,
	};
	ret = region_shape(r, cfg);
	if (!ret && cfg->src && cfg->src->kind == UFFD_SOURCE_MOVE &&
	    (r->backend != UFFD_BACKEND_ANON_PRIVATE || cfg->src_offset %
							 r->page_size))
		ret = uffd_err(EINVAL, "a move source serves only anonymous "
				       "private regions, at a page-aligned "
				       "offset");
	/* MOVE came with Linux 6.8: on older kernels every fault would fail
	 * and lose the data to the failure policy */
	if (!ret && cfg->src && cfg->src->kind == UFFD_SOURCE_MOVE &&
	    !(uffd_handle_get_supported_features(loop->h) & UFFD_FEAT_MOVE))
		ret = uffd_err(ENOTSUP, "a move source needs UFFDIO_MOVE, "
					"which this kernel lacks (Linux 6.8+)");
	if (!ret && (r->start % r->page_size || r->len % r->page_size))
		ret = uffd_errf(EINVAL, "the region must be aligned to its "
				"%zu KiB pages", r->page_size / 1024);
	if (ret) {
		free(r);
		return ret;
	}
	r->page_shift = (unsigned)__builtin_ctzll(r->page_size);
	r->npages = r->len >> r->page_shift;
	r->src = cfg->src ? uffd_source_ref(cfg->src) : NULL;
	ret = region_alloc_tables(r);
	if (!ret && cfg->norder) {
		r->order = malloc(cfg->norder * sizeof(uint64_t));
		if (r->order) {
			memcpy(r->order, cfg->order,
			       cfg->norder * sizeof(uint64_t));
			r->norder = cfg->norder;
		} else {
			ret = uffd_err(ENOMEM, "out of memory for the order");
		}
	}
	if (ret) {
		uffd_region_destroy(r);
		return ret;
	}
	region_policy(r, loop);
	*out = r;
	return 0;
}

void uffd_region_destroy(struct uffd_region *r)
{
	if (!r)
		return;
	uffd_source_free(r->src);
	free((void *)r->populated);
	free(r->ws);
	free(r->order);
	free(r);
}

bool uffd_region_test(const struct uffd_region *r, size_t page)
{
	return atomic_load_explicit(&r->populated[page / 64],
				    memory_order_relaxed) &
	       (UINT64_C(1) << (page % 64));
}

size_t uffd_region_mark(struct uffd_region *r, size_t page, size_t n)
{
	size_t fresh = 0;

	for (size_t p = page; p < page + n && p < r->npages; p++) {
		uint64_t bit = UINT64_C(1) << (p % 64);

		if (!(atomic_fetch_or(&r->populated[p / 64], bit) & bit))
			fresh++;
	}
	if (fresh)
		atomic_fetch_add(&r->resolved, fresh);
	return fresh;
}

void uffd_region_clear(struct uffd_region *r, size_t page, size_t n)
{
	size_t gone = 0;

	for (size_t p = page; p < page + n && p < r->npages; p++) {
		uint64_t bit = UINT64_C(1) << (p % 64);

		if (atomic_fetch_and(&r->populated[p / 64], ~bit) & bit)
			gone++;
	}
	if (gone)
		atomic_fetch_sub(&r->resolved, gone);
	/* the prefetcher must look again from the start */
	atomic_store(&r->prefetch_cursor, 0);
}

bool uffd_region_complete(const struct uffd_region *r)
{
	return atomic_load(&r->resolved) >= r->npages;
}

void uffd_region_record(struct uffd_region *r, size_t page)
{
	size_t at;

	if (!r->record || uffd_region_test(r, page))
		return;
	at = atomic_fetch_add(&r->ws_len, 1);
	if (at < r->npages)
		r->ws[at] = page;
	else
		atomic_fetch_sub(&r->ws_len, 1);
}

struct uffd_region *uffd_region_derive(struct uffd_region *r, size_t page,
				       size_t n, uintptr_t new_start)
{
	struct uffd_region *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	*d = (struct uffd_region){
		.loop = r->loop, .start = new_start, .len = n << r->page_shift,
		.page_size = r->page_size, .page_shift = r->page_shift,
		.npages = n, .modes = r->modes, .backend = r->backend,
		.src_offset = r->src_offset + ((uint64_t)page << r->page_shift),
		.fault_fn = r->fault_fn, .fault_arg = r->fault_arg,
		.continue_fill = false, /* the alias does not move along */
		.zero_by_copy = r->zero_by_copy, .can_poison = r->can_poison,
		.remote = r->remote, .registered = r->registered,
		.ra_max = r->ra_max, .ra_adaptive = r->ra_adaptive,
		.prefetch = r->prefetch, .derived_from = r,
	};
	atomic_store(&d->ra_window, atomic_load(&r->ra_window));
	atomic_store(&d->active, atomic_load(&r->active));
	d->src = r->src ? uffd_source_ref(r->src) : NULL;
	d->populated = calloc((n + 63) / 64, sizeof(uint64_t));
	if (!d->populated) {
		uffd_region_destroy(d);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		if (uffd_region_test(r, page + i))
			uffd_region_mark(d, i, 1);
	return d;
}

UFFD_EXPORT void *uffd_region_get_addr(const struct uffd_region *region)
{
	return region ? (void *)region->start : NULL;
}

UFFD_EXPORT size_t uffd_region_get_len(const struct uffd_region *region)
{
	return region ? region->len : 0;
}

UFFD_EXPORT size_t
uffd_region_get_resolved_pages(const struct uffd_region *region)
{
	return region ? atomic_load(&region->resolved) : 0;
}

UFFD_EXPORT int uffd_region_get_working_set(struct uffd_region *region,
					    uint64_t *pages, size_t max,
					    size_t *n)
{
	size_t len;

	if (!region || !n || (max && !pages))
		return uffd_err(EINVAL, "working set: NULL argument");
	if (!region->record)
		return uffd_err(EINVAL, "the region does not record its "
					"working set");
	len = atomic_load(&region->ws_len);
	if (len > region->npages)
		len = region->npages;
	if (len && max)
		memcpy(pages, region->ws,
		       (len < max ? len : max) * sizeof(uint64_t));
	*n = len;
	return 0;
}
