"""SubbandRefiner (model.refine_width): local in frequency, frame by frame, and grown from a base model as the identity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vocalsep.base_model.weights import export_pretrained, init_from_pretrained
from vocalsep.errors import VocalsepError
from vocalsep.model import HybridVocNet
from vocalsep.model.subband import SubbandRefiner
from vocalsep.separate import separate

SMALL = {"filters": 16, "skip_filters": 16, "layers": 4, "layers_per_stack": 4, "kernel_size": 3,
         "n_fft": 1022, "hop": 128, "wave_filters": 8, "wave_stride": 32}  # 512 bins: 32 patches of 16


def trained_refiner(refiner: SubbandRefiner, seed: int = 0) -> SubbandRefiner:
    """The refiner with its last layer moved off zero, as training would."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        refiner.out.weight.copy_(0.3 * torch.randn(refiner.out.weight.shape, generator=gen))
        refiner.position.copy_(0.3 * torch.randn(refiner.position.shape, generator=gen))
    return refiner


def refine(refiner: SubbandRefiner, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return refiner(features, logits)


def test_a_new_refiner_returns_the_logits_unchanged():
    refiner = SubbandRefiner(channels=2, bins=100, width=8)
    features, logits = torch.randn(3, 200, 7), torch.randn(3, 200, 7)
    assert torch.equal(refine(refiner, features, logits), logits)


def test_it_works_frame_by_frame_and_reaches_only_nearby_bins():
    """A change at one bin of one frame moves that frame only, and only bins within three patches of it."""
    bins, patch = 320, 16
    refiner = trained_refiner(SubbandRefiner(channels=2, bins=bins, width=8, patch=patch)).double()
    gen = torch.Generator().manual_seed(1)
    features = torch.randn(1, 2 * bins, 9, dtype=torch.float64, generator=gen)
    logits = torch.randn(1, 2 * bins, 9, dtype=torch.float64, generator=gen)
    base = refine(refiner, features, logits)
    poked = features.clone()
    poked[0, 160, 4] += 1.0  # channel 0, bin 160: patch 10
    moved = (refine(refiner, poked, logits) - base).abs().reshape(2, bins, 9) > 1e-12
    assert moved[..., 4].any() and not moved[..., [0, 1, 2, 3, 5, 6, 7, 8]].any()
    changed_bins = moved[..., 4].any(dim=0).nonzero().flatten()
    assert changed_bins.min() >= (10 - 3) * patch and changed_bins.max() < (10 + 4) * patch
    assert changed_bins.min() < 9 * patch and changed_bins.max() >= 12 * patch  # it does reach past its own patch
    assert moved[1, :, 4].any()  # both channels: the other channel's mask hears this one


@pytest.mark.parametrize("bins", [1, 15, 17, 1025])
def test_any_number_of_bins_keeps_the_shape(bins):
    refiner = trained_refiner(SubbandRefiner(channels=2, bins=bins, width=4))
    out = refine(refiner, torch.randn(2, 2 * bins, 5), torch.randn(2, 2 * bins, 5))
    assert out.shape == (2, 2 * bins, 5) and torch.isfinite(out).all()


def test_it_adds_no_context_so_chunked_separation_still_equals_one_pass():
    torch.manual_seed(0)
    bare, refined = HybridVocNet(**SMALL).eval(), HybridVocNet(**SMALL, refine_width=8).eval()
    assert refined.context == bare.context and refined.stride == bare.stride
    trained_refiner(refined.refiner)
    assert chunking_error(refined) < 1e-5
    assert refined.macs_per_second(44100) > bare.macs_per_second(44100)


def chunking_error(model: HybridVocNet) -> float:
    """The largest difference between separating 20,001 samples of noise in chunks and in one pass."""
    mixture = np.random.default_rng(3).standard_normal((2, 20001)).astype(np.float32)
    chunked = separate(model, mixture, chunk_samples=2560, overlap_samples=256, batch_size=2)
    with torch.inference_mode():
        whole = model(torch.from_numpy(mixture)[None])[0].numpy()
    return float(np.abs(chunked - whole).max())


def test_silence_in_still_gives_exact_silence_out():
    torch.manual_seed(0)
    model = HybridVocNet(**SMALL, refine_width=8).eval()
    trained_refiner(model.refiner)
    with torch.inference_mode():
        assert torch.equal(model(torch.zeros(1, 2, 5000)), torch.zeros(1, 2, 5000))


def shipped_base(folder, seed: int = 0, **extra) -> dict:
    torch.manual_seed(seed)
    base = HybridVocNet(**SMALL, **extra)
    with torch.no_grad():
        for p in base.parameters():
            p.add_(0.05 * torch.randn_like(p))
    kwargs = {**SMALL, **extra}
    ckpt = {"class": "HybridVocNet", "kwargs": kwargs, "state": base.state_dict(),
            "params": {"audio": {"sample_rate": 44100}, "model": kwargs}}
    export_pretrained(ckpt, folder, note="test")
    return ckpt


def test_a_model_grown_from_the_base_first_separates_exactly_as_the_base(tmp_path):
    ckpt = shipped_base(tmp_path)
    base = HybridVocNet(**SMALL).eval()
    base.load_state_dict(ckpt["state"])
    torch.manual_seed(9)
    grown = HybridVocNet(**SMALL, refine_width=8)
    init_from_pretrained(grown, "HybridVocNet", {**SMALL, "refine_width": 8}, tmp_path)
    x = torch.randn(1, 2, 9000)
    with torch.inference_mode():
        assert torch.equal(grown.eval()(x), base(x))
        trained_refiner(grown.refiner)
        assert (grown(x) - base(x)).abs().max() > 1e-3  # the refiner is in the path: training can move it


def test_a_refined_base_does_not_load_into_a_model_without_the_refiner(tmp_path):
    shipped_base(tmp_path, refine_width=8)
    model = HybridVocNet(**SMALL)
    with pytest.raises(VocalsepError, match="refine_width"):
        init_from_pretrained(model, "HybridVocNet", dict(SMALL), tmp_path)


def test_growing_does_not_excuse_another_change(tmp_path):
    shipped_base(tmp_path)
    model = HybridVocNet(**{**SMALL, "filters": 8}, refine_width=8)
    with pytest.raises(VocalsepError, match="train.init is pretrained"):
        init_from_pretrained(model, "HybridVocNet", {**SMALL, "filters": 8, "refine_width": 8}, tmp_path)


def test_a_refined_model_traces_to_torchscript_for_any_length_and_batch(tmp_path):
    """The export stage's check: the traced graph matches eager at two lengths and batch 2 (shapes stay dynamic)."""
    from vocalsep.stages.export import export_torchscript

    torch.manual_seed(0)
    model = HybridVocNet(**SMALL, refine_width=8).eval()
    trained_refiner(model.refiner)
    assert export_torchscript(model, tmp_path / "model.ts", 1e-4) < 1e-4
