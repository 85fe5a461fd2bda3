"""Stage `corpus`: build the real corpus from pinned Debian packages (`python -m vocalsep.stages.corpus`).

With `corpus.set: none` (the demo profile) it writes an empty `paths.corpus`
and fetches nothing. With `train` or `eval` it writes that set's audio,
`sources.yaml` (point `download.sources` at it) and `ATTRIBUTION.md`.
"""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from vocalsep.config import Params
from vocalsep.corpus.build import build_corpus
from vocalsep.corpus.join import JoinParams
from vocalsep.stages._cli import run_stage

log = logging.getLogger(__name__)


def corpus(params: Params) -> None:
    """Fetch pinned Debian packages, extract and join their audio, write a sources manifest of file: URLs."""
    c, out = params.corpus, Path(params.paths.corpus)
    if c.set == "none":
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        (out / "README.md").write_text("corpus.set is none: no real corpus was built for this profile.\n")
        log.info("corpus.set is none: nothing to fetch")
        return
    join = JoinParams(track_seconds=c.track_seconds, pause_seconds=c.pause_seconds, seed=c.seed)
    tracks = build_corpus(c.spec, c.set, out, c.cache, join)
    log.info("wrote %d tracks and %s", len(tracks), out / "sources.yaml")


def main(argv: Sequence[str] | None = None) -> int:
    return run_stage("corpus", corpus, argv)


if __name__ == "__main__":
    sys.exit(main())
