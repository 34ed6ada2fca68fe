"""Adapters that give megatron-core's MLA attention classes the newest constructor and forward contract.

An adapter subclasses the installed class, so a ``ModuleSpec`` naming it builds the release's own module, with the
same parameters, state dict and arithmetic; only the arguments are translated on the way in.
"""

from __future__ import annotations

import functools
import logging

from megatron.core.tensor_parallel import ColumnParallelLinear
from megatron.core.transformer import multi_latent_attention
from megatron.core.transformer.enums import AttnMaskType
from megatron.core.transformer.multi_latent_attention import MLASelfAttention, MultiLatentAttention

from .config import check_fields_mla_ignores
from .installed import shipped_module
from .releases import MLA_ATTENTION_CLASSES, installed_version
from .signatures import keywords_accepted
from .te_flag import correct_mla_te_flag

logger = logging.getLogger(__name__)

PROCESS_GROUP_ARGUMENTS = ("pg_collection", "model_comm_pgs")
"""The process-group argument's names, newest first (0.13-0.14 call it ``model_comm_pgs``, 0.11-0.12 have none)."""

_reported: set[str] = set()


def _report_once(message: str) -> None:
    if message not in _reported:
        _reported.add(message)
        logger.warning(message)


class MLAAttentionAdapter:
    """Accepts the newest MLA attention contract and hands the installed class only what it takes.

    Not used alone: ``mla_adapter`` puts it in front of an installed MLA class.
    """

    # Prefixed: the installed class's own attributes share the namespace (0.18 keeps a pp_layer_offset).
    _seamfix_native: type
    _seamfix_native_keywords: frozenset[str]

    def __init__(
        self,
        config,
        submodules,
        layer_number: int,
        attn_mask_type: AttnMaskType = AttnMaskType.padding,
        cp_comm_type: str | None = None,
        pg_collection=None,
        pp_layer_offset: int | None = None,
        name: str | None = None,
        *,
        model_comm_pgs=None,
        **extra,
    ) -> None:
        if pg_collection is not None and model_comm_pgs is not None:
            raise TypeError("pass the process groups as pg_collection or as model_comm_pgs, not both")
        accepted = self._seamfix_native_keywords
        arguments = dict(
            config=config,
            submodules=submodules,
            layer_number=layer_number,
            attn_mask_type=attn_mask_type,
            cp_comm_type=cp_comm_type,
            **extra,
        )
        arguments |= self._process_group_argument(pg_collection if pg_collection is not None else model_comm_pgs)
        if "name" in accepted:
            arguments["name"] = name
        if "pp_layer_offset" in accepted:
            arguments["pp_layer_offset"] = pp_layer_offset
        _check_widths(config)
        if self._seamfix_native in installed_mla_classes().values():  # a fork's subclass may read them
            check_fields_mla_ignores(config)  # a config built without mla_config, or changed after it
        correct_mla_te_flag()
        super().__init__(**arguments)
        self._seamfix_pp_layer_offset = None if "pp_layer_offset" in accepted else pp_layer_offset
        native = self._seamfix_native
        if self._seamfix_pp_layer_offset and not hasattr(native, "_get_pp_layer_offset_for_inference"):
            _report_once(
                f"megatron-core {installed_version()}'s {native.__name__} indexes its inference KV cache by the "
                f"global layer number; pp_layer_offset={pp_layer_offset} is not used"
            )

    def _process_group_argument(self, process_groups) -> dict:
        if process_groups is None:
            return {}
        for argument in PROCESS_GROUP_ARGUMENTS:
            if argument in self._seamfix_native_keywords:
                return {argument: process_groups}
        _report_once(
            f"megatron-core {installed_version()}'s {self._seamfix_native.__name__} takes no process groups and uses "
            "the global model-parallel ones; the process groups passed are not used"
        )
        return {}

    def _get_pp_layer_offset_for_inference(self) -> int:
        # 0.16-0.17 work the KV-cache layer offset out from the config; a layer that passes pp_layer_offset
        # (0.18's contract) means that one.
        if self._seamfix_pp_layer_offset is None:
            return super()._get_pp_layer_offset_for_inference()
        return self._seamfix_pp_layer_offset

    def prepare_for_absorption(self) -> None:
        # Megatron (0.14+, cache_mla_latents) splits TransformerEngine's fused kv norm + up-projection here, with a
        # TE-only function; the local spec has them apart already (kv_layernorm, then a plain linear), so the split
        # is only to name the linear and view its weight per head as the K and V up-projections.
        if hasattr(self, "up_k_weight") or not isinstance(self.linear_kv_up_proj, ColumnParallelLinear):
            super().prepare_for_absorption()
            return
        config, heads = self.config, self.num_attention_heads_per_partition
        weight = self.linear_kv_up_proj.weight.detach()  # [heads * (qk_head_dim + v_head_dim), kv_lora_rank]
        weight = weight.view(heads, config.qk_head_dim + config.v_head_dim, config.kv_lora_rank)
        self.up_k_weight = weight[:, : config.qk_head_dim]
        self.up_v_weight = weight[:, config.qk_head_dim :]
        self.linear_kv_up_proj_linear = self.linear_kv_up_proj  # uncompresses the cached latents for prefill
        del self.linear_kv_up_proj  # as upstream: the absorbed model has no fused up-projection

    def forward(
        self,
        hidden_states,
        attention_mask,
        *args,
        rotary_pos_emb=None,
        rotary_pos_cos=None,
        rotary_pos_sin=None,
        rotary_pos_cos_sin=None,
        **kwargs,
    ):
        if getattr(kwargs.get("packed_seq_params"), "qkv_format", None) == "thd":
            _check_packed_value_width(self.config)
        # MLA applies its own RoPE to the qk_pos_emb_head_dim slice and asserts that a caller passes none; generic
        # layers and models hand every attention module theirs.
        return super().forward(hidden_states, attention_mask, *args, **kwargs)


