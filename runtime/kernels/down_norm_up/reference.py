"""PyTorch reference of the two RMSNorm steps that ``fused_down_norm_up`` needs (float32 math for half inputs)."""

import torch


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def norm_forward(latent: torch.Tensor, weight: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(RMSNorm(latent) * weight, rstd)`` for ``latent [n, r]``; rstd is one float32 (float64) per row."""
    work = latent.to(_work_dtype(latent.dtype))
    rstd = torch.rsqrt(work.square().mean(-1) + eps)
    return (work * rstd[:, None] * weight.to(work.dtype)).to(latent.dtype), rstd


def norm_backward(
    latent: torch.Tensor, weight: torch.Tensor, rstd: torch.Tensor, grad_normed: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Recompute the normalized latent and return ``(normed, grad_latent, grad_weight)``."""
    work_dtype = _work_dtype(latent.dtype)
    unit = latent.to(work_dtype) * rstd[:, None]
    grad_normed = grad_normed.to(work_dtype)
    weight = weight.to(work_dtype)
    grad_unit = grad_normed * weight
    grad_latent = rstd[:, None] * (grad_unit - unit * (grad_unit * unit).mean(-1, keepdim=True))
    grad_weight = (grad_normed * unit).sum(0)
    return (unit * weight).to(latent.dtype), grad_latent.to(latent.dtype), grad_weight.to(weight.dtype)
