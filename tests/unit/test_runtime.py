"""The CPU runtime choice: ONNX Runtime for VocNet (measured faster), torch for the rest, cached graphs."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from vocalsep import runtime
from vocalsep.config import SeparateParams
from vocalsep.errors import VocalsepError
from vocalsep.model import VocNet, save_checkpoint
from vocalsep.model.hybrid import HybridVocNet
from vocalsep.runtime import OrtSeparator, for_separation, model_digest
from vocalsep.separate import separate_with_params
from vocalsep.cli.separate import main as separate_main

KWARGS = {"filters": 8, "skip_filters": 8, "layers": 4, "layers_per_stack": 4}
CPU = SeparateParams(chunk_seconds=0.05, overlap_seconds=0.01, batch_size=2, device="cpu")


def vocnet(seed: int = 0, **kwargs) -> VocNet:
    torch.manual_seed(seed)
    return VocNet(**{**KWARGS, **kwargs}).eval()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("VOCALSEP_CACHE", str(folder))
    return folder / "onnx"


def test_auto_runs_vocnet_in_onnxruntime_with_the_same_output(cache):
    model = vocnet()
    fast = for_separation(model, CPU)
    assert isinstance(fast, OrtSeparator)
    mixture = np.random.default_rng(0).standard_normal((2, 8000)).astype(np.float32) * 0.1
    expected = separate_with_params(model, mixture, 16000, CPU)
    np.testing.assert_allclose(separate_with_params(fast, mixture, 16000, CPU), expected, atol=1e-5)
    assert fast.context == tuple(model.context)
    assert [p.suffix for p in cache.iterdir()] == [".onnx"]  # no temp file left behind


def test_the_graph_is_exported_once_per_model_and_reused(cache, monkeypatch):
    for_separation(vocnet(), CPU)
    (graph,) = cache.iterdir()
    stamp = graph.stat().st_mtime_ns

    def refuse(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(runtime, "export_onnx_graph", refuse)
    assert isinstance(for_separation(vocnet(), CPU), OrtSeparator)  # same weights: the cached graph
    assert graph.stat().st_mtime_ns == stamp


def test_the_cache_key_tells_apart_weights_and_dilations_with_the_same_shapes():
    base = model_digest(vocnet(0))
    assert model_digest(vocnet(0)) == base
    assert model_digest(vocnet(1)) != base  # other weights
    other = vocnet(0, layers_per_stack=2)  # same parameter shapes, other dilations
    other.load_state_dict(vocnet(0).state_dict())
    assert model_digest(other) != base


def test_torch_runtime_and_other_classes_stay_in_torch(cache):
    model = vocnet()
    assert for_separation(model, SeparateParams(device="cpu", runtime="torch")) is model
    hybrid = HybridVocNet(filters=8, skip_filters=8, layers=2, layers_per_stack=2, n_fft=256, hop=64,
                          wave_filters=8, wave_stride=32).eval()
    assert for_separation(hybrid, CPU) is hybrid  # auto: HybridVocNet measured no faster (and does not export)
    assert not cache.exists()


class Unexportable(nn.Module):
    context = (0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.tanh(x.numpy()))  # numpy inside: no graph to trace


def test_a_model_that_cannot_export_is_an_error_when_asked_and_torch_under_auto(cache, monkeypatch, caplog):
    with pytest.raises(VocalsepError, match=r"separate.runtime: onnxruntime: Unexportable cannot run.*"
                                            r"set separate.runtime: torch"):
        for_separation(Unexportable(), SeparateParams(device="cpu", runtime="onnxruntime"))
    monkeypatch.setattr(runtime, "ONNX_FASTER", frozenset({"Unexportable"}))
    model = Unexportable()
    assert for_separation(model, CPU) is model
    assert "ONNX Runtime unavailable" in caplog.text and "eager torch" in caplog.text
    assert not [p for p in cache.iterdir() if p.suffix == ".onnx"]


def test_the_cli_says_which_runtime_ran_and_both_give_the_same_stems(tmp_path, cache, capsys):
    checkpoint = tmp_path / "vocnet.pt"
    save_checkpoint(checkpoint, vocnet(), KWARGS, params={"audio": {"sample_rate": 16000}}, git_sha="test")
    wav = tmp_path / "song.wav"
    sf.write(wav, np.random.default_rng(1).standard_normal((8000, 2)).astype(np.float32) * 0.1, 16000)
    stems = {}
    for choice in ("torch", "auto"):
        out = tmp_path / choice
        assert separate_main([str(wav), "-o", str(out), "--model", str(checkpoint), "--device", "cpu",
                              "--runtime", choice]) == 0
        said = capsys.readouterr().err
        assert ("(ONNX Runtime)" in said) == (choice == "auto")
        stems[choice] = sf.read(out / "song" / "vocals.wav", dtype="float32")[0]
    np.testing.assert_allclose(stems["auto"], stems["torch"], atol=1e-4)
    assert os.listdir(cache)
