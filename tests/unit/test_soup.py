"""`vocalsep average`: the weight average of fine-tunes of one model, written as a checkpoint."""

from __future__ import annotations

import pytest
import torch

from vocalsep.cli.main import main as cli
from vocalsep.model import HybridVocNet, load_checkpoint, load_model, save_checkpoint

KWARGS = {"filters": 8, "skip_filters": 8, "layers": 3, "layers_per_stack": 3, "kernel_size": 3,
          "n_fft": 128, "hop": 32, "wave_filters": 4, "wave_stride": 8}


def fine_tune(path, seed: int, **kwargs) -> dict[str, torch.Tensor]:
    """A checkpoint of KWARGS (or `kwargs`) with random weights; returns its state."""
    kwargs = kwargs or KWARGS
    torch.manual_seed(seed)
    model = HybridVocNet(**kwargs)
    with torch.no_grad():
        for p in model.parameters():  # off their initial values, which some share (ones, zeros)
            p.add_(0.05 * torch.randn_like(p))
    save_checkpoint(path, model, kwargs, params={"audio": {"sample_rate": 22050}}, step=seed)
    return model.state_dict()


def test_the_average_holds_the_mean_of_every_weight_and_loads_as_a_model(tmp_path):
    states = [fine_tune(tmp_path / f"{i}.pt", seed=i) for i in range(3)]
    assert cli(["average", *(str(tmp_path / f"{i}.pt") for i in range(3)), "-o", str(tmp_path / "soup.pt")]) == 0
    soup = load_checkpoint(tmp_path / "soup.pt")
    for key, value in soup["state"].items():
        expected = (states[0][key] + states[1][key] + states[2][key]) / 3
        assert torch.allclose(value, expected, atol=1e-6), key
        assert not torch.allclose(value, states[0][key]), key
    assert soup["class"] == "HybridVocNet" and soup["params"] == {"audio": {"sample_rate": 22050}}
    assert soup["averaged_from"] == [str(tmp_path / f"{i}.pt") for i in range(3)]
    with torch.inference_mode():
        out = load_model(tmp_path / "soup.pt")(torch.randn(1, 2, 1000))
    assert out.shape == (1, 2, 1000) and torch.isfinite(out).all()


def test_weights_tilt_the_average(tmp_path):
    a, b = fine_tune(tmp_path / "a.pt", 1), fine_tune(tmp_path / "b.pt", 2)
    assert cli(["average", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--weights", "3,1",
                "-o", str(tmp_path / "soup.pt")]) == 0
    soup = load_checkpoint(tmp_path / "soup.pt")["state"]
    assert torch.allclose(soup["input.weight"], 0.75 * a["input.weight"] + 0.25 * b["input.weight"], atol=1e-6)


@pytest.mark.parametrize("case, message", [
    ("other architecture", "only checkpoints of one architecture"),
    ("one checkpoint", "at least two"),
    ("bad weights", "--weights"),
    ("output is an input", "is one of the inputs"),
    ("missing", "not found"),
])
def test_bad_input_is_one_line_naming_what_to_fix_and_writes_nothing(tmp_path, capsys, case, message):
    fine_tune(tmp_path / "a.pt", 1)
    fine_tune(tmp_path / "b.pt", 2, **{**KWARGS, "filters": 4})
    fine_tune(tmp_path / "c.pt", 3)
    out = tmp_path / "soup.pt"
    args = {"other architecture": ["a.pt", "b.pt"], "one checkpoint": ["a.pt"],
            "bad weights": ["a.pt", "c.pt", "--weights", "1"], "output is an input": ["a.pt", "c.pt"],
            "missing": ["a.pt", "gone.pt"]}[case]
    argv = [str(tmp_path / a) if a.endswith(".pt") else a for a in args]
    target = tmp_path / "c.pt" if case == "output is an input" else out
    before = target.read_bytes() if target.exists() else None
    assert cli(["average", *argv, "-o", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vocalsep average:") and message in err and len(err.splitlines()) == 1
    assert (target.read_bytes() if target.exists() else None) == before
    if case == "other architecture":
        assert "b.pt" in err and "a.pt" in err
