"""`seamfix apply` on real Megatron-Core files edited the way fork maintainers edit them, executed before and after.

    python benchmarks/apply_megatron_mutants.py [--tree DIR] [--work DIR] [--only NAME...] [--jobs N]

``--tree`` holds a ``megatron`` package (default ``/tmp/mcore-0.16.1``: ``pip install --no-deps --target
/tmp/mcore-0.16.1 megatron-core==0.16.1``). Each mutant (``MUTANTS`` below) is a handful of exact text edits to one or
two of its files (an anchor that is missing stops the mutant with ``"anchor missing"``), plus optionally a new fork
module. For each: the mutated tree is copied twice, one copy is rewritten by ``seamfix apply`` on the mutated files only
(the configuration ``apply_megatron_fork.py`` writes: adapter ``megatron/core/mla_seam.py``, the MLA implementation
allowed), a second apply must find nothing to change, and in fresh interpreters of each tree (``apply_megatron_fork``'s
``_python``): tiny MLA and dense GPTModels are built and trained one step (``tests/codemods/megatron_model.py``; its
whole standard output is compared, so a print in an arm counts), and the mutant's own ``calls`` (Python expressions
on the MLA and dense configs ``mla``/``dense``, for functions the build does not reach) are evaluated and their
results' reprs (addresses dropped) or exceptions compared. Prints one JSON line per mutant: ``equal``, ``refused``
(apply left a site; its reasons), or ``DIFFERENT``/``APPLY FAILED``/``NOT IDEMPOTENT`` with details. Exit 1 if any
mutant is not equal or refused.
"""

# ruff: noqa: E501 - the mutant table holds Megatron source text, one edit a line
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from apply_megatron_fork import ADAPTER, ALLOW, TYPING_OVERRIDE, WORKER, _python  # noqa: E402

CORE = "megatron/core/"
SPECS = "models/gpt/gpt_layer_specs.py"
ROPE = "models/common/embeddings/rope_utils.py"
MODEL = "models/gpt/gpt_model.py"
CONFIG = "transformer/transformer_config.py"
MODELOPT = "post_training/modelopt/gpt/model_specs.py"
LOCAL_SPEC = "megatron.core.models.gpt.gpt_layer_specs:get_gpt_layer_local_spec"
BLOCK_SPEC = "megatron.core.models.gpt.gpt_layer_specs:get_gpt_decoder_block_spec"
MODELOPT_SPEC = "megatron.core.post_training.modelopt.gpt.model_specs:get_gpt_modelopt_spec"
ROPE_BSHD = "megatron.core.models.common.embeddings.rope_utils:_apply_rotary_pos_emb_bshd"
ROPE_APPLY = "megatron.core.models.common.embeddings.rope_utils:apply_rotary_pos_emb"
ROPE_ARGS = "torch.arange(48.).reshape(2, 1, 2, 12), torch.arange(16.).reshape(2, 1, 1, 8) / 7"


@dataclass
class Mutant:
    name: str
    path: str  # under megatron/core
    edits: list[tuple[str, str]]
    calls: list[str] = field(default_factory=list)  # "module:expression" in its globals; may use mla, dense, torch, NS
    files: dict[str, str] = field(default_factory=dict)  # new fork modules, under megatron/core


SPEC_CALLS = [f"{LOCAL_SPEC}(multi_latent_attention={flag})" for flag in ("True", "False", "1", "None")]
BLOCK_CALLS = [f"{BLOCK_SPEC}({c}, use_transformer_engine=False)" for c in ("mla", "dense")]
ROPE_CALLS = [f"{ROPE_BSHD}({ROPE_ARGS}, multi_latent_attention={flag})" for flag in ("True", "False")]
ROPE_APPLY_CALLS = [f"{ROPE_APPLY}({ROPE_ARGS}, {c}, cp_group=object())" for c in ("mla", "dense")]
MODELOPT_CALLS = [f"{MODELOPT_SPEC}({c}, local_core_attention=True, remap_te_layernorm={r})" for c in ("mla", "dense")
                  for r in ("True", "False")]  # fmt: skip
# The anchors and edits below are Megatron's source text, one mutant a line: long lines, left unformatted.
# fmt: off
SPEC_IF = "    if multi_latent_attention:\n        assert qk_l2_norm is False"
SPEC_ELSE = "    else:\n        return ModuleSpec(\n            module=TransformerLayer,\n            submodules=TransformerLayerSubmodules(\n                input_layernorm=layer_norm,\n                self_attention=ModuleSpec(\n                    module=SelfAttention,\n                    params={\"attn_mask_type\": AttnMaskType.causal},\n                    submodules=SelfAttentionSubmodules(\n                        linear_qkv=backend.column_parallel_linear(),"
SPEC_MLP = "    mlp = get_mlp_module_spec_for_backend(\n        backend=backend,\n        num_experts=num_experts,\n        moe_grouped_gemm=moe_grouped_gemm,\n        moe_use_legacy_grouped_gemm=moe_use_legacy_grouped_gemm,\n    )\n"
ROPE_IF = "    if multi_latent_attention:\n        x1 = t[..., 0::2]"
MODEL_INIT = "        if self.position_embedding_type == 'rope' and not self.config.multi_latent_attention:\n            self.rotary_pos_emb = RotaryEmbedding("
MODEL_PRE = "        if self.position_embedding_type == 'rope' and not self.config.multi_latent_attention:\n            use_flash_infer_fused_rope"
OPT_IF = "    if config.multi_latent_attention:\n        attn_module = MLASelfAttention"
OPT_REMAP = "        if not config.multi_latent_attention:\n            moe_sharded_state_dict_keys_map.update"
CFG_FUSION = "            if self.multi_latent_attention:\n                warnings.warn(\n                    \"apply_rope_fusion for multi-latent"
CFG_INTERLEAVED = "        if self.multi_latent_attention and self.rotary_interleaved:"
MLA_IMPORT = "from megatron.core.transformer.multi_latent_attention import (\n    MLASelfAttention,\n    MLASelfAttentionSubmodules,\n)\n"

