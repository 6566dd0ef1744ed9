"""The registry of model families (pre-commit's all_languages.py, for module trees): one module per family,
each defining `FAMILY` (grader/families/base.py says what a family declares).

    from grader.families import get, for_architecture
    get("qwen3").layer_path(7)            # 'model.layers.7'
    for_architecture("Qwen3ForCausalLM")  # the qwen3 family, or None
"""

from __future__ import annotations

from grader.families import gpt2, llama, qwen3
from grader.errors import UnsupportedModelError
from grader.families.base import Family

FAMILIES: dict[str, Family] = {f.name: f for f in (qwen3.FAMILY, llama.FAMILY, gpt2.FAMILY)}


class UnknownFamilyError(UnsupportedModelError, LookupError):
    """A family name, architecture or model_type that no family module declares."""


def supported() -> str:
    """'qwen3 (Qwen3ForCausalLM), ...': what an error message lists."""
    return ", ".join(f"{f.name} ({', '.join(f.causal_lm)})" for f in FAMILIES.values())


def get(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise UnknownFamilyError(f"no model family {name!r}; the supported families are {supported()}") from None


def for_architecture(architecture: str | None) -> Family | None:
    """The family whose *ForCausalLM or base model class this is, or None."""
    return next((f for f in FAMILIES.values() if f.is_model_class(architecture)), None)


def for_config(config: dict) -> Family:
    """The family of a config.json (its `architectures`, else its `model_type`); UnknownFamilyError naming
    the supported families otherwise."""
    for arch in config.get("architectures") or []:
        if (found := for_architecture(arch)) is not None:
            return found
    found = next((f for f in FAMILIES.values() if config.get("model_type") in f.model_types), None)
    if found is None:
        raise UnknownFamilyError(f"architecture {config.get('architectures')} (model_type "
                                 f"{config.get('model_type')!r}) is not supported; the supported families are {supported()}")
    return found
