"""What a finished training run leaves behind: train.json, train_loss.csv, and MLflow figure and audio."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from vocalsep import tracking
from vocalsep.training.loop import predict
from vocalsep.training.state import Progress


def summary(progress: Progress) -> dict[str, float | int]:
    """The `metrics/train.json` content: best-epoch validation scores and run totals (and, for a fine-tune,
    `start_val_l1` and `start_val_si_sdr`: the pretrained start's scores on the same validation mixtures)."""
    return {
        "val_l1": progress.best_l1,
        "val_si_sdr": progress.best_si_sdr,
        "best_epoch": progress.best_epoch,
        "steps": progress.step,
        "epochs": progress.epochs_done,
        "examples_per_second": round(progress.examples_per_second, 3),
        **{f"start_val_{k}": v for k, v in progress.start.items()},
    }


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", newline="") as handle:
        handle.write(text)
    os.replace(tmp, path)


def write_outputs(progress: Progress, train_json: str | Path, plots_dir: str | Path) -> dict[str, float | int]:
    """Write `train_json` (`paths.train_metrics`) and `<plots>/train_loss.csv` (columns step, loss); return the summary."""
    values = summary(progress)
    _write_atomic(Path(train_json), json.dumps(values, indent=2) + "\n")
    rows = ["step,loss"] + [f"{step},{loss:.6g}" for step, loss in progress.losses]
    _write_atomic(Path(plots_dir) / "train_loss.csv", "\n".join(rows) + "\n")
    return values


def loss_figure(progress: Progress):
    """Train loss per logged step and validation L1 per epoch on one axis, SI-SDR on a twin axis."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4), dpi=100)
    axis = top = figure.subplots()
    if progress.losses:
        steps, losses = zip(*progress.losses)
        axis.plot(steps, losses, label="train loss", color="tab:blue")
    if progress.val:
        axis.plot([v["step"] for v in progress.val], [v["l1"] for v in progress.val], "o-",
                  label="val L1", color="tab:orange")
        top = axis.twinx()
        top.plot([v["step"] for v in progress.val], [v["si_sdr"] for v in progress.val], "s--",
                 label="val SI-SDR", color="tab:green")
        top.set_ylabel("val SI-SDR (dB)")
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("loss")
    handles = [h for a in dict.fromkeys((axis, top)) for h in a.get_legend_handles_labels()[0]]
    top.legend(handles=handles, loc="center right")  # on the twin axis: drawn above both curves
    figure.tight_layout()
    return figure


def log_examples(model: nn.Module, mixture: torch.Tensor, vocals: torch.Tensor, sample_rate: int,
                 device: torch.device, count: int = 3) -> None:
    """Log mixture, target and estimate wavs of the first `count` validation mixtures `(n, 2, samples)`."""
    estimate = predict(model, mixture[:count], count, device, amp=False)
    for i in range(min(count, mixture.shape[0])):
        for name, audio in (("mixture", mixture[i]), ("target", vocals[i]), ("estimate", estimate[i])):
            tracking.log_audio(f"val_{i}_{name}", audio.numpy(), sample_rate, folder="audio/val")
