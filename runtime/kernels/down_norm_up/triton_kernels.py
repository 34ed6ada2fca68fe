"""Triton kernels of the RMSNorm steps of ``fused_down_norm_up``: one row per program, float32 math."""

import triton
import triton.language as tl


@triton.jit
def norm_forward_kernel(LATENT, WEIGHT, NORMED, RSTD, n_cols, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    latent = tl.load(LATENT + row * n_cols + cols, mask=mask, other=0.0).to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(latent * latent, axis=0) / n_cols + eps)
    weight = tl.load(WEIGHT + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(NORMED + row * n_cols + cols, (latent * rstd * weight).to(NORMED.dtype.element_ty), mask=mask)
    tl.store(RSTD + row, rstd)


@triton.jit
def norm_backward_kernel(
    LATENT, WEIGHT, RSTD, GRAD_NORMED, NORMED, GRAD_LATENT, GRAD_WEIGHT_PARTS, n_rows, n_cols, rows_per_program,
    BLOCK: tl.constexpr,
):  # fmt: skip
    """Each program walks ``rows_per_program`` rows, writes the recomputed normalized latent (needed for W_up's
    gradient) and the latent's gradient, and one float32 partial sum of the norm weight's gradient."""
    program = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    weight = tl.load(WEIGHT + cols, mask=mask, other=0.0).to(tl.float32)
    grad_weight = tl.zeros((BLOCK,), dtype=tl.float32)
    first_row = program.to(tl.int64) * rows_per_program
    for row in range(first_row, tl.minimum(first_row + rows_per_program, n_rows)):
        rstd = tl.load(RSTD + row)
        unit = tl.load(LATENT + row * n_cols + cols, mask=mask, other=0.0).to(tl.float32) * rstd
        grad_normed = tl.load(GRAD_NORMED + row * n_cols + cols, mask=mask, other=0.0).to(tl.float32)
        grad_unit = grad_normed * weight
        grad_weight += grad_normed * unit
        grad_latent = rstd * (grad_unit - unit * (tl.sum(grad_unit * unit, axis=0) / n_cols))
        tl.store(NORMED + row * n_cols + cols, (unit * weight).to(NORMED.dtype.element_ty), mask=mask)
        tl.store(GRAD_LATENT + row * n_cols + cols, grad_latent.to(GRAD_LATENT.dtype.element_ty), mask=mask)
    tl.store(GRAD_WEIGHT_PARTS + program * n_cols + cols, grad_weight, mask=mask)
