"""Kernel-side: a notebook's plotting cell runs as written, but its frames cost a fraction of a normal
draw. Reads nothing, writes nothing: it changes how matplotlib's Agg backend spends its time.

Kernel-side source like probe.py and colab_env.py: it imports nothing from this project. The executor
sends this text into the kernel and, hidden, after the Colab shim and before the first student cell,
execs it in a private namespace and calls `install(config)` there (`hidden_call(source, "install",
config)`); `grade --full-render` (ExecuteConfig.fast_plot False) does not install it: every frame is
then drawn in full. config: {"nonce": str}.

The assignment's provided plotting cell draws 404 token labels in 3-D on each of 36 frames; a normal
run spends about 80 % of its time on them and the rest of a tight `plt.savefig` (measured in
bench/RESULTS.md, "fastplot"). What changes, on the Agg classes every PNG is drawn with (the kernel's
Agg backend, the inline backend, `savefig(..., format="png")` from any canvas), at the methods a
backend is meant to provide (and one artist's draw):

* `RendererAgg.draw_text` does not rasterise the glyphs of 3-D text (mplot3d's `Text3D`, what
  `ax.text(x, y, z, s)` makes): those labels are blank in the frames. `Text.draw` lays a text out
  before it calls `draw_text`, so the layout, its warnings and its errors (a label with bad mathtext)
  are those of a normal run; and the tight bounding box never reads pixels, so frame sizes are too.
  Any other text (tick labels, titles, annotations, a diagram drawn with matplotlib) is drawn as usual.
* `Text3D.draw` does nothing in a pass with drawing disabled (the renderer's `_draw_disabled`, which
  is how `savefig(bbox_inches="tight")` measures the figure before drawing it): a Text3D adds nothing
  to the bounding box (its `get_tightbbox` is None) and is laid out, with the same warnings and errors,
  when the figure is drawn for real right after. (`fig.draw_without_rendering()`, which no real draw
  follows, would then not raise a label's layout error.)
* `RendererAgg.get_text_width_height_descent` of plain text is cached across renderers, keyed by the
  string, the font properties, the dpi and the rcParams that pick the font file and its hinting.
  matplotlib caches the same values per renderer; every figure, and each of the two passes of a tight
  savefig, has a renderer of its own, so the same 404 labels were measured again for every frame.
* `FigureCanvasAgg.draw_idle` is deferred, as its docstring lets a backend do ("Backends may choose to
  override the method and implement their own strategy to prevent multiple renderings"): pyplot's
  `savefig` calls it after saving, which on a non-interactive canvas renders the whole figure once
  more into a buffer nobody reads before `plt.close`. The deferred draw happens as soon as the pixels
  are asked for (`buffer_rgba`, `tostring_argb`, `copy_from_bbox`, `restore_region`, `get_renderer`),
  so a notebook that reads them gets what a normal run gives; an explicit `canvas.draw()` draws.

So a cell runs every statement it has, makes the same number of frames of the same sizes, the same
files, variables (an image array differs only in the pixels of the labels) and errors. What differs:
the 3-D labels are blank, a warning printed while drawing may be printed fewer times, and a
`draw_event` callback does not run for the draw `savefig` no longer repeats.

Recorded through the Colab shim's recorder (sys.modules["__qgrader_env__"].record, see colab_env.py),
kind "plot.labels": one entry per cell whose frames had blank labels, counted once per label drawn;
the report says from it that the grader's GIF has blank labels and shows the student's own GIF for
review. Problems installing leave a line in the shim's `errors` (the report's "Grader probe" notes) and
matplotlib unchanged.
"""

from __future__ import annotations

FAST_MODULE = "__qgrader_fastplot__"
ENV_MODULE = "__qgrader_env__"
AGG_MODULE = "matplotlib.backends.backend_agg"
LABEL_KIND = "plot.labels"
LABEL_DETAIL = "3-D text labels laid out but not rasterised: the grader's frames show no labels"
MAX_CACHED = 100_000  # text metrics kept (a few hundred bytes each)
# rcParams that decide which font file and hinting a FontProperties resolves to (matplotlib's own
# font cache keys on the first five; the FontProperties hash covers the rest of the font)
FONT_RC = ("font.serif", "font.sans-serif", "font.cursive", "font.fantasy", "font.monospace",
           "text.hinting", "text.hinting_factor", "text.kerning_factor")


def install(config: dict) -> None:
    import sys
    import types

    old = sys.modules.get(FAST_MODULE)
    if old is not None and getattr(old, "nonce", None) == config["nonce"]:
        return  # installed already
    fast = types.ModuleType(FAST_MODULE)
    fast.nonce, fast.patched = config["nonce"], {}
    sys.modules[FAST_MODULE] = fast
    if AGG_MODULE in sys.modules:
        _patch_safely(fast)
    else:  # patch when the notebook first imports matplotlib's Agg backend (nothing is imported early)
        sys.meta_path.insert(0, _AfterImport(AGG_MODULE, lambda: _patch_safely(fast)))


