"""Throughput of the normalize stage on synthetic raw files.

Writes `benchmarks/results/normalize.json`: files per second and seconds of
audio per second for each worker count, with the machine it ran on.

    python benchmarks/normalize.py [--files 8] [--seconds 30] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from vocalsep.config import load_params
from vocalsep.stages.normalize import normalize

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULT = REPO_ROOT / "benchmarks" / "results" / "normalize.json"
# (extension, sample rate, channels): the mix of what downloads look like
FORMATS = [("wav", 44100, 2), ("flac", 48000, 2), ("ogg", 44100, 2), ("mp3", 44100, 2),
           ("flac", 22050, 1), ("wav", 96000, 2)]


def synth(seconds: float, sr: int, channels: int, seed: int) -> np.ndarray:
    """(frames, channels) of chords plus noise bursts, peak about 0.5."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    chord = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(80, 1500, 4)) / 4
    bursts = rng.normal(size=t.size) * (np.sin(2 * np.pi * 2.0 * t) > 0.9)
    mono = 0.4 * chord + 0.1 * bursts
    return np.stack([mono * (0.8 + 0.2 * c) for c in range(channels)], axis=1).astype(np.float32)


def make_raw(root: Path, files: int, seconds: float) -> None:
    """`files` raw downloads and their downloads.jsonl under `root/data/raw`."""
    raw, rows = root / "data" / "raw", []
    for i in range(files):
        ext, sr, channels = FORMATS[i % len(FORMATS)]
        role = "acapella" if i % 2 == 0 else "instrumental"
        path = raw / role / f"bench{i:07d}.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, synth(seconds, sr, channels, seed=i), sr)
        rows.append({"id": path.stem, "url": f"file:{path.name}", "role": role, "title": None, "license": None,
                     "status": "ok", "reason": None, "path": path.relative_to(root).as_posix(), "ext": ext,
                     "duration": seconds, "sha256": None, "attempts": 1})
    (raw / "downloads.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def run(root: Path, workers: int, seconds_total: float) -> dict:
    """Time one normalize run with `workers` processes on the raw folder under `root`."""
    params = load_params(REPO_ROOT / "params.yaml")
    params = dataclasses.replace(params, normalize=dataclasses.replace(params.normalize, workers=workers))
    start = time.perf_counter()
    manifest = normalize(params, root=root)
    elapsed = time.perf_counter() - start
    if (manifest["status"] != "ok").any():
        raise RuntimeError(f"benchmark files failed to normalize: {manifest['reason'].tolist()}")
    return {"workers": workers, "seconds": round(elapsed, 3), "files_per_second": round(len(manifest) / elapsed, 3),
            "audio_seconds_per_second": round(seconds_total / elapsed, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each synthetic file")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    with tempfile.TemporaryDirectory(prefix="vocalsep-bench-") as tmp:
        make_raw(Path(tmp), args.files, args.seconds)
        runs = [run(Path(tmp), w, args.files * args.seconds) for w in args.workers]
    result = {"benchmark": "normalize", "files": args.files, "seconds_per_file": args.seconds,
              "formats": [f"{ext}@{sr}/{ch}ch" for ext, sr, ch in FORMATS], "runs": runs,
              "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version()}}
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
