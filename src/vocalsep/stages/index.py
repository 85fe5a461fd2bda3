"""index stage: split files, list snippet candidates, build the fixed test set.

Reads `<paths.validated>/valid.parquet` and the normalized FLACs it points at,
and writes (contract in docs/pipeline.md):

- `<paths.index>/{train,val,test}.parquet`: one row per snippet candidate of
  `index.snippet_seconds`, every `index.hop_seconds`. Activity is measured on
  50 ms blocks: a block is active when its RMS (dBFS, all channels) is above
  `index.activity_threshold_db`, and a window's `active_fraction` counts every
  block it overlaps, even partly. Acapella snippets need
  `active_fraction >= index.min_active_fraction`; instrumental snippets need at
  least half their blocks active (`INSTRUMENTAL_MIN_ACTIVE`), so music with
  breaks still counts but mostly-silent stretches do not.
- `<paths.testset>/<track>/{mixture,vocals,accompaniment}.flac` and
  `tracks.json`: seeded mixtures from the test split, 24-bit, with
  `mixture == vocals + accompaniment` exactly after decoding.

Splits are by source file and seeded by `index.seed`, so no file feeds two splits.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from vocalsep.levels import ACTIVITY_BLOCK_SECONDS, block_rms_db
from vocalsep.config import IndexParams, Params
from vocalsep.errors import StageError
from vocalsep.sources import ROLES, read_downloads
from vocalsep.contracts import INDEX_COLUMNS, INDEX_INTEGERS
from vocalsep.stages._cli import run_stage

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
INSTRUMENTAL_MIN_ACTIVE = 0.5
STARVED_YIELD = 0.1  # an acapella file giving under this fraction of its windows as snippets is reported
FULL_SCALE = 2**23  # 24-bit PCM: sample values are integers / 2**23
MIX_PEAK = 0.99


@dataclass(frozen=True)
class Activity:
    """Voice/music activity of one file: `active` has shape (blocks,), `frames` is its length."""

    active: np.ndarray
    frames: int
    block: int


def read_valid(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise StageError(f"{path}: not found; run the validate stage first (dvc repro validate)")
    return pd.read_parquet(path)


def _split_sizes(role: str, n: int, p: IndexParams) -> tuple[int, int]:
    """(val, test) file counts for a role of `n` files: at least one each where the fraction is > 0."""
    n_val = max(1, round(n * p.val_fraction)) if p.val_fraction > 0 else 0
    n_test = max(1, round(n * p.test_fraction)) if p.test_fraction > 0 else 0
    if n - n_val - n_test < 1:
        raise StageError(
            f"role {role} has {n} valid file(s), too few for {n_val} val + {n_test} test + at least 1 train file; "
            "add sources of that role or lower index.val_fraction / index.test_fraction")
    return n_val, n_test


def assign_splits(valid: pd.DataFrame, p: IndexParams) -> dict[str, str]:
    """File id -> split, shuffled per role with `p.seed` (independent of row order)."""
    rng = np.random.default_rng(p.seed)
    splits: dict[str, str] = {}
    for role in ROLES:
        ids = sorted(valid.loc[valid["role"] == role, "id"])
        n_val, n_test = _split_sizes(role, len(ids), p)
        order = [ids[i] for i in rng.permutation(len(ids))]
        for k, file_id in enumerate(order):
            splits[file_id] = "val" if k < n_val else "test" if k < n_val + n_test else "train"
    return splits


def file_activity(path: str, sample_rate: int, threshold_db: float) -> Activity:
    """Active 50 ms blocks of a normalized file."""
    try:
        audio, sr = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, OSError) as err:
        raise StageError(f"{path}: cannot read normalized audio ({err}); re-run the normalize stage") from None
    if sr != sample_rate:
        raise StageError(f"{path}: sample rate {sr} Hz, expected audio.sample_rate {sample_rate}; re-run normalize")
    levels = block_rms_db(audio, sr, ACTIVITY_BLOCK_SECONDS)
    return Activity(active=levels > threshold_db, frames=audio.shape[0], block=int(round(ACTIVITY_BLOCK_SECONDS * sr)))


def window_activity(act: Activity, window: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Starts (n,) of every `window`-frame window `hop` apart, and the active fraction (n,) of each."""
    starts = np.arange(0, act.frames - window + 1, hop, dtype=np.int64)
    cumulative = np.concatenate([[0], np.cumsum(act.active)])
    first = starts // act.block
    last = np.minimum(-(-(starts + window) // act.block), act.active.size)  # blocks overlapped, even partly
    return starts, (cumulative[last] - cumulative[first]) / (last - first)


def snippet_windows(act: Activity, params: Params) -> tuple[np.ndarray, np.ndarray, int]:
    """Starts and active fractions of a file's `index.snippet_seconds` windows, `index.hop_seconds` apart,
    and the window length in frames."""
    p, sr = params.index, params.audio.sample_rate
    frames = int(round(p.snippet_seconds * sr))
    return (*window_activity(act, frames, int(round(p.hop_seconds * sr))), frames)


def file_snippets(row, split: str, act: Activity, params: Params) -> pd.DataFrame:
    """Snippet candidates of one file, columns INDEX_COLUMNS."""
    p, sr = params.index, params.audio.sample_rate
    starts, fraction, frames = snippet_windows(act, params)
    keep = fraction >= (p.min_active_fraction if row.role == "acapella" else INSTRUMENTAL_MIN_ACTIVE)
    return pd.DataFrame({
        "id": row.id, "role": row.role, "path": row.path, "split": split, "start": starts[keep],
        "frames": np.full(keep.sum(), frames, dtype=np.int64), "sample_rate": np.int64(sr),
        "active_fraction": fraction[keep].astype(np.float64)}, columns=list(INDEX_COLUMNS))


def build_index(valid: pd.DataFrame, splits: dict[str, str], activity: dict[str, Activity],
                params: Params) -> dict[str, pd.DataFrame]:
    """Split name -> snippet table; fails when a split that has files of a role got no snippet of it."""
    parts: dict[str, list[pd.DataFrame]] = {s: [] for s in SPLITS}
    for row in valid.itertuples(index=False):
        parts[splits[row.id]].append(file_snippets(row, splits[row.id], activity[row.id], params))
    tables = {s: pd.concat(parts[s], ignore_index=True) if parts[s] else _empty_table() for s in SPLITS}
    for split, table in tables.items():
        for role in ROLES:
            has_files = any(splits[i] == split for i in valid.loc[valid["role"] == role, "id"])
            if has_files and not (table["role"] == role).any():
                raise StageError(
                    f"{split} split: no {role} snippet passed the activity rule; lower "
                    "index.activity_threshold_db or index.min_active_fraction, or check those files' levels")
    return tables


def starved_acapellas(valid: pd.DataFrame, activity: dict[str, Activity], params: Params) -> pd.DataFrame:
    """Acapella files whose windows mostly fail the activity rule: columns id, windows, yield, median_fraction.

    Short utterances joined with pauses (letters, syllables, game calls) sit
    near 25 % active, so a 0.5 rule keeps almost none of them: the model then
    never hears the voices it was given.
    """
    rows = []
    for file_id in sorted(valid.loc[valid["role"] == "acapella", "id"]):
        fraction = snippet_windows(activity[file_id], params)[1]
        kept = float(np.mean(fraction >= params.index.min_active_fraction)) if fraction.size else 0.0
        if kept < STARVED_YIELD:
            rows.append({"id": file_id, "windows": int(fraction.size), "yield": kept,
                         "median_fraction": float(np.median(fraction)) if fraction.size else 0.0})
    return pd.DataFrame(rows, columns=["id", "windows", "yield", "median_fraction"])


def warn_starved(valid: pd.DataFrame, activity: dict[str, Activity], params: Params) -> pd.DataFrame:
    """Log the acapella files the activity rule starves, by title, and what to change; returns them."""
    starved = starved_acapellas(valid, activity, params)
    if len(starved):
        records = read_downloads(params.paths.downloads)
        names = ", ".join((records.get(i) or {}).get("title") or i for i in starved["id"][:5]) + (", ..." if len(starved) > 5 else "")
        log.warning("%d of %d acapella file(s) give under %d %% of their windows as snippets (median active "
                    "fraction %.2f, index.min_active_fraction %.2f): %s. Short utterances with pauses fall "
                    "below the rule; lower index.min_active_fraction to train on them",
                    len(starved), int((valid["role"] == "acapella").sum()), round(STARVED_YIELD * 100),
                    starved["median_fraction"].median(), params.index.min_active_fraction, names)
    return starved


def _empty_table() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="int64" if c in INDEX_INTEGERS else
                                      "float64" if c == "active_fraction" else "str") for c in INDEX_COLUMNS})


