"""Shared, session-scoped artifacts: the miniature's HF cache and one reference run on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def hf_home(tmp_path_factory) -> Path:
    """A fresh offline HF cache with the miniature, built by the code under test."""
    from fixtures.hf_cache import ensure_hf_home

    return ensure_hf_home(tmp_path_factory.mktemp("hf") / "home")


@pytest.fixture(scope="session")
def reference_dir(tmp_path_factory) -> Path:
    """`python -m reference --model tiny` output (without the slow GIF)."""
    from reference.run import ReferenceConfig, run_reference

    out = tmp_path_factory.mktemp("reference")
    run_reference(ReferenceConfig(out=out, gif=False), log=lambda *a: None)
    return out


@pytest.fixture(scope="session")
def captures(reference_dir) -> dict[str, np.ndarray]:
    with np.load(reference_dir / "captures.npz") as z:
        return {k: z[k] for k in z.files}
