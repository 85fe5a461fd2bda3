"""What the separation core may wrap around any separator: time-shift averaging and a Wiener post-filter.

## Shifts (`separate.shifts`)
The separator runs `shifts + 1` times on the mixture delayed by `0, s, 2s...`
samples (`s = stride / (shifts + 1)`, `hop / (shifts + 1)` for a model
without a stride), and the outputs, shifted back, are averaged: each pass sees
its STFT frames and strided encoder at another phase, as Demucs' `shifts`
averages random offsets. The cost is `shifts + 1` passes.

## The Wiener post-filter (`separate.wiener_power`)

The model's vocals `v` and the mixture `x` give the accompaniment `a = x - v`.
Per channel, on an STFT (`n_fft`, `hop`), the filter takes the mask
`|V|^p / (|V|^p + |A|^p)` and applies it to the mixture's STFT. With
`p = 1` and a model whose output is a magnitude mask on the same STFT, that
gives its output back; `p = 2` is the classic Wiener filter; larger `p`
pushes every time-frequency cell towards all-voice or all-music, which turns
weak leaks of music down and keeps what the model is sure of. It is the
single-channel form of the post-filter Open-Unmix runs (`softmask`, norbert).

The filter is local (each output sample depends on `n_fft` samples around
it), so the wrapper widens the separator's `context` by `n_fft` on each side
and its `stride` to a common multiple with `hop`: the separation core's
chunking still gives the whole-song result.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vocalsep.config import SeparateParams


def refined(model: nn.Module, params: SeparateParams) -> nn.Module:
    """`model` wrapped as `params` asks: shifts (`shifts` > 0), then the Wiener post-filter (`wiener_power` > 0)."""
    if params.shifts > 0:
        model = Shifted(model, params.shifts)
    if params.wiener_power > 0:
        model = PostFiltered(model, params.wiener_power)
    return model


class Shifted(nn.Module):
    """`separator` averaged over `shifts + 1` delays of the input, each taken back from its output."""

    def __init__(self, separator: nn.Module, shifts: int, hop: int = 512):
        super().__init__()
        if shifts < 1:
            raise ValueError(f"shifts must be >= 1, got {shifts}")
        self.separator = separator
        stride = int(getattr(separator, "stride", 1))
        period = stride if stride > 1 else hop
        self.offsets = [i * period // (shifts + 1) for i in range(shifts + 1)]
        before, after = tuple(getattr(separator, "context"))
        self.context = (int(before) + self.offsets[-1], int(after) + self.offsets[-1])
        self.stride = stride

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        length, total = mixture.shape[-1], None
        for offset in self.offsets:
            delayed = torch.nn.functional.pad(mixture, (offset, 0))
            out = self.separator(delayed)[..., offset:offset + length].to(mixture.dtype)
            total = out if total is None else total + out
        assert total is not None
        return total / len(self.offsets)

    def extra_repr(self) -> str:
        return f"offsets={self.offsets}"


class PostFiltered(nn.Module):
    """`separator` (mixture -> vocals, `(batch, channels, samples)`) followed by the sharpening Wiener mask."""

    def __init__(self, separator: nn.Module, power: float, n_fft: int = 2048, hop: int = 512):
        super().__init__()
        if power <= 0:
            raise ValueError(f"power must be > 0, got {power}")
        self.separator = separator
        self.power = float(power)
        self.n_fft = n_fft
        self.hop = hop
        self.window: torch.Tensor
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        before, after = tuple(getattr(separator, "context"))
        self.context = (int(before) + n_fft, int(after) + n_fft)
        self.stride = math.lcm(int(getattr(separator, "stride", 1)), hop)

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        vocals = self.separator(mixture).to(mixture.dtype)
        return sharpen(mixture, vocals, self.power, self.n_fft, self.hop, self.window.to(mixture.device))

    def extra_repr(self) -> str:
        return f"power={self.power}, n_fft={self.n_fft}, hop={self.hop}"


def sharpen(mixture: torch.Tensor, vocals: torch.Tensor, power: float, n_fft: int, hop: int,
            window: torch.Tensor) -> torch.Tensor:
    """Vocals re-estimated from `mixture` with the mask `|V|^p / (|V|^p + |X - V|^p)`, same shape."""
    batch, channels, length = mixture.shape
    pad = -length % hop

    def stft(signal: torch.Tensor) -> torch.Tensor:
        flat = torch.nn.functional.pad(signal, (0, pad)).reshape(batch * channels, -1)
        return torch.stft(flat, n_fft, hop, window=window, center=True, pad_mode="constant", return_complex=True)

    spec_x, spec_v = stft(mixture), stft(vocals)
    voice = spec_v.abs().pow(power)
    music = (spec_x - spec_v).abs().pow(power)
    mask = voice / (voice + music + 1e-12)
    out = torch.istft(spec_x * mask, n_fft, hop, window=window, center=True, length=length + pad)
    return out.reshape(batch, channels, -1)[..., :length]
