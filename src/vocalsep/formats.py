"""Output formats of the stems: wav, flac, ogg (Vorbis) and mp3, all written by libsndfile.

libsndfile 1.2 (bundled with soundfile) writes every one of them, block by
block, so the stems of a song of any length never sit whole in memory.

- `wav`: 16- or 24-bit PCM, or 32-bit float (the default: nothing clips and
  `vocals + accompaniment` gives the mixture back exactly).
- `flac`: 16- or 24-bit (FLAC holds no float). Lossless.
- `mp3`: constant bitrate, `bitrate` kbit/s (default 320). Rates of 8-48 kHz.
- `ogg`: Vorbis, variable bitrate; `bitrate` picks the Vorbis quality whose
  nominal rate is closest (about 64-500 kbit/s for stereo at 44.1 kHz; default 192).

Integer and lossy stems are clipped to full scale before they are written
(libsndfile would wrap around, not clip): choose 32-bit float wav to keep
peaks above 0 dBFS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vocalsep.errors import VocalsepError

FORMATS = ("wav", "flac", "ogg", "mp3")
BITS = (16, 24, 32)
DEFAULT_BITRATE = {"mp3": 320, "ogg": 192}
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
# Vorbis quality q (0..10) and its nominal stereo bitrate at 44.1 kHz, kbit/s (libvorbis' table)
VORBIS_NOMINAL = ((0, 64), (1, 80), (2, 96), (3, 112), (4, 128), (5, 160), (6, 192), (7, 224), (8, 256),
                  (9, 320), (10, 500))
_SUBTYPE = {("wav", 16): "PCM_16", ("wav", 24): "PCM_24", ("wav", 32): "FLOAT",
            ("flac", 16): "PCM_16", ("flac", 24): "PCM_24"}


@dataclass(frozen=True)
class OutputFormat:
    """How the stems are written: `format` (wav, flac, ogg, mp3), `bits` (wav, flac) or `bitrate` (mp3, ogg)."""

    format: str = "wav"
    bits: int | None = None
    bitrate: int | None = None

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise VocalsepError(f"--format {self.format!r}: choose one of {', '.join(FORMATS)}")
        lossless = self.format in ("wav", "flac")
        if self.bits is not None and not lossless:
            raise VocalsepError(f"--bits {self.bits}: {self.format} has no bit depth; use --bitrate for mp3 and ogg")
        if self.bitrate is not None and lossless:
            raise VocalsepError(f"--bitrate {self.bitrate}: {self.format} is lossless; use --bits for wav and flac")
        if self.bits is not None and (self.format, self.bits) not in _SUBTYPE:
            allowed = sorted(b for f, b in _SUBTYPE if f == self.format)
            raise VocalsepError(f"--bits {self.bits}: {self.format} takes {' or '.join(map(str, allowed))}")
        if self.bitrate is not None and not 8 <= self.bitrate <= 500:
            raise VocalsepError(f"--bitrate {self.bitrate}: give kbit/s between 8 and 500 (for example 192)")

    @property
    def extension(self) -> str:
        return self.format

    @property
    def depth(self) -> int | None:
        """Bits of a lossless format (32 for the float wav default, 24 for flac), else None."""
        if self.format not in ("wav", "flac"):
            return None
        return self.bits or (32 if self.format == "wav" else 24)

    @property
    def kbps(self) -> int | None:
        return None if self.format in ("wav", "flac") else self.bitrate or DEFAULT_BITRATE[self.format]

    @property
    def clips(self) -> bool:
        """Whether samples are clipped to [-1, 1] before writing (every format but float wav)."""
        return not (self.format == "wav" and self.depth == 32)

    def settings(self) -> dict[str, Any]:
        """What the resume record compares: the format with its depth or bitrate made explicit."""
        return {"format": self.format, "bits": self.depth, "bitrate": self.kbps}

    def check_rate(self, rate: int, where: str) -> None:
        """mp3 holds only MPEG rates: say so for `where` (a file) instead of libsndfile's bare error."""
        if self.format == "mp3" and rate not in MP3_RATES:
            raise VocalsepError(f"{where}: mp3 cannot hold {rate} Hz audio (MPEG rates are 8-48 kHz); "
                                "use --format flac, ogg or wav for this file")

    def soundfile_args(self) -> dict[str, Any]:
        """Keyword arguments of `soundfile.SoundFile(..., "w", ...)` for this format."""
        if self.format in ("wav", "flac"):
            return {"format": self.format.upper(), "subtype": _SUBTYPE[(self.format, self.depth or 24)]}
        kbps = self.kbps or DEFAULT_BITRATE[self.format]
        if self.format == "mp3":  # libsndfile: CBR bitrate = 320 - level * (320 - 32) at 32-48 kHz
            level = min(1.0, max(0.0, (320 - kbps) / 288))
            return {"format": "MP3", "subtype": "MPEG_LAYER_III", "bitrate_mode": "CONSTANT",
                    "compression_level": level}
        return {"format": "OGG", "subtype": "VORBIS", "compression_level": 1.0 - vorbis_quality(kbps) / 10}

    def prepare(self, block: np.ndarray) -> np.ndarray:
        """A block as it is written: clipped to full scale unless the format is float."""
        return np.clip(block, -1.0, 1.0) if self.clips else block


def vorbis_quality(kbps: int) -> float:
    """The Vorbis quality (0..10) whose nominal stereo bitrate is `kbps`, interpolated in libvorbis' table."""
    qualities, rates = zip(*VORBIS_NOMINAL)
    return float(np.interp(kbps, rates, qualities))
