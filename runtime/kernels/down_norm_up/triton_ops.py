"""The RMSNorm steps of ``fused_down_norm_up`` as Triton launches, with the reference's signatures."""

import torch
import triton

from .triton_kernels import norm_backward_kernel, norm_forward_kernel

# Rows per backward program: enough that the float32 partial sums of the weight gradient stay few.
ROWS_PER_PROGRAM = 64


def norm_forward(latent: torch.Tensor, weight: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    n_rows, n_cols = latent.shape
    normed = torch.empty_like(latent)
    rstd = torch.empty(n_rows, device=latent.device, dtype=torch.float32)
    norm_forward_kernel[(n_rows,)](latent, weight, normed, rstd, n_cols, eps, BLOCK=triton.next_power_of_2(n_cols))
    return normed, rstd


def norm_backward(
    latent: torch.Tensor, weight: torch.Tensor, rstd: torch.Tensor, grad_normed: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n_rows, n_cols = latent.shape
    programs = triton.cdiv(n_rows, ROWS_PER_PROGRAM)
    normed = torch.empty_like(latent)
    grad_latent = torch.empty_like(latent)
    grad_weight_parts = torch.empty(programs, n_cols, device=latent.device, dtype=torch.float32)
    norm_backward_kernel[(programs,)](
        latent, weight, rstd, grad_normed.contiguous(), normed, grad_latent, grad_weight_parts, n_rows, n_cols,
        ROWS_PER_PROGRAM, BLOCK=triton.next_power_of_2(n_cols),
    )  # fmt: skip
    return normed, grad_latent, grad_weight_parts.sum(0).to(weight.dtype)
