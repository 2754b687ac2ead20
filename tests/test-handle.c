// SPDX-License-Identifier: MIT
/*
 * The handle and the feature handshake, end to end against the running
 * kernel: how a userfaultfd is opened (syscall, /dev/userfaultfd, refused
 * without privilege), which features end up enabled (checked against the
 * kernel's own fdinfo, not against what the library believes), adopting
 * fds, the configuration API's errors, fd hygiene and the per-thread error
 * message.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

/* The kernel's private "UFFDIO_API done" bit, shown in fdinfo. */
#define FDINFO_INITIALIZED (UINT64_C(1) << 31)

/* ---- independent views of the kernel, not going through libuffd ---- */

/*
 * Parses "API:\taa:<features>:<ioctls>" from /proc/self/fdinfo/<fd>.
 * Returns false when the fd has no such line (not a userfaultfd).
 */
static bool fdinfo_api(int fd, uint64_t *api, uint64_t *features,
		       uint64_t *ioctls)
{
	char path[64], line[256];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	ck_assert_msg(f != NULL, "open %s: %s", path, strerror(errno));
	while (!found && fgets(line, sizeof(line), f))
		found = sscanf(line, "API:\t%" SCNx64 ":%" SCNx64 ":%" SCNx64,
			       api, features, ioctls) == 3;
	fclose(f);
	return found;
}

/* The enabled features of a negotiated userfaultfd, as the kernel says. */
static uint64_t kernel_enabled(int fd)
{
	uint64_t api = 0, features = 0, ioctls = 0;

	ck_assert_msg(fdinfo_api(fd, &api, &features, &ioctls),
		      "fd %d: no API line in fdinfo", fd);
	ck_assert_uint_eq(api, 0xaa);
	ck_assert_msg(features & FDINFO_INITIALIZED,
		      "fd %d: the kernel says UFFDIO_API was never done", fd);
	return features & ~FDINFO_INITIALIZED;
}

static int raw_userfaultfd(int flags)
{
	long fd = syscall(SYS_userfaultfd, flags);

	ck_assert_msg(fd >= 0, "userfaultfd(2): %s", strerror(errno));
	return (int)fd;
}

/* The supported set and api ioctls from a bare UFFDIO_API of our own. */
static void raw_probe(uint64_t *features, uint64_t *ioctls)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	int fd = raw_userfaultfd(O_CLOEXEC);

	ck_assert_msg(ioctl(fd, UFFDIO_API, &api) == 0, "UFFDIO_API: %s",
		      strerror(errno));
	close(fd);
	*features = api.features;
	*ioctls = api.ioctls;
}

/* Whether the running kernel is at least major.minor. */
static bool kernel_at_least(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;

	ck_assert_int_eq(uname(&u), 0);
	ck_assert_int_eq(sscanf(u.release, "%d.%d", &ma, &mi), 2);
	return ma > major || (ma == major && mi >= minor);
}

static bool fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static struct uffd_handle_config *new_config(void)
{
	struct uffd_handle_config *cfg = NULL;

	ck_assert_int_eq(uffd_handle_config_new(&cfg), 0);
	ck_assert_ptr_nonnull(cfg);
	return cfg;
}

/* uffd_handle_new(cfg) that must succeed; frees cfg. */
static struct uffd_handle *new_handle(struct uffd_handle_config *cfg)
{
	struct uffd_handle *h = NULL;
	int ret = uffd_handle_new(cfg, &h);

	uffd_handle_config_free(cfg);
	ck_assert_msg(ret == 0, "uffd_handle_new: %d: %s", ret,
		      uffd_last_error());
	ck_assert_ptr_nonnull(h);
	return h;
}

/* The handle's view of its features must be the kernel's. */
static void assert_features_are_kernels(struct uffd_handle *h)
{
	uint64_t lib = uffd_handle_get_features(h);
	uint64_t kern = kernel_enabled(uffd_handle_get_fd(h));

	ck_assert_msg(lib == kern,
		      "libuffd says features %#" PRIx64 ", the kernel %#" PRIx64,
		      lib, kern);
}

/* ---- the default handle ---- */

