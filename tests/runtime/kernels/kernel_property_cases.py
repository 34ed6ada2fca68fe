"""Property test of every public kernel op on every backend that can run here: random valid inputs (shapes,
dtypes, strides, index values) match the float64 reference, random invalid ones raise ``KernelInputError``, and
nothing crashes. Runs on the CPU under ``TRITON_INTERPRET=1`` (by test_kernels_triton_interpreter.py, in a
subprocess: a kernel reading out of bounds would kill it) and as is on a GPU
(``python -m pytest tests/runtime/kernels/kernel_property_cases.py``).

On CUDA, index *values* are checked only with ``validate=True`` (see ``mla_decode``): a bad value is expected to
raise there, and to run without crashing or touching memory outside its tensors with ``validate=False``.

A wider search than the suite's fixed examples: ``SEAMFIX_PROPERTY_EXAMPLES=1500 python -m pytest
tests/runtime/kernels/kernel_property_cases.py --hypothesis-seed=33`` draws that many examples per test from the
seed (random, not derandomized); benchmarks/RESULTS.md records such runs on the H200.
"""

import math
import os
from dataclasses import dataclass, field

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernels_case_inputs import view_into_a_freed_storage
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.autograd import forward_ad

from seamfix.runtime.kernels import (
    AbsorbedMLADecoder,
    KernelInputError,
    fused_down_norm_up,
    mla_cache_append,
    mla_decode,
    mla_rope_kv,
    mla_rope_q,
)
from seamfix.runtime.kernels.backend import resolve_backend

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _backends() -> tuple[str, ...]:
    try:
        resolve_backend("triton", DEVICE)
    except KernelInputError:
        return ("torch",)
    return ("torch", "triton")


BACKENDS = _backends()
# The interpreter is slow and CI has two cores: a few dozen examples per op cover the mutations below.
WIDER_SEARCH = os.environ.get("SEAMFIX_PROPERTY_EXAMPLES")


def examples(suite_default: int) -> int:
    """How many examples a property test draws: the suite's fixed number, or SEAMFIX_PROPERTY_EXAMPLES's."""
    return int(WIDER_SEARCH) if WIDER_SEARCH else suite_default


EXAMPLES = examples(80 if DEVICE.type == "cpu" else 150)
PROPERTY = settings(
    max_examples=EXAMPLES, derandomize=not WIDER_SEARCH, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip
# Relative error against float64: one rounding to the dtype, tf32 products for float32 on a GPU.
TOLERANCE = {torch.float32: 2e-3, torch.float16: 5e-3, torch.bfloat16: 3e-2}


@dataclass
class Case:
    """One drawn input: ``make(dtype)`` builds fresh tensors (same values every call), ``invalid`` names the
    mutation applied (``None``: valid), ``value_only`` says the mutation is in index values (checked on CUDA only
    with ``validate=True``)."""

    seed: int
    params: dict
    invalid: str | None = None
    value_only: bool = False
    extra: dict = field(default_factory=dict)


def randn(shape, dtype, generator, layout="contiguous"):
    """Random values in ``dtype`` on DEVICE; ``layout`` "strided" returns a view whose rows are spaced out (every
    other element of a wider tensor along the second-to-last dimension, last dimension still dense)."""

    def dense(shape):  # cast before slicing: a cast of a strided view comes back contiguous
        return torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype).to(DEVICE)

    if layout == "strided" and len(shape) >= 2:
        return dense((*shape[:-2], 2 * shape[-2], shape[-1]))[..., ::2, :]
    if layout == "every_other":  # last dimension strided: the kernels' one hard requirement
        return dense((*shape[:-1], 2 * shape[-1]))[..., ::2]
    return dense(shape)


def upcast(value):
    """Float tensors (in tuples and dicts too) as float64: the reference runs on the very values the backend got."""
    if isinstance(value, torch.Tensor):
        return value.double() if value.is_floating_point() else value
    if isinstance(value, tuple | list):
        return type(value)(upcast(item) for item in value)
    if isinstance(value, dict):
        return {key: upcast(item) for key, item in value.items()}
    return value


def relative_error(actual, expected, magnitudes=None):
    """The error's norm over ``magnitudes``' (default: the expected values'): pass the terms' magnitudes where the
    result is a sum that can cancel, whose roundings are relative to the terms, not to the sum."""
    expected = expected.double()
    scale = (expected if magnitudes is None else magnitudes).norm().item()
    return (actual.double() - expected).norm().item() / (scale if scale > 0 else 1.0)


def with_gradients(outputs, leaves, seed: int) -> tuple:
    """``outputs`` (one tensor or a tuple) and the gradients of a random weighted sum of them with respect to
    ``leaves`` (the weights drawn in float64 from ``seed``, so that every backend and the float64 reference get the
    same ones): the valid cases' gradients are compared with float64 as their outputs are."""
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    generator = torch.Generator().manual_seed(seed)
    weights = [torch.randn(out.shape, generator=generator, dtype=torch.float64).to(out) for out in outputs]
    grads = torch.autograd.grad(outputs, leaves, weights, allow_unused=True)
    return (*(out.detach() for out in outputs), *(torch.zeros_like(leaf) if grad is None else grad
                                                  for leaf, grad in zip(leaves, grads, strict=True)))  # fmt: skip


def in_layout(leaf: torch.Tensor) -> torch.Tensor:
    """A copy of ``leaf`` in its strides that autograd tracks: an op that writes in place gets a tensor of the
    drawn layout that is not a leaf."""
    return leaf.new_empty_strided(leaf.shape, leaf.stride()).copy_(leaf)


def call_validating(case: Case, run, backend: str, tolerances: tuple[float, ...]):
    """Run an invalid case: it must raise KernelInputError; a value-only mutation on CUDA needs ``validate=True``
    to be seen, and without it must still run to completion (memory-safe), giving the reference's answer where the
    kernels define one (``UNCHECKED_DEFINED``: values clamped or skipped alike on every backend)."""
    validate = True if case.value_only and DEVICE.type == "cuda" else None
    with pytest.raises(KernelInputError):
        run(backend, validate)
    if case.value_only:
        unchecked = run(backend, False)
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()  # an illegal address would surface here
        if case.invalid in UNCHECKED_DEFINED:
            # A block id clamped into the cache may name an unused block (NaN rows): NaN where the reference's is.
            assert_matches(unchecked, run("torch", False, reference=True), tolerances, nan_as_reference=True)


# Unchecked (validate=False) values whose result is defined: clamped into the tables, the cache and the block table,
# or skipped, the same way on every backend. Not: a length of 0 (the kernels leave its rows unwritten) or a slot
# named twice (which token wins is a race).
UNCHECKED_DEFINED = {"short table (thd)", "cu_seqlens not from 0", "cu_seqlens decreasing",
                     "cu_seqlens wrapping int32", "slot past the cache",
                     "position past the table", "negative position", "length past the table", "block past the cache",
                     "negative block"}  # fmt: skip


def assert_matches(got, expected, tolerances: tuple[float, ...], nan_as_reference: bool = False):
    """Each output (one tensor or a tuple) within its relative tolerance of the float64 reference's, and NaN-free
    (or, with ``nan_as_reference``, NaN and infinite exactly where the reference's is, compared elsewhere)."""
    got, expected = (got, expected) if isinstance(got, tuple) else ((got,), (expected,))
    for actual, reference, tolerance in zip(got, expected, tolerances, strict=True):
        if nan_as_reference:  # non-finite values equal (NaN where NaN), the finite ones compared
            finite, infinite = reference.isfinite(), reference.isinf()
            assert torch.equal(actual.isfinite(), finite) and torch.equal(actual.isnan(), reference.isnan())
            assert torch.equal(actual[infinite].double(), reference[infinite])
            actual, reference = actual.where(finite, 0.0), reference.where(finite, 0.0)
        assert not actual.isnan().any()
        assert relative_error(actual, reference) < tolerance


def check_case(case: Case, run, backend: str, tolerances: tuple[float, ...]):
    """An invalid case must be refused (``call_validating``); a valid one must match the float64 reference run on
    the same values, each output within its tolerance (``run`` returns one tensor or a tuple of them)."""
    if case.invalid:
        call_validating(case, run, backend, tolerances)
        return
    assert_matches(run(backend, None), run("torch", None, reference=True), tolerances)


