"""Megatron ``ModuleSpec``s whose MLA attention goes through seamfix's adapters."""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable

from megatron.core.models.gpt import gpt_layer_specs
from megatron.core.transformer.dot_product_attention import DotProductAttention
from megatron.core.transformer.spec_utils import ModuleSpec

from .attention_adapter import is_mla_attention, is_mla_class, mla_adapter
from .core_attention import MLADotProductAttention, MLAScaledDotProductAttention
from .releases import installed_version
from .signatures import keywords_accepted
from .te_flag import transformer_engine_installed

LAYER_SPEC_BUILDERS = {
    "local": gpt_layer_specs.get_gpt_layer_local_spec,
    "te": gpt_layer_specs.get_gpt_layer_with_transformer_engine_spec,
}

BUILDER_PARAMETERS_FROM_CONFIG = {
    "num_experts": "num_moe_experts",
    "moe_grouped_gemm": "moe_grouped_gemm",
    "moe_use_legacy_grouped_gemm": "moe_use_legacy_grouped_gemm",
    "qk_layernorm": "qk_layernorm",
    "qk_l2_norm": "qk_l2_norm",
    "normalization": "normalization",
    "use_kitchen": "use_kitchen",
    "mla_down_proj_fusion": "mla_down_proj_fusion",  # 0.20
    "use_grouped_gemm_for_dense_mlp": "use_grouped_gemm_for_dense_mlp",  # 0.20
}
"""Spec-builder parameter → the config field it restates. Where a release's builder lacks the parameter, its
modules read the field from the config themselves, so it is left out."""


LOCAL_CORE_ATTENTION = {"fused": MLAScaledDotProductAttention, "unfused": MLADotProductAttention}
"""``core_attention`` choice → the local core attention MLA layers get in place of Megatron's ``DotProductAttention``:
``fused`` runs ``scaled_dot_product_attention`` (no score matrix), ``unfused`` Megatron's own materialized path."""


def adapt_mla_spec(spec, core_attention: str = "fused"):
    """``spec`` (a layer spec, a block spec or its submodules) with every MLA attention class behind its adapter.

    Inside MLA attention submodules, Megatron's local ``DotProductAttention`` (which rejects MLA's
    ``k_channels``/``v_channels``) becomes ``LOCAL_CORE_ATTENTION[core_attention]``. Params, other submodules and
    everything else are kept; the spec passed in is not modified.
    """
    if core_attention not in LOCAL_CORE_ATTENTION:
        raise ValueError(f"core_attention must be one of {', '.join(LOCAL_CORE_ATTENTION)}, not {core_attention!r}")
    local = LOCAL_CORE_ATTENTION[core_attention]

    def mla_submodules(spec, submodules):
        if not is_mla_class(spec.module):
            return submodules
        return _replace_classes(submodules, lambda cls: local if cls is DotProductAttention else None)

    return _replace_classes(spec, lambda cls: mla_adapter(cls) if is_mla_attention(cls) else None, mla_submodules)


def mla_layer_spec(config, backend: str = "local", *, core_attention: str = "fused", **options):
    """A ``TransformerLayer`` spec with MLA attention for the installed release, built through the adapters.

    ``options`` go to megatron's layer-spec builder by keyword; one the release's builder lacks raises unless it
    is None. ``backend="local"`` gets ``MLAScaledDotProductAttention``, or with ``core_attention="unfused"``
    ``MLADotProductAttention`` (see ``adapt_mla_spec``); it raises ``ValueError`` where the release needs
    TransformerEngine for the config (0.20: ``qk_layernorm`` without ``q_lora_rank``).
    """
    if backend not in LAYER_SPEC_BUILDERS:
        raise ValueError(f"backend must be one of {', '.join(LAYER_SPEC_BUILDERS)}, not {backend!r}")
    if backend == "te" and not transformer_engine_installed():
        raise ImportError("backend='te' needs transformer_engine, which is not installed; use backend='local'")
    _check_query_norm(config, backend)
    builder = LAYER_SPEC_BUILDERS[backend]
    accepted = keywords_accepted(builder)
    unsupported = sorted(name for name, value in options.items() if name not in accepted and value is not None)
    if unsupported:
        raise TypeError(f"megatron-core {installed_version()}'s {builder.__name__} takes no {', '.join(unsupported)}")
    from_config = {
        parameter: getattr(config, field)
        for parameter, field in BUILDER_PARAMETERS_FROM_CONFIG.items()
        if hasattr(config, field)
    }
    arguments = {**from_config, "multi_latent_attention": True, **options}
    return adapt_mla_spec(builder(**{name: value for name, value in arguments.items() if name in accepted}),
                          core_attention)  # fmt: skip


def _check_query_norm(config, backend: str) -> None:
    # 0.20 (mla_qk_norm_config) normalizes the query input when qk_layernorm is set without q_lora_rank, in a
    # fused norm+linear only TransformerEngine has; earlier releases had no query norm then. Left alone, the local
    # build fails deep inside with a TransformerEngine stand-in's AttributeError.
    if backend == "local" and config.qk_layernorm and config.q_lora_rank is None and _has_qk_norm_resolver():
        raise ValueError(
            f"megatron-core {installed_version()} builds qk_layernorm without q_lora_rank as a fused norm+linear "
            "query projection, which only TransformerEngine has: use backend='te', set q_lora_rank, or "
            "qk_layernorm=False"
        )


def _has_qk_norm_resolver() -> bool:
    return importlib.util.find_spec("megatron.core.transformer.mla_qk_norm_config") is not None


def _replace_classes(node, replacement: Callable[[type], type | None], inner=None):
    """``node`` with each class ``cls`` inside it for which ``replacement(cls)`` is a class swapped for that.

    Walks dataclass instances (``ModuleSpec`` and the ``*Submodules``), lists and tuples; rebuilds only what
    changed, so untouched parts stay the very same objects. ``inner(spec, submodules)``, if given, rewrites each
    ``ModuleSpec``'s submodules before the walk goes into them.
    """
    if isinstance(node, type):
        return replacement(node) or node
    if isinstance(node, list | tuple):
        items = [_replace_classes(item, replacement, inner) for item in node]
        changed = any(new is not old for new, old in zip(items, node, strict=True))
        return type(node)(items) if changed else node
    if dataclasses.is_dataclass(node):
        changes = {}
        for field in dataclasses.fields(node):
            if field.init:
                old = getattr(node, field.name)
                new = inner(node, old) if inner and isinstance(node, ModuleSpec) and field.name == "submodules" else old
                new = _replace_classes(new, replacement, inner)
                if new is not old:
                    changes[field.name] = new
        return dataclasses.replace(node, **changes) if changes else node
    return node
