"""Losses and the validation SI-SDR behave as their definitions say."""

from __future__ import annotations

import torch

from vocalsep.training.losses import l1_loss, l1_stft_loss, si_sdr


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
    assert float(l1_stft_loss(target, target)) < 1e-4
    near, far = target + 0.01 * torch.randn_like(target), target + 0.5 * torch.randn_like(target)
    assert float(l1_stft_loss(target, target)) < float(l1_stft_loss(near, target)) < float(l1_stft_loss(far, target))
    assert float(l1_stft_loss(near, target)) > float(l1_loss(near, target))  # the spectral term adds on
    estimate = near.clone().requires_grad_()
    l1_stft_loss(estimate, target).backward()
    assert torch.isfinite(estimate.grad).all()
