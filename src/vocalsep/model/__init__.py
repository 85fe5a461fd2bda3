"""Models (nn.Modules only) and self-describing checkpoints."""

from vocalsep.model.families import MODELS, BandSplitVocNet, HybridVocNet, VocNet
from vocalsep.model.checkpoint import (build_model, load_checkpoint, load_model, model_from_state, model_kwargs,
                                       save_checkpoint)

__all__ = ["MODELS", "BandSplitVocNet", "HybridVocNet", "VocNet", "build_model", "load_checkpoint", "load_model",
           "model_from_state", "model_kwargs", "save_checkpoint"]
