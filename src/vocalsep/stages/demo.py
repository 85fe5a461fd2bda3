"""Stage `demo`: write the embedded demo corpus to `paths.demo` (`python -m vocalsep.stages.demo`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from vocalsep.demo import write_corpus
from vocalsep.stages._cli import run_stage


def main(argv: Sequence[str] | None = None) -> int:
    return run_stage("demo", write_corpus, argv)


if __name__ == "__main__":
    sys.exit(main())
