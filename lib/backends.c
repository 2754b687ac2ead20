// SPDX-License-Identifier: MIT
/*
 * Memory backends: their names, and making a small mapping of each kind for
 * the capability probe. Every probe mapping gets, where the memory type
 * allows one, an alias: a second view of the same pages created before
 * registration, so the probe can fill the page cache (for CONTINUE) without
 * ever faulting on a registered page.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#define TMPFS_MAGIC_ 0x01021994
#define RAMFS_MAGIC_ 0x858458f6

struct backend_names {
	const char *name;
	const char *description;
};

static const struct backend_names names[UFFD_BACKEND_COUNT] = {
	[UFFD_BACKEND_UNKNOWN] = { "unknown", "memory of an unknown kind" },
	[UFFD_BACKEND_ANON_PRIVATE] = { "anon-private",
					"anonymous private memory" },
	[UFFD_BACKEND_ANON_SHARED] = { "anon-shared",
				       "anonymous shared memory (shmem)" },
	[UFFD_BACKEND_MEMFD_SHARED] = { "memfd-shared",
					"a shared mapping of a memfd" },
	[UFFD_BACKEND_MEMFD_PRIVATE] = { "memfd-private",
					 "a private mapping of a memfd" },
	[UFFD_BACKEND_HUGETLB_PRIVATE] = { "hugetlb-private",
					   "private hugetlb memory" },
	[UFFD_BACKEND_HUGETLB_SHARED] = { "hugetlb-shared",
					  "shared hugetlb memory" },
	[UFFD_BACKEND_MEMFD_HUGETLB_SHARED] = {
		"memfd-hugetlb-shared", "a shared mapping of a hugetlb memfd" },
	[UFFD_BACKEND_MEMFD_HUGETLB_PRIVATE] = {
		"memfd-hugetlb-private",
		"a private mapping of a hugetlb memfd" },
	[UFFD_BACKEND_TMPFS_FILE] = { "tmpfs-file",
				      "a shared mapping of a tmpfs file" },
	[UFFD_BACKEND_DISK_FILE] = { "disk-file",
				     "a file on a disk filesystem" },
	[UFFD_BACKEND_GUEST_MEMFD] = { "guest-memfd", "KVM guest_memfd memory" },
	[UFFD_BACKEND_SYSV_SHM] = { "sysv-shm", "System V shared memory" },
	[UFFD_BACKEND_MEMFD_SECRET] = { "memfd-secret", "memfd_secret memory" },
	[UFFD_BACKEND_DEV_ZERO_PRIVATE] = { "dev-zero-private",
					    "a private mapping of /dev/zero" },
};

UFFD_EXPORT const char *uffd_backend_name(enum uffd_backend backend)
{
	return (unsigned)backend < UFFD_BACKEND_COUNT ? names[backend].name
						      : NULL;
}

UFFD_EXPORT const char *uffd_backend_describe(enum uffd_backend backend)
{
	return (unsigned)backend < UFFD_BACKEND_COUNT
		       ? names[backend].description
		       : NULL;
}

UFFD_EXPORT int uffd_backend_from_name(const char *name,
				       enum uffd_backend *backend)
{
	if (!name || !backend)
		return uffd_err(EINVAL, "backend lookup: NULL argument");
	for (int b = 0; b < UFFD_BACKEND_COUNT; b++) {
		if (!strcmp(name, names[b].name)) {
			*backend = (enum uffd_backend)b;
			return 0;
		}
	}
	return uffd_errf(ENOENT, "\"%s\" is not a backend name", name);
}

/* ---- making probe memory ---- */

