"""The base model committed in pretrained/: it loads without pickle, matches params-real.yaml, and separates."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vocalsep.config import load_params, params_to_dict
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
    """A harmonic, vowel-like voice over a low hum: the estimate keeps more of the voice than of the hum."""
    model, rate = base
    t = np.arange(3 * rate) / rate
    f0 = 180 * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 20)) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t) ** 2)
    hum = sum(np.sin(2 * np.pi * 55 * k * t) / k for k in range(1, 6))
    voice, hum = 0.1 * voice / np.abs(voice).max(), 0.1 * hum / np.abs(hum).max()
    mixture = np.stack([voice + hum] * 2).astype(np.float32)
    estimate = separate(model, mixture, chunk_samples=2 * rate, overlap_samples=rate // 10, batch_size=2)
    assert estimate.shape == mixture.shape and np.isfinite(estimate).all()
    kept_voice = float(np.dot(estimate[0], voice) / np.dot(voice, voice))
    kept_hum = float(np.dot(estimate[0], hum) / np.dot(hum, hum))
    # random weights keep ~half of both (a ratio of 1). base_v7 kept about 22 % of this synthetic buzz and 1 % of
    # the hum; base_v8, which also trained on synthesised melodic music, 8.5 % and 0.45 % (19x). base_v10 keeps
    # 31 % and 9.8 % (3.1x): every 1000-step fine-tune of base_v8 kept 6-8 % of the hum, while on the real unseen
    # mixtures music leak fell on 17 of 24 (quality.json). So the bar is 2.5x (8 dB), not the 19x of one model
    # (docs/performance.md, 'A steady hum')
    assert kept_voice > 0.05 and kept_voice > 2.5 * kept_hum, (kept_voice, kept_hum)


def test_silence_in_gives_silence_out(base):
    model, rate = base
    out = separate(model, np.zeros((2, rate), np.float32), chunk_samples=rate, overlap_samples=0, batch_size=1)
    assert not out.any()
