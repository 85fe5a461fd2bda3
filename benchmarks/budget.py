"""Train one model configuration for a fixed CPU-time budget; writes best.pt and a JSON summary.

So that two architectures can be compared "with the same CPU budget": each
run trains on the real corpus's on-the-fly mixtures (the train stage's own
`MixtureDataset`, `train_step`, optimizer, loss, batch size and grad clip,
no DataLoader workers) until `--cpu-minutes` of this process's CPU time
(`time.process_time()`, training only: validation and checkpoint writes are
not counted) are used. The learning rate follows the run's own schedule,
computed from the fraction of the budget used: linear warm-up over the first
2 %, then cosine decay to 0 at the end of the budget, so the schedule
completes however loaded the machine is.

About every training CPU-minute (`--validate-every`; or, where one
validation costs more CPU than that, after as much training CPU as it cost)
and at the end the model is scored on the fixed validation mixtures (the
loop's `validate`, mean SI-SDR); the best is kept in
`<out>/best.pt`, a self-describing checkpoint (class, kwargs, weights,
params) that `vocalsep.loading.load_separator` loads. The validation
mixtures are `--val-seconds` long (default: the params file's own
`data.segment_seconds`, before `--set`), so runs with different training
segments still score the same audio.

Usage: python benchmarks/budget.py --name NAME [--params params-real.yaml] [--root .]
       [--set section.key=value ...] [--cpu-minutes 10] [--threads 1] [--validate-every 60]
       [--out data/budget/NAME] [--summary benchmarks/results/budget_NAME.json]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader

from vocalsep.config import Params, load_params, params_from_dict, params_to_dict
from vocalsep.data import MixtureDataset, read_index, validation_set
from vocalsep.model.checkpoint import build_model, code_sha, model_kwargs, save_checkpoint
from vocalsep.base_model.weights import init_from_pretrained
from vocalsep.training.distributed import StepBatches
from vocalsep.training.loop import lr_factor, make_optimizer, train_step, validate

WARMUP_FRACTION = 0.02  # of the CPU budget
SCHEDULE_RESOLUTION = 1_000_000  # lr_factor works on integer steps: the budget fraction in millionths
DEVICE = torch.device("cpu")


@dataclass
class CpuBudget:
    """CPU seconds of this process spent training, against a budget; `paused()` leaves time out."""

    seconds: float
    start: float = field(default_factory=time.process_time)
    excluded: float = 0.0  # CPU seconds inside `paused()` blocks (validation, checkpoint writes)

    def used(self) -> float:
        """Training CPU seconds used so far."""
        return time.process_time() - self.start - self.excluded

    def fraction(self) -> float:
        """The share of the budget used, in [0, 1]."""
        return min(self.used() / self.seconds, 1.0)

    def spent(self) -> bool:
        return self.used() >= self.seconds

    def lr_factor(self) -> float:
        """Multiplier of `train.lr` now: warm-up over the first 2 % of the budget, then cosine to 0."""
        step = int(self.fraction() * SCHEDULE_RESOLUTION)
        return lr_factor(step, "cosine", SCHEDULE_RESOLUTION, int(WARMUP_FRACTION * SCHEDULE_RESOLUTION))

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Run a block without counting its CPU time against the budget."""
        started = time.process_time()
        try:
            yield
        finally:
            self.excluded += time.process_time() - started


@dataclass
class Run:
    """The model, optimizer, data and record of one budgeted training run."""

    name: str
    params: Params
    model: nn.Module
    kwargs: dict[str, Any]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    dataset: MixtureDataset
    val: tuple[torch.Tensor, torch.Tensor]
    budget: CpuBudget
    out: Path
    val_batch: int = 1
    sha: str = field(default_factory=code_sha)  # the code's commit when the run started (HEAD may move while it runs)
    steps: int = 0
    examples: int = 0
    best_si_sdr: float = float("-inf")
    best_step: int = -1
    curve: list[tuple[float, int, float]] = field(default_factory=list)  # (train CPU s, step, val SI-SDR)
    losses: list[tuple[float, int, float]] = field(default_factory=list)  # (train CPU s, step, mean train loss)


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """`["model.filters=32", ...]` -> `{"model": {"filters": 32}}`, values parsed as YAML."""
    overrides: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not section or not name or "." in name:
            raise SystemExit(f"--set {item!r}: expected section.key=value")
        overrides.setdefault(section, {})[name] = yaml.safe_load(text)
    return overrides


