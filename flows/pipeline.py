"""The flows: `vocal-pipeline` (every stage), `ingest` (data stages) and `retrain` (index onward).

Each flow holds the workspace lock for its whole run, applies its params
overrides to params.yaml, then reproduces its stages one task per stage in
the order of dvc.yaml's graph. DVC alone decides which stages are stale; the
run ends with a markdown artifact listing what ran, what was skipped, the
eval medians and the registry decision.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.context import get_run_context

from flows.report import pipeline_report
from flows.tasks import FAILED, NOT_RUN, reproduce_stage
from flows.workspace import REPO_ROOT, apply_overrides, check_workspace, pipeline_order, workspace_lock

INGEST_LAST = "validate"  # ingest ends with validated data; retrain starts after it
REPORT_KEY = "vocal-pipeline-report"
TaskRunnerName = Literal["thread", "dask"]


def select_stages(order: list[str], part: Literal["all", "ingest", "retrain"]) -> list[str]:
    """The slice of the stage order a flow runs: all of it, up to validate, or after it."""
    if part == "all" or INGEST_LAST not in order:
        return order
    cut = order.index(INGEST_LAST) + 1
    return order[:cut] if part == "ingest" else order[cut:]


def _run_one(root: Path, stage: str, task_runner: TaskRunnerName, dask_address: str | None) -> str:
    if stage == "normalize" and task_runner == "dask":
        from flows.fanout import normalize_fanout

        return normalize_fanout(root, dask_address)
    return reproduce_stage(str(root), stage)


def run_stages(repo: str, part: Literal["all", "ingest", "retrain"], params_file: str | None,
               sources: str | None, task_runner: TaskRunnerName, dask_address: str | None) -> dict[str, str]:
    """The body every flow shares; returns stage -> ran/skipped/failed/not run."""
    logger = get_run_logger()
    root = Path(repo).resolve()
    flow_run = get_run_context().flow_run
    check_workspace(root)  # before the lock, which would create .dvc/tmp in a mistyped folder
    with workspace_lock(root, f"{flow_run.name} ({flow_run.id})", logger):
        changed = apply_overrides(root, params_file, sources)
        if changed:
            logger.info("params.yaml updated: %s", ", ".join(changed))
        outcomes = {stage: NOT_RUN for stage in select_stages(pipeline_order(root), part)}
        error = None
        try:
            for stage in outcomes:
                outcomes[stage] = FAILED
                outcomes[stage] = _run_one(root, stage, task_runner, dask_address)
        except Exception as err:
            error = str(err)
            raise
        finally:
            create_markdown_artifact(pipeline_report(root, outcomes, error), key=REPORT_KEY,
                                     description=f"stages of {part} in {root}")
    logger.info("stages: %s", ", ".join(f"{s} {o}" for s, o in outcomes.items()))
    return outcomes


@flow(name="vocal-pipeline")
def vocal_pipeline(repo: str = str(REPO_ROOT), params_file: str | None = None, sources: str | None = None,
                   task_runner: TaskRunnerName = "thread", dask_address: str | None = None) -> dict[str, str]:
    """Every DVC stage, demo to export; DVC skips what is up to date.

    repo: the DVC workspace. params_file: YAML merged over params.yaml first.
    sources: sets download.sources. task_runner: "dask" fans normalize out over
    files (on `dask_address`, else a local cluster).
    """
    return run_stages(repo, "all", params_file, sources, task_runner, dask_address)


@flow(name="ingest")
def ingest(repo: str = str(REPO_ROOT), params_file: str | None = None, sources: str | None = None,
           task_runner: TaskRunnerName = "thread", dask_address: str | None = None) -> dict[str, str]:
    """New sources in: demo, download, normalize, validate (parameters as in vocal-pipeline)."""
    return run_stages(repo, "ingest", params_file, sources, task_runner, dask_address)


@flow(name="retrain")
def retrain(repo: str = str(REPO_ROOT), params_file: str | None = None) -> dict[str, str]:
    """Index onward: train a challenger, evaluate it, export and promote it only if it wins."""
    return run_stages(repo, "retrain", params_file, None, "thread", None)
