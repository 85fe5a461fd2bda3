"""normalize stage: raw downloads -> stereo, one-rate, DC-free, loudness-normalized 24-bit FLAC + manifest.

Reads `<paths.raw>/downloads.jsonl` (rows with status "ok"), writes
`<paths.normalized>/<role>/<id>.flac` and `<paths.normalized>/manifest.parquet`
(columns in docs/pipeline.md). A file that cannot be decoded, is empty, or is
silent becomes a "failed" row with its reason; the stage goes on.

`normalize_file` (one download row -> one manifest row) and `write_manifest`
are public so an orchestrator can fan files out itself (e.g. on Dask) and still
write the same manifest as `normalize`.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import sys
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from vocalsep import audio, levels
from vocalsep.config import Params
from vocalsep.errors import AudioError, StageError
from vocalsep.contracts import MANIFEST_COLUMNS, repo_relative, sha256_file
from vocalsep.stages._cli import run_stage

log = logging.getLogger(__name__)


def read_downloads(params: Params, root: Path) -> list[dict]:
    """The `downloads.jsonl` rows with status "ok", sorted by (role, id)."""
    jsonl = Path(root) / params.paths.downloads
    if not jsonl.is_file():
        raise StageError(f"{jsonl}: not found; run the download stage first (dvc repro download)")
    rows = []
    for number, line in enumerate(jsonl.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise StageError(f"{jsonl}, line {number}: not valid JSON ({err}); re-run the download stage") from None
        missing = [key for key in ("id", "role", "status", "path") if key not in row]
        if missing:
            raise StageError(f"{jsonl}, line {number}: missing field(s) {', '.join(missing)}; "
                             "re-run the download stage")
        if row["status"] == "ok":
            rows.append(row)
    if not rows:
        raise StageError(f"{jsonl}: no download has status ok; read the reasons there and fix the sources")
    return sorted(rows, key=lambda r: (r["role"], r["id"]))


def _failed_row(download: dict, root: Path, reason: str) -> dict:
    """A manifest row for a file that yields no normalized audio (stats unknown: 0 or NaN)."""
    nan = float("nan")
    return {
        "id": download["id"], "role": download["role"], "path": "",
        "source_path": repo_relative(Path(root) / download["path"], root),
        "sample_rate": 0, "channels": 0, "source_sample_rate": 0, "source_channels": 0,
        "duration": 0.0, "peak": nan, "loudness": nan, "silence_ratio": nan, "clipping_ratio": nan,
        "sha256": "", "status": "failed", "reason": reason,
    }


def _silence_reason(duration: float, silence_ratio: float, loudness: float, params: Params) -> str | None:
    """Why audio with these statistics cannot be loudness-normalized, or None when it can."""
    if duration < levels.LOUDNESS_BLOCK_SECONDS:
        return f"too short to measure loudness ({duration:.3f} s < {levels.LOUDNESS_BLOCK_SECONDS:g} s)"
    if silence_ratio >= 1.0 or np.isnan(loudness):
        return (f"silent: every {1000 * levels.ACTIVITY_BLOCK_SECONDS:g} ms block is below {params.normalize.silence_threshold_db} dBFS "
                "(normalize.silence_threshold_db) or under the -70 LUFS gate; nothing to normalize")
    return None


def normalize_file(download: dict, params: Params, root: Path) -> dict:
    """Decode, resample, make stereo, remove DC and sub-sonic content (`normalize.highpass_hz`),
    loudness-normalize and write one download; its manifest row.

    `download` is a downloads.jsonl row (status ok); its `path` is relative to `root`.
    """
    root = Path(root)
    row = _failed_row(download, root, "")
    try:
        source, source_sr = audio.read_audio(root / download["path"])
    except AudioError as err:
        return {**row, "reason": str(err)}
    sr, norm = params.audio.sample_rate, params.normalize
    stereo = levels.remove_subsonic(audio.resample(audio.to_stereo(source), source_sr, sr), sr, norm.highpass_hz)
    row.update(source_sample_rate=source_sr, source_channels=source.shape[1], duration=stereo.shape[0] / sr,
               clipping_ratio=levels.clipping_ratio(source, norm.clipping_level),
               silence_ratio=levels.silence_ratio(stereo, sr, norm.silence_threshold_db))
    loudness = levels.integrated_loudness(stereo, sr)
    reason = _silence_reason(row["duration"], row["silence_ratio"], loudness, params)
    if reason:
        return {**row, "peak": levels.peak_db(stereo), "reason": f"{root / download['path']}: {reason}"}
    normalized = levels.normalize_loudness(stereo, sr, norm.target_lufs, norm.peak_ceiling_db, loudness)
    out = root / params.paths.normalized / download["role"] / f"{download['id']}.flac"
    audio.write_audio(out, normalized, sr, subtype="PCM_24")
    row.update(path=repo_relative(out, root), sample_rate=sr, channels=normalized.shape[1],
               peak=levels.peak_db(normalized), loudness=levels.integrated_loudness(normalized, sr),
               silence_ratio=levels.silence_ratio(normalized, sr, norm.silence_threshold_db),
               sha256=sha256_file(out), status="ok", reason="")
    return row


def manifest_frame(rows: Iterable[dict]) -> pd.DataFrame:
    """Manifest rows as a DataFrame with exactly the contract's columns and dtypes, sorted by (role, id)."""
    frame = pd.DataFrame(list(rows), columns=list(MANIFEST_COLUMNS))
    frame = frame.astype(MANIFEST_COLUMNS).sort_values(["role", "id"], kind="stable")
    return frame.reset_index(drop=True)


