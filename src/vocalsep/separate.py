"""The one separation core: any length of stereo audio through the model, chunk by chunk.

A song stays on the host as numpy; it is cut into chunks, each read with the
model's receptive context on both sides, batches of those windows go to the
device, the context is trimmed off and the chunks are cross-faded back
(overlap-add, weights normalised by their sum) into a preallocated output.
Peak device memory depends on chunk size and batch size, never on song length.

Near the song's edges a window is shifted to start (or end) exactly at the
edge instead of being padded: the network zero-pads each layer itself, so a
window that shares the song's edge sees exactly what the whole-song pass sees.
The chunked output therefore equals one whole-song pass up to float rounding.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from vocalsep.audio import resample
from vocalsep.config import SeparateParams
from vocalsep.devices import pick_device
from vocalsep.errors import VocalsepError
from vocalsep.refine import refined



def chunk_offsets(length: int, chunk: int, hop: int) -> list[int]:
    """Starts of chunks `[start, start + chunk)` covering `[0, length)` exactly.

    Starts step by `hop`; the last chunk is moved back to end at `length`, so
    no chunk runs past the end. A length up to `chunk` gives the single start 0
    (that chunk is then shorter: `min(chunk, length)`).
    """
    if length <= 0 or chunk <= 0 or hop <= 0:
        raise ValueError(f"length, chunk and hop must be positive, got {length}, {chunk}, {hop}")
    if length <= chunk:
        return [0]
    starts = list(range(0, length - chunk, hop))
    return starts + [length - chunk]


def fade_window(chunk: int, overlap: int) -> np.ndarray:
    """Cross-fade weights `(chunk,)` float32: linear ramps of `overlap` samples at both ends, 1 between.

    Every weight is > 0 (ramps run over (0, 1]), so a sample covered by a
    single chunk, such as the song's first and last, still gets a weight.
    """
    weights = np.ones(chunk, dtype=np.float32)
    overlap = min(overlap, chunk // 2)
    if overlap > 0:
        ramp = np.arange(1, overlap + 1, dtype=np.float32) / (overlap + 1)
        weights[:overlap] = ramp
        weights[chunk - overlap:] = ramp[::-1]
    return weights


def overlap_add(output: np.ndarray, weight_sum: np.ndarray, piece: np.ndarray, start: int, weights: np.ndarray) -> None:
    """Add `piece * weights` into `output` at `start`, and `weights` into `weight_sum` (in place).

    output: `(channels, samples)`, weight_sum: `(samples,)`, piece: `(channels, n)`,
    weights: `(n,)`. Dividing `output` by `weight_sum` afterwards normalises the blend.
    """
    stop = start + piece.shape[-1]
    output[:, start:stop] += piece * weights
    weight_sum[start:stop] += weights


def context_window(start: int, chunk: int, length: int, context: tuple[int, int],
                   stride: int = 1) -> tuple[int, int]:
    """`(window_start, window_length)` around chunk `[start, start + chunk)` inside `[0, length)`.

    The window has `context` (before, after) samples around the chunk, shifted
    to stay inside the song. With `stride` > 1 (a framed model such as
    HybridVocNet) the window starts on a multiple of `stride`, so its frames
    fall where the whole-song pass puts them; it then grows by up to `stride`
    to keep the context. Windows of one song share one length, except a last
    one that ends at the song's end.
    """
    size = min(length, chunk + context[0] + context[1])
    begin = min(max(start - context[0], 0), length - size)
    if stride > 1:
        aligned = begin - begin % stride
        return aligned, min(length - aligned, size + stride)
    return begin, size


# A deadline for the separation running in this context (the server sets one per request; asyncio
# copies context into the worker thread). The core checks it between model calls, so timed-out
# work stops within one batch instead of running on after its answer was given up.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("vocalsep_deadline", default=None)


class DeadlineExceeded(VocalsepError):
    """The separation ran past the deadline set with `deadline()` and was stopped."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Stop any separation in this context (and threads started from it) after `seconds`."""
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def check_deadline() -> None:
    limit = _DEADLINE.get()
    if limit is not None and time.monotonic() > limit:
        raise DeadlineExceeded("separation stopped: it ran past its deadline")


