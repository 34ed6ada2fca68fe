"""The MLA adapter seam for real megatron-core: releases 0.11 to 0.16.1 and main (0.20), and 0.17-0.19 by their
signatures.

    from seamfix.runtime.megatron import mla_config, mla_layer_spec

    config = mla_config(num_layers=2, hidden_size=64, num_attention_heads=4, mscale=1.0, mscale_all_dim=1.0)
    model = GPTModel(config=config, transformer_layer_spec=mla_layer_spec(config), vocab_size=128,
                     max_sequence_length=16, position_embedding_type="rope")

``adapt_mla_spec`` puts the MLA attention of an existing layer or block spec behind the adapters;
``mla_hybrid_stack_spec`` builds a ``HybridModel`` stack (0.20+) with the same layers, and
``hybrid_state_dict_from_gpt`` moves GPT weights onto it; ``cpu_mode`` lets such models build and train without
CUDA. On the local backend MLA layers get ``MLAScaledDotProductAttention`` (no score matrix);
``install_mla_kernels`` lets Megatron's dynamic engine serve cached MLA latents without FlashMLA or flash-attn.
What differs between releases is in ``releases``.
"""

from .installed import import_megatron_core

import_megatron_core()  # a clear ImportError for a missing, too old or broken megatron-core

from . import attention_adapter  # noqa: E402
from .attention_adapter import MLAAttentionAdapter, MLASelfAttentionAdapter, mla_adapter  # noqa: E402
from .config import mla_config  # noqa: E402
from .core_attention import MLADotProductAttention, MLAScaledDotProductAttention  # noqa: E402
from .cpu_mode import cpu_mode  # noqa: E402
from .flash_mla import install_mla_kernels  # noqa: E402
from .hybrid import hybrid_state_dict_from_gpt, mla_hybrid_stack_spec  # noqa: E402
from .spec import adapt_mla_spec, mla_layer_spec  # noqa: E402

__all__ = [
    "MLAAttentionAdapter",
    "MLADotProductAttention",
    "MLAScaledDotProductAttention",
    "MLASelfAttentionAdapter",
    "adapt_mla_spec",
    "cpu_mode",
    "hybrid_state_dict_from_gpt",
    "install_mla_kernels",
    "mla_adapter",
    "mla_config",
    "mla_hybrid_stack_spec",
    "mla_layer_spec",
]


def __getattr__(name: str) -> type:
    # FusedMLASelfAttentionAdapter and AbsorbedMLASelfAttentionAdapter exist where the release has their class.
    adapter = attention_adapter.adapter_named(name)
    if adapter is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return adapter
