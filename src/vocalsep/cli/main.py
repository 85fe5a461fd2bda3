"""`vocalsep` command: thin dispatch to the functional API."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from vocalsep.config import ParamsError
from vocalsep.env import disable_telemetry
from vocalsep.errors import VocalsepError

# subcommand -> "module:function(argv) -> int", imported only when used
COMMANDS = {
    "summary": ("vocalsep.cli.summary:main", "print where the pipeline's results are and the headline numbers"),
    "separate": ("vocalsep.cli.separate:main", "separate vocals from audio files"),
    "models": ("vocalsep.cli.models:main", "list the shipped and registered models, and what the default is"),
    "stream": ("vocalsep.cli.stream:main", "separate a live signal (pipe or file) block by block, bounded latency"),
    "serve": ("vocalsep.cli.serve:main", "serve a registered model behind request limits (MLflow's scoring app)"),
    "serve-flows": ("flows.serve:main", "serve the Prefect deployments from one process"),
    "register-base": ("vocalsep.cli.register_base:main",
                      "register the shipped base model; it becomes champion if the registry has none"),
    "publish-base": ("vocalsep.base_model.publish:main", "write a trained checkpoint as the shipped base model + model card"),
    "average": ("vocalsep.cli.average:main", "average the weights of fine-tunes of one model into a checkpoint (a model soup)"),
    "provenance": ("vocalsep.provenance:main",
                   "print what a model learned from: sources, licences, sha256, data hash, git commit"),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: vocalsep COMMAND [ARGS]\n\ncommands:\n" + "\n".join(lines))
        if argv and argv[0] not in {"-h", "--help"}:
            print(f"\nerror: unknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    target, _ = COMMANDS[argv[0]]
    module, func = target.split(":")
    disable_telemetry()  # where the command starts, not on import
    try:
        return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)
    except (ParamsError, VocalsepError) as err:  # a user's mistake: one line, no traceback
        print(f"vocalsep {argv[0]}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
