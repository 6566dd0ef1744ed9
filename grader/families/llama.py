"""Llama (SmolLM2, Llama 3.x): transformers' modeling_llama, a pre-norm decoder with RMSNorm, rotary
position embeddings, grouped-query attention and a gated SiLU MLP.

    model.layers.N:  resid_pre -> input_layernorm -> self_attn (q_proj, k_proj, v_proj, o_proj) -> (+)
                     -> resid_mid -> post_attention_layernorm -> mlp (gate_proj, up_proj, act_fn, down_proj)
                     -> (+) -> resid_post
    model.norm, then lm_head (tied to model.embed_tokens when the config's tie_word_embeddings is true)

LlamaDecoderLayer.forward returns a Tensor and LlamaAttention.forward (attn_output, attn_weights) in
transformers 5.x. Mistral's module tree and wiring are the same, but its classes print as
MistralForCausalLM / MistralDecoderLayer, which `decoder_layer` and `printed` name once per family:
Mistral would be a family of its own (dataclasses.replace of this one), not part of this one.
The miniature draws no biases: attention_bias and mlp_bias are false in SmolLM2 and Llama 3.x.
"""

from grader.families.base import FORWARD, FORWARD_PRE, Family, Param, SitePlace

FAMILY = Family(
    name="llama",
    model_types=("llama",),
    causal_lm=("LlamaForCausalLM",),
    base_models=("LlamaModel",),
    decoder_layer="LlamaDecoderLayer",
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
    printed=("LlamaDecoderLayer(", "(self_attn)", "(mlp)", "(input_layernorm)"),
    source_url="https://github.com/huggingface/transformers/blob/main/src/transformers/models/llama/modeling_llama.py",
    shrink=("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim"),
    derived={"q_dim": "num_attention_heads * head_dim", "kv_dim": "num_key_value_heads * head_dim"},
    embeddings=(Param("model.embed_tokens.weight", ("vocab_size", "hidden_size"), "embed"),),
    layer=(
        Param("model.layers.{layer}.input_layernorm.weight", ("hidden_size",), "ones"),
        Param("model.layers.{layer}.self_attn.q_proj.weight", ("q_dim", "hidden_size"), "in"),
        Param("model.layers.{layer}.self_attn.k_proj.weight", ("kv_dim", "hidden_size"), "in"),
        Param("model.layers.{layer}.self_attn.v_proj.weight", ("kv_dim", "hidden_size"), "in"),
        Param("model.layers.{layer}.self_attn.o_proj.weight", ("hidden_size", "q_dim"), "out"),
        Param("model.layers.{layer}.post_attention_layernorm.weight", ("hidden_size",), "ones"),
        Param("model.layers.{layer}.mlp.gate_proj.weight", ("intermediate_size", "hidden_size"), "in"),
        Param("model.layers.{layer}.mlp.up_proj.weight", ("intermediate_size", "hidden_size"), "in"),
        Param("model.layers.{layer}.mlp.down_proj.weight", ("hidden_size", "intermediate_size"), "out"),
    ),
    final=(
        Param("model.norm.weight", ("hidden_size",), "ones"),
        # drawn only when the config unties it (Llama 3.1 8B); SmolLM2 and Llama 3.2 1B/3B tie it
        Param("lm_head.weight", ("vocab_size", "hidden_size"), "head"),
    ),
)
