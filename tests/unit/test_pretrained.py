"""The shipped base model: safetensors + JSON written from a checkpoint, read back without pickle, checked on load."""

from __future__ import annotations

import json
import pickle
import struct

import numpy as np
import pytest
import torch

from vocalsep.errors import VocalsepError
from vocalsep.model import HybridVocNet, VocNet
from vocalsep.model.checkpoint import full_kwargs
from vocalsep.base_model.weights import (CONFIG_NAME, WEIGHTS_NAME, export_pretrained, init_from_pretrained, load_pretrained,
                                 read_config)
from vocalsep.loading import load_separator

KWARGS = {"filters": 8, "skip_filters": 8, "layers": 3, "layers_per_stack": 3, "kernel_size": 3,
          "n_fft": 128, "hop": 32, "wave_filters": 4, "wave_stride": 8}
RATE = 22050


def checkpoint(seed: int = 0, kwargs: dict | None = None) -> dict:
    """What save_checkpoint writes for a tiny HybridVocNet (weights perturbed so none is at its initial value)."""
    kwargs = dict(kwargs or KWARGS)
    torch.manual_seed(seed)
    model = HybridVocNet(**kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return {"class": "HybridVocNet", "kwargs": kwargs, "state": model.state_dict(), "git_sha": "abc123",
            "step": 42, "params": {"audio": {"sample_rate": RATE}, "model": kwargs}}


@pytest.fixture
def shipped(tmp_path):
    ckpt = checkpoint()
    export_pretrained(ckpt, tmp_path, note="test")
    return tmp_path, ckpt


def test_publishing_the_same_weights_twice_writes_the_same_bytes(tmp_path):
    """Byte-stable weights: the base model's registry identity is the sha256 of this file."""
    ckpt = checkpoint()
    written = set()
    for attempt in range(8):  # safetensors orders a metadata map at random: one try could match by luck
        export_pretrained(ckpt, tmp_path / str(attempt), note="test")
        written.add((tmp_path / str(attempt) / WEIGHTS_NAME).read_bytes())
    assert len(written) == 1


def outputs(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model.eval()(x)


def test_exported_model_loads_back_with_identical_outputs(shipped):
    folder, ckpt = shipped
    original = HybridVocNet(**KWARGS)
    original.load_state_dict(ckpt["state"])
    model, rate = load_pretrained(folder)
    assert isinstance(model, HybridVocNet) and not model.training and rate == RATE
    x = torch.randn(2, 2, 1001)
    assert torch.equal(outputs(model, x), outputs(original, x))
    config = read_config(folder)
    assert config["kwargs"] == full_kwargs("HybridVocNet", KWARGS) and config["class"] == "HybridVocNet"
    assert config["kwargs"]["lookahead_frames"] == -1  # every constructor argument is written, defaults too
    assert config["git_sha"] == "abc123" and config["step"] == 42 and config["note"] == "test"
    assert config["parameters"] == sum(p.numel() for p in original.parameters())


def test_float16_weights_halve_the_file_and_load_back_as_float32_close_to_the_original(shipped, tmp_path):
    folder, ckpt = shipped
    half = tmp_path / "half"
    export_pretrained(ckpt, half, dtype="float16")
    assert (half / WEIGHTS_NAME).stat().st_size < 0.6 * (folder / WEIGHTS_NAME).stat().st_size
    assert read_config(half)["weights_dtype"] == "float16" and "weights_dtype" not in read_config(folder)
    model, _ = load_pretrained(half)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    x = torch.randn(2, 2, 4001)
    full, rounded = outputs(load_pretrained(folder)[0], x), outputs(model, x)
    assert not torch.equal(full, rounded)  # the weights were rounded ...
    assert (rounded - full).abs().max() < 1e-2 * full.abs().max()  # ... by a few parts in ten thousand
    with pytest.raises(VocalsepError, match="bfloat16.*float32, float16"):
        export_pretrained(ckpt, tmp_path / "bad", dtype="bfloat16")


def test_weights_are_safetensors_not_a_pickle(shipped, monkeypatch):
    folder, ckpt = shipped
    data = (folder / WEIGHTS_NAME).read_bytes()
    (header_length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_length])
    assert set(ckpt["state"]) <= set(header) and header["__metadata__"]["class"] == "HybridVocNet"

    def refuse(*args, **kwargs):
        raise AssertionError("the base model must load without unpickling")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    model, _ = load_pretrained(folder)
    assert torch.equal(model.input.weight, ckpt["state"]["input.weight"])


@pytest.mark.parametrize("damage", ["junk", "truncated", "empty", "missing"])
def test_unreadable_weights_name_the_file_and_say_to_restore(shipped, damage):
    folder, _ = shipped
    weights = folder / WEIGHTS_NAME
    data = weights.read_bytes()
    if damage == "missing":
        weights.unlink()
    else:
        weights.write_bytes({"junk": b"not safetensors at all" * 10, "truncated": data[:len(data) // 2],
                             "empty": b""}[damage])
    with pytest.raises(VocalsepError, match=r"restore pretrained/") as err:
        load_pretrained(folder)
    assert str(weights) in str(err.value)


def test_weights_of_another_architecture_are_refused(shipped):
    folder, _ = shipped
    export_pretrained(checkpoint(kwargs={**KWARGS, "filters": 12}), folder / "other")
    (folder / WEIGHTS_NAME).write_bytes((folder / "other" / WEIGHTS_NAME).read_bytes())
    with pytest.raises(VocalsepError, match="do not fit HybridVocNet") as err:
        load_pretrained(folder)
    assert WEIGHTS_NAME in str(err.value)


def test_missing_config_names_the_file_and_says_to_restore(shipped):
    folder, _ = shipped
    (folder / CONFIG_NAME).unlink()
    with pytest.raises(VocalsepError, match=r"restore pretrained/") as err:
        load_pretrained(folder)
    assert str(folder / CONFIG_NAME) in str(err.value)


@pytest.mark.parametrize("text", ["{not json", json.dumps({"format": "something-else/9", "class": "VocNet"})])
def test_a_config_that_is_not_ours_is_refused(shipped, text):
    folder, _ = shipped
    (folder / CONFIG_NAME).write_text(text)
    with pytest.raises(VocalsepError, match="restore it from git") as err:
        load_pretrained(folder)
    assert CONFIG_NAME in str(err.value)


def test_init_from_pretrained_copies_the_weights_when_the_architecture_matches(shipped):
    folder, ckpt = shipped
    torch.manual_seed(5)
    fresh = HybridVocNet(**KWARGS)
    assert not torch.equal(fresh.input.weight, ckpt["state"]["input.weight"])
    init_from_pretrained(fresh, "HybridVocNet", dict(KWARGS), folder)
    for name, value in fresh.state_dict().items():
        assert torch.equal(value, ckpt["state"][name]), name


@pytest.mark.parametrize("name, kwargs", [("HybridVocNet", {**KWARGS, "layers": 4}),
                                          ("VocNet", {"filters": 8, "skip_filters": 8, "layers": 3})])
def test_init_from_pretrained_refuses_another_architecture_naming_both(shipped, name, kwargs):
    folder, ckpt = shipped
    model = (HybridVocNet if name == "HybridVocNet" else VocNet)(**kwargs)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(VocalsepError) as err:
        init_from_pretrained(model, name, kwargs, folder)
    message = str(err.value)
    assert "train.init" in message and "scratch" in message
    base, asked = message.split("HybridVocNet(", 1)[1].split(f"asks for {name}(", 1)
    assert all(f"'{k}': {v!r}" in base for k, v in KWARGS.items())
    assert all(f"'{k}': {v!r}" in asked for k, v in kwargs.items())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # left as it was


def test_load_separator_pretrained_reads_the_folder_of_the_environment(shipped, monkeypatch):
    folder, ckpt = shipped
    monkeypatch.setenv("VOCALSEP_PRETRAINED", str(folder))
    model, rate = load_separator("pretrained", "cpu")
    assert rate == RATE and isinstance(model, HybridVocNet)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 2, 700)).astype(np.float32))
    reference = HybridVocNet(**KWARGS)
    reference.load_state_dict(ckpt["state"])
    assert torch.equal(outputs(model, x), outputs(reference, x))
    monkeypatch.setenv("VOCALSEP_PRETRAINED", str(folder / "nowhere"))
    with pytest.raises(VocalsepError, match="VOCALSEP_PRETRAINED"):
        load_separator("pretrained", "cpu")