static long meminfo_value(const char *key)
{
	char line[128];
	size_t klen = strlen(key);
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) &&
		    sscanf(line + klen, ": %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* Huge pages the probe populates: COPY, CONTINUE (through the alias) and
 * the write-protect page. */
#define PROBE_HUGE_PAGES 3

static int check_free_huge_pages(size_t *huge, char *why, size_t size)
{
	long kb = meminfo_value("Hugepagesize");
	long avail = meminfo_value("HugePages_Free") -
		     meminfo_value("HugePages_Rsvd");

	if (kb <= 0) {
		snprintf(why, size, "the kernel has no hugetlb support");
		return -ENOTSUP;
	}
	*huge = (size_t)kb * 1024;
	if (avail < PROBE_HUGE_PAGES) {
		snprintf(why, size,
			 "%d free %ld KiB huge pages are needed to probe, %ld "
			 "available (reserve them in /proc/sys/vm/nr_hugepages)",
			 PROBE_HUGE_PAGES, kb, avail < 0 ? 0 : avail);
		return -ENOMEM;
	}
	return 0;
}

static int map_into(struct uffd_probe_mem *m, int prot_flags, int fd,
		    char **out, char *why, size_t size)
{
	void *p = mmap(NULL, m->len, PROT_READ | PROT_WRITE, prot_flags, fd, 0);

	if (p == MAP_FAILED) {
		int err = errno;

		snprintf(why, size, "mmap of %s failed: %s",
			 names[m->backend].description, strerror(err));
		return -err;
	}
	*out = p;
	return 0;
}

/* A shared anonymous mapping has no fd: mremap() with old size 0
 * duplicates it, which gives the alias (before registration). Hugetlb
 * refuses that; its file is then reached through /proc/self/map_files
 * (which needs CAP_SYS_ADMIN). Without an alias CONTINUE goes unverified. */
static void alias_of_shared_anon(struct uffd_probe_mem *m)
{
	char path[64];
	void *p = mremap(m->addr, 0, m->len, MREMAP_MAYMOVE);
	int fd;

	if (p != MAP_FAILED) {
		m->alias = p;
		return;
	}
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx",
		 (unsigned long)m->addr, (unsigned long)(m->addr + m->len));
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return;
	/* NORESERVE like the mapping itself: the probe checks for the huge
	 * pages it really uses, not for a reservation of every page */
	p = mmap(NULL, m->len, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_NORESERVE, fd, 0);
	close(fd);
	m->alias = p == MAP_FAILED ? NULL : p;
}

static int sized_fd(struct uffd_probe_mem *m, int fd, const char *what,
		    char *why, size_t size)
{
	if (fd < 0) {
		int err = errno;

		snprintf(why, size, "%s failed: %s", what, strerror(err));
		return -err;
	}
	m->fd = fd;
	if (ftruncate(fd, (off_t)m->len)) {
		int err = errno;

		snprintf(why, size, "sizing the %s file failed: %s", what,
			 strerror(err));
		return -err;
	}
	return 0;
}

/* Maps fd as primary (shared or private) plus a shared alias. */
static int map_file_pair(struct uffd_probe_mem *m, bool shared, int extra,
			 char *why, size_t size)
{
	int ret = map_into(m, (shared ? MAP_SHARED : MAP_PRIVATE) | extra,
			   m->fd, &m->addr, why, size);

	if (!ret && map_into(m, MAP_SHARED | extra, m->fd, &m->alias, why,
			     size))
		m->alias = NULL; /* no alias: CONTINUE stays unverified */
	return ret;
}

static int temp_file_in(const char *const *dirs, bool want_tmpfs,
			struct uffd_probe_mem *m, char *why, size_t size)
{
	for (const char *const *d = dirs; *d; d++) {
		char path[512];
		struct statfs sf;
		bool tmpfs;
		int fd;

		if (!**d || statfs(*d, &sf))
			continue;
		tmpfs = sf.f_type == TMPFS_MAGIC_ || sf.f_type == RAMFS_MAGIC_;
		if (tmpfs != want_tmpfs)
			continue;
		snprintf(path, sizeof(path), "%s/libuffd-probe-XXXXXX", *d);
		fd = mkostemp(path, O_CLOEXEC);
		if (fd < 0)
			continue;
		unlink(path); /* nothing is left behind, whatever happens */
		return sized_fd(m, fd, "a temporary file", why, size);
	}
	snprintf(why, size, "no writable %s directory found",
		 want_tmpfs ? "tmpfs" : "disk-backed");
	return -ENOENT;
}

static int make_tmpfs_file(struct uffd_probe_mem *m, char *why, size_t size)
{
	static const char *const dirs[] = { "/dev/shm", "/run", "/tmp", NULL };
	int ret = temp_file_in(dirs, true, m, why, size);

	return ret ? ret : map_file_pair(m, true, 0, why, size);
}

static int make_disk_file(struct uffd_probe_mem *m, char *why, size_t size)
{
	const char *dirs[] = { getenv("TMPDIR") ? getenv("TMPDIR") : "",
			       "/var/tmp", "/tmp", ".", NULL };
	int ret = temp_file_in(dirs, false, m, why, size);

	return ret ? ret : map_file_pair(m, true, 0, why, size);
}

