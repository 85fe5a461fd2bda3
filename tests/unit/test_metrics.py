"""SDR against museval's own BSSEval v4, SI-SDR against values worked out by hand."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from vocalsep.metrics import museval_windows, sdr_bsseval_v4, si_sdr

RATE = 8000


@pytest.fixture(scope="module")
def museval_metrics():
    """museval/metrics.py loaded on its own: `import museval` needs ffprobe on PATH, which is absent."""
    spec = importlib.util.find_spec("museval")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "metrics.py"
    module_spec = importlib.util.spec_from_file_location("museval_metrics_only", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def sources(seed: int, seconds: float, leak: float, noise: float):
    """(references, estimates), each (2 sources, 2 channels, samples): vocals-like tone and noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    tremolo = 1 + 0.5 * np.sin(2 * np.pi * 3 * t)
    vocals = np.stack([np.sin(2 * np.pi * 440 * t) * tremolo, np.sin(2 * np.pi * 660 * t)])
    accompaniment = 0.5 * rng.standard_normal((2, n))
    estimate = vocals + leak * accompaniment + noise * rng.standard_normal((2, n))
    return np.stack([vocals, accompaniment]), np.stack([estimate, vocals + accompaniment - estimate])


@pytest.mark.slow  # museval solves a 2048 x 2048 system per call
@pytest.mark.parametrize("seed,seconds,leak,noise", [(0, 3.0, 0.3, 0.05), (1, 2.5, 0.05, 0.3), (2, 4.2, 0.8, 0.01)])
def test_sdr_matches_museval(museval_metrics, seed, seconds, leak, noise):
    refs, ests = sources(seed, seconds, leak, noise)
    # The first window silent in the vocals: museval marks it NaN and the median skips it.
    refs[0, :, :RATE] = 0
    ests[1] = refs.sum(axis=0) - ests[0]
    sdr, *_ = museval_metrics.bss_eval(
        refs.transpose(0, 2, 1), ests.transpose(0, 2, 1), window=RATE, hop=RATE,
        compute_permutation=False, filters_len=512, framewise_filters=False, bsseval_sources_version=False,
    )
    assert np.isnan(sdr[:, 0]).all()
    expected = np.nanmedian(sdr, axis=1)
    np.testing.assert_allclose(sdr_bsseval_v4(refs, ests, RATE, window_seconds=1.0), expected, atol=0.01)


def test_sdr_of_a_better_estimate_is_higher():
    refs, good = sources(3, 2.0, 0.05, 0.01)
    _, bad = sources(3, 2.0, 0.5, 0.1)
    assert sdr_bsseval_v4(refs, good, RATE)[0] > sdr_bsseval_v4(refs, bad, RATE)[0] + 10


def test_museval_windows_drop_the_trailing_partial_window():
    assert museval_windows(25, 10) == [slice(0, 10), slice(10, 20)]
    assert museval_windows(7, 10) == [slice(0, 7)]


@pytest.mark.parametrize("gain, orthogonal, expected", [
    (1.0, 0.1, 20.0),  # ||(3, 4)||^2 = 25 against ||0.1 (4, -3)||^2 = 0.25: 10 log10(100)
    (2.0, 0.1, 26.0206),  # the target scales with the estimate: 10 log10(100 / 0.25)
    (1.0, 1.0, 0.0),  # error as loud as the target
    (0.5, 5.0, -20.0),  # 10 log10(6.25 / 625)
])
def test_si_sdr_of_hand_worked_cases(gain, orthogonal, expected):
    """reference (3, 4); estimate gain * (3, 4) + orthogonal * (4, -3): the optimal scale of the
    reference is exactly `gain`, so target and error are known without any projection."""
    reference = np.array([[3.0, 4.0]])
    estimate = gain * reference + orthogonal * np.array([[4.0, -3.0]])
    assert si_sdr(reference, estimate) == pytest.approx(expected, abs=1e-4)


def test_si_sdr_is_undefined_for_silence_and_infinite_for_an_exact_estimate():
    reference = np.array([0.5, -0.25, 1.0])
    assert np.isnan(si_sdr(np.zeros(3), reference))  # silent reference: 0/0
    assert np.isnan(si_sdr(reference, np.zeros(3)))  # silent estimate: scale 0, target and error vanish
    assert si_sdr(reference, reference) == np.inf


@pytest.mark.parametrize("gain", [0.01, 0.5, 3.0, -2.0])
def test_si_sdr_is_scale_invariant(gain):
    refs, ests = sources(5, 1.0, 0.3, 0.1)
    assert si_sdr(refs[0], gain * ests[0]) == pytest.approx(si_sdr(refs[0], ests[0]), abs=1e-6)


def test_si_sdr_of_a_perfect_estimate_is_very_high():
    refs, _ = sources(6, 1.0, 0.0, 0.0)
    assert si_sdr(refs[0], refs[0]) > 100
    assert si_sdr(refs[0], 0.7 * refs[0].astype(np.float32)) > 100
    assert si_sdr(refs[0], refs[1]) < -10


