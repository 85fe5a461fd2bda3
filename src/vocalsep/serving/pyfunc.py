"""The served model: an MLflow pyfunc around the separation core, and its request checks.

The pyfunc takes either form of a request (see docs/serving.md):

- a mixture array `(samples, 2)` float32 as `model_input` (soundfile's
  layout); the answer is the vocals `(samples, 2)` float32;
- encoded audio (wav, flac, ogg, mp3, ...) as the base64 string in the
  `audio_base64` parameter, with any one-row placeholder array as input; the
  answer is `{"vocals_base64": <32-bit float WAV at the input's rate>}`.

Bad requests raise MLflow's INVALID_PARAMETER_VALUE error, which the scoring
server answers with HTTP 400 and the message. The promotion rule and the
registry live in `vocalsep.registry`, loading a model in `vocalsep.loading`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import json
import math
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from mlflow.pyfunc import PythonModel

from vocalsep.api import Separator
from vocalsep.audio import ffmpeg_report, read_bytes, to_stereo
from vocalsep.config import Params, SeparateParams
from vocalsep.errors import AudioError
from vocalsep.model import load_model

CHECKPOINT_ARTIFACT = "checkpoint"
CONFIG_ARTIFACT = "serving_config"
AUDIO_PARAM = "audio_base64"
VOCALS_KEY = "vocals_base64"
PROVENANCE_PARAM = "provenance"  # params: {"provenance": "json"} answers what the model learned from
CHANNELS = 2


@dataclass(frozen=True)
class ServingConfig:
    """What the served model needs besides the weights: rate, input limit, separation settings."""

    sample_rate: int
    max_seconds: float
    separate: SeparateParams

    @classmethod
    def from_params(cls, params: Params, sample_rate: int) -> ServingConfig:
        """`sample_rate` is the checkpoint's own, as the CLI and the evaluate stage read it."""
        return cls(sample_rate, params.export.max_seconds, params.separate)

    @classmethod
    def read(cls, path: str | Path) -> ServingConfig:
        values = json.loads(Path(path).read_text())
        return cls(int(values["sample_rate"]), float(values["max_seconds"]), SeparateParams(**values["separate"]))

    def write(self, path: str | Path) -> Path:
        values = {"sample_rate": self.sample_rate, "max_seconds": self.max_seconds,
                  "separate": dataclasses.asdict(self.separate)}
        Path(path).write_text(json.dumps(values, indent=2) + "\n")
        return Path(path)

    def max_frames(self, sample_rate: int) -> int:
        return math.floor(self.max_seconds * sample_rate)


def _invalid(message: str) -> Exception:
    """The error for a bad request: MLflow's scoring server answers it with HTTP 400 and `message`."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def mixture_from_array(model_input: Any, max_frames: int) -> np.ndarray:
    """A request array `(samples, 2)` -> the core's mixture `(2, samples)` float32, or a 400 error."""
    values = model_input.to_numpy() if hasattr(model_input, "to_numpy") else model_input
    try:
        array = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise _invalid("inputs: expected numbers shaped (samples, 2) (left, right per row)") from None
    if array.ndim != 2 or array.shape[1] != CHANNELS or array.shape[0] == 0:
        raise _invalid(f"inputs: expected shape (samples, 2) with samples > 0, got {array.shape}")
    if array.shape[0] > max_frames:
        raise _invalid(f"inputs: {array.shape[0]} samples is longer than the limit of {max_frames} "
                       "(export.max_seconds at the model's rate); send a shorter excerpt")
    if not np.isfinite(array).all():
        raise _invalid("inputs: contains NaN or infinite values; send finite samples")
    return np.ascontiguousarray(array.T)


def decode_audio(encoded: Any, max_seconds: float) -> tuple[np.ndarray, int]:
    """base64 audio file -> (stereo mixture `(frames, 2)` at the file's rate, that rate)."""
    if not isinstance(encoded, str):
        raise _invalid(f"{AUDIO_PARAM}: expected a base64 string, got {type(encoded).__name__}")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(f"{AUDIO_PARAM}: not valid base64; encode the audio file's bytes with base64") from None
    _check_seconds(_header_seconds(data), max_seconds)  # before decoding: a long upload costs no memory
    try:
        audio, rate = read_bytes(data, AUDIO_PARAM)
    except AudioError as err:
        raise _invalid(f"{AUDIO_PARAM}: not decodable audio ({err}); send wav, flac, ogg or mp3 bytes") from None
    _check_seconds(audio.shape[0] / rate, max_seconds)
    return to_stereo(audio), rate


