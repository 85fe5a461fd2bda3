"""validate stage: a Great Expectations suite over the normalize manifest.

Reads `<paths.normalized>/manifest.parquet`, checks every row against the
`validate` params, and writes (contract in docs/pipeline.md):

- `<paths.validated>/valid.parquet`: the passing rows, same columns;
- `<paths.validated>/quarantine.parquet`: the failing rows plus `expectations`
  (`;`-joined names of what they broke); audio files are never deleted;
- `<paths.reports>/validation/summary.txt`, `result.json` (the GX result) and
  GX Data Docs under `data_docs/index.html`.

The stage fails with a `StageError` when a role keeps fewer than
`validate.min_files_per_role` valid files.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from vocalsep.config import Params
from vocalsep.errors import StageError
from vocalsep.sources import read_downloads
from vocalsep.sources import ROLES
from vocalsep.stages._cli import run_stage
from vocalsep.contracts import MANIFEST_COLUMNS

log = logging.getLogger(__name__)

# loudness is NaN for silent files, so not-null doubles as "has a measurable loudness"
NOT_NULL_COLUMNS = ("id", "role", "path", "sample_rate", "channels", "duration", "peak",
                    "loudness", "silence_ratio", "clipping_ratio", "status")


@dataclass(frozen=True)
class ValidationOutcome:
    """What the suite decided: `valid` and `quarantine` frames, the GX result as JSON."""

    valid: pd.DataFrame
    quarantine: pd.DataFrame
    result: dict[str, Any]


def read_manifest(path: Path) -> pd.DataFrame:
    """The manifest with a fresh 0..n-1 index, which GX reports unexpected rows by."""
    if not path.exists():
        raise StageError(f"{path}: manifest not found; run the normalize stage first (dvc repro normalize)")
    manifest = pd.read_parquet(path)
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise StageError(f"{path}: manifest lacks column(s) {', '.join(missing)}; "
                         "re-run the normalize stage (contract in docs/pipeline.md)")
    return manifest.reset_index(drop=True)


def expectations(params: Params) -> list:
    """The suite's expectations, one per rule in the `validate` params section."""
    import great_expectations.expectations as gxe

    v = params.validate
    rules = [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in NOT_NULL_COLUMNS]
    return rules + [
        gxe.ExpectColumnValuesToBeUnique(column="id"),
        gxe.ExpectColumnValuesToBeInSet(column="role", value_set=list(ROLES)),
        gxe.ExpectColumnValuesToBeInSet(column="status", value_set=["ok"]),
        gxe.ExpectColumnValuesToBeInSet(column="sample_rate", value_set=[params.audio.sample_rate]),
        gxe.ExpectColumnValuesToBeInSet(column="channels", value_set=[2]),
        gxe.ExpectColumnValuesToBeBetween(column="duration", min_value=v.min_seconds, max_value=v.max_seconds),
        gxe.ExpectColumnValuesToBeBetween(column="peak", max_value=v.max_peak_db),
        gxe.ExpectColumnValuesToBeBetween(column="loudness", min_value=v.min_loudness_lufs,
                                          max_value=v.max_loudness_lufs),
        gxe.ExpectColumnValuesToBeBetween(column="silence_ratio", min_value=0.0, max_value=v.max_silence_ratio),
        gxe.ExpectColumnValuesToBeBetween(column="clipping_ratio", min_value=0.0, max_value=v.max_clipping_ratio),
    ]


def run_suite(manifest: pd.DataFrame, params: Params, docs_dir: Path) -> dict[str, Any]:
    """Validate `manifest` in an in-memory GX context; Data Docs go to `docs_dir` only."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its import-time INFO chatter hides our log
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig, InMemoryStoreBackendDefaults, ProgressBarsConfig)

    shutil.rmtree(docs_dir, ignore_errors=True)  # one run's docs, not a pile of stale pages
    site = {"class_name": "SiteBuilder", "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir.resolve())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}}
    config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(),
                               progress_bars=ProgressBarsConfig(globally=False),
                               data_docs_sites={"validation": site})
    context = gx.get_context(mode="ephemeral", project_config=config)
    batch = (context.data_sources.add_pandas("normalized").add_dataframe_asset("manifest")
             .add_batch_definition_whole_dataframe("manifest"))
    suite = context.suites.add(gx.ExpectationSuite(name="manifest", expectations=expectations(params)))
    definition = context.validation_definitions.add(gx.ValidationDefinition(name="manifest", data=batch, suite=suite))
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name="validate", validation_definitions=[definition],
        actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
        # COMPLETE lists every unexpected row's index, which maps failures back to files
        result_format={"result_format": "COMPLETE"}))
    run = checkpoint.run(batch_parameters={"dataframe": manifest})
    return _json_safe(next(iter(run.run_results.values())).to_json_dict())


def expectation_name(result: dict[str, Any]) -> str:
    """`expect_column_values_to_be_between(duration)` for one expectation result."""
    config = result["expectation_config"]
    return f"{config['type']}({config['kwargs'].get('column', '')})"


def broken_rows(result: dict[str, Any]) -> dict[int, list[str]]:
    """Row index -> names of the expectations that row broke."""
    broken: dict[int, list[str]] = {}
    for item in result["results"]:
        if item["success"]:
            continue
        name = expectation_name(item)
        if item.get("exception_info", {}).get("raised_exception"):
            message = item["exception_info"].get("exception_message")
            raise StageError(f"expectation {name} could not be evaluated ({message}); "
                             "check the manifest's column types against docs/pipeline.md")
        for row in item["result"].get("unexpected_index_list", []):
            broken.setdefault(int(row), []).append(name)
    return broken


def split_manifest(manifest: pd.DataFrame, broken: dict[int, list[str]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(valid rows, quarantined rows with an `expectations` column)."""
    bad = manifest.index.isin(list(broken))
    quarantine = manifest[bad].copy()
    quarantine["expectations"] = [";".join(broken[i]) for i in quarantine.index]
    return manifest[~bad].reset_index(drop=True), quarantine.reset_index(drop=True)


