"""The CPU runtime: ONNX Runtime for the models it runs faster than eager torch, torch for the rest.

Measured on 2 CPU threads (benchmarks/results/separate.json,
`onnxruntime_vs_torch_default_model`): the demo profile's VocNet separates
20 s at 22.9x real time through ONNX Runtime and 4.6x in eager torch; the
seed's dilated convolutions with few channels are where torch's per-op
overhead dominates. `ONNX_FASTER` lists the classes measured faster; the
others stay in torch (HybridVocNet's STFT graph: see docs/performance.md).

`separate.runtime` in params.yaml picks: `auto` (ONNX Runtime for those
classes on CPU, torch otherwise), `torch`, or `onnxruntime` (every model on
CPU; an error naming the model when it cannot be exported). The graph is
exported once per model (a sha256 of its structure, context and weights) into
`$VOCALSEP_CACHE/onnx/` (default `~/.cache/vocalsep/onnx/`), checked against
eager torch with the export stage's own check (`model.onnx.compare_graph`), and
reused by later runs. Under `auto` a model
that fails to export or to match falls back to torch with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from vocalsep.config import SeparateParams
from vocalsep.errors import VocalsepError
from vocalsep.model.onnx import INPUT, check_lengths, compare_graph, export_onnx_graph
from vocalsep.devices import pick_device

log = logging.getLogger(__name__)

ONNX_FASTER = frozenset({"VocNet"})
MATCH_TOLERANCE = 1e-4  # max |onnx - eager| accepted on the check input (export.tolerance's default)


class OrtSeparator(nn.Module):
    """An ONNX Runtime session in the separation core's place: same `(batch, 2, n)` call, context and stride."""

    def __init__(self, path: Path, context: tuple[int, int], stride: int, threads: int, name: str) -> None:
        super().__init__()
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.context, self.stride, self.name = tuple(context), stride, name

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {INPUT: mixture.detach().cpu().numpy()})[0])

    def extra_repr(self) -> str:
        return f"onnxruntime {self.name}"


def cache_root() -> Path:
    return Path(os.environ.get("VOCALSEP_CACHE") or Path.home() / ".cache" / "vocalsep")


def model_digest(model: nn.Module) -> str:
    """sha256 of the module's structure (its repr: layers, dilations, kernels), context and every weight."""
    digest = hashlib.sha256(repr(model).encode())
    digest.update(json.dumps([list(getattr(model, "context", ())), getattr(model, "stride", 1)]).encode())
    for key, value in model.state_dict().items():
        digest.update(key.encode() + str(tuple(value.shape)).encode() + str(value.dtype).encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def onnx_graph(model: nn.Module) -> Path:
    """The model's checked ONNX graph in the cache, exported (atomically) when it is not there yet."""
    folder = cache_root() / "onnx"
    path = folder / f"{model_digest(model)}.onnx"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".export-", suffix=".onnx")
    os.close(fd)
    try:
        import onnxruntime

        lengths = check_lengths(model)
        export_onnx_graph(model, Path(tmp), lengths[0], traced=True)
        session = onnxruntime.InferenceSession(tmp, providers=["CPUExecutionProvider"])
        compare_graph(path.name, lambda x: session.run(None, {INPUT: x.numpy()})[0], model, lengths, MATCH_TOLERANCE)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    log.info("exported %s to ONNX: %s", type(model).__name__, path)
    return path


def for_separation(model: nn.Module, separate: SeparateParams) -> nn.Module:
    """`model` as the separation core should run it: an ONNX Runtime session on CPU where that is faster."""
    device = pick_device(separate.device, "separate.device")
    name = type(model).__name__
    wanted = separate.runtime == "onnxruntime" or (separate.runtime == "auto" and name in ONNX_FASTER)
    if device.type != "cpu" or not wanted:
        return model
    model = model.cpu().eval()
    try:
        path = onnx_graph(model)
        return OrtSeparator(path, model.context, int(getattr(model, "stride", 1)), torch.get_num_threads(), name)
    except Exception as err:  # the exporter and onnxruntime raise many types
        reason = f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
        if separate.runtime == "onnxruntime":
            raise VocalsepError(f"separate.runtime: onnxruntime: {name} cannot run in ONNX Runtime ({reason}); "
                                "set separate.runtime: torch (or auto)") from None
        log.warning("%s: ONNX Runtime unavailable (%s); separating with eager torch", name, reason)
        return model
