"""The real model's footprint: `grade --model Qwen/Qwen3-4B --memory 0 --workers 1` on one correct notebook,
wall time and peak memory of every process (the grader with its golden run, the worker, the kernel).

    python bench/qwen3_4b_snapshot.py /tmp/footprint-qwen3-4b-hf        # once: random bf16 weights, real shape
    python bench/footprint.py --hf-home /tmp/footprint-qwen3-4b-hf      # before and after, side by side

Each configuration runs `grade` as a child process with PYTHONPATH at a source tree: "before" is the code
at --before-rev (exported with `git archive` into a temporary folder), "after" is this checkout. Each gets a
fresh golden cache, so the grader computes its float32 golden (the assignment's notebooks load in float32)
before the kernel runs. "after" also grades a bfloat16 notebook against the same cache (its worker
computes the bfloat16 golden after the kernel), unless --no-bf16.

Memory: a sampler thread reads /proc/<pid>/status of the grade process and all its descendants every
0.2 s: VmHWM (the kernel's own peak resident set, exact), and the peaks of RssAnon (memory only swap or
exit frees) and RssFile (mapped file pages: the safetensors checkpoint, clean page cache the kernel may
reclaim and that processes mapping the same file share). Processes are named by role: grader (the grade
process; "golden" = its peak until it prints "golden ready"), worker, kernel (ipykernel). Also the
machine's lowest MemAvailable during the run. Needs Linux /proc; runs for ~4 minutes per configuration
on 2 cores and needs ~23 GiB free for "before" (check `free -g` first).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

GiB = 1 << 30
FIELDS = ("VmHWM", "RssAnon", "RssFile")


def _status(pid: int) -> dict[str, int] | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in FIELDS + ("PPid",):
            out[key] = int(value.split()[0]) * (1 if key == "PPid" else 1024)
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


class Sampler(threading.Thread):
    """Peaks per process of a tree rooted at `root`, every `period` seconds."""

    def __init__(self, root: int, period: float = 0.2):
        super().__init__(daemon=True)
        self.root, self.period = root, period
        self.procs: dict[int, dict] = {}  # pid -> {role, cmd, first, last, peaks}
        self.golden_done: float | None = None  # set from outside when the grader says "golden ready"
        self.golden_peak: dict[str, int] = {}
        self.min_available = _mem_available()
        self.tree_at_min: dict[str, int] = {}  # RssAnon per role when MemAvailable was lowest
        self.during_kernel: dict[str, int] = {}  # peak RssAnon per role while a kernel was alive
        self.stop = threading.Event()

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                st = _status(int(entry))
                if st:
                    children.setdefault(st["PPid"], []).append(int(entry))
        found, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo += children.get(pid, [])
        return found

    def _role(self, pid: int, cmd: str) -> str:
        if pid == self.root:
            return "grader"
        if "grader.run.worker" in cmd:
            return "worker"
        if "ipykernel" in cmd:
            return "kernel"
        return "other"

    def run(self) -> None:
        t0 = time.monotonic()
        while not self.stop.is_set():
            now = time.monotonic() - t0
            current: dict[str, int] = {}
            for pid in self._tree():
                st = _status(pid)
                if st is None:
                    continue
                rec = self.procs.get(pid)
                if rec is None or rec["cmd"] == "":
                    cmd = _cmdline(pid)
                    rec = self.procs[pid] = {"role": self._role(pid, cmd), "cmd": cmd[:200], "first": now,
                                             "peaks": {k: 0 for k in FIELDS}}
                rec["last"] = now
                for key in FIELDS:
                    rec["peaks"][key] = max(rec["peaks"][key], st.get(key, 0))
                if rec["role"] == "grader" and self.golden_done is None:
                    self.golden_peak = dict(rec["peaks"])
                current[rec["role"]] = current.get(rec["role"], 0) + st.get("RssAnon", 0)
            if "kernel" in current:
                for role, anon in current.items():
                    self.during_kernel[role] = max(self.during_kernel.get(role, 0), anon)
            available = _mem_available()
            if available < self.min_available:
                self.min_available, self.tree_at_min = available, current
            self.stop.wait(self.period)

    def by_role(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for rec in self.procs.values():
            if rec["role"] == "other":
                continue
            cur = out.setdefault(rec["role"], {"count": 0, "seconds": 0.0, **{k: 0 for k in FIELDS}})
            cur["count"] += 1
            cur["seconds"] = max(cur["seconds"], rec.get("last", rec["first"]) - rec["first"])
            for key in FIELDS:
                cur[key] = max(cur[key], rec["peaks"][key])
        return out


def export_tree(rev: str) -> Path:
    dest = Path(tempfile.mkdtemp(prefix=f"footprint-before-{rev[:8]}-"))
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def grade_once(label: str, tree: Path, notebook: str, hf_home: Path, cache: Path, workdir: Path) -> dict:
    from fixtures.notebooks import build
    import nbformat

    subs = workdir / f"subs-{label}"
    subs.mkdir(parents=True)
    nbformat.write(build(notebook), str(subs / f"{notebook}.ipynb"))
    out = workdir / f"grading-{label}"
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1",
           "QWEN_GRADER_CACHE": str(cache)}
    cmd = [sys.executable, "-c", "import sys; from grader.cli import main; sys.exit(main())",
           str(subs), "--model", "Qwen/Qwen3-4B", "--memory", "0", "--workers", "1", "--out", str(out)]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = Sampler(proc.pid)
    sampler.start()
    lines, golden_s = [], None
    for line in proc.stdout:
        lines.append(line.rstrip())
        if line.startswith("golden ready") and golden_s is None:
            golden_s = time.monotonic() - t0
            sampler.golden_done = golden_s
    proc.wait()
    wall = time.monotonic() - t0
    sampler.stop.set()
    sampler.join()
    results = sorted(out.glob("*/results.json"))
    verdict = json.loads(results[0].read_text()) if results else {}
    extra = verdict.get("extra_data", {})
    roles = sampler.by_role()
    row = {"label": label, "tree": str(tree), "notebook": notebook, "rc": proc.returncode, "wall_s": round(wall, 1),
           "golden_s": round(golden_s, 1) if golden_s else None, "roles": roles, "golden_peak": sampler.golden_peak,
           "min_available_gib": round(sampler.min_available / GiB, 2), "score": verdict.get("score"),
           "anon_during_kernel_gib": {k: round(v / GiB, 2) for k, v in sampler.during_kernel.items()},
           "anon_at_min_available_gib": {k: round(v / GiB, 2) for k, v in sampler.tree_at_min.items()},
           "status": extra.get("status"), "failed": [t["name"] for t in verdict.get("tests", [])
                                                     if t.get("max_score") and t.get("score") != t.get("max_score")],
           "log": [l for l in lines if not l.startswith(("grading:", "Loading"))][-12:]}
    print(summary_line(row), flush=True)
    return row


def summary_line(row: dict) -> str:
    r, g = row["roles"], row["golden_peak"]
    def mem(d):
        return (f"HWM {d.get('VmHWM', 0) / GiB:5.2f} (anon {d.get('RssAnon', 0) / GiB:5.2f}, "
                f"file {d.get('RssFile', 0) / GiB:5.2f})") if d else "-"
    return (f"{row['label']:<12} {row['notebook']:<22} wall {row['wall_s']:6.1f} s, golden {row['golden_s']} s, "
            f"score {row['score']} {row['status']} rc {row['rc']}\n"
            f"    grader golden run   {mem(g)}\n    grader (whole run)  {mem(r.get('grader'))}\n"
            f"    worker              {mem(r.get('worker'))}\n"
            f"    kernel              {mem(r.get('kernel'))}  ({r.get('kernel', {}).get('seconds', 0):.0f} s)\n"
            f"    lowest MemAvailable {row['min_available_gib']} GiB (RssAnon then: {row['anon_at_min_available_gib']})\n"
            f"    peak RssAnon per role while a kernel ran: {row['anon_during_kernel_gib']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hf-home", type=Path, required=True, help="built by bench/qwen3_4b_snapshot.py")
    parser.add_argument("--before-rev", default="cabc2c0", help="the code before the footprint fix")
    parser.add_argument("--notebook", default="correct_layer_prehook", help="a correct float32 notebook")
    parser.add_argument("--bf16-notebook", default="correct_bf16")
    parser.add_argument("--no-before", action="store_true")
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="footprint-bench-"))
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, {platform.node()}, {os.cpu_count()} CPUs, "
          f"MemAvailable {_mem_available() / GiB:.1f} GiB, work in {workdir}", flush=True)
    rows = []
    if not args.no_before:
        rows.append(grade_once("before", export_tree(args.before_rev), args.notebook, args.hf_home,
                               workdir / "cache-before", workdir))
    cache = workdir / "cache-after"
    rows.append(grade_once("after", REPO, args.notebook, args.hf_home, cache, workdir))
    if not args.no_bf16:
        rows.append(grade_once("after-bf16", REPO, args.bf16_notebook, args.hf_home, cache, workdir))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
