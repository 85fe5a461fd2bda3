"""`vocalsep serve-flows`: serve the three deployments from one process, on their schedules.

ingest runs daily and retrain weekly by default (cron, UTC); vocal-pipeline
runs on demand (`prefect deployment run 'vocal-pipeline/vocal-pipeline'`).
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
    parser.add_argument("--limit", type=int, default=None, help="most flow runs at once (default no limit)")
    return parser


def _schedules(cron: str) -> list[Cron]:
    return [Cron(cron, timezone="UTC")] if cron else []


def deployments(repo: str, ingest_cron: str, retrain_cron: str, pipeline_cron: str) -> list:
    """The three RunnerDeployments, each defaulting its `repo` parameter to `repo`."""
    from prefect.deployments.runner import EntrypointType

    from flows.pipeline import ingest, retrain, vocal_pipeline

    plan = [(vocal_pipeline, pipeline_cron, "every stage, demo to export, on demand"),
            (ingest, ingest_cron, "download, normalize and validate new sources"),
            (retrain, retrain_cron, "index, train, evaluate, export; promote only a winner")]
    return [flow.to_deployment(name=flow.name, schedules=_schedules(cron), parameters={"repo": repo},
                               description=text, tags=["vocalsep"], entrypoint_type=EntrypointType.MODULE_PATH)
            for flow, cron, text in plan]


def main(argv: Sequence[str] | None = None) -> int:
    from prefect import serve

    args = _parser().parse_args(argv)
    repo = str(Path(args.repo).resolve())
    # flow runs are subprocesses that import `flows` by module path, as do Dask workers
    root = str(Path(__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    serve(*deployments(repo, args.ingest_cron, args.retrain_cron, args.pipeline_cron), limit=args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
