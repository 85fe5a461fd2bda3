"""Headless Chromium for the listening report: load a page from disk with no network, read what loaded.

Debian's `chromium` package (`.ci/run` installs it where it can); tests skip
and say why without it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not found (Debian: apt-get install "
                                                              "chromium; .ci/run installs it where it can)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--allow-file-access-from-files",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=8000"]  # no name resolves: no network


def media_status(page: Path) -> dict:
    """{"total", "loaded", "failed"} of the page's images and audio players, after its inline script ran."""
    dom = subprocess.run([CHROMIUM, *FLAGS, "--dump-dom", page.resolve().as_uri()], capture_output=True,
                         text=True, timeout=120).stdout
    found = re.search(r'<pre id="media-status">([^<]*)</pre>', dom)
    assert found, f"no #media-status in the page Chromium rendered:\n{dom[-2000:]}"
    return json.loads(found.group(1))


def screenshot(page: Path, out: Path, size: str = "1200,1600") -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([CHROMIUM, *FLAGS, f"--window-size={size}", f"--screenshot={out.resolve()}",
                    page.resolve().as_uri()], capture_output=True, timeout=120, check=True)
    assert out.is_file() and out.stat().st_size > 10_000, out
    return out


def external_references(page: Path) -> list[str]:
    """Every src/href in the page that points off the folder (a scheme other than data: or a relative path)."""
    refs = re.findall(r"(?:src|href)=['\"]([^'\"]+)['\"]", page.read_text())
    return [r for r in refs if re.match(r"[a-z][a-z0-9+.-]*:", r, re.I) and not r.startswith("data:")]
