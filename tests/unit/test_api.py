"""`vocalsep.Separator`, the Python API: the README's example runs as written, and the API's contracts."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import vocalsep
from vocalsep.errors import VocalsepError
from vocalsep.model import VocNet, save_checkpoint

README = Path(__file__).resolve().parents[2] / "README.md"
KWARGS = {"filters": 8, "skip_filters": 8, "layers": 4, "layers_per_stack": 4}


def readme_python() -> str:
    blocks = re.findall(r"^<!-- tested: python -->\n```python\n(.*?)^```", README.read_text(), flags=re.M | re.S)
    assert len(blocks) == 1, "the README's Python API example is missing"
    return blocks[0]


def test_the_readmes_python_example_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_python(), "README.md", "exec"), {"__name__": "__readme__"})
    assert "stems/song/vocals.flac" in capsys.readouterr().out
    vocals, rate = sf.read(tmp_path / "stems" / "song" / "vocals.flac", dtype="int16")
    assert rate == 44100 and vocals.shape == (2 * 44100, 2) and sf.info("stems/song/vocals.flac").subtype == "PCM_16"


@pytest.fixture(scope="module")
def separator(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, VocNet(**KWARGS).eval(), KWARGS, params={"audio": {"sample_rate": 16000}}, git_sha="t")
    return vocalsep.Separator(str(path), "cpu", runtime="torch")


def test_mono_in_gives_mono_out_and_stems_sum_to_the_input(separator):
    mono = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1
    stems = separator.separate(mono, 8000)
    assert stems["vocals"].shape == mono.shape and stems["vocals"].dtype == np.float32
    np.testing.assert_allclose(stems["vocals"] + stems["accompaniment"], mono, atol=1e-6)
    assert np.abs(stems["vocals"]).max() > 0


def test_the_api_and_the_cli_path_agree(separator, tmp_path):
    audio = np.random.default_rng(1).standard_normal((12000, 2)).astype(np.float32) * 0.1
    sf.write(tmp_path / "a.wav", audio, 22050, subtype="FLOAT")
    paths = separator.separate_file(tmp_path / "a.wav", tmp_path / "out", stems="vocals")
    assert list(paths) == ["vocals"] and not (tmp_path / "out" / "a" / "accompaniment.wav").exists()
    written, _ = sf.read(paths["vocals"], dtype="float32")
    np.testing.assert_allclose(written, separator.separate(audio, 22050)["vocals"], atol=1e-4)


def test_bad_audio_is_refused_with_the_layout_it_wants(separator):
    with pytest.raises(VocalsepError, match="frames first"):
        separator.separate(np.zeros((2, 3, 4), np.float32), 16000)
    with pytest.raises(VocalsepError, match="finite"):
        separator.separate(np.full(100, np.nan, np.float32), 16000)
