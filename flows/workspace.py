"""The DVC workspace a flow run works on: stage order, a run-exclusive lock, params overrides."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import time
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import networkx as nx
from ruamel.yaml import YAML

from vocalsep.config import DEFAULT_PARAMS, ParamsError, params_from_dict
from vocalsep.errors import VocalsepError


def _default_repo() -> Path:
    """The checkout this `flows/` sits in (an editable install), else the working directory (an installed
    package, as in the Docker image, started in the workspace)."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "dvc.yaml").is_file() else Path.cwd()


REPO_ROOT = _default_repo()
LOCK_NAME = ".dvc/tmp/vocalsep-flow.lock"  # .dvc/tmp is git-ignored by DVC itself


class WorkspaceError(VocalsepError):
    """A workspace a flow cannot run in: no dvc.yaml, a bad params override."""


def check_workspace(root: Path) -> None:
    """A WorkspaceError naming `repo` unless `root` holds dvc.yaml, params.yaml and a .dvc folder."""
    missing = [name for name in ("dvc.yaml", str(DEFAULT_PARAMS), ".dvc") if not (root / name).exists()]
    if missing:
        raise WorkspaceError(f"repo {root} is not a vocalsep workspace ({', '.join(missing)} missing): "
                             "pass the repository root as `repo`")


def stage_target(root: Path, stage: str) -> str:
    """DVC's target for `stage` of `root/dvc.yaml`, whatever this process's working directory: a bare
    stage name is looked up in the dvc.yaml of the working directory, not in the repo's."""
    return f"{(Path(root) / 'dvc.yaml').resolve()}:{stage}"


def pipeline_order(root: Path) -> list[str]:
    """Stage names of `root/dvc.yaml` in dependency order, ties kept in the file's order.

    Names, not DVC's addresses: an address is relative to this process's working directory
    (`../other/dvc.yaml:train` when `vocalsep serve-flows` runs a deployment on another workspace)."""
    from dvc.repo import Repo

    check_workspace(root)
    with Repo(str(root)) as repo:
        graph = repo.index.graph  # edges run from a stage to the stages it depends on
        written = [stage.name for stage in repo.index.stages]
        names = {stage: stage.name for stage in graph.nodes}
    position = {name: i for i, name in enumerate(written)}
    ordered = nx.lexicographical_topological_sort(graph.reverse(), key=lambda s: position[names[s]])
    return [names[stage] for stage in ordered]


def _read_holder(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text().strip() or "an unnamed run"
    return "an unnamed run"


@contextlib.contextmanager
def workspace_lock(root: Path, holder: str, logger: logging.Logger | logging.LoggerAdapter,
                   poll_seconds: float = 2.0) -> Iterator[None]:
    """Hold the workspace for one flow run; a second run waits (DVC's own lock would fail instead)."""
    path = root / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        waited = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    logger.info("waiting for the workspace lock held by run %s (%s)", _read_holder(path), path)
                    waited = True
                time.sleep(poll_seconds)
        if waited:
            logger.info("workspace lock acquired after waiting")
        handle.truncate(0)
        handle.write(holder)
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _merge(base: dict, overrides: dict) -> list[str]:
    """Update the round-trip mapping `base` in place; returns the dotted keys that changed."""
    changed = []
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            changed += [f"{key}.{sub}" for sub in _merge(base[key], value)]
        elif base.get(key) != value:
            base[key] = value
            changed.append(str(key))
    return changed


def _load_overrides(params_file: str | None, root: Path) -> dict:
    if not params_file:
        return {}
    path = Path(params_file) if Path(params_file).is_absolute() else root / params_file
    if not path.is_file():
        raise WorkspaceError(f"params_file {path} not found: pass a YAML file with the keys to change")
    values = YAML(typ="safe").load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise WorkspaceError(f"params_file {path} must be a mapping of params.yaml sections")
    return values


def apply_overrides(root: Path, params_file: str | None = None, sources: str | None = None) -> list[str]:
    """Merge `params_file` and `download.sources = sources` into `root/params.yaml`, comments kept.

    The merged file is checked against the params schema before it is written,
    so a bad override fails here naming the key, and params.yaml is left as it was.
    Returns the dotted keys that changed (empty: nothing written).
    """
    overrides = _load_overrides(params_file, root)
    if sources:
        overrides.setdefault("download", {})["sources"] = sources
    if not overrides:
        return []
    yaml = YAML()  # round-trip: keeps the comments that document every key
    target = root / DEFAULT_PARAMS
    document = yaml.load(target.read_text())
    changed = _merge(document, overrides)
    try:
        params_from_dict(YAML(typ="safe").load(_dump(yaml, document)))
    except ParamsError as err:
        raise WorkspaceError(f"params override from {params_file or 'sources'} is invalid: {err}") from err
    if changed:
        target.write_text(_dump(yaml, document))
    return changed


def _dump(yaml: YAML, document: object) -> str:
    buffer = StringIO()
    yaml.dump(document, buffer)
    return buffer.getvalue()
