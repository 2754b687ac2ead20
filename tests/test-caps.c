// SPDX-License-Identifier: MIT
/*
 * Capability discovery checked against the kernel, independently of the
 * library: every memory type is made here with the test's own code (not
 * lib/backends.c), registered on a raw userfaultfd the test opens itself
 * with the same features as the handle whose capabilities it compares, and
 * the kernel's answers (registration errno, UFFDIO_REGISTER's ioctls) must
 * equal the table. The verified layer is spot-checked with raw ioctls too.
 * Also: the probe leaves nothing behind, the cache is shared and
 * thread-safe, irrelevant features share one answer, API errors, and the
 * table's enforcement through registration and MOVE.
 *
 * Huge pages are reserved by an unchecked fixture (runner process), so they
 * are given back even when a test fails; the "no huge pages" case runs in
 * an earlier test case, before the reservation.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "helpers.h"
#include "libuffd.h"

#define HUGE_SZ ((size_t)2 << 20)

/* Newer than the system's Linux 6.1 header. */
struct test_uffdio_move {
	uint64_t dst;
	uint64_t src;
	uint64_t len;
	uint64_t mode;
	int64_t move;
};
#define TEST_UFFDIO_MOVE _IOWR(UFFDIO, 0x05, struct test_uffdio_move)

/* KVM guest_memfd, defined here (the system <linux/kvm.h> is older). */
struct test_kvm_guest_memfd {
	uint64_t size;
	uint64_t flags;
	uint64_t reserved[6];
};
#define TEST_KVM_CREATE_VM _IO(0xAE, 0x01)
#define TEST_KVM_CREATE_GUEST_MEMFD \
	_IOWR(0xAE, 0xd4, struct test_kvm_guest_memfd)
#define TEST_GUEST_MEMFD_FLAG_MMAP (UINT64_C(1) << 0)

#ifndef SYS_memfd_secret
#define SYS_memfd_secret 447
#endif

#define TMPFS_MAGIC_ 0x01021994

/*
 * Under AddressSanitizer freed memory stays mapped in the quarantine: the
 * probe's freed 2 MiB buffers would count as mappings left behind. A 1 MiB
 * quarantine lets those go at once and keeps use-after-free detection for
 * small objects (capability tables, handles).
 */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_UNDER_ASAN 1
#endif
#endif
#ifdef TEST_UNDER_ASAN
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "quarantine_size_mb=1";
}
#endif

static bool is_hugetlb(enum uffd_backend b)
{
	return b == UFFD_BACKEND_HUGETLB_PRIVATE ||
	       b == UFFD_BACKEND_HUGETLB_SHARED ||
	       b == UFFD_BACKEND_MEMFD_HUGETLB_SHARED ||
	       b == UFFD_BACKEND_MEMFD_HUGETLB_PRIVATE;
}

/* The features of a default handle (capability features the kernel has). */
static uint64_t default_features(void)
{
	struct uffd_handle *h = open_handle();
	uint64_t f = uffd_handle_get_features(h);

	uffd_handle_free(h);
	return f;
}

static const struct uffd_caps *caps_of(uint64_t features,
				       enum uffd_backend b)
{
	const struct uffd_caps *caps = NULL;
	int ret = uffd_caps_get(features, b, &caps);

	ck_assert_msg(ret == 0, "uffd_caps_get(%s): %d %s",
		      uffd_backend_name(b), ret, uffd_last_error());
	ck_assert_ptr_nonnull(caps);
	return caps;
}

/* ---- memory of each kind, made by the test's own code ---- */

struct tmem {
	enum uffd_backend backend;
	char *addr;
	size_t len;
	size_t page_size;
	int fd;
	int vm_fd;
	bool sysv;
};

/* An unlinked file of len bytes in dir, which must (not) be tmpfs. */
static int temp_file(const char *dir, bool want_tmpfs, size_t len)
{
	char path[256];
	struct statfs sf;
	int fd;

	ck_assert_msg(statfs(dir, &sf) == 0, "statfs %s: %s", dir,
		      strerror(errno));
	ck_assert_msg((sf.f_type == TMPFS_MAGIC_) == want_tmpfs,
		      "%s is %s tmpfs", dir, want_tmpfs ? "not" : "");
	snprintf(path, sizeof(path), "%s/test-caps-XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	ck_assert_msg(fd >= 0, "mkostemp %s: %s", path, strerror(errno));
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)len), 0);
	return fd;
}

static char *mmap_or_fail(size_t len, int flags, int fd)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, fd, 0);

	ck_assert_msg(p != MAP_FAILED, "mmap: %s", strerror(errno));
	return p;
}

