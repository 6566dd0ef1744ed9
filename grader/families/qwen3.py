"""Qwen3 (Qwen/Qwen3-*): transformers' modeling_qwen3, a pre-norm decoder with RMSNorm and q/k norms.

    model.layers.N:  resid_pre -> input_layernorm -> self_attn (q_proj, k_proj, v_proj, q_norm, k_norm,
                     o_proj) -> (+) -> resid_mid -> post_attention_layernorm -> mlp (gate_proj, up_proj,
                     act_fn, down_proj) -> (+) -> resid_post
"""

from grader.families.base import FORWARD, FORWARD_PRE, Family, Param, SitePlace

FAMILY = Family(
    name="qwen3",
    model_types=("qwen3",),
    causal_lm=("Qwen3ForCausalLM",),
    base_models=("Qwen3Model",),
    decoder_layer="Qwen3DecoderLayer",
    layers="model.layers",
    sites={
        "resid_pre": SitePlace("", FORWARD_PRE),
        "ln1_out": SitePlace("input_layernorm", FORWARD),
        "attn_out": SitePlace("self_attn", FORWARD),
        "resid_mid": SitePlace("post_attention_layernorm", FORWARD_PRE),
        "ln2_out": SitePlace("post_attention_layernorm", FORWARD),
        "mlp_out": SitePlace("mlp", FORWARD),
        "resid_post": SitePlace("", FORWARD),
    },
    # a forward hook that reads its module's input gets what a pre-hook would
    input_of={"": "resid_pre", "input_layernorm": "resid_pre", "self_attn": "ln1_out",
              "post_attention_layernorm": "resid_mid", "mlp": "ln2_out"},
    printed=("Qwen3DecoderLayer(", "(self_attn)", "(mlp)", "(input_layernorm)"),
    source_url="https://github.com/huggingface/transformers/blob/main/src/transformers/models/qwen3/modeling_qwen3.py",
    shrink=("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim"),
    derived={"q_dim": "num_attention_heads * head_dim", "kv_dim": "num_key_value_heads * head_dim"},
    embeddings=(Param("model.embed_tokens.weight", ("vocab_size", "hidden_size"), "embed"),),
    layer=(
        Param("model.layers.{layer}.input_layernorm.weight", ("hidden_size",), "ones"),
        Param("model.layers.{layer}.self_attn.q_proj.weight", ("q_dim", "hidden_size"), "in"),
        Param("model.layers.{layer}.self_attn.k_proj.weight", ("kv_dim", "hidden_size"), "in"),
        Param("model.layers.{layer}.self_attn.v_proj.weight", ("kv_dim", "hidden_size"), "in"),
        Param("model.layers.{layer}.self_attn.o_proj.weight", ("hidden_size", "q_dim"), "out"),
        Param("model.layers.{layer}.self_attn.q_norm.weight", ("head_dim",), "ones"),
        Param("model.layers.{layer}.self_attn.k_norm.weight", ("head_dim",), "ones"),
        Param("model.layers.{layer}.post_attention_layernorm.weight", ("hidden_size",), "ones"),
        Param("model.layers.{layer}.mlp.gate_proj.weight", ("intermediate_size", "hidden_size"), "in"),
        Param("model.layers.{layer}.mlp.up_proj.weight", ("intermediate_size", "hidden_size"), "in"),
        Param("model.layers.{layer}.mlp.down_proj.weight", ("hidden_size", "intermediate_size"), "out"),
    ),
    final=(Param("model.norm.weight", ("hidden_size",), "ones"),),
    diagram_note=("self_attn: q/k/v_proj read ln1_out, q_norm/k_norm normalise each head's queries and keys, "
                  "o_proj writes attn_out.\nmlp: down_proj(act_fn(gate_proj(x)) * up_proj(x))."),
)
