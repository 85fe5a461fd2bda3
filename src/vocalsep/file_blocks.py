"""An audio file read block by block, never whole: libsndfile's blocks with the same truncation and corruption
checks as vocalsep.audio's reader, or an ffmpeg pipe for what libsndfile cannot open (m4a, webm, opus...)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from vocalsep.audio import check_input_file, ffmpeg_report, is_truncated, log_says_truncated
from vocalsep.env import ffmpeg_exe
from vocalsep.errors import AudioError

BLOCK_FRAMES = 65536


def audio_blocks(path: Path, frames: int = BLOCK_FRAMES) -> tuple[int, int, Iterator[np.ndarray]]:
    """`(rate, channels, blocks)` of a file read in `(n, channels)` float32 blocks, never whole."""
    path = check_input_file(path)
    try:
        handle = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError):
        return _ffmpeg_blocks(path, frames)

    declared, log = handle.frames, handle.extra_info
    if log_says_truncated(log):
        handle.close()
        raise AudioError(f"{path}: file is truncated (ends before its header says); re-download it")

    def blocks() -> Iterator[np.ndarray]:
        count = 0
        with handle:
            try:
                for block in handle.blocks(blocksize=frames, dtype="float32", always_2d=True):
                    _check_finite(block, path)
                    count += block.shape[0]
                    yield block
            except sf.LibsndfileError as err:
                raise AudioError(f"{path}: cannot be decoded past frame {count} ({err}); re-download it") from None
        if is_truncated(count, declared):
            raise AudioError(f"{path}: file is truncated or corrupt (decodes {count} of {declared} frames); "
                             "re-download it")

    return handle.samplerate, handle.channels, blocks()


def _check_finite(block: np.ndarray, path: Path) -> None:
    if not np.isfinite(block).all():
        raise AudioError(f"{path}: contains NaN or infinite samples (corrupt float audio); re-export it")


def _ffmpeg_blocks(path: Path, frames: int) -> tuple[int, int, Iterator[np.ndarray]]:
    """m4a, webm, opus...: ffmpeg decodes to a float32 stereo pipe at the stream's own rate."""
    probe = ffmpeg_report(path)
    found = re.search(r"Audio: [^,]+, (\d+) Hz", probe)
    if found is None:
        if "Invalid data" in probe or "moov atom not found" in probe:
            raise AudioError(f"{path}: not audio, or corrupt/truncated (ffmpeg cannot parse it); re-download it")
        raise AudioError(f"{path}: has no audio stream; give an audio file or a video with sound")
    rate = int(found[1])
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", f"file:{path.absolute()}",
               "-map", "0:a:0", "-vn", "-ac", "2", "-f", "f32le", "-acodec", "pcm_f32le", "-"]

    def blocks() -> Iterator[np.ndarray]:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert process.stdout is not None and process.stderr is not None  # both are pipes
        try:
            size = frames * 2 * 4
            while True:
                data = process.stdout.read(size)
                if not data:
                    break
                block = np.frombuffer(data[: len(data) - len(data) % 8], dtype="<f4").reshape(-1, 2)
                _check_finite(block, path)
                yield block
            if process.wait() != 0:
                raise AudioError(f"{path}: ffmpeg failed while decoding ({process.stderr.read().decode()[-200:]})")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

    return rate, 2, blocks()