def test_training_eps_keeps_si_sdr_finite_and_moves_it_little():
    """Validation during training (batched, eps-stabilised) reports the metric evaluate reports."""
    import torch

    from vocalsep.metrics import si_sdr_batch
    from vocalsep.training.losses import SI_SDR_EPS

    rng = np.random.default_rng(7)
    references = rng.standard_normal((3, 2, 4000))
    estimates = references * np.array([0.5, 1.0, 2.0])[:, None, None] + 0.3 * rng.standard_normal((3, 2, 4000))
    batched = si_sdr_batch(reference=torch.from_numpy(references), estimate=torch.from_numpy(estimates), eps=SI_SDR_EPS).numpy()
    exact = [si_sdr(r, e) for r, e in zip(references, estimates)]
    np.testing.assert_allclose(batched, exact, atol=1e-3)
    silent = torch.zeros(1, 2, 100)
    assert torch.isfinite(si_sdr_batch(reference=silent, estimate=silent, eps=SI_SDR_EPS)).all()


def test_ideal_ratio_mask_recovers_stems_in_separate_bands_and_beats_the_mixture():
    from vocalsep.metrics import ideal_ratio_mask

    rate = 16000
    t = np.arange(2 * rate) / rate
    vocals = np.stack([0.3 * np.sin(2 * np.pi * 440 * t)] * 2)
    apart = np.stack([0.3 * np.sin(2 * np.pi * 5000 * t)] * 2)
    assert si_sdr(vocals, ideal_ratio_mask(vocals, apart)) > 30  # disjoint bins: the mask is 0 or 1
    noise = 0.3 * np.random.default_rng(0).standard_normal(vocals.shape)
    oracle = ideal_ratio_mask(vocals, noise)
    assert oracle.shape == vocals.shape
    assert si_sdr(vocals, oracle) > si_sdr(vocals, vocals + noise) + 10
    assert not ideal_ratio_mask(np.zeros_like(vocals), noise).any()  # no vocals: the mask is all zeros
    short = ideal_ratio_mask(vocals[:, :1000], apart[:, :1000])  # shorter than one 4096-point window
    assert short.shape == (2, 1000) and si_sdr(vocals[:, :1000], short) > 20


# Behavioural metrics: reference (3, 4) with energy 25, and (4, -3) orthogonal to it.
VOICE = np.array([[3.0, 4.0]])
ORTHOGONAL = np.array([[4.0, -3.0]])


def test_pass_through_is_si_sdr_of_the_output_against_the_voice_alone():
    from vocalsep.metrics import PASS_THROUGH_CEILING_DB, pass_through

    assert pass_through(VOICE, VOICE + 0.1 * ORTHOGONAL) == pytest.approx(20.0, abs=1e-4)  # 25 / 0.25
    assert pass_through(VOICE, 0.5 * VOICE + 0.05 * ORTHOGONAL) == pytest.approx(20.0, abs=1e-4)  # a quieter voice
    assert pass_through(VOICE, VOICE + ORTHOGONAL) == pytest.approx(0.0, abs=1e-4)  # error as loud as the voice
    assert pass_through(VOICE, VOICE) == PASS_THROUGH_CEILING_DB  # identity: +inf SI-SDR, capped for JSON and MLflow
    assert np.isnan(pass_through(VOICE, np.zeros_like(VOICE)))  # a silent output: 0/0


@pytest.mark.parametrize("scale, expected", [
    (1.0, 0.0),  # identity: the music comes out as loud as it went in
    (0.1, -20.0),  # 0.25 / 25: 10 log10(0.01)
    (2.0, 6.0206),  # louder than the input: 10 log10(4)
    (0.0, -120.0),  # silence: the floor, finite for JSON and MLflow
    (1e-7, -120.0),  # -140 dB is below the floor: clamped to it
])
def test_leak_is_the_output_level_relative_to_the_music(scale, expected):
    from vocalsep.metrics import leak

    assert leak(VOICE, scale * VOICE) == pytest.approx(expected, abs=1e-4)
    assert leak(VOICE, scale * ORTHOGONAL) == pytest.approx(expected, abs=1e-4)  # energy only, not likeness


def test_leak_of_silent_music_is_undefined():
    from vocalsep.metrics import leak

    assert np.isnan(leak(np.zeros((2, 4)), np.ones((2, 4))))


@pytest.mark.parametrize("values, expected", [
    ([1.0, 3.5, 2.0], 2.5),
    ([4.0, 4.0, 4.0], 0.0),  # level-invariant
    ([1.0, np.nan, np.inf, 4.0], 3.0),  # only finite values count
    ([5.0, np.nan], np.nan),  # fewer than two finite values: no spread
    ([], np.nan),
])
def test_level_spread_is_max_minus_min_of_the_finite_values(values, expected):
    from vocalsep.metrics import level_spread

    assert level_spread(values) == pytest.approx(expected, nan_ok=True)


def test_si_sdr_batch_takes_its_arguments_by_name_only():
    """SI-SDR is not symmetric, and the losses take (estimate, target): names keep the order right."""
    import torch

    from vocalsep.metrics import si_sdr_batch
    from vocalsep.training.losses import SI_SDR_EPS

    x = torch.ones(1, 2, 8)
    with pytest.raises(TypeError):
        si_sdr_batch(x, x)  # type: ignore[misc]  # positional: the point of the test
    assert torch.isfinite(si_sdr_batch(reference=x, estimate=x, eps=SI_SDR_EPS)).all()
