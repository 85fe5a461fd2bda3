"""Process environment the project relies on: no telemetry, ffmpeg on PATH."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

TELEMETRY_OFF = {
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "HF_HUB_OFFLINE": "1",
}


def disable_telemetry() -> None:
    """Switch off every library's usage reporting unless the user set it explicitly."""
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)


def ffmpeg_exe() -> str:
    """Path of an ffmpeg binary: the system's, else the one imageio-ffmpeg ships."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_bin_dir(cache: Path | None = None) -> Path:
    """A folder holding an `ffmpeg` executable, for tools that look it up on PATH (yt-dlp)."""
    exe = Path(ffmpeg_exe())
    if exe.name == "ffmpeg":
        return exe.parent
    cache = cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vocalsep" / "bin"
    cache.mkdir(parents=True, exist_ok=True)
    link = cache / "ffmpeg"
    if not link.exists():
        link.symlink_to(exe)
    return cache
