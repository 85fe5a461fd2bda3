"""Scoring separated vocals on the fixed test set: what the evaluate and export stages and the
benchmarks measure, in one place.

A test-set track is `<paths.testset>/<track>/{mixture,vocals,accompaniment}.flac`. Each track gets
SDR (BSSEval v4), SI-SDR and SI-SDR improvement, next to the mixture baseline and the
ideal-ratio-mask oracle (`vocalsep.metrics`); a run's summary is the median over tracks.

Behavioural tests (Made-With-ML's minimum-function and invariance tests) run the same model on
inputs built from each track, through the same separation path (`estimate_vocals`):

- `pass_through`: the vocals alone go in; SI-SDR (dB) of the output against them. Higher is
  better. An exact output is +inf SI-SDR, so `vocalsep.metrics.pass_through` caps it at
  `PASS_THROUGH_CEILING_DB` (100 dB): an identity model scores 100, visible as "high" in
  eval.json and MLflow, which hold no inf. A silent output is NaN (0/0): empty in the CSV.
- `leak`: the accompaniment alone goes in; level (dB) of the output relative to it. Lower is
  better; an identity model scores 0 dB, an all-zero output the floor `LEAK_FLOOR_DB` (-120).
- `level_spread`: the mixture (and the vocals it is scored against) scaled by each of
  `evaluate.level_gains_db`; max - min (dB) of SI-SDRi over those gains. 0 is perfectly
  level-invariant, lower is better; a linear model scores ~0. NaN when the list is empty.

NaN rule: every summary key is the median over tracks of the finite-or-capped values, NaN
skipped; a key whose every track is NaN is `null` in eval.json and is not logged to MLflow.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from vocalsep.audio import read_audio
from vocalsep.config import Params
from vocalsep.errors import StageError
from vocalsep.loading import model_from_checkpoint
from vocalsep.metrics import ideal_ratio_mask, leak, level_spread, pass_through, sdr_bsseval_v4, si_sdr
from vocalsep.runtime import for_separation
from vocalsep.separate import separate_at_rate

log = logging.getLogger(__name__)
SUMMARY_KEYS = ("sdr", "si_sdr", "si_sdri", "mixture_sdr", "irm_sdr", "irm_si_sdr", "pass_through", "leak",
                "level_spread")
STEMS = ("mixture", "vocals", "accompaniment")


@dataclass(frozen=True)
class Track:
    """One test-set track; every array is `(channels, samples)` float32 at `sample_rate`."""

    name: str
    mixture: np.ndarray
    vocals: np.ndarray
    accompaniment: np.ndarray
    sample_rate: int


def testset_folders(testset: Path) -> list[Path]:
    """Track folders (those holding mixture.flac), sorted by name."""
    folders = sorted(p.parent for p in testset.glob("*/mixture.flac"))
    if not folders:
        raise StageError(f"{testset}: no <track>/mixture.flac found; run the index stage first (dvc repro index)")
    return folders


def read_track(folder: Path) -> Track:
    stems, rates = {}, set()
    for stem in STEMS:
        path = folder / f"{stem}.flac"
        if not path.is_file():
            raise StageError(f"{path}: missing from the test set; re-run the index stage (dvc repro index)")
        audio, rate = read_audio(path)
        stems[stem] = np.ascontiguousarray(audio.T)
        rates.add(rate)
    if len(rates) != 1 or len({a.shape for a in stems.values()}) != 1:
        raise StageError(f"{folder}: stems differ in rate or shape; re-run the index stage (dvc repro index)")
    return Track(folder.name, sample_rate=rates.pop(), **stems)


def estimate_vocals(model: nn.Module, model_rate: int, track: Track, params: Params) -> np.ndarray:
    """Vocals estimate `(channels, samples)` at the track's rate."""
    return separate_at_rate(model, model_rate, track.mixture.T, track.sample_rate, params.separate).T


def track_metrics(track: Track, estimate: np.ndarray, window_seconds: float) -> dict[str, float]:
    """SDR (BSSEval v4), SI-SDR and SI-SDR improvement of a vocals estimate, next to two baselines.

    The mixture baseline takes the mixture as the estimate of every source, as
    museval's mixture oracle does; the ideal-ratio-mask oracle (`irm_*`) is the
    ceiling of mask-based separation that the project aims to beat.
    """
    references = np.stack([track.vocals, track.accompaniment])
    estimates = np.stack([estimate, track.mixture - estimate])
    sdr, accompaniment_sdr = sdr_bsseval_v4(references, estimates, track.sample_rate, window_seconds)
    mixture_sdr = sdr_bsseval_v4(references, np.stack([track.mixture] * 2), track.sample_rate, window_seconds)[0]
    track_si_sdr = si_sdr(track.vocals, estimate)
    mixture_si_sdr = si_sdr(track.vocals, track.mixture)
    oracle = ideal_ratio_mask(track.vocals, track.accompaniment)
    irm_sdr = sdr_bsseval_v4(references, np.stack([oracle, track.mixture - oracle]), track.sample_rate,
                             window_seconds)[0]
    return {
        "sdr": float(sdr), "si_sdr": track_si_sdr, "si_sdri": track_si_sdr - mixture_si_sdr,
        "mixture_sdr": float(mixture_sdr), "mixture_si_sdr": mixture_si_sdr,
        "irm_sdr": float(irm_sdr), "irm_si_sdr": si_sdr(track.vocals, oracle),
        "accompaniment_sdr": float(accompaniment_sdr), "seconds": track.mixture.shape[-1] / track.sample_rate,
    }


