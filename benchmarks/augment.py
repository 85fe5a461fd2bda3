"""Loader throughput of the training augmentation; writes benchmarks/results/augment.json.

Measures examples per second (one example = one 4 s stereo 44.1 kHz float32
segment of a voice-like harmonic tone), single thread, in this process:

- vocalsep (pedalboard, with python-stretch for the pitch shift): each
  transform of `vocalsep.data.augment` forced to fire, the
  whole voice chain with every transform firing (the worst case), and the
  voice + music chains at the probabilities of `--params` (params-real.yaml:
  the average training example). pedalboard's own PitchShift (Rubber Band)
  and time_stretch are timed beside it: the reason pitch goes to python-stretch.
- audiomentations: the closest equivalent of each transform (TimeStretch for
  the speed change; no compressor; RoomSimulator and Limiter only when their
  optional packages are installed), and that chain with every transform firing.
- torch-audiomentations: recorded as skipped with the reason when it does not
  import next to this project's torch.

Candidates outside the project's environment can be put on the path with
`--extra-path DIR` (appended, so the project's own numpy and scipy win).

Usage: python benchmarks/augment.py [--params params-real.yaml] [--seconds-per-case 1.5]
       [--extra-path DIR] [--out benchmarks/results/augment.json]
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_name] = "1"  # single thread: one DataLoader worker per core is how training uses them

import argparse
import dataclasses
import importlib.metadata
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

RATE = 44100
SECONDS = 4.0


def voice_like(seconds: float = SECONDS, rate: int = RATE) -> np.ndarray:
    """(2, samples) float32: a gliding harmonic tone with a syllable envelope, about -20 dBFS RMS."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = 180 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    tone = sum(np.sin(k * phase) / k for k in range(1, 12)) * (0.55 + 0.45 * np.sin(2 * np.pi * 3 * t))
    return np.stack([tone, 0.9 * tone]).astype(np.float32) * 0.1


def rate_of(case: Callable[[], object], budget: float) -> dict:
    """Examples per second of `case()`, called for at least `budget` seconds (and 3 times) after one warm-up."""
    case()
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < budget:
        case()
        calls += 1
    elapsed = time.perf_counter() - start
    return {"examples_per_second": round(calls / elapsed, 2), "ms_per_example": round(1000 * elapsed / calls, 2),
            "calls": calls}


def pedalboard_cases(params_path: str, audio: np.ndarray) -> dict[str, Callable[[], object]]:
    from vocalsep.config import AugmentParams, load_params
    from vocalsep.data import augment

    base = load_params(params_path).data.augment
    rng = np.random.default_rng(0)
    cases = {name: (lambda t=t: t(audio, RATE, rng, base)) for name, t in augment.VOICE_CHAIN + augment.MUSIC_CHAIN}
    cases["pitch_shift with pedalboard.PitchShift"] = lambda: augment._run([augment.pedalboard.PitchShift(3.0)],
                                                                           audio, RATE)
    cases["pitch_shift with pedalboard.time_stretch, fast"] = lambda: augment.pedalboard.time_stretch(
        audio, RATE, 1.0, 3.0, high_quality=False, preserve_formants=False)
    every = AugmentParams(**{**dataclasses.asdict(base), **{n: 1.0 for n, _ in augment.VOICE_CHAIN}})
    cases["voice chain, every transform"] = lambda: augment.augment_vocals(audio, RATE, rng, every)
    cases[f"voice + music chains at {params_path}"] = lambda: (augment.augment_vocals(audio, RATE, rng, base),
                                                              augment.augment_accompaniment(audio, RATE, rng, base))
    return cases


def audiomentations_cases(audio: np.ndarray) -> tuple[dict[str, Callable[[], object]], dict[str, str]]:
    """Closest audiomentations equivalents (p=1) and the transforms it cannot run here, with why."""
    import audiomentations as A

    transforms = {
        "pitch_shift": A.PitchShift(-4, 4, p=1.0),
        "speed (TimeStretch)": A.TimeStretch(0.9, 1.1, leave_length_unchanged=True, p=1.0),
        "phone_band": A.BandPassFilter(1000, 1100, 1.5, 1.6, 24, 24, p=1.0),
        "lowpass": A.LowPassFilter(4000, 11000, 24, 24, p=1.0),
        "eq": A.Compose([A.LowShelfFilter(p=1.0), A.PeakingFilter(p=1.0), A.HighShelfFilter(p=1.0)]),
        "saturate": A.TanhDistortion(p=1.0),
    }
    missing = {"compress": "no compressor in audiomentations"}
    for name, make in (("reverb", lambda: A.RoomSimulator(p=1.0)), ("limiter", lambda: A.Limiter(p=1.0))):
        try:
            transform = make()
            transform(audio, RATE)
            transforms[name] = transform
        except Exception as err:  # optional dependency absent: record why instead of failing the benchmark
            missing[name] = f"{type(err).__name__}: {err}"[:200]
    cases = {name: (lambda t=t: t(audio, RATE)) for name, t in transforms.items()}
    chain = A.Compose(list(transforms.values()))
    cases["voice chain, every transform"] = lambda: chain(audio, RATE)
    return cases, missing


def version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def measure(name: str, cases: dict[str, Callable[[], object]], budget: float) -> dict:
    results = {}
    for case, run in cases.items():
        results[case] = rate_of(run, budget)
        print(f"{name:22s} {case:45s} {results[case]['examples_per_second']:8.1f} ex/s", flush=True)
    return results


def torch_audiomentations_status() -> str:
    try:
        import torch_audiomentations  # noqa: F401
    except Exception as err:  # any import failure is the finding: it does not run beside this torch
        return f"skipped: does not import here ({type(err).__name__}: {str(err)[:160]})"
    return "importable but not measured (its CPU path is torch ops on whole batches; see the docstring)"


def run(args: argparse.Namespace) -> dict:
    audio = voice_like()
    libraries = {"vocalsep.data.augment": {"pedalboard": version("pedalboard"),
                                           "python-stretch": version("python-stretch"),
                                           "results": measure("vocalsep", pedalboard_cases(args.params, audio),
                                                              args.budget)}}
    try:
        cases, missing = audiomentations_cases(audio)
        libraries["audiomentations"] = {"version": version("audiomentations"), "unavailable": missing,
                                        "results": measure("audiomentations", cases, args.budget)}
    except ImportError as err:
        libraries["audiomentations"] = {"version": None, "skipped": f"not installed ({err})"}
    libraries["torch-audiomentations"] = {"version": version("torch-audiomentations"),
                                          "skipped": torch_audiomentations_status()}
    return {"what": "augmentation examples/s, one 4 s stereo 44.1 kHz float32 segment each, single thread",
            "segment_seconds": SECONDS, "sample_rate": RATE, "params": args.params, "libraries": libraries,
            "numpy": np.__version__, "python": platform.python_version(),
            "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                        "load_average": [round(x, 2) for x in os.getloadavg()]},
            "date": time.strftime("%Y-%m-%d")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params-real.yaml", help="profile whose data.augment is measured")
    parser.add_argument("--seconds-per-case", dest="budget", type=float, default=1.5)
    parser.add_argument("--extra-path", action="append", default=[], help="folder appended to sys.path")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/augment.json"))
    args = parser.parse_args(argv)
    sys.path.extend(args.extra_path)
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
