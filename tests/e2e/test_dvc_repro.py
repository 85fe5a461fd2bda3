"""The real `dvc repro` over every stage, on a tiny demo corpus, in a temporary copy of the repo."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import soundfile as sf
import yaml

from tests.tiny_repo import make_tiny_repo, run, write_params

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def stage_names(repo) -> list[str]:
    return list(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"])


def ran_and_skipped(output: str) -> tuple[set[str], set[str]]:
    ran = set(re.findall(r"Running stage '([\w-]+)'", output))
    skipped = set(re.findall(r"Stage '([\w-]+)' didn't change, skipping", output))
    return ran, skipped


@pytest.fixture(scope="module")
def repro(tmp_path_factory):
    repo = make_tiny_repo(tmp_path_factory.mktemp("dvc") / "repo")
    output = run(["dvc", "repro"], repo)
    return repo, output


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


def test_sample_rate_change_reruns_normalize_onward_only(repro):
    repo, _ = repro
    write_params(repo, {"audio": {"sample_rate": 22050}})
    ran, skipped = ran_and_skipped(run(["dvc", "repro", "index"], repo))
    assert {"normalize", "validate", "index"} <= ran
    assert {"demo", "download"} <= skipped and not ({"demo", "download"} & ran)
    manifest = pd.read_parquet(repo / "data/normalized/manifest.parquet")
    assert set(manifest.sample_rate) == {22050}
