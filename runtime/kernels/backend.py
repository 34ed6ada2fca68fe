"""Backend choice and input checks shared by every kernel in ``seamfix.runtime.kernels``.

Each op runs either as Triton kernels (CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1``) or as its
PyTorch reference. Triton is optional: nothing here imports it, so the reference path works without it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import numbers
import os
import threading
from collections.abc import Iterable

import torch
from torch.autograd import forward_ad
from torch.autograd import graph as autograd_graph
from torch.nn.parameter import is_lazy

BACKENDS = ("auto", "triton", "torch")
TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# float64 is reference-only: it exists so that gradcheck can run through the public functions.
TORCH_DTYPES = (*TRITON_DTYPES, torch.float64)


class KernelInputError(ValueError):
    """An argument that the op cannot run on (shape, dtype, device or backend)."""


# Looked up once, at import (the lookup imports nothing): a plain constant, where a ``functools.cache`` around the
# lookup made Dynamo warn, in every compiled caller of an op, that it "ignores the cache wrapper".
_TRITON_INSTALLED = importlib.util.find_spec("triton") is not None


def triton_installed() -> bool:
    return _TRITON_INSTALLED


def triton_interpreter_enabled() -> bool:
    # Triton reads the variable when it is imported; checking it here only decides whether CPU tensors may go to it.
    return os.environ.get("TRITON_INTERPRET") == "1"


def resolve_backend(backend: str, device: torch.device) -> str:
    """The backend that will run: ``"triton"`` or ``"torch"``."""
    # A str first: ``in`` compares with ==, which a NumPy array answers elementwise (its ValueError, "truth value of
    # an array ... is ambiguous", for two elements; a one-element array passed as its string).
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise KernelInputError(f"backend must be one of {BACKENDS}, got {backend!r}")
    # The interpreter runs CPU tensors only: any other device (a meta tensor) has no memory it can read.
    triton_can_run = triton_installed() and (
        device.type == "cuda" or (device.type == "cpu" and triton_interpreter_enabled())
    )
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


def on_device(device: torch.device) -> contextlib.AbstractContextManager:
    """Triton launches on the current CUDA device, not the tensors': a kernel started on cuda:0 with cuda:1's
    pointers faults (or reads through peer access). Each launch runs with the tensors' device made current."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def autocast_off(device: torch.device) -> contextlib.AbstractContextManager:
    """The ops compute in their inputs' dtypes, as the Triton kernels (which autocast never sees) do: inside an
    ``torch.autocast`` region the reference's matmuls ran in bfloat16 (lse came back bfloat16), a decoder's absorbed
    query came out bfloat16 against float32 caches, and ``fused_down_norm_up``'s backward mixed dtypes. Autocast is
    off within the op (the check costs 0.7 us on a 2-core CPU; the context is entered only where autocast is on)."""
    return torch.autocast(device.type, enabled=False) if torch.is_autocast_enabled(device.type) else _NOTHING


_NOTHING = contextlib.nullcontext()


def autograd_records() -> bool:
    """Whether autograd records the ops run now: grad mode on, outside ``torch.inference_mode()``. Inside inference
    mode torch's own ops record nothing, ``torch.enable_grad()`` nested in it or not (their outputs are inference
    tensors that do not require grad)."""
    return torch.is_grad_enabled() and not torch.is_inference_mode_enabled()


def untracked_in_inference_mode() -> contextlib.AbstractContextManager:
    """``torch.no_grad()`` where grad mode is on inside ``torch.inference_mode()`` (``torch.enable_grad()`` nested in
    it), nothing elsewhere. Torch's own ops record nothing there, but an autograd ``Function`` still does: the Triton
    RoPE kv gave its inference-tensor outputs a backward that raised, the Triton RoPE q recorded a rotation the
    reference's write did not, and ``fused_down_norm_up`` raised torch's "Inference tensors cannot be saved for
    backward" on both backends where the unfused chain runs. With it, every backend records nothing, as torch's
    ops (one C call where grad mode is on; the serving path runs with it off)."""
    return torch.no_grad() if torch.is_grad_enabled() and torch.is_inference_mode_enabled() else _NOTHING


