"""Instrumentation that runs INSIDE the student's kernel. Self-contained: imports nothing from
this project, so it can be sent as source text and so importing `grader` from a notebook stays
detectable.

`install(config)` runs silently before the first student cell. It wraps the registration
functions of forward hooks (per module and global), the top-level call of every Hugging Face
model, `generate`, and `from_pretrained` of models and tokenizers, and records each event with the
index of the notebook cell it happened in. Nothing about the student's code changes: every wrapper
calls the original and returns its result.

`extract(config)` runs silently after the last student cell. It resolves hook modules to their
paths in the loaded model, finds the student's captures and projections among the notebook's
globals whatever their names, and writes `extracted.npz` (plain float32 arrays, no pickle) and
`probe.json` into config["out_dir"]. Nothing is judged here, and no golden data is in the kernel.
"""

from __future__ import annotations

STATE_MODULE = "__qgrader_probe__"
SET_CELL = "__import__('sys').modules.get({m!r}) and setattr(__import__('sys').modules[{m!r}], 'current_cell', {i})"
PROJECT_PACKAGES = ("reference", "grader", "fixtures", "miniature")
MAX_FORWARDS = 64  # forward records kept (generate() makes one per new token)
MAX_IDS_KEPT = 4096  # token ids kept per forward record, so the grader can rerun a student's own prompt


