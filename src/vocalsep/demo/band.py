"""Band-like demo instrumentals: drums, bass line and chords on a seeded tempo and key.

`band(rng, seconds, sr)` returns float32 audio of shape `(frames, 2)`. Notes and
hits are short arrays added into the track at their onsets, so a 40 s track
costs a few hundred small numpy operations.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

# scale degrees (semitones) of a chord progression, with its chord qualities
PROGRESSIONS = [([0, 7, 9, 5], "major"), ([0, 5, 7, 5], "major"), ([0, 8, 3, 10], "minor"),
                ([0, 5, 10, 3], "minor")]
TRIADS = {"major": {0: (0, 4, 7), 5: (0, 4, 7), 7: (0, 4, 7), 9: (0, 3, 7)},
          "minor": {0: (0, 3, 7), 3: (0, 4, 7), 5: (0, 3, 7), 8: (0, 4, 7), 10: (0, 4, 7)}}
# 16-step patterns per bar: 1 = hit
KICKS = ["1000000010000000", "1000001010000000", "1000000010100000", "1001000010010000"]
SNARES = ["0000100000001000", "0000100000001001", "0000100100001000"]
HATS = ["1010101010101010", "1111111111111111", "0010001000100010"]
BASS = ["1000001010000010", "1010101010101010", "1000000010001000"]


def _hz(midi: np.ndarray | float) -> np.ndarray | float:
    return 440.0 * 2 ** ((np.asarray(midi) - 69) / 12)


def _kick(sr: int) -> np.ndarray:
    t = np.arange(int(0.35 * sr)) / sr
    freq = 45 + 90 * np.exp(-t / 0.04)
    return np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / 0.15)


def _noise_hit(rng: np.random.Generator, sr: int, seconds: float, band: tuple, decay: float) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    sos = signal.butter(2, [band[0], min(band[1], 0.45 * sr)], btype="bandpass", fs=sr, output="sos")
    return signal.sosfilt(sos, rng.standard_normal(len(t))) * np.exp(-t / decay)


def _snare(rng: np.random.Generator, sr: int) -> np.ndarray:
    t = np.arange(int(0.25 * sr)) / sr
    body = 0.6 * np.sin(2 * np.pi * 185 * t) * np.exp(-t / 0.04)
    return body + 1.5 * _noise_hit(rng, sr, 0.25, (1200, 7000), 0.06)


def _tone(midi: float, seconds: float, sr: int, harmonics: int, decay: float, detune: float = 0.0,
          sustain: float = 0.0) -> np.ndarray:
    """A plucked/organ-like note: `harmonics` partials at 1/k amplitude decaying towards `sustain`; `(frames,)`."""
    t = np.arange(int(seconds * sr)) / sr
    k = np.arange(1, harmonics + 1)[:, None]
    partials = np.sin(2 * np.pi * _hz(midi + detune) * k * t) / k
    fade = np.clip((seconds - t) / 0.02, 0, 1) * np.clip(t / 0.005, 0, 1)
    return partials.sum(axis=0) * (sustain + (1 - sustain) * np.exp(-t / decay)) * fade


def _add(track: np.ndarray, sound: np.ndarray, start: int, gains: tuple[float, float]) -> None:
    """Mix `sound` `(n,)` or `(n, 2)` into `track` `(frames, 2)` at `start` with per-channel gains."""
    n = min(len(sound), len(track) - start)
    if n <= 0:
        return
    stereo = sound[:n, None] if sound.ndim == 1 else sound[:n]
    track[start:start + n] += stereo * np.asarray(gains)


def pan(position: float) -> tuple[float, float]:
    """Equal-power gains for position in [-1 (left), 1 (right)]."""
    angle = (position + 1) * np.pi / 4
    return float(np.cos(angle)), float(np.sin(angle))


def _drums(rng: np.random.Generator, track: np.ndarray, steps: np.ndarray, sr: int) -> None:
    """Kick, snare and hats from per-bar 16-step patterns; `steps` holds every 16th-note onset."""
    patterns = [(KICKS, _kick(sr), 0.0, 1.0), (SNARES, _snare(rng, sr), 0.1, 0.7),
                (HATS, _noise_hit(rng, sr, 0.08, (7000, 16000), 0.02), rng.uniform(-0.5, 0.5), 0.35)]
    for choices, hit, position, level in patterns:
        pattern = choices[rng.integers(len(choices))]
        gains = np.array(pan(position)) * level
        for i, start in enumerate(steps):
            if pattern[i % 16] == "1":
                _add(track, hit * rng.uniform(0.8, 1.0), start, tuple(gains))


def _harmony(rng: np.random.Generator, track: np.ndarray, steps: np.ndarray, step: float, sr: int) -> None:
    """Bass line on chord roots and a chord per bar, detuned between channels for width."""
    degrees, quality = PROGRESSIONS[rng.integers(len(PROGRESSIONS))]
    root = rng.integers(40, 48)  # E2..B2
    bass = BASS[rng.integers(len(BASS))]
    chord_decay = rng.uniform(0.4, 1.5)
    for i, start in enumerate(steps):
        degree = degrees[(i // 16) % len(degrees)]
        if bass[i % 16] == "1":
            octave = 12 if rng.random() < 0.15 else 0
            _add(track, 0.5 * _tone(root + degree + octave, 1.8 * step, sr, 6, 0.3), start, pan(0.0))
        if i % 16 == 0:
            notes = root + 24 + degree + np.array(TRIADS[quality][degree])
            left = sum(_tone(m, 16 * step, sr, 4, chord_decay, -0.06, 0.3) for m in notes)
            right = sum(_tone(m, 16 * step, sr, 4, chord_decay, 0.06, 0.3) for m in notes)
            _add(track, 0.15 * np.stack([left, right], axis=1), start, (1.0, 1.0))


def band(rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    """Drums, bass and chords in 1-3 sections (one per 10 s), each with its own tempo (80-140 BPM) and key.

    Returns `(frames, 2)` float32.
    """
    frames = int(seconds * sr)
    track = np.zeros((frames, 2))
    sections = int(rng.integers(1, min(3, max(1, int(seconds // 10))) + 1))  # each one 6 s or longer
    bounds = seconds * (np.arange(1, sections) + rng.uniform(-0.2, 0.2, sections - 1)) / sections
    for begin, end in zip(np.r_[0.0, bounds], np.r_[bounds, seconds]):
        step = 60.0 / rng.uniform(80, 140) / 4  # one 16th note, seconds
        steps = (np.arange(begin, end, step) * sr).astype(int)
        _drums(rng, track, steps, sr)
        _harmony(rng, track, steps, step, sr)
    return peak_normalize(rng, track)


def peak_normalize(rng: np.random.Generator, audio: np.ndarray) -> np.ndarray:
    """Peak-normalise to a random level between -6 and -2 dBFS (lossy codecs stay below 0 dBFS); float32."""
    peak = 10 ** (rng.uniform(-6.0, -2.0) / 20)
    return (audio * peak / (np.abs(audio).max() + 1e-9)).astype(np.float32)
