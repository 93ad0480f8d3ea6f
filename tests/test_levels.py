"""The ``levels`` strategy: judgements from answer-word probabilities, read from API logprobs
(here the fake server's ``top_logprobs``), cached like answers, reported as probability-based."""

from __future__ import annotations

import asyncio
import json
import math

import numpy as np
import pytest
from fake_openai import ExpertResponder, level_alternatives
from hypothesis import given
from hypothesis import strategies as st

from iqa_eval.evaluation.cells import Planner
from iqa_eval.evaluation.config import RunConfig
from iqa_eval.evaluation.suite import Suite
from iqa_eval.execution.cache import ResponseCache
from iqa_eval.images import ImageStore
from iqa_eval.models.base import ModelOptions
from iqa_eval.models.openai_api import OpenAIModel
from iqa_eval.protocols.levels import (
    LEVELS,
    MIN_OPTION_MASS,
    judge_probabilities,
    merge,
    no_option_mass,
    option_of,
    score_from_levels,
)
from iqa_eval.protocols.scaling import count_matrix, soft_count_matrix, thurstone_map
from iqa_eval.types import Answer, CellResult, CellSpec, Decoding, MetricValue

FR_STRUCTURE = ("test_protocols/test_systems.py", "-p", "no:randomly")


@pytest.fixture(autouse=True)
def local_only(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


# -- reading probabilities ----------------------------------------------------------------------


def test_every_spelling_of_a_level_counts_for_it_and_nothing_else_does():
    alternatives = [(" good", 0.2), ("Good", 0.3), ("GOOD", 0.05), ("Exc", 0.1), ("fair", 0.15), ("The", 0.2)]
    merged = dict(merge(alternatives, LEVELS))
    assert merged == pytest.approx({"excellent": 0.1, "good": 0.55, "fair": 0.15, "poor": 0.0, "bad": 0.0})
    assert option_of("g", LEVELS) is None  # too short to be the start of one word only
    assert option_of(" 1\n", ("1", "0")) == "1" and option_of("10", ("1", "0")) is None


def test_the_score_is_the_expected_level_and_a_preference_the_share_of_1():
    judged = judge_probabilities(
        "ss", (("excellent", 0.0), ("good", 0.45), ("fair", 0.45), ("poor", 0.0), ("bad", 0.0))
    )
    assert judged.ok and judged.values == pytest.approx((62.5,))
    preference = judge_probabilities("ds", (("1", 0.6), ("0", 0.2)))
    assert preference.ok and preference.values == pytest.approx((0.75,))


def test_too_little_mass_on_the_levels_is_a_failure_with_its_reason_not_a_score():
    probabilities = (("excellent", 0.1), ("good", 0.1), ("fair", 0.1), ("poor", 0.05), ("bad", 0.05))
    judged = judge_probabilities("ss", probabilities)
    assert not judged.ok and judged.values is None and judged.failure == "low_level_mass"
    assert f"at least {MIN_OPTION_MASS:g}" in judged.description and "0.400" in judged.description
    assert no_option_mass(probabilities) == pytest.approx(0.6)
    wrong = judge_probabilities("ds", (("excellent", 1.0),))
    assert wrong.failure == "unreadable_probabilities"


@given(st.lists(st.floats(0.0, 1.0), min_size=5, max_size=5).filter(lambda ps: sum(ps) > 0))
def test_a_score_from_levels_is_scale_free_and_within_0_100(raw):
    total = sum(raw)
    scaled = tuple(zip(LEVELS, (0.9 * p / total for p in raw), strict=True))
    judged = judge_probabilities("ss", scaled)
    assert judged.ok and judged.values is not None
    assert 0.0 <= judged.values[0] <= 100.0
    assert judged.values[0] == pytest.approx(score_from_levels([p / total for p in raw]))


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5), st.sampled_from([0, 1])), max_size=30))
def test_certain_preferences_weigh_as_hard_comparisons(outcomes):
    outcomes = [(a, b, code) for a, b, code in outcomes if a != b]
    soft = soft_count_matrix(6, [(a, b, float(code)) for a, b, code in outcomes])
    assert np.array_equal(soft, count_matrix(6, outcomes).astype(float))


def test_a_hesitant_preference_pulls_two_items_together():
    sure = thurstone_map(soft_count_matrix(2, [(0, 1, 0.95)] * 4)).latent
    unsure = thurstone_map(soft_count_matrix(2, [(0, 1, 0.6)] * 4)).latent
    assert sure[0] - sure[1] > unsure[0] - unsure[1] > 0
    with pytest.raises(ValueError, match="must lie in"):
        soft_count_matrix(2, [(0, 1, 1.5)])


