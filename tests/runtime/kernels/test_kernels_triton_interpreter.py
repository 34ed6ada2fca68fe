"""The Triton kernels themselves, on the CPU through Triton's interpreter (cases in triton_interpreted_*cases.py)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

CASE_FILES = ("triton_interpreted_cases.py", "triton_interpreted_decode_cases.py", "kernel_property_cases.py")


@pytest.mark.parametrize("case_file", CASE_FILES)
def test_triton_kernels_agree_with_the_reference_under_the_interpreter(case_file):
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    cases = Path(__file__).with_name(case_file)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore", str(cases)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    # Every case must have run: a skip here would hide an untested kernel.
    assert re.fullmatch(r"\d+ passed in [\d.]+s( \(.*\))?", summary), summary


# The Triton RoPE module, first imported inside a caller's non-reentrant checkpoint: its import-time probe of
# gradient holders saved a tensor there, and the checkpoint's backward raised CheckpointError (one more tensor saved
# in the forward than in its recomputation). Needs a process that has not imported the module yet.
FIRST_CALL_INSIDE_A_CHECKPOINT = """
import torch
from torch.utils.checkpoint import checkpoint
from seamfix.runtime.kernels import mla_rope_q
cos, sin = torch.rand(4, 4, dtype=torch.float64).float(), torch.rand(4, 4, dtype=torch.float64).float()
def grad(backend):
    q = torch.linspace(-1, 1, 2 * 3 * 8).view(2, 1, 3, 8).requires_grad_()
    checkpoint(lambda q: mla_rope_q(q * 1, cos, sin, 4, 4, backend=backend).square().sum(), q,
               use_reentrant=False).backward()
    return q.grad
torch.testing.assert_close(grad("triton"), grad("torch"))
"""


def test_the_triton_rope_runs_inside_a_checkpoint_on_its_first_call():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", FIRST_CALL_INSIDE_A_CHECKPOINT],
                            capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
