"""Is a candidate model better than the shipped one? Paired figures on the same mixtures, and the ship rule.

`benchmarks/quality.py` scores every system on the same seeded mixtures, so two
systems can be compared track by track, not only by their medians. For each
candidate against a reference (the shipped base model), on the unseen set:

- **medians** of SI-SDRi, SI-SDRi over voice families, SDR, pass-through and
  music leak, and the candidate's change on each;
- **paired**: on how many mixtures the candidate is better, the mean change,
  and a 90 % bootstrap interval of that mean (mixtures resampled with
  replacement, seeded), for SI-SDRi, SDR, pass-through and leak (lower leak is
  better); the mean SI-SDRi change per voice family;
- **the ship rule** the project applies before replacing its base model
  (from 2026-12-05, declared before the candidates it judges; docs/performance.md):
  the 90 % interval of the mean SI-SDRi change above zero, no voice family's
  mean change below -0.25 dB, a median music leak at most -25 dB (the
  target) and a leak change whose 90 % interval reaches zero or below (not
  clearly louder), a median pass-through of at least 15 dB, and a real-time
  factor of at least 10 where one was recorded. `passes` is false with each
  failed condition named;
- **the median rule** (`median_rule`), the ship rule until 2026-12-04, kept
  for the record: no worse than the reference on the median SI-SDRi, on the
  median over voice families and on the median leak, and a pass-through of
  at least 15 dB. Over 24 mixtures a median moved against the paired means
  (docs/performance.md, "Recipe 5"), which is why it was replaced.

Results files are read in order and their systems merged; every file must hold
the same unseen mixtures (its `config.sets.unseen`), or the comparison would
pair different audio. A system named twice is an error, not a silent choice.
The rules read the stored medians, so each compared system's medians are first
recomputed from its per-track rows; a file where the two disagree (edited by
hand, or written by another version) is refused with the figure named.

Usage: python benchmarks/compare.py RESULTS.json [MORE.json ...] --reference base_v12
           --candidates NAME [NAME ...] [--out benchmarks/results/compare.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

SET = "unseen"
OVER_FAMILIES = "median_si_sdri_over_voice_families"  # the median of the voice families' median SI-SDRi
MEDIANS = ("median_si_sdri", OVER_FAMILIES, "median_sdr", "median_pass_through", "median_leak")
PAIRED = {"si_sdri": 1, "sdr": 1, "pass_through": 1, "leak": -1}  # sign: +1 higher is better, -1 lower is better
PASS_THROUGH_FLOOR = 15.0
FAMILY_FLOOR = -0.25  # dB: the ship rule's largest mean SI-SDRi loss allowed on one voice family
LEAK_CEILING = -25.0  # dB: the loudest median music leak the ship rule accepts (the target)
SPEED_FLOOR = 10.0  # x real time: the slowest model the ship rule accepts (2 CPU cores)
RESAMPLES = 10_000
MEDIAN_TOLERANCE = 0.01  # dB: per-track rows and medians are both rounded to 4 decimals by quality.py


class CompareError(Exception):
    """A comparison that would mislead: unknown system, different mixtures, a name in two files."""


def merged_systems(paths: list[Path]) -> dict[str, dict]:
    """The systems of every results file, checked to be scored on the same unseen mixtures."""
    systems: dict[str, dict] = {}
    mixtures = None
    for path in paths:
        results = json.loads(path.read_text())
        key = results.get("config", {}).get("sets", {}).get(SET)
        if key is None:
            raise CompareError(f"{path}: no config.sets.{SET}; is it a benchmarks/quality.py result?")
        if mixtures is not None and key != mixtures:
            raise CompareError(f"{path}: its {SET} mixtures differ from {paths[0]}'s ({_differing(mixtures, key)}); "
                               "score both systems on the same set")
        mixtures = key
        for name, system in results["systems"].items():
            if name in systems and _scores(systems[name]) != _scores(system):
                raise CompareError(f"{path}: system {name!r} is also in an earlier file with other scores; "
                                   "rename one (quality.py --model NAME=...)")
            systems[name] = system
    return systems


def _scores(system: dict) -> tuple:
    """What a comparison reads of a system (timings and notes may differ between two runs of it)."""
    return tuple(system.get(k) for k in MEDIANS), system.get("per_track")


def _differing(a: dict, b: dict) -> str:
    return ", ".join(sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)))


def per_track(system: dict, name: str) -> dict[str, dict]:
    rows = system.get("per_track")
    if not rows:
        raise CompareError(f"system {name!r} has no per-track scores to pair")
    return {row["track"]: row for row in rows}


def recomputed_medians(rows: list[dict]) -> dict[str, float | None]:
    """The medians `MEDIANS` names, as quality.py computes them, from a system's per-track rows; the one over
    voice families is the median of each family's median SI-SDRi."""
    def median(values: list) -> float | None:
        kept = [v for v in values if v is not None]
        return float(np.median(kept)) if kept else None
    out = {key: median([r.get(key.removeprefix("median_")) for r in rows]) for key in MEDIANS if key != OVER_FAMILIES}
    voices = sorted({r["voice"] for r in rows if "voice" in r})
    out[OVER_FAMILIES] = median([median([r.get("si_sdri") for r in rows if r.get("voice") == v]) for v in voices])
    return out


