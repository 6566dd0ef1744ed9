"""Third part of the kernel-side environment shim (see colab_env.py): a stand-in for torch_xla, so a
notebook written for Colab's TPU runtime ("make sure to be using a GPU or TPU runtime") runs on the
grader's CPU. Self-contained source with no `from __future__` line and no imports from this project: it
is appended to colab_env.py's source (`colab_env.kernel_source()`), whose `install(config)` calls
`_install_xla` (always; it does nothing where torch_xla is really importable).

The stand-in is served by a meta-path finder appended last to sys.meta_path, the import system's designed
point for modules that nothing else provides: a real torch_xla is found before it. It serves only
imports made by the notebook's own code (the importing frame, as colab_env._notebook_test decides), so
libraries that probe for torch_xla (transformers' and accelerate's availability checks) still find none;
transformers' cached answer is taken before the finder goes in.

What it does: `xm.xla_device()`, `torch_xla.device()` and `xm.get_xla_supported_devices()` give the
CPU device, so `.to(device)` is a same-device move (nothing copied or cast); `xm.mark_step()`,
`torch_xla.sync()` and `xm.wait_device_ops()` do nothing (the CPU runs eagerly); one process:
world size 1, ordinal 0, master; `xm.optimizer_step(opt)` is `opt.step()`, `xm.save` is `torch.save`,
`xmp.spawn(fn, args)` calls `fn(0, *args)`, `pl.MpDeviceLoader(loader, device)` is the loader,
`torch_xla.compile` and `torch_xla.amp.autocast` change nothing. Any other public function of these
modules is a recorded no-op returning None. Kinds: xla.import, xla.device, xla.call.
"""

XLA_MODULES = ("torch_xla", "torch_xla.core", "torch_xla.core.xla_model", "torch_xla.runtime", "torch_xla.amp",
               "torch_xla.debug", "torch_xla.debug.metrics", "torch_xla.distributed",
               "torch_xla.distributed.xla_multiprocessing", "torch_xla.distributed.parallel_loader")
XLA_SHORT = {"torch_xla": "torch_xla", "torch_xla.core.xla_model": "xm", "torch_xla.runtime": "xr",
             "torch_xla.distributed.xla_multiprocessing": "xmp", "torch_xla.distributed.parallel_loader": "pl",
             "torch_xla.debug.metrics": "met"}
XLA_DEVICE_NOTE = "the CPU (the grader has no TPU; XLA code runs on the CPU)"


