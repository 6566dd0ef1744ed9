"""Second part of the kernel-side environment shim (see colab_env.py): the google.colab stand-ins,
huggingface_hub.login offline, and `!cmd` / `x = !cmd` / `%pip`. Self-contained source with no
`from __future__` line and no imports from this project: it is appended to colab_env.py's source
(`colab_env.kernel_source()`), whose `install(config)` calls `_install_colab` and `_install_shell`.

Shell lines are overridden at IPython's designed points: `shell.system` and `shell.getoutput` on the
instance (`!cmd` and `x = !cmd` call them) and a `pip` line magic registered over IPython's. Package
installs are answered from importlib.metadata, never from the network (flash-attn and torch_xla, when
absent, are answered with why the grader does not need them: NOT_NEEDED); nvidia-smi (with remap_cuda)
and network commands print why they did not run; any other command runs as before.
"""

TOKEN_PLACEHOLDER = "hf_qgrader_offline_placeholder_token"  # what userdata.get() returns
NOT_NEEDED = {  # packages (PEP 503 names) a notebook installs for a GPU or TPU that the grader stands in for
    "flash-attn": "not needed on the grader: flash-attn needs a CUDA GPU, and attn_implementation="
                  "\"flash_attention_2\" runs with PyTorch's SDPA attention here (the same residual stream)",
    "torch-xla": "not needed on the grader: there is no TPU here, and torch_xla calls run on the grader's CPU stand-in",
    "libtpu": "not needed on the grader: there is no TPU here, and torch_xla calls run on the grader's CPU stand-in",
}
COLAB_MODULES = ("drive", "userdata", "files", "output", "auth", "patches", "data_table")

# ---------------------------------------------------------------------------------------------
# google.colab and huggingface_hub.login


def _install_colab(config: dict, env, record) -> None:
    import importlib.machinery
    import importlib.util
    import os
    import sys
    import types

    workdir = config["workdir"]
    mounts: dict[str, str] = {}

    def noop(qualname: str, value=None):
        def call(*args, **kwargs):
            record("colab.call", f"{qualname}() did nothing on the grader")
            return value() if callable(value) else value

        call.__name__ = qualname.rsplit(".", 1)[-1]
        return call

    def mount(mountpoint, force_remount=False, timeout_ms=120000, readonly=False):
        point = os.path.normpath(str(mountpoint))
        if point in mounts and not force_remount:
            print(f"Drive already mounted at {point}; to attempt to forcibly remount, call "
                  f'drive.mount("{point}", force_remount=True).')
            return
        local = os.path.join(workdir, os.path.basename(point) or "drive")
        os.makedirs(os.path.join(local, "MyDrive"), exist_ok=True)
        # In isolated mode the grader mounts the working dir at /content (Colab's), so /content/drive is
        # this folder already; elsewhere absolute paths are left alone: no link is made outside the kernel's folder.
        linked = os.path.isdir(point) and os.path.samefile(point, local)
        note = "" if linked else f"; absolute paths under {point} do not exist on the grader"
        record("colab.drive", f"drive.mount({point!r}) -> the folder {local}{note}")
        mounts[point] = local
        print(f"Mounted at {point}")

    class SecretNotFoundError(Exception):
        pass

    class NotebookAccessError(Exception):
        pass

    def get(key):
        record("colab.userdata", f"userdata.get({key!r}) -> a placeholder (the grader is offline)")
        return TOKEN_PLACEHOLDER

    specific = {
        "drive": {"mount": mount, "flush_and_unmount": noop("drive.flush_and_unmount")},
        "userdata": {"get": get, "SecretNotFoundError": SecretNotFoundError,
                     "NotebookAccessError": NotebookAccessError, "TimeoutException": TimeoutError},
        "files": {"download": noop("files.download"), "upload": noop("files.upload", dict)},
        "output": {"enable_custom_widget_manager": noop("output.enable_custom_widget_manager"),
                   "clear": noop("output.clear")},
        "auth": {"authenticate_user": noop("auth.authenticate_user")},
        "patches": {"cv2_imshow": noop("patches.cv2_imshow")},
    }

    def build(name: str) -> types.ModuleType:
        module = types.ModuleType(name, "The grader's stand-in for Colab's module (no Colab, no network here).")
        short = name.rsplit(".", 1)[-1]
        for attr, value in specific.get(short, {}).items():
            setattr(module, attr, value)
        if name.startswith("google.colab"):
            record("colab.import", f"import {name}: the grader's stand-in")
        if name.startswith("google.colab."):
            def __getattr__(attr, short=short):  # any other function of the module: a recorded no-op
                if attr.startswith("_"):
                    raise AttributeError(attr)
                return noop(f"{short}.{attr}")

            module.__getattr__ = __getattr__
        return module

    class ColabFinder:
        """Serves google.colab[.*] and, only where no real `google` package exists, `google`."""

        def find_spec(self, fullname, path=None, target=None):
            if fullname == "google":
                if importlib.machinery.PathFinder.find_spec("google") is not None:
                    return None  # a real namespace package (protobuf, ...): leave it alone
                return importlib.util.spec_from_loader(fullname, self, is_package=True)
            if fullname == "google.colab" or (fullname.startswith("google.colab.")
                                              and fullname.split(".")[2] in COLAB_MODULES):
                return importlib.util.spec_from_loader(fullname, self, is_package=fullname == "google.colab")
            return None

        def create_module(self, spec):
            return build(spec.name)

        def exec_module(self, module):
            pass

    env.finder = ColabFinder()
    sys.meta_path.insert(0, env.finder)

    try:
        import huggingface_hub
    except ImportError:
        return

    def offline_login(name):
        def login(*args, **kwargs):
            record("hf.login", f"huggingface_hub.{name}() skipped: the grader is offline and needs no token")
            print("The grader is offline: Hugging Face login skipped (the model loads from the grader's cache).")

        return login

    for name in ("login", "notebook_login", "interpreter_login"):
        setattr(huggingface_hub, name, offline_login(name))


