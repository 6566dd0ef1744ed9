"""Loading the model the reference runs on: the miniature ('tiny'), a hub id, or a local folder.

Loading uses exactly the calls the assignment asks students to make (`AutoTokenizer` and
`AutoModelForCausalLM.from_pretrained`), so the same code serves the real Qwen/Qwen3-4B (from the
user's Hugging Face cache) and the miniature. Bad input raises errors that subclass built-ins and
say what was expected and what was found; the CLI prints them without a traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from grader.errors import DeviceUnavailableError, ModelNotFoundError, UnsupportedModelError, UsageError  # noqa: F401
from grader.families.base import Family
from grader.spec.pack import Assignment, load_pack

TINY = "tiny"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class LoadedModel:
    model: torch.nn.Module  # a *ForCausalLM in eval mode
    tokenizer: object
    model_id: str  # what the user asked for: "tiny", a hub id or a path
    name_or_path: str  # what was loaded
    revision: str | None  # the snapshot's commit when it came from a hub cache
    is_miniature: bool
    family: Family

    @property
    def layers(self) -> torch.nn.ModuleList:
        return decoder_layers(self.model, self.family)


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"--device {device} was asked for, but torch {torch.__version__} sees no CUDA device; "
            "use --device cpu (the miniature runs in seconds on a CPU)"
        )
    if device != "cpu" and not device.startswith("cuda"):
        raise DeviceUnavailableError(f"--device must be cpu, cuda or cuda:N; got {device!r}")
    return torch.device(device)


def decoder_layers(model: torch.nn.Module, family: Family | None = None) -> torch.nn.ModuleList:
    """The ModuleList of decoder layers (the family's path, e.g. `model.layers` in a *ForCausalLM, `layers` in
    its base model). The family defaults to the one of the model's config."""
    if family is None:
        from grader.families import for_config

        family = for_config(model.config.to_dict())
    layers = None
    for path in (family.layers, family.base_layers):
        try:
            layers = model.get_submodule(path)
            break
        except AttributeError:
            continue
    if not isinstance(layers, torch.nn.ModuleList) or len(layers) == 0:
        found = [name for name, _ in model.named_children()]
        raise UnsupportedModelError(
            f"expected a decoder-only model with `{family.layers}` (a ModuleList of decoder layers), "
            f"found {type(model).__name__} with children {found}"
        )
    required = family.required_submodules
    missing = [m for m in required if not _has_submodule(layers[0], m)]
    if missing:
        found = [name for name, _ in layers[0].named_children()]
        raise UnsupportedModelError(
            f"each decoder layer needs {', '.join(required)} (as {family.decoder_layer} has); "
            f"{type(layers[0]).__name__} lacks {missing} and has {found}"
        )
    return layers


def _stored_dtype(source: str) -> torch.dtype | None:
    """The dtype the checkpoint's config says its weights are stored in (None: not known)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError):
        return None
    value = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(value, str):
        value = DTYPES.get(value)
    return value if value in DTYPES.values() else None


def _has_submodule(module: torch.nn.Module, path: str) -> bool:
    try:
        module.get_submodule(path)
        return True
    except AttributeError:
        return False


def _snapshot_revision(path: str) -> str | None:
    parts = Path(path).resolve().parts
    return parts[-1] if len(parts) >= 2 and parts[-2] == "snapshots" else None


def load(model_id: str = TINY, device: str | None = "cpu", dtype: str = "float32",
         pack: Assignment | None = None) -> LoadedModel:
    """Load tokenizer and model as the assignment does; 'tiny' means the pack's miniature."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pack = pack or load_pack()
    dev = resolve_device(device)
    if dtype not in DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    is_miniature = model_id == TINY
    if is_miniature:
        from miniature import hf_cache

        source = str(hf_cache.snapshot_dir(hf_cache.ensure_hf_home(pack=pack), pack))
    else:
        source = model_source(model_id, pack)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        stored = None if is_miniature else _stored_dtype(source)
        if stored is None or stored == DTYPES[dtype]:
            model = AutoModelForCausalLM.from_pretrained(source, dtype=DTYPES[dtype])
        else:  # e.g. float32 from the hub's bfloat16: never both copies at once (see lowmem)
            from reference.lowmem import convert_parameters

            model = AutoModelForCausalLM.from_pretrained(source, dtype=stored)
            convert_parameters(model, DTYPES[dtype], dev)
    except (OSError, ValueError) as exc:
        hf_home = os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        raise ModelNotFoundError(
            f"could not load {model_id!r}: expected a local folder with config.json and weights, or a "
            f"hub id in the Hugging Face cache at HF_HOME={hf_home}"
            + (" (HF_HUB_OFFLINE is set, so nothing is downloaded)" if offline else "")
            + f". transformers said: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from exc
    model = model.to(dev).eval()
    decoder_layers(model, pack.family)  # validate structure early, with a clear message
    name = getattr(model.config, "_name_or_path", source)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        model_id=pack.model.id + " (miniature)" if is_miniature else model_id,
        name_or_path=name,
        revision=_snapshot_revision(source) if Path(source).exists() else _hub_revision(model_id),
        is_miniature=is_miniature,
        family=pack.family,
    )


def model_source(model_id: str, pack: Assignment) -> str:
    """What from_pretrained reads for --model: a local folder, or a hub id from the HF cache (the pack's real
    weights laid out offline when the pack ships them: miniature/real.py)."""
    if Path(model_id).exists():
        return model_id
    if model_id == pack.model.id and pack.weights.gguf_package:
        from miniature import real

        return str(real.snapshot(pack))
    return model_id


def _hub_revision(model_id: str) -> str | None:
    """The commit the cache's refs/main points at, if the model came from a hub cache."""
    try:
        from huggingface_hub import try_to_load_from_cache

        path = try_to_load_from_cache(model_id, "config.json")
    except Exception:  # noqa: BLE001 - purely informational
        return None
    return _snapshot_revision(str(Path(path).parent)) if isinstance(path, str) else None
