"""GPT-2 (openai-community/gpt2): transformers' modeling_gpt2, a pre-norm decoder with LayerNorm (with
bias), learned position embeddings, and Conv1D projections (weights stored [in, out]).

    transformer.h.N:  resid_pre -> ln_1 -> attn (c_attn, c_proj) -> (+) -> resid_mid -> ln_2
                      -> mlp (c_fc, act, c_proj) -> (+) -> resid_post
    transformer.wte + transformer.wpe -> drop -> h.0 ... h.11 -> transformer.ln_f -> lm_head (tied to wte)

In transformers 5.x GPT2Block.forward returns a Tensor, GPT2Attention.forward (attn_output,
attn_weights) (a forward hook on attn reads the first item), and output_hidden_states[i] is block i's
input. The config spells the widths n_embd / n_head / n_layer (GPT2Config's attribute_map also answers
hidden_size / num_attention_heads / num_hidden_layers): `derived` gives the miniature's hidden_size.
"""

from grader.families.base import FORWARD, FORWARD_PRE, Family, Param, SitePlace

_H = "transformer.h.{layer}."

FAMILY = Family(
    name="gpt2",
    model_types=("gpt2",),
    causal_lm=("GPT2LMHeadModel",),
    base_models=("GPT2Model",),
    decoder_layer="GPT2Block",
    layers="transformer.h",
    sites={
        "resid_pre": SitePlace("", FORWARD_PRE),
        "ln1_out": SitePlace("ln_1", FORWARD),
        "attn_out": SitePlace("attn", FORWARD),
        "resid_mid": SitePlace("ln_2", FORWARD_PRE),
        "ln2_out": SitePlace("ln_2", FORWARD),
        "mlp_out": SitePlace("mlp", FORWARD),
        "resid_post": SitePlace("", FORWARD),
    },
    # a forward hook that reads its module's input gets what a pre-hook would
    input_of={"": "resid_pre", "ln_1": "resid_pre", "attn": "ln1_out", "ln_2": "resid_mid", "mlp": "ln2_out"},
    printed=("GPT2Block(", "(attn)", "(mlp)", "(ln_1)"),
    source_url="https://github.com/huggingface/transformers/blob/main/src/transformers/models/gpt2/modeling_gpt2.py",
    shrink=("n_embd", "n_head"),  # n_inner stays null: the MLP is 4 x n_embd wide, as in GPT-2
    derived={"hidden_size": "n_embd", "qkv_dim": "3 * n_embd", "inner_dim": "4 * n_embd"},
    num_layers_key="n_layer",
    hidden_key="n_embd",
    embeddings=(
        Param("transformer.wte.weight", ("vocab_size", "hidden_size"), "embed"),
        Param("transformer.wpe.weight", ("n_positions", "hidden_size"), "position"),
    ),
    layer=(
        Param(_H + "ln_1.weight", ("hidden_size",), "ones"),
        Param(_H + "ln_1.bias", ("hidden_size",), "zeros"),
        Param(_H + "attn.c_attn.weight", ("hidden_size", "qkv_dim"), "in", transposed=True),  # [in, out]
        Param(_H + "attn.c_attn.bias", ("qkv_dim",), "zeros"),
        Param(_H + "attn.c_proj.weight", ("hidden_size", "hidden_size"), "out", transposed=True),
        Param(_H + "attn.c_proj.bias", ("hidden_size",), "zeros"),
        Param(_H + "ln_2.weight", ("hidden_size",), "ones"),
        Param(_H + "ln_2.bias", ("hidden_size",), "zeros"),
        Param(_H + "mlp.c_fc.weight", ("hidden_size", "inner_dim"), "in", transposed=True),
        Param(_H + "mlp.c_fc.bias", ("inner_dim",), "zeros"),
        Param(_H + "mlp.c_proj.weight", ("inner_dim", "hidden_size"), "out", transposed=True),
        Param(_H + "mlp.c_proj.bias", ("hidden_size",), "zeros"),
    ),
    final=(
        Param("transformer.ln_f.weight", ("hidden_size",), "ones"),
        Param("transformer.ln_f.bias", ("hidden_size",), "zeros"),
    ),
)
