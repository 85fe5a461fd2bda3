"""Fetching and opening the pinned .debs: `apt-get download` once into a cache (nothing is installed), the
sha256 checked, and only the audio a group selects extracted, never to a path outside the destination."""

from __future__ import annotations

import fnmatch
import logging
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath


from vocalsep.contracts import sha256_file
from vocalsep.corpus.spec import CorpusError, Group, Package

log = logging.getLogger(__name__)


AUDIO_SUFFIXES = (".wav", ".ogg", ".oga", ".opus", ".mp3", ".flac")


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
    """Whether `group`'s globs take the audio file `name` (a path inside the package, or inside its archive)."""
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
    """Write the regular files of the tar `stream` that groups select under `dest`; record them in `selected`.

    A group with an `archive` selects inside that zip: the archive is written, its
    chosen members extracted beside it (`<archive>.d/...`) and the archive deleted.
    """
    with tarfile.open(fileobj=stream, mode="r|*") as archive:
        for member in archive:
            name = _safe_name(member.name) if member.isfile() else None
            if name is None:
                continue
            wanted = [g for g in groups if not g.archive and _selected(name, g)]
            zipped = [g for g in groups if g.archive == name]
            if not wanted and not zipped:
                continue
            with archive.extractfile(member) as src:
                out = _write(src, dest / name, wanted, selected)
            if zipped:
                _extract_zip(out, zipped, dest / f"{name}.d", selected)
                out.unlink()


def _write(src, out: Path, wanted: list[Group], selected: dict[str, list[Path]]) -> Path:
    """Copy the stream `src` to `out` and record it for each group that `wanted` it; `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
    for g in wanted:
        selected[g.name].append(out)
    return out


def _safe_name(name: str) -> str | None:
    """`name` relative and inside its root ("./usr/x" -> "usr/x"), or None for absolute names and `..`."""
    inner = PurePosixPath(name)
    if inner.is_absolute() or ".." in inner.parts or not inner.parts:
        return None
    return inner.as_posix()


def _extract_zip(path: Path, groups: list[Group], dest: Path, selected: dict[str, list[Path]]) -> None:
    """Extract the members of zip `path` that `groups` select (globs inside the archive) under `dest`."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = None if info.is_dir() else _safe_name(info.filename)
                wanted = [g for g in groups if name is not None and _selected(name, g)]
                if not wanted:
                    continue
                with archive.open(info) as src:
                    _write(src, dest / name, wanted, selected)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as err:
        raise CorpusError(f"{groups[0].archive}: the archive inside the package cannot be read as a zip ({err}); "
                          "check the group's archive path in the spec") from None
