"""The real export stage registers and promotes; a real `mlflow models serve` answers HTTP with the champion."""

from __future__ import annotations

import base64
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from tests.serving_helpers import RATE, SOURCES, TINY, post, start_server, stop_group, tiny_params
from tests.tiny_repo import run, venv_env
from vocalsep.config import params_to_dict
from vocalsep.model import VocNet, load_model, save_checkpoint
from vocalsep.separate import separate_with_params
from vocalsep.stages.export import export

pytestmark = [pytest.mark.slow, pytest.mark.e2e]



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


@pytest.fixture
def stage(tmp_path, monkeypatch):
    params = tiny_params(tmp_path)
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

    # what the champion learned from, over HTTP (the documented request of docs/serving.md)
    status, answer = post(port, {"inputs": [[0.0, 0.0]], "params": {"provenance": "json"}})
    assert status == 200, answer
    origin = answer["predictions"]["provenance"]
    assert [s["url"] for s in origin["sources"]] == [s["url"] for s in SOURCES]
    assert origin["licenses"] == ["CC-BY-4.0", "CC0-1.0"] and origin["git_sha"]

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
    registry = json.loads((Path(stage.paths.export) / "registry.json").read_text())
    assert (registry["version"], registry["decision"], registry["champion_version"]) == ("2", "challenger", "1")
    numbers = json.loads((Path(stage.paths.metrics) / "registry.json").read_text())
    assert numbers == {"version": 2, "promoted": 0, "champion_version": 1, "new_metric": registry["new_metric"],
                       "champion_metric": registry["champion_metric"]}

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=stage.tracking.uri)
    assert str(client.get_model_version_by_alias(stage.export.registered_model, "champion").version) == "1"
    assert str(client.get_model_version_by_alias(stage.export.registered_model, "challenger").version) == "2"
