"""normalize fanned out over files on Dask: the stage's own per-file function, one task per file.

The serial stage and this path call the same `normalize_file` and
`write_manifest`, so they write the same files and the same manifest. DVC
still decides: the fan-out runs only when DVC reports the stage stale, and
`dvc commit` records its outputs in dvc.lock afterwards, as `dvc repro` would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from prefect import flow, get_run_logger, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect_dask import DaskTaskRunner

from flows.tasks import RAN, SKIPPED, stage_env
from vocalsep.config import DEFAULT_PARAMS, Params, load_params
from vocalsep.errors import StageError
from vocalsep.stages.normalize import finish, normalize_file, read_downloads

STAGE = "normalize"
LOCAL_CLUSTER = {"n_workers": 2, "threads_per_worker": 1, "processes": True}


@task(task_run_name="normalize {download[role]}/{download[id]}", cache_policy=NO_CACHE)
def normalize_one(download: dict, params: Params, root: str) -> tuple[dict, int]:
    """One downloads.jsonl row -> its manifest row, and the worker process that made it (runs on Dask)."""
    return normalize_file(download, params, Path(root)), os.getpid()


@flow(name="normalize-fanout")
def normalize_files(root: str) -> list[int]:
    """Normalize every ok download of `root` in parallel and write the manifest; the worker processes used."""
    params = load_params(Path(root) / DEFAULT_PARAMS)
    downloads = read_downloads(params, Path(root))
    # dvc repro starts a stage from empty outputs; do the same so no stale file survives
    shutil.rmtree(Path(root) / params.paths.normalized, ignore_errors=True)
    results = normalize_one.map(downloads, unmapped(params), unmapped(root)).result()
    finish([row for row, _ in results], params, Path(root), get_run_logger())
    return sorted({pid for _, pid in results})


def _dvc(root: Path, *args: str) -> str:
    """`dvc ARGS` run in `root`: DVC resolves targets and paths against the working directory, which
    in this process is wherever `vocalsep serve-flows` was started, not the workspace of this run."""
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=stage_env(), capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0:
        raise StageError(f"dvc {' '.join(args)} in {root} failed: {(done.stderr or done.stdout).strip()[-500:]}")
    return done.stdout


def _is_stale(root: Path) -> bool:
    return bool(json.loads(_dvc(root, "status", "--json", STAGE) or "{}"))


def normalize_fanout(root: Path, dask_address: str | None = None) -> str:
    """Run normalize on Dask (`dask_address`, else a local 2-worker cluster) if DVC says it is stale."""
    logger = get_run_logger()
    if not _is_stale(root):
        logger.info("stage %s skipped: DVC reports it up to date", STAGE)
        return SKIPPED
    runner = DaskTaskRunner(address=dask_address) if dask_address else DaskTaskRunner(cluster_kwargs=LOCAL_CLUSTER)
    workers = normalize_files.with_options(task_runner=runner)(str(root))
    logger.info("normalized in worker processes %s (the flow runs in process %d)", ", ".join(map(str, workers)),
                os.getpid())
    _dvc(root, "commit", "--force", STAGE)
    logger.info("stage %s ran on Dask; outputs committed to dvc.lock", STAGE)
    return RAN
