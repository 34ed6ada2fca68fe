"""The Hopper decode kernels (Gluon; the seesaw form for a 64-wide rope): compiled for sm_90 on any machine, run
against the reference on an H100 or H200.

Gluon has no interpreter, so on the CPU the kernel is compiled to a cubin (Triton ships ptxas) and its resources
are checked; the GPU tests run it only where it can run (sm_90) and skip elsewhere.
"""

import re
import subprocess
from pathlib import Path

import pytest
import torch
from decode_case_inputs import SCALE, PagedCase, decode_from_math
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_property_cases import PROPERTY, check_decode_case, examples, hopper_decode_cases
from kernels_case_inputs import TOLERANCE, relative_error

triton = pytest.importorskip("triton")
gluon_kernels = pytest.importorskip("seamfix.runtime.kernels.absorbed_decode.gluon_kernels")
from hopper_compile import compile_in_child  # noqa: E402

from seamfix.runtime.kernels import mla_decode  # noqa: E402
from seamfix.runtime.kernels.absorbed_decode.triton_ops import (  # noqa: E402
    HOPPER_SHARED_MEMORY,
    DecodeTiles,
    cache_rows,
    decode,
    gluon_shared_memory,
    seesaw_shared_memory,
)

# The narrow kernel's stack frame as compiled for sm_90a (16 rows: spills outside its tile loop, 96 bytes with Triton
# 3.6, 240 with 3.8; 32 rows in two warpgroups: none; in one warpgroup 496-824): a bound that catches the loop's
# registers spilling, besides the check for local memory between its products.
NARROW_STACK_BYTES = 256
BUFFERINGS = {"64-token tiles, 2 buffers": (64, 2), "32-token tiles, 4 buffers": (32, 4)}


def compiled_shared_memory(block_n, stages, rank=512, rope=64, page=64, ptx=None):
    constants = {"PAGE": page, "RANK": rank, "ROPE": rope, "BLOCK_H": 64, "BLOCK_N": block_n, "BLOCK_B": 128,
                 "CAUSAL": True, "STAGES": stages}  # fmt: skip
    return compile_in_child("gluon", "bf16", constants, ptx, num_warps=8)


NVIDIA_TOOLS = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"


def assemble(ptx, tmp_path):
    """ptxas's report and the machine code (SASS) of the kernel."""
    cubin = tmp_path / "decode.cubin"
    report = subprocess.run([NVIDIA_TOOLS / "ptxas", "-v", "--gpu-name", "sm_90a", ptx, "-o", cubin],
                            capture_output=True, text=True, check=True).stderr  # fmt: skip
    sass = subprocess.run([NVIDIA_TOOLS / "cuobjdump", "-sass", cubin], capture_output=True, text=True, check=True)
    return report, sass.stdout


def stack_frame(report: str) -> int:
    """Bytes of the kernel's stack frame in ptxas's report (spilled registers live there)."""
    return int(re.search(r"(\d+) bytes stack frame", report).group(1))


@pytest.mark.parametrize("bufferings", BUFFERINGS)
def test_kernel_compiles_for_hopper_within_one_multiprocessors_shared_memory(bufferings, tmp_path):
    tokens, stages = BUFFERINGS[bufferings]
    shared = compiled_shared_memory(tokens, stages, ptx=tmp_path / "decode.ptx")

    assert shared <= gluon_shared_memory(512, 64, tokens=tokens, stages=stages)
    assert shared <= HOPPER_SHARED_MEMORY
    report, sass = assemble(tmp_path / "decode.ptx", tmp_path)
    # ptxas serializes every warpgroup MMA of the kernel when registers of one in flight are rewritten.
    assert "C7515" not in report, report
    assert len(re.findall(r"\bHGMMA\b", sass)) >= 2
    assert not counting_async_arrivals((tmp_path / "decode.ptx").read_text())


def counting_async_arrivals(ptx: str) -> list[str]:
    """``cp.async.mbarrier.arrive`` without ``.noinc``: an arrival that first raises the barrier's pending count,
    past the count it was initialized with where other threads arrive on it too. compute-sanitizer's synccheck
    reports that as a barrier overflow and stops the kernel (the seesaw kernel's row-copied tiles under TMA did,
    on an H200), so a serving stack checked with it could not run the decode."""
    return re.findall(r"cp\.async\.mbarrier\.arrive(?!\.noinc)\S*", ptx)


