"""Live audio in and out for `vocalsep stream`: raw PCM and WAV byte streams decoded into blocks, sound-card
input and output through sounddevice (PortAudio), a frame limit, and the writer of the vocals (raw PCM to
stdout, a WAV/FLAC file, a device). No separation here: `vocalsep.streaming` feeds the core."""

from __future__ import annotations

import sys
import wave
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import soundfile as sf

from vocalsep.errors import VocalsepError

FORMATS = {"f32le": ("<f4", 4), "s16le": ("<i2", 2)}


def sounddevice_module():
    """The sounddevice module, or a VocalsepError saying what to install."""
    try:
        import sounddevice
    except (ImportError, OSError) as err:  # the package is missing (ImportError) or PortAudio is (OSError)
        raise VocalsepError(f"audio devices need the sounddevice library and PortAudio ({err}); "
                            "pip install 'vocalsep[live]' and apt-get install libportaudio2, or use pipes and files"
                            ) from None
    return sounddevice


def device_index(sd, name: str, kind: str) -> int | str:
    """`name` (or an index) as an existing `kind` device; an error lists the devices there are."""
    device: int | str = int(name) if name.isdigit() else name
    try:
        sd.query_devices(device, kind=kind)
    except (ValueError, sd.PortAudioError) as err:
        found = [f"{i}: {d['name']}" for i, d in enumerate(sd.query_devices())
                 if d[f"max_{kind}_channels"] > 0]
        raise VocalsepError(f"--{kind}-device {name}: {err}; {kind} devices here: {', '.join(found) or 'none'} "
                            "(vocalsep stream --list-devices)") from None
    return device


class DeviceInput:
    """Blocks recorded from an audio device, as `pcm_blocks` yields them from a byte stream."""

    def __init__(self, sd, device: int | str, rate: int, channels: int, frames: int):
        self.stream = sd.InputStream(device=device, samplerate=rate, channels=channels, dtype="float32",
                                     blocksize=frames)
        self.frames, self.channels = frames, channels
        self.overflows = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        """Blocks until the consumer stops (`limited`, Ctrl-C); closing the generator closes the stream."""
        with self.stream:
            while True:
                data, overflowed = self.stream.read(self.frames)
                self.overflows += bool(overflowed)
                yield np.repeat(data, 2, axis=1) if self.channels == 1 else np.ascontiguousarray(data)


class DeviceOutput:
    """Vocals played on an audio device; PortAudio's output underflows are counted."""

    def __init__(self, sd, device: int | str, rate: int):
        self.stream = sd.OutputStream(device=device, samplerate=rate, channels=2, dtype="float32")
        self.stream.start()
        self.underflows = 0

    def write(self, vocals: np.ndarray) -> None:
        if vocals.shape[0]:
            self.underflows += bool(self.stream.write(np.ascontiguousarray(vocals, dtype=np.float32)))

    def close(self) -> None:
        self.stream.stop()  # plays out what is queued
        self.stream.close()


class WaveFrames:
    """A WAV stream's sample bytes, read through `wave`'s public `readframes` (whole frames)."""

    def __init__(self, header: wave.Wave_read) -> None:
        self.header, self.frame = header, header.getsampwidth() * header.getnchannels()

    def read(self, size: int) -> bytes:
        return self.header.readframes(max(1, size // self.frame))


def pcm_blocks(stream: BinaryIO, frames: int, channels: int, fmt: str) -> Iterator[np.ndarray]:
    dtype, width = FORMATS[fmt]
    size = frames * channels * width
    pending = b""
    while True:
        data = stream.read(size - len(pending))
        if not data:
            break
        pending += data
        if len(pending) < size:
            continue
        yield decode_pcm(pending, channels, dtype)
        pending = b""
    usable = len(pending) - len(pending) % (channels * width)
    if usable:
        yield decode_pcm(pending[:usable], channels, dtype)


def limited(blocks: Iterator[np.ndarray], limit: int | None) -> Iterator[np.ndarray]:
    """The first `limit` frames of `blocks` (all of them when None); then `blocks` is closed (a device stops)."""
    left = limit
    try:
        for block in blocks:
            if left is not None:
                block = block[:left]
                left -= block.shape[0]
            if block.shape[0]:
                yield block
            if left == 0:
                return
    finally:
        getattr(blocks, "close", lambda: None)()


def decode_pcm(data: bytes, channels: int, dtype: str) -> np.ndarray:
    samples = np.frombuffer(data, dtype=dtype).reshape(-1, channels)
    audio = samples.astype(np.float32) / 32768.0 if dtype == "<i2" else samples.astype(np.float32)
    return np.repeat(audio, 2, axis=1) if channels == 1 else audio


class Writer:
    def __init__(self, out: str | None, rate: int, channels: int, fmt: str, device: DeviceOutput | None = None):
        self.channels, self.fmt, self.device = channels, fmt, device
        if out is None:
            self.raw = self.file = None
        elif out == "-":
            self.raw, self.file = sys.stdout.buffer, None
        else:
            self.raw, self.file = None, sf.SoundFile(out, "w", rate, channels)

    def write(self, vocals: np.ndarray) -> None:
        if self.device is not None:
            self.device.write(vocals)
        audio = vocals.mean(axis=1, keepdims=True) if self.channels == 1 else vocals
        if self.raw is None and self.file is None:
            return
        if self.file is not None:
            self.file.write(audio)
            return
        raw = self.raw
        assert raw is not None  # neither a device-only nor a file writer
        if self.fmt == "s16le":
            raw.write((np.clip(audio, -1, 32767 / 32768) * 32768).astype("<i2").tobytes())
        else:
            raw.write(audio.astype("<f4").tobytes())
        raw.flush()

    def close(self) -> None:
        if self.device is not None:
            self.device.close()
        if self.file is not None:
            self.file.close()