# Megatron-Core main (``--tree`` holding its ``megatron``): inference's dynamic context, its methods called unbound on a
# stand-in ``self`` (``NS`` is ``types.SimpleNamespace``) under the MLA and dense configs
CONTEXT = "inference/contexts/dynamic_context.py"
DYN = "megatron.core.inference.contexts.dynamic_context:"
CTX_SELF = "NS(padded_active_token_count=2, gpu_view=NS(token_to_pos_ids=torch.tensor([0, 1])))"
QUERY_CALLS = [f"{DYN}DynamicInferenceContext.apply_rotary_emb_query({CTX_SELF}, {ROPE_ARGS}, {c}, None, object())"
               for c in ("mla", "dense")]  # fmt: skip
CACHED = "(setattr(mla, 'cache_mla_latents', True), mla)[1]"  # the MLA config with latent caching on
CACHE_CALLS = [f"{DYN}{{}}({c})" for c in ("mla", "dense", CACHED)]
CTX_CACHE = "        self.cache_mla_latent = (\n            isinstance(model_config, MLATransformerConfig) and model_config.cache_mla_latents\n        )\n"
CTX_QUERY = "            mscale=mscale,\n            mla_rotary_interleaved=config.multi_latent_attention,\n        )\n        return query\n"
CTX_CLASS = "class DynamicInferenceContext(BaseInferenceContext):\n"
# Megatron-Core main's GPTModel (built and trained by both builds), attention, and hybrid pattern validation
GPT_CLASS = "class GPTModel(LanguageModule, GraphableMegatronModule):\n"
GPT_SUPER = "        super().__init__(config=config, pg_collection=pg_collection)\n"
ATT = "transformer/attention.py"
ATT_MOD = "megatron.core.transformer.attention:"
ATT_CLASS = "class Attention(MegatronModule, ABC):\n"
HYBRID = "models/hybrid/hybrid_layer_allocation.py"
HLA = "megatron.core.models.hybrid.hybrid_layer_allocation:"
HYBRID_CALLS = [f"{HLA}{{}}('{p}')" for p in ("M+M-", "M*M-", "+*", "MM", "")]
HYBRID_SEG = "    # Disallow Attention + MLA/DSA hybridity.\n    if Symbols.ATTENTION in segment and (Symbols.DS_ATTENTION in segment or Symbols.MLA in segment):\n"

# An anchor found more than once in a file is looked for in these (first line, line after) regions.
REGIONS = [("def get_gpt_layer_local_spec(", "def _get_mlp_module_spec("), ("def get_gpt_modelopt_spec(", "\n\n\n\n")]

