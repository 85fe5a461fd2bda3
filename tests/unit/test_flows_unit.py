"""Orchestration pieces that need no Prefect server: stage order, overrides, lock, report, schedules."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from flows.pipeline import select_stages
from flows.report import pipeline_report
from flows.serve import INGEST_CRON, RETRAIN_CRON, deployments
from flows.workspace import WorkspaceError, apply_overrides, pipeline_order, workspace_lock


def test_stage_order_follows_the_dvc_graph(repo_root):
    order = pipeline_order(repo_root)
    stages = yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]
    assert sorted(order) == sorted(stages)
    producer = {}
    for name, stage in stages.items():
        for out in stage.get("outs", []):
            producer[str(next(iter(out)) if isinstance(out, dict) else out)] = name
    for name, stage in stages.items():
        for dep in stage.get("deps", []):
            upstream = [p for out, p in producer.items() if dep == out or dep.startswith(out + "/")]
            assert all(order.index(p) < order.index(name) for p in upstream), (name, dep, upstream)


def test_ingest_and_retrain_split_the_order_at_validate():
    order = ["demo", "download", "normalize", "validate", "index", "train"]
    assert select_stages(order, "ingest") == order[:4]
    assert select_stages(order, "retrain") == order[4:]
    assert select_stages(order, "all") == order


def test_missing_dvc_yaml_names_the_file(tmp_path):
    with pytest.raises(WorkspaceError, match="dvc.yaml"):
        pipeline_order(tmp_path)


@pytest.fixture
def workspace(tmp_path, repo_root) -> Path:
    (tmp_path / "params.yaml").write_text((repo_root / "params.yaml").read_text())
    return tmp_path


def test_overrides_merge_into_params_keeping_comments(workspace):
    profile = workspace / "profile.yaml"
    profile.write_text("train:\n  epochs: 2\nmodel:\n  filters: 8\n")
    changed = apply_overrides(workspace, "profile.yaml", sources="sources/mine.yaml")
    assert sorted(changed) == ["download.sources", "model.filters", "train.epochs"]
    text = (workspace / "params.yaml").read_text()
    values = yaml.safe_load(text)
    assert (values["train"]["epochs"], values["model"]["filters"]) == (2, 8)
    assert values["download"]["sources"] == "sources/mine.yaml"
    assert "# the manifest of URLs" in text and "# seed: 128" in text
    assert apply_overrides(workspace, "profile.yaml", sources="sources/mine.yaml") == []


def test_a_bad_override_names_the_key_and_leaves_params_alone(workspace):
    before = (workspace / "params.yaml").read_text()
    (workspace / "bad.yaml").write_text("train:\n  epocs: 2\n")
    with pytest.raises(WorkspaceError, match="epocs"):
        apply_overrides(workspace, "bad.yaml")
    with pytest.raises(WorkspaceError, match="nope.yaml"):
        apply_overrides(workspace, "nope.yaml")
    assert (workspace / "params.yaml").read_text() == before


class _Heard(logging.Handler):
    """Sets `event` when a log record contains `text`: a test waits for what happened, not for a time."""

    def __init__(self, text: str):
        super().__init__()
        self.text, self.event = text, threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


def test_second_holder_waits_for_the_workspace_lock(tmp_path):
    logger = logging.getLogger("test-lock")
    logger.setLevel(logging.INFO)
    heard = _Heard("waiting for the workspace lock held by run run-a")
    logger.addHandler(heard)
    order = []

    def second():
        with workspace_lock(tmp_path, "run-b", logger, poll_seconds=0.05):
            order.append("b")

    try:
        with workspace_lock(tmp_path, "run-a", logger):
            thread = threading.Thread(target=second)
            thread.start()
            assert heard.event.wait(timeout=120), "the second run never reported waiting"
            order.append("a")  # the second run is waiting now, not merely not started yet
        thread.join(timeout=120)
    finally:
        logger.removeHandler(heard)
    assert order == ["a", "b"]


def test_report_lists_outcomes_eval_and_registry(workspace):
    metrics = workspace / "metrics"
    metrics.mkdir()
    (metrics / "eval.json").write_text('{"sdr": 4.25, "si_sdr": 3.5, "tracks": 2}')
    (workspace / "models/export").mkdir(parents=True)
    (workspace / "models/export/registry.json").write_text('{"champion_version": 3, "reason": "si_sdr 3.5 > 2.0",'
                                                           ' "run_id": "abc123"}')
    markdown = pipeline_report(workspace, {"train": "ran", "export": "skipped"}, error=None)
    assert "| train | ran |" in markdown and "| export | skipped |" in markdown
    assert "| si_sdr | 3.5 |" in markdown and "si_sdr 3.5 > 2.0" in markdown
    assert "(http://127.0.0.1:5000/#/runs/abc123)" in markdown
    assert "## Registry decision (from an earlier run: this run's stage was skipped)" in markdown
    assert "## Evaluation (from an earlier run: this run's stage was not part of it)" in markdown
    fresh = pipeline_report(workspace, {"evaluate": "ran", "export": "ran"}, error=None)
    assert "## Evaluation\n" in fresh and "## Registry decision\n" in fresh


def test_a_mistyped_repo_is_named_and_left_untouched(tmp_path):
    from flows.workspace import WorkspaceError, check_workspace

    with pytest.raises(WorkspaceError, match="not a vocalsep workspace"):
        check_workspace(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_report_without_metrics_says_so(workspace):
    markdown = pipeline_report(workspace, {"demo": "failed"}, error="stage demo failed")
    assert "stage demo failed" in markdown and "eval.json is absent" in markdown


def test_deployments_match_prefect_yaml(repo_root):
    config = yaml.safe_load((repo_root / "prefect.yaml").read_text())
    crons = {d["name"]: [s["cron"] for s in d.get("schedules") or []] for d in config["deployments"]}
    assert crons == {"vocal-pipeline": [], "ingest": [INGEST_CRON], "retrain": [RETRAIN_CRON],
                     "separate-library": []}
    served = deployments(str(repo_root), INGEST_CRON, RETRAIN_CRON, "", ("music", "stems", "auto", ""))
    assert {d.name: [s.schedule.cron for s in d.schedules] for d in served} == crons
    watched = deployments(str(repo_root), INGEST_CRON, RETRAIN_CRON, "", ("music", "stems", "auto", "*/30 * * * *"))
    library = next(d for d in watched if d.name == "separate-library")
    assert [s.schedule.cron for s in library.schedules] == ["*/30 * * * *"]
    assert library.parameters["inputs"] == [str(Path("music").resolve())] and library.parameters["model"] == "auto"
    assert all(s.schedule.timezone == "UTC" for d in served for s in d.schedules)
    for d in config["deployments"]:
        path, name = d["entrypoint"].split(":")
        assert f"def {name}(" in (repo_root / path).read_text()


def test_stage_message_is_preferred_over_dvc_verdict():
    from collections import deque

    from flows.repro import REPRO_FAILED
    from flows.tasks import _error_line

    tail = deque(["[validate] reading", "error in stage validate: too few files", f"{REPRO_FAILED} exited 2"])
    assert _error_line(tail) == "error in stage validate: too few files"
    crash = deque(["Traceback (most recent call last):", "ValueError: bad path", f"{REPRO_FAILED} exited 1"])
    assert _error_line(crash) == f"ValueError: bad path; {REPRO_FAILED} exited 1"


@pytest.mark.slow
def test_repro_reports_which_stages_ran(tmp_path):
    from flows.repro import RAN_MARKER
    from flows.tasks import stage_env

    (tmp_path / "dvc.yaml").write_text("stages:\n  hello:\n    cmd: echo hi > out.txt\n    outs: [out.txt]\n")
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    ran = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-m", "flows.repro", str(tmp_path), "hello"], cwd=tmp_path,
                             env=stage_env(), capture_output=True, text=True, check=True).stdout
        marker = [line for line in out.splitlines() if line.startswith(RAN_MARKER)]
        ran.append(json.loads(marker[-1][len(RAN_MARKER):]))
    assert ran == [["hello"], []]
