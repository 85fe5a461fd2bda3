"""A wider or deeper HybridVocNet that computes exactly what a trained one computes.

## Wider (Net2WiderNet, Chen et al. 2016)

`train.init: pretrained` with `model.filters` and `model.skip_filters` an
integer multiple `k` of the base model's starts from the base model widened:

- every channel of the residual stream, of the gated blocks and of the skip
  sum is repeated `k` times (the input projection's and each conv's output
  rows copied, with their biases and ChannelNorm gains);
- every conv that reads those channels splits each weight among the `k`
  copies of its input channel in random shares that sum to 1.

A ChannelNorm over `k` copies of each channel sees the same mean and variance,
so the widened model's output equals the base's (to rounding), while the
random shares give the copies different gradients: they drift apart and the
extra width learns. Only the width grows; everything else must match.

## Deeper (whole stacks added after the last block)
`train.init: pretrained` with `model.layers` the base model's plus a multiple
of `layers_per_stack` (everything else equal) starts from the base model
deepened: its blocks keep their weights, the new blocks follow them with
their own random start, and two things are zeroed, as ReZero and zero-init
residual branches start a deeper net:

- each new block's skip conv, so the skip sum, and the masks it drives, are
  the base's;
- the residual conv the base's last block gains (a last block has none), so
  the stream the base's blocks see is unchanged.

The first step moves the zeroed skip convs (their inputs are the new blocks'
live activations), and from then on every new weight learns. A causal model
(`lookahead_frames` >= 0) spreads its look-ahead over all blocks, and a
global context vector has one slice per block, so neither deepens.
"""

from __future__ import annotations

from typing import Any

import torch

WIDENABLE = ("filters", "skip_filters")


def width_factor(base: dict[str, Any], wanted: dict[str, Any]) -> int:
    """`k` when `wanted` is `base` with `filters` and `skip_filters` both `k` times larger (k >= 2), else 1."""
    if base.get("global_context") or any(base.get(key) in (None, 0) for key in WIDENABLE):
        return 1
    factors = {wanted[key] / base[key] for key in WIDENABLE}
    factor = factors.pop() if len(factors) == 1 else 0
    return int(factor) if same_except(base, wanted, WIDENABLE) and factor >= 2 and factor == int(factor) else 1


def same_except(base: dict[str, Any], wanted: dict[str, Any], keys: set[str] | tuple[str, ...]) -> bool:
    """Whether the two sets of model kwargs agree on every key but `keys`."""
    return {k: v for k, v in base.items() if k not in keys} == {k: v for k, v in wanted.items() if k not in keys}


def _shares(shape: tuple[int, ...], factor: int, generator: torch.Generator) -> list[torch.Tensor]:
    """`factor` tensors of `shape`, each element in [0.25, 0.75] before normalising, summing to 1 elementwise."""
    raw = [0.25 + 0.5 * torch.rand(shape, generator=generator, dtype=torch.float64) for _ in range(factor)]
    total = sum(raw)
    return [r / total for r in raw]


def _repeat_rows(tensor: torch.Tensor, factor: int, groups: int = 1) -> torch.Tensor:
    """Rows (dim 0) repeated `factor` times within each of `groups` equal groups: [a, b] -> [a, b, a, b]."""
    parts = tensor.chunk(groups, dim=0)
    return torch.cat([torch.cat([part] * factor, dim=0) for part in parts], dim=0)


def _split_columns(weight: torch.Tensor, factor: int, generator: torch.Generator) -> torch.Tensor:
    """Input channels (dim 1) repeated `factor` times, each copy carrying a random share of the weight."""
    shares = _shares(tuple(weight.shape), factor, generator)
    return torch.cat([(weight.double() * share).to(weight.dtype) for share in shares], dim=1)


def _widened(key: str, value: torch.Tensor, factor: int, generator: torch.Generator) -> torch.Tensor:
    """One tensor of a HybridVocNet state dict as the `factor`-times wider model needs it."""
    name = key.rsplit(".", 1)[-1]
    if key.startswith(("input.", "input_norm.")) or ".norm." in key:
        return _repeat_rows(value, factor)  # rows of the residual stream: copied
    if ".dilated." in key:  # reads the stream; rows are [filter, gate]: each half copied within itself
        value = _split_columns(value, factor, generator) if name == "weight" else value
        return _repeat_rows(value, factor, groups=2)
    if ".residual." in key or ".skip." in key:
        value = _split_columns(value, factor, generator) if name == "weight" else value
        return _repeat_rows(value, factor)
    if key.startswith(("spec_mask.", "wave_mask.")) and name == "weight":
        return _split_columns(value, factor, generator)  # reads the skip sum; its outputs keep their size
    return value


def widen_state(state: dict[str, torch.Tensor], factor: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """The state dict of a HybridVocNet `factor` times wider in `filters` and `skip_filters` that computes what
    `state`'s model computes; `seed` draws the shares that break the copies' symmetry."""
    if factor < 2:
        raise ValueError(f"factor must be an integer >= 2, got {factor}")
    generator = torch.Generator().manual_seed(seed)
    return {key: _widened(key, value, factor, generator) for key, value in state.items()}


def depth_added(base: dict[str, Any], wanted: dict[str, Any]) -> int:
    """The blocks `wanted` adds after `base`'s last: whole stacks (a multiple of `layers_per_stack`, everything
    else equal) of a centred model without global context; 0 when `wanted` is not `base` deepened so."""
    if base.get("global_context") or base.get("lookahead_frames", -1) >= 0 or not base.get("layers_per_stack"):
        return 0
    extra = wanted.get("layers", 0) - base.get("layers", 0)
    return extra if same_except(base, wanted, ("layers",)) and extra > 0 and extra % base["layers_per_stack"] == 0 else 0


def deepen_state(state: dict[str, torch.Tensor], fresh: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict of the deeper model whose own start is `fresh`: `state` (the base model's, whose blocks it
    counts) in every tensor it has, the new blocks' skip convs and the base's last block's new residual conv zeroed."""
    missing = sorted(set(state) - set(fresh))
    if missing:
        raise ValueError(f"the deeper model lacks {missing[:3]}: not the base deepened")
    base_layers = 1 + max(int(key.split(".")[1]) for key in state if key.startswith("blocks."))
    deeper = {key: state.get(key, value) for key, value in fresh.items()}
    return {key: torch.zeros_like(value) if _zero_started(key, base_layers) else value for key, value in deeper.items()}


def _zero_started(key: str, base_layers: int) -> bool:
    """Whether `key` is a new block's skip conv or the residual conv the base's last block gains."""
    parts = key.split(".")
    if parts[0] != "blocks" or len(parts) < 3:
        return False
    index, conv = int(parts[1]), parts[2]
    return (index >= base_layers and conv == "skip") or (index == base_layers - 1 and conv == "residual")
