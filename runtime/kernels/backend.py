"""Backend choice and input checks shared by every kernel in ``seamfix.runtime.kernels``.

Each op runs either as Triton kernels (CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1``) or as its
PyTorch reference. Triton is optional: nothing here imports it, so the reference path works without it.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from collections.abc import Iterable

import torch

BACKENDS = ("auto", "triton", "torch")
TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# float64 is reference-only: it exists so that gradcheck can run through the public functions.
TORCH_DTYPES = (*TRITON_DTYPES, torch.float64)


class KernelInputError(ValueError):
    """An argument that the op cannot run on (shape, dtype, device or backend)."""


@functools.cache
def triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


def triton_interpreter_enabled() -> bool:
    # Triton reads the variable when it is imported; checking it here only decides whether CPU tensors may go to it.
    return os.environ.get("TRITON_INTERPRET") == "1"


def resolve_backend(backend: str, device: torch.device) -> str:
    """The backend that will run: ``"triton"`` or ``"torch"``."""
    if backend not in BACKENDS:
        raise KernelInputError(f"backend must be one of {BACKENDS}, got {backend!r}")
    triton_can_run = triton_installed() and (device.type == "cuda" or triton_interpreter_enabled())
    if backend == "auto":
        return "triton" if triton_can_run and device.type == "cuda" else "torch"
    if backend == "triton" and not triton_can_run:
        if not triton_installed():
            raise KernelInputError("backend='triton' needs the triton package (pip install 'seamfix[kernels]')")
        raise KernelInputError(
            f"backend='triton' needs CUDA tensors (got {device.type}); set TRITON_INTERPRET=1 before importing "
            "triton to run the kernels on the CPU"
        )
    return backend


def check_dtype(name: str, tensor: torch.Tensor, backend: str) -> None:
    allowed = TRITON_DTYPES if backend == "triton" else TORCH_DTYPES
    if tensor.dtype not in allowed:
        names = ", ".join(str(dtype).removeprefix("torch.") for dtype in allowed)
        raise KernelInputError(f"{name} must be one of {names} for backend {backend!r}, got {tensor.dtype}")


def check_same_device(tensors: dict[str, torch.Tensor | None], optional: tuple[str, ...] = ()) -> torch.device:
    """The one device all given tensors live on; the names in ``optional`` may be ``None`` (then ignored)."""
    for name, tensor in tensors.items():
        require(isinstance(tensor, torch.Tensor) or (tensor is None and name in optional),
                "{name} must be a torch.Tensor, got {kind}", name=name, kind=type(tensor).__name__)  # fmt: skip
    present = {name: tensor for name, tensor in tensors.items() if tensor is not None}
    devices = {tensor.device for tensor in present.values()}
    if len(devices) != 1:
        where = ", ".join(f"{name} on {tensor.device}" for name, tensor in present.items())
        raise KernelInputError(f"all tensors must be on one device: {where}")
    return devices.pop()


def check_shape(name: str, tensor: torch.Tensor, expected: Iterable[int | None]) -> None:
    """Check ``tensor.shape`` against ``expected``, where ``None`` accepts any size in that dimension."""
    expected = tuple(expected)
    matches = tensor.dim() == len(expected) and all(
        want is None or want == got for want, got in zip(expected, tensor.shape, strict=True)
    )
    if not matches:
        shown = ", ".join("*" if want is None else str(want) for want in expected)
        raise KernelInputError(f"{name} must have shape [{shown}], got {list(tensor.shape)}")


def check_cache_dtype(first: tuple[str, torch.Tensor], second: tuple[str, torch.Tensor], cache: torch.Tensor) -> None:
    """The two named inputs hold the paged cache's dtype."""
    (first_name, a), (second_name, b) = first, second
    require(a.dtype == b.dtype == cache.dtype, "{first}, {second} and the caches must share one dtype, got {a}, {b} "
            "and {c}", first=first_name, second=second_name, a=a.dtype, b=b.dtype, c=cache.dtype)  # fmt: skip


