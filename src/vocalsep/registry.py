"""The model registry: registered versions, their tags and aliases, the promotion rule, and fetching a
registered model's checkpoint. Runs and metrics are `vocalsep.tracking`'s; this module uses its
store selection (`tracking_uri`) and nothing else of it.

Importing it imports no MLflow; each function imports what it calls.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from vocalsep.config import TrackingParams
from vocalsep.errors import VocalsepError
from vocalsep.tracking import set_tracking_uri, tracking_uri

CHAMPION = "champion"
CHALLENGER = "challenger"


def beats_champion(new_metric: float, champion_metric: float | None) -> bool:
    """The promotion rule: a new version becomes champion only by a strictly better metric.

    No champion yet (None) lets any finite metric win; NaN never wins, and a
    champion whose metric is unknown (NaN) is replaced by any finite one.
    """
    if not math.isfinite(new_metric):
        return False
    return champion_metric is None or not math.isfinite(champion_metric) or new_metric > champion_metric


def checkpoint_from_uri(uri: str, tracking: TrackingParams) -> Path:
    """The local checkpoint behind `models:/name@alias`, `models:/name/version` or `runs:/...`.

    The store is `MLFLOW_TRACKING_URI` when set, else `tracking.uri`. Downloads
    the model's artifacts and returns the path of the one `.pt` file among them.
    """
    local = Path(download_model_artifacts(uri, tracking))
    if local.is_file():
        return local
    found = sorted(local.rglob("*.pt"))
    if len(found) != 1:
        raise VocalsepError(f"{uri}: expected one checkpoint (.pt) in the model's artifacts, found {len(found)}; "
                            "point at a model logged by the export stage")
    return found[0]


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


def set_alias(registered_model: str, alias: str, version: str) -> None:
    import mlflow

    mlflow.MlflowClient().set_registered_model_alias(registered_model, alias, version)


def download_model_artifacts(uri: str, tracking: TrackingParams) -> str:
    """Local copy of the artifacts behind a `models:/` or `runs:/` URI, from the store `tracking_uri(tracking)`."""
    import mlflow

    set_tracking_uri(tracking_uri(tracking))
    try:
        return mlflow.artifacts.download_artifacts(artifact_uri=uri)
    except mlflow.exceptions.MlflowException as err:
        raise VocalsepError(f"{uri}: cannot fetch the model from MLflow at {mlflow.get_tracking_uri()} "
                            f"({err.message}); check the name, version or alias and MLFLOW_TRACKING_URI") from None


def list_versions(registered_model: str) -> list[dict[str, Any]]:
    """Every version of `registered_model`, newest first: version, aliases, tags, creation time (ms), source.

    An absent model is an empty list; a store that cannot be read is a VocalsepError naming it.
    """
    import mlflow

    client = mlflow.MlflowClient()
    try:
        versions = client.search_model_versions(f"name='{registered_model}'")
        aliases = client.get_registered_model(registered_model).aliases if versions else {}
    except Exception as err:  # MlflowException, or the store's own errors
        if getattr(err, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise VocalsepError(f"MLflow registry at {mlflow.get_tracking_uri()}: cannot list {registered_model!r} "
                            f"({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''})") from None
    by_version: dict[str, list[str]] = {}
    for alias, version in (aliases or {}).items():
        by_version.setdefault(str(version), []).append(alias)
    rows = [{"version": str(v.version), "aliases": sorted(by_version.get(str(v.version), [])), "tags": dict(v.tags),
             "created_ms": v.creation_timestamp} for v in versions]
    return sorted(rows, key=lambda r: int(r["version"]), reverse=True)
