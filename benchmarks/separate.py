"""Speed and memory of the separation core; writes benchmarks/results/separate.json.

Speed: real-time factor (seconds of audio separated per wall-clock second) of
the default model (params.yaml `model`), the seed-size model (128/192/30,
on a shorter input: it is slow on CPU) and the base model's architecture
(params-real.yaml `model` with that profile's `separate` section), on CPU with
2 torch threads and on CUDA when present. Weights are random: speed does not
depend on them.

Memory: one fresh subprocess per input length (30 s, 2 min, 10 min) runs the
default model on CPU and reports its RSS high-water mark (VmHWM). The
song's own arrays (mixture in, vocals out, the per-sample weight sum) grow
with length by design; peak minus those arrays is what chunking bounds.

Usage: python benchmarks/separate.py [--params params.yaml] [--out benchmarks/results/separate.json]
       [--memory-seconds 30 120 600] [--speed-seconds 20] [--seed-seconds 0.5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from torch import nn

from vocalsep.config import ModelParams, load_params
from vocalsep.model import build_model, model_kwargs
from vocalsep.separate import separate_with_params

SEED_MODEL = ModelParams(name="VocNet", filters=128, skip_filters=192, layers=30, layers_per_stack=10)
MEMORY_SECONDS = [30.0, 120.0, 600.0]
CUDA_SECONDS = 60.0
THREADS = 2


def build(model: ModelParams) -> nn.Module:
    torch.manual_seed(0)
    return build_model(model.name, model_kwargs(model.name, asdict(model))).eval()


def noise(seconds: float, rate: int) -> np.ndarray:
    """`(2, samples)` float32 noise, made without a float64 temporary."""
    return np.random.default_rng(0).standard_normal((2, int(seconds * rate)), dtype=np.float32) * 0.1


def real_time_factor(model: nn.Module, separate_params, rate: int, seconds: float, device: str, repeats: int) -> dict:
    """Best of `repeats` timed runs after a short warm-up (first calls pay for allocation and kernel choice)."""
    params = separate_params.__class__(**{**asdict(separate_params), "device": device})
    mixture = noise(seconds, rate)
    separate_with_params(model, mixture[:, : rate // 10], rate, params)
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        separate_with_params(model, mixture, rate, params)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return {"device": device, "input_seconds": seconds, "wall_seconds": round(min(times), 3),
            "real_time_factor": round(seconds / min(times), 2)}


def peak_rss() -> int:
    """This process's RSS high-water mark in bytes (VmHWM).

    Not getrusage's ru_maxrss: Linux carries that across fork + exec, so a child
    would report the parent's footprint.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def memory_probe(params_path: str, seconds: float) -> dict:
    """Run in a fresh process: peak RSS of separating `seconds` of noise with the default model on CPU."""
    torch.set_num_threads(THREADS)
    params = load_params(params_path)
    rate = params.audio.sample_rate
    model = build(params.model)
    cpu = params.separate.__class__(**{**asdict(params.separate), "device": "cpu"})
    before = peak_rss()
    mixture = noise(seconds, rate)
    vocals = separate_with_params(model, mixture, rate, cpu)
    peak = peak_rss()
    arrays = mixture.nbytes + vocals.nbytes + vocals.nbytes // 2  # + the (samples,) weight sum
    mib = 2**20
    return {"input_seconds": seconds, "peak_rss_mib": round(peak / mib, 1),
            "song_arrays_mib": round(arrays / mib, 1), "peak_minus_song_arrays_mib": round((peak - arrays) / mib, 1),
            "rss_before_song_mib": round(before / mib, 1)}


def memory_table(params_path: str, lengths: list[float]) -> list[dict]:
    rows = []
    for seconds in lengths:
        out = subprocess.run([sys.executable, __file__, "--params", params_path, "--memory-probe", str(seconds)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"memory {seconds:>5.0f} s: {rows[-1]}", file=sys.stderr)
    return rows


def speed_table(params, default_seconds: float, seed_seconds: float, real=None) -> list[dict]:
    """Real-time factors of the default, seed-size and (with `real`, the params-real.yaml profile's) base model."""
    rate = params.audio.sample_rate
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    cases = [("default", params.model, params.separate, default_seconds, 2),
             ("seed", SEED_MODEL, params.separate, seed_seconds, 1)]
    if real is not None:
        cases.append(("base (params-real.yaml)", real.model, real.separate, max(default_seconds, 60.0), 2))
    rows = []
    for name, model_params, separate_params, seconds, repeats in cases:
        model = build(model_params)
        for device in devices:
            timing = real_time_factor(model, separate_params, rate, seconds if device == "cpu" else CUDA_SECONDS,
                                      device, repeats)
            row = {"model": name, **{k: v for k, v in asdict(model_params).items() if k != "name"}, **timing}
            rows.append(row)
            print(f"speed: {row}", file=sys.stderr)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/separate.json"))
    parser.add_argument("--memory-seconds", type=float, nargs="+", default=MEMORY_SECONDS,
                        help="input lengths of the memory runs (default: 30 120 600)")
    parser.add_argument("--speed-seconds", type=float, default=20.0, help="CPU input length, default model")
    parser.add_argument("--seed-seconds", type=float, default=0.5, help="CPU input length, seed-size model")
    parser.add_argument("--real-params", default="params-real.yaml",
                        help="profile of the base model to time as well ('' to skip)")
    parser.add_argument("--memory-probe", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe is not None:
        print(json.dumps(memory_probe(args.params, args.memory_probe)))
        return 0
    torch.set_num_threads(THREADS)
    params = load_params(args.params)
    result = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "torch_threads": THREADS, "load_average_1min": round(os.getloadavg()[0], 2),
                    "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
        "separate": asdict(params.separate), "sample_rate": params.audio.sample_rate,
        "speed": speed_table(params, args.speed_seconds, args.seed_seconds,
                             load_params(args.real_params) if args.real_params else None),
        "memory_cpu_default_model": memory_table(args.params, args.memory_seconds),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
