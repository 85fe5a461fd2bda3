"""The separation core fed block by block: memory flat in song length, output equal to the whole-song pass.

`StreamingCore` takes `(channels, n)` blocks of any size and returns the
vocals that are final so far. It runs exactly the chunks `separate()` runs on
the whole song (same starts, same context windows, same cross-fade), so the
concatenated output equals `separate(model, whole_song)` up to float
rounding: a regular chunk `[s, s + chunk)` is run once its whole window is in,
which makes its window the one the whole-song pass uses; the song's last
chunks, whose placement depends on the length, are run when `finish()` tells
the length. It keeps only the samples later windows need (about one chunk
plus the model's context), whatever the song's length.

`stream_file` builds the file-to-file path on it: blocks read with soundfile
(wav, flac, ogg, mp3) or an ffmpeg pipe (everything else), soxr's streaming
resampler to the model's rate and back, stems written block by block.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
from torch import nn

from vocalsep.audio import to_stereo
from vocalsep.config import SeparateParams
from vocalsep.devices import pick_device
from vocalsep.errors import AudioError
from vocalsep.formats import OutputFormat
from vocalsep.file_blocks import BLOCK_FRAMES, audio_blocks
from vocalsep.refine import refined
from vocalsep.separate import (check_deadline, chunk_offsets, context_window, fade_window, fit_length, overlap_add,
                               same_size)

_UNBOUNDED = 2**62  # a length no song reaches: windows computed with it are never clipped at the end


class StreamingCore:
    """Incremental `separate()`: `push(block)` and `finish()` return the vocals that are final."""

    def __init__(self, model: nn.Module, *, chunk_samples: int, overlap_samples: int, batch_size: int,
                 device: str | torch.device = "cpu", context: tuple[int, int] | None = None, channels: int = 2):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.context = tuple(model.context if context is None else context)
        self.stride = int(getattr(model, "stride", 1))
        self.chunk, self.overlap_wanted, self.batch_size = chunk_samples, overlap_samples, batch_size
        self.overlap = min(overlap_samples, chunk_samples // 2)
        self.hop = chunk_samples - self.overlap
        self.weights = fade_window(chunk_samples, self.overlap)
        self.channels = channels
        self.input = np.zeros((channels, 0), np.float32)  # samples [in_start, total)
        self.in_start = self.total = 0
        self.output = np.zeros((channels, 0), np.float32)  # blended sums for samples [emitted, ...)
        self.weight_sum = np.zeros(0, np.float32)
        self.emitted = 0
        self.done = 0  # regular chunks run
        self.finished = False

    @property
    def lookahead(self) -> int:
        """Samples of input needed past a sample before it can be output (chunk + the model's right context)."""
        return self.chunk + self.context[1] + self.stride

    def push(self, block: np.ndarray) -> np.ndarray:
        """Add `(channels, n)` input; returns the next final `(channels, m)` vocals (m may be 0)."""
        if self.finished:
            raise RuntimeError("push after finish")
        block = np.ascontiguousarray(block, dtype=np.float32)
        self.input = np.concatenate([self.input, block], axis=1) if self.input.size else block
        self.total += block.shape[1]
        ready = []
        while True:
            start = self.done * self.hop
            window = context_window(start, self.chunk, _UNBOUNDED, self.context, self.stride)
            if start < self.context[0]:
                # near the start the whole-song pass shifts the window right to keep its size; the model's
                # own zero padding is the left context either way, so a window from 0 to the right context
                # gives the same samples without waiting for `context[0]` more input (live start-up)
                window = (0, start + self.chunk + self.context[1] + self.stride)
            if window[0] + window[1] > self.total:
                break
            ready.append((start, window))
            self.done += 1
            if len(ready) == self.batch_size:
                self._run(ready)
                ready = []
        if ready:
            self._run(ready)
        next_start = self.done * self.hop
        return self._emit(min(next_start, self.total - self.chunk))

    def finish(self) -> np.ndarray:
        """The rest of the vocals, now that the length is known (the whole-song pass's last chunks)."""
        self.finished = True
        length = self.total
        if length == 0:
            return np.zeros((self.channels, 0), np.float32)
        chunk = min(self.chunk, length)
        overlap = min(self.overlap_wanted, chunk // 2)
        starts = chunk_offsets(length, chunk, chunk - overlap)[self.done:]
        if chunk != self.chunk:  # a song shorter than one chunk: the whole-song pass's single short chunk
            self.weights = fade_window(chunk, overlap)
        windows = [context_window(s, chunk, length, self.context, self.stride) for s in starts]
        items = list(zip(starts, windows))
        for i in range(0, len(items), self.batch_size):
            self._run(items[i:i + self.batch_size], chunk)
        return self._emit(length)

    def _run(self, items: list[tuple[int, tuple[int, int]]], chunk: int | None = None) -> None:
        chunk = chunk or self.chunk
        with torch.inference_mode():
            for group in same_size(items):
                check_deadline()
                stacked = np.stack([self.input[:, w - self.in_start:w - self.in_start + size] for _, (w, size) in group])
                estimate = self.model(torch.from_numpy(stacked).to(self.device)).float().cpu().numpy()
                for piece, (start, (w, _)) in zip(estimate, group):
                    self._grow(start + chunk)
                    overlap_add(self.output, self.weight_sum, piece[:, start - w:start - w + chunk],
                                start - self.emitted, self.weights)

    def _grow(self, end: int) -> None:
        missing = end - self.emitted - self.weight_sum.shape[0]
        if missing > 0:
            self.output = np.concatenate([self.output, np.zeros((self.channels, missing), np.float32)], axis=1)
            self.weight_sum = np.concatenate([self.weight_sum, np.zeros(missing, np.float32)])

    def _emit(self, until: int) -> np.ndarray:
        """Divide out and hand over the samples `[emitted, until)`; drop input no later window reads."""
        count = max(0, until - self.emitted)
        out = self.output[:, :count] / self.weight_sum[:count]
        self.output, self.weight_sum = self.output[:, count:], self.weight_sum[count:]
        self.emitted += count
        keep_from = min(context_window(self.done * self.hop, self.chunk, _UNBOUNDED, self.context, self.stride)[0],
                        max(self.total - self.chunk - self.context[0] - self.context[1] - 2 * self.stride, 0))
        if keep_from > self.in_start:
            self.input = self.input[:, keep_from - self.in_start:]
            self.in_start = keep_from
        return out


def streaming_core(model: nn.Module, sample_rate: int, params: SeparateParams, context=None) -> StreamingCore:
    """A StreamingCore with chunk, overlap, batch and device from `params` (seconds -> samples), around the model
    as `params` wraps it (`vocalsep.refine.refined`: shifts, Wiener post-filter), as `separate_with_params` does."""
    return StreamingCore(refined(model, params), chunk_samples=max(1, round(params.chunk_seconds * sample_rate)),
                         overlap_samples=round(params.overlap_seconds * sample_rate), batch_size=params.batch_size,
                         device=pick_device(params.device, "separate.device"), context=context)


# ---------------------------------------------------------------- file to file


class Resampler:
    """soxr's streaming resampler, or a pass-through at equal rates."""

    def __init__(self, rate_in: int, rate_out: int, channels: int):
        self.stream = None if rate_in == rate_out else soxr.ResampleStream(rate_in, rate_out, channels,
                                                                          dtype="float32", quality="HQ")

    def __call__(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        if self.stream is None:
            return block
        return self.stream.resample_chunk(np.ascontiguousarray(block, dtype=np.float32), last=last)


class _StemFiles:
    """The stem files of `stream_file`, written as vocals come: accompaniment = the input - vocals.

    A stem whose path is None is not written; `fmt` says how the others are (float wav by default).
    """

    def __init__(self, vocals_path: Path | None, accompaniment_path: Path | None, rate: int, channels: int,
                 fmt: OutputFormat):
        self.channels, self.fmt = channels, fmt
        self.pending = np.zeros((0, channels), np.float32)  # input (as written to the stems) awaiting its vocals
        self.read = self.written = 0
        self.files: dict[str, sf.SoundFile] = {}
        for stem, path in (("vocals", vocals_path), ("accompaniment", accompaniment_path)):
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                self.files[stem] = sf.SoundFile(path, "w", rate, channels, **fmt.soundfile_args())

    def add_input(self, block: np.ndarray, stereo: np.ndarray) -> None:
        self.read += block.shape[0]
        self.pending = np.concatenate([self.pending, block if self.channels == 1 else stereo])

    def write(self, vocals: np.ndarray, final: bool = False) -> None:
        if final:  # the whole-song pass fits the resampled vocals to the input's length
            vocals = fit_length(vocals, max(0, self.read - self.written))
        vocals = vocals[: self.pending.shape[0]]
        if self.channels == 1:
            vocals = vocals.mean(axis=1, keepdims=True)
        mixture, self.pending = self.pending[: vocals.shape[0]], self.pending[vocals.shape[0]:]
        if "vocals" in self.files:
            self.files["vocals"].write(self.fmt.prepare(vocals))
        if "accompaniment" in self.files:
            self.files["accompaniment"].write(self.fmt.prepare(mixture - vocals))
        self.written += vocals.shape[0]

    def close(self) -> None:
        for handle in self.files.values():
            handle.close()


def stream_file(model: nn.Module, model_rate: int, params: SeparateParams, path: Path, vocals_path: Path | None,
                accompaniment_path: Path | None, subtype: str = "FLOAT", frames: int = BLOCK_FRAMES,
                fmt: OutputFormat | None = None) -> tuple[int, int]:
    """Separate `path` into stem files block by block; returns `(frames, rate)` written.

    Same stems as reading the whole file (`vocalsep.cli.separate.separate_file`): stereo (or mono for a
    mono input), at the input's rate and length, `vocals + accompaniment == mixture` (exactly in the
    float wav default). `fmt` (`vocalsep.formats.OutputFormat`) overrides `subtype`'s wav; a stem
    path of None skips that stem.
    """
    fmt = fmt or OutputFormat("wav", bits={"FLOAT": 32, "PCM_24": 24, "PCM_16": 16}[subtype])
    rate, channels, blocks = audio_blocks(path, frames)
    fmt.check_rate(rate, str(path))
    core = streaming_core(model, model_rate, params)
    down, up = Resampler(rate, model_rate, 2), Resampler(model_rate, rate, 2)
    stems = _StemFiles(vocals_path, accompaniment_path, rate, 1 if channels == 1 else 2, fmt)
    try:
        for block in blocks:
            stereo = to_stereo(block)
            stems.add_input(block, stereo)
            stems.write(up(core.push(down(stereo).T).T))
        flushed = down(np.zeros((0, 2), np.float32), last=True)  # the resampler's last samples
        stems.write(up(core.push(flushed.T).T))
        stems.write(up(core.finish().T, last=True), final=True)
    finally:
        stems.close()
    read, written = stems.read, stems.written
    if read == 0:
        raise AudioError(f"{path}: contains no audio samples (zero length); re-download or remove it")
    return written, rate
