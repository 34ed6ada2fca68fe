"""Backend choice shared by every kernel, and importing the package without triton."""

import subprocess
import sys

import pytest
import torch

from seamfix.runtime.kernels import KernelInputError
from seamfix.runtime.kernels.backend import resolve_backend

CPU = torch.device("cpu")


def test_auto_picks_the_reference_on_cpu_even_under_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve_backend("auto", CPU) == "torch"


def test_explicit_triton_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(KernelInputError, match="TRITON_INTERPRET=1"):
        resolve_backend("triton", CPU)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve_backend("triton", CPU) == "triton"


def test_unknown_backend_is_rejected():
    with pytest.raises(KernelInputError, match="backend must be one of"):
        resolve_backend("cuda", CPU)


def test_package_imports_and_runs_the_reference_without_triton():
    script = (
        "import sys; sys.modules['triton'] = None\n"  # a None entry makes `import triton` fail
        "import torch\n"
        "from seamfix.runtime.kernels import mla_rope_q\n"
        "q = torch.randn(2, 1, 1, 4)\n"
        "mla_rope_q(q, torch.ones(2, 2), torch.zeros(2, 2), 2, 2)\n"
        "assert 'triton' not in {m.split('.')[0] for m in sys.modules if sys.modules[m] is not None}\n"
        "print('ok')\n"
    )
    assert _output_of_a_fresh_process(script) == "ok"


def test_a_compiled_caller_gets_no_dynamo_warning_from_the_backend_choice():
    """Found on the H200 (2026-12-02): every op called inside ``torch.compile`` warned that Dynamo "ignores the cache
    wrapper" of ``functools.cache`` around the triton probe, and that "silent incorrectness is a potential risk", a
    warning a user cannot act on. Dynamo warns once a process, so the call runs in a fresh one."""
    script = (
        "import warnings, torch\n"
        "from seamfix.runtime.kernels import mla_rope_q\n"
        "q = torch.randn(3, 2, 4, 96)\n"
        "def rotated(q):\n"
        "    return mla_rope_q(q, torch.ones(8, 32), torch.zeros(8, 32), 64, 32, backend='torch')\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    got = torch.compile(rotated, backend='eager')(q)\n"
        "assert torch.equal(got, rotated(q))\n"
        "print([str(warning.message) for warning in caught if 'Dynamo' in str(warning.message)])\n"
    )
    assert _output_of_a_fresh_process(script) == "[]"


def _output_of_a_fresh_process(script: str) -> str:
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()
