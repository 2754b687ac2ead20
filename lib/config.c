// SPDX-License-Identifier: MIT
/* The handle configuration: how to open a userfaultfd, what to negotiate. */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

void uffd_config_init_defaults(struct uffd_handle_config *cfg)
{
	*cfg = (struct uffd_handle_config){
		.path = UFFD_OPEN_AUTO,
		.nonblocking = true,
		.default_features = true,
	};
}

UFFD_EXPORT int uffd_handle_config_new(struct uffd_handle_config **cfg)
{
	struct uffd_handle_config *c;

	if (!cfg)
		return uffd_err(EINVAL, "uffd_handle_config_new: cfg is NULL");
	c = malloc(sizeof(*c));
	if (!c)
		return uffd_err(ENOMEM, "out of memory for a configuration");
	uffd_config_init_defaults(c);
	*cfg = c;
	return 0;
}

UFFD_EXPORT void uffd_handle_config_free(struct uffd_handle_config *cfg)
{
	free(cfg);
}

UFFD_EXPORT int uffd_handle_config_set_open_path(struct uffd_handle_config *cfg,
						 enum uffd_open_path path)
{
	UFFD_CHECK_OBJ(cfg);
	if (path != UFFD_OPEN_AUTO && path != UFFD_OPEN_SYSCALL &&
	    path != UFFD_OPEN_DEV)
		return uffd_errf(EINVAL,
				 "open path %d is not AUTO, SYSCALL or DEV",
				 (int)path);
	cfg->path = path;
	return 0;
}

UFFD_EXPORT int
uffd_handle_config_set_user_mode_only(struct uffd_handle_config *cfg,
				      bool user_mode_only)
{
	UFFD_CHECK_OBJ(cfg);
	cfg->user_mode_only = user_mode_only;
	return 0;
}

UFFD_EXPORT int uffd_handle_config_set_nonblocking(struct uffd_handle_config *cfg,
						   bool nonblocking)
{
	UFFD_CHECK_OBJ(cfg);
	cfg->nonblocking = nonblocking;
	return 0;
}

UFFD_EXPORT int
uffd_handle_config_require_features(struct uffd_handle_config *cfg,
				    uint64_t features)
{
	UFFD_CHECK_OBJ(cfg);
	cfg->required |= features;
	return 0;
}

UFFD_EXPORT int
uffd_handle_config_request_features(struct uffd_handle_config *cfg,
				    uint64_t features)
{
	UFFD_CHECK_OBJ(cfg);
	cfg->requested |= features;
	return 0;
}

UFFD_EXPORT int
uffd_handle_config_set_default_features(struct uffd_handle_config *cfg,
					bool enable)
{
	UFFD_CHECK_OBJ(cfg);
	cfg->default_features = enable;
	return 0;
}
