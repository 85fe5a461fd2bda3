"""Peers side by side: our default model, the seed's VocNet, Demucs v4 and Demucs v2 trained alike; writes peers.json.

Each system trains from scratch on the same real training corpus (the index
under `--root`, built by `params-real.yaml`'s stages) with `budget.py`'s loop:
the train stage's on-the-fly mixtures (same 4 s segments, gains, channel
swap and polarity flips), batch 8, Adam at 1e-3 with warm-up and a cosine
schedule fitted to the budget, the `snr` loss and gradient clipping, for the
same budget of training CPU time of one process on one torch thread
(`--cpu-minutes`, 20 by default; validation is not counted). CPU time, not
wall time, so that a busy machine slows every system the same way; the
wall time of each is recorded beside it.

Systems (`PEERS`):
- `vocalsep`: the project's default model, HybridVocNet, exactly as
  params-real.yaml sets it (the shipped base model's architecture);
- `vocnet`: the seed's VocNet at the demo profile's size (16/24/10, kernel 2):
  at the seed's own size (128/192/30) one 8 x 4 s step costs about 3 CPU
  minutes, so 20 minutes would reach about 7 steps;
- `htdemucs`: Demucs v4, `demucs.htdemucs.HTDemucs` with one source
  (vocals), channels 16 and 2 transformer layers (1.8 M parameters; the
  published 48/5 size costs about 5x more per step);
- `demucs_v2`: `demucs.demucs.Demucs` (the waveform U-Net of v2/v3) with one
  source, channels 16, depth 5 (2.0 M parameters).
The Demucs classes come from the `demucs` package (`pip install
vocalsep[bench]`), used as they are behind a thin wrapper (`DemucsPeer`)
that keeps the one source; nothing of theirs is copied here.

Scoring: the quality benchmark's own mixtures and metrics
(`benchmarks/quality.py`: 24 x 20 s real mixtures from the held-apart
evaluation packages, BSSEval v4 SDR, SI-SDR, SI-SDRi) for all four beside
the `mixture`, `silence` and `irm` oracle rows, through the project's one
separation core on 2 torch threads. Our models use params-real.yaml's
`separate` settings (10 s chunks plus their receptive context); each Demucs
sees windows of its training length, as Demucs' own `apply_model` does (3 s
chunks plus 0.5 s of context each side, 0.25 s cross-fade).
`real_time_factor` is audio seconds per wall second of that separation
(CPU, 2 threads) and `real_time_factor_cuda` the same on a GPU when one is
present (null otherwise).

Everything lands in one JSON file from one run. A finished system's training
is reused when `data/peers/<name>/summary.json` exists with the same budget,
so an interrupted run resumes at the next system (`--retrain` starts over).

Usage: python benchmarks/peers.py --root /path/with/data/index [--cpu-minutes 20]
       [--only NAME ...] [--params params-real.yaml] [--out benchmarks/results/peers.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

import budget  # noqa: E402  (benchmarks/budget.py: the budgeted training loop)
import quality  # noqa: E402  (benchmarks/quality.py: the real mixtures and their scoring)
from vocalsep.config import Params, load_params  # noqa: E402
from vocalsep.contracts import sha256_file  # noqa: E402
from vocalsep.errors import VocalsepError  # noqa: E402
from vocalsep.model.checkpoint import load_checkpoint  # noqa: E402
from vocalsep.loading import model_from_checkpoint  # noqa: E402

log = logging.getLogger("peers")

CONTEXT_SECONDS = 0.5  # each Demucs window reads this much audio either side of the chunk it writes
DEMUCS_CHUNK_SECONDS = 3.0  # + 2 x context = 4 s windows: the training segment, as apply_model uses
VALIDATE_EXAMPLES = 16  # the fixed val mixtures scored at the end of training (best.pt's val SI-SDR)


@dataclass(frozen=True)
class Peer:
    model: str  # the class that trains
    note: str
    overrides: list[str] = field(default_factory=list)  # budget.py --set items on params-real.yaml
    demucs: tuple[str, dict[str, Any]] | None = None  # (DemucsPeer kind, size kwargs)


PEERS: dict[str, Peer] = {
    "vocalsep": Peer("HybridVocNet", "the project's default model as params-real.yaml sets it (128/12, STFT 2048/512)"),
    "vocnet": Peer("VocNet", "the seed's VocNet at the demo size 16/24/10, kernel 2 (seed size: ~7 steps in 20 min)",
                   ["model.name=VocNet", "model.filters=16", "model.skip_filters=24", "model.layers=10",
                    "model.layers_per_stack=10", "model.kernel_size=2"]),
    "htdemucs": Peer("HTDemucs", "Demucs v4 (demucs.htdemucs.HTDemucs), vocals only, channels 16, 2 transformer layers",
                     demucs=("htdemucs", {"channels": 16, "t_layers": 2})),
    "demucs_v2": Peer("Demucs", "Demucs v2 (demucs.demucs.Demucs, waveform U-Net), vocals only, channels 16, depth 5",
                      demucs=("demucs", {"channels": 16, "depth": 5})),
}


class DemucsPeer(nn.Module):
    """A `demucs` package model with one source (vocals) as a `(batch, 2, n) -> (batch, 2, n)` separator."""

    def __init__(self, kind: str, segment: float, sample_rate: int, **size: Any) -> None:
        super().__init__()
        try:
            from demucs.demucs import Demucs
            from demucs.htdemucs import HTDemucs
        except ImportError:
            raise SystemExit("benchmarks/peers.py needs the demucs package: pip install 'vocalsep[bench]'") from None
        classes = {"htdemucs": HTDemucs, "demucs": Demucs}
        self.inner = classes[kind](["vocals"], audio_channels=2, samplerate=sample_rate, segment=segment, **size)
        half = round(CONTEXT_SECONDS * sample_rate)
        self.context = (half, half)  # what the separation core reads around each chunk

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        return self.inner(mixture)[:, 0]


def demucs_peer(peer: Peer, params: Params) -> tuple[nn.Module, dict[str, Any]]:
    """A fresh Demucs peer (seeded like every run) and the kwargs that rebuild it."""
    assert peer.demucs is not None
    kind, size = peer.demucs
    kwargs = {"kind": kind, "segment": params.data.segment_seconds, "sample_rate": params.audio.sample_rate, **size}
    budget.seed_everything(params.train.seed)
    return DemucsPeer(**kwargs), kwargs


def load_trained(path: Path) -> tuple[nn.Module, int]:
    """A peer's best.pt (read with weights_only: tensors and plain data), rebuilt in eval mode, and its rate."""
    ckpt = load_checkpoint(path)
    if ckpt["class"] != DemucsPeer.__name__:
        return model_from_checkpoint(ckpt)
    model = DemucsPeer(**ckpt["kwargs"])
    model.load_state_dict(ckpt["state"])
    return model.eval(), int(ckpt["kwargs"]["sample_rate"])