MUTANTS = [
    # --- gpt_layer_specs.get_gpt_layer_local_spec: the dense build calls it, the MLA build through the runtime
    Mutant("specs-helper-predicate", SPECS, [(SPEC_IF, "    if _use_mla(multi_latent_attention):\n        assert qk_l2_norm is False"),
        ("def get_gpt_layer_local_spec(", "def _use_mla(flag):\n    return bool(flag)\n\n\ndef get_gpt_layer_local_spec(")], SPEC_CALLS),
    Mutant("specs-elif-qk-layernorm", SPECS, [(SPEC_ELSE, "    elif qk_layernorm and multi_latent_attention is None:\n        raise ValueError('fork: unreachable')\n" + SPEC_ELSE)], SPEC_CALLS),
    Mutant("specs-and-flag", SPECS, [(SPEC_IF, "    if multi_latent_attention and not use_kitchen:\n        assert qk_l2_norm is False")], SPEC_CALLS),
    Mutant("specs-or-flag", SPECS, [(SPEC_IF, "    if multi_latent_attention or (qk_l2_norm is None):\n        assert qk_l2_norm is False")], SPEC_CALLS),
    Mutant("specs-local-cache", SPECS, [(SPEC_MLP, SPEC_MLP + "    use_mla = multi_latent_attention\n    if use_mla:\n        print('fork: MLA layer spec')\n"),
        (SPEC_IF, "    if use_mla:\n        assert qk_l2_norm is False")], SPEC_CALLS),
    Mutant("specs-print-in-arm", SPECS, [(SPEC_IF, "    if multi_latent_attention:\n        print('fork: building MLA spec', qk_layernorm)\n        assert qk_l2_norm is False")], SPEC_CALLS),
    Mutant("specs-early-return-in-arm", SPECS, [(SPEC_IF, "    if multi_latent_attention:\n        if num_experts == -1:\n            return None\n        assert qk_l2_norm is False")], SPEC_CALLS),
    Mutant("specs-dict-of-builders", SPECS, [(SPEC_IF, "    builders = {True: lambda: 'mla', False: lambda: 'dense'}\n    print('fork: kind', builders[bool(multi_latent_attention)]())\n" + SPEC_IF)], SPEC_CALLS),
    Mutant("specs-lambda-decision", SPECS, [(SPEC_IF, "    pick = lambda: 'MLA' if multi_latent_attention else 'MHA'\n    print('fork:', pick())\n" + SPEC_IF)], SPEC_CALLS),
    Mutant("specs-partial-builder", SPECS, [(SPEC_MLP, SPEC_MLP + "    import functools\n    kind = functools.partial(lambda mla, tag: (tag, bool(mla)), multi_latent_attention)\n    print('fork:', kind('spec'))\n")], SPEC_CALLS),
    Mutant("specs-decorated-builder", SPECS, [("def get_gpt_layer_local_spec(", "def _logged(fn):\n    import functools\n\n    @functools.wraps(fn)\n    def inner(*args, **kwargs):\n        print('fork: calling', fn.__name__, kwargs.get('multi_latent_attention'))\n        return fn(*args, **kwargs)\n\n    return inner\n\n\n@_logged\ndef get_gpt_layer_local_spec(")], SPEC_CALLS),
    Mutant("specs-try-import-fallback", SPECS, [(MLA_IMPORT, "try:\n" + "".join("    " + line + "\n" for line in MLA_IMPORT.splitlines()) + "    HAVE_MLA = True\nexcept ImportError:\n    HAVE_MLA = False\n"),
        (SPEC_IF, "    if multi_latent_attention and HAVE_MLA:\n        assert qk_l2_norm is False")], SPEC_CALLS),
    Mutant("specs-module-have-mla", SPECS, [("HAVE_TE = True\nexcept ImportError:\n    HAVE_TE = False\n", "HAVE_TE = True\nexcept ImportError:\n    HAVE_TE = False\n\nHAVE_MLA = MLASelfAttention is not None\n"),
        (SPEC_IF, "    if HAVE_MLA and multi_latent_attention:\n        assert qk_l2_norm is False")], SPEC_CALLS),
    Mutant("specs-getattr-config", SPECS, [("            num_experts=None,\n            moe_grouped_gemm=False,\n            qk_layernorm=config.qk_layernorm,\n            multi_latent_attention=config.multi_latent_attention,\n            moe_use_legacy_grouped_gemm=config.moe_use_legacy_grouped_gemm,\n            normalization=normalization,", "            num_experts=None,\n            moe_grouped_gemm=False,\n            qk_layernorm=config.qk_layernorm,\n            multi_latent_attention=getattr(config, 'multi_latent_attention', False),\n            moe_use_legacy_grouped_gemm=config.moe_use_legacy_grouped_gemm,\n            normalization=normalization,")], BLOCK_CALLS),
    Mutant("specs-block-local-cache", SPECS, [("def get_gpt_decoder_layer_specs(", "def _fork_mla(config):\n    use_mla = getattr(config, 'multi_latent_attention', False)\n    if use_mla:\n        print('fork: mla block', config.q_lora_rank)\n    elif config.num_moe_experts:\n        print('fork: moe block')\n    return use_mla\n\n\ndef get_gpt_decoder_layer_specs(")],
        [f"megatron.core.models.gpt.gpt_layer_specs:_fork_mla({c})" for c in ("mla", "dense")]),
    Mutant("specs-walrus-and-print", SPECS, [(SPEC_IF, "    if (mla := multi_latent_attention) and print('fork: mla', mla) is None:\n        assert qk_l2_norm is False")], SPEC_CALLS),
    Mutant("specs-nested-def-in-arm", SPECS, [(SPEC_IF, "    if multi_latent_attention:\n        def _note():\n            return 'fork: nested'\n        print(_note())\n        assert qk_l2_norm is False")], SPEC_CALLS),
    Mutant("specs-monkeypatch-from-fork", SPECS, [], SPEC_CALLS + ["megatron.core.fork_patches:applied()"],
        {"fork_patches.py": "from megatron.core.models.gpt import gpt_layer_specs\n\n_original = gpt_layer_specs.get_gpt_layer_local_spec\n\n\ndef _patched(*args, multi_latent_attention=False, **kwargs):\n    if multi_latent_attention:\n        print('fork: patched MLA spec')\n    return _original(*args, multi_latent_attention=multi_latent_attention, **kwargs)\n\n\ngpt_layer_specs.get_gpt_layer_local_spec = _patched\n\n\ndef applied():\n    return gpt_layer_specs.get_gpt_layer_local_spec is _patched\n"}),
    Mutant("specs-ternary-module", SPECS, [(SPEC_IF, "    attention_kind = MLASelfAttention if multi_latent_attention else SelfAttention\n    print('fork:', attention_kind.__name__)\n" + SPEC_IF)], SPEC_CALLS),
    Mutant("specs-global-toggle", SPECS, [("def get_gpt_layer_local_spec(", "FORK_FORCE_MLA = None\n\n\ndef get_gpt_layer_local_spec("),
        (SPEC_IF, "    global FORK_FORCE_MLA\n    if FORK_FORCE_MLA is not None:\n        multi_latent_attention = FORK_FORCE_MLA\n" + SPEC_IF)], SPEC_CALLS),
    # --- rope_utils: the MLA build runs it with the flag True, the dense build with False
    Mutant("rope-helper", ROPE, [(ROPE_IF, "    if _interleave_for_mla(multi_latent_attention):\n        x1 = t[..., 0::2]"), ("def _apply_rotary_pos_emb_bshd(", "def _interleave_for_mla(flag: bool) -> bool:\n    return flag\n\n\ndef _apply_rotary_pos_emb_bshd(")], ROPE_CALLS),
    Mutant("rope-early-return", ROPE, [(ROPE_IF, "    if multi_latent_attention and rot_dim == 0:\n        return t\n" + ROPE_IF)], ROPE_CALLS),
    Mutant("rope-local-cache", ROPE, [(ROPE_IF, "    mla = multi_latent_attention\n    if mla:\n        x1 = t[..., 0::2]"), ("    cos_ = (torch.cos(freqs) * mscale).to(t.dtype)", "    if mla:\n        mscale = mscale * 1\n    cos_ = (torch.cos(freqs) * mscale).to(t.dtype)")], ROPE_CALLS),
    Mutant("rope-print", ROPE, [(ROPE_IF, "    if multi_latent_attention:\n        print('fork: mla rope', tuple(t.shape))\n        x1 = t[..., 0::2]")], ROPE_CALLS),
    Mutant("rope-getattr-config", ROPE, [("            multi_latent_attention=config.multi_latent_attention,\n            mscale=mscale,\n        )\n    else:", "            multi_latent_attention=getattr(config, 'multi_latent_attention', False),\n            mscale=mscale,\n        )\n    else:")], ROPE_APPLY_CALLS),
    Mutant("rope-else-arm", ROPE, [(ROPE_IF + "\n        x2 = t[..., 1::2]\n        t = torch.cat((x1, x2), dim=-1)\n", ROPE_IF + "\n        x2 = t[..., 1::2]\n        t = torch.cat((x1, x2), dim=-1)\n    else:\n        t = t.contiguous()\n")], ROPE_CALLS),
    # --- gpt_model: GPTModel.__init__ and _preprocess run in both builds
    Mutant("model-local-cache", MODEL, [(MODEL_INIT, "        use_mla = self.config.multi_latent_attention\n        if self.position_embedding_type == 'rope' and not use_mla:\n            self.rotary_pos_emb = RotaryEmbedding(")]),
    Mutant("model-getattr", MODEL, [(MODEL_INIT, "        if self.position_embedding_type == 'rope' and not getattr(self.config, 'multi_latent_attention', False):\n            self.rotary_pos_emb = RotaryEmbedding(")]),
    Mutant("model-helper-method", MODEL, [(MODEL_PRE, "        if self.position_embedding_type == 'rope' and not self._fork_uses_mla():\n            use_flash_infer_fused_rope"),
        ("    def set_input_tensor(self, input_tensor: Tensor) -> None:", "    def _fork_uses_mla(self) -> bool:\n        return self.config.multi_latent_attention\n\n    def set_input_tensor(self, input_tensor: Tensor) -> None:")]),
    Mutant("model-print-arm", MODEL, [(MODEL_INIT, "        if self.config.multi_latent_attention:\n            print('fork: MLA GPTModel', self.config.kv_lora_rank)\n" + MODEL_INIT)]),
    Mutant("model-elif-mla-field", MODEL, [(MODEL_INIT, "        if self.config.multi_latent_attention and self.config.q_lora_rank is None:\n            print('fork: no q lora')\n        elif self.config.multi_latent_attention and self.config.kv_lora_rank:\n            print('fork: kv lora', self.config.kv_lora_rank)\n" + MODEL_INIT)]),
    Mutant("model-or-flag", MODEL, [(MODEL_PRE, "        if self.position_embedding_type == 'rope' and not (self.config.multi_latent_attention or self.config.cache_mla_latents if hasattr(self.config, 'cache_mla_latents') else self.config.multi_latent_attention):\n            use_flash_infer_fused_rope")]),
    Mutant("model-early-return-init", MODEL, [(MODEL_INIT, "        if self.config.multi_latent_attention and getattr(self.config, 'fork_skip_rope', False):\n            return\n" + MODEL_INIT)]),
    Mutant("model-attribute-cache", MODEL, [(MODEL_INIT, "        self._fork_mla = self.config.multi_latent_attention\n" + MODEL_INIT), (MODEL_PRE, "        if self.position_embedding_type == 'rope' and not self._fork_mla:\n            use_flash_infer_fused_rope")]),
    # --- transformer_config: every config construction runs __post_init__
    Mutant("config-elif-field", CONFIG, [(CFG_INTERLEAVED, "        if self.multi_latent_attention and getattr(self, 'kv_lora_rank', 1) == 0:\n            raise ValueError('fork: kv_lora_rank must be positive')\n        elif " + CFG_INTERLEAVED.strip().removeprefix("if "))]),
    Mutant("config-helper", CONFIG, [(CFG_INTERLEAVED, "        if _fork_mla(self) and self.rotary_interleaved:"),
        ("@dataclass\nclass TransformerConfig(", "def _fork_mla(config) -> bool:\n    return bool(getattr(config, 'multi_latent_attention', False))\n\n\n@dataclass\nclass _ForkMarker:\n    pass\n\n\n@dataclass\nclass TransformerConfig(")]),
    Mutant("config-print-arm", CONFIG, [(CFG_INTERLEAVED, "        if self.multi_latent_attention:\n            print('fork: MLA config', self.num_layers)\n" + CFG_INTERLEAVED)],
        ["megatron.core.transformer.transformer_config:TransformerConfig(num_layers=1, hidden_size=8, num_attention_heads=2, multi_latent_attention=True).num_layers"]),
    Mutant("config-fusion-local", CONFIG, [(CFG_FUSION, "            use_mla = self.multi_latent_attention\n            if use_mla:\n                warnings.warn(\n                    \"apply_rope_fusion for multi-latent")]),
    # --- post_training modelopt spec: not on the build path, called directly
    Mutant("modelopt-local-cache", MODELOPT, [(OPT_REMAP, "        use_mla = config.multi_latent_attention\n        if not use_mla:\n            moe_sharded_state_dict_keys_map.update"), (OPT_IF, "    if use_mla if remap_te_layernorm else config.multi_latent_attention:\n        attn_module = MLASelfAttention")], MODELOPT_CALLS),
    Mutant("modelopt-getattr", MODELOPT, [(OPT_IF, "    if getattr(config, 'multi_latent_attention', False):\n        attn_module = MLASelfAttention")], MODELOPT_CALLS),
    Mutant("modelopt-print-and-flag", MODELOPT, [(OPT_IF, "    if config.multi_latent_attention and not use_arbitrary_attention_mask:\n        print('fork: modelopt MLA')\n        attn_module = MLASelfAttention")], MODELOPT_CALLS),
    Mutant("modelopt-helper", MODELOPT, [(OPT_IF, "    if _fork_mla(config):\n        attn_module = MLASelfAttention"), ("def get_gpt_modelopt_spec(", "def _fork_mla(config):\n    return config.multi_latent_attention\n\n\ndef get_gpt_modelopt_spec(")], MODELOPT_CALLS),
    Mutant("modelopt-early-return", MODELOPT, [(OPT_IF, "    if config.multi_latent_attention and real_quant_cfg == 'fork-none':\n        return None\n" + OPT_IF)], MODELOPT_CALLS),
    Mutant("modelopt-elif", MODELOPT, [(OPT_REMAP, "        if config.multi_latent_attention and config.q_lora_rank is None:\n            print('fork: no q lora')\n        elif not config.multi_latent_attention:\n            moe_sharded_state_dict_keys_map.update")], MODELOPT_CALLS),
    # --- Megatron-Core main d98e8a6 (run with --tree on its checkout): dynamic_context's latent-cache decisions
    Mutant("main-ctx-cache-helper", CONTEXT, [(CTX_CACHE, "        self.cache_mla_latent = _fork_cache_mla(model_config)\n"),
        (CTX_CLASS, "def _fork_cache_mla(model_config):\n    return isinstance(model_config, MLATransformerConfig) and model_config.cache_mla_latents\n\n\n" + CTX_CLASS)],
        [c.format("_fork_cache_mla") for c in CACHE_CALLS]),
    Mutant("main-ctx-block-bytes", CONTEXT, [(CTX_CLASS, "def _fork_block_bytes(model_config, layers, tokens):\n    size = model_config.params_dtype.itemsize\n    if isinstance(model_config, MLATransformerConfig) and model_config.cache_mla_latents:\n        print('fork: latent cache', model_config.kv_lora_rank)\n        return size * layers * tokens * (model_config.kv_lora_rank + model_config.qk_pos_emb_head_dim)\n    return 2 * size * layers * tokens * model_config.kv_channels\n\n\n" + CTX_CLASS)],
        [f"{DYN}_fork_block_bytes({c}, 2, 64)" for c in ("mla", "dense", CACHED)]),
    Mutant("main-ctx-static-method", CONTEXT, [(CTX_CACHE, "        self.cache_mla_latent = self._fork_uses_latent(model_config)\n"),
        (CTX_CLASS, CTX_CLASS + "    @staticmethod\n    def _fork_uses_latent(model_config):\n        if getattr(model_config, 'multi_latent_attention', False):\n            print('fork: MLA inference', getattr(model_config, 'cache_mla_latents', None))\n        return isinstance(model_config, MLATransformerConfig) and model_config.cache_mla_latents\n\n")],
        [c.format("DynamicInferenceContext._fork_uses_latent") for c in CACHE_CALLS]),
    Mutant("main-ctx-mangled-attribute", CONTEXT, [(CTX_CLASS, CTX_CLASS + "    def _fork_latent_dim(self, model_config):\n        self.__mla = model_config.multi_latent_attention\n        if self.__mla:\n            return model_config.kv_lora_rank + model_config.qk_pos_emb_head_dim\n        return model_config.kv_channels\n\n")],
        [f"{DYN}DynamicInferenceContext._fork_latent_dim(NS(), {c})" for c in ("mla", "dense")]),
    Mutant("main-ctx-query-and-flag", CONTEXT, [(CTX_QUERY, CTX_QUERY.replace("config.multi_latent_attention", "config.multi_latent_attention and not getattr(config, 'fork_plain_rope', False)"))], QUERY_CALLS),
    Mutant("main-ctx-query-local", CONTEXT, [(CTX_QUERY, CTX_QUERY.replace("mla_rotary_interleaved=config.multi_latent_attention", "mla_rotary_interleaved=use_mla")),
        ("        n = self.padded_active_token_count\n        query_seq_idx", "        use_mla = config.multi_latent_attention\n        if use_mla:\n            print('fork: MLA query rope', config.qk_pos_emb_head_dim)\n        n = self.padded_active_token_count\n        query_seq_idx")], QUERY_CALLS),
    # --- Megatron-Core main d98e8a6: GPTModel (both builds construct and train it), shapes that nearly broke apply before
    Mutant("main-model-mangled-attribute", MODEL, [(MODEL_INIT, "        self.__mla = self.config.multi_latent_attention\n        if self.position_embedding_type == 'rope' and not self.__mla:\n            self.rotary_pos_emb = RotaryEmbedding("),
        (MODEL_PRE, "        if self.position_embedding_type == 'rope' and not self.__mla:\n            use_flash_infer_fused_rope")]),
    Mutant("main-model-property", MODEL, [(MODEL_PRE, "        if self.position_embedding_type == 'rope' and not self._fork_mla:\n            use_flash_infer_fused_rope"),
        ("    def set_input_tensor(self, input_tensor: Tensor) -> None:", "    @property\n    def _fork_mla(self) -> bool:\n        return self.config.multi_latent_attention\n\n    def set_input_tensor(self, input_tensor: Tensor) -> None:")],
        [f"megatron.core.models.gpt.gpt_model:GPTModel._fork_mla.fget(NS(config={c}))" for c in ("mla", "dense")]),
    Mutant("main-model-class-attribute", MODEL, [(GPT_CLASS, GPT_CLASS + "    fork_rope_for_mla = False\n"),
        (MODEL_INIT, "        if self.position_embedding_type == 'rope' and (self.fork_rope_for_mla or not self.config.multi_latent_attention):\n            self.rotary_pos_emb = RotaryEmbedding(")]),
    Mutant("main-model-super-in-arm", MODEL, [(GPT_SUPER, GPT_SUPER + "        if self.config.multi_latent_attention:\n            print('fork: MLA', type(super()).__name__, super().__class__.__name__, __class__.__name__)\n")]),
    Mutant("main-model-closure", MODEL, [(MODEL_PRE, "        def _fork_wants_rope():\n            return self.position_embedding_type == 'rope' and not self.config.multi_latent_attention\n\n        if _fork_wants_rope():\n            use_flash_infer_fused_rope")]),
    Mutant("main-model-try-finally", MODEL, [(MODEL_INIT, "        try:\n            if self.config.multi_latent_attention:\n                print('fork: MLA model, no RoPE module')\n        finally:\n            print('fork: rope type', self.position_embedding_type)\n" + MODEL_INIT)]),
    Mutant("main-model-dataclass-init", MODEL, [(GPT_CLASS, "import dataclasses\n\n\n@dataclasses.dataclass\nclass _ForkRope:\n    config: Any\n    kind: str = 'rope'\n\n    def __post_init__(self):\n        if self.config.multi_latent_attention:\n            self.kind = 'mla-decoupled'\n\n\n" + GPT_CLASS),
        (GPT_SUPER, GPT_SUPER + "        print('fork:', _ForkRope(config).kind)\n")],
        [f"megatron.core.models.gpt.gpt_model:_ForkRope({c})" for c in ("mla", "dense")]),
    # --- main's attention.py: static/class methods and a mangled attribute on Attention, called unbound
    Mutant("main-attention-static-classmethod", ATT, [(ATT_CLASS, ATT_CLASS + "    @staticmethod\n    def _fork_latent(config):\n        if getattr(config, 'cache_mla_latents', None):\n            return 'latent'\n        return 'kv'\n\n    @classmethod\n    def _fork_kind(cls, config):\n        return cls.__name__ if isinstance(config, MLATransformerConfig) else None\n\n")],
        [f"{ATT_MOD}Attention.{m}({c})" for m in ("_fork_latent", "_fork_kind") for c in ("mla", "dense", CACHED)]),
    Mutant("main-attention-mangled-isinstance", ATT, [(ATT_CLASS, ATT_CLASS + "    def _fork_is_mla(self):\n        self.__mla = isinstance(self.config, MLATransformerConfig) and hasattr(self, 'softmax_scale')\n        try:\n            return self.__mla\n        finally:\n            print('fork: mla', self.__mla)\n\n")],
        [f"{ATT_MOD}Attention._fork_is_mla(NS(config={c}{s}))" for c in ("mla", "dense") for s in ("", ", softmax_scale=1.0")]),
    # --- main's hybrid pattern validation: a generator and a classmethod on the layer symbols
    Mutant("main-hybrid-generator", HYBRID, [(HYBRID_SEG, "    # Disallow Attention + MLA/DSA hybridity.\n    if Symbols.ATTENTION in segment and any(_fork_mla_layers(segment)):\n"),
        ("def validate_segment_layers(", "def _fork_mla_layers(segment):\n    for index, char in enumerate(segment):\n        if char in (Symbols.DS_ATTENTION, Symbols.MLA):\n            yield index + 1\n\n\ndef validate_segment_layers(")],
        [c.format("validate_segment_layers") for c in HYBRID_CALLS] + [c.format("_fork_mla_layers") + ".__next__()" for c in HYBRID_CALLS]),
    Mutant("main-hybrid-classmethod", HYBRID, [(HYBRID_SEG, "    # Disallow Attention + MLA/DSA hybridity.\n    if Symbols.ATTENTION in segment and Symbols.fork_has_latent(segment):\n"),
        ("    @classmethod\n    def name_sorted_valid_layer_symbols(", "    @classmethod\n    def fork_has_latent(cls, segment):\n        return cls.DS_ATTENTION in segment or cls.MLA in segment\n\n    @classmethod\n    def name_sorted_valid_layer_symbols(")],
        [c.format("validate_segment_layers") for c in HYBRID_CALLS] + [c.format("Symbols.fork_has_latent") for c in HYBRID_CALLS]),
    # --- main's attention.py loses its MLATransformerConfig import once the isinstance is routed: fork modules reading it from there
    *[Mutant(f"main-attention-import-{kind}", ATT, [], ["megatron.core.fork_kinds:kind_name()"], {"fork_kinds.py": source}) for kind, source in (
        ("reexport", "from megatron.core.transformer.attention import MLATransformerConfig\n\n\ndef kind_name():\n    return MLATransformerConfig.__name__\n"),
        ("module-attribute", "import megatron.core.transformer.attention as attention\n\n\ndef kind_name():\n    return attention.MLATransformerConfig.__name__\n"),
        ("star", "from megatron.core.transformer.attention import *  # noqa: F403\n\n\ndef kind_name():\n    return MLATransformerConfig.__name__  # noqa: F405\n"),
        ("importlib", "import importlib\n\n\ndef kind_name():\n    return importlib.import_module('megatron.core.transformer.attention').MLATransformerConfig.__name__\n"))],
    # --- main's gpt_model.py: arms apply may move, holding a mangled write, a yield, a nonlocal, a cls write
    Mutant("main-model-mangled-arm", MODEL, [(GPT_CLASS, "class _ForkTag:\n    def __init__(self, config):\n        self.__kind = 'dense'\n        if config.multi_latent_attention:\n            self.__kind = 'mla'\n            self.rank = config.kv_lora_rank\n\n    def kind(self):\n        return self.__kind, vars(self)\n\n\n" + GPT_CLASS)],
        [f"megatron.core.models.gpt.gpt_model:_ForkTag({c}).kind()" for c in ("mla", "dense")]),
    Mutant("main-model-generator-arm", MODEL, [(GPT_CLASS, "def _fork_layers(config):\n    yield 'embedding'\n    if config.multi_latent_attention:\n        yield 'latent-q'\n        yield 'latent-kv'\n    else:\n        yield 'qkv'\n    yield 'output'\n\n\n" + GPT_CLASS)],
        [f"megatron.core.models.gpt.gpt_model:list(_fork_layers({c}))" for c in ("mla", "dense")]),
    Mutant("main-model-nonlocal-arm", MODEL, [(GPT_CLASS, "def _fork_counter(config):\n    seen = []\n    count = 0\n\n    def note():\n        nonlocal count\n        if config.multi_latent_attention:\n            count += 2\n            seen.append(config.kv_lora_rank)\n        return count\n\n    return note(), note(), seen\n\n\n" + GPT_CLASS)],
        [f"megatron.core.models.gpt.gpt_model:_fork_counter({c})" for c in ("mla", "dense")]),
    Mutant("main-model-classmethod-arm", MODEL, [(GPT_CLASS, "class _ForkRegistry:\n    kinds = ()\n\n    @classmethod\n    def register(cls, config):\n        if config.multi_latent_attention:\n            cls.kinds = cls.kinds + ('mla',)\n            return cls\n        return None\n\n\n" + GPT_CLASS)],
        [f"megatron.core.models.gpt.gpt_model:(_ForkRegistry.register({c}), _ForkRegistry.kinds)" for c in ("mla", "dense")]),
    Mutant("main-model-try-return-arm", MODEL, [(GPT_CLASS, "def _fork_rank(config, log):\n    try:\n        if config.multi_latent_attention:\n            log.append('mla')\n            return config.kv_lora_rank\n        log.append('dense')\n    finally:\n        log.append('done')\n    return None\n\n\n" + GPT_CLASS)],
        [f"megatron.core.models.gpt.gpt_model:(lambda log: (_fork_rank({c}, log), log))([])" for c in ("mla", "dense")]),
]
# fmt: on


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=Path("/tmp/mcore-0.16.1"))
    parser.add_argument("--work", type=Path)
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="seamfix-mutants-"))
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only]
    results = []
    with ThreadPoolExecutor(args.jobs) as pool:
        for result in pool.map(lambda m: run_mutant(m, args.tree, work / m.name), chosen):
            results.append(result)
            print(json.dumps(result), flush=True)
    return 0 if all(r["result"] in ("equal", "refused") for r in results) else 1


