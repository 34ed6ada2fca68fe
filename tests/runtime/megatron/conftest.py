"""Fixtures over real megatron-core releases (see ``megatron_releases``)."""

from __future__ import annotations

import sys

import pytest
from megatron_releases import NEWEST, release_dir, worker, worker_output


@pytest.fixture(scope="session")
def release_checks(tmp_path_factory):
    """``release_checks(version)``: the worker's one-process checks on that release, run once per session."""
    results: dict[str, dict] = {}

    def checks(version: str) -> dict:
        if version not in results:
            rendezvous = tmp_path_factory.mktemp("gloo") / "rendezvous"
            results[version] = worker_output(worker(version, "checks", rendezvous.as_uri()))
        return results[version]

    return checks


@pytest.fixture(scope="session")
def seam():
    """``seamfix.runtime.megatron`` imported in this process, on the newest release."""
    path = str(release_dir(NEWEST))
    sys.path.insert(0, path)
    try:
        import seamfix.runtime.megatron

        yield seamfix.runtime.megatron
    finally:
        sys.path.remove(path)
