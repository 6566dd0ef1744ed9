"""Kernel-side environment shim: notebooks written on Google Colab (GPU runtime) run unchanged on the
grader's CPU kernel. Kernel-side source like probe.py: it imports nothing from this project. It is
in two files, this one and colab_env_shell.py: `kernel_source()` (grader side) returns the two texts
concatenated. The executor sends that text into the kernel and, hidden, before the first student
cell, execs it in a private namespace and calls `install(config)` there, exactly as it does for the
probe (e.g. `hidden_call(kernel_source(), "install", config)`); the code must be compiled under a
filename starting with "<grader" ("<grader-probe>", "<grader-env>"): such frames count as grader code.

config: {"remap_cuda": bool, "workdir": str, "nonce": str}. Every adaptation is recorded in the
module sys.modules["__qgrader_env__"]: `adaptations` (list of {"kind", "detail", "cell"}, one entry
per distinct (kind, detail, cell), at most MAX_RECORDS) and `summary()` -> {"adaptations": [...],
"counts": {kind: number of times}} (counts keep counting past the cap). A part that could not be
installed leaves its exception in `errors` (list of str) and the other parts still work.

Kinds: with remap_cuda only: device.tensor, device.module, device.batch, device.factory, device.map,
device.default, device.load, cuda.query, cuda.call, cuda.autocast, shell.gpu; always: colab.import,
colab.drive, colab.userdata, colab.call, hf.login, shell.pip, shell.network, attn.flash; where torch_xla is
not really importable: xla.import, xla.device, xla.call (colab_env_tpu.py: Colab's TPU runtime).

Attention (always). attn_implementation="flash_attention_2" (or _3, or a flash kernel from the Hub) that
transformers refuses here (flash-attn is a CUDA-only package, absent on the grader) runs as "sdpa":
PreTrainedModel._check_and_adjust_attn_implementation, where transformers checks and resolves the
requested implementation (from __init__ and set_attn_implementation), first tries what the notebook
asked and only on its refusal resolves "sdpa" instead. Flash attention and SDPA compute the same
attention, so the residual stream agrees within the dtype's tolerance. Where flash-attn works (a GPU
grader with it installed) nothing changes.

Devices (remap_cuda only). A `torch.overrides.TorchFunctionMode`, entered once for the rest of the
kernel's life (torch keeps the mode stack per thread: the kernel's main thread, where cells run),
rewrites "cuda"/"cuda:N"/torch.device("cuda")/int device arguments to "cpu": Tensor.to/.cuda,
Module.to/.cuda (they call Tensor.to/.cuda per parameter), BatchEncoding.to, factory functions
(device=...) and `with torch.device("cuda")`. Same-device .to() returns the tensor itself, as torch
does, so nothing is copied or cast: numerics are unchanged. from_pretrained's device_map is rewritten
where transformers normalises it (modeling_utils.check_and_set_device_map), not by wrapping
from_pretrained, which the recorder (probe.py) wraps and checks for tampering. torch.autocast("cuda")
becomes a no-op context (the model keeps the dtype it was loaded in); torch.set_default_device("cuda")
becomes "cpu"; torch.load(map_location="cuda") (or a file saved on a GPU) loads on the CPU;
torch.cuda.* helpers answer as an idle GPU would (memory 0, no-op seeds and syncs, Events timed with
the wall clock, get_device_capability() (7, 5) like Colab's usual T4, so capability-based choices
avoid bf16-only paths and flash attention). Not covered: torch.Generator(device="cuda"), tensors
moved in other threads (torch modes are per thread), `x.is_cuda` / `x.device.type == "cuda"` tests.

torch.cuda.is_available() returns True when called from the notebook's own code and the real False
when called from libraries (torch, transformers, accelerate, anything under site-packages or the
stdlib). The caller's frame decides: cells compile to /tmp/ipykernel_*/..., <ipython-input-...> or
<timed exec>, none of which is a library path. So `DEVICE = "cuda" if torch.cuda.is_available() else
"cpu"` and `dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32` take the branch
they took on Colab (same dtype, same code path), while libraries keep seeing a CPU machine and never
try to initialise CUDA. device_count() follows the same rule (1 vs the real 0).
"""

from __future__ import annotations

