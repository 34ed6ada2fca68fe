"""The bad inputs issue 16 found, one by one, on the reference backend (the Triton kernels get the same inputs
from kernel_property_cases.py under the interpreter): each is refused with KernelInputError or computed right."""

import math

import numpy as np
import pytest
import torch
from decode_case_inputs import ROPE, SCALE, PagedCase
from kernels_case_inputs import view_into_a_freed_storage
from test_kernels_latent_cache import append_case
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.experimental.proxy_tensor import make_fx
from torch.utils.flop_counter import FlopCounterMode

from seamfix.runtime.kernels import (
    AbsorbedMLADecoder,
    KernelInputError,
    absorb_mla_weights,
    fused_down_norm_up,
    mla_cache_append,
    mla_decode,
    mla_rope_kv,
    mla_rope_q,
)

COS, SIN = torch.ones(8, 10), torch.zeros(8, 10)


def paged_case(lengths=(5, 40)):
    return PagedCase(list(lengths), 16, torch.float32, torch.Generator().manual_seed(3))


def thd_q(tokens=6):
    return torch.randn(tokens, 2, 4 + 4)


def view_made_without_grad():
    tracked = torch.randn(2, 1, 1, 16, requires_grad=True) * 1
    with torch.no_grad():
        return tracked[..., :8]


def inference_tensor(shape):
    with torch.inference_mode():
        return torch.randn(shape)


def inside(context, call):
    """``call()`` run inside the context manager ``context()``."""
    with context():
        return call()


def decoder_with(**buffers):
    """A decoder call, its buffers replaced by ``replace(buffer)`` for each ``name=replace`` given."""

    def call():
        decoder, case = AbsorbedMLADecoder(torch.randn(4 * (8 + 4), 32), 4, 8, 4, SCALE), paged_case()
        for name, replace in buffers.items():
            setattr(decoder, name, replace(getattr(decoder, name)))
        return decoder(torch.randn(2, 1, 4, 8), case.q_pe, *case.cache_args())

    return call


def saved_then_rotated():
    """q saved for a product's backward, then rotated in place, inside allow_mutation_on_saved_tensors."""
    q = torch.randn(2, 1, 1, 8, requires_grad=True) * 1
    (q * torch.randn(2, 1, 1, 8, requires_grad=True)).sum()
    mla_rope_q(q, COS[:, :4], SIN[:, :4], 4, 4)


class ReturnsAView(torch.autograd.Function):
    """A custom Function whose output is a view of a tensor its forward made (a common slip, and what
    fused_down_norm_up returned before the eighth pass): autograd forbids writing such an output in place."""

    @staticmethod
    def forward(ctx, x):
        return (x * 2).view(x.shape)

    @staticmethod
    def backward(ctx, grad):
        return grad * 2


class FloatConvertingToNaN(float):
    """A float whose conversion (``float(x)``, what the ops pass the kernels) gives NaN: its value compared as 0.1."""

    def __float__(self):
        return math.nan


