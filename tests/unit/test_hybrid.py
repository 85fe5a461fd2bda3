"""HybridVocNet: shapes, silence, receptive field, locality (and the global context that breaks it), chunking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vocalsep.config import load_params, params_to_dict
from vocalsep.model import HybridVocNet, model_kwargs
from vocalsep.separate import separate

SMALL = {"filters": 16, "skip_filters": 16, "layers": 4, "layers_per_stack": 4, "kernel_size": 3,
         "n_fft": 256, "hop": 64, "wave_filters": 8, "wave_stride": 16}


def small(seed: int = 0, **overrides) -> HybridVocNet:
    """An untrained small model whose waveform branch is as loud as its spectral one (its mask bias starts at -4)."""
    torch.manual_seed(seed)
    model = HybridVocNet(**{**SMALL, **overrides})
    torch.nn.init.zeros_(model.wave_mask.bias)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> HybridVocNet:
    return small()


def run(model: HybridVocNet, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(x)


@pytest.mark.parametrize("length", [1, 5, 63, 65, 129, 255, 257, 1001, 4097])
def test_output_shape_equals_input_shape(model, length):
    assert length < SMALL["n_fft"] or length % SMALL["hop"]
    out = run(model, torch.randn(3, 2, length))
    assert out.shape == (3, 2, length) and torch.isfinite(out).all()


@pytest.mark.parametrize("overrides", [{"wave_stride": 1}, {"hop": 96, "wave_stride": 3}, {"n_fft": 130, "hop": 128},
                                       {"hop": 64, "wave_stride": 64}])
def test_any_stride_and_window_the_constructor_accepts_runs(overrides):
    net = small(**overrides)
    for length in (1, 97, 1001):
        assert run(net, torch.randn(1, 2, length)).shape == (1, 2, length)


@pytest.mark.parametrize("n_fft, hop, wave_stride", [(256, 64, 24), (255, 64, 16), (64, 64, 16), (128, 256, 16)])
def test_inconsistent_framing_is_refused(n_fft, hop, wave_stride):
    with pytest.raises(ValueError, match="wave_stride"):
        HybridVocNet(**{**SMALL, "n_fft": n_fft, "hop": hop, "wave_stride": wave_stride})


@pytest.mark.parametrize("global_context", [False, True])
@pytest.mark.parametrize("length", [1, 300, 5000])
def test_silence_in_gives_exact_silence_out(global_context, length):
    out = run(small(global_context=global_context), torch.zeros(2, 2, length))
    assert out.shape == (2, 2, length) and not out.any()


def test_real_profile_hears_at_least_a_second(repo_root):
    params = load_params(repo_root / "params-real.yaml")
    assert params.model.name == "HybridVocNet"
    net = HybridVocNet(**model_kwargs("HybridVocNet", params_to_dict(params)["model"]))
    assert params.audio.sample_rate == 44100
    assert net.receptive_field >= params.audio.sample_rate
    before, after = net.context
    assert net.receptive_field == before + 1 + after and min(before, after) > 0


def locality_probe(net: HybridVocNet, length: int = 8192, span: tuple[int, int] = (3000, 3400)):
    """Outputs on `span` for a random input, for that input with everything outside the context of `span`
    replaced, and for it with one sample inside the span changed. float64, so "unchanged" means to rounding."""
    net = net.double()
    before, after = net.context
    a, b = span
    assert a - before > 0 and b - 1 + after < length - 1  # there is input outside the context on both sides
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 2, length, dtype=torch.float64, generator=gen)
    far = x.clone()
    far[..., :a - before] = torch.randn(1, 2, a - before, dtype=torch.float64, generator=gen)
    far[..., b + after:] = torch.randn(1, 2, length - b - after, dtype=torch.float64, generator=gen)
    near = x.clone()
    near[..., (a + b) // 2] += 1.0
    return [run(net, y)[..., a:b] for y in (x, far, near)]


@pytest.mark.parametrize("overrides", [{}, {"kernel_size": 2}, {"hop": 96, "wave_stride": 3, "n_fft": 200}])
def test_output_depends_only_on_input_within_context(overrides):
    base, far, near = locality_probe(small(**overrides))
    assert (base - far).abs().max() < 1e-9
    assert (base - near).abs().max() > 1e-3


def test_context_is_not_padding_it_reaches_seconds_of_frames():
    """An input change well inside the context but a full n_fft outside the span still reaches it."""
    net = small().double()
    before, after = net.context
    assert after > 2 * SMALL["n_fft"]
    x = torch.randn(1, 2, 8192, dtype=torch.float64)
    y = x.clone()
    y[..., 3400 + 2 * SMALL["n_fft"]] += 1.0
    assert (run(net, x)[..., 3000:3400] - run(net, y)[..., 3000:3400]).abs().max() > 1e-6


def test_global_context_reaches_beyond_the_local_context():
    base, far, _ = locality_probe(small(global_context=True))
    assert (base - far).abs().max() > 1e-4


def test_shifting_the_input_by_the_stride_shifts_the_output():
    """Away from the edges, a shift by `stride` shifts the output (frames land where they were); half a stride
    does not, which is why chunks must start on multiples of `stride`."""
    net = small().double()
    before, after = net.context
    x = torch.randn(1, 2, 8192, dtype=torch.float64)
    whole = run(net, x)
    inner = slice(before + net.stride, 8192 - after - net.stride)
    for shift, equal in ((net.stride, True), (3 * net.stride, True), (net.stride // 2, False)):
        shifted = torch.zeros_like(whole)
        shifted[..., shift:] = run(net, x[..., shift:])
        diff = (shifted[..., inner] - whole[..., inner]).abs().max()
        assert (diff < 1e-9) == equal, (shift, float(diff))


@pytest.mark.parametrize("chunk", [640, 1000, 200])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_chunked_separation_equals_one_whole_pass(model, chunk, batch_size):
    assert (chunk % model.stride == 0) == (chunk == 640)
    length = 6001
    mixture = np.random.default_rng(chunk).standard_normal((2, length)).astype(np.float32)
    assert chunk + model.receptive_field < length  # windows are parts of the song, not all of it
    chunked = separate(model, mixture, chunk_samples=chunk, overlap_samples=chunk // 8, batch_size=batch_size)
    whole = run(model, torch.from_numpy(mixture)[None])[0].numpy()
    assert chunked.shape == mixture.shape and chunked.dtype == np.float32
    assert np.abs(chunked - whole).max() < 1e-5


def test_chunked_separation_of_a_song_shorter_than_the_context(model):
    mixture = np.random.default_rng(7).standard_normal((2, 501)).astype(np.float32)
    chunked = separate(model, mixture, chunk_samples=100, overlap_samples=10, batch_size=2)
    assert np.abs(chunked - run(model, torch.from_numpy(mixture)[None])[0].numpy()).max() < 1e-5


def test_macs_per_second_grow_with_filters_and_with_rate():
    macs = [HybridVocNet(**{**SMALL, "filters": f}).macs_per_second(44100) for f in (16, 32, 64)]
    assert 0 < macs[0] < macs[1] < macs[2]
    net = HybridVocNet(**SMALL)
    assert net.macs_per_second(88200) == pytest.approx(2 * net.macs_per_second(44100))


def test_the_fold_decoder_computes_the_transposed_convolution():
    """_decode (matmul + overlap-add) gives ConvTranspose1d's numbers: same weights, any length."""
    torch.manual_seed(0)
    model = HybridVocNet(filters=8, skip_filters=8, layers=2, layers_per_stack=2, n_fft=256, hop=64,
                         wave_filters=8, wave_stride=16)
    for steps in (1, 7, 333):
        masked = torch.rand(3, 8, steps)
        torch.testing.assert_close(model._decode(masked), model.wave_decoder(masked), atol=1e-6, rtol=0)
