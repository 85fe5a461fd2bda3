"""`vocalsep serve`: MLflow's scoring app behind limits, tried with hostile requests over real HTTP.

One registered model (a VocNet slow enough that a minute of audio outlasts the
timeout), one real server process; each bad request must get its 4xx (or
503/504) with a message naming the field, never a traceback, and the server's
memory must stay bounded.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import io
import json
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from tests.serving_helpers import RATE, SOURCES, start_server, stop_group, tiny_params
from tests.tiny_repo import venv_env
from vocalsep.config import params_to_dict
from vocalsep.env import ffmpeg_exe
from vocalsep.model import VocNet, load_model, save_checkpoint
from vocalsep.separate import separate_with_params
from vocalsep.serving.limits import Limits
from vocalsep.stages.export import register

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

MODEL = {"filters": 48, "skip_filters": 48, "layers": 12, "layers_per_stack": 6}
MAX_SECONDS = 60.0
TIMEOUT = 1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-limits")
    params = tiny_params(root)
    params = dataclasses.replace(params, export=dataclasses.replace(params.export, max_seconds=MAX_SECONDS),
                                 serve=dataclasses.replace(params.serve, workers=1, threads=1, queue=1,
                                                           timeout_seconds=TIMEOUT))
    params_file = root / "params.yaml"
    params_file.write_text(yaml.safe_dump(json.loads(json.dumps(params_to_dict(params)))))
    torch.manual_seed(0)
    checkpoint = root / "best.pt"
    save_checkpoint(checkpoint, VocNet(**MODEL), MODEL, params=params_to_dict(params))
    Path(params.paths.export).mkdir(parents=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", params.tracking.uri)
        register(params, checkpoint, {"si_sdr": 1.0}, root / "dvc.lock")
    process, port = start_server(f"models:/{params.export.registered_model}@champion", params.tracking.uri, root,
                                 command=["vocalsep", "serve", "--params", str(params_file)])
    try:
        yield port, process, params, checkpoint, root
    finally:
        stop_group(process)


def send(port: int, body: bytes | None, headers: dict[str, str] | None = None,
         timeout: float = 60) -> tuple[int, dict, dict]:
    """POST with exactly these headers (http.client adds no Content-Type of its own)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", "/invocations", body=body,
                           headers=headers if headers is not None else {"Content-Type": "application/json"})
        answer = connection.getresponse()
        raw = answer.read()
    finally:
        connection.close()
    assert b"Traceback" not in raw and b".py" not in raw, raw[:500]
    return answer.status, json.loads(raw), {k.lower(): v for k, v in answer.headers.items()}


def rss_mb(process: subprocess.Popen) -> float:
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def cpu_seconds(process: subprocess.Popen) -> float:
    fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime in clock ticks (100 Hz)


def wav_base64(seconds: float, rate: int = RATE) -> str:
    rng = np.random.default_rng(1)
    buffer = io.BytesIO()
    sf.write(buffer, 0.1 * rng.standard_normal((int(seconds * rate), 2)), rate, format="WAV", subtype="PCM_16")
    return base64.b64encode(buffer.getvalue()).decode()


def test_a_good_request_is_separated_like_the_core(server):
    port, _, params, checkpoint, _ = server
    mixture = (0.1 * np.random.default_rng(0).standard_normal((1600, 2))).astype(np.float32)
    status, answer, _ = send(port, json.dumps({"inputs": mixture.tolist()}).encode())
    assert status == 200, answer
    expected = separate_with_params(load_model(checkpoint), mixture.T, RATE, params.separate).T
    np.testing.assert_allclose(np.asarray(answer["predictions"], np.float32), expected, atol=1e-4, rtol=0)


def test_an_array_over_the_limit_is_refused_before_parsing(server):
    port, process, _, _, _ = server
    before = rss_mb(process)
    rows = int(MAX_SECONDS * RATE) + 1
    body = b'{"inputs": [' + b",".join([b"[0,0]"] * rows) + b"]}"
    status, answer, _ = send(port, body)
    assert status == 413 and "limit" in answer["message"]
    assert rss_mb(process) < before + 100  # nothing was parsed


def test_a_declared_body_over_the_limit_is_refused_unread(server):
    port, _, params, _, _ = server
    limit = Limits.for_model(RATE, MAX_SECONDS, ("audio_base64",), params.serve).max_body_bytes
    status, answer, _ = send(port, b"x" * (limit + 1))
    assert status == 413 and f"limit of {limit}" in answer["message"] and "body" in answer["message"]


def test_an_hour_of_compressed_silence_is_refused_from_its_header(server, tmp_path):
    port, process, _, _, _ = server
    m4a = tmp_path / "silence.m4a"
    subprocess.run([ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "anullsrc=r=8000:cl=mono", "-t", "3600", "-c:a", "aac", "-b:a", "8k", str(m4a)], check=True)
    before, start = rss_mb(process), time.monotonic()
    body = json.dumps({"inputs": [[0.0, 0.0]], "params": {"audio_base64": base64.b64encode(m4a.read_bytes()).decode()}})
    status, answer, _ = send(port, body.encode())
    assert status == 400 and "3600.0 s of audio is longer than the limit" in answer["message"]
    assert time.monotonic() - start < 10 and rss_mb(process) < before + 100  # never decoded


@pytest.mark.parametrize("headers, expected", [({}, "none"), ({"Content-Type": "text/csv"}, "text/csv"),
                                               ({"Content-Type": "application/x-www-form-urlencoded"}, "form")])
