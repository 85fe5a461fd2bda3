"""Training throughput; writes benchmarks/results/train_throughput.json.

For the default model (params.yaml `model`, `data.segment_seconds`,
`train.batch_size`) and the seed-size model (128/192/30, on a short segment
and small batch on CPU: it is slow there), times full optimizer steps (the
train stage's own `train_step`: forward, L1 loss, backward, clipping, Adam)
on random audio, on CPU with 1 and 2 intra-op threads (on a shared, loaded machine 2 threads can be
several times slower than 1: OpenMP threads wait on each other), and on CUDA
(bf16 autocast) when present. Reports
training examples/s, seconds of audio/s, and achieved TFLOP/s against the
analytic cost: `VocNet.macs_per_sample()` (HybridVocNet: `macs_per_second`) x 2 FLOPs per MAC x 3 (forward +
backward) per stereo sample of audio.

Usage: python benchmarks/train_throughput.py [--params params.yaml] [--steps 3]
       [--out benchmarks/results/train_throughput.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import torch

from vocalsep.config import ModelParams, Params, load_params
from vocalsep.model import build_model, model_kwargs
from vocalsep.training.loop import make_optimizer, make_scheduler, train_step

SEED_MODEL = ModelParams(name="VocNet", filters=128, skip_filters=192, layers=30, layers_per_stack=10)
CPU_THREADS = (1, 2)


def _cases(params: Params, cuda: bool) -> list[dict]:
    """(label, model params, segment seconds, batch, device) for each measurement."""
    default, segment, batch = params.model, params.data.segment_seconds, params.train.batch_size
    cases = [
        {"model": name, "arch": arch, "segment_seconds": seconds, "batch": size, "device": "cpu", "threads": threads}
        for name, arch, seconds, size in (("default", default, segment, batch), ("seed", SEED_MODEL, 0.1, 2))
        for threads in CPU_THREADS
    ]
    if cuda:
        cases += [
            {"model": "default", "arch": default, "segment_seconds": segment, "batch": batch, "device": "cuda",
             "threads": 1},
            {"model": "seed", "arch": SEED_MODEL, "segment_seconds": 1.0, "batch": 16, "device": "cuda",
             "threads": 1},
        ]
    return cases


def measure(case: dict, params: Params, steps: int) -> dict:
    """Best seconds per step of `steps` timed steps after one warm-up step."""
    device = torch.device(case["device"])
    torch.set_num_threads(case["threads"])
    torch.manual_seed(0)
    arch = case["arch"]
    model = build_model(arch.name, model_kwargs(arch.name, dataclasses.asdict(arch))).to(device).train()
    train = dataclasses.replace(params.train, device=case["device"], amp=device.type == "cuda")
    optimizer = make_optimizer(model, train)
    scheduler = make_scheduler(optimizer, "constant", steps + 1)
    samples = int(case["segment_seconds"] * params.audio.sample_rate)
    mixture = torch.randn(case["batch"], 2, samples) * 0.1
    vocals = torch.randn(case["batch"], 2, samples) * 0.1
    times = []
    for _ in range(steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        train_step(model, optimizer, scheduler, mixture, vocals, train, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    best = min(times[1:])
    examples = case["batch"] / best
    rate = params.audio.sample_rate
    macs_per_second = (model.macs_per_sample() * rate if hasattr(model, "macs_per_sample")
                       else model.macs_per_second(rate))
    flops_per_sample = 2 * 3 * macs_per_second / rate
    return {
        "model": case["model"], "device": case["device"], "threads": case["threads"],
        "kwargs": model_kwargs(arch.name, dataclasses.asdict(arch)),
        "segment_seconds": case["segment_seconds"], "batch": case["batch"],
        "seconds_per_step": round(best, 5),
        "examples_per_second": round(examples, 3),
        "audio_seconds_per_second": round(examples * case["segment_seconds"], 3),
        "train_gflop_per_audio_second": round(flops_per_sample * params.audio.sample_rate / 1e9, 3),
        "achieved_tflops": round(flops_per_sample * samples * examples / 1e12, 5),
        "amp_bf16": train.amp,
    }


def machine() -> dict:
    info = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
            "load_average_1min": round(os.getloadavg()[0], 2)}
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/train_throughput.json")
    args = parser.parse_args()
    params = load_params(args.params)
    results = []
    for case in _cases(params, torch.cuda.is_available()):
        results.append(measure(case, params, args.steps))
        print(json.dumps(results[-1]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
