"""Models (nn.Modules only) and self-describing checkpoints."""

from vocalsep.model.vocnet import VocNet
from vocalsep.model.checkpoint import build_model, load_checkpoint, load_model, model_from_state, save_checkpoint

MODELS = {"VocNet": VocNet}

__all__ = ["MODELS", "VocNet", "build_model", "load_checkpoint", "load_model", "model_from_state", "save_checkpoint"]
