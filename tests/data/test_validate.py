"""validate stage: rows breaking the GX suite are quarantined with reasons; too few valid files fail."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from vocalsep.config import params_to_dict
from vocalsep.errors import StageError
from vocalsep.contracts import MANIFEST_COLUMNS
from vocalsep.stages.validate import validate

pytestmark = pytest.mark.slow  # Great Expectations takes seconds to import and set up


def good_row(file_id: str, role: str, sample_rate: int = 44100) -> dict:
    """A manifest row (contract in docs/pipeline.md) that passes every default expectation."""
    return {
        "id": file_id, "role": role, "path": f"data/normalized/{role}/{file_id}.flac",
        "source_path": f"data/raw/{role}/{file_id}.wav", "sample_rate": sample_rate, "channels": 2,
        "source_sample_rate": 48000, "source_channels": 2, "duration": 30.0, "peak": -1.0,
        "loudness": -23.0, "silence_ratio": 0.1, "clipping_ratio": 0.0, "sha256": "0" * 64,
        "status": "ok", "reason": "",
    }


def write_manifest(params, rows: list[dict]) -> None:
    folder = Path(params.paths.normalized)
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    frame.to_parquet(folder / "manifest.parquet", index=False)


# id -> (field changes, expectation names it must break)
BROKEN = {
    "low_rate": ({"sample_rate": 22050}, {"expect_column_values_to_be_in_set(sample_rate)"}),
    "short": ({"duration": 2.0}, {"expect_column_values_to_be_between(duration)"}),
    "loud": ({"peak": -0.1, "loudness": -5.0}, {"expect_column_values_to_be_between(peak)",
                                                 "expect_column_values_to_be_between(loudness)"}),
    "silent": ({"silence_ratio": 0.95, "loudness": np.nan}, {"expect_column_values_to_be_between(silence_ratio)",
                                                             "expect_column_values_to_not_be_null(loudness)"}),
    "mono": ({"channels": 1}, {"expect_column_values_to_be_in_set(channels)"}),
}


def test_broken_rows_are_quarantined_with_their_reasons(tmp_params):
    rows = [good_row(f"voc{i}", "acapella") for i in range(3)] + [good_row(f"ins{i}", "instrumental") for i in range(3)]
    for file_id, (changes, _) in BROKEN.items():
        rows.append({**good_row(file_id, "acapella"), **changes})
    rows += [good_row("dup", "instrumental"), good_row("dup", "instrumental")]
    write_manifest(tmp_params, rows)

    outcome = validate(tmp_params)

    valid = pd.read_parquet(Path(tmp_params.paths.validated) / "valid.parquet")
    quarantine = pd.read_parquet(Path(tmp_params.paths.validated) / "quarantine.parquet")
    assert sorted(valid["id"]) == ["ins0", "ins1", "ins2", "voc0", "voc1", "voc2"]
    assert list(valid.columns) == list(MANIFEST_COLUMNS)
    assert list(quarantine.columns) == [*MANIFEST_COLUMNS, "expectations"]
    reasons = {row.id: set(row.expectations.split(";")) for row in quarantine.itertuples() if row.id != "dup"}
    assert reasons == {file_id: names for file_id, (_, names) in BROKEN.items()}
    dup_reasons = quarantine.loc[quarantine["id"] == "dup", "expectations"].tolist()
    assert dup_reasons == ["expect_column_values_to_be_unique(id)"] * 2
    assert len(outcome.valid) == 6

    reports = Path(tmp_params.paths.reports) / "validation"
    summary = (reports / "summary.txt").read_text()
    for file_id, (_, names) in BROKEN.items():
        assert file_id in summary and all(name in summary for name in names)
    assert "duration=2.0" in summary
    result = json.loads((reports / "result.json").read_text())
    assert result["success"] is False and len(result["results"]) == len(outcome.result["results"])
    assert (reports / "data_docs" / "index.html").exists()


def test_too_few_valid_files_fails_naming_role_and_counts(tmp_params, tmp_path):
    rows = [good_row(f"voc{i}", "acapella") for i in range(4)]
    rows += [good_row("ins0", "instrumental"), {**good_row("ins1", "instrumental"), "duration": 1.0},
             {**good_row("ins2", "instrumental"), "status": "failed", "reason": "undecodable"}]
    write_manifest(tmp_params, rows)
    with pytest.raises(StageError) as err:
        validate(tmp_params)
    message = str(err.value)
    assert "instrumental has 1 valid file(s), 3 needed" in message
    assert "acapella" not in message.split("Top reasons")[0]
    assert "expect_column_values_to_be_between(duration)" in message
    summary = (Path(tmp_params.paths.reports) / "validation" / "summary.txt").read_text()
    assert "undecodable" in summary

    # the same failure from the command line, with paths relative to the working folder as in params.yaml:
    # one readable line, exit code 2, no traceback
    params_file = tmp_path / "params.yaml"
    relative = {f.name: str(Path(getattr(tmp_params.paths, f.name)).relative_to(tmp_path))
                for f in dataclasses.fields(tmp_params.paths)}
    strict = dataclasses.replace(tmp_params, paths=dataclasses.replace(tmp_params.paths, **relative),
                                 validate=dataclasses.replace(tmp_params.validate, min_files_per_role=5))
    shutil.rmtree(tmp_params.paths.reports)
    params_file.write_text(yaml.safe_dump(json.loads(json.dumps(params_to_dict(strict)))))  # tuples -> lists
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "vocalsep.stages.validate", "--params", str(params_file)],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error in stage validate")]
    assert len(errors) == 1
    assert "acapella has 4 valid file(s), 5 needed" in errors[0]
    assert (Path(tmp_params.paths.reports) / "validation" / "data_docs" / "index.html").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "params.yaml", "reports"]  # no gx/ folder


def test_the_summary_names_title_and_url_and_puts_the_first_cause_first(tmp_params):
    """A file that could not be decoded breaks status and, as a consequence, every measured column:
    the summary names the song by title and URL and gives the decode failure before its consequences."""
    rows = [good_row(f"voc{i}", "acapella") for i in range(3)] + [good_row(f"ins{i}", "instrumental") for i in range(3)]
    undecodable = {**good_row("bad1", "acapella"), "status": "failed", "reason": "file too short to decode",
                   "duration": np.nan, "peak": np.nan, "loudness": np.nan, "silence_ratio": np.nan,
                   "clipping_ratio": np.nan}
    write_manifest(tmp_params, rows + [undecodable])
    raw = Path(tmp_params.paths.raw)
    raw.mkdir(parents=True)
    (raw / "downloads.jsonl").write_text(json.dumps(
        {"id": "bad1", "url": "https://example.com/take-3.mp3", "title": "Artist - Take 3 (Acapella)",
         "role": "acapella", "status": "ok"}) + "\n")
    validate(tmp_params)
    summary = (Path(tmp_params.paths.reports) / "validation" / "summary.txt").read_text()
    block = summary.split("quarantined files")[1]
    assert "Artist - Take 3 (Acapella): https://example.com/take-3.mp3" in block
    lines = [line.strip() for line in block.splitlines() if line.strip()]
    cause = next(line for line in lines if line.startswith("cause:"))
    assert "status=failed (reason: file too short to decode)" in cause
    follow = next(line for line in lines if line.startswith("follow-on:"))
    assert lines.index(cause) < lines.index(follow) and "loudness=nan" in follow
