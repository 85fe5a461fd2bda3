"""Streaming separation equals the whole-song pass, and its memory does not grow with the song."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vocalsep.config import SeparateParams
from vocalsep.env import ffmpeg_exe
from vocalsep.model import HybridVocNet, VocNet
from vocalsep.separate import separate
from vocalsep.cli.separate import separate_file
from vocalsep.streaming import StreamingCore, stream_file

PARAMS = SeparateParams(chunk_seconds=0.05, overlap_seconds=0.01, batch_size=2, device="cpu")
RATE = 8000


def tiny_models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {"VocNet": VocNet(filters=4, skip_filters=4, layers=4, layers_per_stack=4).eval(),
            "HybridVocNet": HybridVocNet(filters=8, skip_filters=8, layers=4, layers_per_stack=4, n_fft=256, hop=64,
                                         wave_filters=8, wave_stride=16).eval()}


@pytest.mark.parametrize("name", ["VocNet", "HybridVocNet"])
@pytest.mark.parametrize("length", [300, 5000, 20011])
def test_blocks_of_any_size_give_the_whole_song_result(name, length):
    model = tiny_models()[name]
    rng = np.random.default_rng(length)
    mixture = (0.1 * rng.standard_normal((2, length))).astype(np.float32)
    whole = separate(model, mixture, chunk_samples=1000, overlap_samples=100, batch_size=3)
    core = StreamingCore(model, chunk_samples=1000, overlap_samples=100, batch_size=3)
    pieces, i = [], 0
    while i < length:
        n = int(rng.integers(1, 1500))
        pieces.append(core.push(mixture[:, i:i + n]))
        i += n
    pieces.append(core.finish())
    streamed = np.concatenate(pieces, axis=1)
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-6, rtol=0)


def test_the_core_keeps_a_bounded_window_of_the_song():
    model = tiny_models()["HybridVocNet"]
    core = StreamingCore(model, chunk_samples=1000, overlap_samples=100, batch_size=3)
    held = []
    for _ in range(200):
        core.push(np.zeros((2, 500), np.float32))
        held.append(core.input.shape[1] + core.output.shape[1])
    assert max(held[100:]) <= max(held[:100])  # flat: the second half of the song holds no more
    assert max(held) < 1000 + sum(model.context) + 4 * model.stride + 500


def _files(folder: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    made = []
    for name, rate, channels in [("stereo.wav", 8000, 2), ("mono.flac", 22050, 1), ("surround.wav", 16000, 3)]:
        audio = (0.1 * rng.standard_normal((int(rate * 1.3), channels))).astype(np.float32)
        sf.write(folder / name, audio, rate, subtype="FLOAT" if name.endswith(".wav") else "PCM_24")
        made.append(folder / name)
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(folder / "stereo.wav"),
                    str(folder / "stereo.m4a")], check=True)
    return [*made, folder / "stereo.m4a"]


def test_file_to_file_in_blocks_equals_reading_the_whole_file(tmp_path):
    """soundfile blocks, an ffmpeg pipe (m4a), soxr's streaming resampler both ways, mono and 3 channels."""
    model = tiny_models()["VocNet"]
    for path in _files(tmp_path):
        vocals, accompaniment, rate = separate_file(model, RATE, PARAMS, path)
        frames, written_rate = stream_file(model, RATE, PARAMS, path, tmp_path / "v.wav", tmp_path / "a.wav",
                                           frames=777)
        streamed_vocals, _ = sf.read(tmp_path / "v.wav", dtype="float32", always_2d=True)
        streamed_accompaniment, _ = sf.read(tmp_path / "a.wav", dtype="float32", always_2d=True)
        assert (frames, written_rate) == (vocals.shape[0], rate)
        assert streamed_vocals.shape == vocals.shape, path.name
        np.testing.assert_allclose(streamed_vocals, vocals, atol=1e-5, rtol=0)
        np.testing.assert_allclose(streamed_accompaniment, accompaniment, atol=1e-5, rtol=0)