def _batches(items: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def same_size(group: list[tuple[int, tuple[int, int]]]) -> Iterator[list[tuple[int, tuple[int, int]]]]:
    """Runs of `(chunk start, (window start, window length))` whose windows have one length (they stack)."""
    run: list[tuple[int, tuple[int, int]]] = []
    for item in group:
        if run and item[1][1] != run[-1][1][1]:
            yield run
            run = []
        run.append(item)
    if run:
        yield run


def separate(
    model: nn.Module,
    mixture: np.ndarray,
    *,
    chunk_samples: int,
    overlap_samples: int,
    batch_size: int,
    device: str | torch.device = "cpu",
    progress: bool = False,
    context: tuple[int, int] | None = None,
) -> np.ndarray:
    """Vocals of `mixture`: `(channels, samples)` float32 in, `(channels, samples)` float32 out.

    channels is the model's (2 for VocNet). The model must map `(batch,
    channels, n)` to the same shape; it is moved to `device` and put in eval
    mode. `context` = (before, after) samples it looks around each output
    sample, by default its `.context` (give it for exported graphs, which lose
    that property). `overlap_samples` is the cross-fade length between
    neighbouring chunks (at most half a chunk).
    """
    mixture = np.ascontiguousarray(mixture, dtype=np.float32)
    if mixture.ndim != 2 or mixture.shape[-1] == 0:
        raise ValueError(f"mixture must be (channels, samples) with samples > 0, got shape {mixture.shape}")
    chunk = min(chunk_samples, mixture.shape[-1])
    device = torch.device(device)
    model = model.to(device).eval()
    context = tuple(model.context if context is None else context)
    with torch.inference_mode():
        output, weight_sum = _overlap_add_chunks(model, mixture, chunk, min(overlap_samples, chunk // 2), batch_size,
                                                 device, context, progress)
    output /= weight_sum
    return output


def _overlap_add_chunks(model: nn.Module, mixture: np.ndarray, chunk: int, overlap: int, batch_size: int,
                        device: torch.device, context: tuple[int, int], progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """Every chunk's estimate, weighted by the fade window and added into place; and the sum of weights."""
    length = mixture.shape[-1]
    starts = chunk_offsets(length, chunk, chunk - overlap)
    weights = fade_window(chunk, overlap)
    output = np.zeros_like(mixture)
    weight_sum = np.zeros(length, dtype=np.float32)
    stride = int(getattr(model, "stride", 1))
    for batch in tqdm(list(_batches(starts, batch_size)), desc="separate", unit="batch", disable=not progress):
        windows = [context_window(s, chunk, length, context, stride) for s in batch]
        for group in same_size(list(zip(batch, windows))):
            check_deadline()
            stacked = np.stack([mixture[:, w:w + size] for _, (w, size) in group])
            estimate = model(torch.from_numpy(stacked).to(device)).float().cpu().numpy()
            for piece, (start, (w, _)) in zip(estimate, group):
                overlap_add(output, weight_sum, piece[:, start - w:start - w + chunk], start, weights)
    return output, weight_sum


def separate_with_params(
    model: nn.Module, mixture: np.ndarray, sample_rate: int, params: SeparateParams, progress: bool = False
) -> np.ndarray:
    """`separate` with chunk, overlap, batch and device from `params.separate` (seconds -> samples), and what it
    wraps around the model: time-shift averaging (`shifts` > 0), the Wiener post-filter (`wiener_power` > 0)."""
    return separate(
        refined(model, params),
        mixture,
        chunk_samples=max(1, round(params.chunk_seconds * sample_rate)),
        overlap_samples=round(params.overlap_seconds * sample_rate),
        batch_size=params.batch_size,
        device=pick_device(params.device, "separate.device"),
        progress=progress,
    )


def fit_length(x: np.ndarray, frames: int) -> np.ndarray:
    """Trim or zero-pad `(frames', channels)` to `frames`: resampling there and back may be off by one."""
    if x.shape[0] >= frames:
        return x[:frames]
    return np.pad(x, ((0, frames - x.shape[0]), (0, 0)))


def separate_at_rate(model: nn.Module, model_rate: int, mixture: np.ndarray, rate: int,
                     params: SeparateParams, progress: bool = False) -> np.ndarray:
    """Vocals of a stereo `mixture` `(frames, 2)` recorded at `rate`, as `(frames, 2)` float32 at `rate`.

    Resampled to the model's rate, separated by the core, resampled back and
    fitted to the input's length: what the CLI, the evaluate stage and the
    served model all do with audio at any sample rate.
    """
    at_model_rate = resample(np.ascontiguousarray(mixture, dtype=np.float32), rate, model_rate)
    vocals = separate_with_params(model, at_model_rate.T, model_rate, params, progress=progress).T
    return fit_length(resample(np.ascontiguousarray(vocals), model_rate, rate), mixture.shape[0])