def install(config: dict) -> None:
    import functools
    import hashlib
    import sys
    import types
    import weakref

    import numpy as np
    import torch
    import transformers

    state = types.ModuleType(STATE_MODULE)
    state.nonce = config["nonce"]
    state.hooks, state.forwards, state.models, state.tokenizers = [], [], [], []
    state.n_forwards = 0
    state.depth = 0
    state.in_generate = 0
    state.project_imports = []
    state.patched = {}
    state.errors = []

    state.current_cell = None  # index of the notebook cell running now; the grader sets it

    def cell() -> int | None:
        return state.current_cell

    module_cls = torch.nn.Module
    module_mod = torch.nn.modules.module

    import os

    library_dirs = tuple(os.path.dirname(m.__file__) + os.sep for m in (torch, transformers))

    def origin() -> str:
        """'student', or the library that registered the hook itself (transformers records
        output_hidden_states with hooks of its own)."""
        frame = sys._getframe(2)
        while frame is not None and frame.f_code.co_filename.startswith(library_dirs[0]):
            frame = frame.f_back  # torch's own helpers: look at who called them
        name = frame.f_code.co_filename if frame is not None else ""
        for lib, path in zip(("torch", "transformers"), library_dirs):
            if name.startswith(path):
                return lib
        return "student"

    def wrap_register(kind: str, original):
        @functools.wraps(original)
        def register(self, hook, *args, **kwargs):
            handle = original(self, hook, *args, **kwargs)
            try:
                state.hooks.append({
                    "module_ref": weakref.ref(self), "module_type": type(self).__name__, "kind": kind,
                    "with_kwargs": bool(kwargs.get("with_kwargs", False)), "handle_id": handle.id,
                    "hook_name": getattr(hook, "__qualname__", type(hook).__name__), "cell": cell(),
                    "origin": origin(),
                })
            except Exception as exc:  # noqa: BLE001 - recording must never break student code
                state.errors.append(f"hook record: {exc!r}")
            return handle

        return register

    def wrap_global(kind: str, original):
        @functools.wraps(original)
        def register(hook, *args, **kwargs):
            handle = original(hook, *args, **kwargs)
            state.hooks.append({
                "module_ref": None, "module_type": None, "kind": kind,
                "with_kwargs": bool(kwargs.get("with_kwargs", False)), "handle_id": handle.id,
                "hook_name": getattr(hook, "__qualname__", type(hook).__name__), "cell": cell(),
                "origin": origin(),
            })
            return handle

        return register

    patches = [
        (module_cls, "register_forward_hook", wrap_register("forward", module_cls.register_forward_hook)),
        (module_cls, "register_forward_pre_hook", wrap_register("forward_pre", module_cls.register_forward_pre_hook)),
        (module_mod, "register_module_forward_hook", wrap_global("global_forward", module_mod.register_module_forward_hook)),
        (module_mod, "register_module_forward_pre_hook",
         wrap_global("global_forward_pre", module_mod.register_module_forward_pre_hook)),
    ]

    pretrained = transformers.PreTrainedModel
    original_call = module_cls.__call__

    def ids_digest(ids) -> str:
        return hashlib.sha256(np.asarray(ids, dtype=np.int64).tobytes()).hexdigest()

    def model_call(self, *args, **kwargs):
        if state.depth == 0:
            try:
                ids = kwargs.get("input_ids")
                if ids is None and args and isinstance(args[0], torch.Tensor):
                    ids = args[0]
                state.n_forwards += 1
                if len(state.forwards) < MAX_FORWARDS:
                    rec = {"model_type": type(self).__name__, "model_ref_id": id(self), "cell": cell(),
                           "from_generate": state.in_generate > 0,
                           "output_hidden_states": bool(kwargs.get("output_hidden_states")),
                           "inputs_embeds": kwargs.get("inputs_embeds") is not None}
                    if isinstance(ids, torch.Tensor):
                        flat = ids.detach().to("cpu").reshape(-1, ids.shape[-1])
                        first = flat[0].tolist()
                        rec.update(shape=list(ids.shape), n_tokens=int(ids.shape[-1]),
                                   input_ids_sha256=ids_digest(first),
                                   input_ids=first if len(first) <= MAX_IDS_KEPT else None)
                    state.forwards.append(rec)
            except Exception as exc:  # noqa: BLE001
                state.errors.append(f"forward record: {exc!r}")
        state.depth += 1
        try:
            return original_call(self, *args, **kwargs)
        finally:
            state.depth -= 1

    patches.append((pretrained, "__call__", model_call))

    generation = transformers.GenerationMixin
    original_generate = generation.generate

    @functools.wraps(original_generate)
    def generate(self, *args, **kwargs):
        state.in_generate += 1
        try:
            return original_generate(self, *args, **kwargs)
        finally:
            state.in_generate -= 1

    patches.append((generation, "generate", generate))

    def wrap_from_pretrained(owner, store, describe):
        original = owner.__dict__["from_pretrained"].__func__

        @functools.wraps(original)
        def from_pretrained(cls, *args, **kwargs):
            obj = original(cls, *args, **kwargs)
            try:
                store.append({"ref": weakref.ref(obj), "cell": cell(), **describe(obj)})
            except Exception as exc:  # noqa: BLE001
                state.errors.append(f"load record: {exc!r}")
            return obj

        return classmethod(from_pretrained)

    def describe_model(m) -> dict:
        c = m.config
        p = next(m.parameters(), None)
        return {"class": type(m).__name__, "name_or_path": getattr(c, "_name_or_path", None),
                "num_layers": getattr(c, "num_hidden_layers", None), "hidden_size": getattr(c, "hidden_size", None),
                "dtype": str(p.dtype).replace("torch.", "") if p is not None else None,
                "device": str(p.device) if p is not None else None}

    def describe_tokenizer(t) -> dict:
        return {"class": type(t).__name__, "name_or_path": getattr(t, "name_or_path", None),
                "vocab_size": getattr(t, "vocab_size", None)}

    tokenizer_base = transformers.tokenization_utils_base.PreTrainedTokenizerBase
    patches.append((pretrained, "from_pretrained", wrap_from_pretrained(pretrained, state.models, describe_model)))
    patches.append((tokenizer_base, "from_pretrained",
                    wrap_from_pretrained(tokenizer_base, state.tokenizers, describe_tokenizer)))

    for owner, name, new in patches:
        setattr(owner, name, new)
        where = owner.__name__ if isinstance(owner, types.ModuleType) else f"{owner.__module__}.{owner.__qualname__}"
        state.patched[f"{where}.{name}"] = (owner, name, new)

    class ProjectImportRecorder:
        """Notes imports of this project's packages; never blocks them."""

        def find_spec(self, fullname, path=None, target=None):
            if fullname.split(".")[0] in PROJECT_PACKAGES and fullname not in state.project_imports:
                state.project_imports.append(fullname)
            return None

    state.import_recorder = ProjectImportRecorder()
    sys.meta_path.insert(0, state.import_recorder)
    sys.modules[STATE_MODULE] = state


# ---------------------------------------------------------------------------------------------
# Extraction


def _to_float_array(value):
    """A tensor / ndarray (or a tuple/list whose first item is one) -> (float32 ndarray, info) or None."""
    import numpy as np
    import torch

    wrapped = None
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], (torch.Tensor, np.ndarray)):
        wrapped = type(value).__name__
        value = value[0]
    if isinstance(value, torch.Tensor):
        dtype = str(value.dtype).replace("torch.", "")
        if not (value.is_floating_point() or value.is_complex()):
            return None
        arr = value.detach().to("cpu", dtype=torch.float32).numpy()
    elif isinstance(value, np.ndarray) and value.dtype.kind == "f":
        dtype = str(value.dtype)
        arr = value.astype(np.float32, copy=False)
    else:
        return None
    kind = "torch" if isinstance(value, torch.Tensor) else "numpy"
    return arr, {"dtype": dtype, "wrapped_in": wrapped, "type": kind}


