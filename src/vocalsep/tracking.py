"""The one module that talks to MLflow: tracking URI, experiment, runs, params, metrics, artifacts.

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
    _set_tracking_uri(uri)
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


def _set_tracking_uri(uri: str) -> None:
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


# --- functions appended by other stages go below this line ---


# --- registry and serving (export stage) ---


def invalid_input(message: str) -> Exception:
    """The error a served model raises for a bad request: the scoring server answers HTTP 400 with `message`."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def serving_signature(channels: int, string_params: tuple[str, ...]) -> Any:
    """Signature: float32 `(samples, channels)` in and out, plus optional string params (default "")."""
    from mlflow.models import ModelSignature
    from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec

    audio = Schema([TensorSpec(np.dtype(np.float32), (-1, channels))])
    params = ParamSchema([ParamSpec(name, "string", "") for name in string_params])
    return ModelSignature(inputs=audio, outputs=audio, params=params)


def log_pyfunc_model(python_model: Any, *, artifacts: dict[str, str], signature: Any, input_example: Any,
                     pip_requirements: list[str], code_paths: list[str], name: str = "model") -> str:
    """Log a pyfunc model in the active run; returns its `models:/...` URI."""
    import mlflow

    info = mlflow.pyfunc.log_model(
        name=name, python_model=python_model, artifacts=artifacts, signature=signature,
        input_example=input_example, pip_requirements=pip_requirements, code_paths=code_paths,
    )
    return info.model_uri


def register_version(model_uri: str, registered_model: str, tags: dict[str, Any]) -> str:
    """A new version of `registered_model` for `model_uri`, tagged; returns the version number."""
    import mlflow

    version = mlflow.register_model(model_uri, registered_model, tags={k: str(v) for k, v in tags.items()})
    return str(version.version)


def version_by_alias(registered_model: str, alias: str) -> tuple[str, dict[str, str]] | None:
    """`(version, tags)` that `alias` points at, or None when the model or the alias does not exist."""
    import mlflow

    # Only "no such model" and "no such alias" mean no champion. Anything else (store unreachable,
    # locked, corrupt) must not read as "no champion": that would promote over one that exists.
    client = mlflow.MlflowClient()
    try:
        model = client.get_registered_model(registered_model)
        if alias not in (model.aliases or {}):
            return None
        version = client.get_model_version_by_alias(registered_model, alias)
    except Exception as err:  # MlflowException, or the store's own (sqlalchemy, requests) errors
        code = getattr(err, "error_code", type(err).__name__)
        if code == "RESOURCE_DOES_NOT_EXIST":
            return None
        message = str(getattr(err, "message", err)).splitlines()[0][:200] if str(err) else ""
        raise VocalsepError(f"MLflow registry at {mlflow.get_tracking_uri()}: cannot read alias {alias!r} of "
                            f"{registered_model!r} ({code}: {message}); no alias was "
                            "changed; check the tracking store and run the export stage again") from None
    return str(version.version), dict(version.tags)


def set_version_tags(registered_model: str, version: str, tags: dict[str, Any]) -> None:
    """Set (overwrite) tags on one registered model version."""
    import mlflow

    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(registered_model, version, key, str(value))


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


def set_alias(registered_model: str, alias: str, version: str) -> None:
    import mlflow

    mlflow.MlflowClient().set_registered_model_alias(registered_model, alias, version)


def download_model_artifacts(uri: str, tracking: TrackingParams) -> str:
    """Local copy of the artifacts behind a `models:/` or `runs:/` URI, from the store `tracking_uri(tracking)`."""
    import mlflow

    _set_tracking_uri(tracking_uri(tracking))
    try:
        return mlflow.artifacts.download_artifacts(artifact_uri=uri)
    except mlflow.exceptions.MlflowException as err:
        raise VocalsepError(f"{uri}: cannot fetch the model from MLflow at {mlflow.get_tracking_uri()} "
                            f"({err.message}); check the name, version or alias and MLFLOW_TRACKING_URI") from None
