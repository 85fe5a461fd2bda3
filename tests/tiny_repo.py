"""A throw-away copy of this repository with a tiny params profile, for end-to-end tests.

The copy is a real git + DVC workspace, so `dvc repro`, Prefect flows and
MLflow run in it exactly as they run in a user's clone; only the sizes shrink.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from vocalsep.config import load_params
from vocalsep.demo.corpus import write_manifest
from vocalsep.env import TELEMETRY_OFF

REPO_ROOT = Path(__file__).resolve().parents[1]

# Shrinks the real params.yaml: a few short demo files, a tiny network, one short epoch.
TINY_OVERRIDES = {
    "demo": {"acapellas": 4, "instrumentals": 4, "min_seconds": 5.0, "max_seconds": 6.0},
    "download": {"retries": 1, "backoff_seconds": 0.1, "socket_timeout": 10.0},
    "normalize": {"workers": 1},
    "validate": {"min_seconds": 2.0, "min_files_per_role": 3},
    "index": {"testset_tracks": 2, "testset_seconds": 3.0},
    "model": {"filters": 8, "skip_filters": 8, "layers": 4, "layers_per_stack": 4},
    "data": {"examples_per_epoch": 16, "val_examples": 4},
    "train": {"epochs": 1, "batch_size": 4, "log_every": 2},
    "separate": {"chunk_seconds": 2.0, "batch_size": 2},
    "evaluate": {"audio_examples": 1},
}


def merge(base: dict, overrides: dict) -> dict:
    """Nested dict update, returning a new dict."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


def venv_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for subprocesses: this interpreter's bin first on PATH, telemetry off."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update({**TELEMETRY_OFF, "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"})
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update(extra or {})
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    """Run a command, return stdout+stderr; raise with the output when it fails."""
    proc = subprocess.run(cmd, cwd=cwd, env=env or venv_env(), capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{output[-6000:]}")
    return output


def tracked_files(root: Path = REPO_ROOT) -> list[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                         cwd=root, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line and (root / line).is_file()]


def write_params(repo: Path, overrides: dict) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump(merge(params, overrides), sort_keys=False))


def copy_repo(src: Path, dst: Path) -> Path:
    """A copy of a tiny repo in the state it is in (git, DVC cache, results, MLflow store), for one test to
    change as it likes: tests that share a repo built once stay independent of each other's order.

    The copy's MLflow store still names the original's artifact folder (an absolute URI): new runs of
    the copy write their artifacts there, under new run ids, which changes nothing another copy reads.
    """
    shutil.copytree(src, dst, symlinks=True)
    return dst


def make_tiny_repo(dst: Path, overrides: dict | None = None) -> Path:
    """Copy the repository's files to `dst`, shrink params, and commit it as a fresh git repo."""
    dst.mkdir(parents=True, exist_ok=True)
    for rel in tracked_files():
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / rel, target)
    write_params(dst, merge(TINY_OVERRIDES, overrides or {}))
    # the demo manifest must list exactly the files the shrunk demo stage writes
    write_manifest(load_params(dst / "params.yaml"), dst / "sources/demo.yaml", root=dst)
    git = ["git", "-c", "user.email=test@vocalsep", "-c", "user.name=vocalsep tests"]
    run(["git", "init", "-q"], dst)
    run(git + ["add", "-A"], dst)
    run(git + ["commit", "-qm", "tiny copy for tests"], dst)
    return dst
