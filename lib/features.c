// SPDX-License-Identifier: MIT
/*
 * The UFFDIO_API handshake. The kernel takes one successful UFFDIO_API per
 * fd, and its reply lists what is *available*, not what was enabled, so:
 * probe the supported set on a throw-away fd, ask the real fd for exactly
 * what the caller wants, then read the enabled set back from fdinfo.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "internal.h"

int uffd_fdinfo_features(int fd, uint64_t *features, bool *initialized)
{
	char path[64], line[256];
	uint64_t api = 0, feat = 0, ioctls = 0;
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	if (!f)
		return uffd_errf(ENOENT, "cannot read %s (is /proc mounted?)",
				 path);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "API:\t%" SCNx64 ":%" SCNx64 ":%" SCNx64, &api,
			   &feat, &ioctls) == 3) {
			found = true;
			break;
		}
	}
	fclose(f);
	if (!found || api != KUFFD_API)
		return uffd_errf(EINVAL, "fd %d is not a userfaultfd", fd);
	*initialized = feat & KUFFD_FEATURE_INITIALIZED;
	*features = feat & ~KUFFD_FEATURE_INITIALIZED;
	return 0;
}

/* One UFFDIO_API call; returns 0 or -errno. */
static int api_handshake(int fd, uint64_t features, uint64_t *available,
			 uint64_t *ioctls)
{
	struct kuffd_api api = { .api = KUFFD_API, .features = features };

	if (ioctl(fd, KUFFDIO_API, &api))
		return -errno;
	if (available)
		*available = api.features;
	if (ioctls)
		*ioctls = api.ioctls;
	return 0;
}

/* The supported set, from a throw-away fd opened as cfg says. */
static int probe_supported(const struct uffd_handle_config *cfg,
			   uint64_t *supported)
{
	enum uffd_open_path used;
	int fd, ret;

	fd = uffd_fd_open(cfg, &used);
	if (fd < 0)
		return fd;
	ret = api_handshake(fd, 0, supported, NULL);
	close(fd);
	if (ret)
		return uffd_errf(-ret, "UFFDIO_API handshake failed: %s",
				 strerror(-ret));
	return 0;
}

UFFD_EXPORT int uffd_features_probe(const struct uffd_handle_config *cfg,
				    uint64_t *supported)
{
	struct uffd_handle_config defaults;

	if (!supported)
		return uffd_err(EINVAL, "uffd_features_probe: NULL argument");
	if (!cfg) {
		uffd_config_init_defaults(&defaults);
		cfg = &defaults;
	}
	return probe_supported(cfg, supported);
}

/* What to ask the kernel for, given what it supports. */
static uint64_t features_wanted(const struct uffd_handle_config *cfg,
				uint64_t supported)
{
	uint64_t want = cfg->required | (cfg->requested & supported);

	if (cfg->default_features)
		want |= UFFD_FEAT_CAPABILITY & supported;
	return want;
}

static int refuse_missing(uint64_t missing)
{
	char names[512];

	uffd_features_format(missing, names, sizeof(names));
	return uffd_errf(ENOTSUP,
			 "the kernel does not support required feature(s): %s",
			 names);
}

int uffd_features_negotiate(struct uffd_handle *h,
			    const struct uffd_handle_config *cfg)
{
	struct uffd_handle_config probe_cfg = *cfg;
	uint64_t supported, want, enabled;
	char names[512];
	bool initialized;
	int ret;

	/* Probe the way the real fd was opened, so AUTO does not retry a
	 * path that already failed. */
	probe_cfg.path = h->path;
	ret = probe_supported(&probe_cfg, &supported);
	if (ret)
		return ret;
	if (cfg->required & ~supported)
		return refuse_missing(cfg->required & ~supported);
	want = features_wanted(cfg, supported);
	ret = api_handshake(h->fd, want, NULL, &h->api_ioctls);
	/* EVENT_FORK needs CAP_SYS_PTRACE; a failed UFFDIO_API may be
	 * retried on the same fd, so drop it if it was only requested. */
	if (ret == -EPERM && (want & UFFD_FEAT_EVENT_FORK) &&
	    !(cfg->required & UFFD_FEAT_EVENT_FORK)) {
		want &= ~UFFD_FEAT_EVENT_FORK;
		ret = api_handshake(h->fd, want, NULL, &h->api_ioctls);
	}
	if (ret) {
		uffd_features_format(want, names, sizeof(names));
		if (ret == -EPERM)
			return uffd_errf(EPERM,
					 "the kernel refused features %s: "
					 "EVENT_FORK needs CAP_SYS_PTRACE",
					 names);
		return uffd_errf(-ret, "UFFDIO_API with features %s failed: %s",
				 names, strerror(-ret));
	}
	h->supported = supported;
	/* Read back what is really on; fall back to the request only where
	 * /proc is not mounted. */
	if (uffd_fdinfo_features(h->fd, &enabled, &initialized) == 0)
		h->features = enabled;
	else
		h->features = want;
	return 0;
}
