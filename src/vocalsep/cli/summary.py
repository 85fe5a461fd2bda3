"""`vocalsep summary`: where the pipeline's results are, and the headline numbers."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from vocalsep.contracts import is_base
from vocalsep.config import DEFAULT_PARAMS, Params, load_params


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _fmt(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def registry_decision(record: dict) -> str:
    """One sentence: which version won, on which metric, against the champion and the shipped base model."""
    name, version, metric = record.get("registered_model", "?"), record.get("version", "?"), record.get("metric", "?")
    new, old = record.get("new_metric"), record.get("champion_metric")
    previous, base = record.get("previous_champion_version"), record.get("base_version")
    rivals = [f"version {previous} ({_fmt(old)} dB)"] if previous else []
    if base is not None and base != previous:
        rivals.append(f"the shipped base model, version {base} ({_fmt(record.get('base_metric'))} dB)")
    if record.get("decision") == "champion":
        against = f"beats {' and '.join(rivals)}" if rivals else "no champion before it"
        return f"{name} version {version} is now champion: {metric} {_fmt(new)} dB, {against}"
    holder = record.get("champion_version", "?")
    held = (f"the shipped base model, version {holder} ({_fmt(record.get('base_metric'))} dB)" if holder == base
            else f"champion version {holder} ({_fmt(old)} dB)")
    return f"{name} version {version} is challenger: {metric} {_fmt(new)} dB does not beat {held}"


def live_registry_lines(params: Params, record: dict | None) -> list[str]:
    """The registry's champion now (not the last export's record), and whether the two differ."""
    from vocalsep import registry
    from vocalsep.errors import VocalsepError
    from vocalsep.tracking import set_tracking_uri, tracking_uri

    name, uri = params.export.registered_model, tracking_uri(params.tracking)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return [f"registry now: none yet ({uri} does not exist)"]  # reading would create an empty store
    try:
        set_tracking_uri(uri)
        live = registry.version_by_alias(name, "champion")
    except (VocalsepError, OSError) as err:
        return [f"registry now: cannot be read ({str(err).splitlines()[0][:160]})"]
    if live is None:
        return [f"registry now: {name} has no champion"]
    version, tags = live
    origin = "the shipped base model" if is_base(tags) else tags.get("trained_on", "")
    line = f"registry now: champion is {name} version {version}" + (f" ({origin})" if origin else "")
    recorded = (record or {}).get("champion_version")
    if recorded is not None and str(recorded) != version:
        line += f"; the workspace's last export recorded version {recorded} (the registry changed since)"
    return [line]


def evaluation_lines(evaluation: dict | None) -> list[str]:
    """The test set's medians and the oracle's, from eval.json (nothing when it is absent)."""
    if not evaluation:
        return []
    medians = ", ".join(f"{k} {_fmt(evaluation[k])} dB" for k in ("sdr", "si_sdr", "si_sdri", "mixture_sdr")
                        if k in evaluation)
    lines = ["", f"test set medians over {evaluation.get('tracks', '?')} tracks: {medians}"]
    if evaluation.get("irm_si_sdr") is not None:
        lines.append(f"ideal-ratio-mask oracle (the target to beat): si_sdr {_fmt(evaluation['irm_si_sdr'])} dB, "
                     f"sdr {_fmt(evaluation.get('irm_sdr'))} dB")
    return lines


def summary_lines(params: Params) -> list[str]:
    """Human-readable lines: results per stage, eval medians, registry decision, next commands."""
    p = params.paths
    lines = ["vocalsep results", ""]
    places = [
        ("downloads", str(p.downloads)),
        ("normalized audio", str(p.manifest)),
        ("validation report", f"{p.reports}/validation/summary.txt"),
        ("snippet index", f"{p.index}/"),
        ("test set", f"{p.testset}/"),
        ("checkpoints", str(p.best_checkpoint)),
        ("exported models", f"{p.export}/"),
    ]
    for label, where in places:
        mark = "ok " if Path(where).exists() else "-- "
        lines.append(f"  {mark}{label:<18} {where}")
    lines += evaluation_lines(_read_json(p.eval_metrics))
    registry = _read_json(p.registry_record)  # the decision record (metrics/ holds its numbers)
    if registry:
        lines += ["", f"registry: {registry_decision(registry)}"]
    lines += live_registry_lines(params, registry)
    name = params.export.registered_model
    lines += [
        "",
        f"MLflow UI:  mlflow ui --backend-store-uri {params.tracking.uri}",
        f"Serve:      MLFLOW_TRACKING_URI={params.tracking.uri} vocalsep serve -m models:/{name}@champion -p 5001"
        "   (request limits; --allow-demo for a demo-trained champion; docs/serving.md)",
        f"            MLFLOW_TRACKING_URI={params.tracking.uri} "
        f"mlflow models serve -m models:/{name}@champion --env-manager local -p 5001   (no limits)",
        "Separate:   vocalsep separate song.mp3 -o stems/   (a folder or several files: see README)",
        f"Listen:     {Path(p.reports) / 'eval' / 'index.html'}   (every test track: numbers, spectrograms, players)",
        f"Provenance: vocalsep provenance models:/{name}@champion   (sources, licences, sha256 it learned from)",
    ]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vocalsep summary", description=__doc__)
    parser.add_argument("--params", default=str(DEFAULT_PARAMS))
    args = parser.parse_args(argv)
    print("\n".join(summary_lines(load_params(args.params))))
    return 0
