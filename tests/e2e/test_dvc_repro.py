"""The real `dvc repro` over every stage, on a tiny demo corpus, in a temporary copy of the repo.

`dvc repro` runs once per module (`golden`); each test gets its own copy of that result (`repro`), so
what one test changes (params, experiments, a sample rate) no other test sees, in any order."""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from tests.serving_helpers import post, start_server, stop_group
from tests.tiny_repo import copy_repo, make_tiny_repo, run, venv_env, write_params
from vocalsep.config import load_params
from vocalsep.model import load_model
from vocalsep.separate import separate_with_params

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def stage_names(repo) -> list[str]:
    return list(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"])


def ran_and_skipped(output: str) -> tuple[set[str], set[str]]:
    ran = set(re.findall(r"Running stage '([\w-]+)'", output))
    skipped = set(re.findall(r"Stage '([\w-]+)' didn't change, skipping", output))
    return ran, skipped


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    repo = make_tiny_repo(tmp_path_factory.mktemp("dvc") / "repo")
    output = run(["dvc", "repro"], repo)
    return repo, output


@pytest.fixture
def repro(golden, tmp_path):
    """The first `dvc repro`'s workspace and output, copied for this test alone."""
    repo, output = golden
    return copy_repo(repo, tmp_path / "repo"), output


def test_first_repro_runs_every_stage(repro):
    repo, output = repro
    ran, _ = ran_and_skipped(output)
    assert ran == set(stage_names(repo))


def test_outputs_honour_the_contracts(repro):
    repo, _ = repro
    downloads = [json.loads(line) for line in (repo / "data/raw/downloads.jsonl").read_text().splitlines()]
    assert len(downloads) == 8 and all(d["status"] == "ok" for d in downloads)
    manifest = pd.read_parquet(repo / "data/normalized/manifest.parquet")
    assert set(manifest.role) == {"acapella", "instrumental"}
    for path in manifest.path:
        info = sf.info(repo / path)
        assert (info.samplerate, info.channels) == (44100, 2)
    ids = {split: set(pd.read_parquet(repo / f"data/index/{split}.parquet").id) for split in ("train", "val", "test")}
    assert not (ids["train"] & ids["val"] or ids["train"] & ids["test"] or ids["val"] & ids["test"])
    assert len([p for p in (repo / "data/testset").iterdir() if p.is_dir()]) == 2


def test_second_repro_skips_every_stage(repro):
    repo, _ = repro
    ran, skipped = ran_and_skipped(run(["dvc", "repro"], repo))
    assert ran == set()
    assert skipped == set(stage_names(repo))
    assert "changed" not in run(["dvc", "status"], repo).lower()


def test_settings_that_do_not_change_results_rerun_nothing(repro):
    repo, _ = repro
    write_params(repo, {"download": {"retries": 2, "backoff_seconds": 0.2}, "normalize": {"workers": 2},
                        "train": {"workers": 1, "log_every": 3}})
    ran, _ = ran_and_skipped(run(["dvc", "repro"], repo))
    assert ran == {"check_params"}  # every edit is checked; the check's output is unchanged, so nothing else runs
    assert "Data and pipelines are up to date" in run(["dvc", "status"], repo)


def _repro_fails(repo, *args: str, env: dict | None = None) -> str:
    proc = subprocess.run(["dvc", "repro", *args], cwd=repo, env=env or venv_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("typo, named, hint", [
    ({"train": {"lr_scheduel": "constant"}}, "train.lr_scheduel", "did you mean train.lr_schedule?"),
    ({"trian": {"epochs": 3}}, "trian", "did you mean train?"),
    ({"train": {"lr": "fast"}}, "train.lr", "expected a number"),
])
def test_a_params_typo_stops_dvc_repro_before_any_stage(repro, typo, named, hint):
    """An unknown key in a section no stage tracks would leave `dvc repro` "up to date"; it must fail, naming it."""
    repo, _ = repro
    original = (repo / "params.yaml").read_text()
    outputs = {p: (repo / p).read_bytes() for p in ("metrics/train.json", "plots/train_loss.csv", "metrics/eval.json")}
    try:
        write_params(repo, typo)
        output = _repro_fails(repo)
        assert named in output and hint in output
        assert "Running stage 'check_params'" in output
        assert not (set(re.findall(r"Running stage '([\w-]+)'", output)) - {"check_params"})
        assert {p: (repo / p).read_bytes() for p in outputs} == outputs
    finally:
        (repo / "params.yaml").write_text(original)
    after = run(["dvc", "repro"], repo)  # the check runs again, or DVC's run cache restores its report
    ran, _ = ran_and_skipped(after)
    assert ran <= {"check_params"} and ("check_params" in ran or "Stage 'check_params' is cached" in after), after


def test_a_stage_that_fails_loses_no_earlier_result(repro):
    """DVC deletes a stage's outputs before running it; cached metrics and plots come back with dvc checkout."""
    repo, _ = repro
    original = (repo / "params.yaml").read_text()
    kept = ("metrics/train.json", "plots/train_loss.csv", "metrics/eval.json", "plots/eval_tracks.csv")
    before = {p: (repo / p).read_bytes() for p in kept}
    write_params(repo, {"train": {"init": "pretrained"}})  # valid params; the base model's folder is missing
    missing = repo / "no-base-model-here"
    output = _repro_fails(repo, "train", env=venv_env({"VOCALSEP_PRETRAINED": str(missing)}))
    assert str(missing) in output
    assert not (repo / "metrics/train.json").exists()  # what the issue saw: gone with the failed run
    (repo / "params.yaml").write_text(original)
    run(["dvc", "checkout"], repo)
    assert {p: (repo / p).read_bytes() for p in kept} == before
    ran, _ = ran_and_skipped(run(["dvc", "repro"], repo))
    assert ran <= {"check_params"}  # the restored results are the recorded ones: nothing retrains


def test_forced_download_keeps_what_it_has(repro):
    """data/raw persists across runs, so the download archive skips every URL already fetched."""
    repo, _ = repro
    run(["dvc", "repro", "--force", "--single-item", "download"], repo)
    downloads = [json.loads(line) for line in (repo / "data/raw/downloads.jsonl").read_text().splitlines()]
    assert len(downloads) == 8 and all(d["status"] == "ok" and d["attempts"] == 0 for d in downloads)


def test_summary_prints_medians_decision_and_serve_command(repro):
    repo, _ = repro
    evaluation = json.loads((repo / "metrics/eval.json").read_text())
    assert {"sdr", "si_sdr", "si_sdri", "mixture_sdr"} <= set(evaluation) and evaluation["tracks"] == 2
    summary = run(["vocalsep", "summary"], repo)
    assert f"si_sdr {evaluation['si_sdr']:.2f} dB" in summary
    assert "registry: " in summary and "mlflow models serve -m models:/vocalsep@champion" in summary


def test_pipeline_champion_answers_http_like_the_separation_core(repro):
    """Trained, evaluated, exported and promoted by dvc repro against the shipped base model (registered by
    export as version 1, scored on the same test set); the better one is served by a real `mlflow models serve`."""
    from vocalsep.base_model.weights import load_pretrained

    repo, _ = repro
    registry = json.loads((repo / "models/export/registry.json").read_text())
    assert (registry["base_version"], registry["version"]) == ("1", "2")
    eval_metric = json.loads((repo / "metrics/eval.json").read_text())[registry["metric"]]
    assert registry["new_metric"] == pytest.approx(eval_metric) and np.isfinite(registry["base_metric"])
    won = registry["new_metric"] > registry["base_metric"]
    assert (registry["decision"], registry["champion_version"]) == (("champion", "2") if won else ("challenger", "1"))
    mixture, rate = sf.read(repo / "data/testset/track_00/mixture.flac", dtype="float32", frames=22050)
    params = load_params(repo / "params.yaml")
    model = load_model(repo / "models/checkpoints/best.pt") if won else load_pretrained(repo / "pretrained")[0]
    expected = separate_with_params(model, mixture.T, rate, params.separate).T
    process, port = start_server("models:/vocalsep@champion", f"sqlite:///{repo}/mlruns/mlflow.db", repo)
    try:
        status, answer = post(port, {"inputs": mixture.tolist()})
    finally:
        stop_group(process)
    assert status == 200, answer
    served = np.asarray(answer["predictions"], dtype=np.float32)
    assert served.shape == mixture.shape and np.abs(served).max() > 0
    np.testing.assert_allclose(served, expected, atol=1e-4, rtol=0)


def test_an_experiment_shows_its_metrics(repro):
    """Cached metrics: `dvc exp show` reads an experiment's train and eval numbers (it printed `!` before)."""
    import csv
    import io

    repo, _ = repro
    original = (repo / "params.yaml").read_text()
    output = run(["dvc", "exp", "run", "-S", "train.seed=1"], repo)
    name = re.search(r"Ran experiment\(s\): ([\w-]+)", output)[1]
    shown = subprocess.run(["dvc", "exp", "show", "--no-pager", "--csv"], cwd=repo, env=venv_env(),
                           capture_output=True, text=True, timeout=300, check=True).stdout
    rows = list(csv.DictReader(io.StringIO(shown)))
    experiment = next(row for row in rows if row["Experiment"] == name)
    for metric in ("val_si_sdr", "si_sdr", "sdr", "si_sdri"):
        float(experiment[metric])  # a number, not "!"
    (repo / "params.yaml").write_text(original)


def test_sample_rate_change_reruns_normalize_onward_only(repro):
    repo, _ = repro
    write_params(repo, {"audio": {"sample_rate": 22050}})
    ran, skipped = ran_and_skipped(run(["dvc", "repro", "index"], repo))
    assert {"normalize", "validate", "index"} <= ran
    assert {"demo", "download"} <= skipped and not ({"demo", "download"} & ran)
    manifest = pd.read_parquet(repo / "data/normalized/manifest.parquet")
    assert set(manifest.sample_rate) == {22050}


def test_evaluate_writes_a_listening_report_that_a_browser_loads_offline(repro):
    """reports/eval/index.html: every test track with numbers, players and spectrograms; in MLflow too."""
    import mlflow

    from tests.browser import CHROMIUM, external_references, media_status, screenshot
    from tests.conftest import REPO_ROOT

    repo, _ = repro
    page = repo / "reports/eval/index.html"
    tracks = sorted(p.name for p in (repo / "data/testset").iterdir() if p.is_dir())
    text = page.read_text()
    assert all(f"<h3>{track}</h3>" in text for track in tracks) and external_references(page) == []
    evaluation = json.loads((repo / "metrics/eval.json").read_text())
    assert f"<td>{evaluation['irm_si_sdr']:.2f}</td>" in text  # the oracle's median beside the model's
    checkpoint = __import__("torch").load(repo / "models/checkpoints/best.pt", weights_only=True)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo}/mlruns/mlflow.db")  # no global URI left behind
    logged = {a.path for a in client.list_artifacts(checkpoint["mlflow_run_id"], "report")}
    assert "report/index.html" in logged and "report/audio" in logged and "report/img" in logged
    if CHROMIUM is None:
        pytest.skip("headless Chromium not found (Debian: apt-get install chromium); the page was checked as text")
    assert media_status(page) == {"total": 4 * len(tracks), "loaded": 4 * len(tracks), "failed": []}
    shot = screenshot(page, REPO_ROOT / ".test-artifacts" / "eval-report.png")
    print(f"screenshot of the listening report: {shot}")
