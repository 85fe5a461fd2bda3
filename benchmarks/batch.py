"""Separating a library: hours of audio per wall-clock hour, and peak RSS per process; writes batch.json.

A library of `--files` files (default 100) of `--seconds` s (default 30) in
mixed formats, rates and channel counts (wav, flac, mp3, ogg; 16-48 kHz; mono
and stereo) is separated with the shipped base model (`--model pretrained`) by:

- `loop`: a shell-style loop that calls `vocalsep separate FILE` once per file
  (a new process, model load and all, per file: the way before folders);
- `jobs1` and `jobs2`: `vocalsep separate LIBRARY --jobs N`;
- `flow`: `python -m flows.library LIBRARY --workers 2` (the separate-library
  Prefect flow on a LocalCluster of 2 Dask worker processes, against a
  Prefect server started beforehand; the process's wall time, cluster
  start-up included);
- `rerun_jobs2` and `rerun_flow`: the same commands again on the finished
  output folders (everything skipped).

Each command runs as a subprocess; a sampler reads the RSS of every process
in its tree every 0.1 s. Throughput = seconds of audio / wall seconds (the
same as hours per hour). Run it on an otherwise idle machine.

Usage: python benchmarks/batch.py [--files 100] [--seconds 30] [--work /tmp/vocalsep-batch]
       [--out benchmarks/results/batch.json] [--only loop jobs1 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the e2e helpers start the Prefect server as the tests do

# (extension, rate, channels, soundfile subtype or None)
KINDS = [("wav", 44100, 2, "PCM_16"), ("flac", 48000, 2, "PCM_24"), ("mp3", 44100, 2, None),
         ("ogg", 22050, 2, None), ("wav", 16000, 1, "PCM_16"), ("flac", 44100, 1, "PCM_16")]
CONFIGS = ["loop", "jobs1", "jobs2", "flow", "rerun_jobs2", "rerun_flow"]


def make_library(folder: Path, files: int, seconds: float) -> float:
    """`files` synthetic songs (harmonic 'voice' glides over chords and noise); total seconds of audio."""
    folder.mkdir(parents=True, exist_ok=True)
    total = 0.0
    for i in range(files):
        ext, rate, channels, subtype = KINDS[i % len(KINDS)]
        path = folder / f"album{i // 20:02d}" / f"track{i:03d}.{ext}"
        if not path.exists():
            rng = np.random.default_rng(i)
            t = np.arange(int(rate * seconds)) / rate
            pitch = 180 + 60 * np.sin(2 * np.pi * 0.3 * t + i)
            voice = sum(np.sin(2 * np.pi * k * np.cumsum(pitch) / rate) / k for k in range(1, 6))
            chords = sum(np.sin(2 * np.pi * f * t) for f in (110 * (i % 4 + 1), 165, 220))
            mix = 0.15 * voice + 0.1 * chords + 0.02 * rng.standard_normal(t.size)
            audio = np.stack([mix * (0.8 + 0.2 * c) for c in range(channels)], axis=1).astype(np.float32)
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, audio, rate, **({"subtype": subtype} if subtype else {}))
        total += sf.info(str(path)).duration
    return total


class TreeSampler:
    """Peak RSS of every process in a command's tree, sampled every `interval` s."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.root, self.interval, self.peaks = pid, interval, {}
        self.names: dict[int, str] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                root = psutil.Process(self.root)
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                procs = []
            for proc in procs:
                try:
                    rss = proc.memory_info().rss
                    self.peaks[proc.pid] = max(self.peaks.get(proc.pid, 0), rss)
                    self.names.setdefault(proc.pid, " ".join(proc.cmdline()[:4])[-120:])
                except psutil.Error:
                    pass
            self.stop.wait(self.interval)

    def finish(self) -> dict[int, int]:
        self.stop.set()
        self.thread.join()
        return self.peaks


def timed(command: list[str], env: dict[str, str]) -> dict:
    """Run `command`; wall seconds, exit code and peak RSS (MiB) per process of its tree."""
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler(proc.pid)
    _, err = proc.communicate()
    wall = time.monotonic() - started
    peaks = sampler.finish()
    mib = {pid: round(rss / 2**20, 1) for pid, rss in peaks.items()}
    return {"wall_seconds": wall, "returncode": proc.returncode, "stderr_tail": err[-400:], "peak_rss_mib": mib,
            "processes": {pid: sampler.names.get(pid, "") for pid in peaks}}


def worker_peaks(run: dict) -> list[float]:
    """Peak RSS of the processes that separated: those above 150 MiB (the model and torch), largest first."""
    return sorted((v for v in run["peak_rss_mib"].values() if v > 150), reverse=True)


