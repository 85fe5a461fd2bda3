"""The user's loop: the demo is generated only for the demo manifest; downloads follow the manifest."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import soundfile as sf

from vocalsep.sources import load_sources
from vocalsep.stages.demo import NOTE, demo, uses_demo
from vocalsep.stages.download import download_source, shelf, shelve_unlisted


def _with_sources(params, manifest):
    return dataclasses.replace(params, download=dataclasses.replace(params.download, sources=str(manifest)))


def test_the_demo_is_generated_only_when_the_manifest_uses_it(tmp_params, repo_root, tmp_path):
    demo_params = _with_sources(tmp_params, repo_root / "sources/demo.yaml")
    demo_params = dataclasses.replace(demo_params, paths=dataclasses.replace(demo_params.paths,
                                                                             demo=str(repo_root / "data/demo")))
    assert uses_demo(demo_params)
    mine = tmp_path / "my-songs.yaml"
    mine.write_text("- url: https://example.com/a.mp3\n  role: acapella\n"
                    "- url: https://example.com/b.mp3\n  role: instrumental\n")
    params = _with_sources(tmp_params, mine)
    assert not uses_demo(params)
    folder = tmp_path / "data/demo"  # tmp_params puts paths.demo here
    (folder / "acapella").mkdir(parents=True)
    (folder / "acapella/old.flac").write_bytes(b"left from an earlier demo run")
    assert demo(params) == []
    assert [p.name for p in folder.iterdir()] == [NOTE]
    assert str(mine) in (folder / NOTE).read_text()


def test_downloads_the_manifest_no_longer_lists_wait_on_a_shelf_and_come_back(tmp_path, tmp_params):
    manifest = tmp_path / "songs.yaml"
    manifest.write_text("- url: https://example.com/keep.wav\n  role: acapella\n"
                        "- url: https://example.com/old.wav\n  role: acapella\n")
    keep, old = load_sources(manifest)
    raw = tmp_path / "raw"
    (raw / "acapella").mkdir(parents=True)
    for source in (keep, old):
        sf.write(raw / "acapella" / f"{source.id}.wav", np.zeros((800, 2), np.float32), 8000)
    (raw / "archive.txt").write_text(f"vocalsep {keep.id}\nvocalsep {old.id}\n")
    moved = shelve_unlisted(raw, [keep])
    assert [p.name for p in moved] == [f"{old.id}.wav"]
    assert sorted(p.name for p in (raw / "acapella").iterdir()) == [f"{keep.id}.wav"]
    assert shelf(raw) == tmp_path / ".raw-shelf"
    # the old URL is listed again: its file comes back from the shelf, nothing is downloaded
    record = download_source(old, tmp_path, raw, tmp_params.download)
    assert record["status"] == "ok" and record["attempts"] == 0, json.dumps(record)
    assert (raw / "acapella" / f"{old.id}.wav").is_file() and not list(shelf(raw).rglob("*.wav"))