def test_a_body_that_is_not_json_gets_415(server, headers, expected):
    port = server[0]
    status, answer, _ = send(port, b"0.1,0.2\n0.3,0.4\n", headers=headers)
    assert status == 415 and "Content-Type: expected application/json" in answer["message"]
    assert expected in answer["message"]


def test_deeply_nested_json_gets_400(server):
    port = server[0]
    status, answer, _ = send(port, b"[" * 100_000 + b"]" * 100_000)
    assert status == 400 and "nested" in answer["message"]
    status, answer, _ = send(port, json.dumps({"inputs": [[[[[0.1, 0.2]]]]]}).encode())
    assert status == 400 and "nested" in answer["message"]


@pytest.mark.parametrize("inputs, word", [([["0.1", "0.2"]], "strings"), ([[True, False]], "booleans"),
                                          ([[0.1, 0.2], [0.3]], "rows of different lengths"),
                                          ([[0.1, 0.2, 0.3]], "shape")])
def test_samples_that_are_not_number_pairs_get_400(server, inputs, word):
    status, answer, _ = send(server[0], json.dumps({"inputs": inputs}).encode())
    assert status == 400 and answer["message"].startswith("inputs:") and word in answer["message"]


@pytest.mark.parametrize("body, field", [({"inputs": [[0.1, 0.2]], "params": {"evil": "1"}}, "params.evil"),
                                         ({"inputs": [[0.1, 0.2]], "extra": 1}, "extra"),
                                         ({"data": [[0.1, 0.2]]}, "data")])
def test_unknown_fields_and_params_are_named(server, body, field):
    status, answer, _ = send(server[0], json.dumps(body).encode())
    assert status == 400 and field in answer["message"]


def test_malformed_json_gets_400(server):
    status, answer, _ = send(server[0], b'{"inputs": [[0.1, 0.2]')
    assert status == 400 and "not valid JSON" in answer["message"]


def test_a_request_past_the_timeout_gets_504_and_its_work_stops(server):
    port, process, _, _, _ = server
    body = json.dumps({"inputs": [[0.0, 0.0]], "params": {"audio_base64": wav_base64(MAX_SECONDS - 1)}}).encode()
    start = time.monotonic()
    status, answer, _ = send(port, body)
    assert status == 504 and "serve.timeout_seconds" in answer["message"]
    assert time.monotonic() - start < TIMEOUT + 10
    time.sleep(1.0)  # the core stops at its next batch
    used = cpu_seconds(process)
    time.sleep(2.0)
    assert cpu_seconds(process) - used < 0.5  # idle: the timed-out separation is not still running
    status, _, _ = send(port, json.dumps({"inputs": [[0.1, 0.2]] * 800}).encode())
    assert status == 200


def test_overload_gets_503_with_retry_after(server):
    """One separating, one waiting (serve.queue: 1): the third is told to come back."""
    port = server[0]
    body = json.dumps({"inputs": [[0.0, 0.0]], "params": {"audio_base64": wav_base64(MAX_SECONDS - 1)}}).encode()
    answers: list[tuple[int, dict]] = []

    def client():
        status, answer, _ = send(port, body)
        answers.append((status, answer))

    threads = [threading.Thread(target=client) for _ in range(2)]
    for thread in threads:
        thread.start()
        time.sleep(0.3)
    status, answer, headers = send(port, body)
    for thread in threads:
        thread.join()
    assert status == 503 and int(headers["retry-after"]) >= 1 and "serve.queue" in answer["message"]
    assert sorted(s for s, _ in answers) == [504, 504]  # both admitted, both stopped at the timeout


def test_memory_stays_bounded_after_every_case(server):
    port, process, _, _, _ = server
    assert rss_mb(process) < 1500
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=10) as answer:
        assert answer.status == 200


def test_a_model_that_learned_only_from_the_demo_is_served_only_when_asked(server, tmp_path):
    """A model that heard only the synthetic demo (`make run`'s version 2): `vocalsep serve` refuses it without --allow-demo."""
    _, _, params, checkpoint, root = server
    downloads = Path(params.paths.downloads)
    kept = downloads.read_text() if downloads.is_file() else None
    downloads.parent.mkdir(parents=True, exist_ok=True)
    downloads.write_text("".join(json.dumps({**source, "url": f"file:///demo/{source['id']}.flac",
                                             "license": "generated by vocalsep.demo, CC0"}) + "\n"
                                 for source in SOURCES))  # the index's sources, as the demo corpus gives them
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MLFLOW_TRACKING_URI", params.tracking.uri)
            record = register(params, checkpoint, {"si_sdr": 0.5}, root / "dvc.lock")
    finally:
        if kept is None:
            downloads.unlink()
        else:
            downloads.write_text(kept)
    uri = f"models:/{params.export.registered_model}/{record['version']}"
    refused = subprocess.run(["vocalsep", "serve", "-m", uri, "--params", str(root / "params.yaml"), "-p", "9"],
                             cwd=root, env=venv_env({"MLFLOW_TRACKING_URI": params.tracking.uri}), capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 2 and "synthetic demo corpus" in refused.stderr and "--allow-demo" in refused.stderr
    process, port = start_server(uri, params.tracking.uri, tmp_path,
                                 command=["vocalsep", "serve", "--params", str(root / "params.yaml"), "--allow-demo"])
    try:
        assert "learned from" in (tmp_path / "serve.log").read_text()
    finally:
        stop_group(process)