START_TEST(test_default_handle)
{
	struct uffd_handle *h = open_handle();
	int fd = uffd_handle_get_fd(h);
	uint64_t probed = 0, sup, feat;
	int fdflags, flflags;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(uffd_handle_get_open_path(h), UFFD_OPEN_SYSCALL);
	ck_assert(!uffd_handle_is_user_mode_only(h));

	fdflags = fcntl(fd, F_GETFD);
	flflags = fcntl(fd, F_GETFL);
	ck_assert_int_ge(fdflags, 0);
	ck_assert_int_ge(flflags, 0);
	ck_assert_msg(fdflags & FD_CLOEXEC, "fd is not close-on-exec");
	ck_assert_msg(flflags & O_NONBLOCK, "fd is not O_NONBLOCK");

	ck_assert_int_eq(uffd_features_probe(NULL, &probed), 0);
	sup = uffd_handle_get_supported_features(h);
	ck_assert_uint_eq(sup, probed);
	if (kernel_at_least(6, 8)) /* MOVE, the newest known bit: 6.8 */
		ck_assert_msg((sup & UFFD_FEAT_KNOWN) == UFFD_FEAT_KNOWN,
			      "supported %#" PRIx64 " lacks known bits %#" PRIx64,
			      sup, UFFD_FEAT_KNOWN & ~sup);
	else
		printf("NOTE: kernel older than 6.8, supported = %#" PRIx64
		       "\n", sup);

	feat = uffd_handle_get_features(h);
	ck_assert_msg((feat & UFFD_FEAT_CAPABILITY) ==
			      (sup & UFFD_FEAT_CAPABILITY),
		      "enabled %#" PRIx64 " lacks supported capabilities %#"
		      PRIx64, feat, (sup & UFFD_FEAT_CAPABILITY) & ~feat);
	ck_assert_msg((feat & UFFD_FEAT_BEHAVIOUR) == 0,
		      "behaviour features %#" PRIx64 " enabled implicitly",
		      feat & UFFD_FEAT_BEHAVIOUR);
	ck_assert_msg((feat & ~sup) == 0,
		      "enabled %#" PRIx64 " has unsupported bits", feat);

	ck_assert_uint_eq(uffd_handle_get_api_ioctls(h),
			  UFFD_OP_API | UFFD_OP_REGISTER | UFFD_OP_UNREGISTER);
	uffd_handle_free(h);
}
END_TEST

START_TEST(test_supported_matches_raw_probe)
{
	struct uffd_handle *h = open_handle();
	uint64_t raw_features, raw_ioctls, probed = 0;

	raw_probe(&raw_features, &raw_ioctls);
	ck_assert_int_eq(uffd_features_probe(NULL, &probed), 0);
	ck_assert_uint_eq(probed, raw_features);
	ck_assert_uint_eq(uffd_handle_get_supported_features(h), raw_features);
	ck_assert_uint_eq(uffd_handle_get_api_ioctls(h), raw_ioctls);
	uffd_handle_free(h);
}
END_TEST

START_TEST(test_enabled_matches_fdinfo)
{
	struct uffd_handle *h = open_handle();
	uint64_t api, features, ioctls, kern;

	ck_assert(fdinfo_api(uffd_handle_get_fd(h), &api, &features, &ioctls));
	ck_assert_uint_eq(api, 0xaa);
	kern = features & ~FDINFO_INITIALIZED;
	ck_assert_uint_eq(uffd_handle_get_features(h), kern);
	/* and not merely "what was available" */
	ck_assert_msg((kern & UFFD_FEAT_BEHAVIOUR) == 0,
		      "kernel has behaviour features %#" PRIx64 " enabled",
		      kern & UFFD_FEAT_BEHAVIOUR);
	uffd_handle_free(h);
}
END_TEST

/* ---- what the configuration negotiates ---- */

START_TEST(test_no_default_features)
{
	struct uffd_handle_config *cfg = new_config();
	struct uffd_handle *h;

	ck_assert_int_eq(uffd_handle_config_set_default_features(cfg, false),
			 0);
	h = new_handle(cfg);
	ck_assert_uint_eq(uffd_handle_get_features(h) & UFFD_FEAT_CAPABILITY,
			  0);
	ck_assert_uint_eq(uffd_handle_get_features(h), 0);
	assert_features_are_kernels(h);
	uffd_handle_free(h);

	/* a capability asked for explicitly is still enabled */
	cfg = new_config();
	ck_assert_int_eq(uffd_handle_config_set_default_features(cfg, false),
			 0);
	ck_assert_int_eq(uffd_handle_config_request_features(
				 cfg, UFFD_FEAT_MISSING_SHMEM),
			 0);
	h = new_handle(cfg);
	ck_assert_uint_eq(uffd_handle_get_features(h),
			  UFFD_FEAT_MISSING_SHMEM &
				  uffd_handle_get_supported_features(h));
	assert_features_are_kernels(h);
	uffd_handle_free(h);
}
END_TEST

START_TEST(test_request_features)
{
	const uint64_t asked = UFFD_FEAT_EVENT_REMOVE | UFFD_FEAT_THREAD_ID;
	struct uffd_handle_config *cfg = new_config();
	struct uffd_handle *h;
	uint64_t sup;

	ck_assert_int_eq(uffd_handle_config_request_features(cfg, asked), 0);
	h = new_handle(cfg);
	sup = uffd_handle_get_supported_features(h);
	ck_assert_uint_eq(sup & asked, asked);
	ck_assert_uint_eq(uffd_handle_get_features(h),
			  (sup & UFFD_FEAT_CAPABILITY) | asked);
	assert_features_are_kernels(h);
	uffd_handle_free(h);

	/* without the defaults: exactly what was asked */
	cfg = new_config();
	ck_assert_int_eq(uffd_handle_config_set_default_features(cfg, false),
			 0);
	/* requests add up */
	ck_assert_int_eq(uffd_handle_config_request_features(
				 cfg, UFFD_FEAT_EVENT_REMOVE), 0);
	ck_assert_int_eq(uffd_handle_config_request_features(
				 cfg, UFFD_FEAT_THREAD_ID), 0);
	h = new_handle(cfg);
	ck_assert_uint_eq(uffd_handle_get_features(h), asked);
	assert_features_are_kernels(h);
	uffd_handle_free(h);
}
END_TEST

