"""evaluate stage: separate the fixed test set with the best checkpoint and score it.

Reads `<paths.checkpoints>/best.pt` and `<paths.testset>/<track>/{mixture,
vocals,accompaniment}.flac`; writes `<paths.metrics>/eval.json` (medians over
tracks), `<paths.plots>/eval_tracks.csv` (one row per track), a per-track bar
chart `<paths.plots>/eval_tracks.png` and `<paths.plots>/eval.html`, a
self-contained page (PNG embedded, no JavaScript or network) to read the
results offline, where `dvc plots show` would need vega-lite from the web.
The listening report `<paths.reports>/eval/index.html` (`vocalsep.report`:
per-track metrics beside the mixture and the ideal-ratio-mask oracle,
spectrograms and audio players of every track, no network) is written too.
Everything is also logged to the training MLflow run named by best.pt's
`mlflow_run_id` (a new run when it has none or the store lost it): the report
as the artifact folder `report/`, and audio and spectrograms of the first
`evaluate.audio_examples` tracks.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from torch import nn

from vocalsep import tracking
from vocalsep.audio import read_audio
from vocalsep.config import Params
from vocalsep.errors import StageError
from vocalsep.metrics import ideal_ratio_mask, sdr_bsseval_v4, si_sdr
from vocalsep.model import load_checkpoint
from vocalsep.report import STEMS as STEMS_SHOWN
from vocalsep.report import spectrogram_figure, write_report
from vocalsep.runtime import for_separation
from vocalsep.loading import model_from_checkpoint
from vocalsep.separate import separate_at_rate
from vocalsep.stages._cli import run_stage

log = logging.getLogger(__name__)
SUMMARY_KEYS = ("sdr", "si_sdr", "si_sdri", "mixture_sdr", "irm_sdr", "irm_si_sdr")
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
    """Medians over tracks of `SUMMARY_KEYS` (None where every track is NaN) and the track count."""
    medians = {key: table[key].median(skipna=True) for key in SUMMARY_KEYS}
    return {**{k: (None if pd.isna(v) else round(float(v), 4)) for k, v in medians.items()}, "tracks": len(table)}


def bar_chart(table: pd.DataFrame) -> Figure:
    """Per-track horizontal bars: SDR and SI-SDR of the model next to the mixture baseline."""
    figure = Figure(figsize=(10, 1.5 + 0.45 * len(table)), layout="constrained")
    y = np.arange(len(table))
    for ax, key, label in zip(figure.subplots(1, 2, sharey=True), ("sdr", "si_sdr"), ("SDR (dB)", "SI-SDR (dB)")):
        ax.barh(y - 0.2, table[key], height=0.4, label="model")
        ax.barh(y + 0.2, table[f"mixture_{key}"], height=0.4, label="mixture (baseline)", color="0.7")
        ax.set_yticks(y, table["track"])
        ax.set_xlabel(label)
        ax.axvline(0, color="k", linewidth=0.5)
        ax.invert_yaxis()
    figure.axes[0].legend(loc="lower right", fontsize="small")
    return figure


def spectrograms(track: Track, estimate: np.ndarray) -> Figure:
    """Mixture, true vocals and estimated vocals (channel mean) as log-power spectrograms."""
    return spectrogram_figure(track.name, list(zip(STEMS_SHOWN, (track.mixture, track.vocals, estimate))),
                              track.sample_rate)


def html_report(summary: dict, table: pd.DataFrame, png: Path) -> str:
    """A page with the summary, the per-track table and the bar chart embedded as base64 PNG."""
    image = base64.b64encode(png.read_bytes()).decode("ascii")
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in summary.items())
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>vocalsep evaluation</title></head><body>"
        f"<h1>vocalsep evaluation</h1><h2>medians over tracks</h2><table>{rows}</table>"
        f"<h2>per track</h2>{table.to_html(index=False, float_format=lambda v: f'{v:.3f}')}"
        f"<img alt='per-track SDR and SI-SDR' src='data:image/png;base64,{image}'></body></html>"
    )


def write_outputs(params: Params, summary: dict, table: pd.DataFrame) -> list[Path]:
    """eval.json, eval_tracks.csv, eval_tracks.png and eval.html; returns their paths."""
    metrics, plots = Path(params.paths.metrics), Path(params.paths.plots)
    metrics.mkdir(parents=True, exist_ok=True)
    plots.mkdir(parents=True, exist_ok=True)
    json_path, csv_path, png_path = metrics / "eval.json", plots / "eval_tracks.csv", plots / "eval_tracks.png"
    json_path.write_text(json.dumps(summary, indent=2) + "\n")
    table.to_csv(csv_path, index=False, float_format="%.4f")
    bar_chart(table).savefig(png_path, dpi=100)
    html_path = plots / "eval.html"
    html_path.write_text(html_report(summary, table, png_path))
    return [json_path, csv_path, png_path, html_path]


def log_evaluation(params: Params, run_id: str | None, summary: dict, files: list[Path],
                   examples: list[tuple[Track, np.ndarray]], report: Path | None = None) -> str:
    """Log metrics, result files, the listening report, audio and spectrograms to the training run;
    returns the run id used."""
    if run_id is None:
        log.warning("best.pt names no MLflow run (mlflow_run_id); logging the evaluation to a new run")
    with tracking.start_run(params.tracking, run_id=run_id, run_name="evaluate") as active:
        if run_id is not None and active != run_id:
            log.warning("training run %s is not in the MLflow store; evaluation logged to new run %s", run_id, active)
        tracking.log_metrics({f"test_{k}": v for k, v in summary.items() if v is not None})
        for path in files:
            tracking.log_artifact(path, "evaluation")
        if report is not None:
            tracking.log_artifacts(report, "report")  # the listening report, relative links intact
        for track, estimate in examples:
            folder = f"evaluation/audio/{track.name}"
            for name, audio in (("mixture", track.mixture), ("vocals", track.vocals), ("estimate", estimate)):
                tracking.log_audio(name, audio, track.sample_rate, folder=folder)
            tracking.log_figure(spectrograms(track, estimate), f"evaluation/spectrograms/{track.name}.png")
    return active


def testset_hash(testset: Path) -> str:
    """sha256 over every track's stems: two scores are comparable only on the same hash."""
    digest = hashlib.sha256()
    for folder in testset_folders(testset):
        for stem in STEMS:
            digest.update(f"{folder.name}/{stem}".encode() + b"\0" + (folder / f"{stem}.flac").read_bytes())
    return digest.hexdigest()


