#!/bin/sh
# Smoke test of minor-shmem: a few pages, then the exit status and the
# lines that say each part was verified.
prog=$1
out=$("$prog" --pages 6 2>&1)
status=$?
printf '%s\n' "$out"
if [ "$status" -ne 0 ]; then
	echo "smoke: minor-shmem exited with status $status"
	exit 1
fi
for want in '^  the reader saw the fresh data in all 6 pages: verified$' \
	    '^  loop: 3 MINOR faults .*, 3 MISSING faults .*, 6 pages resolved$' \
	    '^  pages 0-2 hold .prepared., pages 3-5 hold .image.: verified$' \
	    '^  one copy: ' \
	    '^minor-shmem: both parts verified: ok$'; do
	if ! printf '%s\n' "$out" | grep -q -- "$want"; then
		echo "smoke: no line matches '$want'"
		exit 1
	fi
done
n=$(printf '%s\n' "$out" | grep -c '^  one copy: ')
if [ "$n" -ne 2 ]; then
	echo "smoke: expected the one-copy check in both parts, saw $n"
	exit 1
fi
