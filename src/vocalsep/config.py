"""params.yaml read into frozen, typed dataclasses.

`load_params()` is the only reader of params.yaml. Every section is a frozen
dataclass; unknown keys, wrong types and values outside an allowed set or
range raise `ParamsError` naming the dotted key and what is allowed. A key
left out takes the dataclass default, which matches the shipped params.yaml.
The validator is `vocalsep.schema`'s; this module declares what params.yaml holds.

Over 300 lines: one dataclass per section of params.yaml, each field with its range beside it, kept on one
page so that every key a user may write is found in one place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from vocalsep.schema import ParamsError, Range, Rules, build, ranged  # noqa: F401 - ParamsError and Range are this module's API too

DEFAULT_PARAMS = Path("params.yaml")


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

    # The files one stage writes and another reads: named here once, under the folders above.
    @property
    def downloads(self) -> Path:
        """download -> normalize, validate, provenance: one JSON record per source URL."""
        return Path(self.raw) / "downloads.jsonl"

    @property
    def manifest(self) -> Path:
        """normalize -> validate: one row per normalized file."""
        return Path(self.normalized) / "manifest.parquet"

    @property
    def valid(self) -> Path:
        """validate -> index: the manifest rows that passed."""
        return Path(self.validated) / "valid.parquet"

    @property
    def quarantine(self) -> Path:
        return Path(self.validated) / "quarantine.parquet"

    def split(self, name: str) -> Path:
        """index -> train, provenance: the snippet table of split `name` (train, val, test)."""
        return Path(self.index) / f"{name}.parquet"

    @property
    def last_checkpoint(self) -> Path:
        """train (resume): the latest state."""
        return Path(self.checkpoints) / "last.pt"

    @property
    def best_checkpoint(self) -> Path:
        """train -> evaluate, export, publish: the best validation checkpoint."""
        return Path(self.checkpoints) / "best.pt"

    @property
    def train_metrics(self) -> Path:
        """train -> publish, flow report: steps, wall time, best validation scores."""
        return Path(self.metrics) / "train.json"

    @property
    def eval_metrics(self) -> Path:
        """evaluate -> export, summary, flow report: medians over the test set."""
        return Path(self.metrics) / "eval.json"

    @property
    def registry_record(self) -> Path:
        """export -> summary, flow report: the registry decision (version, champion, reason)."""
        return Path(self.export) / "registry.json"

    @property
    def registry_metrics(self) -> Path:
        """export -> `dvc metrics`: the decision's numbers only."""
        return Path(self.metrics) / "registry.json"


@dataclass(frozen=True)
class AudioParams:
    sample_rate: int = ranged(44100, ge=8000, le=192000, unit="Hz")


@dataclass(frozen=True)
class DemoParams:
    seed: int = 1234
    acapellas: int = ranged(8, ge=1)
    instrumentals: int = ranged(8, ge=1)
    min_seconds: float = ranged(20.0, gt=0, unit="seconds")
    max_seconds: float = 40.0

    RULES: ClassVar[Rules] = (("min_seconds", lambda d: d.min_seconds <= d.max_seconds, "must be <= demo.max_seconds ({max_seconds})"),)


@dataclass(frozen=True)
class CorpusParams:
    spec: str = "sources/debian-corpus.yaml"
    set: Literal["none", "train", "eval"] = "none"
    cache: str = ".cache/debian"
    track_seconds: float = ranged(45.0, gt=0, unit="seconds")
    pause_seconds: tuple[float, float] = ranged((0.15, 0.7), ge=0, unit="seconds")
    seed: int = 0


@dataclass(frozen=True)
class DownloadParams:
    sources: str = "sources/demo.yaml"
    retries: int = ranged(3, ge=1)
    backoff_seconds: float = ranged(2.0, ge=0, unit="seconds")
    socket_timeout: float = ranged(30.0, gt=0, unit="seconds")
    allow_file_urls: bool = True
    file_roots: tuple[str, ...] = ()
    format: str = "bestaudio/best"


@dataclass(frozen=True)
class NormalizeParams:
    target_lufs: float = -23.0
    peak_ceiling_db: float = ranged(-1.0, le=0, unit="dBFS")
    highpass_hz: float = ranged(20.0, ge=0, le=100, unit="Hz")
    silence_threshold_db: float = -60.0
    clipping_level: float = ranged(0.999, gt=0, le=1)
    workers: int = ranged(2, ge=1)


@dataclass(frozen=True)
class ValidateParams:
    min_seconds: float = 5.0
    max_seconds: float = 1800.0
    min_loudness_lufs: float = -40.0
    max_loudness_lufs: float = -10.0
    max_peak_db: float = -0.5
    max_silence_ratio: float = 0.7
    max_clipping_ratio: float = 0.01
    min_files_per_role: int = ranged(3, ge=1)

    RULES: ClassVar[Rules] = (
        ("min_seconds", lambda v: v.min_seconds < v.max_seconds, "must be < validate.max_seconds ({max_seconds})"),
        ("min_loudness_lufs", lambda v: v.min_loudness_lufs < v.max_loudness_lufs, "must be < validate.max_loudness_lufs ({max_loudness_lufs})"),
    )