START_TEST(test_request_unsupported_is_skipped)
{
	const uint64_t bit40 = UINT64_C(1) << 40;
	struct uffd_handle_config *cfg = new_config();
	struct uffd_handle *h;

	ck_assert_int_eq(uffd_handle_config_request_features(
				 cfg, bit40 | UFFD_FEAT_THREAD_ID), 0);
	h = new_handle(cfg);
	ck_assert_uint_eq(uffd_handle_get_features(h) & bit40, 0);
	ck_assert(uffd_handle_get_features(h) & UFFD_FEAT_THREAD_ID);
	assert_features_are_kernels(h);
	uffd_handle_free(h);
}
END_TEST

START_TEST(test_require_supported)
{
	struct uffd_handle_config *cfg = new_config();
	struct uffd_handle *h;

	ck_assert_int_eq(uffd_handle_config_require_features(
				 cfg, UFFD_FEAT_EXACT_ADDRESS), 0);
	h = new_handle(cfg);
	ck_assert(uffd_handle_get_features(h) & UFFD_FEAT_EXACT_ADDRESS);
	assert_features_are_kernels(h);
	uffd_handle_free(h);
}
END_TEST

START_TEST(test_require_unsupported)
{
	struct uffd_handle_config *cfg = new_config();
	struct uffd_handle *h = NULL;
	int ret;

	ck_assert_int_eq(uffd_handle_config_require_features(
				 cfg, UFFD_FEAT_THREAD_ID | UINT64_C(1) << 40),
			 0);
	ret = uffd_handle_new(cfg, &h);
	ck_assert_uffd_err(ret, ENOTSUP, "bit40");
	ck_assert_ptr_null(h);
	/* only the missing feature is named */
	ck_assert_ptr_null(strstr(uffd_last_error(), "THREAD_ID"));

	/* each missing one is named */
	ck_assert_int_eq(uffd_handle_config_require_features(
				 cfg, UINT64_C(1) << 41), 0);
	ret = uffd_handle_new(cfg, &h);
	ck_assert_uffd_err(ret, ENOTSUP, "bit40,bit41");
	ck_assert_ptr_null(h);
	uffd_handle_config_free(cfg);
}
END_TEST

/* The kernel turns WP_ASYNC into WP_ASYNC|WP_UNPOPULATED: only a read-back
 * of the enabled set can know. */
START_TEST(test_enabled_set_is_read_back)
{
	struct uffd_handle_config *cfg = new_config();
	struct uffd_handle *h;
	uint64_t sup = 0;

	ck_assert_int_eq(uffd_features_probe(NULL, &sup), 0);
	if (!(sup & UFFD_FEAT_WP_ASYNC)) {
		uffd_handle_config_free(cfg);
		printf("SKIP: the kernel has no WP_ASYNC\n");
		return;
	}
	ck_assert_int_eq(uffd_handle_config_set_default_features(cfg, false),
			 0);
	ck_assert_int_eq(uffd_handle_config_require_features(
				 cfg, UFFD_FEAT_WP_ASYNC), 0);
	h = new_handle(cfg);
	ck_assert_uint_eq(uffd_handle_get_features(h),
			  UFFD_FEAT_WP_ASYNC | UFFD_FEAT_WP_UNPOPULATED);
	assert_features_are_kernels(h);
	uffd_handle_free(h);
}
END_TEST

START_TEST(test_blocking)
{
	struct uffd_handle_config *cfg = new_config();
	struct uffd_handle *h;
	int fd;

	ck_assert_int_eq(uffd_handle_config_set_nonblocking(cfg, false), 0);
	h = new_handle(cfg);
	fd = uffd_handle_get_fd(h);
	ck_assert_msg(!(fcntl(fd, F_GETFL) & O_NONBLOCK),
		      "fd is O_NONBLOCK although blocking was asked");
	ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	uffd_handle_free(h);

	/* and back */
	cfg = new_config();
	ck_assert_int_eq(uffd_handle_config_set_nonblocking(cfg, false), 0);
	ck_assert_int_eq(uffd_handle_config_set_nonblocking(cfg, true), 0);
	h = new_handle(cfg);
	ck_assert(fcntl(uffd_handle_get_fd(h), F_GETFL) & O_NONBLOCK);
	uffd_handle_free(h);
}
END_TEST

START_TEST(test_event_fork_requested_as_root)
{
	struct uffd_handle_config *cfg;
	struct uffd_handle *h;

	if (geteuid() != 0) {
		printf("SKIP: EVENT_FORK as root: not root\n");
		return;
	}
	cfg = new_config();
	ck_assert_int_eq(uffd_handle_config_request_features(
				 cfg, UFFD_FEAT_EVENT_FORK), 0);
	h = new_handle(cfg);
	ck_assert_msg(uffd_handle_get_features(h) & UFFD_FEAT_EVENT_FORK,
		      "EVENT_FORK not enabled as root: %#" PRIx64,
		      uffd_handle_get_features(h));
	assert_features_are_kernels(h);
	uffd_handle_free(h);
}
END_TEST

