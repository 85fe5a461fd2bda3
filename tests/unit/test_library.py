"""Separating a library with `vocalsep separate`: folders and patterns, formats, resume, failures, kills, workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vocalsep.errors import VocalsepError
from vocalsep.formats import OutputFormat
from vocalsep.library import FAILURES, RECORD, find_inputs
from vocalsep.model import VocNet, save_checkpoint
from vocalsep.cli.separate import main as separate_main

KWARGS = {"filters": 8, "skip_filters": 8, "layers": 6, "layers_per_stack": 6}
RATE = 16000
FLAGS = ["--device", "cpu", "--runtime", "torch"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, VocNet(**KWARGS).eval(), KWARGS, params={"audio": {"sample_rate": RATE}}, git_sha="test")
    return path


def song(path: Path, seconds: float = 0.8, rate: int = 22050, channels: int = 2, seed: int = 0, **kwargs) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    sides = [0.4 * np.sin(2 * np.pi * (200 + 60 * c + 10 * seed) * t) + 0.05 * rng.standard_normal(t.size)
             for c in range(channels)]
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.stack(sides, axis=1).astype(np.float32), rate, **kwargs)
    return path


def separate(*args: str | Path) -> int:
    return separate_main([str(a) for a in args] + FLAGS)


def record(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / RECORD).read_text().splitlines()]


def test_folders_patterns_and_files_give_a_sorted_stable_list_of_audio(tmp_path):
    lib = tmp_path / "lib"
    for rel in ("b/2.flac", "b/1.wav", "a/x.mp3", "a/deep/y.ogg", "c.wav", ".hidden/z.wav", "a/.w.wav"):
        (lib / rel).parent.mkdir(parents=True, exist_ok=True)
        (lib / rel).write_bytes(b"")
    (lib / "a" / "cover.jpg").write_bytes(b"")
    (lib / "out" / "c").mkdir(parents=True)
    (lib / "out" / "c" / "vocals.wav").write_bytes(b"")  # stems of an earlier run inside the library
    found, problems = find_inputs([lib, str(lib / "b" / "*.wav"), lib / "missing.wav", str(tmp_path / "*.nope")],
                                  exclude=lib / "out")
    rel = [str(p.relative_to(lib)) for p in found]
    assert rel == ["a/deep/y.ogg", "a/x.mp3", "b/1.wav", "b/2.flac", "c.wav", "missing.wav"]
    assert problems == [(str(tmp_path / "*.nope"), problems[0][1])] and "matches no file" in problems[0][1]
    again, _ = find_inputs([lib], exclude=lib / "out")
    assert again == found[:5]


FORMATS = [("wav", 16, None), ("wav", 24, None), ("wav", 32, None), ("flac", 16, None), ("flac", 24, None),
           ("mp3", None, 128), ("ogg", None, 160)]


@pytest.mark.parametrize("fmt,bits,bitrate", FORMATS)
def test_every_format_decodes_back_at_the_inputs_rate_and_length(tmp_path, checkpoint, fmt, bits, bitrate):
    mixture = song(tmp_path / "in" / "take.wav", rate=44100)
    extra = (["--bits", str(bits)] if bits else []) + (["--bitrate", str(bitrate)] if bitrate else [])
    assert separate(mixture, "-o", tmp_path / "out", "--model", checkpoint, "--format", fmt, *extra) == 0
    source, rate = sf.read(mixture, dtype="float32", always_2d=True)
    stems = {s: sf.read(tmp_path / "out" / "take" / f"{s}.{fmt}", dtype="float32", always_2d=True)
             for s in ("vocals", "accompaniment")}
    info = sf.info(str(tmp_path / "out" / "take" / f"vocals.{fmt}"))
    assert info.format == fmt.upper() and all(r == rate for _, r in stems.values())
    total = stems["vocals"][0] + stems["accompaniment"][0]
    if fmt in ("wav", "flac"):
        assert total.shape == source.shape
        step = 2.0 ** (1 - (bits or 24)) if bits != 32 else 1e-6
        assert np.abs(total - source).max() <= 2 * step + 1e-6
    else:  # lossy: the frame count is the input's within a codec frame, and the stems sum close to the mix
        assert abs(total.shape[0] - source.shape[0]) < 2048
        n = min(total.shape[0], source.shape[0])
        error = np.mean((total[:n] - source[:n]) ** 2) / np.mean(source[:n] ** 2)
        assert error < 0.05, error
    assert not list((tmp_path / "out").rglob("*.partial"))


def test_flac_16_is_within_one_step_of_the_16_bit_quantised_wav(tmp_path, checkpoint):
    mixture = song(tmp_path / "in" / "take.flac", rate=48000)
    assert separate(mixture, "-o", tmp_path / "float", "--model", checkpoint) == 0
    assert separate(mixture, "-o", tmp_path / "flac", "--model", checkpoint, "--format", "flac", "--bits", "16") == 0
    for stem in ("vocals", "accompaniment"):
        exact, _ = sf.read(tmp_path / "float" / "take" / f"{stem}.wav", dtype="float64")
        flac, _ = sf.read(tmp_path / "flac" / "take" / f"{stem}.flac", dtype="int16")
        quantised = np.clip(np.round(exact * 32768), -32768, 32767)
        assert np.abs(flac.astype(np.int64) - quantised).max() <= 1


def test_bad_format_options_are_refused_before_any_work(tmp_path, checkpoint, capsys):
    mixture = song(tmp_path / "a.wav")
    for extra, says in ((["--format", "flac", "--bits", "32"], "flac takes 16 or 24"),
                        (["--format", "mp3", "--bits", "16"], "use --bitrate"),
                        (["--format", "wav", "--bitrate", "128"], "lossless"),
                        (["--stems", "drums"], "choose vocals, accompaniment")):
        assert separate(mixture, "-o", tmp_path / "out", "--model", checkpoint, *extra) == 2
        assert says in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(VocalsepError, match="mp3 cannot hold 96000 Hz"):
        OutputFormat("mp3").check_rate(96000, "x.wav")


def test_a_rerun_skips_what_is_done_and_redoes_what_changed(tmp_path, checkpoint, capsys):
    lib, out = tmp_path / "lib", tmp_path / "out"
    for i in range(3):
        song(lib / f"s{i}.wav", seed=i)
    assert separate(lib, "-o", out, "--model", checkpoint) == 0
    first = {e["name"]: e for e in record(out)}
    assert sorted(first) == ["s0", "s1", "s2"] and len({e["model"] for e in first.values()}) == 1
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    capsys.readouterr()
    assert separate(lib, "-o", out, "--model", checkpoint) == 0
    assert "0 file(s) to separate, 3 skipped" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")} == stamps and len(record(out)) == 3

    os.utime(lib / "s0.wav")  # touched, not changed: hashed again, still done
    assert separate(lib, "-o", out, "--model", checkpoint) == 0
    assert "0 file(s) to separate, 3 skipped" in capsys.readouterr().err

    song(lib / "s1.wav", seed=9)  # an edited input is redone, the others are not
    assert separate(lib, "-o", out, "--model", checkpoint) == 0
    assert "1 file(s) to separate, 2 skipped" in capsys.readouterr().err
    assert [e["name"] for e in record(out)[3:]] == ["s1"] and record(out)[-1]["sha256"] != first["s1"]["sha256"]

    assert separate(lib, "-o", out, "--model", checkpoint, "--stems", "vocals") == 0  # other settings: redone
    assert "3 file(s) to separate, 0 skipped" in capsys.readouterr().err
    assert separate(lib, "-o", out, "--model", checkpoint, "--stems", "vocals", "--force") == 0
    assert "3 file(s) to separate, 0 skipped" in capsys.readouterr().err
    (out / "s2" / "vocals.wav").unlink()  # a stem deleted by hand is redone
    assert separate(lib, "-o", out, "--model", checkpoint, "--stems", "vocals") == 0
    assert "1 file(s) to separate, 2 skipped" in capsys.readouterr().err


def test_a_corrupt_file_is_reported_and_the_others_are_written(tmp_path, checkpoint, capsys):
    lib, out = tmp_path / "lib", tmp_path / "out"
    song(lib / "a.wav")
    (lib / "b.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage that is not audio")
    song(lib / "c.flac")
    assert separate(lib, "-o", out, "--model", checkpoint) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1] == f"1 of 3 input(s) failed; reasons in {out / FAILURES}"
    failures = [json.loads(line) for line in (out / FAILURES).read_text().splitlines()]
    assert [f["name"] for f in failures] == ["b"] and "b.wav" in failures[0]["reason"]
    assert sorted(e["name"] for e in record(out)) == ["a", "c"] and not (out / "b").exists()
    (lib / "b.wav").unlink()
    assert separate(lib, "-o", out, "--model", checkpoint) == 0
    assert not (out / FAILURES).exists()  # the report is of the last run


def _until_recorded(proc: subprocess.Popen, out: Path, timeout: float = 300) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / RECORD).is_file() and (out / RECORD).read_text().count("\n") >= 1:
            return (out / RECORD).read_text().count("\n")
        time.sleep(0.05)
    raise AssertionError(f"no file finished before the kill (exit {proc.poll()})")


@pytest.mark.slow
def test_a_killed_run_leaves_no_partial_stems_and_the_rerun_finishes(tmp_path, checkpoint):
    lib, out = tmp_path / "lib", tmp_path / "out"
    for i in range(6):
        song(lib / f"s{i}.wav", seconds=8.0, seed=i)
    command = [sys.executable, "-m", "vocalsep.cli.separate", str(lib), "-o", str(out), "--model", str(checkpoint),
               *FLAGS]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = _until_recorded(proc, out)
    time.sleep(0.3)  # into the next file
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    recorded = {e["name"] for e in record(out)}
    assert len(recorded) < 6, "the run finished before the kill; give it longer inputs"
    for stem in out.rglob("*.wav"):  # what carries a final name is whole
        assert sf.info(str(stem)).frames == sf.info(str(lib / f"{stem.parent.name}.wav")).frames
        assert stem.parent.name in recorded
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{6 - len(recorded)} file(s) to separate, {len(recorded)} skipped" in rerun.stderr and done >= 1
    assert not [p for p in out.rglob("*") if p.name.endswith(".partial")]
    assert sorted(e["name"] for e in record(out)) == sorted({f"s{i}" for i in range(6)})


@pytest.mark.slow
def test_two_jobs_share_the_work_between_two_processes_and_give_the_same_stems(tmp_path, checkpoint, capsys):
    lib = tmp_path / "lib"
    for i in range(4):
        song(lib / f"s{i}.wav", seconds=2.0, seed=i, channels=1 + i % 2)
    assert separate(lib, "-o", tmp_path / "one", "--model", checkpoint) == 0
    assert separate(lib, "-o", tmp_path / "two", "--model", checkpoint, "--jobs", "2") == 0
    assert "in 2 worker processes" in capsys.readouterr().err
    pids = {e["pid"] for e in record(tmp_path / "two")}
    assert len(pids) == 2 and os.getpid() not in pids
    assert {e["model"] for e in record(tmp_path / "one")} == {e["model"] for e in record(tmp_path / "two")}
    for i in range(4):
        for stem in ("vocals", "accompaniment"):
            one, _ = sf.read(tmp_path / "one" / f"s{i}" / f"{stem}.wav")
            two, _ = sf.read(tmp_path / "two" / f"s{i}" / f"{stem}.wav")
            np.testing.assert_allclose(one, two, atol=1e-5)
