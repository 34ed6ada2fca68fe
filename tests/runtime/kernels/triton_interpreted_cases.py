"""Triton kernels against the torch reference, forward and backward; run only under ``TRITON_INTERPRET=1``
(by test_kernels_triton_interpreter.py, in a subprocess, since the variable must be set before triton loads)."""

import os
import threading

import pytest
import torch
from kernels_case_inputs import (
    EMB_DIM,
    HEADS,
    LAYOUTS,
    MAX_SEQ,
    QK_HEAD_DIM,
    TOLERANCE,
    V_DIM,
    cu_seqlens,
    megatron_cos_sin,
    random,
    relative_error,
    rope_angles,
    token_shape,
)

from seamfix.runtime.kernels import (
    KernelInputError,
    fused_down_norm_up,
    mla_cache_append,
    mla_decode,
    mla_rope_kv,
    mla_rope_q,
)

assert os.environ.get("TRITON_INTERPRET") == "1", "run through test_kernels_triton_interpreter.py"

DTYPES = (torch.float32, torch.bfloat16)


def outputs_and_grads(function, inputs, grad_outputs):
    """Run ``function`` on fresh leaf copies of ``inputs``; return its outputs and the inputs' gradients."""
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    outputs = function(*leaves)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    # Clones: the caller's gradients stay theirs to compare.
    torch.autograd.backward(outputs, [g.clone() for g in grad_outputs])
    return [o.detach() for o in outputs] + [leaf.grad for leaf in leaves]


def assert_backends_agree(function, inputs, grad_outputs, dtype):
    triton_results = outputs_and_grads(lambda *a: function(*a, backend="triton"), inputs, grad_outputs)
    torch_results = outputs_and_grads(lambda *a: function(*a, backend="torch"), inputs, grad_outputs)
    for got, expected in zip(triton_results, torch_results, strict=True):
        assert not got.isnan().any()
        assert relative_error(got, expected) < 2 * TOLERANCE[dtype]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_rope_q_kernels(layout, dtype):
    generator = torch.Generator().manual_seed(11)
    cos, sin = megatron_cos_sin(rope_angles(generator), dtype)
    q = random((*token_shape(layout), HEADS, QK_HEAD_DIM + EMB_DIM), dtype, generator)

    def rotate(q, backend):
        return mla_rope_q(q.clone(), cos, sin, QK_HEAD_DIM, EMB_DIM, cu_seqlens(layout), backend=backend)

    assert_backends_agree(rotate, [q], [random(q.shape, dtype, generator)], dtype)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_rope_kv_kernels(layout, dtype):
    generator = torch.Generator().manual_seed(12)
    cos, sin = megatron_cos_sin(rope_angles(generator), dtype)
    kv = random((*token_shape(layout), HEADS, QK_HEAD_DIM + V_DIM), dtype, generator)
    k_pos_emb = random((*token_shape(layout), 1, EMB_DIM), dtype, generator)
    grads = [
        random((*token_shape(layout), HEADS, QK_HEAD_DIM + EMB_DIM), dtype, generator),
        random((*token_shape(layout), HEADS, V_DIM), dtype, generator),
    ]

    def split(kv, k_pos_emb, backend):
        return mla_rope_kv(kv, k_pos_emb, cos, sin, EMB_DIM, QK_HEAD_DIM, V_DIM, cu_seqlens(layout), backend=backend)

    assert_backends_agree(split, [kv, k_pos_emb], grads, dtype)


def test_rope_q_kernel_writes_through_strided_heads():
    """q as a slice of a wider projection (non-contiguous heads) is rotated where it lies."""
    generator = torch.Generator().manual_seed(13)
    cos, sin = megatron_cos_sin(rope_angles(generator), torch.float32)
    wide = random((*token_shape("bshd"), HEADS, 2 * (QK_HEAD_DIM + EMB_DIM)), torch.float32, generator)
    expected = mla_rope_q(wide[..., : QK_HEAD_DIM + EMB_DIM].clone(), cos, sin, QK_HEAD_DIM, EMB_DIM, backend="torch")
    untouched = wide[..., QK_HEAD_DIM + EMB_DIM :].clone()

    mla_rope_q(wide[..., : QK_HEAD_DIM + EMB_DIM], cos, sin, QK_HEAD_DIM, EMB_DIM, backend="triton")

    torch.testing.assert_close(wide[..., : QK_HEAD_DIM + EMB_DIM], expected)
    assert torch.equal(wide[..., QK_HEAD_DIM + EMB_DIM :], untouched)


