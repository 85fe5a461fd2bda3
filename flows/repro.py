"""`python -m flows.repro ROOT STAGE`: reproduce one DVC stage, then print which stages ran.

Runs as a subprocess of the Prefect task so that DVC's messages and the
stage's own output arrive on one pipe the task streams into the run logs; the
last line, prefixed with `RAN_MARKER`, lists the stages DVC actually executed
(empty when DVC found the stage up to date).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

RAN_MARKER = "vocalsep-flow-ran: "
REPRO_FAILED = "dvc repro failed:"


def main(argv: Sequence[str] | None = None) -> int:
    root, stage = list(sys.argv[1:] if argv is None else argv)
    from dvc.exceptions import DvcException
    from dvc.logger import setup
    from dvc.repo import Repo

    from flows.workspace import stage_target

    setup()
    try:
        with Repo(root) as repo:
            ran = repo.reproduce(stage_target(root, stage), single_item=True)
    except DvcException as err:
        cause = f": {err.__cause__}" if err.__cause__ else ""
        print(f"{REPRO_FAILED} {err}{cause}", file=sys.stderr, flush=True)
        return 1
    print(RAN_MARKER + json.dumps([s.name for s in ran]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
