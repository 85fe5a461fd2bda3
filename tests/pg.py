"""A throwaway PostgreSQL cluster for the scale-out tests: initdb + pg_ctl in a temp folder, loopback only.

Debian's `postgresql` package provides the binaries (`/usr/lib/postgresql/<v>/bin`);
tests skip, saying why, without them. PostgreSQL refuses to run as root, so
as root the cluster runs as the `postgres` user the package creates.
Authentication is `trust` on 127.0.0.1 only: a test database, never a server.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port

USER = "vocalsep"


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL bin folder holding initdb, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def missing_reason() -> str | None:
    """Why the cluster cannot start here, or None."""
    if pg_bin() is None:
        return "PostgreSQL is not installed (Debian: apt-get install postgresql; .ci/run installs it where it can)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser to start PostgreSQL as the postgres user"
    return None


@dataclass(frozen=True)
class Cluster:
    port: int
    folder: Path

    def url(self, database: str, driver: str = "postgresql") -> str:
        return f"{driver}://{USER}@127.0.0.1:{self.port}/{database}"


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def throwaway_cluster(databases: tuple[str, ...] = ("mlflow", "prefect")) -> Iterator[Cluster]:
    """Start a cluster on a free loopback port with `databases`; stop and delete it after."""
    binaries = pg_bin()
    assert binaries is not None, missing_reason()
    folder = Path(tempfile.mkdtemp(prefix="vocalsep-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", free_port()
    run = lambda cmd: subprocess.run(_as_owner(cmd), check=True, capture_output=True, text=True, timeout=120)  # noqa: E731
    try:
        run([str(binaries / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"])
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        run([str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w",
             "start"])
        for database in databases:
            run([str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", USER, database])
        yield Cluster(port, folder)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(_as_owner([str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                           capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)