@pytest.mark.parametrize("dtype", DTYPES)
def test_down_norm_up_kernels(dtype):
    generator = torch.Generator().manual_seed(15)
    # 70 tokens: more than one backward program's rows, so the weight gradient's partial sums are combined.
    inputs = [
        random((70, 16), dtype, generator),
        random((24, 16), dtype, generator) / 4,
        random((20, 24), dtype, generator) / 5,
        1.0 + 0.1 * random((24,), dtype, generator),
    ]

    def chain(x, w_down, w_up, norm_weight, backend):
        return fused_down_norm_up(x, w_down, w_up, norm_weight, 1e-6, backend=backend)

    assert_backends_agree(chain, inputs, [random((70, 20), dtype, generator)], dtype)


def test_rope_kernels_with_a_half_that_is_not_a_power_of_two():
    """emb_dim 12 (half 6): the kernels fall back from the contiguous split/join tile to strided pairs."""
    emb_dim, generator = 12, torch.Generator().manual_seed(16)
    angles = torch.rand(MAX_SEQ, emb_dim // 2, generator=generator, dtype=torch.float64) * 6.0
    cos, sin = megatron_cos_sin(angles, torch.float32)
    q = random((*token_shape("bshd"), HEADS, QK_HEAD_DIM + emb_dim), torch.float32, generator)
    kv = random((*token_shape("bshd"), HEADS, QK_HEAD_DIM + V_DIM), torch.float32, generator)
    k_pos_emb = random((*token_shape("bshd"), 1, emb_dim), torch.float32, generator)

    def rotate(q, backend):
        return mla_rope_q(q.clone(), cos, sin, QK_HEAD_DIM, emb_dim, backend=backend)

    def split(kv, k_pos_emb, backend):
        return mla_rope_kv(kv, k_pos_emb, cos, sin, emb_dim, QK_HEAD_DIM, V_DIM, backend=backend)

    assert_backends_agree(rotate, [q], [random(q.shape, torch.float32, generator)], torch.float32)
    grads = [random((*token_shape("bshd"), HEADS, QK_HEAD_DIM + emb_dim), torch.float32, generator)]
    grads.append(random((*token_shape("bshd"), HEADS, V_DIM), torch.float32, generator))
    assert_backends_agree(split, [kv, k_pos_emb], grads, torch.float32)


def test_rope_kv_kernel_with_more_heads_than_one_block(monkeypatch):
    """More heads than one block: the kv forward's key and value programs each find their block's heads, and the
    backward sums the rope gradient over several blocks of them."""
    from seamfix.runtime.kernels.mla_rope import triton_ops

    monkeypatch.setitem(triton_ops.TILES, "kv_backward", triton_ops.TILES["kv_backward"] | {"max_heads": 16})
    monkeypatch.setitem(triton_ops.TILES, "kv_forward", triton_ops.TILES["kv_forward"] | {"max_heads": 16})
    heads, generator = 20, torch.Generator().manual_seed(17)
    cos, sin = megatron_cos_sin(rope_angles(generator), torch.float32)
    kv = random((*token_shape("bshd"), heads, QK_HEAD_DIM + V_DIM), torch.float32, generator)
    k_pos_emb = random((*token_shape("bshd"), 1, EMB_DIM), torch.float32, generator)
    grads = [
        random((*token_shape("bshd"), heads, QK_HEAD_DIM + EMB_DIM), torch.float32, generator),
        random((*token_shape("bshd"), heads, V_DIM), torch.float32, generator),
    ]

    def split(kv, k_pos_emb, backend):
        return mla_rope_kv(kv, k_pos_emb, cos, sin, EMB_DIM, QK_HEAD_DIM, V_DIM, backend=backend)

    assert_backends_agree(split, [kv, k_pos_emb], grads, torch.float32)


def _append_of_rank(rank):
    index = torch.zeros(1, dtype=torch.int32)
    return lambda: mla_cache_append(
        torch.zeros(1, rank), torch.zeros(1, 16), torch.ones(1, 16), torch.zeros(1, 16), index,
        torch.zeros(1, 1, rank), torch.zeros(1, 1, 16), index, backend="triton",
    )  # fmt: skip


def _decode_of_batch(batch):
    def expanded(*shape, dtype=torch.float32):  # every sequence the same: no memory per sequence
        return torch.ones(shape[-1], dtype=dtype).expand(*shape)

    return lambda: mla_decode(
        expanded(batch, 1, 1, 16), expanded(batch, 1, 1, 16), torch.zeros(1, 16, 16), torch.zeros(1, 16, 16),
        expanded(batch, 1, dtype=torch.int32), expanded(batch, dtype=torch.int32), 0.1, backend="triton",
        validate=False,
    )  # fmt: skip


# Inputs the Triton kernels cannot take: each failed inside Triton (a tile past its 2**20 elements) or read past a
# page (a page of 130 tokens: tiles of 64 from token 128 on), instead of being refused; the reference takes them.
PAST_TRITON_LIMITS = {
    "k_dim past one tile": lambda: mla_rope_kv(torch.zeros(1, 1, 128, 8193 + 1), torch.zeros(1, 1, 1, 4),
                                               torch.ones(1, 4), torch.zeros(1, 4), 4, 8193, 1, backend="triton"),
    "latent past one tile": lambda: fused_down_norm_up(torch.zeros(1, 1), torch.zeros(2**20 + 1, 1),
                                                       torch.zeros(1, 2**20 + 1), torch.ones(2**20 + 1), 1e-6,
                                                       backend="triton"),
    "appended rows past one tile": _append_of_rank(2**20),
    # The third pass: the tiles of k_pe rows (the append's, rope_dim 2**20) and of k_pos_emb (rope_kv's, emb_dim
    # 2**21: one row, not one per head) were not counted.
    "appended k_pe rows past one tile": lambda: mla_cache_append(
        torch.zeros(1, 16), torch.zeros(1, 2**20), torch.ones(1, 2**20), torch.zeros(1, 2**20),
        torch.zeros(1, dtype=torch.int32), torch.zeros(1, 1, 16), torch.zeros(1, 1, 2**20),
        torch.zeros(1, dtype=torch.int32), backend="triton"),
    "k_pos_emb row past one tile": lambda: mla_rope_kv(torch.zeros(1, 1, 1, 4), torch.zeros(1, 1, 1, 2**21),
                                                       torch.ones(1, 2**21), torch.zeros(1, 2**21), 2**21, 2, 2,
                                                       backend="triton"),
    "more sequences than one tile": _decode_of_batch(2**20 + 1),
    "pages that tiles straddle": lambda: mla_decode(torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16),
                                                    torch.randn(3, 130, 16), torch.randn(3, 130, 16),
                                                    torch.tensor([[0, 1]], dtype=torch.int32),
                                                    torch.tensor([200], dtype=torch.int32), 0.1, backend="triton"),
    # The third bad-input pass: 4,096 sequences of 2**26 tokens (one page of 65,536 named 1,024 times: valid) are
    # 2**32 tiles of 64, a count that wrapped to 0 in the kernels' 32 bits (the interpreter's numpy raised).
    "more key tiles than 32 bits count": lambda: mla_decode(
        torch.zeros(16).expand(2**12, 1, 1, 16), torch.zeros(16).expand(2**12, 1, 1, 16), torch.zeros(1, 2**16, 16),
        torch.zeros(1, 2**16, 16), torch.zeros(1, 2**10, dtype=torch.int32).expand(2**12, -1),
        torch.full((2**12,), 2**26, dtype=torch.int32), 0.1, backend="triton", validate=False),
    # The fourth pass: offsets the kernels compute in 32 bits for valid, if huge, shapes. A row inside a cache block
    # is row x row stride (a page of 2**17 rows 2**14 + 16 elements apart: 4 GiB of untouched virtual memory here), and
    # one token's heads of rope_kv's key and value (and of kv's gradient) are head x width: 2**17 heads of 1 + 2**14
    # from a 2**18-element kv, 3 x 2**17 heads of 2**13 values from an expanded one; all wrapped to offsets before the
    # tensor.
    "a cache block past 32-bit offsets": lambda: mla_decode(
        torch.zeros(1, 1, 1, 16, dtype=torch.float16), torch.zeros(1, 1, 1, 16, dtype=torch.float16),
        torch.empty(1, 2**17, 2**14 + 16, dtype=torch.float16)[:, :, :16],
        torch.zeros(1, 2**17, 16, dtype=torch.float16),
        torch.zeros(1, 1, dtype=torch.int32), torch.full((1,), 2**17, dtype=torch.int32), 0.1, backend="triton"),
    "one token's keys past 32-bit offsets": lambda: mla_rope_kv(
        torch.zeros(1, 1, 2**17, 2), torch.zeros(1, 1, 1, 2**14), torch.ones(1, 2**14), torch.zeros(1, 2**14), 2**14,
        1, 1, backend="triton"),
    "one token's values past 32-bit offsets": lambda: mla_rope_kv(
        torch.zeros(2**13 + 1).expand(1, 1, 3 * 2**17, -1), torch.zeros(1, 1, 1, 16), torch.ones(1, 16),
        torch.zeros(1, 16), 16, 1, 2**13, backend="triton"),
    # The fifth pass: a length is rounded up to whole 64-token tiles in 32 bits. A block table of 2**26 - 1 pages of
    # 32 tokens (2**31 - 32: 256 MiB of untouched virtual memory here) took a valid length of 2**31 - 40, whose tile
    # count wrapped negative: garbage for every sequence of the batch.
    "a sequence's tiles past 32-bit counting": lambda: mla_decode(
        torch.zeros(1, 1, 1, 16), torch.zeros(1, 1, 1, 16), torch.zeros(1, 32, 16), torch.zeros(1, 32, 16),
        torch.empty(1, 2**26 - 1, dtype=torch.int32), torch.full((1,), 2**31 - 40, dtype=torch.int32), 0.1,
        backend="triton", validate=False),
    # The sixth pass: packed positions were clamped to the table's last row in cu_seqlens' dtype, which raised torch's
    # RuntimeError for int32 offsets and an (expanded) table of 2**31 rows or more, before this refusal was reached.
    "an int32-offset table past 32-bit offsets": lambda: mla_rope_q(
        torch.zeros(4, 1, 8), torch.ones(1, 4).expand(2**31 + 8, 4), torch.zeros(1, 4).expand(2**31 + 8, 4), 4, 4,
        torch.tensor([0, 4], dtype=torch.int32), backend="triton"),
    # The seventh pass: the interpreter's bfloat16 tl.dot is wrong (off by 1e10 on a 16x16 product), and a bfloat16
    # decode on the CPU returned garbage (relative error 1e9 against float64) with no error.
    "a bfloat16 decode on the interpreter": lambda: mla_decode(
        torch.zeros(1, 1, 1, 16, dtype=torch.bfloat16), torch.zeros(1, 1, 1, 16, dtype=torch.bfloat16),
        torch.zeros(1, 16, 16, dtype=torch.bfloat16), torch.zeros(1, 16, 16, dtype=torch.bfloat16),
        torch.zeros(1, 1, dtype=torch.int32), torch.full((1,), 16, dtype=torch.int32), 0.1, backend="triton"),
}  # fmt: skip


