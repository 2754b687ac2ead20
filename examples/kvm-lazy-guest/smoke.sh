#!/bin/sh
# Smoke test of kvm-lazy-guest: both serving modes on 16 MiB of guest RAM.
# Passes when the program succeeds and both runs report a checksum match;
# exit 77 (no usable KVM or userfaultfd here) is passed on as "skipped".
prog=$1
out=$("$prog" --mode both --ram-mib 16 --timeout 120)
rc=$?
printf '%s\n' "$out"
[ "$rc" -eq 77 ] && exit 77
if [ "$rc" -ne 0 ]; then
	echo "kvm-lazy-guest exited with status $rc" >&2
	exit 1
fi
matches=$(printf '%s\n' "$out" | grep -c 'checksum match$')
if [ "$matches" -ne 2 ]; then
	echo "expected 2 checksum matches, found $matches" >&2
	exit 1
fi