# -- what is asked ------------------------------------------------------------------------------


def test_levels_queries_ask_for_probabilities_and_are_their_own_cache_entries(builtin):
    planner = Planner(decoding=Decoding(max_tokens=512))
    levels = planner.plan(CellSpec("m", "builtin", "nr", "structure", "ss", "levels", "uniform"), builtin)
    standard = planner.plan(CellSpec("m", "builtin", "nr", "structure", "ss", "standard", "uniform"), builtin)
    query = levels.queries[0].query
    assert query.options == LEVELS and query.decoding.max_tokens == 4
    assert {pq.query.key for pq in levels.queries}.isdisjoint(pq.query.key for pq in standard.queries)
    pair = planner.plan(CellSpec("m", "builtin", "nr", "structure", "ds", "levels", "uniform"), builtin)
    assert pair.queries[0].query.options == ("1", "0")
    with pytest.raises(ValueError, match="no prompting system"):
        planner.plan(CellSpec("m", "builtin", "nr", "structure", "ms", "levels", "uniform"), builtin)


def test_probabilities_are_cached_and_replayed_with_the_answer(tmp_path):
    cache = ResponseCache(tmp_path)
    probabilities = (("1", 0.7), ("0", 0.25))
    cache.put("id", "k1", Answer("1", probabilities=probabilities))
    cache.put("id", "k2", Answer("Score: 1"))
    got = cache.get_many("id", ["k1", "k2"])
    assert got["k1"].probabilities == probabilities and got["k1"].cached
    assert got["k2"].probabilities is None


def test_the_request_asks_for_top_logprobs_and_the_answer_merges_their_spellings(
    fake_openai, builtin, tmp_path
):
    server = fake_openai(responder=ExpertResponder(tmp_path / "expert"))
    client = OpenAIModel("openai:m", ImageStore(), ModelOptions(base_urls=(server.url,)))
    plan = Planner().plan(CellSpec("m", "builtin", "fr", "structure", "ss", "levels", "uniform"), builtin)
    query = plan.queries[0].query

    async def ask():
        try:
            return await client.answer(query)
        finally:
            await client.aclose()

    answer = asyncio.run(ask())
    assert server.last_request is not None
    assert server.last_request["logprobs"] is True and server.last_request["top_logprobs"] == 20
    assert server.last_request["max_tokens"] == 4
    assert answer.ok and answer.probabilities is not None
    assert [w for w, _ in answer.probabilities] == list(LEVELS)
    # The fake spreads each level over three spellings and keeps 4% for "The": all three merge.
    assert sum(p for _, p in answer.probabilities) == pytest.approx(0.96, abs=1e-6)


# -- the suite against a server giving logprobs -------------------------------------------------


def run_levels(suite_dir, shared_cache, server, *more):
    return suite_dir.runpytest(
        *FR_STRUCTURE,
        f"--iqa-cache={shared_cache}",
        "--iqa-model=openai:m",
        f"--iqa-base-url={server.url}",
        *more,
    )


def report(suite_dir):
    return json.loads((suite_dir.path / "reports" / "iqa-report.json").read_text())


def test_level_probabilities_that_follow_the_truth_score_high_and_are_reported(
    suite_dir, shared_cache, fake_openai, accurate_responder
):
    server = fake_openai(responder=accurate_responder)
    run_levels(
        suite_dir, shared_cache, server, "--iqa-no-cache", "-m", "fr_structure and levels"
    ).assert_outcomes(passed=2)
    cells = {c["protocol"]: c for c in report(suite_dir)["cells"]}
    assert set(cells) == {"ss", "ds"}
    for cell in cells.values():
        assert cell["probability_based"] and cell["format_compliance"] is None and cell["coverage"] == 1.0
        assert cell["metrics"]["srcc"]["value"] > 0.95
        assert any("probability on no level word" in n for n in cell["notes"])
        example = cell["examples"][0]
        assert set(example["probabilities"]) == ({"1", "0"} if cell["protocol"] == "ds" else set(LEVELS))
    assert cells["ds"]["metrics"]["accuracy"]["value"] > 0.9
    assert server.logprob_requests == server.requests
    html = (suite_dir.path / "reports" / "iqa-report.html").read_text()
    assert "probability-based (levels)" in html and "no level word" in html


