"""The markdown report a flow run ends with: stage outcomes, eval medians, registry decision."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from vocalsep.config import DEFAULT_PARAMS, load_params

MLFLOW_UI_ENV = "VOCALSEP_MLFLOW_UI"  # base URL of the MLflow UI the run link points at
EVAL_KEYS = ("sdr", "si_sdr", "si_sdri", "mixture_sdr", "irm_sdr", "irm_si_sdr", "tracks")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _stage_table(outcomes: dict[str, str]) -> list[str]:
    rows = ["| stage | outcome |", "|---|---|"]
    return rows + [f"| {stage} | {outcome} |" for stage, outcome in outcomes.items()]


def _eval_section(evaluation: dict[str, Any]) -> list[str]:
    if not evaluation:
        return ["No evaluation yet (metrics/eval.json is absent)."]
    rows = ["| metric (median over tracks) | value |", "|---|---|"]
    return rows + [f"| {key} | {evaluation[key]} |" for key in EVAL_KEYS if key in evaluation]


def _registry_section(registry: dict[str, Any]) -> list[str]:
    if not registry:
        return ["No registry decision yet (models/export/registry.json is absent)."]
    headline = []
    if {"version", "decision", "champion_version"} <= registry.keys():
        headline = [f"Version {registry['version']} became **{registry['decision']}**; the champion is "
                    f"version {registry['champion_version']} ({registry.get('metric', 'metric')} "
                    f"{registry.get('new_metric')} against the previous champion's "
                    f"{registry.get('champion_metric')}).", ""]
    return headline + [f"- {key}: {value}" for key, value in registry.items() if not isinstance(value, (dict, list))]


def _mlflow_link(*sources: dict[str, Any]) -> str:
    """A link to the MLflow run named in the metrics files (export's `run_id` first), if any."""
    for source in sources:
        run_id = source.get("run_id") or source.get("mlflow_run_id")
        if run_id:
            base = os.environ.get(MLFLOW_UI_ENV, "http://127.0.0.1:5000").rstrip("/")
            # the UI's direct run route finds the experiment itself
            return f"[MLflow run {run_id}]({base}/#/runs/{run_id})"
    return "No MLflow run recorded in the metrics files."


def _heading(title: str, outcome: str | None) -> str:
    """The section title, saying so when the numbers below come from an earlier run."""
    if outcome == "ran":
        return f"## {title}"
    return f"## {title} (from an earlier run: this run's stage was {outcome or 'not part of it'})"


def pipeline_report(root: Path, outcomes: dict[str, str], error: str | None = None) -> str:
    """Markdown for the run of the stages `outcomes` (stage -> ran/skipped/failed/not run) in `root`."""
    paths = load_params(root / DEFAULT_PARAMS).paths
    evaluation = _read_json(root / paths.eval_metrics)
    registry = _read_json(root / paths.registry_record)  # the decision record
    train = _read_json(root / paths.train_metrics)
    lines = ["# vocalsep pipeline run", "", f"Workspace: `{root}`", ""]
    if error:
        lines += [f"**Failed:** {error}", ""]
    lines += ["## Stages", "", *_stage_table(outcomes), ""]
    lines += [_heading("Evaluation", outcomes.get("evaluate")), "", *_eval_section(evaluation), ""]
    lines += [_heading("Registry decision", outcomes.get("export")), "", *_registry_section(registry), ""]
    lines += ["## Tracking", "", _mlflow_link(registry, evaluation, train), ""]
    return "\n".join(lines)
