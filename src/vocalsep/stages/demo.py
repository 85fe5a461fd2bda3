"""Stage `demo`: write the embedded demo corpus to `paths.demo` (`python -m vocalsep.stages.demo`).

Only when `download.sources` uses it (a `file:` URL under `paths.demo`, as
`sources/demo.yaml` does): with your own manifest the folder holds just a
note saying why it is empty, so no demo audio is generated that nobody asked for.
"""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from vocalsep.config import Params
from vocalsep.demo.corpus import write_corpus
from vocalsep.sources import file_url_path, load_sources, resolve_url
from vocalsep.stages._cli import run_stage

log = logging.getLogger(__name__)
NOTE = "NOT_GENERATED.txt"


def uses_demo(params: Params) -> bool:
    """Whether any source of `download.sources` is a file under `paths.demo`."""
    manifest = Path(params.download.sources)
    demo = Path(params.paths.demo).resolve()
    for source in load_sources(manifest):
        path = file_url_path(resolve_url(source.url, manifest.parent))
        if path is not None and path.resolve().is_relative_to(demo):
            return True
    return False


def demo(params: Params) -> list[Path]:
    """The demo corpus when the manifest uses it; otherwise an empty folder with a note."""
    if uses_demo(params):
        (Path(params.paths.demo) / NOTE).unlink(missing_ok=True)
        return write_corpus(params)
    folder = Path(params.paths.demo)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / NOTE).write_text(f"The demo corpus was not generated: {params.download.sources} (download.sources) "
                               f"has no file: URL under {params.paths.demo}.\n")
    log.info("demo corpus not generated: %s does not use %s", params.download.sources, params.paths.demo)
    return []


def main(argv: Sequence[str] | None = None) -> int:
    return run_stage("demo", demo, argv)


if __name__ == "__main__":
    sys.exit(main())