PEAK_SCRIPT = """
import sys, numpy as np, soundfile as sf, torch
from pathlib import Path
from vocalsep.config import SeparateParams
from vocalsep.model import VocNet
from vocalsep.streaming import stream_file
torch.manual_seed(0)
model = VocNet(filters=4, skip_filters=4, layers=4, layers_per_stack=4).eval()
path = Path(sys.argv[1])
stream_file(model, 44100, SeparateParams(chunk_seconds=4.0, overlap_seconds=0.25, batch_size=2, device="cpu"),
            path, path.with_suffix(".v.wav"), path.with_suffix(".a.wav"))
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print(int(line.split()[1]) // 1024)
"""


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_song(tmp_path):
    """1 and 8 minutes of stereo 44.1 kHz through the streaming path: the same peak RSS (the 8-minute
    song alone would be 170 MB as float32)."""
    peaks = []
    for minutes in (1, 8):
        path = tmp_path / f"song{minutes}.flac"
        with sf.SoundFile(path, "w", 44100, 2, subtype="PCM_16") as out:
            rng = np.random.default_rng(0)
            for _ in range(minutes * 6):
                out.write((0.1 * rng.standard_normal((441000, 2))).astype(np.float32))
        done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(path)], capture_output=True, text=True,
                              check=True, timeout=900)
        peaks.append(int(done.stdout.split()[-1]))
    assert peaks[1] < peaks[0] + 40, peaks


def _pcm(audio: np.ndarray) -> bytes:
    return audio.astype("<f4").tobytes()