def _layer_key(key):
    """0, '0', 'layer_0', 'layer 0', 'L0' -> 0; anything else -> None."""
    import re

    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key
    try:
        import numpy as np

        if isinstance(key, np.integer):
            return int(key)
    except Exception:  # noqa: BLE001
        pass
    if isinstance(key, str):
        m = re.fullmatch(r"\s*(?:layer|layers|l|block)?[\s_\-.]*(\d+)\s*", key, flags=re.I)
        if m:
            return int(m.group(1))
    return None


def _per_layer(value, n_layers):
    """Read a value as {layer: (array, info)}: a dict keyed by layer, a list of L, or a stacked array."""
    out = {}
    if isinstance(value, dict):
        for k, v in list(value.items())[:512]:
            layer = _layer_key(k)
            conv = _to_float_array(v) if layer is not None else None
            if conv is not None:
                out[layer] = conv
        return out, "dict"
    if isinstance(value, (list, tuple)) and 2 <= len(value) <= 512:
        for i, v in enumerate(value):
            conv = _to_float_array(v)
            if conv is None:
                return {}, None
            out[i] = conv
        return out, type(value).__name__
    conv = _to_float_array(value)
    if conv is not None and conv[0].ndim >= 3 and conv[0].shape[0] in (n_layers, n_layers + 1):
        arr, info = conv
        return {i: (arr[i], dict(info, stacked=True)) for i in range(arr.shape[0])}, "stacked"
    return {}, None


def _classify(arrays: dict, hidden: int | None) -> str | None:
    """'captures' if values end in the hidden size, 'projections' if they are [3, N] / [N, 3]."""
    shapes = [a.shape for a, _ in arrays.values()]
    if len(shapes) < 2:
        return None
    squeezed = [tuple(d for i, d in enumerate(s) if not (d == 1 and i < len(s) - 2)) for s in shapes]
    if all(len(s) == 2 and 3 in s for s in squeezed) and not (hidden == 3):
        return "projections"
    if all(len(s) >= 1 and s[-1] > 3 and (hidden is None or s[-1] == hidden) for s in shapes):
        return "captures"
    return None


