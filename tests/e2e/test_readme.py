"""The README's commands work exactly as written after the two set-up commands.

The blocks marked `<!-- tested -->` in README.md are extracted (so the test
and the README cannot drift apart) and run, in order, as one bash script in a
workspace where `make run`'s pipeline has run (a tiny copy of the repository
after `dvc repro`), with `.venv` pointing at this interpreter's environment
and a PATH that does not contain it: what a user has in a new shell. The
user's manifest lists songs on a local HTTP server. Tools called by path
without activation are checked too.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from tests.tiny_repo import REPO_ROOT, make_tiny_repo, run
from vocalsep.config import load_params
from vocalsep.demo.corpus import SAMPLE_RATE, synthesize
from vocalsep.env import TELEMETRY_OFF

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

BARE_PATH = "/usr/local/bin:/usr/bin:/bin"  # a new shell: the venv is not on PATH
MARK = "<!-- tested -->"
SONGS = [("acapella", i) for i in range(4)] + [("instrumental", i) for i in range(4)]


def readme_blocks(readme: Path = REPO_ROOT / "README.md") -> list[str]:
    """The bash blocks that follow a `<!-- tested -->` line, in README order."""
    blocks = re.findall(rf"^{re.escape(MARK)}\n```bash\n(.*?)^```", readme.read_text(), flags=re.M | re.S)
    assert blocks, f"no {MARK} blocks in {readme}"
    return blocks


def user_env(home: Path) -> dict[str, str]:
    """A new shell's environment: no venv on PATH, a HOME of its own, git identity, telemetry off."""
    keep = {k: os.environ[k] for k in ("LANG", "TMPDIR", "VOCALSEP_CACHE") if k in os.environ}
    return {**keep, **TELEMETRY_OFF, "PATH": BARE_PATH, "HOME": str(home), "GIT_AUTHOR_NAME": "user",
            "GIT_AUTHOR_EMAIL": "u@x", "GIT_COMMITTER_NAME": "user", "GIT_COMMITTER_EMAIL": "u@x", "TQDM_DISABLE": "1"}


def write_songs(folder: Path, params) -> list[dict]:
    """The user's songs (voice-like and music-like audio, another seed than the demo's) as mp3 and flac."""
    other = dataclasses.replace(params, demo=dataclasses.replace(params.demo, seed=params.demo.seed + 99))
    entries = []
    for role, index in SONGS:
        name = f"{role}-{index}.{'mp3' if index % 2 else 'flac'}"
        sf.write(folder / name, synthesize(other, role, index), SAMPLE_RATE)
        entries.append({"file": name, "role": role, "title": f"My {role} {index}", "license": "CC-BY-4.0 (mine)"})
    return entries


