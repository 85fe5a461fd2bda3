"""Prefect flows over the DVC stages, end to end: a real Prefect server, served deployments,
real `dvc repro` in a tiny copy of the repository. The first pipeline run happens once per module
(`first_run`); every other test runs its flows in its own copy of that workspace (`workspace`), so
the tests hold in any order."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.e2e.conftest import stop
from tests.tiny_repo import copy_repo, make_tiny_repo, run, venv_env

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

PIPELINE = "vocal-pipeline/vocal-pipeline"
INGEST = "ingest/ingest"  # the shorter flows, where a test is about orchestration, not the stages
RETRAIN = "retrain/retrain"
RUN_TIMEOUT = 900


def client():
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def stage_names(repo: Path) -> list[str]:
    return list(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"])


def wait_for_deployment(name: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + timeout
    with client() as api:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"vocalsep serve-flows exited {proc.returncode}"
            try:
                api.read_deployment_by_name(name)
                return
            except ObjectNotFound:
                time.sleep(1)
    raise AssertionError(f"deployment {name} not served within {timeout} s")


@pytest.fixture(scope="module")
def served(prefect_api, prefect_env, tmp_path_factory):
    """A tiny repo copy and `vocalsep serve-flows` serving its deployments on the session server."""
    repo = make_tiny_repo(tmp_path_factory.mktemp("flows") / "repo")
    log = repo.parent / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "vocalsep"), "serve-flows", "--repo", str(repo),
                                 "--ingest-cron", "", "--retrain-cron", ""], cwd=repo, env=prefect_env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        wait_for_deployment(PIPELINE, proc)
        wait_for_deployment(INGEST, proc)
        wait_for_deployment(RETRAIN, proc)
        yield repo
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def first_run(served):
    """The pipeline's first run in the served repo: (repo, flow run)."""
    return served, run_pipeline(served)


@pytest.fixture
def workspace(first_run, tmp_path):
    """The workspace after the first run, copied for one test: the deployments take it as `repo`."""
    return copy_repo(first_run[0], tmp_path / "repo")


def run_pipeline(repo: Path, deployment: str = PIPELINE, **parameters):
    """Trigger a deployment and wait until its run ends; returns the final flow run."""
    from prefect.deployments import run_deployment

    return run_deployment(deployment, parameters={"repo": str(repo), **parameters}, timeout=RUN_TIMEOUT,
                          as_subflow=False, poll_interval=2)


def task_runs(flow_run_id) -> dict:
    """Task runs of a flow run by name (a stage task is named after its stage)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with client() as api:
        runs = api.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name: run for run in runs}


def task_states(flow_run_id) -> dict[str, str]:
    return {name: run.state.type.value for name, run in task_runs(flow_run_id).items()}


def logs(flow_run_id) -> str:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    found, offset = [], 0
    with client() as api:
        while True:
            page = api.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                                 limit=200, offset=offset)
            found += page
            offset += len(page)
            if len(page) < 200:
                return "\n".join(entry.message for entry in found)


def report(flow_run_id) -> str:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with client() as api:
        found = api.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            key=ArtifactFilterKey(any_=["vocal-pipeline-report"])))
    assert len(found) == 1, f"expected one report artifact, found {len(found)}"
    return found[0].data


def outcome_rows(markdown: str) -> dict[str, str]:
    """stage -> outcome, from the report's "## Stages" table."""
    section = markdown.split("## Stages", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): cells[1].strip() for cells in rows[1:]}


def wait_final(flow_run_ids: list, timeout: float = RUN_TIMEOUT) -> list:
    deadline = time.monotonic() + timeout
    with client() as api:
        while time.monotonic() < deadline:
            runs = [api.read_flow_run(flow_run_id) for flow_run_id in flow_run_ids]
            if all(flow_run.state.is_final() for flow_run in runs):
                return runs
            time.sleep(2)
    raise AssertionError(f"flow runs {flow_run_ids} did not finish within {timeout} s")


def dvc_status(repo: Path) -> str:
    return run(["dvc", "status"], repo, env=venv_env())