class _AfterImport:
    """A meta-path finder that runs `then()` right after one module is executed, and then leaves."""

    def __init__(self, name: str, then):
        self.name, self.then = name, then

    def find_spec(self, fullname, path=None, target=None):
        import sys

        if fullname != self.name:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        try:
            spec = next((s for f in sys.meta_path if (s := getattr(f, "find_spec", lambda *a: None)(
                fullname, path, target)) is not None), None)
        except Exception:  # noqa: BLE001 - let the import machinery find it (and say why not) itself
            return None
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _ThenLoader(spec.loader, self.then)
        return spec


class _ThenLoader:
    """The module's own loader, with `then()` called after it executed the module."""

    def __init__(self, loader, then):
        self._loader, self._then = loader, then

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        self._then()

    def __getattr__(self, name):  # get_source, get_filename, ...: the real loader's
        return getattr(self._loader, name)


def _patch_safely(fast) -> None:
    import sys

    try:
        _patch(fast)
    except Exception as exc:  # noqa: BLE001 - the notebook still runs, at normal speed
        env = sys.modules.get(ENV_MODULE)
        if env is not None and hasattr(env, "errors"):
            env.errors.append(f"fastplot: {exc!r}")
        fast.error = repr(exc)


def _patch(fast) -> None:
    import sys
    import weakref

    import matplotlib
    from matplotlib import font_manager
    from matplotlib.backends import backend_agg
    from mpl_toolkits.mplot3d import art3d  # matplotlib.projections imports it anyway

    renderer_cls, canvas_cls = backend_agg.RendererAgg, backend_agg.FigureCanvasAgg
    real_draw_text = renderer_cls.draw_text
    real_metrics = renderer_cls.get_text_width_height_descent

    real_text3d_draw = art3d.Text3D.draw

    def text3d_draw(self, renderer):
        if "draw_text" in getattr(renderer, "__dict__", {}):  # drawing disabled: a tight savefig measuring
            self._renderer, self.stale = renderer, False  # what Text.draw leaves behind
            return None  # a Text3D adds nothing to the bounding box (get_tightbbox is None); laid out when drawn
        return real_text3d_draw(self, renderer)

    def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if isinstance(mtext, art3d.Text3D):  # laid out already (Text.draw), its glyphs are not rasterised
            env = sys.modules.get(ENV_MODULE)
            record = getattr(env, "record", None) if getattr(env, "nonce", None) == fast.nonce else None
            if record is not None:
                record(LABEL_KIND, LABEL_DETAIL)
            return None
        return real_draw_text(self, gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)

    metrics: dict = {}
    font_keys = weakref.WeakKeyDictionary()  # renderer -> the font rcParams when it first measured text

    def font_key(renderer):
        key = font_keys.get(renderer)
        if key is None:
            rc = matplotlib.rcParams
            key = tuple(tuple(v) if isinstance(v, list) else v for v in (dict.get(rc, k) for k in FONT_RC))
            font_keys[renderer] = key
        return key

    def get_text_width_height_descent(self, s, prop, ismath):
        if ismath is not False:  # mathtext and TeX have caches of their own
            return real_metrics(self, s, prop, ismath)
        key = (s, hash(prop), self.dpi, font_key(self), len(font_manager.fontManager.ttflist))
        hit = metrics.get(key)
        if hit is None:
            hit = real_metrics(self, s, prop, ismath)
            if len(metrics) < MAX_CACHED:
                metrics[key] = hit
        return hit

    pending = weakref.WeakSet()  # Agg canvases asked to draw_idle and not drawn since

    def draw_idle(self, *args, **kwargs):
        if type(self) is not canvas_cls:  # a subclass (a GUI or widget canvas) keeps its own strategy
            return super(canvas_cls, self).draw_idle(*args, **kwargs)
        if not self._is_idle_drawing:
            pending.add(self)
        return None

    def flushing(real):
        def method(self, *args, **kwargs):
            if self in pending:
                pending.discard(self)
                self.draw()
            return real(self, *args, **kwargs)

        return method

    real_draw = canvas_cls.draw

    def draw(self):
        pending.discard(self)
        return real_draw(self)

    patches = [(art3d.Text3D, "draw", text3d_draw), (renderer_cls, "draw_text", draw_text),
               (renderer_cls, "get_text_width_height_descent", get_text_width_height_descent),
               (canvas_cls, "draw_idle", draw_idle), (canvas_cls, "draw", draw)]
    for name in ("buffer_rgba", "tostring_argb", "copy_from_bbox", "restore_region", "get_renderer"):
        real = canvas_cls.__dict__.get(name)
        if real is not None:
            patches.append((canvas_cls, name, flushing(real)))
    for owner, name, new in patches:
        real = getattr(owner, name)
        for attr in ("__name__", "__qualname__", "__doc__"):
            setattr(new, attr, getattr(real, attr, None) or getattr(new, attr))
        new.__dict__.update(getattr(real, "__dict__", {}))  # e.g. Text3D.draw's _supports_rasterization
        setattr(owner, name, new)
        fast.patched[f"{owner.__name__}.{name}"] = new
