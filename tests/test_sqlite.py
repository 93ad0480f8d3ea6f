"""The group commit under the caches: rows committed in batches by a thread, never lost, and a
failed write reported to the thread that wrote."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iqa_eval.sqlite import GroupCommit, open_database

SCHEMA = "CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v INTEGER NOT NULL CHECK (v >= 0))"


def rows(db: sqlite3.Connection) -> list[tuple[int, int]]:
    return list(db.execute("SELECT k, v FROM t ORDER BY k"))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.integers(0, 10**6), max_size=40), max_size=8))
def test_every_row_put_from_any_thread_is_committed_by_flush(tmp_path_factory, batches):
    db = open_database(tmp_path_factory.mktemp("db") / "t.sqlite3", SCHEMA)
    writes = GroupCommit(db, threading.Lock(), "INSERT OR IGNORE INTO t VALUES (?, ?)")
    threads = [
        threading.Thread(target=lambda b=b, n=n: [writes.put((n * 100 + i, v)) for i, v in enumerate(b)])
        for n, b in enumerate(batches)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writes.flush()
    expected = sorted((n * 100 + i, v) for n, b in enumerate(batches) for i, v in enumerate(b))
    assert rows(db) == expected
    assert not db.in_transaction


def test_a_failed_write_is_raised_to_the_writer_once_and_the_next_rows_still_land(tmp_path):
    db = open_database(tmp_path / "t.sqlite3", SCHEMA)
    writes = GroupCommit(db, threading.Lock(), "INSERT INTO t VALUES (?, ?)")
    writes.put((1, -5))  # breaks the CHECK: its whole batch is rolled back
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        writes.flush()
    writes.put((2, 7))
    writes.flush()
    assert rows(db) == [(2, 7)]
