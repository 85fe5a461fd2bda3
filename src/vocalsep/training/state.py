"""What a training run must remember to resume: progress, best score, RNG states, and last.pt itself.

A run resumes from `last.pt` only when the checkpoint was made with the same
model, data and train sections, sample rate and training data (index hash);
anything else starts fresh, so a resumed run is always the run that was planned.
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vocalsep.config import Params, params_to_dict
from vocalsep.model.checkpoint import load_checkpoint

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """Counters and history carried in last.pt; `step` counts optimizer steps over the whole run."""

    step: int = 0
    best_si_sdr: float = float("-inf")
    best_l1: float = float("nan")
    best_epoch: int = -1
    epochs_done: int = 0
    stale_epochs: int = 0  # epochs since the last val improvement (early stopping)
    stopped_early: bool = False
    examples_per_second: float = 0.0
    run_id: str | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, mean train loss)
    val: list[dict[str, float]] = field(default_factory=list)  # per epoch: epoch, step, l1, si_sdr, lr
    start: dict[str, float] = field(default_factory=dict)  # l1, si_sdr of the pretrained start (train.init)


def index_hash(index_dir: str | Path) -> str:
    """sha256 over the split parquet files of the snippet index (names and bytes)."""
    digest = hashlib.sha256()
    for path in sorted(Path(index_dir).glob("*.parquet")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


# train settings that change how a run executes, not what it computes: changing them keeps progress
RUNTIME_KEYS = frozenset({"device", "workers", "compile", "log_every", "checkpoint_every"})


def training_code_hash() -> str:
    """sha256 over the code that defines what training computes (model, data, training, train stage)."""
    import vocalsep

    root = Path(vocalsep.__file__).parent
    files = sorted([*root.glob("model/*.py"), *root.glob("data/*.py"), *root.glob("training/*.py"),
                    root / "stages" / "train.py"])
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def resume_key(params: Params, data_hash: str) -> dict[str, Any]:
    """Everything that must match for last.pt to continue the current run.

    The params that shape the result, the data, and the training code: after a
    code change DVC re-runs the stage, and it must retrain rather than find
    the old run complete. Runtime settings (RUNTIME_KEYS) are left out.
    """
    values = params_to_dict(params)
    train = {k: v for k, v in values["train"].items() if k not in RUNTIME_KEYS}
    return {"model": values["model"], "data": values["data"], "train": train,
            "sample_rate": params.audio.sample_rate, "data_hash": data_hash, "code": training_code_hash()}


def rng_states() -> dict[str, Any]:
    # plain data only (numpy's key as a list), so last.pt loads with torch.load(weights_only=True)
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"] = {**numpy_state["state"], "key": numpy_state["state"]["key"].tolist()}
    states = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    numpy_state = dict(states["numpy"])
    numpy_state["state"] = {**numpy_state["state"], "key": np.asarray(numpy_state["state"]["key"], dtype=np.uint32)}
    np.random.set_state(numpy_state)
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def load_resumable(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """last.pt as a dict when it continues the run described by `key`, else None (start fresh)."""
    if not path.exists():
        return None
    try:
        ckpt = load_checkpoint(path)
    except Exception as err:  # a corrupt last.pt costs the progress, not the run
        log.warning("%s cannot be read (%s); starting fresh", path, err)
        return None
    if ckpt.get("resume_key") != key:
        log.info("%s was made with other model/data/train params, data or training code; starting fresh", path)
        return None
    return ckpt


def progress_from(ckpt: dict[str, Any] | None) -> Progress:
    if ckpt is None:
        return Progress()
    values = dict(ckpt["progress"])
    values["losses"] = [tuple(x) for x in values["losses"]]
    return Progress(**values)


def progress_dict(progress: Progress) -> dict[str, Any]:
    return asdict(progress)
