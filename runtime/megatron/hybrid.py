"""``HybridModel`` stacks whose attention layers are MLA behind the adapters (megatron-core 0.20, main, and later).

One GPT layer is two hybrid layers: its attention half (pattern symbol ``*``, or ``+``, the MLA slot) and its
dense-MLP half (``-``). ``mla_hybrid_stack_spec`` cuts ``mla_layer_spec``'s layer in those two halves, so a hybrid
model with pattern ``"*-" * N`` has the modules, parameters and arithmetic of the N-layer ``GPTModel``;
``hybrid_state_dict_from_gpt`` moves a GPT checkpoint onto it.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import re
from collections.abc import Mapping

from megatron.core.transformer.identity_op import IdentityOp
from megatron.core.transformer.spec_utils import ModuleSpec

from .releases import installed_version
from .spec import mla_layer_spec
from .surface import ATTENTION_HALF, MLP_HALF

SLOTS = {
    "MAMBA": "mamba_layer",
    "GDN": "gdn_layer",
    "ATTENTION": "attention_layer",
    "DS_ATTENTION": "dsa_layer",
    "MLA": "mla_layer",
    "MLP": "mlp_layer",
    "MOE": "moe_layer",
}
"""Layer symbol (by its name in megatron's ``Symbols``) → the ``HybridStackSubmodules`` field that builds it."""


def has_hybrid_model() -> bool:
    return importlib.util.find_spec("megatron.core.models.hybrid") is not None


def _hybrid_modules():
    try:
        return (
            importlib.import_module("megatron.core.models.hybrid.hybrid_block"),
            importlib.import_module("megatron.core.models.hybrid.hybrid_layer_allocation"),
        )
    except ModuleNotFoundError as error:
        if not "megatron.core.models.hybrid".startswith(str(error.name)):
            raise
        raise NotImplementedError(
            f"megatron-core {installed_version()} has no HybridModel (megatron.core.models.hybrid, Megatron-Core "
            "0.20+); build a GPTModel with mla_layer_spec instead"
        ) from None


def mla_hybrid_stack_spec(config, backend: str = "local", **options) -> ModuleSpec:
    """A ``HybridModel`` stack spec whose attention layers (``*`` and ``+``) are MLA through the adapters.

    ``*``/``+`` layers are the attention half and ``-`` layers the dense-MLP half of ``mla_layer_spec(config,
    backend, **options)``. With ``backend="te"`` the other layer kinds (``M``, ``G``, ``D``, ``E``, MTP) are
    upstream's TransformerEngine ones; ``backend="local"`` needs no TransformerEngine, builds only ``*``, ``+`` and
    ``-`` layers (a pattern with others raises when the model is built) and ends with Megatron's local norm.
    Raises ``NotImplementedError`` on releases without ``HybridModel``.
    """
    hybrid_block, allocation = _hybrid_modules()
    layer = mla_layer_spec(config, backend, **{**options, "num_experts": None})  # '-' is dense; 'E' is MoE
    mlp_layer = importlib.import_module("megatron.core.ssm.mlp_layer").MLPLayer
    attention, dense = _half(layer, ATTENTION_HALF, layer.module), _half(layer, MLP_HALF, mlp_layer)
    if backend == "te":
        upstream = importlib.import_module("megatron.core.models.hybrid.hybrid_layer_specs").hybrid_stack_spec
        submodules = dataclasses.replace(upstream.submodules, attention_layer=attention, mla_layer=attention,
                                         mlp_layer=dense)  # fmt: skip
        return dataclasses.replace(upstream, submodules=submodules)
    return ModuleSpec(
        module=_local_hybrid_stack(hybrid_block.HybridStack, allocation.Symbols),
        submodules=hybrid_block.HybridStackSubmodules(attention_layer=attention, mla_layer=attention, mlp_layer=dense),
    )


def _half(layer: ModuleSpec, fields: tuple[str, ...], module: type) -> ModuleSpec:
    """A ``module`` spec with only ``fields`` of ``layer``'s submodules (and their sharded-state-dict key renames)."""
    submodules = layer.submodules
    kept = {field.name for field in dataclasses.fields(submodules) if field.name in fields}
    renames = {old: new for old, new in submodules.sharded_state_dict_keys_map.items() if old.split(".")[0] in kept}
    half = type(submodules)(**{name: getattr(submodules, name) for name in kept}, sharded_state_dict_keys_map=renames)
    return ModuleSpec(module=module, params=layer.params, submodules=half)


@functools.cache
def _local_hybrid_stack(hybrid_stack: type, symbols: type) -> type:
    """``HybridStack`` with Megatron's local final norm (upstream builds TransformerEngine's ``TENorm``)."""
    from megatron.core.transformer.transformer_block import LayerNormImpl

    slots = {getattr(symbols, name): slot for name, slot in SLOTS.items() if hasattr(symbols, name)}

    def __init__(self, config, submodules, *args, post_layer_norm: bool = True, **kwargs):
        for symbol in kwargs.get("layer_type_list") or ():
            if getattr(submodules, slots.get(symbol, ""), IdentityOp) is IdentityOp:
                raise ValueError(
                    f"mla_hybrid_stack_spec(backend='local') builds '*', '+' and '-' layers only; the pattern's "
                    f"{symbol!r} layers need backend='te'"
                )
        hybrid_stack.__init__(self, config, submodules, *args, post_layer_norm=False, **kwargs)
        self.post_layer_norm = post_layer_norm
        if self.post_process and post_layer_norm:
            # The norm GPTModel's TransformerBlock ends with, so "*-" * N computes what N GPT layers do.
            self.final_norm = LayerNormImpl(config=config, hidden_size=config.hidden_size, eps=config.layernorm_epsilon)

    name = "LocalNormHybridStack"
    namespace = {
        "__init__": __init__,
        "__module__": __name__,
        "__qualname__": name,
        "__doc__": _local_hybrid_stack.__doc__,
    }
    return type(name, (hybrid_stack,), namespace)


_GPT_LAYER_KEY = re.compile(r"^(?P<prefix>(?:.*\.)?decoder\.layers\.)(?P<index>\d+)\.(?P<part>[^.]+)(?P<rest>\..*)$")


def hybrid_state_dict_from_gpt(state_dict: Mapping[str, object]) -> dict[str, object]:
    """A ``GPTModel`` state dict for the ``HybridModel`` of pattern ``"*-" * N`` built by ``mla_hybrid_stack_spec``.

    GPT layer ``i``'s attention half becomes hybrid layer ``2 i``, its MLP half layer ``2 i + 1``;
    ``decoder.final_layernorm`` becomes ``decoder.final_norm``; embeddings and output layer keep their keys.
    Load it with ``load_state_dict(..., strict=True)`` to have every parameter accounted for. Raises
    ``ValueError`` for a layer entry that belongs to neither half (cross attention, ...).
    """
    mapped = {}
    for key, value in state_dict.items():
        match = _GPT_LAYER_KEY.match(key)
        if match is None:
            mapped[key.replace("decoder.final_layernorm.", "decoder.final_norm.")] = value
            continue
        index, part = int(match["index"]), match["part"]
        if part not in ATTENTION_HALF and part not in MLP_HALF:
            raise ValueError(f"{key}: a GPT layer's {part} has no place in a '*-' hybrid layer pair")
        hybrid_index = 2 * index + (part in MLP_HALF)
        mapped[f"{match['prefix']}{hybrid_index}.{part}{match['rest']}"] = value
    return mapped
