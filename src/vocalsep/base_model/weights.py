"""The shipped base model: safetensors weights and a JSON config in `pretrained/`, never a pickle.

`vocalsep separate --model pretrained` loads it; it is the fallback when the
registry has no champion, and `train.init: pretrained` fine-tunes it.
`export_pretrained` writes it from a training checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from vocalsep.errors import VocalsepError
from vocalsep.model.checkpoint import build_model, checkpoint_sample_rate, full_kwargs
from vocalsep.model.grow import WIDENABLE, deepen_state, depth_added, same_except, widen_state, width_factor

PRETRAINED = "pretrained"  # the name users pass as --model
PRETRAINED_LIVE = "pretrained-live"  # the shipped low-latency model, in pretrained-live/ (vocalsep stream's default)
WEIGHTS_NAME = "vocalsep-base.safetensors"
CONFIG_NAME = "vocalsep-base.json"
FORMAT = "vocalsep-pretrained/1"


def pretrained_dir() -> Path:
    """`$VOCALSEP_PRETRAINED`, else `pretrained/` at the root of this checkout."""
    override = os.environ.get("VOCALSEP_PRETRAINED")
    return Path(override) if override else Path(__file__).resolve().parents[3] / "pretrained"


def live_dir() -> Path:
    """`$VOCALSEP_PRETRAINED_LIVE`, else `pretrained-live/` at the root of this checkout."""
    override = os.environ.get("VOCALSEP_PRETRAINED_LIVE")
    return Path(override) if override else Path(__file__).resolve().parents[3] / PRETRAINED_LIVE


def shipped_dir(name: str) -> Path:
    """The folder of a shipped model by the name users pass as --model."""
    return live_dir() if name == PRETRAINED_LIVE else pretrained_dir()


def read_config(folder: str | Path | None = None) -> dict[str, Any]:
    """The base model's JSON config: class, kwargs, sample_rate, and how it was made."""
    path = Path(folder or pretrained_dir()) / CONFIG_NAME
    if not path.is_file():
        raise VocalsepError(f"{path}: the shipped base model is missing; restore pretrained/ from git "
                            "(git checkout -- pretrained) or set VOCALSEP_PRETRAINED to its folder")
    try:
        config = json.loads(path.read_text())
    except ValueError as err:
        raise VocalsepError(f"{path}: not valid JSON ({err}); restore it from git") from None
    if config.get("format") != FORMAT:
        raise VocalsepError(f"{path}: format {config.get('format')!r} is not {FORMAT!r}; restore it from git")
    return config


def load_pretrained(folder: str | Path | None = None) -> tuple[nn.Module, int]:
    """The base model (eval mode, CPU) and the sample rate it works at."""
    folder = Path(folder or pretrained_dir())
    config = read_config(folder)
    model = build_model(config["class"], config["kwargs"])
    _load_weights(model, folder, config)
    return model.eval(), int(config["sample_rate"])


def _load_weights(model: nn.Module, folder: Path, config: dict[str, Any], strict: bool = True,
                  widen: int = 1, deepen: bool = False) -> None:
    """Load `folder/WEIGHTS_NAME` into `model`; errors name the file and say to restore pretrained/.
    `strict` False: `model` may hold parameters the file lacks (a grown part), never the other way round.
    `widen` k > 1: `model` is the file's model k times wider, started as `vocalsep.model.grow` widens it;
    `deepen`: `model` is the file's model with more blocks, started as `vocalsep.model.grow` deepens it."""
    weights = folder / WEIGHTS_NAME
    try:
        state = load_file(str(weights))
    except (OSError, ValueError, RuntimeError, SafetensorError) as err:  # missing, truncated or not safetensors
        raise VocalsepError(f"{weights}: cannot read the base model's weights ({err}); "
                            "restore pretrained/ from git") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}  # float16 files too
    if widen > 1:
        state = widen_state(state, widen)
    if deepen:
        state = deepen_state(state, model.state_dict())
    try:
        result = model.load_state_dict(state, strict=strict)
        if result.unexpected_keys:
            raise RuntimeError(f"unexpected keys {result.unexpected_keys}")
    except RuntimeError as err:
        raise VocalsepError(f"{weights}: weights do not fit {config['class']}({config['kwargs']}): {err}") from None


