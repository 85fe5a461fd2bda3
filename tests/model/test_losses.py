"""Losses and the validation SI-SDR behave as their definitions say."""

from __future__ import annotations

import math
import typing

import pytest
import torch

from vocalsep.config import TrainParams
from vocalsep.metrics import si_sdr_batch
from vocalsep.training.losses import LOSSES, SI_SDR_EPS, l1_loss, l1_stft_loss, si_sdr_loss, snr_loss, snr_stft_loss


def si_sdr(estimate, target):
    return si_sdr_batch(reference=target, estimate=estimate, eps=SI_SDR_EPS).float()


def test_si_sdr_is_scale_invariant_and_ranks_estimates():
    torch.manual_seed(0)
    target = torch.randn(3, 2, 4000)
    noise = torch.randn(3, 2, 4000)
    clean = si_sdr(0.3 * target, target)
    assert clean.shape == (3,) and (clean > 60).all()
    slightly, badly = si_sdr(target + 0.1 * noise, target), si_sdr(target + noise, target)
    assert torch.allclose(slightly, torch.full((3,), 20.0), atol=0.5)  # 10 log10(1 / 0.01)
    assert torch.allclose(badly, torch.zeros(3), atol=0.5)
    assert torch.isfinite(si_sdr(torch.zeros(1, 2, 100), torch.zeros(1, 2, 100))).all()


def test_l1_stft_is_zero_only_for_a_match_and_grows_with_error():
    torch.manual_seed(1)
    target = torch.randn(2, 2, 3000)
    assert float(l1_stft_loss(estimate=target, target=target)) < 1e-4
    near, far = target + 0.01 * torch.randn_like(target), target + 0.5 * torch.randn_like(target)
    assert (float(l1_stft_loss(estimate=target, target=target)) < float(l1_stft_loss(estimate=near, target=target))
            < float(l1_stft_loss(estimate=far, target=target)))
    assert float(l1_stft_loss(estimate=near, target=target)) > float(l1_loss(estimate=near, target=target))  # the spectral term adds on
    estimate = near.clone().requires_grad_()
    l1_stft_loss(estimate=estimate, target=target).backward()
    assert torch.isfinite(estimate.grad).all()


def with_error(target: torch.Tensor, ratio: float, seed: int) -> torch.Tensor:
    """`target` plus noise whose energy is exactly `ratio` times the target's, per example."""
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    t = target.double()
    scale = (ratio * t.pow(2).sum((1, 2), keepdim=True) / noise.pow(2).sum((1, 2), keepdim=True)).sqrt()
    return (t + scale * noise).float()


@pytest.fixture
def voice() -> torch.Tensor:
    # unit-variance audio: its energy (~1 per sample) dwarfs the 1e-7 per-sample floor, so the floor drops out
    return torch.randn(3, 2, 8000, generator=torch.Generator().manual_seed(2))


def test_snr_loss_ranks_estimates_in_db(voice):
    # (error + tau signal) / signal with tau = 1e-3: 1 % error energy -> 10 log10(0.011), 10 % -> 10 log10(0.101)
    near, far = snr_loss(estimate=with_error(voice, 0.01, 1), target=voice), snr_loss(estimate=with_error(voice, 0.1, 1), target=voice)
    assert float(near) == pytest.approx(-19.586, abs=0.01)
    assert float(far) == pytest.approx(-9.957, abs=0.01)
    assert float(snr_loss(estimate=voice, target=voice)) < float(near) < float(far)


def test_snr_loss_caps_a_perfect_estimate_at_30_db(voice):
    assert float(snr_loss(estimate=voice, target=voice)) == pytest.approx(-30.0, abs=0.01)  # 10 log10(1e-3)
    estimate = voice.clone().requires_grad_()
    snr_loss(estimate=estimate, target=voice).backward()
    assert torch.isfinite(estimate.grad).all()


def test_snr_loss_counts_level_and_si_sdr_does_not(voice):
    # half the level leaves an error of a quarter of the energy: 10 log10(0.25 + 0.001) = -6.003 dB
    assert float(snr_loss(estimate=0.5 * voice, target=voice)) == pytest.approx(-6.003, abs=0.01)
    assert float(snr_loss(estimate=0.5 * voice, target=voice)) > float(snr_loss(estimate=voice, target=voice))
    noisy = with_error(voice, 0.01, 3)
    assert float(si_sdr_loss(estimate=0.5 * noisy, target=voice)) == pytest.approx(float(si_sdr_loss(estimate=noisy, target=voice)), abs=1e-3)
    assert float(snr_loss(estimate=0.5 * noisy, target=voice)) > float(snr_loss(estimate=noisy, target=voice)) + 10


def test_snr_loss_is_the_mean_of_each_examples_loss(voice):
    """A quiet example weighs as much as a loud one: not one SNR of the pooled batch."""
    target = torch.cat([voice[:1], 0.1 * voice[1:2]])
    estimate = torch.cat([voice[:1], 0.5 * target[1:2]])
    assert float(snr_loss(estimate=estimate, target=target)) == pytest.approx((-30.0 - 6.003) / 2, abs=0.01)


def test_a_silent_target_asks_for_silence():
    silence = torch.zeros(2, 2, 4000)
    quiet = snr_loss(estimate=silence, target=silence)
    assert torch.isfinite(quiet) and float(quiet) == 0.0  # (0 + 0 + floor) / (0 + floor): nothing can score lower
    assert float(snr_loss(estimate=torch.full_like(silence, 1e-5), target=silence)) >= float(quiet)
    # an estimate at 0.1 RMS over a silent target: 10 log10(1 + 0.01 / 1e-7) = 50 dB
    loud = torch.full_like(silence, 0.1)
    assert float(snr_loss(estimate=loud, target=silence)) == pytest.approx(50.0, abs=0.01)
    estimate = silence.clone().requires_grad_()
    snr_loss(estimate=estimate, target=silence).backward()
    assert torch.isfinite(estimate.grad).all()


def test_snr_stft_adds_a_spectral_term_that_vanishes_on_a_match(voice):
    assert float(snr_stft_loss(estimate=voice, target=voice)) == pytest.approx(float(snr_loss(estimate=voice, target=voice)), abs=1e-3)
    noisy = with_error(voice, 0.01, 4)
    assert float(snr_stft_loss(estimate=noisy, target=voice)) > float(snr_loss(estimate=noisy, target=voice)) + 0.01


def test_every_configurable_loss_exists():
    choices = typing.get_args(typing.get_type_hints(TrainParams)["loss"])
    assert set(LOSSES) == set(choices)
    target = torch.randn(2, 2, 3000)
    for name, loss in LOSSES.items():
        assert math.isfinite(float(loss(estimate=with_error(target, 0.1, 5), target=target))), name


def test_every_loss_takes_estimate_and_target_by_name_only():
    voice = torch.randn(1, 2, 4096)
    for name, loss in LOSSES.items():
        with pytest.raises(TypeError):
            loss(voice, voice)  # positional: which one is the reference would be a guess
        assert torch.isfinite(loss(estimate=0.5 * voice, target=voice)), name
