"""Do two grading folders hold the same results.json, timings aside?

    python bench/same_results.py BEFORE_OUT AFTER_OUT

Reads BEFORE_OUT/<id>/results.json and AFTER_OUT/<id>/results.json for every submission id in either,
drops the timing fields (`execution_time`: execution + judging seconds; `extra_data.execution_seconds`:
the kernel's run), and prints a unified diff
of the pretty-printed JSON of each submission that differs, and the ids found on one side only.
Prints nothing and exits 0 when every results.json is the same; exits 1 otherwise. Used for issue 16's
"same results before and after" and for a rerun's reproducibility (the kernel is seeded:
grader/execute/probe.py seed_everything).
"""

from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path

TIMING = (("execution_time",), ("extra_data", "execution_seconds"))  # the fields two runs may differ in


def results(out: Path) -> dict[str, dict]:
    found = {}
    for path in sorted(out.glob("*/results.json")):
        data = json.loads(path.read_text())
        for *parents, key in TIMING:
            holder = data
            for name in parents:
                holder = holder.get(name) if isinstance(holder, dict) else None
            if isinstance(holder, dict):
                holder.pop(key, None)
        found[path.parent.name] = data
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    before, after = (results(Path(a)) for a in argv)
    if not before or not after:
        print(f"no */results.json under {argv[0] if not before else argv[1]}", file=sys.stderr)
        return 2
    differ = 0
    for sid in sorted(before.keys() | after.keys()):
        if sid not in after or sid not in before:
            print(f"{sid}: only in {argv[0] if sid in before else argv[1]}")
            differ += 1
        elif before[sid] != after[sid]:
            a, b = (json.dumps(d[sid], indent=1, sort_keys=True).splitlines() for d in (before, after))
            sys.stdout.writelines(line + "\n" for line in difflib.unified_diff(a, b, f"{argv[0]}/{sid}", f"{argv[1]}/{sid}", lineterm=""))
            differ += 1
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
