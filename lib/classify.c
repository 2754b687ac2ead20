// SPDX-License-Identifier: MIT
/*
 * Which backend a mapping is. The kernel names special mappings in
 * /proc/self/smaps ("/memfd:x (deleted)", "/anon_hugepage", "/SYSVxxxxxxxx",
 * "anon_inode:[kvm-gmem]", "/dev/zero (deleted)" for shared anonymous
 * memory), marks hugetlb in VmFlags, and for ordinary files the device of the
 * mapping leads to the filesystem type through /proc/self/mountinfo.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static bool starts_with(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

/* The type of the filesystem mounted from device maj:min, or false. */
static bool fs_type_of(unsigned maj, unsigned min, char *type, size_t size)
{
	char line[1024];
	bool found = false;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned ma, mi;
		const char *sep;

		if (sscanf(line, "%*d %*d %u:%u", &ma, &mi) != 2 || ma != maj ||
		    mi != min)
			continue;
		sep = strstr(line, " - ");
		if (sep) { /* "... - fstype source options" */
			snprintf(type, size, "%s", sep + 3);
			type[strcspn(type, " \n")] = '\0';
			found = true;
		}
	}
	fclose(f);
	return found;
}

static enum uffd_backend hugetlb_backend(const struct uffd_vma *vma,
					 bool shared)
{
	if (starts_with(vma->path, "/anon_hugepage") ||
	    starts_with(vma->path, "/SYSV"))
		return shared ? UFFD_BACKEND_HUGETLB_SHARED
			      : UFFD_BACKEND_HUGETLB_PRIVATE;
	/* a hugetlb memfd or a file on a hugetlbfs mount */
	return shared ? UFFD_BACKEND_MEMFD_HUGETLB_SHARED
		      : UFFD_BACKEND_MEMFD_HUGETLB_PRIVATE;
}

static enum uffd_backend file_backend(const struct uffd_vma *vma, bool shared)
{
	char type[64];

	if (vma->inode == 0)
		return UFFD_BACKEND_UNKNOWN;
	if (!fs_type_of(vma->dev_major, vma->dev_minor, type, sizeof(type)))
		return UFFD_BACKEND_UNKNOWN;
	if (!strcmp(type, "tmpfs"))
		/* a private mapping of a shmem file is what memfd-private is */
		return shared ? UFFD_BACKEND_TMPFS_FILE
			      : UFFD_BACKEND_MEMFD_PRIVATE;
	if (!strcmp(type, "proc") || !strcmp(type, "sysfs") ||
	    !strcmp(type, "devtmpfs") || !strcmp(type, "ramfs"))
		return UFFD_BACKEND_UNKNOWN;
	return UFFD_BACKEND_DISK_FILE;
}

enum uffd_backend uffd_vma_backend(const struct uffd_vma *vma)
{
	bool shared = vma->flags & UFFD_VMA_SHARED;
	const char *p = vma->path;

	if (vma->flags & UFFD_VMA_HUGETLB)
		return hugetlb_backend(vma, shared);
	if (!*p || *p == '[') /* [heap], [stack], [anon:name], nameless */
		return UFFD_BACKEND_ANON_PRIVATE;
	if (starts_with(p, "/dev/zero"))
		/* a shared /dev/zero mapping is turned into shmem */
		return shared ? UFFD_BACKEND_ANON_SHARED
			      : UFFD_BACKEND_DEV_ZERO_PRIVATE;
	if (starts_with(p, "/memfd:"))
		return shared ? UFFD_BACKEND_MEMFD_SHARED
			      : UFFD_BACKEND_MEMFD_PRIVATE;
	if (starts_with(p, "/secretmem"))
		return UFFD_BACKEND_MEMFD_SECRET;
	if (starts_with(p, "/SYSV"))
		return UFFD_BACKEND_SYSV_SHM;
	if (!strcmp(p, "anon_inode:[kvm-gmem]"))
		return UFFD_BACKEND_GUEST_MEMFD;
	if (starts_with(p, "anon_inode:"))
		return UFFD_BACKEND_UNKNOWN;
	return file_backend(vma, shared);
}

static int classify_vma(const struct uffd_vma *vma, void *arg)
{
	struct uffd_range_info *info = arg;
	enum uffd_backend b = uffd_vma_backend(vma);

	if (info->nr_mappings++ == 0) {
		info->backend = b;
		info->page_size = vma->page_size;
		info->first_end = vma->end;
	} else if (b != info->backend || vma->page_size != info->page_size) {
		info->mixed = true;
	}
	return 0;
}

UFFD_EXPORT int uffd_range_classify(const void *addr, size_t len,
				    struct uffd_range_info *info)
{
	uintptr_t start, end;
	int ret;

	if (!info)
		return uffd_err(EINVAL, "range_classify: info is NULL");
	ret = uffd_range_from(addr, len, &start, &end);
	if (ret)
		return ret;
	memset(info, 0, sizeof(*info));
	return uffd_vma_walk(start, end, classify_vma, info);
}
