"""`vocalsep register-base [--params FILE]`: the shipped base model into the registry (champion if there is
none); `vocalsep.base_model.contender.register_base` does the work."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from vocalsep.base_model.contender import register_base
from vocalsep.config import Params
from vocalsep.stages._cli import run_stage


def main(argv: Sequence[str] | None = None) -> int:
    """`vocalsep register-base [--params FILE]`: the base model into the registry (champion if none)."""
    def body(params: Params) -> None:
        record = register_base(params)
        print(f"register-base: {record['registered_model']} version {record['version']} -> {record['decision']}; "
              f"champion is version {record['champion_version']}")

    body.__doc__ = main.__doc__
    return run_stage("register-base", body, argv, prog="vocalsep register-base")


if __name__ == "__main__":
    sys.exit(main())
