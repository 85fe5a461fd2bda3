"""Past one machine, for real: MLflow and Prefect on PostgreSQL, and a DVC remote a second clone pulls from.

One throwaway PostgreSQL cluster (tests/pg.py) holds two databases: `mlflow`
behind a real `mlflow server` (artifacts in a folder of their own, served by
it), and `prefect` behind a real `prefect server start`. A tiny copy of the
repository runs `dvc repro` against the MLflow server; `vocalsep serve`
serves its champion from there; the Prefect server runs `vocal-pipeline`
from prefect.yaml through a work pool and a `prefect worker`. Its outputs go
to a local-path DVC remote that a fresh clone pulls. docs/scaling.md gives
the same commands for a team. Skips, saying why, without PostgreSQL.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import free_port
from tests.e2e.conftest import stop, wait_healthy
from tests.pg import missing_reason, throwaway_cluster
from tests.serving_helpers import post, start_server, stop_group
from tests.tiny_repo import make_tiny_repo, run, venv_env
from vocalsep.config import load_params
from vocalsep.model import load_model
from vocalsep.separate import separate_with_params

pytestmark = [pytest.mark.slow, pytest.mark.e2e,
              pytest.mark.skipif(bool(missing_reason()), reason=str(missing_reason()))]
NAME = "vocalsep"


@pytest.fixture(scope="module")
def cluster():
    with throwaway_cluster(("mlflow", "prefect")) as started:
        yield started


@pytest.fixture(scope="module")
def mlflow_server(cluster, tmp_path_factory):
    """`mlflow server` on PostgreSQL with its own artifact store; yields its URL."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port, log = free_port(), folder / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(["mlflow", "server", "--backend-store-uri", cluster.url("mlflow"),
                                 "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1",
                                 "--port", str(port), "--workers", "1"],
                                env=venv_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", proc, log, 180)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def pipeline(mlflow_server, tmp_path_factory):
    """A tiny workspace after `dvc repro` with MLFLOW_TRACKING_URI pointing at the server."""
    # the pipeline's own models only: the base model as a contender is tested on SQLite (test_dvc_repro,
    # tests/model/test_base_contender.py); here the store is what is under test
    repo = make_tiny_repo(tmp_path_factory.mktemp("scale") / "repo", {"export": {"base": False}})
    started = time.monotonic()
    run(["dvc", "repro"], repo, env=venv_env({"MLFLOW_TRACKING_URI": mlflow_server}))
    print(f"dvc repro against MLflow on PostgreSQL: {time.monotonic() - started:.0f} s")
    return repo


def test_the_pipeline_tracks_registers_and_promotes_on_the_postgres_server(pipeline, mlflow_server, tmp_path):
    import mlflow

    repo = pipeline
    assert not (repo / "mlruns/mlflow.db").exists()  # nothing went to the local SQLite store
    client = mlflow.MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    champion = client.get_model_version_by_alias(NAME, "champion")
    assert champion.version == "1" and champion.tags["sources"] == "8" and champion.tags["data_hash"] != "unknown"
    run_id = json.loads((repo / "models/export/registry.json").read_text())["run_id"]
    assert "test_si_sdr" in client.get_run(run_id).data.metrics
    assert {a.path for a in client.list_artifacts(run_id, "report")} >= {"report/index.html"}

    # the promotion rule, as on SQLite: a worse score registers version 2 as challenger, champion stays
    eval_path = repo / "metrics/eval.json"
    claimed = {**json.loads(eval_path.read_text())}
    claimed["si_sdr"] -= 10.0
    eval_path.write_text(json.dumps(claimed))
    run([sys.executable, "-m", "vocalsep.stages.export"], repo, env=venv_env({"MLFLOW_TRACKING_URI": mlflow_server}))
    record = json.loads((repo / "models/export/registry.json").read_text())
    assert (record["version"], record["decision"], record["champion_version"]) == ("2", "challenger", "1")
    assert client.get_model_version_by_alias(NAME, "champion").version == "1"
    assert client.get_model_version_by_alias(NAME, "challenger").version == "2"
    run(["dvc", "checkout", "--force"], repo)  # metrics/eval.json back to what the pipeline wrote

    # vocalsep serve answers from the server's registry like the separation core
    process, port = start_server(f"models:/{NAME}@champion", mlflow_server, repo,
                                 command=["vocalsep", "serve", "--params", str(repo / "params.yaml"), "--allow-demo"])
    try:
        mixture, rate = sf.read(repo / "data/testset/track_00/mixture.flac", dtype="float32", frames=8820)
        status, answer = post(port, {"inputs": mixture.tolist()})
        assert status == 200, answer
        params = load_params(repo / "params.yaml")
        expected = separate_with_params(load_model(repo / "models/checkpoints/best.pt"), mixture.T, rate,
                                        params.separate).T
        np.testing.assert_allclose(np.asarray(answer["predictions"], np.float32), expected, atol=1e-4)
    finally:
        stop_group(process)