/* ---- open paths ---- */

START_TEST(test_open_dev)
{
	struct uffd_handle_config *cfg;
	struct uffd_handle *h;
	uint64_t sup = 0, sup_dev = 0;
	int fd;

	if (geteuid() != 0 || access("/dev/userfaultfd", R_OK | W_OK)) {
		printf("SKIP: /dev/userfaultfd is not usable here\n");
		return;
	}
	cfg = new_config();
	ck_assert_int_eq(uffd_handle_config_set_open_path(cfg, UFFD_OPEN_DEV),
			 0);
	ck_assert_int_eq(uffd_features_probe(cfg, &sup_dev), 0);
	ck_assert_int_eq(uffd_features_probe(NULL, &sup), 0);
	ck_assert_uint_eq(sup_dev, sup);
	h = new_handle(cfg);
	ck_assert_int_eq(uffd_handle_get_open_path(h), UFFD_OPEN_DEV);
	fd = uffd_handle_get_fd(h);
	ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
	ck_assert_uint_eq(uffd_handle_get_supported_features(h), sup);
	ck_assert_uint_eq(uffd_handle_get_features(h),
			  sup & UFFD_FEAT_CAPABILITY);
	assert_features_are_kernels(h);
	uffd_handle_free(h);
}
END_TEST

START_TEST(test_open_syscall)
{
	struct uffd_handle_config *cfg = new_config();
	struct uffd_handle *h;

	ck_assert_int_eq(
		uffd_handle_config_set_open_path(cfg, UFFD_OPEN_SYSCALL), 0);
	h = new_handle(cfg);
	ck_assert_int_eq(uffd_handle_get_open_path(h), UFFD_OPEN_SYSCALL);
	assert_features_are_kernels(h);
	uffd_handle_free(h);

	/* AUTO can be set back explicitly */
	cfg = new_config();
	ck_assert_int_eq(uffd_handle_config_set_open_path(cfg, UFFD_OPEN_DEV),
			 0);
	ck_assert_int_eq(uffd_handle_config_set_open_path(cfg, UFFD_OPEN_AUTO),
			 0);
	h = new_handle(cfg);
	ck_assert_int_eq(uffd_handle_get_open_path(h), UFFD_OPEN_SYSCALL);
	uffd_handle_free(h);
}
END_TEST

/* A read() from a pipe into memory, on its own thread: the copy to user
 * memory is a fault raised inside the kernel. */
struct kernel_toucher {
	pthread_t thread;
	int src;	/* pipe to read from */
	int done[2];	/* written once read() has returned */
	char *dst;
	ssize_t n;
	int err;
};

static void *kernel_touch_main(void *arg)
{
	struct kernel_toucher *k = arg;

	k->n = read(k->src, k->dst, 1);
	k->err = errno;
	if (write(k->done[1], "d", 1) != 1)
		abort();
	return NULL;
}

START_TEST(test_user_mode_only)
{
	struct uffd_handle_config *cfg = new_config();
	struct kernel_toucher k = { .n = 0 };
	struct uffdio_register reg;
	struct uffdio_zeropage zero;
	struct pollfd pfd[2];
	struct uffd_handle *h;
	size_t page = test_page();
	int pipefd[2], uffd, ready;
	bool delivered;

	ck_assert_int_eq(uffd_handle_config_set_user_mode_only(cfg, true), 0);
	h = new_handle(cfg);
	ck_assert(uffd_handle_is_user_mode_only(h));
	ck_assert_int_eq(uffd_handle_get_open_path(h), UFFD_OPEN_SYSCALL);
	assert_features_are_kernels(h);
	uffd = uffd_handle_get_fd(h);

	/*
	 * The kernel must have got UFFD_USER_MODE_ONLY: a fault raised by the
	 * kernel itself (read() copying into a registered, missing page) is
	 * not delivered but fails with EFAULT. On a full handle it would be
	 * delivered and the read() would wait for it to be resolved.
	 */
	k.dst = map_anon(page);
	reg = (struct uffdio_register){
		.range = { .start = (uintptr_t)k.dst, .len = page },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	ck_assert_msg(ioctl(uffd, UFFDIO_REGISTER, &reg) == 0,
		      "UFFDIO_REGISTER: %s", strerror(errno));
	ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(k.done, O_CLOEXEC), 0);
	ck_assert_int_eq(write(pipefd[1], "x", 1), 1);
	k.src = pipefd[0];
	ck_assert_int_eq(pthread_create(&k.thread, NULL, kernel_touch_main, &k),
			 0);

	pfd[0] = (struct pollfd){ .fd = uffd, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = k.done[0], .events = POLLIN };
	ready = poll(pfd, 2, TEST_WAIT_MS);
	delivered = ready > 0 && (pfd[0].revents & POLLIN) &&
		    !(pfd[1].revents & POLLIN);
	if (delivered) {
		/* let the reader go before failing */
		zero = (struct uffdio_zeropage){
			.range = { .start = (uintptr_t)k.dst, .len = page },
		};
		ioctl(uffd, UFFDIO_ZEROPAGE, &zero);
	}
	if (ready > 0)
		ck_assert_int_eq(pthread_join(k.thread, NULL), 0);
	ck_assert_msg(ready > 0, "read() neither failed nor faulted within "
		      "%d ms", TEST_WAIT_MS);
	ck_assert_msg(!delivered, "a fault raised in the kernel was delivered "
		      "to a user-mode-only handle");
	ck_assert_msg(k.n < 0 && k.err == EFAULT,
		      "read into a registered page gave %zd (%s), not EFAULT",
		      k.n, k.n < 0 ? strerror(k.err) : "no error");

	close(pipefd[0]);
	close(pipefd[1]);
	close(k.done[0]);
	close(k.done[1]);
	uffd_handle_free(h);
	munmap(k.dst, page);

	/* false is the default and can be set back */
	cfg = new_config();
	ck_assert_int_eq(uffd_handle_config_set_user_mode_only(cfg, true), 0);
	ck_assert_int_eq(uffd_handle_config_set_user_mode_only(cfg, false), 0);
	h = new_handle(cfg);
	ck_assert(!uffd_handle_is_user_mode_only(h));
	uffd_handle_free(h);
}
END_TEST

