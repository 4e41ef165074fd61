#!/usr/bin/env python3
"""Print the test run's closing line from meson's test logs.

Usage: summarize.py LABEL=BUILD_DIR/meson-logs/testlog.json [...]

Each doctest executable counts as its individual test cases (read from doctest's own summary
line in the test's output); every other test counts as one. The last line printed is
"N passed, N failed, N skipped", the line CI reads; a missing log counts as one failure. Exit
status: 1 if anything failed or a log is missing, 0 otherwise.
"""
import json
import re
import sys

DOCTEST = re.compile(
    r"\[doctest\] test cases:\s*(\d+) \|\s*(\d+) passed \|\s*(\d+) failed \|\s*(\d+) skipped")
PASS = {"OK", "EXPECTEDFAIL"}
SKIP = {"SKIP"}


def count(entry):
    """(passed, failed, skipped) for one meson test entry."""
    result = entry.get("result", "ERROR")
    match = DOCTEST.search(entry.get("stdout", "") or "")
    if match:
        _, passed, failed, skipped = (int(x) for x in match.groups())
        if result not in PASS and failed == 0:
            failed = 1  # crashed or timed out after doctest printed its summary
        return passed, failed, skipped
    if result in PASS:
        return 1, 0, 0
    if result in SKIP:
        return 0, 0, 1
    return 0, 1, 0


def main(argv):
    totals = [0, 0, 0]
    broken = False
    for arg in argv:
        label, _, path = arg.partition("=")
        try:
            with open(path, encoding="utf-8") as f:
                entries = [json.loads(line) for line in f if line.strip()]
        except OSError as e:
            # The suite did not run at all (a build or setup error): that is a failure too,
            # and it must show in the closing line CI reads.
            print(f"  {label:6} {'(no test log: ' + str(e) + ')':32} FAIL")
            totals[1] += 1
            broken = True
            continue
        for entry in entries:
            p, f_, s = count(entry)
            totals[0] += p
            totals[1] += f_
            totals[2] += s
            state = "FAIL" if f_ else ("SKIP" if s and not p else "ok")
            print(f"  {label:6} {entry.get('name', '?'):32} {state:4}  "
                  f"{p} passed, {f_} failed, {s} skipped")
    print(f"{totals[0]} passed, {totals[1]} failed, {totals[2]} skipped")
    return 1 if totals[1] or broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
