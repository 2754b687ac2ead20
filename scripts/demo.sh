#!/usr/bin/env bash
# Installs what is missing, builds libuffd, and runs the demonstration:
# uffd-probe (how userfaultfd can be opened here, the kernel's features, and
# what each kind of memory supports, verified), then faults resolved by the
# library, then a post-copy live migration over TCP on this machine.
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

# Whatever happens: give back the huge pages lent to the probe, stop the
# migration source if it still runs, remove the temporary directory.
nr=/proc/sys/vm/nr_hugepages
before=
src_pid=
tmp=
cleanup() {
	if [ -n "$before" ]; then
		echo "$before" > "$nr"
		before=
	fi
	if [ -n "$src_pid" ]; then
		kill "$src_pid" 2>/dev/null || true
		wait "$src_pid" 2>/dev/null || true
		src_pid=
	fi
	if [ -n "$tmp" ]; then
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== uffd-probe: what userfaultfd can do on this machine"
# As root, lend the probe 4 huge pages so the hugetlb rows are probed too,
# and give back exactly what was added.
if [ "$(id -u)" -eq 0 ] && [ -w "$nr" ]; then
	before=$(cat "$nr")
	echo $((before + 4)) > "$nr"
fi
build/release/tools/uffd-probe
cleanup
echo
echo "== uffd-demo: faults served by libuffd"
build/release/examples/demo/uffd-demo

echo
echo "== post-copy migration: postcopy-dst runs its workload at once while"
echo "   libuffd fills its memory from postcopy-src, on demand and by push"
pc=build/release/examples/postcopy
tmp=$(mktemp -d)
mkfifo "$tmp/src"
"$pc/postcopy-src" --port 0 --size 64 > "$tmp/src" &
src_pid=$!
exec 3< "$tmp/src"
# its first line says which port it got
read -r line <&3
port=${line##*:}
if ! [[ $port =~ ^[0-9]+$ ]]; then
	echo "postcopy-src said \"$line\", not where it listens" >&2
	exit 1
fi
echo "  src: $line"
"$pc/postcopy-dst" --port "$port" | sed 's/^/  dst: /'
sed 's/^/  src: /' <&3
exec 3<&-
wait "$src_pid"
src_pid=
