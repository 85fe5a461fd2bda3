"""`separate-library`: a music library separated on Dask workers, resumable with the CLI's record.

The flow lists the inputs as `vocalsep separate` does (folders, files, glob
patterns), loads the model once in the flow's process to know its weights
digest, and skips every file the output folder's record
(`vocalsep-record.jsonl`) holds with that model and these settings. The rest
go to Dask through prefect-dask: one task per file, retried per file, each
worker process loading the model once. Lines of the record are written as
files finish, so a run that dies loses only the files in flight, and the CLI
and the flow resume each other's work.

The model is any spec the CLI takes, `models:/vocalsep@champion` included, so
after a promotion a library is separated again with the new champion (a new
weights digest: every file is redone). `dask_address` points at a running
cluster (`tcp://scheduler:8786`); without one a LocalCluster of `workers`
processes runs here. See docs/scaling.md.

    python -m flows.library music/ -o stems/ --workers 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect_dask import DaskTaskRunner

from vocalsep.api import STEMS, Separator, parse_stems
from vocalsep.config import DEFAULT_PARAMS, cli_params
from vocalsep.default_model import DEFAULT_MODEL
from vocalsep.env import disable_telemetry
from vocalsep.formats import FORMATS, OutputFormat
from vocalsep.base_model.weights import PRETRAINED
from vocalsep.library import (Failures, Job, Record, Settings, audio_seconds, cached_separator, find_inputs, plan,
                              separate_job, sweep_partial, worker_threads)
from vocalsep.cli.separate import check_output_folder, output_names

ARTIFACT_KEY = "separate-library"
ARTIFACT_ROWS = 200  # files listed in the artifact; the totals count all


@task(task_run_name="separate {job[name]}", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def separate_one(job: dict[str, Any], out: str, settings: Settings, model: dict[str, Any]) -> dict[str, Any]:
    """One file on a Dask worker; a bad input is a result, not a retry (other errors are retried)."""
    separator = cached_separator(model["spec"], model["device"], cli_params(model["params"]), None, model["threads"])
    result = separate_job(separator, Job(Path(job["path"]), job["name"], job["sha256"], job["size"], job["mtime_ns"]),
                          Path(out), settings)
    return {**result, "input": job["path"], "name": job["name"]}


@flow(name="separate-library-batch")
def separate_batch(jobs: list[dict[str, Any]], out: str, settings: Settings, model: dict[str, Any]) -> list[dict]:
    """Every job through the task runner; record and report each result as it comes (in the flow's process)."""
    record, failures = Record.load(Path(out)), Failures(Path(out), fresh=False)
    futures = separate_one.map(jobs, unmapped(out), unmapped(settings), unmapped(model))
    by_future = {id(f): job for f, job in zip(futures, jobs)}
    results = []
    for future in as_completed(futures):
        job = by_future[id(future)]
        try:
            result = future.result()
        except Exception as err:  # retries spent: the file fails, the library goes on
            result = {"ok": False, "reason": f"{job['path']}: failed after retries ({type(err).__name__}: {err})",
                      "input": job["path"], "name": job["name"]}
        if result["ok"]:
            record.add(result["entry"])
        else:
            failures.add(result["input"], result["name"], result["reason"])
        results.append(result)
    return results


def _runner(dask_address: str | None, workers: int) -> Any:  # a DaskTaskRunner (prefect-dask's typing lags Prefect's)
    if dask_address:
        return DaskTaskRunner(address=dask_address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True})


def _absolute(spec: str) -> str:
    """A file path made absolute, so workers with another working directory find the same file
    (`pretrained` and URIs stay as they are, even beside a folder of that name)."""
    return str(Path(spec).resolve()) if spec != PRETRAINED and Path(spec).is_file() else spec


def summary_markdown(summary: dict[str, Any], results: list[dict]) -> str:
    """The run's artifact: totals, throughput, and a row per file (failures first)."""
    lines = [f"# separate-library: {summary['out']}", "",
             f"- model: {summary['model']} (weights {summary['digest'][:12]})",
             f"- files: {summary['files']} ({summary['separated']} separated, {summary['skipped']} skipped as done, "
             f"{summary['failed']} failed)",
             f"- audio separated: {summary['audio_hours']:.3f} h in {summary['wall_seconds']:.1f} s: "
             f"{summary['audio_hours_per_hour']:.1f} h of audio per hour on {summary['workers']} Dask worker(s)",
             "", "| file | result | audio s | compute s |", "|---|---|---|---|"]
    ordered = sorted(results, key=lambda r: r["ok"])
    for r in ordered[:ARTIFACT_ROWS]:
        entry = r.get("entry", {})
        result = "separated" if r["ok"] else f"failed: {r['reason'][:160]}".replace("|", "/")
        lines.append(f"| {r['name']} | {result} | {entry.get('seconds', '')} | {entry.get('compute_seconds', '')} |")
    if len(ordered) > ARTIFACT_ROWS:
        lines.append(f"| ... {len(ordered) - ARTIFACT_ROWS} more in the record | | | |")
    return "\n".join(lines)


