"""Scoring from the probabilities of five rating levels (Q-Align style): the next-token
probabilities of the level words after "The quality of the image is", a score only local models
can give."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

LEVELS: tuple[str, ...] = ("excellent", "good", "fair", "poor", "bad")


LEVEL_WEIGHTS: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25, 0.0)


LEVEL_PREFIX = "The quality of the image is"


class LevelTokenError(ValueError):
    """A tokenizer whose level words cannot be told apart by their first token."""


def level_token_ids(
    tokenizer: Any, prefix: str = LEVEL_PREFIX, words: Sequence[str] = LEVELS
) -> tuple[int, ...]:
    """The first token of each level word as the tokenizer encodes it right after ``prefix``.

    Encoding in context rather than the bare word matters: SentencePiece tokenizers encode a
    lone " good" as a space token followed by "good", which would make every level look alike.
    """
    base = tokenizer.encode(prefix, add_special_tokens=False)
    ids: list[int] = []
    for word in words:
        full = tokenizer.encode(f"{prefix} {word}", add_special_tokens=False)
        if len(full) <= len(base) or full[: len(base)] != base:
            raise LevelTokenError(
                f"the tokenizer merges {word!r} into the end of {prefix!r}, so no next token names it"
            )
        ids.append(int(full[len(base)]))
    for i, token in enumerate(ids):
        if token in ids[:i]:
            other = words[ids.index(token)]
            raise LevelTokenError(
                f"level words {other!r} and {words[i]!r} share their first token "
                f"{tokenizer.convert_ids_to_tokens(token)!r} (id {token}); their probabilities "
                f"cannot be told apart, so this model cannot be scored from logits"
            )
    return tuple(ids)


def score_from_levels(probs: Sequence[float]) -> float:
    """Q-Align's score: 100 × Σ p_i w_i with weights 1, .75, .5, .25, 0 for excellent … bad."""
    if len(probs) != len(LEVEL_WEIGHTS):
        raise ValueError(f"need {len(LEVEL_WEIGHTS)} level probabilities (excellent … bad), got {len(probs)}")
    return 100.0 * math.fsum(p * w for p, w in zip(probs, LEVEL_WEIGHTS, strict=True))
