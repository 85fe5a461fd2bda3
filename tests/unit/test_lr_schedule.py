"""The learning-rate factor: linear warm-up, then cosine decay to 0 or a constant rate."""

from __future__ import annotations

import pytest
import torch

from vocalsep.training.loop import lr_factor, make_scheduler


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_warm_up_rises_linearly_to_one_at_warmup_steps(schedule):
    factors = [lr_factor(step, schedule, total_steps=1000, warmup_steps=10) for step in range(11)]
    assert 0 < factors[0] <= 0.1  # the first step already moves the weights, by little
    steps = [b - a for a, b in zip(factors, factors[1:10])]
    assert steps == pytest.approx([0.1] * 9)
    assert factors[10] == pytest.approx(1.0) and max(factors) == pytest.approx(1.0)


def test_cosine_falls_from_one_to_zero_at_total_steps():
    factors = [lr_factor(step, "cosine", total_steps=110, warmup_steps=10) for step in range(10, 111)]
    assert factors[0] == pytest.approx(1.0)
    assert all(b < a for a, b in zip(factors, factors[1:]))
    assert factors[50] == pytest.approx(0.5)  # halfway between warm-up and the end
    assert factors[-1] == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(500, "cosine", total_steps=110, warmup_steps=10) == pytest.approx(0.0, abs=1e-12)


def test_cosine_without_warm_up_starts_at_the_full_rate():
    assert lr_factor(0, "cosine", total_steps=100) == pytest.approx(1.0)
    assert lr_factor(100, "cosine", total_steps=100) == pytest.approx(0.0, abs=1e-12)


def test_constant_schedule_stays_at_one_after_warm_up():
    assert [lr_factor(s, "constant", total_steps=50, warmup_steps=5) for s in (5, 6, 49, 50, 500)] == [1.0] * 5


def test_scheduler_applies_the_factor_to_the_optimizer_rate():
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=0.2)
    scheduler = make_scheduler(optimizer, "cosine", total_steps=20, warmup_steps=4)
    rates = []
    for _ in range(21):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[:5] == pytest.approx([0.05, 0.1, 0.15, 0.2, 0.2])
    assert rates[20] == pytest.approx(0.0, abs=1e-12)