@pytest.mark.parametrize("name", PAST_TRITON_LIMITS)
def test_triton_refuses_what_it_cannot_hold(name):
    with pytest.raises(KernelInputError, match="use backend='torch'"):
        PAST_TRITON_LIMITS[name]()


def test_rope_second_derivative_is_refused_where_the_kernel_has_no_graph():
    """A gradient penalty through mla_rope_q: the Triton backward rotates in place with no graph, which made the
    second derivative silently wrong; the reference (plain ops) computes it."""
    generator = torch.Generator().manual_seed(18)
    cos, sin = megatron_cos_sin(rope_angles(generator), torch.float32)
    q = random((*token_shape("bshd"), HEADS, QK_HEAD_DIM + EMB_DIM), torch.float32, generator).requires_grad_()
    weights = random(q.shape, torch.float32, generator)

    def penalty_gradient(backend):
        incoming = torch.ones_like(q).requires_grad_()
        out = mla_rope_q(q * 1, cos, sin, QK_HEAD_DIM, EMB_DIM, backend=backend)
        (grad,) = torch.autograd.grad(out, q, incoming.clone(), create_graph=True)
        return torch.autograd.grad((grad * weights).sum(), incoming)[0]

    assert penalty_gradient("torch").abs().sum() > 0
    with pytest.raises(RuntimeError):
        penalty_gradient("triton")


