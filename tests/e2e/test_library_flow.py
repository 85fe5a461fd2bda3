"""The `separate-library` flow on a real Prefect server and a LocalCluster of 2 Dask worker processes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vocalsep.library import FAILURES, RECORD
from vocalsep.model import VocNet, save_checkpoint
from vocalsep.cli.separate import main as separate_main

pytestmark = pytest.mark.slow

KWARGS = {"filters": 8, "skip_filters": 8, "layers": 6, "layers_per_stack": 6}


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("library")
    torch.manual_seed(0)
    checkpoint = root / "tiny.pt"
    save_checkpoint(checkpoint, VocNet(**KWARGS).eval(), KWARGS, params={"audio": {"sample_rate": 16000}},
                    git_sha="test")
    rng = np.random.default_rng(0)
    for i, (ext, rate, channels) in enumerate([("wav", 44100, 2), ("flac", 48000, 1), ("ogg", 22050, 2),
                                               ("mp3", 44100, 2)]):
        path = root / "music" / f"album{i % 2}" / f"track{i}.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (0.2 * rng.standard_normal((rate * 2, channels))).astype(np.float32), rate)
    (root / "music" / "album1" / "broken.wav").write_bytes(b"RIFF....WAVEnot really audio")
    return root, checkpoint


def test_the_flow_fans_out_to_two_workers_records_and_resumes_with_the_cli(library, prefect_api, tmp_path, capsys):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.library import ARTIFACT_KEY, separate_library

    root, checkpoint = library
    out = tmp_path / "stems"
    summary = separate_library([str(root / "music")], str(out), model=str(checkpoint), device="cpu", workers=2)
    assert (summary["files"], summary["separated"], summary["skipped"], summary["failed"]) == (5, 4, 0, 1)
    assert len(summary["pids"]) == 2 and os.getpid() not in summary["pids"]
    entries = [json.loads(line) for line in (out / RECORD).read_text().splitlines()]
    assert sorted(e["name"] for e in entries) == ["track0", "track1", "track2", "track3"]
    for entry in entries:
        rate = sf.info(entry["input"]).samplerate
        for stem in entry["outputs"].values():
            assert sf.info(str(out / stem)).samplerate == rate
    failures = [json.loads(line) for line in (out / FAILURES).read_text().splitlines()]
    assert [f["name"] for f in failures] == ["broken"] and "broken.wav" in failures[0]["reason"]

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[ARTIFACT_KEY])))
    assert artifacts and "4 separated, 0 skipped as done, 1 failed" in artifacts[-1].data
    assert "failed: " in artifacts[-1].data and "h of audio per hour" in artifacts[-1].data

    again = separate_library([str(root / "music")], str(out), model=str(checkpoint), device="cpu", workers=2)
    assert (again["separated"], again["skipped"], again["failed"]) == (0, 4, 1)
    capsys.readouterr()
    code = separate_main([str(root / "music"), "-o", str(out), "--model", str(checkpoint), "--device", "cpu"])
    assert code == 1 and "1 file(s) to separate, 4 skipped" in capsys.readouterr().err  # the flow's record