static bool make_guest_memfd(struct tmem *m)
{
	struct test_kvm_guest_memfd args = {
		.size = m->len, .flags = TEST_GUEST_MEMFD_FLAG_MMAP
	};
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	void *p;

	if (kvm < 0) {
		printf("SKIP: guest_memfd: /dev/kvm: %s\n", strerror(errno));
		return false;
	}
	m->vm_fd = ioctl(kvm, TEST_KVM_CREATE_VM, 0);
	close(kvm);
	if (m->vm_fd < 0) {
		printf("SKIP: guest_memfd: KVM_CREATE_VM: %s\n",
		       strerror(errno));
		return false;
	}
	m->fd = ioctl(m->vm_fd, TEST_KVM_CREATE_GUEST_MEMFD, &args);
	if (m->fd < 0) {
		printf("SKIP: guest_memfd: KVM_CREATE_GUEST_MEMFD: %s\n",
		       strerror(errno));
		return false;
	}
	p = mmap(NULL, m->len, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
	if (p == MAP_FAILED) {
		printf("SKIP: guest_memfd: mmap: %s\n", strerror(errno));
		return false;
	}
	m->addr = p;
	return true;
}

static void tmem_free(struct tmem *m)
{
	if (m->addr) {
		if (m->sysv)
			ck_assert_int_eq(shmdt(m->addr), 0);
		else
			ck_assert_int_eq(munmap(m->addr, m->len), 0);
	}
	if (m->fd >= 0)
		close(m->fd);
	if (m->vm_fd >= 0)
		close(m->vm_fd);
	m->addr = NULL;
	m->fd = m->vm_fd = -1;
}

/*
 * Makes two pages (one huge page on hugetlb) of backend b. Returns false,
 * after printing SKIP, only for what may legitimately be missing here
 * (KVM, memfd_secret); anything else that fails fails the test. Hugetlb
 * needs reserved huge pages (the caller checks).
 */
static bool tmem_make(enum uffd_backend b, struct tmem *m)
{
	const size_t ps = test_page();
	const int anon = MAP_ANONYMOUS;
	int id;

	*m = (struct tmem){ .backend = b, .fd = -1, .vm_fd = -1,
			    .page_size = is_hugetlb(b) ? HUGE_SZ : ps };
	m->len = is_hugetlb(b) ? HUGE_SZ : 2 * ps;
	switch (b) {
	case UFFD_BACKEND_ANON_PRIVATE:
		m->addr = mmap_or_fail(m->len, MAP_PRIVATE | anon, -1);
		return true;
	case UFFD_BACKEND_ANON_SHARED:
		m->addr = mmap_or_fail(m->len, MAP_SHARED | anon, -1);
		return true;
	case UFFD_BACKEND_MEMFD_SHARED:
	case UFFD_BACKEND_MEMFD_PRIVATE:
		m->fd = make_memfd(m->len);
		m->addr = mmap_or_fail(m->len,
				       b == UFFD_BACKEND_MEMFD_SHARED
					       ? MAP_SHARED
					       : MAP_PRIVATE,
				       m->fd);
		return true;
	case UFFD_BACKEND_HUGETLB_PRIVATE:
		m->addr = mmap_or_fail(m->len, MAP_PRIVATE | anon | MAP_HUGETLB,
				       -1);
		return true;
	case UFFD_BACKEND_HUGETLB_SHARED:
		m->addr = mmap_or_fail(m->len, MAP_SHARED | anon | MAP_HUGETLB,
				       -1);
		return true;
	case UFFD_BACKEND_MEMFD_HUGETLB_SHARED:
	case UFFD_BACKEND_MEMFD_HUGETLB_PRIVATE:
		m->fd = memfd_create("test-caps-huge", MFD_CLOEXEC | MFD_HUGETLB);
		ck_assert_msg(m->fd >= 0, "memfd_create(MFD_HUGETLB): %s",
			      strerror(errno));
		ck_assert_int_eq(ftruncate(m->fd, (off_t)m->len), 0);
		m->addr = mmap_or_fail(m->len,
				       b == UFFD_BACKEND_MEMFD_HUGETLB_SHARED
					       ? MAP_SHARED
					       : MAP_PRIVATE,
				       m->fd);
		return true;
	case UFFD_BACKEND_TMPFS_FILE:
		m->fd = temp_file("/dev/shm", true, m->len);
		m->addr = mmap_or_fail(m->len, MAP_SHARED, m->fd);
		return true;
	case UFFD_BACKEND_DISK_FILE:
		m->fd = temp_file("/var/tmp", false, m->len);
		m->addr = mmap_or_fail(m->len, MAP_SHARED, m->fd);
		return true;
	case UFFD_BACKEND_GUEST_MEMFD:
		if (make_guest_memfd(m))
			return true;
		tmem_free(m);
		return false;
	case UFFD_BACKEND_SYSV_SHM:
		id = shmget(IPC_PRIVATE, m->len, IPC_CREAT | 0600);
		ck_assert_msg(id >= 0, "shmget: %s", strerror(errno));
		m->addr = shmat(id, NULL, 0);
		ck_assert_int_eq(shmctl(id, IPC_RMID, NULL), 0);
		ck_assert_msg(m->addr != (void *)-1, "shmat: %s",
			      strerror(errno));
		m->sysv = true;
		return true;
	case UFFD_BACKEND_MEMFD_SECRET:
		m->fd = (int)syscall(SYS_memfd_secret, O_CLOEXEC);
		if (m->fd < 0) {
			printf("SKIP: memfd_secret: %s\n", strerror(errno));
			return false;
		}
		ck_assert_int_eq(ftruncate(m->fd, (off_t)m->len), 0);
		m->addr = mmap_or_fail(m->len, MAP_SHARED, m->fd);
		return true;
	case UFFD_BACKEND_DEV_ZERO_PRIVATE:
		m->fd = open("/dev/zero", O_RDWR | O_CLOEXEC);
		ck_assert_msg(m->fd >= 0, "/dev/zero: %s", strerror(errno));
		m->addr = mmap_or_fail(m->len, MAP_PRIVATE, m->fd);
		return true;
	default:
		ck_abort_msg("no way to make backend %d", (int)b);
		return false;
	}
}

/* ---- the test's own userfaultfd ---- */

static int raw_uffd(uint64_t features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	ck_assert_msg(fd >= 0, "userfaultfd: %s", strerror(errno));
	ck_assert_msg(ioctl(fd, UFFDIO_API, &api) == 0,
		      "UFFDIO_API(%#llx): %s", (unsigned long long)features,
		      strerror(errno));
	return fd;
}

/* 0 (with the kernel's ioctls) or -errno. */
static int raw_register(int fd, void *addr, size_t len, uint64_t modes,
			uint64_t *ioctls)
{
	struct uffdio_register reg = {
		.range = { (uintptr_t)addr, len },
		.mode = modes,
	};

	if (ioctl(fd, UFFDIO_REGISTER, &reg))
		return -errno;
	*ioctls = reg.ioctls;
	return 0;
}

static void raw_unregister(int fd, void *addr, size_t len)
{
	struct uffdio_range range = { (uintptr_t)addr, len };

	ck_assert_msg(ioctl(fd, UFFDIO_UNREGISTER, &range) == 0,
		      "UFFDIO_UNREGISTER: %s", strerror(errno));
}

/* ---- the table against the kernel ---- */

/* Compares one backend for every mode combination; false if skipped. */
static bool compare_backend(uint64_t features, enum uffd_backend b)
{
	const struct uffd_caps *caps = caps_of(features, b);
	const char *name = uffd_backend_name(b);
	uint64_t single = 0;
	bool any = false;
	struct tmem m;
	int fd;

	ck_assert_int_eq(uffd_caps_get_backend(caps), b);
	ck_assert_uint_eq(uffd_caps_get_features(caps), features);
	/* caps first, memory second: the probe needs free huge pages. */
	if (!tmem_make(b, &m)) {
		printf("SKIP: %s could not be made here (table says %d: %s)\n",
		       name, (int)uffd_caps_get_status(caps),
		       uffd_caps_get_reason(caps));
		return false;
	}
	ck_assert_msg(uffd_caps_get_status(caps) != UFFD_CAPS_UNKNOWN,
		      "%s: the test made it but the table says unknown: %s",
		      name, uffd_caps_get_reason(caps));
	ck_assert_msg(uffd_caps_get_page_size(caps) == m.page_size,
		      "%s: page size %zu, expected %zu", name,
		      uffd_caps_get_page_size(caps), m.page_size);

	fd = raw_uffd(features);
	for (uint64_t modes = 1; modes <= UFFD_MODE_KNOWN; modes++) {
		uint64_t ioctls = 0;
		int kernel = raw_register(fd, m.addr, m.len, modes, &ioctls);
		int table = uffd_caps_get_register(caps, modes);
		uint64_t adv = uffd_caps_get_advertised(caps, modes);
		uint64_t ver = uffd_caps_get_verified(caps, modes);
		char mnames[32];

		uffd_modes_format(modes, mnames, sizeof(mnames));
		ck_assert_msg(kernel == table,
			      "%s %s: the kernel says %d (%s), the table %d",
			      name, mnames, kernel, strerror(-kernel), table);
		ck_assert_msg((ver & ~adv) == 0,
			      "%s %s: verified %#llx not within advertised "
			      "%#llx", name, mnames, (unsigned long long)ver,
			      (unsigned long long)adv);
		if (kernel) {
			ck_assert_msg(adv == 0 && ver == 0,
				      "%s %s: not registered but ops %#llx",
				      name, mnames, (unsigned long long)adv);
			continue;
		}
		ck_assert_msg(adv == ioctls,
			      "%s %s: the kernel advertises %#llx, the table "
			      "%#llx", name, mnames,
			      (unsigned long long)ioctls,
			      (unsigned long long)adv);
		/* Each advertised operation: verified exactly when its
		 * result is 0. */
		for (uint64_t op = UFFD_OP_WAKE; op <= UFFD_OP_POISON;
		     op <<= 1) {
			int res = uffd_caps_get_op_result(caps, modes, op,
							  NULL);

			if (!(adv & op))
				ck_assert_int_eq(res, -ENODATA);
			else
				ck_assert_msg((res == 0) == !!(ver & op),
					      "%s %s: %s verified %d, "
					      "result %d", name, mnames,
					      uffd_op_name(op),
					      !!(ver & op), res);
		}
		raw_unregister(fd, m.addr, m.len);
		any = true;
		if (!(modes & (modes - 1)))
			single |= modes;
	}
	ck_assert_int_eq(uffd_caps_get_status(caps),
			 any ? UFFD_CAPS_SUPPORTED : UFFD_CAPS_UNSUPPORTED);
	ck_assert_uint_eq(uffd_caps_get_modes(caps), single);
	if (any)
		ck_assert_str_eq(uffd_caps_get_reason(caps), "");
	else
		ck_assert_msg(uffd_caps_get_reason(caps)[0] != '\0',
			      "%s: unsupported without a reason", name);
	close(fd);
	tmem_free(&m);
	return true;
}

static void compare_all(uint64_t features)
{
	int compared = 0;

	for (int b = 1; b < UFFD_BACKEND_COUNT; b++) {
		if (is_hugetlb(b) && !hugetlb_reserved()) {
			printf("SKIP: %s: no huge pages reserved\n",
			       uffd_backend_name(b));
			continue;
		}
		compared += compare_backend(features, b);
	}
	/* At least everything that needs no KVM, memfd_secret or huge
	 * pages. */
	ck_assert_int_ge(compared, 8);
}

START_TEST(table_matches_kernel)
{
	compare_all(default_features());
}
END_TEST

START_TEST(table_matches_kernel_wp_async)
{
	struct uffd_handle *h = open_handle_with(UFFD_FEAT_WP_ASYNC);
	uint64_t f = uffd_handle_get_features(h);

	uffd_handle_free(h);
	compare_all(f);
}
END_TEST

/* ---- the verified layer, spot-checked with raw ioctls ---- */

static int raw_move(int fd, void *dst, void *src, size_t len, int64_t *moved)
{
	struct test_uffdio_move mv = { (uintptr_t)dst, (uintptr_t)src, len,
				       0, 0 };
	int ret = ioctl(fd, TEST_UFFDIO_MOVE, &mv) ? -errno : 0;

	*moved = mv.move;
	return ret;
}

static void fill_pattern(unsigned char *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)(i * 7 + seed);
}

