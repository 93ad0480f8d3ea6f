"""Which tokens of a local model's vocabulary spell each answer word, so that the probability of
the word can be read from the logits at the answer position.

A tokenizer spells one word in several ways (" good", "good", "Good", "GOOD", and after a line
break or a role marker yet another), and the model's belief in the word is spread over all of
them: every spelling's first token counts for the word, by the same rule that merges an API's
``top_logprobs`` (:func:`iqa_eval.protocols.levels.option_of`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from iqa_eval.protocols.levels import LEVEL_WEIGHTS, LEVELS, option_of, score_from_levels

LEVEL_PREFIX = "The quality of the image is"
"""Q-Align's answer start, for reading the levels after a query of any strategy
(``HFModel.level_probabilities``)."""

LEADS = ("", " ", "\n")
"""What may come between the end of the prompt and the word (chat templates end in a space, a
line break or neither)."""

__all__ = [
    "LEVELS",
    "LEVEL_PREFIX",
    "LEVEL_WEIGHTS",
    "LevelTokenError",
    "option_token_ids",
    "score_from_levels",
]


class LevelTokenError(ValueError):
    """A tokenizer with no token that spells the start of an answer word."""


def option_token_ids(tokenizer: Any, words: Sequence[str] = LEVELS) -> tuple[tuple[int, ...], ...]:
    """For each word, the first tokens of its spellings: lower, capitalised and upper case,
    after nothing, a space or a line break.

    Leading tokens that are only whitespace are passed over (SentencePiece may spell " good" as
    a space, then "good"); a first token that spells too little of the word ("g") gives no
    variant, since it starts too many other answers.
    """
    groups: list[tuple[int, ...]] = []
    for word in words:
        found: set[int] = set()
        for lead in LEADS:
            for form in dict.fromkeys((word, word.capitalize(), word.upper())):
                ids = tokenizer.encode(lead + form, add_special_tokens=False)
                token = next((int(t) for t in ids if tokenizer.decode([t]).strip()), None)
                if token is not None and option_of(tokenizer.decode([token]), words) == word:
                    found.add(token)
        if not found:
            raise LevelTokenError(
                f"no token of this tokenizer spells the start of {word!r}, so its probability "
                "cannot be read from the logits"
            )
        groups.append(tuple(sorted(found)))
    # No token is counted twice: one text spells at most one word (``option_of``).
    return tuple(groups)