def check_medians(system: dict, tracks: dict[str, dict], name: str) -> None:
    """Refuse a system whose stored medians are not those of its own per-track rows (`per_track`'s)."""
    recomputed = recomputed_medians(list(tracks.values()))
    wrong = [f"{key} stored {system.get(key)}, per-track rows give {value:.4f}" for key, value in recomputed.items()
             if value is not None and (system.get(key) is None or abs(system[key] - value) > MEDIAN_TOLERANCE)]
    if wrong:
        raise CompareError(f"system {name!r}: its medians disagree with its per-track scores ({'; '.join(wrong)}); "
                           "score it again with benchmarks/quality.py")


def bootstrap_interval(deltas: np.ndarray, seed: int = 0, level: float = 0.9) -> list[float]:
    """The `level` bootstrap interval of the mean of `deltas` (resampled with replacement)."""
    rng = np.random.default_rng(seed)
    means = deltas[rng.integers(0, len(deltas), size=(RESAMPLES, len(deltas)))].mean(axis=1)
    tail = (1 - level) / 2
    return [round(float(np.quantile(means, tail)), 3), round(float(np.quantile(means, 1 - tail)), 3)]


def both_scored(reference: dict[str, dict], candidate: dict[str, dict], metric: str) -> list[str]:
    """The tracks on which both systems have a value of `metric`."""
    return [t for t in reference if t in candidate
            and reference[t].get(metric) is not None and candidate[t].get(metric) is not None]


def paired(reference: dict[str, dict], candidate: dict[str, dict], metric: str, sign: int) -> dict:
    """Track-by-track change of `metric` (candidate minus reference) on the tracks both scored."""
    tracks = both_scored(reference, candidate, metric)
    if not tracks:
        return {"tracks": 0}
    deltas = np.array([candidate[t][metric] - reference[t][metric] for t in tracks])
    return {"tracks": len(tracks), "better": int((sign * deltas > 0).sum()),
            "mean_change": round(float(deltas.mean()), 3), "interval_90": bootstrap_interval(deltas)}


def by_voice_family(reference: dict[str, dict], candidate: dict[str, dict]) -> dict[str, float]:
    """Mean SI-SDRi change per voice family."""
    out: dict[str, list[float]] = {}
    for track in both_scored(reference, candidate, "si_sdri"):
        out.setdefault(reference[track]["voice"], []).append(candidate[track]["si_sdri"] - reference[track]["si_sdri"])
    return {family: round(float(np.mean(d)), 3) for family, d in sorted(out.items())}


def median_rule(reference: dict, candidate: dict) -> list[str]:
    """The failed conditions of the median rule (the ship rule until 2026-12-04; empty: it passes)."""
    failed = [f"{key} {candidate[key]:+.2f} < {reference[key]:+.2f}"
              for key in ("median_si_sdri", "median_si_sdri_over_voice_families") if candidate[key] < reference[key]]
    if candidate["median_leak"] > reference["median_leak"]:
        failed.append(f"median_leak {candidate['median_leak']:.2f} > {reference['median_leak']:.2f}")
    return failed + pass_through(candidate)


