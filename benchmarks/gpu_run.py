"""One lease of the GPU machine: separation speed on CUDA, then models trained side by side.

Run there from the repository root, after `benchmarks/gpu_pack.py unpack`
(docs/training.md, "A GPU run from a pack"):

1. `bench`: the separation core (`separate_with_params`, fp32, what the CLI runs) with the
   shipped base model on a 10 minute input at several chunk batch sizes, and the bare
   forward pass in fp32 and bf16 at a large batch (the ceiling); the seed-size VocNet too.
2. `train`: one DataLoader of on-the-fly mixtures (the train stage's `MixtureDataset`,
   `params-real.yaml`'s data and augmentation) feeds every model in `MODELS` the same
   batches (`train_step`, bf16 autocast, the stage's loss), for a wall-clock budget with
   a warm-up and a cosine decay over that time. Each model's weights go to
   `<out>/<name>.safetensors` (+ kwargs in gpu.json) every `--save-every` seconds, so a
   run cut short still returns what it learned.

Usage: python benchmarks/gpu_run.py --index /tmp/gpuwork/index --out $OUT [--train-seconds 420]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader

from vocalsep.base_model.weights import load_pretrained
from vocalsep.config import DataParams, SeparateParams, load_params, params_to_dict
from vocalsep.data import MixtureDataset, read_index, validation_set
from vocalsep.model import build_model, model_kwargs
from vocalsep.separate import separate_with_params
from vocalsep.training.loop import train_step, validate

RATE = 44100
# name: (model section overrides of params-real.yaml, start from the shipped base?, peak learning rate)
MODELS: dict[str, tuple[dict, bool, float]] = {
    "base_ft": ({}, True, 3e-4),
    "hybrid128": ({}, False, 1e-3),
    "hybrid192": ({"filters": 192, "skip_filters": 192}, False, 1e-3),
    "bandsplit48": ({"name": "BandSplitVocNet"}, False, 1e-3),
}
HALF = {"hybrid192"}  # saved as fp16: half as many files to bring back
PART_BYTES = 15 * 2**20  # a file back from a lease may have 16 MiB: larger states are saved in parts
SEED_VOCNET = {"name": "VocNet", "filters": 128, "skip_filters": 192, "layers": 30, "layers_per_stack": 10}


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, repeats: int = 3, warm: bool = True) -> float:
    """Best wall seconds of `repeats` calls (after one warm-up if `warm`), with the GPU synchronised."""
    if warm:
        fn()
    best = math.inf
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def bench_core(model: torch.nn.Module, seconds: float, batches: list[int], device: str) -> list[dict]:
    """Real-time factor of the separation core on CUDA at each chunk batch size (10 s chunks)."""
    mixture = np.random.default_rng(0).standard_normal((2, int(seconds * RATE)), dtype=np.float32) * 0.1
    rows = []
    for batch in batches:
        params = SeparateParams(chunk_seconds=10.0, overlap_seconds=0.25, batch_size=batch, device=device)
        separate_with_params(model, mixture[:, :RATE], RATE, params)  # kernels chosen, memory taken
        wall = timed(lambda: separate_with_params(model, mixture, RATE, params), repeats=2, warm=False)
        rows.append({"path": "separate_with_params (fp32)", "input_seconds": seconds, "batch": batch,
                     "wall_seconds": round(wall, 3), "real_time_factor": round(seconds / wall, 1)})
    return rows


@torch.inference_mode()
def bench_forward(model: torch.nn.Module, batch: int, seconds: float, device: str) -> list[dict]:
    """The bare forward pass on a `(batch, 2, seconds)` tensor already on the GPU: fp32 and bf16 autocast."""
    model = model.to(device).eval()
    x = torch.randn(batch, 2, int(seconds * RATE), device=device) * 0.1
    rows = []
    for dtype in ("fp32", "bf16"):
        def run() -> None:
            with torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bf16"):
                model(x)
        wall = timed(run)
        rows.append({"path": f"forward ({dtype})", "batch": batch, "chunk_seconds": seconds,
                     "wall_seconds": round(wall, 4), "real_time_factor": round(batch * seconds / wall, 1)})
    return rows


def bench(params_path: str, seconds: float, device: str, chunk: float = 10.0) -> dict:
    """The core on a `seconds` input, and forward passes of 64 (base) and 8 (seed VocNet) chunks of `chunk` s."""
    params = load_params(params_path)
    base, _ = load_pretrained()
    seed = build_model("VocNet", model_kwargs("VocNet", {**params_to_dict(params)["model"], **SEED_VOCNET}))
    result = {"device": torch.cuda.get_device_name(0) if device == "cuda" else device, "torch": torch.__version__,
              "base": bench_core(base, seconds, [4, 16, 64], device) + bench_forward(base, 64, chunk, device),
              "seed_vocnet": bench_forward(seed, 8, chunk, device)}
    sync()
    if device == "cuda":
        result["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return result


def lr_at(step: int, fraction: float, peak: float, warmup: int = 200) -> float:
    """Linear warm-up over `warmup` steps, then cosine from `peak` to 0 over the time budget."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * min(fraction, 1.0)))


