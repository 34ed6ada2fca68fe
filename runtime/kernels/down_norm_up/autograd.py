"""``W_up · RMSNorm(W_down · x)`` with the latent recomputed in backward instead of saved."""

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from ..backend import autocast_off, batched_gradients
from . import reference


class DownNormUp(torch.autograd.Function):
    """Saves x, the three weights and one reciprocal RMS per token; ``norm_ops`` is the reference module or the
    Triton one (both provide ``norm_forward`` and ``norm_backward``)."""

    @staticmethod
    def forward(ctx, x, w_down, w_up, norm_weight, eps, norm_ops):
        rows = x.reshape(-1, x.shape[-1])
        normed, rstd = norm_ops.norm_forward(F.linear(rows, w_down), norm_weight, eps)
        ctx.save_for_backward(x, w_down, w_up, norm_weight, rstd)
        ctx.norm_ops = norm_ops
        # The product of the latent in x's leading shape, not a reshape of a 2-D product: that was a view made
        # inside a custom Function, on which autograd forbids every in-place op (the RoPE of MLA's query path,
        # mla_rope_q on this output viewed as heads, was refused; ``out += bias`` raised), where the unfused
        # chain's output takes them. F.linear returns a tensor of its own for any leading shape.
        return F.linear(normed.view(*x.shape[:-1], normed.shape[-1]), w_up)

    @staticmethod
    @once_differentiable  # rstd is saved without its graph: a second derivative through it would be silently wrong
    def backward(ctx, grad_out):
        x, w_down, w_up, norm_weight, rstd = ctx.saved_tensors
        rows = x.reshape(-1, x.shape[-1])
        grad_rows = grad_out.reshape(-1, grad_out.shape[-1])
        # Under vmap (batched gradients, see batched_gradients) the reference's norm step, whose ops vmap batches.
        norm_ops = reference if batched_gradients(grad_out) else ctx.norm_ops
        with autocast_off(x.device):  # a backward run inside autocast keeps the forward's dtypes too
            latent = F.linear(rows, w_down)
            normed, grad_latent, grad_norm_weight = norm_ops.norm_backward(latent, norm_weight, rstd,
                                                                           grad_rows @ w_up)  # fmt: skip
            grad_x = (grad_latent @ w_down).reshape(x.shape)
            return grad_x, grad_latent.t() @ rows, grad_rows.t() @ normed, grad_norm_weight, None, None