REFUSED = {
    "q is not a tensor": lambda: mla_rope_q([[1.0]], COS, SIN, 4, 4),
    "missing block table": lambda: mla_decode(paged_case().q_lat, paged_case().q_pe, *paged_case().cache_args()[:2],
                                              None, paged_case().cache_seqlens, SCALE),
    "missing norm weight": lambda: fused_down_norm_up(torch.randn(3, 4), torch.randn(2, 4), torch.randn(5, 2), None,
                                                      1e-6),
    "negative qk_head_dim": lambda: mla_rope_q(torch.randn(2, 1, 1, 8), COS, SIN, qk_head_dim=-2, emb_dim=10),
    "zero heads": lambda: mla_rope_q(torch.randn(2, 1, 0, 8), COS[:, :4], SIN[:, :4], 4, 4),
    "bool cu_seqlens": lambda: mla_rope_q(thd_q(), COS[:, :4], SIN[:, :4], 4, 4, torch.tensor([0, 6]).bool()),
    "cu_seqlens not from 0": lambda: mla_rope_q(thd_q(), COS[:, :4], SIN[:, :4], 4, 4, torch.tensor([1, 3, 6])),
    "packed sequence past the table": lambda: mla_rope_q(thd_q(10), COS[:, :4], SIN[:, :4], 4, 4,
                                                         torch.tensor([0, 10])),
    "expanded q written in place": lambda: mla_rope_q(torch.randn(2, 1, 1, 8).expand(2, 3, 1, 8), COS[:, :4],
                                                      SIN[:, :4], 4, 4),
    "negative k_dim": lambda: mla_rope_kv(torch.randn(2, 1, 1, 6), torch.randn(2, 1, 1, 4), COS[:, :4], SIN[:, :4],
                                          4, -2, 8),
    "rank 0": lambda: fused_down_norm_up(torch.randn(3, 4), torch.randn(0, 4), torch.randn(5, 0), torch.ones(0), 1e-6),
    "bool slot_mapping": lambda: mla_cache_append(**append_case(torch.float32, torch.Generator(), True)[0]
                                                  | {"slot_mapping": torch.tensor([1, 0, 0, 0, 1]).bool()}),
    "append eps 0": lambda: mla_cache_append(**append_case(torch.float32, torch.Generator(), True)[0], eps=0.0),
    "zero heads in decode": lambda: mla_decode(paged_case().q_lat[:, :, :0], paged_case().q_pe[:, :, :0],
                                               *paged_case().cache_args(), SCALE),
    "more splits than 32-bit offsets reach": lambda: mla_decode(paged_case().q_lat, paged_case().q_pe,
                                                                *paged_case().cache_args(), SCALE, num_splits=2**30),
    "NaN softmax scale": lambda: mla_decode(paged_case().q_lat, paged_case().q_pe, *paged_case().cache_args(),
                                            math.nan),
    "length past the block table": lambda: mla_decode(
        paged_case().q_lat, paged_case().q_pe, *paged_case().cache_args()[:3], torch.tensor([5, 200],
                                                                                             dtype=torch.int32),
        SCALE),
    "wrong q_nope width for the decoder": lambda: AbsorbedMLADecoder(torch.randn(2 * (8 + 4), 32), 2, 8, 4, SCALE)(
        torch.randn(2, 1, 2, 7), paged_case().q_pe[:, :, :2], *paged_case().cache_args()),
    # Found by issue 16's adversarial pass: each raised another exception type, or ran with an answer that depended
    # on the backend.
    "meta tensors": lambda: mla_rope_q(torch.empty(2, 1, 1, 8, device="meta"), COS[:, :4].to("meta"),
                                       SIN[:, :4].to("meta"), 4, 4),
    "q a leaf that requires grad": lambda: mla_rope_q(torch.randn(2, 1, 1, 8, requires_grad=True), COS[:, :4],
                                                      SIN[:, :4], 4, 4),
    "q a view of a leaf that requires grad": lambda: mla_rope_q(torch.randn(2, 1, 1, 9, requires_grad=True)[..., 1:],
                                                                COS[:, :4], SIN[:, :4], 4, 4),
    "q one output of split": lambda: mla_rope_q((torch.randn(2, 1, 1, 16, requires_grad=True) * 1).split(8, -1)[0],
                                                COS[:, :4], SIN[:, :4], 4, 4),
    "q a view made under no_grad": lambda: mla_rope_q(view_made_without_grad(), COS[:, :4], SIN[:, :4], 4, 4),
    "q an inference tensor outside inference mode": lambda: mla_rope_q(inference_tensor((2, 1, 1, 8)), COS[:, :4],
                                                                       SIN[:, :4], 4, 4),
    "q whose tokens overlap": lambda: mla_rope_q(torch.randn(64).as_strided((3, 2, 1, 8), (2, 16, 8, 1)), COS[:, :4],
                                                 SIN[:, :4], 4, 4),
    "cos inside q": lambda: (lambda q: mla_rope_q(q, q.view(-1)[:32].view(8, 4), SIN[:, :4], 4, 4))(
        torch.randn(2, 2, 1, 8)),
    "sparse cos": lambda: mla_rope_q(torch.randn(2, 1, 1, 8), COS[:, :4].to_sparse(), SIN[:, :4].to_sparse(), 4, 4),
    "nested x": lambda: fused_down_norm_up(
        torch.nested.nested_tensor([torch.randn(3, 4), torch.randn(2, 4)], layout=torch.jagged), torch.randn(2, 4),
        torch.randn(5, 2), torch.ones(2), 1e-6),
    "missing k_pos_emb": lambda: mla_rope_kv(torch.randn(2, 1, 1, 6), None, COS[:, :4], SIN[:, :4], 4, 2, 4),
    "validate=1": lambda: mla_rope_q(thd_q(), COS[:, :4], SIN[:, :4], 4, 4, torch.tensor([0, 6]), validate=1),
    "eps that float32 rounds to 0": lambda: fused_down_norm_up(torch.zeros(3, 4), torch.randn(2, 4),
                                                               torch.randn(5, 2), torch.ones(2), 1e-50),
    "odd rope_dim to append": lambda: mla_cache_append(**append_case(torch.float32, torch.Generator(), True)[0] | {
        "k_pe": torch.randn(5, 3), "cos": torch.ones(8, 3), "sin": torch.zeros(8, 3),
        "kpe_cache": torch.zeros(3, 16, 3)}),
    "caches made in inference mode, appended outside it": lambda: mla_cache_append(
        **append_case(torch.float32, torch.Generator(), True)[0] | {"ckv_cache": inference_tensor((3, 16, 32)),
                                                                    "kpe_cache": inference_tensor((3, 16, 16))}),
    "two tokens in one slot": lambda: mla_cache_append(**append_case(torch.float32, torch.Generator(), True)[0]
                                                       | {"slot_mapping": torch.tensor([3, 3, -1, 17, 16])}),
    "c_kv read from the rows the append writes": lambda: (lambda args: mla_cache_append(
        **args | {"c_kv": args["ckv_cache"].view(-1, args["ckv_cache"].shape[-1])[16:21]}))(
        append_case(torch.float32, torch.Generator(), True)[0]),
    "kpe_cache inside ckv_cache": lambda: (lambda args: mla_cache_append(
        **args | {"kpe_cache": args["ckv_cache"].view(-1)[: args["kpe_cache"].numel()].view(args["kpe_cache"].shape)}))(
        append_case(torch.float32, torch.Generator(), True)[0]),
    "num_splits=True": lambda: mla_decode(paged_case().q_lat, paged_case().q_pe, *paged_case().cache_args(), SCALE,
                                          num_splits=True),
    "softmax_scale past float (10**400)": lambda: mla_decode(paged_case().q_lat, paged_case().q_pe,
                                                             *paged_case().cache_args(), 10**400),
    "softmax_scale=True": lambda: mla_decode(paged_case().q_lat, paged_case().q_pe, *paged_case().cache_args(), True),
    "no weight for the decoder": lambda: AbsorbedMLADecoder(None, 2, 8, 4, SCALE),
    "decoder built with a NaN scale": lambda: AbsorbedMLADecoder(torch.randn(2 * (8 + 4), 32), 2, 8, 4, math.nan),
    # Found by the second pass: the reference raised autograd's in-place error in backward (q) or gave cos/sin a
    # gradient the Triton backward does not (kv); inference tensors that autograd must keep raised its RuntimeError.
    "cos that requires grad": lambda: mla_rope_q(torch.randn(2, 1, 1, 8), COS[:, :4].requires_grad_(), SIN[:, :4],
                                                 4, 4),
    "sin that requires grad, for kv": lambda: mla_rope_kv(torch.randn(2, 1, 1, 6), torch.randn(2, 1, 1, 4),
                                                          COS[:, :4], SIN[:, :4].requires_grad_(), 4, 2, 4),
    "cos made in inference mode, q tracked": lambda: mla_rope_q(torch.randn(2, 1, 1, 8, requires_grad=True) * 1,
                                                                inference_tensor((8, 4)), SIN[:, :4], 4, 4),
    "cos made in inference mode, kv tracked": lambda: mla_rope_kv(
        torch.randn(2, 1, 1, 6, requires_grad=True), torch.randn(2, 1, 1, 4), inference_tensor((8, 4)), SIN[:, :4],
        4, 2, 4),
    "a decoder of bool weights": lambda: AbsorbedMLADecoder(torch.ones(2 * (8 + 4), 32, dtype=torch.bool), 2, 8, 4,
                                                            SCALE),
    "int weights to absorb": lambda: absorb_mla_weights(torch.ones(2 * (8 + 4), 32, dtype=torch.int64), 2, 8, 4),
    "weights made in inference mode, x tracked": lambda: fused_down_norm_up(
        torch.randn(3, 4, requires_grad=True), inference_tensor((2, 4)), torch.randn(5, 2), torch.ones(2), 1e-6),
    # Found by the third pass: a FakeTensor (torch.compile's tracing) or a vmap wrapper raised torch's own errors (or
    # was refused as "sharing memory": a null data pointer each), or ran on one backend only; a scale past float32's
    # largest over log2(e) became inf in the kernels (which fold log2(e) into it) and stayed finite in the reference.
    "FakeTensors": lambda: (lambda fake: mla_rope_kv(fake(torch.randn(2, 1, 1, 6)), fake(torch.randn(2, 1, 1, 4)),
                                                     fake(COS[:, :4]), fake(SIN[:, :4]), 4, 2, 4))(
        FakeTensorMode().from_tensor),
    "decode under vmap": lambda: (lambda case: torch.func.vmap(lambda q: mla_decode(q, case.q_pe, *case.cache_args(),
                                                                                    SCALE))(case.q_lat[None]))(
        paged_case()),
    "a latent of width 0 to absorb": lambda: AbsorbedMLADecoder(torch.randn(2 * (8 + 4), 0), 2, 8, 4, SCALE),
    "softmax_scale that log2(e) takes past float32": lambda: mla_decode(paged_case().q_lat, paged_case().q_pe,
                                                                        *paged_case().cache_args(), 3e38),
    # Found by the fourth pass: a subnormal eps, which the GPU kernels' flush-to-zero rsqrt reads as 0 (an all-zero
    # latent row would be NaN there, 0 in torch's).
    "subnormal eps to append": lambda: mla_cache_append(**append_case(torch.float32, torch.Generator(), True)[0],
                                                        eps=1e-40),
    "subnormal eps to down-norm-up": lambda: fused_down_norm_up(torch.zeros(3, 4), torch.randn(2, 4),
                                                                torch.randn(5, 2), torch.ones(2), 2.0**-127),
    # Found by the fifth pass: cu_seqlens checked in its own int32, where a drop of 2**31 or more wraps to a positive
    # step (0, 65536, ..., 2**31 - 65536, then -2**31: every step "at most 65536") and passed validation.
    "int32 cu_seqlens whose drop wraps": lambda: mla_rope_q(
        torch.randn(10, 1, 4), torch.ones(2**16, 2), torch.zeros(2**16, 2), 2, 2,
        torch.cat((torch.arange(0, 2**31 - 2**16 + 1, 2**16), torch.tensor([-(2**31)]))).int(), validate=True),
    # A lazy module's parameter before its first forward raised torch's own ValueError at the first check.
    "a lazy module's uninitialized weight": lambda: fused_down_norm_up(
        torch.randn(3, 4), torch.nn.LazyLinear(2).weight, torch.randn(5, 2), torch.ones(2), 1e-6),
    "a decoder of an uninitialized weight": lambda: AbsorbedMLADecoder(torch.nn.UninitializedParameter(), 2, 8, 4,
                                                                       SCALE),
    # `validate` was checked only where values were: bshd RoPE, an empty append or decode batch took any value.
    "validate=1 to bshd RoPE": lambda: mla_rope_kv(torch.randn(2, 1, 1, 6), torch.randn(2, 1, 1, 4), COS[:, :4],
                                                   SIN[:, :4], 4, 2, 4, validate=1),
    "validate='yes' to an empty append": lambda: mla_cache_append(**{
        name: value[:0] if name in ("c_kv", "k_pe", "positions", "slot_mapping") else value
        for name, value in append_case(torch.float32, torch.Generator(), True)[0].items()}, validate="yes"),
    "validate=0 to an empty decode batch": lambda: mla_decode(
        paged_case().q_lat[:0], paged_case().q_pe[:0], *paged_case().cache_args()[:2],
        paged_case().block_table[:0], paged_case().cache_seqlens[:0], SCALE, validate=0),
    # Found by the sixth pass: dispatch modes that stand in for torch's operators, with plain tensors passed in: a
    # FakeTensorMode made the reference fail in torch's own AssertionError (the Triton launch allocated outputs
    # without memory), make_fx's tracing ran the Triton kernels outside its graph (as torch.jit.trace would).
    "a FakeTensorMode around plain tensors": lambda: (lambda case: inside(FakeTensorMode, lambda: mla_decode(
        case.q_lat, case.q_pe, *case.cache_args(), SCALE)))(paged_case()),
    "make_fx's tracing of a call": lambda: make_fx(lambda q: mla_rope_q(q.clone(), COS[:, :4], SIN[:, :4], 4, 4))(
        torch.randn(2, 1, 1, 8)),
    # allow_mutation_on_saved_tensors clones a saved tensor when torch's ops write it; the Triton kernels write q and
    # the caches without one, so a backward that saved them would read the new values there.
    "q rotated under allow_mutation_on_saved_tensors": lambda: inside(
        torch.autograd.graph.allow_mutation_on_saved_tensors, saved_then_rotated),
    "an append under allow_mutation_on_saved_tensors": lambda: inside(
        torch.autograd.graph.allow_mutation_on_saved_tensors,
        lambda: mla_cache_append(**append_case(torch.float32, torch.Generator(), True)[0])),
    # A decoder's buffers reassigned: w_uv of one head was broadcast over every head (no error), one of another
    # latent width, dtype or rank raised torch's einsum, unpacking or attribute errors.
    "a decoder whose w_uv holds one head": decoder_with(w_uv=lambda w_uv: w_uv[:1]),
    "a decoder whose w_uv has another latent width": decoder_with(w_uv=lambda w_uv: torch.randn(4, 33, 4)),
    "a decoder whose w_uv is float64": decoder_with(w_uv=lambda w_uv: w_uv.double()),
    "a decoder whose w_uk is 2-D": decoder_with(w_uk=lambda w_uk: w_uk[0]),
    # Module.to casts buffers to any float dtype: a float8 decoder and query raised torch's NotImplementedError.
    "a decoder cast to float8 by Module.to": lambda: (lambda case: AbsorbedMLADecoder(
        torch.randn(4 * (8 + 4), 32), 4, 8, 4, SCALE).to(torch.float8_e4m3fn)(
        torch.randn(2, 1, 4, 8).to(torch.float8_e4m3fn), case.q_pe, *case.cache_args()))(paged_case()),
    # The checks compared the value, the ops passed float(value) on: a NaN scale or eps reached the kernels.
    "a softmax_scale whose __float__ gives NaN": lambda: mla_decode(paged_case().q_lat, paged_case().q_pe,
                                                                    *paged_case().cache_args(),
                                                                    FloatConvertingToNaN(0.1)),
    "an eps whose __float__ gives NaN": lambda: fused_down_norm_up(torch.zeros(3, 4), torch.randn(2, 4),
                                                                   torch.randn(5, 2), torch.ones(2),
                                                                   FloatConvertingToNaN(1e-6)),
    # The eighth pass: backend was compared with ``in``, which a NumPy array of two names answers elementwise (its
    # ValueError, "truth value ... is ambiguous"); an array of one name passed as that name.
    "a NumPy array of backend names": lambda: mla_rope_q(torch.randn(2, 1, 1, 8), COS[:, :4], SIN[:, :4], 4, 4,
                                                         backend=np.array(["torch", "triton"])),
    "a NumPy array of one backend name": lambda: mla_rope_q(torch.randn(2, 1, 1, 8), COS[:, :4], SIN[:, :4], 4, 4,
                                                            backend=np.array(["torch"])),
    # A view into a storage freed by resize_(0) (FSDP's resharded parameters) has a data pointer past null: the
    # reference's views raised torch's RuntimeError ("setStorage: ... out of bounds"), the kernels read the address.
    "cos whose storage was freed": lambda: mla_rope_q(torch.randn(2, 1, 1, 8), view_into_a_freed_storage(COS[:, :4]),
                                                      SIN[:, :4], 4, 4),
    # Refused before too, as "a view of a leaf that requires grad" (its base is a leaf that does not): named now.
    "q a view a custom Function returned": lambda: mla_rope_q(
        ReturnsAView.apply(torch.randn(2, 1, 1, 8, requires_grad=True)), COS[:, :4], SIN[:, :4], 4, 4),
    # Construction takes meta and fake weights (no memory check): a freed one raised torch's RuntimeError there.
    "a freed weight to absorb": lambda: absorb_mla_weights(view_into_a_freed_storage(torch.randn(2 * 12, 32)), 2, 8, 4),
    "a decoder of a freed weight at offset 0": lambda: AbsorbedMLADecoder(
        view_into_a_freed_storage(torch.randn(2 * 12, 32), 0), 2, 8, 4, SCALE),
}  # fmt: skip


