"""vocalsep.audio: decoding (libsndfile and ffmpeg), channels, rate, loudness and level statistics."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import soundfile as sf

from vocalsep import audio, levels
from vocalsep.env import ffmpeg_exe
from vocalsep.errors import AudioError

SR = 44100


def sine(freq: float = 440.0, seconds: float = 1.0, sr: int = SR, amp: float = 0.5, channels: int = 2) -> np.ndarray:
    """(frames, channels) float32 sine."""
    t = np.arange(int(seconds * sr)) / sr
    return np.repeat((amp * np.sin(2 * np.pi * freq * t))[:, None], channels, axis=1).astype(np.float32)


def dominant_frequency(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x[:, 0] * np.hanning(x.shape[0])))
    return float(np.fft.rfftfreq(x.shape[0], 1 / sr)[np.argmax(spectrum)])


def test_write_read_round_trip_24bit_flac(tmp_path):
    x = sine(seconds=0.5) * np.array([1.0, -0.25], dtype=np.float32)
    path = audio.write_audio(tmp_path / "sub" / "x.flac", x, SR)
    y, sr = audio.read_audio(path)
    assert sr == SR and y.dtype == np.float32 and y.shape == x.shape
    assert sf.info(str(path)).subtype == "PCM_24"
    assert np.max(np.abs(y - x)) < 2.0 ** -22


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
def test_read_bytes_of_common_formats(tmp_path, ext):
    x = sine(seconds=1.0)
    path = audio.write_audio(tmp_path / f"x.{ext}", x, SR)
    y, sr = audio.read_bytes(path.read_bytes(), name_hint=path.name)
    assert sr == SR and y.shape[1] == 2
    assert abs(y.shape[0] - x.shape[0]) <= 2048  # lossy codecs pad a little
    assert abs(dominant_frequency(y, sr) - 440.0) < 3.0


@pytest.mark.parametrize("ext, codec", [("m4a", "aac"), ("webm", "libopus")])
def test_ffmpeg_only_formats_decode(tmp_path, ext, codec):
    path = tmp_path / f"take:1 -tone.{ext}"  # a colon and a dash must not reach ffmpeg as syntax
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi",
                    "-i", "sine=frequency=1000:duration=1:sample_rate=48000", "-ac", "2",
                    "-c:a", codec, "-y", f"file:{path}"], check=True)
    with pytest.raises(sf.LibsndfileError):
        sf.info(str(path))  # proves the ffmpeg path is the one under test
    y, sr = audio.read_audio(path)
    assert sr == 48000 and y.shape[1] == 2 and abs(y.shape[0] - 48000) < 4096
    assert abs(dominant_frequency(y, sr) - 1000.0) < 5.0
    from_bytes, sr_bytes = audio.read_bytes(path.read_bytes(), name_hint=path.name)
    assert sr_bytes == sr and from_bytes.shape == y.shape


def test_ffmpeg_reports_six_channel_layout(tmp_path):
    path = tmp_path / "surround.m4a"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi",
                    "-i", "sine=frequency=500:duration=0.5:sample_rate=48000", "-ac", "6",
                    "-c:a", "aac", "-y", str(path)], check=True)
    y, _ = audio.read_audio(path)
    assert y.shape[1] == 6


def test_to_stereo_mono_stereo_and_surround():
    mono = np.arange(6, dtype=np.float32)[:, None]
    assert np.array_equal(audio.to_stereo(mono), np.hstack([mono, mono]))
    stereo = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
    assert np.array_equal(audio.to_stereo(stereo), stereo)
    surround = np.tile(np.array([[1.0, -1.0, 0.5, 0.0, 0.25, 0.25]], dtype=np.float32), (4, 1))
    down = audio.to_stereo(surround)
    assert down.shape == (4, 2) and down.dtype == np.float32
    assert np.allclose(down[0], [(1.0 + 1.0) / 5, (-1.0 + 1.0) / 5])
    full_scale = np.ones((3, 6), dtype=np.float32)
    assert np.max(np.abs(audio.to_stereo(full_scale))) <= 1.0


def test_resample_keeps_length_ratio_and_frequency():
    x = sine(freq=1000.0, seconds=1.0, sr=22050)
    y = audio.resample(x, 22050, SR)
    assert y.shape == (SR, 2) and y.dtype == np.float32
    assert abs(dominant_frequency(y, SR) - 1000.0) < 2.0
    assert audio.resample(x, 22050, 22050) is x


@pytest.mark.parametrize("amp", [0.01, 0.3])
def test_normalize_loudness_hits_target(amp):
    x = sine(freq=997.0, seconds=2.0, amp=amp)
    y = levels.normalize_loudness(x, SR, target_lufs=-23.0, peak_ceiling_db=-1.0)
    assert abs(levels.integrated_loudness(y, SR) - (-23.0)) < 0.5
    assert levels.peak_db(y) <= -1.0 + 1e-4


def test_peak_ceiling_wins_over_loudness_target():
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(2 * SR, 2)) * 0.01).astype(np.float32)
    x[SR, :] = 0.5  # one spike: reaching -10 LUFS would push it far over the ceiling
    y = levels.normalize_loudness(x, SR, target_lufs=-10.0, peak_ceiling_db=-1.0)
    assert abs(levels.peak_db(y) - (-1.0)) < 1e-3
    assert levels.integrated_loudness(y, SR) < -10.5
    # one constant gain (ceiling / spike), no clipper or limiter touching single samples
    assert np.allclose(y, x * (10 ** (-1 / 20) / 0.5), rtol=1e-5, atol=1e-7)


def test_silence_loudness_and_normalize_refuses_silence():
    silent = np.zeros((SR, 2), dtype=np.float32)
    assert np.isnan(levels.integrated_loudness(silent, SR))
    assert levels.peak_db(silent) == float("-inf")
    with pytest.raises(AudioError, match="silent"):
        levels.normalize_loudness(silent, SR, -23.0, -1.0)


def test_silence_ratio_counts_quiet_blocks():
    x = sine(seconds=1.0, amp=0.5)
    x[: SR // 4] = 0.0  # first quarter silent: 5 of 20 blocks
    x[SR // 4 : SR // 2] *= 1e-4  # second quarter at about -83 dBFS: also below -60
    assert levels.silence_ratio(x, SR, threshold_db=-60.0) == pytest.approx(0.5)
    assert levels.silence_ratio(x, SR, threshold_db=-90.0) == pytest.approx(0.25)
    blocks = levels.block_rms_db(x, SR)
    assert blocks.shape == (20,) and abs(blocks[-1] - 20 * np.log10(0.5 / np.sqrt(2))) < 0.1


def test_clipping_ratio_and_peak():
    x = np.zeros((100, 2), dtype=np.float32)
    x[:10, 0] = 1.0
    x[:5, 1] = -0.9995
    assert levels.clipping_ratio(x, 0.999) == pytest.approx(15 / 200)
    assert levels.peak_db(x * 0.5) == pytest.approx(20 * np.log10(0.5))


def test_missing_file_error_names_it(tmp_path):
    with pytest.raises(AudioError, match="nope.wav.*not found"):
        audio.read_audio(tmp_path / "nope.wav")


def test_empty_file_error_names_it(tmp_path):
    path = tmp_path / "empty.flac"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match="empty.flac.*empty"):
        audio.read_audio(path)


def test_zero_length_audio_error(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros((0, 2), dtype=np.float32), SR)
    with pytest.raises(AudioError, match="zero.wav.*zero length"):
        audio.read_audio(path)


def test_non_finite_samples_error(tmp_path):
    x = sine(seconds=0.5)
    x[100, 1] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav.*NaN"):
        audio.read_audio(path)


@pytest.mark.parametrize("ext", ["wav", "flac", "mp3"])
def test_truncated_file_error_names_it(tmp_path, ext):
    full = audio.write_audio(tmp_path / f"full.{ext}", sine(seconds=2.0), SR)
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(AudioError, match=f"cut.{ext}.*truncated"):
        audio.read_audio(cut)


def test_not_audio_error_names_it(tmp_path):
    path = tmp_path / "notes.mp3"
    path.write_text("these are lyrics, not audio\n" * 20)
    with pytest.raises(AudioError, match="notes.mp3.*not audio"):
        audio.read_audio(path)
    with pytest.raises(AudioError, match="upload.bin.*not audio"):
        audio.read_bytes(path.read_bytes(), name_hint="upload.bin")


def test_write_rejects_unknown_extension(tmp_path):
    with pytest.raises(AudioError, match="x.xyz"):
        audio.write_audio(tmp_path / "x.xyz", sine(seconds=0.1), SR)


def test_remove_subsonic_takes_dc_and_rumble_and_keeps_a_voice_band():
    """A DC offset and a 5 Hz rumble under 100 Hz and 1 kHz tones: the first two go, the tones stay in
    level and in time (zero phase), per channel; 0 Hz means off; a clip shorter than the filter loses its mean."""
    t = np.arange(2 * SR) / SR
    tones = 0.2 * np.sin(2 * np.pi * 100 * t) + 0.1 * np.sin(2 * np.pi * 1000 * t)
    x = np.stack([tones + 0.15 + 0.2 * np.sin(2 * np.pi * 5 * t), tones - 0.05], axis=1).astype(np.float32)
    y = levels.remove_subsonic(x, SR)
    assert y.shape == x.shape and y.dtype == np.float32
    middle = slice(SR // 4, -SR // 4)  # away from the edges' padding
    assert np.abs(y[middle].mean(axis=0)).max() < 1e-3
    residual = y[middle] - np.stack([tones, tones], axis=1)[middle]
    assert np.sqrt(np.mean(residual ** 2)) < 0.01 * np.sqrt(np.mean(tones ** 2))  # tones kept, not delayed
    assert levels.remove_subsonic(x, SR, 0.0) is x
    short = np.full((5, 2), 0.3, dtype=np.float32)
    assert np.allclose(levels.remove_subsonic(short, SR), 0.0)
