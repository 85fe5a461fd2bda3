"""The download stage through real yt-dlp against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from tests.conftest import free_port as refused_port  # nothing listens on a freed port
from tests.e2e.audio_server import serve
from tests.tiny_repo import venv_env
from vocalsep.config import params_to_dict
from vocalsep.errors import StageError
from vocalsep.stages.download import download

pytestmark = pytest.mark.e2e

SR = 44100
RECORD_FIELDS = {"id", "url", "role", "title", "license", "status", "reason", "path", "ext", "duration",
                 "sha256", "attempts"}


def make_audio(folder: Path) -> None:
    """Half-second stereo files: two different `tone.wav` (same name, other folder), an ogg, an mp3."""
    t = np.arange(SR // 2) / SR
    tone = 0.3 * np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)], axis=1)
    noise = 0.1 * np.random.default_rng(0).standard_normal((SR // 2, 2))
    (folder / "copy").mkdir(parents=True)
    sf.write(folder / "tone.wav", tone, SR)
    sf.write(folder / "copy" / "tone.wav", tone[:, ::-1], SR)
    sf.write(folder / "noise.ogg", noise, SR)
    sf.write(folder / "noise.mp3", noise, SR)
    sf.write(folder / "local.wav", tone, SR)


def with_manifest(params, folder: Path, entries: list[tuple[str, str]]):
    manifest = folder / "manifest.yaml"
    manifest.write_text(yaml.safe_dump([{"url": url, "role": role} for url, role in entries]))
    download_params = dataclasses.replace(params.download, sources=str(manifest), retries=2, backoff_seconds=0.01,
                                          socket_timeout=5.0, allow_file_urls=False)
    return dataclasses.replace(params, download=download_params)


def records(params) -> dict[str, dict]:
    lines = (Path(params.paths.raw) / "downloads.jsonl").read_text().splitlines()
    return {r["url"]: r for r in map(json.loads, lines)}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def served(tmp_path):
    make_audio(tmp_path / "www")
    with serve(tmp_path / "www") as (base, requests):
        yield tmp_path / "www", base, requests


def test_downloads_good_urls_and_records_each_failure(tmp_params, served):
    www, base, requests = served
    good = {f"{base}/tone.wav": "tone.wav", f"{base}/copy/tone.wav": "copy/tone.wav",
            f"{base}/noise.ogg": "noise.ogg", f"{base}/flaky/noise.mp3": "noise.mp3"}
    bad = {f"{base}/missing.wav": "404", f"http://127.0.0.1:{refused_port()}/tone.wav": "refused",
           (www / "local.wav").as_uri(): "allow_file_urls"}
    roles = ["acapella", "acapella", "instrumental", "instrumental", "acapella", "acapella", "instrumental"]
    params = with_manifest(tmp_params, www.parent, list(zip([*good, *bad], roles)))
    download(params)
    got = records(params)
    assert all(set(r) == RECORD_FIELDS for r in got.values())
    for url, name in good.items():
        record = got[url]
        path = Path(record["path"])
        assert record["status"] == "ok" and record["reason"] is None
        assert path == Path(params.paths.raw) / record["role"] / f"{record['id']}.{Path(name).suffix[1:]}"
        assert record["sha256"] == sha256(path) == sha256(www / name)
        assert sf.info(path).frames >= SR // 2 and record["duration"] >= 0.5
    assert got[f"{base}/flaky/noise.mp3"]["attempts"] == 2  # the 503 was retried
    for url, hint in bad.items():
        assert got[url]["status"] == "failed" and hint in got[url]["reason"] and got[url]["path"] is None
    assert got[f"{base}/missing.wav"]["attempts"] == 1  # permanent: no retry
    assert got[next(u for u, h in bad.items() if h == "refused")]["attempts"] == 2


def test_second_run_downloads_nothing_and_stale_archive_refetches(tmp_params, served):
    www, base, requests = served
    entries = [(f"{base}/tone.wav", "acapella"), (f"{base}/noise.ogg", "instrumental")]
    params = with_manifest(tmp_params, www.parent, entries)
    download(params)
    first = records(params)
    stamps = {url: Path(r["path"]).stat().st_mtime_ns for url, r in first.items()}
    asked = len(requests)
    download(params)
    second = records(params)
    assert len(requests) == asked  # not even a request
    assert all(r["attempts"] == 0 and r["sha256"] == first[u]["sha256"] for u, r in second.items())
    assert {u: Path(r["path"]).stat().st_mtime_ns for u, r in second.items()} == stamps
    archive = (Path(params.paths.raw) / "archive.txt").read_text().splitlines()
    assert sorted(archive) == sorted(f"vocalsep {r['id']}" for r in first.values())
    Path(first[f"{base}/tone.wav"]["path"]).unlink()
    download(params)
    assert len(requests) > asked and records(params)[f"{base}/tone.wav"]["sha256"] == sha256(www / "tone.wav")


def test_stage_fails_when_a_role_has_no_usable_source(tmp_params, served):
    www, base, _ = served
    dead = f"http://127.0.0.1:{refused_port()}/tone.wav"
    entries = [(f"{base}/missing.wav", "acapella"), (dead, "acapella"), (f"{base}/noise.ogg", "instrumental")]
    params = with_manifest(tmp_params, www.parent, entries)
    with pytest.raises(StageError) as err:
        download(params)
    message = str(err.value)
    assert "acapella" in message and f"{base}/missing.wav" in message and dead in message
    assert "HTTP 404" not in message  # logged once as the URL failed, not repeated in the error
    assert records(params)[f"{base}/missing.wav"]["reason"].startswith("HTTP 404")
    assert len(records(params)) == 3  # the report is written before failing


@pytest.mark.slow
def test_cli_exit_code_and_one_line_error(tmp_params, served, tmp_path):
    www, base, _ = served
    entries = [(f"{base}/missing.wav", "acapella"), (f"{base}/noise.ogg", "instrumental")]
    params = with_manifest(tmp_params, www.parent, entries)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(json.loads(json.dumps(params_to_dict(params)))))
    proc = subprocess.run([sys.executable, "-m", "vocalsep.stages.download", "--params", str(params_file)],
                          cwd=tmp_path, env=venv_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and errors[0].startswith("error in stage download: no usable acapella source")
    assert "Traceback" not in proc.stderr and proc.stderr.count("HTTP 404") == 1  # each reason once
    assert any("ok" in line and "noise.ogg" in line for line in proc.stderr.splitlines())


def test_file_urls_read_only_the_project_folders(tmp_params, served, tmp_path):
    """file: URLs outside the demo corpus, the real corpus and download.file_roots are refused, links
    followed; the run records why and goes on with the rest."""
    www, base, _ = served
    demo, corpus, mine = Path(tmp_params.paths.demo), Path(tmp_params.paths.corpus), tmp_path / "my-music"
    for folder in (demo, corpus, mine):
        folder.mkdir(parents=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    sf.write(demo / "voice.wav", np.full((SR // 2, 2), 0.1), SR)
    sf.write(corpus / "music.wav", np.full((SR // 2, 2), 0.2), SR)
    sf.write(mine / "song.wav", np.full((SR // 2, 2), 0.3), SR)
    (demo / "link.wav").symlink_to(www / "local.wav")  # inside demo/, but leads outside
    entries = [((demo / "voice.wav").as_uri(), "acapella"), ((corpus / "music.wav").as_uri(), "instrumental"),
               ((mine / "song.wav").as_uri(), "instrumental"), (secret.as_uri(), "instrumental"),
               ((demo / "link.wav").as_uri(), "acapella"), (f"file://{demo}/../secret.txt", "acapella")]
    params = with_manifest(tmp_params, www.parent, entries)
    params = dataclasses.replace(params, download=dataclasses.replace(params.download, allow_file_urls=True))
    download(params)
    got = records(params)
    assert [got[url]["status"] for url, _ in entries[:2]] == ["ok", "ok"]
    for url, _ in entries[2:]:
        assert got[url]["status"] == "failed" and "outside the folders file: URLs may read" in got[url]["reason"]
        assert "download.file_roots" in got[url]["reason"]
    raw_files = list(Path(params.paths.raw).rglob("*"))
    assert not any(p.is_file() and p.read_bytes() == secret.read_bytes() for p in raw_files)

    allowed = dataclasses.replace(params.download, file_roots=(str(mine),))
    download(dataclasses.replace(params, download=allowed))
    assert records(params)[(mine / "song.wav").as_uri()]["status"] == "ok"


def test_a_download_that_is_not_audio_is_rejected_and_not_kept(tmp_params, served):
    www, base, _ = served
    (www / "page.mp3").write_text("<html><body>404 - this song was moved</body></html>\n" * 20)
    entries = [(f"{base}/page.mp3", "acapella"), (f"{base}/tone.wav", "acapella"),
               (f"{base}/noise.ogg", "instrumental")]
    params = with_manifest(tmp_params, www.parent, entries)
    download(params)
    got = records(params)
    assert got[f"{base}/page.mp3"]["status"] == "failed"
    assert got[f"{base}/page.mp3"]["reason"].startswith("not audio")
    assert got[f"{base}/tone.wav"]["status"] == "ok" and got[f"{base}/noise.ogg"]["status"] == "ok"
    kept = [p.name for p in Path(params.paths.raw).rglob("*") if p.is_file()]
    page_id = got[f"{base}/page.mp3"]["id"]
    assert not any(name.startswith(page_id) for name in kept)
