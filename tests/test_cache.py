"""The response cache: only successful answers, keyed by model fingerprint, shared across processes."""

import multiprocessing

import pytest

from iqa_eval.execution.cache import ResponseCache
from iqa_eval.types import Answer, Usage


def test_round_trip_and_model_isolation(tmp_path):
    cache = ResponseCache(tmp_path)
    cache.put("m1", "k1", Answer("Score: 5", usage=Usage(10, 2), latency_s=0.5, cost_usd=0.01))
    got = cache.get_many("m1", ["k1", "k2"])
    assert list(got) == ["k1"]
    assert got["k1"].text == "Score: 5" and got["k1"].cached and got["k1"].usage == Usage(10, 2)
    assert cache.get_many("m2", ["k1"]) == {}


def test_errors_are_never_cached(tmp_path):
    cache = ResponseCache(tmp_path)
    with pytest.raises(ValueError, match="only successful"):
        cache.put("m", "k", Answer(None, error="rate_limited"))
    assert cache.count() == 0


def test_many_keys_beyond_sqlite_parameter_limit(tmp_path):
    cache = ResponseCache(tmp_path)
    for i in range(1200):
        cache.put("m", f"k{i}", Answer(f"Score: {i % 100}"))
    assert len(cache.get_many("m", [f"k{i}" for i in range(1500)])) == 1200


def _writer(directory, worker, n):
    cache = ResponseCache(directory)
    for i in range(n):
        cache.put("m", f"{worker}-{i}", Answer("Score: 1"))
        cache.put("m", f"shared-{i}", Answer("Score: 2"))
    cache.close()


def test_concurrent_processes_lose_nothing(tmp_path):
    procs = [
        multiprocessing.get_context("spawn").Process(target=_writer, args=(tmp_path, w, 300))
        for w in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cache = ResponseCache(tmp_path)
    assert cache.count() == 3 * 300 + 300
    assert cache.integrity_ok()


def _put_then_end(directory, n, ending):
    cache = ResponseCache(directory)
    for i in range(n):
        cache.put("m", f"k{i}", Answer(f"Score: {i % 100}"))
    raise ending  # no flush, no close: the writer thread finishes before the interpreter exits


@pytest.mark.parametrize("ending", [KeyboardInterrupt(), RuntimeError("crash")], ids=["ctrl-c", "crash"])
def test_answers_put_before_a_ctrl_c_or_a_crash_are_on_disk_for_the_next_run(tmp_path, ending):
    proc = multiprocessing.get_context("spawn").Process(target=_put_then_end, args=(tmp_path, 2000, ending))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 1
    cache = ResponseCache(tmp_path)
    assert cache.integrity_ok() and cache.count() == 2000
    assert cache.get_many("m", ["k1999"])["k1999"].text == "Score: 99"


def test_an_answer_is_read_back_at_once_after_a_put(tmp_path):
    cache = ResponseCache(tmp_path)
    for i in range(300):
        cache.put("m", f"k{i}", Answer(f"Score: {i}"))
        assert cache.get_many("m", [f"k{i}"])[f"k{i}"].text == f"Score: {i}"
    assert [key for _, key, _, _ in cache.entries("m")] == sorted(f"k{i}" for i in range(300))


def test_a_cache_from_before_identities_is_kept_aside_and_never_replayed(tmp_path):
    import sqlite3

    old = sqlite3.connect(tmp_path / "responses.sqlite3")
    old.execute(
        "CREATE TABLE answers (model TEXT NOT NULL, key TEXT NOT NULL, text TEXT NOT NULL, "
        "prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, latency_s REAL NOT NULL, "
        "cost_usd REAL NOT NULL, created REAL NOT NULL, PRIMARY KEY (model, key)) WITHOUT ROWID"
    )
    old.execute("INSERT INTO answers VALUES ('openai:m', 'k1', 'Score: 9', 1, 1, 0.1, 0.0, 0.0)")
    old.commit()
    old.close()
    cache = ResponseCache(tmp_path)
    assert cache.get_many("openai:m", ["k1"]) == {} and cache.count() == 0
    assert cache.unidentified() == 1
    assert ResponseCache(tmp_path).unidentified() == 1  # opening again migrates nothing twice
    assert cache.clear() == 1 and cache.unidentified() == 0


def test_identities_are_listed_with_their_answers(tmp_path):
    from iqa_eval.models.base import ModelIdentity

    cache = ResponseCache(tmp_path)
    v1 = ModelIdentity.of("openai:m", "openai:m", {"model": "m", "system_fingerprint": "fp_1"})
    v2 = ModelIdentity.of("openai:m", "openai:m", {"model": "m", "system_fingerprint": "fp_2"})
    for identity, n in ((v1, 3), (v2, 1)):
        cache.remember(identity)
        for i in range(n):
            cache.put(identity.key, f"k{i}", Answer("Score: 1"))
    held = {h.key: h for h in cache.identities()}
    assert held[v1.key].answers == 3 and held[v2.key].answers == 1
    assert held[v1.key].describe() == "openai:m (model=m, system_fingerprint=fp_1)"
    (older,) = cache.superseded(v2, ["k0", "k2"])
    assert older.key == v1.key and older.answers == 2
