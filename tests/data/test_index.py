"""index stage: leak-free splits, snippets only where voice is active, an exact seeded test set."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from vocalsep.errors import StageError
from vocalsep.stages.index import INDEX_COLUMNS, SPLITS, Activity, index, warn_starved
from vocalsep.contracts import MANIFEST_COLUMNS

SR = 8000
SECONDS = 4.0
# acapella id -> voiced intervals in seconds, on the 50 ms block grid; silence elsewhere
VOICED = {
    "voc0": [(0.0, 1.5), (2.0, 3.2)],
    "voc1": [(0.5, 2.5)],
    "voc2": [(0.0, 0.4), (1.0, 4.0)],
    "voc3": [(0.2, 1.0), (1.6, 2.9), (3.3, 4.0)],
}
MUSIC_GAP = (1.0, 2.0)  # every instrumental is silent here


def tone(seconds: float, freq: float, amp: float, rng: np.random.Generator) -> np.ndarray:
    """(frames, 2) stereo tone plus a little noise, so channels differ."""
    t = np.arange(int(seconds * SR)) / SR
    mono = amp * np.sin(2 * np.pi * freq * t)
    return np.stack([mono, 0.8 * mono], axis=1) + 0.01 * amp * rng.standard_normal((t.size, 2))


def gated(intervals, freq: float, amp: float, rng: np.random.Generator) -> np.ndarray:
    audio = tone(SECONDS, freq, amp, rng)
    mask = np.zeros(audio.shape[0], dtype=bool)
    for a, b in intervals:
        mask[int(a * SR):int(b * SR)] = True
    audio[~mask] = 1e-5 * rng.standard_normal((int((~mask).sum()), 2))  # -100 dB: silent, not digital zero
    return audio


def make_corpus(params) -> None:
    """Normalized FLACs and the valid.parquet that lists them (contract in docs/pipeline.md)."""
    rng = np.random.default_rng(7)
    files = {**{v: ("acapella", gated(iv, 220 + 40 * k, 0.3, rng)) for k, (v, iv) in enumerate(VOICED.items())},
             **{f"ins{k}": ("instrumental", gated([(0.0, MUSIC_GAP[0]), (MUSIC_GAP[1], SECONDS)], 110 + 30 * k,
                                                   0.2, rng)) for k in range(4)}}
    rows = []
    for file_id, (role, audio) in files.items():
        path = Path(params.paths.normalized) / role / f"{file_id}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, audio, SR, subtype="PCM_24")
        rows.append({c: None for c in MANIFEST_COLUMNS} | {
            "id": file_id, "role": role, "path": str(path), "sample_rate": SR, "channels": 2,
            "duration": SECONDS, "status": "ok", "reason": ""})
    Path(params.paths.validated).mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(Path(params.paths.validated) / "valid.parquet", index=False)


@pytest.fixture
def params(tmp_params):
    small = dataclasses.replace(
        tmp_params.index, seed=3, val_fraction=0.25, test_fraction=0.25, snippet_seconds=0.5, hop_seconds=0.25,
        activity_threshold_db=-40.0, min_active_fraction=1.0, testset_tracks=3, testset_seconds=1.0,
        testset_vocal_db=(-3.0, 3.0))
    p = dataclasses.replace(tmp_params, audio=dataclasses.replace(tmp_params.audio, sample_rate=SR), index=small)
    make_corpus(p)
    return p


def read_tables(params) -> dict[str, pd.DataFrame]:
    return {s: pd.read_parquet(Path(params.paths.index) / f"{s}.parquet") for s in SPLITS}


def test_splits_are_by_file_and_follow_the_contract(params):
    index(params)
    tables = read_tables(params)
    ids = {s: set(t["id"]) for s, t in tables.items()}
    assert not (ids["train"] & ids["val"] or ids["train"] & ids["test"] or ids["val"] & ids["test"])
    assert ids["train"] | ids["val"] | ids["test"] == set(VOICED) | {f"ins{k}" for k in range(4)}
    for split, table in tables.items():
        assert list(table.columns) == list(INDEX_COLUMNS)
        assert (table["split"] == split).all()
        assert set(table["role"]) == {"acapella", "instrumental"}, split  # one file per role at least
        assert table["start"].dtype == np.int64 and table["frames"].dtype == np.int64
        assert (table["frames"] == int(0.5 * SR)).all() and (table["sample_rate"] == SR).all()
        assert (table["start"] + table["frames"] <= int(SECONDS * SR)).all()


def test_acapella_snippets_are_exactly_the_voiced_windows(params):
    index(params)
    snippets = pd.concat(read_tables(params).values())
    length, hop = int(0.5 * SR), int(0.25 * SR)
    for file_id, intervals in VOICED.items():
        found = set(snippets.loc[snippets["id"] == file_id, "start"])
        inside = {s for s in range(0, int(SECONDS * SR) - length + 1, hop)
                  if any(a * SR <= s and s + length <= b * SR for a, b in intervals)}
        assert found == inside, file_id
    assert (snippets.loc[snippets["role"] == "acapella", "active_fraction"] == 1.0).all()


def test_instrumental_snippets_skip_the_silent_gap(params):
    index(params)
    snippets = pd.concat(read_tables(params).values())
    music = snippets[snippets["role"] == "instrumental"]
    gap_a, gap_b = (int(x * SR) for x in MUSIC_GAP)
    length = int(0.5 * SR)
    assert not ((music["start"] >= gap_a) & (music["start"] + length <= gap_b)).any()
    assert ((music["start"] + length <= gap_a) | (music["start"] >= gap_b)).sum() == 4 * 10  # all clean windows
    assert (music["active_fraction"] >= 0.5).all()


def test_testset_is_exact_seeded_and_from_the_test_split(params, tmp_path):
    tables = index(params)
    tracks = json.loads((Path(params.paths.testset) / "tracks.json").read_text())
    assert [t["track"] for t in tracks] == ["track_00", "track_01", "track_02"]
    test_ids = set(tables["test"]["id"])
    for t in tracks:
        assert {t["acapella_id"], t["instrumental_id"]} <= test_ids
        folder = Path(params.paths.testset) / t["track"]
        assert sf.info(folder / "mixture.flac").subtype == "PCM_24"
        stems = {s: sf.read(folder / f"{s}.flac", dtype="float64")[0] for s in ("mixture", "vocals", "accompaniment")}
        assert stems["mixture"].shape == (int(1.0 * SR), 2)
        assert np.array_equal(stems["mixture"], stems["vocals"] + stems["accompaniment"])
        as32 = {s: sf.read(folder / f"{s}.flac", dtype="float32")[0] for s in stems}
        assert np.array_equal(as32["mixture"], as32["vocals"] + as32["accompaniment"])
        ratio = 20 * np.log10(np.sqrt(np.mean(stems["vocals"] ** 2) / np.mean(stems["accompaniment"] ** 2)))
        assert -3.0 <= t["vocal_db"] <= 3.0 and abs(ratio - t["vocal_db"]) < 0.01
        assert np.abs(stems["mixture"]).max() < 0.99 + 1e-6
    assert len({t["vocal_db"] for t in tracks}) == 3

    again = dataclasses.replace(params, paths=dataclasses.replace(
        params.paths, index=str(tmp_path / "again_index"), testset=str(tmp_path / "again_testset")))
    repeat = index(again)
    for split in SPLITS:
        pd.testing.assert_frame_equal(repeat[split], tables[split])
    assert json.loads((tmp_path / "again_testset" / "tracks.json").read_text()) == tracks
    first = Path(params.paths.testset) / "track_01" / "mixture.flac"
    assert np.array_equal(sf.read(first)[0], sf.read(tmp_path / "again_testset" / "track_01" / "mixture.flac")[0])


def test_too_few_files_for_the_splits_names_the_role(params):
    valid_path = Path(params.paths.validated) / "valid.parquet"
    valid = pd.read_parquet(valid_path)
    valid[valid["id"] != "ins3"].iloc[:-1].to_parquet(valid_path, index=False)  # two instrumentals left
    with pytest.raises(StageError, match="role instrumental has 2 valid file"):
        index(params)


def _pattern(on_blocks: int, off_blocks: int, repeats: int) -> Activity:
    """50 ms blocks at SR: `on_blocks` active then `off_blocks` silent, `repeats` times."""
    active = np.tile(np.r_[np.ones(on_blocks, bool), np.zeros(off_blocks, bool)], repeats)
    block = int(0.05 * SR)
    return Activity(active=active, frames=active.size * block, block=block)


def test_short_utterances_starved_by_the_activity_rule_are_reported_by_title(params, caplog):
    # "letters": 0.3 s of voice, 0.7 s of pause (30 % active); "speech": 0.9 s on, 0.1 s off
    valid = pd.DataFrame({"id": ["letters", "speech", "music"], "role": ["acapella", "acapella", "instrumental"]})
    activity = {"letters": _pattern(6, 14, 20), "speech": _pattern(18, 2, 20), "music": _pattern(1, 19, 20)}
    p = dataclasses.replace(params, index=dataclasses.replace(params.index, snippet_seconds=4.0, hop_seconds=1.0,
                                                               min_active_fraction=0.5))
    Path(p.paths.raw).mkdir(parents=True, exist_ok=True)
    p.paths.downloads.write_text(json.dumps({"id": "letters", "title": "klettres letters 7"}) + "\n")
    with caplog.at_level("WARNING"):
        starved = warn_starved(valid, activity, p)
    assert list(starved["id"]) == ["letters"]  # music is never counted, whatever its activity
    assert starved["yield"].iloc[0] == 0.0 and 0.25 < starved["median_fraction"].iloc[0] < 0.35
    assert "klettres letters 7" in caplog.text and "index.min_active_fraction 0.50" in caplog.text
    caplog.clear()
    lower = dataclasses.replace(p, index=dataclasses.replace(p.index, min_active_fraction=0.2))
    with caplog.at_level("WARNING"):
        assert warn_starved(valid, activity, lower).empty
    assert "snippets" not in caplog.text
