"""The MLA adapter seam for real megatron-core: releases 0.11 to 0.16.1, and 0.17-0.19 by their signatures.

    from seamfix.runtime.megatron import mla_config, mla_layer_spec

    config = mla_config(num_layers=2, hidden_size=64, num_attention_heads=4, mscale=1.0, mscale_all_dim=1.0)
    model = GPTModel(config=config, transformer_layer_spec=mla_layer_spec(config), vocab_size=128,
                     max_sequence_length=16, position_embedding_type="rope")

``adapt_mla_spec`` puts the MLA attention of an existing layer or block spec behind the adapters; ``cpu_mode``
lets such models build and train without CUDA. What differs between releases is in ``releases``.
"""

try:
    import megatron.core  # noqa: F401
except ImportError as error:
    raise ImportError("seamfix.runtime.megatron needs megatron-core: pip install 'seamfix[megatron]'") from error

from . import attention_adapter
from .attention_adapter import MLAAttentionAdapter, MLASelfAttentionAdapter, mla_adapter
from .config import mla_config
from .core_attention import MLADotProductAttention
from .cpu_mode import cpu_mode
from .spec import adapt_mla_spec, mla_layer_spec

__all__ = [
    "MLAAttentionAdapter",
    "MLADotProductAttention",
    "MLASelfAttentionAdapter",
    "adapt_mla_spec",
    "cpu_mode",
    "mla_adapter",
    "mla_config",
    "mla_layer_spec",
]


def __getattr__(name: str) -> type:
    # FusedMLASelfAttentionAdapter and AbsorbedMLASelfAttentionAdapter exist where the release has their class.
    adapter = attention_adapter.adapter_named(name)
    if adapter is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return adapter