# ---------------------------------------------------------------------------------------------
# `!cmd`, `x = !cmd`, `%pip`


def _install_shell(config: dict, env, record) -> None:
    import importlib.metadata
    import os
    import re
    import shlex
    import sys

    from IPython import get_ipython
    from IPython.utils.text import LSString, SList

    shell = get_ipython()
    if shell is None:
        return
    gpu = bool(config.get("remap_cuda"))
    original_system, original_getoutput = shell.system, shell.getoutput
    network = {"apt", "apt-get", "add-apt-repository", "wget", "curl", "conda", "mamba"}
    with_value = {"-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-i", "--index-url",
                  "--extra-index-url", "-f", "--find-links", "-t", "--target", "--prefix", "--root", "--src",
                  "--upgrade-strategy", "--progress-bar", "--trusted-host", "--cache-dir", "--log", "--proxy",
                  "--timeout", "--retries", "--python", "--platform", "--python-version", "--only-binary",
                  "--no-binary", "-C", "--config-settings", "--global-option", "--index-strategy"}

    def pip_args(tokens):
        """The pip arguments of `pip ...`, `pip3 ...`, `python -m pip ...`, `uv pip ...`; else None."""
        head = os.path.basename(tokens[0])
        if re.fullmatch(r"pip[0-9.]*", head):
            return tokens[1:]
        if re.fullmatch(r"python[0-9.]*", head) and tokens[1:3] == ["-m", "pip"]:
            return tokens[3:]
        if re.fullmatch(r"python[0-9.]*", head) and tokens[1:4] == ["-m", "uv", "pip"]:
            return tokens[4:]
        if head == "uv" and tokens[1:2] == ["pip"]:
            return tokens[2:]
        return None

    def not_needed(name: str, req: str):
        """Why the grader skips a package it stands in for (flash-attn, torch_xla) when it is not installed."""
        why = NOT_NEEDED.get(re.sub(r"[-_.]+", "-", name).lower())
        if why is None:
            return None
        try:
            importlib.metadata.distribution(name)
            return None  # really installed (a GPU grader with flash-attn): answered as usual
        except importlib.metadata.PackageNotFoundError:
            return f"{req}: skipped, {why}"

    def requirement(req: str) -> str:
        req = req.split(";")[0].strip()
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)", req)
        if not m or "://" in req or "/" in req or req.endswith((".whl", ".tar.gz", ".zip")):
            wheel = re.match(r"[A-Za-z0-9._]+?(?=-\d)", req.rstrip("/").rsplit("/", 1)[-1])  # flash_attn-2.7.3+cu12...whl
            return (wheel and not_needed(wheel.group(0), req)) or \
                f"{req} is not installed and the grader has no network; skipped"
        name, spec = m.group(1), m.group(3).strip()
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            return not_needed(name, req) or f"{req} is not installed and the grader has no network; skipped"
        version = dist.version
        try:
            from packaging.specifiers import SpecifierSet

            ok = not spec or SpecifierSet(spec).contains(version, prereleases=True)
        except Exception:  # noqa: BLE001 - an unparsable specifier: answer with what is installed
            ok = True
        if not ok:
            return f"{req}: the grader has {name} {version} and no network; keeping {version}"
        return f"Requirement already satisfied: {req} in {dist.locate_file('')} ({version})"

    def pip(args, text):
        sub = next((a for a in args if not a.startswith("-")), None)
        if sub in ("uninstall", "download", "wheel"):
            record("shell.pip", f"pip {sub} skipped")
            return [f"pip {sub}: skipped (the grader keeps its packages and has no network)"]
        if sub != "install":
            return None
        lines, skip = [], None
        for a in args[args.index("install") + 1:]:
            if skip:
                if skip in ("-r", "--requirement", "-e", "--editable"):
                    lines.append(f"{skip} {a}: the grader has no network; skipped")
                skip = None
            elif a.startswith("-"):
                skip = a if a in with_value else None
            else:
                lines.append(requirement(a))
        record("shell.pip", f"{text[:160]}: answered from the installed packages, nothing installed")
        return lines or ["pip install: nothing to install"]

    def answer(segment: str):
        """Output lines for a command the grader answers itself; None to run it."""
        try:
            tokens = shlex.split(segment)
        except ValueError:
            return None
        cut = next((i for i, t in enumerate(tokens) if t.startswith(("|", ">", "<", "2>", "1>", "&>"))), len(tokens))
        tokens = tokens[:cut]
        while tokens and (tokens[0] in ("sudo", "time", "env") or re.fullmatch(r"\w+=\S*", tokens[0])):
            tokens = tokens[1:]
        if not tokens:
            return None
        head, text = os.path.basename(tokens[0]), " ".join(tokens)
        args = pip_args(tokens)
        if args is not None:
            return pip(args, text)
        if head == "nvidia-smi" and gpu:
            record("shell.gpu", text[:160])
            return [f"{text}: the grader runs this notebook on a CPU with no GPU (CUDA code runs on the CPU)"]
        if head in network or (head == "git" and "clone" in tokens) or (
                head in ("huggingface-cli", "hf") and any(t in tokens for t in ("login", "download", "auth"))):
            record("shell.network", text[:160])
            return [f"{text[:120]}: skipped, the grader has no network"]
        return None

    def passthrough(cmd, capture, split):
        __tracebackhide__ = True
        shell.var_expand = lambda c, depth=0, formatter=None: c  # cmd is expanded already
        try:
            return original_getoutput(cmd, split=split) if capture else original_system(cmd)
        finally:
            del shell.var_expand

    def run(cmd: str, capture: bool = False, split: bool = True):
        __tracebackhide__ = True
        segments = [s for s in re.split(r"&&|\|\||;|\n", cmd) if s.strip()]
        answers = [answer(s) for s in segments]
        if all(a is None for a in answers):
            return passthrough(cmd, capture, split)
        out = []
        for segment, lines in zip(segments, answers):
            if lines is None:
                got = passthrough(segment, capture, False)
                out += got.splitlines() if capture else []
            elif capture:
                out += lines
            else:
                print("\n".join(lines))
                shell.user_ns["_exit_code"] = 0
        if capture:
            return SList(out) if split else LSString("\n".join(out))
        return None

    def system(cmd):
        __tracebackhide__ = True
        return run(shell.var_expand(cmd, depth=1))

    def getoutput(cmd, split=True, depth=0):
        __tracebackhide__ = True
        return run(shell.var_expand(cmd, depth=depth + 1), capture=True, split=split)

    def pip_magic(line):
        """%pip: installs are answered from what is installed (the grader has no network)."""
        __tracebackhide__ = True
        args = line.split()
        if "install" in args or "uninstall" in args:
            run("pip " + line)
        else:
            run(f"{sys.executable} -m pip {line}")
            print("Note: you may need to restart the kernel to use updated packages.")

    shell.system, shell.getoutput = system, getoutput
    shell.register_magic_function(pip_magic, magic_kind="line", magic_name="pip")
    env.shell_patched = {"system": system, "getoutput": getoutput}
