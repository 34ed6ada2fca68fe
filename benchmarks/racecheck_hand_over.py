"""The seesaw decode kernel's warpgroup hand-over in a few lines of Gluon, for compute-sanitizer's racecheck.

The seesaw kernel (``runtime/kernels/absorbed_decode/gluon_seesaw.py``) passes each tile's row maxima and, at a
segment's end, its row sums from one consumer warpgroup to the other through shared memory: the writer's 128
threads store, fence, ``bar.sync`` their warpgroup, one thread arrives on an mbarrier; the reader waits on it (by
phase), then loads. racecheck reports hazards there although every output matches float64 (benchmarks/RESULTS.md,
fifteenth and sixteenth passes). Each variant below is that pattern stripped to one slot or two, launched once,
its output checked; run each under the sanitizer:

    compute-sanitizer --tool racecheck --racecheck-report analysis python benchmarks/racecheck_hand_over.py VARIANT

Variants: ``hand-over`` (one slot, one element a thread, as ``_hand_over``), ``no-fence`` (the same without the
fence), ``no-wait`` (the reader does not wait: a real race, the control), ``rounds`` (four rounds through one slot,
the reader's release waited by phase before each overwrite), ``exchange`` (each warpgroup writes one slot and reads
the other, four rounds, each overwrite ordered through the other direction's barrier: the seesaw's exchange) and
``exchange-rows`` (the same with the row vectors of a 2-D layout, replicated across threads, as the seesaw's
maxima and sums are). Prints ``VARIANT: output right`` or ``wrong``. Needs a Hopper GPU and Triton's Gluon.

On the H200 (compute-sanitizer 2025.3.1, Triton 3.6, 2026-12-02): every variant reports one hazard in the kernel's
prologue (its definition and ``warp_specialize`` lines: Triton's own set-up, as the seesaw kernel's); beyond it,
only ``exchange-rows`` reports the exchange (32 hazards), although its synchronization is ``exchange``'s, line for
line, and both outputs are right; ``no-wait``, whose output is wrong when run plainly, reports nothing beyond the
prologue under the sanitizer (its timing hides the race).
"""

import sys

import torch
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import fence_async_shared, mbarrier

ROUNDS = gl.constexpr(4)
# (kernel, FENCE, WAIT, REPLICATED) per variant
VARIANTS = {
    "hand-over": ("hand_over", True, True, False),
    "no-fence": ("hand_over", False, True, False),
    "no-wait": ("hand_over", True, False, False),
    "rounds": ("rounds", True, True, False),
    "exchange": ("exchange", True, True, False),
    "exchange-rows": ("exchange", True, True, True),
}


@gluon.constexpr_function
def _layout(replicated):
    """64 values over one warpgroup (128 threads): a 1-D layout (each value held by two threads, in two warps), or
    the rows of a 2-D layout (each value held by the 8 lanes of one warp that share a row)."""
    if replicated:
        return gl.SliceLayout(1, gl.BlockedLayout([1, 1], [4, 8], [4, 1], [1, 0]))
    return gl.BlockedLayout([1], [32], [4], [0])


@gluon.jit
def _write(slot, ready, FENCE: gl.constexpr, REPLICATED: gl.constexpr, offset):
    slot.store(gl.arange(0, 64, layout=_layout(REPLICATED)).to(gl.float32) + offset)
    if FENCE:
        fence_async_shared()
    mbarrier.arrive(ready)


@gluon.jit
def _read(slot, ready, phase, OUT, WAIT: gl.constexpr, REPLICATED: gl.constexpr):
    if WAIT:
        mbarrier.wait(ready, phase)
    values = slot.load(_layout(REPLICATED))
    gl.store(OUT + gl.arange(0, 64, layout=_layout(REPLICATED)), values)
    return values


@gluon.jit
def _hand_over_writer(slots, bars, OUT, FENCE: gl.constexpr, WAIT: gl.constexpr, REPLICATED: gl.constexpr):
    _write(slots.index(0), bars.index(0), FENCE, REPLICATED, 0.0)


@gluon.jit
def _hand_over_reader(slots, bars, OUT, FENCE: gl.constexpr, WAIT: gl.constexpr, REPLICATED: gl.constexpr):
    _read(slots.index(0), bars.index(0), 0, OUT, WAIT, REPLICATED)