def score_testset(checkpoint: dict, params: Params, examples: int = 0) -> tuple[pd.DataFrame, list]:
    """Per-track metrics of a loaded checkpoint on `<paths.testset>`, and up to `examples` (track, estimate)."""
    model, model_rate = model_from_checkpoint(checkpoint, params.separate.device)
    model = for_separation(model, params.separate)  # CPU: ONNX Runtime where it is faster
    rows, kept = [], []
    for folder in testset_folders(Path(params.paths.testset)):
        track = read_track(folder)
        estimate = estimate_vocals(model, model_rate, track, params)
        rows.append({"track": track.name, **track_metrics(track, estimate, params.evaluate.window_seconds)})
        log.info("%s: sdr %.2f dB, si_sdr %.2f dB (mixture %.2f dB)", track.name, rows[-1]["sdr"],
                 rows[-1]["si_sdr"], rows[-1]["mixture_si_sdr"])
        if len(kept) < examples:
            kept.append((track, estimate))
    return pd.DataFrame(rows), kept


def evaluate(params: Params) -> dict:
    """Separate and score every test-set track with best.pt; write metrics and plots; log to MLflow."""
    checkpoint = load_checkpoint(Path(params.paths.checkpoints) / "best.pt")
    table, estimates = score_testset(checkpoint, params, examples=len(testset_folders(Path(params.paths.testset))))
    summary = summarize(table)
    files = write_outputs(params, summary, table)
    report = write_report(Path(params.paths.reports) / "eval", summary, table, estimates).parent
    log_evaluation(params, checkpoint.get("mlflow_run_id"), summary, files,
                   estimates[:params.evaluate.audio_examples], report)
    log.info("medians over %d tracks: %s", summary["tracks"], summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    return run_stage("evaluate", evaluate, argv)


if __name__ == "__main__":
    sys.exit(main())
