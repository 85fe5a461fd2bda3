"""benchmarks/bands.py and benchmarks/pitch.py: where the error lies by band, and a voice moved in pitch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests import benchmark_modules

RATE = 44100


@pytest.fixture(scope="module")
def bands():
    return benchmark_modules.load("bands")


@pytest.fixture(scope="module")
def pitch():
    return benchmark_modules.load("pitch")


def stems(seconds: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """A voice-like stereo stem with energy in every band (harmonics of 110 Hz) and a noise music stem."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE)) / RATE
    voice = sum(np.sin(2 * np.pi * 110 * k * t) / k for k in range(1, 120) if 110 * k < 20000)
    voice = np.stack([voice, 0.8 * voice]).astype(np.float64)
    music = rng.normal(0, 0.3, (2, t.size))
    return voice, music


def test_the_voice_with_a_little_music_keeps_every_band_whole_and_each_exact_band_removes_some_music(bands):
    voice, music = stems()
    rows = bands.track_bands(voice, music, voice + 0.01 * music)
    for name in rows:
        if name != "si_sdri":
            assert rows[name]["gain"] == pytest.approx(1.0, abs=1e-3)
            assert rows[name]["oracle_gain"] > 0
    assert rows["si_sdri"] == pytest.approx(40.0, abs=0.5)   # the music 40 dB down


def test_a_band_taken_out_of_the_voice_shows_as_a_zero_gain_and_the_oracle_gain_lands_there(bands):
    voice, music = stems()
    estimate = voice - bands.band(voice, 0, 150) + 0.05 * music
    rows = bands.track_bands(voice, music, estimate)
    assert rows["0-150"]["gain"] == pytest.approx(0.0, abs=1e-3)
    assert rows["150-500"]["gain"] == pytest.approx(1.0, abs=1e-3)
    assert rows["0-150"]["oracle_gain"] > 1.0
    others = [rows[n]["oracle_gain"] for n in rows if n not in ("0-150", "si_sdri")]
    assert rows["0-150"]["oracle_gain"] > 5 * max(others)


def test_band_shares_add_up_to_the_whole_voice(bands):
    voice, music = stems()
    rows = bands.track_bands(voice, music, voice + music)
    total = sum(10 ** (rows[n]["voice"] / 10) for n in rows if n != "si_sdri")
    assert total == pytest.approx(1.0, rel=1e-3)
    assert rows["si_sdri"] == pytest.approx(0.0, abs=1e-6)


def test_a_voice_moved_an_octave_up_has_its_pitch_doubled_and_its_level_kept(pitch):
    t = np.arange(2 * RATE) / RATE
    tone = np.stack([np.sin(2 * np.pi * 220 * t)] * 2).astype(np.float32) * 0.3
    up = pitch.shifted(tone, 12.0)
    spectrum = np.abs(np.fft.rfft(up[0, RATE // 2:]))
    peak = np.fft.rfftfreq(up.shape[1] - RATE // 2, 1 / RATE)[np.argmax(spectrum)]
    assert peak == pytest.approx(440, abs=5)
    assert np.sqrt(np.mean(up ** 2)) == pytest.approx(np.sqrt(np.mean(tone ** 2)), rel=1e-3)
    assert up.shape == tone.shape


def test_rows_merge_by_model_name_and_keep_the_models_scored_before(tmp_path):
    rows = benchmark_modules.load("model_rows")
    out = tmp_path / "r.json"
    rows.write(out, "x", {"tracks": 2}, rows.merged(out, ["a=pretrained", "b=some.pt"], lambda spec: {"spec": spec}))
    rows.write(out, "x", {"tracks": 2}, rows.merged(out, ["b=other.pt"], lambda spec: {"spec": spec}))
    result = json.loads(out.read_text())
    assert result["models"] == {"a": {"spec": "pretrained"}, "b": {"spec": "other.pt"}}
    assert result["benchmark"] == "x" and result["setup"] == {"tracks": 2} and result["machine"]["cpus"] >= 1


def test_missing_mixtures_are_named_with_what_to_run(tmp_path, capsys):
    rows = benchmark_modules.load("model_rows")
    assert rows.unseen_mixtures(tmp_path, None, "bands") is None
    assert "run benchmarks/quality.py" in capsys.readouterr().err
    (tmp_path / "unseen").mkdir()
    (tmp_path / "unseen" / "mixtures.json").write_text(json.dumps({"mixtures": [{"track": "00"}, {"track": "01"}]}))
    assert rows.unseen_mixtures(tmp_path, 1, "bands") == [{"track": "00"}]
