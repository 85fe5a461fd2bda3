"""Models (nn.Modules only) and self-describing checkpoints."""

from vocalsep.model.vocnet import VocNet
from vocalsep.model.hybrid import HybridVocNet
from vocalsep.model.checkpoint import (build_model, load_checkpoint, load_model, model_from_state, model_kwargs,
                                       save_checkpoint)

MODELS = {"VocNet": VocNet, "HybridVocNet": HybridVocNet}

__all__ = ["MODELS", "HybridVocNet", "VocNet", "build_model", "load_checkpoint", "load_model", "model_from_state",
           "model_kwargs", "save_checkpoint"]
