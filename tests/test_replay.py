"""Replay: export answers from a cache, serve them again, and fail clearly on what is missing."""

from __future__ import annotations

import json

import pytest

from iqa_eval.execution.cache import ResponseCache, export_replay
from iqa_eval.execution.engine import Engine
from iqa_eval.models.registry import ModelSpecError, make_client
from iqa_eval.models.replay import ReplayError, load_replay
from iqa_eval.types import Answer, Decoding, Query


def query(i):
    return Query("nr", "ss", "standard", "t", "h", f"prompt {i}", (), Decoding())


@pytest.fixture
def cache(tmp_path):
    cache = ResponseCache(tmp_path / "cache")
    for i in range(3):
        cache.put("openai:gpt-4o", query(i).key, Answer(f"Score: {i}"))
    cache.put("expert:panel@1", query(0).key, Answer("Score: 99"))
    return cache


def replay(spec, queries):
    client = make_client(spec, store=None)
    return client, Engine(None, progress=False).run(client, queries)


def test_exported_answers_replay_as_recorded_and_the_rest_are_not_recorded(cache, tmp_path):
    path = tmp_path / "answers.jsonl"
    assert export_replay(cache, path, model="openai:gpt-4o") == 3
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert {tuple(r) for r in rows} == {("model", "key", "text")}
    client, answers = replay(f"replay:{path}", [query(i) for i in range(4)])
    assert [answers[query(i).key].text for i in range(3)] == ["Score: 0", "Score: 1", "Score: 2"]
    missing = answers[query(3).key]
    assert missing.text is None and missing.error == "not_recorded" and str(path) in missing.detail
    assert client.fingerprint.startswith("replay:openai:gpt-4o@") and not client.cacheable


def test_a_file_of_several_models_needs_a_fingerprint(cache, tmp_path):
    path = tmp_path / "all.jsonl"
    assert export_replay(cache, path) == 4
    with pytest.raises(ModelSpecError, match="several models") as caught:
        make_client(f"replay:{path}", store=None)
    assert "expert:panel@1" in str(caught.value) and "openai:gpt-4o" in str(caught.value)
    _, answers = replay(f"replay:{path}#expert:panel@1", [query(0)])
    assert answers[query(0).key].text == "Score: 99"
    with pytest.raises(ModelSpecError, match="no answers of 'gpt-5'; it has: expert:panel@1, openai:gpt-4o"):
        make_client(f"replay:{path}#gpt-5", store=None)


def test_a_changed_file_is_another_fingerprint(cache, tmp_path):
    path = tmp_path / "a.jsonl"
    export_replay(cache, path, model="openai:gpt-4o")
    before = make_client(f"replay:{path}", store=None).fingerprint
    path.write_text(path.read_text().replace("Score: 1", "Score: 7"))
    assert make_client(f"replay:{path}", store=None).fingerprint != before


ROW = '{{"model": "m", "key": "k", "text": "{}"}}\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"model": "m", "key": "k", "text": "t"}\nnot json\n', ":2: not JSON"),
        ('{"model": "m", "key": "k"}\n', ':1: expected {"model": str, "key": str, "text": str}'),
        (ROW.format("a") + ROW.format("b"), ":2: a second"),
        ("\n", "holds no answers"),
    ],
)
def test_a_bad_replay_file_names_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(ReplayError) as caught:
        load_replay(path)
    assert str(caught.value).startswith(str(path)) and message in str(caught.value)


def test_a_missing_file_and_an_empty_export_are_clear_errors(tmp_path):
    with pytest.raises(ModelSpecError, match="replay file not found"):
        make_client(f"replay:{tmp_path / 'nope.jsonl'}", store=None)
    with pytest.raises(ReplayError, match="holds no answers of 'm' to export"):
        export_replay(ResponseCache(tmp_path / "empty"), tmp_path / "out.jsonl", model="m")
    assert not (tmp_path / "out.jsonl").exists()


def test_a_replayed_run_gives_the_recorded_runs_results(suite_dir, shared_cache, tmp_path):
    # expert:psnr: a real recorded model that measures a pair in milliseconds.
    selection = (
        "test_protocols/test_systems.py",
        "-p",
        "no:randomly",
        "-m",
        "fr_structure and ss and standard",
    )
    suite_dir.runpytest(
        f"--iqa-cache={shared_cache}", "--iqa-model", "expert:psnr", *selection
    ).assert_outcomes(passed=1)
    report = suite_dir.path / "reports" / "iqa-report.json"
    recorded = json.loads(report.read_text())
    ((fingerprint,),) = {(m["fingerprint"],) for m in recorded["run"]["models"]}
    path = tmp_path / "expert.jsonl"
    export_replay(ResponseCache(shared_cache), path, model=fingerprint)
    result = suite_dir.runpytest(f"--iqa-cache={shared_cache}", "--iqa-model", f"replay:{path}", *selection)
    result.assert_outcomes(passed=1)
    replayed = json.loads(report.read_text())
    assert replayed["run"]["models"][0]["fingerprint"].startswith(f"replay:{fingerprint}@")
    ((before,), (after,)) = recorded["cells"], replayed["cells"]
    for field in ("n_queries", "n_failed", "coverage", "metrics", "predictions"):
        assert after[field] == before[field], field
