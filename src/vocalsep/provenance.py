"""What a model learned from: its sources (URL, title, licence, sha256), the data hash and the git commit.

Users who train on downloaded music need this to know what they may publish.
The export stage writes `<paths.export>/provenance.json` and logs it as an
artifact of every registered model version (with the version tags
`data_hash`, `git_sha`, `sources` and `licenses`); `vocalsep provenance
models:/vocalsep@champion` prints it, and the served model answers the
request `{"inputs": [[0, 0]], "params": {"provenance": "json"}}` with it.

A pipeline model's sources are the files its index drew from (train, val and
test splits), joined with the download stage's `downloads.jsonl` (URL, title,
licence, sha256 of the downloaded file). The shipped base model's sources are
the pinned Debian packages of the corpus spec's `train` set (the .deb's
sha256), which is what `pretrained/MODEL_CARD.md` lists.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from vocalsep.config import DEFAULT_PARAMS, Params, ParamsError, PathsParams, cli_params
from vocalsep.errors import VocalsepError
from vocalsep.sources import read_downloads  # the download records live with the manifests

FILE_NAME = "provenance.json"
ARTIFACT = "provenance"  # the pyfunc artifact key (and the served model's param)
SPLITS = ("train", "val", "test")


def data_hash(paths: PathsParams, lock: Path = Path("dvc.lock")) -> str:
    """What a model learned from, as one string: the `data_hash` tag of runs, versions and the base model.

    md5 over `path:md5` of the train stage's data, the snippet index and the
    normalized audio, as the stages that wrote them recorded them in `lock`
    (so it is known while training runs, and equal at export); 'unknown' when
    the lock lacks either.
    """
    try:
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    except (OSError, yaml.YAMLError):
        return "unknown"
    outs = {str(out.get("path", "")).rstrip("/"): out.get("md5") or out.get("hash")
            for stage in stages.values() for out in (stage or {}).get("outs", [])}
    data = sorted(str(folder).rstrip("/") for folder in (paths.index, paths.normalized))
    if any(not outs.get(folder) for folder in data):
        return "unknown"
    return hashlib.md5("\n".join(f"{folder}:{outs[folder]}" for folder in data).encode()).hexdigest()


def pipeline_sources(params: Params) -> list[dict[str, Any]]:
    """Every source file the index drew from, with the splits it fed and its download record."""
    splits: dict[str, set[str]] = {}
    roles: dict[str, str] = {}
    for split in SPLITS:
        path = params.paths.split(split)
        if not path.is_file():
            raise VocalsepError(f"{path}: missing; run the index stage first (dvc repro index)")
        for row in pd.read_parquet(path, columns=["id", "role"]).drop_duplicates().itertuples(index=False):
            splits.setdefault(row.id, set()).add(split)
            roles[row.id] = row.role
    downloads = read_downloads(params.paths.downloads)
    out = []
    for source_id in sorted(splits, key=lambda i: (roles[i], downloads.get(i, {}).get("title") or "", i)):
        record = downloads.get(source_id, {})
        out.append({"id": source_id, "role": roles[source_id], "splits": sorted(splits[source_id], key=SPLITS.index),
                    "url": record.get("url"), "title": record.get("title"), "license": record.get("license"),
                    "sha256": record.get("sha256")})
    return out


def base_model_sources(spec: str | Path | None = None) -> list[dict[str, Any]]:
    """The shipped base model's sources: the corpus spec's packages with a `train` group.

    The spec is this checkout's `sources/debian-corpus.yaml` by default, wherever the command runs.
    """
    from vocalsep.corpus.spec import load_spec

    spec = spec or Path(__file__).resolve().parents[2] / "sources" / "debian-corpus.yaml"

    out = []
    for package in load_spec(spec):
        roles = sorted({g.role for g in package.groups if g.set == "train"})
        if roles:
            out.append({"id": package.package, "role": "+".join(roles), "splits": ["train", "val", "test"],
                        "url": f"apt:{package.package}={package.version}", "title": package.attribution,
                        "license": package.license, "sha256": package.sha256})
    return out


def record(sources: list[dict[str, Any]], data_hash: str, git_sha: str, trained_on: str) -> dict[str, Any]:
    """The provenance document."""
    licenses = sorted({s["license"] or "unknown" for s in sources})
    return {"format": "vocalsep-provenance/1", "trained_on": trained_on, "data_hash": data_hash, "git_sha": git_sha,
            "sources": sources, "licenses": licenses,
            "counts": {role: sum(s["role"] == role for s in sources) for role in sorted({s["role"] for s in sources})}}


DEMO_LICENSE = "generated by vocalsep.demo"  # sources/demo.yaml's licence: the synthetic demo corpus


def learned_from_demo_only(document: dict[str, Any] | None) -> bool:
    """Whether a provenance document lists sources and every one is the synthetic demo's."""
    sources = (document or {}).get("sources") or []
    return bool(sources) and all(str(s.get("license", "")).startswith(DEMO_LICENSE) for s in sources)