def apply_overrides(params: Params, overrides: dict[str, dict[str, Any]]) -> Params:
    """`params` with the overrides applied and the whole set re-validated (unknown keys are errors)."""
    values = params_to_dict(params)
    for section, keys in overrides.items():
        if section not in values or not isinstance(values[section], dict):
            raise SystemExit(f"--set: unknown params section {section!r}")
        values[section].update(keys)
    return params_from_dict(values)


def seed_everything(seed: int) -> None:
    for seed_fn in (torch.manual_seed, np.random.seed, random.seed):
        seed_fn(seed)


def build_run(name: str, params: Params, root: Path, val_seconds: float, minutes: float, out: Path,
              peer: tuple[nn.Module, dict[str, Any]] | None = None) -> Run:
    """Dataset, fixed validation mixtures, model, Adam and the budget-driven schedule (budget starts last).

    `peer` = (model, kwargs) trains a model the project does not define (benchmarks/peers.py: Demucs)
    instead of `params.model`, with everything else the same.
    """
    seed_everything(params.train.seed)
    sr, index = params.audio.sample_rate, root / params.paths.index
    dataset = MixtureDataset(read_index(Path(index) / "train.parquet"), params.data, sr, examples=params.data.examples_per_epoch,
                             seed=params.data.seed, root=root, where=f"{index}/train.parquet")
    val_data = dataclasses.replace(params.data, segment_seconds=val_seconds)
    val = validation_set(read_index(Path(index) / "val.parquet"), val_data, sr, root=root, where=f"{index}/val.parquet")
    if peer is not None:
        model, kwargs = peer[0].to(DEVICE).train(), peer[1]
    else:
        kwargs = model_kwargs(params.model.name, params_to_dict(params)["model"])
        model = build_model(params.model.name, kwargs).to(DEVICE).train()
    if params.train.init == "pretrained" and peer is None:
        init_from_pretrained(model, params.model.name, kwargs)  # fine-tuning the shipped base model
    optimizer = make_optimizer(model, params.train)
    budget = CpuBudget(minutes * 60.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: budget.lr_factor())
    return Run(name, params, model, kwargs, optimizer, scheduler, dataset, val, budget, out)


def batches(run: Run) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The train stage's batches, epoch after epoch (`set_epoch` each), read in this process."""
    steps_per_epoch = run.params.data.examples_per_epoch // run.params.train.batch_size
    epoch = 0
    while True:
        run.dataset.set_epoch(epoch)
        sampler = StepBatches(steps_per_epoch, run.params.train.batch_size)
        yield from DataLoader(run.dataset, batch_sampler=sampler, num_workers=0)
        epoch += 1


def evaluate(run: Run) -> float:
    """Score the fixed validation mixtures (outside the budget); write best.pt when it improves; returns CPU s."""
    excluded = run.budget.excluded
    with run.budget.paused():
        cpu = run.budget.used()
        scores = validate(run.model, *run.val, run.val_batch, DEVICE, run.params.train.amp)
        run.curve.append((round(cpu, 2), run.steps, round(scores["si_sdr"], 4)))
        improved = scores["si_sdr"] > run.best_si_sdr
        if improved:
            run.best_si_sdr, run.best_step = scores["si_sdr"], run.steps
            save_checkpoint(run.out / "best.pt", run.model, run.kwargs, params=params_to_dict(run.params),
                            step=run.steps, examples=run.examples, cpu_seconds=cpu, val_l1=scores["l1"],
                            val_si_sdr=scores["si_sdr"], benchmark=f"budget:{run.name}", git_sha=run.sha)
    print(f"[{run.name}] cpu {cpu:7.1f}s step {run.steps:6d}: val SI-SDR {scores['si_sdr']:6.2f} dB"
          f"{' (best)' if improved else ''}", flush=True)
    return run.budget.excluded - excluded


def train(run: Run, validate_every: float = 60.0, log_every: int = 25) -> None:
    """Train until the budget is spent, validating about every `validate_every` training CPU seconds.

    When one validation costs more CPU than `validate_every` (a sample-rate network on 4 s mixtures),
    the next one waits that many training CPU seconds instead, so validating never takes longer than training.
    """
    window: list[float] = []
    next_validation = validate_every
    for mixture, vocals in batches(run):
        window.append(train_step(run.model, run.optimizer, run.scheduler, mixture, vocals, run.params.train, DEVICE))
        run.steps += 1
        run.examples += mixture.shape[0]
        if len(window) == log_every:
            run.losses.append((round(run.budget.used(), 2), run.steps, round(sum(window) / len(window), 4)))
            window = []
        if run.budget.spent():
            break
        if run.budget.used() >= next_validation:
            cost = evaluate(run)
            next_validation = run.budget.used() + max(validate_every, cost)
    evaluate(run)