START_TEST(move_into_memfd_fails)
{
	uint64_t f = default_features();
	const struct uffd_caps *caps = caps_of(f, UFFD_BACKEND_MEMFD_SHARED);
	const size_t ps = test_page();
	int memfd = make_memfd(ps);
	unsigned char *dst = map_fd(memfd, ps, true);
	unsigned char *src = map_anon(ps);
	int fd = raw_uffd(f);
	uint64_t ioctls = 0;
	int64_t moved = 0;
	const char *note = NULL;

	fill_pattern(src, ps, 3);
	ck_assert_int_eq(raw_register(fd, dst, ps, UFFD_MODE_MISSING, &ioctls),
			 0);
	ck_assert(ioctls & UFFD_OP_MOVE);
	ck_assert_int_eq(raw_move(fd, dst, src, ps, &moved), -EINVAL);
	/* The source is still ours, untouched. */
	ck_assert_uint_eq(src[ps - 1], (unsigned char)((ps - 1) * 7 + 3));

	ck_assert(uffd_caps_get_advertised(caps, UFFD_MODE_MISSING) &
		  UFFD_OP_MOVE);
	ck_assert(!(uffd_caps_get_verified(caps, UFFD_MODE_MISSING) &
		    UFFD_OP_MOVE));
	ck_assert_int_eq(uffd_caps_get_op_result(caps, UFFD_MODE_MISSING,
						 UFFD_OP_MOVE, &note),
			 -EINVAL);
	ck_assert_ptr_nonnull(note);
	ck_assert(uffd_caps_get_verified(caps, UFFD_MODE_MISSING) &
		  UFFD_OP_COPY);
	ck_assert_msg(strstr(note, "anonymous private") != NULL,
		      "MOVE's note does not say where it works: \"%s\"", note);
	/* the notes are about feature bits, which agree for shmem here:
	 * MISSING_SHMEM, MINOR_SHMEM and WP_HUGETLBFS_SHMEM all hold */
	ck_assert_msg(strstr(uffd_caps_get_notes(caps), "MOVE") == NULL,
		      "notes repeat an operation result: \"%s\"",
		      uffd_caps_get_notes(caps));

	close(fd);
	munmap(src, ps);
	munmap(dst, ps);
	close(memfd);
}
END_TEST

