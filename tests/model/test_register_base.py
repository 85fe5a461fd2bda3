"""`vocalsep register-base`: a fresh registry gets the shipped base model as champion; a champion stays put."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from vocalsep import registry
from vocalsep.config import Params, TrackingParams, params_to_dict
from vocalsep.corpus.spec import load_spec
from vocalsep.model import HybridVocNet
from vocalsep.base_model.weights import export_pretrained
from vocalsep.registry import checkpoint_from_uri
from vocalsep.loading import load_separator
from vocalsep.base_model.contender import register_base

TINY = {"filters": 8, "skip_filters": 8, "layers": 2, "layers_per_stack": 2, "kernel_size": 3,
        "n_fft": 256, "hop": 64, "wave_filters": 4, "wave_stride": 16}


def ship_tiny_base(folder: Path, seed: int, monkeypatch) -> None:
    """A tiny HybridVocNet published as the shipped base model in `folder` (VOCALSEP_PRETRAINED)."""
    torch.manual_seed(seed)
    model = HybridVocNet(**TINY).eval()
    values = params_to_dict(Params())
    export_pretrained({"class": "HybridVocNet", "kwargs": TINY, "state": model.state_dict(),
                       "params": {**values, "audio": {"sample_rate": 16000}}}, folder)
    monkeypatch.setenv("VOCALSEP_PRETRAINED", str(folder))


@pytest.fixture
def params(tmp_path, mlflow_db, monkeypatch) -> Params:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    ship_tiny_base(tmp_path / "pretrained", 0, monkeypatch)
    base = Params()
    return dataclasses.replace(
        base, tracking=TrackingParams(uri=f"sqlite:///{mlflow_db}", artifacts=str(tmp_path / "art"), experiment="t"),
        paths=dataclasses.replace(base.paths, export=str(tmp_path / "export")))


def test_an_empty_registry_gets_the_base_model_as_champion(params, monkeypatch):
    first = register_base(params)
    assert (first["decision"], first["version"], first["champion_version"]) == ("champion", "1", "1")
    version, tags = registry.version_by_alias("vocalsep", "champion")
    assert version == "1" and tags["source"] == "pretrained"
    trained_on = [p for p in load_spec(Path(__file__).resolve().parents[2] / "sources/debian-corpus.yaml") if any(g.set == "train" for g in p.groups)]
    assert len(trained_on) >= 9  # the packages of the spec's train set
    assert tags["sources"] == str(len(trained_on)) and "CC-BY-SA-3.0" in tags["licenses"]
    served, rate = load_separator(str(checkpoint_from_uri("models:/vocalsep@champion", params.tracking)))
    base, base_rate = load_separator("pretrained")
    mixture = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 2, 3000)).astype(np.float32))
    with torch.inference_mode():
        assert rate == base_rate == 16000 and torch.equal(served(mixture), base(mixture))
    again = register_base(params)  # the same weights are not registered twice
    assert (again["decision"], again["version"], again["champion_version"]) == ("already registered", "1", "1")
    ship_tiny_base(Path(params.paths.export).parent / "pretrained-2", 1, monkeypatch)
    second = register_base(params)  # new base weights: a new version; the champion stays
    assert (second["decision"], second["version"], second["champion_version"]) == ("registered", "2", "1")
    assert registry.version_by_alias("vocalsep", "champion")[0] == "1"


def test_vocalsep_models_lists_shipped_and_registered_models_and_the_default(params, tmp_path, capsys,
                                                                              monkeypatch):
    import json

    from vocalsep.cli import models as models_cli

    monkeypatch.setattr(models_cli, "cli_params", lambda path: params)
    monkeypatch.setenv("VOCALSEP_PRETRAINED_LIVE", str(tmp_path / "no-live-here"))
    assert models_cli.main(["--json"]) == 0
    empty = json.loads(capsys.readouterr().out)
    assert [m["spec"] for m in empty["models"]] == ["pretrained", "pretrained-live"]
    assert empty["models"][0]["class"] == "HybridVocNet" and "missing" in empty["models"][1]
    assert empty["default"]["spec"] == "pretrained" and "no champion" in empty["default"]["why"]

    register_base(params)
    ship_tiny_base(tmp_path / "pretrained-2", 1, monkeypatch)
    register_base(params)
    assert models_cli.main([]) == 0
    text = capsys.readouterr().out
    assert "models:/vocalsep/2" in text and "models:/vocalsep/1 @champion" in text
    assert "default (no --model, or --model auto): models:/vocalsep@champion" in text
    assert models_cli.main(["--json", "--speed"]) == 0
    listed = json.loads(capsys.readouterr().out)
    registered = [m for m in listed["models"] if m["kind"] == "registry"]
    assert [(m["spec"], m["aliases"]) for m in registered] == [("models:/vocalsep/2", []),
                                                               ("models:/vocalsep/1", ["champion"])]
    assert all("shipped base model" in m["trained_on"] and m["class"] == "HybridVocNet" for m in registered)
    assert all(m["x_real_time"] > 0 for m in listed["models"] if not m.get("missing"))


def test_summary_reads_the_registrys_champion_now_and_says_when_the_workspace_differs(params, tmp_path, monkeypatch):
    import json

    from vocalsep.cli.summary import summary_lines

    register_base(params)  # version 1, champion
    ship_tiny_base(tmp_path / "pretrained-2", 1, monkeypatch)
    second = register_base(params)
    registry.set_alias("vocalsep", "champion", second["version"])  # moved since the last export
    params.paths.registry_record.parent.mkdir(parents=True, exist_ok=True)
    params.paths.registry_record.write_text(json.dumps({"registered_model": "vocalsep", "version": "1",
                                                        "decision": "champion", "champion_version": "1",
                                                        "metric": "si_sdr", "new_metric": 1.0}))
    text = "\n".join(summary_lines(params))
    assert "registry now: champion is vocalsep version 2 (the shipped base model)" in text
    assert "last export recorded version 1" in text


def test_summary_creates_no_store_where_there_is_none(tmp_path, monkeypatch):
    import dataclasses

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the params' store, not one a caller chose

    from vocalsep.cli.summary import live_registry_lines

    base = Params()
    none = dataclasses.replace(base, tracking=TrackingParams(uri=f"sqlite:///{tmp_path}/mlruns/mlflow.db"))
    assert "none yet" in live_registry_lines(none, None)[0] and not (tmp_path / "mlruns").exists()
