"""The real export stage registers and promotes; a real `mlflow models serve` answers HTTP with the champion."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from tests.conftest import REPO_ROOT, relocate_paths
from tests.tiny_repo import run, venv_env
from vocalsep.config import load_params, params_to_dict
from vocalsep.model import VocNet, load_model, save_checkpoint
from vocalsep.separate import separate_with_params
from vocalsep.stages.export import export

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

TINY = {"filters": 4, "skip_filters": 6, "layers": 4, "layers_per_stack": 2}
RATE = 8000
PING_TIMEOUT = 120.0


def stage_params(root: Path):
    params = relocate_paths(load_params(REPO_ROOT / "params.yaml"), root)
    return dataclasses.replace(
        params,
        audio=dataclasses.replace(params.audio, sample_rate=RATE),
        separate=dataclasses.replace(params.separate, chunk_seconds=0.05, overlap_seconds=0.01, device="cpu"),
        export=dataclasses.replace(params.export, max_seconds=1.0),
        tracking=dataclasses.replace(params.tracking, uri=f"sqlite:///{root}/mlruns/mlflow.db",
                                     artifacts=str(root / "mlruns" / "artifacts")),
    )


def train_stage_outputs(params, seed: int, si_sdr: float) -> Path:
    """What train and evaluate leave for export: a tiny best.pt and an eval.json claiming `si_sdr`."""
    torch.manual_seed(seed)
    checkpoint = Path(params.paths.checkpoints) / "best.pt"
    save_checkpoint(checkpoint, VocNet(**TINY), TINY, params=params_to_dict(params))
    metrics = Path(params.paths.metrics)
    metrics.mkdir(parents=True, exist_ok=True)
    (metrics / "eval.json").write_text(json.dumps({"sdr": si_sdr - 1, "si_sdr": si_sdr, "si_sdri": 1.0,
                                                   "mixture_sdr": 0.0, "tracks": 2}))
    return checkpoint


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(port: int, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def wait_for_ping(server: subprocess.Popen, port: int, log: Path) -> bool:
    """True once /ping answers; False if the server died because the port was taken meanwhile."""
    deadline = time.monotonic() + PING_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            if "address already in use" in log.read_text().lower():
                return False
            pytest.fail(f"mlflow models serve exited {server.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as answer:
                if answer.status == 200:
                    return True
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"no /ping answer within {PING_TIMEOUT:.0f} s:\n{log.read_text()[-4000:]}")


def start_server(model_uri: str, tracking_uri: str, folder: Path, attempts: int = 3) -> tuple[subprocess.Popen, int]:
    """A real `mlflow models serve` on a free loopback port, answering /ping; another port if one was taken."""
    for _ in range(attempts):
        port, log = free_port(), folder / "serve.log"
        cmd = ["mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local", "-h", "127.0.0.1",
               "-p", str(port)]
        with log.open("w") as out:
            process = subprocess.Popen(cmd, cwd=folder, env=venv_env({"MLFLOW_TRACKING_URI": tracking_uri}),
                                       stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            if wait_for_ping(process, port, log):
                return process, port
        except BaseException:
            stop_group(process)
            raise
    pytest.fail(f"mlflow models serve found no free port in {attempts} attempts")


def stop_group(process: subprocess.Popen) -> None:
    """End the server and the workers it forked (its own process group)."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:  # the whole group is already gone
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def stage(tmp_path, monkeypatch):
    params = stage_params(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", params.tracking.uri)
    return params


@pytest.fixture
def server(stage, tmp_path):
    """Export a first model (it becomes champion), then serve `models:/vocalsep@champion`; yields the port."""
    checkpoint = train_stage_outputs(stage, seed=0, si_sdr=2.0)
    record = export(stage, lock=tmp_path / "dvc.lock")
    assert record["decision"] == "champion" and record["version"] == "1"
    assert (Path(stage.paths.export) / "model.ts").is_file() and (Path(stage.paths.export) / "model.onnx").is_file()
    process, port = start_server(f"models:/{stage.export.registered_model}@champion", stage.tracking.uri, tmp_path)
    try:
        yield port, checkpoint
    finally:
        stop_group(process)


def test_serve_register_and_promote(stage, server, tmp_path):
    port, checkpoint = server
    model = load_model(checkpoint)
    mixture = (0.1 * np.random.default_rng(0).standard_normal((1500, 2))).astype(np.float32)
    expected = separate_with_params(model, mixture.T, RATE, stage.separate).T

    status, answer = post(port, {"inputs": mixture.tolist()})
    assert status == 200, answer
    np.testing.assert_allclose(np.asarray(answer["predictions"], np.float32), expected, atol=1e-4, rtol=0)

    buffer = io.BytesIO()
    sf.write(buffer, mixture, RATE, format="WAV", subtype="FLOAT")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    status, answer = post(port, {"inputs": [[0.0, 0.0]], "params": {"audio_base64": encoded}})
    assert status == 200, answer
    vocals, rate = sf.read(io.BytesIO(base64.b64decode(answer["predictions"]["vocals_base64"])), dtype="float32")
    assert rate == RATE
    np.testing.assert_allclose(vocals, expected, atol=1e-4, rtol=0)

    too_long = np.zeros((RATE + 1, 2), np.float32).tolist()
    bad_requests = {
        "audio_base64": {"inputs": [[0.0, 0.0]], "params": {"audio_base64": "%%% not base64 %%%"}},
        "not decodable audio": {"inputs": [[0.0, 0.0]],
                                "params": {"audio_base64": base64.b64encode(b"no audio" * 50).decode()}},
        "shape": {"inputs": [[0.1, 0.2, 0.3]]},
        "float": {"inputs": [["left", "right"]]},
        "longer than the limit": {"inputs": too_long},
    }
    for words, body in bad_requests.items():
        status, answer = post(port, body)
        assert 400 <= status < 500, (words, status, answer)
        assert words in answer["message"], (words, answer)

    # A worse model through the stage's own command line (ONNX checked above): champion stays at version 1.
    train_stage_outputs(stage, seed=1, si_sdr=1.0)
    values = json.loads(json.dumps(params_to_dict(stage)))
    values["export"]["onnx"] = False
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(values))
    run([sys.executable, "-m", "vocalsep.stages.export", "--params", str(params_file)], cwd=tmp_path,
        env=venv_env({"MLFLOW_TRACKING_URI": stage.tracking.uri}))
    registry = json.loads((Path(stage.paths.metrics) / "registry.json").read_text())
    assert (registry["version"], registry["decision"], registry["champion_version"]) == ("2", "challenger", "1")

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=stage.tracking.uri)
    assert str(client.get_model_version_by_alias(stage.export.registered_model, "champion").version) == "1"
    assert str(client.get_model_version_by_alias(stage.export.registered_model, "challenger").version) == "2"