def pass_through(candidate: dict) -> list[str]:
    """The failed condition both rules share: a median pass-through of at least PASS_THROUGH_FLOOR."""
    if candidate["median_pass_through"] < PASS_THROUGH_FLOOR:
        return [f"median_pass_through {candidate['median_pass_through']:.1f} < {PASS_THROUGH_FLOOR}"]
    return []


def ship_rule(candidate: dict, figures: dict) -> list[str]:
    """The failed conditions of the ship rule (module docstring): paired SI-SDRi and leak, family floor, leak and
    pass-through targets, speed."""
    failed = []
    low = figures["paired"]["si_sdri"].get("interval_90", [float("-inf")])[0]
    if low <= 0:
        failed.append(f"si_sdri mean change interval starts at {low:+.2f}, not above 0")
    failed += [f"voice family {family} mean change {change:+.2f} < {FAMILY_FLOOR:+.2f}"
               for family, change in figures["si_sdri_change_by_voice_family"].items() if change < FAMILY_FLOOR]
    if candidate["median_leak"] > LEAK_CEILING:
        failed.append(f"median_leak {candidate['median_leak']:.2f} > {LEAK_CEILING:.2f}")
    louder = figures["paired"]["leak"].get("interval_90", [0.0])[0]
    if louder > 0:
        failed.append(f"leak mean change interval starts at {louder:+.2f}: clearly louder")
    speed = candidate.get("real_time_factor")
    if speed is not None and speed < SPEED_FLOOR:
        failed.append(f"real_time_factor {speed:.1f} < {SPEED_FLOOR}")
    return failed + pass_through(candidate)


def compare(systems: dict[str, dict], reference: str, candidates: list[str]) -> dict:
    """Each candidate against `reference`: medians and their changes, paired figures, the ship rule."""
    for name in [reference, *candidates]:
        if name not in systems:
            raise CompareError(f"no system {name!r} in the results; there are: {', '.join(sorted(systems))}")
    tracks = {name: per_track(systems[name], name) for name in [reference, *candidates]}
    for name, rows in tracks.items():
        check_medians(systems[name], rows, name)
    ref = systems[reference]
    out: dict = {"reference": reference, "set": SET, "reference_medians": {k: ref[k] for k in MEDIANS},
                 "candidates": {}}
    for name in candidates:
        cand = systems[name]
        figures = {"medians": {k: cand[k] for k in MEDIANS},
                   "median_change": {k: round(cand[k] - ref[k], 3) for k in MEDIANS},
                   "paired": {m: paired(tracks[reference], tracks[name], m, sign) for m, sign in PAIRED.items()},
                   "si_sdri_change_by_voice_family": by_voice_family(tracks[reference], tracks[name])}
        failed, earlier = ship_rule(cand, figures), median_rule(ref, cand)
        out["candidates"][name] = {**figures, "passes": not failed, "failed": failed,
                                   "median_rule": {"passes": not earlier, "failed": earlier}}
    return out


def summary(result: dict) -> str:
    lines = [f"against {result['reference']} ({result['set']} set)"]
    for name, c in result["candidates"].items():
        s = c["paired"]["si_sdri"]
        lines.append(f"{name}: SI-SDRi {c['medians']['median_si_sdri']:+.2f} ({c['median_change']['median_si_sdri']:+.2f}), "
                     f"better on {s.get('better')}/{s['tracks']}, mean {s.get('mean_change', 0):+.2f} "
                     f"{s.get('interval_90')}; leak {c['medians']['median_leak']:.1f}; "
                     + ("passes the ship rule" if c["passes"] else "fails the ship rule: " + "; ".join(c["failed"]))
                     + "; the earlier median rule: " + ("passes" if c["median_rule"]["passes"]
                                                        else "fails: " + "; ".join(c["median_rule"]["failed"])))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", type=Path, help="benchmarks/quality.py result files")
    parser.add_argument("--reference", required=True, help="the shipped model's system name")
    parser.add_argument("--candidates", nargs="+", required=True)
    parser.add_argument("--out", type=Path, help="write the comparison as JSON here")
    args = parser.parse_args(argv)
    try:
        result = compare(merged_systems(args.results), args.reference, args.candidates)
    except (CompareError, OSError, json.JSONDecodeError) as error:
        print(f"compare: {error}", file=sys.stderr)
        return 2
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