def _role_counts(frame: pd.DataFrame) -> Counter:
    return Counter(frame["role"].astype(str)) if len(frame) else Counter()


def _top_reasons(quarantine: pd.DataFrame, n: int = 5) -> str:
    names = Counter(name for joined in quarantine.get("expectations", []) for name in joined.split(";"))
    return ", ".join(f"{name} x{count}" for name, count in names.most_common(n)) or "none"


# A file that failed to decode has no loudness, peak...: the columns read in this order, the first
# broken one is the cause and the rest follow from it. Not-null failures always follow.
CAUSE_ORDER = ("status", "duration", "silence_ratio", "loudness", "peak", "clipping_ratio", "sample_rate",
               "channels", "role", "id")
NOT_NULL = "expect_column_values_to_not_be_null"


def _cause_rank(name: str) -> tuple[int, int]:
    column = name[name.index("(") + 1:-1]
    return (name.startswith(NOT_NULL), CAUSE_ORDER.index(column) if column in CAUSE_ORDER else len(CAUSE_ORDER))


def _quarantined(row: Any, downloads: dict[str, dict]) -> list[str]:
    """A quarantined file: title and URL first, then the first cause, then what follows from it."""
    source = downloads.get(row.id, {})
    title, url = source.get("title") or "(no title)", source.get("url") or "(URL unknown)"
    names = sorted(row.expectations.split(";"), key=_cause_rank)
    first, rest = names[0], names[1:]
    lines = [f"  {title}: {url}",
             f"      cause: {_offending_value(row, first)}   [{first}]",
             f"      file: {_text(row.path) or _text(row.source_path)} (id {row.id}, {row.role})"]
    follow = [f"{_offending_value(row, name)} [{name}]" for name in rest]
    if follow:
        lines.append(f"      follow-on: {'; '.join(follow)}")
    return lines


def summarize(valid: pd.DataFrame, quarantine: pd.DataFrame, params: Params,
              downloads: dict[str, dict] | None = None) -> str:
    """Plain-text report: counts per role, then each quarantined file by title and URL with its first cause."""
    good, bad = _role_counts(valid), _role_counts(quarantine)
    need = params.validate.min_files_per_role
    lines = [f"valid: {len(valid)}  quarantined: {len(quarantine)}  (min_files_per_role: {need})", "",
             f"{'role':<14}{'valid':>7}{'quarantined':>13}"]
    lines += [f"{role:<14}{good[role]:>7}{bad[role]:>13}" for role in ROLES]
    lines += ["", "quarantined files (kept on disk, excluded from index):"]
    for row in quarantine.itertuples(index=False):
        lines += _quarantined(row, downloads or {})
    if quarantine.empty:
        lines.append("  none")
    return "\n".join(lines) + "\n"


def _offending_value(row: Any, name: str) -> str:
    column = name[name.index("(") + 1:-1]
    text = f"{column}={getattr(row, column, '?')}"
    return f"{text} (reason: {_text(row.reason)})" if column == "status" and _text(row.reason) else text


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def check_enough(valid: pd.DataFrame, quarantine: pd.DataFrame, params: Params, summary_path: Path) -> None:
    """Raise a StageError naming each role that kept fewer than `min_files_per_role` valid files."""
    need = params.validate.min_files_per_role
    good = _role_counts(valid)
    short = [f"{role} has {good[role]} valid file(s), {need} needed" for role in ROLES if good[role] < need]
    if short:
        raise StageError(
            f"too little valid data: {'; '.join(short)} (validate.min_files_per_role). "
            f"Top reasons: {_top_reasons(quarantine)}. Details in {summary_path}. "
            f"Add sources of that role to {params.download.sources} or relax the validate.* params in params.yaml.")


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null so result.json is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def validate(params: Params) -> ValidationOutcome:
    """Run the suite, write valid/quarantine parquet and the reports, fail if too little is valid."""
    manifest = read_manifest(params.paths.manifest)
    reports = Path(params.paths.reports) / "validation"
    reports.mkdir(parents=True, exist_ok=True)
    result = run_suite(manifest, params, reports / "data_docs")
    valid, quarantine = split_manifest(manifest, broken_rows(result))
    params.paths.valid.parent.mkdir(parents=True, exist_ok=True)
    valid.to_parquet(params.paths.valid, index=False)
    quarantine.to_parquet(params.paths.quarantine, index=False)
    (reports / "result.json").write_text(json.dumps(result, indent=2, default=str))
    summary_path = reports / "summary.txt"
    summary_path.write_text(summarize(valid, quarantine, params, read_downloads(params.paths.downloads)))
    log.info("%d valid, %d quarantined; report in %s", len(valid), len(quarantine), summary_path)
    check_enough(valid, quarantine, params, summary_path)
    return ValidationOutcome(valid=valid, quarantine=quarantine, result=result)


def main(argv: list[str] | None = None) -> int:
    return run_stage("validate", validate, argv)


if __name__ == "__main__":
    sys.exit(main())
