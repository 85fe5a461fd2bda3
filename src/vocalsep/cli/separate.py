"""`vocalsep separate INPUT... -o OUTDIR`: stems of audio files, folders and patterns, resumable.

Inputs are files, folders (searched recursively for audio) and glob patterns,
mixed (`vocalsep.library.find_inputs`). Each input (any format
`vocalsep.audio.read_audio` decodes, any rate and channel count) is turned
stereo, resampled to the model's rate, separated by the core, resampled back
and written as `OUTDIR/<name>/vocals.<format>` and `accompaniment.<format>`
at the input's rate and length. The default, 32-bit float WAV, never clips
and `vocals + accompaniment` gives the mixture back; `--format`, `--bits`,
`--bitrate` and `--stems` choose otherwise (`vocalsep.formats`).

Files are read, separated and written block by block
(`vocalsep.streaming.stream_file`): peak memory does not grow with the song's
length, and the stems equal those of the whole-file pass (`separate_file`,
what the evaluate stage and serving use) up to float rounding. Stems are
written under temporary names and renamed when whole.

Resuming: `OUTDIR/vocalsep-record.jsonl` holds, per finished input, its
sha256, the model's weights digest and the settings; a re-run skips what
matches and redoes what changed (`--force` redoes all). `--jobs N` runs N
worker processes, each loading the model once, with the cores shared out.

Channels: a mono input gives mono stems (the model sees it on both sides and
its two vocal channels are averaged); any other input gives stereo stems of
its stereo down-mix (`audio.to_stereo`), which is what the stems sum to.

A file that is missing, empty or undecodable is reported on one line and in
`OUTDIR/vocalsep-failures.jsonl`, and the other files still run; the exit
code is 1 if any input failed, 2 if the model, the params or an option
cannot be used, else 0.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn
from tqdm import tqdm

from vocalsep.api import STEMS, Separator, parse_stems
from vocalsep.api import override as separate_params
from vocalsep.audio import read_audio, to_stereo
from vocalsep.config import DEFAULT_PARAMS, Params, ParamsError, SeparateParams, cli_params
from vocalsep.default_model import CHAMPION, DEFAULT_MODEL, choose_model, trained_on_demo_only
from vocalsep.errors import VocalsepError
from vocalsep.formats import FORMATS, OutputFormat
from vocalsep.library import (Failures, Job, Record, Settings, cached_separator, find_inputs, plan, separate_job,
                              sweep_partial, worker_threads)
from vocalsep.runtime import OrtSeparator
from vocalsep.separate import separate_at_rate

__all__ = ["CHAMPION", "DEFAULT_MODEL", "choose_model", "main", "output_names", "separate_file",
           "separate_params", "trained_on_demo_only"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vocalsep separate", description="Separate vocals from audio files.")
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="audio files (wav, flac, mp3, ogg, m4a, ...), folders (searched recursively for "
                             "audio) or glob patterns (quoted: 'music/**/*.flac')")
    parser.add_argument("-o", "--out", required=True, type=Path, metavar="OUTDIR",
                        help="folder for <name>/{vocals,accompaniment}.<format>, the resume record and the "
                             "failure report")
    parser.add_argument("--name", metavar="PATTERN",
                        help="output folder of each input under OUTDIR, from {stem} (file name without extension), "
                             "{parent} (its folder's name), {index} (1-based position); default: {stem}, and "
                             "for inputs that share a stem, their parent folders too (a/mix.wav -> a/mix)")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="auto (default: the registry's champion if it was trained on real recordings, else "
                             "the shipped base model), pretrained (the shipped base model), a checkpoint path, "
                             "or an MLflow models:/ or runs:/ URI")
    parser.add_argument("--format", default="wav", choices=FORMATS, help="stem format (default wav)")
    parser.add_argument("--bits", type=int, choices=(16, 24, 32),
                        help="wav: 16, 24 or 32 (float, the default); flac: 16 or 24 (the default)")
    parser.add_argument("--bitrate", type=int, metavar="KBPS",
                        help="mp3 (constant, default 320) and ogg (Vorbis quality of about that rate, default 192)")
    parser.add_argument("--stems", default=",".join(STEMS),
                        help="vocals, accompaniment or both (default vocals,accompaniment)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="worker processes, each loading the model once (default 1)")
    parser.add_argument("--threads", type=int, metavar="T",
                        help="torch threads per worker (default: the cores divided by --jobs)")
    parser.add_argument("--force", action="store_true",
                        help="separate every input again, even those the record says are done")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS,
                        help="params file for the separate section (default: params.yaml; defaults if absent)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="overrides separate.device")
    parser.add_argument("--runtime", choices=["auto", "torch", "onnxruntime"],
                        help="overrides separate.runtime (CPU: auto runs VocNet in ONNX Runtime, others in torch)")
    return parser.parse_args(argv)


def separate_file(
    model: nn.Module, model_rate: int, params: SeparateParams, path: Path, progress: bool = False
) -> tuple[np.ndarray, np.ndarray, int]:
    """Stems of one file: `(vocals, accompaniment, sample_rate)`, each `(frames, channels)` float32.

    channels is 1 for a mono input, else 2; frames and rate are the input's.
    """
    audio, rate = read_audio(path)
    mixture = to_stereo(audio)
    vocals = separate_at_rate(model, model_rate, mixture, rate, params, progress=progress)
    if audio.shape[1] == 1:
        mixture, vocals = audio, vocals.mean(axis=1, keepdims=True)
    return vocals, mixture - vocals, rate


def _distinct_name(path: Path, others: list[Path]) -> str:
    """`stem`, led by as many parent folders as it takes to tell `path` from `others` with the same stem."""
    parents = path.resolve().parent.parts[::-1]
    for depth in range(len(parents) + 1):
        name = "/".join([*parents[:depth][::-1], path.stem])
        if all("/".join([*o.resolve().parent.parts[::-1][:depth][::-1], o.stem]) != name for o in others):
            return name
    return path.stem


def output_names(paths: Sequence[Path], pattern: str | None = None) -> list[str]:
    """One output folder name per input, unique in the run, that a person can map back to the input.

    With `pattern` ({stem}, {parent}, {index}) each name is the pattern's; without one it is the
    file's stem, and inputs that share a stem keep their parent folders (`a/mix.wav`, `b/mix.wav` ->
    `a/mix`, `b/mix`). A name still taken (the same file twice, a pattern without {stem}) gets `-2`, `-3`...
    """
    names, taken = [], set()
    for index, path in enumerate(paths, start=1):
        if pattern is not None:
            try:
                name = pattern.format(stem=path.stem, parent=path.resolve().parent.name, index=index)
            except (KeyError, IndexError, ValueError) as err:
                raise VocalsepError(f"--name {pattern!r}: {err!r} is not a field; use {{stem}}, {{parent}} and "
                                    "{index}") from None
        else:
            twins = [p for p in paths if p.stem == path.stem and p.resolve() != path.resolve()]
            name = _distinct_name(path, twins) if twins else path.stem
        base, k = name, 1
        while name in taken:
            k += 1
            name = f"{base}-{k}"
        taken.add(name)
        names.append(name)
    return names


def check_output_folder(out: Path) -> None:
    """Fail before any work when `out` cannot be a folder we write in (a file, or under one; read-only)."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "is" if existing == out else f"is under {existing}, which is"
        raise VocalsepError(f"-o {out}: {where} a file, not a folder; choose another output folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise VocalsepError(f"-o {out}: {existing} is not writable; choose another output folder")


def _setup(args: argparse.Namespace) -> tuple[Separator, Params, Settings, list[Path], list[str], list]:
    """Everything checked before any work: output folder, options, inputs, params and the model."""
    if args.jobs < 1 or (args.threads is not None and args.threads < 1):
        raise VocalsepError(f"--jobs {args.jobs} / --threads {args.threads}: give 1 or more")
    check_output_folder(args.out)
    fmt, stems = OutputFormat(args.format, args.bits, args.bitrate), parse_stems(args.stems)
    inputs, problems = find_inputs(args.inputs, exclude=args.out)
    names = output_names(inputs, args.name)
    params = cli_params(args.params)
    threads = worker_threads(args.jobs, args.threads) if args.jobs > 1 or args.threads else None
    separator = Separator(args.model, args.device or params.separate.device, params=params, runtime=args.runtime,
                          threads=threads)
    settings = Settings(fmt, stems, separator.params.chunk_seconds, separator.params.overlap_seconds)
    return separator, params, settings, inputs, names, problems


def _pool_job(spec: str, device: str, params: Params, runtime: str | None, threads: int, job: Job, out: Path,
              settings: Settings) -> dict[str, Any]:
    """One job in a worker process: its Separator is loaded on the first job and kept."""
    return separate_job(cached_separator(spec, device, params, runtime, threads), job, out, settings)


def _results(separator: Separator, params: Params, todo: list[Job], args: argparse.Namespace,
             settings: Settings) -> Iterator[tuple[Job, dict[str, Any]]]:
    """`(job, result)` as each finishes: in this process for --jobs 1, else in a pool of worker processes."""
    if args.jobs == 1 or len(todo) <= 1:
        for job in todo:
            yield job, separate_job(separator, job, args.out, settings)
        return
    threads = worker_threads(args.jobs, args.threads)
    context = multiprocessing.get_context("spawn")  # no forked torch thread pools
    with ProcessPoolExecutor(max_workers=min(args.jobs, len(todo)), mp_context=context) as pool:
        futures = {pool.submit(_pool_job, separator.spec, separator.params.device, params, args.runtime, threads,
                               job, args.out, settings): job for job in todo}
        for future in as_completed(futures):
            job = futures[future]
            try:
                yield job, future.result()
            except BrokenProcessPool as err:
                yield job, {"ok": False, "reason": f"{job.path}: the worker process died ({err}); run again"}


def _announce(separator: Separator, todo: list[Job], skipped: list[Job], args: argparse.Namespace) -> None:
    runtime = " (ONNX Runtime)" if todo and args.jobs == 1 and isinstance(separator.model, OrtSeparator) else ""
    print(f"model: {separator.which}{runtime}", file=sys.stderr)
    workers = f" in {args.jobs} worker processes" if args.jobs > 1 and len(todo) > 1 else ""
    print(f"{len(todo)} file(s) to separate{workers}, {len(skipped)} skipped: already separated with this model "
          "and these settings (--force redoes them)", file=sys.stderr)


def run(separator: Separator, params: Params, settings: Settings, inputs: list[Path], names: list[str],
        problems: list, args: argparse.Namespace) -> int:
    """Separate what the record does not hold yet, recording each file as it finishes."""
    sweep_partial(args.out)
    record = Record.load(args.out)
    todo, skipped = plan(inputs, names, record, separator.digest, settings.as_dict(), args.force)
    failures = Failures(args.out)
    for spec, why in problems:
        print(f"error: {spec}: {why}", file=sys.stderr)
        failures.add(spec, None, f"{spec}: {why}")
    _announce(separator, todo, skipped, args)
    bar = tqdm(total=len(todo), desc="separate", unit="file", postfix={"skipped": len(skipped), "failed": 0})
    stems = f"{{{','.join(settings.stems)}}}" if len(settings.stems) > 1 else settings.stems[0]
    for job, result in _results(separator, params, todo, args, settings):
        if result["ok"]:
            record.add(result["entry"])
            bar.write(f"{job.path} -> {args.out / job.name}/{stems}.{settings.fmt.extension}")
        else:
            failures.add(str(job.path), job.name, result["reason"])
            bar.write(f"error: {result['reason']}", file=sys.stderr)
        bar.update()
        bar.set_postfix(skipped=len(skipped), failed=failures.count)
    bar.close()
    return _finish(failures, len(todo), len(skipped), len(inputs) + len(problems))


def _finish(failures: Failures, todo: int, skipped: int, total: int) -> int:
    """The closing lines; the last one says how many failed and where the report is."""
    separated = todo - (failures.count - (total - todo - skipped))
    print(f"separated {separated}, skipped {skipped}, failed {failures.count}", file=sys.stderr)
    if failures.count:
        print(f"{failures.count} of {total} input(s) failed; reasons in {failures.path}", file=sys.stderr)
    return 1 if failures.count else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        separator, params, settings, inputs, names, problems = _setup(args)
    except (ParamsError, VocalsepError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return run(separator, params, settings, inputs, names, problems, args)


if __name__ == "__main__":
    sys.exit(main())
