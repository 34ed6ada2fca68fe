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
