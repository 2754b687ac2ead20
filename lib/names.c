// SPDX-License-Identifier: MIT
/* Name tables for feature, mode and operation bits, used by tools and by
 * every error message that names a bit. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

struct name_table {
	const char *const *names; /* indexed by bit number; NULL = unnamed */
	size_t count;
	const char *kernel_prefix; /* accepted before a name on lookup */
};

static const char *const feature_names[] = {
	"PAGEFAULT_FLAG_WP", "EVENT_FORK",	   "EVENT_REMAP",
	"EVENT_REMOVE",	     "MISSING_HUGETLBFS",  "MISSING_SHMEM",
	"EVENT_UNMAP",	     "SIGBUS",		   "THREAD_ID",
	"MINOR_HUGETLBFS",   "MINOR_SHMEM",	   "EXACT_ADDRESS",
	"WP_HUGETLBFS_SHMEM", "WP_UNPOPULATED",	   "POISON",
	"WP_ASYNC",	     "MOVE",
};

static const char *const mode_names[] = { "MISSING", "WP", "MINOR" };

static const char *const op_names[64] = {
	[0] = "REGISTER",     [1] = "UNREGISTER", [2] = "WAKE",
	[3] = "COPY",	      [4] = "ZEROPAGE",	  [5] = "MOVE",
	[6] = "WRITEPROTECT", [7] = "CONTINUE",	  [8] = "POISON",
	[63] = "API",
};

static const struct name_table features = {
	feature_names, UFFD_ARRAY_SIZE(feature_names), "UFFD_FEATURE_"
};
static const struct name_table modes = {
	mode_names, UFFD_ARRAY_SIZE(mode_names), "UFFDIO_REGISTER_MODE_"
};
static const struct name_table ops = {
	op_names, UFFD_ARRAY_SIZE(op_names), "UFFDIO_"
};

static const char *table_name(const struct name_table *t, uint64_t bit)
{
	unsigned n;

	if (bit == 0 || (bit & (bit - 1)))
		return NULL; /* not exactly one bit */
	n = (unsigned)__builtin_ctzll(bit);
	return n < t->count ? t->names[n] : NULL;
}

static int table_lookup(const struct name_table *t, const char *name,
			uint64_t *bit)
{
	size_t plen;

	if (!name || !bit)
		return uffd_err(EINVAL, "name lookup: NULL argument");
	plen = strlen(t->kernel_prefix);
	if (!strncasecmp(name, t->kernel_prefix, plen))
		name += plen;
	for (size_t i = 0; i < t->count; i++) {
		if (t->names[i] && !strcasecmp(name, t->names[i])) {
			*bit = UINT64_C(1) << i;
			return 0;
		}
	}
	return uffd_errf(ENOENT, "\"%s\" is not a known name", name);
}

static int table_format(const struct name_table *t, uint64_t mask, char *buf,
			size_t size)
{
	size_t used = 0;
	int n;

	if (!buf || size == 0)
		return uffd_err(EINVAL, "format: NULL buffer or size 0");
	buf[0] = '\0';
	if (mask == 0) {
		if ((size_t)snprintf(buf, size, "none") >= size)
			return uffd_err(ENOSPC, "format: buffer too small");
		return 0;
	}
	for (unsigned i = 0; i < 64 && mask; i++) {
		const char *name;
		uint64_t bit = UINT64_C(1) << i;

		if (!(mask & bit))
			continue;
		mask &= ~bit;
		name = table_name(t, bit);
		n = name ? snprintf(buf + used, size - used, "%s%s",
				    used ? "," : "", name)
			 : snprintf(buf + used, size - used, "%sbit%u",
				    used ? "," : "", i);
		if (n < 0 || (size_t)n >= size - used)
			return uffd_err(ENOSPC, "format: buffer too small");
		used += (size_t)n;
	}
	return 0;
}

UFFD_EXPORT const char *uffd_feature_name(uint64_t bit)
{
	return table_name(&features, bit);
}

UFFD_EXPORT int uffd_feature_from_name(const char *name, uint64_t *bit)
{
	return table_lookup(&features, name, bit);
}

UFFD_EXPORT int uffd_features_format(uint64_t mask, char *buf, size_t size)
{
	return table_format(&features, mask, buf, size);
}

UFFD_EXPORT const char *uffd_mode_name(uint64_t bit)
{
	return table_name(&modes, bit);
}

UFFD_EXPORT int uffd_mode_from_name(const char *name, uint64_t *bit)
{
	return table_lookup(&modes, name, bit);
}

UFFD_EXPORT int uffd_modes_format(uint64_t mask, char *buf, size_t size)
{
	return table_format(&modes, mask, buf, size);
}

UFFD_EXPORT const char *uffd_op_name(uint64_t bit)
{
	return table_name(&ops, bit);
}

UFFD_EXPORT int uffd_op_from_name(const char *name, uint64_t *bit)
{
	return table_lookup(&ops, name, bit);
}

UFFD_EXPORT int uffd_ops_format(uint64_t mask, char *buf, size_t size)
{
	return table_format(&ops, mask, buf, size);
}
