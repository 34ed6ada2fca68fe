"""Launch of absorbed MLA decode: tile and program-count choice, the decode kernel, and the merge."""

import functools
import math
from dataclasses import dataclass, replace

import torch
import triton

from ..backend import KernelInputError, check_int32_offsets, one_launch_at_a_time, span
from . import MIN_TILE
from .triton_kernels import decode_kernel, merge_by_sequence_kernel, merge_kernel

decode_kernel, merge_by_sequence_kernel, merge_kernel = one_launch_at_a_time(
    decode_kernel, merge_by_sequence_kernel, merge_kernel
)

# Floats one merge program holds per step ([parts, rows, columns] in registers, 4 warps): 32 KB.
MERGE_STEP_ELEMENTS = 8192
# Parts of a split sequence above which the merge runs over sequences and column blocks instead of runs.
MERGE_BY_RUN_PARTS = 16
MERGE_BY_SEQUENCE = {"parts": 64, "columns": 64}


@dataclass(frozen=True)
class MergeTiles:
    """How the merge reads partial results: over runs (``merge_kernel``) or over sequences
    (``merge_by_sequence_kernel``), and per program the query rows, the parts per step and the latent columns."""

    by_sequence: bool
    rows: int
    parts: int
    columns: int


def merge_tiles(num_programs: int, batch: int, n_rows: int, rank: int) -> MergeTiles:
    """A split sequence has about ``num_programs / batch`` parts, plus one where runs do not line up with
    sequences. Up to 16, the merge runs over runs and one step takes them all, with as many rows as fill it: B128
    (3 parts a sequence) 4 rows x 4 parts (H200: merge 9 -> 6 us). More (B4 S32k: 67 parts), it runs over
    sequences: 64 parts x 2 rows x 64 columns a program, 256 programs (H200: 65 -> 59.5 us; over runs it took 5
    steps of 16 parts, 16 warps taking 64 parts measured 81 us, and cutting columns over runs launched 17,000
    programs: benchmarks/RESULTS.md, fourth and fifth passes)."""
    parts = triton.next_power_of_2(triton.cdiv(num_programs, batch) + 1)
    if parts <= MERGE_BY_RUN_PARTS:
        rows = max(1, min(triton.next_power_of_2(n_rows), MERGE_STEP_ELEMENTS // (parts * rank)))
        return MergeTiles(by_sequence=False, rows=rows, parts=parts, columns=rank)
    parts = min(parts, MERGE_BY_SEQUENCE["parts"])
    columns = min(rank, MERGE_BY_SEQUENCE["columns"])
    rows = max(1, min(triton.next_power_of_2(n_rows), MERGE_STEP_ELEMENTS // (parts * columns)))
    return MergeTiles(by_sequence=True, rows=rows, parts=parts, columns=columns)


@dataclass(frozen=True)
class DecodeTiles:
    """Query rows per program (all of a group's heads share each cached tile), cached tokens per step, warps,
    pipelining depth (buffers of the Gluon kernels), how many programs per multiprocessor the default program count
    aims at, which decode kernel runs: ``"triton"``, ``"gluon_narrow"`` (Hopper, 16 or 32 rows, 64-token tiles, a
    warpgroup per 16 rows; the default for up to 32 rows where it fits), ``"gluon"`` (Hopper, 64 rows, 8 warps) or
    ``"gluon_seesaw"`` (Hopper, 64 rows, 64-token tiles, a 64-wide rope and a latent of 128 or more; 4 warps
    launched, 8 more in its partitions; the default for more than 32 rows where it fits), and how the Triton
    kernel's float32 products run (``tl.dot``'s ``input_precision``: ``"ieee"`` full float32 on the FMA units,
    ``"tf32"`` the tensor cores' 10-bit mantissa; 16-bit products ignore it)."""

    rows: int
    tokens: int
    num_warps: int
    num_stages: int
    programs_per_sm: int
    kernel: str = "triton"
    dot_precision: str = "tf32"


def default_tiles(n_rows: int, q_lat: torch.Tensor, rope_dim: int, copied: tuple = ()) -> DecodeTiles:
    """The tiles ``decode`` launches with by default: the benchmarked choice for ``n_rows`` query rows, made
    smaller where the Triton kernel would not fit the device's shared memory (float32, wide latents). ``copied``:
    the other tensors a Gluon kernel would copy with ``cp.async`` (see ``gluon_supported``)."""
    device = q_lat.device
    gluon = device.type == "cuda" and gluon_supported(q_lat, rope_dim, copied)
    limit = _shared_memory_limit(device.index or 0) if device.type == "cuda" else HOPPER_SHARED_MEMORY
    products = float32_products(torch.get_float32_matmul_precision())
    return choose_tiles(n_rows, q_lat.shape[-1], rope_dim, q_lat.element_size(), gluon, limit, products)


def float32_products(matmul_precision: str) -> str:
    """How float32 products run, as torch runs its own float32 matmuls (``torch.set_float32_matmul_precision``):
    at its default ``"highest"`` in full float32 (``"ieee"``), otherwise on the tensor cores (``"tf32"``, about
    1e-3 relative error, 35x faster). With tf32 under ``"highest"`` the cached decode rounded differently from the
    uncached path and decided near ties (a 0.001 logit gap) the other way."""
    return "ieee" if matmul_precision == "highest" else "tf32"


def choose_tiles(n_rows: int, rank: int, rope_dim: int, element_size: int, gluon: bool, limit: int,
                 products: str = "ieee") -> DecodeTiles:  # fmt: skip
    """``default_tiles`` as a function of sizes alone: ``gluon`` says whether the Gluon kernel may run (it
    checked its own shared memory), ``limit`` is the bytes of shared memory one program may use. Float32 runs
    its products as ``products`` says (``float32_products``), and the tiles are fitted to their shared memory."""
    # tl.dot needs at least 16 rows. Picked by the rounds of benchmarks/kernels_decode_rounds.py on an H200: twice
    # as many runs as multiprocessors, four warps each (H16 B128 S4k 172 -> 165 us, B4 S32k 68 -> 66 us against
    # the H100's pick of eight warps, and a third buffer for few sequences).
    if n_rows <= 32 and gluon and narrow_fits(rank, rope_dim, limit, 16 if n_rows <= 16 else 32):
        # Transposed products over a ring of two 64-token buffers, one program per multiprocessor, a warpgroup per
        # 16 rows (benchmarks/RESULTS.md, seventh pass).
        if n_rows <= 16:
            return DecodeTiles(16, tokens=64, num_warps=4, num_stages=2, programs_per_sm=1, kernel="gluon_narrow")
        return DecodeTiles(32, tokens=64, num_warps=8, num_stages=2, programs_per_sm=1, kernel="gluon_narrow")
    if n_rows <= 16:
        preferred = DecodeTiles(rows=16, tokens=64, num_warps=4, num_stages=2, programs_per_sm=2)
    elif gluon and n_rows > 32 and seesaw_fits(rank, rope_dim, limit):
        # Whole 64-row groups: FlashMLA's seesaw schedule (H128 B128 S4k on an H200: 364.5 us against 385.8 us for
        # the two-warpgroup kernel in the sixth pass, 321.6-330.3 us in its seventh-pass form, 299.3-329.2 us with
        # whole tiles by TMA in the eighth; benchmarks/RESULTS.md).
        return DecodeTiles(rows=64, tokens=64, num_warps=4, num_stages=2, programs_per_sm=1, kernel="gluon_seesaw")
    elif gluon:
        # 17 to 32 rows where the narrow kernel does not fit: half a Gluon group idle beats the Triton kernel's
        # 32-row products (H16 B128 S4k s_q=2 on an H200: 191 us against 267 us; the seesaw kernel 208 us).
        return DecodeTiles(rows=64, tokens=64, num_warps=8, num_stages=2, programs_per_sm=1, kernel="gluon")
    elif n_rows <= 32:
        preferred = DecodeTiles(rows=32, tokens=64, num_warps=4, num_stages=2, programs_per_sm=2)
    else:
        preferred = DecodeTiles(rows=64, tokens=64, num_warps=8, num_stages=2, programs_per_sm=1)
    if element_size == 4:
        preferred = replace(preferred, dot_precision=products)
    return fitting_tiles(preferred, rank, rope_dim, element_size, limit)


def fitting_tiles(preferred: DecodeTiles, rank: int, rope_dim: int, element_size: int, limit: int) -> DecodeTiles:
    """``preferred``, or the largest smaller Triton tiles whose shared memory fits ``limit``: fewer cached tokens
    per step first (more steps, same traffic), then fewer query rows per program (each cached tile is then read
    by more programs). Float32 (full-precision products) at DeepSeek's 512 + 64 on an H200: 16 and 32 rows keep
    64-token steps, 64 rows step 32 tokens."""
    for rows in _halvings(preferred.rows):
        # Fewer rows take the warps and program count of the benchmarked 32- and 16-row choices.
        launch = preferred
        if rows != preferred.rows:
            launch = replace(preferred, num_warps=4, num_stages=2, programs_per_sm=2)
        for tokens in _halvings(preferred.tokens):
            tiles = replace(launch, rows=rows, tokens=tokens)
            if triton_shared_memory(tiles, rank, rope_dim, element_size) <= limit:
                return tiles
    smallest = replace(preferred, rows=MIN_TILE, tokens=MIN_TILE, num_warps=4, num_stages=2, programs_per_sm=2)
    needed = triton_shared_memory(smallest, rank, rope_dim, element_size)
    raise KernelInputError(
        f"the Triton decode kernel cannot hold kv_lora_rank {rank} and rope_dim {rope_dim} in {element_size}-byte "
        f"elements: even {MIN_TILE}x{MIN_TILE} tiles need {needed} bytes of shared memory, more than the device's "
        f"{limit}; use a 16-bit dtype or backend='torch'"
    )


def _halvings(size: int) -> list[int]:
    return [size >> shift for shift in range(size.bit_length()) if size >> shift >= MIN_TILE]


def triton_shared_memory(tiles: DecodeTiles, rank: int, rope_dim: int, element_size: int) -> int:
    """Bytes of shared memory the Triton decode kernel asks for, an upper bound fitted to the kernel compiled for
    sm_90 (Triton 3.6 and 3.8; tests/runtime/kernels/test_kernels_decode_tiles.py checks it): the group's
    queries, the cached tile twice (a second pipeline buffer, or the transposed copy a 64-row product reads), the
    weights as an operand, or the float32 accumulator's layout change where that is larger, plus scratch.
    Full-precision float32 products (FMA units) stage the cached tile once."""
    width = rank + rope_dim
    if element_size == 4 and tiles.dot_precision == "ieee":
        return ((tiles.rows + tiles.tokens) * width + tiles.rows * tiles.tokens) * element_size + 1024
    operands = ((tiles.rows + 2 * tiles.tokens) * width + tiles.rows * tiles.tokens) * element_size
    return max(operands, tiles.rows * rank * 4) + 1024


def gluon_supported(q_lat: torch.Tensor, rope_dim: int, copied: tuple = ()) -> bool:
    """The Gluon kernel's warpgroup MMA exists on sm_90 only (Blackwell has other tensor-core instructions), takes
    16-bit operands, and splits the latent width (at most 512) between two warpgroups. Gluon's API moves between
    Triton releases: the kernel is built and tested with 3.6 and 3.8. It copies ``q_lat`` and the ``copied``
    tensors (``q_pe``, the caches) with ``cp.async``: see ``async_copyable``."""
    rank = q_lat.shape[-1]
    if _capability(q_lat.device.index or 0) != (9, 0) or q_lat.dtype not in (torch.bfloat16, torch.float16):
        return False
    if not (32 <= rank <= 512 and 16 <= rope_dim <= 256 and _power_of_two(rank) and _power_of_two(rope_dim)):
        return False
    return (gluon_shared_memory(rank, rope_dim) <= HOPPER_SHARED_MEMORY and _gluon_importable()
            and all(async_copyable(tensor) for tensor in (q_lat, *copied)))  # fmt: skip


HOPPER_SHARED_MEMORY = 227 * 1024  # what one program may use on an H100


def async_copyable(tensor: torch.Tensor) -> bool:
    """The Gluon kernels copy query and cache rows with ``cp.async``, whose smallest copy is 4 bytes. Triton knows a
    row's address 16-byte aligned only where the tensor starts 16-byte aligned and every stride is a multiple of 16
    elements (it specializes integer arguments on that, those of size-1 dimensions included: their index is a
    run-time value); otherwise it fails to compile the copy ("cp.async does not support transfers smaller than 4
    bytes", checked by compiling for sm_90). Such tensors (a query view at an odd offset or with rows 520 wide, a
    one-block cache with an odd block stride) go to the Triton kernel, whose loads take any address."""
    return tensor.data_ptr() % 16 == 0 and math.gcd(*tensor.stride()[:-1]) % 16 == 0  # gcd(0, 0) = 0: stride 0 too


def gluon_shared_memory(rank: int, rope_dim: int, rows: int = 64, tokens: int = 64, stages: int = 2) -> int:
    """Bytes of shared memory the Gluon kernel allocates: 16-bit queries, ``stages`` cached tiles and the weights,
    plus the compiler's scratch for reductions and layout changes (at most 1 KB in the kernels compiled so far)."""
    return 2 * (rows * (rank + rope_dim) + stages * tokens * (rank + rope_dim) + rows * tokens) + 1024


def narrow_fits(rank: int, rope_dim: int, limit: int, rows: int = 16) -> bool:
    """The narrow kernel's sizes: its output product's rows are the latent columns, whole 64-row warpgroup MMAs."""
    return rank % 64 == 0 and gluon_shared_memory(rank, rope_dim, rows=rows) <= limit


def seesaw_fits(rank: int, rope_dim: int, limit: int) -> bool:
    """The seesaw kernel's sizes: a tile's weights take its 64 rope rows' place, and each warpgroup's latent half
    spans whole 128-byte swizzle rows."""
    return rope_dim == 64 and rank >= 128 and _power_of_two(rank) and seesaw_shared_memory(rank, rope_dim) <= limit


def seesaw_shared_memory(rank: int, rope_dim: int) -> int:
    """Bytes of shared memory the seesaw kernel allocates: 16-bit queries and two cached tiles (the weights take the
    rope rows' place), four rows of 64 float32 statistics and 14 mbarriers, plus up to 1 KB of compiler scratch."""
    return 2 * 3 * 64 * (rank + rope_dim) + 4 * 64 * 4 + 14 * 8 + 1024


TMA_BOX = 64  # rows and columns of one tensor-memory-access copy: a 64-token tile's 128 bytes of 16-bit columns


def cache_rows(ckv_cache: torch.Tensor, kpe_cache: torch.Tensor, tokens: int):
    """Tensor descriptors of the two caches seen as ``[num_blocks * block_size, width]`` rows, for the seesaw
    kernel's TMA copies of whole tiles, or None where the layout does not allow them: pages not made of whole
    ``tokens``-token tiles, blocks not one after the other in rows (a block stride other than ``block_size`` row
    strides), rows that overlap or repeat (a row stride under the row's width, 0 for an expanded cache: a layout
    the driver's tensor map is not documented to take, whose strides count whole rows), rows or bases not 16-byte
    aligned, or more rows than 32-bit coordinates reach. The copies then go row by row (``gluon_seesaw._gather``)
    as before."""
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    num_blocks, block_size = ckv_cache.shape[:2]
    if block_size % tokens or tokens != TMA_BOX or num_blocks * block_size >= 2**31:
        return None
    for cache in (ckv_cache, kpe_cache):
        size = cache.element_size()
        whole_rows = (cache.stride(0) == block_size * cache.stride(1) and cache.stride(1) >= cache.shape[2]
                      and cache.stride(2) == 1)  # fmt: skip
        if not whole_rows or cache.stride(1) * size % 16 or cache.data_ptr() % 16 or cache.shape[2] % TMA_BOX:
            return None
    layout = gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=2)
    return tuple(
        TensorDescriptor(
            cache, [num_blocks * block_size, cache.shape[2]], [cache.stride(1), 1], [TMA_BOX, TMA_BOX], layout
        )  # fmt: skip
        for cache in (ckv_cache, kpe_cache)
    )


@functools.cache
def _gluon_importable() -> bool:
    if tuple(int(part) for part in triton.__version__.split(".")[:2]) < (3, 6):
        return False
    try:
        from . import gluon_kernels  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def _capability(device_index: int) -> tuple[int, int]:
    return torch.cuda.get_device_capability(device_index)


def _power_of_two(n: int) -> bool:
    return n & (n - 1) == 0


@functools.cache
def _shared_memory_limit(device_index: int) -> int:
    """What Triton checks a launch against (``OutOfResources`` above it): the opt-in shared memory per block."""
    return triton.runtime.driver.active.utils.get_device_properties(device_index)["max_shared_mem"]


@functools.cache
def _multiprocessors(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def default_num_programs(batch: int, groups: int, programs_per_sm: int, device: torch.device) -> int:
    """Runs the tile stream is cut into, per group of query rows: enough to fill the GPU, and (the lengths stay
    on the device, so this is all the host can do) a whole number of sequences per run, or of runs per
    sequence, so that equal lengths need no merge. Unequal lengths are balanced by tokens either way."""
    if device.type != "cuda":
        return batch
    target = max(1, programs_per_sm * _multiprocessors(device.index or 0) // groups)
    if batch >= target:
        return triton.cdiv(batch, triton.cdiv(batch, target))
    return batch * (target // batch)


# Never traced by torch.compile (a graph break, 0.3 us a call): Inductor recompiles the Triton kernels a graph
# launches, and failed on the Gluon kernels' launches (an InductorError on the H200). A guard on
# torch.compiler.is_compiling() in the caller would not do: where Dynamo falls back to running mla_decode eagerly,
# it still compiles the frames that call makes.
@torch.compiler.disable
def decode(q_lat, q_pe, ckv_cache, kpe_cache, block_table, cache_seqlens, softmax_scale, causal, num_splits, tiles):
    batch, s_q, heads, rank = q_lat.shape
    n_rows = s_q * heads
    tiles = tiles or default_tiles(n_rows, q_lat, q_pe.shape[-1], (q_pe, ckv_cache, kpe_cache))
    groups = triton.cdiv(n_rows, tiles.rows)
    if num_splits is None:
        num_programs = default_num_programs(batch, groups, tiles.programs_per_sm, q_lat.device)
    else:
        num_programs = batch * num_splits
    check_int32_offsets(q_nope_absorbed=span(q_lat), q_pe=span(q_pe), output=batch * n_rows * rank,
                        partial_results=num_programs * 2 * n_rows * rank)  # fmt: skip
    out = q_lat.new_empty(batch, s_q, heads, rank)
    lse = q_lat.new_empty(batch, s_q, heads, dtype=torch.float32)
    partial_out = q_lat.new_empty(num_programs, 2, n_rows, rank, dtype=torch.float32)
    partial_lse = q_lat.new_empty(num_programs, 2, n_rows, dtype=torch.float32)
    leads = q_lat.new_empty(num_programs, 3, dtype=torch.int32)
    capacity = block_table.shape[1] * ckv_cache.shape[1]  # tokens the table holds: lengths are clamped to it
    if tiles.kernel == "gluon":
        from .gluon_kernels import decode_kernel as kernel

        options = {"STAGES": tiles.num_stages}
    elif tiles.kernel == "gluon_narrow":
        from .gluon_narrow import decode_kernel as kernel

        # A programmatic dependent of the kernel before it (whatever that is): only its launch and shared-memory
        # setup overlap that kernel's tail; it reads no input before griddepcontrol.wait, which returns once that
        # grid has completed and its writes are visible. Calls back to back (a model's layers) save 0.3-0.5 us each
        # at 16 rows. One warpgroup only: its program holds half the register file and so fits beside the previous
        # kernel's programs; the two-warpgroup program (32 rows) holds all of it, and launched early it measured
        # slower back to back in one run and within the noise in another (H16 B128 S4k s_q = 2, 4 calls a graph:
        # 175.2 against 172.1 us, 168.6 against 169.0; benchmarks/RESULTS.md, eleventh pass), so it launches in
        # order, as before, and its wait returns at once.
        options = {"STAGES": tiles.num_stages, "launch_pdl": tiles.num_warps == 4}
    elif tiles.kernel == "gluon_seesaw":
        from .gluon_seesaw import decode_kernel as kernel

        rows = cache_rows(ckv_cache, kpe_cache, tiles.tokens)
        options = {"CKV_ROWS": rows and rows[0], "KPE_ROWS": rows and rows[1], "TMA": rows is not None}
    else:
        kernel, options = decode_kernel, {"num_stages": tiles.num_stages, "DOT_PRECISION": tiles.dot_precision}
    kernel[(num_programs, groups)](
        q_lat, q_pe, ckv_cache, kpe_cache, block_table, cache_seqlens, out, lse, partial_out, partial_lse, leads,
        softmax_scale, batch, s_q, heads, ckv_cache.shape[0], capacity,
        *q_lat.stride()[:3], *q_pe.stride()[:3], block_table.stride(0), *ckv_cache.stride()[:2],
        *kpe_cache.stride()[:2],
        PAGE=ckv_cache.shape[1], RANK=rank, ROPE=q_pe.shape[-1], BLOCK_H=tiles.rows, BLOCK_N=tiles.tokens,
        BLOCK_B=triton.next_power_of_2(batch), CAUSAL=causal, num_warps=tiles.num_warps, **options,
    )  # fmt: skip
    if num_programs > 1:
        merge = merge_tiles(num_programs, batch, n_rows, rank)
        row_blocks = triton.cdiv(n_rows, merge.rows)
        # The narrow kernel lets the merge launch early (griddepcontrol.launch_dependents at its start): the merge's
        # programs take the registers and shared memory its one program per multiprocessor leaves free and wait in
        # griddepcontrol.wait for its grid to complete, so the launch overlaps the decode's tail.
        dependent = {"DEPENDENT": tiles.kernel == "gluon_narrow", "launch_pdl": tiles.kernel == "gluon_narrow"}
        if merge.by_sequence:
            merge_by_sequence_kernel[(batch * row_blocks * (rank // merge.columns),)](
                partial_out, partial_lse, cache_seqlens, out, lse, batch, capacity, n_rows, num_programs,
                RANK=rank, BLOCK_N=tiles.tokens, BLOCK_B=triton.next_power_of_2(batch), PARTS_BLOCK=merge.parts,
                ROWS=merge.rows, COLUMNS=merge.columns, num_warps=4, **dependent,
            )  # fmt: skip
        else:
            merge_kernel[(num_programs * row_blocks,)](
                partial_out, partial_lse, leads, cache_seqlens, out, lse, batch, capacity, n_rows, num_programs,
                RANK=rank, BLOCK_N=tiles.tokens, BLOCK_B=triton.next_power_of_2(batch), PARTS_BLOCK=merge.parts,
                ROWS=merge.rows, num_warps=4, **dependent,
            )  # fmt: skip
    return out, lse
