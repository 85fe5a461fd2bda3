"""What a request to the served model may be, checked before any work: the limits of one model (body size,
seconds of audio, the params it takes, workers, queue, timeout) and the checks of a JSON body against them
(size, depth, keys, samples), each failure a RequestError with its HTTP status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
import json
import math

import numpy as np

from vocalsep.config import ServeParams

INPUT_KEYS = ("inputs", "instances")
MAX_DEPTH = 4  # {"inputs": [[l, r], ...]} is 3 deep; {"params": {...}} 2
JSON_OVERHEAD = 64 * 1024
DRAIN_FACTOR = 4  # a body over the limit is read and dropped up to this many limits, then the answer is 413


@dataclass(frozen=True)
class Limits:
    """What one request may cost, from the model's serving config and the `serve` params."""

    max_frames: int  # rows of a JSON array (export.max_seconds at the model's rate)
    max_seconds: float
    max_body_bytes: int
    params: tuple[str, ...]  # the params the model takes
    serve: ServeParams

    @classmethod
    def for_model(cls, sample_rate: int, max_seconds: float, params: tuple[str, ...], serve: ServeParams) -> Limits:
        frames = math.floor(max_seconds * sample_rate)
        wav_bytes = 44 + frames * 2 * 2  # 16-bit stereo WAV
        return cls(frames, max_seconds, 4 * math.ceil(wav_bytes / 3) + JSON_OVERHEAD, params, serve)


class RequestError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of parsed JSON, stopping once past `limit` (arrays of numbers end the walk early)."""
    if isinstance(value, dict):
        inner = [_depth(v, limit - 1) for v in value.values()] if limit > 0 else [limit + 1]
        return 1 + max(inner, default=0)
    if isinstance(value, list):
        if limit <= 0:
            return limit + 2
        first = value[0] if value else None
        # samples are rows of two numbers: look at one row, not millions
        return 1 + (_depth(first, limit - 1) if isinstance(first, (list, dict)) else 0)
    return 0


def check_body(body: bytes, limits: Limits) -> None:
    """Raise RequestError for a JSON body the model must not see; return quietly for a good one."""
    rows = body.count(b"[") - 1  # one "[" per [left, right] row and one around them (base64 has none)
    if rows > limits.max_frames + 1:
        raise RequestError(413, "REQUEST_TOO_LARGE",
                           f"inputs: about {rows} samples is more than the limit of {limits.max_frames} "
                           f"(export.max_seconds = {limits.max_seconds:g} s at the model's rate); send a shorter "
                           "excerpt, or the audio file as params.audio_base64")
    try:
        request = json.loads(body)
    except RecursionError:
        raise RequestError(400, "BAD_REQUEST", f"body: JSON nested too deep (more than {MAX_DEPTH} levels); "
                           'send {"inputs": [[left, right], ...]}') from None
    except ValueError as err:
        raise RequestError(400, "BAD_REQUEST", f"body: not valid JSON ({str(err)[:120]})") from None
    if not isinstance(request, dict):
        raise RequestError(400, "BAD_REQUEST", 'body: expected a JSON object such as {"inputs": [[l, r], ...]}, '
                           f"got a {type(request).__name__}")
    if _depth(request, MAX_DEPTH) > MAX_DEPTH:
        raise RequestError(400, "BAD_REQUEST", f"body: JSON nested deeper than {MAX_DEPTH} levels; "
                           'send {"inputs": [[left, right], ...]}')
    unknown = sorted(set(request) - {*INPUT_KEYS, "params"})
    if unknown:
        raise RequestError(400, "BAD_REQUEST", f"body: unknown field(s) {', '.join(unknown)}; "
                           f"use inputs (or instances) and params")
    given = [k for k in INPUT_KEYS if k in request]
    if len(given) != 1:
        raise RequestError(400, "BAD_REQUEST", "body: needs exactly one of inputs or instances "
                           f"(found {', '.join(given) or 'neither'})")
    params = request.get("params", {})
    if not isinstance(params, dict):
        raise RequestError(400, "BAD_REQUEST", f"params: expected an object, got {type(params).__name__}")
    extra = sorted(set(params) - set(limits.params))
    if extra:
        raise RequestError(400, "BAD_REQUEST", f"params.{extra[0]}: unknown parameter; this model takes "
                           f"{', '.join(limits.params) or 'none'}")
    _check_samples(request[given[0]], given[0], limits)


def _check_samples(samples: Any, key: str, limits: Limits) -> None:
    if not isinstance(samples, list) or not samples:
        raise RequestError(400, "BAD_REQUEST", f"{key}: expected a non-empty array of [left, right] rows")
    if len(samples) > limits.max_frames:
        raise RequestError(413, "REQUEST_TOO_LARGE", f"{key}: {len(samples)} samples is more than the limit of "
                           f"{limits.max_frames} (export.max_seconds = {limits.max_seconds:g} s)")
    try:
        array = np.asarray(samples)
    except ValueError:
        raise RequestError(400, "BAD_REQUEST", f"{key}: rows of different lengths; every row is [left, right]") from None
    if array.dtype.kind not in "fiu":
        kind = {"b": "booleans", "U": "strings", "S": "strings"}.get(array.dtype.kind, "non-numbers")
        raise RequestError(400, "BAD_REQUEST", f"{key}: samples must be numbers, got {kind}; "
                           "send floats in [-1, 1]")
    if array.ndim != 2 or array.shape[1] != 2:
        raise RequestError(400, "BAD_REQUEST", f"{key}: expected shape (samples, 2), got {array.shape}")