@pytest.mark.parametrize("name", REFUSED)
def test_refused_with_kernel_input_error(name):
    with pytest.raises(KernelInputError):
        REFUSED[name]()


def test_empty_batch_decodes_to_empty_outputs():
    case = paged_case()
    out, lse = mla_decode(case.q_lat[:0], case.q_pe[:0], case.ckv_cache, case.kpe_cache, case.block_table[:0],
                          case.cache_seqlens[:0], SCALE)  # fmt: skip
    assert out.shape == (0, 1, 4, case.q_lat.shape[-1]) and lse.shape == (0, 1, 4)


def test_nan_rows_past_the_lengths_stay_out_of_the_reference_decode():
    case = paged_case()
    out, lse = mla_decode(case.q_lat, case.q_pe, *case.cache_args(), SCALE)
    for row, length in enumerate(case.lengths):  # poison every row past the sequence's length in its pages
        blocks = case.block_table[row][case.block_table[row] >= 0].long()
        slots = (blocks[:, None] * 16 + torch.arange(16)).flatten()[length:]
        case.ckv_cache.view(-1, case.ckv_cache.shape[-1])[slots] = math.nan
        case.kpe_cache.view(-1, ROPE)[slots] = math.nan

    poisoned_out, poisoned_lse = mla_decode(case.q_lat, case.q_pe, *case.cache_args(), SCALE)

    torch.testing.assert_close(poisoned_out, out)
    torch.testing.assert_close(poisoned_lse, lse)


