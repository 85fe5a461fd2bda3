"""The shipped base model in the registry: registered once (tagged `source: pretrained` with the digest of its
weights and its provenance), scored on the current test set, and a contender in every promotion.

The export stage calls `contender` before it registers a new version, so a
candidate becomes champion only when it beats both the current champion and
the base model on the same test set (`export.base: false` leaves the base out).
`register_base` (`vocalsep register-base`, `vocalsep.cli.register_base`) puts the base model into a
registry that export has not touched, and makes it champion where there is none.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from vocalsep import provenance, registry, tracking
from vocalsep.config import Params
from vocalsep.contracts import SOURCE, SOURCE_TAG, is_base, sha256_file
from vocalsep.model import load_checkpoint, save_checkpoint
from vocalsep.registry import CHAMPION
from vocalsep.scoring import promotion_score
from vocalsep.serving.register import log_model

log = logging.getLogger(__name__)
DIGEST_TAG = "weights_sha256"  # which base model: the sha256 of its safetensors file
TESTSET_TAG = "testset_hash"  # version tag: the test set its metrics were measured on (as export's)


def weights_digest() -> str:
    """sha256 of the shipped base model's weights file (pretrained/, or VOCALSEP_PRETRAINED)."""
    from vocalsep.base_model.weights import WEIGHTS_NAME, pretrained_dir, read_config

    read_config()  # a missing or broken pretrained/ is named with what to do
    return sha256_file(pretrained_dir() / WEIGHTS_NAME)


def find_base(name: str, digest: str) -> tuple[str, dict[str, str]] | None:
    """The newest registered version of these base weights, `(version, tags)`, or None."""
    for row in registry.list_versions(name):  # newest first
        if is_base(row["tags"]) and row["tags"].get(DIGEST_TAG) == digest:
            return row["version"], row["tags"]
    return None


def write_base_checkpoint(folder: Path) -> tuple[Path, int]:
    """The shipped base model as a training-format checkpoint in `folder`; returns (path, sample rate)."""
    from vocalsep.base_model.weights import load_pretrained, read_config

    model, rate = load_pretrained()
    config = read_config()
    checkpoint = folder / "base.pt"
    save_checkpoint(checkpoint, model, config["kwargs"], params={"audio": {"sample_rate": rate}},
                    git_sha=config.get("git_sha") or "unknown")
    return checkpoint, rate


def log_and_register(params: Params, checkpoint: Path, rate: int, digest: str,
                     extra_tags: dict[str, Any]) -> tuple[str, str]:
    """Log the base model's pyfunc (weights of sha256 `digest`) in a run of its own and register it; returns
    (version, run id)."""
    from vocalsep.base_model.weights import read_config

    config = read_config()
    origin = provenance.load_for(SOURCE)
    origin_file = provenance.write(origin, checkpoint.parent / provenance.FILE_NAME)
    tags = {SOURCE_TAG: SOURCE, DIGEST_TAG: digest, **provenance.version_tags(origin),
            "class": config["class"], "parameters": config.get("parameters", "?"), **extra_tags}
    with tracking.start_run(params.tracking, run_name="register-base") as run_id:
        model_uri = log_model(params, checkpoint, rate, origin_file, config_dir=checkpoint.parent)
        version = registry.register_version(model_uri, params.export.registered_model, tags)
    return version, run_id


def score_base(checkpoint: Path, params: Params) -> float:
    """The base model's `export.metric` on `<paths.testset>` (NaN when undefined)."""
    return promotion_score(load_checkpoint(checkpoint), params)


def contender(params: Params, testset: str) -> tuple[str, float]:
    """The base model's (version, metric on THIS test set): registered if absent, scored if not yet on it."""
    name, metric, digest = params.export.registered_model, params.export.metric, weights_digest()
    found = find_base(name, digest)
    if found is not None and found[1].get(TESTSET_TAG) == testset:
        return found[0], float(found[1].get(metric, "nan"))
    with tempfile.TemporaryDirectory(prefix="vocalsep-base-") as tmp:
        checkpoint, rate = write_base_checkpoint(Path(tmp))
        log.info("scoring the shipped base model on the current test set")
        score = score_base(checkpoint, params)
        scored = {metric: score, "metric": metric, TESTSET_TAG: testset}
        if found is None:
            version, _ = log_and_register(params, checkpoint, rate, digest, scored)
            print(f"export: the shipped base model is registered as {name} version {version} (a contender)")
            return version, score
    registry.set_version_tags(name, found[0], scored)
    return found[0], score


def register_base(params: Params) -> dict[str, Any]:
    """Register the shipped base model as a version; it becomes `champion` only where there is none.

    A fresh clone has an empty registry, so `mlflow models serve -m
    models:/vocalsep@champion` has nothing to serve until this runs (or until
    the pipeline exports a model). A champion that exists is never moved; base
    weights already registered are not registered twice.
    """
    name = params.export.registered_model
    tracking.configure(params.tracking)
    digest = weights_digest()
    found = find_base(name, digest)
    run_id = None
    if found is None:
        with tempfile.TemporaryDirectory(prefix="vocalsep-base-") as tmp:
            version, run_id = log_and_register(params, *write_base_checkpoint(Path(tmp)), digest, {})
    else:
        version = found[0]
    champion = registry.version_by_alias(name, CHAMPION)
    if champion is None:
        registry.set_alias(name, CHAMPION, version)
    decision = "champion" if champion is None else ("registered" if found is None else "already registered")
    return {"registered_model": name, "version": version, "decision": decision, "run_id": run_id,
            "champion_version": version if champion is None else champion[0]}
