"""Audio in and out, channel and rate conversion, loudness and level statistics.

Every array here is float32 shaped (frames, channels), as soundfile reads it.
Decoding tries libsndfile first (wav, flac, ogg, mp3, aiff, ...) and falls back
to ffmpeg for everything else (m4a, webm, opus, video containers). Problems a
user can meet raise `AudioError` naming the file and what to do.
"""

from __future__ import annotations

import functools
import io
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from vocalsep.env import ffmpeg_exe
from vocalsep.errors import AudioError

# libsndfile's log marks a data chunk shorter than its header says with "(should be N)".
_TRUNCATED_LOG = re.compile(r"^data\s*:.*\(should be \d+\)", re.M)
# An Ogg file cut mid-page logs both "Last page lacks an end-of-stream bit" and "Junk after
# the last page". Either alone is harmless: 548 of klettres-data's files lack the bit and 18
# carry trailing junk, and every one of them decodes all the frames it declares.
_OGG_CUT = ("lacks an end-of-stream", "Junk after the last page")
_FFMPEG_TRUNCATED = re.compile(r"ended prematurely|partial file|truncat", re.I)
_FFMPEG_STREAM = re.compile(r"Output #0.*?Audio: pcm_f32le, (\d+) Hz, ([^,]+),", re.S)


