"""Shared pieces of the serving tests: tiny params for a registry of its own, and a real
`mlflow models serve` on a loopback port (started, pinged, stopped with its workers)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REPO_ROOT, free_port, relocate_paths
from tests.tiny_repo import venv_env
from vocalsep.config import load_params

TINY = {"filters": 4, "skip_filters": 6, "layers": 4, "layers_per_stack": 2}
RATE = 8000
PING_TIMEOUT = 120.0


def write_testset(testset: Path, seed: int = 0, seconds: float = 0.5) -> None:
    """Two short tracks of noise-like stems at RATE with mixture = vocals + accompaniment."""
    rng = np.random.default_rng(seed)
    for name in ("track_00", "track_01"):
        vocals, accompaniment = 0.1 * rng.standard_normal((2, int(seconds * RATE), 2))
        (testset / name).mkdir(parents=True, exist_ok=True)
        for stem, audio in (("vocals", vocals), ("accompaniment", accompaniment), ("mixture", vocals + accompaniment)):
            sf.write(testset / name / f"{stem}.flac", audio, RATE, subtype="PCM_24")


# What the tiny models "learned from": the index's source ids and their download records (provenance)
SOURCES = [
    {"id": "aaa111", "role": "acapella", "url": "https://example.com/voice.mp3", "title": "Singer - Song (Acapella)",
     "license": "CC-BY-4.0", "sha256": "1" * 64, "status": "ok"},
    {"id": "bbb222", "role": "instrumental", "url": "https://example.com/band.mp3", "title": "Band - Song (Inst.)",
     "license": "CC0-1.0", "sha256": "2" * 64, "status": "ok"},
]


def write_sources(params) -> None:
    """An index (train/val/test) over SOURCES and the download stage's downloads.jsonl for them."""
    import pandas as pd

    index, raw = Path(params.paths.index), Path(params.paths.raw)
    index.mkdir(parents=True, exist_ok=True)
    raw.mkdir(parents=True, exist_ok=True)
    rows = pd.DataFrame([{"id": s["id"], "role": s["role"]} for s in SOURCES])
    for split in ("train", "val", "test"):
        rows.to_parquet(index / f"{split}.parquet", index=False)
    (raw / "downloads.jsonl").write_text("".join(json.dumps(s) + "\n" for s in SOURCES))


def tiny_params(root: Path):
    """Real params under `root`: 8 kHz, 50 ms chunks, a 1 s input limit, a store of its own, and a
    two-track test set written under `root` (export tags each version with the test set's hash)."""
    params = relocate_paths(load_params(REPO_ROOT / "params.yaml"), root)
    write_testset(Path(params.paths.testset))
    write_sources(params)
    return dataclasses.replace(
        params,
        audio=dataclasses.replace(params.audio, sample_rate=RATE),
        separate=dataclasses.replace(params.separate, chunk_seconds=0.05, overlap_seconds=0.01, device="cpu"),
        # these tests promote between their own tiny models; the shipped base model as a contender is
        # tests/model/test_base_contender.py's
        export=dataclasses.replace(params.export, max_seconds=1.0, base=False),
        tracking=dataclasses.replace(params.tracking, uri=f"sqlite:///{root}/mlruns/mlflow.db",
                                     artifacts=str(root / "mlruns" / "artifacts")),
    )


def post(port: int, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def wait_for_ping(server: subprocess.Popen, port: int, log: Path) -> bool:
    """True once /ping answers; False if the server died because the port was taken meanwhile."""
    deadline = time.monotonic() + PING_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            if "address already in use" in log.read_text().lower():
                return False
            pytest.fail(f"mlflow models serve exited {server.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as answer:
                if answer.status == 200:
                    return True
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"no /ping answer within {PING_TIMEOUT:.0f} s:\n{log.read_text()[-4000:]}")


MLFLOW_SERVE = ["mlflow", "models", "serve", "--env-manager", "local"]


def start_server(model_uri: str, tracking_uri: str, folder: Path, attempts: int = 3,
                 command: list[str] | None = None) -> tuple[subprocess.Popen, int]:
    """A real server (`mlflow models serve`, or `command` such as `vocalsep serve ...`) on a free loopback
    port, answering /ping; another port if one was taken."""
    for _ in range(attempts):
        port, log = free_port(), folder / "serve.log"
        cmd = [*(command or MLFLOW_SERVE), "-m", model_uri, "-h", "127.0.0.1", "-p", str(port)]
        with log.open("w") as out:
            process = subprocess.Popen(cmd, cwd=folder, env=venv_env({"MLFLOW_TRACKING_URI": tracking_uri}),
                                       stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            if wait_for_ping(process, port, log):
                return process, port
        except BaseException:
            stop_group(process)
            raise
    pytest.fail(f"mlflow models serve found no free port in {attempts} attempts")


def stop_group(process: subprocess.Popen) -> None:
    """End the server and the workers it forked (its own process group)."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:  # the whole group is already gone
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