def _install_xla(config: dict, env, record) -> None:
    import contextlib
    import importlib
    import importlib.util
    import os
    import sys
    import types

    if importlib.util.find_spec("torch_xla") is not None:
        return  # the real torch_xla: nothing to stand in for
    import torch
    import transformers.utils.import_utils as iu

    iu.is_torch_xla_available()  # cached now (False), before the notebook can import the stand-in
    from_notebook = _notebook_test()  # from colab_env.py
    machinery = (os.path.join(os.path.dirname(importlib.__file__), ""), "<frozen importlib")
    cpu = torch.device("cpu")

    def importer_is_notebook() -> bool:
        frame = sys._getframe(2)
        while frame is not None:
            name = frame.f_code.co_filename
            if not name.startswith(machinery) and not name.startswith("<grader"):
                return from_notebook(frame)
            frame = frame.f_back
        return False

    def device_call(qualname, value):
        def call(*args, **kwargs):
            record("xla.device", f"{qualname}() -> {XLA_DEVICE_NOTE}")
            return value() if callable(value) else value

        call.__name__ = qualname.rsplit(".", 1)[-1]
        return call

    def answering(qualname, value=None, note=None):
        def call(*args, **kwargs):
            record("xla.call", f"{qualname}() {note or ('-> ' + repr(value) if value is not None else 'did nothing')}"
                               " (torch_xla stand-in)")
            return value(*args, **kwargs) if callable(value) else value

        call.__name__ = qualname.rsplit(".", 1)[-1]
        return call

    def optimizer_step(optimizer, barrier=False, optimizer_args=None, groups=None, pin_layout=True):
        return optimizer.step(**(optimizer_args or {}))

    def save(data, file_or_path, master_only=True, global_master=False):
        return torch.save(data, file_or_path)

    def spawn(fn, args=(), nprocs=None, start_method="spawn"):
        return fn(0, *args)

    class autocast(contextlib.nullcontext):
        def __init__(self, device=None, dtype=None, enabled=True, cache_enabled=None):
            record("xla.call", f"torch_xla.amp.autocast(dtype={dtype}) ran as a no-op: the model kept its dtype")
            super().__init__()

        def __call__(self, fn):
            return fn

    def compile_(f=None, full_graph=False, name=None, num_different_graphs_allowed=None):
        record("xla.call", "torch_xla.compile(...) changed nothing (the CPU runs eagerly)")
        return f if f is not None else contextlib.nullcontext()

    eager = "did nothing (the CPU runs eagerly)"
    contents = {
        "torch_xla": {"device": device_call("torch_xla.device", cpu), "devices": device_call("torch_xla.devices", [cpu]),
                      "device_count": answering("torch_xla.device_count", 1), "sync": answering("torch_xla.sync", None, eager),
                      "compile": compile_, "__version__": "0+grader.stand.in"},
        "torch_xla.core.xla_model": {
            "xla_device": device_call("xm.xla_device", cpu),
            "get_xla_supported_devices": device_call("xm.get_xla_supported_devices", ["cpu"]),
            "xla_device_hw": answering("xm.xla_device_hw", "CPU"),
            "mark_step": answering("xm.mark_step", None, eager), "wait_device_ops": answering("xm.wait_device_ops", None, eager),
            "xrt_world_size": answering("xm.xrt_world_size", 1), "world_size": answering("xm.world_size", 1),
            "get_ordinal": answering("xm.get_ordinal", 0), "get_local_ordinal": answering("xm.get_local_ordinal", 0),
            "is_master_ordinal": answering("xm.is_master_ordinal", True),
            "master_print": answering("xm.master_print", print, "printed"),
            "optimizer_step": answering("xm.optimizer_step", optimizer_step, "ran optimizer.step()"),
            "save": answering("xm.save", save, "ran torch.save"), "rendezvous": answering("xm.rendezvous"),
        },
        "torch_xla.runtime": {"device_type": answering("xr.device_type", "CPU"), "world_size": answering("xr.world_size", 1),
                              "global_ordinal": answering("xr.global_ordinal", 0),
                              "local_ordinal": answering("xr.local_ordinal", 0),
                              "global_runtime_device_count": answering("xr.global_runtime_device_count", 1),
                              "addressable_device_count": answering("xr.addressable_device_count", 1),
                              "use_spmd": answering("xr.use_spmd"), "is_spmd": answering("xr.is_spmd", False)},
        "torch_xla.amp": {"autocast": autocast},
        "torch_xla.distributed.xla_multiprocessing": {"spawn": answering("xmp.spawn", spawn, "called fn(0, *args)")},
        "torch_xla.distributed.parallel_loader": {
            "MpDeviceLoader": answering("pl.MpDeviceLoader", lambda loader, *a, **k: loader, "-> the loader itself")},
        "torch_xla.debug.metrics": {
            "metrics_report": answering("met.metrics_report", "the grader's torch_xla stand-in keeps no metrics")},
    }

    def build(name: str) -> types.ModuleType:
        module = types.ModuleType(name, "The grader's stand-in for torch_xla: no TPU here, XLA code runs on the CPU.")
        for attr, value in contents.get(name, {}).items():
            setattr(module, attr, value)
        short = XLA_SHORT.get(name, name)
        record("xla.import", f"import {name}: the grader's stand-in (no TPU; runs on the CPU)")

        def __getattr__(attr):
            if attr.startswith("_"):
                raise AttributeError(f"module {name!r} (the grader's torch_xla stand-in) has no attribute {attr!r}")
            if f"{name}.{attr}" in XLA_MODULES:  # torch_xla.core.xla_model after `import torch_xla` alone
                return importlib.import_module(f"{name}.{attr}")
            return answering(f"{short}.{attr}")

        module.__getattr__ = __getattr__
        return module

    class XlaFinder:
        """Serves XLA_MODULES to the notebook's own imports, last on sys.meta_path."""

        def find_spec(self, fullname, path=None, target=None):
            if fullname not in XLA_MODULES or not importer_is_notebook():
                return None
            package = fullname == "torch_xla" or any(m.startswith(fullname + ".") for m in XLA_MODULES)
            return importlib.util.spec_from_loader(fullname, self, is_package=package)

        def create_module(self, spec):
            return build(spec.name)

        def exec_module(self, module):
            pass

    env.xla_finder = XlaFinder()
    sys.meta_path.append(env.xla_finder)
