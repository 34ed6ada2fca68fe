"""Real megatron-core releases for the adapter tests: every PyPI release from 0.11, each in its own folder.

The folders are made by the first test session that needs them (``pip install --no-deps --target``) and kept in
``tests/.cache/megatron-core``; megatron-core's own runtime needs (torch, numpy, packaging) come from the test
environment. ``megatron_worker.py`` runs in a subprocess with one release on PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

RELEASES = ("0.11.0", "0.12.3", "0.13.1", "0.14.0", "0.15.3", "0.16.1")
"""The newest patch of each minor release on PyPI from 0.11 to 0.16."""
NEWEST = RELEASES[-1]
CACHE = Path(__file__).resolve().parents[2] / ".cache" / "megatron-core"
WORKER = Path(__file__).with_name("megatron_worker.py")


def release_dir(version: str) -> Path:
    """A folder holding megatron-core ``version`` alone, installed on first use."""
    target = CACHE / version
    if not target.is_dir():
        staging = CACHE / f".{version}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        command = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(staging)]
        subprocess.run([*command, f"megatron-core=={version}"], check=True, timeout=600)
        staging.rename(target)  # only a finished install gets the real name
    return target


def worker(version: str, *arguments: str) -> subprocess.Popen:
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(release_dir(version)), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.Popen(
        [sys.executable, str(WORKER), *arguments],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def worker_output(process: subprocess.Popen) -> dict:
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-6000:]
    return json.loads(stdout.splitlines()[-1])