def run_mutant(mutant: Mutant, tree: Path, work: Path) -> dict:
    original, rewritten = work / "original", work / "rewritten"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(tree / "megatron", original / "megatron", ignore=shutil.ignore_patterns("__pycache__"))
    target = original / CORE / mutant.path
    text = target.read_text()
    for old, new in mutant.edits:
        start, end = _region(text, old)
        if text.count(old, start, end) != 1:
            return {"mutant": mutant.name, "result": "anchor missing", "anchor": old[:80]}
        text = text[:start] + text[start:end].replace(old, new) + text[end:]
    target.write_text(text)
    paths = [CORE + mutant.path]
    for name, source in mutant.files.items():
        (original / CORE / name).write_text(source)
        paths.append(CORE + name)
    (original / "sitecustomize.py").write_text(TYPING_OVERRIDE)
    shutil.copytree(original, rewritten)
    allow = ", ".join(f'"{path}"' for path in ALLOW)
    (rewritten / "pyproject.toml").write_text(
        f'[tool.seamfix]\nadapter = "{ADAPTER}"\nallow = [{allow}]\nrespect-gitignore = false\n'
    )
    before = {path: (rewritten / path).read_bytes() for path in paths}
    applied = _apply(rewritten, paths)
    report = {"mutant": mutant.name, "apply": applied.stderr.strip().splitlines()[:1]}
    if applied.returncode not in (0, 1):
        return {**report, "result": "APPLY FAILED", "stderr": applied.stderr[-1500:]}
    changed = [path for path in paths if (rewritten / path).read_bytes() != before[path]]
    report["rewritten"] = changed
    after = {path: _snapshot(rewritten, path) for path in [*paths, ADAPTER]}
    again = _apply(rewritten, paths)
    if again.returncode not in (0, 1) or after != {path: _snapshot(rewritten, path) for path in after}:
        return {**report, "result": "NOT IDEMPOTENT", "stderr": again.stderr[-800:]}
    runs = [_python(t, "", WORKER, str(work / f"{t.name}.rendezvous")) for t in (original, rewritten)]
    calls = [_python(t, "", Path(__file__), "--calls", json.dumps(mutant.calls)) if mutant.calls else "" for t in
             (original, rewritten)]  # fmt: skip
    report["refusals"] = [line.strip() for line in applied.stderr.splitlines() if line.startswith("  ")][:6]
    if runs[0] != runs[1] or calls[0] != calls[1] or not runs[0].strip():
        return {**report, "result": "DIFFERENT" if runs[0].strip() else "NO RUN", "train": [r[-600:] for r in runs],
                "calls": [c[-1500:] for c in calls]}  # fmt: skip
    return {**report, "result": "equal" if changed else "refused"}