START_TEST(move_on_anon_private_works)
{
	uint64_t f = default_features();
	const struct uffd_caps *caps = caps_of(f, UFFD_BACKEND_ANON_PRIVATE);
	const size_t ps = test_page();
	unsigned char *dst = map_anon(ps);
	unsigned char *src = map_anon(ps);
	unsigned char *want = malloc(ps);
	int fd = raw_uffd(f);
	uint64_t ioctls = 0;
	int64_t moved = 0;

	ck_assert_ptr_nonnull(want);
	fill_pattern(want, ps, 5);
	memcpy(src, want, ps);
	ck_assert_int_eq(raw_register(fd, dst, ps, UFFD_MODE_MISSING, &ioctls),
			 0);
	ck_assert(ioctls & UFFD_OP_MOVE);
	ck_assert_int_eq(raw_move(fd, dst, src, ps, &moved), 0);
	ck_assert_int_eq(moved, (int64_t)ps);
	/* Present now: reading cannot fault into the registered range. */
	ck_assert_mem_eq(dst, want, ps);

	ck_assert(uffd_caps_get_verified(caps, UFFD_MODE_MISSING) &
		  UFFD_OP_MOVE);
	ck_assert_int_eq(uffd_caps_get_op_result(caps, UFFD_MODE_MISSING,
						 UFFD_OP_MOVE, NULL),
			 0);

	close(fd);
	free(want);
	munmap(src, ps);
	munmap(dst, ps);
}
END_TEST

START_TEST(continue_on_private_hugetlb_fails)
{
	REQUIRE_HUGEPAGES();
	uint64_t f = default_features();
	const struct uffd_caps *caps = caps_of(f, UFFD_BACKEND_HUGETLB_PRIVATE);
	struct uffdio_continue cont;
	uint64_t ioctls = 0;
	struct tmem m;
	int fd;

	ck_assert(tmem_make(UFFD_BACKEND_HUGETLB_PRIVATE, &m));
	fd = raw_uffd(f);
	ck_assert_int_eq(raw_register(fd, m.addr, m.len, UFFD_MODE_MINOR,
				      &ioctls),
			 0);
	ck_assert(ioctls & UFFD_OP_CONTINUE);
	cont = (struct uffdio_continue){ .range = { (uintptr_t)m.addr,
						    m.len } };
	ck_assert_int_eq(ioctl(fd, UFFDIO_CONTINUE, &cont), -1);
	ck_assert_int_eq(errno, EFAULT);

	ck_assert(uffd_caps_get_advertised(caps, UFFD_MODE_MINOR) &
		  UFFD_OP_CONTINUE);
	ck_assert(!(uffd_caps_get_verified(caps, UFFD_MODE_MINOR) &
		    UFFD_OP_CONTINUE));
	ck_assert_int_eq(uffd_caps_get_op_result(caps, UFFD_MODE_MINOR,
						 UFFD_OP_CONTINUE, NULL),
			 -EFAULT);

	close(fd);
	tmem_free(&m);
}
END_TEST

/*
 * Shared anonymous hugetlb has a page cache (its hidden hugetlbfs file):
 * with the page filled through a second mapping of that file, CONTINUE
 * works, and 4 reserved huge pages are more than the probe says it needs.
 */
START_TEST(continue_on_shared_hugetlb_works)
{
	REQUIRE_HUGEPAGES();
	uint64_t f = default_features();
	const struct uffd_caps *caps = caps_of(f, UFFD_BACKEND_HUGETLB_SHARED);
	struct uffdio_continue cont;
	unsigned char *alias;
	uint64_t ioctls = 0;
	char path[80];
	struct tmem m;
	int fd, file;

	ck_assert(tmem_make(UFFD_BACKEND_HUGETLB_SHARED, &m));
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx",
		 (unsigned long)m.addr, (unsigned long)(m.addr + m.len));
	file = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_msg(file >= 0, "%s: %s", path, strerror(errno));
	alias = (unsigned char *)mmap_or_fail(m.len, MAP_SHARED, file);
	close(file);
	fill_pattern(alias, m.len, 11);

	fd = raw_uffd(f);
	ck_assert_int_eq(raw_register(fd, m.addr, m.len, UFFD_MODE_MINOR,
				      &ioctls),
			 0);
	ck_assert(ioctls & UFFD_OP_CONTINUE);
	cont = (struct uffdio_continue){ .range = { (uintptr_t)m.addr,
						    m.len } };
	ck_assert_msg(ioctl(fd, UFFDIO_CONTINUE, &cont) == 0,
		      "UFFDIO_CONTINUE: %s", strerror(errno));
	ck_assert_int_eq(cont.mapped, (int64_t)m.len);
	/* Mapped now: reading cannot fault into the registered range. */
	ck_assert_mem_eq(m.addr, alias, m.len);
	close(fd);
	munmap(alias, m.len);
	tmem_free(&m);

	ck_assert(uffd_caps_get_advertised(caps, UFFD_MODE_MINOR) &
		  UFFD_OP_CONTINUE);
	{
		const char *note = NULL;
		int res = uffd_caps_get_op_result(caps, UFFD_MODE_MINOR,
						  UFFD_OP_CONTINUE, &note);

		ck_assert_msg(res == 0,
			      "hugetlb-shared MINOR: CONTINUE works but the "
			      "table says %d: %s", res, note);
	}
	ck_assert(uffd_caps_get_verified(caps, UFFD_MODE_MINOR) &
		  UFFD_OP_CONTINUE);
}
END_TEST

