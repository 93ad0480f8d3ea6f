"""SQLite files shared by a run's processes: the response cache and the experts' measurements.

Both are written by several pytest-xdist workers at once and read while written, and both must
survive a killed run intact.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

LINGER_S = 0.25
"""How long a writer thread waits for more rows before it ends; a run that stops writing for
longer pays one thread start when it writes again."""
GATHER_S = 0.02
"""How long the writer lets rows gather once the first arrives: a commit per 20 ms at most,
instead of a wake-up and a commit for every row."""


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


class GroupCommit:
    """Rows written by a thread of their own, each batch in one transaction (a group commit).

    A commit per row cost the event loop about 1 ms an answer: a sixth of a run's time against a
    model answering 320 queries a second. Here :meth:`put` only queues the row; the writer
    commits everything queued within ``GATHER_S`` of the first at once, so a row is on disk some
    tens of milliseconds after it was put. A Ctrl-C or an exception leaves the writer to finish
    (the interpreter waits for it before it exits); only a kill within those milliseconds loses
    rows, which a next run then asks again.

    The connection is shared with the owner's readers under ``lock``; readers call
    :meth:`flush` first to see every row put before. A failed write (a full disk) is raised by
    the next :meth:`put` or :meth:`flush`.
    """

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock, sql: str) -> None:
        self._db = db
        self._lock = lock
        self._sql = sql
        self._rows: list[Sequence[object]] = []
        self._writing = False
        self._idle = False
        self._flushing = 0
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def put(self, row: Sequence[object]) -> None:
        with self._changed:
            self._raise()
            self._rows.append(row)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="iqa-eval-sqlite-writer")
                self._thread.start()
            elif self._idle:
                self._changed.notify_all()

    def flush(self) -> None:
        """Return once every row put so far is committed (the writer stops gathering for it)."""
        with self._changed:
            self._flushing += 1
            self._changed.notify_all()
            try:
                while self._rows or self._writing:
                    self._changed.wait()
            finally:
                self._flushing -= 1
            self._raise()

    def _raise(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self) -> None:
        with self._changed:
            while True:
                if not self._rows:
                    self._idle = True
                    self._changed.wait(LINGER_S)
                    self._idle = False
                if not self._rows:
                    self._thread = None
                    self._changed.notify_all()
                    return
                gathered = time.monotonic() + GATHER_S
                while not self._flushing and (left := gathered - time.monotonic()) > 0:
                    self._changed.wait(left)
                rows, self._rows = self._rows, []
                self._writing = True
                self._changed.release()
                error = None
                try:
                    self._write(rows)
                except BaseException as err:  # handed to the caller's thread, which can report it
                    error = err
                finally:
                    self._changed.acquire()
                self._error = self._error or error
                self._writing = False
                self._changed.notify_all()

    def _write(self, rows: list[Sequence[object]]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(self._sql, rows)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
