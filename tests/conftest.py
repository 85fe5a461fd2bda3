"""Shared fixtures: repository root, a shrunk copy of the real params, GPU skipping."""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path

import pytest

from vocalsep.env import disable_telemetry

disable_telemetry()

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    """Speed tiers: everything under tests/e2e is `e2e` and `slow` (real servers and processes), so
    `-m "not slow"` is the quick loop; `gpu` tests skip without CUDA."""
    import torch

    e2e = REPO_ROOT / "tests" / "e2e"
    for item in items:
        if Path(str(item.fspath)).is_relative_to(e2e):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.slow)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (none here)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def free_port() -> int:
    """A loopback port nothing listens on (bound, then closed): for a server to take, or to be refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def real_params():
    """The repository's own params.yaml, parsed."""
    from vocalsep.config import load_params

    return load_params(REPO_ROOT / "params.yaml")


def relocate_paths(params, root: Path):
    """The same params with every `paths.*` entry moved under `root`."""
    moved = {f.name: str(root / getattr(params.paths, f.name)) for f in dataclasses.fields(params.paths)}
    return dataclasses.replace(params, paths=dataclasses.replace(params.paths, **moved))


@pytest.fixture
def tmp_params(real_params, tmp_path):
    """Real params with paths under a temporary folder (shrink sections with dataclasses.replace)."""
    return relocate_paths(real_params, tmp_path)


@pytest.fixture(scope="session")
def _onnx_cache(tmp_path_factory) -> Path:
    """One ONNX Runtime graph cache for the session (vocalsep.runtime), never the user's ~/.cache."""
    return tmp_path_factory.mktemp("vocalsep-cache")


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch, _onnx_cache):
    monkeypatch.setenv("TQDM_DISABLE", os.environ.get("TQDM_DISABLE", "1"))
    monkeypatch.setenv("VOCALSEP_CACHE", str(_onnx_cache))