@dataclass(frozen=True)
class IndexParams:
    seed: int = 0
    val_fraction: float = ranged(0.15, ge=0, lt=1)
    test_fraction: float = ranged(0.25, ge=0, lt=1)
    snippet_seconds: float = 1.0
    hop_seconds: float = ranged(0.5, gt=0, unit="seconds")
    activity_threshold_db: float = -40.0
    min_active_fraction: float = ranged(0.75, gt=0, le=1)
    testset_tracks: int = ranged(4, ge=1)
    testset_seconds: float = ranged(8.0, gt=0, unit="seconds")
    testset_vocal_db: tuple[float, float] = ranged((-6.0, 6.0))

    RULES: ClassVar[Rules] = (
        ("val_fraction", lambda i: i.val_fraction + i.test_fraction < 1, "val_fraction and test_fraction must sum to less than 1"),
        ("hop_seconds", lambda i: i.hop_seconds <= i.snippet_seconds, "must be <= index.snippet_seconds ({snippet_seconds})"),
    )


@dataclass(frozen=True)
class ModelParams:
    """One section for every model family: each takes the keys its constructor names (see `model_kwargs`)."""

    name: Literal["VocNet", "HybridVocNet", "BandSplitVocNet"] = "VocNet"
    filters: int = ranged(16, ge=1)
    skip_filters: int = ranged(24, ge=1)
    layers: int = ranged(10, ge=1)
    layers_per_stack: int = ranged(10, ge=1)
    kernel_size: int = ranged(2, ge=2)
    bias: bool = False
    n_fft: int = 2048
    hop: int = 512
    wave_filters: int = ranged(64, ge=1)
    wave_stride: int = ranged(128, ge=1)
    global_context: bool = False
    lookahead_frames: int = -1
    refine_width: int = ranged(0, ge=0)  # HybridVocNet: width of the SubbandRefiner on its mask (0: none; 32 measured: no gain)
    stereo_features: bool = False  # HybridVocNet: mid and side magnitudes as inputs too (measured on base_v18: no gain)
    bands: int = ranged(24, ge=1)  # BandSplitVocNet: frequency bands the STFT bins are split into
    band_filters: int = ranged(48, ge=1)  # BandSplitVocNet: channels of each band in its gated blocks

    RULES: ClassVar[Rules] = (
        # BandSplitVocNet has no waveform encoder, so any hop suits it
        ("hop", lambda m: m.name == "BandSplitVocNet" or m.hop % m.wave_stride == 0,
         "must be a multiple of model.wave_stride ({wave_stride})"),
        ("n_fft", lambda m: m.n_fft > m.hop and m.n_fft % 2 == 0, "must be even and > model.hop ({hop})"),
        ("bands", lambda m: m.name != "BandSplitVocNet" or m.bands <= m.n_fft // 2 + 1,
         "must be at most the STFT's bins, model.n_fft / 2 + 1 (model.n_fft is {n_fft})"),
    )


def probability(default: float = 0.0) -> Any:
    return ranged(default, ge=0, le=1)


@dataclass(frozen=True)
class AugmentParams:
    """`data.augment`: transforms of the training stems (src/vocalsep/data/augment.py); each key without a
    unit is the probability that its transform fires. All 0 (the default) leaves the data as it was."""

    sing: float = probability()  # speech made sung: pitch held on semitone notes with vibrato (0.3: within noise)
    pitch_shift: float = probability()
    pitch_semitones: tuple[float, float] = ranged((-4.0, 4.0), ge=-12, le=12, unit="semitones")
    speed: float = probability()
    speed_factor: tuple[float, float] = ranged((0.9, 1.1), ge=0.5, le=2.0)
    phone_band: float = probability()
    lowpass: float = probability()
    lowpass_hz: tuple[float, float] = ranged((4000.0, 11000.0), ge=500, unit="Hz")
    eq: float = probability()
    eq_db: tuple[float, float] = ranged((-9.0, 9.0), ge=-24, le=24, unit="dB")
    reverb: float = probability()
    reverb_room: tuple[float, float] = ranged((0.1, 0.8), ge=0, le=1)
    reverb_wet: tuple[float, float] = ranged((0.05, 0.4), ge=0, le=1)
    compress: float = probability()
    compress_threshold_db: tuple[float, float] = ranged((-30.0, -10.0), le=0, unit="dBFS")
    compress_ratio: tuple[float, float] = ranged((2.0, 8.0), ge=1)
    saturate: float = probability()
    saturate_drive_db: tuple[float, float] = ranged((3.0, 18.0), ge=0, le=48, unit="dB")
    music_speed: float = probability()
    music_speed_factor: tuple[float, float] = ranged((0.94, 1.06), ge=0.5, le=2.0)
    music_eq: float = probability()
    music_mono: float = probability()  # the music folded to mono, so a centred, mono sound is no cue for voice
    music_lowpass: float = probability()  # the music band-limited too, so bandwidth is no cue for voice
    music_lowpass_hz: tuple[float, float] = ranged((3400.0, 8000.0), ge=500, unit="Hz")
    music_resample: float = probability()  # the music through a lower sample rate: a true 8-16 kHz file's band edge
    music_resample_hz: tuple[float, ...] = ranged((8000.0, 11025.0, 16000.0), ge=2000, unit="Hz")


