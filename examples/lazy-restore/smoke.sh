#!/bin/sh
# Smoke test of lazy-restore: a 4 MiB generated image restored both ways,
# then the exit status and one verification line per method.
prog=$1
out=$("$prog" --mode both --size 4 2>&1)
status=$?
printf '%s\n' "$out"
if [ "$status" -ne 0 ]; then
	echo "smoke: lazy-restore exited with status $status"
	exit 1
fi
for method in 'eager read()' 'anon, COPY' 'memfd, MINOR+CONTINUE'; do
	want="$method: all 4194304 bytes verified (against the generator)"
	if ! printf '%s\n' "$out" | grep -qxF -- "$want"; then
		echo "smoke: no line '$want'"
		exit 1
	fi
done
