"""vocalsep.tracking: which store it picks, where artifacts go, resuming runs, params and audio."""

from __future__ import annotations

import dataclasses
import os

import mlflow
import numpy as np
import pytest
import soundfile as sf

from vocalsep import tracking
from vocalsep.config import Params, TrackingParams


@pytest.fixture
def store(tmp_path, mlflow_db, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return TrackingParams(uri=f"sqlite:///{mlflow_db}", artifacts=str(tmp_path / "art"), experiment="t")


def test_environment_variable_overrides_params_uri(store, monkeypatch):
    assert tracking.tracking_uri(store) == store.uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking.tracking_uri(store) == "http://127.0.0.1:5999"


def test_configure_leaves_no_environment_override(store, tmp_path, mlflow_db):
    """A second store configured later in the same process is the one used (MLflow exports the URI)."""
    tracking.configure(store)
    assert "MLFLOW_TRACKING_URI" not in os.environ
    other_db = tmp_path / "other.db"
    other_db.write_bytes(mlflow_db.read_bytes())
    other = TrackingParams(uri=f"sqlite:///{other_db}", artifacts=str(tmp_path / "art2"), experiment="t2")
    assert tracking.configure(other) == other.uri
    assert mlflow.get_tracking_uri() == other.uri


def test_run_logs_params_audio_and_resumes(store, tmp_path):
    params = Params()
    with tracking.start_run(store, run_name="first") as run_id:
        tracking.log_params_flat(params)
        tracking.log_metrics({"loss": 0.5}, step=3)
        tracking.log_audio("tone", np.full((2, 800), 0.25, dtype=np.float32), 8000)
    changed = dataclasses.replace(params, train=dataclasses.replace(params.train, lr=0.5))
    with tracking.start_run(store, run_id=run_id) as again:
        tracking.log_params_flat(changed)  # a resumed run keeps its first values instead of failing
    assert again == run_id
    run = mlflow.MlflowClient(store.uri).get_run(run_id)
    assert run.data.params["train.lr"] == str(params.train.lr) and run.data.metrics["loss"] == 0.5
    assert run.info.artifact_uri.startswith((tmp_path / "art").as_uri())
    audio, rate = sf.read(tmp_path / "art" / run_id / "artifacts/audio/tone.wav", always_2d=True)
    assert rate == 8000 and audio.shape == (800, 2) and np.allclose(audio, 0.25, atol=1e-4)


def test_missing_run_id_starts_a_new_run(store):
    with tracking.start_run(store, run_id="0" * 32) as run_id:
        assert run_id != "0" * 32
