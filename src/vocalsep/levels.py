"""Levels of audio: peak, clipped fraction, RMS per block, the silent fraction, integrated loudness (ITU-R
BS.1770 through pyloudnorm), loudness normalisation under a peak ceiling, and removal of DC offset and
sub-sonic content."""

from __future__ import annotations

import numpy as np

from vocalsep.errors import AudioError

LOUDNESS_BLOCK_SECONDS = 0.4  # BS.1770 gating block: shorter audio has no loudness
ACTIVITY_BLOCK_SECONDS = 0.05  # the block of silence ratios and voice activity (normalize, index, benchmarks)
SUBSONIC_HZ = 20.0  # below the range of hearing: DC offsets and rumble, never voice or music


def peak_db(x: np.ndarray) -> float:
    """Sample peak in dBFS; -inf for silence."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return 20.0 * np.log10(peak) if peak > 0 else float("-inf")


def clipping_ratio(x: np.ndarray, level: float) -> float:
    """Fraction of samples (all channels) with |sample| >= `level`."""
    return float(np.mean(np.abs(x) >= level)) if x.size else 0.0


def block_rms_db(x: np.ndarray, sr: int, block_seconds: float = ACTIVITY_BLOCK_SECONDS) -> np.ndarray:
    """RMS over all channels of consecutive blocks, dBFS, shape (blocks,).

    A trailing partial block counts as a block; silence is -inf.
    """
    block = max(1, int(round(block_seconds * sr)))
    blocks = -(-x.shape[0] // block)
    padded = np.zeros((blocks * block, x.shape[1]), dtype=np.float64)
    padded[: x.shape[0]] = x
    power = np.square(padded).reshape(blocks, -1).sum(axis=1)
    counts = np.full(blocks, block * x.shape[1], dtype=np.float64)
    if blocks and x.shape[0] % block:
        counts[-1] = (x.shape[0] % block) * x.shape[1]
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(power / counts)


def silence_ratio(x: np.ndarray, sr: int, threshold_db: float, block_seconds: float = ACTIVITY_BLOCK_SECONDS) -> float:
    """Fraction of `block_seconds` blocks whose RMS is below `threshold_db`; 1.0 for empty audio."""
    levels = block_rms_db(x, sr, block_seconds)
    return float(np.mean(levels < threshold_db)) if levels.size else 1.0


def integrated_loudness(x: np.ndarray, sr: int) -> float:
    """Integrated loudness (ITU-R BS.1770-4, LUFS) of (frames, channels <= 5).

    NaN when the audio is silent (no block above the -70 LUFS gate) or shorter
    than one 400 ms gating block.
    """
    if x.shape[0] < LOUDNESS_BLOCK_SECONDS * sr:
        return float("nan")
    import pyloudnorm  # scipy.signal: 1.3 s of import, paid only where loudness is measured

    loudness = pyloudnorm.Meter(sr).integrated_loudness(x.astype(np.float64))
    return float(loudness) if np.isfinite(loudness) else float("nan")


def normalize_loudness(x: np.ndarray, sr: int, target_lufs: float, peak_ceiling_db: float,
                       loudness: float | None = None) -> np.ndarray:
    """Gain-scale (frames, channels) to `target_lufs`, unless its peak would pass the ceiling.

    The gain is one constant: when reaching the target would put the sample peak
    above `peak_ceiling_db`, the gain stops at the ceiling instead (the result is
    quieter than the target, never clipped or limited). `loudness` skips measuring
    `x` again when the caller already has `integrated_loudness(x, sr)`.
    """
    loudness = integrated_loudness(x, sr) if loudness is None else loudness
    if not np.isfinite(loudness):
        raise AudioError(f"cannot normalize loudness of silent audio or audio shorter than {LOUDNESS_BLOCK_SECONDS:g} s")
    gain_db = min(target_lufs - loudness, peak_ceiling_db - peak_db(x))
    # float32 rounding may nudge the peak a hair over the ceiling: keep a tiny margin.
    gain = 10.0 ** (gain_db / 20.0) * (1.0 - 1e-6)
    return (x * gain).astype(np.float32)


def remove_subsonic(x: np.ndarray, sr: int, cutoff_hz: float = SUBSONIC_HZ) -> np.ndarray:
    """(frames, channels) float32 without its DC offset and content below `cutoff_hz`; `x` itself when 0.

    A 2nd-order Butterworth high-pass run forward and backward (zero phase, so
    nothing moves in time; 4th-order slope, -6 dB at the cutoff, -0.5 dB at twice
    it). Recordings carry DC offsets that are inaudible but count as signal in
    SDR and SI-SDR, where no separator can recover them from a mixture. Audio
    too short for the filter's edge padding only loses its mean.
    """
    if cutoff_hz <= 0 or not x.size:
        return x
    from scipy.signal import butter, sosfiltfilt  # imported here: scipy.signal costs 1.3 s at import

    sos = butter(2, cutoff_hz, btype="highpass", fs=sr, output="sos")
    out = np.empty(x.shape, dtype=np.float32)
    for channel in range(x.shape[1]):  # one channel at a time: the filter works in float64
        column = x[:, channel].astype(np.float64)
        if column.shape[0] <= 3 * (2 * len(sos) + 1):
            out[:, channel] = column - column.mean()
        else:
            out[:, channel] = sosfiltfilt(sos, column)
    return out
