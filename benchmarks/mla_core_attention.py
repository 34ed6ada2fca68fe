"""Which of PyTorch's fused attention kernels run MLA's shapes (keys 192 wide, values 128), and how fast (issue 18).

For each sequence length: forward + backward of causal attention, ``[b, heads, s, width]`` bfloat16, through
``scaled_dot_product_attention`` with each backend forced (flash, cuDNN, memory-efficient), with the values padded
to the key width (so flash applies) and with torch's own choice, against Megatron's materialized local path
(``baddbmm`` scores, masked float32 softmax, ``bmm``) where it fits. Correctness: every variant's output and
gradients against a float32 materialized reference at s=1024 (largest absolute difference). Medians of CUDA-event
timings. One JSON line per measurement to $OUT/mla_core_attention.jsonl.
"""

import argparse
import json
import os
import statistics
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.functional import pad, scaled_dot_product_attention

HEADS, K_WIDTH, V_WIDTH = 16, 192, 128
SCALE = K_WIDTH**-0.5


def materialized(query, key, value):
    """Megatron's local path: scaled scores, -10000 above the diagonal, float32 softmax, probabilities times values."""
    scores = torch.matmul(query, key.transpose(-1, -2)) * SCALE
    size = scores.size(-1)
    hidden = torch.ones(size, size, dtype=torch.bool, device=scores.device).triu(1)
    probabilities = scores.float().masked_fill(hidden, -10000.0).softmax(-1).to(value.dtype)
    return torch.matmul(probabilities, value)


def fused(backend=None, padded=False):
    def attend(query, key, value):
        width = value.size(-1)
        if padded:
            value = pad(value, (0, key.size(-1) - width))
        if backend is None:
            return scaled_dot_product_attention(query, key, value, is_causal=True, scale=SCALE)[..., :width]
        with sdpa_kernel([backend]):
            return scaled_dot_product_attention(query, key, value, is_causal=True, scale=SCALE)[..., :width]

    return attend


VARIANTS = {
    "materialized": materialized,
    "auto": fused(),
    "flash_padded_v": fused(SDPBackend.FLASH_ATTENTION, padded=True),
    "cudnn": fused(SDPBackend.CUDNN_ATTENTION),
    "efficient": fused(SDPBackend.EFFICIENT_ATTENTION),
    "flash": fused(SDPBackend.FLASH_ATTENTION),
    "auto_padded_v": fused(padded=True),
}


def inputs(batch, tokens, dtype, seed=0):
    generator = torch.Generator(device="cuda").manual_seed(seed)
    shapes = [(batch, HEADS, tokens, width) for width in (K_WIDTH, K_WIDTH, V_WIDTH)]
    return [torch.randn(shape, generator=generator, device="cuda", dtype=dtype).requires_grad_() for shape in shapes]


def forward_backward(attend, tensors, upstream):
    output = attend(*tensors)
    output.backward(upstream)
    return [output, *(tensor.grad for tensor in tensors)]


def check(name, attend):
    reference_inputs = inputs(2, 1024, torch.float32)
    upstream = torch.randn(2, HEADS, 1024, V_WIDTH, device="cuda")
    reference = forward_backward(materialized, reference_inputs, upstream)
    tested = [tensor.detach().bfloat16().requires_grad_() for tensor in reference_inputs]
    try:
        results = forward_backward(attend, tested, upstream.bfloat16())
    except RuntimeError as error:
        return {"variant": name, "runs": False, "error": str(error).splitlines()[0][:200]}
    difference = max(float((a.float() - b).abs().max()) for a, b in zip(results, reference, strict=True))
    return {"variant": name, "runs": True, "largest_difference_vs_float32": round(difference, 5)}


def time_variant(name, attend, batch, tokens, repeats):
    tensors = inputs(batch, tokens, torch.bfloat16)
    upstream = torch.randn(batch, HEADS, tokens, V_WIDTH, device="cuda", dtype=torch.bfloat16)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    try:
        times = []
        for _ in range(repeats + 1):
            for tensor in tensors:
                tensor.grad = None
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            forward_backward(attend, tensors, upstream)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
    except (RuntimeError, torch.OutOfMemoryError) as error:
        return {"variant": name, "tokens": tokens, "error": str(error).splitlines()[0][:200]}
    flops = batch * HEADS * tokens * tokens * (K_WIDTH + V_WIDTH) * 3.5  # causal forward, backward 2.5x it
    median = statistics.median(times[1:])
    return {
        "variant": name,
        "tokens": tokens,
        "batch": batch,
        "fwd_bwd_ms_median": round(median, 3),
        "tflops": round(flops / median / 1e9, 1),
        "extra_peak_gib": round((torch.cuda.max_memory_allocated() - base) / 2**30, 2),
    }


def write_rows(rows: list[dict], path: Path) -> None:
    """Print each row as a line of JSON and append it to ``path``."""
    with path.open("a") as log:
        for row in rows:
            print(json.dumps(row), flush=True)
            log.write(json.dumps(row) + "\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    arguments = parser.parse_args()
    out = Path(os.environ.get("OUT", "out"))
    out.mkdir(parents=True, exist_ok=True)
    rows = [{"torch": torch.__version__, "device": torch.cuda.get_device_name()}]
    rows += [check(name, attend) for name, attend in VARIANTS.items()]
    for tokens in arguments.tokens:
        for name, attend in VARIANTS.items():
            if name == "materialized" and tokens > 8192:
                continue  # scores alone: b x 16 x s x s float32, 34 GiB at s=16384, and several copies of them
            rows.append(time_variant(name, attend, arguments.batch, tokens, arguments.repeats))
            torch.cuda.empty_cache()
    write_rows(rows, out / "mla_core_attention.jsonl")


if __name__ == "__main__":
    main()
