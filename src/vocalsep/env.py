"""Process environment the project relies on: no telemetry, ffmpeg on PATH."""

from __future__ import annotations

import os
import shutil

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

