"""evaluate stage: separate the fixed test set with the best checkpoint and score it.

Scores are SDR, SI-SDR and SI-SDRi, and the behavioural tests of `vocalsep.scoring`:
`pass_through` (vocals alone in; higher is better, capped at 100 dB), `leak` (accompaniment
alone in; lower is better, 0 dB = passed unchanged) and `level_spread` (SI-SDRi spread over
`evaluate.level_gains_db`; lower is better, [] turns it off), each a median in eval.json and
`test_<key>` in MLflow (a key that is null, every track NaN, is not logged).

It orchestrates three rooms: `vocalsep.scoring` (separate and score), `vocalsep.report` (files,
charts, pages) and `vocalsep.tracking` (the MLflow run).

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

import logging
import sys
from pathlib import Path

import numpy as np

from vocalsep import tracking
from vocalsep.config import Params
from vocalsep.model import load_checkpoint
from vocalsep.report import spectrograms, write_outputs, write_report
from vocalsep.scoring import Track, score_testset, summarize, testset_folders
from vocalsep.stages._cli import run_stage

log = logging.getLogger(__name__)


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


def evaluate(params: Params) -> dict:
    """Separate and score every test-set track with best.pt; write metrics and plots; log to MLflow."""
    checkpoint = load_checkpoint(params.paths.best_checkpoint)
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