static int read_sysctl(const char *path)
{
	FILE *f = fopen(path, "re");
	int v = -1;

	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/* Child side of test_unprivileged: exit status 0 or the failed check. */
enum {
	CHILD_DROP_PRIVS = 10,
	CHILD_AUTO_ERRNO,
	CHILD_AUTO_MSG_SYSCTL,
	CHILD_AUTO_MSG_DEV,
	CHILD_AUTO_HANDLE_SET,
	CHILD_PROBE_ERRNO,
	CHILD_DEV_CONFIG,
	CHILD_DEV_ERRNO,
	CHILD_DEV_MSG_MODE,
	CHILD_UMO_CONFIG,
	CHILD_UMO_NEW,
	CHILD_UMO_FLAG,
	CHILD_UMO_FEATURES,
	CHILD_FORK_REQ_CONFIG,
	CHILD_FORK_REQ_NEW,
	CHILD_FORK_REQ_ENABLED,
	CHILD_FORK_REQ_OTHERS,
	CHILD_FORK_REQUIRED_ERRNO,
	CHILD_FORK_REQUIRED_MSG,
};

#define CHILD_CHECK(cond, code)                                             \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "child check %d failed: %s; "       \
				"last error: %s\n", (code), #cond,           \
				uffd_last_error());                         \
			_exit(code);                                        \
		}                                                           \
	} while (0)

static void unprivileged_child(void)
{
	struct uffd_handle_config *cfg = NULL;
	struct uffd_handle *h = NULL;
	uint64_t sup = 0;
	int ret;

	CHILD_CHECK(setgroups(0, NULL) == 0 && setgid(65534) == 0 &&
			    setuid(65534) == 0 && geteuid() == 65534,
		    CHILD_DROP_PRIVS);

	/* AUTO: the syscall says EPERM, then the device EACCES */
	ret = uffd_handle_new(NULL, &h);
	CHILD_CHECK(ret == -EPERM, CHILD_AUTO_ERRNO);
	CHILD_CHECK(strstr(uffd_last_error(), "vm.unprivileged_userfaultfd"),
		    CHILD_AUTO_MSG_SYSCTL);
	CHILD_CHECK(strstr(uffd_last_error(), "/dev/userfaultfd"),
		    CHILD_AUTO_MSG_DEV);
	CHILD_CHECK(h == NULL, CHILD_AUTO_HANDLE_SET);
	CHILD_CHECK(uffd_features_probe(NULL, &sup) == -EPERM,
		    CHILD_PROBE_ERRNO);

	/* only the device */
	CHILD_CHECK(uffd_handle_config_new(&cfg) == 0 &&
			    uffd_handle_config_set_open_path(
				    cfg, UFFD_OPEN_DEV) == 0,
		    CHILD_DEV_CONFIG);
	ret = uffd_handle_new(cfg, &h);
	CHILD_CHECK(ret == -EACCES, CHILD_DEV_ERRNO);
	CHILD_CHECK(strstr(uffd_last_error(), "0600"), CHILD_DEV_MSG_MODE);
	uffd_handle_config_free(cfg);

	/* user-mode-only needs no privilege */
	CHILD_CHECK(uffd_handle_config_new(&cfg) == 0 &&
			    uffd_handle_config_set_user_mode_only(cfg, true) ==
				    0,
		    CHILD_UMO_CONFIG);
	ret = uffd_handle_new(cfg, &h);
	CHILD_CHECK(ret == 0 && h != NULL, CHILD_UMO_NEW);
	CHILD_CHECK(uffd_handle_is_user_mode_only(h) &&
			    uffd_handle_get_open_path(h) == UFFD_OPEN_SYSCALL,
		    CHILD_UMO_FLAG);
	CHILD_CHECK((uffd_handle_get_features(h) & UFFD_FEAT_BEHAVIOUR) == 0 &&
			    (uffd_handle_get_features(h) &
			     UFFD_FEAT_CAPABILITY) ==
				    (uffd_handle_get_supported_features(h) &
				     UFFD_FEAT_CAPABILITY),
		    CHILD_UMO_FEATURES);
	uffd_handle_free(h);

	/* EVENT_FORK needs CAP_SYS_PTRACE: only requested, it is dropped
	 * and the rest still negotiated; required, the handle is refused */
	CHILD_CHECK(uffd_handle_config_request_features(
			    cfg, UFFD_FEAT_EVENT_FORK | UFFD_FEAT_THREAD_ID) ==
			    0,
		    CHILD_FORK_REQ_CONFIG);
	h = NULL;
	ret = uffd_handle_new(cfg, &h);
	CHILD_CHECK(ret == 0 && h != NULL, CHILD_FORK_REQ_NEW);
	CHILD_CHECK(!(uffd_handle_get_features(h) & UFFD_FEAT_EVENT_FORK),
		    CHILD_FORK_REQ_ENABLED);
	CHILD_CHECK(uffd_handle_get_features(h) & UFFD_FEAT_THREAD_ID,
		    CHILD_FORK_REQ_OTHERS);
	uffd_handle_free(h);
	CHILD_CHECK(uffd_handle_config_require_features(
			    cfg, UFFD_FEAT_EVENT_FORK) == 0,
		    CHILD_FORK_REQ_CONFIG);
	h = NULL;
	ret = uffd_handle_new(cfg, &h);
	CHILD_CHECK(ret == -EPERM && h == NULL, CHILD_FORK_REQUIRED_ERRNO);
	CHILD_CHECK(strstr(uffd_last_error(), "CAP_SYS_PTRACE"),
		    CHILD_FORK_REQUIRED_MSG);
	uffd_handle_config_free(cfg);
	_exit(0);
}

