"""Serving: the MLflow pyfunc and its request checks (`pyfunc`), MLflow's models-from-code entry file
(`served_model`), logging and registering that pyfunc (`register`), the limits of a request (`limits`) and the
HTTP server with those limits in front of MLflow's scoring app (`http`, `vocalsep serve`).

`VocalSeparator` is also importable from here, lazily: models registered before the folder existed run
`from vocalsep.serving import VocalSeparator` from their logged entry file, and `vocalsep serve`, whose process
has already imported this package, must still load them.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "VocalSeparator":
        from vocalsep.serving.pyfunc import VocalSeparator

        return VocalSeparator
    raise AttributeError(f"module 'vocalsep.serving' has no attribute {name!r}")
