"""The pieces of a training step and of validation; the train stage strings them together."""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

from vocalsep.config import TrainParams
from vocalsep.metrics import si_sdr_batch
from vocalsep.training.losses import LOSSES, SI_SDR_EPS, l1_loss


def make_optimizer(model: nn.Module, train: TrainParams) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: str, total_steps: int,
                   warmup_steps: int = 0) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warm-up over `warmup_steps`, then cosine decay from `lr` to 0 by `total_steps`, or a constant rate."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, schedule, total_steps, warmup_steps))


def lr_factor(step: int, schedule: str, total_steps: int, warmup_steps: int = 0) -> float:
    """The multiplier of `lr` at optimizer step `step` (see `make_scheduler`)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule != "cosine":
        return 1.0
    span = max(total_steps - warmup_steps, 1)
    return 0.5 * (1 + math.cos(math.pi * min(step - warmup_steps, span) / span))


def autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when `amp`; a no-op on CPU (bf16 matmuls there are slower, not faster)."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
               mixture: torch.Tensor, vocals: torch.Tensor, train: TrainParams, device: torch.device) -> float:
    """One optimizer step on a batch `(batch, 2, samples)`; returns the loss before the step."""
    mixture = mixture.to(device, non_blocking=True)
    vocals = vocals.to(device, non_blocking=True)
    with autocast(device, train.amp):
        estimate = model(mixture)
    loss = LOSSES[train.loss](estimate=estimate.float(), target=vocals)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if train.grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
    optimizer.step()
    scheduler.step()
    return float(loss.detach())


@torch.no_grad()
def predict(model: nn.Module, mixture: torch.Tensor, batch_size: int, device: torch.device,
            amp: bool) -> torch.Tensor:
    """Model output for `(n, 2, samples)` mixtures, in batches; returned on the CPU as float32."""
    was_training = model.training
    model.eval()
    outputs = []
    for start in range(0, mixture.shape[0], batch_size):
        with autocast(device, amp):
            outputs.append(model(mixture[start:start + batch_size].to(device)).float().cpu())
    model.train(was_training)
    return torch.cat(outputs)


def validate(model: nn.Module, mixture: torch.Tensor, vocals: torch.Tensor, batch_size: int,
             device: torch.device, amp: bool) -> dict[str, float]:
    """Mean L1 and mean SI-SDR (dB) of the model on the fixed validation mixtures `(n, 2, samples)`."""
    estimate = predict(model, mixture, batch_size, device, amp)
    return {"l1": float(l1_loss(estimate=estimate, target=vocals)),
            "si_sdr": float(si_sdr_batch(reference=vocals, estimate=estimate, eps=SI_SDR_EPS).mean())}
