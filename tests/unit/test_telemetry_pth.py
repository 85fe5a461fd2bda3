"""Telemetry stays off in every process of the venv, activated or not: the .pth `make install` writes."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from vocalsep.env import TELEMETRY_OFF

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from telemetry_pth import pth_line  # noqa: E402

INSTALLED = Path(sysconfig.get_paths()["purelib"]) / "vocalsep-telemetry.pth"


def test_the_pth_is_made_from_the_one_list():
    line = pth_line(ROOT / "src" / "vocalsep" / "telemetry.env")
    assert all(f"os.environ.setdefault({k!r}, {v!r})" in line for k, v in TELEMETRY_OFF.items())


@pytest.mark.skipif(not INSTALLED.is_file(), reason="the venv was not made by `make install`")
def test_a_new_shell_gets_every_switch_and_a_users_own_setting_wins():
    code = "import json, os; print(json.dumps({k: os.environ.get(k) for k in %r}))" % sorted(TELEMETRY_OFF)
    fresh = subprocess.run([sys.executable, "-c", code], env={"PATH": "/usr/bin:/bin"}, capture_output=True,
                           text=True, check=True).stdout
    assert json.loads(fresh) == TELEMETRY_OFF
    mine = subprocess.run([sys.executable, "-c", "import os; print(os.environ['DO_NOT_TRACK'])"],
                          env={"PATH": "/usr/bin:/bin", "DO_NOT_TRACK": "0"}, capture_output=True, text=True,
                          check=True).stdout
    assert mine.strip() == "0"
