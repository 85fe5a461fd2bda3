"""normalize stage: a hand-made raw folder of awkward files -> FLACs and a manifest per the contract."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from vocalsep import audio, levels
from vocalsep.config import params_to_dict
from vocalsep.env import ffmpeg_exe
from vocalsep.stages import normalize as stage

TARGET_SR = 44100


def tone(seconds: float, sr: int, channels: int, amp: float = 0.3, seed: int = 0) -> np.ndarray:
    """(frames, channels) of a few partials with a slow envelope, different per channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    cols = [sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in rng.uniform(150, 2000, 3)) / 3
            for _ in range(channels)]
    return (amp * np.stack(cols, axis=1) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * t))[:, None]).astype(np.float32)


def _truncated(path: Path) -> None:
    sf.write(path, tone(2.0, 44100, 2), 44100, format="FLAC")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _aac(path: Path) -> None:
    """A stereo 48 kHz AAC in m4a: a container only ffmpeg decodes."""
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi",
                    "-i", "sine=frequency=330:duration=1.5:sample_rate=48000", "-ac", "2",
                    "-c:a", "aac", "-y", str(path)], check=True)


# id -> (role, file name, writer, expected source rate, channels, seconds); None rate = must fail
CASES = {
    "mono00000001": ("acapella", "mono.wav", lambda p: sf.write(p, tone(2.0, 44100, 1), 44100), 44100, 1, 2.0),
    "lowrate00001": ("acapella", "low.flac", lambda p: sf.write(p, tone(1.5, 22050, 2, seed=1), 22050), 22050, 2, 1.5),
    "pcm24bit0001": ("acapella", "deep.wav",
                     lambda p: sf.write(p, tone(2.5, 48000, 2, amp=0.02, seed=2), 48000, subtype="PCM_24"),
                     48000, 2, 2.5),
    "surround0001": ("instrumental", "six.wav", lambda p: sf.write(p, tone(1.0, 44100, 6, seed=3), 44100), 44100, 6, 1.0),
    "clipped00001": ("instrumental", "hot.wav",
                     lambda p: sf.write(p, np.clip(tone(2.0, 44100, 2, amp=3.0, seed=4), -1, 1), 44100, subtype="FLOAT"),
                     44100, 2, 2.0),
    "aacm4a000001": ("acapella", "song.m4a", _aac, 48000, 2, 1.5),
    "tooshort0001": ("instrumental", "blip.wav", lambda p: sf.write(p, tone(0.2, 44100, 2), 44100), None, 2, 0.2),
    "silent000001": ("instrumental", "quiet.flac", lambda p: sf.write(p, np.zeros((44100, 2)), 44100), None, 2, 1.0),
    "zerolength01": ("acapella", "zero.wav", lambda p: sf.write(p, np.zeros((0, 2)), 44100), None, 0, 0.0),
    "truncated001": ("instrumental", "cut.flac", _truncated, None, 0, 0.0),
    "dcoffset0001": ("acapella", "offset.wav",
                     lambda p: sf.write(p, tone(2.0, 44100, 2, amp=0.2, seed=5) + 0.3, 44100, subtype="FLOAT"),
                     44100, 2, 2.0),
    "dconly000001": ("instrumental", "offset.flac", lambda p: sf.write(p, np.full((44100, 2), 0.3), 44100), None, 2, 1.0),
}
REASONS = {"tooshort0001": "too short", "silent000001": "silent", "zerolength01": "zero length", "truncated001": "truncated",
           "dconly000001": "silent"}


