"""Widening a trained HybridVocNet (vocalsep.model.grow): the wider model computes what the base computed, and
`train.init: pretrained` starts from it when filters and skip_filters are one integer multiple of the base's."""

from __future__ import annotations

import pytest
import torch

from vocalsep.base_model.weights import export_pretrained, init_from_pretrained
from vocalsep.errors import VocalsepError
from vocalsep.model import HybridVocNet
from vocalsep.model.grow import deepen_state, depth_added, widen_state, width_factor

KWARGS = {"filters": 8, "skip_filters": 12, "layers": 4, "layers_per_stack": 2, "kernel_size": 3,
          "n_fft": 128, "hop": 32, "wave_filters": 4, "wave_stride": 8}


def trained(seed: int = 0, **kwargs) -> HybridVocNet:
    """A tiny HybridVocNet with every weight moved off its initial value (as training leaves it)."""
    torch.manual_seed(seed)
    model = HybridVocNet(**{**KWARGS, **kwargs})
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def wider(factor: int) -> dict:
    return {**KWARGS, "filters": KWARGS["filters"] * factor, "skip_filters": KWARGS["skip_filters"] * factor}


@pytest.mark.parametrize("factor", [2, 3])
def test_the_widened_model_computes_what_the_base_computes(factor):
    base = trained()
    big = HybridVocNet(**wider(factor)).eval()
    big.load_state_dict(widen_state(base.state_dict(), factor))
    mixture = 0.3 * torch.randn(2, 2, 3000)
    with torch.no_grad():
        expected, got = base(mixture), big(mixture)
    assert expected.abs().max() > 0.01
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert sum(p.numel() for p in big.parameters()) > 1.5 * sum(p.numel() for p in base.parameters())


def test_the_copies_of_a_channel_get_different_gradients_so_the_width_learns():
    base = trained()
    big = HybridVocNet(**wider(2))
    big.load_state_dict(widen_state(base.state_dict(), 2, seed=1))
    big(0.3 * torch.randn(1, 2, 2000)).pow(2).mean().backward()
    rows = big.input.weight.grad
    assert rows is not None
    half = KWARGS["filters"]
    assert torch.equal(big.input.weight[:half], big.input.weight[half:])  # the copies start equal...
    assert not torch.allclose(rows[:half], rows[half:])  # ...and are pulled apart by the first step


def test_widening_draws_its_shares_from_the_seed():
    state = trained().state_dict()
    a, b, c = widen_state(state, 2, seed=0), widen_state(state, 2, seed=0), widen_state(state, 2, seed=1)
    key = "blocks.0.dilated.weight"
    assert torch.equal(a[key], b[key]) and not torch.equal(a[key], c[key])


@pytest.mark.parametrize("wanted, factor", [
    (wider(2), 2), (wider(4), 4), (KWARGS, 1),
    ({**KWARGS, "filters": 16}, 1),  # only one of the two widths grew
    ({**KWARGS, "filters": 12, "skip_filters": 18}, 1),  # x1.5 is no integer
    ({**wider(2), "layers": 6}, 1),  # something else changed too
])
def test_width_factor_is_an_integer_multiple_of_both_widths_and_nothing_else(wanted, factor):
    assert width_factor(KWARGS, wanted) == factor


def test_a_factor_below_two_is_refused():
    with pytest.raises(ValueError, match="factor"):
        widen_state(trained().state_dict(), 1)


def deeper(stacks: int) -> dict:
    return {**KWARGS, "layers": KWARGS["layers"] + stacks * KWARGS["layers_per_stack"]}


@pytest.mark.parametrize("stacks", [1, 2])
def test_the_deepened_model_computes_what_the_base_computes(stacks):
    base = trained(seed=4)
    big = HybridVocNet(**deeper(stacks)).eval()
    big.load_state_dict(deepen_state(base.state_dict(), big.state_dict()))
    mixture = 0.3 * torch.randn(2, 2, 3000)
    with torch.no_grad():
        expected, got = base(mixture), big(mixture)
    assert expected.abs().max() > 0.01
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert len(big.blocks) == len(base.blocks) + stacks * KWARGS["layers_per_stack"]
    assert big.context[0] > base.context[0]  # each stack reaches further


def test_the_new_blocks_learn_from_the_first_step():
    base = trained(seed=5)
    big = HybridVocNet(**deeper(1))
    big.load_state_dict(deepen_state(base.state_dict(), big.state_dict()))
    new, last_old = big.blocks[KWARGS["layers"]], big.blocks[KWARGS["layers"] - 1]
    assert not new.skip.weight.any() and not last_old.residual.weight.any()  # zero-started...
    assert new.dilated.weight.abs().sum() > 0  # ...while the rest of a new block keeps its random start
    big(0.3 * torch.randn(1, 2, 2000)).pow(2).mean().backward()
    assert new.skip.weight.grad.abs().sum() > 0  # the zeroed skip conv moves on the first step


@pytest.mark.parametrize("wanted, added", [
    (deeper(1), 2), (deeper(3), 6), (KWARGS, 0),
    ({**KWARGS, "layers": 5}, 0),  # not a whole stack
    ({**KWARGS, "layers": 2}, 0),  # shallower
    ({**deeper(1), "filters": 16}, 0),  # something else changed too
])
def test_depth_added_is_whole_stacks_and_nothing_else(wanted, added):
    assert depth_added(KWARGS, wanted) == added


@pytest.mark.parametrize("kind", [{"lookahead_frames": 2}, {"global_context": True}])
def test_a_causal_or_global_model_does_not_deepen(kind):
    assert depth_added({**KWARGS, **kind}, {**deeper(1), **kind}) == 0


@pytest.mark.parametrize("grown, odd, message", [
    (wider(2), {**KWARGS, "filters": 12, "skip_filters": 18}, "multiply filters and skip_filters"),
    (deeper(1), {**KWARGS, "layers": 5}, "whole stacks"),
])
def test_init_from_pretrained_starts_a_wider_or_deeper_model_from_the_base(tmp_path, grown, odd, message):
    base = trained(seed=3)
    export_pretrained({"class": "HybridVocNet", "kwargs": KWARGS, "state": base.state_dict(),
                       "params": {"audio": {"sample_rate": 22050}}}, tmp_path)
    big = HybridVocNet(**grown).eval()
    init_from_pretrained(big, "HybridVocNet", grown, tmp_path)
    mixture = 0.3 * torch.randn(1, 2, 2500)
    with torch.no_grad():
        torch.testing.assert_close(big(mixture), base(mixture), atol=1e-5, rtol=1e-4)
    with pytest.raises(VocalsepError, match=message):
        init_from_pretrained(HybridVocNet(**odd), "HybridVocNet", odd, tmp_path)
