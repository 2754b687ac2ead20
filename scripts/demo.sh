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
# As root, lend the probe 4 huge pages so the hugetlb rows are probed too,
# and give back exactly what was added, whatever happens.
nr=/proc/sys/vm/nr_hugepages
if [ "$(id -u)" -eq 0 ] && [ -w "$nr" ]; then
	before=$(cat "$nr")
	trap 'echo "$before" > "$nr"' EXIT
	echo $((before + 4)) > "$nr"
fi
build/release/tools/uffd-probe
if [ -n "${before:-}" ]; then
	echo "$before" > "$nr"
	trap - EXIT
fi
echo
echo "== uffd-demo: faults served by libuffd"
build/release/examples/demo/uffd-demo
