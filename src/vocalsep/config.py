"""params.yaml read into frozen, typed dataclasses.

`load_params()` is the only reader of params.yaml. Every section is a frozen
dataclass; unknown keys, wrong types and values outside an allowed set or
range raise `ParamsError` naming the dotted key and what is allowed. A key
left out takes the dataclass default, which matches the shipped params.yaml.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

DEFAULT_PARAMS = Path("params.yaml")


class ParamsError(ValueError):
    """A parameter file that does not fit the schema."""


@dataclass(frozen=True)
class PathsParams:
    demo: str = "data/demo"
    corpus: str = "data/corpus"
    raw: str = "data/raw"
    normalized: str = "data/normalized"
    validated: str = "data/validated"
    reports: str = "reports"
    index: str = "data/index"
    testset: str = "data/testset"
    checkpoints: str = "models/checkpoints"
    export: str = "models/export"
    metrics: str = "metrics"
    plots: str = "plots"


@dataclass(frozen=True)
class AudioParams:
    sample_rate: int = 44100


@dataclass(frozen=True)
class DemoParams:
    seed: int = 1234
    acapellas: int = 8
    instrumentals: int = 8
    min_seconds: float = 20.0
    max_seconds: float = 40.0


@dataclass(frozen=True)
class CorpusParams:
    spec: str = "sources/debian-corpus.yaml"
    set: Literal["none", "train", "eval"] = "none"
    cache: str = ".cache/debian"
    track_seconds: float = 45.0
    pause_seconds: tuple[float, float] = (0.15, 0.7)
    seed: int = 0


@dataclass(frozen=True)
class DownloadParams:
    sources: str = "sources/demo.yaml"
    retries: int = 3
    backoff_seconds: float = 2.0
    socket_timeout: float = 30.0
    allow_file_urls: bool = True
    file_roots: tuple[str, ...] = ()
    format: str = "bestaudio/best"


@dataclass(frozen=True)
class NormalizeParams:
    target_lufs: float = -23.0
    peak_ceiling_db: float = -1.0
    silence_threshold_db: float = -60.0
    clipping_level: float = 0.999
    workers: int = 2


@dataclass(frozen=True)
class ValidateParams:
    min_seconds: float = 5.0
    max_seconds: float = 1800.0
    min_loudness_lufs: float = -40.0
    max_loudness_lufs: float = -10.0
    max_peak_db: float = -0.5
    max_silence_ratio: float = 0.7
    max_clipping_ratio: float = 0.01
    min_files_per_role: int = 3


@dataclass(frozen=True)
class IndexParams:
    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.25
    snippet_seconds: float = 1.0
    hop_seconds: float = 0.5
    activity_threshold_db: float = -40.0
    min_active_fraction: float = 0.75
    testset_tracks: int = 4
    testset_seconds: float = 8.0
    testset_vocal_db: tuple[float, float] = (-6.0, 6.0)


@dataclass(frozen=True)
class ModelParams:
    """One section for every model family: each takes the keys its constructor names (see `model_kwargs`)."""

    name: Literal["VocNet", "HybridVocNet"] = "VocNet"
    filters: int = 16
    skip_filters: int = 24
    layers: int = 10
    layers_per_stack: int = 10
    kernel_size: int = 2
    bias: bool = False
    n_fft: int = 2048
    hop: int = 512
    wave_filters: int = 64
    wave_stride: int = 128
    global_context: bool = False
    lookahead_frames: int = -1


@dataclass(frozen=True)
class DataParams:
    segment_seconds: float = 0.5
    examples_per_epoch: int = 256
    gain_db: tuple[float, float] = (-6.0, 3.0)
    channel_swap: float = 0.5
    sign_flip: float = 0.5
    val_examples: int = 32
    seed: int = 0


@dataclass(frozen=True)
class TrainParams:
    device: Literal["auto", "cpu", "cuda"] = "auto"
    epochs: int = 4
    batch_size: int = 8
    lr: float = 1e-3
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    loss: Literal["l1", "l1_stft", "snr", "snr_stft", "si_sdr"] = "l1"
    warmup_steps: int = 0
    init: Literal["scratch", "pretrained"] = "scratch"
    early_stopping_patience: int = 5
    workers: int = 0
    compile: bool = False
    amp: bool = True
    log_every: int = 10
    checkpoint_every: int = 50
    seed: int = 0


@dataclass(frozen=True)
class SeparateParams:
    chunk_seconds: float = 4.0
    overlap_seconds: float = 0.25
    batch_size: int = 4
    device: Literal["auto", "cpu", "cuda"] = "auto"
    runtime: Literal["auto", "torch", "onnxruntime"] = "auto"


@dataclass(frozen=True)
class StreamParams:
    block_seconds: float = 0.02
    threads: int = 1


@dataclass(frozen=True)
class ServeParams:
    workers: int = 1
    threads: int = 2
    queue: int = 8
    timeout_seconds: float = 300.0


@dataclass(frozen=True)
class EvaluateParams:
    window_seconds: float = 1.0
    audio_examples: int = 3


@dataclass(frozen=True)
class ExportParams:
    registered_model: str = "vocalsep"
    metric: Literal["si_sdr", "sdr", "si_sdri"] = "si_sdr"
    onnx: bool = True
    max_seconds: float = 600.0
    tolerance: float = 1e-4


@dataclass(frozen=True)
class TrackingParams:
    uri: str = "sqlite:///mlruns/mlflow.db"
    artifacts: str = "mlruns/artifacts"
    experiment: str = "vocalsep"


@dataclass(frozen=True)
class Params:
    paths: PathsParams = field(default_factory=PathsParams)
    audio: AudioParams = field(default_factory=AudioParams)
    demo: DemoParams = field(default_factory=DemoParams)
    corpus: CorpusParams = field(default_factory=CorpusParams)
    download: DownloadParams = field(default_factory=DownloadParams)
    normalize: NormalizeParams = field(default_factory=NormalizeParams)
    validate: ValidateParams = field(default_factory=ValidateParams)
    index: IndexParams = field(default_factory=IndexParams)
    model: ModelParams = field(default_factory=ModelParams)
    data: DataParams = field(default_factory=DataParams)
    train: TrainParams = field(default_factory=TrainParams)
    separate: SeparateParams = field(default_factory=SeparateParams)
    serve: ServeParams = field(default_factory=ServeParams)
    stream: StreamParams = field(default_factory=StreamParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    export: ExportParams = field(default_factory=ExportParams)
    tracking: TrackingParams = field(default_factory=TrackingParams)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ParamsError(f"{key}: {value!r} is not allowed; use one of {', '.join(map(repr, allowed))}")
        return value
    if origin is tuple and typing.get_args(hint)[1:] == (Ellipsis,):
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{key}: expected a list, got {value!r}")
        return tuple(_coerce(v, typing.get_args(hint)[0], f"{key}[{i}]") for i, v in enumerate(value))
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ParamsError(f"{key}: expected a list of {len(args)} numbers, got {value!r}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (types.UnionType, typing.Union):
        raise ParamsError(f"{key}: union types are not supported in the schema")
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ParamsError(f"{key}: expected a mapping of {hint.__name__} fields, got {value!r}")
        return _build(hint, value, key)
    if hint is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str) and _is_number(value):  # YAML 1.1 reads 1e-4 as a string
            raise ParamsError(f"{key}: expected a number, got the string {value!r}; "
                              f"write it as {float(value)!r} (YAML needs a dot in 1.0e-4)")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ParamsError(f"{key}: expected a string, got {value!r}")
        return value
    raise ParamsError(f"{key}: unsupported schema type {hint!r}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _build(cls: type, values: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        where = f"{prefix}." if prefix else ""
        hints_ = [f"{where}{u} -> did you mean {where}{close[0]}?" for u in unknown
                  if (close := difflib.get_close_matches(str(u), names, n=1, cutoff=0.6))]
        raise ParamsError(
            f"unknown key(s) {', '.join(where + str(u) for u in unknown)}"
            f"{' (' + '; '.join(hints_) + ')' if hints_ else ''}; "
            f"allowed keys{' in ' + prefix if prefix else ''}: {', '.join(names)}"
        )
    kwargs = {}
    for name in names:
        if name in values:
            key = f"{prefix}.{name}" if prefix else name
            kwargs[name] = _coerce(values[name], hints[name], key)
    return cls(**kwargs)


def params_from_dict(values: dict) -> Params:
    """Build `Params` from a (possibly partial) nested mapping; defaults fill gaps."""
    if not isinstance(values, dict):
        raise ParamsError(f"params must be a mapping of sections, got {type(values).__name__}")
    params = _build(Params, values)
    _check_ranges(params)
    return params


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    """Read and validate a params file."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: params file not found; run from the repository root or pass --params")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    try:
        return params_from_dict(values)
    except ParamsError as err:
        raise ParamsError(f"{path}: {err}") from None


