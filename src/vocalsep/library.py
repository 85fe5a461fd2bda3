"""Separating a library: inputs from folders and patterns, a resume record, a failure report, workers.

Shared by `vocalsep separate` and the `separate-library` Prefect flow, so both
list the same inputs, skip the same finished files and write the same record.

- Inputs: folders (recursive, audio extensions only, hidden entries and the
  output folder left out), files and glob patterns, mixed, in a sorted,
  stable order, each file once.
- The record, `OUTDIR/vocalsep-record.jsonl`, gets one line per separated
  file: its output name, the input's path, sha256, size and mtime, the
  model's weights digest and the settings that change the stems. A file
  whose path, size and mtime are the recorded ones keeps its recorded sha256
  (as make and rsync trust them); any other is hashed again. A file is skipped when its
  last line matches all of them and the stems are still there. Lines are
  appended as files finish, so a killed run loses only the files in flight.
- Failures of the last run go to `OUTDIR/vocalsep-failures.jsonl` (input,
  output name, reason); the file is removed when a run has none.
"""

from __future__ import annotations

import glob
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vocalsep.api import PARTIAL, Separator, write_stems
from vocalsep.contracts import sha256_file
from vocalsep.errors import VocalsepError
from vocalsep.formats import OutputFormat

RECORD = "vocalsep-record.jsonl"
FAILURES = "vocalsep-failures.jsonl"
AUDIO_EXTENSIONS = frozenset({".wav", ".wave", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif",
                              ".aiff", ".aifc", ".wma", ".webm", ".mka", ".caf", ".w64", ".rf64", ".alac"})
GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Job:
    """One input to separate: its path, output name (folder under OUTDIR), sha256 (None if unreadable),
    and its size and modification time when it was hashed."""

    path: Path
    name: str
    sha256: str | None
    size: int | None = None
    mtime_ns: int | None = None


@dataclass(frozen=True)
class Settings:
    """What changes the stems besides the input and the weights; the record compares it."""

    fmt: OutputFormat
    stems: tuple[str, ...]
    chunk_seconds: float
    overlap_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {**self.fmt.settings(), "stems": list(self.stems), "chunk_seconds": self.chunk_seconds,
                "overlap_seconds": self.overlap_seconds}


def _audio_under(folder: Path, exclude: Path | None) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (exclude is None or
                                                                       (here / d).resolve() != exclude))
        found += [here / f for f in sorted(files) if not f.startswith(".") and Path(f).suffix.lower()
                  in AUDIO_EXTENSIONS]
    return sorted(found)  # by path parts: a/deep/y.ogg, a/x.mp3, b/1.wav, c.wav


def find_inputs(specs: Sequence[str | Path], exclude: Path | None = None) -> tuple[list[Path], list[tuple[str, str]]]:
    """Input files of `specs` (folders, files, glob patterns) in a stable order; and `(spec, reason)` problems.

    A named file is kept even when missing (its separation then reports it); a folder without audio or a
    pattern that matches nothing is a problem. Nothing under `exclude` (the output folder) is listed.
    """
    exclude = exclude.resolve() if exclude is not None else None
    inputs: list[Path] = []
    problems: list[tuple[str, str]] = []
    for spec in map(str, specs):
        path = Path(spec)
        if path.is_dir():
            found = _audio_under(path, exclude)
            why = f"folder holds no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}); give files or another folder"
        elif not path.exists() and GLOB_CHARS & set(spec):
            found = [Path(p) for p in sorted(glob.glob(spec, recursive=True)) if Path(p).is_file()]
            why = "pattern matches no file; check it (quote it so the shell does not expand it)"
        else:
            found, why = [path], ""
        inputs += [p for p in found if exclude is None or exclude not in p.resolve().parents]
        if not found:
            problems.append((spec, why))
    unique: dict[Path, Path] = {}
    for path in inputs:
        unique.setdefault(path.resolve(), path)  # each file once, at its first place
    return list(unique.values()), problems


def file_sha256(path: Path) -> str | None:
    """sha256 of a file's bytes, or None when it cannot be read (its separation then says why)."""
    try:
        return sha256_file(path)
    except OSError:
        return None


def sweep_partial(out: Path) -> int:
    """Remove the temporary stems a killed run left under `out`; how many."""
    if not out.is_dir():
        return 0
    stale = list(out.rglob(f".*{PARTIAL}"))
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


