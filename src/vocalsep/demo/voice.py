"""A synthetic sung voice: a glottal source on a pentatonic score with vibrato and jitter, vowel formants,
syllables and fricatives, a little stereo. `voice()` returns float32 `(frames, 2)` in [-1, 1]; vectorised
numpy, about a second of one core for 40 s."""

from __future__ import annotations

import numpy as np
from scipy import signal

from vocalsep.demo.band import pan, peak_normalize

HOP = 256  # control-rate step (samples) for pitch, formants and loudness

# vowel formants F1..F4 in Hz (adult male averages); female voices scale them up
VOWELS = np.array([[730, 1090, 2440, 3400], [530, 1840, 2480, 3500], [270, 2290, 3010, 3700],
                   [570, 840, 2410, 3300], [300, 870, 2240, 3300]], dtype=float)
BANDWIDTHS = np.array([80.0, 90.0, 120.0, 160.0])
# fricative noise bands (Hz): s, sh, f
FRICATIVES = [(4500, 10000), (2000, 5500), (1200, 12000)]
PENTATONIC = np.array([-5, -3, 0, 2, 4])


def _score(rng: np.random.Generator, n_ctl: int, sr: int) -> dict[str, np.ndarray | list]:
    """Phrases of syllables at control rate: note (semitones), vowel index, loudness, onsets.

    Returns `note`, `vowel`, `amp` arrays of shape `(n_ctl,)` and `onsets`, a list of
    `(sample, fricative_type)` consonant bursts that lead into syllables.
    """
    note, vowel, amp = np.zeros(n_ctl), np.zeros(n_ctl, dtype=int), np.zeros(n_ctl)
    onsets: list[tuple[int, int]] = []
    sec = sr / HOP
    t = rng.uniform(0.2, 0.6)
    end = n_ctl / sec - 0.3
    current = rng.choice(PENTATONIC)
    while t < end:
        phrase_end = min(end, t + rng.uniform(1.5, 4.0))
        while t < phrase_end - 0.1:
            dur = min(rng.uniform(0.15, 0.5), phrase_end - t)
            a, b = int(t * sec), int((t + dur) * sec)
            current = rng.choice(PENTATONIC) if rng.random() < 0.6 else current
            note[a:b], vowel[a:b] = current, rng.integers(len(VOWELS))
            amp[a:b] = _syllable_envelope(b - a, sec) * rng.uniform(0.6, 1.0)
            if rng.random() < 0.5:
                onsets.append((int(t * sr), int(rng.integers(len(FRICATIVES) + 1))))
            t += dur + (rng.uniform(0.0, 0.08) if rng.random() < 0.3 else 0.0)
        note[int(t * sec):] = current  # pitch holds through the pause: no glide from zero
        t += rng.uniform(0.4, 1.2)
    return {"note": note, "vowel": vowel, "amp": amp, "onsets": onsets}


def _syllable_envelope(n: int, sec: float) -> np.ndarray:
    """Attack, slight decay, release over `n` control steps (`sec` steps per second)."""
    i = np.arange(n) / sec
    attack = np.clip(i / 0.03, 0, 1)
    release = np.clip((n / sec - i) / 0.06, 0, 1)
    return attack * release * (1.0 - 0.25 * i / max(n / sec, 1e-3))


def _smooth(x: np.ndarray, steps: float) -> np.ndarray:
    """One-pole low-pass (time constant `steps` samples) along axis 0, forward and back."""
    a = np.exp(-1.0 / steps)
    return signal.filtfilt([1 - a], [1, -a], x, axis=0)


def _glottal(phase: np.ndarray) -> np.ndarray:
    """Rosenberg glottal flow derivative for phase in [0, 1): a sharp closure excites the formants."""
    tp, tn = 0.4, 0.16
    opening = 0.5 * np.pi / tp * np.sin(np.pi * phase / tp)
    closing = -0.5 * np.pi / tn * np.sin(0.5 * np.pi * (phase - tp) / tn)
    return np.where(phase < tp, opening, np.where(phase < tp + tn, closing, 0.0))


