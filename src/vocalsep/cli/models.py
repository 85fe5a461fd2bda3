"""`vocalsep models`: the models a user can pass as --model, and what no --model means.

Lists the shipped models (`pretrained`, `pretrained-live`, with what their
config says of them) and every version of the registered model (aliases, what
it learned from, its test-set scores and size, from the version's tags), then
the default (`auto`) and why. `--speed` also times each one on this machine
(seconds of audio separated per second, 10 s of noise, after a warm-up).
`--json` prints the same as one JSON document for scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vocalsep.contracts import is_base
from vocalsep.config import DEFAULT_PARAMS, Params, cli_params
from vocalsep.errors import VocalsepError
from vocalsep.base_model.weights import PRETRAINED, PRETRAINED_LIVE, read_config, shipped_dir

SCORE_TAGS = ("si_sdri", "si_sdr", "sdr", "pass_through", "leak")
SPEED_SECONDS = 10.0


def shipped_models() -> list[dict[str, Any]]:
    """The shipped models present in this checkout, from their configs (no weights loaded)."""
    rows: list[dict[str, Any]] = []
    for name in (PRETRAINED, PRETRAINED_LIVE):
        try:
            config = read_config(shipped_dir(name))
        except VocalsepError as err:
            rows.append({"spec": name, "kind": "shipped", "missing": str(err).splitlines()[0]})
            continue
        rows.append({"spec": name, "kind": "shipped", "class": config["class"],
                     "parameters": config.get("parameters"), "sample_rate": config.get("sample_rate"),
                     "lookahead_ms": config.get("lookahead_ms"), "trained_with": config.get("trained_with"),
                     "scores": {"val_si_sdr": config.get("val_si_sdr")}, "aliases": []})
    return rows


def registry_models(params: Params) -> list[dict[str, Any]]:
    """Every registered version, newest first, with what its tags tell."""
    from vocalsep import registry
    from vocalsep.tracking import set_tracking_uri, tracking_uri

    set_tracking_uri(tracking_uri(params.tracking))
    name = params.export.registered_model
    rows = []
    for version in registry.list_versions(name):
        tags = version["tags"]
        scores = {k: float(tags[k]) for k in SCORE_TAGS if _is_number(tags.get(k))}
        rows.append({"spec": f"models:/{name}/{version['version']}", "kind": "registry",
                     "aliases": version["aliases"], "class": tags.get("class"),
                     "parameters": int(tags["parameters"]) if _is_number(tags.get("parameters")) else None,
                     "trained_on": learned_from(tags), "scores": scores, "data_hash": tags.get("data_hash")})
    return rows


def _is_number(value: Any) -> bool:
    try:
        return value is not None and np.isfinite(float(value))
    except ValueError:
        return False


def learned_from(tags: dict[str, str]) -> str:
    """What a version learned from, in words, from its tags (provenance and the export stage's)."""
    if is_base(tags):
        return "the shipped base model (real recorded speech over real game music)"
    if tags.get("trained_on"):
        return tags["trained_on"]
    return f"{tags.get('sources', '?')} source(s), data {tags.get('data_hash', '?')[:12]}"


def measure_speed(spec: str, params: Params) -> float:
    """Seconds of audio separated per second on this machine (CPU unless separate.device says otherwise)."""
    from vocalsep.api import Separator

    separator = Separator(spec, params.separate.device, params=params)
    rate = separator.sample_rate
    noise = (0.1 * np.random.default_rng(0).standard_normal((int(rate * SPEED_SECONDS), 2))).astype(np.float32)
    separator.separate(noise[: rate], rate)  # warm-up: graph export, thread pools
    started = time.perf_counter()
    separator.separate(noise, rate)
    return SPEED_SECONDS / (time.perf_counter() - started)


def listing(params: Params, speed: bool = False) -> dict[str, Any]:
    """Everything `vocalsep models` prints."""
    from vocalsep.default_model import default_choice

    models = shipped_models()
    try:
        models += registry_models(params)
        registry_error = None
    except VocalsepError as err:
        registry_error = str(err)
    spec, why, _ = default_choice(params.tracking)
    if speed:
        for row in models:
            if not row.get("missing"):
                row["x_real_time"] = round(measure_speed(row["spec"], params), 1)
    return {"models": models, "default": {"spec": spec, "why": why}, "registry_error": registry_error,
            "registered_model": params.export.registered_model}


def _line(row: dict[str, Any]) -> str:
    if row.get("missing"):
        return f"  {row['spec']:<22} missing: {row['missing']}"
    aliases = f" @{','.join(row['aliases'])}" if row.get("aliases") else ""
    size = f"{row['parameters'] / 1e6:.2f} M params" if row.get("parameters") else "size ?"
    scores = ", ".join(f"{k} {v:.2f}" for k, v in row.get("scores", {}).items() if v is not None) or "no scores"
    speed = f", {row['x_real_time']}x real time" if "x_real_time" in row else ""
    origin = row.get("trained_on") or row.get("trained_with") or ""
    latency = f", {row['lookahead_ms']:.0f} ms lookahead" if row.get("lookahead_ms") else ""
    return (f"  {row['spec'] + aliases:<22} {row.get('class') or '?'}, {size}{latency}{speed}; {scores}\n"
            f"  {'':<22} learned from: {origin[:160]}")


def render(result: dict[str, Any]) -> str:
    shipped = [r for r in result["models"] if r["kind"] == "shipped"]
    registered = [r for r in result["models"] if r["kind"] == "registry"]
    lines = ["shipped models (--model NAME):", *map(_line, shipped), "",
             f"registry ({result['registered_model']}, --model models:/{result['registered_model']}/VERSION):"]
    if result["registry_error"]:
        lines.append(f"  cannot read: {result['registry_error']}")
    lines += list(map(_line, registered)) or ["  no versions yet (make run, or vocalsep register-base)"]
    lines += ["", f"default (no --model, or --model auto): {result['default']['spec']}",
              f"  because: {result['default']['why']}"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vocalsep models", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    parser.add_argument("--speed", action="store_true", help="also time each model on this machine (slow)")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS,
                        help="params file for tracking and export.registered_model (default: params.yaml)")
    args = parser.parse_args(argv)
    result = listing(cli_params(args.params), args.speed)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
