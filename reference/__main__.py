"""python -m reference --model tiny|<hub id>|<local path> --out DIR [--device cpu|cuda] [--dtype float32|bfloat16]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reference.model import DTYPES, TINY, UsageError
from reference.run import ReferenceConfig, run_reference


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reference",
        description="Run the assignment correctly end to end and write the golden artifacts.",
    )
    parser.add_argument("--model", default=TINY, help="'tiny' (the bundled miniature), a hub id such as "
                        "the pack's model id (read from your Hugging Face cache), or a local folder (default: tiny)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the artifacts")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="default: float32")
    parser.add_argument("--no-gif", action="store_true", help="skip tokens.gif (the slow part)")
    parser.add_argument("--workers", type=int, default=None, help="processes drawing GIF frames")
    args = parser.parse_args(argv)
    cfg = ReferenceConfig(model=args.model, out=args.out, device=args.device, dtype=args.dtype,
                          gif=not args.no_gif, workers=args.workers)
    try:
        run_reference(cfg)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
