"""Separation quality on real mixtures of voices and music the model never trained on;
writes benchmarks/results/quality.json.

Corpus: the `eval` set of the Debian corpus spec (voice prompts and voice
acting joined into acapella tracks, game soundtracks and music on hold as
instrumentals), disjoint from training, built once into `data/quality/corpus`
by `vocalsep.corpus.build_corpus` and rebuilt only when the spec's eval
packages or groups change (stamp `spec.sha256` in that folder: a digest of
the eval part only, so adding training data keeps corpus, mixtures and rows).

Two mixture sets, by the `conditions` of each eval group in the spec:
- `unseen` (the headline, `--tracks`, default 24): voices and music that share
  no speaker, prompt series, game or recording chain with any training group;
- `seen` (`--seen-tracks`, default 12): voices that do share them (the
  asterisk prompt series) over every eval music. It shows how much a familiar
  recording chain flatters a model; it is never the headline.
A family is a package (one game, one prompt series, one voice pack). Every
system gets the medians over tracks, the median over voice families of their
per-family medians (`median_si_sdri_over_voice_families`: a family with many
tracks cannot carry it) and one row per voice and per music family.

Behavioural tests (Made-With-ML's minimum-function and invariance tests), on
every track, for every system:
- `pass_through`: the track's vocals ALONE go in; SI-SDR (dB) of the output
  against them. Higher is better; the identity scores 100 (the cap,
  `vocalsep.metrics.PASS_THROUGH_CEILING_DB`).
- `leak`: the accompaniment ALONE goes in; the output's level relative to it
  (dB). Lower is better; the identity scores 0, silence -120 (the floor).
- `level_spread`: the mixture and its stems are scaled by -12, 0 and +6 dB;
  max - min of SI-SDRi over the three (dB). 0 is level-invariant.
The oracle `irm` reads the true stems, so it passes these tests trivially
(its mask is 1 on a voice alone and 0 on music alone): it is there for its
SI-SDRi, the ceiling of mask-based separation.

Mixtures: every track is decoded, made stereo, resampled to 44.1 kHz and
normalized to -23 LUFS (BS.1770, peak ceiling `normalize.peak_ceiling_db`).
Mixture i takes a voice and a music package round robin (all packages
appear, pairings vary), a track of each in a seeded order (tracks earlier
mixtures took are tried last; a track shorter than the window continues with
the package's next tracks), a voice window whose 50 ms blocks are active
(RMS above -40 dBFS) 75-90 % of the time and a music window at least 90 %
active, drawn at random among block-aligned offsets. A package whose
recordings are all sparser than that (ktuberling's single words and
megaglest's short unit lines peak near 60 % and 70 %) gives its closest
window instead, logged and marked `activity_in_range: false` in
`mixtures.json` and listed in the results' `voice_activity_out_of_range`.
Each chosen window then loses its DC offset and content below 20 Hz
(`vocalsep.levels.remove_subsonic`, as the normalize stage does; recipe 5:
before it, gcin-voice's and megaglest-data's voices held 20-35 % of their
energy there, inaudible, unrecoverable from a mixture and counted by SI-SDR;
windows and ratios are drawn as in recipe 4, so the excerpts are the same).
The vocals are scaled to a vocal-to-accompaniment loudness ratio drawn from
U(-6, +3) dB; when the sum peaks above 0.99 both stems are scaled by one
common factor; then `mixture = vocals + accompaniment` exactly (float32).
They are written to `data/quality/mixtures/<set>/<NN>/{mixture,vocals,
accompaniment}.wav` (32-bit float) with `mixtures.json`, and reused while
seed, count, length, the eval spec's digest and the recipe stay the same.

Systems: `mixture` (the mixture as the vocals estimate), `silence` (zeros),
`irm` (ideal-ratio-mask oracle) and every `--model NAME=SPEC`
(`vocalsep.loading.load_separator`: checkpoint path, MLflow URI or
`pretrained`), run through `separate_at_rate` with params.yaml's `separate`
settings and 2 torch threads; `real_time_factor` is seconds of audio per
wall-clock second of separation of the mixtures. Metrics are the evaluate
stage's own (`track_metrics`): BSSEval v4 SDR of the vocals (museval: median
over 1 s windows), SI-SDR and SI-SDRi = SI-SDR(estimate) - SI-SDR(mixture).

Silence: museval marks every window whose estimate is all zeros NaN, so its
SDR is null; SI-SDR of an all-zero estimate is 0/0 (the optimal scale is 0,
target and error both vanish), undefined, and `vocalsep.metrics.si_sdr`
returns NaN there, so SI-SDR and SI-SDRi of any all-zero estimate are
reported as null, never as a number. JSON has no inf/NaN: every non-finite
value is null and medians/means run over the finite tracks (`tracks_scored`).

Results merge into an existing file on the same mixtures (rows of models
scored earlier stay; `--fresh` starts over).

Usage: python benchmarks/quality.py [--tracks 24] [--seen-tracks 12] [--seconds 20] [--seed 0] [--params params.yaml]
       [--model NAME=SPEC ...] [--note NAME=TEXT ...] [--fresh] [--out benchmarks/results/quality.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
import json
import logging
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import yaml

from vocalsep.audio import read_audio, resample, to_stereo, write_audio
from vocalsep.levels import (ACTIVITY_BLOCK_SECONDS, SUBSONIC_HZ, block_rms_db, integrated_loudness,
                             normalize_loudness, remove_subsonic)
from vocalsep.config import Params, ParamsError, load_params
from vocalsep.corpus.build import build_corpus
from vocalsep.corpus.join import JoinParams
from vocalsep.corpus.spec import RESERVED, load_spec
from vocalsep.errors import VocalsepError
from vocalsep.loading import load_separator
from vocalsep.metrics import ideal_ratio_mask, leak, level_spread, pass_through, si_sdr
from vocalsep.separate import separate_at_rate
from vocalsep.scoring import Track, track_metrics

log = logging.getLogger("quality")

RATE = 44100
TARGET_LUFS = -23.0
ACTIVITY_DB = -40.0  # a 50 ms block is active above this RMS (dBFS)
VOICE_ACTIVITY = (0.75, 0.90)
MUSIC_ACTIVITY = (0.90, 1.0)
# Eval voices are single words (ktuberling, megaglest): joined with the pipeline's default pauses
# (0.15-0.7 s) their best 20 s windows reach only 55-72 % activity, so the eval set joins them
# closer, as in running speech, to reach the 75-90 % the benchmark asks for.
EVAL_JOIN = JoinParams(pause_seconds=(0.04, 0.25))
FALLBACK_SLACK = 0.01  # no window in range: draw among those this close to the closest, for variety
RATIO_DB = (-6.0, 3.0)
MIX_PEAK = 0.99
THREADS = 2
RECIPE = 5  # bump when the way mixtures are made changes: saved mixtures and results of another recipe are stale
# 5 (2026-12-05): every window, once cut, loses its DC offset and content below SUBSONIC_HZ (recipe 4 kept
# them: gcin-voice's and megaglest-data's voices held 20-35 % of their energy there); the windows and ratios
# are still drawn on the audio as decoded, so recipe 5 holds recipe 4's excerpts
SUBSONIC_MARGIN = RATE  # stream filtered around a window: the 20 Hz filter's transient dies out in 0.1 s
STEMS = ("mixture", "vocals", "accompaniment")
BASELINES = {
    "mixture": "the mixture as the vocals estimate: SI-SDRi is 0 by definition",
    "silence": "all-zero estimate: SDR null (museval marks every window with a silent estimate NaN); "
               "SI-SDR and SI-SDRi null (0/0, undefined; vocalsep.metrics.si_sdr returns NaN)",
    "irm": "ideal-ratio-mask oracle (power ratio, 4096/1024 STFT): knows the true stems",
}
METRICS = ("sdr", "si_sdr", "si_sdri", "pass_through", "leak", "level_spread")
LEVEL_GAINS_DB = (-12.0, 0.0, 6.0)  # input gains of the level-invariance test
SETS = ("unseen", "seen")  # mixture sets: the first is the benchmark's headline


class QualityError(VocalsepError):
    """A benchmark input the user can fix (corpus, results file, command line)."""


@dataclass(frozen=True)
class Source:
    """One track of the built corpus's sources.yaml."""

    path: Path
    role: str
    title: str
    package: str
    version: str
    license: str
    conditions: str = "unseen"  # of its group in the spec: "seen" shares a speaker, series or game with training


