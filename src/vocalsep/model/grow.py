"""A wider HybridVocNet that computes exactly what a trained one computes (Net2WiderNet, Chen et al. 2016).

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
    same_rest = {k: v for k, v in base.items() if k not in WIDENABLE} == {
        k: v for k, v in wanted.items() if k not in WIDENABLE}
    factor = factors.pop() if len(factors) == 1 else 0
    return int(factor) if same_rest and factor >= 2 and factor == int(factor) else 1


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
