"""Which torch device a setting means: the one place `auto`, `cpu` and `cuda` are interpreted."""

from __future__ import annotations

import torch

from vocalsep.errors import VocalsepError


def pick_device(choice: str, key: str, local_rank: int = 0) -> torch.device:
    """`auto` is CUDA when present, else CPU; `cuda` without a GPU is an error naming `key`.

    CUDA means the GPU of this process's rank (`local_rank`, 0 outside distributed training).
    """
    if choice not in ("auto", "cpu", "cuda"):
        raise VocalsepError(f"{key} is {choice!r}; use 'auto', 'cpu' or 'cuda'")
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise VocalsepError(f"{key} is {choice!r} but no CUDA device is visible; use 'auto' or 'cpu'")
    return torch.device("cuda", local_rank)
