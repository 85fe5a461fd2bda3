"""`build_corpus`: a set of the corpus built from the spec (fetch, extract, join or copy), with the sources
manifest of relative `file:` URLs and ATTRIBUTION.md that the download stage then ingests."""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from vocalsep.corpus.debs import extract_groups, fetch_deb
from vocalsep.corpus.join import JoinParams, join_utterances
from vocalsep.corpus.spec import SETS, CorpusError, Group, Package, load_spec

log = logging.getLogger(__name__)


@dataclass
class Track:
    """One file of the built corpus, as it goes into the sources manifest."""

    path: Path
    role: str
    title: str
    package: Package
    sample_rate: int
    members: list[str] = field(default_factory=list)


def build_corpus(spec: str | Path, which: str, out: str | Path, cache: str | Path,
                 join: JoinParams | None = None) -> list[Track]:
    """Build set `which` of the corpus into `out`: audio, `sources.yaml` and `ATTRIBUTION.md`."""
    if which not in SETS:
        raise CorpusError(f"corpus set {which!r} is unknown; use one of {', '.join(SETS)}")
    join = join or JoinParams()
    out = Path(out)
    packages = [p for p in load_spec(spec) if any(g.set == which for g in p.groups)]
    if not packages:
        raise CorpusError(f"{spec}: no package has a group for set {which!r}")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    tracks: list[Track] = []
    for package in packages:
        tracks += _build_package(package, which, out, cache, join)
    write_manifest(tracks, out)
    write_attribution(packages, tracks, out)
    return tracks


def _build_package(package: Package, which: str, out: Path, cache: str | Path, join: JoinParams) -> list[Track]:
    groups = [g for g in package.groups if g.set == which]
    deb = fetch_deb(package, cache)
    tracks: list[Track] = []
    with tempfile.TemporaryDirectory(prefix="vocalsep-corpus-") as tmp:
        files = extract_groups(deb, groups, Path(tmp))
        for group in groups:
            if not files[group.name]:
                where = f" inside {group.archive}" if group.archive else ""
                raise CorpusError(f"{package.package}: group {group.name!r} selects no audio file{where} "
                                  f"({', '.join(group.include)}); fix its globs in the spec")
            folder = out / group.role / package.package
            folder.mkdir(parents=True, exist_ok=True)
            if group.join:
                tracks += _joined(package, group, files[group.name], folder, join)
            else:
                tracks += _copied(package, group, files[group.name], folder, Path(tmp))
    log.info("%s: %d track(s) for set %s", package.package, len(tracks), which)
    return tracks


def _joined(package: Package, group: Group, files: list[Path], folder: Path, join: JoinParams) -> list[Track]:
    seed = int.from_bytes(hashlib.sha256(f"{join.seed}/{package.package}/{group.name}".encode()).digest()[:8], "little")
    tracks = []
    for n, (audio, rate, members) in enumerate(join_utterances(files, join, np.random.default_rng(seed)), 1):
        path = folder / f"{group.name}-{n:03d}.flac"
        sf.write(path, np.clip(audio, -1, 1), rate, subtype="PCM_24")
        tracks.append(Track(path, group.role, f"{package.package} {group.name} {n}", package, rate,
                            [m.name for m in members]))
    return tracks


def _copied(package: Package, group: Group, files: list[Path], folder: Path, root: Path) -> list[Track]:
    tracks = []
    for path in files:
        relative = path.relative_to(root)
        target = folder / relative.name
        if target.exists():  # two folders of one package may hold the same file name
            target = folder / "-".join(relative.parts[-2:])
        shutil.copyfile(path, target)
        try:
            rate = sf.info(str(target)).samplerate
        except (sf.LibsndfileError, RuntimeError):
            rate = 0  # decoded later through ffmpeg (e.g. some mp3 or opus files)
        tracks.append(Track(target, group.role, f"{package.package} {path.stem}", package, rate, [path.name]))
    return tracks


def write_manifest(tracks: list[Track], out: Path) -> Path:
    """`out/sources.yaml`: relative `file:` URLs with title, licence, package, version and original rate."""
    entries = [{
        "url": f"file:{t.path.relative_to(out).as_posix()}",
        "role": t.role,
        "title": t.title,
        "license": t.package.license,
        "package": t.package.package,
        "version": t.package.version,
        "sample_rate": int(t.sample_rate),
    } for t in tracks]
    path = out / "sources.yaml"
    header = ("# Written by vocalsep.corpus from the corpus spec: real recordings from pinned Debian packages.\n"
              "# file: URLs are relative to this folder. sample_rate is the recording's own rate.\n")
    path.write_text(header + yaml.safe_dump(entries, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def write_attribution(packages: list[Package], tracks: list[Track], out: Path) -> Path:
    """`out/ATTRIBUTION.md`: what CC-BY(-SA) material needs wherever the corpus or its audio goes."""
    counts = Counter(t.package.package for t in tracks)
    lines = ["# Attribution", "",
             "Audio in this folder comes from these Debian packages (bookworm). CC-BY-SA material is",
             "shared under the same licence; keep this file with any copy of the audio.", "",
             "| package | version | sha256 of the .deb | licence | files | attribution |",
             "|---|---|---|---|---|---|"]
    for p in packages:
        lines.append(f"| {p.package} | {p.version} | `{p.sha256}` | {p.license} | {counts[p.package]} | "
                     f"{p.attribution} |")
    path = out / "ATTRIBUTION.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