@dataclass
class Record:
    """The resume record of an output folder: the last line for each output name wins."""

    out: Path
    entries: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, out: Path) -> Record:
        record = cls(out)
        path = out / RECORD
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                    record.entries[entry["name"]] = entry
                except (ValueError, KeyError, TypeError):  # a line cut short by a kill: that file is redone
                    continue
        return record

    def is_done(self, job: Job, model: str, settings: dict[str, Any]) -> bool:
        entry = self.entries.get(job.name)
        return (entry is not None and job.sha256 is not None and entry.get("sha256") == job.sha256
                and entry.get("model") == model and entry.get("settings") == settings
                and all((self.out / p).is_file() for p in entry.get("outputs", {}).values()))

    def add(self, entry: dict) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / RECORD, "a") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.entries[entry["name"]] = entry


def job_for(path: Path, name: str, entry: dict | None) -> Job:
    """The Job of an input; its sha256 is the record's when the file's path, size and mtime are the ones
    recorded (as make and rsync trust them), else read from its bytes."""
    try:
        stat = path.stat()
    except OSError:
        return Job(path, name, None)
    known = entry or {}
    same = (known.get("input") == str(path.resolve()) and known.get("bytes") == stat.st_size
            and known.get("mtime_ns") == stat.st_mtime_ns and known.get("sha256"))
    sha256 = known["sha256"] if same else file_sha256(path)
    return Job(path, name, sha256, stat.st_size, stat.st_mtime_ns)


def plan(inputs: Sequence[Path], names: Sequence[str], record: Record, model: str, settings: dict[str, Any],
         force: bool = False) -> tuple[list[Job], list[Job]]:
    """`(to do, skipped)`: every input identified, skipped when the record says it is done with these settings."""
    jobs = [job_for(path, name, None if force else record.entries.get(name)) for path, name in zip(inputs, names)]
    if force:
        return jobs, []
    done = [record.is_done(job, model, settings) for job in jobs]
    return [j for j, d in zip(jobs, done) if not d], [j for j, d in zip(jobs, done) if d]


def separate_job(separator: Separator, job: Job, out: Path, settings: Settings) -> dict[str, Any]:
    """Separate one job; `{"ok": True, "entry": record line}` or `{"ok": False, "reason": ...}`, never raises
    for a bad input or an unwritable output (other errors, such as a dead worker, propagate)."""
    folder = out / job.name
    started = time.monotonic()
    try:
        paths, frames, rate = write_stems(separator, job.path, folder, settings.fmt, settings.stems)
    except VocalsepError as err:
        return {"ok": False, "reason": str(err)}
    except (OSError, RuntimeError) as err:  # disk full, a file where a folder should be
        reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
        return {"ok": False, "reason": f"{job.path}: cannot write the stems to {folder} ({reason})"}
    entry = {"name": job.name, "input": str(job.path.resolve()), "sha256": job.sha256, "bytes": job.size,
             "mtime_ns": job.mtime_ns, "model": separator.digest,
             "settings": settings.as_dict(), "outputs": {s: str(p.relative_to(out)) for s, p in paths.items()},
             "frames": frames, "rate": rate, "seconds": round(frames / rate, 3),
             "compute_seconds": round(time.monotonic() - started, 3), "pid": os.getpid(),
             "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return {"ok": True, "entry": entry}


class Failures:
    """The failure report of this run, `OUTDIR/vocalsep-failures.jsonl`, started afresh (or added to)."""

    def __init__(self, out: Path, fresh: bool = True) -> None:
        self.path, self.count = out / FAILURES, 0
        if fresh:
            self.path.unlink(missing_ok=True)

    def add(self, input_: str, name: str | None, reason: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as handle:
            handle.write(json.dumps({"input": input_, "name": name, "reason": reason,
                                     "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")
        self.count += 1


def cpu_count() -> int:
    """Cores this process may use (its affinity, where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def worker_threads(jobs: int, threads: int | None = None) -> int:
    """torch threads per worker: `threads` when asked, else the cores shared out so jobs x threads <= cores."""
    return max(1, threads if threads else cpu_count() // max(1, jobs))


_SEPARATORS: dict[str, Separator] = {}


def cached_separator(spec: str, device: str, params: Any, runtime: str | None, threads: int | None) -> Separator:
    """This process's Separator for these arguments, loaded on first use (a pool or Dask worker loads once)."""
    key = json.dumps([spec, device, repr(params), runtime, threads])
    if key not in _SEPARATORS:
        _SEPARATORS[key] = Separator(spec, device, params=params, runtime=runtime, threads=threads)
    return _SEPARATORS[key]


def audio_seconds(entries: Iterable[dict]) -> float:
    """Seconds of audio in record entries."""
    return sum(float(e.get("seconds", 0.0)) for e in entries)