def pick_excerpt(act: Activity, frames: int, hop: int, min_fraction: float, rng: np.random.Generator) -> int:
    """Seeded start of a `frames`-long excerpt with activity >= `min_fraction` (else the most active)."""
    starts, fraction = window_activity(act, frames, hop)
    good = np.flatnonzero(fraction >= min_fraction)
    if good.size == 0:
        good = np.flatnonzero(fraction == fraction.max())
    return int(starts[rng.choice(good)])


def mix_exactly(vocals: np.ndarray, accompaniment: np.ndarray, vocal_db: float) -> tuple[np.ndarray, ...]:
    """Scale to `vocal_db` (RMS ratio), keep peaks < MIX_PEAK, quantize to 24 bits.

    Inputs are float (frames, channels); returns int64 sample values on the
    24-bit grid (mixture, vocals, accompaniment) with mixture == vocals + accompaniment.
    """
    rms_v, rms_a = np.sqrt(np.mean(vocals**2)), np.sqrt(np.mean(accompaniment**2))
    vocals = vocals * (10 ** (vocal_db / 20) * rms_a / rms_v)
    peak = max(np.abs(vocals).max(), np.abs(accompaniment).max(), np.abs(vocals + accompaniment).max())
    scale = min(1.0, MIX_PEAK / peak) * FULL_SCALE
    q_vocals = np.round(vocals * scale).astype(np.int64)
    q_accompaniment = np.round(accompaniment * scale).astype(np.int64)
    return q_vocals + q_accompaniment, q_vocals, q_accompaniment


