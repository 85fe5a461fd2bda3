"""yt-dlp as the download stage uses it: options (audio only, retries left to the stage, file: URLs where
allowed), an archive keyed by our source id, a quiet logger, and every failure classified as transient (worth
retrying) or not, with a one-line reason."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import yt_dlp
from yt_dlp.networking.exceptions import HTTPError, TransportError

from vocalsep.config import DownloadParams
from vocalsep.env import ffmpeg_exe

log = logging.getLogger("vocalsep.stages.download")  # the stage's logger: its messages read as the stage's
ARCHIVE_PREFIX = "vocalsep"  # archive lines read "vocalsep <source id>"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class DownloadFailed(Exception):
    """One attempt at one URL failed; `transient` says whether trying again may help."""

    def __init__(self, reason: str, transient: bool):
        super().__init__(reason)
        self.reason, self.transient, self.attempts = reason, transient, 1


class SourceDownloader(yt_dlp.YoutubeDL):
    """YoutubeDL whose archive key is our source id: direct links that share a file name
    (yt-dlp's generic id) must not shadow each other, and a re-run needs no request."""

    def __init__(self, params: dict, source_id: str):
        super().__init__(params)
        self._source_id = source_id

    def _make_archive_id(self, info_dict: dict) -> str:
        return f"{ARCHIVE_PREFIX} {self._source_id}"


class QuietLogger:
    """yt-dlp's own messages go to debug; we log one line per URL ourselves."""

    def debug(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    info = warning = error = debug


def _causes(err: BaseException | None) -> list[BaseException]:
    """The error and what caused it, through yt-dlp's `exc_info`/`cause` and Python's chaining."""
    chain: list[BaseException] = []
    while err is not None and err not in chain and len(chain) < 10:
        chain.append(err)
        exc_info = getattr(err, "exc_info", None)
        wrapped = exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) > 1 else None
        err = wrapped or getattr(err, "cause", None) or err.__cause__ or err.__context__
    return chain


def classify(err: BaseException) -> DownloadFailed:
    """Readable reason and transient flag: network trouble, 5xx, 408 and 429 may pass; the rest will not."""
    chain = _causes(err)
    for cause in chain:
        if isinstance(cause, HTTPError):
            transient = cause.status >= 500 or cause.status in (408, 429)
            return DownloadFailed(f"HTTP {cause.status} {cause.reason or ''}".strip(), transient)
    for cause in chain:
        if isinstance(cause, TransportError):
            deepest = next((c for c in reversed(chain) if isinstance(c, OSError)), cause)
            return DownloadFailed(f"network error: {deepest}", True)
    message = _ANSI.sub("", str(err)).removeprefix("ERROR: ").strip()
    return DownloadFailed(message or type(err).__name__, False)


def ytdlp_options(params: DownloadParams, outtmpl: str, archive: Path | None) -> dict:
    return {
        "format": params.format,
        "outtmpl": outtmpl,
        "download_archive": str(archive) if archive else None,
        "retries": 0,  # fetch_with_retries is the one retry layer: it knows transient from permanent
        "fragment_retries": 0,
        "socket_timeout": params.socket_timeout,
        "enable_file_urls": params.allow_file_urls,
        "ffmpeg_location": ffmpeg_exe(),  # yt-dlp takes the binary itself: no PATH shim needed
        "noplaylist": True,
        "cachedir": False,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": QuietLogger(),
    }
