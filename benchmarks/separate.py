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

Streaming (`--only-stream`, merged into the same JSON): peak RSS of the
streaming file-to-file path (`vocalsep separate`) for 1, 10 and 60 minute
files with the shipped base model; `vocalsep stream --realtime` over 60 s
with the low-latency profile (latency, per-block compute p50/p99, underruns);
the low-latency model's offline real-time factor.

Usage: python benchmarks/separate.py [--params params.yaml] [--out benchmarks/results/separate.json]
       [--memory-seconds 30 120 600] [--speed-seconds 20] [--seed-seconds 0.5]
       python benchmarks/separate.py --only-stream [--stream-minutes 1 10 60] [--live-checkpoint PATH]
       python benchmarks/separate.py --only-live --live-checkpoint pretrained-live
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
import dataclasses
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


STREAM_MINUTES = [1.0, 10.0, 60.0]
STREAM_PROBE = """
import sys, torch
from pathlib import Path
from vocalsep.config import load_params
from vocalsep.loading import load_separator
from vocalsep.streaming import stream_file
torch.set_num_threads(int(sys.argv[3]))
params = load_params(sys.argv[2]).separate
model, rate = load_separator("pretrained", "cpu")
path = Path(sys.argv[1])
stream_file(model, rate, params, path, path.with_suffix(".vocals.wav"), path.with_suffix(".accompaniment.wav"))
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print(int(line.split()[1]) // 1024)
"""


def write_song(path: Path, minutes: float, rate: int = 44100) -> None:
    """A stereo 16-bit FLAC of `minutes` of quiet noise, written 10 s at a time (never whole in memory)."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", rate, 2, subtype="PCM_16") as out:
        for _ in range(int(minutes * 6)):
            out.write(0.05 * rng.standard_normal((rate * 10, 2), dtype=np.float32))


def streaming_memory(params_path: str, minutes: list[float], folder: Path) -> list[dict]:
    """Peak RSS of the streaming file-to-file path (what `vocalsep separate` runs) with the shipped base
    model, one fresh process per song length; the song as float32 would be `song_mib`."""
    rows = []
    for length in minutes:
        song = folder / f"song_{length:g}min.flac"
        write_song(song, length)
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", STREAM_PROBE, str(song), params_path, str(THREADS)],
                             capture_output=True, text=True, check=True)
        wall = time.perf_counter() - start
        rows.append({"input_minutes": length, "peak_rss_mib": int(out.stdout.split()[-1]),
                     "song_float32_mib": round(length * 60 * 44100 * 2 * 4 / 2**20, 1),
                     "wall_seconds": round(wall, 1), "real_time_factor": round(length * 60 / wall, 1)})
        print(f"streaming memory: {rows[-1]}", file=sys.stderr)
        for produced in folder.glob(f"song_{length:g}min*"):
            produced.unlink()
    return rows


def live_stream(live_params: str, seconds: float, folder: Path, checkpoint: str | None) -> dict:
    """`vocalsep stream --realtime` on `seconds` of 44.1 kHz stereo with the low-latency profile's model
    (random weights unless `checkpoint`: speed does not depend on them)."""
    import soundfile as sf

    from vocalsep.model import save_checkpoint

    params = load_params(live_params)
    if checkpoint is None:
        model = build(params.model)
        checkpoint = str(folder / "live.pt")
        save_checkpoint(checkpoint, model, model_kwargs(params.model.name, asdict(params.model)),
                        params={"audio": {"sample_rate": params.audio.sample_rate}})
    wav = folder / "live.wav"
    sf.write(wav, 0.05 * np.random.default_rng(0).standard_normal((int(seconds * 44100), 2)), 44100,
             subtype="PCM_16")
    report = folder / "live.json"
    subprocess.run([sys.executable, "-m", "vocalsep.cli.main", "stream", str(wav), "--format", "wav", "--realtime",
                    "-o", str(folder / "live_vocals.wav"), "--model", checkpoint, "--params", live_params,
                    "--report", str(report)], check=True, capture_output=True)
    result = {"profile": live_params, "model": asdict(params.model), **json.loads(report.read_text())}
    print(f"live stream: {result}", file=sys.stderr)
    return result


def onnx_against_eager(params, seconds: float, folder: Path) -> dict:
    """Real-time factor of the default model through eager torch and through ONNX Runtime (CPU, 2 threads),
    the latter through `vocalsep.runtime.for_separation`: the path the CLI, evaluate and serving take."""
    from vocalsep.runtime import for_separation

    model = build(params.model)
    rate = params.audio.sample_rate
    eager = real_time_factor(model, params.separate, rate, seconds, "cpu", 2)
    torch.set_num_threads(THREADS)
    os.environ["VOCALSEP_CACHE"] = str(folder)  # a fresh graph cache: the export is part of the first call
    runtime = dataclasses.replace(params.separate, device="cpu", runtime="onnxruntime")
    ort = real_time_factor(for_separation(model, runtime), params.separate, rate, seconds, "cpu", 2)
    faster = "onnxruntime" if ort["real_time_factor"] > eager["real_time_factor"] else "torch"
    row = {"model": asdict(params.model), "torch_eager": eager, "onnxruntime": ort, "faster": faster}
    print(f"onnx vs eager: {row}", file=sys.stderr)
    return row


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
    parser.add_argument("--only-stream", action="store_true",
                        help="run only the streaming rows (memory of 1/10/60 min files, live stream) and merge "
                             "them into --out")
    parser.add_argument("--stream-minutes", type=float, nargs="+", default=STREAM_MINUTES)
    parser.add_argument("--live-params", default="params-live.yaml")
    parser.add_argument("--live-seconds", type=float, default=60.0)
    parser.add_argument("--live-checkpoint", help="a trained low-latency checkpoint or model spec such as "
                                                  "pretrained-live (default: random weights)")
    parser.add_argument("--only-live", action="store_true",
                        help="run only the live stream row (with --live-checkpoint) and merge it into --out")
    args = parser.parse_args()
    if args.memory_probe is not None:
        print(json.dumps(memory_probe(args.params, args.memory_probe)))
        return 0
    torch.set_num_threads(THREADS)
    params = load_params(args.params)
    if args.only_live:
        import tempfile

        result = json.loads(args.out.read_text()) if args.out.exists() else {}
        with tempfile.TemporaryDirectory(prefix="vocalsep-live-bench-") as tmp:
            result["live_stream"] = live_stream(args.live_params, args.live_seconds, Path(tmp), args.live_checkpoint)
        result["live_stream"]["model_spec"] = args.live_checkpoint or "random weights"
        result["live_stream"]["load_average_1min"] = round(os.getloadavg()[0], 2)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        return 0
    if args.only_stream:
        import tempfile

        result = json.loads(args.out.read_text()) if args.out.exists() else {}
        with tempfile.TemporaryDirectory(prefix="vocalsep-stream-bench-") as tmp:
            result["streaming_memory_base_model"] = streaming_memory(args.real_params or args.params,
                                                                     args.stream_minutes, Path(tmp))
            result["live_stream"] = live_stream(args.live_params, args.live_seconds, Path(tmp), args.live_checkpoint)
            live = load_params(args.live_params)
            result["speed_low_latency"] = real_time_factor(build(live.model), live.separate, 44100, 20.0, "cpu", 2)
            result["onnxruntime_vs_torch_default_model"] = onnx_against_eager(params, args.speed_seconds, Path(tmp))
        result["stream_machine"] = {"cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2)}
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
        return 0
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