@pytest.fixture
def raw_params(tmp_params, tmp_path):
    """tmp_params with a raw folder + downloads.jsonl holding CASES and one failed download."""
    raw = Path(tmp_params.paths.raw)
    rows = []
    for id_, (role, name, write, *_rest) in CASES.items():
        path = raw / role / f"{id_}{Path(name).suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
        rows.append({"id": id_, "url": f"https://example.org/{name}", "role": role, "title": name,
                     "license": None, "status": "ok", "reason": None, "path": path.relative_to(tmp_path).as_posix(),
                     "ext": path.suffix.lstrip("."), "duration": None, "sha256": None, "attempts": 1})
    rows.append({"id": "gone00000001", "url": "https://example.org/404", "role": "acapella", "title": None,
                 "license": None, "status": "failed", "reason": "HTTP Error 404", "path": None, "ext": None,
                 "duration": None, "sha256": None, "attempts": 1})
    (raw / "downloads.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return dataclasses.replace(tmp_params, normalize=dataclasses.replace(tmp_params.normalize, workers=1))


def contract_columns(repo_root: Path) -> dict[str, str]:
    """The normalize manifest table of docs/pipeline.md: column -> documented type."""
    text = (repo_root / "docs" / "pipeline.md").read_text()
    section = text.split("## normalize")[1].split("\n## ")[0]
    return dict(re.findall(r"^\| (\w+) \| (str|int|float) \|", section, re.M))


def test_normalize_contract(raw_params, tmp_path, repo_root):
    manifest = stage.normalize(raw_params, root=tmp_path)
    on_disk = pd.read_parquet(Path(raw_params.paths.normalized) / "manifest.parquet")
    pd.testing.assert_frame_equal(manifest, on_disk)

    columns = contract_columns(repo_root)
    assert list(on_disk.columns) == list(columns)
    kinds = {"str": pd.api.types.is_string_dtype, "int": pd.api.types.is_integer_dtype,
             "float": pd.api.types.is_float_dtype}
    for name, kind in columns.items():
        assert kinds[kind](on_disk[name]), f"{name} should be {kind}, is {on_disk[name].dtype}"

    assert sorted(on_disk["id"]) == sorted(CASES)  # the failed download has no row
    assert list(zip(on_disk["role"], on_disk["id"])) == sorted(zip(on_disk["role"], on_disk["id"]))
    for row in on_disk.to_dict("records"):
        if row["id"] in REASONS:
            check_failed(row, tmp_path, raw_params)
        else:
            check_normalized(row, tmp_path, raw_params)


def check_normalized(row: dict, root: Path, params) -> None:
    _role, _name, _write, source_sr, source_channels, seconds = CASES[row["id"]]
    assert row["status"] == "ok" and row["reason"] == ""
    assert row["path"] == f"data/normalized/{row['role']}/{row['id']}.flac"
    assert (row["source_sample_rate"], row["source_channels"]) == (source_sr, source_channels)
    assert (row["sample_rate"], row["channels"]) == (TARGET_SR, 2)
    path = root / row["path"]
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.subtype, info.format) == (TARGET_SR, 2, "PCM_24", "FLAC")
    lossy_slack = 0.05 if row["id"] == "aacm4a000001" else 0.0  # encoder priming and padding
    assert abs(info.frames - round(seconds * TARGET_SR)) <= lossy_slack * TARGET_SR
    assert row["duration"] == pytest.approx(info.frames / TARGET_SR)
    assert row["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    x, _ = audio.read_audio(path)
    loudness = levels.integrated_loudness(x, TARGET_SR)
    assert abs(loudness - params.normalize.target_lufs) < 0.5
    assert row["loudness"] == pytest.approx(loudness, abs=0.05)
    assert row["peak"] == pytest.approx(levels.peak_db(x), abs=0.01)
    assert row["peak"] <= params.normalize.peak_ceiling_db + 1e-3
    assert 0.0 <= row["silence_ratio"] < 0.1
    offset = np.abs(x[len(x) // 4: -len(x) // 4].mean(axis=0)).max()  # normalize.highpass_hz takes DC away
    assert offset < 0.01 * np.sqrt(np.mean(x ** 2)), (row["id"], offset)
    expected_clipping = row["id"] == "clipped00001"
    assert (row["clipping_ratio"] > 0.2) == expected_clipping, row


def check_failed(row: dict, root: Path, params) -> None:
    assert row["status"] == "failed" and REASONS[row["id"]] in row["reason"]
    assert row["path"] == "" and row["sha256"] == "" and np.isnan(row["loudness"])
    assert row["source_path"].startswith("data/raw/")
    assert not (Path(params.paths.normalized) / row["role"] / f"{row['id']}.flac").exists()
    if row["id"] == "silent000001":
        assert row["reason"].startswith(str(root / row["source_path"]))  # names the file
        assert row["silence_ratio"] == 1.0 and row["source_sample_rate"] == 44100


def test_two_workers_give_the_same_manifest(raw_params, tmp_path):
    serial = stage.normalize(raw_params, root=tmp_path)
    normalized = Path(raw_params.paths.normalized)
    shutil.rmtree(normalized)
    parallel_params = dataclasses.replace(raw_params, normalize=dataclasses.replace(raw_params.normalize, workers=2))
    parallel = stage.normalize(parallel_params, root=tmp_path)
    pd.testing.assert_frame_equal(serial, parallel)
    assert (normalized / "manifest.parquet").exists()


def test_cli_without_downloads_exits_with_one_line(tmp_path, monkeypatch, capsys, real_params):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params_to_dict(real_params)))
    assert stage.main(["--params", "params.yaml"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "downloads.jsonl" in err[0] and "download stage" in err[0]