@gluon.jit
def _rounds_writer(slots, bars, OUT, FENCE: gl.constexpr, WAIT: gl.constexpr, REPLICATED: gl.constexpr):
    for r in range(ROUNDS):
        if r > 0:
            mbarrier.wait(bars.index(1), (r - 1) & 1)  # the reader is done with the previous round's values
        _write(slots.index(0), bars.index(0), FENCE, REPLICATED, 100.0 * r)


@gluon.jit
def _rounds_reader(slots, bars, OUT, FENCE: gl.constexpr, WAIT: gl.constexpr, REPLICATED: gl.constexpr):
    for r in range(ROUNDS):
        _read(slots.index(0), bars.index(0), r & 1, OUT + r * 64, WAIT, REPLICATED)
        mbarrier.arrive(bars.index(1))


@gluon.jit
def _exchange_first(slots, bars, OUT, FENCE: gl.constexpr, WAIT: gl.constexpr, REPLICATED: gl.constexpr):
    """Its values for the other warpgroup, then the other's (each round)."""
    for r in range(ROUNDS):
        _write(slots.index(0), bars.index(0), FENCE, REPLICATED, 100.0 * r)
        _read(slots.index(1), bars.index(1), r & 1, OUT + r * 64, WAIT, REPLICATED)


@gluon.jit
def _exchange_second(slots, bars, OUT, FENCE: gl.constexpr, WAIT: gl.constexpr, REPLICATED: gl.constexpr):
    for r in range(ROUNDS):
        mbarrier.wait(bars.index(0), r & 1)
        values = slots.index(0).load(_layout(REPLICATED))
        slots.index(1).store(values + 1.0)
        if FENCE:
            fence_async_shared()
        mbarrier.arrive(bars.index(1))


@gluon.jit
def _allocate():
    """Two 64-value slots and their two barriers (the seesaw's ``stats`` and ``TILE_READY`` pairs)."""
    slots = gl.allocate_shared_memory(gl.float32, [2, 64], gl.SwizzledSharedLayout(1, 1, 1, [0]))
    bars = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    mbarrier.init(bars.index(0), count=1)
    mbarrier.init(bars.index(1), count=1)
    fence_async_shared()
    return slots, bars


# The partitions' arguments are written out in each call: a tuple bound to a name first reaches them as tensors, so
# that FENCE, WAIT and REPLICATED would no longer be compile-time constants (Triton 3.6 and 3.8).


@gluon.jit
def hand_over(OUT, FENCE: gl.constexpr, WAIT: gl.constexpr, REPLICATED: gl.constexpr):
    slots, bars = _allocate()
    gl.warp_specialize([(_hand_over_writer, (slots, bars, OUT, FENCE, WAIT, REPLICATED)),
                        (_hand_over_reader, (slots, bars, OUT, FENCE, WAIT, REPLICATED))], [4], [168])  # fmt: skip


@gluon.jit
def rounds(OUT, FENCE: gl.constexpr, WAIT: gl.constexpr, REPLICATED: gl.constexpr):
    slots, bars = _allocate()
    gl.warp_specialize([(_rounds_writer, (slots, bars, OUT, FENCE, WAIT, REPLICATED)),
                        (_rounds_reader, (slots, bars, OUT, FENCE, WAIT, REPLICATED))], [4], [168])  # fmt: skip


@gluon.jit
def exchange(OUT, FENCE: gl.constexpr, WAIT: gl.constexpr, REPLICATED: gl.constexpr):
    slots, bars = _allocate()
    gl.warp_specialize([(_exchange_first, (slots, bars, OUT, FENCE, WAIT, REPLICATED)),
                        (_exchange_second, (slots, bars, OUT, FENCE, WAIT, REPLICATED))], [4], [168])  # fmt: skip


KERNELS = {"hand_over": hand_over, "rounds": rounds, "exchange": exchange}


def expected_output(kernel: str) -> torch.Tensor:
    """What the reader stores: each round's 64 values (``exchange``: the first warpgroup's, plus one)."""
    values = torch.arange(64, dtype=torch.float32, device="cuda")
    if kernel == "hand_over":
        return values
    return torch.cat([values + 100.0 * r + (kernel == "exchange") for r in range(ROUNDS.value)])


def main(variants: list[str]) -> None:
    for variant in variants or list(VARIANTS):
        kernel, fence, wait, replicated = VARIANTS[variant]
        expected = expected_output(kernel)
        out = torch.full_like(expected, -1.0)
        KERNELS[kernel][(1,)](out, FENCE=fence, WAIT=wait, REPLICATED=replicated, num_warps=4)
        torch.cuda.synchronize()
        print(f"{variant}: output {'right' if torch.equal(out, expected) else 'wrong'}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
