"""Separation quality: SI-SDR and BSSEval v4 SDR (museval-compatible).

Arrays follow the house layout: a signal is `(channels, samples)`, a set of
sources is `(sources, channels, samples)`. Everything is computed in float64.
"""

from __future__ import annotations

import numpy as np
import torch


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR in dB (Le Roux et al., "SDR - half-baked or well done?", 2019) of one signal.

    reference, estimate: `(channels, samples)` or `(samples,)`, same shape; all
    channels are treated as one signal. `si_sdr_batch` of a batch of one.
    """
    s, e = _pair(reference, estimate)
    return float(si_sdr_batch(reference=torch.from_numpy(s)[None], estimate=torch.from_numpy(e)[None])[0])


def si_sdr_batch(*, reference: torch.Tensor, estimate: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """SI-SDR in dB per example, channels flattened: `(batch, ...)` twice -> `(batch,)` float64.

    The one definition of SI-SDR here: evaluation, validation during training
    and the SI-SDR loss all call it. With `alpha = <estimate, reference> /
    ||reference||^2` and `target = alpha * reference`, SI-SDR = 10 log10(
    ||target||^2 / ||target - estimate||^2)`; no mean removal, as in the
    paper's definition. With `eps = 0` (scoring) a silent reference or a silent
    estimate is NaN (0/0, undefined) and an exact estimate +inf; training passes
    a small `eps`, which keeps every value finite and differentiable.
    """
    ref = reference.reshape(reference.shape[0], -1).double()
    est = estimate.reshape(estimate.shape[0], -1).double()
    alpha = (est * ref).sum(-1, keepdim=True) / ((ref * ref).sum(-1, keepdim=True) + eps)
    target = alpha * ref
    error = est - target
    return 10 * torch.log10(((target * target).sum(-1) + eps) / ((error * error).sum(-1) + eps))


def sdr_bsseval_v4(
    references: np.ndarray,
    estimates: np.ndarray,
    sample_rate: int,
    window_seconds: float = 1.0,
) -> np.ndarray:
    """Per-source BSSEval v4 SDR in dB, as `museval.evaluate` and its median aggregation.

    references, estimates: `(sources, channels, samples)`, e.g. sources
    (vocals, accompaniment). Returns `(sources,)`: the median over windows
    (window = hop = `window_seconds`) of the framewise SDR, ignoring NaN windows.

    museval's v4 (images version, time-invariant 512-tap distortion filters,
    no permutation) splits `estimate - reference` into spatial, interference
    and artifact errors whose sum is again `estimate - reference`, so its SDR
    per window reduces to `10 log10(||s||^2 / ||s - s_hat||^2)`; the filters
    only matter for ISR/SIR/SAR. Computing that directly skips the costly
    filter solve and gives the same numbers. Windows follow museval's framing
    (a trailing partial window is dropped) and a window where any reference or
    estimate is silent (channel sum zero throughout) is NaN, as in museval.
    """
    refs = np.asarray(references, dtype=np.float64)
    ests = np.asarray(estimates, dtype=np.float64)
    if refs.shape != ests.shape or refs.ndim != 3:
        raise ValueError(
            f"references {refs.shape} and estimates {ests.shape} must both be (sources, channels, samples)"
        )
    window = int(round(window_seconds * sample_rate))
    framewise = np.stack([_window_sdr(refs, ests, win) for win in museval_windows(refs.shape[-1], window)], axis=-1)
    return np.array([np.nanmedian(row) if not np.isnan(row).all() else np.nan for row in framewise])


def ideal_ratio_mask(vocals: np.ndarray, accompaniment: np.ndarray, n_fft: int = 4096, hop: int = 1024,
                     power: float = 2.0) -> np.ndarray:
    """The ideal-ratio-mask oracle's vocals `(channels, samples)`, as the field's IRM baseline.

    It knows the true stems: mask = |V|^p / (|V|^p + |A|^p) per time-frequency
    bin (p = 2: the power-ratio "IRM2" of SiSEC/museval's oracles), applied to
    the mixture's STFT and inverted. A separator whose output beats it does
    better than any mask on this STFT could.
    """
    from scipy.signal import istft, stft

    samples = vocals.shape[-1]
    if samples < n_fft:  # shorter than one window: zero-pad, or scipy would shrink the window
        pad = [(0, 0)] * (vocals.ndim - 1) + [(0, n_fft - samples)]
        vocals, accompaniment = np.pad(vocals, pad), np.pad(accompaniment, pad)
    mixture = vocals + accompaniment
    kwargs = {"nperseg": n_fft, "noverlap": n_fft - hop, "boundary": "zeros", "padded": True}
    _, _, v = stft(vocals, **kwargs)
    _, _, a = stft(accompaniment, **kwargs)
    _, _, m = stft(mixture, **kwargs)
    vp, ap = np.abs(v) ** power, np.abs(a) ** power
    mask = np.divide(vp, vp + ap, out=np.zeros_like(vp), where=(vp + ap) > 0)
    _, estimate = istft(mask * m, nperseg=n_fft, noverlap=n_fft - hop, boundary=True)
    return estimate[..., :samples].astype(np.float32)


LEAK_FLOOR_DB = -120.0  # an all-zero output on music alone: below any audible leak, and finite for JSON and MLflow
PASS_THROUGH_CEILING_DB = 100.0  # an exact copy of the voice (+inf): far above any audible loss, finite for JSON


def pass_through(voice: np.ndarray, estimate: np.ndarray) -> float:
    """Behavioural "minimum function" test: SI-SDR in dB of the output when a voice alone goes in.

    A separator should return a clean voice unchanged: higher is better; an
    identity model scores `PASS_THROUGH_CEILING_DB` (anything above it is
    capped there), NaN for a silent voice or a silent output.
    voice, estimate: `(channels, samples)`.
    """
    return min(si_sdr(voice, estimate), PASS_THROUGH_CEILING_DB)


def leak(music: np.ndarray, estimate: np.ndarray) -> float:
    """Behavioural test: level in dB of the vocals output relative to its input when music alone goes in.

    Energy ratio `10 log10(||estimate||^2 / ||music||^2)`: lower is better, an
    identity model scores 0 dB; an all-zero output scores `LEAK_FLOOR_DB`, and
    so does anything below it. NaN when the music itself is silent.
    """
    music_energy = float(np.sum(np.asarray(music, dtype=np.float64) ** 2))
    out_energy = float(np.sum(np.asarray(estimate, dtype=np.float64) ** 2))
    if music_energy == 0:
        return float("nan")
    if out_energy == 0:
        return LEAK_FLOOR_DB
    return max(LEAK_FLOOR_DB, float(10 * np.log10(out_energy / music_energy)))


def level_spread(values: list[float]) -> float:
    """Invariance test: max - min of one metric (SI-SDRi) over input gains; 0 is perfectly level-invariant.

    NaN when fewer than two of the values are finite.
    """
    finite = [v for v in values if np.isfinite(v)]
    return float(max(finite) - min(finite)) if len(finite) >= 2 else float("nan")


def museval_windows(samples: int, window: int) -> list[slice]:
    """museval's `Framing` with hop = window: `floor(samples / window)` full windows, or one if shorter."""
    if window >= samples:
        return [slice(0, samples)]
    return [slice(t * window, (t + 1) * window) for t in range(samples // window)]


def _window_sdr(refs: np.ndarray, ests: np.ndarray, win: slice) -> np.ndarray:
    """SDR of every source in one window: `(sources,)`, NaN where museval marks the window silent."""
    ref, est = refs[..., win], ests[..., win]
    if _any_silent(ref) or _any_silent(est):
        return np.full(refs.shape[0], np.nan)
    return np.array([_db(np.sum(r**2), np.sum((e - r) ** 2)) for r, e in zip(ref, est)])


def _any_silent(sources: np.ndarray) -> bool:
    """museval's test: a source whose channel sum is zero at every sample. sources: (sources, channels, samples)."""
    return bool(np.any(np.all(sources.sum(axis=1) == 0, axis=-1)))


def _pair(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(reference, dtype=np.float64)
    e = np.asarray(estimate, dtype=np.float64)
    if s.shape != e.shape:
        raise ValueError(f"reference {s.shape} and estimate {e.shape} must have the same shape")
    return s.ravel(), e.ravel()


def _db(signal_energy: float, error_energy: float) -> float:
    if error_energy == 0:
        return float("inf")
    return float(10 * np.log10(signal_energy / error_energy))
