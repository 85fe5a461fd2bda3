"""Self-describing checkpoints: class name, constructor kwargs, weights, params, git sha."""

from __future__ import annotations

import inspect
import os
import pickle
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vocalsep.errors import VocalsepError
from vocalsep.model.families import MODELS

DEFAULT_SAMPLE_RATE = 44100  # of checkpoints whose params lack audio.sample_rate


def git_sha(cwd: str | Path = ".") -> str:
    """The current commit, or 'unknown' outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def code_sha() -> str:
    """The commit of the checkout that holds the running vocalsep code, so a checkpoint names the code that trained
    it even when the DVC workspace is another repository; the working directory's commit when the code is installed
    outside any git checkout."""
    sha = git_sha(Path(__file__).resolve().parent)
    return sha if sha != "unknown" else git_sha()


def model_class(name: str) -> type[nn.Module]:
    """The model family called `name` (a key of MODELS), or an error listing the known ones."""
    if name not in MODELS:
        raise VocalsepError(f"unknown model class {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name]


def build_model(name: str, kwargs: dict[str, Any]) -> nn.Module:
    return model_class(name)(**kwargs)


def model_kwargs(name: str, section: dict[str, Any]) -> dict[str, Any]:
    """The keys of the `model` params section that model class `name` takes (its constructor's arguments)."""
    accepted = inspect.signature(model_class(name)).parameters
    return {k: v for k, v in section.items() if k in accepted and k != "name"}


def full_kwargs(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """`kwargs` with every constructor default of model class `name` filled in: two configs that
    build the same module compare equal even when one was written before a new argument existed."""
    defaults = {k: p.default for k, p in inspect.signature(model_class(name)).parameters.items()
                if p.default is not inspect.Parameter.empty and k != "channels"}
    return {**defaults, **kwargs}


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
        "git_sha": extra.pop("git_sha", None) or code_sha(),
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


CHECKPOINT_KEYS = ("class", "kwargs", "state")
WHAT_IS_A_CHECKPOINT = ("a vocalsep checkpoint is the .pt file the train stage writes (models/checkpoints/best.pt) "
                        "or an MLflow model this project registered: a dict of class, kwargs, state and params, "
                        "tensors and plain data only")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint written by `save_checkpoint`, loaded without running any code from the file.

    `torch.load(weights_only=True)` unpickles tensors and plain containers
    only: any other Python object (a class, a function, `os.system`) is
    refused before it is built. Anything that is not our dict of class,
    kwargs and state (a bare state_dict, another program's file) is an error
    naming the file.
    """
    path = Path(path)
    if path.is_dir():
        raise VocalsepError(f"{path}: is a directory, not a checkpoint file; {WHAT_IS_A_CHECKPOINT}")
    if not path.exists():
        raise VocalsepError(f"{path}: checkpoint not found; run the train stage first (dvc repro train)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" in str(err):  # a class or function: the way a pickle runs code
            named = re.search(r"GLOBAL (\S+)", str(err))
            raise VocalsepError(f"{path}: refused: it names the Python object "
                                f"{named.group(1) if named else '(unknown)'}, and objects other than tensors and "
                                "plain data could run code when loaded; nothing from it was run. "
                                f"{WHAT_IS_A_CHECKPOINT}") from None
        reason = next((line.strip() for line in str(err).splitlines() if line.strip()), "")[:200]
        raise VocalsepError(f"{path}: not a vocalsep checkpoint (cannot be read: {reason}); "
                            f"{WHAT_IS_A_CHECKPOINT}") from None
    except Exception as err:  # torch raises many types for a corrupt or foreign file
        raise VocalsepError(f"{path}: not a vocalsep checkpoint (cannot be read: {str(err)[:200]}); "
                            f"{WHAT_IS_A_CHECKPOINT}") from None
    if not isinstance(ckpt, dict):
        raise VocalsepError(f"{path}: not a vocalsep checkpoint (it holds a {type(ckpt).__name__}); "
                            f"{WHAT_IS_A_CHECKPOINT}")
    missing = [key for key in CHECKPOINT_KEYS if key not in ckpt]
    if missing:
        bare = ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values())
        hint = ("it looks like a bare state_dict (weights without the model class and kwargs); save it with "
                "vocalsep.model.save_checkpoint(path, model, kwargs)" if bare else f"it has no {', '.join(missing)}")
        raise VocalsepError(f"{path}: not a vocalsep checkpoint: {hint}. {WHAT_IS_A_CHECKPOINT}")
    return ckpt


def model_from_state(ckpt: dict[str, Any]) -> nn.Module:
    """The model a loaded checkpoint describes (class, kwargs, weights), in eval mode."""
    model = build_model(ckpt["class"], ckpt["kwargs"])
    model.load_state_dict(ckpt["state"])
    return model.eval()


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model from its own checkpoint file, in eval mode."""
    return model_from_state(load_checkpoint(path, map_location))


def checkpoint_sample_rate(ckpt: dict[str, Any]) -> int:
    """The rate a checkpoint's model was trained at (its params' audio.sample_rate)."""
    return int(((ckpt.get("params") or {}).get("audio") or {}).get("sample_rate", DEFAULT_SAMPLE_RATE))
