"""Every backend of the differentiable kernel ops against float64, in float16 at magnitudes near its top.

The property test compares the backends at ordinary magnitudes, where one rounding to the dtype bounds every
error. Near 65504 what matters is where a backend rounds: an intermediate rounded to float16 (a sum over heads, a
product) overflows where float64's result, and a float32 intermediate, fits. This prints, per op, output and
gradient, the relative error against float64 (over the elements float64 finds finite and float16 holds) and how
many elements came out non-finite where float64's fit: a count on one backend and not the other is a difference
in where it rounds (the tenth bad-input round found the reference's ``k_pos_emb`` gradient so; benchmarks/RESULTS.md).
Column ``tensor`` numbers the op's outputs, then its inputs' gradients, in argument order.

Run on a GPU as is, or on the CPU through Triton's interpreter: ``TRITON_INTERPRET=1 python
benchmarks/kernels_16bit_differential.py`` (the reference backend alone where neither is available).
"""

import math

import torch

from seamfix.runtime.kernels import KernelInputError, fused_down_norm_up, mla_rope_kv, mla_rope_q
from seamfix.runtime.kernels.backend import resolve_backend

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
FLOAT16_MAX = 65504.0
MAGNITUDES = (1e2, 3e3, 3e4)  # the spread of the values and of the incoming gradients


def backends() -> list[str]:
    try:
        resolve_backend("triton", DEVICE)
    except KernelInputError:
        return ["torch"]
    return ["torch", "triton"]


def rope_tables(generator: torch.Generator, rows: int, emb_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    angles = torch.rand(rows, emb_dim // 2, generator=generator, dtype=torch.float64) * 2 * math.pi
    freqs = torch.cat((angles, angles), -1)
    # rounded to float16 first: float64 then computes from the tables every float16 run reads
    return freqs.cos().half().double().to(DEVICE), freqs.sin().half().double().to(DEVICE)


def cases(generator: torch.Generator, magnitude: float) -> dict:
    """Each op as ``(function of backend and leaves, leaves, incoming gradients)``, float64 leaves."""

    def spread(*shape: int, scale: float = magnitude) -> torch.Tensor:
        values = torch.randn(shape, generator=generator, dtype=torch.float64) * scale
        return values.clamp(-FLOAT16_MAX / 2, FLOAT16_MAX / 2).to(DEVICE)

    cos, sin = rope_tables(generator, 8, 16)
    return {
        "mla_rope_q": (lambda backend, q: (mla_rope_q(q * 1, cos.to(q.dtype), sin.to(q.dtype), 8, 16,
                                                      backend=backend),),
                       [spread(6, 2, 16, 24)], [spread(6, 2, 16, 24)]),
        "mla_rope_kv": (lambda backend, kv, k_pos_emb: mla_rope_kv(kv, k_pos_emb, cos.to(kv.dtype),
                                                                   sin.to(kv.dtype), 16, 12, 8, backend=backend),
                        [spread(6, 2, 32, 20), spread(6, 2, 1, 16)], [spread(6, 2, 32, 28), spread(6, 2, 32, 8)]),
        "fused_down_norm_up": (lambda backend, x, w_down, w_up, norm_weight: (fused_down_norm_up(
            x, w_down, w_up, norm_weight, 1e-6, backend=backend),),
            [spread(8, 64, scale=magnitude / 100), spread(32, 64, scale=0.2), spread(48, 32, scale=1.0),
             spread(32, scale=2.0)], [spread(8, 48)]),
    }  # fmt: skip


def results(function, leaves, grads, backend: str, dtype: torch.dtype) -> list[torch.Tensor]:
    inputs = [leaf.to(dtype, copy=True).requires_grad_() for leaf in leaves]
    outputs = function(backend, *inputs)
    torch.autograd.backward(outputs, [grad.to(dtype) for grad in grads])
    return [output.detach() for output in outputs] + [leaf.grad for leaf in inputs]


def compare(got: torch.Tensor, exact: torch.Tensor) -> str:
    held = exact.isfinite() & (exact.abs() < FLOAT16_MAX)
    overflowed = int((~got.isfinite() & held).sum())
    both = held & got.isfinite()
    error = ((got.double() - exact)[both].norm() / exact[both].norm().clamp_min(1e-300)).item() if both.any() else 0.0
    return f"{error:8.1e} {overflowed:5d}"


def main() -> None:
    generator = torch.Generator().manual_seed(16)
    names = backends()
    print(f"{'op':20} {'magnitude':>9} {'tensor':>7}  " + "  ".join(f"{name:>14}" for name in names))
    print(f"{'':20} {'':>9} {'':>7}  " + "  ".join(f"{'error  non-fin':>14}" for _ in names))
    for magnitude in MAGNITUDES:
        for op, (function, leaves, grads) in cases(generator, magnitude).items():
            # float64 from the float16-rounded inputs: the error of the computation, not of the inputs' rounding
            rounded = [leaf.half().double() for leaf in leaves]
            exact = results(function, rounded, [grad.half().double() for grad in grads], "torch", torch.float64)
            per_backend = [results(function, rounded, grads, name, torch.float16) for name in names]
            for index, expected in enumerate(exact):
                row = "  ".join(f"{compare(got[index], expected):>14}" for got in per_backend)
                print(f"{op:20} {magnitude:9.0e} {index:7d}  {row}")


if __name__ == "__main__":
    main()