# Triton's interpreter runs a launch's programs with module-global state (the program id each reads, its patched
# triton.language): two threads launching at once read each other's program ids (silently wrong rows) or the
# unpatched language (its ValueError, "Did you forget to add @triton.jit ?").
_INTERPRETER_LOCK = threading.RLock()  # reentrant: a launch from inside a launch (a subclass's hook) never hangs


class _OneLaunchAtATime:
    """An interpreted kernel whose launches (``kernel[grid](...)``) run one at a time, from any thread."""

    def __init__(self, kernel):
        self.kernel = kernel

    def __getitem__(self, grid):
        launch = self.kernel[grid]

        # A graph break inside torch.compile: Dynamo knows compiled Triton kernels, not the interpreter, into whose
        # Python it traced (the interpreter's InterpreterError, "RuntimeError when making fake tensor call"). The
        # launch runs eagerly, as outside the compile.
        @torch.compiler.disable
        def serial(*args, **kwargs):
            with _INTERPRETER_LOCK:
                return launch(*args, **kwargs)

        return serial

    def __getattr__(self, name: str):
        return getattr(self.kernel, name)


def one_launch_at_a_time(*kernels):
    """The given Triton kernels, those that Triton's interpreter runs (``TRITON_INTERPRET=1`` when they were
    defined) launched one at a time across threads; compiled kernels are returned as they are (a GPU launch holds
    its own program ids: nothing added to the CUDA path)."""
    return tuple(_OneLaunchAtATime(kernel) if type(kernel).__name__ == "InterpretedFunction" else kernel
                 for kernel in kernels)  # fmt: skip


def check_dtype(name: str, tensor: torch.Tensor, backend: str) -> None:
    allowed = TRITON_DTYPES if backend == "triton" else TORCH_DTYPES
    if tensor.dtype not in allowed:
        names = ", ".join(str(dtype).removeprefix("torch.") for dtype in allowed)
        raise KernelInputError(f"{name} must be one of {names} for backend {backend!r}, got {tensor.dtype}")


def check_same_device(
    tensors: dict[str, torch.Tensor | None], optional: tuple[str, ...] = (), allow_meta: bool = False
) -> torch.device:
    """The one device all given tensors live on; the names in ``optional`` may be ``None`` (then ignored). Meta
    tensors only where ``allow_meta`` (building a module on the meta device, to be materialized later)."""
    for name, tensor in tensors.items():
        require(isinstance(tensor, torch.Tensor) or (tensor is None and name in optional),
                "{name} must be a torch.Tensor, got {kind}", name=name, kind=type(tensor).__name__)  # fmt: skip
    present = {name: tensor for name, tensor in tensors.items() if tensor is not None}
    # torch.jit.trace records sizes as tensors (refused as "a positive integer, got tensor(6)") and never sees a
    # Triton launch, which a traced call would replay without.
    require(allow_meta or not torch._C._is_tracing(), "the ops do not run under torch.jit.trace (it cannot record "
            "their kernels); call the op outside the trace")  # fmt: skip
    # Under vmap, grad or jvp the tensors are functorch wrappers without storage: the kernels cannot address them.
    if not allow_meta and torch._C._are_functorch_transforms_active():
        raise KernelInputError(
            "the kernels do not run under torch.func transforms (vmap, grad, jvp, ...): their "
            "tensors hold no memory the kernels can read; call the op outside the transform"
        )
    if not allow_meta and torch._C._len_torch_dispatch_stack():  # any dispatch mode (none in eager): 0.07-0.15 us
        _check_no_tracing_mode()
    for name, tensor in present.items():  # sparse and nested tensors have no strides (or sizes) to address
        # A lazy module's parameter before its first forward raises torch's ValueError at any use (is_neg, dim).
        if type(tensor) is not torch.Tensor and is_lazy(tensor):  # inline: no call per plain tensor (a hot path)
            raise KernelInputError(f"{name} is an uninitialized parameter (a lazy module's, before its first "
                                   "forward): no values yet; run the module once or materialize it")  # fmt: skip
        if tensor.layout != torch.strided or tensor.is_nested:
            kind = "a nested tensor" if tensor.is_nested else tensor.layout
            raise KernelInputError(f"{name} must be a dense tensor, got {kind}")
        if not allow_meta:
            _check_memory_holds_values(name, tensor)
        elif _storage_freed(tensor):  # a module built from a weight FSDP freed: torch's views of it raised
            _refuse_freed_storage(name)
    # Inside forward_ad.dual_level() (-1 outside it; a module global, read as such by torch's own functions).
    if not allow_meta and getattr(forward_ad, "_current_level", -1) >= 0:
        _check_no_tangents(present)
    devices = {tensor.device for tensor in present.values()}
    if len(devices) != 1:
        where = ", ".join(f"{name} on {tensor.device}" for name, tensor in present.items())
        raise KernelInputError(f"all tensors must be on one device: {where}")
    device = devices.pop()
    # Meta tensors hold no values: the reference would return shapes of nothing, the kernels read nothing.
    require(allow_meta or device.type != "meta", "meta tensors hold no values ({names}); the kernels need tensors "
            "with data", names=", ".join(present))  # fmt: skip
    return device


