"""Training losses and the validation metric, on waveforms `(batch, channels, samples)`."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from vocalsep.metrics import si_sdr_batch

STFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))  # (n_fft, hop): short to long windows


def l1_loss(*, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The seed's mean absolute error over every sample."""
    return F.l1_loss(estimate, target)


def stft_magnitude_loss(*, estimate: torch.Tensor, target: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1 at one resolution (Yamamoto et al., Parallel WaveGAN)."""
    n_fft = min(n_fft, estimate.shape[-1])  # segments shorter than the window shrink it
    hop = min(hop, max(1, n_fft // 4))
    window = torch.hann_window(n_fft, device=estimate.device)

    def magnitude(x: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(x.reshape(-1, x.shape[-1]).float(), n_fft, hop, window=window, return_complex=True)
        return spec.abs().clamp_min(1e-7)

    est, ref = magnitude(estimate), magnitude(target)
    convergence = torch.linalg.norm(ref - est) / torch.linalg.norm(ref).clamp_min(1e-7)
    return convergence + F.l1_loss(est.log(), ref.log())


def multi_resolution_stft_loss(*, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The mean of `stft_magnitude_loss` over `STFT_RESOLUTIONS`."""
    spectral = sum(stft_magnitude_loss(estimate=estimate, target=target, n_fft=n, hop=h) for n, h in STFT_RESOLUTIONS)
    return spectral / len(STFT_RESOLUTIONS)


def l1_stft_loss(*, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 on the waveform plus the mean multi-resolution STFT magnitude loss."""
    return l1_loss(estimate=estimate, target=target) + multi_resolution_stft_loss(estimate=estimate, target=target)


SI_SDR_EPS = 1e-8  # keeps the SI-SDR loss finite for silent targets or estimates
SNR_CAP = 1e-3  # tau: the loss stops rewarding an example past 30 dB SNR (Wisdom et al. 2020, thresholded SNR)
ENERGY_FLOOR = 1e-7  # per sample, ~40 dB under a -23 LUFS voice: bounds the loss of silent targets


def snr_loss(*, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Negative thresholded SNR in dB, mean over the batch: `10 log10((|s - s'|^2 + tau |s|^2 + f) / (|s|^2 + f))`.

    Unlike SI-SDR it counts level, so the estimate's loudness is learned too
    (SDR scores it); the cap keeps easy examples from dominating, and the floor
    `f` makes a silent target ask for a silent estimate without dividing by 0.
    """
    est = estimate.reshape(estimate.shape[0], -1)
    ref = target.reshape(target.shape[0], -1)
    floor = ENERGY_FLOOR * ref.shape[-1]
    signal = ref.pow(2).sum(-1)
    error = (ref - est).pow(2).sum(-1)
    return (10 * torch.log10(error + SNR_CAP * signal + floor) - 10 * torch.log10(signal + floor)).mean()


def snr_stft_loss(*, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Thresholded SNR plus the mean multi-resolution STFT magnitude loss (what SDR counts and what ears hear)."""
    return snr_loss(estimate=estimate, target=target) + multi_resolution_stft_loss(estimate=estimate, target=target)


def si_sdr_loss(*, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Negative SI-SDR in dB, mean over the batch: scale-invariant, so the output level is left free."""
    return -si_sdr_batch(reference=target, estimate=estimate, eps=SI_SDR_EPS).float().mean()


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l1": l1_loss,
    "l1_stft": l1_stft_loss,
    "snr": snr_loss,
    "snr_stft": snr_stft_loss,
    "si_sdr": si_sdr_loss,
}
