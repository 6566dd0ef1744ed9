"""The Colab environment shim (grader/execute/colab_env.py + colab_env_shell.py + colab_env_tpu.py) in a real ipykernel:
cells a Colab student writes, for a GPU runtime, run unchanged on the CPU with the miniature as
Qwen/Qwen3-4B, and every adaptation is recorded. The recorder (probe.py) is installed first, as the
executor does, and must not see the shim as tampering."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import KernelManager

from grader.execute import probe
from grader.execute.colab_env import kernel_source
from miniature.hf_cache import offline_env

SOURCE = kernel_source()
PROBE_SOURCE = Path(probe.__file__).read_text()
# the recorder's own tamper check: every function it wrapped is still the one it installed
UNTOUCHED = ("[q for q, (o, n, new) in __import__('sys').modules['__qgrader_probe__'].patched.items() "
             "if not (o.__dict__.get(n) is new or (isinstance(new, classmethod) and "
             "getattr(o.__dict__.get(n), '__func__', None) is new.__func__))]")


def hidden_install(source: str, filename: str, config: dict) -> str:
    """Run `install(config)` of a kernel-side source in a private namespace, as the executor does
    (the executor compiles every kernel-side source under the name '<grader-probe>')."""
    from grader.execute.executor import hidden_call

    assert filename.startswith("<grader")
    return hidden_call(source, "install", config)


def env_call(config: dict) -> str:
    return hidden_install(SOURCE, "<grader-env>", config)


class ThisPython(KernelSpecManager):
    """This interpreter's ipykernel, whatever kernelspecs the machine has installed."""

    def get_kernel_spec(self, kernel_name):
        return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                          display_name="test", language="python", resource_dir="", env={})

    def find_kernel_specs(self):
        return {"this-python": ""}


