"""Weight averaging of checkpoints of one architecture (a "model soup", Wortsman et al. 2022).

Fine-tunes of one model that start from the same weights stay in one basin
of the loss, so the average of their weights is a model too, and often better
than each: base_v10 is the uniform average of three 1000-step fine-tunes of
base_v8 (docs/performance.md). `vocalsep average` (vocalsep.cli.average) writes one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from vocalsep.errors import VocalsepError
from vocalsep.model.checkpoint import full_kwargs


def average_states(checkpoints: Sequence[tuple[str, dict[str, Any]]], weights: Sequence[float] | None = None
                   ) -> dict[str, torch.Tensor]:
    """The weighted mean of the checkpoints' floating-point tensors (weights normalised to sum to 1);
    any other tensor must be equal in all. `checkpoints` are `(name, checkpoint)`; errors name the files."""
    if len(checkpoints) < 2:
        raise VocalsepError("average needs at least two checkpoints")
    weights = [1.0] * len(checkpoints) if weights is None else list(weights)
    if len(weights) != len(checkpoints) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise VocalsepError(f"--weights: need {len(checkpoints)} numbers >= 0, not all 0, one per checkpoint; "
                            f"got {weights}")
    (first_name, first), total = checkpoints[0], sum(weights)
    for name, ckpt in checkpoints[1:]:
        _check_same_model(first_name, first, name, ckpt)
    averaged = {}
    for key, value in first["state"].items():
        if not value.is_floating_point():
            if any(not torch.equal(c["state"][key], value) for _, c in checkpoints):
                raise VocalsepError(f"{key}: a non-float tensor differs between the checkpoints; they cannot be averaged")
            averaged[key] = value.clone()
            continue
        mean = sum(w / total * c["state"][key].double() for w, (_, c) in zip(weights, checkpoints))
        averaged[key] = torch.as_tensor(mean).to(value.dtype)
    return averaged


def _check_same_model(first_name: str, first: dict[str, Any], name: str, ckpt: dict[str, Any]) -> None:
    if ckpt["class"] != first["class"] or full_kwargs(ckpt["class"], ckpt["kwargs"]) != full_kwargs(
            first["class"], first["kwargs"]):
        raise VocalsepError(f"{name} is {ckpt['class']}({ckpt['kwargs']}) but {first_name} is "
                            f"{first['class']}({first['kwargs']}); only checkpoints of one architecture can be averaged")
    shapes = {k: tuple(v.shape) for k, v in ckpt["state"].items()}
    if shapes != {k: tuple(v.shape) for k, v in first["state"].items()}:
        raise VocalsepError(f"{name} and {first_name}: their weights differ in names or shapes; "
                            "only checkpoints of one architecture can be averaged")
