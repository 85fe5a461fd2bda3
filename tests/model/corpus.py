"""A tiny corpus in the index contract (docs/pipeline.md), made in Python for the model tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

SAMPLE_RATE = 8000
SECONDS = 2.0
SNIPPET_SECONDS = 1.0


def _voice(rng: np.random.Generator, frames: int) -> np.ndarray:
    """A pitched, vibrato tone with harmonics, stereo (frames, 2)."""
    t = np.arange(frames) / SAMPLE_RATE
    f0 = rng.uniform(150, 300) * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    tone = sum(np.sin(k * phase) / k for k in range(1, 5)) * 0.2
    return np.stack([tone, tone * rng.uniform(0.6, 1.0)], axis=1)


def _band(rng: np.random.Generator, frames: int) -> np.ndarray:
    """Low chords plus noise bursts, stereo (frames, 2)."""
    t = np.arange(frames) / SAMPLE_RATE
    chord = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(60, 140, size=3)) * 0.1
    noise = rng.normal(0, 0.05, size=(frames, 2)) * (np.sin(2 * np.pi * 2 * t)[:, None] > 0)
    return chord[:, None] + noise


def write_corpus(root: Path, songs: int = 3, seed: int = 0) -> None:
    """`songs` acapellas and instrumentals as 24-bit FLAC under root/data/normalized and the
    train/val/test index parquets under root/data/index, paths relative to root."""
    rng = np.random.default_rng(seed)
    frames, snippet = int(SECONDS * SAMPLE_RATE), int(SNIPPET_SECONDS * SAMPLE_RATE)
    rows = []
    for role, make in (("acapella", _voice), ("instrumental", _band)):
        for i in range(songs):
            rel = f"data/normalized/{role}/{role[:3]}{i}.flac"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / rel, make(rng, frames).astype(np.float32), SAMPLE_RATE, subtype="PCM_24")
            for start in range(0, frames - snippet + 1, snippet // 2):
                rows.append({"id": f"{role[:3]}{i}", "role": role, "path": rel, "start": start,
                             "frames": snippet, "sample_rate": SAMPLE_RATE, "active_fraction": 1.0})
    table = pd.DataFrame(rows)
    (root / "data/index").mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test"):
        # train uses every song (the tests need several ids); val the first two of each role
        part = table if split == "train" else table[table["id"].str[-1].isin(["0", "1"])]
        part.assign(split=split).to_parquet(root / f"data/index/{split}.parquet")


def tiny_params(params, root: Path, **train_overrides):
    """`params` (paths already under root) shrunk to the tiny corpus and a tiny model on CPU."""
    return dataclasses.replace(
        params,
        audio=dataclasses.replace(params.audio, sample_rate=SAMPLE_RATE),
        index=dataclasses.replace(params.index, snippet_seconds=SNIPPET_SECONDS),
        model=dataclasses.replace(params.model, filters=8, skip_filters=8, layers=6, layers_per_stack=6),
        data=dataclasses.replace(params.data, segment_seconds=0.25, examples_per_epoch=64, val_examples=8),
        train=dataclasses.replace(params.train, device="cpu", epochs=2, batch_size=8, log_every=2,
                                  checkpoint_every=4, workers=0, **train_overrides),
        tracking=dataclasses.replace(params.tracking, uri=f"sqlite:///{root}/mlruns/mlflow.db",
                                     artifacts=str(root / "mlruns/artifacts")),
    )
