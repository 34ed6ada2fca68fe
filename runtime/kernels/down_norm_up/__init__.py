"""``fused_down_norm_up``: MLA's latent projection chain ``W_up · RMSNorm(W_down · x)`` without a saved latent."""

import torch

from ..backend import (
    autocast_off,
    autograd_records,
    check_dtype,
    check_eps,
    check_positive,
    check_same_device,
    check_saved_for_backward,
    check_shape,
    check_triton_tiles,
    on_device,
    require,
    resolve_backend,
    untracked_in_inference_mode,
)
from . import reference
from .autograd import DownNormUp


def fused_down_norm_up(
    x: torch.Tensor,
    w_down: torch.Tensor,
    w_up: torch.Tensor,
    norm_weight: torch.Tensor,
    eps: float,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """``F.linear(rms_norm(F.linear(x, w_down), norm_weight, eps), w_up)``, with the same gradients.

    ``x [..., hidden]``, ``w_down [rank, hidden]``, ``w_up [out, rank]``, ``norm_weight [rank]`` (nn.Linear
    layout). For backward only x, the weights and a float32 reciprocal RMS per token are kept; the latent is
    recomputed (one extra ``x · W_downᵀ``).
    """
    device = check_same_device({"x": x, "w_down": w_down, "w_up": w_up, "norm_weight": norm_weight})
    backend = resolve_backend(backend, device)
    check_dtype("x", x, backend)
    for name, weight in (("w_down", w_down), ("w_up", w_up), ("norm_weight", norm_weight)):
        require(
            weight.dtype == x.dtype,
            "{name} must have x's dtype {want}, got {got}",
            name=name,
            want=x.dtype,
            got=weight.dtype,
        )
    require(x.dim() >= 1, "x must have a hidden dimension")
    check_shape("w_down", w_down, (None, x.shape[-1]))
    rank = w_down.shape[0]
    check_shape("w_up", w_up, (None, rank))
    check_shape("norm_weight", norm_weight, (rank,))
    check_positive(hidden=x.shape[-1], kv_lora_rank=rank, out_features=w_up.shape[0])
    eps = check_eps(eps)
    inputs = {"x": x, "w_down": w_down, "w_up": w_up, "norm_weight": norm_weight}
    check_saved_for_backward(any(t.requires_grad for t in inputs.values()) and autograd_records(), inputs)
    if backend == "torch" or x.numel() == 0:  # no tokens: nothing to launch
        norm_ops = reference
    else:
        from . import triton_ops as norm_ops

        for launch in (norm_ops.FORWARD_TILE, norm_ops.BACKWARD_TILE):  # a program holds whole latent rows
            tile = norm_ops._tile(rank, launch)
            check_triton_tiles(latent_rows=tile["ROWS"] * tile["BLOCK"])
    with on_device(device), autocast_off(device), untracked_in_inference_mode():
        return DownNormUp.apply(x.contiguous(), w_down, w_up, norm_weight, eps, norm_ops)


__all__ = ["fused_down_norm_up"]
