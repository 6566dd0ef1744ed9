"""Kernel-side code of the carried-forward run (grader/execute/carry.py): runs INSIDE the student's kernel.

Self-contained like probe.py and extract.py (sent as source text, imports nothing from this project).
Three entry points, each called hidden through executor.hidden_call:

* `inject(config)`, right after the student's Part 4 forward: puts the reference's correct captures
  (config["npz"], one [N, d] float32 array per layer, "layer_0".."layer_{L-1}") into the student's own
  variable, in the container and form the variable has at that moment (dict keys and their style,
  list/tuple, a stacked array, tuple wrappers such as (tensor, None), the batch dimension, torch or
  numpy, dtype, device, requires_grad); an empty or missing variable gets config["fallback"] (what the
  grader read off the student's hook and Part 5 code). The student's own hooks are removed first, so a
  later forward cannot overwrite the correct captures. The npz file is deleted once read.
* `dry_plot(config)`, in place of the assignment's provided plotting cell (left unchanged by the
  student): reads what the cell reads (`model.config.num_hidden_layers`, then `NAME[layer_idx][k].numpy()`
  for k = 0, 1, 2 of every layer) without drawing, so the grader knows how many frames it would write
  and which error it would raise.
* `report(config)`: writes what inject and dry_plot found to config["out"] (JSON).

State lives in the module __qgrader_carry__ (nonce-checked).
"""

CARRY_MODULE = "__qgrader_carry__"
PROBE_MODULE = "__qgrader_probe__"


def _state(config: dict):
    import sys
    import types

    state = sys.modules.get(CARRY_MODULE)
    if state is None or getattr(state, "nonce", None) != config["nonce"]:
        state = types.ModuleType(CARRY_MODULE)
        state.nonce = config["nonce"]
        state.info = {"injected": None, "plot": None, "errors": []}
        sys.modules[CARRY_MODULE] = state
    return state


def _remove_student_hooks() -> int:
    """Remove every hook the student registered (recorded by the probe); returns how many were live."""
    import sys

    import torch

    probe = sys.modules.get(PROBE_MODULE)
    removed = 0
    for rec in (getattr(probe, "hooks", None) or []):
        if rec.get("origin", "student") != "student":
            continue
        hid = rec["handle_id"]
        if rec["kind"] in ("global_forward", "global_forward_pre"):
            mod = torch.nn.modules.module
            dicts = [getattr(mod, "_global_forward_hooks", {}), getattr(mod, "_global_forward_pre_hooks", {}),
                     getattr(mod, "_global_forward_hooks_always_called", {})]
        else:
            module = rec["module_ref"]() if rec["module_ref"] is not None else None
            if module is None:
                continue
            dicts = [getattr(module, name, {}) for name in (
                "_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
                "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs")]
        live = False
        for d in dicts:
            if isinstance(d, dict) and hid in d:
                d.pop(hid, None)
                live = True
        removed += live
    return removed


def _key_maker(keys: list, n_layers: int):
    """A function layer -> key in the student's own key style, and the key base (0 or 1)."""
    import re

    if not keys:
        return (lambda i: i), 0
    ints = [k for k in keys if isinstance(k, int) and not isinstance(k, bool)]
    if ints and len(ints) == len(keys):
        base = 1 if min(ints) >= 1 and max(ints) == n_layers else 0
        kind = type(keys[0])
        return (lambda i: kind(i + base)), base
    strs = [k for k in keys if isinstance(k, str)]
    if strs:
        def number(text):  # the number that names the layer: after layers./layer_/L, else the last one
            m = re.search(r"(?:layers?|blocks?|h|l)[.\s_/-]?(\d+)", text, re.I)
            if m:
                return m.start(1), m.end(1)
            found = list(re.finditer(r"\d+", text))
            return (found[-1].start(), found[-1].end()) if found else None

        sample = strs[0]
        span = number(sample)
        if span:
            nums = [int(s[a:b]) for s in strs if (ab := number(s)) for a, b in [ab]]
            base = 1 if nums and min(nums) >= 1 and n_layers in nums else 0
            head, tail = sample[:span[0]], sample[span[1]:]
            return (lambda i: f"{head}{i + base}{tail}"), base
    return (lambda i: i), 0


def _template(value):
    """The first captured item of a container (what one layer's entry looks like), or None."""
    if isinstance(value, dict):
        for v in list(value.values())[:512]:
            return v
        return None
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return None


def _describe_form(item) -> dict:
    """How one layer's entry is stored: wrapper, library, dtype, batch dims, device, requires_grad."""
    import numpy as np
    import torch

    form = {"wrapper": None, "extra": None, "lib": "torch", "dtype": None, "batch": True, "device": "cpu",
            "grad": False}
    if isinstance(item, (tuple, list)) and item:
        if all(isinstance(v, (torch.Tensor, np.ndarray)) for v in item) and len(item) >= 2 and \
                len({getattr(v, "ndim", 0) for v in item}) == 1:
            form["wrapper"] = "per_forward_list"
        else:
            form["wrapper"] = type(item).__name__
            form["extra"] = list(item[1:])
        item = item[0]
    if isinstance(item, torch.Tensor):
        form.update(lib="torch", dtype=str(item.dtype).replace("torch.", ""), batch=item.ndim >= 3,
                    device=str(item.device), grad=bool(item.requires_grad))
    elif isinstance(item, np.ndarray):
        form.update(lib="numpy", dtype=str(item.dtype), batch=item.ndim >= 3)
    else:
        return {}
    return form


