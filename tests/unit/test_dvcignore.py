"""Bytecode written by a plain import must not make DVC think the code a stage depends on changed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def dvc(*args: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1"}, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_importing_with_bytecode_on_keeps_dvc_status_clean(repo_root: Path, tmp_path: Path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "layers.py").write_text("WIDTH = 128\n")
    (tmp_path / "dvc.yaml").write_text("stages:\n  train:\n    cmd: python -c \"open('out.txt', 'w').write('x')\"\n"
                                       "    deps: [pkg]\n    outs: [out.txt]\n")
    shutil.copyfile(repo_root / ".dvcignore", tmp_path / ".dvcignore")
    dvc("init", "--no-scm", "-q", cwd=tmp_path)
    dvc("repro", "-q", cwd=tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-c", "import pkg.layers"], cwd=tmp_path, env=env, check=True)
    assert list((tmp_path / "pkg" / "__pycache__").glob("layers*.pyc"))  # the import really wrote bytecode
    assert "up to date" in dvc("status", cwd=tmp_path)
    (tmp_path / "pkg" / "layers.py").write_text("WIDTH = 256\n")  # and a real change is still seen
    assert "modified" in dvc("status", cwd=tmp_path)
