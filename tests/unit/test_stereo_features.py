"""StereoFeatures (model.stereo_features): mid and side magnitudes, frame-local, grown from a base model as its exact start."""

from __future__ import annotations

import math

import pytest
import torch

from vocalsep.base_model.weights import init_from_pretrained
from vocalsep.model import HybridVocNet
from vocalsep.model.hybrid import StereoFeatures, padded_stft

from tests.unit.test_subband import SMALL, chunking_error, shipped_base


def trained(features: StereoFeatures, seed: int = 0) -> StereoFeatures:
    """The projection moved off zero, as training would."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        features.project.weight.copy_(0.3 * torch.randn(features.project.weight.shape, generator=gen))
    return features


def spectrum(x: torch.Tensor, n_fft: int = 1022, hop: int = 128) -> torch.Tensor:
    _, spec = padded_stft(x, n_fft, hop, torch.hann_window(n_fft))
    return spec.reshape(x.shape[0], 2, n_fft // 2 + 1, -1)


def test_they_tell_a_centred_sound_from_an_anti_phase_one_with_the_same_channel_magnitudes():
    """L = R and L = -R have the same magnitude in each channel, all the spectral encoder sees; a centred sound is
    all mid and no side, an anti-phase one the other way round."""
    mono = torch.randn(1, 1, 8000, generator=torch.Generator().manual_seed(0))
    centred, anti = spectrum(torch.cat([mono, mono], 1)), spectrum(torch.cat([mono, -mono], 1))
    assert torch.allclose(centred.abs(), anti.abs())
    features = StereoFeatures(bins=512, filters=2)
    with torch.no_grad():  # output 0 reads the mid of bin 100, output 1 its side
        features.project.weight.zero_()
        features.project.weight[0, 100, 0] = 1.0
        features.project.weight[1, 512 + 100, 0] = 1.0
    with torch.inference_mode():
        a, b = features(centred)[0], features(anti)[0]
    floor = torch.full_like(a[0], math.log(1e-4))
    assert torch.allclose(a[1], floor) and (a[0] > floor + 5).all()
    assert torch.allclose(b[0], floor) and (b[1] > floor + 5).all()


def test_a_new_projection_adds_nothing():
    torch.manual_seed(0)
    model = HybridVocNet(**SMALL, stereo_features=True).eval()
    bare = HybridVocNet(**SMALL).eval()
    bare.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("stereo_input.")})
    x = torch.randn(2, 2, 6000)
    with torch.inference_mode():
        assert torch.equal(model(x), bare(x))


def test_they_add_no_context_so_chunked_separation_still_equals_one_pass():
    torch.manual_seed(0)
    bare, model = HybridVocNet(**SMALL).eval(), HybridVocNet(**SMALL, stereo_features=True).eval()
    assert model.context == bare.context and model.stride == bare.stride
    trained(model.stereo_input)
    assert chunking_error(model) < 1e-5
    assert model.macs_per_second(44100) > bare.macs_per_second(44100)


def test_silence_in_still_gives_exact_silence_out():
    torch.manual_seed(0)
    model = HybridVocNet(**SMALL, stereo_features=True).eval()
    trained(model.stereo_input)
    with torch.inference_mode():
        assert torch.equal(model(torch.zeros(1, 2, 5000)), torch.zeros(1, 2, 5000))


def test_a_model_grown_with_them_first_separates_exactly_as_the_base(tmp_path):
    ckpt = shipped_base(tmp_path)
    base = HybridVocNet(**SMALL).eval()
    base.load_state_dict(ckpt["state"])
    grown = HybridVocNet(**SMALL, stereo_features=True)
    init_from_pretrained(grown, "HybridVocNet", {**SMALL, "stereo_features": True}, tmp_path)
    x = torch.randn(1, 2, 9000)
    with torch.inference_mode():
        assert torch.equal(grown.eval()(x), base(x))
        trained(grown.stereo_input)
        assert (grown(x) - base(x)).abs().max() > 1e-4  # the features are in the path: training can move them


def test_they_need_two_channels():
    with pytest.raises(ValueError, match="stereo_features needs 2 channels"):
        HybridVocNet(**SMALL, stereo_features=True, channels=1)


def test_a_model_with_them_traces_to_torchscript_for_any_length_and_batch(tmp_path):
    from vocalsep.stages.export import export_torchscript

    torch.manual_seed(0)
    model = HybridVocNet(**SMALL, stereo_features=True).eval()
    trained(model.stereo_input)
    assert export_torchscript(model, tmp_path / "model.ts", 1e-4) < 1e-4