ENV_MODULE = "__qgrader_env__"
PROBE_MODULE = "__qgrader_probe__"
MAX_RECORDS = 200
GPU_NAME = "CPU (the grader has no GPU; CUDA code runs on the CPU)"


KERNEL_FILES = ("colab_env.py", "colab_env_shell.py", "colab_env_tpu.py")  # concatenated, in this order


def kernel_source() -> str:
    """Grader side only: the complete kernel source, this file followed by colab_env_shell.py and
    colab_env_tpu.py."""
    from pathlib import Path

    here = Path(__file__).resolve().parent
    return "\n\n".join((here / name).read_text() for name in KERNEL_FILES)


def install(config: dict) -> None:
    import sys
    import types

    missing = [name for name in ("_install_shell", "_install_xla") if name not in globals()]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} missing: colab_env_shell.py and colab_env_tpu.py were not appended; "
                           "send colab_env.kernel_source() to the kernel")

    old = sys.modules.get(ENV_MODULE)
    if old is not None and getattr(old, "nonce", None) == config["nonce"]:
        return  # installed already
    env = types.ModuleType(ENV_MODULE)
    env.nonce, env.config = config["nonce"], dict(config)
    env.adaptations, env.counts, env.errors, env.seen = [], {}, [], set()

    def record(kind: str, detail: str) -> None:
        env.counts[kind] = env.counts.get(kind, 0) + 1
        probe = sys.modules.get(PROBE_MODULE)
        cell = getattr(probe, "current_cell", None) if probe is not None else None
        key = (kind, detail, cell)
        if key not in env.seen and len(env.adaptations) < MAX_RECORDS:
            env.seen.add(key)
            env.adaptations.append({"kind": kind, "detail": detail, "cell": cell})

    env.record = record
    env.summary = lambda: {"adaptations": [dict(a) for a in env.adaptations], "counts": dict(env.counts)}
    sys.modules[ENV_MODULE] = env
    steps = [globals()["_install_colab"], globals()["_install_shell"]]  # from colab_env_shell.py
    steps += [_install_devices] if config.get("remap_cuda") else []
    steps += [_install_attention, globals()["_install_xla"]]  # _install_xla: from colab_env_tpu.py
    for step in steps:
        try:
            step(config, env, record)
        except Exception as exc:  # noqa: BLE001 - one missing piece must not stop the others
            env.errors.append(f"{step.__name__}: {exc!r}")


# ---------------------------------------------------------------------------------------------
# Devices


def _notebook_test():
    """from_notebook(frame): whether the code running in `frame` is the notebook's own (a cell:
    /tmp/ipykernel_*/..., <ipython-input-...>, <timed exec>) rather than a library's (the stdlib,
    site-packages, torch's folder) or the grader's ("<grader..." sources, "<frozen ...>" modules)."""
    import os
    import site
    import sysconfig

    import torch

    lib_dirs = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    lib_dirs |= set(getattr(site, "getsitepackages", lambda: [])()) | {site.getusersitepackages()}
    lib_dirs.add(os.path.dirname(os.path.dirname(torch.__file__)))
    lib_dirs = tuple(os.path.join(d, "") for d in lib_dirs if d)
    own = _notebook_test.__code__.co_filename

    def from_notebook(frame) -> bool:
        name = frame.f_code.co_filename if frame is not None else ""
        if name == own:
            return False
        if name.startswith("<"):
            return not name.startswith(("<grader", "<frozen"))
        return bool(name) and not name.startswith(lib_dirs)

    return from_notebook


