"""Export stage: TorchScript and ONNX graphs checked against eager, a registered pyfunc, the promotion rule.

Reads `<paths.checkpoints>/best.pt` and `<paths.metrics>/eval.json`; writes
`<paths.export>/{model.ts,model.onnx,serving.json,registry.json}` (the last:
the decision record, with its text fields) and `<paths.metrics>/registry.json`
(its numbers only, for `dvc metrics show`: version, champion_version,
promoted 1/0, new_metric, champion_metric, base_metric). The pyfunc (the separation core around the
checkpoint, `vocalsep.serving.pyfunc.VocalSeparator`, logged as code from
`vocalsep/serving/served_model.py`, so the model folder holds no pickle) is logged in the training run
when it is still in the store, and registered as a new version of `export.registered_model`.

Promotion: the current champion and the shipped base model (registered on the
first export, `vocalsep.stages.base`) are scored on the current test set; the
new version takes the alias `champion` only when its `export.metric` beats
both. Otherwise it is `challenger`, and the better of the two holds the
champion alias (the base takes it from a weaker champion).
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vocalsep import provenance, registry, tracking
from vocalsep.config import Params
from vocalsep.errors import StageError
from vocalsep.model import load_checkpoint, load_model
from vocalsep.model.checkpoint import checkpoint_sample_rate
from vocalsep.model.onnx import check_lengths, compare_graph, export_onnx_graph
from vocalsep.registry import CHALLENGER, CHAMPION, beats_champion, checkpoint_from_uri
from vocalsep.serving.pyfunc import CHANNELS
from vocalsep.base_model import contender as base
from vocalsep.stages._cli import run_stage
from vocalsep.serving.register import log_model, model_tags
from vocalsep.scoring import promotion_score, testset_hash

log = logging.getLogger(__name__)
TESTSET_TAG = base.TESTSET_TAG  # version tag: the test set its metrics were measured on


def export_torchscript(model: nn.Module, path: Path, tolerance: float) -> float:
    """Trace to TorchScript `(batch, 2, samples)` -> same; returns the checked max abs diff."""
    lengths = check_lengths(model)
    with torch.inference_mode(False), torch.no_grad():
        traced = torch.jit.trace(model, torch.zeros(1, CHANNELS, lengths[0]))
    traced.save(str(path))
    loaded = torch.jit.load(str(path))
    return compare_graph(path.name, lambda x: loaded(x).detach().numpy(), model, lengths, tolerance)


def export_onnx(model: nn.Module, path: Path, tolerance: float) -> float:
    """ONNX with dynamic batch and time axes (input `mixture`, output `vocals`), checked with onnxruntime."""
    import onnxruntime

    lengths = check_lengths(model)
    try:
        export_onnx_graph(model, path, lengths[0])
    except Exception as err:  # the exporter raises many types; the stage reports one line
        raise StageError(f"{path}: ONNX export failed ({type(err).__name__}: {err}); "
                         "set export.onnx: false to skip ONNX") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return compare_graph(path.name, lambda x: session.run(None, {"mixture": x.numpy()})[0], model, lengths,
                         tolerance)


def read_eval_metrics(path: Path, metric: str) -> dict[str, float]:
    """`eval.json` as `{name: number}`; StageError when missing or without `metric`."""
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise StageError(f"{path}: not found; run the evaluate stage first (dvc repro evaluate)") from None
    except ValueError as err:
        raise StageError(f"{path}: not valid JSON ({err}); re-run the evaluate stage") from None
    numbers = {k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if metric not in numbers:
        raise StageError(f"{path}: has no number {metric!r} (export.metric); "
                         f"found {', '.join(numbers) or 'none'}; re-run evaluate or change export.metric")
    return numbers


def champion_score(params: Params, testset: str) -> tuple[tuple[str, float] | None, bool]:
    """The current champion's (version, metric) on THIS test set, and whether it had to be re-scored.

    A version's tags hold the score on the test set it was exported with; when
    the index stage has since rebuilt the test set (new sources), comparing
    those numbers would compare different exams, so the champion is separated
    and scored again on the current one.
    """
    name, metric = params.export.registered_model, params.export.metric
    current = registry.version_by_alias(name, CHAMPION)
    if current is None:
        return None, False
    version, tags = current
    if tags.get(TESTSET_TAG) == testset:
        return (version, float(tags.get(metric, "nan"))), False
    log.info("champion version %s was scored on another test set; scoring it on the current one", version)
    score = promotion_score(load_checkpoint(checkpoint_from_uri(f"models:/{name}/{version}", params.tracking)), params)
    # the version's tags now tell the score on the current test set, so the registry UI never shows
    # numbers from two test sets side by side; the old score stays under a name that says so
    registry.set_version_tags(name, version, {metric: score, TESTSET_TAG: testset,
                                              f"{metric}_previous_testset": tags.get(metric, "unknown"),
                                              "previous_testset": tags.get(TESTSET_TAG, "unknown")})
    return (version, score), True


def holder(champion: tuple[str, float] | None, base_score: tuple[str, float] | None) -> tuple[str, float] | None:
    """Who holds the title before the newcomer plays: the better of the champion and the base model on the
    current test set (a NaN score loses to a finite one; a tie keeps the champion)."""
    contenders = [c for c in (champion, base_score) if c is not None]
    if not contenders:
        return None
    return max(contenders, key=lambda c: c[1] if math.isfinite(c[1]) else -math.inf)


def promote(registered_model: str, version: str, metric: str, new_metric: float,
            champion: tuple[str, float] | None, base_score: tuple[str, float] | None = None) -> dict[str, Any]:
    """Apply the promotion rule to a fresh `version` against `champion` and the base model (each
    (version, metric on the same test set), or None); returns the decision record (see registry.json)."""
    best = holder(champion, base_score)
    if beats_champion(new_metric, None if best is None else best[1]):
        registry.set_alias(registered_model, CHAMPION, version)
        decision, champion_version = "champion", version
    else:
        registry.set_alias(registered_model, CHALLENGER, version)
        decision, champion_version = "challenger", best[0] if best else None
        if best is not None and (champion is None or champion[0] != best[0]):
            registry.set_alias(registered_model, CHAMPION, best[0])  # the base takes the title
    return {"registered_model": registered_model, "version": version, "champion_version": champion_version,
            "decision": decision, "metric": metric, "new_metric": new_metric,
            "champion_metric": None if champion is None else champion[1],
            "base_version": None if base_score is None else base_score[0],
            "base_metric": None if base_score is None else base_score[1],
            "previous_champion_version": champion[0] if champion else None,
            "model_uri": f"models:/{registered_model}/{version}"}


def register(params: Params, checkpoint: Path, metrics: dict[str, float], lock: Path) -> dict[str, Any]:
    """Log the pyfunc (in the training run when it still exists), register a version, promote or not."""
    ckpt = load_checkpoint(checkpoint)
    testset = testset_hash(Path(params.paths.testset))
    origin = provenance.record(provenance.pipeline_sources(params), provenance.data_hash(params.paths, lock), ckpt.get("git_sha") or "unknown",
                               f"the pipeline's index ({params.paths.index}) of {params.download.sources}")
    origin_file = provenance.write(origin, Path(params.paths.export) / provenance.FILE_NAME)
    tags = {**metrics, "metric": params.export.metric, TESTSET_TAG: testset, **provenance.version_tags(origin),
            **model_tags(ckpt)}
    # the champion first: a registry that cannot be read stops here, before anything is logged or moved
    tracking.configure(params.tracking)
    champion, rescored = champion_score(params, testset)
    base_score = base.contender(params, testset) if params.export.base else None
    with tracking.start_run(params.tracking, run_id=ckpt.get("mlflow_run_id"), run_name="export") as run_id:
        model_uri = log_model(params, checkpoint, checkpoint_sample_rate(ckpt), origin_file)
        name, metric = params.export.registered_model, params.export.metric
        version = registry.register_version(model_uri, name, tags)
        record = {**promote(name, version, metric, float(metrics[metric]), champion, base_score),
                  "champion_rescored": rescored, "run_id": run_id, "logged_model_uri": model_uri}
        tracking.set_tags({f"registry.{k}": record[k] for k in ("version", "decision", "champion_version")})
        tracking.log_metrics({f"registry.{k}": record[k] for k in ("new_metric", "champion_metric", "base_metric")
                              if record[k] is not None and math.isfinite(record[k])})
    return record


def registry_metrics(record: dict[str, Any]) -> dict[str, float | int]:
    """The numbers of a decision record: what DVC metrics compare across experiments."""
    numbers: dict[str, float | int] = {"version": int(record["version"]),
                                       "promoted": int(record["decision"] == "champion")}
    if record.get("champion_version") is not None:
        numbers["champion_version"] = int(record["champion_version"])
    if record.get("base_version") is not None:
        numbers["base_version"] = int(record["base_version"])
    for key in ("new_metric", "champion_metric", "base_metric"):
        if record.get(key) is not None and math.isfinite(record[key]):
            numbers[key] = float(record[key])
    return numbers


def export(params: Params, lock: Path = Path("dvc.lock")) -> dict[str, Any]:
    """Run the stage; returns the decision record written to `<paths.export>/registry.json`."""
    checkpoint = params.paths.best_checkpoint
    model = load_model(checkpoint)
    metrics = read_eval_metrics(params.paths.eval_metrics, params.export.metric)
    out = Path(params.paths.export)
    out.mkdir(parents=True, exist_ok=True)
    export_torchscript(model, out / "model.ts", params.export.tolerance)
    if params.export.onnx:
        export_onnx(model, out / "model.onnx", params.export.tolerance)
    record = register(params, checkpoint, metrics, lock)
    params.paths.registry_record.write_text(json.dumps(record, indent=2) + "\n")
    Path(params.paths.metrics).mkdir(parents=True, exist_ok=True)
    params.paths.registry_metrics.write_text(json.dumps(registry_metrics(record), indent=2) + "\n")
    champion = "none" if record["champion_metric"] is None else f"{record['champion_metric']:.3f}"
    against = f"champion {champion}"
    if record.get("base_metric") is not None:
        against += f", base model (version {record['base_version']}) {record['base_metric']:.3f}"
    print(f"export: {params.export.registered_model} version {record['version']} "
          f"{params.export.metric} {record['new_metric']:.3f} vs {against} -> "
          f"{record['decision']}; champion is version {record['champion_version']}")
    return record


def main(argv: Sequence[str] | None = None) -> int:
    return run_stage("export", export, argv)


if __name__ == "__main__":
    sys.exit(main())