def machine(threads: int) -> dict[str, Any]:
    return {"platform": platform.platform(), "nproc": os.cpu_count(), "torch_threads": threads,
            "load_average_1min": round(os.getloadavg()[0], 2)}


def summary(run: Run, args: argparse.Namespace, overrides: list[str], wall: float) -> dict[str, Any]:
    """The JSON record of a finished run."""
    segment = run.params.data.segment_seconds
    return {
        "name": run.name, "model": type(run.model).__name__, "kwargs": run.kwargs,
        "parameters": sum(p.numel() for p in run.model.parameters()),
        "cpu_minutes": args.cpu_minutes, "train_cpu_seconds": round(run.budget.used(), 2),
        "excluded_cpu_seconds": round(run.budget.excluded, 2), "wall_seconds": round(wall, 1),
        "steps": run.steps, "examples": run.examples, "audio_seconds_seen": round(run.examples * segment, 1),
        "segment_seconds": segment, "batch_size": run.params.train.batch_size, "lr": run.params.train.lr,
        "loss": run.params.train.loss, "val_examples": run.params.data.val_examples, "val_seconds": args.val_seconds, "val_batch": args.val_batch,
        "validate_every_cpu_seconds": args.validate_every,
        "final_val_si_sdr": run.curve[-1][2], "best_val_si_sdr": round(run.best_si_sdr, 4),
        "best_step": run.best_step, "val_curve": run.curve, "train_loss_curve": run.losses,
        "threads": args.threads, "torch": torch.__version__, "machine": machine(args.threads),
        "overrides": overrides, "params_file": args.params, "root": str(args.root), "git_sha": run.sha,
        "checkpoint": str((run.out / "best.pt").resolve()),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="run name: names the output folder and summary")
    parser.add_argument("--params", default="params-real.yaml", help="params file (default: the real-corpus profile)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one parameter (value parsed as YAML); repeatable")
    parser.add_argument("--root", type=Path, default=Path("."), help="folder the index and its audio paths are under")
    parser.add_argument("--cpu-minutes", type=float, default=10.0, help="training CPU-time budget of this process")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--val-seconds", type=float, default=None,
                        help="validation mixture length (default: the params file's data.segment_seconds)")
    parser.add_argument("--val-batch", type=int, default=1,
                        help="validation batch (scores do not depend on it; 1 keeps a sample-rate network's "
                             "activations small: at 16 x 4 s it runs 3-4x slower per second of audio)")
    parser.add_argument("--validate-every", type=float, default=60.0,
                        help="training CPU seconds between validations (at least one validation's own CPU cost)")
    parser.add_argument("--out", type=Path, default=None, help="checkpoint folder (default: data/budget/NAME)")
    parser.add_argument("--summary", type=Path, default=None,
                        help="JSON summary (default: benchmarks/results/budget_NAME.json; also written to --out)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    base = load_params(args.params)
    params = apply_overrides(base, parse_overrides(args.overrides))
    args.val_seconds = args.val_seconds or base.data.segment_seconds
    out = args.out or Path("data/budget") / args.name
    started = time.perf_counter()
    run = build_run(args.name, params, args.root, args.val_seconds, args.cpu_minutes, out)
    run.val_batch = args.val_batch
    print(f"[{args.name}] {type(run.model).__name__} {run.kwargs}, "
          f"{sum(p.numel() for p in run.model.parameters())} parameters, {args.cpu_minutes} CPU min", flush=True)
    train(run, args.validate_every)
    record = json.dumps(summary(run, args, args.overrides, time.perf_counter() - started), indent=2) + "\n"
    target = args.summary or Path("benchmarks/results") / f"budget_{args.name}.json"
    for path in (target, out / "summary.json"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(record)
    print(f"[{args.name}] {run.steps} steps, best val SI-SDR {run.best_si_sdr:.2f} dB -> {out / 'best.pt'}", flush=True)


if __name__ == "__main__":
    main()