@pytest.fixture(scope="module")
def after_make_run(tmp_path_factory):
    """A workspace after `make run` (dvc repro on the demo) with `.venv` -> this environment."""
    repo = make_tiny_repo(tmp_path_factory.mktemp("readme") / "repo")
    run(["dvc", "repro"], repo)
    (repo / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return repo


def test_the_venv_tools_work_by_path_without_activation(after_make_run, tmp_path):
    """`.venv/bin/dvc repro` starts `python -m vocalsep...`: it must be the venv's python, not PATH's."""
    repo = after_make_run
    done = subprocess.run([str(repo / ".venv/bin/dvc"), "repro", "-f", "check_params"], cwd=repo,
                          env=user_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Running stage 'check_params'" in done.stdout
    which = subprocess.run([str(repo / ".venv/bin/python"), "-c", "import shutil; print(shutil.which('python'))"],
                           env=user_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert which.stdout.strip() == str(repo / ".venv/bin/python") or Path(which.stdout.strip()).parent == Path(
        sys.executable).parent


def test_the_readme_commands_run_as_written(after_make_run, tmp_path):
    repo = after_make_run
    mine = repo / "my-music"  # the README's folder of the user's own recordings
    mine.mkdir()
    songs = write_songs(mine, load_params(repo / "params.yaml"))
    sf.write(repo / "song.mp3", np.zeros((22050, 2), np.float32) + 0.01, 44100)
    sf.write(repo / "other.flac", 0.1 * np.random.default_rng(0).standard_normal((22050, 2)), 44100)
    blocks = readme_blocks()
    script = ["set -euo pipefail"]
    for number, block in enumerate(blocks):
        for line in block.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                script += [f"printf '%s\\n' {shlex.quote(f'### {number}: ' + line.split('#')[0].strip())}", line]
    manifest = [{"url": f"file:../my-music/{s['file']}", "role": s["role"], "title": s["title"],
                 "license": s["license"]} for s in songs]  # local files, as the README's manifest lists them
    (repo / "sources/my-songs.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=repo, env=user_env(tmp_path),
                          capture_output=True, text=True, timeout=1200)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-8000:]
    downloads = [json.loads(line) for line in (repo / "data/raw/downloads.jsonl").read_text().splitlines()]
    assert sorted(Path(d["url"]).name for d in downloads if d["status"] == "ok") == sorted(s["file"] for s in songs)
    sections = dict(re.findall(r"### \d+: ([^\n]+)\n(.*?)(?=### \d+: |\Z)", done.stdout, flags=re.S))
    shown_md = next(text for command, text in sections.items() if command.startswith("dvc exp show"))
    assert max(map(len, shown_md.splitlines())) < 200, shown_md  # the columns a user compares, not 174 of them
    assert "my-songs" in shown_md and "si_sdri" in shown_md and "download.sources" in shown_md

    # dvc exp run -S changed only the line it set, and the experiment is listed with its eval metrics
    changed = subprocess.run(["git", "diff", "-U0", "HEAD", "--", "params.yaml"], cwd=repo, capture_output=True,
                             text=True, check=True).stdout
    edits = [line for line in changed.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    removed = [line for line in edits if line[:1] == "-"]
    assert len(removed) == 2 and any("sources:" in r for r in removed) and any("file_roots" in r for r in removed), edits
    assert any("sources/my-songs.yaml" in line for line in edits) and any("my-music" in line for line in edits)
    shown = subprocess.run([".venv/bin/dvc", "exp", "show", "--no-pager", "--csv"], cwd=repo, env=user_env(tmp_path),
                           capture_output=True, text=True, timeout=300, check=True).stdout
    experiment = next(row for row in csv.DictReader(io.StringIO(shown)) if row["Experiment"] == "my-songs")
    for metric in ("si_sdr", "sdr", "si_sdri", "val_si_sdr", "promoted"):
        float(experiment[metric])  # a number, not "!" or text
    assert "si_sdr" in sections["dvc exp diff"] and "download.sources" in sections["dvc exp diff"]

    # dvc metrics show: numbers only (the registry's text fields live in models/export/registry.json)
    metrics = sections["dvc metrics show"]
    for text_field in ("decision", "model_uri", "registered_model", "champion_rescored"):
        assert text_field not in metrics, metrics
    assert "promoted" in metrics and "si_sdr" in metrics

    # only the user's audio: no demo generated for this manifest, no demo files left in data/raw
    assert [p.name for p in (repo / "data/demo").iterdir()] == ["NOT_GENERATED.txt"]
    raw_files = sorted(p for p in (repo / "data/raw").rglob("*") if p.is_file() and p.parent.name in
                       ("acapella", "instrumental"))
    assert len(raw_files) == len(songs)

    # stems: named after the inputs, gitignored, never swept into an experiment
    for name in ("song", "other"):
        assert (repo / "stems" / name / "vocals.wav").is_file()
    assert subprocess.run(["git", "check-ignore", "-q", "stems/song/vocals.wav"], cwd=repo).returncode == 0
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    assert "stems" not in status

    # provenance of the champion: the user's songs with title, URL, licence and sha256 (the experiment's
    # model is champion only if it beat both the champion and the shipped base model on the new test set)
    printed = sections["vocalsep provenance models:/vocalsep@champion"]
    record = json.loads((repo / "models/export/registry.json").read_text())
    assert record["base_version"] == "1" and np.isfinite(record["base_metric"])  # registered by make run's export
    best_before = max(record["base_metric"], record["champion_metric"])
    assert (record["decision"] == "champion") == (record["new_metric"] > best_before)
    if record["decision"] == "champion":
        downloads = [json.loads(line) for line in (repo / "data/raw/downloads.jsonl").read_text().splitlines()]
        for record in downloads:
            assert record["url"] in printed and record["title"] in printed and record["sha256"] in printed
        assert "CC-BY-4.0 (mine)" in printed
    elif record["champion_version"] == record["base_version"]:
        assert "the shipped base model" in printed and "apt:asterisk-core-sounds-en-wav" in printed
    else:
        assert "Demo voice 01" in printed and "generated by vocalsep.demo, CC0" in printed


def test_the_readme_blocks_cover_the_user_loop():
    """The README keeps the user's loop under test: activation, experiment, metrics, stems, provenance."""
    text = "\n".join(readme_blocks())
    for command in ("source .venv/bin/activate", "dvc exp run", "dvc exp show", "dvc metrics show",
                    "vocalsep separate", "vocalsep provenance"):
        assert command in text, command
    assert next(iter(csv.reader(io.StringIO(readme_blocks()[0].strip()))))[0] == "source .venv/bin/activate"
