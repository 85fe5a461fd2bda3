"""`vocalsep separate` with no --model: the champion if it learned from real audio, else the base model, and why."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vocalsep import default_model
from vocalsep.cli import separate as separate_cli
from vocalsep.config import Params, params_to_dict
from vocalsep.errors import VocalsepError
from vocalsep.model import HybridVocNet, VocNet, load_checkpoint, save_checkpoint
from vocalsep.base_model.weights import export_pretrained

TINY_HYBRID = {"filters": 8, "skip_filters": 8, "layers": 2, "layers_per_stack": 2, "kernel_size": 3,
               "n_fft": 256, "hop": 64, "wave_filters": 4, "wave_stride": 16}


def params(**sections) -> dict:
    values = params_to_dict(Params())
    for name, changes in sections.items():
        values[name].update(changes)
    return values


@pytest.fixture
def base_model(tmp_path, monkeypatch) -> HybridVocNet:
    torch.manual_seed(1)
    model = HybridVocNet(**TINY_HYBRID).eval()
    ckpt = {"class": "HybridVocNet", "kwargs": TINY_HYBRID, "state": model.state_dict(),
            "params": params(audio={"sample_rate": 16000})}
    export_pretrained(ckpt, tmp_path / "pretrained")
    monkeypatch.setenv("VOCALSEP_PRETRAINED", str(tmp_path / "pretrained"))
    return model


def champion(tmp_path: Path, monkeypatch, **sections) -> Path:
    """A VocNet checkpoint standing in for the registry's champion, trained with `sections` of params."""
    path = tmp_path / "champion.pt"
    save_checkpoint(path, VocNet(filters=4, skip_filters=4, layers=2, layers_per_stack=2),
                    {"filters": 4, "skip_filters": 4, "layers": 2, "layers_per_stack": 2},
                    params=params(**sections), git_sha="test")
    monkeypatch.setattr(default_model, "checkpoint_path", lambda spec, tracking=None: path)
    store = tmp_path / "mlflow.db"
    store.touch()  # a registry exists (its champion is the checkpoint above)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    return path


def test_no_store_means_the_base_model_and_none_is_created(base_model, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    spec, why, _ = default_model.default_choice()
    assert spec == "pretrained" and "no champion" in why and not (tmp_path / "mlruns").exists()


def test_no_champion_falls_back_to_the_base_model_and_says_why(base_model, monkeypatch):
    def missing(spec, tracking=None):
        raise VocalsepError(f"{spec}: cannot fetch the model from MLflow (alias champion not found)")

    monkeypatch.setattr(default_model, "checkpoint_path", missing)
    model, rate, why = separate_cli.choose_model("cpu")
    assert isinstance(model, HybridVocNet) and rate == 16000
    assert why.startswith("pretrained") and "no champion" in why


def test_a_champion_trained_on_the_demo_only_gives_way_to_the_base_model(base_model, tmp_path, monkeypatch):
    champion(tmp_path, monkeypatch)  # default params: corpus.set none, download.sources sources/demo.yaml
    model, _, why = separate_cli.choose_model("cpu")
    assert isinstance(model, HybridVocNet)
    assert "synthetic demo" in why and "--model models:/vocalsep@champion" in why


def test_a_champion_trained_on_real_audio_is_used(base_model, tmp_path, monkeypatch):
    path = champion(tmp_path, monkeypatch, corpus={"set": "train"}, download={"sources": "data/corpus/sources.yaml"})
    model, _, why = separate_cli.choose_model("cpu")
    assert isinstance(model, VocNet) and "champion" in why and not why.startswith("pretrained")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), load_checkpoint(path)["state"].values()))


def test_a_champion_from_the_users_own_manifest_counts_as_real(tmp_path, monkeypatch):
    champion(tmp_path, monkeypatch, download={"sources": "sources/my-songs.yaml"})
    assert not separate_cli.trained_on_demo_only(load_checkpoint(tmp_path / "champion.pt"))


def test_cli_prints_which_model_ran(base_model, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(default_model, "checkpoint_path",
                        lambda spec, tracking=None: (_ for _ in ()).throw(VocalsepError("no such alias")))
    wav = tmp_path / "song.wav"
    sf.write(wav, (0.1 * np.random.default_rng(0).standard_normal((8000, 2))).astype(np.float32), 16000)
    assert separate_cli.main([str(wav), "-o", str(tmp_path / "out"), "--device", "cpu"]) == 0
    assert "model: pretrained (the shipped base model" in capsys.readouterr().err
    assert (tmp_path / "out" / "song" / "vocals.wav").is_file()
