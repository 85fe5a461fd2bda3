"""The base model committed in pretrained/: it loads without pickle, matches params-real.yaml, and separates."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vocalsep.config import load_params, params_to_dict
from vocalsep.demo.voice import voice as demo_voice
from vocalsep.model import model_kwargs
from vocalsep.model.checkpoint import full_kwargs
from vocalsep.base_model.weights import CONFIG_NAME, load_pretrained, pretrained_dir
from vocalsep.separate import separate


@pytest.fixture(scope="module")
def base():
    torch.set_num_threads(1)
    return load_pretrained()


def test_the_base_model_rebuilds_from_its_own_config(base):
    model, rate = base
    config = json.loads((pretrained_dir() / CONFIG_NAME).read_text())
    assert rate == 44100 and type(model).__name__ == config["class"]
    assert sum(p.numel() for p in model.parameters()) == config["parameters"]
    assert (pretrained_dir() / "vocalsep-base.safetensors").stat().st_size < 25 * 2**20


def test_params_real_describes_the_base_model(repo_root, base):
    """train.init: pretrained with params-real.yaml needs exactly the base model's architecture."""
    params = load_params(repo_root / "params-real.yaml")
    config = json.loads((pretrained_dir() / CONFIG_NAME).read_text())
    assert params.model.name == config["class"]
    wanted = model_kwargs(params.model.name, params_to_dict(params)["model"])
    assert full_kwargs(params.model.name, wanted) == full_kwargs(config["class"], config["kwargs"])


def test_the_base_model_keeps_a_voice_and_drops_a_steady_hum(base):
    """A synthetic sung voice (glottal source, vowel formants, consonants) over a low hum: the voice is kept, the hum is not."""
    model, rate = base
    t = np.arange(4 * rate) / rate
    hum = sum(np.sin(2 * np.pi * 55 * k * t) / k for k in range(1, 6))
    hum = 0.1 * hum / np.abs(hum).max()
    for seed in range(3):
        voice = demo_voice(np.random.default_rng(seed), 4.0, rate).T.astype(np.float64)
        voice = 0.1 * voice / np.abs(voice).max()
        mixture = (voice + hum[None]).astype(np.float32)
        estimate = separate(model, mixture, chunk_samples=2 * rate, overlap_samples=rate // 10, batch_size=2)
        assert estimate.shape == mixture.shape and np.isfinite(estimate).all()
        kept_voice = float((estimate * voice).sum() / (voice * voice).sum())
        kept_hum = float((estimate * hum[None]).sum() / (2 * (hum * hum).sum()))
        # random weights keep about half of both (a ratio of 1); base_v10 keeps 74-90 % of these voices and
        # 0.6-1.2 % of the hum, base_v11 70-84 % and 0.5-1.0 %. Until base_v11 the voice was a bare harmonic
        # buzz without formants: base_v11, trained on more synthesised music, treats that as a synth lead and
        # keeps 1 % of it (and 0.03 % of the hum), so the voice now has a voice's formants (docs/performance.md)
        assert kept_voice > 0.5 and kept_voice > 20 * kept_hum, (seed, kept_voice, kept_hum)


def test_silence_in_gives_silence_out(base):
    model, rate = base
    out = separate(model, np.zeros((2, rate), np.float32), chunk_samples=rate, overlap_samples=0, batch_size=1)
    assert not out.any()