def check_cos_sin(cos: torch.Tensor, sin: torch.Tensor, width: int) -> None:
    """``cos`` and ``sin`` are one ``[max_seq, width]`` table each (Megatron's ``[max_seq, 1, 1, width]`` too)."""
    require(
        cos.dim() >= 2
        and cos.shape == sin.shape
        and cos.shape[0] >= 1
        and cos.shape[-1] == width
        and cos.numel() == cos.shape[0] * width,
        "cos and sin must both be [max_seq, {width}] or [max_seq, 1, 1, {width}], got {cos} and {sin}",
        width=width,
        cos=list(cos.shape),
        sin=list(sin.shape),
    )


INDEX_DTYPES = (torch.int32, torch.int64)


def check_index_dtype(name: str, tensor: torch.Tensor, allowed: tuple[torch.dtype, ...] = INDEX_DTYPES) -> None:
    """Indices are int32 or int64: a bool or uint8 tensor would index as a mask, a float one not at all."""
    names = " or ".join(str(dtype).removeprefix("torch.") for dtype in allowed)
    require(tensor.dtype in allowed, "{name} must be {names}, got {dtype}", name=name, names=names, dtype=tensor.dtype)


def check_positive(**sizes: int) -> None:
    """Every named size is an int >= 1 (the kernels tile over them; a zero or negative one has no meaning)."""
    for name, size in sizes.items():
        require(
            isinstance(size, int) and not isinstance(size, bool) and size >= 1,
            "{name} must be a positive integer, got {size!r}",
            name=name,
            size=size,
        )


def check_eps(eps: float) -> None:
    """RMSNorm's ``eps``: positive and finite (0 divides by zero on an all-zero row, a negative one takes a root of
    a negative number)."""
    require(
        isinstance(eps, int | float) and math.isfinite(eps) and eps > 0,
        "eps must be a positive finite number, got {eps!r}",
        eps=eps,
    )


def check_values(device: torch.device, validate: bool | None) -> bool:
    """Whether an op checks the *values* of its index tensors (lengths, positions, slots, block ids) against the
    tables they index. Shapes, dtypes and strides are always checked (host metadata, free); values need a
    device-to-host copy on CUDA, which would stall the serving loop before every launch. So: ``validate=None``
    (the default) checks them for CPU tensors only, ``True`` always (one host copy per call on CUDA; refused during
    CUDA graph capture, where the copy is illegal), ``False`` never. Unchecked, out-of-range values never make a
    kernel read or write outside its tensors (they are clamped or skipped on the device), but their results are
    unspecified."""
    require(validate in (None, True, False), "validate must be None, True or False, got {v!r}", v=validate)
    if validate is None:
        return device.type == "cpu"
    if validate and device.type == "cuda" and torch.cuda.is_current_stream_capturing():
        raise KernelInputError("validate=True copies values to the host, which CUDA graph capture forbids")
    return validate


def host_values(*scalars: torch.Tensor) -> list:
    """Several 0-d integer tensors as Python ints, in one device-to-host copy."""
    return torch.stack([scalar.long() for scalar in scalars]).tolist()


def check_int32_offsets(**extents: int) -> None:
    """The Triton kernels address these tensors (given by how many elements each spans) with 32-bit offsets where
    64-bit ones would cost registers on every load; a tensor past 2**31 elements is refused instead of wrapped."""
    for name, extent in extents.items():
        require(extent < 2**31, "{name} spans {extent} elements, more than the Triton kernels address (2**31); "
                "use a smaller batch (or fewer num_splits)", name=name, extent=extent)  # fmt: skip


def span(tensor: torch.Tensor) -> int:
    """Elements from a tensor's first to its last, strides included (0 for an empty tensor)."""
    if tensor.numel() == 0:
        return 0
    return 1 + sum((size - 1) * stride for size, stride in zip(tensor.shape, tensor.stride(), strict=True))


def require(condition: bool, message: str, **values: object) -> None:
    """Raise ``message.format(**values)`` unless ``condition``; formatting only on failure keeps checks off
    the launch path's cost (these ops run thousands of times a step)."""
    if not condition:
        raise KernelInputError(message.format(**values))