def test_first_run_runs_every_stage(first_run):
    served, flow_run = first_run
    assert flow_run.state.is_completed(), flow_run.state.message
    stages = stage_names(served)
    assert task_states(flow_run.id) == {stage: "COMPLETED" for stage in stages}
    markdown = report(flow_run.id)
    outcomes = outcome_rows(markdown)
    assert {stage: outcomes.get(stage) for stage in stages} == {stage: "ran" for stage in stages}
    assert "| si_sdr |" in markdown and "/#/runs/" in markdown  # eval medians, MLflow run link
    assert "Running stage 'download'" in logs(flow_run.id)


def test_second_run_is_skipped_by_dvc(workspace):
    served = workspace
    flow_run = run_pipeline(served)
    assert flow_run.state.is_completed(), flow_run.state.message
    outcomes = outcome_rows(report(flow_run.id))
    assert {stage: outcomes.get(stage) for stage in stage_names(served)} == {
        stage: "skipped" for stage in stage_names(served)}
    assert "didn't change, skipping" in logs(flow_run.id)


def wait_for_log(flow_run_ids: list, text: str, timeout: float = RUN_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(text in logs(flow_run_id) for flow_run_id in flow_run_ids):
            return
        time.sleep(2)
    raise AssertionError(f"flow runs {flow_run_ids} never logged {text!r} within {timeout} s")


def test_concurrent_runs_wait_for_each_other(workspace):
    """While the workspace is held (here by the test, as by another run), both runs wait and say so;
    once it is free they take turns, finish, and leave DVC clean."""
    import logging

    from flows.workspace import workspace_lock
    from prefect.deployments import run_deployment

    served = workspace
    with workspace_lock(served, "held-by-test", logging.getLogger("test")):
        started = [run_deployment(name, parameters={"repo": str(served)}, timeout=0, as_subflow=False)
                   for name in (INGEST, RETRAIN)]
        wait_for_log([flow_run.id for flow_run in started], "waiting for the workspace lock held by run held-by-test")
    finished = wait_final([flow_run.id for flow_run in started])
    assert all(r.state.is_completed() for r in finished), [r.state.message for r in finished]
    assert all("workspace lock acquired after waiting" in logs(r.id) for r in finished)
    stages = stage_names(served)
    ingest, retrain = (outcome_rows(report(r.id)) for r in finished)
    assert list(ingest) + list(retrain) == stages
    assert set(ingest.values()) | set(retrain.values()) == {"skipped"}
    assert "changed" not in dvc_status(served).lower()


def test_dask_normalize_writes_the_serial_manifest(workspace):
    served = workspace
    manifest = served / "data/normalized/manifest.parquet"
    serial = pd.read_parquet(manifest)
    subprocess.run(["rm", "-rf", str(served / "data/normalized")], check=True)
    flow_run = run_pipeline(served, INGEST, task_runner="dask")
    assert flow_run.state.is_completed(), flow_run.state.message
    text = logs(flow_run.id)
    assert "stage normalize ran on Dask" in text
    found = re.search(r"in worker processes ([\d, ]+) \(the flow runs in process (\d+)\)", text)
    workers = set(found[1].split(", "))  # a LocalCluster of 2 worker processes, not threads
    assert len(workers) == 2 and found[2] not in workers and str(os.getpid()) not in workers, found[0]
    fanned = pd.read_parquet(manifest)
    key = ["role", "id"]
    pd.testing.assert_frame_equal(serial.sort_values(key).reset_index(drop=True),
                                  fanned.sort_values(key).reset_index(drop=True))
    assert "changed" not in dvc_status(served).lower()


def test_failing_stage_fails_the_run_with_its_message(workspace):
    served = workspace
    dead = served / "sources/dead.yaml"
    dead.write_text(yaml.safe_dump([{"url": "file:///nonexistent/vocals.wav", "role": "acapella"},
                                    {"url": "file:///nonexistent/band.wav", "role": "instrumental"}]))
    flow_run = run_pipeline(served, sources="sources/dead.yaml")
    assert flow_run.state.is_failed()
    states = task_states(flow_run.id)
    assert [stage for stage, state in states.items() if state == "FAILED"] == ["download"]
    assert task_runs(flow_run.id)["download"].run_count == 1  # the stage retries URLs itself: one layer
    assert "normalize" not in states
    assert "error in stage download: no usable" in logs(flow_run.id)
    assert "error in stage download" in flow_run.state.message
    assert outcome_rows(report(flow_run.id))["download"] == "failed"