def version_tags(document: dict[str, Any]) -> dict[str, str]:
    """What the registry shows of it on the version itself (the full list is the artifact)."""
    return {"data_hash": document["data_hash"], "git_sha": document["git_sha"],
            "sources": str(len(document["sources"])), "licenses": ", ".join(document["licenses"])[:4000]}


def write(document: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def find_in_model(folder: Path) -> Path | None:
    """The provenance file among a downloaded model's artifacts."""
    found = sorted(folder.rglob(FILE_NAME)) if folder.is_dir() else []
    return found[0] if found else None


def load_for(spec: str, params_path: Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """The provenance of a `models:/` or `runs:/` URI, `pretrained`, or a model folder or provenance file.

    Registry URIs are read from `MLFLOW_TRACKING_URI` when set, else from `tracking.uri` of `params_path` (default:
    params.yaml, MLflow's defaults where that file is absent; a named file that is absent is an error).
    """
    from vocalsep.loading import MODEL_URI_SCHEMES  # here, not at the top: validate imports this module
    from vocalsep.base_model.weights import PRETRAINED, read_config

    if spec == PRETRAINED:
        config = read_config()
        return record(base_model_sources(), "see pretrained/MODEL_CARD.md", config.get("git_sha") or "unknown",
                      "the shipped base model (pretrained/)")
    if spec.startswith(MODEL_URI_SCHEMES):
        from vocalsep.registry import download_model_artifacts

        folder = Path(download_model_artifacts(spec, cli_params(params_path).tracking))
    else:
        folder = Path(spec)
    path = folder if folder.is_file() else find_in_model(folder)
    if path is None:
        raise VocalsepError(f"{spec}: the model holds no {FILE_NAME}; it was registered before provenance was "
                            "recorded: export it again (dvc repro -f export) or see its run's tags")
    return json.loads(path.read_text())


def format_text(document: dict[str, Any]) -> str:
    """A readable listing: header lines, then one block per source."""
    lines = [f"trained on: {document.get('trained_on', '?')}", f"data hash:  {document.get('data_hash')}",
             f"git commit: {document.get('git_sha')}", f"licences:   {', '.join(document.get('licenses', []))}",
             f"sources:    {len(document.get('sources', []))} "
             f"({', '.join(f'{n} {r}' for r, n in document.get('counts', {}).items())})", ""]
    for source in document.get("sources", []):
        lines += [f"- {source.get('title') or '(no title)'} [{source['role']}, {'/'.join(source['splits'])}]",
                  f"    url:     {source.get('url')}", f"    licence: {source.get('license') or 'unknown'}",
                  f"    sha256:  {source.get('sha256')}"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vocalsep provenance",
                                     description="Print what a model learned from: sources, licences, sha256, "
                                                 "data hash and git commit.")
    parser.add_argument("model", help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/..., pretrained, "
                                      "or a model folder / provenance.json")
    parser.add_argument("--json", action="store_true", help="print the JSON document")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS,
                        help="params file whose tracking.uri holds the registry (default: params.yaml; "
                             "MLFLOW_TRACKING_URI wins when set)")
    args = parser.parse_args(argv)
    try:
        cli_params(args.params)  # a --params file named but absent is refused, whatever the model
        document = load_for(args.model, args.params)
    except (ParamsError, VocalsepError) as err:
        print(f"vocalsep provenance: {err}", file=sys.stderr)
        return 2
    print(json.dumps(document, indent=2) if args.json else format_text(document))
    return 0
