"""The `grade` command.

    grade PATH... [--out DIR] [--model tiny|<hub id>|<path>] [--workers N] [--cell-timeout S]
                  [--timeout S] [--resume] [--shard K/N] [--rubric FILE]
    grade --self-check NOTEBOOK.ipynb        a student's check on a laptop CPU (the miniature)
    grade --summarize DIR                    rebuild grades.csv and index.html (after merging shards)
    grade --gradescope                       inside Gradescope's autograder container
    grade --make-gradescope-bundle FILE.zip  the autograder zip for Gradescope
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from grader.execute.executor import ExecuteConfig

EXIT_OK, EXIT_USAGE, EXIT_GRADER_ERRORS = 0, 2, 3


def _shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard expects K/N such as 2/8, got {text!r}") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"--shard K/N needs 1 <= K <= N, got {text!r}")
    return k, n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="grade", description="Autograde the Qwen3-4B residual-stream notebook assignment.",
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("paths", nargs="*", type=Path, help="notebooks, folders, zips (Canvas downloads welcome)")
    p.add_argument("--out", type=Path, default=Path("grading"), help="output folder (default: grading/)")
    p.add_argument("--model", default="tiny", help="'tiny' (the bundled miniature, default), a hub id such as "
                   "Qwen/Qwen3-4B (read from your Hugging Face cache), or a local folder")
    p.add_argument("--device", default="cpu", help="where the grader computes goldens: cpu (default) or cuda")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="submissions graded at once (default: CPUs)")
    p.add_argument("--cell-timeout", type=float, default=300.0, help="seconds per cell (default 300)")
    p.add_argument("--timeout", type=float, default=1200.0, help="seconds per notebook (default 1200)")
    p.add_argument("--memory", type=float, default=None, metavar="GB",
                   help="address-space limit of each student kernel (default 8 for the miniature, none otherwise; 0: none)")
    p.add_argument("--no-isolation", action="store_true",
                   help="do not run kernels as an unprivileged user in namespaces (resource limits still apply)")
    p.add_argument("--resume", action="store_true", help="skip submissions already graded in --out")
    p.add_argument("--shard", type=_shard, help="grade the K-th of N slices (K/N), e.g. for a Slurm array")
    p.add_argument("--rubric", type=Path, help="a rubric.toml overriding points or disabling checks")
    p.add_argument("--canvas-assignment", default="Qwen3 residual stream (autograded)",
                   help="the assignment column of grades.csv, as Canvas names it: 'Name (id)'")
    p.add_argument("--no-report", action="store_true", help="skip the per-submission HTML reports")
    p.add_argument("--self-check", type=Path, metavar="NOTEBOOK", help="check one notebook and print the verdicts")
    p.add_argument("--summarize", type=Path, metavar="DIR", help="rebuild grades.csv, grades_detail.csv, index.html")
    p.add_argument("--gradescope", action="store_true", help="run inside Gradescope's /autograder layout")
    p.add_argument("--make-gradescope-bundle", type=Path, metavar="FILE.zip", help="write Gradescope's autograder zip")
    return p


def hf_home_for(model: str) -> Path | None:
    if model == "tiny":
        from miniature.hf_cache import ensure_hf_home

        return ensure_hf_home()
    env = os.environ.get("HF_HOME")
    return Path(env) if env else Path.home() / ".cache" / "huggingface"


def execute_config(args, workers: int, hide: list[Path] = (), log=print) -> ExecuteConfig:
    """Execution settings, with the sandbox mode decided once for the whole run (and said once)."""
    from miniature.hf_cache import default_cache_root
    from grader.execute.sandbox import GB, Sandbox, SandboxConfig

    memory = args.memory if args.memory is not None else (8 if args.model == "tiny" else 0)
    sandbox_cfg = SandboxConfig(memory_bytes=int(memory * GB) or None, isolate=not args.no_isolation,
                                hide=[str(p) for p in [*hide, default_cache_root()]])
    sandbox = Sandbox.detect(sandbox_cfg)
    log(f"sandbox: {sandbox.message}")
    return ExecuteConfig(hf_home=hf_home_for(args.model), cell_timeout=args.cell_timeout,
                         notebook_timeout=args.timeout, threads=max(1, (os.cpu_count() or 1) // max(1, workers)),
                         sandbox=sandbox_cfg, sandbox_mode=sandbox.mode)


def run_grade(args) -> int:
    from grader.run.batch import Batch, BatchConfig
    from grader.judge.golden import GoldenStore
    from grader.report.gradebook import write_class_outputs
    from grader.rubric.config import load_rubric
    from grader.intake.discovery import Discovery

    load_rubric(args.rubric)  # fail early on a bad rubric
    discovery = Discovery()
    try:
        subs = discovery.find(args.paths)
        for note in discovery.notes:
            print(f"note: {note}")
        if not subs:
            print(f"error: no submissions found in {', '.join(map(str, args.paths))} (expected .ipynb files, "
                  "folders of them, or zips)", file=sys.stderr)
            return EXIT_USAGE
        workers = max(1, args.workers)
        print(f"grading {len(subs)} submission(s) with {workers} worker(s); model {args.model}; output in {args.out}/")
        inputs = [p.resolve() if p.is_dir() else p.resolve().parent for p in args.paths if p.exists()]
        with ThreadPoolExecutor(1) as pool:  # the sandbox probe (a process) runs while the golden loads
            sandbox_log: list[str] = []
            execute = pool.submit(execute_config, args, workers, [args.out.resolve(), *inputs], sandbox_log.append)
            store = GoldenStore(args.model, device=args.device)
            golden = store.get()  # computed once here, before workers start
            print(f"golden ready: {golden.num_layers} layers x {golden.n_tokens} tokens ({golden.model_id})")
            execute_cfg = execute.result()
            for line in sandbox_log:
                print(line)
        args.out.mkdir(parents=True, exist_ok=True)
        cfg = BatchConfig(out=args.out, workers=workers, model=args.model, device=args.device, rubric=args.rubric,
                          resume=args.resume, shard=args.shard, report=not args.no_report, execute=execute_cfg)
        outcomes = Batch(cfg).run(subs)
    finally:
        discovery.cleanup()
    paths = write_class_outputs(args.out, canvas_assignment=args.canvas_assignment)
    errors = [o for o in outcomes if o.status == "grader_error"]
    print(f"done: {len(outcomes)} graded ({sum(o.skipped for o in outcomes)} resumed); "
          f"{len(errors)} grader error(s). Class overview: {paths['index']}; Canvas: {paths['csv']}")
    return EXIT_GRADER_ERRORS if errors else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from grader.rubric.config import RubricError
    from grader.spec.errors import UsageError

    try:
        if args.self_check:
            from grader.run.selfcheck import run_self_check

            return run_self_check(args.self_check, args)
        if args.summarize:
            from grader.report.gradebook import write_class_outputs

            paths = write_class_outputs(args.summarize, canvas_assignment=args.canvas_assignment)
            print(f"wrote {paths['csv']}, {paths['detail']} and {paths['index']}")
            return EXIT_OK
        if args.make_gradescope_bundle:
            from grader.run.gradescope import make_bundle

            print(f"wrote {make_bundle(args.make_gradescope_bundle)}")
            return EXIT_OK
        if args.gradescope:
            from grader.run.gradescope import run_in_container

            return run_in_container(args)
        if not args.paths:
            build_parser().error("give submissions to grade (PATH...), or --self-check NOTEBOOK")
        return run_grade(args)
    except (UsageError, RubricError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