def train_peer(name: str, peer: Peer, args: argparse.Namespace) -> dict:
    """Train one system for the budget (or reuse a finished run of the same budget); returns its summary."""
    out = args.work / name
    done = out / "summary.json"
    if done.is_file() and not args.retrain:
        summary = json.loads(done.read_text())
        if summary.get("cpu_minutes") == args.cpu_minutes and (out / "best.pt").is_file():
            log.info("%s: reusing the finished run in %s", name, out)
            return summary
    base = load_params(args.params)
    overrides = [*peer.overrides, f"data.val_examples={VALIDATE_EXAMPLES}"]
    params = budget.apply_overrides(base, budget.parse_overrides(overrides))
    torch.set_num_threads(1)
    started = time.perf_counter()
    made = demucs_peer(peer, params) if peer.demucs else None
    run = budget.build_run(name, params, args.root, params.data.segment_seconds, args.cpu_minutes, out, peer=made)
    log.info("%s: %s, %d parameters, %s CPU min", name, type(run.model).__name__,
             sum(p.numel() for p in run.model.parameters()), args.cpu_minutes)
    budget.train(run, validate_every=float("inf"))  # validated once, at the end: the budget is for training
    budget_args = argparse.Namespace(cpu_minutes=args.cpu_minutes, val_seconds=params.data.segment_seconds,
                                     val_batch=1, validate_every=None, threads=1, params=args.params, root=args.root)
    summary = budget.summary(run, budget_args, overrides, time.perf_counter() - started)
    done.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def separate_settings(params: Params, peer: Peer) -> Params:
    """params-real.yaml's separate settings; Demucs windows are its training length."""
    if peer.demucs is None:
        return params
    return dataclasses.replace(params, separate=dataclasses.replace(params.separate, chunk_seconds=DEMUCS_CHUNK_SECONDS))