def extract(config: dict) -> dict:
    import json
    import os
    import sys

    import numpy as np
    import torch
    import transformers

    out_dir = config["out_dir"]
    os.makedirs(out_dir, exist_ok=True)
    state = sys.modules.get(STATE_MODULE)
    result = {"nonce": None, "tampered": [], "errors": []}
    if state is None or getattr(state, "nonce", None) != config["nonce"]:
        result["tampered"].append("the grader's recording module was removed or replaced")
        state = None
    else:
        result["nonce"] = state.nonce
        for qualname, (owner, name, new) in state.patched.items():
            current = owner.__dict__.get(name)
            if isinstance(current, classmethod) and isinstance(new, classmethod):
                same = current.__func__ is new.__func__
            else:
                same = current is new
            if not same:
                result["tampered"].append(f"{qualname} was replaced after the grader installed its recorder")
        result["errors"] += list(state.errors)

    ns = get_ipython().user_ns  # noqa: F821

    # the loaded model: recorded loads first, then any model among the globals
    models = []
    if state is not None:
        for rec in state.models:
            m = rec["ref"]()
            if m is not None:
                models.append((m, {k: v for k, v in rec.items() if k != "ref"}))
    for name, value in list(ns.items()):
        if isinstance(value, transformers.PreTrainedModel) and all(value is not m for m, _ in models):
            p = next(value.parameters(), None)
            models.append((value, {"class": type(value).__name__, "cell": None,
                                   "name_or_path": getattr(value.config, "_name_or_path", None),
                                   "num_layers": getattr(value.config, "num_hidden_layers", None),
                                   "hidden_size": getattr(value.config, "hidden_size", None),
                                   "dtype": str(p.dtype).replace("torch.", "") if p is not None else None,
                                   "device": str(p.device) if p is not None else None,
                                   "found_as_global": name}))
    paths = {}
    for m, _ in models:
        for path, sub in m.named_modules():
            paths.setdefault(id(sub), path)
    model_info = None
    if models:
        m, info = models[-1]
        p = next(m.parameters(), None)
        info = dict(info, dtype=str(p.dtype).replace("torch.", "") if p is not None else info.get("dtype"),
                    device=str(p.device) if p is not None else info.get("device"))
        model_info = info
    hidden = model_info.get("hidden_size") if model_info else None
    n_layers = model_info.get("num_layers") if model_info else None
    result["model"] = model_info
    result["models_loaded"] = len(models)
    result["tokenizer"] = None
    if state is not None and state.tokenizers:
        result["tokenizer"] = {k: v for k, v in state.tokenizers[-1].items() if k != "ref"}

    # hooks, with module paths and whether they are still registered
    hooks = []
    global_dicts = {"global_forward": "_global_forward_hooks", "global_forward_pre": "_global_forward_pre_hooks"}
    for rec in (state.hooks if state is not None else []):
        module = rec["module_ref"]() if rec["module_ref"] is not None else None
        if rec["kind"] in global_dicts:
            live = getattr(torch.nn.modules.module, global_dicts[rec["kind"]], {})
            path = "<global>"
        else:
            live = getattr(module, "_forward_pre_hooks" if rec["kind"] == "forward_pre" else "_forward_hooks", {}) \
                if module is not None else {}
            path = paths.get(id(module)) if module is not None else None
            if path is None:
                path = f"<{rec['module_type']} outside the loaded model>"
        hooks.append({"module": path, "module_type": rec["module_type"], "kind": rec["kind"],
                      "with_kwargs": rec["with_kwargs"], "removed": rec["handle_id"] not in live,
                      "hook_name": rec["hook_name"], "cell": rec["cell"], "origin": rec.get("origin", "student")})
    result["hooks"] = hooks
    # hooks that are live on the model but never went through the recorder: registration bypassed it
    recorded = {(id(r["module_ref"]()), r["handle_id"]) for r in (state.hooks if state is not None else [])
                if r["module_ref"] is not None}
    for m, _ in models:
        for path, sub in m.named_modules():
            for attr in ("_forward_hooks", "_forward_pre_hooks"):
                for hid in list(getattr(sub, attr, {}) or {}):
                    if state is not None and (id(sub), hid) not in recorded:
                        result["tampered"].append(f"a hook on {path or 'the model'} was registered around the "
                                                  "grader's recorder")
                        break
    result["tampered"] = list(dict.fromkeys(result["tampered"]))[:10]
    result["forwards"] = list(state.forwards) if state is not None else []
    result["n_forwards"] = state.n_forwards if state is not None else 0
    result["project_imports"] = list(state.project_imports) if state is not None else []
    result["project_modules_loaded"] = sorted(
        n for n in sys.modules if n.split(".")[0] in PROJECT_PACKAGES and n != STATE_MODULE
    )

    # the student's captures and projections, whatever the variable names
    skip = {"In", "Out", "exit", "quit", "get_ipython"}
    found = {"captures": [], "projections": []}
    for name, value in list(ns.items()):
        if name.startswith("_") or name in skip or isinstance(value, (type, type(sys))) or callable(value) \
                and not isinstance(value, (torch.Tensor, np.ndarray)):
            continue
        try:
            arrays, layout = _per_layer(value, n_layers or 36)
        except Exception as exc:  # noqa: BLE001 - a strange object must not stop extraction
            result["errors"].append(f"reading {name}: {exc!r}")
            continue
        kind = _classify(arrays, hidden) if arrays else None
        if kind:
            found[kind].append((name, layout, arrays))
    # Every candidate is saved (within the byte limit); the grader, not the kernel, decides which
    # one to judge. The primary one covers the most layers (ties: the one defined last).
    max_bytes = int(config.get("max_extract_bytes", 1 << 30))
    to_save, total = {}, 0
    for kind in ("captures", "projections"):
        summaries = []
        for name, layout, arrays in found[kind]:
            keys = sorted(arrays)
            first_arr, first_info = arrays[keys[0]]
            summary = {"variable": name, "layout": layout, "keys": keys, "shape": list(first_arr.shape),
                       "shapes_differ": len({a.shape for a, _ in arrays.values()}) > 1,
                       "dtype": first_info["dtype"], "type": first_info["type"],
                       "wrapped_in": first_info["wrapped_in"], "saved": True}
            size = sum(a.nbytes for a, _ in arrays.values())
            if total + size > max_bytes:
                summary["saved"] = False
                summary["not_saved_reason"] = f"{size} bytes would pass the grader's limit of {max_bytes}"
            else:
                total += size
                for k in keys:
                    to_save[f"{kind}.{name}.{k}"] = np.ascontiguousarray(arrays[k][0])
            summaries.append(summary)
        ranked = sorted(enumerate(summaries), key=lambda p: (len(p[1]["keys"]), p[0]))
        result[kind] = ranked[-1][1] if ranked else None
        result[f"{kind}_candidates"] = summaries
    np.savez(os.path.join(out_dir, "extracted.npz"), **to_save)
    with open(os.path.join(out_dir, "probe.json"), "w") as fh:
        json.dump(result, fh, default=str)
    return {"ok": True}