@dataclass(frozen=True)
class Excerpt:
    """A window of one role: `audio` (frames, 2) float32 at -23 LUFS, from `titles` (joined when short)."""

    audio: np.ndarray
    package: str
    titles: tuple[str, ...]
    start: int
    activity: float
    in_range: bool


# ---- corpus -------------------------------------------------------------------------------------------------

def ensure_corpus(spec: Path, out: Path, cache: Path) -> list[Source]:
    """The eval corpus in `out`, built unless `out/sources.yaml` exists with a stamp of the spec's sha256."""
    if not spec.is_file():
        raise QualityError(f"{spec}: corpus spec not found; run from the repository root or pass --spec")
    digest, stamp = f"{eval_digest(spec)} {EVAL_JOIN}", out / "spec.sha256"
    fresh = (out / "sources.yaml").is_file() and stamp.is_file() and stamp.read_text().strip() == digest
    if not fresh and out.exists() and any(out.iterdir()) and not (out / "sources.yaml").is_file():
        raise QualityError(f"{out}: not a corpus folder (no sources.yaml) and not empty, and building replaces it; "
                           "pass --corpus a new or empty folder")
    if not fresh:
        log.info("building the eval corpus into %s (packages cached in %s)", out, cache)
        build_corpus(spec, "eval", out, cache, EVAL_JOIN)
        stamp.write_text(digest + "\n")
    return [replace(s, conditions=conditions_of(spec).get((s.package, s.role), "unseen")) for s in read_sources(out)]


def eval_digest(spec: Path) -> str:
    """sha256 of the spec's eval packages and groups: adding training data never invalidates the benchmark."""
    if not spec.is_file():
        raise QualityError(f"{spec}: corpus spec not found; run from the repository root or pass --spec")
    entries = [{**asdict(p), "groups": [_group_fields(g) for g in p.groups if g.set == "eval"]} for p in load_spec(spec)]
    eval_only = [{k: v for k, v in e.items() if k != "deb"} for e in entries if e["groups"]]
    return hashlib.sha256(json.dumps(eval_only, sort_keys=True).encode()).hexdigest()