def cuda_rate(model: nn.Module, rate: int, tracks: list, params: Params) -> float | None:
    """Real-time factor of the same separation on CUDA (null without a GPU)."""
    if not torch.cuda.is_available():
        return None
    cuda = dataclasses.replace(params, separate=dataclasses.replace(params.separate, device="cuda"))
    row = quality.score_separator("cuda", model.to("cuda"), rate, tracks, cuda)
    model.to("cpu")
    return row["real_time_factor"]


def score_peer(name: str, peer: Peer, summary: dict, tracks: list, params: Params, args: argparse.Namespace) -> dict:
    """The system's quality and speed on the quality benchmark's mixtures, with its training record."""
    model, rate = load_trained(args.work / name / "best.pt")
    settings = separate_settings(params, peer)
    torch.set_num_threads(quality.THREADS)
    row = quality.score_separator(name, model, rate, tracks, settings)
    return {
        "model": peer.model, "note": peer.note, **{k: row[k] for k in row if k != "per_track"},
        "real_time_factor_cuda": cuda_rate(model, rate, tracks, settings),
        "parameters": summary["parameters"], "kwargs": summary["kwargs"],
        "train_steps": summary["steps"], "train_cpu_seconds": summary["train_cpu_seconds"],
        "train_wall_seconds": summary["wall_seconds"], "audio_seconds_seen": summary["audio_seconds_seen"],
        "val_si_sdr": summary["best_val_si_sdr"], "train_loss_curve": summary["train_loss_curve"],
        "per_track": row["per_track"],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True,
                        help="folder holding the real corpus's index (data/index) and the audio it points at")
    parser.add_argument("--params", default="params-real.yaml", help="the real-corpus profile (data, train, separate)")
    parser.add_argument("--cpu-minutes", type=float, default=20.0, help="training CPU budget of each system (1 thread)")
    parser.add_argument("--only", nargs="+", choices=sorted(PEERS), default=sorted(PEERS), metavar="NAME",
                        help=f"systems to train and score (default: all of {', '.join(PEERS)})")
    parser.add_argument("--work", type=Path, default=Path("data/peers"), help="checkpoints and training summaries")
    parser.add_argument("--retrain", action="store_true", help="train again even where a finished run exists")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/peers.json"))
    args = parser.parse_args(argv)
    if args.cpu_minutes <= 0:
        parser.error("--cpu-minutes must be > 0")
    return args


def quality_tracks(params: Params) -> tuple[list, dict]:
    """The quality benchmark's mixtures (built once, reused), its baseline rows and its config."""
    qargs = quality.parse_args([])
    sources = quality.ensure_corpus(qargs.spec, qargs.corpus, qargs.cache)
    key = quality.mixtures_key(qargs, sha256_file(qargs.spec))
    rows = quality.ensure_mixtures(qargs.mixtures, key, sources, params.normalize.peak_ceiling_db)
    tracks = [quality.read_mixture(qargs.mixtures / r["track"]) for r in rows]
    return tracks, {**key, "evaluate_window_seconds": params.evaluate.window_seconds}


def run(args: argparse.Namespace) -> dict:
    params = load_params(args.params)
    started = time.perf_counter()
    summaries = {name: train_peer(name, PEERS[name], args) for name in args.only}
    tracks, config = quality_tracks(params)
    systems = quality.score_baselines(tracks, params.evaluate.window_seconds)
    for name in args.only:
        systems[name] = score_peer(name, PEERS[name], summaries[name], tracks, params, args)
        log.info("%s: median SI-SDRi %s dB, %sx real time", name, systems[name]["median_si_sdri"],
                 systems[name]["real_time_factor"])
    return {"benchmark": "peers", "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": {**quality.machine(), "train_threads": 1}, "cpu_minutes": args.cpu_minutes,
            "params": args.params, "quality_config": config, "wall_seconds": round(time.perf_counter() - started, 1),
            "systems": systems}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[peers] %(message)s", stream=sys.stderr)
    args = parse_args(argv)
    torch.set_num_interop_threads(1)
    try:
        result = run(args)
    except (VocalsepError, quality.QualityError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    quality._write_json(args.out, result)
    print(quality.table(result["systems"]))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
