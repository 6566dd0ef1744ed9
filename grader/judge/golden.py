"""The golden artifacts a submission is judged against, produced by the reference pipeline.

A `GoldenStore` serves goldens per (token ids, dtype): the canonical one is the assignment's 404
tokens in float32; a student who loaded the model in bfloat16 is compared with a bfloat16 golden
(same computation, so a tight tolerance still holds), and a student who ran a different prompt is
compared with the reference run on *their* tokens, so a prompt mistake costs Part 4 only.
Runs are cached on disk under the project cache, keyed by model revision, dtype, token ids and
library versions, so a batch computes each golden once.

Frozen goldens: the student self-check kit (grader/run/kit.py) ships the miniature's goldens for the
assignment's prompt in grader/judge/frozen/ (written by `freeze`, float32, bfloat16 and float16) and
no `reference` package. A store for the miniature serves those first; a golden it has neither frozen,
cached nor the means to compute (a student's own prompt, without `reference`) raises
GoldenUnavailable, whose message says so in words a student understands.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grader.io import save_npz, write_atomic
from grader.spec.sites import SITE_NAMES
from grader.errors import StageError


FROZEN_DIR = Path(__file__).resolve().parent / "frozen"  # shipped goldens (the student kit); absent in the repo
FROZEN_FORMAT = "qwen3-interp-grader/frozen-golden-v1"
FROZEN_DTYPES = ("float32", "bfloat16", "float16")


class GoldenUnavailable(StageError, LookupError):
    """No golden for these token ids and dtype here, and no way to compute one (no `reference` package).
    The message is for a student: what is missing and what to do."""


def _require_reference(what: str) -> None:
    if importlib.util.find_spec("reference") is None:
        raise GoldenUnavailable(f"{what} is needed, but the `reference` package is not installed here (the student "
                                "self-check kit ships only the goldens of the assignment's prompt)")


def ids_sha256(ids) -> str:
    """The digest the probe records for a forward's input ids (int64 bytes)."""
    return hashlib.sha256(np.asarray(list(ids), dtype=np.int64).tobytes()).hexdigest()


@dataclass
class Golden:
    token_ids: list[int]
    dtype: str
    captures: dict[str, np.ndarray]  # "{site}.{layer}" -> [N, d] float32
    projections: np.ndarray  # [L, 3, N] float32, unit columns
    metrics: list[dict] = field(default_factory=list)
    model_id: str = ""
    revision: str | None = None

    @property
    def num_layers(self) -> int:
        return self.projections.shape[0]

    @property
    def hidden_size(self) -> int:
        return self.captures["resid_pre.0"].shape[-1]

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def ids_sha256(self) -> str:
        return ids_sha256(self.token_ids)

    def site(self, site: str, layer: int) -> np.ndarray:
        return self.captures[f"{site}.{layer}"]


@functools.lru_cache(maxsize=None)
def _versions() -> str:
    """The library versions a golden depends on, read from package metadata: importing torch and
    transformers just to name them would cost a worker that only judges about 2 s."""
    from importlib.metadata import version

    return f"torch{version('torch')}-tf{version('transformers')}-np{np.__version__}"


