"""The real corpus: redistributable recordings from pinned Debian packages.

A corpus spec (`sources/debian-corpus.yaml`) lists packages with a pinned
version and sha256, their licence and attribution, and groups of audio inside
each: which files (globs), which role, which set (`train` or `eval`) and
whether short utterances are joined into longer acapella tracks.

`build_corpus` fetches each package once with `apt-get download` (nothing is
installed), checks its sha256, keeps the .deb in a cache, extracts only the
audio it needs (never a path outside the destination), joins utterances with
natural pauses, and writes for the chosen set a sources manifest of relative
`file:` URLs and an ATTRIBUTION.md. The download stage then ingests that
manifest like anyone's URLs.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import shutil
import subprocess
import tarfile
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import soundfile as sf
import yaml

from vocalsep.audio import read_audio
from vocalsep.errors import VocalsepError

log = logging.getLogger(__name__)
SETS = ("train", "eval")
CONDITIONS = ("unseen", "seen")  # of an eval group, against every train group
RESERVED = ("drascula", "fillets-ng")  # every drascula* and fillets-ng* package: held out for independent evaluation
AUDIO_SUFFIXES = (".wav", ".ogg", ".oga", ".opus", ".mp3", ".flac")


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


@dataclass(frozen=True)
class JoinParams:
    """How short utterances become acapella tracks: natural pauses, tracks of about `track_seconds`."""

    track_seconds: float = 45.0
    pause_seconds: tuple[float, float] = (0.15, 0.7)
    trim_db: float = -50.0  # leading and trailing audio quieter than this (dBFS peak) is trimmed off each utterance
    seed: int = 0


@dataclass
class Track:
    """One file of the built corpus, as it goes into the sources manifest."""

    path: Path
    role: str
    title: str
    package: Package
    sample_rate: int
    members: list[str] = field(default_factory=list)


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


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_deb(package: Package, cache: str | Path) -> Path:
    """The package's .deb in `cache`, downloaded once with `apt-get download` and checked against its sha256."""
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"{package.package}_{package.version.replace(':', '%3a')}_{package.sha256[:12]}.deb"
    if target.exists() and sha256_file(target) == package.sha256:
        return target
    with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-") as tmp:
        if package.deb:
            if not Path(package.deb).is_file():
                raise CorpusError(f"{package.package}: local .deb {package.deb} not found")
            got = Path(tmp) / Path(package.deb).name
            shutil.copyfile(package.deb, got)
        else:
            got = _apt_download(package, Path(tmp))
        actual = sha256_file(got)
        if actual != package.sha256:
            raise CorpusError(f"{package.package}={package.version}: sha256 {actual} does not match the pinned "
                              f"{package.sha256}; the mirror serves other bytes: check the version and update the spec")
        shutil.move(str(got), target)
    log.info("fetched %s=%s (%.1f MB)", package.package, package.version, target.stat().st_size / 1e6)
    return target


def _apt_download(package: Package, into: Path) -> Path:
    spec = f"{package.package}={package.version}"
    try:
        done = subprocess.run(["apt-get", "download", spec], cwd=into, capture_output=True, text=True, timeout=1800)
    except FileNotFoundError:
        raise CorpusError(f"{spec}: apt-get not found; the real corpus needs a Debian-based machine "
                          "(or a 'deb:' path to the downloaded file in the spec)") from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise CorpusError(f"{spec}: apt-get download failed ({reason}); run 'apt-get update' "
                          "or pin the version your mirror serves")
    debs = sorted(into.glob("*.deb"))
    if len(debs) != 1:
        raise CorpusError(f"{spec}: apt-get download left {len(debs)} .deb files; expected one")
    return debs[0]


def _selected(name: str, group: Group) -> bool:
    return (any(fnmatch.fnmatch(name, g) for g in group.include)
            and not any(fnmatch.fnmatch(name, g) for g in group.exclude)
            and name.lower().endswith(AUDIO_SUFFIXES))


