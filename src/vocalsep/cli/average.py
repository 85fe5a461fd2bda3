"""`vocalsep average CKPT CKPT... -o OUT.pt [--weights W,W...]`: a model soup, the weighted mean of the weights
of checkpoints of one architecture (`vocalsep.model.soup`), written as a checkpoint like the train stage's."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from vocalsep.errors import VocalsepError
from vocalsep.model.checkpoint import build_model, load_checkpoint, save_checkpoint
from vocalsep.model.soup import average_states


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vocalsep average", description=(
        "Average the weights of checkpoints of one architecture (fine-tunes of one model) into a new checkpoint, "
        "which vocalsep separate, publish-base and the benchmarks take like any other."))
    parser.add_argument("checkpoints", nargs="+", type=Path, help="two or more .pt checkpoints (the train stage's)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="the averaged checkpoint to write (.pt)")
    parser.add_argument("--weights", type=lambda text: [float(w) for w in text.split(",")], default=None,
                        help="comma-separated weights, one per checkpoint (default: uniform)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.out.resolve() in {p.resolve() for p in args.checkpoints}:
        raise VocalsepError(f"{args.out}: is one of the inputs; write the average to a new file")
    loaded = [(str(path), load_checkpoint(path)) for path in args.checkpoints]
    state = average_states(loaded, args.weights)
    first = loaded[0][1]
    model = build_model(first["class"], first["kwargs"])
    model.load_state_dict(state)
    extra = {k: first[k] for k in ("params",) if k in first}
    save_checkpoint(args.out, model, first["kwargs"], averaged_from=[name for name, _ in loaded],
                    average_weights=args.weights or [1.0] * len(loaded), **extra)
    print(f"wrote {args.out}: the average of {len(loaded)} checkpoints of {first['class']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
