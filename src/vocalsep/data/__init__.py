"""Training data: mixtures made on the fly from the snippet index."""

from vocalsep.data.mixtures import MixtureDataset, SnippetPool, read_index, validation_set

__all__ = ["MixtureDataset", "SnippetPool", "read_index", "validation_set"]