def _prepare(inputs: list[str], out: Path, model: str, fmt: OutputFormat, stems: str, params: str,
             name: str | None, device: str | None) -> tuple[Separator, Settings, list[Path], list[str], list]:
    check_output_folder(out)
    found, problems = find_inputs(inputs, exclude=out)
    names = output_names(found, name)
    settings_file = cli_params(params)
    separator = Separator(model, device or settings_file.separate.device, params=settings_file)
    settings = Settings(fmt, parse_stems(stems), separator.params.chunk_seconds, separator.params.overlap_seconds)
    return separator, settings, found, names, problems


@flow(name="separate-library")
def separate_library(inputs: list[str], out: str, model: str = DEFAULT_MODEL, format: str = "wav",
                     bits: int | None = None, bitrate: int | None = None, stems: str = ",".join(STEMS),
                     params: str = str(DEFAULT_PARAMS), name: str | None = None, force: bool = False,
                     dask_address: str | None = None, workers: int = 2, threads: int | None = None,
                     device: str | None = None) -> dict[str, Any]:
    """Separate `inputs` into `out` on Dask, skipping what the record holds; the run's summary."""
    logger, out_dir = get_run_logger(), Path(out)
    separator, settings, found, names, problems = _prepare(inputs, out_dir, model, OutputFormat(format, bits, bitrate),
                                                           stems, params, name, device)
    sweep_partial(out_dir)
    todo, skipped = plan(found, names, Record.load(out_dir), separator.digest, settings.as_dict(), force)
    failures = Failures(out_dir)
    for spec, why in problems:
        failures.add(spec, None, f"{spec}: {why}")
    logger.info("model %s; %d file(s) to separate, %d skipped as done", separator.which, len(todo), len(skipped))
    worker_model = {"spec": _absolute(separator.spec), "device": separator.params.device,
                    "params": _absolute(params), "threads": threads or worker_threads(workers)}
    jobs = [{"path": str(j.path.resolve()), "name": j.name, "sha256": j.sha256, "size": j.size,
             "mtime_ns": j.mtime_ns} for j in todo]
    started = time.monotonic()
    results = (separate_batch.with_options(task_runner=_runner(dask_address, workers))(
        jobs, str(out_dir), settings, worker_model) if jobs else [])
    wall = time.monotonic() - started
    done = [r["entry"] for r in results if r["ok"]]
    hours = audio_seconds(done) / 3600
    summary = {"out": str(out_dir), "model": separator.which, "digest": separator.digest, "files": len(found),
               "separated": len(done), "skipped": len(skipped), "failed": failures.count + len(results) - len(done),
               "audio_hours": hours, "wall_seconds": wall, "audio_hours_per_hour": hours / (wall / 3600) if wall else 0,
               "workers": workers if not dask_address else dask_address, "pids": sorted({e["pid"] for e in done})}
    create_markdown_artifact(key=ARTIFACT_KEY, markdown=summary_markdown(summary, results),
                             description=f"separate-library into {out_dir}")
    logger.info("separated %d, skipped %d, failed %d", summary["separated"], summary["skipped"], summary["failed"])
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.library", description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", help="files, folders or glob patterns")
    parser.add_argument("-o", "--out", required=True)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--format", default="wav", choices=FORMATS)
    parser.add_argument("--bits", type=int)
    parser.add_argument("--bitrate", type=int)
    parser.add_argument("--stems", default=",".join(STEMS))
    parser.add_argument("--params", default=str(DEFAULT_PARAMS))
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--dask-address", help="a running Dask scheduler (default: a LocalCluster here)")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (default 2)")
    parser.add_argument("--threads", type=int, help="torch threads per worker (default: cores / workers)")
    args = parser.parse_args(argv)
    disable_telemetry()
    summary = separate_library(args.inputs, args.out, args.model, args.format, args.bits, args.bitrate, args.stems,
                               args.params, None, args.force, args.dask_address, args.workers, args.threads)
    print(f"separated {summary['separated']}, skipped {summary['skipped']}, failed {summary['failed']}: "
          f"{summary['audio_hours_per_hour']:.1f} h of audio per hour", file=sys.stderr)
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
