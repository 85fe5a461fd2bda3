"""VocNet shapes, receptive field, checkpoint round trip, and what silence gives."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

import vocalsep
from vocalsep.model import VocNet, load_model, save_checkpoint
from vocalsep.model.checkpoint import git_sha, load_checkpoint

TINY = {"filters": 4, "skip_filters": 6, "layers": 5, "layers_per_stack": 3}


@pytest.mark.parametrize("length", [1, 7, 16, 101, 1000])
def test_output_length_equals_input_length(length):
    model = VocNet(**TINY).eval()
    assert model.receptive_field > 7  # lengths 1 and 7 are shorter than it
    with torch.no_grad():
        out = model(torch.randn(3, 2, length))
    assert out.shape == (3, 2, length)


@pytest.mark.parametrize("kernel_size", [2, 3])
@pytest.mark.parametrize("position", [60, 3])
def test_one_input_sample_reaches_exactly_its_context(kernel_size, position):
    torch.manual_seed(kernel_size)
    # enough channels that some ReLU path is open for every output (a 4-filter net can be all dead)
    model = VocNet(filters=16, skip_filters=16, layers=5, layers_per_stack=3, kernel_size=kernel_size)
    model = model.double().eval()
    before, after = model.context
    assert before + after + 1 == model.receptive_field
    x = torch.randn(1, 2, 160, dtype=torch.float64)
    y = x.clone()
    y[0, :, position] += 1.0
    with torch.no_grad():
        changed = (model(x) - model(y)).abs().amax(dim=1)[0] > 1e-12
    inside = torch.zeros(160, dtype=torch.bool)
    inside[max(0, position - after):position + before + 1] = True
    assert torch.equal(changed, inside), (torch.nonzero(changed).flatten(), before, after)


def test_receptive_field_of_seed_network():
    # 3 stacks of dilations 1..512 with kernel 2: 3 * 1023 samples of context plus the sample itself
    assert VocNet(filters=2, skip_filters=2).receptive_field == 3 * 1023 + 1


def test_checkpoint_round_trip_rebuilds_identical_model(tmp_path):
    model = VocNet(**TINY, kernel_size=3)
    kwargs = {**TINY, "kernel_size": 3}
    save_checkpoint(tmp_path / "m.pt", model, kwargs, params={"model": kwargs}, mlflow_run_id="abc")
    rebuilt = load_model(tmp_path / "m.pt")
    ckpt = load_checkpoint(tmp_path / "m.pt")
    assert ckpt["class"] == "VocNet" and ckpt["kwargs"] == kwargs and ckpt["mlflow_run_id"] == "abc"
    assert isinstance(ckpt["git_sha"], str) and ckpt["git_sha"]
    x = torch.randn(2, 2, 333)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), rebuilt(x))
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left no temp file


def test_seed_biases_turn_silence_into_a_constant_offset():
    """With the seed's biases (bias=True), zeros in give, per channel, one constant value
    at every output at least `context` samples from the edges, for any length. It is not
    zero for an untrained net: silence in gives a DC offset out, which is why params.yaml
    sets model.bias false."""
    torch.manual_seed(0)
    model = VocNet(**TINY).eval()
    before, after = model.context
    with torch.no_grad():
        short, long = model(torch.zeros(1, 2, 200)), model(torch.zeros(1, 2, 500))
    interior = short[0, :, before:200 - after]
    assert torch.allclose(interior, interior[:, :1].expand_as(interior), atol=1e-6)
    assert torch.allclose(long[0, :, before:500 - after].mean(-1), interior[:, 0], atol=1e-6)
    assert interior.abs().max() > 0  # the offset is real: a trained model must learn it away


@pytest.mark.parametrize("length", [1, 300, 4000])
def test_bias_free_network_maps_silence_to_exact_silence(length):
    torch.manual_seed(0)
    model = VocNet(**TINY, bias=False).eval()
    with torch.no_grad():
        for p in model.parameters():  # large random weights: exactness must not hinge on small values
            p.add_(torch.randn_like(p))
        assert torch.equal(model(torch.zeros(2, 2, length)), torch.zeros(2, 2, length))
        assert model(torch.randn(1, 2, length)).abs().max() > 0
    gate_biases = [name for name, _ in model.named_parameters() if "bias" in name]
    assert gate_biases and all(name.endswith("gate_bias") for name in gate_biases)


@pytest.mark.parametrize("filters, skip, layers, per_stack, kernel", [(4, 6, 5, 3, 3), (8, 8, 10, 10, 2)])
def test_macs_per_sample_agree_with_torchs_flop_counter(filters, skip, layers, per_stack, kernel):
    """torch counts 2 FLOPs per multiply-accumulate of every conv it runs; no formula of ours involved."""
    from torch.utils.flop_counter import FlopCounterMode

    model, samples = VocNet(filters, skip, layers, per_stack, kernel_size=kernel).eval(), 4000
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 2, samples))
    assert model.macs_per_sample() == counter.get_total_flops() / (2 * samples)


def test_checkpoint_names_the_commit_of_the_code_not_of_the_working_directory(tmp_path, monkeypatch):
    # The continuation runs of the base model trained in one DVC workspace with code from another checkout: the
    # checkpoint (and the model card built from it) must name the commit of the code that ran.
    code = git_sha(Path(vocalsep.__file__).resolve().parent)
    if code == "unknown":
        pytest.skip("the vocalsep code under test is not in a git checkout")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    for args in (["init", "-q"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(["git", *args], cwd=workspace, check=True)
    other = git_sha(workspace)
    assert other not in ("unknown", code)
    monkeypatch.chdir(workspace)
    save_checkpoint(tmp_path / "m.pt", VocNet(**TINY), TINY, params={})
    assert load_checkpoint(tmp_path / "m.pt")["git_sha"] == code
