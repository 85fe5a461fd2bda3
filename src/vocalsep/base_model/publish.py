"""`vocalsep publish-base`: turn a trained checkpoint into the shipped base model and its model card.

Run in the DVC workspace that trained it (for the base model: the real-corpus
profile, `cp params-real.yaml params.yaml && dvc repro`):

    vocalsep publish-base --out pretrained/ --quality benchmarks/results/quality.json

It writes `pretrained/vocalsep-base.{safetensors,json}` (no pickle) and
`pretrained/MODEL_CARD.md`: the sources with package versions and sha256,
licences and attribution, the data hash from dvc.lock, the command, steps,
wall time, machine and the quality benchmark's rows.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from vocalsep.config import DEFAULT_PARAMS, PathsParams, load_params
from vocalsep.corpus.spec import load_spec
from vocalsep.model import load_checkpoint
from vocalsep.base_model.weights import CONFIG_NAME, WEIGHT_DTYPES, WEIGHTS_NAME, export_pretrained
from vocalsep.provenance import data_hash

COMMAND = "cp params-real.yaml params.yaml && dvc repro"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vocalsep publish-base", description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=Path("."), help="the DVC workspace that trained it")
    parser.add_argument("--checkpoint", help="relative to --workspace (default: its paths.best_checkpoint)")
    parser.add_argument("--out", type=Path, default=Path("pretrained"), help="folder of the shipped model")
    parser.add_argument("--live", action="store_true",
                        help="the low-latency model (pretrained-live/): its card says so and its lookahead")
    parser.add_argument("--quality", type=Path, help="benchmarks/results/quality.json to quote in the card")
    parser.add_argument("--command", default=COMMAND, help="how it was trained, for the card and the config")
    parser.add_argument("--dtype", choices=tuple(WEIGHT_DTYPES), default="float32",
                        help="how the weights are stored: float16 halves the file (loading casts back to float32)")
    parser.add_argument("--machine", default=f"{platform.machine()}, {torch.get_num_threads()} CPU threads",
                        help="where it trained, for the card")
    return parser


def workspace_paths(workspace: Path) -> PathsParams:
    """The `paths` of the workspace's params file (defaults when it has none)."""
    params = workspace / DEFAULT_PARAMS
    return load_params(params).paths if params.is_file() else PathsParams()


def training_record(workspace: Path) -> dict[str, Any]:
    """steps, wall time and examples/s from the train stage's metrics/train.json, when present."""
    path = workspace / workspace_paths(workspace).train_metrics
    return json.loads(path.read_text()) if path.is_file() else {}


def sources_table(spec: Path, which: str = "train") -> list[str]:
    rows = ["| package | version | sha256 of the .deb | licence | used as |", "|---|---|---|---|---|"]
    for p in load_spec(spec):
        uses = sorted({f"{g.role} ({g.name})" for g in p.groups if g.set == which})
        if uses:
            rows.append(f"| {p.package} | {p.version} | `{p.sha256}` | {p.license} | {', '.join(uses)} |")
    return rows


QUALITY_COLUMNS = (  # (header, key in a system's row of benchmarks/results/quality.json)
    ("SI-SDRi, unseen (dB)", "median_si_sdri"), ("over voice families", "median_si_sdri_over_voice_families"),
    ("SDR (dB)", "median_sdr"), ("pass-through (dB)", "median_pass_through"), ("music leak (dB)", "median_leak"),
    ("level spread (dB)", "median_level_spread"),
)


def quality_systems(path: Path | None) -> dict[str, dict] | None:
    """The systems of a benchmarks/quality.py results file; None when no file is given or it is missing."""
    if path is None or not path.is_file():
        return None
    return json.loads(path.read_text()).get("systems", {})


def cell(value: Any) -> str:
    """A figure of the card's tables: signed, two decimals, "n/a" when there is none."""
    return "n/a" if value is None else f"{value:+.2f}"


