#!/usr/bin/env python3
"""Smoke test of uffd-bench: runs --quick twice (table, then JSON) and
checks that both are well formed. It checks no figure: speed belongs in
the benchmark's report, never in a pass/fail test."""
import json
import subprocess
import sys

bench = sys.argv[1]


def run(*args):
    p = subprocess.run([bench, "--quick", *args], capture_output=True,
                       text=True, timeout=240)
    if p.returncode != 0:
        sys.exit(f"uffd-bench {' '.join(args)} exited {p.returncode}:\n"
                 f"{p.stderr}")
    return p.stdout


def check_json(text):
    doc = json.loads(text)
    for key in ("tool", "machine", "results", "targets", "notes"):
        if key not in doc:
            sys.exit(f"JSON lacks {key!r}")
    groups = {r["scenario"].split()[0] for r in doc["results"]}
    for g in "12345":
        if g not in groups:
            sys.exit(f"JSON has no result of scenario {g}")
    for r in doc["results"]:
        if "skipped" in r:
            continue
        if not r["samples"] or r["median"] is None:
            sys.exit(f"row without samples: {r}")
        if not r["min"] <= r["median"] <= r["max"]:
            sys.exit(f"median outside min-max: {r}")
    for t in doc["targets"]:
        if t["met"] not in (True, False, None):
            sys.exit(f"target verdict: {t}")
    return doc


def check_table(text):
    lines = text.splitlines()
    if not lines or not lines[0].startswith("uffd-bench: libuffd"):
        sys.exit("table: no title line")
    if "Targets" not in lines:
        sys.exit("table: no Targets section")
    for prefix in ("1 unpinned", "2 throughput", "3 lazy restore",
                   "4 memory", "5 in-thread", "6 pinned"):
        if not any(l.startswith(prefix) for l in lines):
            sys.exit(f"table: no {prefix!r} section")


check_table(run())
doc = check_json(run("--json"))
print(f"uffd-bench --quick: {len(doc['results'])} rows, "
      f"{len(doc['targets'])} targets, well formed")
