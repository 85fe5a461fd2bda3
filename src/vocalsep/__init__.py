"""vocalsep: vocal isolation on raw stereo audio with a WaveNet-like network.

`vocalsep.Separator` is the Python API (`vocalsep.api`); it is imported on first use, so
`import vocalsep` stays light for the stages and the CLI's dispatch.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Separator", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Separator":
        from vocalsep.api import Separator

        return Separator
    raise AttributeError(f"module 'vocalsep' has no attribute {name!r}")
