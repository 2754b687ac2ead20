// SPDX-License-Identifier: MIT
/*
 * What is mapped where, read from /proc/self/smaps: the only interface that
 * gives, per mapping, both VM_MAYWRITE ("mw", behind the kernel's EPERM on
 * read-only shared mappings) and the page size (hugetlb alignment). The
 * walk stops as soon as it is past the range, so the kernel does not
 * gather statistics for mappings above it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static bool parse_header(const char *line, struct uffd_vma *vma)
{
	unsigned long start, end, inode;
	unsigned long long offset;
	unsigned maj, min;
	char perms[5];
	int pathpos = 0;

	if (sscanf(line, "%lx-%lx %4s %llx %x:%x %lu %n", &start, &end, perms,
		   &offset, &maj, &min, &inode, &pathpos) < 7)
		return false;
	memset(vma, 0, sizeof(*vma));
	vma->start = start;
	vma->end = end;
	vma->offset = offset;
	vma->dev_major = maj;
	vma->dev_minor = min;
	vma->inode = inode;
	vma->flags = (perms[0] == 'r' ? UFFD_VMA_READ : 0) |
		     (perms[1] == 'w' ? UFFD_VMA_WRITE : 0) |
		     (perms[2] == 'x' ? UFFD_VMA_EXEC : 0) |
		     (perms[3] == 's' ? UFFD_VMA_SHARED : 0);
	if (pathpos > 0) {
		snprintf(vma->path, sizeof(vma->path), "%s", line + pathpos);
		vma->path[strcspn(vma->path, "\n")] = '\0';
	}
	return true;
}

static void parse_vmflags(const char *list, struct uffd_vma *vma)
{
	for (const char *p = list; *p;) {
		while (*p == ' ')
			p++;
		if (!strncmp(p, "mw", 2) && (p[2] == ' ' || p[2] == '\n'))
			vma->flags |= UFFD_VMA_MAYWRITE;
		else if (!strncmp(p, "ht", 2) && (p[2] == ' ' || p[2] == '\n'))
			vma->flags |= UFFD_VMA_HUGETLB;
		p += strcspn(p, " ");
	}
}

static int gap_error(uintptr_t at)
{
	return uffd_errf(ENOMEM, "nothing is mapped at %#lx, inside the range",
			 (unsigned long)at);
}

int uffd_vma_walk(uintptr_t start, uintptr_t end,
		  int (*cb)(const struct uffd_vma *vma, void *arg), void *arg)
{
	struct uffd_vma vma = { 0 };
	uintptr_t cursor = start;
	char *line = NULL;
	size_t cap = 0;
	int ret = 0;
	FILE *f;

	f = fopen("/proc/self/smaps", "re");
	if (!f)
		return uffd_err(ENOENT, "cannot read /proc/self/smaps");
	while (cursor < end && getline(&line, &cap, f) > 0) {
		unsigned long kb;

		if (parse_header(line, &vma))
			continue;
		if (sscanf(line, "KernelPageSize: %lu kB", &kb) == 1) {
			vma.page_size = (size_t)kb * 1024;
			continue;
		}
		if (strncmp(line, "VmFlags:", 8))
			continue;
		/* VmFlags closes each mapping's block: it is complete. */
		parse_vmflags(line + 8, &vma);
		if (vma.end <= cursor)
			continue;
		if (vma.start > cursor)
			break; /* a gap (or past the range) */
		ret = cb(&vma, arg);
		if (ret)
			break;
		cursor = vma.end;
	}
	free(line);
	fclose(f);
	if (ret)
		return ret;
	return cursor < end ? gap_error(cursor) : 0;
}