def check_input_file(path: str | Path) -> Path:
    """`path` as a Path if it is a non-empty file; else an AudioError saying what it is instead."""
    path = Path(path)
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file; give the files in it (e.g. {path}/*.mp3)")
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found; check the path or re-run the download stage")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty (0 bytes); re-download it")
    return path


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode an audio file to float32 `(frames, channels)` and its sample rate."""
    path = check_input_file(path)
    try:
        audio, sr = _read_soundfile(path, str(path))
    except _NotForLibsndfile as err:
        audio, sr = _read_ffmpeg(path, str(path), err.declared)
    return _checked(audio, str(path)), sr


def read_bytes(data: bytes, name_hint: str = "") -> tuple[np.ndarray, int]:
    """Decode encoded audio bytes (any format `read_audio` takes) to `(frames, channels)`, rate."""
    name = name_hint or "uploaded audio"
    if not data:
        raise AudioError(f"{name}: no bytes received; send a non-empty audio file")
    try:
        audio, sr = _read_soundfile(io.BytesIO(data), name)
    except _NotForLibsndfile as err:
        with tempfile.TemporaryDirectory(prefix="vocalsep-") as tmp:
            path = Path(tmp) / ("input" + Path(name_hint).suffix)
            path.write_bytes(data)
            audio, sr = _read_ffmpeg(path, name, err.declared)
    return _checked(audio, name), sr


def probe_audio(path: str | Path) -> str | None:
    """None when `path` holds decodable audio, else the reason it does not (cheap: header, or 1 s via ffmpeg)."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return f"{path}: empty or missing"
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError):
        pass
    else:
        return None if info.frames > 0 and info.channels > 0 else f"{path}: no audio frames in its header"
    try:
        _run_ffmpeg(path, str(path), ["-t", "1"])
    except AudioError as err:
        return str(err)
    return None


def _checked(audio: np.ndarray, name: str) -> np.ndarray:
    """The decoded (frames, channels) audio, if it holds finite samples at all."""
    if audio.shape[0] == 0:
        raise AudioError(f"{name}: contains no audio samples (zero length); re-download or remove it")
    if not np.isfinite(audio).all():
        raise AudioError(f"{name}: contains NaN or infinite samples (corrupt float audio); re-export it")
    return audio


class _NotForLibsndfile(Exception):
    """libsndfile cannot open the data (`declared` 0) or failed after reading a header of `declared` frames."""

    def __init__(self, declared: int = 0):
        super().__init__(declared)
        self.declared = declared


def is_truncated(decoded: int, declared: int) -> bool:
    """Fewer frames than the header declares, beyond codec padding and estimate slack."""
    return declared > 0 and decoded < 0.99 * declared - 2048


def log_says_truncated(log: str) -> bool:
    """libsndfile's header log (`SoundFile.extra_info`) reports a cut file.

    A WAV whose data chunk is shorter than declared, or an Ogg stream that both lacks its end-of-stream bit and has
    junk after the last page. The end-of-stream warning alone is a false positive: such files decode completely.
    """
    return bool(_TRUNCATED_LOG.search(log)) or all(marker in log for marker in _OGG_CUT)


def _read_soundfile(source, name: str) -> tuple[np.ndarray, int]:
    """libsndfile decode; `_NotForLibsndfile` hands the data on to ffmpeg."""
    try:
        f = sf.SoundFile(source)
    except sf.LibsndfileError:
        raise _NotForLibsndfile() from None
    with f:
        declared, log, sr = f.frames, f.extra_info, f.samplerate
        try:
            audio = f.read(dtype="float32", always_2d=True)
        except sf.LibsndfileError:
            raise _NotForLibsndfile(declared) from None
    # MP3 frame counts come from the Xing header: a cut file decodes far fewer frames.
    if log_says_truncated(log) or is_truncated(audio.shape[0], declared):
        raise AudioError(f"{name}: file is truncated (ends before its header says); re-download it")
    return audio, sr


@functools.lru_cache(maxsize=1)
def _ffmpeg_layouts() -> dict[str, int]:
    """Channel count of every standard layout name ffmpeg prints (`5.1(side)` -> 6)."""
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-layouts"], capture_output=True, text=True).stdout
    table = out.split("Standard channel layouts:")[-1]
    return {m[1]: m[2].count("+") + 1 for m in re.finditer(r"^(\S+)\s+([A-Z0-9+]+)$", table, re.M)}


def _channels(layout: str) -> int | None:
    """Channels of an ffmpeg stream layout (`stereo`, `5.1`, `3 channels`), None if unknown."""
    named = re.match(r"(\d+) channels", layout)
    if named:
        return int(named[1])
    return _ffmpeg_layouts().get(layout.strip())


def _ffmpeg_error(name: str, stderr: str) -> AudioError:
    if "0:a:0" in stderr or "matches no streams" in stderr:
        return AudioError(f"{name}: has no audio stream; give an audio file or a video with sound")
    if "Invalid data found" in stderr or "moov atom not found" in stderr:
        return AudioError(f"{name}: not audio, or corrupt/truncated (ffmpeg cannot parse it); re-download it")
    last = [line for line in stderr.strip().splitlines() if line.strip()][-1:] or ["no message"]
    return AudioError(f"{name}: ffmpeg cannot decode it ({last[0].strip()}); re-download or convert it")


def ffmpeg_report(path: str | Path, timeout: float = 60) -> str:
    """ffmpeg's report on opening `path` (streams, rates, `Duration:`), decoding nothing; '' on a timeout."""
    try:
        return subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", f"file:{Path(path).absolute()}"],
                              capture_output=True, timeout=timeout).stderr.decode(errors="replace")
    except subprocess.TimeoutExpired:
        return ""


def _run_ffmpeg(path: Path, name: str, extra: list[str]) -> subprocess.CompletedProcess:
    # "file:" keeps ffmpeg from reading a name like "take:2.m4a" as a protocol or an option.
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", f"file:{path.absolute()}", "-map", "0:a:0", "-vn",
           *extra, "-f", "f32le", "-acodec", "pcm_f32le", "-"]
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0:
        raise _ffmpeg_error(name, proc.stderr.decode(errors="replace"))
    return proc


def _read_ffmpeg(path: Path, name: str, declared: int = 0) -> tuple[np.ndarray, int]:
    """ffmpeg decode to raw float32; rate and channels come from its stream report.

    `declared` is the frame count a header promised (0 if unknown).
    """
    proc = _run_ffmpeg(path, name, [])
    stderr = proc.stderr.decode(errors="replace")
    stream = _FFMPEG_STREAM.search(stderr)
    if stream is None:
        raise AudioError(f"{name}: ffmpeg reported no audio stream format; convert it to wav or flac")
    sr, channels = int(stream[1]), _channels(stream[2])
    if channels is None:
        # A layout we cannot count: ask ffmpeg for a stereo down-mix instead.
        proc, channels = _run_ffmpeg(path, name, ["-ac", "2"]), 2
        stderr = proc.stderr.decode(errors="replace")
    if _FFMPEG_TRUNCATED.search(stderr):
        raise AudioError(f"{name}: file is truncated (ffmpeg: ended prematurely); re-download it")
    raw = np.frombuffer(proc.stdout, dtype="<f4")
    audio = raw[: raw.size - raw.size % channels].reshape(-1, channels).astype(np.float32)
    if is_truncated(audio.shape[0], declared):
        raise AudioError(f"{name}: file is truncated or corrupt (decodes {audio.shape[0]} of {declared} frames); "
                         "re-download it")
    return audio, sr


def to_stereo(x: np.ndarray) -> np.ndarray:
    """(frames, channels) -> (frames, 2).

    Mono is copied to both sides; stereo is kept. With more channels the first two
    keep their side (front left/right in wav and ffmpeg order) and every further
    channel (centre, LFE, surrounds) goes equally into both: each side is the mean
    of its front channel and the rest, so a full-scale channel cannot clip the mix.
    """
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"expected audio shaped (frames, channels), got {x.shape}")
    channels = x.shape[1]
    if channels == 1:
        return np.repeat(x, 2, axis=1)
    if channels == 2:
        return x
    rest = x[:, 2:].sum(axis=1)
    left = (x[:, 0] + rest) / (channels - 1)
    right = (x[:, 1] + rest) / (channels - 1)
    return np.stack([left, right], axis=1).astype(x.dtype)


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """(frames, channels) at `sr_in` -> (round(frames * sr_out / sr_in), channels), soxr HQ."""
    if sr_in == sr_out:
        return x
    return soxr.resample(x, sr_in, sr_out, quality="HQ").astype(np.float32, copy=False)


def write_audio(path: str | Path, x: np.ndarray, sr: int, subtype: str | None = "PCM_24") -> Path:
    """Write (frames, channels) audio; format from the extension, parents created.

    `subtype` applies where the format takes it (wav, flac, aiff); lossy formats
    (ogg, mp3) use their own encoding.
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").upper()
    if fmt not in sf.available_formats():
        raise AudioError(f"{path}: cannot write format {fmt or '(no extension)'}; use .flac, .wav, .ogg or .mp3")
    if subtype is not None and not sf.check_format(fmt, subtype):
        subtype = None
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, sr, subtype=subtype, format=fmt)
    return path