START_TEST(test_unprivileged)
{
	int status = 0, sysctl;
	pid_t pid;

	if (geteuid() != 0) {
		printf("SKIP: unprivileged open: not root, cannot drop "
		       "privileges to a known state\n");
		return;
	}
	sysctl = read_sysctl("/proc/sys/vm/unprivileged_userfaultfd");
	if (sysctl != 0) {
		printf("SKIP: unprivileged open: vm.unprivileged_userfaultfd "
		       "is %d, not 0\n", sysctl);
		return;
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		unprivileged_child(); /* never returns */
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status), "child died (status %#x)", status);
	ck_assert_msg(WEXITSTATUS(status) == 0,
		      "unprivileged child failed check %d (see stderr)",
		      WEXITSTATUS(status));
}
END_TEST

/* ---- adopt ---- */

START_TEST(test_adopt_bad_fd)
{
	struct uffd_handle *h = NULL;
	int fd;

	ck_assert_uffd_err(uffd_handle_adopt(-1, &h), EBADF, "not open");
	ck_assert_ptr_null(h);

	fd = dup(STDIN_FILENO);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_uffd_err(uffd_handle_adopt(fd, &h), EBADF, "not open");
	ck_assert_ptr_null(h);
}
END_TEST

START_TEST(test_adopt_pipe)
{
	struct uffd_handle *h = NULL;
	int p[2];

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_uffd_err(uffd_handle_adopt(p[0], &h), EINVAL,
			   "not a userfaultfd");
	ck_assert_ptr_null(h);
	/* a failed adopt leaves the fd to the caller */
	ck_assert(fd_is_open(p[0]));
	close(p[0]);
	close(p[1]);
}
END_TEST

START_TEST(test_adopt_without_handshake)
{
	struct uffd_handle *h = NULL;
	int fd = raw_userfaultfd(O_CLOEXEC);

	ck_assert_uffd_err(uffd_handle_adopt(fd, &h), EINVAL, "handshake");
	ck_assert_ptr_null(h);
	ck_assert(fd_is_open(fd));
	close(fd);
}
END_TEST

START_TEST(test_adopt_negotiated)
{
	struct uffd_handle_config *cfg = new_config();
	struct uffd_handle *orig, *h = NULL;
	int dupfd, ret;

	/* some behaviour features too, to see they are carried over */
	ck_assert_int_eq(uffd_handle_config_request_features(
				 cfg, UFFD_FEAT_THREAD_ID |
					      UFFD_FEAT_EVENT_REMOVE), 0);
	orig = new_handle(cfg);
	dupfd = dup(uffd_handle_get_fd(orig));
	ck_assert_int_ge(dupfd, 0);

	ret = uffd_handle_adopt(dupfd, &h);
	ck_assert_msg(ret == 0, "adopt: %d: %s", ret, uffd_last_error());
	ck_assert_ptr_nonnull(h);
	ck_assert_int_eq(uffd_handle_get_fd(h), dupfd);
	ck_assert_int_eq(uffd_handle_get_open_path(h), UFFD_OPEN_ADOPTED);
	ck_assert_uint_eq(uffd_handle_get_features(h),
			  uffd_handle_get_features(orig));
	ck_assert(uffd_handle_get_features(h) & UFFD_FEAT_THREAD_ID);
	ck_assert_uint_eq(uffd_handle_get_supported_features(h), 0);
	ck_assert_uint_eq(uffd_handle_get_api_ioctls(h),
			  UFFD_OP_API | UFFD_OP_REGISTER | UFFD_OP_UNREGISTER);
	ck_assert(!uffd_handle_is_user_mode_only(h));

	/* the handle owns the fd: free closes it, not the original's */
	uffd_handle_free(h);
	ck_assert(!fd_is_open(dupfd));
	ck_assert(fd_is_open(uffd_handle_get_fd(orig)));
	uffd_handle_free(orig);
}
END_TEST

