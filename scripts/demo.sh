#!/usr/bin/env bash
# Installs what is missing, builds libuffd, and runs the demonstration:
# uffd-probe (how userfaultfd can be opened here, the kernel's features, and
# what each kind of memory supports, verified), then faults resolved by the
# library.
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
echo "== uffd-probe: what userfaultfd can do on this machine"
build/release/tools/uffd-probe
echo
echo "== uffd-demo: faults served by libuffd"
exec build/release/examples/uffd-demo