def test_unvalidated_values_on_the_cpu_stay_inside_the_cache():
    args, _ = append_case(torch.float32, torch.Generator().manual_seed(5), True)
    before = args["ckv_cache"].clone()
    args["slot_mapping"] = torch.tensor([10**6, 3, -1, 17, 16], dtype=torch.int32)  # the first slot past the cache

    with pytest.raises(KernelInputError, match="slot_mapping holds slot 1000000"):
        mla_cache_append(**args)
    mla_cache_append(**args, validate=False)  # skipped, not written anywhere

    changed = (args["ckv_cache"] != before).flatten(0, 1).any(-1).nonzero().flatten().tolist()
    assert changed == [3, 16, 17]


def test_append_keeps_the_caches_out_of_autograd():
    """A c_kv that requires grad (an append outside torch.no_grad) left the reference's caches graph nodes, so
    the next append refused them; the kernel never did."""
    args, _ = append_case(torch.float64, torch.Generator().manual_seed(6), True)
    args["c_kv"].requires_grad_()

    mla_cache_append(**args)
    mla_cache_append(**args)

    assert not args["ckv_cache"].requires_grad and args["ckv_cache"].is_leaf


def test_decode_is_not_differentiable_on_either_backend():
    case = paged_case()
    out, lse = mla_decode(case.q_lat.requires_grad_(), case.q_pe, *case.cache_args(), SCALE, backend="torch")
    assert not out.requires_grad and not lse.requires_grad


