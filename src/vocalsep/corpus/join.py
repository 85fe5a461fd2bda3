"""Short utterances joined into acapella tracks of about `track_seconds`, with natural pauses between them
and silence trimmed off each; one track list per sample rate."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vocalsep.audio import read_audio
from vocalsep.errors import VocalsepError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JoinParams:
    """How short utterances become acapella tracks: natural pauses, tracks of about `track_seconds`."""

    track_seconds: float = 45.0
    pause_seconds: tuple[float, float] = (0.15, 0.7)
    trim_db: float = -50.0  # leading and trailing audio quieter than this (dBFS peak) is trimmed off each utterance
    seed: int = 0


def _trimmed(audio: np.ndarray, trim_db: float) -> np.ndarray:
    """`audio` (frames, channels) without leading and trailing samples below `trim_db` dBFS."""
    loud = np.flatnonzero(np.abs(audio).max(axis=1) > 10 ** (trim_db / 20))
    return audio[loud[0]:loud[-1] + 1] if len(loud) else audio[:0]


def _decoded_by_rate(files: list[Path], trim_db: float) -> dict[int, list[tuple[Path, np.ndarray]]]:
    """Each decodable file trimmed of silence at both ends, grouped by its own sample rate."""
    by_rate: dict[int, list[tuple[Path, np.ndarray]]] = {}
    for path in files:
        try:
            audio, rate = read_audio(path)
        except VocalsepError as err:
            log.warning("left out %s: %s", path, err)
            continue
        audio = _trimmed(audio, trim_db)
        if audio.shape[0] > 0:
            by_rate.setdefault(rate, []).append((path, audio))
    return by_rate


def _join_rate(items: list[tuple[Path, np.ndarray]], rate: int, params: JoinParams, rng: np.random.Generator
               ) -> list[tuple[np.ndarray, int, list[Path]]]:
    """The utterances of one rate, shuffled, joined with pauses into tracks of about `track_seconds`."""
    channels = max(a.shape[1] for _, a in items)
    tracks, pieces, members, length = [], [], [], 0
    for i in rng.permutation(len(items)):
        path, audio = items[i]
        if audio.shape[1] < channels:
            audio = np.repeat(audio, channels, axis=1)
        pause = np.zeros((int(rng.uniform(*params.pause_seconds) * rate), channels), np.float32)
        pieces += [pause, audio]
        members.append(path)
        length += pause.shape[0] + audio.shape[0]
        if length >= params.track_seconds * rate:
            tracks.append((np.concatenate(pieces + [pause]), rate, members))
            pieces, members, length = [], [], 0
    if members and tracks and length < params.track_seconds * rate / 3:
        last, _, last_members = tracks.pop()  # a short tail joins the previous track
        tracks.append((np.concatenate([last] + pieces), rate, last_members + members))
    elif members:
        tracks.append((np.concatenate(pieces + [pieces[0]]), rate, members))
    return tracks


def join_utterances(files: list[Path], params: JoinParams, rng: np.random.Generator
                    ) -> list[tuple[np.ndarray, int, list[Path]]]:
    """Short voice files -> tracks `(audio (frames, channels), rate, member files)` with pauses between them.

    Utterances are grouped by their own sample rate (a track never mixes an 8
    kHz prompt with 44.1 kHz speech, so band-limited sources stay visible),
    shuffled, trimmed of silence at both ends and joined with random pauses of
    `pause_seconds`, about `track_seconds` per track. Files that cannot be
    decoded are logged and left out.
    """
    by_rate = _decoded_by_rate(files, params.trim_db)
    return [track for rate in sorted(by_rate) for track in _join_rate(by_rate[rate], rate, params, rng)]