def _group_fields(group) -> dict:
    """A group's fields for the digest; an `archive` left empty is dropped, so digests from before it stay valid."""
    return {k: v for k, v in asdict(group).items() if not (k == "archive" and not v)}


def conditions_of(spec: Path) -> dict[tuple[str, str], str]:
    """`{(package, role): "seen" | "unseen"}` of the spec's eval groups (one package's groups of one role agree)."""
    out: dict[tuple[str, str], str] = {}
    for package in load_spec(spec):
        for group in package.groups:
            if group.set == "eval":
                key = (package.package, group.role)
                if out.setdefault(key, group.conditions) != group.conditions:
                    raise QualityError(f"{spec}: {package.package}'s {group.role} eval groups disagree on "
                                       "conditions; give them one")
    return out


def split_sets(sources: list[Source]) -> dict[str, list[Source]]:
    """The mixture sets: `unseen` (voices and music of unseen conditions only) and `seen` (voices of seen
    conditions over every eval music); a set with no voice is left out."""
    unseen = [s for s in sources if s.conditions == "unseen"]
    seen = [s for s in sources if s.role == "instrumental" or s.conditions == "seen"]
    sets = {"unseen": unseen, "seen": seen}
    return {k: v for k, v in sets.items() if any(s.role == "acapella" for s in v)}


def read_sources(out: Path) -> list[Source]:
    """Entries of `out/sources.yaml`; reserved packages are refused."""
    path = out / "sources.yaml"
    entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    sources = []
    for entry in entries:
        url, package = str(entry.get("url", "")), str(entry.get("package", ""))
        if not url.startswith("file:"):
            raise QualityError(f"{path}: url {url!r} is not a relative file: URL; delete {out} to rebuild it")
        if package.startswith(RESERVED):
            raise QualityError(f"{path}: {package} is reserved for independent evaluation; remove it from the spec")
        sources.append(Source(out / url[len("file:"):], entry["role"], str(entry.get("title", url)), package,
                              str(entry.get("version", "")), str(entry.get("license", ""))))
    return sources


def by_package(sources: list[Source], role: str) -> dict[str, list[Source]]:
    """`{package: its tracks of `role`, sorted by title}`, packages sorted by name."""
    packages: dict[str, list[Source]] = {}
    for source in sorted(sources, key=lambda s: (s.package, s.title)):
        if source.role == role:
            packages.setdefault(source.package, []).append(source)
    return packages


# ---- audio and windows ---------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def prepared(path: Path, rate: int, peak_ceiling_db: float) -> np.ndarray | None:
    """`path` as (frames, 2) float32 at `rate` and -23 LUFS; None (logged) when it cannot be decoded or is silent."""
    try:
        audio, sr = read_audio(path)
        audio = resample(to_stereo(audio), sr, rate)
        return normalize_loudness(audio, rate, TARGET_LUFS, peak_ceiling_db)
    except VocalsepError as err:
        log.warning("skipped %s: %s", path, err)
        return None


def block_frames(rate: int) -> int:
    """Frames in one 50 ms activity block."""
    return int(round(ACTIVITY_BLOCK_SECONDS * rate))


def active_blocks(audio: np.ndarray, rate: int) -> np.ndarray:
    """(blocks,) bool: 50 ms blocks of (frames, channels) audio whose RMS is above -40 dBFS."""
    return block_rms_db(audio, rate, ACTIVITY_BLOCK_SECONDS) > ACTIVITY_DB


def activity(audio: np.ndarray, rate: int) -> float:
    """Fraction of active 50 ms blocks of (frames, channels) audio."""
    return float(np.mean(active_blocks(audio, rate)))


