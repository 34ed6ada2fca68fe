"""fused_down_norm_up (torch backend): same values and gradients as the unfused chain, and a small saved state."""

import pytest
import torch
import torch.nn.functional as F
from kernels_case_inputs import TOLERANCE, random, relative_error

from seamfix.runtime.kernels import KernelInputError, fused_down_norm_up

HIDDEN, RANK, OUT, EPS = 16, 12, 20, 1e-6
TOKENS = (3, 4)


def weights(dtype: torch.dtype, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    return (
        random((RANK, HIDDEN), dtype, generator) / HIDDEN**0.5,
        random((OUT, RANK), dtype, generator) / RANK**0.5,
        1.0 + 0.1 * random((RANK,), dtype, generator),
    )


def unfused(x, w_down, w_up, norm_weight):
    return F.linear(F.rms_norm(F.linear(x, w_down), (RANK,), norm_weight, EPS), w_up)


@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16, torch.float64))
def test_values_and_gradients_equal_the_unfused_chain(dtype):
    generator = torch.Generator().manual_seed(3)
    inputs = [t.requires_grad_() for t in (random((*TOKENS, HIDDEN), dtype, generator), *weights(dtype, generator))]
    grad_out = random((*TOKENS, OUT), dtype, generator)
    reference_inputs = [t.detach().double().requires_grad_() for t in inputs]
    expected = unfused(*reference_inputs)
    expected_grads = torch.autograd.grad(expected, reference_inputs, grad_out.double())

    out = fused_down_norm_up(*inputs, EPS, backend="torch")
    grads = torch.autograd.grad(out, inputs, grad_out)

    # bf16 rounds the latent and the normalized latent once each, so allow a few roundings.
    tolerance = 3 * TOLERANCE[dtype]
    assert relative_error(out, expected) < tolerance
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        assert relative_error(grad, expected_grad) < tolerance


def test_gradcheck():
    generator = torch.Generator().manual_seed(4)
    inputs = tuple(
        t.requires_grad_()
        for t in (random((*TOKENS, HIDDEN), torch.float64, generator), *weights(torch.float64, generator))
    )
    assert torch.autograd.gradcheck(lambda *args: fused_down_norm_up(*args, EPS, backend="torch"), inputs)


def test_saves_only_inputs_weights_and_one_rstd_per_token():
    generator = torch.Generator().manual_seed(5)
    x = random((*TOKENS, HIDDEN), torch.float32, generator).requires_grad_()
    params = [t.requires_grad_() for t in weights(torch.float32, generator)]
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        fused_down_norm_up(x, *params, EPS, backend="torch")

    tokens = TOKENS[0] * TOKENS[1]
    expected_bytes = 4 * (x.numel() + sum(p.numel() for p in params) + tokens)
    assert sum(t.numel() * t.element_size() for t in saved) == expected_bytes
    assert sorted(t.shape for t in saved) == sorted([x.shape, *(p.shape for p in params), torch.Size([tokens])])


@pytest.mark.parametrize(
    ("w_down_shape", "message"),
    [((RANK, HIDDEN + 1), r"w_down must have shape \[\*, 16\]"), ((RANK + 1, HIDDEN), r"w_up must have shape")],
)
def test_rejects_mismatched_weights(w_down_shape, message):
    with pytest.raises(KernelInputError, match=message):
        fused_down_norm_up(
            torch.ones(2, HIDDEN), torch.ones(w_down_shape), torch.ones(OUT, RANK), torch.ones(RANK), EPS
        )


def test_rejects_mixed_dtypes():
    with pytest.raises(KernelInputError, match="w_up must have x's dtype"):
        fused_down_norm_up(
            torch.ones(2, HIDDEN), torch.ones(RANK, HIDDEN), torch.ones(OUT, RANK).double(), torch.ones(RANK), EPS
        )
