"""The part of megatron-core's MLA surface the adapter was built against, read off releases 0.11-0.16.1,
Megatron-LM's 0.17-0.19 tags and its main branch (0.20, August 2026). ``seamfix doctor`` compares the installed
release with it. A new release that only adds what the adapter already handles needs no change here; anything else
is one more name below, after the adapter learns it.
"""

FORWARD_PARAMETERS = frozenset(
    {
        "hidden_states",
        "attention_mask",
        "key_value_states",
        "inference_context",
        "inference_params",
        "rotary_pos_emb",
        "rotary_pos_cos",
        "rotary_pos_sin",
        "rotary_pos_cos_sin",  # 0.15
        "attention_bias",
        "packed_seq_params",
        "position_ids",
        "sequence_len_offset",
    }
)
"""Keywords of ``MLASelfAttention.forward``; the adapter drops the ``rotary_pos_*`` ones and passes the rest."""

SUBMODULE_FIELDS = frozenset(
    {
        "linear_q_proj",
        "linear_q_down_proj",
        "linear_q_up_proj",
        "linear_kv_down_proj",
        "linear_kv_up_proj",
        "core_attention",
        "linear_proj",
        "q_layernorm",
        "kv_layernorm",
        "linear_qkv_down_proj",  # 0.20: FusedMLASelfAttention's fused down-projection; specs pass it through
    }
)
"""Fields of ``MLASelfAttentionSubmodules`` (all optional up to 0.16)."""

REQUIRED_SUBMODULE_FIELDS = frozenset({"q_layernorm", "kv_layernorm", "linear_proj"})
"""Fields that later releases make required (0.17: the layernorms; 0.18: linear_proj); the adapter's specs
always name them, by keyword."""

CONFIG_FIELDS = frozenset(
    {
        "q_lora_rank",
        "kv_lora_rank",
        "qk_head_dim",
        "qk_pos_emb_head_dim",
        "v_head_dim",
        "rope_type",  # 0.11
        "rotary_base",
        "rotary_percent",
        "rotary_scaling_factor",
        "max_position_embeddings",  # before 0.14
        "original_max_position_embeddings",  # 0.14
        "beta_fast",
        "beta_slow",
        "mscale",
        "mscale_all_dim",
        "cache_mla_latents",  # 0.14
        "mla_down_proj_fusion",  # 0.17
    }
)
"""Fields ``MLATransformerConfig`` adds to ``TransformerConfig``."""

_BOTH_SPEC_BUILDERS = frozenset(
    {
        "num_experts",
        "moe_grouped_gemm",
        "qk_layernorm",
        "multi_latent_attention",
        "fp8",
        "moe_use_legacy_grouped_gemm",
        "qk_l2_norm",  # 0.12
        "use_kitchen",  # 0.13
        "use_kitchen_attention",  # 0.16
        "kitchen_attention_backend",  # 0.16
    }
)
SPEC_BUILDER_PARAMETERS = {
    "get_gpt_layer_local_spec": _BOTH_SPEC_BUILDERS | {"normalization"},  # 0.12
    "get_gpt_layer_with_transformer_engine_spec": _BOTH_SPEC_BUILDERS
    | {"use_te_op_fuser", "use_te_activation_func"}  # 0.13, 0.15
    | {"mla_down_proj_fusion", "use_grouped_gemm_for_dense_mlp"},  # 0.20: restate config fields
}
"""Parameters of the spec builders that ``mla_layer_spec`` calls (by keyword, filtered by signature)."""

ATTENTION_HALF = ("input_layernorm", "self_attention_hyper_connection", "self_attention", "self_attn_bda")
MLP_HALF = ("pre_mlp_layernorm", "mlp_hyper_connection", "mlp", "mlp_bda")
"""``TransformerLayerSubmodules`` fields of a GPT layer's two halves, which ``mla_hybrid_stack_spec`` makes two
hybrid layers of (the hyper connections exist from 0.20)."""

OTHER_LAYER_FIELDS = frozenset(
    {"pre_cross_attn_layernorm", "cross_attention_hyper_connection", "cross_attention", "cross_attn_bda"}
    | {"sharded_state_dict_keys_map"}
)
"""``TransformerLayerSubmodules`` fields a GPT layer leaves at their defaults, and the key renames each half keeps
its share of."""

HYBRID_STACK_SLOTS = ("attention_layer", "mla_layer", "mlp_layer")
"""``HybridStackSubmodules`` fields ``mla_hybrid_stack_spec`` fills (0.20)."""
