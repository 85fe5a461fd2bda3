"""Training mixtures: exact sums, gain range, consistent augmentation, song pairing, determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from tests.model.corpus import SAMPLE_RATE, write_corpus
from vocalsep.config import DataParams
from vocalsep.data import MixtureDataset, read_index, validation_set
from vocalsep.errors import StageError

DATA = DataParams(segment_seconds=0.25, examples_per_epoch=40, gain_db=(-6.0, 3.0), val_examples=6)


@pytest.fixture
def table(tmp_path, monkeypatch):
    write_corpus(tmp_path)
    monkeypatch.chdir(tmp_path)  # index paths are relative to the repository root
    return read_index(tmp_path / "data/index/train.parquet")


def dataset(table, data=DATA, seed=0, augment=True):
    return MixtureDataset(table, data, SAMPLE_RATE, examples=data.examples_per_epoch, seed=seed, augment=augment)


def test_example_shapes_and_mixture_is_exact_sum(table):
    ds = dataset(table)
    segment = int(DATA.segment_seconds * SAMPLE_RATE)
    for i in range(10):
        mixture, vocals = ds[i]
        v, a, _ = ds.example(i)
        assert mixture.shape == vocals.shape == (2, segment) and mixture.dtype == torch.float32
        assert torch.equal(vocals, torch.from_numpy(v))
        assert torch.equal(mixture, torch.from_numpy(v + a))


def test_unaugmented_vocals_are_a_slice_of_the_named_acapella(table):
    ds = dataset(table, augment=False)
    for i in range(5):
        vocals, accompaniment, (vocal_id, accompaniment_id) = ds.example(i)
        for audio, song in ((vocals, vocal_id), (accompaniment, accompaniment_id)):
            path = table.loc[table["id"] == song, "path"].iloc[0]
            whole = sf.read(path, dtype="float32", always_2d=True)[0].T
            starts = [s for s in range(whole.shape[1] - audio.shape[1] + 1) if whole[0, s] == audio[0, 0]]
            assert any(np.array_equal(whole[:, s:s + audio.shape[1]], audio) for s in starts)


def test_gains_within_range_and_independent(table):
    plain, augmented = dataset(table, augment=False), dataset(table)
    low, high = DATA.gain_db
    ratios = []
    for i in range(DATA.examples_per_epoch):
        v0, a0, ids0 = plain.example(i)
        v1, a1, ids1 = augmented.example(i)
        assert ids0 == ids1  # augmentation draws after the snippet choice
        gains = [10 * np.log10(np.sum(x1 ** 2) / np.sum(x0 ** 2)) for x0, x1 in ((v0, v1), (a0, a1))]
        assert all(low - 1e-3 <= g <= high + 1e-3 for g in gains), gains
        ratios.append(gains)
    ratios = np.array(ratios)
    assert ratios.std(axis=0).min() > 1.0  # gains vary over the range
    assert not np.allclose(ratios[:, 0], ratios[:, 1])  # vocals and accompaniment drawn independently


def test_swap_and_flip_apply_to_vocals_and_accompaniment_alike(table):
    always = dataclasses.replace(DATA, gain_db=(0.0, 0.0), channel_swap=1.0, sign_flip=1.0)
    plain, flipped = dataset(table, augment=False), dataset(table, always)
    for i in range(5):
        v0, a0, _ = plain.example(i)
        v1, a1, _ = flipped.example(i)
        assert np.array_equal(v1, -v0[::-1]) and np.array_equal(a1, -a0[::-1])


def test_vocals_and_accompaniment_come_from_different_songs(table):
    # the same two song ids under both roles: a pair must never take one song twice
    shared = table.assign(id=table["id"].str[-1].map(lambda k: f"song{int(k) % 2}"))
    ds = dataset(shared)
    pairs = [ds.example(i)[2] for i in range(DATA.examples_per_epoch)]
    assert all(v != a for v, a in pairs)
    one_song = shared.assign(id="song0")
    with pytest.raises(StageError, match="two different songs|one song"):
        dataset(one_song).example(0)


def test_deterministic_per_seed_epoch_and_index_not_workers(table):
    a, b, other = dataset(table), dataset(table), dataset(table, seed=1)
    assert torch.equal(a[3][0], b[3][0]) and not torch.equal(a[3][0], other[3][0])
    b.set_epoch(1)
    assert not torch.equal(a[3][0], b[3][0])
    serial = torch.cat([m for m, _ in DataLoader(a, batch_size=8, num_workers=0)])
    parallel = torch.cat([m for m, _ in DataLoader(a, batch_size=8, num_workers=2)])
    assert torch.equal(serial, parallel)


def test_validation_set_is_fixed_and_unaugmented(tmp_path, monkeypatch):
    write_corpus(tmp_path)
    monkeypatch.chdir(tmp_path)
    val = read_index("data/index/val.parquet")
    first, again = validation_set(val, DATA, SAMPLE_RATE), validation_set(val, DATA, SAMPLE_RATE)
    assert first[0].shape == (DATA.val_examples, 2, int(DATA.segment_seconds * SAMPLE_RATE))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    loud = dataclasses.replace(DATA, gain_db=(20.0, 20.0), sign_flip=1.0)
    assert torch.equal(validation_set(val, loud, SAMPLE_RATE)[1], first[1])  # no gain or flip


def test_missing_index_and_short_snippets_are_clear_errors(table, tmp_path):
    with pytest.raises(StageError, match="index stage"):
        read_index(tmp_path / "nowhere/train.parquet")
    with pytest.raises(StageError, match="segment_seconds"):
        dataset(table, dataclasses.replace(DATA, segment_seconds=5.0))
    with pytest.raises(StageError, match="instrumental"):
        dataset(pd.DataFrame(table[table["role"] == "acapella"]))
