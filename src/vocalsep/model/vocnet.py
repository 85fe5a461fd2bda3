"""VocNet: the seed's WaveNet-like separator on raw stereo audio."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GatedResidualLayer(nn.Module):
    """One non-causal dilated conv with gated activation, residual and skip 1x1 convs.

    x: (batch, filters, samples) -> (residual output (batch, filters, samples),
    skip (batch, skip_filters, samples)). The last layer of the network has no
    residual conv (`residual=False`): nothing reads its residual output, and an
    unused parameter would break DistributedDataParallel's gradient sync.
    With `bias=False` only the sigmoid gate keeps a bias: tanh(0) = 0 and
    ReLU(0) = 0, so zeros in give exact zeros out.
    """

    def __init__(self, filters: int, skip_filters: int, kernel_size: int, dilation: int,
                 residual: bool = True, bias: bool = True):
        super().__init__()
        total = dilation * (kernel_size - 1)
        self.pad = (total // 2, total - total // 2)
        self.dilated = nn.Conv1d(filters, 2 * filters, kernel_size, dilation=dilation, bias=bias)
        self.gate_bias = None if bias else nn.Parameter(torch.zeros(filters, 1))
        self.residual = nn.Conv1d(filters, filters, 1, bias=bias) if residual else None
        self.skip = nn.Conv1d(filters, skip_filters, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        filt, gate = self.dilated(F.pad(x, self.pad)).chunk(2, dim=1)
        if self.gate_bias is not None:
            gate = gate + self.gate_bias
        z = torch.tanh(filt) * torch.sigmoid(gate)
        skip = F.relu(self.skip(z))
        if self.residual is None:
            return x, skip
        return x + F.relu(self.residual(z)), skip


class VocNet(nn.Module):
    """Stacks of dilated gated convolutions mapping a stereo mixture to the vocal waveform.

    Input and output are `(batch, 2, samples)`; the output has the input's length.
    Dilation of layer i is 2 ** (i mod layers_per_stack); padding is split on
    both sides, so each output sample sees context before and after it.
    `bias=True` is the seed's network; `bias=False` drops every bias except the
    gates', which makes the map from silence to silence exact (no DC offset
    where there are no vocals) at no cost in compute.
    """

    def __init__(
        self,
        filters: int = 128,
        skip_filters: int = 192,
        layers: int = 30,
        layers_per_stack: int = 10,
        kernel_size: int = 2,
        channels: int = 2,
        bias: bool = True,
    ):
        super().__init__()
        self.channels = channels
        self.input = nn.Conv1d(channels, filters, 1, bias=bias)
        self.layers = nn.ModuleList(
            GatedResidualLayer(filters, skip_filters, kernel_size, 2 ** (i % layers_per_stack), i < layers - 1, bias)
            for i in range(layers)
        )
        self.output = nn.Conv1d(skip_filters, channels, 1, bias=bias)

    @property
    def context(self) -> tuple[int, int]:
        """Samples of context the network uses (before, after) each output sample."""
        return sum(layer.pad[0] for layer in self.layers), sum(layer.pad[1] for layer in self.layers)

    @property
    def receptive_field(self) -> int:
        """Number of input samples that influence one output sample."""
        before, after = self.context
        return before + 1 + after

    def macs_per_sample(self) -> int:
        """Multiply-accumulates of one forward pass per output sample (conv weights only)."""
        macs = self.input.in_channels * self.input.out_channels + self.output.in_channels * self.output.out_channels
        for layer in self.layers:
            conv = layer.dilated
            macs += conv.in_channels * conv.out_channels * conv.kernel_size[0]
            macs += layer.skip.in_channels * layer.skip.out_channels
            if layer.residual is not None:
                macs += layer.residual.in_channels * layer.residual.out_channels
        return macs

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.input(mixture))
        skips = 0
        for layer in self.layers:
            x, skip = layer(x)
            skips = skips + skip
        return self.output(skips)