class GoldenStore:
    """Lazily computes and caches goldens for one model ('tiny', a hub id or a path)."""

    def __init__(self, model: str = "tiny", cache_dir: Path | None = None, device: str = "cpu",
                 assignment: str | None = None):
        from grader.spec.pack import load_pack
        from miniature.hf_cache import default_cache_root

        self.pack = load_pack(assignment)
        self.model_spec = model
        self.device = device
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_root() / "golden"
        self._loaded: dict[str, object] = {}  # dtype -> LoadedModel, kept for the process
        self._memo: dict[tuple[str, str], Golden] = {}
        self._tokenizer = None
        self.frozen_dir = FROZEN_DIR

    @property
    def _pack_tokenizer(self) -> bool:
        """The model is the pack's (its miniature, or its real weights): it uses the pack's tokenizer."""
        return self.model_spec in ("tiny", self.pack.model.id)

    def _model(self, dtype: str):
        if dtype not in self._loaded:
            _require_reference(f"the {dtype} reference model")
            from reference.model import load

            self._loaded[dtype] = load(self.model_spec, self.device, dtype, self.pack)
        return self._loaded[dtype]

    def _key(self, ids_digest: str, dtype: str) -> str:
        from miniature import tiny

        ident = f"{self.pack.name}:{tiny.revision(self.pack)}" if self.model_spec == "tiny" else self.model_spec
        text = f"{ident}|{dtype}|{ids_digest}|{_versions()}|{self.device}"
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def canonical_ids(self) -> list[int]:
        frozen = self._frozen_manifest()
        if frozen is not None:
            return list(frozen["token_ids"])
        path = self.cache_dir / f"ids-{self._key('prompt', 'ids')}.json"
        if path.is_file():
            return json.loads(path.read_text())
        if self._pack_tokenizer:  # the pack's own tokenizer: its tokens are known without loading a model
            ids = list(self.pack.tokens.ids)
        else:
            from reference.run import tokenize  # imports torch: only when the ids are not cached yet

            ids = tokenize(self._model("float32").tokenizer, self.pack)[0].tolist()
        write_atomic(path, json.dumps(ids))
        return ids

    def decode(self, ids: list[int]) -> list[str]:
        """Each token id as its text, with the model's tokenizer (loaded once; the weights are not)."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            if self._pack_tokenizer:
                from miniature import hf_cache

                source = str(hf_cache.snapshot_dir(hf_cache.ensure_hf_home(pack=self.pack), self.pack))
            else:
                source = self.model_spec
            self._tokenizer = AutoTokenizer.from_pretrained(source)
        return [self._tokenizer.decode([i]) for i in ids]

    def get(self, token_ids: list[int] | None = None, dtype: str = "float32") -> Golden:
        """The golden for these token ids (default: the assignment's prompt) computed in this dtype."""
        ids = list(token_ids) if token_ids is not None else self.canonical_ids()
        digest = ids_sha256(ids)
        memo_key = (digest, dtype)
        if memo_key in self._memo:
            return self._memo[memo_key]
        frozen = self._frozen(digest, dtype)
        if frozen is not None:
            self._memo[memo_key] = frozen
            return frozen
        key = self._key(digest, dtype)
        path = self.cache_dir / f"golden-{key}.npz"
        if not path.is_file():
            if importlib.util.find_spec("reference") is None:
                raise GoldenUnavailable(self._unavailable(ids, dtype))
            self._compute(ids, dtype, path)
        with np.load(path) as z:
            meta = json.loads(bytes(z["__meta__"]).decode())
            captures = {k: z[k] for k in z.files if k.split(".")[0] in SITE_NAMES}
            projections = z["__projections__"]
        golden = Golden(token_ids=meta["token_ids"], dtype=dtype, captures=captures, projections=projections,
                        metrics=meta["metrics"], model_id=meta["model_id"], revision=meta["revision"])
        self._memo[memo_key] = golden
        return golden

    # ---- frozen goldens (the student kit) ------------------------------------------------------
    def _frozen_manifest(self) -> dict | None:
        """The shipped manifest when it is for this store's model (the miniature, same revision)."""
        if self.model_spec != "tiny":
            return None
        manifest = read_frozen_manifest(self.frozen_dir)
        if manifest is None:
            return None
        from miniature import tiny

        return manifest if manifest.get("revision") == tiny.revision(self.pack) else None

    def _frozen(self, digest: str, dtype: str) -> Golden | None:
        manifest = self._frozen_manifest()
        if manifest is None or manifest.get("token_ids_sha256") != digest or dtype not in manifest.get("dtypes", {}):
            return None
        return load_frozen(self.frozen_dir / manifest["dtypes"][dtype]["file"], dtype)

    def _unavailable(self, ids: list[int], dtype: str) -> str:
        manifest = self._frozen_manifest()
        if manifest is not None and list(ids) == list(manifest["token_ids"]):
            return (f"this self-check holds the reference activations of the assignment's prompt in "
                    f"{', '.join(manifest['dtypes'])} only, not in {dtype}, the dtype your model was loaded in; "
                    "load it in float32 to check Parts 3 and 5 here")
        if manifest is not None:
            return (f"this self-check holds the reference activations only for the assignment's "
                    f"{len(manifest['token_ids'])}-token prompt (in {', '.join(manifest['dtypes'])}); your notebook "
                    f"ran the model on {len(ids)} other tokens{'' if dtype == 'float32' else f' in {dtype}'}, which "
                    "only the course's grader can compare. Run the prompt exactly as given to check Parts 3 and 5 here")
        return (f"no reference result for these {len(ids)} token ids in {dtype}: it is not cached in "
                f"{self.cache_dir}, and the `reference` package that computes it is not installed")

    def _compute(self, ids: list[int], dtype: str, path: Path) -> None:
        import torch

        from reference.capture import capture_all_sites
        from reference.metrics import layer_metrics
        from grader.spec.geometry import pca3

        loaded = self._model(dtype)
        device = next(loaded.model.parameters()).device
        caps = capture_all_sites(loaded.model, torch.tensor([ids], device=device), self.pack.family)
        fits = [pca3(caps.get("resid_pre", n)) for n in range(caps.num_layers)]
        spheres = [f.sphere for f in fits]
        metrics = layer_metrics([caps.get("resid_pre", n) for n in range(caps.num_layers)],
                                [f.singular_values for f in fits], spheres)
        meta = {"token_ids": ids, "metrics": metrics, "model_id": loaded.model_id, "revision": loaded.revision}
        arrays = dict(caps.arrays)
        arrays["__projections__"] = np.stack(spheres)  # [L, 3, N]
        arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        save_npz(path, arrays)


# ---- frozen goldens: written when the student kit is built, read by GoldenStore ------------------
#
# One npz per dtype, compressed. Only what cannot be rebuilt exactly is stored: resid_post of layer n is
# resid_pre of layer n + 1 (the same tensor), and resid_mid = resid_pre + attn_out rounded to the dtype
# (how the layer computes it); `freeze` leaves an array out only after checking that the rule rebuilds
# it bit for bit. bfloat16 and float16 captures are stored in 16 bits (exactly: they are values of that
# dtype widened to float32).


def _round_to(x: np.ndarray, dtype: str) -> np.ndarray:
    """float32 values rounded to the nearest `dtype` value (ties to even), as float32."""
    x = np.asarray(x, np.float32)
    if dtype == "float16":
        return x.astype(np.float16).astype(np.float32)
    if dtype == "bfloat16":
        bits = x.view(np.uint32).astype(np.uint64)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16 << 16
        return bits.astype(np.uint32).view(np.float32)
    return x


def _store_as(x: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return (np.asarray(x, np.float32).view(np.uint32) >> 16).astype(np.uint16)
    return np.asarray(x, np.float16 if dtype == "float16" else np.float32)


def _load_as(x: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16" and x.dtype == np.uint16:
        return (x.astype(np.uint32) << 16).view(np.float32)
    return x.astype(np.float32)


def _rebuild(captures: dict[str, np.ndarray], key: str, dtype: str) -> np.ndarray | None:
    site, layer = key.split(".")
    n = int(layer)
    if site == "resid_post" and f"resid_pre.{n + 1}" in captures:
        return captures[f"resid_pre.{n + 1}"]
    if site == "resid_mid" and f"resid_pre.{n}" in captures and f"attn_out.{n}" in captures:
        return _round_to(captures[f"resid_pre.{n}"] + captures[f"attn_out.{n}"], dtype)
    return None


def freeze(store: GoldenStore, out_dir: Path, dtypes: tuple[str, ...] = FROZEN_DTYPES) -> dict:
    """Write the miniature's goldens of the assignment's prompt, one file per dtype, into out_dir with a
    manifest.json (the layout GoldenStore reads from FROZEN_DIR). Returns the manifest."""
    from miniature import tiny

    if store.model_spec != "tiny":
        raise ValueError(f"only the miniature's goldens are frozen, not {store.model_spec!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = store.canonical_ids()
    manifest = {"format": FROZEN_FORMAT, "model": "tiny", "assignment": store.pack.name,
                "revision": tiny.revision(store.pack), "token_ids": ids,
                "token_ids_sha256": ids_sha256(ids), "versions": _versions(), "dtypes": {}}
    for dtype in dtypes:
        golden = store.get(ids, dtype)
        caps = golden.captures
        exact16 = all(np.array_equal(_load_as(_store_as(v, dtype), dtype), v) for v in caps.values())
        storage = dtype if exact16 else "float32"
        stored = {}
        for key, value in caps.items():
            rebuilt = _rebuild(caps, key, dtype)
            if rebuilt is None or not np.array_equal(rebuilt, value):
                stored[key] = _store_as(value, storage)
        meta = {"token_ids": golden.token_ids, "metrics": golden.metrics, "model_id": golden.model_id,
                "revision": golden.revision, "dtype": dtype, "storage": storage, "keys": list(caps)}
        stored["__projections__"] = np.asarray(golden.projections, np.float32)
        stored["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        name = f"golden-{dtype}.npz"
        np.savez_compressed(out_dir / name, **stored)
        manifest["dtypes"][dtype] = {"file": name, "stored": len(stored) - 2, "rebuilt": len(caps) - len(stored) + 2}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def read_frozen_manifest(frozen_dir: Path) -> dict | None:
    """frozen_dir/manifest.json, or None when there is none (the repository) or it is unreadable."""
    try:
        manifest = json.loads((Path(frozen_dir) / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == FROZEN_FORMAT else None


def load_frozen(path: Path, dtype: str) -> Golden:
    """A golden written by `freeze`, with every site of every layer rebuilt."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(bytes(z["__meta__"]).decode())
        storage = meta.get("storage", "float32")
        captures = {k: _load_as(z[k], storage) for k in z.files if k.split(".")[0] in SITE_NAMES}
        projections = z["__projections__"].astype(np.float32)
    for key in meta["keys"]:
        if key not in captures:
            rebuilt = _rebuild(captures, key, dtype)
            if rebuilt is None:
                raise ValueError(f"{path}: {key} is neither stored nor rebuildable; the frozen golden is damaged")
            captures[key] = rebuilt
    ordered = {k: captures[k] for k in meta["keys"]}
    return Golden(token_ids=meta["token_ids"], dtype=dtype, captures=ordered, projections=projections,
                  metrics=meta["metrics"], model_id=meta["model_id"], revision=meta["revision"])
