"""Fused MLA kernels for training and serving: each op is a public function (checks, backend choice) over a PyTorch
reference and Triton kernels. Triton is imported only when its backend runs, so this package imports with
torch alone (reference path)."""

from .absorbed_decode import mla_decode
from .absorption import AbsorbedMLADecoder, AbsorbedWeights, absorb_mla_weights
from .backend import BACKENDS, KernelInputError
from .down_norm_up import fused_down_norm_up
from .latent_cache import mla_cache_append
from .mla_rope import mla_rope_kv, mla_rope_q

__all__ = [
    "BACKENDS",
    "AbsorbedMLADecoder",
    "AbsorbedWeights",
    "KernelInputError",
    "absorb_mla_weights",
    "fused_down_norm_up",
    "mla_cache_append",
    "mla_decode",
    "mla_rope_kv",
    "mla_rope_q",
]
