"""Pipeline stages: one module each, a pure function plus `main(argv=None)` for dvc.yaml.

What several stages share lives here: the names of the files one stage writes
and the next reads, and how paths are stored in manifests.
"""

from __future__ import annotations

from pathlib import Path

DOWNLOADS_NAME = "downloads.jsonl"  # download -> normalize
MANIFEST_NAME = "manifest.parquet"  # normalize -> validate


def repo_relative(path: Path, root: Path) -> str:
    """`path` relative to `root` with `/` separators; absolute when it lies outside `root`."""
    path, root = Path(path).resolve(), Path(root).resolve()
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