class Kernel:
    """One ipykernel; `cell(code)` runs code as a student cell and returns its text output."""

    def __init__(self, cwd: Path, env: dict[str, str]):
        self.km = KernelManager(kernel_name="this-python", kernel_spec_manager=ThisPython())
        self.km.start_kernel(env=env, cwd=str(cwd))
        self.kc = self.km.client()
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=120)
        except RuntimeError:
            self.close()
            raise
        self.index = 0

    def hidden(self, code: str, timeout: float = 120) -> dict:
        reply = self.kc.execute_interactive(code, silent=True, store_history=False, timeout=timeout,
                                            output_hook=lambda msg: None)
        assert reply["content"]["status"] == "ok", reply["content"]
        return reply["content"]

    def value(self, expr: str):
        content = self.kc.execute_interactive("", silent=True, store_history=False, user_expressions={"v": expr},
                                              timeout=60, output_hook=lambda msg: None)["content"]
        v = content["user_expressions"]["v"]
        assert v["status"] == "ok", v
        return ast.literal_eval(v["data"]["text/plain"])

    def cell(self, code: str, timeout: float = 180) -> str:
        self.hidden(probe.SET_CELL.format(m=probe.STATE_MODULE, i=self.index))
        self.index += 1
        outs, errors = [], []

        def hook(msg):
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                outs.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                outs.append(content["data"].get("text/plain", "") + "\n")
            elif kind == "error":
                errors.append(f"{content['ename']}: {content['evalue']}\n" + "\n".join(content["traceback"]))

        reply = self.kc.execute_interactive(code, output_hook=hook, timeout=timeout)
        assert not errors and reply["content"]["status"] == "ok", "".join(errors) or reply["content"]
        return "".join(outs)

    def summary(self) -> dict:
        return self.value("__import__('sys').modules['__qgrader_env__'].summary()")

    def close(self):
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def kernel_env(hf_home: Path, home: Path, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "JPY_"))}
    env.update(offline_env(hf_home), HOME=str(home), MPLBACKEND="Agg", MPLCONFIGDIR=str(home / ".mpl"),
               IPYTHONDIR=str(home / ".ipython"), TQDM_DISABLE="1", OMP_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false", **extra)
    return env


@pytest.fixture(scope="module")
def gpu_kernel(hf_home, tmp_path_factory):
    """remap_cuda=True, the recorder installed first as in the executor."""
    workdir = tmp_path_factory.mktemp("colab-work")
    k = Kernel(workdir, kernel_env(hf_home, workdir))
    k.hidden(hidden_install(PROBE_SOURCE, "<grader-probe>", {"nonce": "n0nce", "out_dir": str(workdir / ".probe")}))
    k.hidden(env_call({"remap_cuda": True, "workdir": str(workdir), "nonce": "n0nce"}))
    k.workdir = workdir
    yield k
    k.close()


def test_gpu_notebook_runs_on_the_cpu(gpu_kernel):
    k = gpu_kernel
    out = k.cell(
        "import torch\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'\n"
        "dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32\n"
        "print(DEVICE, dtype, torch.cuda.device_count(), torch.cuda.get_device_name(0))\n"
        "lib = {}\n"  # code from a library path sees the real answer
        "exec(compile('import torch\\nr = (torch.cuda.is_available(), torch.cuda.device_count())', torch.__file__,"
        " 'exec'), lib)\n"
        "print('library sees', lib['r'])\n")
    assert "cuda torch.bfloat16 1 CPU" in out and "library sees (False, 0)" in out

    # userdata token, login, load as on Colab, model.to("cuda"), inputs.to("cuda"): same numbers as on the CPU
    out = k.cell(
        "from google.colab import userdata\n"
        "from huggingface_hub import login\n"
        "tok = userdata.get('HF_TOKEN')\n"
        "login(tok)\n"
        "tokenizer = AutoTokenizer.from_pretrained('Qwen/Qwen3-4B', token=tok)\n"
        "model = AutoModelForCausalLM.from_pretrained('Qwen/Qwen3-4B', token=tok, dtype=torch.float32)\n"
        "with torch.no_grad():\n"
        "    ref = model(**tokenizer('The residual stream', return_tensors='pt')).logits\n"
        "model = model.to('cuda')\n"
        "inputs = tokenizer('The residual stream', return_tensors='pt').to('cuda')\n"
        "with torch.no_grad():\n"
        "    logits = model(**inputs).logits\n"
        "print(model.config.num_hidden_layers, logits.device, logits.dtype, torch.equal(logits, ref))\n")
    assert "36 cpu torch.float32 True" in out and "Hugging Face login skipped" in out

    out = k.cell(
        "dev = torch.device('cuda')\n"
        "ts = [torch.randn(3, device=dev), torch.zeros(2, 2, device='cuda:0'), torch.tensor([1, 2], device=0),\n"
        "      torch.arange(4, device='cuda'), torch.ones(2, device=DEVICE), torch.empty(1, device='cuda'),\n"
        "      torch.ones(1).cuda(), torch.ones(1).cuda(0), torch.ones(1).to(dev), torch.ones(1).to(0),\n"
        "      torch.ones(1).to('cuda:0', torch.float16), torch.ones(1).to(device='cuda', dtype=torch.bfloat16)]\n"
        "print(sorted({t.device.type for t in ts}), ts[-2].dtype, ts[-1].dtype,\n"
        "      torch.nn.Linear(2, 2).cuda().weight.device)\n"
        "with torch.device('cuda'):\n"
        "    print(torch.zeros(1).device)\n")
    assert "['cpu'] torch.float16 torch.bfloat16 cpu" in out and out.strip().endswith("cpu")

    # float16 with device_map="cuda" (and torch_dtype, as older tutorials write it)
    out = k.cell(
        "m16 = AutoModelForCausalLM.from_pretrained('Qwen/Qwen3-4B', torch_dtype=torch.float16, device_map='cuda')\n"
        "with torch.no_grad():\n"
        "    y = m16(**inputs).logits\n"
        "print(next(m16.parameters()).dtype, m16.device, y.dtype, bool(torch.isfinite(y).all()))\n"
        "for dm in ['cuda:0', {'': 0}, 0, 'auto', 'balanced']:\n"
        "    m = AutoModelForCausalLM.from_pretrained('Qwen/Qwen3-4B', device_map=dm)\n"
        "    print(repr(dm), m.device)\n"
        "del m, m16\n")
    assert "torch.float16 cpu torch.float16 True" in out
    assert out.count(" cpu\n") == 5  # the five other device maps

    # bfloat16 .cuda() with pre-hooks that save the residual stream to the CPU
    out = k.cell(
        "mb = AutoModelForCausalLM.from_pretrained('Qwen/Qwen3-4B', dtype=torch.bfloat16).cuda()\n"
        "caps = {}\n"
        "def make_hook(i):\n"
        "    def hook(module, args):\n"
        "        caps[i] = args[0].detach().cpu()\n"
        "    return hook\n"
        "hs = [layer.register_forward_pre_hook(make_hook(i)) for i, layer in enumerate(mb.model.layers)]\n"
        "with torch.no_grad():\n"
        "    mb(**tokenizer('hello there', return_tensors='pt').to(DEVICE))\n"
        "for h in hs:\n"
        "    h.remove()\n"
        "print(len(caps), caps[0].dtype, caps[0].device, tuple(caps[0].shape))\n")
    assert "36 torch.bfloat16 cpu (1, 2, 64)" in out

    # autocast("cuda") is a no-op: the model keeps its dtype; CPU autocast still works
    out = k.cell(
        "with torch.autocast('cuda', dtype=torch.float16):\n"
        "    a = model(**inputs).logits\n"
        "with torch.cuda.amp.autocast():\n"
        "    b = model(**inputs).logits\n"
        "@torch.autocast(device_type='cuda')\n"
        "def run():\n"
        "    return model(**inputs).logits\n"
        "with torch.autocast('cpu', dtype=torch.bfloat16):\n"
        "    c = torch.mm(torch.ones(2, 2), torch.ones(2, 2))\n"
        "print(a.dtype, b.dtype, run().dtype, c.dtype, torch.equal(a, ref))\n")
    assert "torch.float32 torch.float32 torch.float32 torch.bfloat16 True" in out

    out = k.cell(
        "torch.cuda.empty_cache(); torch.cuda.synchronize(); torch.cuda.manual_seed(0); torch.cuda.manual_seed_all(0)\n"
        "start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)\n"
        "start.record(); end.record()\n"
        "print(torch.cuda.memory_allocated(), torch.cuda.max_memory_allocated() / 1e9, start.elapsed_time(end) >= 0,\n"
        "      torch.cuda.get_device_properties(0).total_memory > 0)\n"
        "torch.save(torch.ones(2), 'saved.pt')\n"
        "print(torch.load('saved.pt', map_location='cuda').device)\n"
        "torch.set_default_device('cuda')\n"
        "t = torch.zeros(2)\n"
        "torch.set_default_device(None)\n"
        "print(t.device)\n")
    assert "0 0.0 True True\ncpu\ncpu" in out

    s = k.summary()
    counts = s["counts"]
    for kind in ("cuda.query", "device.module", "device.batch", "device.tensor", "device.factory", "device.map",
                 "cuda.autocast", "cuda.call", "device.default", "device.load", "colab.userdata", "hf.login"):
        assert counts.get(kind, 0) >= 1, (kind, counts)
    details = {(a["kind"], a["detail"]) for a in s["adaptations"]}
    assert ("device.module", "Qwen3ForCausalLM.to('cuda') kept it on the CPU") in details
    assert ("device.module", "Qwen3ForCausalLM.cuda() kept it on the CPU") in details
    assert ("device.batch", "BatchEncoding.to('cuda') kept the inputs on the CPU") in details
    assert any(kind == "device.map" and "'cuda'" in d for kind, d in details)
    assert all(a["cell"] is not None for a in s["adaptations"])  # read from the recorder's current_cell
    assert len(s["adaptations"]) <= 200 and len(set(map(str, s["adaptations"]))) == len(s["adaptations"])
    assert any(a["cell"] == 1 and a["kind"] == "device.module" for a in s["adaptations"])


def test_colab_modules_and_drive(gpu_kernel, tmp_path):
    k = gpu_kernel
    out = k.cell(
        "import os\n"
        "from google.colab import drive, files, output, auth\n"
        "import google.colab\n"
        "drive.mount('/content/drive')\n"
        "drive.mount('/content/drive')\n"
        "with open('drive/MyDrive/notes.txt', 'w') as f:\n"
        "    f.write('saved')\n"
        # in isolated mode the grader mounts the working dir at /content: the mount point is the kernel's own folder
        f"drive.mount({str(k.workdir / 'drive')!r}, force_remount=True)\n"
        f"with open({str(k.workdir / 'drive' / 'MyDrive' / 'abs.txt')!r}, 'w') as f:\n"
        "    f.write('absolute')\n"
        "files.download('tokens.gif')\n"
        "print(files.upload(), output.enable_custom_widget_manager(), output.clear(), auth.authenticate_user())\n"
        "from google.colab.output import eval_js\n"
        "print(eval_js('1'), google.colab.drive is drive)\n")
    assert out.startswith("Mounted at /content/drive\nDrive already mounted at /content/drive")
    assert f"Mounted at {k.workdir / 'drive'}" in out and "{} None None None\nNone True" in out
    assert (k.workdir / "drive" / "MyDrive" / "notes.txt").read_text() == "saved"
    assert (k.workdir / "drive" / "MyDrive" / "abs.txt").read_text() == "absolute"
    assert not Path("/content/drive").is_symlink()  # nothing is linked outside the kernel's folder
    s = k.summary()
    drives = [a["detail"] for a in s["adaptations"] if a["kind"] == "colab.drive"]
    assert any("'/content/drive'" in d and "do not exist on the grader" in d for d in drives)
    assert any("'/content/drive'" not in d and "do not exist" not in d for d in drives)
    assert s["counts"]["colab.call"] >= 6 and s["counts"]["colab.import"] >= 5


def test_shell_lines_and_magics(gpu_kernel):
    k = gpu_kernel
    out = k.cell("!pip install -q transformers accelerate\n")
    assert "Requirement already satisfied: transformers in " in out
    assert "Requirement already satisfied: accelerate in " in out
    out = k.cell("%pip install torch not-a-real-package-qg==1.2 -U\n")
    assert "Requirement already satisfied: torch in " in out
    assert "not-a-real-package-qg==1.2 is not installed and the grader has no network; skipped" in out
    out = k.cell("!python -m pip install 'transformers==4.0.0' --upgrade\n!uv pip install numpy\n"
                 "!pip3 install Scikit_Learn\n")
    assert "transformers==4.0.0: the grader has transformers" in out and "Requirement already satisfied: numpy" in out
    assert "Scikit_Learn" in out
    out = k.cell("!nvidia-smi\n!apt-get install -y graphviz\n!wget https://example.com/x.png\n"
                 "!git clone https://github.com/x/y\n!echo before && nvidia-smi && echo after\n")
    assert "nvidia-smi: the grader runs this notebook on a CPU with no GPU" in out
    assert out.count("skipped, the grader has no network") == 3
    assert "before\r\nnvidia-smi: the grader" in out and out.rstrip().endswith("after")
    out = k.cell("who = 'world'\n!echo hello {who} $who\n"
                 "def f():\n    inner = 'local'\n    !echo from {inner}\n"
                 "    got = !echo captured {inner}\n    return got\n"
                 "lines = f()\nprint(lines)\nsmi = !nvidia-smi\nprint(type(smi).__name__, len(smi))\n")
    assert "hello world world" in out and "from local" in out and "['captured local']" in out and "SList 1" in out
    out = k.cell("%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.plot([1, 2]); plt.show()\n"
                 "%load_ext autoreload\n%autoreload 2\n")
    assert "Figure" in out
    out = k.cell("%%time\nx = sum(range(10))\nprint(x, torch.cuda.is_available())\n")
    assert "45 True" in out and "Wall time" in out
    counts = k.summary()["counts"]
    assert counts["shell.pip"] == 5 and counts["shell.gpu"] == 3 and counts["shell.network"] == 3


def test_tpu_code_runs_on_the_cpu_through_the_torch_xla_stand_in(gpu_kernel):
    """torch_xla is not installed here: the notebook's imports get the stand-in, libraries still see none."""
    k = gpu_kernel
    out = k.cell(
        "lib = {}\n"
        "exec(compile('import importlib.util\\nr = importlib.util.find_spec(\"torch_xla\")', torch.__file__, 'exec'),"
        " lib)\n"
        "print('library sees', lib['r'])\n"
        "import torch_xla\nimport torch_xla.runtime as xr\n"
        "dev = torch_xla.device()\n"
        "print(dev, torch_xla.devices(), xr.device_type(), xr.world_size(), xr.global_ordinal())\n"
        "xm = torch_xla.core.xla_model  # reached from `import torch_xla` alone\n"
        "print(xm.xrt_world_size(), xm.get_ordinal(), xm.is_master_ordinal(), xm.xla_device())\n"
        "w = torch.nn.Parameter(torch.ones(2))\nopt = torch.optim.SGD([w], lr=0.5)\n(w * w).sum().backward()\n"
        "xm.optimizer_step(opt)\ntorch_xla.sync()\nxm.mark_step()\n"
        "x = torch.ones(2).to(dev)\nxm.save({'w': w.detach()}, 'xla_saved.pt')\n"
        "print(w.detach().tolist(), x.device, torch.load('xla_saved.pt')['w'].tolist())\n"
        "import torch_xla.distributed.xla_multiprocessing as xmp\n"
        "xmp.spawn(lambda index, a: print('spawned', index, a), args=('arg',))\n"
        "with torch_xla.amp.autocast(dev, dtype=torch.bfloat16):\n    y = torch.mm(torch.ones(2, 2), torch.ones(2, 2))\n"
        "print(y.dtype, xm.get_memory_info(dev))\n"
        "import transformers.utils.import_utils as iu\nprint('transformers sees', iu.is_torch_xla_available())\n")
    assert out.startswith("library sees None\ncpu [device(type='cpu')] CPU 1 0\n1 0 True cpu\n"), out
    assert "[0.0, 0.0] cpu [0.0, 0.0]\nspawned 0 arg\ntorch.float32 None\ntransformers sees False" in out, out
    s = k.summary()
    details = {(a["kind"], a["detail"]) for a in s["adaptations"]}
    assert ("xla.device", "torch_xla.device() -> the CPU (the grader has no TPU; XLA code runs on the CPU)") in details
    assert ("xla.call", "xm.optimizer_step() ran optimizer.step() (torch_xla stand-in)") in details
    assert ("xla.call", "xm.get_memory_info() did nothing (torch_xla stand-in)") in details
    assert ("xla.import", "import torch_xla.core.xla_model: the grader's stand-in (no TPU; runs on the CPU)") in details
    assert not [d for kind, d in details if kind.startswith("device.") and "xla" in d]


def test_flash_attention_runs_as_sdpa(gpu_kernel):
    """attn_implementation='flash_attention_2' (load or set later) resolves to 'sdpa': the same hidden states
    as a plain load; an unknown implementation is still refused as transformers refuses it."""
    k = gpu_kernel
    out = k.cell(
        "mf = AutoModelForCausalLM.from_pretrained('Qwen/Qwen3-4B', dtype=torch.bfloat16, device_map='cuda',"
        " attn_implementation='flash_attention_2')\n"
        "ms = AutoModelForCausalLM.from_pretrained('Qwen/Qwen3-4B', dtype=torch.bfloat16)\n"
        "ids = tokenizer('The residual stream of a transformer', return_tensors='pt').to('cuda')\n"
        "with torch.no_grad():\n"
        "    a = mf(**ids, output_hidden_states=True).hidden_states\n"
        "    b = ms(**ids, output_hidden_states=True).hidden_states\n"
        "print(mf.config._attn_implementation, len(a), all(torch.equal(x, y) for x, y in zip(a, b)))\n"
        "ms.set_attn_implementation('flash_attention_2')\nprint(ms.config._attn_implementation)\n"
        "try:\n    AutoModelForCausalLM.from_pretrained('Qwen/Qwen3-4B', attn_implementation='no_such_attention')\n"
        "except ValueError as e:\n    print('refused:', str(e)[:60])\n"
        "del mf, ms\n")
    assert "sdpa 37 True\nsdpa\nrefused: Specified `attn_implementation=\"no_such_attention\"`" in out, out
    flash = [a["detail"] for a in k.summary()["adaptations"] if a["kind"] == "attn.flash"]
    assert flash and all(d.startswith("attn_implementation='flash_attention_2' ran as 'sdpa'") for d in flash), flash
    assert not [d for d in flash if "no_such" in d]


def test_pip_install_of_flash_attn_and_torch_xla_says_why_they_are_not_needed(gpu_kernel):
    k = gpu_kernel
    out = k.cell("!pip install -q flash-attn --no-build-isolation\n!MAX_JOBS=4 pip install flash_attn==2.7.3\n"
                 "!pip install https://github.com/Dao-AILab/flash-attention/releases/download/v2.7.3/"
                 "flash_attn-2.7.3+cu12torch2.5cxx11abiFALSE-cp311-cp311-linux_x86_64.whl\n"
                 "%pip install torch_xla[tpu] -f https://storage.googleapis.com/libtpu-releases/index.html\n")
    assert out.count("skipped, not needed on the grader: flash-attn needs a CUDA GPU, and attn_implementation="
                     "\"flash_attention_2\" runs with PyTorch's SDPA attention here") == 3, out
    assert "flash_attn==2.7.3: skipped" in out and "flash-attn: skipped" in out
    assert "torch_xla[tpu]: skipped, not needed on the grader: there is no TPU here" in out, out
    assert "is not installed and the grader has no network" not in out


def test_the_recorder_sees_no_tampering(gpu_kernel):
    k = gpu_kernel
    assert k.value("len(__import__('sys').modules['__qgrader_probe__'].patched)") >= 5
    assert k.value(UNTOUCHED) == []
    assert k.value("__import__('sys').modules['__qgrader_probe__'].n_forwards") >= 5
    assert k.value("[m['num_layers'] for m in __import__('sys').modules['__qgrader_probe__'].models]")[:2] == [36, 36]


def test_records_are_bounded_but_counted(gpu_kernel):
    k = gpu_kernel
    before = k.summary()["counts"]["colab.userdata"]
    k.cell("for i in range(300):\n    userdata.get(f'SECRET_{i}')\n")
    s = k.summary()
    assert set(s) == {"adaptations", "counts"}
    assert len(s["adaptations"]) == 200 and s["counts"]["colab.userdata"] == before + 300


def test_without_remap_nothing_device_related_changes(hf_home, tmp_path):
    """A GPU grader (remap_cuda=False): torch and transformers untouched; Colab and pip still answered;
    a real `google` namespace package (protobuf's) still imports next to google.colab."""
    ns_pkg = tmp_path / "site"
    (ns_pkg / "google" / "protobuf").mkdir(parents=True)
    (ns_pkg / "google" / "protobuf" / "__init__.py").write_text("VERSION = 'fake'\n")
    (ns_pkg / "torch_xla").mkdir()  # a real torch_xla (a TPU grader): no stand-in
    (ns_pkg / "torch_xla" / "__init__.py").write_text("VERSION = 'real xla'\n")
    workdir = tmp_path / "work"
    workdir.mkdir()
    pythonpath = os.pathsep.join(p for p in (str(ns_pkg), os.environ.get("PYTHONPATH")) if p)
    k = Kernel(workdir, kernel_env(hf_home, workdir, PYTHONPATH=pythonpath))
    try:
        k.cell("import torch\nimport transformers.modeling_utils as mu\n"
               "before = (torch.cuda.is_available, torch.autocast, torch.set_default_device, torch.cuda.empty_cache,"
               " mu.check_and_set_device_map)\n")
        k.hidden(env_call({"remap_cuda": False, "workdir": str(workdir), "nonce": "n1"}))
        out = k.cell(
            "after = (torch.cuda.is_available, torch.autocast, torch.set_default_device, torch.cuda.empty_cache,"
            " mu.check_and_set_device_map)\n"
            "print(all(a is b for a, b in zip(before, after)), torch._C._len_torch_function_stack(),"
            " torch.cuda.is_available())\n"
            "import google.protobuf\nfrom google.colab import drive\nimport google.colab\n"
            "print(google.protobuf.VERSION, google.colab.drive is drive)\n"
            "import torch_xla\nprint(torch_xla.VERSION)\n"
            "!pip install -q torch\n!nvidia-smi\n")
        assert "True 0 False" in out and "fake True" in out and "Requirement already satisfied: torch" in out
        assert "real xla" in out
        assert "the grader runs this notebook on a CPU" not in out  # nvidia-smi runs for real here
        counts = k.summary()["counts"]
        assert not any(kind.startswith(("device.", "cuda.", "xla.")) or kind == "shell.gpu" for kind in counts), counts
        assert counts["shell.pip"] == 1 and counts["colab.import"] >= 2
    finally:
        k.close()
