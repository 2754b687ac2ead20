#!/usr/bin/env bash
# Installs what is missing, builds libuffd twice (gcc, and clang under
# AddressSanitizer + UndefinedBehaviorSanitizer), runs the whole test suite
# on both, then checks that an installed libuffd can be used through
# pkg-config alone. Build trees: build/release and build/sanitize.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
libuffd_install_deps

setup() { # dir, extra meson args...
	local dir=$1
	shift
	if [ -d "$dir" ]; then
		meson setup --reconfigure "$dir" "$@" >/dev/null
	else
		meson setup "$dir" "$@" >/dev/null
	fi
}

export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1

echo "== build (gcc, -Werror)"
setup build/release -Dwerror=true
meson compile -C build/release >/dev/null
echo "== tests (gcc)"
meson test -C build/release --print-errorlogs

echo "== build (clang, ASan + UBSan, -Werror)"
CC=clang setup build/sanitize -Dwerror=true -Db_sanitize=address,undefined \
	-Db_lundef=false
meson compile -C build/sanitize >/dev/null
echo "== tests (clang, ASan + UBSan)"
meson test -C build/sanitize --print-errorlogs

echo "== install and link through pkg-config"
scripts/check-install.sh build/release

python3 scripts/summary.py build/release build/sanitize
