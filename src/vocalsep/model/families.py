"""The model families `model.name` chooses from: one file per family in this folder, one entry here."""

from vocalsep.model.bandsplit import BandSplitVocNet
from vocalsep.model.hybrid import HybridVocNet
from vocalsep.model.vocnet import VocNet

MODELS = {"VocNet": VocNet, "HybridVocNet": HybridVocNet, "BandSplitVocNet": BandSplitVocNet}
