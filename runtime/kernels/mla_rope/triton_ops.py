"""Autograd functions that run MLA's fused RoPE as Triton kernels (forward and backward)."""

import contextlib
import sys

import torch
import triton
from torch.autograd.function import once_differentiable

from ..backend import batched_gradients, one_launch_at_a_time
from . import reference
from .triton_kernels import rope_kv_backward_kernel, rope_kv_forward_kernel, rope_q_inplace_kernel

rope_kv_backward_kernel, rope_kv_forward_kernel, rope_q_inplace_kernel = one_launch_at_a_time(
    rope_kv_backward_kernel, rope_kv_forward_kernel, rope_q_inplace_kernel
)

# Each program owns one token and up to ``max_heads`` of its heads, in ``num_warps`` warps (fewer for fewer heads,
# ``_warps``). Picked by the sweep in benchmarks/kernels_train.py on an H100: large tiles win (more loads in flight
# per program).
TILES = {
    "q": {"max_heads": 128, "num_warps": 4},
    "kv_forward": {"max_heads": 128, "num_warps": 16},
    "kv_backward": {"max_heads": 128, "num_warps": 4},
}


def _block_heads(heads: int, tile: dict) -> int:
    return min(triton.next_power_of_2(heads), tile["max_heads"])


def _warps(block_heads: int, tile: dict) -> int:
    """A tile's warps are for ``max_heads`` heads; a program of fewer heads takes as many fewer, at least 4 (the kv
    forward of V2-Lite's 16 heads in 16 warps, 8 elements a thread, measured 0.991x megatron-core's on an H200, in
    4 warps 1.004x; benchmarks/RESULTS.md, issue 16's seventh pass)."""
    return max(4, tile["num_warps"] * block_heads // tile["max_heads"])


class TokenLayout:
    """bshd (``[s, b, h, d]``) or thd (``[t, h, d]`` with packed positions), as the kernels address it."""

    def __init__(self, tensor: torch.Tensor, positions: torch.Tensor | None):
        self.token_shape = tuple(tensor.shape[:-2])
        self.heads = tensor.shape[-2]
        self.batch = 1 if positions is not None else self.token_shape[1]
        self.tokens = self.token_shape[0] * self.batch
        self.positions = positions

    def strides(self, tensor: torch.Tensor) -> tuple[int, int]:
        """Strides of the sequence and batch dimensions (the batch stride is 0 in thd)."""
        return tensor.stride(0), (tensor.stride(1) if self.positions is None else 0)

    def kernel_arguments(self) -> dict:
        # The kernels never read POSITIONS when HAS_POSITIONS is off; any tensor fills the pointer slot.
        return {"POSITIONS": self.positions, "HAS_POSITIONS": self.positions is not None}


def _half_sizes(emb_dim: int) -> dict:
    return {"HALF": emb_dim // 2, "HALF_BLOCK": triton.next_power_of_2(emb_dim // 2)}


def _tables(cos: torch.Tensor, sin: torch.Tensor, emb_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    return cos.reshape(-1, emb_dim).contiguous(), sin.reshape(-1, emb_dim).contiguous()


def _rotate_q_inplace(q, cos, sin, qk_head_dim, emb_dim, layout: TokenLayout, backward: bool) -> None:
    half = _half_sizes(emb_dim)
    tile = TILES["q"]
    block_heads = _block_heads(layout.heads, tile)
    stride_s, stride_b = layout.strides(q)
    rope_q_inplace_kernel[(layout.tokens, triton.cdiv(layout.heads, block_heads))](
        q, cos, sin, heads=layout.heads, batch=layout.batch, stride_s=stride_s,
        stride_b=stride_b, stride_h=q.stride(-2), rope_offset=qk_head_dim, BACKWARD=backward,
        BLOCK_HEADS=block_heads, num_warps=_warps(block_heads, tile), **half, **layout.kernel_arguments(),
    )  # fmt: skip


def _holders(grad: torch.Tensor, python_references: int) -> tuple[int, int, int] | None:
    """Who holds ``grad``: Python references (``sys.getrefcount`` taken in the calling backward), C++ handles on
    the tensor, and handles on its storage (views, ``.detach()``, ``.data``, the tensor a view was taken of); None
    where torch cannot tell."""
    use_count, storage_use_count = getattr(grad, "_use_count", None), getattr(torch._C, "_storage_Use_Count", None)
    if use_count is None or storage_use_count is None:
        return None
    storage = grad.untyped_storage()  # this handle counts as one more holder while it lives, in every call alike
    return python_references, use_count(), storage_use_count(storage._cdata)


def _reference_gradients(forward, shapes: list[torch.Size], grads: tuple, dtype: torch.dtype, device) -> tuple:
    """The gradients of ``forward`` (a reference op, linear in its inputs) for inputs of ``shapes``: autograd through
    the PyTorch reference, as the torch backend differentiates it, for gradients the kernels cannot address (see
    ``batched_gradients``): vmap batches the reference's ops. The inputs' values do not enter (zeros)."""
    with torch.enable_grad():
        inputs = [torch.zeros(shape, dtype=dtype, device=device, requires_grad=True) for shape in shapes]
        outputs = forward(*inputs)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        pairs = [(output, grad) for output, grad in zip(outputs, grads, strict=True) if grad is not None]
        return torch.autograd.grad([output for output, _ in pairs], inputs, [grad for _, grad in pairs],
                                   allow_unused=True, materialize_grads=True)  # fmt: skip


def _saved_tables(ctx) -> tuple[torch.Tensor, ...]:
    """The cos/sin tables the forward saved, contiguous, as the kernels address them (``position * emb_dim``): a
    saved-tensor hook (``torch.autograd.graph.saved_tensors_hooks``: offloading, compression) may unpack them in
    another layout, and the kernels then read other rows (gradients 0.5 off where the reference's ops follow the
    strides; past the memory of an expanded one). A contiguous table is returned as it is."""
    return tuple(table.contiguous() for table in ctx.saved_tensors)


def _held_alone(grad: torch.Tensor, python_references: int) -> bool:
    """Nothing but this backward reaches ``grad``'s memory: it has exactly the holders a gradient nobody else holds
    has when a backward sees it (``_FRESH_GRADIENT_HOLDERS``, measured, not assumed: autograd itself keeps one more
    C++ handle during the call in some torch versions, 2.11 among them, and none in others). One more is someone
    who can still look: a hook, a module's backward hook or a node pre-hook that kept it (Python), another branch's
    input buffer, a caller's ``backward(g)`` or ``grad_outputs`` (C++), a view or ``.detach()`` (storage). And no
    graph runs through it (``create_graph``). And torch allocated its memory: a tensor wrapping another library's
    buffer (``torch.from_dlpack``, ``from_numpy``, ``frombuffer``, shared memory: storages torch cannot resize) is
    held by that library, which torch does not count (a JAX or CuPy layer whose backward hands its gradient over
    by DLPack had that gradient rotated under it). Where torch cannot tell, the answer is no."""
    if grad.requires_grad or not grad.is_contiguous() or grad._is_view() or not grad.data_ptr():
        return False  # (a null pointer: an efficient zero tensor, which only a copy gives memory)
    if not grad.untyped_storage().resizable():
        return False
    holders = _holders(grad, python_references)
    return holders is not None and holders == _FRESH_GRADIENT_HOLDERS


class _FreshGradientProbe(torch.autograd.Function):
    """A backward shaped as ``MlaRopeQ.backward`` (the same decorator, ``sys.getrefcount`` taken the same way), run
    once on a gradient nothing else holds: its holders there (``_holders``), on this Python and torch."""

    holders: tuple[int, int, int] | None = None

    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        references = sys.getrefcount(grad)
        _FreshGradientProbe.holders = _holders(grad, references)
        return grad * 2


def _fresh_gradient_holders() -> tuple[int, int, int] | None:
    """``_holders`` of a gradient held alone, as ``MlaRopeQ.backward`` would see it (None: not measurable, then
    every gradient is copied). It runs where this module is first imported, which may be inside a caller's
    ``torch.utils.checkpoint`` forward: it saves no tensor for backward there (a product with a tensor saved one,
    and the checkpoint's backward then raised CheckpointError: one more tensor saved than in its recomputation)."""
    engine = _autograds_own_engine()
    if engine is None:
        return None
    try:
        with torch.inference_mode(False), torch.enable_grad(), engine:
            x = torch.ones(2, device="cpu", requires_grad=True)
            (_FreshGradientProbe.apply(x) * 2.0).sum().backward()  # a product with a scalar keeps no tensor
    except Exception:  # noqa: BLE001 - imported where autograd cannot run (a tracing mode, say): always copy
        return None
    return _FreshGradientProbe.holders


def _autograds_own_engine() -> contextlib.AbstractContextManager | None:
    """A context in which the probe's backward runs on autograd's engine, as eager backwards do (None: no such
    context, then every gradient is copied). Compiled autograd (``torch._dynamo.compiled_autograd``), on where this
    module is first imported, traced the probe's backward with four more Python references (11, not 7): every later
    eager gradient kept by four hooks then passed for one held alone and was rotated under them."""
    compiled_autograd = sys.modules.get("torch._dynamo.compiled_autograd")  # not imported: cannot be on
    if compiled_autograd is None or not getattr(compiled_autograd, "compiled_autograd_enabled", False):
        return contextlib.nullcontext()
    disable = getattr(compiled_autograd, "_disable", None)
    return disable() if disable is not None else None


_FRESH_GRADIENT_HOLDERS = _fresh_gradient_holders()


class MlaRopeQ(torch.autograd.Function):
    """In place, like megatron-core: only the rope slice is read and written, forward and backward (the backward
    rotates a copy of a gradient that other branches or the caller also hold)."""

    @staticmethod
    def forward(ctx, q, cos, sin, qk_head_dim, emb_dim, positions):
        cos, sin = _tables(cos, sin, emb_dim)
        layout = TokenLayout(q, positions)
        _rotate_q_inplace(q, cos, sin, qk_head_dim, emb_dim, layout, backward=False)
        ctx.mark_dirty(q)
        ctx.save_for_backward(cos, sin)
        ctx.layout, ctx.qk_head_dim, ctx.emb_dim = layout, qk_head_dim, emb_dim
        return q

    @staticmethod
    @once_differentiable  # the kernel's backward has no graph: a second derivative would be silently wrong
    def backward(ctx, grad):
        # Traced by torch.compile, the count means nothing (Dynamo cannot trace ``sys.getrefcount``: it warned and
        # broke the graph there) and the traced backward is functional anyway: a copy, which the compiler may elide.
        # Otherwise first, and as ``_FreshGradientProbe.backward`` takes it.
        references = None if torch.compiler.is_compiling() else sys.getrefcount(grad)
        cos, sin = _saved_tables(ctx)
        if batched_gradients(grad):
            (grad,) = _reference_gradients(
                lambda q: reference.rope_q(q.clone(), cos, sin, ctx.qk_head_dim, ctx.emb_dim, ctx.layout.positions),
                [grad.shape], (grad,), grad.dtype, cos.device,
            )  # fmt: skip
            return grad, None, None, None, None, None
        # Autograd may hand the incoming buffer to other branches too (``mla_rope_q(q) + 3 * x`` gives both the
        # add's gradient, and runs the rope's backward first when ``3 * x`` was computed first), and a caller's
        # ``out.backward(g)`` passes the caller's own ``g``: rotating either in place, as megatron-core does, gave
        # them a wrong gradient or changed the caller's tensor. So the rotation runs in place only on a buffer this
        # backward holds alone (what attention's backward hands over in training), and on a copy otherwise; a hook
        # that kept the gradient to look at later counts as a holder too.
        if references is None or not _held_alone(grad, references):
            grad = grad.clone(memory_format=torch.contiguous_format)
        _rotate_q_inplace(grad, cos, sin, ctx.qk_head_dim, ctx.emb_dim, ctx.layout, backward=True)
        return grad, None, None, None, None, None


def _dimension_blocks(k_dim: int, v_dim: int, emb_dim: int) -> dict:
    return {
        "K_DIM": k_dim,
        "V_DIM": v_dim,
        "K_BLOCK": triton.next_power_of_2(k_dim),
        "V_BLOCK": triton.next_power_of_2(v_dim),
        **_half_sizes(emb_dim),
    }


class MlaRopeKV(torch.autograd.Function):
    @staticmethod
    def forward(ctx, kv, k_pos_emb, cos, sin, emb_dim, k_dim, v_dim, positions):
        cos, sin = _tables(cos, sin, emb_dim)
        layout = TokenLayout(kv, positions)
        key = kv.new_empty(*layout.token_shape, layout.heads, k_dim + emb_dim)
        value = kv.new_empty(*layout.token_shape, layout.heads, v_dim)
        dims = _dimension_blocks(k_dim, v_dim, emb_dim)
        tile = TILES["kv_forward"]
        block_heads = _block_heads(layout.heads, tile)
        kv_stride_s, kv_stride_b = layout.strides(kv)
        emb_stride_s, emb_stride_b = layout.strides(k_pos_emb)
        # Axis 1: the key programs of every head block, then the value programs (see the kernel).
        rope_kv_forward_kernel[(layout.tokens, 2 * triton.cdiv(layout.heads, block_heads))](
            kv, k_pos_emb, key, value, cos, sin, heads=layout.heads, batch=layout.batch,
            kv_stride_s=kv_stride_s, kv_stride_b=kv_stride_b, kv_stride_h=kv.stride(-2),
            emb_stride_s=emb_stride_s, emb_stride_b=emb_stride_b, BLOCK_HEADS=block_heads,
            num_warps=_warps(block_heads, tile), **dims, **layout.kernel_arguments(),
        )  # fmt: skip
        ctx.save_for_backward(cos, sin)
        ctx.layout, ctx.dims, ctx.k_pos_emb_shape, ctx.dtype = layout, dims, k_pos_emb.shape, kv.dtype
        return key, value

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_key, grad_value):
        cos, sin = _saved_tables(ctx)
        layout, dims = ctx.layout, ctx.dims
        shape = (*layout.token_shape, layout.heads)
        if batched_gradients(grad_key, grad_value):
            kv_shape = torch.Size((*shape, dims["K_DIM"] + dims["V_DIM"]))
            gradients = _reference_gradients(
                lambda kv, k_pos_emb: reference.rope_kv(kv, k_pos_emb, cos, sin, 2 * dims["HALF"], dims["K_DIM"],
                                                        dims["V_DIM"], layout.positions),
                [kv_shape, ctx.k_pos_emb_shape], (grad_key, grad_value), ctx.dtype, cos.device,
            )  # fmt: skip
            return *gradients, None, None, None, None, None, None
        if grad_key is None:
            grad_key = cos.new_zeros(*shape, dims["K_DIM"] + 2 * dims["HALF"], dtype=grad_value.dtype)
        if grad_value is None:
            grad_value = cos.new_zeros(*shape, dims["V_DIM"], dtype=grad_key.dtype)
        # Autograd may pass an efficient zero tensor, whose null pointer the kernel would read: a copy gives memory. A
        # caller's negative view (``g.conj().imag``, say) holds the values negated: the kernel read them as stored
        # (kv's gradient of the opposite sign), so it is resolved (a no-op for any other tensor).
        grad_key, grad_value = (grad.clone(memory_format=torch.contiguous_format) if not grad.data_ptr()
                                else grad.resolve_neg() for grad in (grad_key, grad_value))  # fmt: skip
        grad_kv = grad_key.new_empty(*shape, dims["K_DIM"] + dims["V_DIM"])
        grad_k_pos_emb = grad_key.new_empty(ctx.k_pos_emb_shape)
        tile = TILES["kv_backward"]
        block_heads = _block_heads(layout.heads, tile)
        rope_kv_backward_kernel[(layout.tokens,)](
            grad_key.contiguous(), grad_value.contiguous(), grad_kv, grad_k_pos_emb, cos, sin, heads=layout.heads,
            batch=layout.batch, BLOCK_HEADS=block_heads, num_warps=_warps(block_heads, tile),
            **dims, **layout.kernel_arguments(),
        )  # fmt: skip
        return grad_kv, grad_k_pos_emb, None, None, None, None, None, None
