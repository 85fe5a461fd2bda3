"""The evaluate stage on a tiny test set and a tiny checkpoint, tracked in a temporary MLflow store."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from vocalsep.config import TrackingParams, params_to_dict
from vocalsep.metrics import sdr_bsseval_v4, si_sdr
from vocalsep.model import VocNet, save_checkpoint
from vocalsep.stages import evaluate as stage

RATE = 8000
KWARGS = {"filters": 8, "skip_filters": 8, "layers": 4, "layers_per_stack": 4}
TRACKS = ("track_00", "track_01", "track_02")


def write_testset(folder: Path, seed: int = 0) -> None:
    """Three 2-second tracks: a chirp-like voice over noise, mixture = vocals + accompaniment."""
    rng = np.random.default_rng(seed)
    t = np.arange(2 * RATE) / RATE
    for i, name in enumerate(TRACKS):
        vocals = 0.3 * np.sin(2 * np.pi * (300 + 100 * i + 200 * t) * t)[:, None] * np.array([[1.0, 0.8]])
        accompaniment = 0.1 * rng.standard_normal((t.size, 2))
        (folder / name).mkdir(parents=True)
        for stem, audio in (("vocals", vocals), ("accompaniment", accompaniment), ("mixture", vocals + accompaniment)):
            sf.write(folder / name / f"{stem}.flac", audio, RATE, subtype="PCM_24")


@pytest.fixture(scope="module")
def tracking_params(tmp_path_factory, mlflow_template_db):
    """One MLflow store for this module, copied from the session's empty template (tables made once)."""
    root = tmp_path_factory.mktemp("mlruns")
    shutil.copyfile(mlflow_template_db, root / "mlflow.db")
    uri = f"sqlite:///{root}/mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield TrackingParams(uri=uri, artifacts=str(root / "artifacts"), experiment="vocalsep-test")


@pytest.fixture
def eval_params(tmp_params, tracking_params):
    params = dataclasses.replace(
        tmp_params,
        audio=dataclasses.replace(tmp_params.audio, sample_rate=RATE),
        separate=dataclasses.replace(tmp_params.separate, chunk_seconds=0.5, batch_size=2, device="cpu"),
        # two gains keep level invariance on at one extra separation per track (0 dB reuses the main one)
        evaluate=dataclasses.replace(tmp_params.evaluate, audio_examples=2, level_gains_db=(0.0, 6.0)),
        tracking=tracking_params,
    )
    write_testset(Path(params.paths.testset))
    return params


def save_tiny_checkpoint(params, run_id: str | None) -> None:
    torch.manual_seed(0)
    extra = {"mlflow_run_id": run_id} if run_id else {}
    save_checkpoint(Path(params.paths.checkpoints) / "best.pt", VocNet(**KWARGS), KWARGS,
                    params=params_to_dict(params), git_sha="test", **extra)


def run_data(params, run_id: str):
    import mlflow

    from vocalsep import tracking

    tracking.configure(params.tracking)
    client = mlflow.MlflowClient()
    artifacts = [a.path for a in client.list_artifacts(run_id, "evaluation")]
    for sub in ("evaluation/audio", "evaluation/spectrograms"):
        artifacts += [a.path for a in client.list_artifacts(run_id, sub)]
    return client.get_run(run_id).data.metrics, artifacts


@pytest.mark.slow
def test_evaluate_scores_tracks_and_logs_to_the_training_run(eval_params):
    from vocalsep import tracking

    with tracking.start_run(eval_params.tracking, run_name="train") as run_id:
        tracking.log_metrics({"val_l1": 0.1})
    save_tiny_checkpoint(eval_params, run_id)

    summary = stage.evaluate(eval_params)

    table = pd.read_csv(Path(eval_params.paths.plots) / "eval_tracks.csv")
    assert list(table["track"]) == list(TRACKS)
    saved = json.loads((Path(eval_params.paths.metrics) / "eval.json").read_text())
    assert saved == summary and saved["tracks"] == len(TRACKS)
    for key in ("sdr", "si_sdr", "si_sdri", "mixture_sdr", "irm_sdr", "irm_si_sdr", "pass_through", "leak",
                "level_spread"):
        assert math.isclose(saved[key], float(np.median(table[key])), abs_tol=1e-3)
    assert all(np.isfinite(saved[k]) for k in ("pass_through", "leak", "level_spread"))  # numbers, not null
    assert (table["irm_si_sdr"] > table["mixture_si_sdr"]).all()  # the oracle knows the stems
    np.testing.assert_allclose(table["si_sdri"], table["si_sdr"] - table["mixture_si_sdr"], atol=1e-3)

    folder = Path(eval_params.paths.testset) / TRACKS[0]
    stems = {s: sf.read(folder / f"{s}.flac", dtype="float32")[0].T for s in ("mixture", "vocals", "accompaniment")}
    refs = np.stack([stems["vocals"], stems["accompaniment"]])
    baseline = sdr_bsseval_v4(refs, np.stack([stems["mixture"]] * 2), RATE)[0]
    assert math.isclose(table["mixture_sdr"][0], baseline, abs_tol=1e-3)
    assert math.isclose(table["mixture_si_sdr"][0], si_sdr(stems["vocals"], stems["mixture"]), abs_tol=1e-3)

    for name in ("eval_tracks.png", "eval.html"):
        assert (Path(eval_params.paths.plots) / name).stat().st_size > 1000
    assert "data:image/png;base64," in (Path(eval_params.paths.plots) / "eval.html").read_text()

    metrics, artifacts = run_data(eval_params, run_id)
    assert metrics["val_l1"] == pytest.approx(0.1)
    assert metrics["test_si_sdr"] == pytest.approx(saved["si_sdr"])
    for key in ("pass_through", "leak", "level_spread"):
        assert metrics[f"test_{key}"] == pytest.approx(saved[key])
    assert "evaluation/eval.json" in artifacts and "evaluation/eval_tracks.csv" in artifacts
    assert {"evaluation/audio/track_00", "evaluation/audio/track_01"} <= set(artifacts)
    assert "evaluation/audio/track_02" not in artifacts
    assert "evaluation/spectrograms/track_00.png" in artifacts


@pytest.mark.slow
def test_evaluate_without_a_training_run_starts_a_new_one(eval_params, caplog):
    import mlflow

    save_tiny_checkpoint(eval_params, run_id=None)
    with caplog.at_level("WARNING"):
        summary = stage.evaluate(eval_params)
    assert "new run" in caplog.text
    experiment = mlflow.get_experiment_by_name(eval_params.tracking.experiment)
    runs = mlflow.MlflowClient().search_runs([experiment.experiment_id], "tags.mlflow.runName = 'evaluate'")
    assert len(runs) == 1 and runs[0].data.metrics["test_sdr"] == pytest.approx(summary["sdr"])
    assert "val_l1" not in runs[0].data.metrics


def test_evaluate_without_a_testset_is_a_clear_error(tmp_params, capsys, tmp_path):
    save_tiny_checkpoint(tmp_params, run_id=None)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(json.dumps(params_to_dict(tmp_params)))  # JSON is valid YAML
    assert stage.main(["--params", str(params_file)]) == 2
    err = capsys.readouterr().err
    assert tmp_params.paths.testset in err and "index" in err
