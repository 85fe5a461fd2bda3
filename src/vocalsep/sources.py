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
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import yaml

from vocalsep.errors import VocalsepError

ROLES = ("acapella", "instrumental")
FIELDS = ("url", "role", "title", "license", "package", "version", "sample_rate")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


class SourcesError(VocalsepError):
    """A manifest that cannot be read or has an invalid entry."""


@dataclass(frozen=True)
class Source:
    """One manifest entry; `url` exactly as written, `id` = `source_id(url)`."""

    url: str
    role: str
    title: str | None
    license: str | None
    id: str
    package: str | None = None
    version: str | None = None
    sample_rate: int | None = None


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


def _text(value: object, where: str, name: str) -> str | None:
    """An optional text field; YAML numbers (a title like 1984) are taken as text."""
    if value is None:
        return None
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise SourcesError(f"{where}: field '{name}' must be text, got {value!r}")


def _entry(raw: object, where: str) -> Source:
    if not isinstance(raw, dict):
        raise SourcesError(f"{where}: expected a mapping with url and role, got {raw!r}")
    unknown = sorted(set(map(str, raw)) - set(FIELDS))
    if unknown:
        raise SourcesError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(FIELDS)}")
    url = raw.get("url")
    if not isinstance(url, str) or not url.strip():
        raise SourcesError(f"{where}: field 'url' is missing or empty; give the song's URL")
    url = url.strip()
    if not _SCHEME.match(url):
        raise SourcesError(f"{where}: field 'url' {url!r} has no scheme; write https://... "
                           "or file:path/relative/to/the/manifest")
    role = raw.get("role")
    if role not in ROLES:
        raise SourcesError(f"{where}: field 'role' is {role!r}; use one of {', '.join(ROLES)}")
    rate = raw.get("sample_rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int) or rate < 0):
        raise SourcesError(f"{where}: field 'sample_rate' must be a whole number of Hz, got {rate!r}")
    return Source(url=url, role=role, title=_text(raw.get("title"), where, "title"),
                  license=_text(raw.get("license"), where, "license"), id=source_id(url),
                  package=_text(raw.get("package"), where, "package"),
                  version=_text(raw.get("version"), where, "version"), sample_rate=rate)


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