class NoSchedule:
    """`train_step` steps a scheduler; here the rate follows wall-clock time (`lr_at`) instead."""

    def step(self) -> None:
        pass


def make_models(params_path: str, device: torch.device, only: list[str] | None = None,
                init: dict[str, str] | None = None) -> dict[str, dict]:
    """The models of `MODELS` named in `only` (all by default). `init` maps a name to a `.safetensors` file a
    former lease returned (fp16 is widened), so a model's training continues across leases."""
    section = params_to_dict(load_params(params_path))["model"]
    init = init or {}
    unknown = sorted(set(only or []) - set(MODELS)) + sorted(set(init) - set(only or MODELS))
    if unknown:
        raise SystemExit(f"--models/--init: unknown or unselected model(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(MODELS)}")
    models = {}
    for name in only or list(MODELS):
        overrides, pretrained, peak = MODELS[name]
        arch = overrides.get("name", section["name"])
        kwargs = model_kwargs(arch, {**section, **overrides})
        model = build_model(arch, kwargs)
        if name in init:
            model.load_state_dict({k: v.float() if v.is_floating_point() else v
                                   for k, v in load_parts(Path(init[name])).items()})
        elif pretrained:
            model.load_state_dict(load_pretrained()[0].state_dict())
        model = model.to(device).train()
        models[name] = {"class": arch, "kwargs": kwargs, "model": model, "peak": peak, "pretrained": pretrained,
                        "init": init.get(name), "optimizer": torch.optim.Adam(model.parameters(), lr=peak),
                        "parameters": sum(p.numel() for p in model.parameters()), "losses": []}
    return models


def save(models: dict[str, dict], out: Path, report: dict) -> None:
    for name, entry in models.items():
        state = {k: v.detach().cpu().contiguous() for k, v in entry["model"].state_dict().items()}
        if name in HALF:
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        save_parts(state, out, name)
    (out / "gpu.json").write_text(json.dumps(report, indent=1))


def save_parts(state: dict[str, torch.Tensor], out: Path, name: str) -> list[Path]:
    """`state` as `out/<name>.safetensors`, or, when it is larger than `PART_BYTES`, as `<name>.part0.safetensors`,
    `<name>.part1.safetensors`... each under it (the shipped 256-filter, 18-block model is 42 MB in fp32)."""
    parts: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, value in state.items():
        nbytes = value.numel() * value.element_size()
        if parts[-1] and size + nbytes > PART_BYTES:
            parts.append({})
            size = 0
        parts[-1][key] = value
        size += nbytes
    files = [out / f"{name}.safetensors"] if len(parts) == 1 else \
        [out / f"{name}.part{i}.safetensors" for i in range(len(parts))]
    for part, file in zip(parts, files):
        save_file(part, str(file))
    return files


