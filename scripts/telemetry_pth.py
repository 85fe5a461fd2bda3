"""Write `vocalsep-telemetry.pth` into the venv's site-packages from src/vocalsep/telemetry.env.

Python runs a .pth line that starts with `import` in every process of the
venv, so each telemetry switch is set (unless already set) in an activated
shell's `prefect`, `mlflow` and `dvc` as well as in vocalsep's commands.
Usage (by `make install`): python scripts/telemetry_pth.py src/vocalsep/telemetry.env
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path


def pth_line(env_file: Path) -> str:
    pairs = [line.split("=", 1) for line in env_file.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    return "import os; " + "; ".join(f"os.environ.setdefault({k.strip()!r}, {v.strip()!r})" for k, v in pairs) + "\n"


def main(env_file: str) -> int:
    target = Path(sysconfig.get_paths()["purelib"]) / "vocalsep-telemetry.pth"
    target.write_text(pth_line(Path(env_file)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
