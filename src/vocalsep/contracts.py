"""What the data stages hand each other, named once: the manifest's columns (normalize -> validate ->
index), the snippet index's columns (index -> train), and how paths are stored in manifests. A leaf module
any room may import. The files themselves are named as properties of `PathsParams` (`params.paths.manifest`,
...)."""

from __future__ import annotations

import hashlib

from pathlib import Path

# normalize -> validate -> index: the manifest's columns (docs/pipeline.md), column -> pandas dtype, in order.
MANIFEST_COLUMNS: dict[str, str] = {
    "id": "str", "role": "str", "path": "str", "source_path": "str",
    "sample_rate": "int64", "channels": "int64", "source_sample_rate": "int64", "source_channels": "int64",
    "duration": "float64", "peak": "float64", "loudness": "float64",
    "silence_ratio": "float64", "clipping_ratio": "float64",
    "sha256": "str", "status": "str", "reason": "str",
}

INDEX_COLUMNS = ("id", "role", "path", "split", "start", "frames", "sample_rate", "active_fraction")  # index -> train
INDEX_INTEGERS = ("start", "frames", "sample_rate")


def repo_relative(path: Path, root: Path) -> str:
    """`path` relative to `root` with `/` separators; absolute when it lies outside `root`."""
    path, root = Path(path).resolve(), Path(root).resolve()
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def sha256_file(path: str | Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks: how manifests, .debs and weights are identified."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


SOURCE_TAG, SOURCE = "source", "pretrained"  # the registry tag that marks a version as the shipped base model


def is_base(tags: dict) -> bool:
    """Whether a registry version's tags mark it as the shipped base model (the export stage, the CLI)."""
    return tags.get(SOURCE_TAG) == SOURCE