def load_parts(path: Path) -> dict[str, torch.Tensor]:
    """The state `save_parts` wrote as `path` (`<name>.safetensors`), or in its parts beside it."""
    if path.is_file():
        return load_file(str(path))
    stem = path.name.removesuffix(".safetensors")
    parts = sorted(path.parent.glob(f"{stem}.part*.safetensors"), key=lambda p: int(p.name.split(".part")[1].split(".")[0]))
    if not parts:
        raise SystemExit(f"{path}: no such file, nor its parts {stem}.part0.safetensors...; "
                         "give the .safetensors a lease returned (carried in .pack)")
    state: dict[str, torch.Tensor] = {}
    for part in parts:
        state.update(load_file(str(part)))
    return state


def loader(index: Path, data: DataParams, batch: int, workers: int) -> tuple[DataLoader, tuple]:
    train = MixtureDataset(read_index(index / "train.parquet"), data, RATE, examples=10_000_000, seed=data.seed)
    val = validation_set(read_index(index / "val.parquet"), data, RATE)
    return DataLoader(train, batch_size=batch, num_workers=workers, pin_memory=torch.cuda.is_available(), persistent_workers=True,
                      prefetch_factor=4, worker_init_fn=lambda _: torch.set_num_threads(1)), val


def run_training(args: argparse.Namespace, report: dict) -> None:
    params = load_params(args.params)
    train = dataclasses.replace(params.train, device=args.device, amp=True)
    device = torch.device(args.device)
    batches, val = loader(Path(args.index), params.data, args.batch, args.workers)
    models = make_models(args.params, device, args.models, dict(item.split("=", 1) for item in args.init))
    budget = args.train_seconds if args.end_at is None else args.end_at - time.time()
    log = report["train"] = {"batch": args.batch, "workers": args.workers, "train_seconds": round(budget, 1),
                             "pack": pack_of(Path(args.index)),
                             "models": {n: {k: v for k, v in e.items() if k in ("class", "kwargs", "peak",
                                        "pretrained", "init", "parameters", "losses")} for n, e in models.items()},
                             "val": []}
    started = last_save = time.perf_counter()
    step, wait = 0, 0.0
    fetch = time.perf_counter()
    for mixture, vocals in batches:
        wait += time.perf_counter() - fetch
        elapsed = time.perf_counter() - started
        mixture, vocals = mixture.to(device, non_blocking=True), vocals.to(device, non_blocking=True)
        for name, entry in models.items():
            for group in entry["optimizer"].param_groups:
                group["lr"] = lr_at(step, elapsed / budget, entry["peak"])
            tick = time.perf_counter()
            loss = train_step(entry["model"], entry["optimizer"], NoSchedule(), mixture, vocals, train, device)
            entry["seconds"] = entry.get("seconds", 0.0) + time.perf_counter() - tick  # the loss read syncs
            log["models"][name]["step_seconds"] = round(entry["seconds"] / (step + 1), 4)
            if step % 50 == 0:
                log["models"][name]["losses"].append([step, round(loss, 5)])
        step += 1
        log.update(steps=step, seconds=round(elapsed, 1), loader_wait_seconds=round(wait, 1),
                   examples=step * args.batch)
        if time.perf_counter() - last_save > args.save_every or elapsed > budget:
            log["val"].append(score(models, val, step, elapsed, device))
            save(models, Path(args.out), report)
            print(json.dumps(log["val"][-1]), flush=True)
            last_save = time.perf_counter()
        if elapsed > budget:
            break
        fetch = time.perf_counter()


