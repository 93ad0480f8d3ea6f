"""``replay:<file>``: answers recorded by an earlier run, served again without the model.

A replay file is JSON Lines, one ``{"model": <identity>, "key": <query key>, "text": ...}`` per
answer, as :func:`iqa_eval.execution.cache.export_replay` writes it from a response cache; the
identity is the key the cache filed the answer under (the model's fingerprint, refined by what its
server said of itself). A ``levels`` answer also carries ``"probabilities": [[word, p], ...]``,
which is what it said, so a model recorded with them replays its ``levels`` cells too.
Replaying lets anyone re-derive a run's numbers (new metrics, new gates, a fixed parser) without
the model, its key or its cost. A query the file does not hold is a ``not_recorded`` failure, never a guess.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from iqa_eval.models.base import Capabilities, ModelClient
from iqa_eval.types import Answer, Query

FIELDS = ("model", "key", "text")


class ReplayError(ValueError):
    """A replay file or spec that cannot be used; the message names the file (and line)."""


def parse_spec(spec: str) -> tuple[Path, str | None]:
    """``replay:<file>`` or ``replay:<file>#<fingerprint>`` to (file, fingerprint or None).

    A path that exists as given wins over splitting at ``#``, so a file name holding ``#``
    still works.
    """
    kind, _, rest = spec.partition(":")
    if kind != "replay" or not rest:
        raise ReplayError("use replay:<file> or replay:<file>#<fingerprint>")
    if Path(rest).is_file() or "#" not in rest:
        return Path(rest), None
    path, _, fingerprint = rest.rpartition("#")
    return Path(path), fingerprint or None


Probabilities = tuple[tuple[str, float], ...]
Recorded = tuple[str, Probabilities | None]


def load_replay(path: Path) -> dict[str, dict[str, Recorded]]:
    """Recorded answers (text, probabilities or None) by fingerprint, then by query key."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ReplayError(f"{path}: replay file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ReplayError(f"{path}: cannot read the replay file: {err}") from None
    recorded: dict[str, dict[str, Recorded]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ReplayError(f"{path}:{number}: not JSON: {err.msg}") from None
        if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in FIELDS):
            raise ReplayError(f'{path}:{number}: expected {{"model": str, "key": str, "text": str}}')
        try:
            answer = (row["text"], _probabilities(row.get("probabilities")))
        except ValueError:
            raise ReplayError(
                f'{path}:{number}: "probabilities" must be [[word, probability], ...] with each '
                "probability a number from 0 to 1"
            ) from None
        answers = recorded.setdefault(row["model"], {})
        if answers.get(row["key"], answer) != answer:
            raise ReplayError(f"{path}:{number}: a second, different answer of {row['model']} to one query")
        answers[row["key"]] = answer
    if not recorded:
        raise ReplayError(f"{path}: the replay file holds no answers")
    return recorded


def _probabilities(value: Any) -> Probabilities | None:
    """The recorded probabilities, None when the row has none; ValueError when malformed."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError(value)
    pairs = []
    for pair in value:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
            raise ValueError(pair)
        p = pair[1]
        if isinstance(p, bool) or not isinstance(p, int | float) or not (math.isfinite(p) and 0 <= p <= 1):
            raise ValueError(pair)
        pairs.append((pair[0], float(p)))
    return tuple(pairs)


class ReplayModel(ModelClient):
    """Serves one fingerprint's recorded answers.

    Not cacheable: the file is already a cache, and copying it into the response cache would
    only let a stale copy outlive an edited file. The fingerprint names the recorded model and
    the file's content hash, so reports show both where the answers came from and which version
    of the file was replayed.
    """

    def __init__(self, spec: str) -> None:
        path, wanted = parse_spec(spec)
        recorded = load_replay(path)
        if wanted is None:
            if len(recorded) > 1:
                raise ReplayError(
                    f"{path} holds answers of several models; pick one with replay:{path}#<fingerprint>, "
                    f"one of: {', '.join(sorted(recorded))}"
                )
            (wanted,) = recorded
        elif wanted not in recorded:
            raise ReplayError(f"{path} holds no answers of {wanted!r}; it has: {', '.join(sorted(recorded))}")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        self.spec = spec
        self.path = path
        self.recorded_fingerprint = wanted
        self.fingerprint = f"replay:{wanted}@{digest}"
        self._answers = recorded[wanted]
        # levels cells for a model recorded answering them, as it had them.
        with_probabilities = any(probs is not None for _, probs in self._answers.values())
        self.capabilities = Capabilities(max_images=None, probabilities=with_probabilities)
        self.cacheable = False

    async def answer(self, query: Query) -> Answer:
        recorded = self._answers.get(query.key)
        if recorded is None:
            return Answer(
                None,
                error="not_recorded",
                detail=f"{self.path} has no answer of {self.recorded_fingerprint} to query {query.key[:16]}",
            )
        text, probabilities = recorded
        return Answer(text, probabilities=probabilities)
