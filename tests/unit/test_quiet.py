"""`make run` prints no Python warning: the sources it had, each checked where it starts."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import torch

from vocalsep.model import VocNet
from vocalsep.model.onnx import export_onnx_graph
from vocalsep.report import spectrogram_figure


def test_a_silent_spectrogram_panel_warns_nothing():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spectrogram_figure("t", [("silence", np.zeros((2, 8000), np.float32)),
                                 ("tone", np.sin(np.arange(16000.0)).reshape(2, 8000).astype(np.float32))], 8000)
    assert [str(w.message) for w in caught] == []


def test_the_onnx_export_logs_nothing_about_torchvision_and_warns_nothing(tmp_path, caplog):
    torch.manual_seed(0)
    model = VocNet(filters=4, skip_filters=4, layers=2, layers_per_stack=2)
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        export_onnx_graph(model, tmp_path / "m.onnx", 300)
    assert "torchvision" not in caplog.text
    assert [str(w.message) for w in caught if issubclass(w.category, FutureWarning)] == []
    assert (tmp_path / "m.onnx").stat().st_size > 0
    assert logging.getLogger("torch.onnx._internal.exporter._registration").level != logging.ERROR  # restored
