"""The response cache: answers filed under the identity of the model that gave them, in SQLite.

An answer is reused only for the identity that gave it (the spec's fingerprint plus what the
server says of itself, :class:`~iqa_eval.models.base.ModelIdentity`): a model replaced behind
the same name is asked again, its predecessor's answers stay on disk for export and replay.
Only successful answers to deterministic queries are stored, so an outage or a rate limit can
never be replayed as if the model had said it. WAL mode lets pytest-xdist workers read while one
of them writes; answers are committed by a writer thread within milliseconds of their arrival,
many in one transaction (:class:`~iqa_eval.sqlite.GroupCommit`), so a killed run resumes where
it stopped.

A ``levels`` answer keeps its option probabilities beside its text (JSON in ``probabilities``,
null for text answers); a cache from before that column gets it added, empty.

Caches written before identities were recorded keep their answers in ``answers_unidentified``:
nothing says which model gave them, so they are never replayed; ``iqa-eval cache clear`` drops
them.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iqa_eval.models.base import ModelIdentity
from iqa_eval.models.replay import ReplayError
from iqa_eval.sqlite import GroupCommit, open_database
from iqa_eval.types import Answer, Usage

ANSWERS = """
CREATE TABLE IF NOT EXISTS answers (
    identity TEXT NOT NULL,
    key TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    latency_s REAL NOT NULL,
    cost_usd REAL NOT NULL,
    created REAL NOT NULL,
    probabilities TEXT,
    PRIMARY KEY (identity, key)
) WITHOUT ROWID
"""
IDENTITIES = """
CREATE TABLE IF NOT EXISTS identities (
    identity TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    served TEXT NOT NULL,
    first_seen REAL NOT NULL
) WITHOUT ROWID
"""
UNIDENTIFIED = "answers_unidentified"

_CHUNK = 500  # stays under SQLite's limit on bound parameters


@dataclass(frozen=True)
class HeldIdentity:
    """One identity the cache holds answers of, for ``iqa-eval cache stats`` and change notices."""

    key: str
    fingerprint: str
    served: dict[str, str]
    answers: int
    first_seen: float

    def describe(self) -> str:
        served = ", ".join(f"{k}={v}" for k, v in sorted(self.served.items()))
        return f"{self.fingerprint} ({served})" if served else self.fingerprint


class ResponseCache:
    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / "responses.sqlite3"
        self._lock = threading.Lock()
        self._db = open_database(self.path, IDENTITIES)
        self._migrate()
        self._writes = GroupCommit(
            self._db,
            self._lock,
            "INSERT OR IGNORE INTO answers (identity, key, text, prompt_tokens, completion_tokens, "
            "latency_s, cost_usd, created, probabilities) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )

    def _migrate(self) -> None:
        """Set aside a cache of the schema without identities, once, whichever process gets there
        first (the others wait on the write lock and find the work done)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(answers)")}
            if columns and "identity" not in columns:
                self._db.execute(f"DROP TABLE IF EXISTS {UNIDENTIFIED}")
                self._db.execute(f"ALTER TABLE answers RENAME TO {UNIDENTIFIED}")
            self._db.execute(ANSWERS)
            if "probabilities" not in {row[1] for row in self._db.execute("PRAGMA table_info(answers)")}:
                self._db.execute("ALTER TABLE answers ADD COLUMN probabilities TEXT")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def remember(self, identity: ModelIdentity) -> None:
        """Record what an identity key stands for (the first time it is seen)."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO identities VALUES (?, ?, ?, ?)",
                (identity.key, identity.fingerprint, json.dumps(dict(identity.served)), time.time()),
            )

    def _rows_for_keys(
        self, sql: str, before: Sequence[object], keys: Sequence[str], after: str = ""
    ) -> list[Any]:
        """Rows of ``sql ... key IN (...) after`` over ``keys`` in chunks SQLite accepts."""
        rows: list[Any] = []
        self.flush()
        with self._lock:
            for start in range(0, len(keys), _CHUNK):
                chunk = list(keys[start : start + _CHUNK])
                marks = ",".join("?" * len(chunk))
                rows += self._db.execute(f"{sql} IN ({marks}) {after}", [*before, *chunk]).fetchall()
        return rows

    def get_many(self, identity: str, keys: Sequence[str]) -> dict[str, Answer]:
        rows = self._rows_for_keys(
            "SELECT key, text, prompt_tokens, completion_tokens, latency_s, cost_usd, probabilities "
            "FROM answers WHERE identity = ? AND key",
            [identity],
            keys,
        )
        return {
            key: Answer(
                text,
                usage=Usage(pt, ct),
                latency_s=latency,
                cached=True,
                cost_usd=cost,
                probabilities=_probabilities(probs),
            )
            for key, text, pt, ct, latency, cost, probs in rows
        }

    def superseded(self, identity: ModelIdentity, keys: Sequence[str]) -> list[HeldIdentity]:
        """Other identities of the same fingerprint that answered some of ``keys``: the model
        changed behind its name since they were cached. Newest first."""
        counts: dict[str, int] = {}
        rows = self._rows_for_keys(
            "SELECT a.identity, COUNT(*) FROM answers a JOIN identities i ON a.identity = i.identity "
            "WHERE i.fingerprint = ? AND a.identity != ? AND a.key",
            [identity.fingerprint, identity.key],
            keys,
            "GROUP BY a.identity",
        )
        for key, n in rows:
            counts[key] = counts.get(key, 0) + int(n)
        held = [h for h in self.identities() if h.key in counts]
        return [
            HeldIdentity(h.key, h.fingerprint, h.served, counts[h.key], h.first_seen)
            for h in sorted(held, key=lambda h: -h.first_seen)
        ]

    def put(self, identity: str, key: str, answer: Answer) -> None:
        """File an answer; it is committed by the writer thread, with any others put meanwhile."""
        if not answer.ok or answer.text is None:
            raise ValueError("only successful answers may be cached")
        self._writes.put(
            (
                identity,
                key,
                answer.text,
                answer.usage.prompt_tokens,
                answer.usage.completion_tokens,
                answer.latency_s,
                answer.cost_usd,
                time.time(),
                None if answer.probabilities is None else json.dumps(answer.probabilities),
            )
        )

    def flush(self) -> None:
        """Return once every answer put so far is on disk (for this process's reads and others')."""
        self._writes.flush()

    def identities(self) -> list[HeldIdentity]:
        """Every identity the cache holds answers of, oldest first."""
        self.flush()
        with self._lock:
            rows = self._db.execute(
                "SELECT i.identity, i.fingerprint, i.served, i.first_seen, COUNT(a.key) FROM identities i "
                "LEFT JOIN answers a ON a.identity = i.identity GROUP BY i.identity ORDER BY i.first_seen"
            ).fetchall()
        return [
            HeldIdentity(key, fp, json.loads(served), int(n), first) for key, fp, served, first, n in rows
        ]

    def entries(
        self, identity: str | None = None
    ) -> list[tuple[str, str, str, tuple[tuple[str, float], ...] | None]]:
        """(identity, key, text, probabilities) rows, for export to a replay file."""
        self.flush()
        columns = "SELECT identity, key, text, probabilities FROM answers"
        with self._lock:
            if identity is None:
                rows = list(self._db.execute(f"{columns} ORDER BY identity, key"))
            else:
                rows = list(self._db.execute(f"{columns} WHERE identity = ? ORDER BY key", (identity,)))
        return [(who, key, text, _probabilities(probs)) for who, key, text, probs in rows]

    def count(self) -> int:
        self.flush()
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def unidentified(self) -> int:
        """Answers of a cache from before identities were recorded: kept, never replayed."""
        with self._lock:
            exists = self._db.execute(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?", (UNIDENTIFIED,)
            ).fetchone()[0]
            if not exists:
                return 0
            return int(self._db.execute(f"SELECT COUNT(*) FROM {UNIDENTIFIED}").fetchone()[0])

    def integrity_ok(self) -> bool:
        self.flush()
        with self._lock:
            return bool(self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    def clear(self) -> int:
        self.flush()
        with self._lock:
            removed = int(self._db.execute("DELETE FROM answers").rowcount)
            self._db.execute("DELETE FROM identities")
        unidentified = self.unidentified()
        with self._lock:
            self._db.execute(f"DROP TABLE IF EXISTS {UNIDENTIFIED}")
        return removed + unidentified

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._db.close()


def _probabilities(stored: str | None) -> tuple[tuple[str, float], ...] | None:
    if stored is None:
        return None
    return tuple((str(word), float(p)) for word, p in json.loads(stored))


def export_replay(cache: ResponseCache, path: str | Path, model: str | None = None) -> int:
    """Write the cache's answers (of one identity, or all) as a replay file; returns the count.

    The file is written next to its destination and renamed into place, so a reader never sees
    half of it.
    """
    path = Path(path)
    rows = cache.entries(model)
    if not rows:
        which = f" of {model!r}" if model else ""
        raise ReplayError(f"{cache.path}: the cache holds no answers{which} to export")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for identity, key, text, probabilities in rows:
                row: dict[str, object] = {"model": identity, "key": key, "text": text}
                if probabilities is not None:
                    row["probabilities"] = [list(pair) for pair in probabilities]
                handle.write(json.dumps(row) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(rows)