def test_a_second_clone_pulls_data_and_models_from_the_dvc_remote(pipeline, tmp_path):
    repo = pipeline
    git = ["git", "-c", "user.email=t@x", "-c", "user.name=t"]
    run(["dvc", "remote", "add", "-d", "storage", str(tmp_path / "remote")], repo)
    run(git + ["add", "dvc.lock", ".dvc/config"], repo)
    run(git + ["commit", "-qm", "pipeline results and the team's DVC remote"], repo)
    pushed = run(["dvc", "push"], repo)
    assert re.search(r"\d+ files? pushed", pushed), pushed
    second = tmp_path / "second"
    run(["git", "clone", "-q", str(repo), str(second)], tmp_path)
    run(["dvc", "pull"], second)
    assert "Data and pipelines are up to date" in run(["dvc", "status"], second)
    for path in ("metrics/eval.json", "metrics/train.json", "models/checkpoints/best.pt", "models/export/model.ts"):
        assert (second / path).read_bytes() == (repo / path).read_bytes(), path
    rerun = run(["dvc", "repro"], second)
    assert "Running stage" not in rerun and "didn't change, skipping" in rerun, rerun[-3000:]


def test_prefect_on_postgres_runs_the_deployment_through_a_work_pool_and_a_worker(cluster, pipeline, mlflow_server,
                                                                                  tmp_path):
    repo = pipeline
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = venv_env({"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": api,
                    "PREFECT_API_DATABASE_CONNECTION_URL": cluster.url("prefect", "postgresql+asyncpg"),
                    "PREFECT_UI_ENABLED": "false", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
                    "MLFLOW_TRACKING_URI": mlflow_server,
                    "PWD": str(repo)})  # prefect.yaml's {{ $PWD }}: the workspace the worker runs the flow in
    log = tmp_path / "prefect-server.log"
    with log.open("w") as out:
        server = subprocess.Popen(["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                  env=env, stdout=out, stderr=subprocess.STDOUT)
    worker = None
    try:
        wait_healthy(f"{api}/health", server, log, 240)
        run(["prefect", "work-pool", "create", "vocalsep", "--type", "process"], repo, env=env)
        run(["prefect", "--no-prompt", "deploy", "--name", "vocal-pipeline"], repo, env=env)
        started = run(["prefect", "deployment", "run", "vocal-pipeline/vocal-pipeline"], repo, env=env)
        flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", started)[1]
        with (tmp_path / "worker.log").open("w") as out:
            worker = subprocess.Popen(["prefect", "worker", "start", "--pool", "vocalsep"], cwd=repo, env=env,
                                      stdout=out, stderr=subprocess.STDOUT)
        state = wait_for_flow_run(flow_run_id, env, timeout=600)
        assert state == "COMPLETED", (tmp_path / "worker.log").read_text()[-4000:]
        report = read_report_artifact(flow_run_id, env)
        assert "# vocalsep pipeline run" in report and "| export | skipped |" in report
    finally:
        if worker is not None:
            stop(worker)
        stop(server)


QUERY = """
import asyncio, json, sys
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
async def main(run_id, what):
    async with get_client() as client:
        if what == "state":
            print((await client.read_flow_run(run_id)).state.type.value)
        else:
            found = await client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(
                any_=[run_id])))
            print(json.dumps([a.data for a in found if a.key == "vocal-pipeline-report"]))
asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def wait_for_flow_run(flow_run_id: str, env: dict, timeout: float) -> str:
    deadline, state = time.monotonic() + timeout, "?"
    while time.monotonic() < deadline:
        state = subprocess.run([sys.executable, "-c", QUERY, flow_run_id, "state"], env=env, capture_output=True,
                               text=True, timeout=120).stdout.strip()
        if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return state
        time.sleep(3)
    return state


def read_report_artifact(flow_run_id: str, env: dict) -> str:
    found = json.loads(subprocess.run([sys.executable, "-c", QUERY, flow_run_id, "artifact"], env=env,
                                      capture_output=True, text=True, timeout=120, check=True).stdout)
    assert len(found) == 1, found
    return found[0]
