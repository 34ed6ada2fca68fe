"""Fused MLA kernels for training: each op is a public function (checks, backend choice) over a PyTorch
reference and Triton kernels. Triton is imported only when its backend runs, so this package imports with
torch alone (reference path)."""

from .backend import BACKENDS, KernelInputError
from .down_norm_up import fused_down_norm_up
from .mla_rope import mla_rope_kv, mla_rope_q

__all__ = ["BACKENDS", "KernelInputError", "fused_down_norm_up", "mla_rope_kv", "mla_rope_q"]
