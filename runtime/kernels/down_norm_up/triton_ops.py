"""The RMSNorm steps of ``fused_down_norm_up`` as Triton launches, with the reference's signatures."""

import torch
import triton

from ..backend import one_launch_at_a_time
from .triton_kernels import norm_backward_kernel, norm_forward_kernel

norm_backward_kernel, norm_forward_kernel = one_launch_at_a_time(norm_backward_kernel, norm_forward_kernel)

# Rows per tile and warps per program (forward, backward): see benchmarks/RESULTS.md for the sweep.
FORWARD_TILE = {"ROWS": 4, "num_warps": 4}
BACKWARD_TILE = {"ROWS": 4, "num_warps": 4}
# Backward programs per streaming multiprocessor: enough to hide latency, few float32 partial sums to add.
PROGRAMS_PER_SM = 4


def _tile(n_cols: int, tile: dict) -> dict:
    block = triton.next_power_of_2(n_cols)
    return {**tile, "BLOCK": block, "ROWS": max(1, min(tile["ROWS"], 4096 // block))}


def norm_forward(latent: torch.Tensor, weight: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    n_rows, n_cols = latent.shape
    normed = torch.empty_like(latent)
    rstd = torch.empty(n_rows, device=latent.device, dtype=torch.float32)
    tile = _tile(n_cols, FORWARD_TILE)
    norm_forward_kernel[(triton.cdiv(n_rows, tile["ROWS"]),)](
        latent, weight.contiguous(), normed, rstd, n_rows, n_cols, eps, **tile
    )
    return normed, rstd


def norm_backward(
    latent: torch.Tensor, weight: torch.Tensor, rstd: torch.Tensor, grad_normed: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n_rows, n_cols = latent.shape
    tile = _tile(n_cols, BACKWARD_TILE)
    target_programs = PROGRAMS_PER_SM * _multiprocessors(latent.device)
    rows_per_program = tile["ROWS"] * triton.cdiv(triton.cdiv(n_rows, target_programs), tile["ROWS"])
    programs = triton.cdiv(n_rows, rows_per_program)
    normed = torch.empty_like(latent)
    grad_latent = torch.empty_like(latent)
    grad_weight_parts = torch.empty(programs, n_cols, device=latent.device, dtype=torch.float32)
    # rstd contiguous: a saved-tensor hook may unpack it in another layout (the kernel read other rows' rstd).
    norm_backward_kernel[(programs,)](
        latent, weight.contiguous(), rstd.contiguous(), grad_normed.contiguous(), normed, grad_latent,
        grad_weight_parts, n_rows, n_cols, rows_per_program, **tile,
    )  # fmt: skip
    return normed, grad_latent, grad_weight_parts.sum(0).to(weight.dtype)


def _multiprocessors(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4  # the interpreter on CPU: any small number exercises several programs