def _check_widths(config) -> None:
    # Megatron builds zero widths into a silently degenerate layer (no output, or keys, values or queries from an
    # empty latent) and fails on negative ones with errors naming no field (torch.arange's bounds, a split).
    ranks = {"kv_lora_rank": config.kv_lora_rank, "v_head_dim": config.v_head_dim}
    if config.q_lora_rank is not None:  # None: the query is projected without compression
        ranks["q_lora_rank"] = config.q_lora_rank
    for name, width in ranks.items():
        if width < 1:
            raise ValueError(f"{name}={width} must be positive")
    for name in ("qk_head_dim", "qk_pos_emb_head_dim"):
        if getattr(config, name) < 0:
            raise ValueError(f"{name}={getattr(config, name)} must not be negative")
    if config.qk_head_dim + config.qk_pos_emb_head_dim == 0:
        raise ValueError("qk_head_dim and qk_pos_emb_head_dim are both 0: queries and keys need some width")
    if config.qk_pos_emb_head_dim % 2:
        # Megatron's RoPE then fails with a shape error naming no field (at the first forward, or here with
        # YaRN), or, 1 wide, runs.
        raise ValueError(
            f"qk_pos_emb_head_dim={config.qk_pos_emb_head_dim} must be even: RoPE rotates the key and query "
            "channels in pairs"
        )


def _check_packed_value_width(config) -> None:
    # Megatron-Core main (0.20) pads MLA's values to the query width for packed (THD) sequences, for
    # TransformerEngine; wider values it cuts instead (a negative pad), and the layer fails later in its output
    # projection with a shape error that names neither width. Releases before it take any value width.
    query_width = config.qk_head_dim + config.qk_pos_emb_head_dim
    if (
        config.v_head_dim > query_width
        and getattr(config, "experimental_attention_variant", None) is None
        and hasattr(multi_latent_attention, "_prepare_mla_core_attention_value")
    ):
        raise NotImplementedError(
            f"megatron-core {installed_version()}'s MLA pads values to the query width for packed (THD) sequences "
            f"and cannot widen past it: v_head_dim ({config.v_head_dim}) exceeds qk_head_dim + qk_pos_emb_head_dim "
            f"({query_width}); use v_head_dim <= {query_width} or unpacked batches"
        )


@functools.cache
def mla_adapter(native: type) -> type:
    """The adapter for an MLA attention class of the installed release, or for a fork's subclass of one."""
    if issubclass(native, MLAAttentionAdapter):
        return native
    name = f"{native.__name__}Adapter"
    namespace = {
        "__module__": __package__,  # where the adapters are imported from, and pickle finds them
        "__qualname__": name,
        "__doc__": f"``{native.__name__}`` behind the newest MLA attention contract (see ``MLAAttentionAdapter``).",
        "_seamfix_native": native,
        "_seamfix_native_keywords": keywords_accepted(native),
    }
    return type(name, (MLAAttentionAdapter, native), namespace)


@functools.cache
def installed_mla_classes() -> dict[str, type]:
    """The MLA attention classes of ``MLA_ATTENTION_CLASSES`` that the installed release ships, by name."""
    found = {}
    for class_name, module_name in MLA_ATTENTION_CLASSES.items():
        module = shipped_module(module_name)
        if hasattr(module, class_name):
            found[class_name] = getattr(module, class_name)
    return found


def is_mla_class(cls: object) -> bool:
    """Whether ``cls`` is an MLA attention class: megatron's, a fork's subclass of one, or an adapter."""
    roots = (MultiLatentAttention, *installed_mla_classes().values())
    return isinstance(cls, type) and issubclass(cls, roots)


def is_mla_attention(cls: object) -> bool:
    """Whether ``cls`` is an MLA attention class (a fork's subclass included) that has no adapter yet."""
    return is_mla_class(cls) and not issubclass(cls, MLAAttentionAdapter)


MLASelfAttentionAdapter = mla_adapter(MLASelfAttention)


def adapter_named(name: str) -> type | None:
    """The adapter called ``name`` (``FusedMLASelfAttentionAdapter``, ...), None for a name that is no adapter's.

    Raises ``AttributeError`` for an adapter whose class the installed release lacks.
    """
    native_name = name.removesuffix("Adapter")
    if not name.endswith("Adapter") or native_name not in MLA_ATTENTION_CLASSES:
        return None
    native = installed_mla_classes().get(native_name)
    if native is None:
        raise AttributeError(f"megatron-core {installed_version()} has no {native_name}, so no {name}")
    return mla_adapter(native)
