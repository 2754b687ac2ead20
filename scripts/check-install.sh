#!/usr/bin/env bash
# Installs a build into a temporary DESTDIR and builds a separate program
# against it with nothing but `pkg-config --cflags --libs libuffd`.
set -euo pipefail
build=${1:-build/release}
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --destdir "$dest" >/dev/null
pc=$(find "$dest" -name libuffd.pc | head -n1)
[ -n "$pc" ] || { echo "libuffd.pc was not installed" >&2; exit 1; }
export PKG_CONFIG_SYSROOT_DIR=$dest PKG_CONFIG_PATH=$(dirname "$pc")
cat >"$dest/consumer.c" <<'C'
#include <libuffd.h>
#include <stdio.h>
int main(void)
{
	struct uffd_handle *h;
	int ret = uffd_handle_new(NULL, &h);

	if (ret) {
		printf("uffd_handle_new: %s\n", uffd_last_error());
		return 1;
	}
	printf("libuffd %s: fd %d, features %#llx\n", uffd_version(),
	       uffd_handle_get_fd(h),
	       (unsigned long long)uffd_handle_get_features(h));
	uffd_handle_free(h);
	return 0;
}
C
# shellcheck disable=SC2046
cc -o "$dest/consumer" "$dest/consumer.c" $(pkg-config --cflags --libs libuffd)
# Some pkg-config versions apply the sysroot to --variable, some do not.
in_dest() { case $1 in "$dest"/*) echo "$1" ;; *) echo "$dest$1" ;; esac; }
libdir=$(in_dest "$(pkg-config --variable=libdir libuffd)")
LD_LIBRARY_PATH=$libdir "$dest/consumer"
# The installed library exports only the public API.
unexpected=$(nm -D --defined-only "$libdir/libuffd.so.0" |
	awk '$3 !~ /^uffd_/ && $3 !~ /^LIBUFFD_/ {print $3}')
[ -z "$unexpected" ] || { echo "unexpected exports: $unexpected" >&2; exit 1; }
test -f "$libdir/libuffd.a"
test -f "$(in_dest "$(pkg-config --variable=includedir libuffd)")/libuffd.h"
echo "install check: ok (header, libuffd.so.0, libuffd.a, libuffd.pc)"
