"""What "no `--model`" means, and loading any model spec with the name of what was loaded.

`auto` (the default of `vocalsep separate`, `vocalsep.Separator(model="auto")`
and the `separate-library` flow) is the registry's champion when it learned
from real recordings, else the shipped base model: after `make run` the
champion has only heard the synthetic demo, which says little about real
voice over real music.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from vocalsep.config import TrackingParams
from vocalsep.errors import VocalsepError
from vocalsep.loading import checkpoint_path, load_separator, model_from_checkpoint
from vocalsep.model import load_checkpoint
from vocalsep.tracking import tracking_uri
from vocalsep.base_model.weights import CONFIG_NAME, PRETRAINED, PRETRAINED_LIVE, live_dir

DEFAULT_MODEL = "auto"
CHAMPION = "models:/vocalsep@champion"


def trained_on_demo_only(ckpt: dict) -> bool:
    """Whether a checkpoint's params say it learned from the synthetic demo corpus and nothing else."""
    params = ckpt.get("params") or {}
    corpus = (params.get("corpus") or {}).get("set", "none")
    sources = (params.get("download") or {}).get("sources", "")
    return corpus == "none" and Path(str(sources)).name == "demo.yaml"


def choose_model(device: str, tracking: TrackingParams | None = None) -> tuple[nn.Module, int, str]:
    """`auto`: the champion when it learned from real recordings, else the base model; and why."""
    model, rate, _, why = resolve_model(DEFAULT_MODEL, device, tracking)
    return model, rate, why


def default_choice(tracking: TrackingParams | None = None) -> tuple[str, str, dict | None]:
    """What `auto` means now: `(spec, why, the champion's checkpoint when it is the choice)`.

    Reads the registry's champion (its checkpoint, to see what it learned from); loads no model.
    """
    uri = tracking_uri(tracking or TrackingParams())
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        why = f"the registry has no champion yet ({uri} does not exist)"  # reading it would create a store
        return PRETRAINED, f"pretrained (the shipped base model, trained on real recordings): {why}", None
    try:
        ckpt = load_checkpoint(checkpoint_path(CHAMPION, tracking), map_location="cpu")
    except VocalsepError as err:
        why = f"the registry has no champion yet ({str(err).splitlines()[0][:160]})"
    else:
        if not trained_on_demo_only(ckpt):
            return CHAMPION, f"{CHAMPION} (the registry's champion)", ckpt
        why = (f"{CHAMPION} was trained only on the synthetic demo corpus; "
               f"pass --model {CHAMPION} to use it anyway")
    return PRETRAINED, f"pretrained (the shipped base model, trained on real recordings): {why}", None


def resolve_model(spec: str, device: str, tracking: TrackingParams | None = None) -> tuple[nn.Module, int, str, str]:
    """`(model, rate, concrete spec, why)` for any spec; `auto` becomes `pretrained` or the champion's URI.

    The concrete spec is what other processes (worker pools, Dask workers) load to get the same model.
    """
    if spec != DEFAULT_MODEL:
        model, rate = load_separator(spec, device, tracking)
        return model, rate, spec, spec
    chosen, why, ckpt = default_choice(tracking)
    if ckpt is not None:
        model, rate = model_from_checkpoint(ckpt, device)
    else:
        model, rate = load_separator(chosen, device, tracking)
    return model, rate, chosen, why


def stream_default() -> tuple[str, str]:
    """What `vocalsep stream` uses without --model: the shipped low-latency model, else the base model."""
    if (live_dir() / CONFIG_NAME).is_file():
        return PRETRAINED_LIVE, "pretrained-live (the shipped low-latency model)"
    return PRETRAINED, (f"pretrained (no {live_dir()} here: the offline base model, which looks about 1.6 s "
                        "ahead; restore pretrained-live/ for live use)")