def summarize(table: pd.DataFrame) -> dict[str, float | int | None]:
    """Medians over tracks of `SUMMARY_KEYS` (None where every track is NaN, or the table lacks the
    column) and the track count."""
    medians = {key: table[key].median(skipna=True) if key in table else None for key in SUMMARY_KEYS}
    return {**{k: (None if pd.isna(v) else round(float(v), 4)) for k, v in medians.items()}, "tracks": len(table)}


def testset_hash(testset: Path) -> str:
    """sha256 over every track's stems: two scores are comparable only on the same hash."""
    digest = hashlib.sha256()
    for folder in testset_folders(testset):
        for stem in STEMS:
            digest.update(f"{folder.name}/{stem}".encode() + b"\0" + (folder / f"{stem}.flac").read_bytes())
    return digest.hexdigest()


def level_si_sdri(model: nn.Module, model_rate: int, track: Track, params: Params,
                  estimate: np.ndarray) -> list[float]:
    """SI-SDRi (dB) at each input gain of `evaluate.level_gains_db`, scored against the vocals scaled alike.

    estimate: `(channels, samples)`, the model's output on the unscaled mixture: the 0 dB gain is
    that same input, so it is reused rather than separated again.
    """
    values = []
    for gain_db in params.evaluate.level_gains_db:
        gain = np.float32(10 ** (gain_db / 20))
        scaled = Track(track.name, track.mixture * gain, track.vocals * gain, track.accompaniment * gain,
                       track.sample_rate)
        output = estimate if gain_db == 0 else estimate_vocals(model, model_rate, scaled, params)
        values.append(si_sdr(scaled.vocals, output) - si_sdr(scaled.vocals, scaled.mixture))
    return values


def behaviour_metrics(model: nn.Module, model_rate: int, track: Track, params: Params,
                      estimate: np.ndarray) -> dict[str, float]:
    """The behavioural tests of one track (module docstring): `pass_through`, `leak`, `level_spread` in dB.

    estimate: `(channels, samples)`, the model's vocals of the track's mixture (reused at 0 dB gain).
    """
    voice_out = estimate_vocals(model, model_rate, dataclasses.replace(track, mixture=track.vocals), params)
    music_out = estimate_vocals(model, model_rate, dataclasses.replace(track, mixture=track.accompaniment), params)
    return {
        "pass_through": pass_through(track.vocals, voice_out),  # +inf capped at 100 dB, NaN kept
        "leak": leak(track.accompaniment, music_out),
        "level_spread": level_spread(level_si_sdri(model, model_rate, track, params, estimate)),
    }


def score_tracks(model: nn.Module, model_rate: int, params: Params, examples: int = 0,
                 behaviour: bool = True) -> tuple[pd.DataFrame, list]:
    """Per-track metrics (`track_metrics`, and `behaviour_metrics` unless `behaviour` is False: they cost
    two separations plus one per non-zero level gain) on `<paths.testset>` of a model ready to separate,
    and up to `examples` (track, estimate)."""
    rows, kept = [], []
    for folder in testset_folders(Path(params.paths.testset)):
        track = read_track(folder)
        estimate = estimate_vocals(model, model_rate, track, params)
        tests = behaviour_metrics(model, model_rate, track, params, estimate) if behaviour else {}
        rows.append({"track": track.name, **track_metrics(track, estimate, params.evaluate.window_seconds), **tests})
        log.info("%s: sdr %.2f dB, si_sdr %.2f dB (mixture %.2f dB); %s", track.name, rows[-1]["sdr"],
                 rows[-1]["si_sdr"], rows[-1]["mixture_si_sdr"], ", ".join(f"{k} {v:.2f} dB" for k, v in tests.items()))
        if len(kept) < examples:
            kept.append((track, estimate))
    return pd.DataFrame(rows), kept


def score_testset(checkpoint: dict, params: Params, examples: int = 0,
                  behaviour: bool = True) -> tuple[pd.DataFrame, list]:
    """Per-track metrics of a loaded checkpoint on `<paths.testset>`, and up to `examples` (track, estimate)."""
    model, model_rate = model_from_checkpoint(checkpoint, params.separate.device)
    model = for_separation(model, params.separate)  # CPU: ONNX Runtime where it is faster
    return score_tracks(model, model_rate, params, examples, behaviour)


def promotion_score(checkpoint: dict, params: Params) -> float:
    """A loaded checkpoint's `export.metric` (median over `<paths.testset>`), as promotion compares it: one
    separation per track, no behavioural tests; NaN where the metric is undefined."""
    score = summarize(score_testset(checkpoint, params, behaviour=False)[0])[params.export.metric]
    return float("nan") if score is None else float(score)
