"""Loading a checkpoint never runs code from the file, and a file that is not ours gets a clear error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vocalsep.errors import VocalsepError
from vocalsep.model import VocNet, load_checkpoint, save_checkpoint
from vocalsep.training.state import restore_rng_states, rng_states

KWARGS = {"filters": 4, "skip_filters": 4, "layers": 2, "layers_per_stack": 2}


class _Evil:
    """Unpickling this creates a marker file: what a hostile checkpoint would do."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _wav(path: Path) -> Path:
    sf.write(path, np.zeros((4410, 2), np.float32) + 0.01, 44100)
    return path


def _separate(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vocalsep.cli.main", "separate", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_a_pickle_with_code_runs_nothing_and_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"class": "VocNet", "kwargs": {}, "state": _Evil(str(marker))}, evil)
    with pytest.raises(VocalsepError, match=r"evil\.pt: refused: .*could run code") as caught:
        load_checkpoint(evil)
    assert "a vocalsep checkpoint is" in str(caught.value)
    assert not marker.exists()


def test_the_cli_refuses_a_malicious_checkpoint_with_exit_2(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save(_Evil(str(marker)), evil)
    done = _separate(str(_wav(tmp_path / "a.wav")), "-o", str(tmp_path / "out"), "--model", str(evil), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "evil.pt: refused" in done.stderr and "Traceback" not in done.stderr
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind, content, message", [
    ("state_dict", lambda: VocNet(**KWARGS).state_dict(), "bare state_dict"),
    ("random", None, "cannot be read"),
    ("list", lambda: [torch.zeros(2)], "holds a list"),
    ("other dict", lambda: {"weights": torch.zeros(2), "epoch": 3}, "it has no class, kwargs, state"),
])
def test_files_that_are_not_vocalsep_checkpoints_get_their_own_message(tmp_path, kind, content, message):
    path = tmp_path / "model.pt"
    if content is None:
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    else:
        torch.save(content(), path)
    with pytest.raises(VocalsepError, match=message) as caught:
        load_checkpoint(path)
    assert str(path) in str(caught.value) and "a vocalsep checkpoint is" in str(caught.value)


def test_a_bare_state_dict_on_the_cli_is_exit_2_not_a_keyerror(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(VocNet(**KWARGS).state_dict(), path)
    done = _separate(str(_wav(tmp_path / "a.wav")), "-o", str(tmp_path / "out"), "--model", str(path), cwd=tmp_path)
    assert done.returncode == 2
    assert "weights.pt: not a vocalsep checkpoint" in done.stderr and "KeyError" not in done.stderr


def test_a_directory_is_not_a_checkpoint(tmp_path):
    with pytest.raises(VocalsepError, match="is a directory"):
        load_checkpoint(tmp_path)


def test_resume_state_round_trips_through_the_safe_loader(tmp_path):
    """Optimizer, scheduler and RNG states (numpy's too) load with weights_only and restore exactly."""
    model = VocNet(**KWARGS)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5)
    model(torch.randn(1, 2, 64)).abs().mean().backward()
    optimizer.step()
    scheduler.step()
    np.random.seed(7)
    states = rng_states()
    expected = np.random.random(3)
    save_checkpoint(tmp_path / "last.pt", model, KWARGS, optimizer=optimizer.state_dict(),
                    scheduler=scheduler.state_dict(), rng=states, progress={"losses": [(1, 0.5)]})
    ckpt = load_checkpoint(tmp_path / "last.pt")
    restored = torch.optim.AdamW(VocNet(**KWARGS).parameters(), lr=1e-3)
    restored.load_state_dict(ckpt["optimizer"])
    assert restored.state_dict()["state"][0]["step"] == 1
    np.random.seed(0)
    restore_rng_states(ckpt["rng"])
    assert np.array_equal(np.random.random(3), expected)