def _header_seconds(data: bytes) -> float | None:
    """Duration from the file's header, before any decoding: soundfile's (wav, flac, ogg, mp3), else
    the container's as ffmpeg reports it on opening the file (m4a, webm, opus...); None if neither."""
    try:
        info = sf.info(io.BytesIO(data))
    except (RuntimeError, sf.LibsndfileError, TypeError, ValueError):
        return container_seconds(data)
    return info.frames / info.samplerate if info.samplerate > 0 and info.frames > 0 else container_seconds(data)


def container_seconds(data: bytes) -> float | None:
    """`Duration:` of ffmpeg's input report (it opens the container and decodes nothing), else None."""
    with tempfile.NamedTemporaryFile(prefix="vocalsep-probe-") as tmp:
        tmp.write(data)
        tmp.flush()
        report = ffmpeg_report(tmp.name, timeout=30)
    found = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", report)
    return int(found[1]) * 3600 + int(found[2]) * 60 + float(found[3]) if found else None


def _check_seconds(seconds: float | None, max_seconds: float) -> None:
    if seconds is not None and seconds > max_seconds:
        raise _invalid(f"{AUDIO_PARAM}: {seconds:.1f} s of audio is longer than the limit of {max_seconds:g} s "
                       "(export.max_seconds); send a shorter excerpt")


def encode_wav(audio: np.ndarray, sample_rate: int) -> str:
    """`(2, samples)` float32 -> base64 of a 32-bit float WAV (nothing clips, nothing is rounded)."""
    buffer = io.BytesIO()
    sf.write(buffer, audio.T, sample_rate, format="WAV", subtype="FLOAT")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class VocalSeparator(PythonModel):
    """MLflow pyfunc: the separation core around a self-describing checkpoint."""

    def load_context(self, context: Any) -> None:
        self.config = ServingConfig.read(context.artifacts[CONFIG_ARTIFACT])
        origin = context.artifacts.get(PROVENANCE_PARAM)
        self.provenance = json.loads(Path(origin).read_text()) if origin else None
        # the Separator of the Python API and the CLI: one separation path (on CPU, ONNX Runtime where faster,
        # per separate.runtime; the graph is exported once per model, here, not on the first request)
        self.separator = Separator.from_model(load_model(context.artifacts[CHECKPOINT_ARTIFACT]),
                                              self.config.sample_rate, self.config.separate, spec="served")
        _ = self.separator.model  # built now, not on the first request

    # np.ndarray is the one input hint MLflow neither warns about nor turns into a second signature.
    def predict(self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None) -> Any:
        """`(samples, 2)` float32 -> vocals `(samples, 2)`; with `audio_base64` -> `{"vocals_base64": ...}`."""
        if (params or {}).get(PROVENANCE_PARAM):
            return {PROVENANCE_PARAM: self.provenance or {"note": "this model was registered without provenance"}}
        encoded = (params or {}).get(AUDIO_PARAM) or ""
        if encoded:
            return {VOCALS_KEY: self.separate_encoded(encoded)}
        mixture = mixture_from_array(model_input, self.config.max_frames(self.config.sample_rate))
        return self.separate_mixture(mixture).T

    def separate_mixture(self, mixture: np.ndarray) -> np.ndarray:
        """`(2, samples)` at the model's rate -> vocals `(2, samples)`."""
        return self.separator.vocals(mixture.T, self.config.sample_rate).T

    def separate_encoded(self, encoded: str) -> str:
        """base64 audio file -> base64 WAV of the vocals at the input's rate and length."""
        mixture, input_rate = decode_audio(encoded, self.config.max_seconds)
        vocals = self.separator.vocals(mixture, input_rate)
        return encode_wav(vocals.T, input_rate)
