#!/bin/sh
# Smoke test of wp-snapshot: 256 pages, 2 writers. Checks the exit status,
# the snapshot's consistency line and the dirty-tracking result (exact, or
# skipped where the kernel lacks WP_ASYNC or PAGEMAP_SCAN).
prog=$1
out=$("$prog" --pages 256 --writers 2 2>&1)
status=$?
printf '%s\n' "$out"
if [ "$status" -ne 0 ]; then
	echo "smoke: wp-snapshot exited with status $status"
	exit 1
fi
for want in '^snapshot consistent: all 256 pages equal the memory at the instant of protection$' \
	    '^writers never blocked for good: 2 threads did all [0-9]* writes' \
	    '^dirty tracking \(exact: 3 rounds over 256 pages\|skipped: \)' \
	    '^wp-snapshot: ok$'; do
	if ! printf '%s\n' "$out" | grep -q -- "$want"; then
		echo "smoke: no line matches '$want'"
		exit 1
	fi
done
