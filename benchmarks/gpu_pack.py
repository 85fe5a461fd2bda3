"""A compact training pack for a GPU machine that is reached through a small upload.

The lent GPU machine (docs/training.md, "A GPU run from a pack") takes at most
64 MiB of files and has no apt, no MLflow and no network, so the real corpus
(18 GB of FLAC) cannot travel. `pack` picks non-overlapping snippets of the
snippet index (`data/index/{train,val}.parquet`), round robin over source files
so that every speaker and soundtrack is in it, and encodes each role and split
as one Opus stream (48 kHz, soxr-resampled; ffmpeg from imageio-ffmpeg) with a
manifest. `unpack` (run there) decodes them back to 44.1 kHz float WAV and
writes an index that `vocalsep.data.MixtureDataset` reads as it reads the
real one: one row per snippet, its source file's id kept, so a mixture still
never pairs a voice with music of the same song.

Usage: python benchmarks/gpu_pack.py pack --workspace /work/real --out .pack [--voice 720 --music 720 --val 32]
       python benchmarks/gpu_pack.py unpack --pack .pack --out /tmp/gpuwork
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import soxr

RATE = 44100  # the project's sample rate (params audio.sample_rate)
OPUS_RATE = 48000  # Opus codes at 48 kHz only


def choose(table: pd.DataFrame, role: str, count: int, seed: int) -> pd.DataFrame:
    """`count` non-overlapping snippets of `role`, taken round robin over shuffled source files."""
    rng = np.random.default_rng(seed)
    rows = table[table["role"] == role]
    queues = []
    for _, group in rows.groupby("id"):
        picked, end = [], -1
        for row in group.sort_values("start").itertuples():
            if row.start >= end:
                picked.append(row.Index)
                end = row.start + row.frames
        queues.append(list(rng.permutation(picked)))
    rng.shuffle(queues)
    chosen: list[int] = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(int(queue.pop()))
    return rows.loc[chosen].reset_index(drop=True)


def encode(snippets: pd.DataFrame, root: Path, frames: int, out: Path, bitrate: str, ffmpeg: str) -> None:
    """The snippets' first `frames` frames, one after another, as one stereo Opus file."""
    command = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "f32le", "-ar", str(OPUS_RATE),
               "-ac", "2", "-i", "-", "-c:a", "libopus", "-b:a", bitrate, str(out)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE)
    assert process.stdin is not None
    for row in snippets.itertuples():
        audio, rate = sf.read(str(root / row.path), start=int(row.start), frames=frames, dtype="float32",
                              always_2d=True)
        if rate != RATE or audio.shape[0] != frames:
            raise SystemExit(f"{row.path}: expected {frames} frames at {RATE} Hz at {row.start}")
        audio = np.repeat(audio, 2, axis=1) if audio.shape[1] == 1 else audio
        process.stdin.write(soxr.resample(audio, RATE, OPUS_RATE, quality="VHQ").astype("<f4").tobytes())
    process.stdin.close()
    if process.wait() != 0:
        raise SystemExit(f"ffmpeg failed to encode {out}")


def pack(args: argparse.Namespace) -> None:
    import imageio_ffmpeg

    root, out = Path(args.workspace), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frames = int(round(args.seconds * RATE))
    plan = {("train", "acapella"): args.voice, ("train", "instrumental"): args.music,
            ("val", "acapella"): args.val, ("val", "instrumental"): args.val}
    manifest: dict = {"sample_rate": RATE, "frames": frames, "bitrate": args.bitrate, "streams": []}
    for (split, role), count in plan.items():
        table = pd.read_parquet(root / "data" / "index" / f"{split}.parquet")
        snippets = choose(table, role, count, args.seed)
        name = f"{split}-{role}.opus"
        encode(snippets, root, frames, out / name, args.bitrate, imageio_ffmpeg.get_ffmpeg_exe())
        manifest["streams"].append({"file": name, "split": split, "role": role, "ids": snippets["id"].tolist(),
                                    "active_fraction": snippets["active_fraction"].round(4).tolist(),
                                    "sources": int(snippets["id"].nunique())})
        print(f"{name}: {len(snippets)} snippets from {snippets['id'].nunique()} files, "
              f"{(out / name).stat().st_size / 1e6:.1f} MB")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))


def _decode(pack_dir: Path, stream: dict, frames: int, out: Path) -> list[dict]:
    """One stream decoded to `out`/<split>-<role>.wav; its index rows."""
    audio, rate = sf.read(str(pack_dir / stream["file"]), dtype="float32", always_2d=True)
    audio = soxr.resample(audio, rate, RATE, quality="HQ").astype(np.float32)
    count = min(len(stream["ids"]), audio.shape[0] // frames)
    wav = out / f"{stream['split']}-{stream['role']}.wav"
    sf.write(str(wav), audio[: count * frames], RATE, subtype="FLOAT")
    return [{"id": stream["ids"][k], "role": stream["role"], "path": str(wav.resolve()), "split": stream["split"],
             "start": k * frames, "frames": frames, "sample_rate": RATE,
             "active_fraction": float(stream["active_fraction"][k])} for k in range(count)]


def unpack(pack_dir: str | Path, out: str | Path) -> dict[str, Path]:
    """Decode the pack into `out`/<split>-<role>.wav and `out`/index/<split>.parquet, with the manifest's
    rate, frames and bitrate in `out`/index/pack.json (gpu_run.py's provenance); returns the index paths."""
    from concurrent.futures import ProcessPoolExecutor

    pack_dir, out = Path(pack_dir), Path(out)
    (out / "index").mkdir(parents=True, exist_ok=True)
    manifest = json.loads((pack_dir / "manifest.json").read_text())
    streams = manifest["streams"]
    with ProcessPoolExecutor(len(streams)) as pool:
        decoded = list(pool.map(_decode, [pack_dir] * len(streams), streams, [int(manifest["frames"])] * len(streams),
                                [out] * len(streams)))
    (out / "index" / "pack.json").write_text(json.dumps({k: v for k, v in manifest.items() if k != "streams"}))
    paths = {}
    for split in sorted({s["split"] for s in streams}):
        rows = [row for stream, table in zip(streams, decoded) if stream["split"] == split for row in table]
        paths[split] = out / "index" / f"{split}.parquet"
        pd.DataFrame(rows).to_parquet(paths[split], index=False)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--workspace", required=True)
    p.add_argument("--out", default=".pack")
    p.add_argument("--voice", type=int, default=720)
    p.add_argument("--music", type=int, default=720)
    p.add_argument("--val", type=int, default=32)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--bitrate", default="48k")
    p.add_argument("--seed", type=int, default=0)
    u = sub.add_parser("unpack")
    u.add_argument("--pack", default=".pack")
    u.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.command == "pack":
        pack(args)
    else:
        print(unpack(args.pack, args.out))


if __name__ == "__main__":
    main()
