"""The corpus spec (`sources/debian-corpus.yaml`): packages with a pinned version, sha256, licence and
attribution, and groups of audio inside each (globs, role, set, joining, conditions); checked on load by the
project's one schema library (`vocalsep.schema`), with errors that name the file, the entry and the field."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from vocalsep.errors import VocalsepError
from vocalsep.schema import Problem, Text, build, must
from vocalsep.sources import Role


SETS = ("train", "eval")
CONDITIONS = ("unseen", "seen")  # of an eval group, against every train group
RESERVED = ("drascula", "fillets-ng")  # every drascula* and fillets-ng* package: held out for independent evaluation


class CorpusError(VocalsepError):
    """A corpus spec or package that cannot be used."""


@dataclass(frozen=True)
class Group:
    """Audio files of one package used one way: `include` globs minus `exclude` globs, relative to the package root."""

    set: Literal["train", "eval"]
    role: Role
    include: tuple[str, ...] = must("a non-empty list of globs")
    name: str = ""  # the role when empty
    exclude: tuple[str, ...] = ()
    join: bool = False
    # eval groups only: "seen" when the audio shares a speaker, prompt series, game or recording chain with a
    # train group (benchmarks/quality.py reports those apart); "unseen" otherwise
    conditions: Literal["unseen", "seen"] = "unseen"
    # a zip archive inside the package (a game's .pk3 or .zip); include and exclude then match paths inside it
    archive: str = ""

    RULES = (("conditions", lambda g: g.conditions == "unseen" or g.set == "eval",
              "conditions is {conditions!r}; use seen or unseen, and only in an eval group"),)


@dataclass(frozen=True)
class Package:
    package: str
    version: Text
    sha256: Text
    license: Text
    attribution: Text
    groups: tuple[Group, ...]
    deb: str | None = None  # a local .deb instead of apt-get download (tests, offline mirrors)

    RULES = (
        ("package", lambda p: not p.package.startswith(RESERVED),
         "{package} is reserved for independent evaluation and never used; remove it"),
        ("sha256", lambda p: re.fullmatch("[0-9a-f]{64}", p.sha256.lower()) is not None,
         "sha256 must be 64 hex digits, got {sha256!r}"),
        ("groups", lambda p: not [n for n, c in Counter(g.name or g.role for g in p.groups).items() if c > 1],
         # extract_groups keys files by group name: two groups of one name would each get both's files
         "group name(s) {groups_twice} used twice; name each group apart"),
    )

    @property
    def groups_twice(self) -> str:
        return ", ".join(sorted(n for n, c in Counter(g.name or g.role for g in self.groups).items() if c > 1))


def _say(where: str, entry: dict):
    """The corpus spec's wording of a schema problem: the file, the package (and group) and the field."""
    def say(problem: Problem) -> str:
        place, at = where, problem.at
        group = re.match(r"groups\[(\d+)\]\.?", at)
        if group:
            place, at = f"{where} ({entry.get('package')}) group {int(group[1]) + 1}", at[group.end():]
        elif problem.kind == "rule":
            place = f"{where} ({entry.get('package')})"
        name = f"{at}.{problem.names[0]}" if at else problem.names[0]
        if problem.kind == "missing":
            return f"{place}: missing field(s) {', '.join(problem.names)}"
        if problem.kind == "rule":
            return f"{place}: {problem.must}"
        return f"{place}: {problem.words(name)}"
    return say


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
    if isinstance(entry.get("groups"), list):
        for i, group in enumerate(entry["groups"], 1):
            if not isinstance(group, dict):
                raise CorpusError(f"{where} ({entry.get('package')}) group {i}: expected a mapping (name, set, role, include)")
    package = build(Package, entry, say=_say(where, entry), error=CorpusError)
    groups = tuple(dataclasses.replace(g, name=g.name or g.role) for g in package.groups)
    return dataclasses.replace(package, sha256=package.sha256.lower(), groups=groups,
                               deb=str((base / package.deb).resolve()) if package.deb else None)
