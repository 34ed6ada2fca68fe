"""Megatron ``ModuleSpec``s whose MLA attention goes through seamfix's adapters."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from megatron.core.models.gpt import gpt_layer_specs
from megatron.core.transformer.dot_product_attention import DotProductAttention

from .attention_adapter import is_mla_attention, mla_adapter
from .core_attention import MLADotProductAttention
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
}
"""Spec-builder parameter → the config field it restates. Where a release's builder lacks the parameter, its
modules read the field from the config themselves, so it is left out."""


def adapt_mla_spec(spec):
    """``spec`` (a layer spec, a block spec or its submodules) with every MLA attention class behind its adapter.

    Params, submodules and everything else are kept; the spec passed in is not modified.
    """
    return _replace_classes(spec, lambda cls: mla_adapter(cls) if is_mla_attention(cls) else None)


def mla_layer_spec(config, backend: str = "local", **options):
    """A ``TransformerLayer`` spec with MLA attention for the installed release, built through the adapters.

    ``options`` go to megatron's layer-spec builder by keyword; one the release's builder lacks raises unless it
    is None. ``backend="local"`` swaps in ``MLADotProductAttention``, since Megatron's own local core attention
    rejects MLA's ``k_channels``/``v_channels``.
    """
    if backend not in LAYER_SPEC_BUILDERS:
        raise ValueError(f"backend must be one of {', '.join(LAYER_SPEC_BUILDERS)}, not {backend!r}")
    if backend == "te" and not transformer_engine_installed():
        raise ImportError("backend='te' needs transformer_engine, which is not installed; use backend='local'")
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
    spec = builder(**{name: value for name, value in arguments.items() if name in accepted})
    if backend == "local":
        spec = _replace_classes(spec, lambda cls: MLADotProductAttention if cls is DotProductAttention else None)
    return adapt_mla_spec(spec)


def _replace_classes(node, replacement: Callable[[type], type | None]):
    """``node`` with each class ``cls`` inside it for which ``replacement(cls)`` is a class swapped for that.

    Walks dataclass instances (``ModuleSpec`` and the ``*Submodules``), lists and tuples; rebuilds only what
    changed, so untouched parts stay the very same objects.
    """
    if isinstance(node, type):
        return replacement(node) or node
    if isinstance(node, list | tuple):
        items = [_replace_classes(item, replacement) for item in node]
        changed = any(new is not old for new, old in zip(items, node, strict=True))
        return type(node)(items) if changed else node
    if dataclasses.is_dataclass(node):
        changes = {}
        for field in dataclasses.fields(node):
            if field.init:
                old = getattr(node, field.name)
                new = _replace_classes(old, replacement)
                if new is not old:
                    changes[field.name] = new
        return dataclasses.replace(node, **changes) if changes else node
    return node