START_TEST(copy_on_private_dev_zero_fails)
{
	uint64_t f = default_features();
	const struct uffd_caps *caps =
		caps_of(f, UFFD_BACKEND_DEV_ZERO_PRIVATE);
	const size_t ps = test_page();
	unsigned char *src = map_anon(ps);
	struct uffdio_copy copy;
	uint64_t ioctls = 0;
	struct tmem m;
	int fd;

	fill_pattern(src, ps, 9);
	ck_assert(tmem_make(UFFD_BACKEND_DEV_ZERO_PRIVATE, &m));
	fd = raw_uffd(f);
	ck_assert_int_eq(raw_register(fd, m.addr, m.len, UFFD_MODE_MISSING,
				      &ioctls),
			 0);
	ck_assert(ioctls & UFFD_OP_COPY);
	copy = (struct uffdio_copy){ .dst = (uintptr_t)m.addr,
				     .src = (uintptr_t)src,
				     .len = ps };
	ck_assert_int_eq(ioctl(fd, UFFDIO_COPY, &copy), -1);
	ck_assert_int_eq(errno, EFAULT);

	ck_assert(uffd_caps_get_advertised(caps, UFFD_MODE_MISSING) &
		  UFFD_OP_COPY);
	ck_assert(!(uffd_caps_get_verified(caps, UFFD_MODE_MISSING) &
		    UFFD_OP_COPY));
	ck_assert_int_eq(uffd_caps_get_op_result(caps, UFFD_MODE_MISSING,
						 UFFD_OP_COPY, NULL),
			 -EFAULT);

	close(fd);
	tmem_free(&m);
	munmap(src, ps);
}
END_TEST

START_TEST(wp_async_lets_disk_file_wp_register)
{
	struct uffd_handle *h = open_handle_with(UFFD_FEAT_WP_ASYNC);
	uint64_t with = uffd_handle_get_features(h);
	uint64_t without = default_features();
	const struct uffd_caps *a = caps_of(with, UFFD_BACKEND_DISK_FILE);
	const struct uffd_caps *n = caps_of(without, UFFD_BACKEND_DISK_FILE);
	uint64_t ioctls = 0;
	struct tmem m;
	int fd;

	uffd_handle_free(h);
	ck_assert(a != n);
	ck_assert_int_eq(uffd_caps_get_status(a), UFFD_CAPS_SUPPORTED);
	ck_assert_uint_eq(uffd_caps_get_modes(a), UFFD_MODE_WP);
	ck_assert_int_eq(uffd_caps_get_register(a, UFFD_MODE_WP), 0);
	ck_assert_int_eq(uffd_caps_get_register(a, UFFD_MODE_MISSING),
			 -EINVAL);
	ck_assert(uffd_caps_get_verified(a, UFFD_MODE_WP) &
		  UFFD_OP_WRITEPROTECT);

	ck_assert_int_eq(uffd_caps_get_status(n), UFFD_CAPS_UNSUPPORTED);
	ck_assert_uint_eq(uffd_caps_get_modes(n), 0);
	ck_assert_msg(uffd_caps_get_reason(n)[0] != '\0',
		      "UNSUPPORTED without a reason");
	for (uint64_t modes = 1; modes <= UFFD_MODE_KNOWN; modes++)
		ck_assert_int_eq(uffd_caps_get_register(n, modes), -EINVAL);

	/* The kernel agrees, on the test's own file and fds. */
	ck_assert(tmem_make(UFFD_BACKEND_DISK_FILE, &m));
	fd = raw_uffd(with);
	ck_assert_int_eq(raw_register(fd, m.addr, m.len, UFFD_MODE_WP,
				      &ioctls),
			 0);
	close(fd);
	fd = raw_uffd(without);
	ck_assert_int_eq(raw_register(fd, m.addr, m.len, UFFD_MODE_WP,
				      &ioctls),
			 -EINVAL);
	close(fd);
	tmem_free(&m);
}
END_TEST

/* ---- hugetlb ---- */

static long meminfo(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "re");
	size_t klen = strlen(key);
	char line[128];
	long v = -1;

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':' &&
		    sscanf(line + klen + 1, "%ld", &v) == 1)
			break;
	fclose(f);
	ck_assert_msg(v >= 0, "no %s in /proc/meminfo", key);
	return v;
}

START_TEST(hugetlb_unknown_without_free_pages)
{
	uint64_t f = default_features();
	long avail = meminfo("HugePages_Free") - meminfo("HugePages_Rsvd");

	if (avail > 0) {
		printf("SKIP: %s: %ld huge pages are free on this system\n",
		       __func__, avail);
		return;
	}
	for (int b = 1; b < UFFD_BACKEND_COUNT; b++) {
		struct uffd_caps *caps = NULL;

		if (!is_hugetlb(b))
			continue;
		ck_assert_int_eq(uffd_caps_probe(f, b, &caps), 0);
		ck_assert_int_eq(uffd_caps_get_backend(caps), b);
		ck_assert_int_eq(uffd_caps_get_status(caps), UFFD_CAPS_UNKNOWN);
		ck_assert_msg(strstr(uffd_caps_get_reason(caps), "huge pages"),
			      "%s: reason \"%s\"", uffd_backend_name(b),
			      uffd_caps_get_reason(caps));
		ck_assert_uint_eq(uffd_caps_get_page_size(caps), 0);
		ck_assert_uint_eq(uffd_caps_get_modes(caps), 0);
		for (uint64_t modes = 1; modes <= UFFD_MODE_KNOWN; modes++) {
			ck_assert_int_eq(uffd_caps_get_register(caps, modes),
					 -ENODATA);
			ck_assert_uint_eq(uffd_caps_get_advertised(caps, modes),
					  0);
		}
		uffd_caps_free(caps);
	}
}
END_TEST