def test_rope_q_backward_leaves_the_gradient_of_other_branches_alone():
    """``mla_rope_q(q) + 3 * x`` with ``3 * x`` computed first: autograd hands the add's gradient to both branches
    as one tensor and runs the rope's backward first; rotating that tensor in place gave x a wrong gradient."""
    generator = torch.Generator().manual_seed(19)
    cos, sin = megatron_cos_sin(rope_angles(generator), torch.float32)
    q, x, weights = (random((*token_shape("bshd"), HEADS, QK_HEAD_DIM + EMB_DIM), torch.float32, generator)
                     for _ in range(3))  # fmt: skip

    def grads(backend):
        q_leaf, x_leaf = q.clone().requires_grad_(), x.clone().requires_grad_()
        other_branch = 3 * x_leaf
        out = mla_rope_q(q_leaf * 1, cos, sin, QK_HEAD_DIM, EMB_DIM, backend=backend) + other_branch
        (out * weights).sum().backward()
        return q_leaf.grad, x_leaf.grad

    (q_grad, x_grad), (expected_q_grad, expected_x_grad) = grads("triton"), grads("torch")
    assert torch.equal(x_grad, expected_x_grad)
    assert relative_error(q_grad, expected_q_grad) < 2 * TOLERANCE[torch.float32]