static int make_memfd(struct uffd_probe_mem *m, bool shared, bool hugetlb,
		      char *why, size_t size)
{
	unsigned flags = MFD_CLOEXEC | (hugetlb ? MFD_HUGETLB : 0);
	int ret = sized_fd(m, memfd_create("libuffd-probe", flags),
			   "memfd_create", why, size);

	return ret ? ret
		   : map_file_pair(m, shared, hugetlb ? MAP_NORESERVE : 0, why,
				   size);
}

/* KVM's uAPI, private like the userfaultfd one (the ioctl numbers are
 * stable ABI). */
struct kvm_guest_memfd_args {
	uint64_t size;
	uint64_t flags;
	uint64_t reserved[6];
};
#define KVM_IO 0xAE
#define KVM_CREATE_VM_ _IO(KVM_IO, 0x01)
#define KVM_CREATE_GUEST_MEMFD_ _IOWR(KVM_IO, 0xd4, struct kvm_guest_memfd_args)
#define GUEST_MEMFD_FLAG_MMAP_ (UINT64_C(1) << 0)
#define GUEST_MEMFD_FLAG_INIT_SHARED_ (UINT64_C(1) << 1)

/* Mappable guest_memfd, shared with the host where the kernel allows it
 * (otherwise its pages belong to the guest and a host write is SIGBUS). */
static int create_gmem(struct uffd_probe_mem *m)
{
	struct kvm_guest_memfd_args args = {
		.size = m->len,
		.flags = GUEST_MEMFD_FLAG_MMAP_ | GUEST_MEMFD_FLAG_INIT_SHARED_,
	};

	m->fd = ioctl(m->vm_fd, KVM_CREATE_GUEST_MEMFD_, &args);
	m->plain_write_ok = m->fd >= 0;
	if (m->fd < 0) {
		args.flags = GUEST_MEMFD_FLAG_MMAP_;
		m->fd = ioctl(m->vm_fd, KVM_CREATE_GUEST_MEMFD_, &args);
	}
	return m->fd < 0 ? -errno : 0;
}

static int make_guest_memfd(struct uffd_probe_mem *m, char *why, size_t size)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC), err;

	if (kvm < 0) {
		err = errno;
		snprintf(why, size, "/dev/kvm: %s (KVM is needed to make "
			 "guest_memfd)", strerror(err));
		return -err;
	}
	m->vm_fd = ioctl(kvm, KVM_CREATE_VM_, 0);
	err = errno;
	close(kvm);
	if (m->vm_fd < 0) {
		snprintf(why, size, "KVM_CREATE_VM failed: %s", strerror(err));
		return -err;
	}
	err = create_gmem(m);
	if (err) {
		snprintf(why, size, "KVM_CREATE_GUEST_MEMFD with mmap support "
			 "failed: %s (kernel without mappable guest_memfd)",
			 strerror(-err));
		return err;
	}
	return map_file_pair(m, true, 0, why, size);
}

static int make_sysv(struct uffd_probe_mem *m, char *why, size_t size)
{
	int id = shmget(IPC_PRIVATE, m->len, IPC_CREAT | 0600), err;

	if (id < 0) {
		err = errno;
		snprintf(why, size, "shmget failed: %s", strerror(err));
		return -err;
	}
	m->addr = shmat(id, NULL, 0);
	m->alias = shmat(id, NULL, 0);
	err = errno;
	shmctl(id, IPC_RMID, NULL); /* gone once both are detached */
	m->sysv = true;
	if (m->addr == (void *)-1) {
		m->addr = NULL;
		snprintf(why, size, "shmat failed: %s", strerror(err));
		return -err;
	}
	if (m->alias == (void *)-1)
		m->alias = NULL;
	return 0;
}

static int make_secret(struct uffd_probe_mem *m, char *why, size_t size)
{
#ifdef SYS_memfd_secret
	int ret = sized_fd(m, (int)syscall(SYS_memfd_secret, O_CLOEXEC),
			   "memfd_secret", why, size);

	m->plain_write_ok = true; /* no GUP on secret memory, faults work */
#else
	int ret = sized_fd(m, -1, "memfd_secret (unknown here)", why, size);
#endif
	return ret ? ret : map_file_pair(m, true, 0, why, size);
}

static int make_dev_zero(struct uffd_probe_mem *m, char *why, size_t size)
{
	m->fd = open("/dev/zero", O_RDWR | O_CLOEXEC);
	if (m->fd < 0) {
		int err = errno;

		snprintf(why, size, "/dev/zero: %s", strerror(err));
		return -err;
	}
	return map_into(m, MAP_PRIVATE, m->fd, &m->addr, why, size);
}

