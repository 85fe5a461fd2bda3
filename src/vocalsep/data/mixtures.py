"""Training and validation mixtures drawn on the fly from the snippet index.

An example pairs one acapella snippet with one instrumental snippet from a
different song, cuts a random `segment` out of each (a seek into the FLAC,
never a whole-file read), runs the `data.augment` transforms on each stem
(data/augment.py: pitch, speed, band, EQ, room, compression, saturation),
applies independent random gains, then the same
channel swap and sign flip to both, silences one stem now and then
(`data.voice_alone`, `data.music_alone`), and returns `(mixture, vocals)` with
`mixture == vocals + accompaniment` exactly.

Every random choice comes from `numpy.random.default_rng([seed, epoch, index])`,
so example `index` of `epoch` is the same whichever worker, rank or process
draws it: resuming, DataLoader workers and DDP ranks never change the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch
from torch.utils.data import Dataset

from vocalsep.config import DataParams
from vocalsep.data.augment import augment_accompaniment, augment_vocals, is_active
from vocalsep.errors import StageError
from vocalsep.contracts import INDEX_COLUMNS

VAL_EPOCH = -1  # the validation set's fixed "epoch" in the seed sequence


def read_index(path: str | Path) -> pd.DataFrame:
    """A snippet table (`params.paths.split(name)`), checked for the columns of docs/pipeline.md."""
    path = Path(path)
    if not path.exists():
        raise StageError(f"{path}: snippet index not found; run the index stage first (dvc repro index)")
    table = pd.read_parquet(path)
    missing = [c for c in INDEX_COLUMNS if c not in table.columns]
    if missing:
        raise StageError(f"{path}: missing column(s) {', '.join(missing)}; rebuild it with the index stage")
    return table


@dataclass(frozen=True)
class SnippetPool:
    """The snippets of one role as flat arrays (cheap to pickle into DataLoader workers)."""

    ids: np.ndarray  # (n,) str
    paths: np.ndarray  # (n,) str, resolved against the repository root
    starts: np.ndarray  # (n,) int64
    frames: np.ndarray  # (n,) int64

    @classmethod
    def from_table(cls, table: pd.DataFrame, role: str, root: Path) -> "SnippetPool":
        rows = table[table["role"] == role]
        return cls(
            ids=rows["id"].astype(str).to_numpy(),
            paths=np.array([str(root / p) for p in rows["path"]]),
            starts=rows["start"].to_numpy(np.int64),
            frames=rows["frames"].to_numpy(np.int64),
        )


def _read_segment(path: str, start: int, frames: int) -> np.ndarray:
    """(2, frames) float32, read by seeking; mono files are duplicated to stereo."""
    try:
        audio, _ = sf.read(path, start=start, frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise StageError(f"{path}: cannot read snippet ({err}); re-run normalize and index") from None
    if audio.shape[0] < frames:
        raise StageError(f"{path}: snippet at frame {start} is shorter than {frames} frames; re-run the index stage")
    if audio.shape[1] == 1:
        audio = np.repeat(audio, 2, axis=1)
    return np.ascontiguousarray(audio.T)


class MixtureDataset(Dataset):
    """`examples` random mixtures per epoch; item i is `(mixture, vocals)`, each `(2, segment)` float32.

    `augment=False` keeps the seeded snippet choice and offsets but skips the
    `data.augment` transforms, fixes gains at 0 dB and skips channel swap and
    sign flip (the validation set).
    """

    def __init__(self, table: pd.DataFrame, data: DataParams, sample_rate: int, *, examples: int,
                 seed: int, augment: bool = True, root: str | Path = ".", where: str = "index"):
        self.vocals = SnippetPool.from_table(table, "acapella", Path(root))
        self.accompaniment = SnippetPool.from_table(table, "instrumental", Path(root))
        self.segment = int(round(data.segment_seconds * sample_rate))
        self.data, self.examples, self.seed, self.augment = data, examples, seed, augment
        self.sample_rate = sample_rate
        self.epoch = 0
        self._check(where)

    def _check(self, where: str) -> None:
        for role, pool in (("acapella", self.vocals), ("instrumental", self.accompaniment)):
            if len(pool.ids) == 0:
                raise StageError(f"{where}: no {role} snippets; the index needs both roles in every split")
            if pool.frames.min() < self.segment:
                raise StageError(f"{where}: {role} snippets of {pool.frames.min()} frames are shorter than "
                                 f"data.segment_seconds ({self.segment} frames); lower it or re-index")
        if len(set(self.vocals.ids) | set(self.accompaniment.ids)) < 2:
            raise StageError(f"{where}: acapellas and instrumentals come from one song only; need two songs")

    def set_epoch(self, epoch: int) -> None:
        """Choose which epoch's examples `__getitem__` draws (call before each epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.examples

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        vocals, accompaniment, _ = self.example(index)
        return torch.from_numpy(vocals + accompaniment), torch.from_numpy(vocals)

    def example(self, index: int) -> tuple[np.ndarray, np.ndarray, tuple[str, str]]:
        """`(vocals, accompaniment, (acapella id, instrumental id))` of example `index`, arrays (2, segment)."""
        rng = np.random.default_rng([self.seed, self.epoch + 1, index])
        vocals, vocal_id = self._draw(self.vocals, rng, exclude=None)
        accompaniment, accompaniment_id = self._draw(self.accompaniment, rng, exclude=vocal_id)
        if self.augment and is_active(self.data.augment):
            vocals, accompaniment = self._transform(vocals, accompaniment, rng)
        if self.augment:
            low, high = self.data.gain_db
            vocals *= np.float32(10 ** (rng.uniform(low, high) / 20))
            accompaniment *= np.float32(10 ** (rng.uniform(low, high) / 20))
            if rng.random() < self.data.channel_swap:
                vocals, accompaniment = vocals[::-1].copy(), accompaniment[::-1].copy()
            if rng.random() < self.data.sign_flip:
                vocals, accompaniment = -vocals, -accompaniment
            vocals, accompaniment = self._solo(vocals, accompaniment, rng)
        return vocals, accompaniment, (vocal_id, accompaniment_id)

    def _solo(self, vocals: np.ndarray, accompaniment: np.ndarray,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """With probability `data.voice_alone` the music is silenced, with `data.music_alone` the voice.

        Songs have a cappella passages and instrumental breaks: a separator must pass a voice
        alone through unchanged and return silence for music alone (the evaluate stage's
        pass-through and leak tests). Drawn last, so the other draws of an example never change.
        """
        if self.data.voice_alone + self.data.music_alone == 0:
            return vocals, accompaniment
        draw = rng.random()
        if draw < self.data.voice_alone:
            return vocals, np.zeros_like(accompaniment)
        if draw < self.data.voice_alone + self.data.music_alone:
            return np.zeros_like(vocals), accompaniment
        return vocals, accompaniment

    def _transform(self, vocals: np.ndarray, accompaniment: np.ndarray,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Both stems (2, segment) through `data.augment`, drawing from a child of `rng`.

        A spawned child leaves `rng`'s own stream where it was, so the gains, swap
        and flip of an example are the same with augmentation on or off.
        """
        child = rng.spawn(1)[0]
        vocals = augment_vocals(vocals, self.sample_rate, child, self.data.augment)
        return vocals, augment_accompaniment(accompaniment, self.sample_rate, child, self.data.augment)

    def _draw(self, pool: SnippetPool, rng: np.random.Generator, exclude: str | None) -> tuple[np.ndarray, str]:
        """A random segment (2, segment) of a random snippet whose song id is not `exclude`, and that id."""
        candidates = np.flatnonzero(pool.ids != exclude)
        if len(candidates) == 0:
            raise StageError(f"every instrumental snippet comes from song {exclude!r}, the acapella's; "
                             "a mixture needs two different songs")
        row = int(candidates[rng.integers(len(candidates))])
        offset = int(rng.integers(pool.frames[row] - self.segment + 1))
        audio = _read_segment(str(pool.paths[row]), int(pool.starts[row]) + offset, self.segment)
        return audio, str(pool.ids[row])


def validation_set(table: pd.DataFrame, data: DataParams, sample_rate: int,
                   root: str | Path = ".", where: str = "val") -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed validation mixtures: `(mixture, vocals)`, each `(val_examples, 2, segment)`.

    Seeded by `data.seed` alone, so every run (and every resume) scores the same audio.
    """
    dataset = MixtureDataset(table, data, sample_rate, examples=data.val_examples, seed=data.seed,
                             augment=False, root=root, where=where)
    dataset.set_epoch(VAL_EPOCH)
    pairs = [dataset[i] for i in range(len(dataset))]
    return torch.stack([m for m, _ in pairs]), torch.stack([v for _, v in pairs])
