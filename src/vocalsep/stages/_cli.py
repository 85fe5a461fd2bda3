"""The shared command line of every stage: `python -m vocalsep.stages.<name> [--params FILE]`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from vocalsep.config import DEFAULT_PARAMS, Params, ParamsError, load_params
from vocalsep.env import disable_telemetry
from vocalsep.errors import VocalsepError


def run_stage(name: str, body: Callable[[Params], object], argv: Sequence[str] | None = None,
              prog: str | None = None) -> int:
    """Parse `--params`, load it, run `body(params)`; user-facing errors end as one line, exit 2.

    `prog` is the command as users type it (default `python -m vocalsep.stages.<name>`).
    """
    parser = argparse.ArgumentParser(prog=prog or f"python -m vocalsep.stages.{name}", description=body.__doc__)
    parser.add_argument("--params", default=str(DEFAULT_PARAMS), help=f"parameter file (default: {DEFAULT_PARAMS})")
    args = parser.parse_args(argv)
    disable_telemetry()  # where the command starts, not on import
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(message)s", stream=sys.stderr, force=True)
    try:
        body(load_params(args.params))
    except (ParamsError, VocalsepError) as err:
        print(f"error in stage {name}: {err}", file=sys.stderr)
        return 2
    return 0
