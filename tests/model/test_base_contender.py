"""The shipped base model competes in every promotion (export.base): registered once by the export stage,
scored on the current test set, and a newcomer becomes champion only by beating it and the champion.

Real MLflow registry (SQLite), the real shipped base model, real scoring on a voice-over-music test set.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.serving_helpers import tiny_params
from vocalsep import registry
from vocalsep.config import params_to_dict
from vocalsep.demo.voice import voice
from vocalsep.demo.band import band
from vocalsep.model import VocNet, save_checkpoint
from vocalsep.base_model import contender as base
from vocalsep.stages.export import holder, register, registry_metrics

RATE = 16000
NEWCOMER = {"filters": 4, "skip_filters": 6, "layers": 4, "layers_per_stack": 2}


def write_voice_testset(testset: Path, seed: int = 0, seconds: float = 3.0) -> None:
    """Two tracks of a voice-like acapella over a band, at RATE."""
    for i in range(2):
        rng = np.random.default_rng(seed + i)
        vocals, music = voice(rng, seconds, RATE), band(rng, seconds, RATE)
        frames = min(len(vocals), len(music))
        stems = {"vocals": 0.5 * vocals[:frames], "accompaniment": 0.5 * music[:frames]}
        stems["mixture"] = stems["vocals"] + stems["accompaniment"]
        (testset / f"track_{i:02d}").mkdir(parents=True, exist_ok=True)
        for stem, audio in stems.items():
            sf.write(testset / f"track_{i:02d}" / f"{stem}.flac", audio, RATE, subtype="PCM_24")


def train_newcomer(path: Path, params, seed: int, steps: int = 30) -> Path:
    """A tiny model trained briefly (L1 on random crops of voice-over-band mixtures): the newcomer's case."""
    torch.manual_seed(seed)
    model = VocNet(**NEWCOMER)
    rng = np.random.default_rng(100 + seed)
    vocals, music = voice(rng, 4.0, RATE), band(rng, 4.0, RATE)
    frames = min(len(vocals), len(music))
    target = torch.from_numpy(0.5 * vocals[:frames].T.copy()).float()
    mixture = target + torch.from_numpy(0.5 * music[:frames].T.copy()).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        start = int(rng.integers(0, frames - RATE // 2))
        crop = slice(start, start + RATE // 2)
        loss = (model(mixture[None, :, crop]) - target[None, :, crop]).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    save_checkpoint(path, model.eval(), NEWCOMER, params=params_to_dict(params))
    return path


@pytest.fixture
def params(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("VOCALSEP_PRETRAINED", raising=False)  # the real shipped base model
    values = tiny_params(tmp_path)
    write_voice_testset(Path(values.paths.testset))
    return dataclasses.replace(values, audio=dataclasses.replace(values.audio, sample_rate=RATE),
                               export=dataclasses.replace(values.export, base=True))


def measured(checkpoint: Path, params) -> dict[str, float]:
    """The newcomer's metric as the evaluate stage measures it (the same scoring as the base's)."""
    return {"si_sdr": base.score_base(checkpoint, params)}


def test_the_base_model_holds_the_title_against_a_newcomer_it_outscores(params, tmp_path):
    newcomer = train_newcomer(tmp_path / "newcomer.pt", params, seed=0)
    record = register(params, newcomer, measured(newcomer, params), tmp_path / "dvc.lock")
    assert record["base_version"] == "1" and record["version"] == "2"  # the base is registered first
    assert record["base_metric"] > record["new_metric"]  # measured, not assumed
    assert (record["decision"], record["champion_version"], record["champion_metric"]) == ("challenger", "1", None)
    version, tags = registry.version_by_alias("vocalsep", "champion")
    assert version == "1" and tags["source"] == "pretrained" and tags["weights_sha256"] == base.weights_digest()
    assert float(tags["si_sdr"]) == pytest.approx(record["base_metric"]) and tags["testset_hash"]
    assert registry.version_by_alias("vocalsep", "challenger")[0] == "2"
    numbers = registry_metrics(record)
    assert numbers["base_version"] == 1 and numbers["promoted"] == 0
    assert numbers["base_metric"] == pytest.approx(record["base_metric"])
    json.dumps(numbers, allow_nan=False)  # dvc metrics show reads it


def test_a_champion_weaker_than_the_base_loses_the_title_to_it(params, tmp_path):
    first = train_newcomer(tmp_path / "first.pt", params, seed=1)
    without_base = dataclasses.replace(params, export=dataclasses.replace(params.export, base=False))
    opened = register(without_base, first, measured(first, params), tmp_path / "dvc.lock")
    assert (opened["decision"], opened["version"], opened["base_version"]) == ("champion", "1", None)

    second = train_newcomer(tmp_path / "second.pt", params, seed=2)
    record = register(params, second, measured(second, params), tmp_path / "dvc.lock")
    assert (record["base_version"], record["version"], record["decision"]) == ("2", "3", "challenger")
    scores = [record[k] for k in ("new_metric", "champion_metric", "base_metric")]
    assert all(math.isfinite(s) for s in scores) and record["base_metric"] == max(scores)
    assert (record["previous_champion_version"], record["champion_version"]) == ("1", "2")
    assert registry.version_by_alias("vocalsep", "champion")[0] == "2"


def test_a_newcomer_that_beats_both_wins_and_the_base_is_registered_once(params, tmp_path, monkeypatch):
    newcomer = train_newcomer(tmp_path / "newcomer.pt", params, seed=3)
    first = register(params, newcomer, {"si_sdr": 1000.0}, tmp_path / "dvc.lock")
    assert (first["decision"], first["champion_version"], first["version"]) == ("champion", "2", "2")

    def no_rescoring(*args, **kwargs):
        raise AssertionError("the base model was scored again on the same test set")

    monkeypatch.setattr(base, "score_base", no_rescoring)
    again = register(params, newcomer, {"si_sdr": -1000.0}, tmp_path / "dvc.lock")
    assert (again["base_version"], again["base_metric"]) == ("1", first["base_metric"])
    assert (again["decision"], again["champion_version"]) == ("challenger", "2")  # the champion beats the base
    monkeypatch.undo()

    write_voice_testset(Path(params.paths.testset), seed=10)  # a new test set: the base is scored again
    third = register(params, newcomer, {"si_sdr": 0.0}, tmp_path / "dvc.lock")
    assert third["base_version"] == "1" and third["base_metric"] != first["base_metric"]
    bases = [v for v in registry.list_versions("vocalsep") if v["tags"].get("source") == "pretrained"]
    assert [v["version"] for v in bases] == ["1"]


def test_the_holder_is_the_better_of_champion_and_base_and_nan_never_holds():
    assert holder(None, None) is None
    assert holder(("1", 2.0), ("2", 3.0)) == ("2", 3.0)
    assert holder(("1", 3.0), ("2", 3.0)) == ("1", 3.0)  # a tie keeps the champion
    assert holder(("1", float("nan")), ("2", -5.0)) == ("2", -5.0)
    assert holder(None, ("2", 1.0)) == ("2", 1.0)
