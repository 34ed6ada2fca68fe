"""MLA's fused RoPE for training: ``mla_rope_q`` and ``mla_rope_kv``.

Same outputs as megatron-core's ``fused_apply_mla_rope_for_q`` / ``fused_apply_mla_rope_for_kv`` (0.13+) on the
same inputs, without context parallelism. Layouts: bshd (``[s, b, h, d]``) or thd (``[t, h, d]`` packed, with
``cu_seqlens``); cos/sin are ``[max_seq, emb_dim]`` or megatron's ``[max_seq, 1, 1, emb_dim]``.
"""

import math

import torch

from ..backend import (
    autograd_records,
    check_cos_sin,
    check_dtype,
    check_grid,
    check_index_dtype,
    check_int32_offsets,
    check_no_internal_overlap,
    check_no_shared_memory,
    check_positive,
    check_same_device,
    check_saved_for_backward,
    check_shape,
    check_triton_tiles,
    check_validate_flag,
    check_values,
    check_writes_seen_by_autograd,
    host_values,
    on_device,
    require,
    resolve_backend,
    untracked_in_inference_mode,
)
from . import reference
from .positions import packed_positions


def _check_offsets(cu_seqlens: torch.Tensor, total_tokens: int, table_rows: int) -> None:
    """``cu_seqlens`` starts at 0, never decreases, ends inside the tokens, and every token's position (padding
    past the last offset counts on in the last sequence) has a cos/sin row (one host copy). In 64 bits: an int32
    drop of 2**31 or more wrapped to a positive step and passed as "never decreasing"."""
    cu_seqlens = cu_seqlens.long()
    steps = cu_seqlens[1:] - cu_seqlens[:-1]
    padding_end = total_tokens - cu_seqlens[-2]
    first, smallest_step, end, longest = host_values(
        cu_seqlens[0], steps.min(), cu_seqlens[-1], torch.maximum(steps.max(), padding_end)
    )
    require(
        first == 0 and smallest_step >= 0 and end <= total_tokens,
        "cu_seqlens must start at 0, never decrease and end at most at the {t} tokens, got first {first}, "
        "a step of {step}, last {end}",
        t=total_tokens,
        first=first,
        step=smallest_step,
        end=end,
    )
    require(
        longest <= table_rows,
        "cos/sin hold {rows} positions, a packed sequence needs {longest}",
        rows=table_rows,
        longest=longest,
    )


def _check_rope_inputs(
    name: str,
    tensor: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    emb_dim: int,
    cu_seqlens: torch.Tensor | None,
    backend: str,
    validate: bool | None,
) -> tuple[str, torch.Tensor | None]:
    """Validate what both ops share; return the backend that runs and the packed positions (thd only)."""
    device = check_same_device({name: tensor, "cos": cos, "sin": sin, "cu_seqlens": cu_seqlens}, ("cu_seqlens",))
    backend = resolve_backend(backend, device)
    for label, value in ((name, tensor), ("cos", cos), ("sin", sin)):
        check_dtype(label, value, backend)
    check_positive(emb_dim=emb_dim)
    require(emb_dim % 2 == 0, "emb_dim must be a positive even number, got {emb_dim}", emb_dim=emb_dim)
    require(
        tensor.dim() == (4 if cu_seqlens is None else 3),
        "{name} must be {layout}, got {shape}",
        name=name,
        layout="bshd ([s, b, h, d])" if cu_seqlens is None else "thd ([t, h, d], with cu_seqlens)",
        shape=list(tensor.shape),
    )
    require(tensor.stride(-1) == 1, "{name}'s last dimension must be contiguous (stride 1)", name=name)
    check_positive(heads=tensor.shape[-2])
    check_cos_sin(cos, sin, emb_dim)
    # The Triton backward returns no gradient for the tables (as megatron-core's), the reference's did (and for q
    # raised autograd's in-place error): refused, so that no backend gives a gradient the other does not.
    require(not ((cos.requires_grad or sin.requires_grad) and autograd_records()), "cos and sin get no gradient "
            "(as in megatron-core's fused RoPE) and must not require grad; pass cos.detach() and sin.detach(), or "
            "call under torch.no_grad()")  # fmt: skip
    if cu_seqlens is None:  # no index values to check
        check_validate_flag(validate)
        require(
            cos.shape[0] >= tensor.shape[0],
            "cos/sin hold {held} positions, {name} has {needed}",
            held=cos.shape[0],
            name=name,
            needed=tensor.shape[0],
        )
        return backend, None
    check_index_dtype("cu_seqlens", cu_seqlens)
    require(
        cu_seqlens.dim() == 1 and cu_seqlens.numel() >= 2,
        "cu_seqlens must be a 1-D tensor of at least 2 offsets, got shape {shape}",
        shape=list(cu_seqlens.shape),
    )
    require(cu_seqlens.dtype == torch.int64 or tensor.shape[0] < 2**31, "{name} has {t} tokens, more than int32 "
            "cu_seqlens count; pass cu_seqlens as int64", name=name, t=tensor.shape[0])  # fmt: skip
    if check_values(device, validate):
        _check_offsets(cu_seqlens, tensor.shape[0], cos.shape[0])
    return backend, packed_positions(cu_seqlens, tensor.shape[0], cos.shape[0])