# torch's own dispatch modes that stand in for its ops, keyed by what each is (torch._C._TorchDispatchModeKey).
_TRACING_MODES = {"FAKE": "a FakeTensorMode (torch.compile's and torch.export's tracing)",
                  "PROXY": "make_fx's tracing (a ProxyTorchDispatchMode)",
                  "FUNCTIONAL": "functionalization (a FunctionalTensorMode)"}  # fmt: skip


def _check_no_tracing_mode() -> None:
    """No dispatch mode that fakes or records torch's ops is active: with plain tensors passed in, a FakeTensorMode
    made the reference's ops fail on them (torch's AssertionError or DataDependentOutputException) and the Triton
    launch allocate outputs without memory; under make_fx's tracing the Triton kernels ran outside the trace (the
    graph recorded their inputs and outputs, never the launch, as ``torch.jit.trace``). Refused on every backend,
    as the tensors these modes make are (``_check_memory_holds_values``). Other modes (a FLOP counter, selective
    checkpointing's) see torch's ops and pass."""
    for key, kind in _TRACING_MODES.items():
        mode_key = getattr(torch._C._TorchDispatchModeKey, key, None)
        require(mode_key is None or torch._C._get_dispatch_mode(mode_key) is None, "the ops do not run under {kind}: "
                "it stands in for torch's operators, and the kernels read memory and launch outside it; call the "
                "op outside it", kind=kind)  # fmt: skip


def check_writes_seen_by_autograd(written: str) -> None:
    """An op that writes ``written`` in place does not run under
    ``torch.autograd.graph.allow_mutation_on_saved_tensors()``: that context clones a tensor saved for backward when
    one of torch's operators writes it, and the Triton kernels write without one (an earlier op's backward, say
    ``(q * w).sum()``'s for ``w``, would read the rotated ``q`` where the reference's write kept the original).
    Refused on every backend (a module global read, 0.05 us)."""
    require(not getattr(autograd_graph, "_allow_mutation_on_saved_tensors_enabled", False), "{written} is "
            "written in place by a kernel that torch.autograd.graph.allow_mutation_on_saved_tensors() cannot see "
            "(it clones saved tensors only on torch's own writes); call the op outside that context",
            written=written)  # fmt: skip


def _check_memory_holds_values(name: str, tensor: torch.Tensor) -> None:
    """The kernels read a tensor's memory as its values, which torch's operators may not: a subclass that takes over
    the operators (a FakeTensor, a wrapper such as DTensor) has no memory of its own; a negative view (the imaginary
    part of a conjugate, say) holds the values negated (a contiguous one gave the Triton decode the opposite
    scores); an efficient zero tensor (``torch._efficientzerotensor``, which autograd makes) has a null pointer, and
    a view into a storage freed by ``resize_(0)`` no memory at all."""
    kind = type(tensor)
    if not (kind is torch.Tensor or kind.__torch_dispatch__ is torch._C._disabled_torch_dispatch_impl):
        raise KernelInputError(f"{name} is a {kind.__name__}, a tensor subclass that intercepts torch's operators and "
                               "holds no memory the kernels can read; pass a plain torch.Tensor")  # fmt: skip
    if tensor.is_neg():
        raise KernelInputError(f"{name} is a negative view (is_neg(): its memory holds the values negated), which "
                               f"the kernels would read as stored; pass {name}.resolve_neg()")  # fmt: skip
    if tensor.data_ptr() == 0 and tensor.numel() and not tensor.is_meta:  # meta tensors: refused by name below
        raise KernelInputError(f"{name} holds no memory (a null data pointer: an efficient zero tensor, or a storage "
                               f"freed by resize_(0), say); pass {name}.clone()")  # fmt: skip
    # A storage freed by resize_(0) (FSDP frees a resharded parameter's storage so): a view into it at an offset keeps
    # a data pointer past null (the freed base's plus the offset), which the kernels read as memory (on a GPU, an
    # illegal address), where torch's own views of it raise ("setStorage: ... out of bounds"). At offset 0 the
    # pointer is null (above); 0.06 us a tensor there, a few tenths of a microsecond at an offset.
    if tensor.storage_offset() and _storage_freed(tensor):
        _refuse_freed_storage(name)