def _read_excerpt(path: str, start: int, frames: int) -> np.ndarray:
    audio, _ = sf.read(path, start=start, frames=frames, dtype="float64", always_2d=True)
    return audio


def _write_pcm24(path: Path, samples: np.ndarray, sr: int) -> None:
    # int32 input is written as its top 24 bits, so no float scaling can move a sample off the grid
    sf.write(path, (samples << 8).astype(np.int32), sr, subtype="PCM_24", format="FLAC")


def make_track(name: str, voc, ins, activity: dict[str, Activity], params: Params,
               rng: np.random.Generator) -> dict:
    """Write `<paths.testset>/<name>/` from rows `voc` and `ins` of valid.parquet; returns its tracks.json row."""
    p, sr = params.index, params.audio.sample_rate
    hop = int(round(p.hop_seconds * sr))
    frames = min(int(round(p.testset_seconds * sr)), activity[voc.id].frames, activity[ins.id].frames)
    voc_start = pick_excerpt(activity[voc.id], frames, hop, p.min_active_fraction, rng)
    ins_start = pick_excerpt(activity[ins.id], frames, hop, INSTRUMENTAL_MIN_ACTIVE, rng)
    vocal_db = float(rng.uniform(*p.testset_vocal_db))
    stems = mix_exactly(_read_excerpt(voc.path, voc_start, frames), _read_excerpt(ins.path, ins_start, frames),
                        vocal_db)
    folder = Path(params.paths.testset) / name
    folder.mkdir(parents=True)
    for stem, samples in zip(("mixture", "vocals", "accompaniment"), stems):
        _write_pcm24(folder / f"{stem}.flac", samples, sr)
    return {"track": name, "acapella_id": voc.id, "instrumental_id": ins.id, "acapella_start": voc_start,
            "instrumental_start": ins_start, "frames": frames, "sample_rate": sr, "vocal_db": vocal_db}


def make_testset(valid: pd.DataFrame, splits: dict[str, str], activity: dict[str, Activity],
                 params: Params) -> list[dict]:
    """Write the seeded test mixtures, cycling through the test files; returns the rows of tracks.json."""
    p = params.index
    test = valid[[splits[i] == "test" for i in valid["id"]]].sort_values("id")
    pools = {role: test[test["role"] == role] for role in ROLES}
    if p.testset_tracks and any(pool.empty for pool in pools.values()):
        raise StageError("index.testset_tracks > 0 needs acapellas and instrumentals in the test split; "
                         "set index.test_fraction > 0 or index.testset_tracks: 0")
    rng = np.random.default_rng([p.seed, 1])  # a stream apart from the split shuffle, same seed param
    order = {role: rng.permutation(len(pools[role])) for role in ROLES}
    return [make_track(f"track_{k:02d}", *(pools[r].iloc[order[r][k % len(pools[r])]] for r in ROLES),
                       activity, params, rng) for k in range(p.testset_tracks)]


def index(params: Params) -> dict[str, pd.DataFrame]:
    """Split, index and build the test set; returns the split name -> snippet table."""
    valid = read_valid(params.paths.valid)
    splits = assign_splits(valid, params.index)
    activity = {row.id: file_activity(row.path, params.audio.sample_rate, params.index.activity_threshold_db)
                for row in valid.itertuples(index=False)}
    tables = build_index(valid, splits, activity, params)
    warn_starved(valid, activity, params)
    out = Path(params.paths.index)
    out.mkdir(parents=True, exist_ok=True)
    for split, table in tables.items():
        table.to_parquet(params.paths.split(split), index=False)
        log.info("%s: %d snippets from %d files", split, len(table), table["id"].nunique())
    testset = Path(params.paths.testset)
    shutil.rmtree(testset, ignore_errors=True)  # stale tracks from a larger earlier test set must go
    testset.mkdir(parents=True)
    tracks = make_testset(valid, splits, activity, params)
    (testset / "tracks.json").write_text(json.dumps(tracks, indent=2))
    log.info("test set: %d tracks in %s", len(tracks), testset)
    return tables


def main(argv: list[str] | None = None) -> int:
    return run_stage("index", index, argv)


if __name__ == "__main__":
    sys.exit(main())
