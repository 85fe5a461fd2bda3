"""Sources manifests: the YAML lists of song URLs the download stage fetches.

A manifest is a list of entries `{url, role, title?, license?, package?, version?,
sample_rate?}` (docs/pipeline.md, "Sources manifest"); the last three record where a
real-corpus file came from (Debian package and version) and its own sample rate. A `file:` URL without `//` is a path relative to the
manifest's folder; `resolve_url` turns it into an absolute `file:///` URL.
"""

from __future__ import annotations

import hashlib
import json
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import unquote

import yaml

from vocalsep.errors import VocalsepError
from vocalsep.schema import Problem, Text, build, must, ranged

Role = Literal["acapella", "instrumental"]  # the one spelling of the roles (manifests, the corpus spec, the index)
ROLES: tuple[str, ...] = typing.get_args(Role)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


class SourcesError(VocalsepError):
    """A manifest that cannot be read or has an invalid entry."""


@dataclass(frozen=True)
class Source:
    """One manifest entry; `url` as written (stripped), `id` = `source_id(url)`; checked by `vocalsep.schema`."""

    url: str
    role: Role
    title: Text | None = must("text", None)
    license: Text | None = must("text", None)
    package: Text | None = must("text", None)
    version: Text | None = must("text", None)
    sample_rate: int | None = ranged(None, ge=0, must="a whole number of Hz")
    id: str = field(init=False)

    RULES = (("url", lambda s: _SCHEME.match(s.url) is not None,
              "{url!r} has no scheme; write https://... or file:path/relative/to/the/manifest"),)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", source_id(self.url))


def source_id(url: str) -> str:
    """Stable file id of a URL as written in the manifest: `sha1(url)[:12]`."""
    return hashlib.sha1(url.encode("utf-8")).hexdigest()[:12]


def resolve_url(url: str, manifest_dir: str | Path) -> str:
    """`file:relative/path` -> `file:///abs/path` (relative to `manifest_dir`); other URLs unchanged."""
    if not url.startswith("file:") or url.startswith("file://"):
        return url
    path = Path(manifest_dir) / unquote(url[len("file:"):])  # an absolute `file:/x` stays /x
    return path.resolve().as_uri()


def file_url_path(url: str) -> Path | None:
    """The local path of an absolute `file://` URL, else None."""
    if not url.startswith("file://"):
        return None
    rest = url[len("file://"):]
    return Path(unquote(rest[rest.index("/"):] if "/" in rest else rest))


def _read_yaml(path: Path) -> object:
    if not path.is_file():
        raise SourcesError(f"{path}: sources manifest not found; set download.sources in params.yaml "
                           "to an existing manifest (see sources/example-youtube.yaml)")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise SourcesError(f"{path}: not valid YAML ({err}); fix the manifest") from None


_HELP = {"url": "give the song's URL", "role": f"use one of {', '.join(ROLES)}"}


def _say(where: str):
    """A manifest's wording of a schema problem: the file, the entry (1-based) and the field."""
    def say(problem: Problem) -> str:
        name = problem.names[0]
        if problem.kind == "missing":
            return f"{where}: field '{name}' is missing or empty; {_HELP.get(name, 'give a value')}"
        if problem.kind == "rule":
            return f"{where}: field '{name}' {problem.must}"
        return f"{where}: {problem.words(f'field {name!r}')}"
    return say


def _entry(raw: object, where: str) -> Source:
    if not isinstance(raw, dict):
        raise SourcesError(f"{where}: expected a mapping with url and role, got {raw!r}")
    if isinstance(raw.get("url"), str):
        raw = {**raw, "url": raw["url"].strip()}
    return build(Source, raw, say=_say(where), error=SourcesError)


def load_sources(path: str | Path) -> list[Source]:
    """Read and validate a manifest; errors name the file, the entry (1-based) and the field."""
    path = Path(path)
    entries = _read_yaml(path)
    if not isinstance(entries, list) or not entries:
        raise SourcesError(f"{path}: expected a non-empty list of entries (- url: ...\\n  role: ...)")
    sources: list[Source] = []
    first_seen: dict[str, int] = {}
    for number, raw in enumerate(entries, start=1):
        source = _entry(raw, f"{path}: entry {number}")
        if source.url in first_seen:
            raise SourcesError(f"{path}: entry {number}: url {source.url!r} repeats entry "
                               f"{first_seen[source.url]}; list each URL once")
        first_seen[source.url] = number
        sources.append(source)
    return sources


def read_downloads(path: Path) -> dict[str, dict]:
    """The download stage's records (`params.paths.downloads`) by source id; {} when absent."""
    if not path.is_file():
        return {}
    records = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return {r["id"]: r for r in records if isinstance(r, dict) and "id" in r}
