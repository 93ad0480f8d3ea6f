"""SQLite files shared by a run's processes: the response cache and the experts' measurements.

Both are written by several pytest-xdist workers at once and read while written, and both must
survive a killed run intact.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


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