def _storage_freed(tensor: torch.Tensor) -> bool:
    """Whether a tensor with elements has a storage of 0 bytes (freed by ``resize_(0)``); a meta tensor's storage
    counts its bytes, and tensors without a storage of their own (a FakeTensor or another subclass that takes over
    torch's operators, a torch.func transform's wrapper: absorption runs under grad and vmap) are not asked."""
    return (type(tensor).__torch_dispatch__ is torch._C._disabled_torch_dispatch_impl and not tensor.is_meta
            and tensor.numel() > 0 and torch._C._has_storage(tensor)
            and not tensor.untyped_storage().nbytes())  # fmt: skip


def _refuse_freed_storage(name: str) -> None:
    raise KernelInputError(
        f"{name} holds no memory (its storage has 0 bytes: freed by resize_(0), as FSDP frees a "
        "resharded parameter's storage, say); pass a tensor whose storage holds its elements"
    )


def _check_no_tangents(tensors: dict[str, torch.Tensor]) -> None:
    """No tensor carries a forward-mode tangent: the Triton ops have no forward-mode derivative (torch raised
    NotImplementedError) where the reference's plain ops gave one, to ``mla_decode``'s output too, which no backend
    differentiates."""
    for name, tensor in tensors.items():
        require(forward_ad.unpack_dual(tensor).tangent is None, "{name} carries a forward-mode tangent "
                "(torch.autograd.forward_ad), and the ops have no forward-mode derivative; pass its primal",
                name=name)  # fmt: skip


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


def check_softmax_scale(softmax_scale: float) -> float:
    """A real number that float32 holds times log2(e), as the kernels take it (they fold log2(e) into the scale to
    use exp2: a larger one became inf there while the reference still scaled by it), returned as a Python float (a
    NumPy float32 was refused as "not a finite number"; a bool is no scale; NaN or an infinite one makes every score
    NaN or infinite; comparing, not converting, keeps a huge int from overflowing)."""
    require(_is_real(softmax_scale) and -SOFTMAX_SCALE_MAX <= softmax_scale <= SOFTMAX_SCALE_MAX,
            "softmax_scale must be a finite real number of magnitude at most {limit:.4g} (float32's largest over "
            "log2(e)), got {scale!r}", limit=SOFTMAX_SCALE_MAX, scale=softmax_scale)  # fmt: skip
    # float(x), which the kernels get, is checked too: a float subclass (or another numbers.Real) converts through
    # its own __float__, which need not give the value just compared (a NaN passed as a scale of 0.1).
    converted = float(softmax_scale)
    if not -SOFTMAX_SCALE_MAX <= converted <= SOFTMAX_SCALE_MAX:  # inline: no call on the decode path
        _refuse_conversion("softmax_scale", softmax_scale, converted, -SOFTMAX_SCALE_MAX, SOFTMAX_SCALE_MAX)
    return converted


def _refuse_conversion(name: str, value: object, converted: float, low: float, high: float) -> None:
    raise KernelInputError(f"{name} {value!r} converts to {converted!r} (its __float__), outside [{low:.4g}, "
                           f"{high:.4g}]")  # fmt: skip


