"""The response cache: answers keyed by model fingerprint and query key, in SQLite (WAL).

Only successful answers to deterministic queries are stored, so an outage or a rate limit can
never be replayed as if the model had said it. WAL mode lets pytest-xdist workers read while one
of them writes; each answer is committed as it arrives, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from iqa_eval.types import Answer, Usage

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    model TEXT NOT NULL,
    key TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    latency_s REAL NOT NULL,
    cost_usd REAL NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (model, key)
) WITHOUT ROWID
"""

_CHUNK = 500  # stays under SQLite's limit on bound parameters


def open_database(path: Path, schema: str) -> sqlite3.Connection:
    """A connection shared by a process's threads (callers hold their own lock), in WAL mode so
    that several processes can read while one writes, each statement committed at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=60, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=60000")
    db.execute(schema)
    return db


class ResponseCache:
    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / "responses.sqlite3"
        self._lock = threading.Lock()
        self._db = open_database(self.path, SCHEMA)

    def get_many(self, model: str, keys: Sequence[str]) -> dict[str, Answer]:
        found: dict[str, Answer] = {}
        with self._lock:
            for start in range(0, len(keys), _CHUNK):
                chunk = list(keys[start : start + _CHUNK])
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    "SELECT key, text, prompt_tokens, completion_tokens, latency_s, cost_usd FROM answers "
                    f"WHERE model = ? AND key IN ({marks})",
                    [model, *chunk],
                ).fetchall()
                for key, text, pt, ct, latency, cost in rows:
                    found[key] = Answer(
                        text, usage=Usage(pt, ct), latency_s=latency, cached=True, cost_usd=cost
                    )
        return found

    def put(self, model: str, key: str, answer: Answer) -> None:
        if not answer.ok or answer.text is None:
            raise ValueError("only successful answers may be cached")
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    model,
                    key,
                    answer.text,
                    answer.usage.prompt_tokens,
                    answer.usage.completion_tokens,
                    answer.latency_s,
                    answer.cost_usd,
                    time.time(),
                ),
            )

    def entries(self, model: str | None = None) -> Iterable[tuple[str, str, str]]:
        """(model, key, text) rows, for export to a replay file."""
        with self._lock:
            if model is None:
                return list(self._db.execute("SELECT model, key, text FROM answers ORDER BY model, key"))
            return list(
                self._db.execute(
                    "SELECT model, key, text FROM answers WHERE model = ? ORDER BY key", (model,)
                )
            )

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def integrity_ok(self) -> bool:
        with self._lock:
            return bool(self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    def clear(self) -> int:
        with self._lock:
            removed = self._db.execute("DELETE FROM answers").rowcount
            return int(removed)

    def close(self) -> None:
        with self._lock:
            self._db.close()