def write_manifest(rows: Iterable[dict], params: Params, root: Path) -> Path:
    """Write `<paths.normalized>/manifest.parquet` from manifest rows; its path."""
    path = Path(root) / params.paths.manifest
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest_frame(rows).to_parquet(path, index=False)
    return path


def _map_files(downloads: list[dict], params: Params, root: Path) -> list[dict]:
    """normalize_file over every download: inline for one worker, else in worker processes."""
    bar = tqdm(total=len(downloads), desc="normalize", unit="file", file=sys.stderr)
    workers = min(params.normalize.workers, len(downloads))
    with bar:
        if workers <= 1:
            rows = []
            for download in downloads:
                rows.append(normalize_file(download, params, root))
                bar.update()
            return rows
        # fork starts a worker in milliseconds; forkserver and spawn re-import the caller's
        # __main__ (seconds with torch loaded) and need an `if __name__` guard in scripts.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        context = multiprocessing.get_context(method)
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            rows = []
            for row in pool.map(normalize_file, downloads, repeat(params), repeat(Path(root))):
                rows.append(row)
                bar.update()
            return rows


def normalize(params: Params, root: Path | None = None) -> pd.DataFrame:
    """Run the normalize stage under `root` (default: the current folder, as `dvc repro` does); the manifest."""
    root = Path.cwd() if root is None else Path(root)
    downloads = read_downloads(params, root)
    rows = _map_files(downloads, params, root)
    finish(rows, params, root)
    return manifest_frame(rows)


def finish(rows: list[dict], params: Params, root: Path,
           logger: logging.Logger | logging.LoggerAdapter = log) -> Path:
    """Report each failed file, write the manifest and log the count; the manifest's path.

    Shared by the stage and by the Dask fan-out in flows/, which logs to Prefect.
    """
    for row in rows:
        if row["status"] != "ok":
            logger.warning("failed %s/%s: %s", row["role"], row["id"], row["reason"])
    path = write_manifest(rows, params, root)
    ok = sum(row["status"] == "ok" for row in rows)
    logger.info("normalized %d of %d files -> %s", ok, len(rows), path)
    return path


def main(argv: list[str] | None = None) -> int:
    return run_stage("normalize", normalize, argv)


if __name__ == "__main__":
    sys.exit(main())
