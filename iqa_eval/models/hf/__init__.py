"""Local vision-language models from Hugging Face checkpoints (spec ``hf:<directory or hub id>``).

``client`` answers queries through ``generate`` (and level probabilities), ``levels`` turns the
probabilities of five rating levels into a score, ``identity`` fingerprints a checkpoint, and
``batching`` lets queries that arrive together share one forward pass. torch and transformers are
imported when a client is built, not when this package is imported: the rest of the suite runs
without the ``hf`` extra.
"""

from iqa_eval.models.hf.client import FAMILY_MAX_IMAGES, HFModel
from iqa_eval.models.hf.identity import directory_identity
from iqa_eval.models.hf.levels import (
    LEVEL_PREFIX,
    LEVEL_WEIGHTS,
    LEVELS,
    LevelTokenError,
    level_token_ids,
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
    "level_token_ids",
    "score_from_levels",
]
