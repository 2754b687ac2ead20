#!/bin/sh
# Smoke test of nbd-restore: a 16 MiB export of nbdkit's pattern plugin on
# a private Unix socket (nbdkit -U - ... --run), restored with each driver
# and verified word by word. A driver that was not built is skipped.
nbdkit=$1
prog=$2
for driver in poll uring; do
	out=$("$nbdkit" -U - pattern size=16M \
		--run "'$prog' -t 2 -d $driver --pattern \"\$uri\"" 2>&1)
	status=$?
	printf '%s\n' "$out"
	if [ "$driver" = uring ] && [ "$status" -ne 0 ] &&
	   printf '%s\n' "$out" | grep -q 'built without'; then
		echo "smoke: io_uring driver not built, skipped"
		continue
	fi
	if [ "$status" -ne 0 ]; then
		echo "smoke: nbd-restore -d $driver exited with status $status"
		exit 1
	fi
	want='pattern: all 16777216 bytes verified'
	if ! printf '%s\n' "$out" | grep -qxF -- "$want"; then
		echo "smoke: -d $driver: no line '$want'"
		exit 1
	fi
done