def dtypes_for(backend: str, matmul: bool = False) -> list[torch.dtype]:
    if backend == "triton" and matmul and DEVICE.type == "cpu":
        # Triton 3.8's interpreter computes bf16 tl.dot wrongly; fp16 takes the same half-precision path.
        return [torch.float32, torch.float16]
    return [torch.float32, torch.bfloat16, torch.float16]


def rope_tables(rows, emb_dim, dtype, generator):
    angles = torch.rand(rows, emb_dim // 2, generator=generator, dtype=torch.float64) * 6
    freqs = torch.cat((angles, angles), -1)[:, None, None, :]
    return freqs.cos().to(dtype).to(DEVICE), freqs.sin().to(dtype).to(DEVICE)


# --- RoPE (q and kv) ----------------------------------------------------------------------------------------------

ROPE_MUTATIONS = ["negative head dim", "odd emb_dim", "short table", "float cu_seqlens", "bool cu_seqlens",
                  "cu_seqlens not from 0", "cu_seqlens decreasing", "strided last dim", "int tensor",
                  "cu_seqlens wrapping int32"]  # fmt: skip
VALUE_MUTATIONS = {"short table (thd)", "cu_seqlens not from 0", "cu_seqlens decreasing", "cu_seqlens wrapping int32"}
# A table of 2**16 rows and int32 offsets 2**16 apart up to 2**31 - 2**16, then -2**31: a drop that int32 arithmetic
# wraps to a step of 2**16 (checked in int32, it passed as "never decreasing").
WRAP_STEP = 2**16


@st.composite
def rope_cases(draw):
    thd = draw(st.booleans())
    params = {
        "thd": thd,
        "seq": draw(st.integers(0 if not thd else 1, 4)),
        "batch": draw(st.integers(1, 2)),
        "heads": draw(st.integers(1, 3)),
        "head_dim": draw(st.integers(1, 6)),
        "v_dim": draw(st.integers(1, 5)),
        "emb_dim": draw(st.sampled_from([2, 4, 6, 8])),
        "spare_rows": draw(st.integers(0, 2)),
        "layout": draw(st.sampled_from(["contiguous", "strided"])),
    }
    if thd:
        params["lengths"] = draw(st.lists(st.integers(0, 4), min_size=1, max_size=3))
        params["padding"] = draw(st.integers(0, 1))
    invalid = draw(st.none() | st.sampled_from(ROPE_MUTATIONS))
    if invalid and "cu_seqlens" in invalid and not thd:
        invalid = None
    if invalid == "short table":
        if thd:  # a table of at least one row, one short of the longest packed sequence: only values tell
            invalid = "short table (thd)"
            params["lengths"][0] = max(params["lengths"][0], 2)
        else:
            params["seq"] = max(params["seq"], 1)
    if invalid == "cu_seqlens decreasing" and len(params["lengths"]) < 2:
        params["lengths"].append(0)
    return Case(draw(st.integers(0, 2**31 - 1)), params, invalid, invalid in VALUE_MUTATIONS)


def make_rope(case: Case, dtype, width: int, reference: bool = False):
    """``(x, cos, sin, cu_seqlens, k_pos_emb)`` for a RoPE op whose tensor has last dimension ``width``."""
    p, generator = case.params, torch.Generator().manual_seed(case.seed)
    emb = p["emb_dim"]
    if p["thd"]:
        lengths = p["lengths"]
        tokens = sum(lengths) + p["padding"]
        token_shape = (tokens,)
        longest = max([*lengths[:-1], lengths[-1] + p["padding"]])
        offsets = [0]
        for length in lengths:
            offsets.append(offsets[-1] + length)
        cu_seqlens = torch.tensor(offsets, dtype=torch.int32, device=DEVICE)
        rows = longest + p["spare_rows"]
    else:
        token_shape = (p["seq"], p["batch"])
        cu_seqlens = None
        rows = p["seq"] + p["spare_rows"]
    if case.invalid in ("short table", "short table (thd)"):
        rows = (longest if p["thd"] else p["seq"]) - 1
    if case.invalid == "cu_seqlens wrapping int32":
        rows = WRAP_STEP
        rising = torch.arange(0, 2**31 - WRAP_STEP + 1, WRAP_STEP, device=DEVICE)
        cu_seqlens = torch.cat((rising, rising.new_full((1,), -(2**31)))).to(torch.int32)
    cos, sin = rope_tables(max(rows, 1), emb, dtype, generator)
    # A table of no rows (any op needs one) where the mutation is one of shapes: a value mutation's call with
    # validate=False must run (zero tokens and offsets not from 0 got the shape refusal there).
    if rows == 0 and case.invalid and not case.value_only:
        cos, sin = cos[:0], sin[:0]
    layout = "every_other" if case.invalid == "strided last dim" else p["layout"]
    x = randn((*token_shape, p["heads"], width), dtype, generator, layout)
    k_pos_emb = randn((*token_shape, 1, emb), dtype, generator)
    if case.invalid == "int tensor":
        x = x.to(torch.int32)
    if cu_seqlens is not None:
        if case.invalid == "float cu_seqlens":
            cu_seqlens = cu_seqlens.float()
        elif case.invalid == "bool cu_seqlens":
            cu_seqlens = cu_seqlens.bool()
        elif case.invalid == "cu_seqlens not from 0":
            cu_seqlens = cu_seqlens + 1
        elif case.invalid == "cu_seqlens decreasing":
            cu_seqlens[-1] = cu_seqlens[-2] - 1
    made = (x, cos, sin, cu_seqlens, k_pos_emb)
    return upcast(made) if reference else made


def rope_dims(case: Case) -> tuple[int, int]:
    """``(head_dim, emb_dim)`` as passed: the mutations keep their sum (the op's width check passes)."""
    head_dim, emb = case.params["head_dim"], case.params["emb_dim"]
    if case.invalid == "negative head dim":
        return -2, head_dim + emb + 2
    if case.invalid == "odd emb_dim":
        return head_dim - 1 if head_dim > 1 else head_dim + 1, emb + 1 if head_dim > 1 else emb - 1
    return head_dim, emb


@PROPERTY
@given(case=rope_cases(), backend=st.sampled_from(BACKENDS), dtype_index=st.integers(0, 2))
def test_rope_q(case, backend, dtype_index):
    dtype = dtypes_for(backend)[dtype_index % len(dtypes_for(backend))]
    head_dim, emb = case.params["head_dim"], case.params["emb_dim"]
    qk_head_dim, emb_dim = rope_dims(case)

    def run(backend, validate, reference=False):
        q, cos, sin, cu_seqlens, _ = make_rope(case, dtype, head_dim + emb, reference)
        if case.invalid:
            return mla_rope_q(q, cos, sin, qk_head_dim, emb_dim, cu_seqlens, backend=backend, validate=validate)
        leaf = q.requires_grad_()
        out = mla_rope_q(in_layout(leaf), cos, sin, qk_head_dim, emb_dim, cu_seqlens, backend=backend)
        return with_gradients(out, [leaf], case.seed)

    check_case(case, run, backend, (TOLERANCE[dtype],) * (1 if case.invalid else 2))


@PROPERTY
@given(case=rope_cases(), backend=st.sampled_from(BACKENDS), dtype_index=st.integers(0, 2))
def test_rope_kv(case, backend, dtype_index):
    dtype = dtypes_for(backend)[dtype_index % len(dtypes_for(backend))]
    head_dim, emb, v_dim = case.params["head_dim"], case.params["emb_dim"], case.params["v_dim"]
    k_dim, emb_dim = rope_dims(case)

    def run(backend, validate, reference=False):
        kv, cos, sin, cu_seqlens, k_pos_emb = make_rope(case, dtype, head_dim + v_dim, reference)
        if case.invalid == "negative head dim":  # keep k_dim + v_dim equal to the width
            return mla_rope_kv(kv, k_pos_emb, cos, sin, emb, -2, head_dim + v_dim + 2, cu_seqlens, backend=backend,
                               validate=validate)  # fmt: skip
        if case.invalid:
            return mla_rope_kv(kv, k_pos_emb, cos, sin, emb_dim, k_dim, v_dim, cu_seqlens, backend=backend,
                               validate=validate)  # fmt: skip
        leaves = [kv.requires_grad_(), k_pos_emb.requires_grad_()]
        outputs = mla_rope_kv(*leaves, cos, sin, emb_dim, k_dim, v_dim, cu_seqlens, backend=backend)
        return with_gradients(outputs, leaves, case.seed)

    check_case(case, run, backend, (TOLERANCE[dtype],) * (2 if case.invalid else 4))


# --- fused_down_norm_up ---------------------------------------------------------------------------------------------

DOWN_NORM_UP_MUTATIONS = ["zero eps", "negative eps", "nan eps", "rank mismatch", "weight dtype", "zero rank",
                          "scalar x"]  # fmt: skip


@st.composite
def down_norm_up_cases(draw):
    params = {
        "tokens": draw(st.integers(0, 5)),
        "hidden": draw(st.integers(1, 8)),
        "rank": draw(st.integers(1, 8)),
        "out": draw(st.integers(1, 6)),
        "eps": draw(st.sampled_from([1e-6, 1e-2, 1.0])),
        "strided_weight": draw(st.booleans()),
    }
    return Case(draw(st.integers(0, 2**31 - 1)), params, draw(st.none() | st.sampled_from(DOWN_NORM_UP_MUTATIONS)))


@PROPERTY
@given(case=down_norm_up_cases(), backend=st.sampled_from(BACKENDS), dtype_index=st.integers(0, 2))
def test_fused_down_norm_up(case, backend, dtype_index):
    dtype = dtypes_for(backend)[dtype_index % len(dtypes_for(backend))]
    p = case.params
    eps = {"zero eps": 0.0, "negative eps": -1e-6, "nan eps": math.nan}.get(case.invalid, p["eps"])

    def run(backend, validate, reference=False):
        x, w_down, w_up, weight = make_down_norm_up(case, dtype, reference)
        return fused_down_norm_up(x, w_down, w_up, weight, eps, backend=backend)

    if case.invalid:
        check_case(case, run, backend, (TOLERANCE[dtype],))
        return
    got = run(backend, None)
    assert not got.isnan().any()
    # The normed latent is rounded to the dtype (as the unfused chain rounds it), then summed by the up projection
    # with terms of either sign: where the sum cancels, its error is a rounding of the terms, not of the result.
    magnitudes = up_projection_magnitudes(*make_down_norm_up(case, dtype, reference=True), eps)
    assert relative_error(got, run("torch", None, reference=True), magnitudes) < TOLERANCE[dtype]


def up_projection_magnitudes(x, w_down, w_up, weight, eps):
    """``|w_up| @ |normed latent|`` in float64: the sum of the up projection's terms' magnitudes."""
    latent = x @ w_down.T
    normed = latent * torch.rsqrt(latent.square().mean(-1, keepdim=True) + eps) * weight
    return normed.abs() @ w_up.abs().T


def make_down_norm_up(case: Case, dtype, reference: bool = False):
    """``(x, w_down, w_up, norm_weight)`` of a case (float64 copies for the reference)."""
    p, generator = case.params, torch.Generator().manual_seed(case.seed)
    rank = 0 if case.invalid == "zero rank" else p["rank"]
    x = randn((p["tokens"], p["hidden"]), dtype, generator)
    w_down = randn((rank, p["hidden"]), dtype, generator)
    w_up = randn((p["out"], rank + (case.invalid == "rank mismatch")), dtype, generator)
    weight = 1 + 0.1 * randn((rank, 2 if p["strided_weight"] else 1), dtype, generator)[:, 0]
    if case.invalid == "weight dtype":
        w_up = w_up.double()
    if case.invalid == "scalar x":
        x = x.sum()
    made = (x, w_down, w_up, weight)
    return upcast(made) if reference else made


@PROPERTY
@given(case=down_norm_up_cases(), backend=st.sampled_from(BACKENDS))
def test_fused_down_norm_up_gradients(case, backend):
    """Valid float32 calls: the output and the gradients of x, w_down, w_up and the norm weight match float64 on
    every backend (16-bit calls round their products, and their cancellations leave no relative error to speak of).
    RMSNorm keeps only the latent's direction: with one latent channel, or one hidden one (every latent along
    w_down's column), x's exact gradient is 0 and float32 leaves a residue (1e-2 of a 1e-5 value, the same on every
    backend), not compared; nor w_down's with one latent channel."""
    case = Case(case.seed, case.params)  # the valid form of the drawn case
    p = case.params

    def run(backend, reference=False):
        leaves = [tensor.requires_grad_() for tensor in make_down_norm_up(case, torch.float32, reference)]
        return with_gradients(fused_down_norm_up(*leaves, p["eps"], backend=backend), leaves, case.seed)

    tolerance = TOLERANCE[torch.float32]
    x_gradient = math.inf if p["rank"] < 2 or p["hidden"] < 2 else tolerance
    w_down_gradient = math.inf if p["rank"] < 2 else tolerance
    assert_matches(run(backend), run("torch", reference=True),
                   (tolerance, x_gradient, w_down_gradient, tolerance, tolerance))  # fmt: skip


# --- paged latent cache: append and decode -------------------------------------------------------------------------

RANKS = (16, 32)  # the Triton backend needs powers of two >= 16
ROPE_DIM = 16

APPEND_MUTATIONS = ["slot past the cache", "position past the table", "negative position", "bool slots",
                    "float positions", "zero eps", "strided c_kv", "cos dtype", "repeated slot",
                    "c_kv in the cache"]  # fmt: skip
APPEND_VALUE_MUTATIONS = {"slot past the cache", "position past the table", "negative position", "repeated slot"}


@st.composite
def append_cases(draw):
    num_blocks, block_size = draw(st.integers(1, 3)), draw(st.sampled_from([1, 2, 4, 16]))
    tokens = draw(st.integers(0, min(6, num_blocks * block_size)))
    slots = draw(st.permutations(range(num_blocks * block_size)))[:tokens]
    padding = draw(st.lists(st.booleans(), min_size=tokens, max_size=tokens))
    params = {
        "num_blocks": num_blocks,
        "block_size": block_size,
        "rank": draw(st.sampled_from(RANKS)),
        "slots": [-1 if pad else slot for slot, pad in zip(slots, padding, strict=True)],
        "table_rows": draw(st.integers(1, 8)),
        "norm": draw(st.sampled_from(["none", "contiguous", "strided"])),
    }
    params["positions"] = draw(st.lists(st.integers(0, params["table_rows"] - 1), min_size=tokens, max_size=tokens))
    invalid = draw(st.none() | st.sampled_from(APPEND_MUTATIONS))
    if invalid in APPEND_VALUE_MUTATIONS and not any(slot >= 0 for slot in params["slots"]):
        invalid = None  # every token is padding: its position and slot are never used
    if invalid in ("repeated slot", "c_kv in the cache") and sum(slot >= 0 for slot in params["slots"]) < 2:
        invalid = None  # needs two real tokens (one slot named twice; c_kv rows the append overwrites)
    return Case(draw(st.integers(0, 2**31 - 1)), params, invalid, invalid in APPEND_VALUE_MUTATIONS)


def guarded(shape, dtype, generator):
    """A contiguous tensor with a guard block before and after it in one allocation, and a check that the guards
    still hold their values (an out-of-bounds write by a block or two lands there)."""
    full = randn((shape[0] + 2, *shape[1:]), dtype, generator)
    guards = full[[0, -1]].clone()
    return full[1:-1], lambda: torch.equal(full[[0, -1]], guards)


def make_append(case: Case, dtype):
    """The op's arguments and a check that nothing was written outside the caches."""
    p, generator = case.params, torch.Generator().manual_seed(case.seed)
    tokens = len(p["slots"])
    cos, sin = rope_tables(p["table_rows"], ROPE_DIM, dtype, generator)
    slots = torch.tensor(p["slots"], dtype=torch.int64, device=DEVICE)
    positions = torch.tensor(p["positions"], dtype=torch.int32, device=DEVICE)
    real = (slots >= 0).nonzero()[:, 0]
    kept = real[:1]  # the first real token carries a value mutation
    if case.invalid == "repeated slot":
        slots[real[1]] = slots[kept]
    elif case.invalid == "slot past the cache":
        slots[kept] = p["num_blocks"] * p["block_size"]
    elif case.invalid == "position past the table":
        positions[kept] = p["table_rows"]
    elif case.invalid == "negative position":
        positions[kept] = -1
    elif case.invalid == "bool slots":
        slots = slots > 0
    elif case.invalid == "float positions":
        positions = positions.float()
    norm = None
    if p["norm"] != "none":
        norm = 1 + 0.1 * randn((p["rank"], 2 if p["norm"] == "strided" else 1), dtype, generator)[:, 0]
    ckv_cache, ckv_intact = guarded((p["num_blocks"], p["block_size"], p["rank"]), dtype, generator)
    kpe_cache, kpe_intact = guarded((p["num_blocks"], p["block_size"], ROPE_DIM), dtype, generator)
    c_kv = randn((tokens, p["rank"]), dtype, generator, "every_other" if case.invalid == "strided c_kv" else
                 "contiguous")  # fmt: skip
    if case.invalid == "c_kv in the cache":  # the latent read from rows that the append overwrites
        c_kv = ckv_cache.view(-1, p["rank"])[:tokens]
    return {
        "c_kv": c_kv,
        "k_pe": randn((tokens, ROPE_DIM), dtype, generator),
        "cos": cos.double() if case.invalid == "cos dtype" else cos,
        "sin": sin.double() if case.invalid == "cos dtype" else sin,
        "positions": positions,
        "ckv_cache": ckv_cache,
        "kpe_cache": kpe_cache,
        "slot_mapping": slots,
        "norm_weight": norm,
        "eps": 0.0 if case.invalid == "zero eps" else 1e-6,
    }, lambda: ckv_intact() and kpe_intact()  # fmt: skip


@PROPERTY
@given(case=append_cases(), backend=st.sampled_from(BACKENDS), dtype_index=st.integers(0, 2))
def test_cache_append(case, backend, dtype_index):
    dtype = dtypes_for(backend)[dtype_index % len(dtypes_for(backend))]
    if case.invalid == "cos dtype" and backend == "torch":
        return  # float64 tables are the reference's own dtype: accepted there

    def run(backend, validate, reference=False):
        args, intact = make_append(case, dtype)
        args = upcast(args) if reference else args
        caches = args["ckv_cache"], args["kpe_cache"]
        versions = [cache._version for cache in caches]
        mla_cache_append(**args, backend=backend, validate=validate)
        assert intact(), "written outside the cache"
        if case.params["slots"]:  # autograd is told of the write (a backward that saved a cache then raises)
            assert all(cache._version > version for cache, version in zip(caches, versions, strict=True))
        return args["ckv_cache"], args["kpe_cache"]

    check_case(case, run, backend, (TOLERANCE[dtype],) * 2)


DECODE_MUTATIONS = ["length under s_q", "length past the table", "block past the cache", "negative block",
                    "int64 lengths", "int64 table", "rank mismatch", "batch mismatch", "nan scale", "zero splits",
                    "strided q", "strided cache rows", "misaligned cache"]  # fmt: skip
# How the caches are laid out: separate contiguous tensors; FlashMLA's one [blocks, page, 1, rank + rope] tensor, read
# as two views; rows and blocks spaced out (padding between them, NaN: never to be read).
CACHE_LAYOUTS = ["contiguous", "flashmla", "spaced"]
DECODE_VALUE_MUTATIONS = {"length under s_q", "length past the table", "block past the cache", "negative block"}


@st.composite
def decode_cases(draw):
    block_size = draw(st.sampled_from([16, 32, 64, 128]))
    batch, s_q = draw(st.integers(0, 3)), draw(st.integers(1, 2))
    max_blocks = draw(st.integers(1, 3))
    lengths = draw(st.lists(st.integers(s_q, max_blocks * block_size), min_size=batch, max_size=batch))
    params = {
        "block_size": block_size,
        "s_q": s_q,
        "heads": draw(st.integers(1, 4)),
        "rank": draw(st.sampled_from(RANKS)),
        "max_blocks": max_blocks,
        "lengths": lengths,
        "causal": draw(st.booleans()),
        "splits": draw(st.none() | st.integers(1, 3)),
        "q_layout": draw(st.sampled_from(["contiguous", "strided"])),
        "cache_layout": draw(st.sampled_from(CACHE_LAYOUTS)),
    }
    invalid = draw(st.none() | st.sampled_from(DECODE_MUTATIONS))
    if batch == 0 and invalid in (*DECODE_VALUE_MUTATIONS, "batch mismatch"):
        invalid = None
    return Case(draw(st.integers(0, 2**31 - 1)), params, invalid, invalid in DECODE_VALUE_MUTATIONS)


def make_decode(case: Case, dtype):
    """A paged cache whose rows past every sequence's length (and whose unused blocks) hold NaN, as fresh
    ``torch.empty`` pages may: no backend may let them into a result."""
    p, generator = case.params, torch.Generator().manual_seed(case.seed)
    batch, block_size, max_blocks, rank = len(p["lengths"]), p["block_size"], p["max_blocks"], p["rank"]
    rope = p.get("rope", ROPE_DIM)
    num_blocks = batch * max_blocks + 1
    ckv = randn((num_blocks, block_size, rank), dtype, generator)
    kpe = randn((num_blocks, block_size, rope), dtype, generator)
    order = torch.randperm(num_blocks, generator=generator)
    table = torch.full((batch, max_blocks), -1, dtype=torch.int32)
    ckv_rows, kpe_rows = ckv.view(-1, rank), kpe.view(-1, rope)
    used = torch.zeros(num_blocks * block_size, dtype=torch.bool)
    for row, length in enumerate(p["lengths"]):
        blocks = order[row * max_blocks : row * max_blocks + -(-length // block_size)]
        table[row, : len(blocks)] = blocks.to(torch.int32)
        slots = (blocks[:, None] * block_size + torch.arange(block_size)).flatten()[:length]
        used[slots] = True
    ckv_rows[~used.to(DEVICE)] = float("nan")
    kpe_rows[~used.to(DEVICE)] = float("nan")
    lengths = torch.tensor(p["lengths"], dtype=torch.int32)
    if case.invalid == "length under s_q":
        lengths[0] = p["s_q"] - 1
    elif case.invalid == "length past the table":
        lengths[0] = max_blocks * block_size + 1
    elif case.invalid == "block past the cache":
        table[0, 0] = num_blocks
    elif case.invalid == "negative block":
        table[0, 0] = -1
    q_shape = (batch + (case.invalid == "batch mismatch"), p["s_q"], p["heads"])
    q_layout = "every_other" if case.invalid == "strided q" else p["q_layout"]
    q_lat = randn((*q_shape, rank + 16 * (case.invalid == "rank mismatch")), dtype, generator, q_layout)
    q_pe = randn((*q_shape, rope), dtype, generator)
    ckv, kpe = cache_views(ckv, kpe, case.invalid or p["cache_layout"])
    table, lengths = table.to(DEVICE), lengths.to(DEVICE)
    if case.invalid == "int64 lengths":
        lengths = lengths.long()
    elif case.invalid == "int64 table":
        table = table.long()
    return q_lat, q_pe, ckv, kpe, table, lengths


def cache_views(ckv, kpe, layout):
    """The contiguous caches' values in ``layout`` (a ``CACHE_LAYOUTS`` entry, or a cache mutation): views into
    a larger tensor whose other elements are NaN."""
    (num_blocks, block_size, rank), rope = ckv.shape, kpe.shape[-1]
    if layout == "flashmla":
        rows = torch.cat((ckv, kpe), -1)[:, :, None, :]
        return rows[:, :, 0, :rank], rows[:, :, 0, rank:]
    if layout not in ("spaced", "strided cache rows", "misaligned cache"):
        return ckv, kpe
    views = []
    for cache, width in ((ckv, rank), (kpe, rope)):
        spaced = cache.new_full((num_blocks, block_size + 1, 2 * width + 16), float("nan"))
        if layout == "strided cache rows":  # every other element: rows not dense
            view = spaced[:, :block_size, : 2 * width : 2]
        else:  # rows start one element past alignment, or 16 elements apart
            start = 1 if layout == "misaligned cache" else 0
            view = spaced[:, :block_size, start : start + width]
        view.copy_(cache)
        views.append(view)
    return tuple(views)


@PROPERTY
@given(case=decode_cases(), backend=st.sampled_from(BACKENDS), dtype_index=st.integers(0, 2))
def test_decode(case, backend, dtype_index):
    check_decode_case(case, backend, dtype_index)


@st.composite
def hopper_decode_cases(draw):
    """Decode cases at the narrow (up to 32 query rows), seesaw (more rows, a 64-wide rope) and 64-row kernels'
    shapes: heads up to 128, a latent of 64 to 512, pages of 16 to 128 tokens, lengths across page and tile
    edges."""
    block_size = draw(st.sampled_from([16, 32, 64, 128]))
    s_q, heads = draw(st.integers(1, 2)), draw(st.sampled_from([1, 8, 16, 20, 32, 40, 64, 128]))
    max_blocks, batch = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    edges = st.sampled_from([s_q, 63, 64, 65, block_size, block_size + 1, max_blocks * block_size])
    lengths = draw(st.lists(edges | st.integers(s_q, max_blocks * block_size), min_size=batch, max_size=batch))
    params = {
        "block_size": block_size,
        "s_q": s_q,
        "heads": heads,
        "rank": draw(st.sampled_from([64, 128, 256, 512])),
        "rope": draw(st.sampled_from([64, 64, 32])),
        "max_blocks": max_blocks,
        "lengths": [min(length, max_blocks * block_size) for length in lengths],
        "causal": draw(st.booleans()),
        "splits": draw(st.none() | st.integers(1, 40)),
        "q_layout": draw(st.sampled_from(["contiguous", "strided"])),
        "cache_layout": draw(st.sampled_from(CACHE_LAYOUTS)),
    }
    invalid = draw(st.none() | st.sampled_from(DECODE_MUTATIONS))
    return Case(draw(st.integers(0, 2**31 - 1)), params, invalid, invalid in DECODE_VALUE_MUTATIONS)


def check_decode_case(case: Case, backend: str, dtype_index: int):
    """One drawn decode case on ``backend``: valid ones match float64, invalid ones are refused (and, unchecked,
    run memory-safely, equal to the reference where the clamping defines the result)."""
    dtype = dtypes_for(backend, matmul=True)[dtype_index % len(dtypes_for(backend, matmul=True))]
    p = case.params
    if case.invalid == "misaligned cache" and backend == "torch":
        return  # the reference reads any view: alignment is the kernels' need
    scale = math.nan if case.invalid == "nan scale" else 0.3
    splits = 0 if case.invalid == "zero splits" else p["splits"]

    def run(backend, validate, reference=False):
        inputs = make_decode(case, dtype)
        inputs = upcast(inputs) if reference else inputs
        return mla_decode(*inputs, scale, p["causal"], num_splits=splits, backend=backend, validate=validate)

    check_case(case, run, backend, (TOLERANCE[dtype], 5e-3))


# --- fixed cases of issue 16's second bad-input pass, on every backend --------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_decode_rows_whose_scores_are_all_minus_inf_give_zeros_and_minus_inf(backend):
    """-inf in a query makes every score of its sequence -inf: the kernels wrote zeros, the reference NaN."""
    case = Case(7, {"block_size": 16, "s_q": 1, "heads": 2, "rank": 16, "max_blocks": 2, "lengths": [5, 20],
                    "causal": True, "splits": 2, "q_layout": "contiguous", "cache_layout": "contiguous"})  # fmt: skip
    q_lat, q_pe, ckv, kpe, table, lengths = make_decode(case, torch.float32)
    kpe.fill_(1.0)
    q_pe[0] = -math.inf
    out, lse = mla_decode(q_lat, q_pe, ckv, kpe, table, lengths, 0.3, num_splits=2, backend=backend)
    assert torch.equal(out[0], torch.zeros_like(out[0])) and lse[0].isneginf().all()
    expected_out, expected_lse = mla_decode(*upcast((q_lat, q_pe, ckv, kpe, table, lengths)), 0.3, backend="torch")
    assert relative_error(out[1], expected_out[1]) < TOLERANCE[torch.float32]
    assert relative_error(lse[1], expected_lse[1]) < TOLERANCE[torch.float32]


@pytest.mark.parametrize("backend", BACKENDS)
def test_decode_rows_with_a_plus_inf_score_give_nan_output_and_lse(backend):
    """+inf in a query makes a sequence's scores +inf: output NaN on every backend, and lse NaN too (the reference's
    logsumexp gave +inf where the kernels give NaN); the other sequence is untouched."""
    case = Case(7, {"block_size": 16, "s_q": 1, "heads": 2, "rank": 16, "max_blocks": 2, "lengths": [20, 5],
                    "causal": True, "splits": 2, "q_layout": "contiguous", "cache_layout": "contiguous"})  # fmt: skip
    q_lat, q_pe, ckv, kpe, table, lengths = make_decode(case, torch.float32)
    kpe.fill_(1.0)
    q_pe[0] = math.inf
    out, lse = mla_decode(q_lat, q_pe, ckv, kpe, table, lengths, 0.3, num_splits=2, backend=backend)
    assert out[0].isnan().all() and lse[0].isnan().all()
    expected_out, expected_lse = mla_decode(*upcast((q_lat, q_pe, ckv, kpe, table, lengths)), 0.3, backend="torch")
    assert relative_error(out[1], expected_out[1]) < TOLERANCE[torch.float32]
    assert relative_error(lse[1], expected_lse[1]) < TOLERANCE[torch.float32]


@pytest.mark.parametrize("backend", BACKENDS)
def test_rope_tables_that_require_grad_are_refused(backend):
    """The Triton backward gave cos/sin no gradient, the reference one (kv) or autograd's in-place error (q)."""
    cos, sin = rope_tables(4, 4, torch.float32, torch.Generator().manual_seed(1))
    kv, k_pos_emb = torch.randn(2, 1, 2, 6, device=DEVICE), torch.randn(2, 1, 1, 4, device=DEVICE)
    with pytest.raises(KernelInputError, match="must not require grad"):
        mla_rope_q(torch.randn(2, 1, 2, 8, device=DEVICE), cos.requires_grad_(), sin, 4, 4, backend=backend)
    with pytest.raises(KernelInputError, match="must not require grad"):
        mla_rope_kv(kv, k_pos_emb, cos, sin, 4, 2, 4, backend=backend)


# --- fixed cases of issue 16's third bad-input pass, on every backend ---------------------------------------------

DECODE_CASE = {"block_size": 16, "s_q": 1, "heads": 2, "rank": 16, "max_blocks": 2, "lengths": [5, 20],
               "causal": True, "splits": 2, "q_layout": "contiguous", "cache_layout": "contiguous"}  # fmt: skip


@pytest.mark.parametrize("backend", BACKENDS)
def test_autocast_leaves_every_backend_in_the_inputs_dtypes(backend):
    """Inside torch.autocast the reference decode ran in bfloat16 (6e-3 from the kernels, which autocast never
    reaches) and fused_down_norm_up's backward raised torch's dtype error on both backends."""
    q_lat, q_pe, ckv, kpe, table, lengths = make_decode(Case(7, DECODE_CASE), torch.float32)
    inputs = [torch.randn(shape, device=DEVICE, requires_grad=True) for shape in ((3, 16), (16, 16), (8, 16), (16,))]

    def run():
        out = fused_down_norm_up(*inputs, 1e-6, backend=backend)
        grads = torch.autograd.grad(out.square().sum(), inputs)
        return (*mla_decode(q_lat, q_pe, ckv, kpe, table, lengths, 0.3, backend=backend), out, *grads)

    expected = run()
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        got = run()
    for value, want in zip(got, expected, strict=True):
        assert value.dtype == want.dtype == torch.float32
        torch.testing.assert_close(value, want, rtol=0, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tensors_the_kernels_cannot_read_and_a_scale_they_overflow_are_refused(backend):
    """FakeTensors and vmap's wrappers raised torch's errors (the Triton path) or ran (the reference); a scale
    between float32's largest over log2(e) and float32's largest became inf in the kernels only; a negative view
    was read as stored."""
    q_lat, q_pe, ckv, kpe, table, lengths = make_decode(Case(7, DECODE_CASE), torch.float32)
    fake = FakeTensorMode().from_tensor
    with pytest.raises(KernelInputError, match="FakeTensor"):
        fused_down_norm_up(*(fake(torch.randn(shape, device=DEVICE)) for shape in ((3, 16), (16, 16), (8, 16), (16,))),
                           1e-6, backend=backend)  # fmt: skip
    with pytest.raises(KernelInputError, match="torch.func"):
        torch.func.vmap(lambda q: mla_decode(q, q_pe, ckv, kpe, table, lengths, 0.3, backend=backend))(q_lat[None])
    with pytest.raises(KernelInputError, match="softmax_scale"):
        mla_decode(q_lat, q_pe, ckv, kpe, table, lengths, 3e38, backend=backend)
    # A contiguous negative view (x.conj().imag of a complex x can give one): the Triton decode read the stored
    # values and gave the opposite scores (1.35 relative error), the reference resolved them.
    with pytest.raises(KernelInputError, match="resolve_neg"):
        mla_decode(torch._neg_view(q_lat), q_pe, ckv, kpe, table, lengths, 0.3, backend=backend)
    with pytest.raises(KernelInputError, match="null data pointer"):  # Triton: torch's RuntimeError
        mla_rope_kv(torch.randn(2, 1, 2, 6, device=DEVICE), torch._efficientzerotensor(2, 1, 1, 4, device=DEVICE),
                    *rope_tables(4, 4, torch.float32, torch.Generator()), 4, 2, 4, backend=backend)  # fmt: skip


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_mode_tangents_are_refused(backend):
    """Dual tensors (torch.autograd.forward_ad): the Triton RoPE raised NotImplementedError where the reference
    rotated the tangent, and the reference decode gave its output a tangent the kernels did not."""
    q_lat, q_pe, ckv, kpe, table, lengths = make_decode(Case(7, DECODE_CASE), torch.float32)
    cos, sin = rope_tables(4, 4, torch.float32, torch.Generator())
    with forward_ad.dual_level():
        with pytest.raises(KernelInputError, match="tangent"):
            mla_decode(forward_ad.make_dual(q_lat, q_lat), q_pe, ckv, kpe, table, lengths, 0.3, backend=backend)
        q = torch.randn(2, 1, 2, 8, device=DEVICE)
        with pytest.raises(KernelInputError, match="tangent"):
            mla_rope_q(forward_ad.make_dual(q, q.clone()), cos, sin, 4, 4, backend=backend)
        mla_rope_q(q, cos, sin, 4, 4, backend=backend)  # inside the level, tensors without a tangent run


@pytest.mark.parametrize("backend", BACKENDS)
def test_rope_kv_backward_takes_an_efficient_zero_gradient(backend):
    """Autograd may pass an efficient zero tensor (a null pointer) as a gradient: the Triton backward raised torch's
    RuntimeError reading it (on a GPU, a read of address 0)."""
    kv = torch.randn(2, 1, 2, 6, device=DEVICE, requires_grad=True)
    k_pos_emb = torch.randn(2, 1, 1, 4, device=DEVICE, requires_grad=True)
    key, value = mla_rope_kv(kv, k_pos_emb, *rope_tables(4, 4, torch.float32, torch.Generator()), 4, 2, 4,
                             backend=backend)  # fmt: skip
    zero_gradient = torch._efficientzerotensor(key.shape, device=DEVICE)
    torch.autograd.backward([key, value], [zero_gradient, torch.ones_like(value)])
    assert torch.equal(kv.grad, torch.cat((torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 4)), -1).to(DEVICE))
    assert torch.equal(k_pos_emb.grad, torch.zeros_like(k_pos_emb))


# --- fixed cases of issue 16's fourth bad-input pass, on every backend --------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_append_tells_autograd_it_wrote_the_caches(backend):
    """A backward that saved a cache before an append into it: torch's write (the reference) bumps the cache's version
    counter and the backward raises autograd's in-place error; the kernel wrote behind autograd's back, and the
    backward ran silently on the new rows."""
    case = Case(3, {"num_blocks": 2, "block_size": 4, "rank": 16, "slots": [5, -1, 2], "table_rows": 4,
                    "norm": "contiguous", "positions": [0, 1, 3]})  # fmt: skip
    args, _ = make_append(case, torch.float32)
    weights = torch.ones_like(args["ckv_cache"], requires_grad=True)
    saved = (weights * args["ckv_cache"]).sum()  # keeps ckv_cache for its backward

    mla_cache_append(**args, backend=backend)

    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        saved.backward()


@pytest.mark.parametrize("backend", BACKENDS)
def test_unchecked_lengths_past_the_table_are_clamped_as_the_kernels_clamp_them(backend):
    """validate=False and a length past the block table's capacity: the kernels clamp it to the capacity, the reference
    counted the causal window from the raw length (two new tokens: query 0 saw one more key, 1.8e-2 apart)."""
    case = Case(5, DECODE_CASE | {"s_q": 2, "lengths": [20, 32]})
    q_lat, q_pe, ckv, kpe, table, lengths = make_decode(case, torch.float32)
    capacity = table.shape[1] * ckv.shape[1]
    lengths[1] = capacity + 5
    out, lse = mla_decode(q_lat, q_pe, ckv, kpe, table, lengths, 0.3, backend=backend, validate=False)
    lengths[1] = capacity
    expected_out, expected_lse = mla_decode(*upcast((q_lat, q_pe, ckv, kpe, table, lengths)), 0.3, backend="torch")
    assert relative_error(out, expected_out) < TOLERANCE[torch.float32]
    assert relative_error(lse, expected_lse) < TOLERANCE[torch.float32]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("splits", [1, 16])  # the merge over runs, and over sequences (more than 16 parts)
def test_split_sequences_whose_scores_are_all_minus_inf_give_zeros_and_minus_inf(backend, splits):
    """The second pass's fix held for a sequence one run decodes; a sequence split over runs went through the merge,
    which divided 0 by 0: NaN output where the reference gives zeros (and lse -inf on both). +inf stays NaN."""
    case = Case(7, DECODE_CASE | {"lengths": [200, 20, 150], "max_blocks": 13})
    q_lat, q_pe, ckv, kpe, table, lengths = make_decode(case, torch.float32)
    kpe.nan_to_num_(0.0).fill_(1.0)
    q_pe[0], q_pe[2] = -math.inf, math.inf
    out, lse = mla_decode(q_lat, q_pe, ckv, kpe, table, lengths, 0.3, num_splits=splits, backend=backend)
    assert torch.equal(out[0], torch.zeros_like(out[0])) and lse[0].isneginf().all()
    assert out[2].isnan().all() and lse[2].isnan().all()
    expected_out, expected_lse = mla_decode(*upcast((q_lat, q_pe, ckv, kpe, table, lengths)), 0.3, backend="torch")
    assert relative_error(out[1], expected_out[1]) < TOLERANCE[torch.float32]
    assert relative_error(lse[1], expected_lse[1]) < TOLERANCE[torch.float32]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_scaled_score_past_float32_over_log2e_overflows_on_every_backend(backend):
    """The kernels scale by softmax_scale x log2(e): a score of 3 at a scale of 1e38 (4.3e38 there) overflowed to a NaN
    row on the kernels while the float32 reference (3e38) stayed finite; at 7e37 both are finite."""
    q_lat, q_pe, ckv, kpe, table, lengths = make_decode(Case(7, DECODE_CASE), torch.float32)
    for tensor in (q_lat, q_pe, kpe):
        tensor.zero_()
    q_pe[..., 0], kpe[..., 0] = 3.0, 1.0
    out, lse = mla_decode(q_lat, q_pe, ckv, kpe, table, lengths, 1e38, backend=backend)
    assert out.isnan().all() and lse.isnan().all()
    out, lse = mla_decode(q_lat, q_pe, ckv, kpe, table, lengths, 7e37, backend=backend)
    assert relative_error(lse, torch.full_like(lse, 2.1e38)) < TOLERANCE[torch.float32] and out.isfinite().all()


# --- fixed cases of issue 16's fifth bad-input pass, on every backend ---------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_batched_gradients_match_float64_on_every_backend(backend):
    """Autograd runs a backward under vmap for ``is_grads_batched=True`` (and ``jacobian(vectorize=True)``, a
    ``torch.func.vmap`` over ``torch.autograd.grad``): the Triton backwards raised torch's RuntimeError ("Cannot
    access data pointer of Tensor that doesn't have storage") where the reference's ops batched."""
    generator = torch.Generator().manual_seed(5)
    cos, sin = rope_tables(8, 4, torch.float32, generator)
    cu_seqlens = torch.tensor([0, 3, 5], device=DEVICE)

    def grads(backend, dtype):
        rows = torch.Generator().manual_seed(6)
        leaves = [randn(shape, dtype, rows).requires_grad_() for shape in
                  ((3, 2, 3, 8), (5, 3, 6), (5, 1, 4), (3, 16), (16, 16), (8, 16), (16,))]  # fmt: skip
        tables = cos.to(dtype), sin.to(dtype)
        outputs = (mla_rope_q(leaves[0] * 1, *tables, 4, 4, backend=backend),
                   *mla_rope_kv(leaves[1], leaves[2], *tables, 4, 2, 4, cu_seqlens, backend=backend),
                   fused_down_norm_up(*leaves[3:], 1e-6, backend=backend))  # fmt: skip
        batched = [randn((4, *out.shape), dtype, rows) for out in outputs]
        gradients = torch.autograd.grad(outputs, leaves, batched, retain_graph=True, is_grads_batched=True)
        per_sample = torch.func.vmap(lambda *g: torch.autograd.grad(outputs, leaves, g, retain_graph=True))(*batched)
        return *gradients, *per_sample

    expected = grads("torch", torch.float64)
    for got, want in zip(grads(backend, torch.float32), expected, strict=True):
        assert relative_error(got, want) < TOLERANCE[torch.float32]


@pytest.mark.parametrize("backend", BACKENDS)
def test_rope_backwards_read_a_negative_view_gradient_as_its_values(backend):
    """A caller's gradient that is a negative view (``g.conj().imag`` of a complex ``g``; ``torch._neg_view``) holds
    its values negated: the Triton kv backward read the memory as stored and gave kv the opposite gradient."""
    cos, sin = rope_tables(4, 4, torch.float32, torch.Generator().manual_seed(1))

    def grads(negative_view: bool):
        rows = torch.Generator().manual_seed(2)
        q, kv, k_pos_emb = (randn(shape, torch.float32, rows).requires_grad_() for shape in
                            ((2, 1, 2, 8), (2, 1, 2, 6), (2, 1, 1, 4)))  # fmt: skip
        outputs = (mla_rope_q(q * 1, cos, sin, 4, 4, backend=backend),
                   *mla_rope_kv(kv, k_pos_emb, cos, sin, 4, 2, 4, backend=backend))  # fmt: skip
        given = [randn(out.shape, torch.float32, rows) for out in outputs]
        given = [torch._neg_view(g) if negative_view else -g for g in given]
        return torch.autograd.grad(outputs, (q, kv, k_pos_emb), given)

    for got, want in zip(grads(negative_view=True), grads(negative_view=False), strict=True):
        assert torch.equal(got, want)


# --- fixed cases of issue 16's sixth bad-input pass, on every backend ---------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("untracked", [torch.no_grad, torch.inference_mode])
def test_rope_q_returns_q_itself_where_autograd_records_nothing(backend, untracked):
    """Under torch.no_grad() or inference mode, a q that requires grad came back from the Triton backend as a new
    alias of its memory that did not require grad (the reference returns q): ``mla_rope_q(q).sum().backward()`` then
    raised on Triton only."""
    cos, sin = rope_tables(4, 4, torch.float32, torch.Generator().manual_seed(2))
    leaf = torch.randn(2, 1, 2, 8, device=DEVICE, requires_grad=True)
    q = leaf * 1
    with untracked():
        rotated = mla_rope_q(q, cos, sin, 4, 4, backend=backend)
    assert rotated is q and rotated.requires_grad
    rotated.sum().backward()  # through q's own history: the rotation under no_grad is not recorded
    assert torch.equal(leaf.grad, torch.ones_like(leaf))


# --- fixed cases of issue 16's eighth bad-input pass, on every backend --------------------------------------------


def _training_ops_calls(backend: str):
    """The three differentiable ops on inputs that require grad, tables that require grad too; each call returns
    its outputs and the tensor whose history a rotation in place would extend (q)."""
    rows = torch.Generator().manual_seed(3)
    cos, sin = (table.requires_grad_() for table in rope_tables(4, 4, torch.float32, rows))
    shapes = ((2, 1, 2, 8), (2, 1, 2, 6), (2, 1, 1, 4), (3, 8), (4, 8), (5, 4))
    q, kv, k_pos_emb, x, w_down, w_up = (randn(shape, torch.float32, rows).requires_grad_() for shape in shapes)
    norm_weight = torch.ones(4, device=DEVICE, requires_grad=True)
    q = q * 1  # rotated in place: not a leaf
    return q, lambda: (
        mla_rope_q(q, cos, sin, 4, 4, backend=backend),
        *mla_rope_kv(kv, k_pos_emb, cos, sin, 4, 2, 4, backend=backend),
        fused_down_norm_up(x, w_down, w_up, norm_weight, 1e-6, backend=backend),
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_autograd_records_nothing_inside_inference_mode_even_under_enable_grad(backend):
    """``torch.enable_grad()`` inside ``torch.inference_mode()``: torch's own ops record nothing there (the unfused
    chain returns inference tensors that do not require grad), but the autograd Functions did. fused_down_norm_up
    raised torch's "Inference tensors cannot be saved for backward" on both backends, the Triton RoPE kv returned
    outputs with a backward that raised, the Triton RoPE q recorded a rotation that the reference's write did not (q's
    gradient then differed), and tables that require grad were refused as if the call were recorded. Every op now
    records nothing there, as under ``torch.no_grad()``, with the same results."""
    q, calls = _training_ops_calls(backend)
    history = q.grad_fn
    with torch.inference_mode(), torch.enable_grad():
        rotated_q, key, value, projected = calls()
    assert rotated_q is q and q.grad_fn is history  # the rotation is not recorded, as torch's own writes there
    assert not any(out.requires_grad for out in (key, value, projected))
    _, calls = _training_ops_calls(backend)
    with torch.no_grad():
        expected = calls()
    for got, want in zip((rotated_q, key, value, projected), expected, strict=True):
        assert torch.equal(got.detach(), want.detach())


@pytest.mark.parametrize("backend", BACKENDS)
def test_views_into_a_freed_storage_are_refused(backend):
    """A view into a storage freed by ``resize_(0)`` (FSDP frees a resharded parameter's so) has a data pointer past
    null: the kernels read it as memory (the interpreter returned what lay there; on a GPU, an illegal address) where
    the reference's views raised torch's RuntimeError ("setStorage: ... out of bounds for storage of size 0")."""
    rows = torch.Generator().manual_seed(4)
    cos, sin = rope_tables(4, 4, torch.float32, rows)
    q_lat, q_pe, ckv, kpe, table, lengths = make_decode(Case(7, DECODE_CASE), torch.float32)
    append_case = Case(8, {"num_blocks": 2, "block_size": 4, "rank": 16, "slots": [3, 5], "table_rows": 4,
                           "norm": "contiguous", "positions": [0, 2]})  # fmt: skip
    append, _ = make_append(append_case, torch.float32)
    norm = append["norm_weight"]
    refused = {
        "cos": lambda: mla_rope_q(randn((2, 1, 2, 8), torch.float32, rows), view_into_a_freed_storage(cos), sin, 4, 4,
                                  backend=backend),
        "k_pos_emb": lambda: mla_rope_kv(randn((2, 1, 2, 6), torch.float32, rows),
                                         view_into_a_freed_storage(randn((2, 1, 1, 4), torch.float32, rows)), cos,
                                         sin, 4, 2, 4, backend=backend),
        "w_up": lambda: fused_down_norm_up(randn((3, 16), torch.float32, rows), randn((16, 16), torch.float32, rows),
                                           view_into_a_freed_storage(randn((8, 16), torch.float32, rows)),
                                           torch.ones(16, device=DEVICE), 1e-6, backend=backend),
        # At offset 0 the pointer is null, which the efficient zero tensors' check already refuses.
        "w_down": lambda: fused_down_norm_up(randn((3, 16), torch.float32, rows),
                                             view_into_a_freed_storage(randn((16, 16), torch.float32, rows), 0),
                                             randn((8, 16), torch.float32, rows), torch.ones(16, device=DEVICE), 1e-6,
                                             backend=backend),
        "ckv_cache": lambda: mla_decode(q_lat, q_pe, view_into_a_freed_storage(ckv), kpe, table, lengths, 0.3,
                                        backend=backend),
        "norm_weight": lambda: mla_cache_append(**(append | {"norm_weight": view_into_a_freed_storage(norm)}),
                                                backend=backend),
    }  # fmt: skip
    for name, call in refused.items():
        with pytest.raises(KernelInputError, match=f"{name} holds no memory"):
            call()


def _in_another_layout(saved: torch.Tensor) -> torch.Tensor:
    """The same values in other strides: the last two dimensions column-major, a 1-D tensor every other element."""
    if saved.dim() >= 2:
        return saved.transpose(-1, -2).contiguous().transpose(-1, -2)
    if saved.dim() == 1:
        return saved.new_empty(2 * saved.numel())[::2].copy_(saved)
    return saved


@pytest.mark.parametrize("backend", BACKENDS)
def test_saved_tensors_unpacked_in_another_layout_give_the_same_gradients(backend):
    """A saved-tensor hook (offloading, compression: ``torch.autograd.graph.saved_tensors_hooks``) may unpack a saved
    tensor with other strides. The Triton backwards addressed the RoPE tables and down-norm-up's rstd as laid out in
    the forward, and gave gradients 0.5 to 0.9 off (silently; past the memory of a table unpacked expanded), where
    the reference's torch ops follow the strides."""

    def gradients(unpack):
        rows = torch.Generator().manual_seed(5)
        cos, sin = rope_tables(4, 4, torch.float32, rows)
        leaves = [randn(shape, torch.float32, rows).requires_grad_() for shape in
                  ((2, 1, 2, 8), (2, 1, 2, 6), (2, 1, 1, 4), (3, 16), (16, 16), (8, 16), (16,))]  # fmt: skip
        q, kv, k_pos_emb, x, w_down, w_up, norm_weight = leaves
        with torch.autograd.graph.saved_tensors_hooks(lambda saved: saved, unpack):
            outputs = (mla_rope_q(q * 1, cos, sin, 4, 4, backend=backend),
                       *mla_rope_kv(kv, k_pos_emb, cos, sin, 4, 2, 4, backend=backend),
                       fused_down_norm_up(x, w_down, w_up, 1 + norm_weight, 1e-6, backend=backend))  # fmt: skip
        return with_gradients(outputs, leaves, seed=6)

    for got, want in zip(gradients(_in_another_layout), gradients(lambda saved: saved), strict=True):
        assert relative_error(got, want) < 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
def test_outputs_take_in_place_ops_as_the_unfused_chains_do(backend):
    """fused_down_norm_up returned a reshape of its product, a view made inside a custom Function, on which autograd
    forbids every in-place op: MLA's query path (the up-projection's output viewed as heads and rotated by
    mla_rope_q) was refused on every backend ("a view of a leaf"), ``y += bias`` raised torch's RuntimeError. The
    reference decode's output and the decoder's were views made under no_grad, on which an in-place op with an
    operand that requires grad raised (the Triton decode's output took it)."""
    rows = torch.Generator().manual_seed(7)
    cos, sin = rope_tables(4, 4, torch.float32, rows)
    leaves = [randn(shape, torch.float32, rows).requires_grad_() for shape in ((2, 16), (16, 16), (16, 16))]
    norm_weight = torch.ones(16, device=DEVICE)

    def query_gradients(copy_first: bool):
        query = fused_down_norm_up(*leaves, norm_weight, 1e-6, backend=backend)  # [tokens, heads x (4 + 4)]
        query = query.clone() if copy_first else query
        return with_gradients(mla_rope_q(query.view(2, 1, 2, 8), cos, sin, 4, 4, backend=backend), leaves, seed=8)

    for got, want in zip(query_gradients(copy_first=False), query_gradients(copy_first=True), strict=True):
        assert relative_error(got, want) < 1e-6
    q_lat, q_pe, ckv, kpe, table, lengths = make_decode(Case(7, DECODE_CASE), torch.float32)
    heads, rank = DECODE_CASE["heads"], DECODE_CASE["rank"]
    decoder = AbsorbedMLADecoder(randn((heads * (4 + 4), rank), torch.float32, rows), heads, 4, 4, 0.3)
    outputs = (mla_decode(q_lat, q_pe, ckv, kpe, table, lengths, 0.3, backend=backend)[0],
               decoder(randn((*q_pe.shape[:3], 4), torch.float32, rows), q_pe, ckv, kpe, table, lengths,
                       backend=backend))  # fmt: skip
    for out in outputs:
        bias = torch.ones(out.shape[-1], device=DEVICE, requires_grad=True)
        out += bias
        assert out.requires_grad


# --- fixed cases of issue 16's tenth bad-input pass, on every backend ---------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_rope_kv_sums_the_heads_k_pos_emb_gradients_past_float16s_range_of_one_head(backend):
    """k_pos_emb is shared by every head, so its gradient sums the heads' key gradients. The reference rounded the
    rotated row to kv's dtype before broadcasting it, and autograd summed the heads in float16: four heads' 2e4
    overflowed to inf where the rotated sum, 5.7e4, fits (the Triton kernel sums in float32)."""
    heads, emb_dim = 4, 4
    cos = torch.full((1, emb_dim), math.sqrt(0.5), dtype=torch.float16, device=DEVICE)  # cos = sin: pi / 4
    kv = torch.zeros(1, 1, heads, 2 + 4, dtype=torch.float16, device=DEVICE, requires_grad=True)
    k_pos_emb = torch.zeros(1, 1, 1, emb_dim, dtype=torch.float16, device=DEVICE, requires_grad=True)
    key, _ = mla_rope_kv(kv, k_pos_emb, cos, cos.clone(), emb_dim, 2, 4, backend=backend)
    grad_key = torch.zeros_like(key)
    grad_key[..., 2 : 2 + emb_dim // 2] = 2e4  # the first components of every head's rotated pairs
    key.backward(grad_key)
    # d(first)/d(x_even) = cos, d(first)/d(x_odd) = -sin: each pair's gradient is (4 x 2e4) x (cos, -sin).
    pair = 4 * 2e4 * math.sqrt(0.5) * torch.tensor([1.0, -1.0], dtype=torch.float64)
    assert relative_error(k_pos_emb.grad.flatten(), pair.repeat(emb_dim // 2).to(DEVICE)) < TOLERANCE[torch.float16]


@pytest.mark.parametrize("backend", BACKENDS)
def test_rope_q_backward_leaves_a_gradient_in_another_librarys_memory_as_it_was(backend):
    """The Triton backward rotates a gradient in place where nothing else holds it. A gradient wrapping another
    library's buffer (a JAX or CuPy layer's backward handing its gradient over by DLPack; here a tensor the caller
    keeps, through DLPack) looked held alone, torch counting no holder, and the other library's buffer was
    rotated: the gradients came out right and the buffer changed under its owner."""
    cos, sin = rope_tables(4, 4, torch.float32, torch.Generator().manual_seed(10))
    q = torch.linspace(-1, 1, 2 * 1 * 3 * 8, device=DEVICE).view(2, 1, 3, 8).requires_grad_()
    rotated = mla_rope_q(q * 1, cos, sin, 4, 4, backend=backend)
    foreign = torch.linspace(1, 2, rotated.numel(), device=DEVICE).view(rotated.shape)
    rotated.register_hook(lambda grad: torch.from_dlpack(foreign))
    rotated.sum().backward()
    assert torch.equal(foreign, torch.linspace(1, 2, rotated.numel(), device=DEVICE).view(rotated.shape))
    assert torch.equal(q.grad[..., :4], foreign[..., :4])  # the nope channels' gradient passes through
