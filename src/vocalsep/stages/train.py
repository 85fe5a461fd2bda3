"""The train stage: VocNet on mixtures made on the fly, resumable, tracked in MLflow.

`python -m vocalsep.stages.train [--params FILE]` runs one process;
`torchrun --nproc_per_node=N -m vocalsep.stages.train` runs N DDP ranks with
the same global batch and step count (see docs/training.md). Only rank 0
validates, writes checkpoints and outputs, and talks to MLflow.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from vocalsep import provenance, tracking
from vocalsep.config import Params, params_to_dict
from vocalsep.data import MixtureDataset, read_index, validation_set
from vocalsep.model.checkpoint import build_model, code_sha, load_model, model_kwargs, save_checkpoint
from vocalsep.base_model.weights import init_from_pretrained
from vocalsep.stages._cli import run_stage
from vocalsep.training import distributed, report
from vocalsep.training.loop import make_optimizer, make_scheduler, train_step, validate
from vocalsep.training.state import (Progress, index_hash, load_resumable, progress_dict,
                                     progress_from, restore_rng_states, resume_key, rng_states)

log = logging.getLogger(__name__)
CHECKPOINTS_TAG = "vocalsep.checkpoints"  # run tag: the checkpoint folder the run writes (finds orphan runs)


@dataclass
class Session:
    """One training run in one process: the model (raw and wrapped), optimizer, data and progress."""

    params: Params
    ctx: distributed.Context
    raw: nn.Module  # the VocNet itself: checkpoints and validation use it
    model: nn.Module  # what trains: raw, or wrapped by DDP and/or torch.compile
    kwargs: dict[str, Any]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    dataset: MixtureDataset
    val: tuple[torch.Tensor, torch.Tensor]  # (mixture, vocals), each (val_examples, 2, segment)
    key: dict[str, Any]
    progress: Progress
    sha: str
    timing: list[float] = field(default_factory=lambda: [0.0, 0.0])  # (examples, seconds) in this process

    @property
    def steps_per_epoch(self) -> int:
        return self.params.data.examples_per_epoch // self.params.train.batch_size

    @property
    def total_steps(self) -> int:
        return self.params.train.epochs * self.steps_per_epoch

def train(params: Params) -> dict[str, float | int]:
    """Train the separator; returns the train.json metrics (empty on ranks other than 0)."""
    ctx = distributed.setup(params.train.device)
    try:
        session = _prepare(params, ctx)
        if not ctx.is_main:
            _fit(session)
            return {}
        folder = str(Path(params.paths.checkpoints).resolve())
        ended = tracking.end_orphan_runs(params.tracking, CHECKPOINTS_TAG, folder, keep=session.progress.run_id)
        if ended:
            log.info("marked KILLED the MLflow run(s) %s: their process died without ending them",
                     ", ".join(ended))
        with tracking.start_run(params.tracking, session.progress.run_id, run_name="train",
                                tags={CHECKPOINTS_TAG: folder}) as run_id:
            session.progress.run_id = run_id
            _log_run_info(session)
            _score_start(session)
            _fit(session)
            return _finish(session)
    finally:
        distributed.teardown(ctx)


def _prepare(params: Params, ctx: distributed.Context) -> Session:
    for seed_fn in (torch.manual_seed, np.random.seed, random.seed):
        seed_fn(params.train.seed)
    sr, paths = params.audio.sample_rate, params.paths
    dataset = MixtureDataset(read_index(paths.split("train")), params.data, sr,
                             examples=params.data.examples_per_epoch, seed=params.data.seed,
                             where=str(paths.split("train")))
    val = validation_set(read_index(paths.split("val")), params.data, sr, where=str(paths.split("val")))
    key = resume_key(params, index_hash(paths.index))
    ckpt = load_resumable(paths.last_checkpoint, key)
    total = params.train.epochs * (params.data.examples_per_epoch // params.train.batch_size)
    if ckpt is not None and _finished(ckpt, total):
        # DVC runs this stage again only when told to (dvc repro -f) or when a dep outside the resume
        # key changed: both ask for a new training, so a finished last.pt is a start, not a resume
        log.info("%s is a finished run (step %d of %d); training again from the start",
                 paths.last_checkpoint, ckpt["step"], total)
        ckpt = None
    kwargs = model_kwargs(params.model.name, params_to_dict(params)["model"])
    raw = build_model(params.model.name, kwargs).to(ctx.device)
    optimizer = make_optimizer(raw, params.train)
    scheduler = make_scheduler(optimizer, params.train.lr_schedule, total, params.train.warmup_steps)
    if ckpt is None and params.train.init == "pretrained":
        init_from_pretrained(raw, params.model.name, kwargs)
        log.info("starting from the shipped base model (train.init: pretrained)")
    if ckpt is not None:
        raw.load_state_dict(ckpt["state"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        restore_rng_states(ckpt["rng"])
        log.info("resuming from %s at step %d of %d", paths.last_checkpoint, ckpt["step"], total)
    return Session(params, ctx, raw, _wrap(raw, params, ctx), kwargs, optimizer, scheduler, dataset, val, key,
                   progress_from(ckpt), code_sha())


def _finished(ckpt: dict[str, Any], total: int) -> bool:
    progress = ckpt.get("progress") or {}
    return int(ckpt.get("step", 0)) >= total or bool(progress.get("stopped_early"))


def _wrap(raw: nn.Module, params: Params, ctx: distributed.Context) -> nn.Module:
    model = raw
    if ctx.distributed:
        device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    if params.train.compile:
        model = torch.compile(model)
    return model


def _log_run_info(s: Session) -> None:
    p = s.params
    tracking.log_params_flat(p)
    tracking.set_tags({
        "git_sha": s.sha, "device": str(s.ctx.device), "world_size": s.ctx.world_size,
        "data_hash": provenance.data_hash(p.paths), "index_sha256": s.key["data_hash"],
        "receptive_field": s.raw.receptive_field,
        "parameters": sum(x.numel() for x in s.raw.parameters()),
        "global_batch": p.train.batch_size, "total_steps": s.total_steps,
    })


def _score_start(s: Session) -> None:
    """A fine-tune (`train.init: pretrained`) is judged against its start: validate it before step 1 and
    log it as step 0 of val_si_sdr and val_l1 (rank 0; the other ranks wait at their first step)."""
    if s.params.train.init != "pretrained" or s.progress.step > 0:  # a resumed run kept its start in last.pt
        return
    s.progress.start = scores = validate(s.raw, *s.val, s.params.train.batch_size, s.ctx.device, s.params.train.amp)
    tracking.log_metrics({"val_l1": scores["l1"], "val_si_sdr": scores["si_sdr"]}, step=0)
    log.info("the start (train.init: pretrained): val L1 %.5f, val SI-SDR %.2f dB", scores["l1"], scores["si_sdr"])


def _fit(s: Session) -> None:
    """Run epochs until the planned steps are done or early stopping fires; resumes mid-epoch."""
    s.model.train()
    while s.progress.epochs_done < s.params.train.epochs and not s.progress.stopped_early:
        epoch = s.progress.epochs_done
        if s.progress.step < (epoch + 1) * s.steps_per_epoch:
            _run_epoch(s, epoch)
        _end_epoch(s, epoch)


def _run_epoch(s: Session, epoch: int) -> None:
    p, ctx = s.params.train, s.ctx
    s.dataset.set_epoch(epoch)
    first = s.progress.step - epoch * s.steps_per_epoch
    sampler = distributed.StepBatches(s.steps_per_epoch, p.batch_size, ctx.rank, ctx.world_size, first)
    loader = DataLoader(s.dataset, batch_sampler=sampler, num_workers=p.workers,
                        pin_memory=ctx.device.type == "cuda", persistent_workers=False)
    window: list[float] = []
    started = time.perf_counter()
    # one bar per epoch on rank 0: step count, steps/s (tqdm's rate), loss and audio seconds per second
    # (TQDM_DISABLE=1 turns it off; in a log that is not a terminal it redraws every 30 s, not twice a second)
    bar = tqdm(total=s.steps_per_epoch, initial=first, desc=f"epoch {epoch + 1}/{p.epochs}", unit="step",
               mininterval=0.5 if sys.stderr.isatty() else 30.0, dynamic_ncols=True,
               **({} if ctx.is_main else {"disable": True}))
    audio_per_step = p.batch_size * ctx.world_size * s.params.data.segment_seconds
    for mixture, vocals in loader:
        loss = train_step(s.model, s.optimizer, s.scheduler, mixture, vocals, p, ctx.device)
        window.append(loss)
        s.progress.step += 1
        bar.update(1)
        rate = (bar.n - first) / max(time.perf_counter() - started, 1e-9)  # steps/s over this epoch so far
        bar.set_postfix(loss=f"{loss:.4f}", audio_s_per_s=f"{rate * audio_per_step:.1f}", refresh=False)
        if s.progress.step % p.log_every == 0:
            _log_loss(s, distributed.mean_across_ranks(sum(window) / len(window), ctx))
            window = []
        if s.progress.step % p.checkpoint_every == 0 and s.progress.step % s.steps_per_epoch and ctx.is_main:
            _save_last(s)
    bar.close()
    s.timing[0] += (s.steps_per_epoch - first) * p.batch_size
    s.timing[1] += time.perf_counter() - started
    s.progress.examples_per_second = s.timing[0] / max(s.timing[1], 1e-9)


def _log_loss(s: Session, loss: float) -> None:
    s.progress.losses.append((s.progress.step, loss))
    if s.ctx.is_main:
        tracking.log_metrics({"train_loss": loss, "lr": s.scheduler.get_last_lr()[0]}, step=s.progress.step)


def _end_epoch(s: Session, epoch: int) -> None:
    """Validate (rank 0), keep best.pt, decide early stopping for every rank, write last.pt."""
    progress, stop = s.progress, False
    if s.ctx.is_main:
        scores = validate(s.raw, *s.val, s.params.train.batch_size, s.ctx.device, s.params.train.amp)
        improved = scores["si_sdr"] > progress.best_si_sdr or progress.best_epoch < 0
        if improved:
            progress.best_si_sdr, progress.best_l1, progress.best_epoch = scores["si_sdr"], scores["l1"], epoch
            progress.stale_epochs = 0
            _save_best(s, epoch)
        else:
            progress.stale_epochs += 1
        progress.val.append({"epoch": epoch, "step": progress.step, **scores})
        seconds_per_example = s.params.data.segment_seconds
        tracking.log_metrics({"val_l1": scores["l1"], "val_si_sdr": scores["si_sdr"], "epoch": epoch,
                              "examples_per_second": progress.examples_per_second,
                              "audio_seconds_per_second": progress.examples_per_second * seconds_per_example},
                             step=progress.step)
        log.info("epoch %d step %d: val L1 %.5f, val SI-SDR %.2f dB%s", epoch, progress.step, scores["l1"],
                 scores["si_sdr"], " (best)" if improved else "")
        stop = progress.stale_epochs >= s.params.train.early_stopping_patience
    progress.stopped_early = distributed.broadcast_flag(stop, s.ctx)
    progress.epochs_done = epoch + 1
    if s.ctx.is_main:
        _save_last(s)


def _common(s: Session) -> dict[str, Any]:
    return {"params": params_to_dict(s.params), "git_sha": s.sha, "mlflow_run_id": s.progress.run_id,
            "step": s.progress.step, "epoch": s.progress.epochs_done}


def _save_last(s: Session) -> None:
    save_checkpoint(s.params.paths.last_checkpoint, s.raw, s.kwargs, **_common(s), resume_key=s.key,
                    optimizer=s.optimizer.state_dict(), scheduler=s.scheduler.state_dict(), rng=rng_states(),
                    progress=progress_dict(s.progress))


def _save_best(s: Session, epoch: int) -> None:
    save_checkpoint(s.params.paths.best_checkpoint, s.raw, s.kwargs, **{**_common(s), "epoch": epoch},
                    val_l1=s.progress.best_l1, val_si_sdr=s.progress.best_si_sdr)


def _finish(s: Session) -> dict[str, float | int]:
    """Write train.json and train_loss.csv; log the loss figure and best-model audio to MLflow."""
    values = report.write_outputs(s.progress, s.params.paths.train_metrics, s.params.paths.plots)
    start = s.progress.start.get("si_sdr")
    if start is not None and s.progress.best_si_sdr <= start:
        log.warning("no epoch beat the pretrained start on validation (best %.2f dB, start %.2f dB): "
                    "best.pt is worse than the base model; keep the base or train with other settings",
                    s.progress.best_si_sdr, start)
    tracking.log_metrics({f"best_{k}": v for k, v in values.items() if k.startswith("val_")}, step=s.progress.step)
    tracking.log_figure(report.loss_figure(s.progress), "plots/train_loss.png")
    best = s.params.paths.best_checkpoint
    model = load_model(best).to(s.ctx.device) if best.exists() else s.raw
    report.log_examples(model, *s.val, s.params.audio.sample_rate, s.ctx.device)
    return values


def main(argv: list[str] | None = None) -> int:
    return run_stage("train", train, argv)


if __name__ == "__main__":
    sys.exit(main())
