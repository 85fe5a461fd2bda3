"""BandSplitVocNet: the seed's gated dilated blocks running along time inside frequency bands.

HybridVocNet squeezes the whole stereo spectrum (2 x 1025 bins) into 128
channels with one 1x1 conv and expands them back into its mask, so nothing in
it knows that bin 40 is next to bin 41; it generalises poorly to voices it
has not heard. Here, as in BSRNN and BS-RoFormer, frequency keeps its
structure:

- band split: the STFT (`n_fft`, `hop`) bins are cut into `bands` bands,
  narrow at low frequency and wide at high (mel-like edges, `band_edges`);
  each band's complex bins (real and imaginary, both channels) are layer-normed
  per frame and encoded by the band's own linear layer to `band_filters`
  channels: `(batch, bands, band_filters, frames)`;
- core: the seed's blocks (HybridVocNet's `gated_stack`: non-causal dilated
  conv over frames, gated tanh x sigmoid, residual and skip 1x1) with weights
  shared by all bands (bands folded into the batch), and after every block but
  the last a gated mixer across bands at each frame, so bands talk;
- per band decoder: an MLP from the skip sum to that band's bins as a complex
  ratio mask (real and imaginary parts bounded by tanh) on the mixture's STFT,
  then the inverse STFT.

Every layer after the STFT works per frame or along frames, so each output
sample depends only on input within `context` samples and chunks that start on
multiples of `stride` (the hop) reproduce the whole-input result. The output
is the mixture's STFT times a bounded mask, so silence in gives exact silence out.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vocalsep.model.hybrid import ChannelNorm, gated_stack, padded_stft

MEL_KNEE = 700 / 22050  # the mel scale's 700 Hz knee as a fraction of Nyquist at 44.1 kHz


def band_edges(bins: int, bands: int) -> list[int]:
    """`bands + 1` increasing bin indices from 0 to `bins`, spaced evenly on a mel-like scale.

    Band k holds bins `edges[k]:edges[k + 1]`, at least one each. The scale is
    in bins, not Hz (the model does not know its sample rate): at 44.1 kHz it
    is the mel scale's log(1 + f / 700 Hz).
    """
    if not 1 <= bands <= bins:
        raise ValueError(f"bands ({bands}) must be between 1 and the STFT's {bins} bins")
    knee = MEL_KNEE * (bins - 1)
    top = math.log1p(bins / knee)
    edges = [round(knee * math.expm1(top * k / bands)) for k in range(bands + 1)]
    edges[0], edges[-1] = 0, bins
    for k in range(1, bands):  # low bands would round to nothing: push them up, then keep room for those above
        edges[k] = min(max(edges[k], edges[k - 1] + 1), bins - (bands - k))
    return edges


class BandMixer(nn.Module):
    """Gated mixing across bands at each frame: `(batch * bands, filters, frames)` -> same, plus a residual.

    A learned `bands x bands` map over the band axis (shared by channels) gives
    filter and gate, tanh x sigmoid as in the seed's blocks, then a 1x1 conv
    over channels: an MLP-mixer step that lets every band hear every other.
    """

    def __init__(self, bands: int, filters: int):
        super().__init__()
        self.bands = bands
        self.norm = ChannelNorm(filters)
        self.across = nn.Linear(bands, 2 * bands)
        self.channels = nn.Conv1d(filters, filters, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        folded, filters, frames = x.shape
        h = self.norm(x).reshape(folded // self.bands, self.bands, filters * frames)
        h = torch.matmul(self.across.weight, h) + self.across.bias.unsqueeze(-1)  # (batch, 2 * bands, F * T)
        filt, gate = h.chunk(2, dim=1)
        z = (torch.tanh(filt) * torch.sigmoid(gate)).reshape(folded, filters, frames)
        return x + self.channels(z)


class BandSplitVocNet(nn.Module):
    """Stereo mixture `(batch, 2, samples)` -> vocals `(batch, 2, samples)`, any length.

    `bands` bands of `band_filters` channels each; `layers`, `layers_per_stack`
    and `kernel_size` mean what they mean in HybridVocNet (dilation
    2 ** (i mod layers_per_stack), in frames of `hop` samples), and so does
    `lookahead_frames` (-1 centred convs; n >= 0 at most n frames ahead).
    The blocks' residual and skip widths are both `band_filters`: they run once
    per band, so HybridVocNet's `filters` would cost `bands` times as much here.
    """

    def __init__(
        self,
        bands: int = 24,
        band_filters: int = 48,
        layers: int = 12,
        layers_per_stack: int = 6,
        kernel_size: int = 3,
        n_fft: int = 2048,
        hop: int = 512,
        lookahead_frames: int = -1,
        channels: int = 2,
    ):
        super().__init__()
        if n_fft <= hop or n_fft % 2:  # n_fft == hop: a Hann window's overlap-add has zeros
            raise ValueError(f"need an even n_fft ({n_fft}) > hop ({hop})")
        self.channels, self.n_fft, self.hop = channels, n_fft, hop
        self.bins = n_fft // 2 + 1
        self.edges = band_edges(self.bins, bands)
        widths = [b - a for a, b in zip(self.edges, self.edges[1:])]
        parts = 2 * channels  # real and imaginary part of each channel
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.band_norms = nn.ModuleList(nn.LayerNorm(w * parts) for w in widths)
        self.band_encoders = nn.ModuleList(nn.Linear(w * parts, band_filters) for w in widths)
        self.blocks = gated_stack(band_filters, band_filters, layers, layers_per_stack, kernel_size, lookahead_frames)
        self.mixers = nn.ModuleList(BandMixer(bands, band_filters) for _ in range(layers - 1))
        hidden = 4 * band_filters  # BSRNN's mask MLP width
        self.band_hidden = nn.Conv1d(bands * band_filters, bands * hidden, 1, groups=bands)
        self.band_decoders = nn.ModuleList(nn.Linear(hidden, w * parts) for w in widths)

    @property
    def stride(self) -> int:
        """Chunks must start on multiples of this many samples to reproduce the whole-input frames."""
        return self.hop

    @property
    def context(self) -> tuple[int, int]:
        """Samples (before, after) the output at one sample can depend on.

        An output sample takes the inverse STFT of frames whose window covers
        it (n_fft / 2 either side), each frame's mask reads the blocks' frames,
        and each of those frames reads n_fft / 2 samples either side.
        """
        before = sum(b.pad[0] for b in self.blocks)
        after = sum(b.pad[1] for b in self.blocks)
        return before * self.hop + self.n_fft, after * self.hop + self.n_fft

    @property
    def receptive_field(self) -> int:
        before, after = self.context
        return before + 1 + after

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        batch, channels, length = mixture.shape
        padded, spec = padded_stft(mixture, self.n_fft, self.hop, self.window)
        frames = spec.shape[-1]
        # (batch, frames, bins, channels * 2): each bin's real and imaginary parts of both channels side by side
        parts = torch.view_as_real(spec).reshape(batch, channels, self.bins, frames, 2).permute(0, 3, 2, 1, 4)
        parts = parts.reshape(batch, frames, self.bins, 2 * channels)
        x = self._encode(parts)
        skips = 0
        for i, block in enumerate(self.blocks):
            x, skip = block(x)
            skips = skips + skip
            if i < len(self.mixers):
                x = self.mixers[i](x)
        mask = torch.tanh(self._decode(F.relu(skips), batch))  # (batch, frames, bins, channels * 2)
        mask = mask.reshape(batch, frames, self.bins, channels, 2).permute(0, 3, 2, 1, 4).contiguous()
        vocals = torch.istft(spec * torch.view_as_complex(mask.float()).reshape(batch * channels, self.bins, frames),
                             self.n_fft, self.hop, window=self.window, center=True, length=padded.shape[-1])
        return vocals.reshape(batch, channels, -1)[..., :length]

    def _encode(self, parts: torch.Tensor) -> torch.Tensor:
        """(batch, frames, bins, parts) -> (batch * bands, band_filters, frames): each band on its own."""
        batch, frames = parts.shape[:2]
        encoded = [encoder(norm(parts[:, :, lo:hi].reshape(batch, frames, -1)))
                   for norm, encoder, lo, hi in zip(self.band_norms, self.band_encoders, self.edges, self.edges[1:])]
        return torch.stack(encoded, dim=1).transpose(2, 3).reshape(batch * len(encoded), -1, frames)

    def _decode(self, skips: torch.Tensor, batch: int) -> torch.Tensor:
        """(batch * bands, band_filters, frames) -> mask logits (batch, frames, bins, parts), band by band."""
        frames = skips.shape[-1]
        hidden = torch.tanh(self.band_hidden(skips.reshape(batch, -1, frames)))  # (batch, bands * hidden, frames)
        hidden = hidden.reshape(batch, len(self.band_decoders), -1, frames).transpose(2, 3)
        bands = [decoder(hidden[:, k]).reshape(batch, frames, hi - lo, -1)
                 for k, (decoder, lo, hi) in enumerate(zip(self.band_decoders, self.edges, self.edges[1:]))]
        return torch.cat(bands, dim=2)

    def macs_per_second(self, sample_rate: int) -> float:
        """Multiply-accumulates of the learned layers per second of stereo audio (FFTs and norms left out)."""
        bands = len(self.band_encoders)
        per_frame = sum(e.in_features * e.out_features for e in self.band_encoders)
        per_frame += sum(d.in_features * d.out_features for d in self.band_decoders)
        per_frame += self.band_hidden.in_channels * self.band_hidden.out_channels // bands
        for b in self.blocks:
            per_band = b.dilated.in_channels * b.dilated.out_channels * b.dilated.kernel_size[0]
            per_band += b.skip.in_channels * b.skip.out_channels
            per_band += 0 if b.residual is None else b.residual.in_channels * b.residual.out_channels
            per_frame += bands * per_band
        for m in self.mixers:
            per_frame += m.across.in_features * m.across.out_features * m.channels.in_channels
            per_frame += bands * m.channels.in_channels * m.channels.out_channels
        return per_frame * sample_rate / self.hop
