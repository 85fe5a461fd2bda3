"""Behavioural tests of the scoring (minimum function, invariance) on models whose answers are known:
an identity model, a silent model and a hard clipper, on a tiny test set written here."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tests.model.test_evaluate import RATE, TRACKS, write_testset
from vocalsep.config import ParamsError, params_from_dict
from vocalsep.metrics import LEAK_FLOOR_DB, PASS_THROUGH_CEILING_DB
from vocalsep.scoring import behaviour_metrics, estimate_vocals, read_track, score_tracks, summarize


class Identity(nn.Module):
    """Returns the mixture as the vocals: `(batch, channels, samples)` in and out."""

    context = (0, 0)  # looks at no neighbouring sample

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        return mixture


class Silent(Identity):
    """Returns all zeros: the do-nothing separator that never leaks."""

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(mixture)


class Clipper(Identity):
    """A fixed nonlinearity: the mixture hard-clipped at 0.1, so the output depends on the input level."""

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        return mixture.clamp(-0.1, 0.1)


@pytest.fixture
def params(tmp_params):
    params = dataclasses.replace(
        tmp_params,
        audio=dataclasses.replace(tmp_params.audio, sample_rate=RATE),
        separate=dataclasses.replace(tmp_params.separate, chunk_seconds=0.5, batch_size=2, device="cpu"),
        evaluate=dataclasses.replace(tmp_params.evaluate, level_gains_db=(-12.0, 0.0, 6.0)),
    )
    write_testset(Path(params.paths.testset))
    return params


def behaviour(model: nn.Module, params) -> dict[str, float]:
    track = read_track(Path(params.paths.testset) / TRACKS[0])
    return behaviour_metrics(model, RATE, track, params, estimate_vocals(model, RATE, track, params))


def test_an_identity_model_passes_a_voice_through_leaks_all_music_and_is_level_invariant(params):
    scores = behaviour(Identity(), params)
    assert scores["pass_through"] == PASS_THROUGH_CEILING_DB  # exact output: +inf capped, finite for JSON
    assert scores["pass_through"] >= 60
    assert -1 < scores["leak"] == pytest.approx(0.0, abs=1e-3)
    assert scores["level_spread"] == pytest.approx(0.0, abs=1e-3)  # SI-SDRi is gain-invariant for a linear model


def test_a_silent_model_never_leaks_and_passes_nothing_through(params):
    scores = behaviour(Silent(), params)
    assert scores["leak"] == LEAK_FLOOR_DB
    assert math.isnan(scores["pass_through"])  # SI-SDR of an all-zero output is 0/0
    assert math.isnan(scores["level_spread"])  # no finite SI-SDRi at any gain


def test_a_fixed_nonlinearity_is_not_level_invariant(params):
    clipped, identity = behaviour(Clipper(), params), behaviour(Identity(), params)
    assert clipped["level_spread"] > identity["level_spread"] + 0.5  # clipping grows with the gain (~1.6 dB here)
    assert clipped["pass_through"] < 60 and clipped["leak"] < -1  # the clip at 0.1 loses voice and music


def test_the_summary_carries_the_behaviour_as_json_ready_medians(params):
    table, _ = score_tracks(Identity(), RATE, params)
    assert list(table["track"]) == list(TRACKS)
    summary = summarize(table)
    assert summary["pass_through"] == PASS_THROUGH_CEILING_DB and summary["leak"] == pytest.approx(0.0, abs=1e-3)
    assert summary["level_spread"] == pytest.approx(0.0, abs=1e-3)
    silent = summarize(score_tracks(Silent(), RATE, params)[0])
    assert silent["pass_through"] is None and silent["leak"] == LEAK_FLOOR_DB  # null in eval.json, not logged


def test_an_empty_gain_list_turns_level_invariance_off(params):
    off = dataclasses.replace(params, evaluate=dataclasses.replace(params.evaluate, level_gains_db=()))
    table, _ = score_tracks(Clipper(), RATE, off)
    assert table["level_spread"].isna().all() and summarize(table)["level_spread"] is None
    assert np.isfinite(table["leak"]).all()


@pytest.mark.parametrize("gains, message", [
    ([0.0], "at least two gains"),  # one gain has no spread
    ([-12.0, 0.0, 40.0], "must be >= -60 and <= 24 dB"),
])
def test_level_gains_are_checked_with_the_key_named(gains, message):
    with pytest.raises(ParamsError, match=rf"evaluate\.level_gains_db.*{message}"):
        params_from_dict({"evaluate": {"level_gains_db": gains}})
    assert params_from_dict({"evaluate": {"level_gains_db": []}}).evaluate.level_gains_db == ()
