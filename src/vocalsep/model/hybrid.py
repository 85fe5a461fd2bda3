"""HybridVocNet: the seed's gated dilated blocks on a strided hybrid encoder.

VocNet runs every layer at 44.1 kHz and hears 35 ms. Here the same blocks
(non-causal dilated convolutions, gated tanh x sigmoid, residual and skip 1x1
convolutions) run at the frame rate of two strided encoders that see the
same audio:

- a spectral encoder: the STFT (`n_fft`, `hop`), log magnitudes of both channels;
- a learned waveform encoder: `Conv1d(channels, wave_filters, 2 * wave_stride,
  stride=wave_stride)` whose `hop // wave_stride` frames per STFT hop are
  stacked into one frame.

The blocks' skip sum drives two masks, one on each encoder: a magnitude mask on
the mixture's STFT (inverse STFT with the mixture's phase) and a mask on the
learned encoder's frames (a transposed-conv decoder). The output waveform is
their sum. With `hop` 512 the blocks run at 86 frames per second instead of
44,100, so a receptive field of seconds costs less than VocNet's 35 ms.

Everything is causal-free and local: each output sample depends only on input
within `context` samples of it, so the separation core's chunking gives the
whole-song result, provided chunks start on multiples of `stride`. The
optional global context vector (the seed author's other suggestion: the mean
of the first features over the whole input, added to every gate) breaks that
locality on purpose; `context` then covers only the local part.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vocalsep.model.subband import SubbandRefiner


class ChannelNorm(nn.Module):
    """Layer norm over channels at each frame (cLN): `(batch, channels, frames)`, independent of other frames."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels, 1))
        self.bias = nn.Parameter(torch.zeros(channels, 1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        var = (x - mean).pow(2).mean(dim=1, keepdim=True)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class GatedBlock(nn.Module):
    """Normalised non-causal dilated conv, gated tanh x sigmoid, residual and skip 1x1 convs.

    x: (batch, filters, frames) -> (x + residual, skip (batch, skip_filters, frames)).
    `condition` (batch, 2 * filters, 1), when given, is added before the gate (global conditioning).
    """

    def __init__(self, filters: int, skip_filters: int, kernel_size: int, dilation: int, residual: bool,
                 lookahead: int | None = None):
        super().__init__()
        total = dilation * (kernel_size - 1)
        after = total - total // 2 if lookahead is None else min(lookahead, total)
        self.pad = (total - after, after)  # (frames before, frames after) the dilated conv reads
        self.norm = ChannelNorm(filters)
        self.dilated = nn.Conv1d(filters, 2 * filters, kernel_size, dilation=dilation)
        self.residual = nn.Conv1d(filters, filters, 1) if residual else None
        self.skip = nn.Conv1d(filters, skip_filters, 1)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.dilated(F.pad(self.norm(x), self.pad))
        if condition is not None:
            h = h + condition
        filt, gate = h.chunk(2, dim=1)
        z = torch.tanh(filt) * torch.sigmoid(gate)
        skip = self.skip(z)
        if self.residual is None:
            return x, skip
        return x + self.residual(z), skip


class StereoFeatures(nn.Module):
    """What a magnitude per channel cannot show: the mid (L + R) / 2 and side (L - R) / 2 magnitudes of every bin.

    A centred voice is all mid; a panned or wide instrument has side. Their log magnitudes, scaled and shifted
    per bin, are projected to the blocks' width and added to the input projection. The projection starts at
    zero, so a model grown with it (`train.init: pretrained`) starts exactly as its base.
    """

    def __init__(self, bins: int, filters: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(2 * bins, 1))
        self.shift = nn.Parameter(torch.zeros(2 * bins, 1))
        self.project = nn.Conv1d(2 * bins, filters, 1, bias=False)
        nn.init.zeros_(self.project.weight)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """`spec` `(batch, 2, bins, frames)` complex -> `(batch, filters, frames)`."""
        mid_side = torch.cat([spec[:, 0] + spec[:, 1], spec[:, 0] - spec[:, 1]], dim=1) * 0.5
        return self.project(torch.log(mid_side.abs() + 1e-4) * self.scale + self.shift)


def gated_stack(filters: int, skip_filters: int, layers: int, layers_per_stack: int, kernel_size: int,
                lookahead_frames: int) -> nn.ModuleList:
    """`layers` gated blocks, dilation doubling within each stack; `lookahead_frames` >= 0 is the budget
    of frames ahead that all blocks together may read (each takes what is left), -1 centres every conv."""
    budget = None if lookahead_frames < 0 else lookahead_frames
    blocks = []
    for i in range(layers):
        block = GatedBlock(filters, skip_filters, kernel_size, 2 ** (i % layers_per_stack), i < layers - 1,
                           lookahead=budget)
        if budget is not None:
            budget -= block.pad[1]
        blocks.append(block)
    return nn.ModuleList(blocks)


def padded_stft(mixture: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """`(padded, spec)`: `(batch, channels, samples)` zero-padded to a multiple of `hop`, and its centred STFT
    `(batch * channels, n_fft // 2 + 1, frames)` complex; the spectral models' shared front end."""
    batch, channels, length = mixture.shape
    padded = F.pad(mixture, (0, -length % hop))
    spec = torch.stft(padded.reshape(batch * channels, -1), n_fft, hop, window=window,
                      center=True, pad_mode="constant", return_complex=True)
    return padded, spec


class HybridVocNet(nn.Module):
    """Stereo mixture `(batch, 2, samples)` -> vocals `(batch, 2, samples)`, any length.

    `filters`, `skip_filters`, `layers`, `layers_per_stack` and `kernel_size`
    mean what they mean in VocNet, counted in frames of `hop` samples.
    `lookahead_frames` -1 centres every dilated conv (non-causal, the offline
    model); n >= 0 lets all blocks together read at most n frames ahead (the
    rest of each conv's reach goes to the past), for live use: the model then
    looks `context[1]` samples ahead, the STFT's and fold's reach included.
    `refine_width` > 0 corrects the mask bin by bin with a `SubbandRefiner`
    of that width (frame by frame: no context added); 0 leaves it out.
    `stereo_features` adds the mid and side magnitudes of every bin to the
    input (`StereoFeatures`): the phase between the channels, which the
    per-channel magnitudes lose (frame by frame: no context added).
    """

    def __init__(
        self,
        filters: int = 192,
        skip_filters: int = 192,
        layers: int = 12,
        layers_per_stack: int = 6,
        kernel_size: int = 3,
        n_fft: int = 2048,
        hop: int = 512,
        wave_filters: int = 64,
        wave_stride: int = 128,
        global_context: bool = False,
        lookahead_frames: int = -1,
        refine_width: int = 0,
        stereo_features: bool = False,
        channels: int = 2,
    ):
        super().__init__()
        if stereo_features and channels != 2:
            raise ValueError(f"stereo_features needs 2 channels, got {channels}")
        if hop % wave_stride or n_fft <= hop or n_fft % 2:  # n_fft == hop: a Hann window's overlap-add has zeros
            raise ValueError(f"need hop ({hop}) a multiple of wave_stride ({wave_stride}) and even n_fft > hop ({n_fft})")
        self.channels, self.n_fft, self.hop, self.wave_stride = channels, n_fft, hop, wave_stride
        self.bins = n_fft // 2 + 1
        self.fold = hop // wave_stride
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.input_scale = nn.Parameter(torch.ones(channels * self.bins, 1))
        self.input_shift = nn.Parameter(torch.zeros(channels * self.bins, 1))
        self.wave_encoder = nn.Conv1d(channels, wave_filters, 2 * wave_stride, stride=wave_stride, bias=False)
        self.wave_decoder = nn.ConvTranspose1d(wave_filters, channels, 2 * wave_stride, stride=wave_stride, bias=False)
        self.input = nn.Conv1d(channels * self.bins + wave_filters * self.fold, filters, 1)
        self.stereo_input = StereoFeatures(self.bins, filters) if stereo_features else None
        self.input_norm = ChannelNorm(filters)
        self.global_context = nn.Linear(filters, 2 * filters * layers) if global_context else None
        self.blocks = gated_stack(filters, skip_filters, layers, layers_per_stack, kernel_size, lookahead_frames)
        self.spec_mask = nn.Conv1d(skip_filters, channels * self.bins, 1)
        self.wave_mask = nn.Conv1d(skip_filters, wave_filters * self.fold, 1)
        nn.init.constant_(self.wave_mask.bias, -4.0)  # the waveform branch starts nearly silent: it learns corrections
        self.refiner = SubbandRefiner(channels, self.bins, refine_width) if refine_width > 0 else None

    @property
    def stride(self) -> int:
        """Chunks must start on multiples of this many samples to reproduce the whole-input frames."""
        return self.hop

    @property
    def context(self) -> tuple[int, int]:
        """Samples of context (before, after) the output at one sample can depend on (local part)."""
        frames_before = sum(b.pad[0] for b in self.blocks) + 1
        frames_after = sum(b.pad[1] for b in self.blocks) + 1
        reach = self.n_fft + self.hop  # istft overlap (n_fft/2) + STFT window (n_fft/2) + fold
        return frames_before * self.hop + reach, frames_after * self.hop + reach

    @property
    def receptive_field(self) -> int:
        before, after = self.context
        return before + 1 + after

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        batch, channels, length = mixture.shape
        padded, spec = padded_stft(mixture, self.n_fft, self.hop, self.window)
        frames = spec.shape[-1]
        magnitude = spec.abs().reshape(batch, channels * self.bins, frames)
        spectral = torch.log(magnitude + 1e-4) * self.input_scale + self.input_shift
        half = self.wave_stride // 2  # pads (half, stride - half): an odd stride too gives length / stride frames
        encoded = F.relu(self.wave_encoder(F.pad(padded, (half, self.wave_stride - half))))
        x = torch.cat([spectral, self._fold(encoded, frames)], dim=1)
        x = self.input(x)
        if self.stereo_input is not None:
            x = x + self.stereo_input(spec.reshape(batch, channels, self.bins, frames))
        x = self.input_norm(x)
        skips = self._blocks(x)
        logits = self.spec_mask(skips)
        if self.refiner is not None:
            logits = self.refiner(spectral, logits)
        spec_mask = torch.sigmoid(logits).reshape(batch * channels, self.bins, frames)
        vocals = torch.istft(spec * spec_mask, self.n_fft, self.hop, window=self.window, center=True,
                             length=padded.shape[-1])
        wave_mask = torch.sigmoid(self._unfold(self.wave_mask(skips), encoded.shape[-1]))
        decoded = self._decode(encoded * wave_mask)[..., half:][..., :padded.shape[-1]]
        return (vocals.reshape(batch, channels, -1) + decoded)[..., :length]

    def _blocks(self, x: torch.Tensor) -> torch.Tensor:
        conditions: list[torch.Tensor | None] = [None] * len(self.blocks)
        if self.global_context is not None:
            conditions = list(self.global_context(x.mean(dim=-1)).unsqueeze(-1).chunk(len(self.blocks), dim=1))
        skips = 0
        for block, condition in zip(self.blocks, conditions):
            x, skip = block(x, condition)
            skips = skips + skip
        return F.relu(skips)

    def _decode(self, masked: torch.Tensor) -> torch.Tensor:
        """`self.wave_decoder(masked)` computed as one matmul and an overlap-add (`F.fold`).

        The same numbers as ConvTranspose1d, without its CPU cost: oneDNN builds a new transposed-conv
        primitive for every input length it meets, which took 8-33 s per new length here (every song's
        last chunk, every streaming start-up window has its own length).
        """
        batch, width, steps = masked.shape
        weight = self.wave_decoder.weight  # (width, channels, kernel)
        kernel, stride = weight.shape[-1], self.wave_decoder.stride[0]
        columns = torch.matmul(weight.reshape(width, -1).t(), masked)  # (batch, channels * kernel, steps)
        out = F.fold(columns, output_size=(1, (steps - 1) * stride + kernel), kernel_size=(1, kernel),
                     stride=(1, stride))
        return out.reshape(batch, self.channels, -1)

    def _fold(self, encoded: torch.Tensor, frames: int) -> torch.Tensor:
        """(batch, W, hop/stride * (frames - 1)) -> (batch, W * fold, frames): the frames of each hop side by side."""
        batch, width, steps = encoded.shape
        encoded = F.pad(encoded, (0, frames * self.fold - steps))
        return encoded.reshape(batch, width, frames, self.fold).transpose(2, 3).reshape(batch, width * self.fold, frames)

    def _unfold(self, folded: torch.Tensor, steps: int) -> torch.Tensor:
        """The inverse of `_fold`, cut to `steps` encoder frames."""
        batch, _, frames = folded.shape
        width = folded.shape[1] // self.fold
        return folded.reshape(batch, width, self.fold, frames).transpose(2, 3).reshape(batch, width, -1)[..., :steps]

    def macs_per_second(self, sample_rate: int) -> float:
        """Multiply-accumulates of the learned layers per second of stereo audio (FFTs left out)."""
        per_frame = self.input.in_channels * self.input.out_channels
        if self.stereo_input is not None:
            per_frame += self.stereo_input.project.in_channels * self.stereo_input.project.out_channels
        per_frame += self.spec_mask.in_channels * self.spec_mask.out_channels
        per_frame += self.wave_mask.in_channels * self.wave_mask.out_channels
        for b in self.blocks:
            per_frame += b.dilated.in_channels * b.dilated.out_channels * b.dilated.kernel_size[0]
            per_frame += b.skip.in_channels * b.skip.out_channels
            if b.residual is not None:
                per_frame += b.residual.in_channels * b.residual.out_channels
        if self.refiner is not None:
            per_frame += self.refiner.macs_per_frame()
        wave = 2 * self.wave_encoder.in_channels * self.wave_encoder.out_channels * self.wave_encoder.kernel_size[0]
        return per_frame * sample_rate / self.hop + wave * sample_rate / self.wave_stride
