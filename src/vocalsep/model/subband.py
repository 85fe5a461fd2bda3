"""SubbandRefiner: HybridVocNet's mask corrected bin by bin from the mixture's own spectrum.

HybridVocNet's magnitude mask comes from its 128 skip channels through one
1x1 conv to 2 x 1025 bins: every frame's mask is a sigmoid of one of at most
128 fixed spectral templates mixed, and no layer sees that bin 40 is next to
bin 41 or where this voice's harmonics fall. The refiner keeps the structure
of frequency at a cost a CPU can train:

- the bins are cut into patches of `patch` adjacent bins (16: 344 Hz at
  44.1 kHz), and at every frame each patch is described by its bins' input
  features (the model's normalised log magnitudes) and mask logits, both channels;
- two gated layers (tanh x sigmoid, the seed's gate; the second residual)
  run along frequency: each reads its patch and the patches `1` and then `2`
  away on either side (about +-1 kHz in all), with weights shared by all
  patches and a learned bias per patch that says where in the spectrum it is;
- a last linear layer gives a correction to each bin's logit.

It works frame by frame, so it adds no context in time: chunked and whole-song
separation, streaming and the live lookahead are unchanged. Its last layer
starts at zero, so a model grown with it (`model.refine_width` from 0, see
`vocalsep.base_model.weights.init_from_pretrained`) first computes exactly
what it computed before, and training only adds what helps.

Measured on the base model (docs/model.md, 2026-12-04): grown onto base_v10
at width 32 and trained 2,800 steps, it learned almost nothing (zeroing it
afterwards moved unseen-set SI-SDRi by 0.01 dB), so no profile turns it on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _gate(h: torch.Tensor) -> torch.Tensor:
    filt, gate = h.chunk(2, dim=-1)
    return torch.tanh(filt) * torch.sigmoid(gate)


def _neighbours(x: torch.Tensor, distance: int) -> torch.Tensor:
    """`(n, patches, c)` -> `(n, patches, 3c)`: each patch beside the patches `distance` below and above (zeros past the edges)."""
    padded = F.pad(x, (0, 0, distance, distance))
    count = x.shape[1]
    return torch.cat([padded[:, :count], x, padded[:, 2 * distance:]], dim=-1)


class SubbandRefiner(nn.Module):
    """`(features, logits)`, both `(batch, channels * bins, frames)` -> corrected logits, same shape."""

    def __init__(self, channels: int, bins: int, width: int, patch: int = 16):
        super().__init__()
        if width < 1 or patch < 1:
            raise ValueError(f"width ({width}) and patch ({patch}) must be >= 1")
        self.channels, self.bins, self.patch = channels, bins, patch
        self.patches = -(-bins // patch)
        per_patch = 2 * channels * patch  # features and logits of every bin of both channels
        self.first = nn.Linear(3 * per_patch, 2 * width)
        self.position = nn.Parameter(torch.zeros(self.patches, 2 * width))
        self.second = nn.Linear(3 * width, 2 * width)
        self.out = nn.Linear(width, channels * patch)
        nn.init.zeros_(self.out.weight)  # starts as the identity on the logits: growing a model keeps its function
        nn.init.zeros_(self.out.bias)

    def forward(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        batch, _, frames = logits.shape
        c, p, n = self.channels, self.patch, self.patches
        x = torch.stack([features, logits], dim=1).reshape(batch, 2 * c, self.bins, frames)
        x = F.pad(x, (0, 0, 0, n * p - self.bins))
        x = x.reshape(batch, 2 * c, n, p, frames).permute(0, 4, 2, 1, 3).reshape(batch * frames, n, 2 * c * p)
        h = _gate(self.first(_neighbours(x, 1)) + self.position)
        h = h + _gate(self.second(_neighbours(h, 2)))
        delta = self.out(h).reshape(batch, frames, n, c, p).permute(0, 3, 2, 4, 1).reshape(batch, c, n * p, frames)
        return logits + delta[:, :, :self.bins].reshape(batch, c * self.bins, frames)

    def macs_per_frame(self) -> int:
        """Multiply-accumulates of its three layers at one frame (both channels)."""
        return self.patches * sum(layer.in_features * layer.out_features for layer in (self.first, self.second, self.out))
