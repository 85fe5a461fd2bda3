"""The train stage as real processes: killed with SIGKILL and resumed; two DDP ranks under torchrun."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.model.corpus import tiny_params, write_corpus
from vocalsep.config import params_to_dict
from vocalsep.model import load_checkpoint

VENV_BIN = Path(sys.executable).parent


def _write_params(params, path: Path) -> Path:
    path.write_text(yaml.safe_dump(json.loads(json.dumps(params_to_dict(params)))))
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _stage(params_file: Path, cwd: Path, launcher: list[str] | None = None) -> subprocess.Popen:
    command = (launcher or [sys.executable]) + ["-m", "vocalsep.stages.train", "--params", str(params_file)]
    return subprocess.Popen(command, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen, timeout: float = 240) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output
    return output


def _wait_for_line(process: subprocess.Popen, text: str) -> str:
    """Read the process's output until a line contains `text` and return it: an event, not a poll.
    Fails if the process ends first (its whole output is in the message)."""
    seen = []
    for line in process.stdout:
        seen.append(line)
        if text in line:
            return line
    pytest.fail(f"the process ended before printing {text!r}:\n{''.join(seen)[-3000:]}")


@pytest.fixture
def corpus(tmp_params, tmp_path, mlflow_db):
    write_corpus(tmp_path)
    return tiny_params(tmp_params, tmp_path)


@pytest.mark.slow
@pytest.mark.e2e
def test_sigkill_mid_training_then_resume_reaches_planned_steps(corpus, tmp_path):
    params = dataclasses.replace(corpus, train=dataclasses.replace(
        corpus.train, epochs=6, early_stopping_patience=100, checkpoint_every=2))
    planned = 6 * 8
    params_file = _write_params(params, tmp_path / "tiny.yaml")
    last = tmp_path / "models/checkpoints/last.pt"

    process = _stage(params_file, tmp_path)
    # the first epoch's report comes after the checkpoints of steps 2, 4 and 6; the kill follows at once,
    # 40 steps before the end, whatever the machine's load
    _wait_for_line(process, "epoch 0 step 8: val")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    killed_at = load_checkpoint(last)["step"]
    assert 0 < killed_at < planned
    run_id = load_checkpoint(last)["mlflow_run_id"]

    output = _finish(_stage(params_file, tmp_path))
    assert f"resuming from {last} at step {killed_at}" in output
    summary = json.loads((tmp_path / "metrics/train.json").read_text())
    assert summary["steps"] == planned and summary["epochs"] == 6
    final = load_checkpoint(last)
    assert final["step"] == planned and final["mlflow_run_id"] == run_id
    steps = [int(r.split(",")[0]) for r in (tmp_path / "plots/train_loss.csv").read_text().split()[1:]]
    assert steps == list(range(2, planned + 1, 2))  # no gap and no repeat across the kill


@pytest.mark.slow
@pytest.mark.e2e
def test_torchrun_two_ranks_take_the_single_process_steps(corpus, tmp_path):
    single_dir, ddp_dir = tmp_path / "single", tmp_path / "ddp"
    for folder, name in ((single_dir, "single"), (ddp_dir, "ddp")):
        folder.mkdir()
        moved = {f.name: str(folder / f.name) for f in dataclasses.fields(corpus.paths)
                 if f.name in ("checkpoints", "metrics", "plots")}
        params = dataclasses.replace(corpus, paths=dataclasses.replace(corpus.paths, **moved))
        _write_params(params, folder / f"{name}.yaml")

    _finish(_stage(single_dir / "single.yaml", tmp_path))
    torchrun = [str(VENV_BIN / "torchrun"), "--standalone", "--nproc_per_node=2"]
    _finish(_stage(ddp_dir / "ddp.yaml", tmp_path, launcher=torchrun))

    single = json.loads((single_dir / "metrics/train.json").read_text())
    ddp = json.loads((ddp_dir / "metrics/train.json").read_text())
    assert ddp["steps"] == single["steps"] == corpus.train.epochs * 8
    one, two = (load_checkpoint(d / "checkpoints/last.pt") for d in (single_dir, ddp_dir))
    assert two["step"] == one["step"]
    # same examples per step and averaged gradients: the weights agree up to float rounding
    for name, weight in one["state"].items():
        assert torch.allclose(weight, two["state"][name], atol=1e-4), name


@pytest.mark.slow
@pytest.mark.e2e
def test_a_run_killed_before_its_first_checkpoint_is_marked_killed_by_the_next(corpus, tmp_path):
    """SIGKILL leaves the MLflow run RUNNING; the next start ends it as KILLED instead of leaving an orphan."""
    import mlflow

    params = dataclasses.replace(corpus, train=dataclasses.replace(corpus.train, epochs=1, checkpoint_every=10_000),
                                 data=dataclasses.replace(corpus.data, examples_per_epoch=4000))
    params_file = _write_params(params, tmp_path / "tiny.yaml")
    client = mlflow.MlflowClient(params.tracking.uri)
    process = _stage(params_file, tmp_path)
    deadline = time.monotonic() + 120
    running = []
    while not running and time.monotonic() < deadline:
        assert process.poll() is None, "training ended before it could be killed"
        time.sleep(0.2)
        if not (tmp_path / "mlruns/mlflow.db").exists():
            continue
        try:  # the training process may still be creating the store's tables
            experiment = client.get_experiment_by_name(params.tracking.experiment)
            running = client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")
        except Exception:  # noqa: BLE001 - not ready yet
            running = []
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not (tmp_path / "models/checkpoints/last.pt").exists()
    orphan = running[0].info.run_id

    short = dataclasses.replace(params, data=dataclasses.replace(params.data, examples_per_epoch=16))
    output = _finish(_stage(_write_params(short, tmp_path / "short.yaml"), tmp_path))
    assert f"marked KILLED the MLflow run(s) {orphan}" in output
    assert client.get_run(orphan).info.status == "KILLED"
    statuses = [r.info.status for r in client.search_runs([running[0].info.experiment_id])]
    assert sorted(statuses) == ["FINISHED", "KILLED"]
