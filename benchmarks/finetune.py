"""Fine-tuning the shipped base model against training from scratch on one small corpus, same CPU budget.

Both runs use `benchmarks/budget.py` (the same data, loss and CPU-time
budget, the base model's architecture); one starts from `pretrained/`
(`train.init: pretrained`, a lower learning rate, as one fine-tunes), the other
from random weights. Both are then scored on that workspace's own test set
(`<paths.testset>`, the evaluate stage's metrics). Score them on real mixtures
too with `benchmarks/quality.py --model finetune=... --model scratch=...`.

Usage (in a workspace whose index stage has run, e.g. after `dvc repro index`
on the demo corpus, which is a small corpus of "your own songs"):
    python benchmarks/finetune.py [--params params.yaml] [--cpu-minutes 5]
Writes benchmarks/results/finetune.json; checkpoints under data/budget/finetune_{scratch,pretrained}/.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from vocalsep.config import load_params
from vocalsep.model import load_checkpoint
from vocalsep.base_model.weights import read_config
from vocalsep.scoring import score_testset, summarize

LEARNING_RATES = {"scratch": 1e-3, "pretrained": 3e-4}


def budget_command(init: str, args: argparse.Namespace) -> list[str]:
    """benchmarks/budget.py for one init, with the base model's architecture on this workspace's data."""
    config = read_config()
    overrides = [f"model.name={config['class']}"] + [f"model.{k}={json.dumps(v)}" for k, v in config["kwargs"].items()]
    overrides += [f"train.init={init}", f"train.lr={LEARNING_RATES[init]}", "train.loss=snr",
                  f"data.segment_seconds={args.segment_seconds}", f"train.batch_size={args.batch_size}"]
    command = [sys.executable, str(Path(__file__).with_name("budget.py")), "--name", f"finetune_{init}",
               "--params", args.params, "--cpu-minutes", str(args.cpu_minutes),
               "--summary", str(Path("data/budget") / f"finetune_{init}" / "summary.json")]
    for item in overrides:
        command += ["--set", item]
    return command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="the small corpus's workspace params")
    parser.add_argument("--cpu-minutes", type=float, default=5.0)
    parser.add_argument("--segment-seconds", type=float, default=1.0, help="must fit the index's snippets")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--skip-training", action="store_true", help="score checkpoints already trained")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/finetune.json"))
    args = parser.parse_args(argv)
    if not args.skip_training:
        procs = [subprocess.Popen(budget_command(init, args)) for init in LEARNING_RATES]  # same load for both
        if any(p.wait() for p in procs):
            print("a budget run failed; see its output above", file=sys.stderr)
            return 1
    torch.set_num_threads(2)
    params = load_params(args.params)
    rows = {}
    for init in LEARNING_RATES:
        folder = Path("data/budget") / f"finetune_{init}"
        scores = summarize(score_testset(load_checkpoint(folder / "best.pt"), params)[0])
        rows[init] = {**scores, "lr": LEARNING_RATES[init],
                      "training": json.loads((folder / "summary.json").read_text())}
        print(f"{init}: {scores}", file=sys.stderr)
    result = {"benchmark": "finetune", "params": args.params, "cpu_minutes": args.cpu_minutes,
              "testset": params.paths.testset, "runs": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