WEIGHT_DTYPES = {"float32": torch.float32, "float16": torch.float16}  # how the safetensors file stores the weights


def export_pretrained(ckpt: dict[str, Any], folder: str | Path, dtype: str = "float32", **provenance: Any) -> Path:
    """Write a training checkpoint's model as `folder/{WEIGHTS_NAME, CONFIG_NAME}`; returns the config path.
    `dtype` float16 halves the file (loading casts back to float32: a relative change of about 5e-4 per weight)."""
    if dtype not in WEIGHT_DTYPES:
        raise VocalsepError(f"weights dtype {dtype!r}: use one of {', '.join(WEIGHT_DTYPES)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: _stored(v.detach().contiguous().cpu(), WEIGHT_DTYPES[dtype]) for k, v in ckpt["state"].items()}
    # one metadata key (the format is the config's): safetensors writes its metadata map in a random order, so
    # two keys would make the same weights a different file on each publish, and a new registry version of the base
    save_file(state, str(folder / WEIGHTS_NAME), metadata={"class": ckpt["class"]})
    config = {
        "format": FORMAT,
        "class": ckpt["class"],
        "kwargs": full_kwargs(ckpt["class"], ckpt["kwargs"]),
        "sample_rate": checkpoint_sample_rate(ckpt),
        "parameters": int(sum(v.numel() for v in state.values())),
        "git_sha": ckpt.get("git_sha"),
        "step": ckpt.get("step"),
        **({"weights_dtype": dtype} if dtype != "float32" else {}),  # float32 configs stay as they were written
        **provenance,
    }
    path = folder / CONFIG_NAME
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return path


def _stored(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Floating tensors in the stored dtype; integer buffers as they are."""
    return tensor.to(dtype) if tensor.is_floating_point() else tensor


GROWABLE = {"refine_width": 0, "stereo_features": False}  # kwargs a fine-tune may add to the base model: the new part starts as the identity


def init_from_pretrained(model: nn.Module, name: str, kwargs: dict[str, Any], folder: str | Path | None = None) -> None:
    """Load the base model's weights into `model` (`train.init: pretrained`); the architectures must match,
    except that `model` may add a part the base lacks (`GROWABLE`), which keeps its own identity start, or be
    a HybridVocNet k times wider (`filters` and `skip_filters`) or whole stacks deeper (`layers`), started as
    the base widened or deepened (`vocalsep.model.grow`)."""
    folder = Path(folder or pretrained_dir())
    config = read_config(folder)
    base, wanted = full_kwargs(name, config["kwargs"]), full_kwargs(name, kwargs)
    grown = {k for k, off in GROWABLE.items() if base.get(k) == off and wanted.get(k) != off}
    hybrid = config["class"] == name == "HybridVocNet"
    widen = width_factor(base, wanted) if hybrid else 1
    deepen = hybrid and depth_added(base, wanted) > 0
    ignored = grown | (set(WIDENABLE) if widen > 1 else set()) | ({"layers"} if deepen else set())
    if config["class"] != name or not same_except(base, wanted, ignored):
        raise VocalsepError(
            f"train.init is pretrained, but the base model is {config['class']}({config['kwargs']}) and "
            f"params.yaml asks for {name}({kwargs}); set the model section to the base model's "
            f"(as in params-real.yaml; it may add {', '.join(GROWABLE)}, multiply filters and skip_filters "
            "by one integer, or add whole stacks of layers_per_stack to layers) or use train.init: scratch")
    _load_weights(model, folder, config, strict=not grown, widen=widen, deepen=deepen)