def test_rope_q_backward_in_place_on_a_fresh_gradient_and_never_on_the_callers():
    """A gradient the rope's backward holds alone is rotated in place and matches the reference; a caller's own
    ``out.backward(g)`` tensor comes back unchanged (megatron-core's in-place backward rotates it)."""
    generator = torch.Generator().manual_seed(20)
    cos, sin = megatron_cos_sin(rope_angles(generator), torch.float32)
    q, weights, incoming = (random((*token_shape("bshd"), HEADS, QK_HEAD_DIM + EMB_DIM), torch.float32, generator)
                            for _ in range(3))  # fmt: skip

    def fresh_gradient(backend):
        q_leaf = q.clone().requires_grad_()
        (mla_rope_q(q_leaf * 1, cos, sin, QK_HEAD_DIM, EMB_DIM, backend=backend) * weights).sum().backward()
        return q_leaf.grad

    assert relative_error(fresh_gradient("triton"), fresh_gradient("torch")) < 2 * TOLERANCE[torch.float32]
    callers = incoming.clone()
    mla_rope_q(q.clone().requires_grad_() * 1, cos, sin, QK_HEAD_DIM, EMB_DIM, backend="triton").backward(callers)
    assert torch.equal(callers, incoming)


class _Rope(torch.nn.Module):
    def forward(self, q, cos, sin):  # a module's inputs are views autograd forbids to write: rotate a product
        return mla_rope_q(q * 1, cos, sin, QK_HEAD_DIM, EMB_DIM, backend="triton")


def _keep_through_module_hook(kept):
    rope = _Rope()
    rope.register_full_backward_hook(lambda _module, _grad_input, grad_output: kept.append(grad_output[0]))
    return rope


def _keep_through_tensor_hook(out, kept):
    out.register_hook(kept.append)


def _keep_through_node_pre_hook(out, kept):
    out.grad_fn.register_prehook(kept.extend)


def _keep_through_retain_grad(out, kept):
    out.retain_grad()
    kept.append(out)  # its .grad, after the backward


