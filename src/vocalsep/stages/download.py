"""Stage `download`: fetch every manifest URL with yt-dlp (`python -m vocalsep.stages.download`).

Writes `<paths.raw>/<role>/<id>.<ext>` (audio only, original container),
`<paths.raw>/downloads.jsonl` (one record per manifest entry, ok or failed with
the reason) and `<paths.raw>/archive.txt` (yt-dlp download archive keyed by our
source id, so a URL is fetched once). A failed URL is recorded and the stage
goes on; it fails only when a role has no usable source left.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import soundfile as sf
import yt_dlp

from vocalsep.audio import probe_audio
from vocalsep.config import DownloadParams, Params, PathsParams
from vocalsep.errors import StageError
from vocalsep.sources import ROLES, Source, file_url_path, load_sources, resolve_url
from vocalsep.contracts import repo_relative, sha256_file
from vocalsep.stages._cli import run_stage
from vocalsep.ytdlp import ARCHIVE_PREFIX, DownloadFailed, SourceDownloader, classify, ytdlp_options

log = logging.getLogger(__name__)


def file_roots(paths: PathsParams, params: DownloadParams) -> list[Path]:
    """The folders `file:` URLs may read: the demo corpus, the real corpus, and `download.file_roots`."""
    return [Path(folder).resolve() for folder in (paths.demo, paths.corpus, *params.file_roots)]


def _check_file_url(url: str, params: DownloadParams, roots: Sequence[Path]) -> None:
    """Fail local file URLs early with a reason a user can act on.

    A file must lie inside one of `roots` after following links, so a
    manifest cannot pull `/etc/passwd` or `~/.ssh` into data/raw (and from
    there into the DVC cache and a `dvc push`).
    """
    path = file_url_path(url)
    if path is None:
        return
    if not params.allow_file_urls:
        raise DownloadFailed("file URLs are disabled; set download.allow_file_urls: true in params.yaml", False)
    real = path.resolve()
    if not any(real.is_relative_to(root) for root in roots):
        shown = ", ".join(repo_relative(root, Path.cwd()) for root in roots)
        raise DownloadFailed(f"refused: {path} is outside the folders file: URLs may read ({shown}); "
                             "copy it under one of them, or add its folder to download.file_roots in params.yaml",
                             False)
    if not path.is_file():
        raise DownloadFailed(f"no such file {path} (for the demo corpus run the demo stage first)", False)


def _check_audio(path: Path) -> None:
    """A download that no decoder reads as audio (an HTML error page, a text file named .mp3) is deleted."""
    reason = probe_audio(path)
    if reason is not None:
        path.unlink(missing_ok=True)
        detail = reason.split(": ", 1)[-1].removesuffix("; re-download it")
        raise DownloadFailed(f"not audio ({detail}); check that the URL points at the audio file itself", False)


def fetch(source: Source, url: str, out_dir: Path, params: DownloadParams, archive: Path | None,
          roots: Sequence[Path] = ()) -> Path:
    """One attempt at `url` (resolved) into `out_dir/<id>.<ext>`; raises DownloadFailed."""
    _check_file_url(url, params, roots)
    options = ytdlp_options(params, str(out_dir / f"{source.id}.%(ext)s"), archive)
    try:
        with SourceDownloader(options, source.id) as ydl:
            info = ydl.extract_info(url, download=False, process=False)
            if info and info.get("_type") in ("playlist", "multi_video"):
                raise DownloadFailed("a playlist, not one song; list each song's URL on its own", False)
            if info:  # None: yt-dlp found it in the archive (a race with another run)
                ydl.process_ie_result(info, download=True)
    except yt_dlp.utils.YoutubeDLError as err:
        raise classify(err) from None
    except OSError as err:
        raise DownloadFailed(f"cannot write to {out_dir}: {err}", False) from None
    found = _existing(out_dir, source.id)
    if found is None:
        raise DownloadFailed("yt-dlp finished without writing a file (no audio format matched "
                             f"download.format {params.format!r}?)", False)
    _check_audio(found)
    return found


def _existing(out_dir: Path, source_id: str) -> Path | None:
    """A finished download of `source_id` (never yt-dlp's `.part`/`.ytdl` leftovers)."""
    done = [p for p in out_dir.glob(f"{source_id}.*") if p.suffix not in (".part", ".ytdl", ".temp")]
    return sorted(done)[0] if done else None


def fetch_with_retries(source: Source, url: str, out_dir: Path, params: DownloadParams,
                       archive: Path | None, roots: Sequence[Path] = ()) -> tuple[Path, int]:
    """Retry transient failures with exponential backoff; returns (file, attempts)."""
    attempt = 1
    while True:
        try:
            return fetch(source, url, out_dir, params, archive, roots), attempt
        except DownloadFailed as failure:
            failure.attempts = attempt
            if not failure.transient or attempt >= params.retries:
                raise
        time.sleep(params.backoff_seconds * 2 ** (attempt - 1))
        attempt += 1


def _archived(archive: Path) -> set[str]:
    if not archive.is_file():
        return set()
    return {line.strip() for line in archive.read_text(encoding="utf-8").splitlines()}


def _describe(path: Path) -> dict:
    """ext, duration (s, None when soundfile cannot read the container) and sha256 of a download."""
    try:
        duration = round(sf.info(str(path)).duration, 3)
    except (sf.LibsndfileError, RuntimeError):
        duration = None
    return {"path": repo_relative(path, Path.cwd()), "ext": path.suffix[1:], "duration": duration, "sha256": sha256_file(path)}


def download_source(source: Source, manifest_dir: Path, raw: Path, params: DownloadParams,
                    roots: Sequence[Path] = ()) -> dict:
    """Fetch one manifest entry unless the archive and file show it is done; returns its record."""
    record = {"id": source.id, "url": source.url, "role": source.role, "title": source.title,
              "license": source.license, "status": "failed", "reason": None, "path": None, "ext": None,
              "duration": None, "sha256": None, "attempts": 0}
    out_dir = raw / source.role
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = raw / "archive.txt"
    done = _existing(out_dir, source.id) or _unshelve(raw, source)
    archived = f"{ARCHIVE_PREFIX} {source.id}" in _archived(archive)
    if archived and done is not None:
        return record | {"status": "ok"} | _describe(done)
    try:
        # an archive line without its file is stale: download again without yt-dlp skipping it
        path, attempts = fetch_with_retries(source, resolve_url(source.url, manifest_dir), out_dir,
                                            params, None if archived else archive, roots)
    except DownloadFailed as failure:
        return record | {"reason": failure.reason, "attempts": failure.attempts}
    return record | {"status": "ok", "attempts": attempts} | _describe(path)


def shelf(raw: Path) -> Path:
    """Where downloads of URLs the manifest no longer lists wait (beside `raw`, not in it)."""
    return raw.parent / f".{raw.name}-shelf"


def _unshelve(raw: Path, source: Source) -> Path | None:
    """A shelved download of `source` moved back into `raw/<role>/`, or None."""
    kept = _existing(shelf(raw) / source.role, source.id)
    if kept is None:
        return None
    target = raw / source.role / kept.name
    kept.replace(target)
    log.info("restored %s from %s", target, shelf(raw))
    return target


def shelve_unlisted(raw: Path, sources: Sequence[Source]) -> list[Path]:
    """Move files of `raw/<role>/` that no manifest entry owns to the shelf: the stage's output holds
    exactly the manifest's audio, and switching back to an earlier manifest downloads nothing again."""
    wanted = {(s.role, s.id) for s in sources}
    moved = []
    for folder in sorted(p for p in raw.iterdir() if p.is_dir()):
        for path in sorted(folder.iterdir()):
            if path.is_file() and (folder.name, path.name.split(".")[0]) not in wanted:
                target = shelf(raw) / folder.name / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                path.replace(target)
                moved.append(target)
    if moved:
        log.info("moved %d download(s) the manifest no longer lists to %s", len(moved), shelf(raw))
    return moved


def _check_roles(records: list[dict], manifest: Path, report: Path) -> None:
    """StageError when a role has no usable source, listing that role's failures."""
    for role in ROLES:
        mine = [r for r in records if r["role"] == role]
        if any(r["status"] == "ok" for r in mine):
            continue
        if not mine:
            raise StageError(f"no usable {role} source in {manifest} (the manifest lists none); add some and run "
                             "again")
        # each reason was logged once as its URL failed ("failed ..."); the error names the URLs only
        raise StageError(f"no usable {role} source in {manifest}: {len(mine)} URL(s) failed "
                         f"({', '.join(r['url'] for r in mine)}); their reasons are in the lines above and in "
                         f"{report}; fix or replace these URLs in the manifest and run again")


def mark_duplicates(records: list[dict]) -> list[dict]:
    """Records with a file identical (sha256) to an earlier one's become failures naming that URL.

    The same song under two URLs would get two ids, and the index stage could
    then put one copy in train and the other in test.
    """
    first: dict[str, dict] = {}
    marked = []
    for record in records:
        digest = record["sha256"] if record["status"] == "ok" else None
        if digest in first:
            record = record | {"status": "failed",
                               "reason": f"same audio as {first[digest]['url']} (sha256 {digest[:12]}); "
                                         "listed twice in the manifest, only the first is used"}
        elif digest:
            first[digest] = record
        marked.append(record)
    return marked


def download(params: Params) -> list[dict]:
    """Fetch every source of `download.sources` into `paths.raw`; returns the downloads.jsonl records."""
    manifest = Path(params.download.sources)
    sources = load_sources(manifest)
    raw = Path(params.paths.raw)
    raw.mkdir(parents=True, exist_ok=True)
    shelve_unlisted(raw, sources)
    roots = file_roots(params.paths, params.download)
    records = []
    for source in sources:
        record = download_source(source, manifest.parent, raw, params.download, roots)
        if record["status"] == "ok":
            note = "kept   " if record["attempts"] == 0 else "ok     "  # kept: archive and file already there
            log.info("%s %-12s %s -> %s", note, source.role, source.url, record["path"])
        else:
            log.warning("failed  %-12s %s: %s", source.role, source.url, record["reason"])
        records.append(record)
    records = mark_duplicates(records)
    report = params.paths.downloads
    report.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    _check_roles(records, manifest, report)
    return records


def main(argv: Sequence[str] | None = None) -> int:
    return run_stage("download", download, argv)


if __name__ == "__main__":
    sys.exit(main())