def test_empty_batch_lse_has_the_dtype_of_a_full_one():
    case = PagedCase([5, 40], 16, torch.float64, torch.Generator().manual_seed(3))
    _, lse = mla_decode(case.q_lat, case.q_pe, *case.cache_args(), SCALE)
    _, empty_lse = mla_decode(case.q_lat[:0], case.q_pe[:0], case.ckv_cache, case.kpe_cache, case.block_table[:0],
                              case.cache_seqlens[:0], SCALE)  # fmt: skip
    assert empty_lse.dtype == lse.dtype == torch.float64


def test_a_second_derivative_through_fused_down_norm_up_is_refused_not_wrong():
    """Its backward keeps rstd without a graph: a second derivative was silently wrong (gradgradcheck failed)."""
    inputs = [torch.randn(shape, dtype=torch.float64, requires_grad=True) for shape in ((3, 5), (4, 5), (6, 4), (4,))]
    out = fused_down_norm_up(*inputs, 1e-6, backend="torch")
    grads = torch.autograd.grad(out.square().sum(), inputs, create_graph=True)
    with pytest.raises(RuntimeError):  # a gradient penalty's backward
        torch.autograd.grad(grads[0].square().sum(), inputs)


def test_inputs_that_only_read_one_tensor_may_share_it():
    """Megatron's down-projection gives c_kv and k_pe as two views of one [T, rank + rope] tensor: reads may
    share memory, only a written tensor may not."""
    args, _ = append_case(torch.float32, torch.Generator().manual_seed(7), True)
    expected = {name: args[name].clone() for name in ("ckv_cache", "kpe_cache")}
    mla_cache_append(**args | expected)
    rows = torch.cat((args["c_kv"], args["k_pe"]), -1)

    mla_cache_append(**args | {"c_kv": rows[:, : args["c_kv"].shape[1]], "k_pe": rows[:, args["c_kv"].shape[1] :]})

    assert torch.equal(args["ckv_cache"], expected["ckv_cache"])
    assert torch.equal(args["kpe_cache"], expected["kpe_cache"])
    table = torch.randn(12, 4)
    assert mla_rope_q(torch.randn(0, 1, 1, 8), table[:8], table[4:], 4, 4).shape == (0, 1, 1, 8)


