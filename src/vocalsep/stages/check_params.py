"""Stage `check_params`: validate params.yaml before any other stage runs.

DVC re-runs a stage only when a params key it tracks changes, so a typo
(`train.lr_scheduel: constant`, a misspelt section) would otherwise leave
`dvc repro` saying "up to date" while the user believes the change took
effect. This stage depends on the whole of params.yaml and every other
stage depends on its output, so any edit is checked first: an unknown key
(named, with the section's allowed keys and the closest match), a wrong
type or a value out of range stops `dvc repro` before anything is deleted
or recomputed. The output's content does not depend on the values, so a
valid edit re-runs only the stages whose own params changed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from vocalsep.config import Params
from vocalsep.stages._cli import run_stage

OUTPUT = "params-check.json"


def check_params(params: Params) -> Path:
    """Write `<paths.reports>/params-check.json` (the params already passed `load_params`'s checks)."""
    out = Path(params.paths.reports) / OUTPUT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"params": "valid", "checked_by": "vocalsep.config.load_params"}) + "\n")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    return run_stage("check_params", check_params, argv)


if __name__ == "__main__":
    sys.exit(main())
