"""`vocalsep stream --input-device/--output-device` through real PortAudio devices.

No sound card here, so the devices are ALSA's `file` plugin, defined in a
temporary ~/.asoundrc: capture reads the samples of `in.raw`, playback writes
what it plays to `out.raw` (S16_LE, stereo). PortAudio, sounddevice and ALSA
run for real; only the sound card is replaced by files. Skips, saying why,
where sounddevice or the PortAudio library (Debian: libportaudio2) is missing.

ALSA's null slave has no clock: capture runs as fast as it is read, overruns,
and ALSA skips whole periods of `in.raw` (seen: jumps of 1024-1920 frames,
multiples of 128) without reporting it. The recorded signal is therefore
periodic in `PERIOD` frames, so any whole-period skip leaves it unchanged,
and the played vocals must equal the offline core on that signal. A real
card is clocked and does not skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vocalsep.model import save_checkpoint
from vocalsep.model.hybrid import HybridVocNet
from vocalsep.separate import separate

RATE = 8000
PERIOD = 64  # frames: the recorded noise repeats with this period (see above)
BLOCK = 128  # stream.block_seconds 0.016 at 8 kHz, a multiple of the model's hop
KWARGS = {"filters": 8, "skip_filters": 8, "layers": 4, "layers_per_stack": 4, "n_fft": 256, "hop": 64,
          "wave_filters": 8, "wave_stride": 16, "lookahead_frames": 0}
ASOUNDRC = """
pcm.vocalsep_files {{
    type file
    slave.pcm "null"
    file "{out}"
    infile "{inp}"
    format "raw"
}}
pcm.vocalsep_dev {{
    type plug
    slave {{
        pcm "vocalsep_files"
        format S16_LE
        channels 2
        rate {rate}
    }}
}}
"""


def _portaudio_missing() -> str | None:
    done = subprocess.run([sys.executable, "-c", "import sounddevice"], capture_output=True, text=True)
    return None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["?"])[-1]


pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    bool(_portaudio_missing()), reason=f"sounddevice cannot load PortAudio: {_portaudio_missing()} "
                                       "(pip install sounddevice; apt-get install libportaudio2)")]


@pytest.fixture
def devices(tmp_path) -> dict:
    """A HOME whose ~/.asoundrc defines `vocalsep_dev`: capture from in.raw, playback into out.raw."""
    home = tmp_path / "home"
    home.mkdir()
    inp, out = home / "in.raw", home / "out.raw"
    (home / ".asoundrc").write_text(ASOUNDRC.format(out=out, inp=inp, rate=RATE))
    inp.write_bytes(bytes(4 * RATE))  # ALSA lists no capture side for a missing infile
    env = {**os.environ, "HOME": str(home)}
    return {"env": env, "in": inp, "out": out, "home": home}


def _stream(tmp_path: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "params.yaml").write_text("stream:\n  block_seconds: 0.016\nseparate:\n  device: cpu\n")
    return subprocess.run([sys.executable, "-m", "vocalsep.cli.main", "stream", "--params", str(tmp_path / "params.yaml"),
                           *args], capture_output=True, env=env, timeout=300)


@pytest.mark.slow
def test_recorded_from_one_device_and_played_on_another_equals_the_offline_core(tmp_path, devices):
    torch.manual_seed(0)
    model = HybridVocNet(**KWARGS).eval()
    checkpoint = tmp_path / "live.pt"
    save_checkpoint(checkpoint, model, KWARGS, params={"audio": {"sample_rate": RATE}})
    period = (0.1 * np.random.default_rng(2).standard_normal((PERIOD, 2)) * 32768).astype("<i2")
    pcm = np.tile(period, (RATE * 4 // PERIOD, 1))
    devices["in"].write_bytes(pcm.tobytes())
    report = tmp_path / "report.json"
    done = _stream(tmp_path, devices["env"], "--input-device", "vocalsep_dev", "--output-device", "vocalsep_dev",
                   "--rate", str(RATE), "--seconds", "1.5", "--model", str(checkpoint), "--report", str(report))
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b""  # with an output device and no -o, nothing goes to stdout
    stats = json.loads(report.read_text())
    frames = int(RATE * 1.5)
    assert stats["input_device"] == stats["output_device"] == "vocalsep_dev"
    assert stats["input_seconds"] == 1.5 and stats["frames_written"] == frames
    assert stats["input_overflows"] == 0 and stats["output_underflows"] == 0
    played = np.frombuffer(devices["out"].read_bytes(), dtype="<i2").reshape(-1, 2)
    assert played.shape[0] >= frames  # the clockless device may repeat its last buffer after the end
    played = played[:frames]
    recorded = pcm[:frames].astype(np.float32) / 32768
    offline = separate(model, recorded.T, chunk_samples=BLOCK, overlap_samples=0, batch_size=1).T
    assert np.abs(offline).max() > 0.01  # a signal, not silence on both sides
    np.testing.assert_allclose(played.astype(np.float32) / 32768, offline, atol=2e-4, rtol=0)


@pytest.mark.slow
def test_a_device_that_does_not_exist_is_named_with_the_ones_that_do(tmp_path, devices):
    done = _stream(tmp_path, devices["env"], "--input-device", "no-such-card", "--seconds", "1")
    err = done.stderr.decode()
    assert done.returncode == 2
    assert "--input-device no-such-card" in err and "vocalsep_dev" in err and "--list-devices" in err
    listed = _stream(tmp_path, devices["env"], "--list-devices")
    assert listed.returncode == 0 and b"vocalsep_dev" in listed.stdout