def _make_item(x, form: dict):
    """One layer's correct capture [N, d] (float32 numpy) in the student's form."""
    import numpy as np
    import torch

    arr = x[None] if form.get("batch", True) else x
    if form.get("lib") == "numpy":
        value = arr.astype(form.get("dtype") or "float32", copy=True)
    else:
        dtype = getattr(torch, form.get("dtype") or "float32", torch.float32)
        value = torch.from_numpy(np.ascontiguousarray(arr)).to(dtype=dtype)
        device = form.get("device") or "cpu"
        if device != "cpu":
            try:
                value = value.to(device)
            except Exception:  # noqa: BLE001 - the CPU copy is what the student's code got on the grader
                pass
        if form.get("grad") and value.is_floating_point():
            value.requires_grad_(True)
    wrapper = form.get("wrapper")
    if wrapper == "per_forward_list":
        return [value]
    if wrapper in ("tuple", "list"):
        items = [value, *(form.get("extra") or [])]
        return tuple(items) if wrapper == "tuple" else items
    return value


def _words(form: dict) -> str:
    shape = "[1, N, d]" if form.get("batch", True) else "[N, d]"
    what = f"{form.get('lib', 'torch')} {form.get('dtype') or 'float32'} {shape}"
    wrapper = form.get("wrapper")
    if wrapper == "per_forward_list":
        return f"a list of one {what} (one per forward)"
    if wrapper:
        return f"a {wrapper} whose first item is a {what}"
    return what


def _build(existing, layers: list, n_layers: int, fallback: dict):
    """(new value, description) in the container of `existing` (or the fallback's)."""
    import collections

    import numpy as np
    import torch

    template = _template(existing)
    form = _describe_form(template) if template is not None else {}
    if not form:
        form = dict(fallback.get("form") or {})
    if isinstance(existing, (torch.Tensor, np.ndarray)) and existing.ndim >= 3 and existing.shape[0] in (n_layers, n_layers + 1):
        stacked = np.stack([x[None] if existing.ndim == 4 else x for x in layers])
        if isinstance(existing, torch.Tensor):
            value = torch.from_numpy(stacked).to(existing.dtype)
        else:
            value = stacked.astype(existing.dtype)
        return value, f"one stacked array of shape {list(stacked.shape)}"
    layout = "dict" if isinstance(existing, dict) else "list" if isinstance(existing, list) else \
        "tuple" if isinstance(existing, tuple) else fallback.get("layout", "dict")
    if layout == "dict":
        keys = list(existing)[:512] if isinstance(existing, dict) else []
        key, base = _key_maker(keys, n_layers)
        if isinstance(existing, collections.defaultdict):
            value = collections.defaultdict(existing.default_factory)
        elif isinstance(existing, dict) and type(existing) is not dict:
            try:
                value = type(existing)()
            except Exception:  # noqa: BLE001
                value = {}
        else:
            value = {}
        for i, x in enumerate(layers):
            value[key(i)] = _make_item(x, form)
        sample = key(0)
        return value, (f"a dict of {n_layers} layers keyed {sample!r}..{key(n_layers - 1)!r}, each {_words(form)}")
    items = [_make_item(x, form) for x in layers]
    value = tuple(items) if layout == "tuple" else items
    return value, f"a {layout} of {n_layers} layers in layer order, each {_words(form)}"


def _describe_existing(name: str, ns: dict) -> str:
    if name not in ns:
        return "missing"
    value = ns[name]
    if isinstance(value, (dict, list, tuple)):
        return f"{type(value).__name__} of {len(value)} item(s)"
    return type(value).__name__


def inject(config: dict) -> dict:
    import os

    import numpy as np

    state = _state(config)
    ns = get_ipython().user_ns  # noqa: F821
    info = {"variable": config["variable"], "hooks_removed": 0}
    try:
        info["hooks_removed"] = _remove_student_hooks()
    except Exception as exc:  # noqa: BLE001
        state.info["errors"].append(f"removing hooks: {exc!r}")
    with np.load(config["npz"], allow_pickle=False) as data:
        layers = [np.asarray(data[f"layer_{i}"], dtype=np.float32) for i in range(int(config["n_layers"]))]
    try:
        os.remove(config["npz"])
    except OSError:
        pass
    name = config["variable"]
    info["found"] = _describe_existing(name, ns)
    existing = ns.get(name)
    if existing is not None and not isinstance(existing, (dict, list, tuple)) and not hasattr(existing, "shape"):
        existing = None
    value, words = _build(existing, layers, len(layers), config.get("fallback") or {})
    ns[name] = value
    info["built"] = words
    state.info["injected"] = info
    return info


def dry_plot(config: dict) -> dict:
    state = _state(config)
    ns = get_ipython().user_ns  # noqa: F821
    name = config["variable"]
    result = {"variable": name, "frames": 0, "ename": None, "evalue": None, "layers": None}
    try:
        n = int(eval("model.config.num_hidden_layers", ns))  # noqa: S307 - what the provided cell reads
        result["layers"] = n
        for layer_idx in range(n):
            projected_values = ns[name][layer_idx] if name in ns else eval(name, ns)  # noqa: S307
            x, y, z = projected_values[0].numpy(), projected_values[1].numpy(), projected_values[2].numpy()
            len(x), len(y), len(z)
            result["frames"] += 1
    except Exception as exc:  # noqa: BLE001 - the error the provided cell would raise
        result["ename"], result["evalue"] = type(exc).__name__, str(exc)[:300]
    state.info["plot"] = result
    return result


def report(config: dict) -> dict:
    import json

    state = _state(config)
    with open(config["out"], "w") as fh:
        json.dump(state.info, fh, default=str)
    return state.info
