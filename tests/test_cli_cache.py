"""``iqa-eval cache``: what the cache directory holds, and clearing it of answers and measurements."""

from __future__ import annotations

from iqa_eval.cli import main
from iqa_eval.execution.cache import ResponseCache
from iqa_eval.models.measurements import MeasurementCache
from iqa_eval.types import Answer


def test_stats_count_answers_and_measurements_and_clear_removes_both(tmp_path, capsys):
    answers = ResponseCache(tmp_path)
    answers.put("m", "k1", Answer("Score: 1"))
    answers.put("m", "k2", Answer("Score: 2"))
    answers.flush()  # put() queues for the writer thread; the CLI reads through a connection of its own
    measurements = MeasurementCache(tmp_path)
    measurements.put("niqe@1", "", "sha-a", {"niqe": 4.25})
    assert measurements.get("niqe@1", "", "sha-a") == {"niqe": 4.25}
    assert measurements.get("niqe@2", "", "sha-a") is None

    assert main(["cache", "stats", "--cache", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 answers, integrity ok" in out and "1 expert measurements" in out

    assert main(["cache", "clear", "--cache", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "removed 2 answers" in out and "removed 1 expert measurements" in out
    assert answers.count() == 0 and measurements.count() == 0


def test_stats_list_the_identities_the_cache_holds(tmp_path, capsys):
    from iqa_eval.models.base import ModelIdentity

    cache = ResponseCache(tmp_path)
    identity = ModelIdentity.of("openai:m@r7", "openai:m@r7", {"model": "m-2024"})
    cache.remember(identity)
    cache.put(identity.key, "k", Answer("Score: 1"))
    cache.flush()
    assert main(["cache", "stats", "--cache", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"1 answers of {identity.key}: openai:m@r7 (model=m-2024)" in out
