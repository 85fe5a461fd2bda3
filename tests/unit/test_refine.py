"""What the core wraps around a model. Shifts (`separate.shifts`): an average over delayed passes that leaves
a shift-invariant separator unchanged. The Wiener post-filter (`separate.wiener_power`): it turns a weak leak
down, keeps the voice, is a no-op on a magnitude mask at power 1. With both, chunking through the core still
gives the whole-input result."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from vocalsep.config import ParamsError, SeparateParams, params_from_dict
from vocalsep.metrics import si_sdr
from vocalsep.refine import PostFiltered, Shifted
from vocalsep.separate import separate, separate_with_params
from vocalsep.streaming import streaming_core

RATE = 16000


def tone(freq: float, seconds: float = 2.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    left = amp * np.sin(2 * np.pi * freq * t)
    return np.stack([left, 0.8 * left]).astype(np.float32)


class Leaky(nn.Module):
    """Returns the voice plus `leak` times the music: a separator that lets music through at a fixed level."""

    context = (0, 0)

    def __init__(self, voice: np.ndarray, leak: float):
        super().__init__()
        self.voice, self.leak = torch.from_numpy(voice), leak

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        voice = self.voice[..., :mixture.shape[-1]].expand_as(mixture)
        return voice + self.leak * (mixture - voice)


def level_db(x: np.ndarray, reference: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(x ** 2) / np.sum(reference ** 2)))


@pytest.mark.parametrize("power, gained_db", [(2.0, 10.0), (4.0, 30.0)])
def test_sharpening_turns_a_weak_leak_down_and_keeps_the_voice(power, gained_db):
    voice, music = tone(440.0), tone(3000.0)
    mixture = torch.from_numpy(voice + music)[None]
    leaky = Leaky(voice, leak=0.1)  # music through at -20 dB
    with torch.inference_mode():
        out = PostFiltered(leaky, power)(mixture)[0].numpy()
    music_through = out - voice
    # what leaks: the output's music, measured on the music tone's own band (the residual beyond the voice)
    assert level_db(music_through, music) < -20.0 - gained_db
    assert si_sdr(voice, out) > 30.0


def test_power_one_gives_a_magnitude_mask_on_the_same_stft_back():
    mixture = torch.from_numpy(tone(440.0) + tone(3000.0, amp=0.2))[None]

    class Masker(nn.Module):
        context = (0, 0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            window = torch.hann_window(2048)
            spec = torch.stft(x.reshape(2, -1), 2048, 512, window=window, return_complex=True)
            mask = torch.linspace(0.05, 0.95, spec.shape[1])[:, None]  # a smooth mask over frequency
            return torch.istft(spec * mask, 2048, 512, window=window, length=x.shape[-1]).reshape(x.shape)

    with torch.inference_mode():
        plain = Masker()(mixture)
        filtered = PostFiltered(Masker(), 1.0)(mixture)
    assert torch.allclose(filtered[..., 2048:-2048], plain[..., 2048:-2048], atol=1e-3)
    with torch.inference_mode():
        sharpened = PostFiltered(Masker(), 3.0)(mixture)
    assert (sharpened - plain).abs().max() > 0.05  # a real change once the power is above 1


def test_chunked_separation_with_the_filter_equals_one_pass():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 2, 9, padding=4)).eval()
    model.context = (4, 4)  # type: ignore[assignment]
    mixture = np.random.default_rng(1).standard_normal((2, 3 * RATE)).astype(np.float32) * 0.1
    filtered = PostFiltered(model, 2.0)
    with torch.inference_mode():
        whole = filtered(torch.from_numpy(mixture)[None])[0].numpy()
    chunked = separate(filtered, mixture, chunk_samples=RATE // 2, overlap_samples=RATE // 16, batch_size=3)
    np.testing.assert_allclose(chunked, whole, atol=1e-5)
    params = SeparateParams(chunk_seconds=0.5, overlap_seconds=0.0625, batch_size=3, device="cpu", wiener_power=2.0)
    np.testing.assert_allclose(separate_with_params(model, mixture, RATE, params), whole, atol=1e-5)
    assert filtered.context == (4 + 2048, 4 + 2048) and filtered.stride == 512


@pytest.mark.parametrize("value", [0.5, -1.0, 9.0])
def test_a_wiener_power_between_off_and_one_or_out_of_range_is_refused_by_name(value):
    with pytest.raises(ParamsError, match="separate.wiener_power"):
        params_from_dict({"separate": {"wiener_power": value}})


class Framed(nn.Module):
    """Zeroes every other block of `stride` samples: a separator whose output depends on where its frames fall."""

    context = (0, 0)
    stride = 64

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        keep = (torch.arange(mixture.shape[-1]) // self.stride) % 2 == 0
        return mixture * keep


def test_shifts_average_passes_at_offsets_within_the_stride():
    mixture = torch.ones(1, 2, 1024)
    with torch.inference_mode():
        once = Framed()(mixture)
        averaged = Shifted(Framed(), 1)(mixture)
        three = Shifted(Framed(), 3)(mixture)
    assert Shifted(Framed(), 3).offsets == [0, 16, 32, 48]
    assert set(once[0, 0].unique().tolist()) == {0.0, 1.0}
    # two passes half a stride apart: every sample is kept by exactly one of them, except where both agree
    assert torch.allclose(averaged[..., 64:-64].mean(), torch.tensor(0.5), atol=0.02)
    assert set(averaged[0, 0, 64:-64].unique().tolist()) == {0.0, 0.5, 1.0}
    assert len(three[0, 0, 64:-64].unique()) > 3  # four phases give more levels


def test_shifts_leave_a_shift_invariant_separator_unchanged_and_chunk_exactly():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 2, 9, padding=4)).eval()
    model.context = (4, 4)  # type: ignore[assignment]
    mixture = np.random.default_rng(2).standard_normal((2, 2 * RATE)).astype(np.float32) * 0.1
    with torch.inference_mode():
        plain = model(torch.from_numpy(mixture)[None])[0].numpy()
        shifted = Shifted(model, 2)(torch.from_numpy(mixture)[None])[0].numpy()
    np.testing.assert_allclose(shifted[:, 8:], plain[:, 8:], atol=1e-5)  # the first samples saw the pad
    params = SeparateParams(chunk_seconds=0.5, overlap_seconds=0.0625, batch_size=2, device="cpu", shifts=2,
                            wiener_power=2.0)
    with torch.inference_mode():
        whole = PostFiltered(Shifted(model, 2), 2.0)(torch.from_numpy(mixture)[None])[0].numpy()
    np.testing.assert_allclose(separate_with_params(model, mixture, RATE, params), whole, atol=1e-5)


def test_block_by_block_separation_wraps_the_model_as_the_whole_file_pass_does():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 2, 9, padding=4)).eval()
    model.context = (4, 4)  # type: ignore[assignment]
    mixture = np.random.default_rng(3).standard_normal((2, 2 * RATE)).astype(np.float32) * 0.1
    params = SeparateParams(chunk_seconds=0.5, overlap_seconds=0.0625, batch_size=2, device="cpu", shifts=1,
                            wiener_power=3.0)
    core = streaming_core(model, RATE, params)
    pieces = [core.push(mixture[:, i:i + 3000]) for i in range(0, mixture.shape[1], 3000)] + [core.finish()]
    streamed = np.concatenate(pieces, axis=1)
    whole = separate_with_params(model, mixture, RATE, params)
    np.testing.assert_allclose(streamed, whole, atol=1e-5)
    plain = separate_with_params(model, mixture, RATE, SeparateParams(chunk_seconds=0.5, device="cpu"))
    assert np.abs(whole - plain).max() > 1e-3  # the wrappers ran