def test_a_rerun_replays_the_probabilities_from_the_cache(
    suite_dir, fake_openai, accurate_responder, builtin, tmp_path
):
    from suite_runs import fresh_cache

    cache = fresh_cache(builtin, tmp_path / "cache")
    server = fake_openai(responder=accurate_responder)
    args = ("-m", "fr_structure and ss and levels")
    run_levels(suite_dir, cache, server, *args).assert_outcomes(passed=1)
    first = report(suite_dir)["cells"]
    asked = server.requests
    run_levels(suite_dir, cache, server, *args).assert_outcomes(passed=1)
    assert server.requests == asked  # nothing asked again
    assert report(suite_dir)["cells"][0]["metrics"] == first[0]["metrics"]
    assert report(suite_dir)["cells"][0]["examples"] == first[0]["examples"]


def test_a_replay_of_a_model_recorded_with_probabilities_gives_its_levels_cells_again(
    suite_dir, fake_openai, accurate_responder, builtin, tmp_path
):
    from suite_runs import fresh_cache

    from iqa_eval.execution.cache import export_replay

    cache = fresh_cache(builtin, tmp_path / "cache")
    server = fake_openai(responder=accurate_responder)
    args = ("-m", "fr_structure and levels")
    run_levels(suite_dir, cache, server, *args).assert_outcomes(passed=2)
    recorded = report(suite_dir)
    path = tmp_path / "levels.jsonl"
    identity = recorded["cells"][0]["identity"]["key"]
    export_replay(ResponseCache(cache), path, model=identity)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows and all(len(row["probabilities"]) >= 2 for row in rows)

    replayed = suite_dir.runpytest(*FR_STRUCTURE, f"--iqa-cache={cache}", f"--iqa-model=replay:{path}", *args)
    replayed.assert_outcomes(passed=2)
    again = {c["protocol"]: c for c in report(suite_dir)["cells"]}
    for cell in recorded["cells"]:
        same = again[cell["protocol"]]
        assert same["probability_based"] and same["strategy"] == "levels"
        for field in ("n_queries", "n_failed", "coverage", "metrics", "predictions", "examples"):
            assert same[field] == cell[field], field


def test_a_replay_file_with_malformed_probabilities_names_the_line(tmp_path):
    from iqa_eval.models.replay import ReplayError, load_replay

    good = {"model": "m", "key": "k1", "text": "good", "probabilities": [["good", 0.7], ["fair", 0.3]]}
    for bad in ([["good", 1.5]], [["good"]], {"good": 0.5}, [["good", True]], [[3, 0.5]]):
        path = tmp_path / "bad.jsonl"
        row = {"model": "m", "key": "k2", "text": "good", "probabilities": bad}
        path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
        with pytest.raises(ReplayError, match=r"bad.jsonl:2: \"probabilities\" must be"):
            load_replay(path)
    path.write_text(json.dumps(good) + "\n")
    assert load_replay(path) == {"m": {"k1": ("good", (("good", 0.7), ("fair", 0.3)))}}


def test_a_server_refusing_logprobs_skips_the_levels_cells_saying_so_once(
    suite_dir, shared_cache, fake_openai, accurate_responder
):
    server = fake_openai(responder=accurate_responder, refuse_logprobs=True)
    result = run_levels(
        suite_dir,
        shared_cache,
        server,
        "--iqa-no-cache",
        "-m",
        "fr_structure and (levels or standard) and not ms",
    )
    result.assert_outcomes(passed=2, skipped=2)
    assert server.logprob_requests == 1  # learnt from the first request, never asked again
    # The levels queries held back are no requests: the run's usage counts what the server got
    # (the identity probe aside, which usage never counts).
    usage = report(suite_dir)["run"]["usage"]
    assert usage["requests"] == usage["sent"] == server.requests
    output = result.stdout.str() + result.stderr.str()
    assert output.count("the server gives no logprobs") == 1, output
    cells = report(suite_dir)["cells"]
    skipped = [c for c in cells if c["strategy"] == "levels"]
    assert len(skipped) == 2
    for cell in skipped:
        assert cell["outcome"] == "skipped" and "no logprobs" in cell["message"]
        assert "'logprobs' parameter" in cell["message"]
    assert all(c["outcome"] == "passed" for c in cells if c["strategy"] == "standard")


