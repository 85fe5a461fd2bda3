"""The model as an ONNX graph: `(batch, 2, samples)` -> same, batch and time dynamic; and the check that an
exported graph reproduces the eager model.

One export and one check, used by the export stage (`model.onnx` and `model.ts`) and by the CPU runtime
(`vocalsep.runtime`: ONNX Runtime where it is faster).
`traced=True` takes torch's TorchScript-tracing exporter: about 1 s for the
demo VocNet where the dynamo exporter takes about 12 s, which matters when
the runtime exports on a user's first run. Neither exports HybridVocNet's
complex STFT here (the tracer refuses it; dynamo did not finish in 5 min).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vocalsep.errors import StageError

CHANNELS = 2
INPUT, OUTPUT = "mixture", "vocals"
OPSET = 17
log = logging.getLogger(__name__)


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
    # the exporter logs "torchvision is not installed" once per torchvision op it could register, and
    # torch.export warns about its own LeafSpec: neither concerns this model
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
            torch.onnx.export(model, example, str(path), dynamo=True, input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_shapes={INPUT: dims}, verbose=False)
    finally:
        registration.setLevel(level)


def check_lengths(model: nn.Module) -> tuple[int, int]:
    """Two input lengths for the graph checks: one and about three receptive fields (odd, to catch rounding)."""
    field = max(int(getattr(model, "receptive_field", 256)), 256)
    return field + 1, 3 * field + 101


def compare_graph(name: str, run: Callable[[torch.Tensor], np.ndarray], model: nn.Module,
                  lengths: Sequence[int], tolerance: float) -> float:
    """Max |exported - eager| over random `(2, 2, n)` inputs of each length; StageError above `tolerance`."""
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for n in lengths:
        mixture = torch.randn(2, CHANNELS, n, generator=generator) * 0.1
        with torch.inference_mode():
            expected = model(mixture).numpy()
        got = run(mixture)
        if got.shape != expected.shape:
            raise StageError(f"{name}: output shape {got.shape} differs from eager {expected.shape} at {n} samples")
        worst = max(worst, float(np.abs(got - expected).max()))
    if not worst < tolerance:
        raise StageError(f"{name}: max |exported - eager| = {worst:.3g} exceeds export.tolerance {tolerance:g}; "
                         "the graph does not reproduce the model, do not ship it")
    log.info("%s matches eager: max abs diff %.3g over lengths %s", name, worst, list(lengths))
    return worst
