"""Instrumentation that runs INSIDE the student's kernel, before the first student cell.

Self-contained: imports nothing from this project, so it is sent as source text (importing `grader`
from a notebook stays detectable). `install(config)` wraps the registration functions of forward
hooks (per module and global), the top-level call of every Hugging Face model, `generate`, and
`from_pretrained` of models and tokenizers, and records each event with the index of the notebook
cell it happened in, in the state module `__qgrader_probe__`. Nothing about the student's code
changes: every wrapper calls the original and returns its result, and sets `__tracebackhide__`
(IPython's designed marker) so a student's traceback shows their code and the libraries', not the
recorder. grader/execute/extract.py reads the state back after the last cell.
"""

STATE_MODULE = "__qgrader_probe__"
SET_CELL = "__import__('sys').modules.get({m!r}) and setattr(__import__('sys').modules[{m!r}], 'current_cell', {i})"
PROJECT_PACKAGES = ("reference", "grader", "fixtures", "miniature")
MAX_FORWARDS = 64  # forward records kept (generate() makes one per new token)
MAX_IDS_KEPT = 4096  # token ids kept per forward record, so the grader can rerun a student's own prompt


def describe_model(m, **extra) -> dict:
    """What the grader records about a loaded model: class, name, layers, width, dtype, device."""
    c = m.config
    p = next(m.parameters(), None)
    return {"class": type(m).__name__, **extra, "name_or_path": getattr(c, "_name_or_path", None),
            "num_layers": getattr(c, "num_hidden_layers", None), "hidden_size": getattr(c, "hidden_size", None),
            "dtype": str(p.dtype).replace("torch.", "") if p is not None else None,
            "device": str(p.device) if p is not None else None}


def describe_tokenizer(t) -> dict:
    return {"class": type(t).__name__, "name_or_path": getattr(t, "name_or_path", None),
            "vocab_size": getattr(t, "vocab_size", None)}


def _new_state(config: dict):
    import types

    state = types.ModuleType(STATE_MODULE)
    state.nonce = config["nonce"]
    state.hooks, state.forwards, state.models, state.tokenizers = [], [], [], []
    state.n_forwards, state.depth, state.in_generate = 0, 0, 0
    state.project_imports, state.errors = [], []
    state.patched = {}
    state.current_cell = None  # index of the notebook cell running now; the grader sets it
    state.describe_model = describe_model
    return state


def _origin_of_caller(library_dirs: tuple[str, str]):
    """A function naming who registered a hook: 'student', or the library that did it itself
    (transformers records output_hidden_states with hooks of its own)."""
    import sys

    def origin() -> str:
        frame = sys._getframe(3)
        while frame is not None and frame.f_code.co_filename.startswith(library_dirs[0]):
            frame = frame.f_back  # torch's own helpers: look at who called them
        name = frame.f_code.co_filename if frame is not None else ""
        for lib, path in zip(("torch", "transformers"), library_dirs):
            if name.startswith(path):
                return lib
        return "student"

    return origin


def _hook_registration(state, kind: str, original, origin, per_module: bool):
    """A wrapper of a hook-registration function that records each registration once."""
    import functools
    import weakref

    def record(module, hook, handle, kwargs) -> None:
        try:
            state.hooks.append({
                "module_ref": weakref.ref(module) if module is not None else None,
                "module_type": type(module).__name__ if module is not None else None, "kind": kind,
                "with_kwargs": bool(kwargs.get("with_kwargs", False)), "handle_id": handle.id,
                "hook_name": getattr(hook, "__qualname__", type(hook).__name__), "cell": state.current_cell,
                "origin": origin(),
            })
        except Exception as exc:  # noqa: BLE001 - recording must never break student code
            state.errors.append(f"hook record: {exc!r}")

    if per_module:
        @functools.wraps(original)
        def register(self, hook, *args, **kwargs):
            __tracebackhide__ = True  # IPython leaves this frame out of the student's traceback
            handle = original(self, hook, *args, **kwargs)
            record(self, hook, handle, kwargs)
            return handle
    else:
        @functools.wraps(original)
        def register(hook, *args, **kwargs):
            __tracebackhide__ = True
            handle = original(hook, *args, **kwargs)
            record(None, hook, handle, kwargs)
            return handle
    return register


