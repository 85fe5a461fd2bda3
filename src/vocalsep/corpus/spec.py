"""The corpus spec (`sources/debian-corpus.yaml`): packages with a pinned version, sha256, licence and
attribution, and groups of audio inside each (globs, role, set, joining, conditions); checked on load, with
errors that name the entry and the key."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from vocalsep.errors import VocalsepError



SETS = ("train", "eval")
CONDITIONS = ("unseen", "seen")  # of an eval group, against every train group
RESERVED = ("drascula", "fillets-ng")  # every drascula* and fillets-ng* package: held out for independent evaluation


class CorpusError(VocalsepError):
    """A corpus spec or package that cannot be used."""


@dataclass(frozen=True)
class Group:
    """Audio files of one package used one way: `include` globs minus `exclude` globs, relative to the package root."""

    name: str
    set: str
    role: str
    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    join: bool = False
    # eval groups only: "seen" when the audio shares a speaker, prompt series, game or recording chain with a
    # train group (benchmarks/quality.py reports those apart); "unseen" otherwise
    conditions: str = "unseen"


@dataclass(frozen=True)
class Package:
    package: str
    version: str
    sha256: str
    license: str
    attribution: str
    groups: tuple[Group, ...]
    deb: str | None = None  # a local .deb instead of apt-get download (tests, offline mirrors)


def load_spec(path: str | Path) -> list[Package]:
    """Read and check a corpus spec; errors name the file, the package and the field."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: corpus spec not found; set corpus.spec in params.yaml")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = raw.get("packages") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise CorpusError(f"{path}: expected 'packages:' with a list of packages")
    packages = [_package(entry, f"{path}: package {i}", path.parent) for i, entry in enumerate(entries, 1)]
    names = Counter(p.package for p in packages)
    twice = [n for n, c in names.items() if c > 1]
    if twice:
        raise CorpusError(f"{path}: package(s) {', '.join(twice)} listed twice; list each once with all its groups")
    return packages


def _package(entry: object, where: str, base: Path) -> Package:
    if not isinstance(entry, dict):
        raise CorpusError(f"{where}: expected a mapping (package, version, sha256, license, attribution, groups)")
    unknown = sorted(set(map(str, entry)) - {"package", "version", "sha256", "license", "attribution", "groups", "deb"})
    if unknown:
        raise CorpusError(f"{where}: unknown field(s) {', '.join(unknown)}")
    missing = [k for k in ("package", "version", "sha256", "license", "attribution", "groups") if not entry.get(k)]
    if missing:
        raise CorpusError(f"{where}: missing field(s) {', '.join(missing)}")
    name = str(entry["package"])
    if name.startswith(RESERVED):
        raise CorpusError(f"{where}: {name} is reserved for independent evaluation and never used; remove it")
    sha = str(entry["sha256"]).lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise CorpusError(f"{where} ({name}): sha256 must be 64 hex digits, got {entry['sha256']!r}")
    groups = tuple(_group(g, f"{where} ({name}) group {i}") for i, g in enumerate(entry["groups"], 1))
    twice = sorted(n for n, c in Counter(g.name for g in groups).items() if c > 1)
    if twice:  # extract_groups keys files by group name: two groups of one name would each get both's files
        raise CorpusError(f"{where} ({name}): group name(s) {', '.join(twice)} used twice; name each group apart")
    deb = entry.get("deb")
    return Package(name, str(entry["version"]), sha, str(entry["license"]), str(entry["attribution"]), groups,
                   str((base / deb).resolve()) if deb else None)


def _group(raw: object, where: str) -> Group:
    if not isinstance(raw, dict):
        raise CorpusError(f"{where}: expected a mapping (name, set, role, include)")
    unknown = sorted(set(raw) - {"name", "set", "role", "include", "exclude", "join", "conditions"})
    if unknown:
        raise CorpusError(f"{where}: unknown field(s) {', '.join(unknown)}")
    if raw.get("set") not in SETS:
        raise CorpusError(f"{where}: set is {raw.get('set')!r}; use one of {', '.join(SETS)}")
    if raw.get("role") not in ("acapella", "instrumental"):
        raise CorpusError(f"{where}: role is {raw.get('role')!r}; use acapella or instrumental")
    include = raw.get("include")
    if not include or not isinstance(include, list):
        raise CorpusError(f"{where}: include must be a non-empty list of globs")
    conditions = raw.get("conditions", "unseen")
    if conditions not in CONDITIONS or (conditions != "unseen" and raw["set"] != "eval"):
        raise CorpusError(f"{where}: conditions is {conditions!r}; use seen or unseen, and only in an eval group")
    return Group(str(raw.get("name") or raw["role"]), raw["set"], raw["role"], tuple(map(str, include)),
                 tuple(map(str, raw.get("exclude") or ())), bool(raw.get("join", False)), conditions)
