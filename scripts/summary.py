#!/usr/bin/env python3
"""Prints one closing line for all the meson test runs named on the command
line: 'N passed, N failed, N skipped', counting each Check test case of a
suite (from its "Checks: N, Failures: F, Errors: E" line), and any other
test program (examples) as one."""
import json
import re
import sys

CHECK_LINE = re.compile(r"Checks: (\d+), Failures: (\d+), Errors: (\d+)")
counts = {"passed": 0, "failed": 0, "skipped": 0}
for build in sys.argv[1:]:
    with open(f"{build}/meson-logs/testlog.json") as log:
        for line in log:
            entry = json.loads(line)
            result = entry["result"]
            found = CHECK_LINE.search(entry.get("stdout") or "")
            if found:
                checks, failures, errors = map(int, found.groups())
                skips = (entry.get("stdout") or "").count("SKIP:")
                counts["failed"] += failures + errors
                counts["skipped"] += skips
                counts["passed"] += checks - failures - errors - skips
                if result not in ("OK", "EXPECTEDFAIL") and not failures + errors:
                    counts["failed"] += 1  # crashed or timed out after the line
            elif result in ("OK", "EXPECTEDFAIL"):
                counts["passed"] += 1
            elif result == "SKIP":
                counts["skipped"] += 1
            else:
                counts["failed"] += 1
print(f"{counts['passed']} passed, {counts['failed']} failed, "
      f"{counts['skipped']} skipped")
sys.exit(1 if counts["failed"] else 0)