def test_rope_kv_value_is_a_new_tensor_even_for_one_token():
    """kv[..., k_dim:] of one token and one head is contiguous: the reference returned it, a view of kv."""
    kv = torch.randn(1, 1, 1, 6)
    _, value = mla_rope_kv(kv, torch.randn(1, 1, 1, 4), COS[:, :4], SIN[:, :4], 4, 2, 4)
    value.zero_()
    assert kv[..., 2:].abs().sum() > 0


def test_absorbed_weights_are_copies_even_for_one_head():
    """One head's key rows of w_kv_up are contiguous: w_uk was a view of the trained weight, w_uv a copy."""
    w_kv_up = torch.randn(8 + 4, 32)
    weights = absorb_mla_weights(w_kv_up, 1, 8, 4)
    w_kv_up.zero_()
    assert weights.w_uk.abs().sum() > 0 and weights.w_uv.abs().sum() > 0


def test_a_decoder_builds_on_the_meta_device():
    """Meta tensors hold no values, so the ops refuse them; a model built on the meta device (to be materialized
    later) still builds its decoder."""
    decoder = AbsorbedMLADecoder(torch.empty(2 * (8 + 4), 32, device="meta"), 2, 8, 4, SCALE)
    assert decoder.w_uk.shape == (2, 8, 32) and decoder.w_uk.is_meta