def _install_devices(config: dict, env, record) -> None:
    import os
    import sys
    import time
    import types

    import torch
    from torch.overrides import TorchFunctionMode

    from_notebook = _notebook_test()

    def is_cuda(d) -> bool:
        if isinstance(d, str):
            return d.startswith("cuda")
        if isinstance(d, torch.device):
            return d.type == "cuda"
        return isinstance(d, int) and not isinstance(d, bool) and d >= 0

    def show(d) -> str:
        return f"'{d}'" if isinstance(d, (str, torch.device)) else repr(d)

    def context(call: str):
        """Who asked: a module's or a BatchEncoding's .to()/.cuda() up the stack, else the tensor."""
        frame = sys._getframe(2)
        for _ in range(16):
            if frame is None or from_notebook(frame):
                break
            owner = frame.f_locals.get("self") if frame.f_code.co_name in ("to", "cuda") else None
            if isinstance(owner, torch.nn.Module):
                return "device.module", f"{type(owner).__name__}.{call} kept it on the CPU"
            if owner is not None and hasattr(owner, "data") and isinstance(owner.data, dict):
                return "device.batch", f"{type(owner).__name__}.{call} kept the inputs on the CPU"
            frame = frame.f_back
        return "device.tensor", f"Tensor.{call} ran on the CPU"

    t_to, t_cuda, t_pin = torch.Tensor.to, torch.Tensor.cuda, torch.Tensor.pin_memory
    special = {t_to, t_cuda, t_pin}

    class CudaToCpu(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            __tracebackhide__ = True  # IPython leaves the shim out of the student's traceback
            kwargs = kwargs or {}
            if func in special:
                if func is t_cuda:  # .cuda(), .cuda(0), .cuda(device=...): the tensor itself, as .to("cpu")
                    d = args[1] if len(args) > 1 and args[1] is not None else kwargs.get("device")
                    record(*context("cuda()" if d is None else f"cuda({show(d)})"))
                    return args[0]
                if func is t_pin:
                    record("device.tensor", "Tensor.pin_memory() skipped (no GPU)")
                    return args[0]
                if len(args) > 1 and (isinstance(args[1], (str, torch.device)) or type(args[1]) is int) \
                        and is_cuda(args[1]):
                    record(*context(f"to({show(args[1])})"))
                    args = (args[0], "cpu", *args[2:])
            d = kwargs.get("device")
            if d is not None and is_cuda(d):
                kwargs = dict(kwargs, device="cpu")
                if func is t_to:
                    record(*context(f"to({show(d)})"))
                else:
                    record("device.factory", f"{getattr(func, '__name__', func)}(device={show(d)}) made it on the CPU")
            return func(*args, **kwargs)

    env.mode = CudaToCpu()
    env.mode.__enter__()  # never exited: the mode stays for the kernel's life

    cuda = torch.cuda
    real_available, real_count = cuda.is_available, cuda.device_count

    def is_available() -> bool:
        if from_notebook(sys._getframe(1)):
            record("cuda.query", "torch.cuda.is_available() -> True for the notebook (it runs on the CPU)")
            return True
        return real_available()

    def device_count() -> int:
        if from_notebook(sys._getframe(1)):
            record("cuda.query", "torch.cuda.device_count() -> 1 for the notebook")
            return 1
        return real_count()

    def memory():
        try:
            page = os.sysconf("SC_PAGE_SIZE")
            return os.sysconf("SC_AVPHYS_PAGES") * page, os.sysconf("SC_PHYS_PAGES") * page
        except (ValueError, OSError, AttributeError):
            return 0, 0

    answers = {  # name -> value returned (None: a no-op)
        "empty_cache": None, "synchronize": None, "ipc_collect": None, "set_device": None, "manual_seed": None,
        "manual_seed_all": None, "seed": None, "seed_all": None, "reset_peak_memory_stats": None,
        "reset_max_memory_allocated": None, "reset_accumulated_memory_stats": None, "memory_allocated": 0,
        "max_memory_allocated": 0, "memory_reserved": 0, "max_memory_reserved": 0, "current_device": 0,
        "get_device_name": GPU_NAME, "is_bf16_supported": True, "get_device_capability": (7, 5),
        "memory_summary": "the grader runs on a CPU: no CUDA memory in use",
    }

    def answering(name, value):
        def call(*args, **kwargs):
            what = "answered for the CPU" if callable(value) else f"-> {value!r}"
            record("cuda.call", f"torch.cuda.{name}() {what} (no GPU)")
            return value() if callable(value) else value

        call.__name__ = call.__qualname__ = name
        return call

    for name, value in answers.items():
        setattr(cuda, name, answering(name, value))
    cuda.mem_get_info = answering("mem_get_info", memory)
    cuda.get_device_properties = answering("get_device_properties", lambda: types.SimpleNamespace(
        name=GPU_NAME, total_memory=memory()[1], major=7, minor=5, multi_processor_count=os.cpu_count() or 1))
    cuda.is_available, cuda.device_count = is_available, device_count

    class device:  # `with torch.cuda.device(0):`
        def __init__(self, device=None):
            record("cuda.call", "torch.cuda.device(...) context skipped (no GPU)")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    class Event:  # CUDA-event timing, measured with the wall clock
        def __init__(self, enable_timing=False, blocking=False, interprocess=False):
            self.t = None
            record("cuda.call", "torch.cuda.Event timing uses the wall clock")

        def record(self, stream=None):
            self.t = time.perf_counter()

        def elapsed_time(self, end) -> float:
            return (end.t - self.t) * 1000.0

        def synchronize(self):
            pass

        def wait(self, stream=None):
            pass

        def query(self) -> bool:
            return True

    cuda.device, cuda.Event = device, Event

    base = torch.amp.autocast_mode.autocast

    class autocast(base):
        def __init__(self, device_type="cuda", dtype=None, enabled=True, cache_enabled=None):
            __tracebackhide__ = True
            self.noop = str(device_type).startswith("cuda")
            if self.noop:
                self.device, self.fast_dtype, self._enabled = "cuda", dtype, False
                record("cuda.autocast",
                       f"torch.autocast('cuda', dtype={dtype}) ran as a no-op: the model kept its dtype")
            else:
                super().__init__(device_type, dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)

        def __enter__(self):
            __tracebackhide__ = True
            return self if self.noop else super().__enter__()

        def __exit__(self, *exc):
            __tracebackhide__ = True
            return False if self.noop else super().__exit__(*exc)

    def cuda_amp_autocast(enabled=True, dtype=torch.float16, cache_enabled=True):
        __tracebackhide__ = True
        return autocast("cuda", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)

    torch.autocast = torch.amp.autocast = autocast
    cuda.amp.autocast = cuda_amp_autocast

    real_default = torch.set_default_device

    def set_default_device(device):
        __tracebackhide__ = True
        if device is not None and is_cuda(device):
            record("device.default", f"torch.set_default_device('{device}') -> cpu")
            device = "cpu"
        return real_default(device)

    torch.set_default_device = set_default_device

    real_load = torch.load

    def load(f, map_location=None, *args, **kwargs):  # also for files saved on a GPU (attached from Colab)
        __tracebackhide__ = True
        cuda_map = is_cuda(map_location) if not isinstance(map_location, dict) else \
            any(is_cuda(v) for v in map_location.values())
        if cuda_map:
            record("device.load", f"torch.load(map_location={show(map_location)}) loaded on the CPU")
        return real_load(f, "cpu" if map_location is None or cuda_map else map_location, *args, **kwargs)

    torch.load = load

    import transformers.modeling_utils as mu

    real_check = mu.check_and_set_device_map

    def on_cpu(d):
        return "cpu" if is_cuda(d) or d in ("auto", "balanced", "balanced_low_0", "sequential") else d

    def check_and_set_device_map(device_map):
        __tracebackhide__ = True
        new = {k: on_cpu(v) for k, v in device_map.items()} if isinstance(device_map, dict) else on_cpu(device_map)
        if new != device_map:
            record("device.map", f"from_pretrained(device_map={device_map!r}) loaded on the CPU")
        return real_check(new)

    mu.check_and_set_device_map = check_and_set_device_map


# ---------------------------------------------------------------------------------------------
# Attention implementation

FLASH_REASON = ("flash-attn is a CUDA-only package and the grader cannot run it; PyTorch's SDPA attention computes "
                "the same attention (the residual stream agrees within the dtype's tolerance)")


def _install_attention(config: dict, env, record) -> None:
    import transformers.modeling_utils as mu

    base = mu.PreTrainedModel
    real = base._check_and_adjust_attn_implementation

    def _check_and_adjust_attn_implementation(self, attn_implementation, is_init_check=False, allow_all_kernels=False):
        try:
            return real(self, attn_implementation, is_init_check, allow_all_kernels)
        except (ImportError, ValueError, RuntimeError, OSError) as refused:
            if not (isinstance(attn_implementation, str) and "flash" in attn_implementation.lower()):
                raise
            applied = real(self, "sdpa", is_init_check, allow_all_kernels)
            record("attn.flash", f"attn_implementation={attn_implementation!r} ran as {applied!r} in "
                                 f"{type(self).__name__} (transformers refused it here: {type(refused).__name__}): "
                                 f"{FLASH_REASON}")
            return applied

    _check_and_adjust_attn_implementation.__wrapped__ = real
    base._check_and_adjust_attn_implementation = _check_and_adjust_attn_implementation