@pytest.mark.slow
def test_vocalsep_stream_on_a_pipe_equals_the_offline_core_with_the_same_block(tmp_path):
    """Raw f32le in on stdin, vocals out on stdout: the core with chunk = block, no overlap."""
    from vocalsep.model import save_checkpoint
    from vocalsep.separate import separate

    torch.manual_seed(0)
    kwargs = {"filters": 8, "skip_filters": 8, "layers": 4, "layers_per_stack": 4, "n_fft": 256, "hop": 64,
              "wave_filters": 8, "wave_stride": 16, "lookahead_frames": 0}
    model = HybridVocNet(**kwargs).eval()
    checkpoint = tmp_path / "live.pt"
    save_checkpoint(checkpoint, model, kwargs, params={"audio": {"sample_rate": RATE}})
    (tmp_path / "params.yaml").write_text("stream:\n  block_seconds: 0.016\nseparate:\n  device: cpu\n")
    mixture = (0.1 * np.random.default_rng(5).standard_normal((RATE * 2 + 77, 2))).astype(np.float32)
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "vocalsep.cli.main", "stream", "-", "--model", str(checkpoint),
                           "--rate", str(RATE), "--params", str(tmp_path / "params.yaml"), "--report", str(report)],
                          input=_pcm(mixture), capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    streamed = np.frombuffer(done.stdout, dtype="<f4").reshape(-1, 2)
    block = 128  # 0.016 s at 8 kHz, a multiple of the hop (64)
    offline = separate(model, mixture.T, chunk_samples=block, overlap_samples=0, batch_size=1).T
    assert streamed.shape == mixture.shape
    np.testing.assert_allclose(streamed, offline, atol=1e-5, rtol=0)
    stats = json.loads(report.read_text())
    lookahead = model.context[1] + model.stride  # 448 samples: 4 blocks of 128 arrive before it is all in
    assert -(-lookahead // block) == 4
    assert stats["latency_ms"] == pytest.approx(1000 * (block + 4 * block) / RATE, abs=0.1)
    assert f"latency {stats['latency_ms']:.0f} ms" in done.stderr.decode()


@pytest.mark.slow
def test_vocalsep_stream_keeps_up_at_real_time_pace_with_no_underruns(tmp_path):
    """A WAV file read at real-time pace through a small live model: every block is ready in time."""
    from vocalsep.model import save_checkpoint

    torch.manual_seed(0)
    kwargs = {"filters": 8, "skip_filters": 8, "layers": 4, "layers_per_stack": 4, "n_fft": 256, "hop": 64,
              "wave_filters": 8, "wave_stride": 16, "lookahead_frames": 0}
    checkpoint = tmp_path / "live.pt"
    save_checkpoint(checkpoint, HybridVocNet(**kwargs), kwargs, params={"audio": {"sample_rate": RATE}})
    wav = tmp_path / "live.wav"
    sf.write(wav, (0.1 * np.random.default_rng(0).standard_normal((RATE * 3, 2))), RATE, subtype="PCM_16")
    report = tmp_path / "report.json"
    (tmp_path / "params.yaml").write_text("stream:\n  block_seconds: 0.032\n")  # separate.device: auto
    done = subprocess.run([sys.executable, "-m", "vocalsep.cli.main", "stream", str(wav), "--format", "wav",
                           "--realtime", "-o", str(tmp_path / "vocals.wav"), "--model", str(checkpoint),
                           "--params", str(tmp_path / "params.yaml"), "--report", str(report)],
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    stats = json.loads(report.read_text())
    assert stats["underruns"] == 0 and stats["wall_seconds"] >= 2.9  # paced, and never late
    assert sf.info(tmp_path / "vocals.wav").frames == RATE * 3


def test_devices_without_portaudio_say_what_to_install(tmp_path):
    """sounddevice raises OSError when the PortAudio library is missing: the command names both installs."""
    fake = tmp_path / "site"
    fake.mkdir()
    (fake / "sounddevice.py").write_text("raise OSError('PortAudio library not found')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")])}
    for args in (["--list-devices"], ["--input-device", "0", "--seconds", "1"]):
        done = subprocess.run([sys.executable, "-m", "vocalsep.cli.main", "stream", *args], capture_output=True, text=True,
                              env=env, timeout=120, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert "PortAudio library not found" in done.stderr
        assert "pip install 'vocalsep[live]'" in done.stderr and "libportaudio2" in done.stderr


class _SlowCore:
    """A stand-in core that takes 30 ms per block and returns what it got (timing only)."""

    def push(self, block):
        time.sleep(0.03)
        return block

    def finish(self):
        return np.zeros((2, 0), np.float32)


class _Sink:
    def __init__(self):
        self.frames = 0

    def write(self, vocals):
        self.frames += vocals.shape[0]


def test_stream_warns_once_when_blocks_take_longer_than_they_last(capsys):
    from vocalsep.cli import stream as stream_cli

    blocks = [np.zeros((160, 2), np.float32)] * 5  # 10 ms blocks at 16 kHz, 30 ms of compute each
    ends = stream_cli._Ends(iter(blocks), _Sink(), 16000, None, None)
    tally = stream_cli._pump(_SlowCore(), ends, 16000, playback=0.05, pace=False, live=False)
    err = capsys.readouterr().err
    assert tally.slow == 5 and err.count("cannot keep up") == 1 and "10 ms block took" in err
    fast = stream_cli._pump(_SlowCore(), stream_cli._Ends(iter([np.zeros((1600, 2), np.float32)]), _Sink(), 16000,
                                                          None, None), 16000, 0.05, False, False)
    assert fast.slow == 0 and "cannot keep up" not in capsys.readouterr().err


def test_stream_refuses_a_params_file_that_does_not_exist(tmp_path):
    done = subprocess.run([sys.executable, "-m", "vocalsep.cli.main", "stream", "--params", str(tmp_path / "typo.yaml"),
                           "--seconds", "1"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2 and "typo.yaml" in done.stderr


def test_stream_defaults_to_the_shipped_live_model_and_says_so_when_it_is_absent(tmp_path, monkeypatch):
    from vocalsep.default_model import stream_default

    monkeypatch.setenv("VOCALSEP_PRETRAINED_LIVE", str(tmp_path / "none"))
    spec, why = stream_default()
    assert spec == "pretrained" and "no " in why and "pretrained-live" in why
    monkeypatch.delenv("VOCALSEP_PRETRAINED_LIVE")
    spec, why = stream_default()
    from vocalsep.base_model.weights import live_dir

    assert spec == ("pretrained-live" if (live_dir() / "vocalsep-base.json").is_file() else "pretrained")
