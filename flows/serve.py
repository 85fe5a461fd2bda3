"""`vocalsep serve-flows`: serve the deployments from one process, on their schedules.

ingest runs daily and retrain weekly by default (cron, UTC); vocal-pipeline
runs on demand (`prefect deployment run 'vocal-pipeline/vocal-pipeline'`).
With `--library IN OUT`, separate-library separates folder IN into OUT on
demand, or on `--library-cron` (a watched folder: only new or changed files
are separated each time).
Flow runs start as subprocesses of this one, in the repository they read.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from prefect.schedules import Cron

from flows.workspace import REPO_ROOT

INGEST_CRON = "0 2 * * *"  # daily, 02:00 UTC
RETRAIN_CRON = "0 4 * * 0"  # weekly, Sunday 04:00 UTC, after that day's ingest


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vocalsep serve-flows", description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=str(REPO_ROOT), help="DVC workspace the runs work in")
    parser.add_argument("--ingest-cron", default=INGEST_CRON, help="cron of ingest, UTC ('' for on demand)")
    parser.add_argument("--retrain-cron", default=RETRAIN_CRON, help="cron of retrain, UTC ('' for on demand)")
    parser.add_argument("--pipeline-cron", default="", help="cron of vocal-pipeline, UTC (default on demand)")
    parser.add_argument("--library", nargs=2, metavar=("IN", "OUT"),
                        help="also serve separate-library for folder IN into OUT")
    parser.add_argument("--library-cron", default="", help="cron of separate-library, UTC (default on demand)")
    parser.add_argument("--library-model", default="auto", help="model spec of separate-library (default auto)")
    parser.add_argument("--limit", type=int, default=None, help="most flow runs at once (default no limit)")
    return parser


def _schedules(cron: str) -> list[Cron]:
    return [Cron(cron, timezone="UTC")] if cron else []


def deployments(repo: str, ingest_cron: str, retrain_cron: str, pipeline_cron: str,
                library: tuple[str, str, str, str] | None = None) -> list:
    """The three RunnerDeployments, each defaulting its `repo` parameter to `repo`; and separate-library
    when `library` = (input folder, output folder, model spec, cron) is given."""
    from prefect.deployments.runner import EntrypointType

    from flows.pipeline import ingest, retrain, vocal_pipeline

    plan = [(vocal_pipeline, pipeline_cron, "every stage, demo to export, on demand"),
            (ingest, ingest_cron, "download, normalize and validate new sources"),
            (retrain, retrain_cron, "index, train, evaluate, export; promote only a winner")]
    served = [flow.to_deployment(name=flow.name, schedules=_schedules(cron), parameters={"repo": repo},
                                 description=text, tags=["vocalsep"], entrypoint_type=EntrypointType.MODULE_PATH)
              for flow, cron, text in plan]
    if library:
        from flows.library import separate_library

        source, out, model, cron = library
        served.append(separate_library.to_deployment(
            name=separate_library.name, schedules=_schedules(cron), tags=["vocalsep"],
            parameters={"inputs": [str(Path(source).resolve())], "out": str(Path(out).resolve()), "model": model},
            description="separate a music library on Dask workers, skipping finished files",
            entrypoint_type=EntrypointType.MODULE_PATH))
    return served


def main(argv: Sequence[str] | None = None) -> int:
    from prefect import serve

    args = _parser().parse_args(argv)
    repo = str(Path(args.repo).resolve())
    # flow runs are subprocesses that import `flows` by module path, as do Dask workers
    root = str(Path(__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    library = (*args.library, args.library_model, args.library_cron) if args.library else None
    serve(*deployments(repo, args.ingest_cron, args.retrain_cron, args.pipeline_cron, library), limit=args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
