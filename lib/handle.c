// SPDX-License-Identifier: MIT
/* The handle: opening a userfaultfd (syscall or /dev/userfaultfd), its life
 * cycle and its getters. The handshake lives in features.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#define UFFD_DEV_PATH "/dev/userfaultfd"

static int open_by_syscall(int flags)
{
#ifdef SYS_userfaultfd
	long fd = syscall(SYS_userfaultfd, flags);

	return fd < 0 ? -errno : (int)fd;
#else
	(void)flags;
	return -ENOSYS;
#endif
}

static int open_by_dev(int flags)
{
	int dev, fd, err;

	dev = open(UFFD_DEV_PATH, O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -errno;
	fd = ioctl(dev, KUFFD_DEV_IOC_NEW, flags);
	err = errno;
	close(dev);
	return fd < 0 ? -err : fd;
}

/* Why the syscall was refused, in words. */
static void explain_syscall(int err, char *buf, size_t size)
{
	char sysctl[16] = "?";
	FILE *f;

	if (err == -ENOSYS) {
		snprintf(buf, size, "userfaultfd(2) does not exist (kernel "
			 "built without CONFIG_USERFAULTFD, or blocked by "
			 "seccomp)");
		return;
	}
	if (err != -EPERM) {
		snprintf(buf, size, "userfaultfd(2) failed: %s",
			 strerror(-err));
		return;
	}
	f = fopen("/proc/sys/vm/unprivileged_userfaultfd", "re");
	if (f) {
		if (!fgets(sysctl, sizeof(sysctl), f))
			strcpy(sysctl, "?");
		sysctl[strcspn(sysctl, "\n")] = '\0';
		fclose(f);
	}
	snprintf(buf, size,
		 "userfaultfd(2) refused (EPERM): vm.unprivileged_userfaultfd "
		 "is %s and the caller lacks CAP_SYS_PTRACE (ask for a "
		 "user-mode-only handle, or set the sysctl to 1)",
		 sysctl);
}

/* Why /dev/userfaultfd could not be used, in words. */
static void explain_dev(int err, char *buf, size_t size)
{
	struct stat st;

	if (err == -ENOENT) {
		snprintf(buf, size, UFFD_DEV_PATH " does not exist (Linux "
			 "before 6.1, or no devtmpfs)");
		return;
	}
	if ((err == -EACCES || err == -EPERM) && !stat(UFFD_DEV_PATH, &st)) {
		snprintf(buf, size,
			 UFFD_DEV_PATH " is not accessible (%s): mode %04o, "
			 "owner uid %u gid %u, caller uid %u (give the "
			 "caller read-write access to the device)",
			 strerror(-err), (unsigned)(st.st_mode & 07777),
			 (unsigned)st.st_uid, (unsigned)st.st_gid,
			 (unsigned)geteuid());
		return;
	}
	snprintf(buf, size, UFFD_DEV_PATH ": %s", strerror(-err));
}

int uffd_fd_open(const struct uffd_handle_config *cfg,
		 enum uffd_open_path *path_used)
{
	int flags = O_CLOEXEC | (cfg->nonblocking ? O_NONBLOCK : 0) |
		    (cfg->user_mode_only ? KUFFD_USER_MODE_ONLY : 0);
	int sys_err = 0, dev_err = 0, fd;
	char why_sys[320] = "", why_dev[320] = "";

	if (cfg->path != UFFD_OPEN_DEV) {
		fd = open_by_syscall(flags);
		if (fd >= 0) {
			*path_used = UFFD_OPEN_SYSCALL;
			return fd;
		}
		sys_err = fd;
		explain_syscall(sys_err, why_sys, sizeof(why_sys));
		/* Only a refusal is worth the fallback; EMFILE and
		 * friends would fail the same way there. */
		if (cfg->path == UFFD_OPEN_SYSCALL ||
		    (sys_err != -EPERM && sys_err != -ENOSYS))
			return uffd_errf(-sys_err, "%s", why_sys);
	}
	fd = open_by_dev(flags);
	if (fd >= 0) {
		*path_used = UFFD_OPEN_DEV;
		return fd;
	}
	dev_err = fd;
	explain_dev(dev_err, why_dev, sizeof(why_dev));
	if (cfg->path == UFFD_OPEN_DEV)
		return uffd_errf(-dev_err, "%s", why_dev);
	return uffd_errf(sys_err == -ENOSYS ? -dev_err : -sys_err,
			 "cannot open a userfaultfd: %s; %s", why_sys, why_dev);
}

