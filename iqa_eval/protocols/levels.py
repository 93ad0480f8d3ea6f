"""The ``levels`` strategy: judgements from the probabilities a model gives its answer words.

A model asked for "Score: 72" samples one number from a distribution it holds; Q-Align (Wu et
al., ICML 2024) showed that the expectation over the probabilities of five rating levels follows
human opinion better and more smoothly. Single stimulus asks for one level word and scores the
expectation, 100 × Σ p_i w_i; double stimulus asks for one digit and reads P("1") against P("0")
as a soft preference. Multiple stimulus has no one-token answer, so it has no ``levels`` system.

Whoever supplies the probabilities (local logits, API logprobs) reports each option's
probability out of the model's whole distribution at the answer position. What falls on no
option is the model answering something else: past ``MIN_OPTION_MASS`` the answer is a failure
with that reason, never a score renormalised from scraps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from iqa_eval.types import Judgement, Protocol

LEVELS: tuple[str, ...] = ("excellent", "good", "fair", "poor", "bad")
LEVEL_WEIGHTS: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25, 0.0)
PREFERENCE: tuple[str, ...] = ("1", "0")
"""DS answer digits: 1 = the first (FR: the second) image is better, 0 = the other one."""

MIN_OPTION_MASS = 0.5
"""The least share of probability the options must hold together for an answer to count: below
it the model mostly meant to say something else (a preamble, "Score", a refusal), and what is
left on the options says little about its judgement."""

MIN_PREFIX_CHARS = 3
"""A token that is only the start of a word ("Exc" of "Excellent") counts for the word when it
is at least this long and starts no other option: shorter ones ("g", "p") are too often the
start of something else."""

ANSWER_TOKENS = 4
"""The answer length a ``levels`` query asks for: the word is the first token, but a server may
start with a space or a role marker, and the logprobs of a few tokens cost next to nothing."""

PROTOCOL_OPTIONS: dict[Protocol, tuple[str, ...]] = {"ss": LEVELS, "ds": PREFERENCE}


def options_for(protocol: Protocol) -> tuple[str, ...]:
    """The answer words of a protocol's ``levels`` system."""
    found = PROTOCOL_OPTIONS.get(protocol)
    if found is None:
        raise ValueError(f"protocol {protocol!r} has no one-token answer, so no levels system")
    return found


def score_from_levels(probs: Sequence[float]) -> float:
    """Q-Align's score: 100 × Σ p_i w_i with weights 1, .75, .5, .25, 0 for excellent … bad."""
    if len(probs) != len(LEVEL_WEIGHTS):
        raise ValueError(f"need {len(LEVEL_WEIGHTS)} level probabilities (excellent … bad), got {len(probs)}")
    return 100.0 * math.fsum(p * w for p, w in zip(probs, LEVEL_WEIGHTS, strict=True))


def option_of(token: str, options: Sequence[str]) -> str | None:
    """The option a token spells (any case, any surrounding space), or None.

    Tokenizers spell one word in several ways (" good", "good", "Good", "GOOD"), and a model's
    probability for the word is spread over all of them.
    """
    word = token.strip().lower()
    if not word:
        return None
    if word in options:
        return word
    if len(word) >= MIN_PREFIX_CHARS:
        starts = [o for o in options if o.startswith(word)]
        if len(starts) == 1:
            return starts[0]
    return None


def merge(alternatives: Iterable[tuple[str, float]], options: Sequence[str]) -> tuple[tuple[str, float], ...]:
    """Each option with the summed probability of every token that spells it."""
    mass = dict.fromkeys(options, 0.0)
    for token, probability in alternatives:
        option = option_of(token, options)
        if option is not None:
            mass[option] += probability
    return tuple((o, mass[o]) for o in options)


def judge_probabilities(protocol: Protocol, probabilities: Sequence[tuple[str, float]]) -> Judgement:
    """SS: the expected level as a 0–100 score. DS: P(first better) among the two digits."""
    options = options_for(protocol)
    if tuple(name for name, _ in probabilities) != options:
        return Judgement(
            None,
            "unreadable_probabilities",
            f"probabilities for {[n for n, _ in probabilities]}, expected {list(options)}",
        )
    values = [p for _, p in probabilities]
    if not all(math.isfinite(p) and 0.0 <= p <= 1.0 + 1e-9 for p in values):
        return Judgement(None, "unreadable_probabilities", f"not probabilities: {values}")
    mass = math.fsum(values)
    if mass < MIN_OPTION_MASS:
        return Judgement(
            None,
            "low_level_mass",
            f"only {mass:.3f} of the probability falls on {', '.join(options)}; "
            f"at least {MIN_OPTION_MASS:g} is needed",
        )
    shares = [p / mass for p in values]
    if protocol == "ss":
        return Judgement((score_from_levels(shares),))
    return Judgement((shares[0],))


def no_option_mass(probabilities: Sequence[tuple[str, float]]) -> float:
    """The share of the model's probability that fell on no option."""
    return max(0.0, 1.0 - math.fsum(p for _, p in probabilities))
