"""Where a model's error lies, by frequency band, on the unseen-conditions mixtures of `quality.py`.

For each mixture of `data/quality/mixtures5/unseen` and each band (brick-wall, by FFT of the whole 20 s):
- `voice`, `music`: the band's share of the voice's and the music's energy, in dB of the whole voice;
- `gain`: the least-squares gain of the true voice in the estimate's band (1 keeps it whole; below 1 the
  model takes part of the voice away there), with the music fitted beside it;
- `oracle_gain`: the SI-SDRi gained if the estimate's band alone were replaced by the true voice's: how much
  of the gap to a perfect output that band holds.
Medians over mixtures (gains) and means (oracle gains, which add up across bands only roughly).

It asks one question: which part of the spectrum must a better model earn? base_v17 keeps 0.59 of the
voice's amplitude below 150 Hz with music present, and 150-500 Hz holds 3.7 dB of its 5.8 dB gap to the
ideal-ratio-mask oracle (docs/performance.md, "Deeper voices").

Usage: python benchmarks/bands.py [--model NAME=SPEC ...] [--mixtures data/quality/mixtures5]
       [--tracks N] [--out benchmarks/results/bands.json]
SPEC is what `vocalsep.Separator` takes: pretrained or a checkpoint path; `irm` is the ideal-ratio-mask
oracle. Rows merge by model name.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from vocalsep.metrics import si_sdr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import model_rows  # noqa: E402
from quality import RATE, read_mixture  # noqa: E402

EDGES = (0, 150, 500, 1000, 2000, 4000, 8000, RATE // 2 + 1)
BANDS = tuple((f"{low}-{high}", low, high) for low, high in zip(EDGES[:-1], EDGES[1:]))  # (name, low, high Hz)


def band(audio: np.ndarray, low: float, high: float) -> np.ndarray:
    """`audio` `(channels, samples)` with everything outside [low, high) Hz removed (brick-wall, by FFT)."""
    spectrum = np.fft.rfft(audio, axis=-1)
    hz = np.fft.rfftfreq(audio.shape[-1], 1 / RATE)
    spectrum[..., (hz < low) | (hz >= high)] = 0
    return np.fft.irfft(spectrum, n=audio.shape[-1], axis=-1)


def db(x: float) -> float:
    return float(10 * np.log10(max(x, 1e-12)))


def track_bands(voice: np.ndarray, music: np.ndarray, estimate: np.ndarray) -> dict[str, dict]:
    """Each band's voice and music share (dB of the whole voice), the voice's gain in the estimate and the
    SI-SDRi gained by an exact band."""
    mixture = voice + music
    energy = float(np.sum(voice ** 2))
    base = si_sdr(voice, estimate)
    rows = {}
    for name, low, high in BANDS:
        v, m, e = band(voice, low, high), band(music, low, high), band(estimate, low, high)
        fit, *_ = np.linalg.lstsq(np.stack([v.ravel(), m.ravel()], 1), e.ravel(), rcond=None)
        rows[name] = {"voice": round(db(np.sum(v ** 2) / energy), 2),
                      "music": round(db(np.sum(m ** 2) / energy), 2), "gain": round(float(fit[0]), 3),
                      "oracle_gain": round(si_sdr(voice, estimate - e + v) - base, 3)}
    rows["si_sdri"] = round(base - si_sdr(voice, mixture), 3)
    return rows


def score(spec: str, folders: list[Path]) -> dict:
    estimate = model_rows.estimator(spec)
    tracks = []
    for folder in folders:
        t = read_mixture(folder)
        tracks.append({"track": folder.name,
                       **track_bands(t.vocals, t.accompaniment, estimate(t.vocals, t.accompaniment))})
        print(f"[bands] {spec}: {folder.name} si_sdri {tracks[-1]['si_sdri']}", flush=True)
    def stat(name: str, key: str, how) -> float:
        return round(float(how([t[name][key] for t in tracks])), 2)
    return {"spec": spec, "median_si_sdri": round(float(np.median([t["si_sdri"] for t in tracks])), 2),
            "bands": {n: {"voice": stat(n, "voice", np.median), "music": stat(n, "music", np.median),
                          "gain": stat(n, "gain", np.median), "oracle_gain": stat(n, "oracle_gain", np.mean)}
                      for n, _, _ in BANDS},
            "tracks": tracks}


def main(argv: list[str] | None = None) -> int:
    parser = model_rows.parser(__doc__, "benchmarks/results/bands.json")
    args = parser.parse_args(argv)
    rows = model_rows.unseen_mixtures(args.mixtures, args.tracks, "bands")
    if rows is None:
        return 2
    root = args.mixtures / "unseen"
    folders = [root / r["track"] for r in rows]
    models = model_rows.merged(args.out, args.model, lambda spec: score(spec, folders))
    model_rows.write(args.out, "bands", {
        "mixtures": str(root), "tracks": len(folders), "edges_hz": list(EDGES),
        "note": "voice/music: the band's energy in dB of the whole voice (median); gain: the true voice's "
                "least-squares gain in the estimate's band (median); oracle_gain: SI-SDRi gained with that band "
                "exact (mean)"}, models)
    print(json.dumps({name: {"median_si_sdri": row["median_si_sdri"], **{b: [v["gain"], v["oracle_gain"]]
                      for b, v in row["bands"].items()}} for name, row in models.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
