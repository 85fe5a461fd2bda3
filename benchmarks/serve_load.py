"""Serving under load: the real `vocalsep serve` on 127.0.0.1, N concurrent clients for a bounded time.

Registers a model in a throw-away MLflow store (the shipped base model by
default, as `vocalsep register-base` does on a fresh clone, or `--model-uri`
from an existing store), starts `vocalsep serve -m models:/vocalsep@champion`
in its own process, and runs `--clients` threads that each send the same
`--seconds` stereo mixture back to back for `--duration` seconds. Writes
benchmarks/results/serve_load.json with:

- requests, errors (by status), p50/p95/p99 latency;
- served audio-seconds per wall second;
- the core's offline real-time factor on the same input, measured in this run
  before the server starts (same torch threads as the server), and the ratio;
- peak server RSS (VmHWM of the server process).

Request forms (`--form`): `flac` sends the mixture as base64 FLAC in
`params.audio_base64` (the efficient path; the answer is base64 WAV), `json`
sends it as a JSON array (the answer is a JSON array).

Usage: python benchmarks/serve_load.py [--clients 8] [--duration 60] [--seconds 5] [--form flac|json]
       [--params params.yaml] [--out benchmarks/results/serve_load.json]
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import http.client
import io
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import yaml

from vocalsep.config import load_params, params_to_dict
from vocalsep.env import disable_telemetry
from vocalsep.separate import separate_at_rate

ROOT = Path(__file__).resolve().parents[1]
RATE = 44100


def mixture(seconds: float) -> np.ndarray:
    """A voice-like tone over noise, `(frames, 2)` float32 (content does not change the speed)."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE)) / RATE
    voice = 0.2 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    return (np.stack([voice, voice], axis=1) + 0.05 * rng.standard_normal((t.size, 2))).astype(np.float32)


def request_body(audio: np.ndarray, form: str) -> bytes:
    if form == "json":
        return json.dumps({"inputs": audio.tolist()}).encode()
    buffer = io.BytesIO()
    sf.write(buffer, audio, RATE, format="FLAC", subtype="PCM_24")
    return json.dumps({"inputs": [[0.0, 0.0]],
                       "params": {"audio_base64": base64.b64encode(buffer.getvalue()).decode()}}).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def vm(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def offline_rate(model_uri: str, seconds: float, threads: int) -> float:
    """Audio-seconds per wall second of the separation core alone, on the served model, best of 3."""
    from vocalsep.loading import load_separator

    torch.set_num_threads(threads)
    model, model_rate = load_separator(model_uri, "cpu")
    params = load_params(Path(os.environ["VOCALSEP_BENCH_PARAMS"])).separate
    audio = mixture(seconds)
    separate_at_rate(model, model_rate, audio[: RATE // 2], RATE, params)
    best = min(_timed(lambda: separate_at_rate(model, model_rate, audio, RATE, params)) for _ in range(3))
    return seconds / best


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def register_base(params_file: Path) -> str:
    subprocess.run([sys.executable, "-m", "vocalsep.cli.main", "register-base", "--params", str(params_file)],
                   check=True, capture_output=True, text=True)
    return "models:/vocalsep@champion"


def wait_ping(port: int, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/ping")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("server did not answer /ping")


def client(port: int, body: bytes, until: float, results: list, lock: threading.Lock) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    while time.monotonic() < until:
        start = time.perf_counter()
        try:
            connection.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
            answer = connection.getresponse()
            payload = answer.read()
            status = answer.status
            if status == 200:
                json.loads(payload)
        except (OSError, http.client.HTTPException, ValueError) as err:
            status = type(err).__name__
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        with lock:
            results.append((status, time.perf_counter() - start, time.monotonic()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each request's mixture")
    parser.add_argument("--form", choices=["flac", "json"], default="flac")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml", help="the serve and separate sections")
    parser.add_argument("--model-uri", help="serve this model from MLFLOW_TRACKING_URI instead of the base model")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/serve_load.json")
    args = parser.parse_args()
    disable_telemetry()
    base = load_params(args.params)
    with tempfile.TemporaryDirectory(prefix="vocalsep-serve-load-") as tmp:
        folder = Path(tmp)
        params = dataclasses.replace(base, tracking=dataclasses.replace(
            base.tracking, uri=f"sqlite:///{folder}/mlflow.db", artifacts=str(folder / "artifacts")))
        params_file = folder / "params.yaml"
        params_file.write_text(yaml.safe_dump(json.loads(json.dumps(params_to_dict(params)))))
        env = dict(os.environ, VOCALSEP_BENCH_PARAMS=str(params_file))
        if args.model_uri:
            uri = args.model_uri
        else:
            env["MLFLOW_TRACKING_URI"] = params.tracking.uri
            os.environ["MLFLOW_TRACKING_URI"] = params.tracking.uri
            uri = register_base(params_file)
        os.environ["VOCALSEP_BENCH_PARAMS"] = str(params_file)
        offline = offline_rate(uri, args.seconds, base.serve.threads)
        print(f"offline core: {offline:.1f} audio-s per s ({base.serve.threads} threads)", file=sys.stderr)

        port, log = free_port(), folder / "serve.log"
        command = [sys.executable, "-m", "vocalsep.cli.main", "serve", "-m", uri, "-h", "127.0.0.1", "-p", str(port),
                   "--params", str(params_file)]
        with log.open("w") as out:
            server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_ping(port, server, log)
            body = request_body(mixture(args.seconds), args.form)
            results: list = []
            lock = threading.Lock()
            start = time.monotonic()
            until = start + args.duration
            threads = [threading.Thread(target=client, args=(port, body, until, results, lock))
                       for _ in range(args.clients)]
            for thread in threads:
                thread.start()
            peak = 0.0
            while any(t.is_alive() for t in threads):
                peak = max(peak, vm(server.pid, "VmRSS"))
                time.sleep(0.5)
            wall = time.monotonic() - start
            peak = max(peak, vm(server.pid, "VmHWM"))
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    ok = [latency for status, latency, _ in results if status == 200]
    errors: dict[str, int] = {}
    for status, _, _ in results:
        if status != 200:
            errors[str(status)] = errors.get(str(status), 0) + 1
    served = len(ok) * args.seconds / wall
    percentile = (lambda q: round(float(np.percentile(ok, q)), 3)) if ok else (lambda q: None)
    result = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "load_average_1min_after": round(os.getloadavg()[0], 2)},
        "model": uri if args.model_uri else "pretrained (shipped base model, registered as champion)",
        "serve": dataclasses.asdict(base.serve), "form": args.form, "clients": args.clients,
        "duration_seconds": args.duration, "request_audio_seconds": args.seconds,
        "request_body_bytes": len(body), "wall_seconds": round(wall, 2),
        "requests": len(results), "ok": len(ok), "errors": errors,
        "latency_seconds": {"p50": percentile(50), "p95": percentile(95), "p99": percentile(99),
                            "max": round(max(ok), 3) if ok else None},
        "served_audio_seconds_per_second": round(served, 2),
        "offline_core_audio_seconds_per_second": round(offline, 2),
        "served_over_offline": round(served / offline, 3),
        "peak_server_rss_mib": round(peak, 1),
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(args.out.read_text()) if args.out.exists() else {}
    existing[f"{args.form}_{args.clients}clients"] = result
    args.out.write_text(json.dumps(existing, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
