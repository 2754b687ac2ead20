#!/usr/bin/env bash
# Installs what is missing, builds libuffd, and runs the demonstration: the
# kernel's userfaultfd features, then faults resolved by the library.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
libuffd_install_deps
if [ -d build/release ]; then
	meson setup --reconfigure build/release >/dev/null
else
	meson setup build/release >/dev/null
fi
meson compile -C build/release >/dev/null
exec build/release/examples/uffd-demo