static int handle_alloc(int fd, struct uffd_handle **out)
{
	struct uffd_handle *h = calloc(1, sizeof(*h));

	if (!h)
		return uffd_err(ENOMEM, "out of memory for a handle");
	if (pthread_rwlock_init(&h->reg_lock, NULL)) {
		free(h);
		return uffd_err(ENOMEM, "cannot create the handle's lock");
	}
	h->fd = fd;
	*out = h;
	return 0;
}

UFFD_EXPORT int uffd_handle_new(const struct uffd_handle_config *cfg,
				struct uffd_handle **handle)
{
	struct uffd_handle_config defaults;
	struct uffd_handle *h;
	enum uffd_open_path path;
	int fd, ret;

	if (!handle)
		return uffd_err(EINVAL, "uffd_handle_new: handle is NULL");
	if (!cfg) {
		uffd_config_init_defaults(&defaults);
		cfg = &defaults;
	}
	fd = uffd_fd_open(cfg, &path);
	if (fd < 0)
		return fd;
	ret = handle_alloc(fd, &h);
	if (ret) {
		close(fd);
		return ret;
	}
	h->path = path;
	h->user_mode_only = cfg->user_mode_only;
	ret = uffd_features_negotiate(h, cfg);
	if (ret) {
		uffd_handle_free(h);
		return ret;
	}
	*handle = h;
	return 0;
}

UFFD_EXPORT int uffd_handle_adopt(int fd, struct uffd_handle **handle)
{
	struct uffd_handle *h;
	uint64_t features;
	bool initialized;
	int ret;

	if (!handle)
		return uffd_err(EINVAL, "uffd_handle_adopt: handle is NULL");
	if (fd < 0 || fcntl(fd, F_GETFD) < 0)
		return uffd_errf(EBADF, "fd %d is not open", fd);
	ret = uffd_fdinfo_features(fd, &features, &initialized);
	if (ret)
		return ret;
	if (!initialized)
		return uffd_errf(EINVAL,
				 "fd %d is a userfaultfd whose UFFDIO_API "
				 "handshake was never done", fd);
	ret = handle_alloc(fd, &h);
	if (ret)
		return ret;
	h->path = UFFD_OPEN_ADOPTED;
	h->features = features;
	h->api_ioctls = UFFD_OP_API | UFFD_OP_REGISTER | UFFD_OP_UNREGISTER;
	*handle = h;
	return 0;
}

UFFD_EXPORT void uffd_handle_free(struct uffd_handle *handle)
{
	if (!handle)
		return;
	close(handle->fd);
	pthread_rwlock_destroy(&handle->reg_lock);
	free(handle->regs);
	free(handle);
}

UFFD_EXPORT int uffd_handle_get_fd(const struct uffd_handle *handle)
{
	return handle ? handle->fd : uffd_err(EINVAL, "handle is NULL");
}

UFFD_EXPORT enum uffd_open_path
uffd_handle_get_open_path(const struct uffd_handle *handle)
{
	return handle ? handle->path : UFFD_OPEN_AUTO;
}

UFFD_EXPORT bool uffd_handle_is_user_mode_only(const struct uffd_handle *handle)
{
	return handle && handle->user_mode_only;
}

UFFD_EXPORT uint64_t uffd_handle_get_features(const struct uffd_handle *handle)
{
	return handle ? handle->features : 0;
}

UFFD_EXPORT uint64_t
uffd_handle_get_supported_features(const struct uffd_handle *handle)
{
	return handle ? handle->supported : 0;
}

UFFD_EXPORT uint64_t uffd_handle_get_api_ioctls(const struct uffd_handle *handle)
{
	return handle ? handle->api_ioctls : 0;
}