def pack_of(index: Path) -> dict:
    """The pack the index was decoded from (gpu_pack.py unpack's pack.json), or {} for an index made otherwise."""
    path = index / "pack.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def trained_on(report: dict) -> str:
    """Where the returned weights' examples came from, for the checkpoints' provenance."""
    pack = report.get("pack")
    if pack is None:  # gpu.json of a lease before pack.json existed
        return "benchmarks/gpu_pack.py pack (Opus, bitrate not recorded)"
    if not pack:
        return "an index not made by benchmarks/gpu_pack.py"
    return f"benchmarks/gpu_pack.py pack (Opus {pack['bitrate'].removesuffix('k')} kb/s)"


def score(models: dict[str, dict], val: tuple, step: int, elapsed: float, device: torch.device) -> dict:
    row: dict = {"step": step, "seconds": round(elapsed, 1)}
    for name, entry in models.items():
        row[name] = round(validate(entry["model"], *val, 16, device, True)["si_sdr"], 3)
    return row


def to_checkpoints(folder: Path, params_path: str, dest: Path) -> list[Path]:
    """The returned `<name>.safetensors` + gpu.json as vocalsep checkpoints `dest/<name>.pt` (fp32), with
    the params they trained under, for `benchmarks/quality.py --model` and `vocalsep publish-base`."""
    from vocalsep.model.checkpoint import save_checkpoint

    report = json.loads((folder / "gpu.json").read_text())["train"]
    trained = params_to_dict(load_params(params_path))
    written = []
    for name, entry in report["models"].items():
        model = build_model(entry["class"], entry["kwargs"])
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in load_parts(folder / f"{name}.safetensors").items()})
        params = {**trained, "model": {**trained["model"], **MODELS[name][0]},
                  "train": {**trained["train"], "batch_size": report["batch"], "lr": entry["peak"], "device": "cuda"}}
        written.append(dest / f"{name}.pt")
        save_checkpoint(written[-1], model, entry["kwargs"], params=params, step=report["steps"], epoch=0,
                        examples=report["examples"], trained_on=trained_on(report))
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", help="the unpacked pack's index folder")
    parser.add_argument("--to-checkpoints", nargs=2, metavar=("RETURNED", "DEST"),
                        help="here, after the lease: turn the returned files into checkpoints and stop")
    parser.add_argument("--params", default="params-real.yaml")
    parser.add_argument("--out", default=os.environ.get("OUT", "gpu-out"))
    parser.add_argument("--train-seconds", type=float, default=420.0)
    parser.add_argument("--end-at", type=float, default=None,
                        help="unix time at which training stops (overrides --train-seconds): a lease's deadline")
    parser.add_argument("--save-every", type=float, default=90.0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=14)
    parser.add_argument("--bench-seconds", type=float, default=600.0, help="input length for the core benchmark")
    parser.add_argument("--bench-chunk", type=float, default=10.0, help="chunk length of the forward benchmark")
    parser.add_argument("--skip-bench", action="store_true")
    parser.add_argument("--device", default="cuda", help="cpu: a local dry run of the training part")
    parser.add_argument("--models", nargs="+", default=None, help=f"which of {', '.join(MODELS)} to train (all)")
    parser.add_argument("--init", nargs="+", default=[], metavar="NAME=FILE",
                        help="start NAME from FILE, a .safetensors an earlier lease returned (carry it in .pack)")
    args = parser.parse_args()
    if args.to_checkpoints:
        print(to_checkpoints(Path(args.to_checkpoints[0]), args.params, Path(args.to_checkpoints[1])))
        return
    Path(args.out).mkdir(parents=True, exist_ok=True)
    torch.backends.cudnn.benchmark = True
    report: dict = {}
    if not args.skip_bench:
        report["bench"] = bench(args.params, args.bench_seconds, args.device, args.bench_chunk)
        print(json.dumps(report["bench"]), flush=True)
        (Path(args.out) / "gpu.json").write_text(json.dumps(report, indent=1))
    run_training(args, report)


if __name__ == "__main__":
    main()