def test_too_little_level_mass_fails_the_answers_with_their_reason(suite_dir, shared_cache, fake_openai):
    from fake_openai import Reply

    # A model that mostly wants to say "Score": 30% on the levels, below the minimum.
    chatty = Reply("Score", (("Score", 0.7), *((w, 0.3 * p) for w, p in level_alternatives(60.0)[:-1])))
    server = fake_openai(responder=lambda request: chatty)
    result = run_levels(
        suite_dir, shared_cache, server, "--iqa-no-cache", "-m", "nr_structure and ss and levels"
    )
    result.assert_outcomes(failed=1)
    (cell,) = report(suite_dir)["cells"]
    assert cell["n_failed"] == {"low_level_mass": cell["n_queries"]} and cell["coverage"] == 0.0
    assert not cell["predictions"] and cell["metrics"]["srcc"]["value"] is None


def test_the_expert_panel_and_paper_mode_have_no_levels_cells(shared_cache, tmp_path):
    expert = Suite(RunConfig(root=tmp_path, cache_dir=shared_cache, models=("expert",)))
    assert {s.strategy for s in expert.stage1_specs()} == {"standard", "icl", "cot"}
    assert {s.strategy for s in expert.metamorphic_specs("ds")} == {"standard"}
    local = ModelOptions(base_urls=("http://127.0.0.1:9/v1",))
    api = Suite(RunConfig(root=tmp_path, cache_dir=shared_cache, models=("openai:m",), model_options=local))
    systems = {(s.protocol, s.strategy) for s in api.stage1_specs()}
    assert ("ss", "levels") in systems and ("ds", "levels") in systems and ("ms", "levels") not in systems
    assert {s.strategy for s in api.metamorphic_specs("ds")} == {"standard", "levels"}
    paper = Suite(
        RunConfig(
            root=tmp_path, cache_dir=shared_cache, models=("openai:m",), model_options=local, paper=True
        )
    )
    assert "levels" not in {s.strategy for s in paper.stage1_specs()}


def test_a_soft_preference_that_follows_the_position_breaks_the_order_swap(
    suite_dir, shared_cache, fake_openai
):
    # Always 80% for the first image, whatever it shows: every swap moves the preference by 0.6.
    server = fake_openai(responder=lambda request: _first_wins())
    result = suite_dir.runpytest(
        "test_protocols/test_metamorphic.py",
        "-p",
        "no:randomly",
        f"--iqa-cache={shared_cache}",
        "--iqa-no-cache",
        "--iqa-model=openai:m",
        f"--iqa-base-url={server.url}",
        "-m",
        "fr_structure and ds and levels",
    )
    result.assert_outcomes(failed=1)
    (cell,) = report(suite_dir)["cells"]
    assert cell["id"].endswith("/ds/levels/metamorphic")
    assert cell["metrics"]["invariance"]["value"] == 0.0
    assert any("moves by at most" in n for n in cell["notes"])


def _first_wins():
    from fake_openai import Reply

    return Reply("1", (("1", 0.8), ("0", 0.2)))


def test_level_alternatives_of_the_fake_follow_the_quality():
    def expected(quality):
        merged = merge([(t, p) for t, p in level_alternatives(quality)], LEVELS)
        return score_from_levels([p / sum(q for _, q in merged) for _, p in merged])

    scores = [expected(q) for q in (5.0, 30.0, 55.0, 80.0, 95.0)]
    assert scores == sorted(scores) and not math.isclose(scores[0], scores[-1])


def test_stage_2_chooses_among_the_levels_systems_unless_the_server_refused_them(
    shared_cache, tmp_path, monkeypatch
):
    local = ModelOptions(base_urls=("http://127.0.0.1:9/v1",))
    suite = Suite(RunConfig(root=tmp_path, cache_dir=shared_cache, models=("openai:m",), model_options=local))
    srcc = {"levels": 0.9, "standard": 0.5, "icl": 0.4, "cot": 0.3}

    def result(spec):
        value = srcc[spec.strategy] + (0.05 if spec.protocol == "ds" else 0.0)
        return CellResult(spec, 1, 1, {}, {"srcc": MetricValue(value, value, value, 1, "global")}, "srcc")

    monkeypatch.setattr(suite, "execute", lambda specs: None)
    monkeypatch.setattr(suite, "result", result)
    best = suite.best_system("openai:m", "builtin", "fr")
    assert (best.protocol, best.strategy) == ("ds", "levels")
    assert {"ss/levels", "ds/levels"} <= {name for name, _ in best.ranking}
    client = suite.clients["openai:m"]
    monkeypatch.setattr(client, "refuses_probabilities", lambda: "the server gives no logprobs")
    best = suite.best_system("openai:m", "builtin", "fr")
    assert (best.protocol, best.strategy) == ("ds", "standard")
    assert not any(name.endswith("/levels") for name, _ in best.ranking)
