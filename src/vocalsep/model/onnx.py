"""The model as an ONNX graph: `(batch, 2, samples)` -> same, batch and time dynamic.

One export used by the export stage (`model.onnx`, checked against eager) and
by the CPU runtime (`vocalsep.runtime`: ONNX Runtime where it is faster).
`traced=True` takes torch's TorchScript-tracing exporter: about 1 s for the
demo VocNet where the dynamo exporter takes about 12 s, which matters when
the runtime exports on a user's first run. Neither exports HybridVocNet's
complex STFT here (the tracer refuses it; dynamo did not finish in 5 min).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

CHANNELS = 2
INPUT, OUTPUT = "mixture", "vocals"
OPSET = 17


def export_onnx_graph(model: nn.Module, path: Path, length: int, traced: bool = False) -> None:
    """Write `model` to `path`, exported at `length` samples; raises what the exporter raises."""
    example = (torch.zeros(1, CHANNELS, length),)
    model = model.eval()
    if traced:
        axes = {0: "batch", 2: "samples"}
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the tracer's deprecation and shape-inference notes
            torch.onnx.export(model, example, str(path), dynamo=False, opset_version=OPSET, input_names=[INPUT],
                              output_names=[OUTPUT], dynamic_axes={INPUT: axes, OUTPUT: axes})
        return
    dims = {0: torch.export.Dim("batch", min=1), 2: torch.export.Dim("samples", min=2)}
    torch.onnx.export(model, example, str(path), dynamo=True, input_names=[INPUT], output_names=[OUTPUT],
                      dynamic_shapes={INPUT: dims}, verbose=False)