START_TEST(hugetlb_probed_with_free_pages)
{
	REQUIRE_HUGEPAGES();
	uint64_t f = default_features();

	for (int b = 1; b < UFFD_BACKEND_COUNT; b++) {
		const struct uffd_caps *caps;

		if (!is_hugetlb(b))
			continue;
		caps = caps_of(f, b);
		ck_assert_msg(uffd_caps_get_status(caps) == UFFD_CAPS_SUPPORTED,
			      "%s: status %d: %s", uffd_backend_name(b),
			      (int)uffd_caps_get_status(caps),
			      uffd_caps_get_reason(caps));
		ck_assert_uint_eq(uffd_caps_get_page_size(caps), HUGE_SZ);
		ck_assert_int_eq(uffd_caps_get_register(caps,
							UFFD_MODE_MISSING),
				 0);
		ck_assert(uffd_caps_get_modes(caps) & UFFD_MODE_MISSING);
		ck_assert(uffd_caps_get_advertised(caps, UFFD_MODE_MISSING) &
			  UFFD_OP_COPY);
		ck_assert(!(uffd_caps_get_advertised(caps, UFFD_MODE_MISSING) &
			    UFFD_OP_ZEROPAGE));
		ck_assert_int_eq(uffd_caps_get_op_result(caps,
							 UFFD_MODE_MISSING,
							 UFFD_OP_ZEROPAGE, NULL),
				 -ENODATA);
	}
}
END_TEST

/* ---- the probe leaves nothing behind ---- */

static int count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	int n = 0, c;

	ck_assert_ptr_nonnull(f);
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static int count_probe_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		n += !strncmp(e->d_name, "libuffd-probe", 13);
	closedir(d);
	return n;
}

/* SysV segments this process created that still exist. */
static int count_own_sysv(void)
{
	FILE *f = fopen("/proc/sysvipc/shm", "re");
	char line[512];
	int n = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		long cpid;

		/* key shmid perms size cpid ... */
		if (sscanf(line, "%*d %*d %*o %*u %ld", &cpid) == 1 &&
		    cpid == (long)getpid())
			n++;
	}
	fclose(f);
	return n;
}

struct footprint {
	int fds, maps, files, sysv;
	long huge_free;
};

static struct footprint footprint(void)
{
	return (struct footprint){
		.fds = count_fds(),
		.maps = count_maps(),
		.files = count_probe_files("/dev/shm") +
			 count_probe_files("/var/tmp"),
		.sysv = count_own_sysv(),
		.huge_free = meminfo("HugePages_Free"),
	};
}

static void probe_every_backend(uint64_t f)
{
	for (int b = 1; b < UFFD_BACKEND_COUNT; b++) {
		struct uffd_caps *caps = NULL;
		int ret = uffd_caps_probe(f, b, &caps);

		ck_assert_msg(ret == 0, "probe %s: %s", uffd_backend_name(b),
			      uffd_last_error());
		if (is_hugetlb(b) && hugetlb_reserved())
			ck_assert_int_eq(uffd_caps_get_status(caps),
					 UFFD_CAPS_SUPPORTED);
		uffd_caps_free(caps);
	}
}

START_TEST(probe_leaves_nothing_behind)
{
	uint64_t f = default_features();
	struct footprint before, after;

	/* Once first: what the first call of anything allocates for good
	 * (stdio, locale for strerror, allocator arenas) is not a leak. */
	probe_every_backend(f);
	before = footprint();
	probe_every_backend(f);
	after = footprint();
	ck_assert_int_eq(after.fds, before.fds);
	ck_assert_int_eq(after.maps, before.maps);
	ck_assert_int_eq(after.files, before.files);
	ck_assert_int_eq(after.sysv, before.sysv);
	/* The children that touch poisoned pages were all reaped. */
	errno = 0;
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG | __WALL), -1);
	ck_assert_int_eq(errno, ECHILD);
	ck_assert_int_eq(after.huge_free, before.huge_free);
}
END_TEST

/* ---- the cache ---- */

START_TEST(cached_pointer_is_stable)
{
	uint64_t f = default_features();

	for (int b = 1; b < UFFD_BACKEND_COUNT; b++) {
		const struct uffd_caps *a = caps_of(f, b), *c = caps_of(f, b);

		ck_assert_ptr_eq(a, c);
		ck_assert_int_eq(uffd_caps_get_backend(a), b);
	}
}
END_TEST

#define NR_THREADS 4

struct caps_thread {
	pthread_t thread;
	pthread_barrier_t *start;
	uint64_t features;
	int first; /* backend it starts with, to mix the order */
	const struct uffd_caps *caps[UFFD_BACKEND_COUNT];
	int ret[UFFD_BACKEND_COUNT];
};

static void *caps_thread_main(void *arg)
{
	struct caps_thread *t = arg;
	const int n = UFFD_BACKEND_COUNT - 1;

	pthread_barrier_wait(t->start);
	for (int i = 0; i < n; i++) {
		int b = 1 + (t->first + i) % n;

		t->ret[b] = uffd_caps_get(t->features, b, &t->caps[b]);
	}
	return NULL;
}

START_TEST(cache_is_thread_safe)
{
	struct caps_thread t[NR_THREADS];
	pthread_barrier_t start;
	uint64_t f = default_features();

	ck_assert_int_eq(pthread_barrier_init(&start, NULL, NR_THREADS), 0);
	for (int i = 0; i < NR_THREADS; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		t[i].start = &start;
		t[i].features = f;
		t[i].first = (i % 2) ? 0 : i; /* two share an order */
		ck_assert_int_eq(pthread_create(&t[i].thread, NULL,
						caps_thread_main, &t[i]),
				 0);
	}
	for (int i = 0; i < NR_THREADS; i++)
		ck_assert_int_eq(pthread_join(t[i].thread, NULL), 0);
	pthread_barrier_destroy(&start);

	for (int b = 1; b < UFFD_BACKEND_COUNT; b++) {
		for (int i = 0; i < NR_THREADS; i++) {
			ck_assert_msg(t[i].ret[b] == 0, "thread %d, %s: %d", i,
				      uffd_backend_name(b), t[i].ret[b]);
			ck_assert_ptr_nonnull(t[i].caps[b]);
			ck_assert_ptr_eq(t[i].caps[b], t[0].caps[b]);
		}
		ck_assert_ptr_eq(caps_of(f, b), t[0].caps[b]);
		ck_assert_int_eq(uffd_caps_get_backend(t[0].caps[b]), b);
	}
}
END_TEST