@pytest.mark.parametrize(
    "keep",
    [_keep_through_tensor_hook, _keep_through_node_pre_hook, _keep_through_retain_grad, None],
    ids=["tensor hook", "node pre-hook", "retain_grad", "module full backward hook"],
)
def test_rope_q_backward_leaves_a_gradient_that_a_hook_kept_alone(keep):
    """Hooks that keep the gradient of the rope's output (logging, gradient-norm monitors, a module's full backward
    hook) see it as autograd computed it: the backward's in-place path once took a gradient a Python hook still held
    (one C++ handle, no views) and rotated what the hook had kept. q's gradient stays right either way."""
    generator = torch.Generator().manual_seed(21)
    cos, sin = megatron_cos_sin(rope_angles(generator), torch.float32)
    q, weights = (random((*token_shape("bshd"), HEADS, QK_HEAD_DIM + EMB_DIM), torch.float32, generator)
                  for _ in range(2))  # fmt: skip
    q_leaf, kept = q.clone().requires_grad_(), []
    if keep is None:  # the module's full backward hook
        out = _keep_through_module_hook(kept)(q_leaf * 1, cos, sin)
    else:
        out = mla_rope_q(q_leaf * 1, cos, sin, QK_HEAD_DIM, EMB_DIM, backend="triton")
        keep(out, kept)
    (out * weights).sum().backward()

    (seen,) = [tensor.grad if keep is _keep_through_retain_grad else tensor for tensor in kept]
    assert torch.equal(seen, weights)
    expected_q = torch.zeros_like(q).requires_grad_()
    (mla_rope_q(expected_q * 1, cos, sin, QK_HEAD_DIM, EMB_DIM, backend="torch") * weights).sum().backward()
    assert relative_error(q_leaf.grad, expected_q.grad) < 2 * TOLERANCE[torch.float32]


def test_threads_launching_at_once_get_their_own_results():
    """Triton's interpreter keeps a launch's program ids (and its patched triton.language) in module-global state:
    rotations of four sizes started from four threads at once read each other's ids (tokens rotated at another
    launch's positions, relative errors near 1, no error raised) or raised the interpreter's ValueError. The
    interpreted kernels launch one at a time now; each thread's result is the serial one."""
    generator = torch.Generator().manual_seed(23)
    cos, sin = megatron_cos_sin(rope_angles(generator), torch.float32)
    qs = [random((MAX_SEQ, 1 + i, HEADS, QK_HEAD_DIM + EMB_DIM), torch.float32, generator) for i in range(4)]
    expected = [mla_rope_q(q.clone(), cos, sin, QK_HEAD_DIM, EMB_DIM, backend="torch") for q in qs]
    results, start = [None] * len(qs), threading.Barrier(len(qs))

    def rotate(index):
        start.wait()
        for _ in range(3):
            results[index] = mla_rope_q(qs[index].clone(), cos, sin, QK_HEAD_DIM, EMB_DIM, backend="triton")

    threads = [threading.Thread(target=rotate, args=(index,)) for index in range(len(qs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for got, want in zip(results, expected, strict=True):
        assert got is not None and relative_error(got, want) < 2 * TOLERANCE[torch.float32]


def test_interpreted_launches_run_eagerly_inside_torch_compile():
    """Issue 16's ninth bad-input round: inside ``torch.compile`` (not ``fullgraph``), Dynamo traced into Triton's
    interpreter (an ``InterpretedFunction`` is no kernel it knows) and raised its TorchRuntimeError wrapped in the
    interpreter's InterpreterError ("RuntimeError when making fake tensor call") on every Triton op, where the
    reference's ops compile. An interpreted launch is a graph break now: it runs eagerly, as outside the compile."""
    generator = torch.Generator().manual_seed(29)
    cos, sin = megatron_cos_sin(rope_angles(generator), torch.float32)
    q = random((MAX_SEQ, 2, HEADS, QK_HEAD_DIM + EMB_DIM), torch.float32, generator)

    def rotated(backend):
        return mla_rope_q(q.clone(), cos, sin, QK_HEAD_DIM, EMB_DIM, backend=backend)

    torch._dynamo.reset()
    got = torch.compile(rotated, backend="eager")("triton")
    assert relative_error(got, rotated("torch")) < 2 * TOLERANCE[torch.float32]
