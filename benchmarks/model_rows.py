"""What the per-model diagnostic benchmarks share (`leak.py`, `pitch.py`, `bands.py`): the unseen mixtures
they read, the model or IRM oracle that separates them, rows merged by model name into one result file, and
that file's header (when, on what machine)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

RATE = 44100  # quality.py's mixtures


def parser(doc: str, out: str) -> argparse.ArgumentParser:
    """The options of a benchmark over the unseen mixtures: --model (repeated), --mixtures, --tracks, --out."""
    options = argparse.ArgumentParser(description=doc.splitlines()[0])
    options.add_argument("--model", action="append", default=[], help="NAME=SPEC (default base=pretrained)")
    options.add_argument("--mixtures", type=Path, default=Path("data/quality/mixtures5"))
    options.add_argument("--tracks", type=int, default=None, help="only the first N mixtures (a quick look)")
    options.add_argument("--out", type=Path, default=Path(out))
    return options


def unseen_mixtures(mixtures: Path, tracks: int | None, tag: str) -> list[dict] | None:
    """The rows of `mixtures/unseen/mixtures.json` (`quality.py`'s unseen-conditions set), the first `tracks` of
    them; None, with the reason on stderr, when `quality.py` has not built them."""
    listing = mixtures / "unseen" / "mixtures.json"
    if not listing.exists():
        print(f"[{tag}] no mixtures in {listing.parent}: run benchmarks/quality.py once to build them, "
              f"or pass --mixtures", file=sys.stderr)
        return None
    return json.loads(listing.read_text())["mixtures"][:tracks]


def estimator(spec: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """`(voice, accompaniment) -> vocals`, each `(channels, samples)` at `RATE`: the model `spec` names
    (what `vocalsep.Separator` takes) given their sum, or, for `irm`, the ideal-ratio-mask oracle given both."""
    from vocalsep import Separator
    from vocalsep.metrics import ideal_ratio_mask
    if spec == "irm":
        return ideal_ratio_mask
    separator = Separator(spec, "cpu", threads=2)
    return lambda voice, accompaniment: separator.vocals(np.ascontiguousarray((voice + accompaniment).T), RATE).T


def merged(out: Path, items: list[str], score: Callable[[str], dict]) -> dict[str, dict]:
    """The models already in `out`, with each `NAME=SPEC` of `items` (default `base=pretrained`) scored anew."""
    old = json.loads(out.read_text()) if out.exists() else {}
    models = dict(old.get("models", {}))
    for item in items or ["base=pretrained"]:
        name, _, spec = item.partition("=")
        models[name] = score(spec or name)
    return models


def write(out: Path, benchmark: str, setup: dict, models: dict[str, dict]) -> None:
    """`out`: the benchmark's name, when and on what machine it ran, its setup and its models' rows."""
    result = {"benchmark": benchmark, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}, "setup": setup, "models": models}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