def test_tables_and_weights_made_in_inference_mode_serve_untracked_calls():
    """The refusals above are for tracked calls only: under no_grad, nothing is saved for backward."""
    q = torch.randn(2, 1, 1, 8, requires_grad=True) * 1
    with torch.no_grad():
        mla_rope_q(q, inference_tensor((8, 4)), SIN[:, :4], 4, 4)
    out = fused_down_norm_up(torch.randn(3, 4), inference_tensor((2, 4)), torch.randn(5, 2), torch.ones(2), 1e-6)
    assert out.shape == (3, 5)


def test_a_row_whose_every_score_is_minus_inf_decodes_to_zeros_as_the_kernels_do():
    """The reference subtracted lse = -inf from -inf scores (NaN output) where the kernels, which subtract 0 where the
    running max is -inf, write zeros: the two backends disagreed."""
    case = paged_case()
    case.kpe_cache.fill_(1.0)
    case.q_pe[0] = -math.inf  # every score of sequence 0 is -inf; sequence 1 stays finite
    out, lse = mla_decode(case.q_lat, case.q_pe, *case.cache_args(), SCALE, backend="torch")
    assert torch.equal(out[0], torch.zeros_like(out[0])) and lse[0].isneginf().all()
    assert out[1].isfinite().all() and lse[1].isfinite().all()


def test_numpy_scales_and_eps_are_taken_as_python_floats():
    """A NumPy float32 scale or eps was refused as "not a finite number that float32 holds" (a NumPy float64,
    a float subclass, was taken): every real number is now taken, as a Python float."""
    case = paged_case()
    expected = mla_decode(case.q_lat, case.q_pe, *case.cache_args(), 0.125)
    got = mla_decode(case.q_lat, case.q_pe, *case.cache_args(), np.float32(0.125))
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert AbsorbedMLADecoder(torch.randn(2 * (8 + 4), 32), 2, 8, 4, np.float32(0.5)).softmax_scale == 0.5
    x, weights = torch.randn(3, 4), (torch.randn(2, 4), torch.randn(5, 2), torch.ones(2))
    torch.testing.assert_close(fused_down_norm_up(x, *weights, np.float32(0.5)), fused_down_norm_up(x, *weights, 0.5),
                               rtol=0, atol=0)  # fmt: skip
    with pytest.raises(KernelInputError, match="softmax_scale"):  # NumPy's bool is no number either
        mla_decode(case.q_lat, case.q_pe, *case.cache_args(), np.bool_(True))


