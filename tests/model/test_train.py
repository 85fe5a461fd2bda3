"""The train stage on a tiny corpus: the loss falls, outputs and checkpoints follow the contract,
MLflow holds the run, and a second run resumes or starts fresh as its params say."""

from __future__ import annotations

import dataclasses
import json

import mlflow
import pytest
import torch

from tests.model.corpus import tiny_params, write_corpus
from vocalsep.base_model.weights import export_pretrained
from vocalsep.config import params_to_dict
from vocalsep.data import read_index, validation_set
from vocalsep.model import load_checkpoint, load_model
from vocalsep.model.checkpoint import build_model, model_kwargs
from vocalsep.stages.train import train
from vocalsep.training.loop import validate


@pytest.fixture
def single_thread():
    """One intra-op thread: on a shared 2-core machine two threads run several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def corpus_params(tmp_params, tmp_path, monkeypatch, single_thread, mlflow_db):
    write_corpus(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tiny_params(tmp_params, tmp_path)


def _csv_losses(path):
    rows = path.read_text().split()
    assert rows[0] == "step,loss"
    return [(int(s), float(v)) for s, v in (r.split(",") for r in rows[1:])]


@pytest.mark.slow
def test_tiny_run_learns_and_records_everything(corpus_params, tmp_path):
    params = dataclasses.replace(corpus_params, train=dataclasses.replace(
        corpus_params.train, epochs=8, lr=3e-3, lr_schedule="constant", early_stopping_patience=8))
    metrics = train(params)

    written = json.loads((tmp_path / "metrics/train.json").read_text())
    assert written == metrics and written["steps"] == 8 * 8 and written["epochs"] == 8
    assert written["examples_per_second"] > 0 and 0 <= written["best_epoch"] < 8
    assert "start_val_si_sdr" not in written  # a run from scratch has no start to beat
    losses = [v for _, v in _csv_losses(tmp_path / "plots/train_loss.csv")]
    assert len(losses) == 64 // 2
    assert sum(losses[-4:]) / 4 < 0.7 * sum(losses[:2]) / 2, losses

    best, last = load_checkpoint(tmp_path / "models/checkpoints/best.pt"), load_checkpoint(
        tmp_path / "models/checkpoints/last.pt")
    for key in ("class", "kwargs", "state", "git_sha", "params", "mlflow_run_id"):
        assert key in best and key in last
    assert best["params"]["train"]["lr"] == 3e-3 and best["val_si_sdr"] == written["val_si_sdr"]
    for key in ("optimizer", "scheduler", "rng", "step", "epoch"):
        assert key in last
    assert last["step"] == 64 and best["mlflow_run_id"] == last["mlflow_run_id"]
    assert load_model(tmp_path / "models/checkpoints/best.pt").receptive_field > 1

    client = mlflow.MlflowClient(params.tracking.uri)
    run = client.get_run(best["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["model.filters"] == "8" and run.data.params["train.lr"] == "0.003"
    assert run.data.params["paths.index"] == params.paths.index
    assert {"train_loss", "lr", "val_l1", "val_si_sdr", "examples_per_second"} <= set(run.data.metrics)
    assert len(client.get_metric_history(run.info.run_id, "val_si_sdr")) == 8
    assert {"git_sha", "device", "data_hash"} <= set(run.data.tags)
    assert [a.path for a in client.list_artifacts(run.info.run_id, "plots")] == ["plots/train_loss.png"]
    audio = {a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(run.info.run_id, "audio/val")}
    assert audio == {f"val_{i}_{n}.wav" for i in range(3) for n in ("mixture", "target", "estimate")}
    artifacts_root = run.info.artifact_uri.removeprefix("file://")
    assert artifacts_root.startswith(str(tmp_path / "mlruns/artifacts"))


@pytest.mark.slow
def test_second_run_resumes_when_params_match_and_restarts_when_not(corpus_params, tmp_path):
    first = train(corpus_params)
    last = tmp_path / "models/checkpoints/last.pt"
    run_id = load_checkpoint(last)["mlflow_run_id"]

    # a finished run, same params: DVC calls the stage again only for `dvc repro -f` (or a dep outside
    # the resume key), which asks for a new training, not a resume with nothing left to do
    again = train(corpus_params)
    assert again["steps"] == first["steps"]
    assert load_checkpoint(last)["mlflow_run_id"] != run_id
    run_id = load_checkpoint(last)["mlflow_run_id"]

    changed = dataclasses.replace(corpus_params, train=dataclasses.replace(
        corpus_params.train, epochs=1, loss="l1_stft"))
    fresh = train(changed)
    assert fresh["steps"] == 8 and load_checkpoint(last)["mlflow_run_id"] != run_id
    assert load_checkpoint(last)["params"]["train"]["loss"] == "l1_stft"


@pytest.mark.slow
def test_a_fine_tune_scores_its_pretrained_start_before_the_first_step(corpus_params, tmp_path, monkeypatch):
    params = dataclasses.replace(corpus_params, train=dataclasses.replace(
        corpus_params.train, init="pretrained", epochs=1))
    kwargs = model_kwargs(params.model.name, params_to_dict(params)["model"])
    torch.manual_seed(3)
    base = build_model(params.model.name, kwargs)
    export_pretrained({"class": params.model.name, "kwargs": kwargs, "state": base.state_dict(), "git_sha": "abc",
                       "step": 0, "params": {"audio": {"sample_rate": params.audio.sample_rate}, "model": kwargs}},
                      tmp_path / "base")
    monkeypatch.setenv("VOCALSEP_PRETRAINED", str(tmp_path / "base"))
    metrics = train(params)

    val = validation_set(read_index(params.paths.split("val")), params.data, params.audio.sample_rate)
    start = validate(base, *val, params.train.batch_size, torch.device("cpu"), False)
    assert metrics["start_val_si_sdr"] == pytest.approx(start["si_sdr"], abs=1e-4)
    assert metrics["start_val_l1"] == pytest.approx(start["l1"], rel=1e-4)
    assert metrics["val_si_sdr"] != pytest.approx(start["si_sdr"], abs=1e-4)  # the epoch's score is another
    client = mlflow.MlflowClient(params.tracking.uri)
    run_id = load_checkpoint(tmp_path / "models/checkpoints/last.pt")["mlflow_run_id"]
    history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "val_si_sdr"))
    assert [step for step, _ in history] == [0, 8] and history[0][1] == pytest.approx(start["si_sdr"], abs=1e-4)


@pytest.mark.slow  # trains twice
def test_runtime_settings_keep_progress_but_code_changes_restart(corpus_params, tmp_path, monkeypatch):
    from vocalsep.training import state

    first = train(corpus_params)
    last = tmp_path / "models/checkpoints/last.pt"
    run_id = load_checkpoint(last)["mlflow_run_id"]
    runtime = dataclasses.replace(corpus_params, train=dataclasses.replace(
        corpus_params.train, log_every=3, checkpoint_every=7, device="cpu"))
    data = state.index_hash(runtime.paths.index)
    assert state.load_resumable(last, state.resume_key(runtime, data)) is not None  # same run: resumable

    monkeypatch.setattr(state, "training_code_hash", lambda: "0" * 64)  # as after an edit of the model code
    assert state.load_resumable(last, state.resume_key(runtime, data)) is None
    retrained = train(corpus_params)
    assert retrained["steps"] == first["steps"] and load_checkpoint(last)["mlflow_run_id"] != run_id


@pytest.mark.slow
def test_early_stopping_ends_the_run_after_patience_epochs(corpus_params, tmp_path):
    # an lr far below float32 resolution leaves the weights, hence val SI-SDR, unchanged
    frozen = dataclasses.replace(corpus_params, train=dataclasses.replace(
        corpus_params.train, epochs=5, lr=1e-20, lr_schedule="constant", early_stopping_patience=2))
    metrics = train(frozen)
    assert metrics["best_epoch"] == 0 and metrics["epochs"] == 3 and metrics["steps"] == 3 * 8
    assert load_checkpoint(tmp_path / "models/checkpoints/last.pt")["progress"]["stopped_early"]
    assert train(frozen)["steps"] == 3 * 8  # a stopped run stays stopped when re-run


@pytest.mark.gpu
def test_few_steps_on_cuda_with_bf16(corpus_params, tmp_path):
    params = dataclasses.replace(corpus_params, train=dataclasses.replace(
        corpus_params.train, device="cuda", amp=True, epochs=1))
    metrics = train(params)
    assert metrics["steps"] == 8 and metrics["val_l1"] == metrics["val_l1"]  # not NaN
    best = load_checkpoint(tmp_path / "models/checkpoints/best.pt")
    assert all(t.device.type == "cpu" and torch.isfinite(t).all() for t in best["state"].values())
    client = mlflow.MlflowClient(params.tracking.uri)
    assert client.get_run(best["mlflow_run_id"]).data.tags["device"].startswith("cuda")


@pytest.mark.slow
def test_training_shows_a_progress_bar_with_loss_and_rate(corpus_params, monkeypatch, capsys):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    params = dataclasses.replace(corpus_params, train=dataclasses.replace(corpus_params.train, epochs=1))
    train(params)
    bar = capsys.readouterr().err.replace("\r", "\n")
    final = [line for line in bar.splitlines() if line.startswith("epoch 1/1") and "8/8" in line]
    assert final, bar[-2000:]
    assert "loss=" in final[-1] and ("step/s" in final[-1] or "s/step" in final[-1])
    assert float(final[-1].split("audio_s_per_s=")[1].split(",")[0].rstrip("]")) > 0