def _region(text: str, anchor: str) -> tuple[int, int]:
    """Where an edit applies: the whole file, or the first of ``REGIONS`` that holds the anchor once."""
    for first, after in REGIONS:
        start, end = text.find(first), text.find(after)
        if text.count(anchor) > 1 and 0 <= start < end and text.count(anchor, start, end) == 1:
            return start, end
    return 0, len(text)


def _snapshot(tree: Path, path: str) -> bytes | None:
    return (tree / path).read_bytes() if (tree / path).exists() else None


def _apply(tree: Path, paths: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seamfix", "apply", "--jobs", "1", *paths], cwd=tree,
                          capture_output=True, text=True, timeout=900, check=False)  # fmt: skip


def evaluate_calls(calls: list[str]) -> None:
    """The worker: evaluate each ``module:expression`` in the module's globals plus the MLA and dense configs
    (``mla``, ``dense``, ``torch``, ``NS``); print reprs as JSON."""
    import importlib
    import types
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    sys.path.insert(0, str(WORKER.parent))
    from megatron.core.transformer.transformer_config import TransformerConfig
    from megatron_model import MLA, SHARED

    import seamfix.runtime.megatron as seam

    results = {}
    with seam.cpu_mode():
        names = {"mla": seam.mla_config(**MLA), "dense": TransformerConfig(**SHARED), "torch": torch}
        names["NS"] = types.SimpleNamespace
        for call in calls:
            module, expression = call.split(":", 1)
            try:
                scope = {**vars(importlib.import_module(module)), **names}  # the module's globals, then ours
                value = eval(expression, scope)  # noqa: S307 - the driver's own expressions
                results[call] = re.sub(r" at 0x[0-9a-f]+", "", repr(value))
            except Exception as error:  # noqa: BLE001 - compared between the trees
                results[call] = f"{type(error).__name__}: {error}"
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--calls"]:
        evaluate_calls(json.loads(sys.argv[2]))
    else:
        sys.exit(main())
