"""The demo corpus: layout, formats, determinism, and that it sounds like voices and bands."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf
import yaml

from vocalsep.config import load_params
from vocalsep.demo.corpus import demo_path, write_corpus, write_manifest
from vocalsep.demo.voice import voice
from vocalsep.demo.band import band
from vocalsep.stages.demo import main

SR = 44100
BLOCK = int(0.05 * SR)  # 50 ms analysis blocks


def shrunk(params, root, **demo):
    """Params with the demo corpus under `root` and the demo section shrunk."""
    defaults = {"acapellas": 4, "instrumentals": 4, "min_seconds": 2.5, "max_seconds": 3.5}
    return dataclasses.replace(params, paths=dataclasses.replace(params.paths, demo=str(root)),
                               demo=dataclasses.replace(params.demo, **(defaults | demo)))


@pytest.fixture(scope="module")
def corpus(repo_root, tmp_path_factory):
    params = shrunk(load_params(repo_root / "params.yaml"), tmp_path_factory.mktemp("demo"))
    return params, write_corpus(params)


def block_db(mono: np.ndarray) -> np.ndarray:
    """RMS level (dBFS) of consecutive 50 ms blocks; `(blocks,)`."""
    blocks = mono[: len(mono) // BLOCK * BLOCK].reshape(-1, BLOCK)
    return 20 * np.log10(np.sqrt((blocks**2).mean(axis=1)) + 1e-12)


def longest_run(mask: np.ndarray) -> int:
    """Length of the longest run of True in a 1-D boolean array."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(int), 0]))
    return int((edges[1::2] - edges[::2]).max()) if len(edges) else 0


def test_layout_formats_and_audio_properties(corpus):
    params, paths = corpus
    names = sorted(p.relative_to(params.paths.demo).as_posix() for p in paths)
    assert names == ["acapella/voice_01.wav", "acapella/voice_02.flac", "acapella/voice_03.ogg",
                     "acapella/voice_04.mp3", "instrumental/band_01.wav", "instrumental/band_02.flac",
                     "instrumental/band_03.ogg", "instrumental/band_04.mp3"]
    for path in paths:
        audio, sr = sf.read(path, always_2d=True)
        assert sr == SR and audio.shape[1] == 2
        # lossy codecs pad a few ms at the ends
        assert params.demo.min_seconds - 0.01 <= len(audio) / sr <= params.demo.max_seconds + 0.1
        assert 0.1 < np.abs(audio).max() < 1.0
        assert not np.allclose(audio[:, 0], audio[:, 1])  # some stereo spread


def test_same_seed_same_bytes_other_seed_other_audio(repo_root, tmp_path):
    base = load_params(repo_root / "params.yaml")
    small = {"acapellas": 2, "instrumentals": 2, "min_seconds": 1.0, "max_seconds": 1.5}
    first = write_corpus(shrunk(base, tmp_path / "a", **small))
    second = write_corpus(shrunk(base, tmp_path / "b", **small))
    other = write_corpus(shrunk(base, tmp_path / "c", seed=base.demo.seed + 1, **small))
    for a, b, c in zip(first, second, other):
        assert a.read_bytes() == b.read_bytes()
        assert a.read_bytes() != c.read_bytes()


def test_stage_cli_writes_the_corpus(repo_root, tmp_path):
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["paths"]["demo"] = str(tmp_path / "demo")
    params["demo"] |= {"acapellas": 1, "instrumentals": 1, "min_seconds": 1.0, "max_seconds": 1.0}
    params["download"]["sources"] = str(tmp_path / "demo.yaml")  # a manifest that uses this demo folder
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(params))))
    write_manifest(load_params(tmp_path / "params.yaml"), tmp_path / "demo.yaml")
    assert main(["--params", str(tmp_path / "params.yaml")]) == 0
    for role in ("acapella", "instrumental"):
        assert sf.info(demo_path(tmp_path / "demo", role, 0)).channels == 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_voice_has_pauses_between_phrases(seed):
    mono = voice(np.random.default_rng(seed), 12.0, SR).mean(axis=1)
    levels = block_db(mono)
    active = np.flatnonzero(levels > -40)
    inner = levels[active[0]:active[-1]]
    assert longest_run(inner < -60) * 0.05 >= 0.3  # a phrase pause of at least 0.3 s inside the track


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_voice_is_pitched_in_singing_range(seed):
    mono = voice(np.random.default_rng(seed), 6.0, SR).mean(axis=1)
    levels = block_db(mono)
    frame, lags = 2048, np.arange(SR // 400, SR // 80 + 1)
    strengths, pitches = [], []
    for block in np.flatnonzero(levels > levels.max() - 20):
        x = mono[block * BLOCK: block * BLOCK + frame]
        if len(x) < frame:
            continue
        x = x - x.mean()
        ac = np.array([np.dot(x[:-lag], x[lag:]) for lag in lags]) / np.dot(x, x)
        strengths.append(ac.max())
        pitches.append(SR / lags[ac.argmax()])
    assert np.median(strengths) > 0.5
    assert 80 <= np.median(pitches) <= 400


def onset_periodicity(mono: np.ndarray) -> float:
    """Largest normalised autocorrelation of the onset-strength curve at lags of 0.1-1 s."""
    hop = int(0.01 * SR)
    energy = np.log10((mono[: len(mono) // hop * hop].reshape(-1, hop) ** 2).sum(axis=1) + 1e-9)
    onset = np.maximum(np.diff(energy), 0)
    onset = onset - onset.mean()
    ac = np.correlate(onset, onset, mode="full")[len(onset) - 1:] / np.dot(onset, onset)
    return float(ac[10:100].max())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_band_has_periodic_onsets_and_is_never_silent(seed):
    mono = band(np.random.default_rng(seed), 8.0, SR).mean(axis=1)
    assert onset_periodicity(mono) > 0.35  # a beat: onsets repeat (aperiodic sound stays near 0.1)
    assert block_db(mono).min() > -50  # sustained chords and bass: no gaps