/* ---- API errors ---- */

START_TEST(test_config_null)
{
	ck_assert_uffd_err(uffd_handle_config_new(NULL), EINVAL, "NULL");
	ck_assert_uffd_err(uffd_handle_config_set_open_path(NULL,
							    UFFD_OPEN_DEV),
			   EINVAL, "NULL");
	ck_assert_uffd_err(uffd_handle_config_set_user_mode_only(NULL, true),
			   EINVAL, "NULL");
	ck_assert_uffd_err(uffd_handle_config_set_nonblocking(NULL, false),
			   EINVAL, "NULL");
	ck_assert_uffd_err(uffd_handle_config_require_features(
				   NULL, UFFD_FEAT_MOVE),
			   EINVAL, "NULL");
	ck_assert_uffd_err(uffd_handle_config_request_features(
				   NULL, UFFD_FEAT_MOVE),
			   EINVAL, "NULL");
	ck_assert_uffd_err(uffd_handle_config_set_default_features(NULL,
								   false),
			   EINVAL, "NULL");
	uffd_handle_config_free(NULL); /* allowed */
}
END_TEST

START_TEST(test_config_bad_open_path)
{
	struct uffd_handle_config *cfg = new_config();
	struct uffd_handle *h;

	ck_assert_uffd_err(uffd_handle_config_set_open_path(cfg,
							    UFFD_OPEN_ADOPTED),
			   EINVAL, "open path");
	ck_assert_uffd_err(uffd_handle_config_set_open_path(
				   cfg, (enum uffd_open_path)99),
			   EINVAL, "99");
	/* the refused values left the configuration as it was (AUTO) */
	h = new_handle(cfg);
	ck_assert_int_eq(uffd_handle_get_open_path(h), UFFD_OPEN_SYSCALL);
	uffd_handle_free(h);
}
END_TEST

START_TEST(test_handle_null_args)
{
	struct uffd_handle_config *cfg = new_config();
	uint64_t sup = 0;
	int before = count_fds();

	ck_assert_uffd_err(uffd_handle_new(cfg, NULL), EINVAL, "NULL");
	ck_assert_uffd_err(uffd_handle_new(NULL, NULL), EINVAL, "NULL");
	ck_assert_uffd_err(uffd_handle_adopt(0, NULL), EINVAL, "NULL");
	ck_assert_uffd_err(uffd_features_probe(NULL, NULL), EINVAL, "NULL");
	ck_assert_uffd_err(uffd_features_probe(cfg, NULL), EINVAL, "NULL");
	ck_assert_int_eq(count_fds(), before);
	uffd_handle_config_free(cfg);

	ck_assert_int_eq(uffd_features_probe(NULL, &sup), 0);
	ck_assert_uint_ne(sup, 0);
}
END_TEST

START_TEST(test_getters_null)
{
	uffd_handle_free(NULL); /* allowed */
	ck_assert_uffd_err(uffd_handle_get_fd(NULL), EINVAL, "NULL");
	ck_assert_int_eq(uffd_handle_get_open_path(NULL), 0);
	ck_assert(!uffd_handle_is_user_mode_only(NULL));
	ck_assert_uint_eq(uffd_handle_get_features(NULL), 0);
	ck_assert_uint_eq(uffd_handle_get_supported_features(NULL), 0);
	ck_assert_uint_eq(uffd_handle_get_api_ioctls(NULL), 0);
}
END_TEST

/* ---- fd hygiene ---- */

