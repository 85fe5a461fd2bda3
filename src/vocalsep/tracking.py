"""MLflow tracking: store URI, experiment, runs, params, metrics, artifacts (the registry is `vocalsep.registry`).

Importing it configures nothing. `configure()` picks the store: the
`MLFLOW_TRACKING_URI` environment variable when set (a tracking server at
scale), else `tracking.uri` from params.yaml (local SQLite). The experiment's
artifacts go under `tracking.artifacts` as an absolute file URI, so runs
started from any working directory agree on where artifacts live.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from vocalsep.config import Params, TrackingParams, flatten, params_to_dict
from vocalsep.errors import VocalsepError

log = logging.getLogger(__name__)
MAX_PARAM_CHARS = 6000  # MLflow's limit on one param value


def tracking_uri(tracking: TrackingParams) -> str:
    """The URI in effect: `MLFLOW_TRACKING_URI` if set, else params' `tracking.uri`."""
    return os.environ.get("MLFLOW_TRACKING_URI") or tracking.uri


def configure(tracking: TrackingParams) -> str:
    """Point MLflow at the store and select (creating if needed) the experiment; returns the URI."""
    import mlflow

    uri = tracking_uri(tracking)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    try:
        experiment = client.get_experiment_by_name(tracking.experiment)
        if experiment is None:
            artifacts = Path(tracking.artifacts).resolve()
            artifacts.mkdir(parents=True, exist_ok=True)
            client.create_experiment(tracking.experiment, artifact_location=artifacts.as_uri())
    except mlflow.exceptions.MlflowException as err:
        first = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        raise VocalsepError(f"MLflow tracking store {uri}: {first}; check tracking.uri or MLFLOW_TRACKING_URI") from None
    mlflow.set_experiment(tracking.experiment)
    return uri


def set_tracking_uri(uri: str) -> None:
    """Point MLflow at `uri` without leaving it in MLFLOW_TRACKING_URI.

    mlflow.set_tracking_uri also exports the environment variable, which
    `tracking_uri()` reads as the user's own choice: left there, the first store
    configured in a process would win over every later params file.
    """
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


@contextmanager
def start_run(tracking: TrackingParams, run_id: str | None = None, run_name: str | None = None,
              tags: dict[str, str] | None = None) -> Iterator[str]:
    """Open a run (resuming `run_id` when it still exists in the store) and yield its id.

    The run ends FINISHED on success and FAILED when the body raises.
    """
    import mlflow

    configure(tracking)
    if run_id is not None and not _run_exists(run_id):
        log.warning("MLflow run %s is not in the store any more; starting a new run", run_id)
        run_id = None
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name, tags=tags) as run:
        yield run.info.run_id


def _run_exists(run_id: str) -> bool:
    import mlflow

    try:
        mlflow.MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException:
        return False
    return True


def log_params_flat(params: Params | dict[str, Any]) -> None:
    """Log params (or a nested dict) as dotted keys; keys the active run already holds are kept as they are.

    A resumed run keeps its original values (MLflow forbids changing a param);
    a changed value is reported in the log rather than failing the run.
    """
    import mlflow

    run = mlflow.active_run()
    existing = mlflow.MlflowClient().get_run(run.info.run_id).data.params if run else {}
    values = params_to_dict(params) if isinstance(params, Params) else params
    flat = {k: str(v)[:MAX_PARAM_CHARS] for k, v in flatten(values).items()}
    changed = sorted(k for k, v in flat.items() if k in existing and existing[k] != v)
    if changed:
        log.warning("params changed since this run started, kept the original values: %s", ", ".join(changed))
    fresh = {k: v for k, v in flat.items() if k not in existing}
    if fresh:
        mlflow.log_params(fresh)


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    import mlflow

    mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)


def set_tags(tags: dict[str, Any]) -> None:
    import mlflow

    mlflow.set_tags({k: str(v) for k, v in tags.items()})


def log_figure(figure: Any, name: str) -> None:
    """A matplotlib figure as an image artifact `name` (e.g. 'plots/loss.png')."""
    import mlflow

    mlflow.log_figure(figure, name)


def log_audio(name: str, audio: np.ndarray, sample_rate: int, folder: str = "audio") -> None:
    """Write `audio` as `<folder>/<name>.wav` (16-bit PCM); audio is (2, T) or (T, 2), clipped to [-1, 1]."""
    import mlflow
    import soundfile as sf

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2 and audio.shape[0] < audio.shape[1]:
        audio = audio.T  # soundfile wants (frames, channels)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.wav"
        sf.write(path, np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16")
        mlflow.log_artifact(str(path), artifact_path=folder)


def log_artifact(path: str | Path, folder: str | None = None) -> None:
    import mlflow

    mlflow.log_artifact(str(path), artifact_path=folder)


def log_artifacts(folder: str | Path, artifact_path: str | None = None) -> None:
    """Every file under `folder`, keeping their relative paths, under `artifact_path`."""
    import mlflow

    mlflow.log_artifacts(str(folder), artifact_path=artifact_path)


def end_orphan_runs(tracking: TrackingParams, tag: str, value: str, keep: str | None) -> list[str]:
    """Mark KILLED the RUNNING runs tagged `tag=value` other than `keep`: runs whose process died
    (SIGKILL, power loss) without ending them. Returns their ids."""
    import mlflow

    configure(tracking)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(tracking.experiment)
    quoted = value.replace("'", "\\'")
    runs = client.search_runs([experiment.experiment_id],
                              filter_string=f"tags.`{tag}` = '{quoted}' and attributes.status = 'RUNNING'")
    ended = [run.info.run_id for run in runs if run.info.run_id != keep]
    for run_id in ended:
        client.set_terminated(run_id, status="KILLED")
    return ended