# (rank, page, TMA): whole tiles by TMA in pages of 64 and 128 tokens, row by row (pages of 16, other layouts).
SEESAW_BUILDS = [(512, 64, True), (512, 16, False), (128, 128, True)]
# The seesaw kernel's stack frame as compiled for sm_90a, its loader's spills: 264-424 bytes at rank 512 with the
# loader's 40 registers (Triton 3.6 and 3.8), 504-696 with the 24 it had (benchmarks/RESULTS.md, twelfth pass).
SEESAW_STACK_BYTES = 464


@pytest.mark.parametrize("rank, page, tma", SEESAW_BUILDS)
def test_seesaw_kernel_compiles_for_hopper_within_its_shared_memory_estimate(rank, page, tma, tmp_path):
    constants = {"PAGE": page, "RANK": rank, "ROPE": 64, "BLOCK_H": 64, "BLOCK_N": 64, "BLOCK_B": 128, "CAUSAL": True,
                 "TMA": tma}  # fmt: skip
    shared = compile_in_child("gluon_seesaw", "bf16", constants, tmp_path / "decode.ptx", num_warps=4)

    assert shared <= seesaw_shared_memory(rank, 64) < shared + 2048
    assert shared <= HOPPER_SHARED_MEMORY
    report, sass = assemble(tmp_path / "decode.ptx", tmp_path)
    assert "Performance Loss" not in report, report  # no serialized warpgroup MMA (C7514, C7515)
    assert stack_frame(report) <= SEESAW_STACK_BYTES, report
    assert len(re.findall(r"\bHGMMA\b", sass)) >= 2
    # Per buffer part: the latent half in 64-column boxes, plus the rope rows in the second part.
    ptx = (tmp_path / "decode.ptx").read_text()
    tensor_copies = len(re.findall(r"cp\.async\.bulk\.tensor", ptx))
    assert tensor_copies == (2 * (rank // 64) + 2 if tma else 0)
    assert not global_loads_between_waits_and_tensor_copies(ptx)
    assert not counting_async_arrivals(ptx)


def global_loads_between_waits_and_tensor_copies(ptx: str) -> list[str]:
    """Global loads the PTX places after a barrier wait and before the next tensor-memory copy: the loader reads a
    tile's page from the block table before it waits for the buffer, so that the table's round trip through L2 is
    not on the refill's path (benchmarks/RESULTS.md, twelfth pass)."""
    between, pending = [], []
    for line in ptx.splitlines():
        if "mbarrier.try_wait" in line:
            pending = []
        elif re.search(r"\bld\.global", line):
            pending.append(line.strip())
        elif "cp.async.bulk.tensor" in line:
            between += pending
            pending = []
    return between


def separate_rows(device="cpu"):
    """One latent row and one rope row, [1, 1, width] each, to expand into caches whose every row is the same."""
    return (torch.randn(1, 1, 512, device=device).bfloat16(), torch.randn(1, 1, 64, device=device).bfloat16())


def overlapping_rows(device="cpu", num_blocks=3):
    """Caches of pages of 64 rows 128 elements apart, 512 and 64 wide: each latent row overlaps the next three."""
    memory = torch.randn(num_blocks * 64 * 128 + 512, device=device).bfloat16()
    return memory.as_strided((num_blocks, 64, 512), (64 * 128, 128, 1)), memory[:64].expand(num_blocks, 64, 64)


def test_cache_rows_describe_whole_tiles_in_consecutive_blocks_only():
    """TMA descriptors where a page is whole 64-token tiles and blocks follow one another in rows (separate caches,
    FlashMLA's 576-wide rows read in place, pages of 128); None (the row-by-row copies) for pages of 16 or 32, a
    gap between blocks, or a base off 16 bytes."""

    def caches(rows):
        return rows[..., :512], rows[..., 512:]

    flash_mla = torch.zeros(3, 64, 576, dtype=torch.bfloat16)
    separate = (torch.zeros(3, 128, 512, dtype=torch.bfloat16), torch.zeros(3, 128, 64, dtype=torch.bfloat16))
    gap = torch.zeros(3, 80, 576, dtype=torch.bfloat16)[:, :64]
    shifted = torch.zeros(3 * 64 * 576 + 4, dtype=torch.bfloat16)[4:].view(3, 64, 576)

    rows = cache_rows(*caches(flash_mla), 64)
    assert [d.shape for d in rows] == [[192, 512], [192, 64]] and [d.strides for d in rows] == [[576, 1]] * 2
    assert cache_rows(*separate, 64)[0].shape == [384, 512]
    assert cache_rows(*caches(torch.zeros(3, 16, 576, dtype=torch.bfloat16)), 64) is None
    assert cache_rows(*caches(gap), 64) is None
    assert cache_rows(*caches(shifted), 64) is None
    # The sixth bad-input pass: rows that repeat (an expanded cache, row stride 0) or overlap (a row stride under the
    # row's width) passed as whole rows; the driver's tensor map is documented for strides that count whole rows.
    assert cache_rows(*(cache.expand(3, 64, -1) for cache in separate_rows()), 64) is None
    assert cache_rows(*overlapping_rows(), 64) is None


def tile_loop(sass: str) -> list[str]:
    """The instructions of the narrow kernel's tile loop: from the head of the loop whose back-edge follows the
    last warpgroup MMA to that branch, so the refill's copies after the last product are inside."""
    lines = [line for line in sass.splitlines() if re.search(r"/\*[0-9a-f]{4}\*/", line)]
    address = [int(re.search(r"/\*([0-9a-f]{4})\*/", line).group(1), 16) for line in lines]
    mma = [at for at, line in zip(address, lines, strict=True) if re.search(r"\bHGMMA\b", line)]
    back_edges = [(int(target.group(1), 16), at) for at, line in zip(address, lines, strict=True)
                  if (target := re.search(r"\bBRA\s+(?:`\()?0x([0-9a-f]+)", line))]  # fmt: skip
    head, end = min(((head, at) for head, at in back_edges if head <= mma[0] and at >= mma[-1]),
                    key=lambda edge: edge[1] - edge[0])  # fmt: skip
    return [line for at, line in zip(address, lines, strict=True) if head <= at <= end]


# (rank, rope, rows, warps, BLOCK_B): the B128 launches, and B4's (ptxas allocates differently there: with a cache
# row's page computed per row, Triton 3.6 spilled inside the refill at B4 only; benchmarks/RESULTS.md, tenth pass).
NARROW_BUILDS = [(512, 64, 16, 4, 128), (512, 64, 16, 4, 4), (128, 32, 16, 4, 128), (512, 64, 32, 8, 128)]


@pytest.mark.parametrize("rank, rope, rows, warps, batch_block", NARROW_BUILDS)
def test_narrow_kernel_compiles_for_hopper_within_its_shared_memory_estimate(rank, rope, rows, warps, batch_block,
                                                                            tmp_path):  # fmt: skip
    constants = {"PAGE": 64, "RANK": rank, "ROPE": rope, "BLOCK_H": rows, "BLOCK_N": 64, "BLOCK_B": batch_block,
                 "CAUSAL": True, "STAGES": 2}  # fmt: skip
    shared = compile_in_child("gluon_narrow", "bf16", constants, tmp_path / "decode.ptx", num_warps=warps)

    assert shared <= gluon_shared_memory(rank, rope, rows=rows) < shared + 2048
    report, sass = assemble(tmp_path / "decode.ptx", tmp_path)
    assert "Performance Loss" not in report, report  # no serialized warpgroup MMA (C7514, C7515)
    # Both products transposed: 64 tokens by a warpgroup's 16 rows, and the latent's columns by 16 rows.
    assert re.search(r"\bHGMMA\.64x16x16\b", sass)
    assert stack_frame(report) <= NARROW_STACK_BYTES, report
    loop = tile_loop(sass)
    assert not [line for line in loop if re.search(r"\b(LDL|STL)\b", line)], "spills inside the tile loop"
    # The refill's copies go out inside the loop: 36 of 16 bytes a thread for a 64 x (512 + 64) tile in 4 warps.
    assert len([line for line in loop if "LDGSTS" in line]) == 64 * (rank + rope) * 2 // 16 // (32 * warps)
    # A programmatic dependent of the kernel before it: nothing is read before griddepcontrol.wait; the merge,
    # launched as this kernel's dependent, may start once every program has passed the wait.
    ptx = (tmp_path / "decode.ptx").read_text()
    assert not counting_async_arrivals(ptx)
    assert _first_global_read(ptx) > ptx.index("griddepcontrol.wait") < ptx.index("griddepcontrol.launch_dependents")
    # Partial results (float32) stay in L2 for the merge (a cache hint carrying an L2 evict_last policy); the final
    # output (16-bit) does not ask to.
    stores = re.findall(r"st\.global\.\S+", ptx)
    assert "createpolicy.fractional.L2::evict_last" in ptx
    assert any("evict_last.L2::cache_hint" in store and store.endswith(".b32") for store in stores)
    assert not any("cache_hint" in store for store in stores if store.endswith(".b16"))


def _first_global_read(ptx: str) -> int:
    """Where the PTX first reads global memory: a load, or an asynchronous copy from it."""
    return min(found.start() for found in re.finditer(r"\bld\.global|\bcp\.async\.(?:ca|cg|bulk)", ptx))


MERGE_CONSTANTS = {  # the launch at B4 S32k (over sequences) and B128 (over runs)
    "merge_by_sequence": {"RANK": 512, "BLOCK_N": 16, "BLOCK_B": 4, "PARTS_BLOCK": 64, "ROWS": 2, "COLUMNS": 64},
    "merge": {"RANK": 512, "BLOCK_N": 64, "BLOCK_B": 128, "PARTS_BLOCK": 2, "ROWS": 8},
}


@pytest.mark.parametrize("merge", MERGE_CONSTANTS)
@pytest.mark.parametrize("dependent", [True, False])
def test_merge_waits_for_the_decode_grid_where_launched_as_its_dependent(merge, dependent, tmp_path):
    """After the narrow kernel the merge launches early (``launch_pdl``): only ``griddepcontrol.wait`` then keeps
    it from reading partial results the decode grid has not written; once past it, it lets the next call's narrow
    kernel launch early. An ordinary launch has neither (nor could the interpreter run them)."""
    constants = MERGE_CONSTANTS[merge] | {"DEPENDENT": dependent}
    compile_in_child(merge, "bf16", constants, tmp_path / "merge.ptx", num_warps=4, launch_pdl=dependent)

    ptx = (tmp_path / "merge.ptx").read_text()
    assert ("griddepcontrol.wait" in ptx) == dependent
    assert ("griddepcontrol.launch_dependents" in ptx) == dependent
    assert ptx.find("griddepcontrol.wait") <= ptx.find("griddepcontrol.launch_dependents")


@pytest.mark.parametrize("rows, warps", [(16, 4), (32, 8)])
def test_narrow_kernel_and_its_merge_launch_as_programmatic_dependents(rows, warps, monkeypatch):
    """``decode`` launches the one-warpgroup narrow kernel with ``launch_pdl`` (it overlaps the previous kernel's
    tail up to its griddepcontrol.wait; the two-warpgroup one, which holds the whole register file, in order) and
    its merge as its dependent; the launches recorded, not run (any machine)."""
    from seamfix.runtime.kernels.absorbed_decode import gluon_narrow, triton_ops

    launches = {}

    class Recorder:
        def __init__(self, name):
            self.name = name

        def __getitem__(self, grid):
            return lambda *args, **options: launches.setdefault(self.name, options)

    monkeypatch.setattr(gluon_narrow, "decode_kernel", Recorder("decode"))
    for name in ("merge_kernel", "merge_by_sequence_kernel"):
        monkeypatch.setattr(triton_ops, name, Recorder("merge"))
    case = PagedCase([300, 70], 64, torch.bfloat16, torch.Generator().manual_seed(0), rows, 1)
    narrow = DecodeTiles(rows, 64, warps, 2, 1, "gluon_narrow")

    decode(case.q_lat, case.q_pe, *case.cache_args(), SCALE, True, 2, narrow)

    assert launches["decode"]["launch_pdl"] is (warps == 4)
    assert launches["merge"]["launch_pdl"] is True and launches["merge"]["DEPENDENT"] is True


@pytest.mark.parametrize("rank, rope", [(256, 64), (128, 32)])
def test_shared_memory_estimate_bounds_the_compiled_kernel(rank, rope):
    shared = compiled_shared_memory(64, 2, rank=rank, rope=rope)

    assert shared <= gluon_shared_memory(rank, rope) < shared + 2048


def test_deepseeks_latent_fits_with_a_64_wide_rope_not_128():
    assert gluon_shared_memory(512, 64) <= HOPPER_SHARED_MEMORY < gluon_shared_memory(512, 128)


EIGHTY_LENGTHS = [(37 * i) % 301 + 1 for i in range(80)]
HOPPER = torch.cuda.is_available() and torch.cuda.get_device_capability() == (9, 0)
CASES = {  # lengths, block size, heads, s_q, causal, splits
    "64 heads, runs of whole sequences and split ones": ([1, 23, 130, 300, 64], 16, 64, 1, True, 2),
    "128 heads, pages holding several tiles": ([700, 1, 129], 128, 128, 1, True, 1),
    "tiles spanning pages, more partials than a merge step": ([1100], 16, 64, 1, True, 20),
    "two new tokens, causal, rows over two groups with a partial one": ([2, 70, 33], 64, 40, 2, True, 2),
    "two new tokens, not causal": ([2, 37], 32, 48, 2, False, 1),
    # As many runs as the card holds, fewer than sequences: split sequences have two or three parts.
    "default runs over 80 sequences of unequal lengths": (EIGHTY_LENGTHS, 64, 128, 1, True, None),
}


@pytest.mark.skipif(not HOPPER, reason="the Gluon kernel runs on sm_90 only")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("bufferings", BUFFERINGS)
@pytest.mark.parametrize("name", CASES)
def test_kernel_matches_the_reference_on_hopper(name, bufferings, dtype):
    lengths, block_size, heads, s_q, causal, splits = CASES[name]
    case = PagedCase(lengths, block_size, dtype, torch.Generator().manual_seed(len(name)), heads, s_q)
    args = [tensor.cuda() for tensor in (case.q_lat, case.q_pe, *case.cache_args())]
    tokens, stages = BUFFERINGS[bufferings]

    out, lse = decode(*args, SCALE, causal, splits, DecodeTiles(64, tokens, 8, stages, 1, kernel="gluon"))

    expected_out, expected_lse = mla_decode(case.q_lat, case.q_pe, *case.cache_args(), SCALE, causal, backend="torch")
    assert not out.isnan().any()
    assert relative_error(out.cpu(), expected_out) < 2 * TOLERANCE[dtype]
    assert relative_error(lse.cpu(), expected_lse) < 1e-5


SEESAW_WIDTHS = {"DeepSeek's 512 + 64, bf16": (512, torch.bfloat16), "512 + 64, fp16": (512, torch.float16),
                 "128 + 64, bf16": (128, torch.bfloat16)}  # fmt: skip


@pytest.mark.skipif(not HOPPER, reason="the Gluon kernel runs on sm_90 only")
@pytest.mark.parametrize("width", SEESAW_WIDTHS)
@pytest.mark.parametrize("name", CASES)
def test_seesaw_kernel_matches_float64_on_hopper(name, width):
    """Odd tile counts (a zero-filled phantom tile closes the last pair), split sequences, partial head groups,
    s_q = 2, pages of 16 to 128 tokens, against the float64 math."""
    lengths, block_size, heads, s_q, causal, splits = CASES[name]
    rank, dtype = SEESAW_WIDTHS[width]
    case = PagedCase(lengths, block_size, dtype, torch.Generator().manual_seed(len(name)), heads, s_q, rank, 64)
    args = [tensor.cuda() for tensor in (case.q_lat, case.q_pe, *case.cache_args())]

    out, lse = decode(*args, SCALE, causal, splits, DecodeTiles(64, 64, 4, 2, 1, kernel="gluon_seesaw"))

    expected_out, expected_lse = decode_from_math(case, causal)
    assert not out.isnan().any()
    assert relative_error(out.cpu(), expected_out) < 2 * TOLERANCE[dtype]
    assert relative_error(lse.cpu(), expected_lse) < 1e-5


@pytest.mark.skipif(not HOPPER, reason="the Gluon kernel runs on sm_90 only")
def test_default_path_takes_the_gluon_kernel_past_16_rows_on_hopper():
    from seamfix.runtime.kernels.absorbed_decode.triton_ops import default_tiles

    q_lat = torch.zeros(2, 1, 128, 512, dtype=torch.bfloat16, device="cuda")

    assert default_tiles(128, q_lat, 64).kernel == "gluon_seesaw"
    assert default_tiles(32, q_lat[:, :, :32], 64).kernel == "gluon_narrow"
    assert default_tiles(48, q_lat[:, :, :48], 64).kernel == "gluon_seesaw"
    assert default_tiles(128, q_lat, 32).kernel == "gluon"  # the seesaw kernel's rope is 64 wide
    assert default_tiles(16, q_lat[:, :, :16], 64).kernel == "gluon_narrow"
    assert default_tiles(16, q_lat[:, :, :16, :32], 64).kernel == "triton"  # a latent of 32: no whole products
    assert default_tiles(32, q_lat[:, :, :32, :32], 64).kernel == "gluon"


FLASH_MLA_LAYOUTS = {  # dtype, heads: the Gluon kernel (16-bit, 128 heads), the Triton kernel in 16 and 32 bits
    "bf16, 128 heads (Gluon)": (torch.bfloat16, 128),
    "bf16, 16 heads (narrow Gluon)": (torch.bfloat16, 16),
    "fp32, 16 heads (Triton)": (torch.float32, 16),
}


@pytest.mark.skipif(not HOPPER, reason="the Gluon kernel runs on sm_90 only")
@pytest.mark.parametrize("name", FLASH_MLA_LAYOUTS)
def test_flash_mla_rows_are_read_in_place_on_hopper(name):
    """DeepSeek's 512 + 64 latent in FlashMLA's one-row-per-token cache: the two views decode exactly as the same
    values in separate contiguous caches."""
    dtype, heads = FLASH_MLA_LAYOUTS[name]
    case = PagedCase([1, 300, 1000, 77], 64, dtype, torch.Generator().manual_seed(heads), heads, 1, 512, 64)
    q_lat, q_pe, ckv, kpe, table, lengths = (t.cuda() for t in (case.q_lat, case.q_pe, *case.cache_args()))
    rows = torch.cat((ckv, kpe), -1)[:, :, None, :]

    in_place = mla_decode(q_lat, q_pe, rows[:, :, 0, :512], rows[:, :, 0, 512:], table, lengths, SCALE)

    separate = mla_decode(q_lat, q_pe, ckv, kpe, table, lengths, SCALE)
    assert torch.equal(in_place[0], separate[0]) and torch.equal(in_place[1], separate[1])
    expected_out, _ = mla_decode(case.q_lat, case.q_pe, *case.cache_args(), SCALE, backend="torch")
    assert relative_error(in_place[0].cpu(), expected_out) < 2 * TOLERANCE[dtype]


@pytest.mark.skipif(not HOPPER, reason="the Gluon kernel runs on sm_90 only")
def test_seesaw_kernel_reads_flash_mla_rows_in_place_on_hopper():
    """The seesaw kernel's loader goes through the caches' block and row strides as the other kernels do."""
    case = PagedCase([1, 300, 1000, 77], 64, torch.bfloat16, torch.Generator().manual_seed(5), 128, 1, 512, 64)
    q_lat, q_pe, ckv, kpe, table, lengths = (t.cuda() for t in (case.q_lat, case.q_pe, *case.cache_args()))
    rows = torch.cat((ckv, kpe), -1)[:, :, None, :]
    seesaw = DecodeTiles(64, 64, 4, 2, 1, kernel="gluon_seesaw")

    in_place = decode(q_lat, q_pe, rows[:, :, 0, :512], rows[:, :, 0, 512:], table, lengths, SCALE, True, None, seesaw)

    separate = decode(q_lat, q_pe, ckv, kpe, table, lengths, SCALE, True, None, seesaw)
    assert torch.equal(in_place[0], separate[0]) and torch.equal(in_place[1], separate[1])
    expected_out, _ = decode_from_math(case, True)
    assert relative_error(in_place[0].cpu(), expected_out) < 2 * TOLERANCE[torch.bfloat16]


@pytest.mark.skipif(not HOPPER, reason="the Gluon kernel runs on sm_90 only")
def test_seesaw_kernel_passes_a_sequence_of_length_0_inside_a_run_on_hopper():
    """Unchecked lengths may hold a 0 inside a program's run (4 runs over 10 tiles here: the second holds sequence
    0's last tile, sequence 1 and sequence 2): that segment has no tiles, and the warpgroups and the loader must
    still agree on every barrier phase (a missed one hangs the GPU)."""
    case = PagedCase([150, 0, 70, 300], 64, torch.bfloat16, torch.Generator().manual_seed(0), 128, 1, 512, 64)
    args = [tensor.cuda() for tensor in (case.q_lat, case.q_pe, *case.cache_args())]

    out, lse = decode(*args, SCALE, True, 1, DecodeTiles(64, 64, 4, 2, 1, kernel="gluon_seesaw"))

    expected_out, expected_lse = decode_from_math(case, True)
    assert torch.equal(out[1].cpu(), torch.zeros_like(out[1].cpu())) and bool((lse[1] == float("-inf")).all())
    assert relative_error(out.cpu(), expected_out) < 2 * TOLERANCE[torch.bfloat16]
    others = [0, 2, 3]
    assert relative_error(lse[others].cpu(), expected_lse[others]) < 1e-5


@pytest.mark.skipif(not HOPPER, reason="the Gluon kernel runs on sm_90 only")
@pytest.mark.parametrize("page", [64, 128])
def test_seesaw_kernel_fetches_whole_tiles_by_tma_and_leaves_rows_past_lengths_out_on_hopper(page):
    """The same cache values in consecutive blocks (whole tiles through TMA) and with a gap between blocks (row by
    row) give the same bits; every row past a sequence's length holds NaN, which the last, partial tile of each
    sequence (fetched row by row either way; 1 to 63 keys in it, in the first or second tile of a page, where a
    TMA box would read the page's rows past the length) must not bring in, split sequences and phantom tiles (odd
    tile counts) included."""
    lengths = [1, 300, 1000, 77, 64, 640, 127]
    case = PagedCase(lengths, page, torch.bfloat16, torch.Generator().manual_seed(3), 128, 1, 512, 64)
    used = torch.zeros(case.ckv_cache.shape[:2], dtype=torch.bool)
    for row, length in enumerate(case.lengths):
        for key in range(length):
            used[case.block_table[row, key // page], key % page] = True
    for cache in (case.ckv_cache, case.kpe_cache):
        cache[~used] = float("nan")
    ckv, kpe, table, lengths = (tensor.cuda() for tensor in case.cache_args())
    q_lat, q_pe = case.q_lat.cuda(), case.q_pe.cuda()
    gap = torch.full((ckv.shape[0], page + 16, 576), float("nan"), dtype=torch.bfloat16, device="cuda")[:, :page]
    gap[..., :512], gap[..., 512:] = ckv, kpe
    assert cache_rows(ckv, kpe, 64) is not None and cache_rows(gap[..., :512], gap[..., 512:], 64) is None
    seesaw = DecodeTiles(64, 64, 4, 2, 1, kernel="gluon_seesaw")

    by_tma = decode(q_lat, q_pe, ckv, kpe, table, lengths, SCALE, True, 3, seesaw)

    by_rows = decode(q_lat, q_pe, gap[..., :512], gap[..., 512:], table, lengths, SCALE, True, 3, seesaw)
    assert torch.equal(by_tma[0], by_rows[0]) and torch.equal(by_tma[1], by_rows[1])
    assert not by_tma[0].isnan().any()
    expected_out, expected_lse = decode_from_math(case, True)
    assert relative_error(by_tma[0].cpu(), expected_out) < 2 * TOLERANCE[torch.bfloat16]
    assert relative_error(by_tma[1].cpu(), expected_lse) < 1e-5


NARROW_CASES = {  # lengths, block size, heads, s_q, causal, splits
    "runs of whole sequences and split ones, pages of 16": ([1, 23, 130, 300, 64], 16, 16, 1, True, 2),
    "pages holding several tiles": ([700, 1, 129], 128, 16, 1, True, 1),
    "tiles spanning pages, more partials than a merge step": ([1100], 32, 16, 1, True, 20),
    "two new tokens of 8 heads, causal": ([2, 70, 33], 64, 8, 2, True, 2),
    "two new tokens of 16 heads, causal": ([2, 70, 33], 64, 16, 2, True, 2),
    "two new tokens of 20 heads: groups of 32 and 16 rows, partial ones": ([3, 200], 16, 20, 2, True, 2),
    "two new tokens, not causal, a partial group": ([2, 37], 32, 6, 2, False, 1),
    "two groups of rows, the second partial": ([300, 5, 129], 64, 24, 1, True, 3),
    "a length 0 inside a run": ([150, 0, 70, 300], 64, 16, 1, True, 1),
    "default runs over 80 sequences of unequal lengths": (EIGHTY_LENGTHS, 64, 16, 1, True, None),
}
NARROW_WIDTHS = {"DeepSeek's 512 + 64, bf16": (512, 64, torch.bfloat16), "512 + 64, fp16": (512, 64, torch.float16),
                 "128 + 32, bf16": (128, 32, torch.bfloat16)}  # fmt: skip


NARROW_TILES = {"16 rows, one warpgroup": (16, 4), "16 rows, two warpgroups": (16, 8),
                "32 rows, two warpgroups": (32, 8)}  # fmt: skip


@pytest.mark.skipif(not HOPPER, reason="the Gluon kernel runs on sm_90 only")
@pytest.mark.parametrize("tiles", NARROW_TILES)
@pytest.mark.parametrize("width", NARROW_WIDTHS)
@pytest.mark.parametrize("name", NARROW_CASES)
def test_narrow_kernel_matches_float64_on_hopper(name, width, tiles):
    """Split sequences, partial groups, s_q = 2, pages of 16 to 128 tokens, a sequence of length 0 (output zero,
    log-sum-exp -inf, as the Triton kernel gives), against the float64 math."""
    lengths, block_size, heads, s_q, causal, splits = NARROW_CASES[name]
    rank, rope, dtype = NARROW_WIDTHS[width]
    case = PagedCase(lengths, block_size, dtype, torch.Generator().manual_seed(len(name)), heads, s_q, rank, rope)
    args = [tensor.cuda() for tensor in (case.q_lat, case.q_pe, *case.cache_args())]
    rows, warps = NARROW_TILES[tiles]
    narrow = DecodeTiles(rows, 64, warps, 2, 1, "gluon_narrow")

    out, lse = (t.cpu() for t in decode(*args, SCALE, causal, splits, narrow))

    expected_out, expected_lse = decode_from_math(case, causal)
    assert not out.isnan().any()
    assert relative_error(out, expected_out) < 2 * TOLERANCE[dtype]
    empty = torch.tensor(lengths) == 0
    assert bool((out[empty] == 0).all()) and bool((lse[empty] == float("-inf")).all())
    assert relative_error(lse[~empty], expected_lse[~empty]) < 1e-5


@pytest.mark.skipif(not HOPPER, reason="the Gluon kernel runs on sm_90 only")
def test_seesaw_kernel_reads_repeated_and_overlapping_rows_on_hopper():
    """Read-only caches whose rows repeat (expanded) or overlap (a row stride under the width) are valid views; they
    passed as whole rows to the tensor map before the sixth bad-input pass. Both must match the float64 reference."""
    table = torch.tensor([[0, 2, 1], [1, 1, 0]], dtype=torch.int32, device="cuda")
    lengths = torch.tensor([150, 70], dtype=torch.int32, device="cuda")
    generator = torch.Generator().manual_seed(9)
    q_lat, q_pe = (torch.randn(2, 1, 128, width, generator=generator).bfloat16().cuda() for width in (512, 64))
    expanded = tuple(cache.expand(3, 64, -1) for cache in separate_rows("cuda"))
    for ckv, kpe in (expanded, overlapping_rows("cuda")):
        out, lse = mla_decode(q_lat, q_pe, ckv, kpe, table, lengths, SCALE, num_splits=2, backend="triton")
        want_out, want_lse = mla_decode(q_lat.double(), q_pe.double(), ckv.double(), kpe.double(), table, lengths,
                                        SCALE, backend="torch")  # fmt: skip
        assert relative_error(out.cpu(), want_out.cpu()) < 2 * TOLERANCE[torch.bfloat16]
        assert relative_error(lse.cpu(), want_lse.cpu()) < 1e-5


@pytest.mark.skipif(not HOPPER, reason="the Gluon kernels run on sm_90 only")
@settings(PROPERTY, max_examples=examples(60))
@given(case=hopper_decode_cases(), dtype_index=st.integers(0, 2))
def test_decode_at_the_hopper_kernels_shapes(case, dtype_index):
    """The property test of ``mla_decode`` at the Gluon kernels' own shapes (kernel_property_cases.py draws small ones,
    which take the Triton kernel): valid cases match float64, invalid ones are refused, and unchecked index values
    run to completion, equal to the reference where the clamping defines the result. Run under compute-sanitizer's
    memcheck with ``PYTORCH_NO_CUDA_MEMORY_CACHING=1``, it also shows those values read nothing outside the tensors
    (benchmarks/RESULTS.md, fifteenth pass)."""
    check_decode_case(case, "triton", dtype_index)


@pytest.mark.skipif(not HOPPER, reason="the Gluon kernels run on sm_90 only")
@pytest.mark.parametrize("heads", [16, 128])
def test_decode_inside_torch_compile_with_inductor_equals_the_eager_call(heads):
    """Inductor recompiles the Triton kernels a traced graph launches; it failed on the Gluon kernels' launches
    (InductorError from its compile subprocess, found on the H200). The decode is a graph break under
    torch.compile now: the compiled function returns the eager call's bytes, narrow (16 heads) and seesaw (128)."""
    table = torch.tensor([[0, 2, 1], [1, 1, 0]], dtype=torch.int32, device="cuda")
    lengths = torch.tensor([150, 70], dtype=torch.int32, device="cuda")
    generator = torch.Generator().manual_seed(31)
    q_lat, q_pe = (torch.randn(2, 1, heads, width, generator=generator).bfloat16().cuda() for width in (512, 64))
    ckv, kpe = (torch.randn(3, 64, width, generator=generator).bfloat16().cuda() for width in (512, 64))

    def attend(q_lat, q_pe):
        return mla_decode(q_lat, q_pe, ckv, kpe, table, lengths, SCALE, num_splits=2, backend="triton")

    torch._dynamo.reset()
    compiled = torch.compile(attend, backend="inductor")(q_lat, q_pe)
    for got, want in zip(compiled, attend(q_lat, q_pe), strict=True):
        assert torch.equal(got, want)