def quality_table(path: Path | None) -> list[str]:
    """The quality benchmark's systems as markdown rows: medians on unseen conditions, and SI-SDRi on seen ones."""
    systems = quality_systems(path)
    if systems is None:
        return ["(no quality benchmark results given)"]
    head = [h for h, _ in QUALITY_COLUMNS] + ["SI-SDRi, seen (dB)", "note"]
    rows = ["| system | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    for name, row in systems.items():
        cells = [cell(row.get(key)) for _, key in QUALITY_COLUMNS] + [cell((row.get("seen") or {}).get("median_si_sdri"))]
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {row.get('note') or ''} |")
    return rows


def family_tables(path: Path | None) -> list[str]:
    """Per family of the unseen set, for every system that has them: each voice family's SI-SDRi /
    pass-through / music leak, then each music family's SI-SDRi / leak (medians over its tracks)."""
    families = {n: r["families"] for n, r in (quality_systems(path) or {}).items() if r.get("families")}
    out: list[str] = []
    for role, keys, what in (("voice", ("median_si_sdri", "median_pass_through", "median_leak"),
                              "SI-SDRi / pass-through / music leak"),
                             ("music", ("median_si_sdri", "median_leak"), "SI-SDRi / music leak")):
        names = sorted({f for fams in families.values() for f in fams.get(role, {})})
        if not names:
            continue
        out += [f"Unseen conditions by {role} family ({what}, dB; medians over the family's tracks):", "",
                "| system | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for name, fams in families.items():
            cells = [" / ".join(cell((fams.get(role, {}).get(f) or {}).get(k)) for k in keys) for f in names]
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        out.append("")
    return out


def augment_summary(data_params: dict[str, Any]) -> str:
    """The training augmentation of a checkpoint's `data` params, as "name p, ..." (or "none")."""
    augment = data_params.get("augment") or {}
    fired = {k: v for k, v in augment.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0}
    solo = {k: data_params.get(k) for k in ("voice_alone", "music_alone") if data_params.get(k)}
    parts = [f"{k} {v:g}" for k, v in {**fired, **solo}.items()]
    return ", ".join(parts) if parts else "none"


def steps_line(ckpt: dict[str, Any]) -> str:
    """Steps and validation score of a trained checkpoint, or what a weight average was made of."""
    if ckpt.get("averaged_from"):
        weights = ckpt.get("average_weights") or [1.0] * len(ckpt["averaged_from"])
        return (f"- steps: a weight average (`vocalsep average`, weights {', '.join(f'{w:g}' for w in weights)}) of "
                f"{len(ckpt['averaged_from'])} checkpoints (the command above says which); it has no steps or "
                "validation score of its own")
    if "val_si_sdr" in ckpt:  # a best.pt, or a checkpoint the train stage scored
        return (f"- steps: {ckpt.get('step')} (best epoch {ckpt.get('epoch')}), "
                f"validation SI-SDR {ckpt['val_si_sdr']:.2f} dB")
    scored = ((ckpt.get("progress") or {}).get("val") or [{}])[-1]  # a last.pt: its own last validation
    return (f"- steps: {ckpt.get('step')} (the last checkpoint, after epoch {ckpt.get('epoch')}), validation "
            f"SI-SDR {scored.get('si_sdr', float('nan')):.2f} dB at step {scored.get('step')}")


def training_lines(config: dict[str, Any], ckpt: dict[str, Any], workspace: Path, machine: str,
               command: str) -> list[str]:
    """The card's "How it was trained" section."""
    params = ckpt.get("params") or {}
    train_params, data_params = params.get("train") or {}, params.get("data") or {}
    train = training_record(workspace)
    return [
        "## How it was trained", "",
        f"- command: {command} (then `vocalsep publish-base`)",
        f"- git commit: `{ckpt.get('git_sha')}`",
        f"- model: `{json.dumps(config['kwargs'], sort_keys=True)}`",
        f"- loss: {train_params.get('loss')}, lr {train_params.get('lr')} ({train_params.get('lr_schedule')}), "
        f"batch {train_params.get('batch_size')} x {data_params.get('segment_seconds')} s",
        f"- augmentation (`data.augment`, probabilities): {augment_summary(data_params)}",
        steps_line(ckpt),
        f"- throughput: {train.get('examples_per_second', float('nan')):.2f} examples/s",
        f"- machine: {machine}", "",
    ]


def _heading(config: dict[str, Any]) -> list[str]:
    """Title and use: the base model, or (with `lookahead_ms` in its config) the low-latency one."""
    if config.get("lookahead_ms") is not None:
        return ["# vocalsep low-latency model (pretrained-live)", "",
                f"`{config['class']}` with {config['parameters']:,} parameters, {config['sample_rate']} Hz stereo in "
                f"and out, looking {config['lookahead_ms']:.0f} ms ahead (STFT, fold and frame alignment included).",
                f"Weights: `{WEIGHTS_NAME}` (safetensors); config that rebuilds the module: `{CONFIG_NAME}`.",
                "`vocalsep stream` uses it by default (latency = block + lookahead); elsewhere pass "
                "`--model pretrained-live`. For files the offline base model (`pretrained`) separates better.", ""]
    stored = ("safetensors, float16: loading casts them back to float32, a relative change of at most 5e-4 per "
              "weight" if config.get("weights_dtype") == "float16" else "safetensors")
    return ["# vocalsep base model", "",
            f"`{config['class']}` with {config['parameters']:,} parameters, {config['sample_rate']} Hz stereo in and out.",
            f"Weights: `{WEIGHTS_NAME}` ({stored}); config that rebuilds the module: `{CONFIG_NAME}`.",
            "Use it with `vocalsep separate song.mp3 -o stems/ --model pretrained`; fine-tune it with "
            "`train.init: pretrained`.", ""]


def lookahead_ms(ckpt: dict[str, Any]) -> float:
    """How far the checkpoint's model looks ahead, in ms: its right context rounded up to its frame stride."""
    from vocalsep.model.checkpoint import checkpoint_sample_rate, model_from_state

    model = model_from_state(ckpt)
    stride = int(getattr(model, "stride", 1))
    ahead = -(-int(model.context[1]) // stride) * stride
    return 1000.0 * ahead / checkpoint_sample_rate(ckpt)


def model_card(config: dict[str, Any], ckpt: dict[str, Any], workspace: Path, quality: Path | None,
               machine: str, command: str = COMMAND) -> str:
    params = ckpt.get("params") or {}
    spec = workspace / ((params.get("corpus") or {}).get("spec") or "sources/debian-corpus.yaml")
    lines = [
        *_heading(config),
        "## Training data", "",
        "Real recordings from pinned Debian (bookworm) packages, set `train` of "
        f"`{spec.name}`: speech and sung exclamations as acapellas (short files joined with natural pauses), "
        "game soundtracks as instrumentals. The voices are speech, not singing: for songs with singing, "
        "fine-tune it on acapellas (`train.init: pretrained`). The development evaluation set (below) comes from other packages; "
        "`drascula*` and `fillets-ng*` are reserved for independent evaluation and were never used.", "",
        *sources_table(spec), "",
        f"Licences: {'; '.join(sorted({p.license for p in load_spec(spec) if any(g.set == 'train' for g in p.groups)}))}."
        " The weights are a work "
        "trained on it. Attribution for every package is in the table above and in the corpus stage's "
        "`data/corpus/ATTRIBUTION.md`.", "",
        f"Data hash (`vocalsep.provenance.data_hash`): `{data_hash(workspace_paths(workspace), workspace / 'dvc.lock')}`.", "",
        *training_lines(config, ckpt, workspace, machine, command),
        "## Quality on real mixtures (`benchmarks/quality.py`)", "",
        "20 s mixtures of evaluation packages the model never trained on, voice active 75-90 % of the time, "
        "stems without DC offset or content below 20 Hz (recipe 5), "
        "vocal-to-accompaniment loudness ratio drawn from -6 to +3 dB; medians over tracks. Unseen conditions "
        "(the headline): voices and music sharing no speaker, prompt series, game or recording chain with the "
        "training set; seen: voices that do. Pass-through: SI-SDR of the output when a voice alone goes in "
        "(higher is better, 100 = unchanged); music leak: output level re the input when music alone goes in "
        "(lower is better); level spread: SI-SDRi spread over input gains of -12, 0 and +6 dB.", "",
        *quality_table(quality), "",
        *family_tables(quality),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    ckpt = load_checkpoint(args.workspace / (args.checkpoint or workspace_paths(args.workspace).best_checkpoint))
    extra = {"lookahead_ms": round(lookahead_ms(ckpt), 1)} if args.live else {}
    config_path = export_pretrained(ckpt, args.out, dtype=args.dtype, trained_with=args.command,
                                    val_si_sdr=ckpt.get("val_si_sdr"), **extra)
    config = json.loads(config_path.read_text())
    card = model_card(config, ckpt, args.workspace, args.quality, args.machine, args.command)
    (args.out / "MODEL_CARD.md").write_text(card)
    print(f"wrote {args.out / WEIGHTS_NAME}, {config_path} and {args.out / 'MODEL_CARD.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
