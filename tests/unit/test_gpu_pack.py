"""benchmarks/gpu_pack.py: the Opus pack a GPU lease trains from keeps every source, its ids and its timing."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tests import benchmark_modules
from vocalsep.contracts import INDEX_COLUMNS
from vocalsep.data import MixtureDataset, read_index

RATE = 44100


@pytest.fixture(scope="module")
def gpu_pack():
    return benchmark_modules.load("gpu_pack")


def tone_file(path: Path, seconds: float, freq: float) -> None:
    t = np.arange(int(seconds * RATE)) / RATE
    audio = 0.3 * np.sin(2 * np.pi * freq * t)
    sf.write(str(path), np.stack([audio, 0.5 * audio], axis=1).astype(np.float32), RATE, subtype="PCM_16")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """Three acapella and two instrumental files of 12 s, each a tone of its own pitch; index snippets of
    2 s every 1 s (overlapping, as the index stage writes them)."""
    root = tmp_path_factory.mktemp("workspace")
    (root / "data" / "index").mkdir(parents=True)
    files = [("v1", "acapella", 220.0), ("v2", "acapella", 330.0), ("v3", "acapella", 440.0),
             ("m1", "instrumental", 550.0), ("m2", "instrumental", 660.0)]
    rows = []
    for name, role, freq in files:
        path = Path("data") / f"{name}.wav"
        tone_file(root / path, 12.0, freq)
        rows += [{"id": name, "role": role, "path": str(path), "split": "train", "start": s * RATE,
                  "frames": 2 * RATE, "sample_rate": RATE, "active_fraction": 1.0} for s in range(11)]
    table = pd.DataFrame(rows)
    table.to_parquet(root / "data" / "index" / "train.parquet")
    table.assign(split="val").to_parquet(root / "data" / "index" / "val.parquet")
    return root


def test_snippets_never_overlap_and_every_source_file_is_taken_before_any_twice(gpu_pack, workspace):
    table = pd.read_parquet(workspace / "data" / "index" / "train.parquet")
    chosen = gpu_pack.choose(table, "acapella", 9, seed=0)
    assert len(chosen) == 9 and set(chosen["role"]) == {"acapella"}
    assert set(chosen["id"].iloc[:3]) == {"v1", "v2", "v3"}  # round robin: all files in the first round
    for _, group in chosen.groupby("id"):
        starts = np.sort(group["start"].to_numpy())
        assert (np.diff(starts) >= 2 * RATE).all()  # no two snippets of a file share audio


def test_unpacked_index_reads_like_the_real_one_with_ids_and_timing_kept(gpu_pack, workspace, tmp_path):
    args = argparse.Namespace(workspace=str(workspace), out=str(tmp_path / "pack"), voice=6, music=4, val=2,
                              seconds=2.0, bitrate="64k", seed=0)
    gpu_pack.pack(args)
    manifest = json.loads((tmp_path / "pack" / "manifest.json").read_text())
    assert sorted(s["file"] for s in manifest["streams"]) == [
        "train-acapella.opus", "train-instrumental.opus", "val-acapella.opus", "val-instrumental.opus"]
    paths = gpu_pack.unpack(tmp_path / "pack", tmp_path / "work")
    train = read_index(paths["train"])
    assert tuple(train.columns) == INDEX_COLUMNS
    assert train.groupby("role").size().to_dict() == {"acapella": 6, "instrumental": 4}
    freqs = {"v1": 220.0, "v2": 330.0, "v3": 440.0, "m1": 550.0, "m2": 660.0}
    for row in train.itertuples():  # each snippet is still its own file's tone, in place
        audio, _ = sf.read(row.path, start=row.start, frames=row.frames, dtype="float32")
        middle = audio[RATE // 2: 3 * RATE // 2, 0]
        spectrum = np.abs(np.fft.rfft(middle))
        assert abs(np.argmax(spectrum) * RATE / len(middle) - freqs[row.id]) < 3, row.id
        assert np.std(audio[:, 1]) / np.std(audio[:, 0]) == pytest.approx(0.5, abs=0.05)  # stereo kept
    dataset = MixtureDataset(train, _data_params(), RATE, examples=4, seed=0, root="/")
    mixture, vocals = dataset[0]
    assert mixture.shape == vocals.shape == (2, 2 * RATE)


def test_the_checkpoints_name_the_bitrate_of_the_pack_they_trained_on(gpu_pack, gpu_run, workspace, tmp_path):
    args = argparse.Namespace(workspace=str(workspace), out=str(tmp_path / "pack"), voice=3, music=2, val=1,
                              seconds=2.0, bitrate="24k", seed=0)
    gpu_pack.pack(args)
    index = gpu_pack.unpack(tmp_path / "pack", tmp_path / "work")["train"].parent
    pack = gpu_run.pack_of(index)
    assert pack["bitrate"] == "24k" and pack["frames"] == 2 * RATE
    assert gpu_run.trained_on({"pack": pack}) == "benchmarks/gpu_pack.py pack (Opus 24 kb/s)"
    assert "not recorded" in gpu_run.trained_on({})  # a gpu.json from before the pack was recorded
    assert gpu_run.pack_of(tmp_path) == {} and "not made by" in gpu_run.trained_on({"pack": {}})


def _data_params():
    from vocalsep.config import DataParams

    return DataParams(segment_seconds=2.0)


@pytest.fixture(scope="module")
def gpu_run():
    return benchmark_modules.load("gpu_run")


def test_a_model_continues_from_the_weights_an_earlier_lease_returned(gpu_run, repo_root, tmp_path):
    import torch
    from safetensors.torch import save_file

    params = str(repo_root / "params-real.yaml")
    first = gpu_run.make_models(params, torch.device("cpu"), ["bandsplit48"])["bandsplit48"]["model"]
    returned = {k: (v + 0.01).half() if v.is_floating_point() else v for k, v in first.state_dict().items()}
    save_file(returned, str(tmp_path / "bandsplit48.safetensors"))  # fp16, as a lease returns wide models
    models = gpu_run.make_models(params, torch.device("cpu"), ["bandsplit48"],
                                 {"bandsplit48": str(tmp_path / "bandsplit48.safetensors")})
    assert list(models) == ["bandsplit48"]
    state = models["bandsplit48"]["model"].state_dict()
    assert all(torch.equal(state[k], v.float()) for k, v in returned.items() if v.is_floating_point())
    with pytest.raises(SystemExit, match="hybrid999"):
        gpu_run.make_models(params, torch.device("cpu"), ["hybrid999"])
    with pytest.raises(SystemExit, match="base_ft"):  # weights for a model not chosen would go unused
        gpu_run.make_models(params, torch.device("cpu"), ["bandsplit48"], {"base_ft": "x.safetensors"})


def test_a_state_larger_than_a_returned_file_may_be_is_saved_in_parts_and_read_back_whole(gpu_run, tmp_path):
    """A lease brings back files of at most 16 MiB: the shipped 256-filter model (42 MB in fp32) must come in parts."""
    import torch

    state = {f"w{i}": torch.full((1024, 1024), float(i)) for i in range(9)}  # 9 x 4 MiB
    state["step"] = torch.tensor(7)
    files = gpu_run.save_parts(state, tmp_path, "big")
    assert len(files) == 3 and all(f.stat().st_size <= 16 * 2**20 for f in files)
    assert not (tmp_path / "big.safetensors").exists()
    back = gpu_run.load_parts(tmp_path / "big.safetensors")
    assert back.keys() == state.keys() and all(torch.equal(back[k], v) for k, v in state.items())
    small = gpu_run.save_parts({"w": torch.ones(3)}, tmp_path, "small")
    assert small == [tmp_path / "small.safetensors"] and torch.equal(gpu_run.load_parts(small[0])["w"], torch.ones(3))
    with pytest.raises(SystemExit, match="none.part0"):
        gpu_run.load_parts(tmp_path / "none.safetensors")