START_TEST(irrelevant_features_share_the_answer)
{
	uint64_t f = default_features();

	for (int b = 1; b < UFFD_BACKEND_COUNT; b++) {
		const struct uffd_caps *plain = caps_of(f, b);

		ck_assert_ptr_eq(caps_of(f | UFFD_FEAT_EVENT_UNMAP, b), plain);
		ck_assert_ptr_eq(caps_of(f | UFFD_FEAT_THREAD_ID, b), plain);
		ck_assert_ptr_eq(caps_of(f | UFFD_FEAT_EVENT_UNMAP |
						 UFFD_FEAT_THREAD_ID,
					 b),
				 plain);
		ck_assert_uint_eq(uffd_caps_get_features(plain), f);
	}
}
END_TEST

START_TEST(event_unmap_handle_registers_anon)
{
	struct uffd_handle *h = open_handle_with(UFFD_FEAT_EVENT_UNMAP);
	const size_t len = 4 * test_page();
	unsigned char *p = map_anon(len);
	int memfd = make_memfd(len);
	unsigned char *s = map_fd(memfd, len, true);
	uint64_t ops = 0, range_ops = 0;

	/* The first registration runs the probe (fresh cache in this test);
	 * the probe's munmaps must not wait for this handle's reader. */
	ck_assert_msg(uffd_handle_register(h, p, len, UFFD_MODE_MISSING,
					   &ops) == 0,
		      "register: %s", uffd_last_error());
	ck_assert(ops & UFFD_OP_COPY);
	ck_assert_int_eq(uffd_handle_get_range_ops(h, p, len, &range_ops,
						   NULL),
			 0);
	ck_assert(range_ops & UFFD_OP_MOVE);
	ck_assert_msg(uffd_handle_register(h, s, len, UFFD_MODE_MISSING,
					   &ops) == 0,
		      "register memfd: %s", uffd_last_error());

	/* Freed first: with EVENT_UNMAP on, our own munmap would wait. */
	uffd_handle_free(h);
	munmap(s, len);
	close(memfd);
	munmap(p, len);
}
END_TEST

/* ---- API errors and names ---- */

START_TEST(api_errors)
{
	uint64_t f = default_features();
	const struct uffd_caps *caps = NULL;
	struct uffd_caps *probed = NULL;
	const char *note = NULL;

	ck_assert_uffd_err(uffd_caps_get(f, UFFD_BACKEND_UNKNOWN, &caps),
			   EINVAL, "backend");
	ck_assert_int_eq(uffd_caps_get(f, (enum uffd_backend)99, &caps),
			 -EINVAL);
	ck_assert_int_eq(uffd_caps_get(f, UFFD_BACKEND_COUNT, &caps), -EINVAL);
	ck_assert_int_eq(uffd_caps_get(f, UFFD_BACKEND_ANON_PRIVATE, NULL),
			 -EINVAL);
	ck_assert_ptr_null(caps);
	ck_assert_int_eq(uffd_caps_probe(f, UFFD_BACKEND_UNKNOWN, &probed),
			 -EINVAL);
	ck_assert_int_eq(uffd_caps_probe(f, UFFD_BACKEND_ANON_PRIVATE, NULL),
			 -EINVAL);
	ck_assert_ptr_null(probed);
	ck_assert_int_eq(uffd_caps_get(f | (UINT64_C(1) << 40),
				       UFFD_BACKEND_ANON_PRIVATE, &caps),
			 -ENOTSUP);
	ck_assert_int_eq(uffd_caps_probe(f | (UINT64_C(1) << 40),
					 UFFD_BACKEND_ANON_PRIVATE, &probed),
			 -ENOTSUP);
	uffd_caps_free(NULL);

	/* Accessors on NULL. */
	ck_assert_int_eq(uffd_caps_get_backend(NULL), UFFD_BACKEND_UNKNOWN);
	ck_assert_uint_eq(uffd_caps_get_features(NULL), 0);
	ck_assert_int_eq(uffd_caps_get_status(NULL), UFFD_CAPS_UNKNOWN);
	ck_assert_ptr_nonnull(uffd_caps_get_reason(NULL));
	ck_assert_uint_eq(uffd_caps_get_page_size(NULL), 0);
	ck_assert_uint_eq(uffd_caps_get_modes(NULL), 0);
	ck_assert_int_eq(uffd_caps_get_register(NULL, UFFD_MODE_MISSING),
			 -EINVAL);
	ck_assert_uint_eq(uffd_caps_get_advertised(NULL, UFFD_MODE_MISSING),
			  0);
	ck_assert_uint_eq(uffd_caps_get_verified(NULL, UFFD_MODE_MISSING), 0);
	ck_assert_int_eq(uffd_caps_get_op_result(NULL, UFFD_MODE_MISSING,
						 UFFD_OP_COPY, NULL),
			 -EINVAL);
	ck_assert_str_eq(uffd_caps_get_notes(NULL), "");

	/* Bad modes and ops on a real table. */
	caps = caps_of(f, UFFD_BACKEND_ANON_PRIVATE);
	ck_assert_int_eq(uffd_caps_get_register(caps, 0), -EINVAL);
	ck_assert_int_eq(uffd_caps_get_register(caps, 8), -EINVAL);
	ck_assert_uint_eq(uffd_caps_get_advertised(caps, 8), 0);
	ck_assert_uint_eq(uffd_caps_get_verified(caps, 0), 0);
	ck_assert_int_eq(uffd_caps_get_op_result(caps, UFFD_MODE_MISSING,
						 UFFD_OP_CONTINUE, &note),
			 -ENODATA);
	ck_assert_ptr_nonnull(note);
	ck_assert_int_eq(uffd_caps_get_op_result(caps, UFFD_MODE_MISSING,
						 UFFD_OP_COPY |
							 UFFD_OP_ZEROPAGE,
						 NULL),
			 -EINVAL);
	ck_assert_int_eq(uffd_caps_get_op_result(caps, UFFD_MODE_MISSING, 0,
						 NULL),
			 -EINVAL);
	ck_assert_int_eq(uffd_caps_get_op_result(caps, 8, UFFD_OP_COPY, NULL),
			 -EINVAL);
	/* MINOR does not register on anonymous private memory. */
	ck_assert_int_eq(uffd_caps_get_op_result(caps, UFFD_MODE_MINOR,
						 UFFD_OP_COPY, NULL),
			 -ENODATA);
	ck_assert_int_eq(uffd_caps_get_op_result(caps, UFFD_MODE_MISSING,
						 UFFD_OP_COPY, &note),
			 0);
	ck_assert_str_eq(note, "verified");
}
END_TEST

