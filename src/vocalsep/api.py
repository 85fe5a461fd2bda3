"""`vocalsep.Separator`: the Python API, a model loaded once and the one path every caller separates through.

    from vocalsep import Separator

    separator = Separator()                               # the shipped base model, on CUDA when present
    stems = separator.separate(audio, rate)               # {"vocals": ..., "accompaniment": ...}
    paths = separator.separate_file("song.mp3", "stems", format="flac", bits=16)

`vocalsep separate` (its `--jobs` workers included), the `separate-library`
Prefect flow and the served MLflow model all separate through a Separator.
Arrays use soundfile's layout: `(frames, channels)`, or `(frames,)` for mono.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vocalsep.audio import to_stereo
from vocalsep.config import DEFAULT_PARAMS, Params, SeparateParams, cli_params
from vocalsep.default_model import resolve_model
from vocalsep.errors import VocalsepError
from vocalsep.formats import OutputFormat
from vocalsep.base_model.weights import PRETRAINED
from vocalsep.runtime import for_separation, model_digest
from vocalsep.separate import separate_at_rate
from vocalsep.streaming import stream_file

STEMS = ("vocals", "accompaniment")
PARTIAL = ".partial"  # stems are written as .<stem>.<ext>.partial and renamed when whole


def parse_stems(stems: str | Iterable[str]) -> tuple[str, ...]:
    """`"vocals,accompaniment"`, `"vocals"`, or a sequence of those names -> a tuple in canonical order."""
    names = [s.strip() for s in (stems.split(",") if isinstance(stems, str) else stems) if s.strip()]
    unknown = [s for s in names if s not in STEMS]
    if unknown or not names:
        raise VocalsepError(f"--stems {','.join(names) or '(empty)'}: choose vocals, accompaniment or both "
                            "(vocals,accompaniment)")
    return tuple(s for s in STEMS if s in names)


def override(params: SeparateParams, device: str | None, runtime: str | None = None) -> SeparateParams:
    """`params` with device and runtime overridden (by the command line or the caller)."""
    # device and runtime are plain strings here; the command line offers only SeparateParams' choices,
    # and pick_device / for_separation name the field when a caller passes another
    params = dataclasses.replace(params, device=device) if device else params  # type: ignore[arg-type]
    return dataclasses.replace(params, runtime=runtime) if runtime else params  # type: ignore[arg-type]


class Separator:
    """A loaded model with its separation settings.

    model: `pretrained` (the shipped base model), `auto` (the registry's champion when it
    learned from real recordings, else `pretrained`), a checkpoint path, or an MLflow
    `models:/` or `runs:/` URI. device: auto, cpu or cuda. params: a params file (its
    `separate` and `tracking` sections; defaults when params.yaml is absent) or a Params.
    threads: torch threads of this process (None leaves torch's default).
    """

    def __init__(self, model: str = PRETRAINED, device: str = "auto", *, params: str | Path | Params | None = None,
                 runtime: str | None = None, threads: int | None = None) -> None:
        settings = params if isinstance(params, Params) else cli_params(params or DEFAULT_PARAMS)
        if threads is not None:
            torch.set_num_threads(max(1, int(threads)))
        self.params = override(settings.separate, device, runtime)
        torch_model, self.sample_rate, self.spec, self.which = resolve_model(model, self.params.device,
                                                                              settings.tracking)
        self._init(torch_model)

    def _init(self, torch_model: nn.Module) -> None:
        self.digest = model_digest(torch_model)  # the weights' identity, as the resume record keeps it
        self._torch_model = torch_model
        self._runnable: nn.Module | None = None

    @classmethod
    def from_model(cls, model: nn.Module, sample_rate: int, params: SeparateParams, spec: str = "model") -> Separator:
        """A Separator around a model already loaded (the served pyfunc's)."""
        separator = cls.__new__(cls)
        separator.params, separator.sample_rate, separator.spec, separator.which = params, sample_rate, spec, spec
        separator._init(model)
        return separator

    @property
    def model(self) -> nn.Module:
        """The model as the core runs it: on CPU an ONNX Runtime session where that is faster (built once)."""
        if self._runnable is None:
            self._runnable = for_separation(self._torch_model, self.params)
        return self._runnable

    def vocals(self, mixture: np.ndarray, rate: int) -> np.ndarray:
        """Vocals `(frames, 2)` float32 of a stereo `(frames, 2)` mixture at `rate`, at that rate and length."""
        return separate_at_rate(self.model, self.sample_rate, mixture, rate, self.params)

    def separate(self, audio: np.ndarray, rate: int | None = None) -> dict[str, np.ndarray]:
        """`{"vocals", "accompaniment"}` of `audio` `(frames, channels)` or `(frames,)` at `rate` (default the model's).

        Each stem has the input's shape (mono in, mono out; more than two channels are
        down-mixed to stereo), and `vocals + accompaniment` equals the (down-mixed) input.
        """
        audio = np.asarray(audio, dtype=np.float32)
        flat = audio.ndim == 1
        frames = audio[:, None] if flat else audio
        if frames.ndim != 2 or frames.shape[0] == 0 or not np.isfinite(frames).all():
            raise VocalsepError(f"audio: expected finite (frames, channels) or (frames,) samples, got shape "
                                f"{audio.shape}; pass soundfile's layout (frames first)")
        mixture = to_stereo(frames)
        vocals = self.vocals(mixture, int(rate or self.sample_rate))
        if frames.shape[1] == 1:
            mixture, vocals = frames, vocals.mean(axis=1, keepdims=True)
        stems = {"vocals": vocals, "accompaniment": mixture - vocals}
        return {k: v[:, 0] for k, v in stems.items()} if flat else stems

    def separate_file(self, path: str | Path, out_dir: str | Path = ".", *, format: str = "wav",
                      bits: int | None = None, bitrate: int | None = None,
                      stems: str | Iterable[str] = STEMS, name: str | None = None) -> dict[str, Path]:
        """Write `out_dir/<name>/<stem>.<format>` for each stem (name: the file's stem); their paths.

        Read, separated and written block by block (memory flat in the song's length); each stem
        is written under a temporary name and renamed when whole, so no partial stem is left.
        """
        path = Path(path)
        folder = Path(out_dir) / (name or path.stem)
        written, _, _ = write_stems(self, path, folder, OutputFormat(format, bits, bitrate), parse_stems(stems))
        return written


def write_stems(separator: Separator, path: Path, folder: Path, fmt: OutputFormat,
                stems: tuple[str, ...]) -> tuple[dict[str, Path], int, int]:
    """Stems of `path` into `folder` (temporary names, renamed when whole): `(paths, frames, rate)`."""
    finals = {stem: folder / f"{stem}.{fmt.extension}" for stem in stems}
    temps = {stem: folder / f".{stem}.{fmt.extension}{PARTIAL}" for stem in stems}
    try:
        frames, rate = stream_file(separator.model, separator.sample_rate, separator.params, path,
                                   temps.get("vocals"), temps.get("accompaniment"), fmt=fmt)
    except BaseException:
        remove_partial(temps.values(), folder)
        raise
    for stem in stems:
        os.replace(temps[stem], finals[stem])
    return finals, frames, rate


def remove_partial(paths: Iterable[Path], folder: Path) -> None:
    """A failed input leaves no half-written stems (nor the folder made for them, when it is empty)."""
    for path in paths:
        if path.is_file():
            path.unlink()
    try:
        folder.rmdir()
    except OSError:
        pass
