"""Music alone in, and what comes out as vocals: leak by how the music was recorded.

For every instrumental file of the quality benchmark's eval corpus (built by
`benchmarks/quality.py` in `data/quality/corpus`; music no model trained on), a
15 s excerpt at -26 dBFS RMS is separated five ways: as it is (stereo), folded
to mono, low-passed at 3.5 kHz (24 dB/octave, as `music_lowpass`), both, and
resampled to 8 kHz and back (`music_resample`: a true 8 kHz file's band edge). The
leak is the vocals' level relative to the input, in dB (lower is better; the
quality benchmark's target is -25 dB). Music that is already mono or narrow
(music on hold: 8 kHz mono) is the same five times, apart from the low-pass.

It asks one question: is a centred, mono or narrow sound a cue the model takes
for voice? The training voices are mono, and many are 8 kHz prompts.

Usage: python benchmarks/leak.py [--model NAME=SPEC ...] [--corpus data/quality/corpus]
       [--out benchmarks/results/leak-mono.json]
SPEC is what `vocalsep.Separator` takes: pretrained or a checkpoint path. Rows merge by model name.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from vocalsep.audio import read_audio, resample, to_stereo
from vocalsep.config import AugmentParams
from vocalsep.data import augment
from vocalsep.metrics import leak

sys.path.insert(0, str(Path(__file__).resolve().parent))
import model_rows  # noqa: E402

RATE = 44100
SECONDS = 15.0
LEVEL_RMS = 0.05   # -26 dBFS
WAYS = ("stereo", "mono", "lowpass", "mono+lowpass", "8k")


def excerpt(path: Path) -> np.ndarray:
    """(frames, 2) float32: 15 s from 30 s in (or the start of a shorter file), at RATE and LEVEL_RMS."""
    audio, rate = read_audio(path)
    audio = resample(to_stereo(audio), rate, RATE)
    start = 30 * RATE if audio.shape[0] > (30 + SECONDS) * RATE else 0
    audio = audio[start:start + int(SECONDS * RATE)]
    return np.ascontiguousarray(audio / (np.sqrt(np.mean(audio ** 2)) + 1e-9) * LEVEL_RMS, dtype=np.float32)


def ways(audio: np.ndarray) -> dict[str, np.ndarray]:
    """The training's own music transforms (`data.augment`), on (frames, 2) audio."""
    fixed = AugmentParams(music_lowpass_hz=(3500.0, 3500.0), music_resample_hz=(8000.0,))
    def apply(transform: augment.Transform, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(transform(np.ascontiguousarray(x.T), RATE, np.random.default_rng(0), fixed).T)
    mono = apply(augment.music_mono, audio)
    return {"stereo": audio, "mono": mono, "lowpass": apply(augment.music_lowpass, audio),
            "mono+lowpass": apply(augment.music_lowpass, mono), "8k": apply(augment.music_resample, audio)}


def score(spec: str, files: list[Path]) -> dict:
    from vocalsep import Separator
    separator = Separator(spec, "cpu", threads=2)
    tracks = []
    for path in files:
        inputs = ways(excerpt(path))
        leaks = {way: round(leak(x, separator.vocals(x, RATE)), 2) for way, x in inputs.items()}
        tracks.append({"family": path.parent.name, "file": path.name, **leaks})
        print(f"[leak] {spec}: {path.parent.name}/{path.name} {leaks}", flush=True)
    families = sorted({t["family"] for t in tracks})
    def median(rows: list[dict], way: str) -> float:
        return round(float(np.median([r[way] for r in rows])), 2)
    return {"spec": spec, "median": {way: median(tracks, way) for way in WAYS},
            "families": {f: {way: median([t for t in tracks if t["family"] == f], way) for way in WAYS}
                         for f in families},
            "tracks": tracks}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="NAME=SPEC (default base=pretrained)")
    parser.add_argument("--corpus", type=Path, default=Path("data/quality/corpus"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/leak-mono.json"))
    args = parser.parse_args(argv)
    files = sorted((args.corpus / "instrumental").glob("*/*"))
    if not files:
        print(f"[leak] no music in {args.corpus / 'instrumental'}: run benchmarks/quality.py once to build the "
              f"eval corpus, or pass --corpus", file=sys.stderr)
        return 2
    models = model_rows.merged(args.out, args.model, lambda spec: score(spec, files))
    model_rows.write(args.out, "leak", {"seconds": SECONDS, "level_dbfs": -26, "lowpass_hz": 3500, "resample_hz": 8000,
                                        "files": len(files), "note": "leak = vocals level - input level (dB); lower is better"},
                     models)
    print(json.dumps({name: row["median"] for name, row in models.items()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