def _formant_filter(source: np.ndarray, formants: np.ndarray, sr: int) -> np.ndarray:
    """Cascade of Klatt resonators whose centres move per HOP block.

    source: `(frames,)`; formants: `(blocks, 4)` in Hz. Filter state carries across
    blocks, so gliding formants stay click-free.
    """
    out = np.empty_like(source)
    zi = np.zeros((formants.shape[1], 2))
    c = -np.exp(-2 * np.pi * BANDWIDTHS / sr)
    for k in range(int(np.ceil(len(source) / HOP))):
        b = 2 * np.exp(-np.pi * BANDWIDTHS / sr) * np.cos(2 * np.pi * formants[k] / sr)
        sos = np.stack([1 - b - c, np.zeros(4), np.zeros(4), np.ones(4), -b, -c], axis=1)
        block = slice(k * HOP, (k + 1) * HOP)
        out[block], zi = signal.sosfilt(sos, source[block], zi=zi)
    return out


def _fricatives(rng: np.random.Generator, onsets: list, frames: int, sr: int) -> np.ndarray:
    """Consonant noise bursts of shape `(frames,)`: s/sh/f hiss, or a short plosive click."""
    envs = np.zeros((len(FRICATIVES) + 1, frames))
    for start, kind in onsets:
        length = int(sr * (0.015 if kind == len(FRICATIVES) else rng.uniform(0.05, 0.12)))
        seg = slice(max(0, start - length), start)
        n = seg.stop - seg.start
        envs[kind, seg] = np.hanning(2 * n + 1)[:n] * rng.uniform(0.1, 0.25)
    noise = rng.standard_normal(frames)
    out = envs[-1] * noise
    for kind, (low, high) in enumerate(FRICATIVES):
        sos = signal.butter(4, [low, min(high, 0.45 * sr)], btype="bandpass", fs=sr, output="sos")
        out += envs[kind] * signal.sosfilt(sos, noise)
    return out


def voice(rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    """A sung, vowel-rich voice with pauses between phrases; returns `(frames, 2)` float32."""
    frames = int(seconds * sr)
    n_ctl = frames // HOP + 2
    score = _score(rng, n_ctl, sr)
    base_hz = rng.choice([110.0, 150.0, 200.0, 250.0])  # bass, tenor, alto, soprano
    t_ctl = np.arange(n_ctl) * HOP / sr
    vibrato = rng.uniform(0.2, 0.5) * np.sin(2 * np.pi * rng.uniform(4.5, 6.5) * t_ctl)
    jitter = _smooth(rng.standard_normal(n_ctl), 3.0) * 0.15
    semitones = _smooth(score["note"], 0.04 * sr / HOP) + vibrato + jitter
    f0 = np.interp(np.arange(frames) / HOP, np.arange(n_ctl), base_hz * 2 ** (semitones / 12))
    phase = np.cumsum(f0 / sr) % 1.0
    amp = np.interp(np.arange(frames) / HOP, np.arange(n_ctl), _smooth(score["amp"], 2.0))
    breath = rng.uniform(0.02, 0.08) * rng.standard_normal(frames) * (phase < 0.5)
    source = (_glottal(phase) + breath) * amp
    scale = (1.0 if base_hz < 180 else rng.uniform(1.1, 1.2)) * rng.uniform(0.95, 1.05)
    formants = _smooth(VOWELS[score["vowel"]] * scale, 0.06 * sr / HOP)
    mono = _formant_filter(source - source.mean(), formants, sr)
    mono = mono / (np.abs(mono).max() + 1e-9) + _fricatives(rng, score["onsets"], frames, sr)
    return peak_normalize(rng, _spread(rng, mono, sr))


def _spread(rng: np.random.Generator, mono: np.ndarray, sr: int) -> np.ndarray:
    """A little stereo: slight pan and different early reflections per channel; `(frames, 2)`."""
    out = mono[:, None] * np.asarray(pan(rng.uniform(-0.15, 0.15)))
    for ch in range(2):
        for _ in range(3):
            delay = int(sr * rng.uniform(0.007, 0.035))
            out[delay:, ch] += rng.uniform(0.05, 0.15) * mono[:-delay]
    return out