def run_loop(files: list[Path], out: Path, env: dict[str, str]) -> dict:
    """One `vocalsep separate FILE` process per file, one after another."""
    started, peaks, failed = time.monotonic(), [], 0
    for path in files:
        result = timed([sys.executable, "-m", "vocalsep.cli.main", "separate", str(path), "-o", str(out / path.parent.name),
                        "--model", "pretrained"], env)
        failed += result["returncode"] != 0
        peaks += worker_peaks(result)
    return {"wall_seconds": time.monotonic() - started, "returncode": int(failed > 0), "worker_peak_rss_mib":
            max(peaks) if peaks else None, "processes": len(files)}


def run_config(name: str, library: Path, work: Path, env: dict[str, str]) -> dict:
    out = work / ("out_" + name.removeprefix("rerun_"))
    if name == "loop":
        return run_loop(sorted(p for p in library.rglob("*") if p.is_file()), out, env)
    if name.endswith("flow"):
        command = [sys.executable, "-m", "flows.library", str(library), "-o", str(out), "--model", "pretrained",
                   "--workers", "2"]
    else:
        jobs = "2" if name.endswith("jobs2") else "1"
        command = [sys.executable, "-m", "vocalsep.cli.main", "separate", str(library), "-o", str(out), "--model",
                   "pretrained", "--jobs", jobs]
    result = timed(command, env)
    result["worker_peak_rss_mib"] = worker_peaks(result)
    del result["processes"], result["peak_rss_mib"]
    return result


def prefect_server(env: dict[str, str], home: Path):
    """A Prefect server for the flow runs (as the e2e tests start it); `(process, env pointing at it)`."""
    from tests.conftest import free_port
    from tests.e2e.conftest import PREFECT_STARTUP_SECONDS, wait_healthy

    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**env, "PREFECT_HOME": str(home), "PREFECT_API_URL": api, "PREFECT_UI_ENABLED": "false",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    home.mkdir(parents=True, exist_ok=True)
    log = home / "server.log"
    with open(log, "w") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                                 str(port)], env=env, stdout=handle, stderr=subprocess.STDOUT)
    wait_healthy(f"{api}/health", proc, log, PREFECT_STARTUP_SECONDS)
    return proc, env


def summarise(results: dict, audio_seconds: float) -> dict:
    for result in results.values():
        result["audio_hours_per_hour"] = round(audio_seconds / result["wall_seconds"], 2)
        result["wall_seconds"] = round(result["wall_seconds"], 2)
    firsts = {k: v for k, v in results.items() if not k.startswith("rerun")}
    best = max(firsts, key=lambda k: firsts[k]["audio_hours_per_hour"]) if firsts else None
    summary = {"best": best}
    if best and "loop" in results:
        summary["best_over_loop"] = round(results[best]["audio_hours_per_hour"] / results["loop"]["audio_hours_per_hour"], 2)
    for rerun in ("rerun_jobs2", "rerun_flow"):
        first = rerun.removeprefix("rerun_")
        if rerun in results and first in results:
            summary[f"{rerun}_fraction_of_first"] = round(results[rerun]["wall_seconds"] / results[first]["wall_seconds"], 4)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/vocalsep-batch"))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "batch.json")
    parser.add_argument("--only", nargs="+", choices=CONFIGS, default=CONFIGS)
    args = parser.parse_args()
    library = args.work / "library"
    audio = make_library(library, args.files, args.seconds)
    env = {**os.environ, "PYTHONPATH": str(REPO), "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    for name in args.only:
        if not name.startswith("rerun"):
            shutil.rmtree(args.work / f"out_{name}", ignore_errors=True)
    server, env = prefect_server(env, args.work / "prefect") if any("flow" in c for c in args.only) else (None, env)
    results, load_before = {}, os.getloadavg()
    try:
        for name in args.only:
            results[name] = run_config(name, library, args.work, env)
            print(f"{name}: {results[name]['wall_seconds']:.1f} s (exit {results[name]['returncode']})", flush=True)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    if args.out.is_file() and set(args.only) != set(CONFIGS):  # a partial run updates its configs only
        earlier = json.loads(args.out.read_text())
        if (earlier.get("files"), earlier.get("seconds_per_file")) == (args.files, args.seconds):
            results = {**{k: v for k, v in earlier["results"].items() if k not in results}, **results}
    report = {"files": args.files, "seconds_per_file": args.seconds, "audio_seconds": round(audio, 1),
              "kinds": [f"{e} {r} Hz {c} ch" for e, r, c, _ in KINDS], "model": "pretrained",
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                          "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
              "results": results}
    report["summary"] = summarise(results, audio)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