START_TEST(test_no_fd_leak)
{
	struct uffd_handle_config *cfg;
	struct uffd_handle *h;
	int before = count_fds(), p[2];

	for (int i = 0; i < 20; i++) {
		h = open_handle();
		uffd_handle_free(h);
	}
	ck_assert_int_eq(count_fds(), before);

	/* required feature missing: fails after the fd was opened */
	cfg = new_config();
	ck_assert_int_eq(uffd_handle_config_require_features(
				 cfg, UINT64_C(1) << 40), 0);
	h = NULL;
	ck_assert_uffd_err(uffd_handle_new(cfg, &h), ENOTSUP, "bit40");
	ck_assert_int_eq(count_fds(), before);

	/* the same on the device path (which opens the device first) */
	if (geteuid() == 0 && !access("/dev/userfaultfd", R_OK | W_OK)) {
		ck_assert_int_eq(uffd_handle_config_set_open_path(
					 cfg, UFFD_OPEN_DEV), 0);
		ck_assert_uffd_err(uffd_handle_new(cfg, &h), ENOTSUP, "bit40");
		ck_assert_int_eq(count_fds(), before);
		uffd_handle_config_free(cfg);
		for (int i = 0; i < 5; i++) {
			cfg = new_config();
			ck_assert_int_eq(uffd_handle_config_set_open_path(
						 cfg, UFFD_OPEN_DEV), 0);
			h = new_handle(cfg);
			uffd_handle_free(h);
		}
	} else {
		uffd_handle_config_free(cfg);
	}
	ck_assert_int_eq(count_fds(), before);

	/* failed adopts take nothing */
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(uffd_handle_adopt(p[0], &h), -EINVAL);
	close(p[0]);
	close(p[1]);
	ck_assert_int_eq(count_fds(), before);
}
END_TEST

/* ---- the per-thread error message ---- */

struct err_thread {
	char initial[128];
	char after[128];
	int ret;
};

static void *err_thread_main(void *arg)
{
	struct err_thread *t = arg;

	snprintf(t->initial, sizeof(t->initial), "%s", uffd_last_error());
	t->ret = uffd_handle_adopt(-1, &(struct uffd_handle *){ NULL });
	snprintf(t->after, sizeof(t->after), "%s", uffd_last_error());
	return NULL;
}

START_TEST(test_last_error_per_thread)
{
	struct err_thread t = { .ret = 0 };
	pthread_t thread;
	char mine[256];

	ck_assert_uffd_err(uffd_handle_config_set_open_path(
				   NULL, UFFD_OPEN_DEV),
			   EINVAL, "NULL");
	snprintf(mine, sizeof(mine), "%s", uffd_last_error());

	ck_assert_int_eq(pthread_create(&thread, NULL, err_thread_main, &t), 0);
	ck_assert_int_eq(pthread_join(thread, NULL), 0);

	/* the new thread saw neither our error nor kept its own from us */
	ck_assert_str_eq(t.initial, "no error");
	ck_assert_int_eq(t.ret, -EBADF);
	ck_assert_msg(strstr(t.after, "fd -1") != NULL, "thread saw \"%s\"",
		      t.after);
	ck_assert_str_eq(uffd_last_error(), mine);
}
END_TEST

START_TEST(test_last_error_kept_by_success)
{
	struct uffd_handle_config *cfg;
	char before[256];

	ck_assert_uffd_err(uffd_handle_adopt(-1, &(struct uffd_handle *){ NULL }),
			   EBADF, "fd -1");
	snprintf(before, sizeof(before), "%s", uffd_last_error());
	cfg = new_config();
	ck_assert_int_eq(uffd_handle_config_set_nonblocking(cfg, true), 0);
	uffd_handle_config_free(cfg);
	ck_assert_str_eq(uffd_last_error(), before);
}
END_TEST

static Suite *handle_suite(void)
{
	Suite *s = suite_create("handle");
	TCase *tc;

	tc = tcase_create("default");
	tcase_add_test(tc, test_default_handle);
	tcase_add_test(tc, test_supported_matches_raw_probe);
	tcase_add_test(tc, test_enabled_matches_fdinfo);
	suite_add_tcase(s, tc);

	tc = tcase_create("features");
	tcase_add_test(tc, test_no_default_features);
	tcase_add_test(tc, test_request_features);
	tcase_add_test(tc, test_request_unsupported_is_skipped);
	tcase_add_test(tc, test_require_supported);
	tcase_add_test(tc, test_require_unsupported);
	tcase_add_test(tc, test_enabled_set_is_read_back);
	tcase_add_test(tc, test_blocking);
	tcase_add_test(tc, test_event_fork_requested_as_root);
	suite_add_tcase(s, tc);

	tc = tcase_create("open-paths");
	tcase_add_test(tc, test_open_dev);
	tcase_add_test(tc, test_open_syscall);
	tcase_add_test(tc, test_user_mode_only);
	tcase_add_test(tc, test_unprivileged);
	suite_add_tcase(s, tc);

	tc = tcase_create("adopt");
	tcase_add_test(tc, test_adopt_bad_fd);
	tcase_add_test(tc, test_adopt_pipe);
	tcase_add_test(tc, test_adopt_without_handshake);
	tcase_add_test(tc, test_adopt_negotiated);
	suite_add_tcase(s, tc);

	tc = tcase_create("api-errors");
	tcase_add_test(tc, test_config_null);
	tcase_add_test(tc, test_config_bad_open_path);
	tcase_add_test(tc, test_handle_null_args);
	tcase_add_test(tc, test_getters_null);
	tcase_add_test(tc, test_last_error_per_thread);
	tcase_add_test(tc, test_last_error_kept_by_success);
	suite_add_tcase(s, tc);

	tc = tcase_create("fds");
	tcase_add_test(tc, test_no_fd_leak);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	return run_suite(handle_suite());
}