def _is_real(value: object) -> bool:
    """A real number: Python's or NumPy's, not a bool (nor a tensor, whose comparisons give tensors)."""
    # A float first: the ABC check costs a microsecond on the decode path, where the scale is a float.
    return isinstance(value, float) or (isinstance(value, numbers.Real) and not isinstance(value, bool))


# The smallest normal float32. Triton links libdevice in flush-to-zero mode (its default): the append's rsqrt
# (rsqrt.approx.ftz) reads a subnormal eps as 0, so an all-zero latent row would be 0 x inf = NaN on the GPU where
# torch's rsqrt gives 0 (reasoned from Triton's compiler options; the CPU interpreter keeps subnormals).
FLOAT32_SMALLEST_NORMAL = 2.0**-126
FLOAT32_MAX = 3.4028234663852886e38
# The decode kernels compute exp2(score * softmax_scale * log2(e)): the folded scale must stay finite in float32.
SOFTMAX_SCALE_MAX = FLOAT32_MAX / math.log2(math.e)


def check_eps(eps: float) -> float:
    """RMSNorm's ``eps``: positive, finite and normal as a float32, which the kernels add it as (0 divides by zero on
    an all-zero row, a negative one takes a root of a negative number, 1e-50 becomes 0, 1e-40 is read as 0 by the
    GPU's flush-to-zero square roots); returned as a Python float."""
    require(
        _is_real(eps) and FLOAT32_SMALLEST_NORMAL <= eps <= FLOAT32_MAX,
        "eps must be a positive finite real number that float32 holds as a normal number (2**-126 = 1.2e-38 to "
        "3.4e38), got {eps!r}",
        eps=eps,
    )
    converted = float(eps)  # checked as converted, as softmax_scale is
    if not FLOAT32_SMALLEST_NORMAL <= converted <= FLOAT32_MAX:
        _refuse_conversion("eps", eps, converted, FLOAT32_SMALLEST_NORMAL, FLOAT32_MAX)
    return converted


def check_values(device: torch.device, validate: bool | None) -> bool:
    """Whether an op checks the *values* of its index tensors (lengths, positions, slots, block ids) against the
    tables they index. Shapes, dtypes and strides are always checked (host metadata, free); values need a
    device-to-host copy on CUDA, which would stall the serving loop before every launch. So: ``validate=None``
    (the default) checks them for CPU tensors only, ``True`` always (one host copy per call on CUDA; refused during
    CUDA graph capture, where the copy is illegal), ``False`` never. Unchecked, out-of-range values never make a
    kernel read or write outside its tensors (they are clamped or skipped on the device), but their results are
    unspecified."""
    check_validate_flag(validate)
    if validate is None:
        return device.type == "cpu"
    if validate and device.type == "cuda" and torch.cuda.is_current_stream_capturing():
        raise KernelInputError("validate=True copies values to the host, which CUDA graph capture forbids")
    return validate


def check_validate_flag(validate: object) -> None:
    """``validate`` is None, True or False, on every call: also where no value is checked (bshd RoPE, an empty
    append or decode batch), which took ``validate="yes"`` silently where the same op refused it otherwise."""
    require(validate is None or isinstance(validate, bool), "validate must be None, True or False, got {v!r}",
            v=validate)  # fmt: skip


def host_values(*scalars: torch.Tensor) -> list:
    """Several 0-d integer tensors as Python ints, in one device-to-host copy."""
    return torch.stack([scalar.long() for scalar in scalars]).tolist()


def check_int32_offsets(**extents: int) -> None:
    """The Triton kernels address these tensors (given by how many elements each spans) with 32-bit offsets where
    64-bit ones would cost registers on every load; a tensor past 2**31 elements is refused instead of wrapped."""
    for name, extent in extents.items():
        require(extent < 2**31, "{name} spans {extent} elements, more than the Triton kernels address (2**31); "
                "split the call (a smaller batch, fewer num_splits) or use backend='torch'", name=name,
                extent=extent)  # fmt: skip


# Triton's largest tile (``TRITON_MAX_TENSOR_NUMEL``): a kernel holding a larger one fails to compile.
TRITON_MAX_TILE = 2**20
# CUDA's limit on a launch grid's second and third dimensions (the first takes 2**31 - 1).
GRID_Y_LIMIT = 65535


