"""Loading a model for separation from any spec a user may give: one home for all of them.

- `pretrained`: the shipped base model (`vocalsep.base_model.weights`); `pretrained-live`: the shipped
  low-latency model;
- a local checkpoint path (`models/checkpoints/best.pt`);
- `models:/NAME@ALIAS`, `models:/NAME/VERSION` or `runs:/RUN_ID/PATH`: fetched from the MLflow
  registry (`vocalsep.registry`) of `tracking` (`MLFLOW_TRACKING_URI` wins when set).

Each returns the model (eval mode, on the device) and the sample rate it was trained at.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vocalsep.config import TrackingParams
from vocalsep.devices import pick_device
from vocalsep.errors import VocalsepError
from vocalsep.model.checkpoint import checkpoint_sample_rate, load_checkpoint, model_from_state
from vocalsep.base_model.weights import PRETRAINED, PRETRAINED_LIVE, load_pretrained, shipped_dir
from vocalsep.registry import checkpoint_from_uri

MODEL_URI_SCHEMES = ("models:/", "runs:/")
MODEL_SPECS = ("use auto, pretrained, pretrained-live, a local checkpoint file (models/checkpoints/best.pt), models:/NAME@ALIAS, "
               "models:/NAME/VERSION or runs:/RUN_ID/PATH (download a remote checkpoint first)")
Device = str | torch.device


def _device(device: Device) -> torch.device:
    """A torch device as given, or the one a setting (`auto`, `cpu`, `cuda`) means."""
    return device if isinstance(device, torch.device) else pick_device(device, "separate.device")


def checkpoint_path(spec: str, tracking: TrackingParams | None = None) -> Path:
    """A local checkpoint path, or the checkpoint behind a `models:/...` or `runs:/...` MLflow URI."""
    if spec.startswith(MODEL_URI_SCHEMES):
        return checkpoint_from_uri(spec, tracking or TrackingParams())
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]+):", spec)
    if scheme:  # https://, s3://, file:... would become a mangled path ("https:/host/...")
        raise VocalsepError(f"{spec}: a {scheme[1]}: URL is not a model spec vocalsep reads; {MODEL_SPECS}")
    return Path(spec)


def model_from_checkpoint(ckpt: dict[str, Any], device: Device = "cpu") -> tuple[nn.Module, int]:
    """Rebuild a checkpoint's model (eval mode, on `device`) and read its rate (params audio.sample_rate)."""
    return model_from_state(ckpt).to(_device(device)), checkpoint_sample_rate(ckpt)


def load_separator(spec: str, device: Device = "cpu",
                   tracking: TrackingParams | None = None) -> tuple[nn.Module, int]:
    """The model of `pretrained`, a checkpoint path or an MLflow model URI (eval mode, on `device`) and its rate."""
    if spec in (PRETRAINED, PRETRAINED_LIVE):
        model, rate = load_pretrained(shipped_dir(spec))
        return model.to(_device(device)), rate
    return model_from_checkpoint(load_checkpoint(checkpoint_path(spec, tracking), map_location="cpu"), device)