def test_autocast_leaves_the_ops_in_their_inputs_dtypes():
    """Inside torch.autocast the reference decode ran its products in bfloat16 (lse bfloat16, 6e-3 from the kernels,
    which autocast never reaches), a decoder's absorbed query came out bfloat16 and was refused against float32
    caches, and fused_down_norm_up's backward raised torch's dtype error: float32 inputs stay float32 inside."""
    case = paged_case()
    decoder = AbsorbedMLADecoder(torch.randn(4 * (8 + 4), 32), 4, 8, 4, SCALE)
    q_nope = torch.randn(2, 1, 4, 8)
    inputs = [torch.randn(shape, requires_grad=True) for shape in ((3, 4), (2, 4), (5, 2), (2,))]

    def run():
        out = fused_down_norm_up(*inputs, 1e-6)
        grads = torch.autograd.grad(out.square().sum(), inputs)
        return (*mla_decode(case.q_lat, case.q_pe, *case.cache_args(), SCALE),
                decoder(q_nope, case.q_pe, *case.cache_args()), out, *grads)  # fmt: skip

    expected = run()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = run()
    for value, want in zip(got, expected, strict=True):
        assert value.dtype == want.dtype == torch.float32
        torch.testing.assert_close(value, want, rtol=0, atol=0)


def test_torch_jit_trace_is_refused_by_name():
    """Traced, every size is a tensor: each op refused it as "heads must be a positive integer, got tensor(2)" (and a
    trace would never record a Triton launch)."""
    case = paged_case()
    with pytest.raises(KernelInputError, match="torch.jit.trace"):
        torch.jit.trace(lambda q: mla_decode(q, case.q_pe, *case.cache_args(), SCALE), (case.q_lat,))
    with pytest.raises(KernelInputError, match="torch.jit.trace"):
        torch.jit.trace(lambda q: mla_rope_q(q.clone(), COS[:, :4], SIN[:, :4], 4, 4), (torch.randn(2, 1, 1, 8),))


def test_a_decoder_built_in_inference_mode_serves_a_query_that_requires_grad():
    """A decoder built under torch.inference_mode() (a serving process) and a q_nope that requires grad: recording the
    absorbed query's product saved w_uk, and autograd raised "Inference tensors cannot be saved for backward". The
    output never requires grad (as mla_decode's), so nothing is recorded."""
    case = paged_case()
    w_kv_up = torch.randn(4 * (8 + 4), 32)
    with torch.inference_mode():
        served = AbsorbedMLADecoder(w_kv_up, 4, 8, 4, SCALE)
    q_nope = torch.randn(2, 1, 4, 8)

    out = served(q_nope.clone().requires_grad_(), case.q_pe, *case.cache_args())

    assert not out.requires_grad
    torch.testing.assert_close(out, AbsorbedMLADecoder(w_kv_up, 4, 8, 4, SCALE)(q_nope, case.q_pe, *case.cache_args()),
                               rtol=0, atol=0)  # fmt: skip


def test_int32_offsets_index_a_table_of_2_to_the_31_rows_or_more():
    """Packed positions were clamped to the table's last row in cu_seqlens' own dtype: an expanded table of 2**31 rows
    or more (no memory) raised torch's RuntimeError with int32 offsets on every backend. Positions are the same as
    with a short table; the Triton backend refuses such a table by its size (triton_interpreted_cases.py)."""
    q, offsets = torch.randn(6, 2, 8), torch.tensor([0, 2, 6], dtype=torch.int32)
    expected = mla_rope_q(q.clone(), COS[:, :4], SIN[:, :4], 4, 4, offsets)
    cos, sin = (table[:1, :4].expand(2**31 + 8, 4) for table in (COS, SIN))

    got = mla_rope_q(q.clone(), cos, sin, 4, 4, offsets)

    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_dispatch_modes_that_see_torchs_operators_pass():
    """Only the modes that stand in for torch's operators are refused: under a FLOP counter, which sees the ops,
    the results are eager's."""
    case = paged_case()
    expected = mla_decode(case.q_lat, case.q_pe, *case.cache_args(), SCALE)
    with FlopCounterMode(display=False):
        got = mla_decode(case.q_lat, case.q_pe, *case.cache_args(), SCALE)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