def _distance(fraction: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    return np.maximum(bounds[0] - fraction, 0) + np.maximum(fraction - bounds[1], 0)


def window_fractions(audio: np.ndarray, rate: int, frames: int) -> np.ndarray:
    """Active fraction of every `frames`-long window of (n, channels) audio starting on a 50 ms block: (windows,).

    Window w starts at frame w * block, so its blocks are the audio's own (for
    a length that is a whole number of blocks, exactly what `activity` of the
    cut window gives). `n` must be at least `frames`.
    """
    block = block_frames(rate)
    window = -(-frames // block)
    active = active_blocks(audio[: (audio.shape[0] // block) * block], rate)
    last = (audio.shape[0] - frames) // block  # last start block whose window fits
    if active.size < window or last < 0:
        raise ValueError(f"audio of {audio.shape[0]} frames is shorter than the window ({frames})")
    cumulative = np.concatenate([[0], np.cumsum(active)])
    return (cumulative[window:] - cumulative[:-window])[: last + 1] / window


def choose_window(audio: np.ndarray, rate: int, frames: int, bounds: tuple[float, float],
                  rng: np.random.Generator) -> tuple[int, float, float]:
    """A `frames`-long window of (n, channels) audio: (start frame, its active fraction, miss).

    The start is drawn at random among the block-aligned windows whose
    fraction lies in `bounds` (miss 0), else among those within
    FALLBACK_SLACK of the closest, and miss is how far that closest falls
    outside `bounds`: a property of the audio, not of the draw.
    """
    distance = _distance(window_fractions(audio, rate, frames), bounds)
    miss = float(distance.min())
    candidates = np.flatnonzero(distance <= miss + (FALLBACK_SLACK if miss > 0 else 0))
    start = int(rng.choice(candidates)) * block_frames(rate)
    return start, activity(audio[start:start + frames], rate), miss


def joined_stream(tracks: list[Source], first: int, frames: int, peak_ceiling_db: float
                  ) -> tuple[np.ndarray, list[Source]] | None:
    """Track `first` of a package, continued with its next tracks (cyclic) until >= `frames`: (audio, members).

    Undecodable tracks are skipped; None when track `first` itself does not
    decode or the package cannot supply `frames` at all.
    """
    pieces, members, length = [], [], 0
    for k in range(len(tracks)):
        source = tracks[(first + k) % len(tracks)]
        audio = prepared(source.path, RATE, peak_ceiling_db)
        if audio is None and k == 0:
            return None
        if audio is None:
            continue
        pieces.append(audio)
        members.append(source)
        length += audio.shape[0]
        if length >= frames:
            return np.concatenate(pieces) if len(pieces) > 1 else pieces[0], members
    return None


def window_of(tracks: list[Source], index: int, frames: int, bounds: tuple[float, float],
              rng: np.random.Generator, peak_ceiling_db: float) -> tuple[Excerpt, float] | None:
    """`choose_window` on the stream that starts at track `index`: (excerpt, miss); None when the package
    cannot fill the window."""
    got = joined_stream(tracks, index, frames, peak_ceiling_db)
    if got is None:
        return None
    audio, members = got
    start, fraction, miss = choose_window(audio, RATE, frames, bounds, rng)
    return Excerpt(subsonic_free(audio, start, frames), members[0].package, tuple(m.title for m in members),
                   start, fraction, miss == 0), miss


def subsonic_free(audio: np.ndarray, start: int, frames: int) -> np.ndarray:
    """`audio[start:start + frames]` without its DC offset and content below SUBSONIC_HZ (recipe 5), filtered
    with up to SUBSONIC_MARGIN of the stream around it so that the cut edges carry no filter transient."""
    low, high = max(0, start - SUBSONIC_MARGIN), min(audio.shape[0], start + frames + SUBSONIC_MARGIN)
    return remove_subsonic(audio[low:high], RATE, SUBSONIC_HZ)[start - low:start - low + frames].copy()


def pick_excerpt(tracks: list[Source], first: int, frames: int, bounds: tuple[float, float],
                 rng: np.random.Generator, peak_ceiling_db: float, used: set[int]) -> tuple[Excerpt, int]:
    """A window of `bounds` activity and the index of the track it starts in: from track `first`, else from
    the package's next tracks in turn, those in `used` (earlier picks) last.

    When no track of the package has one (its recordings are sparser than
    `bounds`), the unused track whose best window comes closest is taken, at
    that window (logged, `in_range` False).
    """
    order = [(first + k) % len(tracks) for k in range(len(tracks))]
    misses = []
    for index in [i for i in order if i not in used] + [i for i in order if i in used]:
        got = window_of(tracks, index, frames, bounds, rng, peak_ceiling_db)
        if got is not None and got[0].in_range:
            return got[0], index
        if got is not None:
            misses.append((index in used, got[1], index))
    if not misses:
        raise QualityError(f"package {tracks[0].package}: no decodable track (or all together shorter than "
                           f"{frames / RATE:.1f} s); check its files under data/quality/corpus or drop it from the spec")
    index = min(misses)[2]
    excerpt = window_of(tracks, index, frames, bounds, rng, peak_ceiling_db)[0]
    log.warning("%s: no track has a window with activity in %s; took %.2f from %s", excerpt.package, bounds,
                excerpt.activity, excerpt.titles[0])
    return excerpt, index


# ---- mixtures --------------------------------------------------------------------------------------------------

def package_pairs(voices: list[str], musics: list[str], count: int) -> list[tuple[str, str]]:
    """(voice package, music package) of `count` mixtures, round robin: each voice package appears once per
    round of len(voices), and round q pairs voice r with music (r + q) mod len(musics), so every pairing
    comes up (recipe 2's `(i + q) mod len(musics)` locked each voice to one music when there was one
    more music package than voices)."""
    rounds = len(voices)
    return [(voices[i % rounds], musics[(i % rounds + i // rounds) % len(musics)]) for i in range(count)]


def loudness_ratio(vocals: np.ndarray, accompaniment: np.ndarray, rate: int) -> float:
    """BS.1770 integrated loudness of vocals minus accompaniment (dB); both (frames, channels)."""
    return integrated_loudness(vocals, rate) - integrated_loudness(accompaniment, rate)


def mix(vocals: np.ndarray, accompaniment: np.ndarray, ratio_db: float, rate: int
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(mixture, vocals, accompaniment, common scale), all (frames, channels) float32.

    The vocals are scaled so that their loudness minus the accompaniment's is
    `ratio_db`; when the sum would peak above MIX_PEAK both stems are scaled by
    one factor (returned; 1.0 otherwise) before the float32 sum, so
    `mixture == vocals + accompaniment` exactly.
    """
    current = loudness_ratio(vocals, accompaniment, rate)
    if not np.isfinite(current):
        raise QualityError("cannot mix: a stem is silent or shorter than 0.4 s (no BS.1770 loudness)")
    v = (vocals * 10 ** ((ratio_db - current) / 20)).astype(np.float32)
    a = accompaniment.astype(np.float32)
    peak = float(np.max(np.abs(v + a)))
    scale = 1.0
    if peak > MIX_PEAK:
        scale = MIX_PEAK / peak * (1 - 1e-6)  # margin: float32 rounding must not lift the peak back above it
        v, a = (v * scale).astype(np.float32), (a * scale).astype(np.float32)
    return v + a, v, a, scale


def mixtures_key(args: argparse.Namespace, spec_sha256: str, label: str) -> dict:
    """What set `label`'s mixtures depend on: they are reused only while it is unchanged."""
    return {"recipe": RECIPE, "set": label, "seed": args.seed, "tracks": set_tracks(args, label),
            "seconds": args.seconds, "eval_spec_sha256": spec_sha256, "sample_rate": RATE, "target_lufs": TARGET_LUFS,
            "highpass_hz": SUBSONIC_HZ,
            "ratio_db": list(RATIO_DB), "voice_activity": list(VOICE_ACTIVITY),
            "music_activity": list(MUSIC_ACTIVITY), "activity_threshold_db": ACTIVITY_DB}


def set_tracks(args: argparse.Namespace, label: str) -> int:
    """Mixtures in set `label`: --tracks for the headline (unseen) set, --seen-tracks for the seen one."""
    return args.tracks if label == SETS[0] else args.seen_tracks


def seeded(seed: int, *parts: object) -> np.random.Generator:
    """A generator that depends only on `seed` and `parts` (names included), stable across runs and machines."""
    digest = hashlib.sha256("/".join(map(str, (seed, *parts))).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def nth_track(tracks: list[Source], use: int, seed: int) -> int:
    """Index of the track that the `use`-th (0-based) pick from a package starts at: a seeded order, cycled."""
    return int(seeded(seed, "order", tracks[0].role, tracks[0].package).permutation(len(tracks))[use % len(tracks)])


def make_mixture(i: int, voice_tracks: list[Source], music_tracks: list[Source], frames: int, seed: int,
                 peak_ceiling_db: float, used: dict[str, set[int]]) -> tuple[dict, tuple[np.ndarray, ...]]:
    """Mixture `i` of a voice and a music package's tracks: (mixtures.json row, (mixture, vocals,
    accompaniment) each (frames, 2) float32).

    `used` maps "role/package" to the indices of tracks that earlier mixtures
    took; they are tried last, and this mixture's picks are added to it.
    """
    rng = seeded(seed, "mixture", i)
    excerpts = []
    for tracks, bounds in ((voice_tracks, VOICE_ACTIVITY), (music_tracks, MUSIC_ACTIVITY)):
        taken = used.setdefault(f"{tracks[0].role}/{tracks[0].package}", set())
        excerpt, index = pick_excerpt(tracks, nth_track(tracks, len(taken), seed), frames, bounds, rng,
                                      peak_ceiling_db, taken)
        taken.add(index)
        excerpts.append(excerpt)
    voice, music = excerpts
    ratio = float(rng.uniform(*RATIO_DB))
    stems = mix(voice.audio, music.audio, ratio, RATE)
    row = {"track": f"{i:02d}", "ratio_db": round(ratio, 4),
           "measured_ratio_db": round(loudness_ratio(stems[1], stems[2], RATE), 4),
           "peak_scale": round(stems[3], 6), "seconds": frames / RATE,
           "voice": _excerpt_row(voice), "music": _excerpt_row(music)}
    return row, stems[:3]


def _excerpt_row(excerpt: Excerpt) -> dict:
    return {"package": excerpt.package, "titles": list(excerpt.titles),
            "start_seconds": round(excerpt.start / RATE, 3), "activity": round(excerpt.activity, 4),
            "activity_in_range": excerpt.in_range}


def ensure_mixtures(folder: Path, key: dict, sources: list[Source], peak_ceiling_db: float) -> list[dict]:
    """Rows of `folder/mixtures.json`, building the mixtures unless that file holds the same `key`."""
    listing = folder / "mixtures.json"
    if listing.is_file():
        saved = json.loads(listing.read_text())
        if saved.get("key") == key and all((folder / r["track"] / f"{s}.wav").is_file()
                                            for r in saved["mixtures"] for s in STEMS):
            log.info("reusing %d mixtures in %s", len(saved["mixtures"]), folder)
            return saved["mixtures"]
    voices, musics = by_package(sources, "acapella"), by_package(sources, "instrumental")
    if not voices or not musics:
        raise QualityError(f"corpus has no {'acapella' if not voices else 'instrumental'} track; check the "
                           "eval groups of the corpus spec")
    if key["tracks"] < max(len(voices), len(musics)):
        log.warning("%d mixtures cannot cover %d voice and %d music packages", key["tracks"], len(voices), len(musics))
    if folder.exists() and any(folder.iterdir()) and not listing.is_file():
        raise QualityError(f"{folder}: not a mixtures folder of this benchmark (no mixtures.json) and not empty; "
                           "pass --mixtures a new or empty folder")
    if folder.exists():
        shutil.rmtree(folder)
    frames = int(round(key["seconds"] * RATE))
    rows, used = [], {}
    for i, (voice, music) in enumerate(package_pairs(list(voices), list(musics), key["tracks"])):
        row, stems = make_mixture(i, voices[voice], musics[music], frames, key["seed"], peak_ceiling_db, used)
        for stem, audio in zip(STEMS, stems):
            write_audio(folder / row["track"] / f"{stem}.wav", audio, RATE, subtype="FLOAT")
        rows.append(row)
        log.info("mixture %s: %s + %s, ratio %+.2f dB, voice activity %.2f", row["track"], row["voice"]["titles"][0],
                 row["music"]["titles"][0], row["ratio_db"], row["voice"]["activity"])
    _write_json(listing, {"key": key, "mixtures": rows})
    return rows


def read_mixture(folder: Path) -> Track:
    """The evaluate stage's Track from `folder/{mixture,vocals,accompaniment}.wav` (channels, samples)."""
    stems = {}
    for stem in STEMS:
        audio, rate = read_audio(folder / f"{stem}.wav")
        if rate != RATE:
            raise QualityError(f"{folder / stem}.wav: {rate} Hz, expected {RATE}; delete {folder.parent} to rebuild")
        stems[stem] = np.ascontiguousarray(audio.T)
    return Track(folder.name, sample_rate=RATE, **stems)


# ---- scoring ---------------------------------------------------------------------------------------------------

# A system maps (mixture, vocals, accompaniment), each (channels, samples), to a vocals estimate; only the
# oracles read the true stems. The behavioural tests feed it a voice alone (v, v, 0), music alone (a, 0, a)
# and the mixture at other gains (g m, g v, g a).
System = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
BASELINE_SYSTEMS: dict[str, System] = {
    "mixture": lambda m, v, a: m,
    "silence": lambda m, v, a: np.zeros_like(m),
    "irm": lambda m, v, a: ideal_ratio_mask(v, a),
}


def finite(value: float | None) -> float | None:
    """`value` as a float rounded to 4 decimals, None when missing, NaN or infinite (JSON has neither)."""
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


def si_sdri_at(system: System, track: Track, gain_db: float) -> float:
    """SI-SDRi of `system` on the track's stems scaled by `gain_db` (the input level changes, nothing else)."""
    g = np.float32(10 ** (gain_db / 20))
    m, v, a = track.mixture * g, track.vocals * g, track.accompaniment * g
    estimate = system(m, v, a)
    return si_sdr(v, estimate) - si_sdr(v, m) if np.any(estimate) else float("nan")


def behaviour(system: System, track: Track) -> dict[str, float | None]:
    """The behavioural tests on one track: pass-through (voice alone in, SI-SDR of the output, dB), leak
    (music alone in, output level re the music, dB) and level spread (max - min SI-SDRi over LEVEL_GAINS_DB)."""
    silent = np.zeros_like(track.vocals)
    voice_out = system(track.vocals, track.vocals, silent)
    music_out = system(track.accompaniment, silent, track.accompaniment)
    spread = level_spread([si_sdri_at(system, track, g) for g in LEVEL_GAINS_DB])
    return {"pass_through": finite(pass_through(track.vocals, voice_out)),
            "leak": finite(leak(track.accompaniment, music_out)), "level_spread": finite(spread)}


def score_track(system: System, track: Track, window_seconds: float) -> tuple[dict, float]:
    """One track's row (sdr, si_sdr, si_sdri and the behavioural tests) and the seconds its mixture took."""
    start = time.perf_counter()
    estimate = system(track.mixture, track.vocals, track.accompaniment)
    wall = time.perf_counter() - start
    m = track_metrics(track, estimate, window_seconds)
    silent = not np.any(estimate)  # SI-SDR of an all-zero estimate is 0/0: null, never a number
    # the mixture itself leaves a silent accompaniment estimate, which museval marks NaN: score it as
    # museval's mixture oracle does, the mixture as the estimate of every source
    sdr = m["mixture_sdr"] if np.array_equal(estimate, track.mixture) else m["sdr"]
    row = {"sdr": finite(sdr), "si_sdr": None if silent else finite(m["si_sdr"]),
           "si_sdri": None if silent else finite(m["si_sdri"])}
    return {**row, **behaviour(system, track)}, wall


def summarize(per_track: list[dict]) -> dict:
    """Median and mean over tracks of each metric (finite tracks only; None when there is none)."""
    out: dict = {}
    for key in METRICS:
        values = [r[key] for r in per_track if r.get(key) is not None]
        out[f"median_{key}"] = finite(float(np.median(values))) if values else None
        out[f"mean_{key}"] = finite(float(np.mean(values))) if values else None
        out[f"tracks_scored_{key}"] = len(values)
    return out


def by_family(per_track: list[dict]) -> dict:
    """Per voice and per music family (package): its tracks' medians, and the median over voice families."""
    families: dict = {"voice": {}, "music": {}}
    for role in families:
        for name in sorted({r[role] for r in per_track}):
            rows = [r for r in per_track if r[role] == name]
            families[role][name] = {**{k: v for k, v in summarize(rows).items() if k.startswith("median_")},
                                    "tracks": len(rows)}
    voice_medians = [f["median_si_sdri"] for f in families["voice"].values() if f["median_si_sdri"] is not None]
    over = finite(float(np.median(voice_medians))) if voice_medians else None
    return {"median_si_sdri_over_voice_families": over, "families": families}


def score_set(name: str, system: System, tracks: list[Track], rows: list[dict], window_seconds: float) -> dict:
    """A system on one mixture set: summary, per family, per track; `_wall`/`_seconds` for the speed."""
    per_track, wall, seconds = [], 0.0, 0.0
    for track, mixture in zip(tracks, rows):
        row, took = score_track(system, track, window_seconds)
        per_track.append({"track": track.name, "voice": mixture["voice"]["package"],
                          "music": mixture["music"]["package"], **row})
        wall, seconds = wall + took, seconds + track.mixture.shape[-1] / track.sample_rate
        log.info("%s %s: sdr %s, si_sdri %s, pass-through %s, leak %s", name, track.name, row["sdr"],
                 row["si_sdri"], row["pass_through"], row["leak"])
    return {**summarize(per_track), **by_family(per_track), "per_track": per_track, "_wall": wall,
            "_seconds": seconds}


def score_system(name: str, system: System, sets: dict[str, tuple[list[Track], list[dict]]],
                 window_seconds: float) -> dict:
    """A system on every set: the unseen-conditions figures at the top, the others under their names;
    the real-time factor over all sets' mixtures."""
    scored = {label: score_set(name, system, tracks, rows, window_seconds)
              for label, (tracks, rows) in sets.items()}
    wall = sum(s.pop("_wall") for s in scored.values())
    seconds = sum(s.pop("_seconds") for s in scored.values())
    headline = scored.pop(SETS[0], {})  # unseen conditions at the top; a run without them has only subsets
    return {**headline, **scored,
            "real_time_factor": round(seconds / wall, 3) if wall > 0 else None}


def model_system(model: torch.nn.Module, model_rate: int, params: Params) -> System:
    """A loaded separator (`(batch, 2, n)` -> same shape, with `.context`) as a System."""
    def run(m: np.ndarray, v: np.ndarray, a: np.ndarray) -> np.ndarray:
        return separate_at_rate(model, model_rate, m.T, RATE, params.separate).T
    return run


def score_model(name: str, spec: str, sets: dict, params: Params) -> dict:
    """Row of one model: separate every mixture (timed) and score it as the evaluate stage does."""
    try:
        model, model_rate = load_separator(spec, params.separate.device)
    except VocalsepError as err:
        raise QualityError(f"--model {name}={spec}: {err} (SPEC is a checkpoint path, an MLflow model URI or "
                           "'pretrained')") from None
    device = str(next(model.parameters(), torch.empty(0)).device)
    row = score_system(name, model_system(model, model_rate, params), sets, params.evaluate.window_seconds)
    return {**row, "spec": spec, "model_rate": model_rate, "device": device, "separate": asdict(params.separate)}


def score_baselines(sets: dict, window_seconds: float) -> dict[str, dict]:
    """Rows of the baseline systems, with their notes."""
    return {name: {**score_system(name, system, sets, window_seconds), "real_time_factor": None,
                   "note": BASELINES[name]} for name, system in BASELINE_SYSTEMS.items()}


# ---- results ---------------------------------------------------------------------------------------------------

def comparable(config: dict) -> dict:
    """What must match for two results' rows to be comparable: the config less its derived listings."""
    return {k: v for k, v in config.items() if k != "mixtures"}


def merge_results(old: dict | None, new: dict, fresh: bool, path: Path) -> dict:
    """`new` with the systems of `old` it does not score again; `old` must be on the same mixtures."""
    if old is None or fresh:
        return new
    if comparable(old.get("config", {})) != comparable(new["config"]):
        raise QualityError(f"{path}: holds results on other mixtures (seed, tracks, seconds, spec or recipe "
                           "differ); pass --fresh to start over or --out another file")
    return {**new, "systems": {**old.get("systems", {}), **new["systems"]}}


def read_results(path: Path) -> dict | None:
    """An existing results file, or None."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise QualityError(f"{path}: not valid JSON ({err}); delete it or pass --fresh") from None


def _write_json(path: Path, data: dict) -> None:
    """Write atomically: a crash leaves the old file, never half of a new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    tmp.replace(path)


def parse_pairs(items: list[str], flag: str) -> dict[str, str]:
    """`NAME=VALUE` items of a repeated flag as a dict; errors name the flag."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise QualityError(f"{flag} {item!r}: expected NAME=VALUE")
        out[name] = value
    return out


def table(systems: dict[str, dict]) -> str:
    """Text tables of the systems' medians (dB) per set and per voice family, and real-time factors."""
    def cell(v: float | None, width: int = 8) -> str:
        return f"{v:{width}.2f}" if v is not None else " " * (width - 4) + "null"
    head = f"{'system':<16}{'SDR':>8}{'SI-SDR':>8}{'SI-SDRi':>8}{'fam.':>8}{'pass':>8}{'leak':>8}{'spread':>8}{'RTF':>8}"
    lines = []
    for label in SETS:
        rows = {n: (r if label == SETS[0] else r.get(label)) for n, r in systems.items()}
        rows = {n: r for n, r in rows.items() if r and "per_track" in r}
        if not rows:
            continue
        lines += [f"-- {label} conditions", head]
        for name, row in rows.items():
            rtf = systems[name].get("real_time_factor")
            lines.append(f"{name:<16}" + "".join(cell(row.get(k)) for k in (
                "median_sdr", "median_si_sdr", "median_si_sdri", "median_si_sdri_over_voice_families",
                "median_pass_through", "median_leak", "median_level_spread")) + (cell(rtf) if rtf else "       -"))
            lines += [f"    {family:<28}SI-SDRi {cell(f['median_si_sdri'])}  pass {cell(f['median_pass_through'])}"
                      for family, f in row.get("families", {}).get("voice", {}).items()]
    return "\n".join(lines)


def machine() -> dict:
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": THREADS, "load_average_1min": round(os.getloadavg()[0], 2),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="separate and evaluate settings (params.yaml)")
    parser.add_argument("--spec", type=Path, default=Path("sources/debian-corpus.yaml"))
    parser.add_argument("--cache", type=Path, default=Path(".cache/debian"), help="downloaded .deb files")
    parser.add_argument("--corpus", type=Path, default=Path("data/quality/corpus"))
    parser.add_argument("--mixtures", type=Path, default=Path("data/quality/mixtures"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/quality.json"))
    parser.add_argument("--tracks", type=int, default=24, help="mixtures of unseen conditions (the headline set)")
    parser.add_argument("--seen-tracks", type=int, default=12, help="mixtures of seen conditions (0: none)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sets", type=lambda text: tuple(text.split(",")), default=SETS,
                        help="comma-separated mixture sets to score (unseen,seen); a subset belongs in its own --out")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=SPEC",
                        help="checkpoint path, MLflow model URI or 'pretrained' (repeatable)")
    parser.add_argument("--note", action="append", default=[], metavar="NAME=TEXT",
                        help="a note stored with model NAME's row, e.g. its training budget")
    parser.add_argument("--fresh", action="store_true", help="drop the rows of earlier runs")
    args = parser.parse_args(argv)
    if args.tracks < 1 or args.seen_tracks < 0 or args.seconds < 1:
        parser.error("--tracks must be >= 1, --seen-tracks >= 0 and --seconds >= 1")
    if not args.sets or set(args.sets) - set(SETS):
        parser.error(f"--sets {','.join(args.sets)}: choose among {','.join(SETS)}")
    return args


def run(args: argparse.Namespace) -> dict:
    """Build or reuse corpus and mixtures, score every system, merge and write the results; returns them."""
    params = load_params(args.params)
    models, notes = parse_pairs(args.model, "--model"), parse_pairs(args.note, "--note")
    clash = sorted(set(models) & set(BASELINES))
    unknown = sorted(set(notes) - set(models))
    if clash or unknown:
        raise QualityError(f"--model name(s) {clash} are baselines, pick others" if clash else
                           f"--note {unknown[0]}: no --model of that name in this run")
    sources = split_sets(ensure_corpus(args.spec, args.corpus, args.cache))
    if SETS[0] not in sources:
        raise QualityError(f"{args.spec}: no eval voice of unseen conditions; the benchmark's headline set is empty")
    spec_sha = eval_digest(args.spec)
    keys = {label: mixtures_key(args, spec_sha, label) for label in sources
            if set_tracks(args, label) > 0 and label in args.sets}
    config = {"sets": keys, "evaluate_window_seconds": params.evaluate.window_seconds,
              "level_gains_db": list(LEVEL_GAINS_DB)}
    old = read_results(args.out)
    merge_results(old, {"config": config, "systems": {}}, args.fresh, args.out)  # fail before the work
    sets = {}
    for label, key in keys.items():
        rows = ensure_mixtures(args.mixtures / label, key, sources[label], params.normalize.peak_ceiling_db)
        sets[label] = ([read_mixture(args.mixtures / label / r["track"]) for r in rows], rows)
    systems = score_baselines(sets, params.evaluate.window_seconds)
    for name, spec in models.items():
        systems[name] = {**score_model(name, spec, sets, params), "note": notes.get(name)}
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    for row in systems.values():
        row["scored"] = stamp
    config["mixtures"] = {label: describe_set(rows) for label, (_, rows) in sets.items()}
    result = merge_results(old, {"benchmark": "quality", "created": stamp, "machine": machine(),
                                 "config": config, "systems": systems}, args.fresh, args.out)
    _write_json(args.out, result)
    return result


def describe_set(rows: list[dict]) -> dict:
    """A mixture set's packages, its tracks whose voice activity fell outside the range, and its rows."""
    return {"packages": {role: sorted({r[role]["package"] for r in rows}) for role in ("voice", "music")},
            "voice_activity_out_of_range": [r["track"] for r in rows if not r["voice"]["activity_in_range"]],
            "rows": rows}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[quality] %(message)s", stream=sys.stderr)
    args = parse_args(argv)
    torch.set_num_threads(THREADS)
    start = time.perf_counter()
    try:
        result = run(args)
    except (QualityError, VocalsepError, ParamsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(table(result["systems"]))
    print(f"wrote {args.out} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
