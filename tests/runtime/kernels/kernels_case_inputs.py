"""Random inputs shared by the kernel tests: small MLA shapes in bshd and thd layouts."""

import torch

QK_HEAD_DIM, EMB_DIM, V_DIM, HEADS = 8, 8, 4, 3
SEQ, BATCH = 5, 2
CU_SEQLENS = (0, 4, 5, 11)
MAX_SEQ = 8
LAYOUTS = ("bshd", "thd")


def token_shape(layout: str) -> tuple[int, ...]:
    return (SEQ, BATCH) if layout == "bshd" else (CU_SEQLENS[-1],)


def cu_seqlens(layout: str) -> torch.Tensor | None:
    return None if layout == "bshd" else torch.tensor(CU_SEQLENS, dtype=torch.int32)


def positions(layout: str) -> torch.Tensor:
    """Rotary position of each token, shaped like the token dimensions."""
    if layout == "bshd":
        return torch.arange(SEQ)[:, None].expand(SEQ, BATCH)
    return torch.cat([torch.arange(end - start) for start, end in zip(CU_SEQLENS, CU_SEQLENS[1:], strict=False)])


def rope_angles(generator: torch.Generator) -> torch.Tensor:
    """``[MAX_SEQ, EMB_DIM // 2]`` angles in float64, as any (YaRN-scaled) RoPE would produce."""
    return torch.rand(MAX_SEQ, EMB_DIM // 2, generator=generator, dtype=torch.float64) * 6.0


def megatron_cos_sin(angles: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin the way megatron-core builds them: ``[max_seq, 1, 1, emb_dim]``, both halves equal."""
    freqs = torch.cat((angles, angles), -1)[:, None, None, :]
    return freqs.cos().to(dtype), freqs.sin().to(dtype)


def random(shape: tuple[int, ...], dtype: torch.dtype, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype)


def rotate_from_math(x: torch.Tensor, angles_per_token: torch.Tensor) -> torch.Tensor:
    """Float64 rotation written from the definition: pair ``(x[2i], x[2i+1])`` is the complex number
    ``x[2i] + i·x[2i+1]`` times ``e^{i·angle_i}``; the output holds all real parts, then all imaginary parts."""
    pairs = torch.complex(x[..., 0::2].double(), x[..., 1::2].double())
    rotated = pairs * torch.polar(torch.ones_like(angles_per_token), angles_per_token)
    return torch.cat((rotated.real, rotated.imag), -1)


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    expected = expected.double()
    return ((actual.double() - expected).norm() / expected.norm()).item()


# Relative-error bounds for one rounding to each dtype (fp32 ops, or the dtype's half precision).
TOLERANCE = {torch.float32: 1e-6, torch.bfloat16: 1e-2, torch.float16: 2e-3, torch.float64: 1e-12}


def view_into_a_freed_storage(tensor: torch.Tensor, offset: int = 64) -> torch.Tensor:
    """A view of ``tensor``'s shape at ``offset`` elements into a base whose storage was then freed by ``resize_(0)``
    (as FSDP frees a resharded parameter's): its data pointer is the freed base's (null) plus the offset, and no
    memory backs it."""
    base = torch.empty(offset + tensor.numel(), dtype=tensor.dtype, device=tensor.device)
    view = base[offset:].view(tensor.shape)
    base.untyped_storage().resize_(0)
    return view
