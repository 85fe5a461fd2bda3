"""One Prefect task per DVC stage: DVC decides what is stale, Prefect logs and reports.

No task is retried: the one place that retries is the download stage itself
(`fetch_with_retries`), which knows a transient failure (a network error, HTTP
5xx/408/429) from a permanent one (a dead URL) and records each URL's attempts.
Retrying a whole stage on top of it would repeat every URL's attempts.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections import deque
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.repro import RAN_MARKER, REPRO_FAILED
from vocalsep.errors import StageError

RAN, SKIPPED, FAILED, NOT_RUN = "ran", "skipped", "failed", "not run"


def stage_env() -> dict[str, str]:
    """Environment of the stage subprocess: this venv first on PATH (dvc.yaml calls `python`)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"  # stage lines reach the run log as they happen
    env.setdefault("TQDM_DISABLE", "1")
    return env


def _error_line(tail: deque[str]) -> str:
    """The stage's own message: its `error in stage` line, else its last line before DVC's verdict."""
    lines = [line for line in tail if line.strip()]
    for line in reversed(lines):
        if line.startswith("error in stage"):
            return line
    own = [line for line in lines if not line.startswith(REPRO_FAILED)]
    verdict = [line for line in lines if line.startswith(REPRO_FAILED)]
    return "; ".join(([own[-1]] if own else []) + verdict[-1:]) or "no output"


@task(task_run_name="{stage}", retries=0, cache_policy=NO_CACHE)
def reproduce_stage(root: str, stage: str) -> str:
    """`dvc repro --single-item <stage>` in `root`, streaming its output; returns RAN or SKIPPED."""
    logger = get_run_logger()
    cmd = [sys.executable, "-m", "flows.repro", root, stage]
    ran: list[str] | None = None
    tail: deque[str] = deque(maxlen=40)
    with subprocess.Popen(cmd, cwd=root, env=stage_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        for raw in proc.stdout:
            line = raw.rstrip()
            if line.startswith(RAN_MARKER):
                ran = json.loads(line[len(RAN_MARKER):])
                continue
            tail.append(line)
            logger.log(logging.ERROR if line.startswith("error in stage") else logging.INFO, "%s", line)
    if proc.returncode != 0 or ran is None:
        raise StageError(f"stage {stage} failed (exit {proc.returncode}): {_error_line(tail)}")
    status = RAN if stage in ran else SKIPPED
    logger.info("stage %s %s (DVC ran: %s)", stage, status, ", ".join(ran) or "nothing")
    return status