static int make_backend(struct uffd_probe_mem *m, char *why, size_t size)
{
	const int anon = MAP_ANONYMOUS, huge = MAP_HUGETLB | MAP_NORESERVE;
	int ret;

	switch (m->backend) {
	case UFFD_BACKEND_ANON_PRIVATE:
		return map_into(m, MAP_PRIVATE | anon, -1, &m->addr, why, size);
	case UFFD_BACKEND_ANON_SHARED:
		ret = map_into(m, MAP_SHARED | anon, -1, &m->addr, why, size);
		if (!ret)
			alias_of_shared_anon(m);
		return ret;
	case UFFD_BACKEND_MEMFD_SHARED:
	case UFFD_BACKEND_MEMFD_PRIVATE:
		return make_memfd(m, m->backend == UFFD_BACKEND_MEMFD_SHARED,
				  false, why, size);
	case UFFD_BACKEND_HUGETLB_PRIVATE:
		return map_into(m, MAP_PRIVATE | anon | huge, -1, &m->addr, why,
				size);
	case UFFD_BACKEND_HUGETLB_SHARED:
		ret = map_into(m, MAP_SHARED | anon | huge, -1, &m->addr, why,
			       size);
		if (!ret)
			alias_of_shared_anon(m);
		return ret;
	case UFFD_BACKEND_MEMFD_HUGETLB_SHARED:
	case UFFD_BACKEND_MEMFD_HUGETLB_PRIVATE:
		return make_memfd(m,
				  m->backend == UFFD_BACKEND_MEMFD_HUGETLB_SHARED,
				  true, why, size);
	case UFFD_BACKEND_TMPFS_FILE:
		return make_tmpfs_file(m, why, size);
	case UFFD_BACKEND_DISK_FILE:
		return make_disk_file(m, why, size);
	case UFFD_BACKEND_GUEST_MEMFD:
		return make_guest_memfd(m, why, size);
	case UFFD_BACKEND_SYSV_SHM:
		return make_sysv(m, why, size);
	case UFFD_BACKEND_MEMFD_SECRET:
		return make_secret(m, why, size);
	case UFFD_BACKEND_DEV_ZERO_PRIVATE:
		return make_dev_zero(m, why, size);
	default:
		snprintf(why, size, "libuffd cannot make this kind of memory");
		return -EINVAL;
	}
}

bool uffd_backend_is_hugetlb(enum uffd_backend b)
{
	return b == UFFD_BACKEND_HUGETLB_PRIVATE ||
	       b == UFFD_BACKEND_HUGETLB_SHARED ||
	       b == UFFD_BACKEND_MEMFD_HUGETLB_SHARED ||
	       b == UFFD_BACKEND_MEMFD_HUGETLB_PRIVATE;
}

int uffd_probe_mem_create(enum uffd_backend backend,
			  struct uffd_probe_mem *mem, char *why, size_t size)
{
	size_t page = uffd_page_size();
	int ret;

	*mem = (struct uffd_probe_mem){ .backend = backend, .fd = -1,
					.vm_fd = -1 };
	if (uffd_backend_is_hugetlb(backend)) {
		ret = check_free_huge_pages(&page, why, size);
		if (ret)
			return ret;
	}
	mem->page_size = page;
	mem->len = UFFD_PROBE_PAGES * page;
	mem->has_page_cache = backend != UFFD_BACKEND_ANON_PRIVATE &&
			      backend != UFFD_BACKEND_HUGETLB_PRIVATE &&
			      backend != UFFD_BACKEND_DEV_ZERO_PRIVATE;
	ret = make_backend(mem, why, size);
	if (ret)
		uffd_probe_mem_destroy(mem);
	return ret;
}

void uffd_probe_mem_destroy(struct uffd_probe_mem *mem)
{
	if (mem->sysv) {
		if (mem->addr)
			shmdt(mem->addr);
		if (mem->alias)
			shmdt(mem->alias);
	} else {
		if (mem->addr)
			munmap(mem->addr, mem->len);
		if (mem->alias)
			munmap(mem->alias, mem->len);
	}
	if (mem->fd >= 0)
		close(mem->fd);
	if (mem->vm_fd >= 0)
		close(mem->vm_fd);
	mem->addr = mem->alias = NULL;
	mem->fd = mem->vm_fd = -1;
}
