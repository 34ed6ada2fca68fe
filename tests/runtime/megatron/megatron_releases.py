"""Real megatron-core releases for the adapter tests: every PyPI release from 0.11, each in its own folder, and
Megatron-Core main (0.20) from the snapshot in ``<repo>/../shared/upstream``.

The folders are made by the first test session that needs them (``pip install --no-deps --target``, or the
snapshot's ``megatron/core`` extracted) and kept in ``tests/.cache/megatron-core``; megatron-core's own runtime
needs (torch, numpy, packaging, and triton for main) come from the test environment. ``megatron_worker.py`` runs
in a subprocess with one release on PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

PYPI_RELEASES = ("0.11.0", "0.12.3", "0.13.1", "0.14.0", "0.15.3", "0.16.1")
"""The newest patch of each minor release on PyPI from 0.11 to 0.16."""
MAIN = "main"
RELEASES = (*PYPI_RELEASES, MAIN)
NEWEST = PYPI_RELEASES[-1]
"""The release the in-process tests import (the test environment's own megatron-core)."""
VERSIONS = {**{release: release for release in PYPI_RELEASES}, MAIN: "0.20.0"}
"""The ``megatron.core.package_info.__version__`` of each release."""
REPOSITORY = Path(__file__).resolve().parents[3]
CACHE = REPOSITORY / "tests" / ".cache" / "megatron-core"
SNAPSHOT = REPOSITORY.parent / "shared" / "upstream" / "megatron-lm-main-d98e8a6.tar.gz"
WORKER = Path(__file__).with_name("megatron_worker.py")
TYPING_OVERRIDE = """\
# Megatron-Core main imports typing.override (Python 3.12); the suite runs on 3.11.
import typing

if not hasattr(typing, "override"):
    import typing_extensions

    typing.override = typing_extensions.override
"""


def minor(release: str) -> tuple[int, int]:
    major, minor_, _ = VERSIONS[release].split(".")
    return int(major), int(minor_)


def release_dir(release: str) -> Path:
    """A folder holding megatron-core ``release`` alone, installed on first use."""
    target = CACHE / (f"{MAIN}-{SNAPSHOT.name.split('-')[-1].removesuffix('.tar.gz')}" if release == MAIN else release)
    if not target.is_dir():
        staging = CACHE / f".{target.name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        if release == MAIN:
            _extract_snapshot(staging)
        else:
            command = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(staging)]
            subprocess.run([*command, f"megatron-core=={release}"], check=True, timeout=600)
        staging.rename(target)  # only a finished install gets the real name
    return target


def _extract_snapshot(staging: Path) -> None:
    if not SNAPSHOT.is_file():
        pytest.skip(f"the Megatron-Core main snapshot is not at {SNAPSHOT}")
    staging.mkdir(parents=True)
    with tarfile.open(SNAPSHOT) as archive:
        members = []
        for member in archive.getmembers():
            member.name = member.name.partition("/")[2]  # the archive's top folder, megatron-lm-<commit>
            if member.isfile() and (member.name.startswith("megatron/core/") or member.name == "LICENSE"):
                members.append(member)
        archive.extractall(staging, members=members, filter="data")
    (staging / "sitecustomize.py").write_text(TYPING_OVERRIDE)


def environment_with(release: str, *paths: Path) -> dict[str, str]:
    """The environment of a process that imports ``release`` (and ``paths`` before it)."""
    path = [*map(str, paths), str(release_dir(release)), os.environ.get("PYTHONPATH")]
    # NO_VCS_VERSION: main's package_info would append the commit of whatever git checkout it sits in.
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path)), "NO_VCS_VERSION": "1"}


def worker(release: str, *arguments: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *arguments],
        env=environment_with(release),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def worker_output(process: subprocess.Popen) -> dict:
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-6000:]
    return json.loads(stdout.splitlines()[-1])