def params_to_dict(params: Params) -> dict:
    """The nested mapping form, as written in params.yaml."""
    return dataclasses.asdict(params)


def flatten(values: dict, prefix: str = "") -> dict[str, Any]:
    """`{'a': {'b': 1}}` -> `{'a.b': 1}`, for logging every parameter to MLflow."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(flatten(value, dotted))
        else:
            flat[dotted] = value
    return flat


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ParamsError(f"{key}: {message}")


def _check_ranges(p: Params) -> None:
    _require(8000 <= p.audio.sample_rate <= 192000, "audio.sample_rate", "must be between 8000 and 192000 Hz")
    _require(p.demo.acapellas >= 1 and p.demo.instrumentals >= 1, "demo", "needs at least one file of each role")
    _require(0 < p.demo.min_seconds <= p.demo.max_seconds, "demo.min_seconds", "must be > 0 and <= demo.max_seconds")
    _require(p.corpus.track_seconds > 0, "corpus.track_seconds", "must be > 0 seconds")
    _require(0 <= p.corpus.pause_seconds[0] <= p.corpus.pause_seconds[1], "corpus.pause_seconds",
             "must be [low, high] with 0 <= low <= high")
    _require(p.download.retries >= 1, "download.retries", "must be at least 1")
    _require(p.download.socket_timeout > 0, "download.socket_timeout", "must be > 0 seconds")
    _require(p.download.backoff_seconds >= 0, "download.backoff_seconds", "must be >= 0 seconds")
    _require(0 < p.normalize.clipping_level <= 1, "normalize.clipping_level", "must be in (0, 1]")
    _require(p.validate.min_loudness_lufs < p.validate.max_loudness_lufs, "validate.min_loudness_lufs",
             "must be < validate.max_loudness_lufs")
    _require(p.index.testset_tracks >= 1, "index.testset_tracks", "must be at least 1")
    _require(p.index.testset_seconds > 0, "index.testset_seconds", "must be > 0 seconds")
    _require(p.evaluate.window_seconds > 0, "evaluate.window_seconds", "must be > 0 seconds")
    _require(p.normalize.peak_ceiling_db <= 0, "normalize.peak_ceiling_db", "must be <= 0 dBFS")
    _require(p.normalize.workers >= 1, "normalize.workers", "must be at least 1")
    _require(p.validate.min_files_per_role >= 1, "validate.min_files_per_role", "must be at least 1")
    _require(p.validate.min_seconds < p.validate.max_seconds, "validate.min_seconds", "must be < validate.max_seconds")
    fractions = p.index.val_fraction + p.index.test_fraction
    _require(0 <= p.index.val_fraction < 1 and 0 <= p.index.test_fraction < 1 and fractions < 1,
             "index.val_fraction", "val_fraction and test_fraction must be in [0, 1) and sum to less than 1")
    _require(0 < p.index.hop_seconds <= p.index.snippet_seconds, "index.hop_seconds",
             "must be > 0 and <= index.snippet_seconds")
    _require(0 < p.index.min_active_fraction <= 1, "index.min_active_fraction", "must be in (0, 1]")
    _require(p.index.testset_vocal_db[0] <= p.index.testset_vocal_db[1], "index.testset_vocal_db", "must be [low, high]")
    _require(p.model.filters >= 1 and p.model.skip_filters >= 1, "model.filters", "filters and skip_filters must be >= 1")
    _require(p.model.layers >= 1 and p.model.layers_per_stack >= 1, "model.layers", "layers and layers_per_stack must be >= 1")
    _require(p.model.kernel_size >= 2, "model.kernel_size", "must be at least 2")
    _require(p.model.wave_stride >= 1 and p.model.hop % p.model.wave_stride == 0, "model.hop",
             f"must be a multiple of model.wave_stride ({p.model.wave_stride})")
    _require(p.model.n_fft > p.model.hop and p.model.n_fft % 2 == 0, "model.n_fft",
             f"must be even and > model.hop ({p.model.hop})")
    _require(p.model.wave_filters >= 1, "model.wave_filters", "must be at least 1")
    _require(p.train.warmup_steps >= 0, "train.warmup_steps", "must be >= 0")
    _require(0 < p.data.segment_seconds <= p.index.snippet_seconds, "data.segment_seconds",
             f"must be > 0 and <= index.snippet_seconds ({p.index.snippet_seconds})")
    _require(p.data.gain_db[0] <= p.data.gain_db[1], "data.gain_db", "must be [low, high]")
    _require(0 <= p.data.channel_swap <= 1 and 0 <= p.data.sign_flip <= 1, "data.channel_swap",
             "channel_swap and sign_flip are probabilities in [0, 1]")
    _require(p.data.examples_per_epoch >= 1 and p.data.val_examples >= 1, "data.examples_per_epoch",
             "examples_per_epoch and val_examples must be >= 1")
    _require(p.train.epochs >= 1, "train.epochs", "must be at least 1")
    _require(p.train.batch_size >= 1, "train.batch_size", "must be at least 1")
    _require(p.train.lr > 0, "train.lr", "must be > 0")
    _require(p.train.workers >= 0, "train.workers", "must be >= 0")
    _require(p.train.log_every >= 1 and p.train.checkpoint_every >= 1, "train.checkpoint_every",
             "log_every and checkpoint_every must be >= 1 step")
    _require(p.train.batch_size <= p.data.examples_per_epoch, "train.batch_size",
             "must be <= data.examples_per_epoch (an epoch holds at least one step)")
    _require(p.separate.chunk_seconds > 0, "separate.chunk_seconds", "must be > 0")
    _require(p.separate.overlap_seconds >= 0, "separate.overlap_seconds", "must be >= 0")
    _require(p.separate.batch_size >= 1, "separate.batch_size", "must be at least 1")
    _require(p.stream.block_seconds > 0, "stream.block_seconds", "must be > 0 seconds")
    _require(p.stream.threads >= 1, "stream.threads", "must be at least 1")
    _require(p.serve.workers >= 1, "serve.workers", "must be at least 1")
    _require(p.serve.threads >= 1, "serve.threads", "must be at least 1")
    _require(p.serve.queue >= 0, "serve.queue", "must be >= 0")
    _require(p.serve.timeout_seconds > 0, "serve.timeout_seconds", "must be > 0 seconds")
    _require(p.export.max_seconds > 0, "export.max_seconds", "must be > 0")
