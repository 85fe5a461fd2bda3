"""Process environment the project relies on: no telemetry, ffmpeg on PATH.

Nothing happens on import: each command calls `disable_telemetry()` where it
starts (the `vocalsep` CLI, every stage's `main`), so importing vocalsep into
another process (MLflow's scoring server, a notebook) changes no environment.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

TELEMETRY_FILE = Path(__file__).with_name("telemetry.env")  # KEY=value lines; the Makefile includes it too


def _read_env(path: Path) -> dict[str, str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


TELEMETRY_OFF = _read_env(TELEMETRY_FILE)


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

