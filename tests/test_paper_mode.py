"""Paper compatibility: the study's schedule, labels and re-ask policy, and the labelled random fill."""

from __future__ import annotations

import pytest

from iqa_eval.evaluation.config import OPTIONS, ConfigError, RunConfig, build
from iqa_eval.evaluation.suite import Suite
from iqa_eval.models.base import ModelClient
from iqa_eval.models.expert import make_expert
from iqa_eval.types import Answer, CellSpec, Query


class Flaky(ModelClient):
    """Nonsense on the first ask; the expert panel's answer on re-asks (or never, if stubborn)."""

    def __init__(self, store, stubborn=False):
        self.spec = self.fingerprint = "flaky" + ("-stubborn" if stubborn else "")
        self.expert = make_expert("expert", store)
        self.stubborn = stubborn
        self.asked: list[int] = []

    async def answer(self, query: Query) -> Answer:
        self.asked.append(query.attempt)
        if query.attempt == 0 or self.stubborn:
            return Answer("I would rather not say.")
        return await self.expert.answer(query)


def suite(tmp_path, shared_cache, paper=True, random_fill=False, stubborn=False):
    config = RunConfig(root=tmp_path, models=("flaky",), cache_dir=shared_cache, use_cache=False,
                       progress=False, paper=paper, random_fill=random_fill)  # fmt: skip
    return Suite(config, lambda spec, store: Flaky(store, stubborn))


SPEC = CellSpec("flaky", "builtin", "fr", "structure", "ss", "standard", "uniform")


def test_reasks_recover_failed_answers(tmp_path, shared_cache):
    run = suite(tmp_path, shared_cache)
    result = run.result(SPEC)
    assert result.coverage == 1.0 and result.metrics["srcc"].value > 0.9
    assert sorted(set(run.clients["flaky"].asked)) == [0, 1]


def test_without_paper_mode_failures_stay_failures(tmp_path, shared_cache):
    result = suite(tmp_path, shared_cache, paper=False).result(SPEC)
    assert result.coverage == 0.0 and result.n_failed == {"no_score": 80}
    assert result.metrics["srcc"].value is None


def test_stubborn_model_is_asked_three_times_then_fails(tmp_path, shared_cache):
    run = suite(tmp_path, shared_cache, stubborn=True)
    result = run.result(SPEC)
    assert sorted(set(run.clients["flaky"].asked)) == [0, 1, 2]
    assert result.coverage == 0.0 and result.metrics["srcc"].value is None


def test_random_fill_is_labelled_everywhere_it_touches(tmp_path, shared_cache):
    result = suite(tmp_path, shared_cache, random_fill=True, stubborn=True).result(SPEC)
    assert result.n_failed == {"no_score": 80} and result.coverage == 0.0
    assert result.metrics["srcc"].value is not None
    assert all("random-fill" in m.note for m in result.metrics.values())
    assert any(n.startswith("PAPER RANDOM FILL: 80 of 80") for n in result.notes)


def test_random_fill_needs_paper_mode(tmp_path):
    values = {name: default for name, (_, default, _) in OPTIONS.items()}
    values["paper_random_fill"] = True
    with pytest.raises(ConfigError, match="only exists in paper compatibility mode"):
        build(tmp_path, values)
