"""Triton kernels of the RMSNorm steps of ``fused_down_norm_up``: tiles of whole rows, float32 math.

A latent row is short (MLA's kv_lora_rank, 512), so each program takes a tile of ``ROWS`` rows at once:
one row per program would leave the GPU scheduling tens of thousands of tiny programs.
"""

import triton
import triton.language as tl


@triton.jit
def norm_forward_kernel(LATENT, WEIGHT, NORMED, RSTD, n_rows, n_cols, eps, BLOCK: tl.constexpr, ROWS: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    cols = tl.arange(0, BLOCK)
    row_ok = rows < n_rows
    mask = row_ok[:, None] & (cols < n_cols)[None, :]
    at = rows[:, None] * n_cols + cols[None, :]
    latent = tl.load(LATENT + at, mask=mask, other=0.0).to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(latent * latent, axis=1) / n_cols + eps)
    weight = tl.load(WEIGHT + cols, mask=cols < n_cols, other=0.0).to(tl.float32)
    tl.store(NORMED + at, (latent * rstd[:, None] * weight[None, :]).to(NORMED.dtype.element_ty), mask=mask)
    tl.store(RSTD + rows, rstd, mask=row_ok)


@triton.jit
def norm_backward_kernel(
    LATENT, WEIGHT, RSTD, GRAD_NORMED, NORMED, GRAD_LATENT, GRAD_WEIGHT_PARTS, n_rows, n_cols, rows_per_program,
    BLOCK: tl.constexpr, ROWS: tl.constexpr,
):  # fmt: skip
    """Each program walks ``rows_per_program`` rows (a multiple of ``ROWS``) tile by tile, writes the recomputed
    normalized latent (needed for W_up's gradient) and the latent's gradient, and one float32 partial sum of the
    norm weight's gradient."""
    program = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    col_ok = cols < n_cols
    weight = tl.load(WEIGHT + cols, mask=col_ok, other=0.0).to(tl.float32)
    grad_weight = tl.zeros((BLOCK,), dtype=tl.float32)
    first_row = program.to(tl.int64) * rows_per_program
    for tile_start in range(first_row, first_row + rows_per_program, ROWS):
        rows = tile_start + tl.arange(0, ROWS)
        row_ok = rows < n_rows
        mask = row_ok[:, None] & col_ok[None, :]
        at = rows[:, None] * n_cols + cols[None, :]
        rstd = tl.load(RSTD + rows, mask=row_ok, other=0.0)
        unit = tl.load(LATENT + at, mask=mask, other=0.0).to(tl.float32) * rstd[:, None]
        grad_normed = tl.load(GRAD_NORMED + at, mask=mask, other=0.0).to(tl.float32)
        grad_unit = grad_normed * weight[None, :]
        grad_weight += tl.sum(grad_normed * unit, axis=0)
        projection = tl.sum(grad_unit * unit, axis=1) / n_cols
        grad_latent = rstd[:, None] * (grad_unit - unit * projection[:, None])
        tl.store(NORMED + at, (unit * weight[None, :]).to(NORMED.dtype.element_ty), mask=mask)
        tl.store(GRAD_LATENT + at, grad_latent.to(GRAD_LATENT.dtype.element_ty), mask=mask)
    tl.store(GRAD_WEIGHT_PARTS + program * n_cols + cols, grad_weight, mask=col_ok)
