#!/usr/bin/env bash
# Sourced by the other scripts: installs the Debian packages libuffd needs
# to build and test, only those that are missing.
LIBUFFD_PACKAGES=(meson ninja-build pkg-config gcc clang liburing-dev check
		  libnbd-dev nbdkit python3 scdoc)

libuffd_install_deps() {
	local missing=() p
	for p in "${LIBUFFD_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing packages: ${missing[*]} (run as root to install)" >&2
		return 1
	fi
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