def _forward_recorder(state, original_call):
    """Module.__call__ for Hugging Face models: records each top-level forward and its token ids."""
    import hashlib

    import numpy as np
    import torch

    def record(self, args, kwargs) -> None:
        ids = kwargs.get("input_ids")
        if ids is None and args and isinstance(args[0], torch.Tensor):
            ids = args[0]
        state.n_forwards += 1
        if len(state.forwards) >= MAX_FORWARDS:
            return
        rec = {"model_type": type(self).__name__, "model_ref_id": id(self), "cell": state.current_cell,
               "from_generate": state.in_generate > 0,
               "output_hidden_states": bool(kwargs.get("output_hidden_states")),
               "inputs_embeds": kwargs.get("inputs_embeds") is not None}
        if isinstance(ids, torch.Tensor):
            first = ids.detach().to("cpu").reshape(-1, ids.shape[-1])[0].tolist()
            rec.update(shape=list(ids.shape), n_tokens=int(ids.shape[-1]),
                       input_ids_sha256=hashlib.sha256(np.asarray(first, dtype=np.int64).tobytes()).hexdigest(),
                       input_ids=first if len(first) <= MAX_IDS_KEPT else None)
        state.forwards.append(rec)

    def model_call(self, *args, **kwargs):
        __tracebackhide__ = True  # the student sees their call and the library's frames, not this wrapper
        if state.depth == 0:
            try:
                record(self, args, kwargs)
            except Exception as exc:  # noqa: BLE001
                state.errors.append(f"forward record: {exc!r}")
        state.depth += 1
        try:
            return original_call(self, *args, **kwargs)
        finally:
            state.depth -= 1

    return model_call


def _generate_wrapper(state, original_generate):
    import functools

    @functools.wraps(original_generate)
    def generate(self, *args, **kwargs):
        __tracebackhide__ = True
        state.in_generate += 1
        try:
            return original_generate(self, *args, **kwargs)
        finally:
            state.in_generate -= 1

    return generate


def _load_recorder(state, owner, store, describe):
    """from_pretrained as a classmethod that records what was loaded (a weak reference and a description)."""
    import functools
    import weakref

    original = owner.__dict__["from_pretrained"].__func__

    @functools.wraps(original)
    def from_pretrained(cls, *args, **kwargs):
        __tracebackhide__ = True
        obj = original(cls, *args, **kwargs)
        try:
            store.append({"ref": weakref.ref(obj), "cell": state.current_cell, **describe(obj)})
        except Exception as exc:  # noqa: BLE001
            state.errors.append(f"load record: {exc!r}")
        return obj

    return classmethod(from_pretrained)


def _patches(state) -> list:
    """(owner, attribute, replacement) for everything the recorder wraps."""
    import os

    import torch
    import transformers

    module_cls, module_mod = torch.nn.Module, torch.nn.modules.module
    origin = _origin_of_caller(tuple(os.path.dirname(m.__file__) + os.sep for m in (torch, transformers)))
    pretrained = transformers.PreTrainedModel
    tokenizer_base = transformers.tokenization_utils_base.PreTrainedTokenizerBase
    generation = transformers.GenerationMixin
    return [
        (module_cls, "register_forward_hook",
         _hook_registration(state, "forward", module_cls.register_forward_hook, origin, True)),
        (module_cls, "register_forward_pre_hook",
         _hook_registration(state, "forward_pre", module_cls.register_forward_pre_hook, origin, True)),
        (module_mod, "register_module_forward_hook",
         _hook_registration(state, "global_forward", module_mod.register_module_forward_hook, origin, False)),
        (module_mod, "register_module_forward_pre_hook",
         _hook_registration(state, "global_forward_pre", module_mod.register_module_forward_pre_hook, origin, False)),
        (pretrained, "__call__", _forward_recorder(state, module_cls.__call__)),
        (generation, "generate", _generate_wrapper(state, generation.generate)),
        (pretrained, "from_pretrained", _load_recorder(state, pretrained, state.models, describe_model)),
        (tokenizer_base, "from_pretrained", _load_recorder(state, tokenizer_base, state.tokenizers, describe_tokenizer)),
    ]


class ProjectImportRecorder:
    """A meta-path finder that notes imports of this project's packages; never blocks them."""

    def __init__(self, state):
        self.state = state

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in PROJECT_PACKAGES and fullname not in self.state.project_imports:
            self.state.project_imports.append(fullname)
        return None


def seed_everything(seed: int) -> None:
    """The random draws a notebook makes without seeding (torch.pca_lowrank, sklearn's randomized PCA)
    come out the same on every run, so grading the same notebook twice gives the same results.
    A notebook that seeds itself overrides this, as it would on Colab."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def install(config: dict) -> None:
    import sys
    import types

    seed_everything(config.get("seed", 0))
    state = _new_state(config)
    for owner, name, new in _patches(state):
        setattr(owner, name, new)
        where = owner.__name__ if isinstance(owner, types.ModuleType) else f"{owner.__module__}.{owner.__qualname__}"
        state.patched[f"{where}.{name}"] = (owner, name, new)
    state.import_recorder = ProjectImportRecorder(state)
    sys.meta_path.insert(0, state.import_recorder)
    sys.modules[STATE_MODULE] = state
