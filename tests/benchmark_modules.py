"""Scripts under benchmarks/ imported as modules in tests (benchmarks/ is not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(script: str, name: str | None = None) -> ModuleType:
    """`benchmarks/<script>.py` as the module `name` (default `script`), registered in sys.modules
    (dataclasses look their module up while the class is made)."""
    spec = importlib.util.spec_from_file_location(name or script, BENCHMARKS / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