START_TEST(backend_names)
{
	enum uffd_backend b;

	for (int i = 0; i < UFFD_BACKEND_COUNT; i++) {
		const char *name = uffd_backend_name(i);

		ck_assert_ptr_nonnull(name);
		ck_assert_ptr_nonnull(uffd_backend_describe(i));
		ck_assert_msg(uffd_backend_from_name(name, &b) == 0,
			      "from_name(%s): %s", name, uffd_last_error());
		ck_assert_int_eq(b, i);
	}
	ck_assert_ptr_null(uffd_backend_name(UFFD_BACKEND_COUNT));
	ck_assert_ptr_null(uffd_backend_describe(UFFD_BACKEND_COUNT));
	ck_assert_ptr_null(uffd_backend_name((enum uffd_backend)-1));
	ck_assert_str_eq(uffd_backend_name(UFFD_BACKEND_MEMFD_HUGETLB_SHARED),
			 "memfd-hugetlb-shared");
	ck_assert_uffd_err(uffd_backend_from_name("nosuch", &b), ENOENT,
			   "nosuch");
	ck_assert_int_eq(uffd_backend_from_name(NULL, &b), -EINVAL);
	ck_assert_int_eq(uffd_backend_from_name("anon-private", NULL),
			 -EINVAL);
}
END_TEST

/* ---- enforcement through registration and operations ---- */

START_TEST(minor_on_anon_private_explained)
{
	struct uffd_handle *h = open_handle();
	const size_t len = 2 * test_page();
	void *p = map_anon(len);

	ck_assert_uffd_err(uffd_handle_register(h, p, len, UFFD_MODE_MINOR,
						NULL),
			   EINVAL,
			   "MINOR mode is not supported on anonymous private "
			   "memory (supported here");
	ck_assert_int_eq(uffd_handle_get_range_ops(h, p, len, NULL, NULL),
			 -ENOENT);
	uffd_handle_free(h);
	munmap(p, len);
}
END_TEST

START_TEST(missing_on_disk_file_explained)
{
	struct uffd_handle *h = open_handle();
	struct tmem m;

	ck_assert(!(uffd_handle_get_features(h) & UFFD_FEAT_WP_ASYNC));
	ck_assert(tmem_make(UFFD_BACKEND_DISK_FILE, &m));
	ck_assert_uffd_err(uffd_handle_register(h, m.addr, m.len,
						UFFD_MODE_MISSING, NULL),
			   EINVAL, "a file on a disk filesystem");
	ck_assert_msg(strstr(uffd_last_error(), "MISSING"),
		      "message lacks the mode: %s", uffd_last_error());
	uffd_handle_free(h);
	tmem_free(&m);
}
END_TEST

START_TEST(move_on_memfd_refused)
{
	struct uffd_handle *h = open_handle();
	const size_t ps = test_page(), len = 2 * ps;
	int memfd = make_memfd(len);
	unsigned char *dst = map_fd(memfd, len, true);
	unsigned char *src = map_anon(ps);
	uint64_t ops = 0, range_ops = 0, range_modes = 0;
	size_t done = 1;

	fill_pattern(src, ps, 1);
	ck_assert_msg(uffd_handle_register(h, dst, len, UFFD_MODE_MISSING,
					   &ops) == 0,
		      "register: %s", uffd_last_error());
	/* The kernel's answer, passed through, has MOVE ... */
	ck_assert(ops & UFFD_OP_MOVE);
	ck_assert(ops & UFFD_OP_COPY);
	/* ... what libuffd allows does not. */
	ck_assert_int_eq(uffd_handle_get_range_ops(h, dst, len, &range_ops,
						   &range_modes),
			 0);
	ck_assert(!(range_ops & UFFD_OP_MOVE));
	ck_assert(range_ops & UFFD_OP_COPY);
	ck_assert_uint_eq(range_modes, UFFD_MODE_MISSING);
	ck_assert_uffd_err(uffd_handle_move(h, dst, src, ps, 0, &done),
			   ENOTSUP, "MOVE");
	ck_assert_uint_eq(done, 0);
	/* Refused before the kernel: the source is intact. */
	ck_assert_uint_eq(src[ps - 1], (unsigned char)((ps - 1) * 7 + 1));

	uffd_handle_free(h);
	munmap(src, ps);
	munmap(dst, len);
	close(memfd);
}
END_TEST

static Suite *caps_suite(void)
{
	Suite *s = suite_create("caps");
	TCase *tc;

	/* Before any reservation: the probe of hugetlb has nothing. */
	tc = tcase_create("no-hugepages");
	tcase_add_test(tc, hugetlb_unknown_without_free_pages);
	suite_add_tcase(s, tc);

	tc = tcase_create("table");
	hugetlb_fixture_add(tc, 4);
	tcase_add_test(tc, table_matches_kernel);
	tcase_add_test(tc, table_matches_kernel_wp_async);
	tcase_add_test(tc, hugetlb_probed_with_free_pages);
	tcase_add_test(tc, move_into_memfd_fails);
	tcase_add_test(tc, move_on_anon_private_works);
	tcase_add_test(tc, continue_on_private_hugetlb_fails);
	tcase_add_test(tc, continue_on_shared_hugetlb_works);
	tcase_add_test(tc, copy_on_private_dev_zero_fails);
	tcase_add_test(tc, wp_async_lets_disk_file_wp_register);
	tcase_add_test(tc, probe_leaves_nothing_behind);
	suite_add_tcase(s, tc);

	tc = tcase_create("cache");
	tcase_add_test(tc, cached_pointer_is_stable);
	tcase_add_test(tc, cache_is_thread_safe);
	tcase_add_test(tc, irrelevant_features_share_the_answer);
	tcase_add_test(tc, event_unmap_handle_registers_anon);
	suite_add_tcase(s, tc);

	tc = tcase_create("api");
	tcase_add_test(tc, api_errors);
	tcase_add_test(tc, backend_names);
	suite_add_tcase(s, tc);

	tc = tcase_create("enforce");
	tcase_add_test(tc, minor_on_anon_private_explained);
	tcase_add_test(tc, missing_on_disk_file_explained);
	tcase_add_test(tc, move_on_memfd_refused);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(caps_suite());
}