def check_triton_tiles(**elements: int) -> None:
    """The named tiles (elements one Triton program holds at once) fit Triton's limit; a larger one would fail to
    compile with Triton's own error instead of this one."""
    for name, count in elements.items():
        require(count <= TRITON_MAX_TILE, "the Triton kernel would hold {name} of {count} elements in one tile, more "
                "than Triton allows ({limit}); use backend='torch'", name=name, count=count,
                limit=TRITON_MAX_TILE)  # fmt: skip


def check_grid(first: int, second: int = 1) -> None:
    """A launch grid of ``(first, second)`` programs is one CUDA can launch."""
    require(first < 2**31 and second <= GRID_Y_LIMIT, "the Triton kernel would launch a grid of ({first}, {second}) "
            "programs, more than CUDA allows ((2**31 - 1, {limit})); use backend='torch'", first=first,
            second=second, limit=GRID_Y_LIMIT)  # fmt: skip


def check_saved_for_backward(tracked: bool, tensors: dict[str, torch.Tensor]) -> None:
    """Where autograd records the call (``tracked``), the named tensors its backward keeps are not inference tensors,
    which autograd cannot save (torch raised its RuntimeError halfway through the op, after the Triton kernel ran)."""
    if not tracked:
        return
    for name, tensor in tensors.items():
        require(not tensor.is_inference(), "{name} is an inference tensor (made under torch.inference_mode()), which "
                "autograd cannot keep for the backward of this call; pass {name}.clone(), or call under "
                "torch.no_grad()", name=name)  # fmt: skip


def batched_gradients(*grads: torch.Tensor | None) -> bool:
    """Whether autograd runs a backward under vmap (``torch.autograd.grad(..., is_grads_batched=True)``,
    ``torch.autograd.functional.jacobian(..., vectorize=True)``, ``torch.func.vmap`` over a backward): its gradients
    are then batched tensors without storage, which no kernel can address (the Triton backwards raised torch's
    RuntimeError where the reference's plain ops batched). Such a backward computes with torch's ops instead."""
    return any(grad is not None and not torch._C._has_storage(grad) for grad in grads)


def check_no_internal_overlap(name: str, tensor: torch.Tensor) -> None:
    """A tensor written in place has no two indices naming one element: with its dimensions ordered by stride,
    each stride reaches past everything the smaller ones span (an expanded dimension, stride 0, never does).
    Otherwise several programs would write one element in an order no backend shares."""
    if tensor.is_contiguous():  # the common case, without the Python loop
        return
    reach = 0  # elements past the first that the dimensions of smaller strides span
    for stride, size in sorted((stride, size) for size, stride in zip(tensor.shape, tensor.stride(), strict=True)
                               if size > 1):  # fmt: skip
        require(stride > reach, "{name} is written in place and two of its indices share an element (strides "
                "{strides} for shape {shape}); pass a tensor without overlapping elements", name=name,
                strides=list(tensor.stride()), shape=list(tensor.shape))  # fmt: skip
        reach += (size - 1) * stride


def check_no_shared_memory(written: dict[str, torch.Tensor], read: dict[str, torch.Tensor | None]) -> None:
    """No tensor an op writes in place shares memory with another tensor it reads or writes: the kernels read and
    write tile by tile, the reference all at once, so aliased memory would give each its own answer. (On the
    serving path of every decode step: plain comparisons of byte ranges, a few microseconds.)"""
    ranges = [(name in written, name, *_byte_range(tensor)) for name, tensor in (*written.items(), *read.items())
              if tensor is not None and tensor.numel() > 0]  # fmt: skip
    for index, (is_written, target, start, end) in enumerate(ranges):
        if not is_written:  # written tensors come first: the rest is reads, which may share memory
            return
        for _, other, other_start, other_end in ranges[index + 1 :]:
            if start < other_end and other_start < end:
                raise KernelInputError(f"{target} is written in place and must not share memory with {other}")


def _byte_range(tensor: torch.Tensor) -> tuple[int, int]:
    """The bytes a tensor's elements lie in (strides are never negative in torch)."""
    start = tensor.data_ptr()
    elements = tensor.numel() if tensor.is_contiguous() else span(tensor)
    return start, start + elements * tensor.element_size()


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
