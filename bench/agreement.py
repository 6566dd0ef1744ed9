"""Verdict agreement: the fixture catalog, converted to a pack, graded on its miniature and on real trained weights.

    python bench/agreement.py [--assignment sphere-smollm2] [--model HuggingFaceTB/SmolLM2-135M-Instruct]
                              [--work DIR] [--workers 2] [--reuse]

Writes every catalog notebook (fixtures/notebooks), converts it to the pack (fixtures/notebooks/convert.py:
model id, layer class, layer count, the pack's plotting cell), grades the folder twice with `grade`
(--no-report): on the pack's miniature, then with --model (the real weights), and prints, per notebook,
the automated checks each run failed beside the checks the catalog labels as failing. A row is
"agree" when both runs fail exactly the labelled checks. `--reuse` only re-reads existing output folders.
The markdown table it prints goes into bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MANUAL = {"p2.diagram", "p5.explanation"}


def failed_checks(out: Path, name: str) -> list[str] | None:
    path = out / name / "results.json"
    if not path.is_file():
        return None
    checks = json.loads(path.read_text())["extra_data"]["checks"]
    return sorted(c["id"] for c in checks if c["status"] != "passed" and c["id"] not in MANUAL)


def grade(subs: Path, out: Path, args, model: str | None) -> float:
    cmd = [sys.executable, "-m", "grader.cli", str(subs), "--assignment", args.assignment, "--out", str(out),
           "--workers", str(args.workers), "--no-report"] + (["--model", model] if model else [])
    t0 = time.perf_counter()
    subprocess.run(cmd, check=False, cwd=REPO)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--assignment", default="sphere-smollm2")
    p.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    p.add_argument("--work", type=Path, default=Path("/tmp/agreement"))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--reuse", action="store_true")
    args = p.parse_args(argv)

    from fixtures.notebooks import CATALOG, write_all
    from fixtures.notebooks.convert import convert_folder

    names = sorted(CATALOG)
    subs, mini, real = args.work / "subs", args.work / "mini", args.work / "real"
    if not args.reuse:
        write_all(args.work / "catalog", names)
        convert_folder(args.assignment, args.work / "catalog", subs)
        print(f"miniature: {grade(subs, mini, args, None):.0f} s; real weights: {grade(subs, real, args, args.model):.0f} s")
    rows, agree = [], 0
    for name in names:
        exp = CATALOG[name].expect  # grading fails `fails` less what the carried-forward run credits (spec.py)
        want = sorted(set(exp["fails"]) - set(exp.get("carried", ())))
        got_mini, got_real = failed_checks(mini, name), failed_checks(real, name)
        ok = got_mini == want and got_real == want
        agree += ok
        show = lambda fails: "–" if fails is None else (", ".join(fails) or "none")  # noqa: E731
        rows.append(f"| {name} | {show(want)} | {show(got_mini)} | {show(got_real)} | {'agree' if ok else 'DIFFER'} |")
    print(f"| notebook | labelled failing | miniature failed | real weights failed | |\n| --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    print(f"\n{agree} of {len(names)} notebooks: both runs fail exactly the labelled checks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