def _check_triton_sizes(
    name: str, tensor: torch.Tensor, cos: torch.Tensor, tile: str, programs_per_head_block: int = 1, **widths: int
) -> None:
    """What the Triton kernels address with 32-bit numbers and hold in one tile: a program's heads (up to the
    tile's ``max_heads``) times each of the named row widths, a token's heads and the cos/sin table as 32-bit
    offsets, and the grid of tokens by head blocks (``programs_per_head_block`` programs each)."""
    import triton

    from .triton_ops import TILES, _block_heads

    heads = tensor.shape[-2]
    block_heads = _block_heads(heads, TILES[tile])
    check_triton_tiles(**{width_name: block_heads * triton.next_power_of_2(width)
                          for width_name, width in widths.items()})  # fmt: skip
    check_int32_offsets(**{f"one token's heads of {name}": (heads - 1) * tensor.stride(-2) + tensor.shape[-1],
                           "cos": cos.numel()})  # fmt: skip
    check_grid(math.prod(tensor.shape[:-2]), programs_per_head_block * triton.cdiv(heads, block_heads))


# How autograd made a view (torch keeps it for this very check); absent from some future torch, then not checked.
_VIEW_CREATION = getattr(torch._C._autograd, "_get_creation_meta", None)


def _check_written_in_place(q: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> None:
    """``q`` can be rotated in place: autograd allows it (torch raises a RuntimeError otherwise, and the Triton
    kernel would already have written q), no two of its indices share an element, and it shares no memory with the
    tables."""
    tracked = q.requires_grad and autograd_records()
    # A leaf, or a view of a leaf that requires grad. (A view whose base is a leaf that does not, a view a custom
    # Function returned, was named a view of a leaf: the check below names it.)
    leaf = q.is_leaf or (q._base is not None and q._base.is_leaf and q._base.requires_grad)
    require(not (tracked and leaf), "q is rotated in place and must not be a leaf that requires grad, or a view of "
            "one (pass q.clone(), or call under torch.no_grad())")  # fmt: skip
    # A view made by an op of several outputs (split, chunk), under no_grad or inference mode, or returned by a custom
    # Function, cannot be written where autograd tracks it.
    made = _VIEW_CREATION(q).name if tracked and _VIEW_CREATION is not None and q._is_view() else "DEFAULT"
    require(made == "DEFAULT", "q is rotated in place and autograd forbids writing it: a view of kind {made} "
            "(one output of split or chunk, or a view a custom Function returned, say); pass q.clone() or a view of "
            "one tensor", made=made)  # fmt: skip
    require(
        not q.is_inference() or torch.is_inference_mode_enabled(),
        "q is an inference tensor, which is read-only outside torch.inference_mode(); pass q.clone()",
    )
    check_no_internal_overlap("q", q)
    check_no_shared_memory({"q": q}, {"cos": cos, "sin": sin})
    check_writes_seen_by_autograd("q")
    check_saved_for_backward(tracked, {"cos": cos, "sin": sin})


def mla_rope_q(
    q: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    qk_head_dim: int,
    emb_dim: int,
    cu_seqlens: torch.Tensor | None = None,
    *,
    backend: str = "auto",
    validate: bool | None = None,
) -> torch.Tensor:
    """Rotate the last ``emb_dim`` channels of every head of ``q`` (read interleaved, written de-interleaved).

    In place, like megatron-core, and returns ``q``; pass ``q.clone()`` to keep the input. Differentiable
    (``q`` must not be a leaf that requires grad or a view of one, as for any in-place op, nor have two indices
    naming one element, nor share memory with ``cos``/``sin``). The Triton backward rotates the incoming gradient
    in place only where nothing else reaches it, and a copy otherwise (autograd may hand that buffer to other
    branches too, a caller's ``out.backward(g)`` passes its own ``g``: megatron-core's kernel rotates both in
    place; a gradient wrapping another library's memory, by DLPack say, is that library's; a backward traced by
    ``torch.compile`` always copies); it refuses a second derivative. ``cos`` and ``sin`` get no gradient (as
    megatron-core's) and must not require grad under grad mode, nor be inference tensors where autograd records
    the call.

    In thd, ``cu_seqlens`` (int32 or int64) must start at 0 and never decrease, and every packed position must have
    a cos/sin row; these values are checked for CPU tensors or with ``validate=True`` (one device-to-host copy),
    not by default on CUDA, where unchecked positions are clamped into the tables (never read past them).
    """
    backend, positions = _check_rope_inputs("q", q, cos, sin, emb_dim, cu_seqlens, backend, validate)
    check_positive(qk_head_dim=qk_head_dim)
    _check_written_in_place(q, cos, sin)
    require(
        q.shape[-1] == qk_head_dim + emb_dim,
        "q's last dimension must be qk_head_dim + emb_dim = {want}, got {got}",
        want=qk_head_dim + emb_dim,
        got=q.shape[-1],
    )
    if backend == "torch" or q.numel() == 0:  # no tokens: nothing to launch
        with untracked_in_inference_mode():
            return reference.rope_q(q, cos, sin, qk_head_dim, emb_dim, positions)
    _check_triton_sizes("q", q, cos, "q", rope_slice=emb_dim)
    from .triton_ops import MlaRopeQ

    with on_device(q.device), untracked_in_inference_mode():
        MlaRopeQ.apply(q, cos, sin, qk_head_dim, emb_dim, positions)
    # q itself, as the reference returns it: under grad mode the apply returns q (its history rebased), but where
    # autograd records nothing (torch.no_grad(), inference mode) it returned a new alias of q's memory that did not
    # require grad, although q did and stays in its graph.
    return q


def mla_rope_kv(
    kv: torch.Tensor,
    k_pos_emb: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    emb_dim: int,
    k_dim: int,
    v_dim: int,
    cu_seqlens: torch.Tensor | None = None,
    *,
    backend: str = "auto",
    validate: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``kv`` into key-nope and value and append the rotated shared ``k_pos_emb`` to every head's key.

    ``k_pos_emb``: ``[s, b, 1, emb_dim]`` (bshd) or ``[t, 1, emb_dim]`` (thd). Returns new tensors
    ``key [..., h, k_dim + emb_dim]`` and ``value [..., h, v_dim]``. ``cu_seqlens`` and ``validate``: as in
    ``mla_rope_q``.
    """
    backend, positions = _check_rope_inputs("kv", kv, cos, sin, emb_dim, cu_seqlens, backend, validate)
    check_positive(k_dim=k_dim, v_dim=v_dim)
    require(
        kv.shape[-1] == k_dim + v_dim,
        "kv's last dimension must be k_dim + v_dim = {want}, got {got}",
        want=k_dim + v_dim,
        got=kv.shape[-1],
    )
    check_same_device({"kv": kv, "k_pos_emb": k_pos_emb})
    check_shape("k_pos_emb", k_pos_emb, (*kv.shape[:-2], 1, emb_dim))
    require(
        k_pos_emb.dtype == kv.dtype,
        "k_pos_emb must have kv's dtype {want}, got {got}",
        want=kv.dtype,
        got=k_pos_emb.dtype,
    )
    check_saved_for_backward((kv.requires_grad or k_pos_emb.requires_grad) and autograd_records(),
                             {"cos": cos, "sin": sin})  # fmt: skip
    if backend == "torch" or kv.numel() == 0:  # no tokens: nothing to launch
        with untracked_in_inference_mode():
            return reference.rope_kv(kv, k_pos_emb, cos, sin, emb_dim, k_dim, v_dim, positions)
    # The forward's key and value programs (triton_kernels.rope_kv_forward_kernel).
    _check_triton_sizes("kv", kv, cos, "kv_forward", programs_per_head_block=2, k_dim=k_dim, v_dim=v_dim,
                        rope_half=emb_dim // 2)  # fmt: skip
    # The key, the value and kv's gradient are written contiguous, a token's heads at head x width in 32 bits: wider
    # than kv's own (an expanded kv, an emb_dim past v_dim) they wrapped before the token.
    check_int32_offsets(
        **{"one token's heads of key, value or kv's gradient": kv.shape[-2] * (k_dim + max(emb_dim, v_dim))}
    )
    from .triton_ops import MlaRopeKV, _half_sizes

    # k_pos_emb, shared by the heads, is read as one tile of both interleaved halves (not a tile per head).
    check_triton_tiles(k_pos_emb_row=2 * _half_sizes(emb_dim)["HALF_BLOCK"])

    with on_device(kv.device), untracked_in_inference_mode():
        return MlaRopeKV.apply(kv, k_pos_emb.contiguous(), cos, sin, emb_dim, k_dim, v_dim, positions)


__all__ = ["mla_rope_kv", "mla_rope_q"]