@dataclass(frozen=True)
class DataParams:
    segment_seconds: float = ranged(0.5, gt=0, unit="seconds")
    examples_per_epoch: int = ranged(256, ge=1)
    gain_db: tuple[float, float] = ranged((-6.0, 3.0))
    channel_swap: float = ranged(0.5, ge=0, le=1)
    sign_flip: float = ranged(0.5, ge=0, le=1)
    val_examples: int = ranged(32, ge=1)
    seed: int = 0
    augment: AugmentParams = field(default_factory=AugmentParams)
    voice_alone: float = ranged(0.0, ge=0, le=1)  # probability that an example has no music: output = input
    music_alone: float = ranged(0.0, ge=0, le=1)  # probability that an example has no voice: output = silence

    RULES: ClassVar[Rules] = (
        ("voice_alone", lambda d: d.voice_alone + d.music_alone <= 1, "plus data.music_alone must be <= 1"),
    )


@dataclass(frozen=True)
class TrainParams:
    device: Literal["auto", "cpu", "cuda"] = "auto"
    epochs: int = ranged(4, ge=1)
    batch_size: int = ranged(8, ge=1)
    lr: float = ranged(1e-3, gt=0)
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    loss: Literal["l1", "l1_stft", "snr", "snr_stft", "si_sdr"] = "l1"
    warmup_steps: int = ranged(0, ge=0)
    init: Literal["scratch", "pretrained"] = "scratch"
    early_stopping_patience: int = 5
    workers: int = ranged(0, ge=0)
    compile: bool = False
    amp: bool = True
    log_every: int = ranged(10, ge=1)
    checkpoint_every: int = ranged(50, ge=1)
    seed: int = 0


@dataclass(frozen=True)
class SeparateParams:
    chunk_seconds: float = ranged(4.0, gt=0, unit="seconds")
    overlap_seconds: float = ranged(0.25, ge=0, unit="seconds")
    batch_size: int = ranged(4, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    runtime: Literal["auto", "torch", "onnxruntime"] = "auto"
    shifts: int = ranged(0, ge=0, le=8)
    wiener_power: float = ranged(0.0, ge=0, le=8, must="0 (off) or an exponent from 1 to 8")

    RULES: ClassVar[Rules] = (
        ("wiener_power", lambda s: s.wiener_power == 0 or s.wiener_power >= 1,
         "must be 0 (off) or at least 1: below 1 the filter blurs voice and music together"),
    )


@dataclass(frozen=True)
class StreamParams:
    block_seconds: float = ranged(0.02, gt=0, unit="seconds")
    threads: int = ranged(1, ge=1)


@dataclass(frozen=True)
class ServeParams:
    workers: int = ranged(1, ge=1)
    threads: int = ranged(2, ge=1)
    queue: int = ranged(8, ge=0)
    timeout_seconds: float = ranged(300.0, gt=0, unit="seconds")


@dataclass(frozen=True)
class EvaluateParams:
    window_seconds: float = ranged(1.0, gt=0, unit="seconds")
    audio_examples: int = 3
    level_gains_db: tuple[float, ...] = ranged((-12.0, 0.0, 6.0), ge=-60, le=24, unit="dB")

    RULES: ClassVar[Rules] = (
        ("level_gains_db", lambda e: len(e.level_gains_db) != 1,
         "must be empty (level invariance off) or hold at least two gains: the metric is their spread"),
    )


@dataclass(frozen=True)
class ExportParams:
    registered_model: str = "vocalsep"
    metric: Literal["si_sdr", "sdr", "si_sdri"] = "si_sdr"
    onnx: bool = True
    base: bool = True
    max_seconds: float = ranged(600.0, gt=0, unit="seconds")
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

    RULES: ClassVar[Rules] = (  # across sections
        ("data.segment_seconds", lambda p: p.data.segment_seconds <= p.index.snippet_seconds,
         "must be <= index.snippet_seconds ({index.snippet_seconds})"),
        ("train.batch_size", lambda p: p.train.batch_size <= p.data.examples_per_epoch,
         "must be <= data.examples_per_epoch (an epoch holds at least one step)"),
    )


def params_from_dict(values: dict) -> Params:
    """Build `Params` from a (possibly partial) nested mapping; defaults fill gaps."""
    if not isinstance(values, dict):
        raise ParamsError(f"params must be a mapping of sections, got {type(values).__name__}")
    return build(Params, values)


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


def cli_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    """The params of `path` for a CLI's `--params`; defaults when the default file (params.yaml) is absent."""
    path = Path(path)
    return load_params(path) if path.exists() or path != DEFAULT_PARAMS else Params()


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
