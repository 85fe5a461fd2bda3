"""Does a model separate a lower (or higher) voice worse? The unseen mixtures with the voice pitch-shifted.

Each of `quality.py`'s unseen-conditions mixtures (`data/quality/mixtures5/unseen`) is
rebuilt with only its voice moved by a fixed number of semitones (Signalsmith
Stretch, formants along, duration kept, as `data.augment.pitch_shift` but at the
library's default preset, not the cheaper one training uses) and its level kept;
the music and the ratio stay.
A shift of 0 runs the same transform, so every row carries the same processing.
For each shift: the median and mean SI-SDRi over mixtures, and per voice family.

It asks one question: is a voice's pitch range a cue the model learned from its
training voices? base_v17 loses 1.7 dB with the unseen voices 5 semitones lower
(docs/performance.md, "Deeper voices").

Usage: python benchmarks/pitch.py [--model NAME=SPEC ...] [--mixtures data/quality/mixtures5]
       [--shifts -5 0 5] [--tracks N] [--out benchmarks/results/pitch.json]
SPEC is what `vocalsep.Separator` takes: pretrained or a checkpoint path; `irm` is the ideal-ratio-mask
oracle (what any mask could do on the shifted stems: how much harder a lower voice is in itself).
Rows merge by model name.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from vocalsep.data import augment
from vocalsep.metrics import si_sdr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import model_rows  # noqa: E402
from quality import RATE, read_mixture  # noqa: E402


def shifted(vocals: np.ndarray, semitones: float) -> np.ndarray:
    """`(channels, samples)` vocals moved by `semitones`, formants along, at their own RMS: Signalsmith Stretch
    at its default preset, not the cheaper one `data.augment.pitch_shift` trains with, so that a model trained
    on shifted voices does not meet its own transform's artefacts here."""
    out = augment.transpose(vocals, RATE, semitones, cheaper=False)
    return (out * np.sqrt(np.sum(vocals ** 2) / max(float(np.sum(out ** 2)), 1e-20))).astype(np.float32)


def score(spec: str, folders: list[Path], families: dict[str, str], shifts: list[float]) -> dict:
    estimate = model_rows.estimator(spec)
    tracks = []
    for folder in folders:
        track = read_mixture(folder)
        row = {"track": folder.name, "voice": families.get(folder.name, "")}
        for k in shifts:
            voice = shifted(track.vocals, k)
            mixture = voice + track.accompaniment
            row[f"{k:+g}"] = round(si_sdr(voice, estimate(voice, track.accompaniment)) - si_sdr(voice, mixture), 3)
        tracks.append(row)
        print(f"[pitch] {spec}: {row}", flush=True)
    def summary(rows: list[dict]) -> dict:
        return {f"{k:+g}": {"median": round(float(np.median([r[f'{k:+g}'] for r in rows])), 2),
                            "mean": round(float(np.mean([r[f'{k:+g}'] for r in rows])), 2)} for k in shifts}
    voices = sorted({t["voice"] for t in tracks})
    return {"spec": spec, "si_sdri": summary(tracks),
            "families": {v: summary([t for t in tracks if t["voice"] == v]) for v in voices}, "tracks": tracks}


def main(argv: list[str] | None = None) -> int:
    parser = model_rows.parser(__doc__, "benchmarks/results/pitch.json")
    parser.add_argument("--shifts", type=float, nargs="+", default=[-5.0, 0.0, 5.0])
    args = parser.parse_args(argv)
    rows = model_rows.unseen_mixtures(args.mixtures, args.tracks, "pitch")
    if rows is None:
        return 2
    root = args.mixtures / "unseen"
    families = {r["track"]: r["voice"]["package"] for r in rows}
    folders = [root / r["track"] for r in rows]
    models = model_rows.merged(args.out, args.model, lambda spec: score(spec, folders, families, args.shifts))
    model_rows.write(args.out, "pitch", {
        "mixtures": str(root), "tracks": len(folders), "shifts_semitones": args.shifts,
        "note": "SI-SDRi (dB) with the voice pitch-shifted (Signalsmith Stretch, default preset, formants along); "
                "higher is better; irm: the ideal-ratio-mask oracle on the same shifted stems"}, models)
    print(json.dumps({name: row["si_sdri"] for name, row in models.items()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
