"""Self-describing checkpoints: class name, constructor kwargs, weights, params, git sha."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vocalsep.errors import VocalsepError


def git_sha(cwd: str | Path = ".") -> str:
    """The current commit, or 'unknown' outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def build_model(name: str, kwargs: dict[str, Any]) -> nn.Module:
    from vocalsep.model import MODELS

    if name not in MODELS:
        raise VocalsepError(f"unknown model class {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name](**kwargs)


def model_kwargs(name: str, section: dict[str, Any]) -> dict[str, Any]:
    """The keys of the `model` params section that model class `name` takes (its constructor's arguments)."""
    import inspect

    from vocalsep.model import MODELS

    if name not in MODELS:
        raise VocalsepError(f"unknown model class {name!r}; known: {', '.join(MODELS)}")
    accepted = inspect.signature(MODELS[name]).parameters
    return {k: v for k, v in section.items() if k in accepted and k != "name"}


def save_checkpoint(path: str | Path, model: nn.Module, kwargs: dict[str, Any], **extra: Any) -> None:
    """Write atomically (temp file + rename): a crash never leaves a half-written checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = getattr(model, "_orig_mod", model)  # torch.compile wrapper
    model = getattr(model, "module", model)  # DistributedDataParallel wrapper
    state = {
        "class": type(model).__name__,
        "kwargs": dict(kwargs),
        "state": model.state_dict(),
        "git_sha": extra.pop("git_sha", None) or git_sha(),
        **extra,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise VocalsepError(f"{path}: checkpoint not found; run the train stage first (dvc repro train)")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch raises many types for a corrupt file
        raise VocalsepError(f"{path}: not a readable vocalsep checkpoint ({err}); retrain or restore it") from None


def model_from_state(ckpt: dict[str, Any]) -> nn.Module:
    """The model a loaded checkpoint describes (class, kwargs, weights), in eval mode."""
    model = build_model(ckpt["class"], ckpt["kwargs"])
    model.load_state_dict(ckpt["state"])
    return model.eval()


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model from its own checkpoint file, in eval mode."""
    return model_from_state(load_checkpoint(path, map_location))
