"""Local vision-language models from Hugging Face checkpoints (spec ``hf:<directory or hub id>``).

``client`` answers queries through ``generate``, or with the probabilities of answer words
read from the logits (the ``levels`` strategy); ``levels`` finds the tokens that spell those
words, ``identity`` fingerprints a checkpoint, and ``batching`` lets queries that arrive
together share one forward pass. torch and transformers are imported when a client is built,
not when this package is imported: the rest of the suite runs without the ``hf`` extra.
"""

from iqa_eval.models.hf.client import FAMILY_MAX_IMAGES, HFModel
from iqa_eval.models.hf.identity import directory_identity
from iqa_eval.models.hf.levels import (
    LEVEL_PREFIX,
    LEVEL_WEIGHTS,
    LEVELS,
    LevelTokenError,
    option_token_ids,
    score_from_levels,
)

__all__ = [
    "FAMILY_MAX_IMAGES",
    "LEVELS",
    "LEVEL_PREFIX",
    "LEVEL_WEIGHTS",
    "HFModel",
    "LevelTokenError",
    "directory_identity",
    "option_token_ids",
    "score_from_levels",
]
