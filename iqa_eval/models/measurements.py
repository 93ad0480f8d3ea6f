"""Expert measurements kept across runs and processes, in SQLite next to the response cache.

The response cache holds answers per query, but an expert's cost is per stimulus: every
prompting system, relation and stage-2 subset asks about the same images in new queries. Kept
here, a measurement is made once per cache directory rather than once per process, so pytest-xdist
workers share what each measured, and a run after a prompt change (new queries, same images)
measures nothing again. Keyed by the expert's versioned name and the stimuli's pixel hashes:
a change to a measure must bump the panel's ``VERSION``, as it must for the response cache.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path

from iqa_eval.sqlite import open_database

SCHEMA = """
CREATE TABLE IF NOT EXISTS measurements (
    expert TEXT NOT NULL,
    reference TEXT NOT NULL,
    image TEXT NOT NULL,
    raw_values TEXT NOT NULL,
    PRIMARY KEY (expert, reference, image)
) WITHOUT ROWID
"""


class MeasurementCache:
    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / "measurements.sqlite3"
        self._lock = threading.Lock()
        self._db = open_database(self.path, SCHEMA)

    def get(self, expert: str, reference: str, image: str) -> dict[str, float] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT raw_values FROM measurements WHERE expert = ? AND reference = ? AND image = ?",
                (expert, reference, image),
            ).fetchone()
        return None if row is None else {str(k): float(v) for k, v in json.loads(row[0]).items()}

    def put(self, expert: str, reference: str, image: str, values: Mapping[str, float]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO measurements VALUES (?, ?, ?, ?)",
                (expert, reference, image, json.dumps(dict(values))),
            )

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM measurements").fetchone()[0])

    def clear(self) -> int:
        with self._lock:
            return int(self._db.execute("DELETE FROM measurements").rowcount)

    def close(self) -> None:
        with self._lock:
            self._db.close()