def extract_groups(deb: Path, groups: list[Group], dest: Path) -> dict[str, list[Path]]:
    """Extract the files each group selects from the .deb's data archive into `dest`; `{group name: files}`.

    Only regular files are written, and only under `dest`: absolute names and
    `..` are refused, so a hostile package cannot write elsewhere.
    """
    selected: dict[str, list[Path]] = {g.name: [] for g in groups}
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: dpkg-deb never blocks on its stderr
        proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE, stderr=errors)
        broken = None
        try:
            _extract_members(proc.stdout, groups, dest, selected)
            proc.stdout.read()  # the archive's trailing blocks: let dpkg-deb finish writing
        except tarfile.TarError as err:
            broken = err  # dpkg-deb's exit status and message usually say why, below
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            proc.stdout.close()
        if proc.wait() != 0 or broken is not None:
            errors.seek(0)
            reason = errors.read().decode(errors="replace").strip() or str(broken)
            raise CorpusError(f"{deb}: dpkg-deb cannot read it ({reason}); delete it from the cache "
                              "and fetch it again")
    return {name: sorted(paths) for name, paths in selected.items()}


def _extract_members(stream, groups: list[Group], dest: Path, selected: dict[str, list[Path]]) -> None:
    """Write the regular files of the tar `stream` that groups select under `dest`; record them in `selected`."""
    with tarfile.open(fileobj=stream, mode="r|*") as archive:
        for member in archive:
            inner = PurePosixPath(member.name)  # "./usr/x" -> "usr/x"; ".." and "/" are kept to be refused
            if not member.isfile() or inner.is_absolute() or ".." in inner.parts:
                continue
            name = inner.as_posix()
            wanted = [g for g in groups if _selected(name, g)]
            if not wanted:
                continue
            out = dest / name
            out.parent.mkdir(parents=True, exist_ok=True)
            with archive.extractfile(member) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
            for g in wanted:
                selected[g.name].append(out)


def _trimmed(audio: np.ndarray, trim_db: float) -> np.ndarray:
    """`audio` (frames, channels) without leading and trailing samples below `trim_db` dBFS."""
    loud = np.flatnonzero(np.abs(audio).max(axis=1) > 10 ** (trim_db / 20))
    return audio[loud[0]:loud[-1] + 1] if len(loud) else audio[:0]


def _decoded_by_rate(files: list[Path], trim_db: float) -> dict[int, list[tuple[Path, np.ndarray]]]:
    """Each decodable file trimmed of silence at both ends, grouped by its own sample rate."""
    by_rate: dict[int, list[tuple[Path, np.ndarray]]] = {}
    for path in files:
        try:
            audio, rate = read_audio(path)
        except VocalsepError as err:
            log.warning("left out %s: %s", path, err)
            continue
        audio = _trimmed(audio, trim_db)
        if audio.shape[0] > 0:
            by_rate.setdefault(rate, []).append((path, audio))
    return by_rate


def _join_rate(items: list[tuple[Path, np.ndarray]], rate: int, params: JoinParams, rng: np.random.Generator
               ) -> list[tuple[np.ndarray, int, list[Path]]]:
    """The utterances of one rate, shuffled, joined with pauses into tracks of about `track_seconds`."""
    channels = max(a.shape[1] for _, a in items)
    tracks, pieces, members, length = [], [], [], 0
    for i in rng.permutation(len(items)):
        path, audio = items[i]
        if audio.shape[1] < channels:
            audio = np.repeat(audio, channels, axis=1)
        pause = np.zeros((int(rng.uniform(*params.pause_seconds) * rate), channels), np.float32)
        pieces += [pause, audio]
        members.append(path)
        length += pause.shape[0] + audio.shape[0]
        if length >= params.track_seconds * rate:
            tracks.append((np.concatenate(pieces + [pause]), rate, members))
            pieces, members, length = [], [], 0
    if members and tracks and length < params.track_seconds * rate / 3:
        last, _, last_members = tracks.pop()  # a short tail joins the previous track
        tracks.append((np.concatenate([last] + pieces), rate, last_members + members))
    elif members:
        tracks.append((np.concatenate(pieces + [pieces[0]]), rate, members))
    return tracks


def join_utterances(files: list[Path], params: JoinParams, rng: np.random.Generator
                    ) -> list[tuple[np.ndarray, int, list[Path]]]:
    """Short voice files -> tracks `(audio (frames, channels), rate, member files)` with pauses between them.

    Utterances are grouped by their own sample rate (a track never mixes an 8
    kHz prompt with 44.1 kHz speech, so band-limited sources stay visible),
    shuffled, trimmed of silence at both ends and joined with random pauses of
    `pause_seconds`, about `track_seconds` per track. Files that cannot be
    decoded are logged and left out.
    """
    by_rate = _decoded_by_rate(files, params.trim_db)
    return [track for rate in sorted(by_rate) for track in _join_rate(by_rate[rate], rate, params, rng)]


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
                raise CorpusError(f"{package.package}: group {group.name!r} selects no audio file "
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
