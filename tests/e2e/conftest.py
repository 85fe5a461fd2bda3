"""Session-wide servers for end-to-end tests: one real Prefect server on SQLite, on loopback."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.tiny_repo import venv_env

PREFECT_STARTUP_SECONDS = 180  # the server takes 15-30 s to start here, more under load


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Poll `url` until it answers 200; fail with the server's log if it dies or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text()[-4000:]}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def prefect_env(tmp_path_factory) -> dict[str, str]:
    """A real `prefect server start` (temp PREFECT_HOME, SQLite); the env that points clients at it."""
    home = tmp_path_factory.mktemp("prefect_home")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = venv_env({"PREFECT_HOME": str(home), "PREFECT_API_URL": api, "PREFECT_UI_ENABLED": "false",
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_RUNNER_POLL_FREQUENCY": "2",
                    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": str(PREFECT_STARTUP_SECONDS),
                    "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.5"})
    log = home / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"{api}/health", proc, log, PREFECT_STARTUP_SECONDS)
        yield env
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def prefect_api(prefect_env):
    """This test process's Prefect settings pointed at the session server."""
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    with temporary_settings({PREFECT_API_URL: prefect_env["PREFECT_API_URL"],
                             PREFECT_HOME: prefect_env["PREFECT_HOME"]}):
        yield prefect_env["PREFECT_API_URL"]
