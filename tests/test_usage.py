"""The run's usage is the sum of its processes' (xdist workers, shards), never one of them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from iqa_eval.execution.usage import combine_usage

COUNTS = ("queries", "unique", "cached", "sent", "requests", "failed", "retries", "rate_limited",
          "prompt_tokens", "completion_tokens")  # fmt: skip

parts = st.fixed_dictionaries(
    {
        **{name: st.integers(0, 10_000) for name in COUNTS},
        "failures": st.dictionaries(st.sampled_from(["budget", "timeout", "refusal"]), st.integers(1, 50)),
        "cost_usd": st.floats(0, 100, allow_nan=False),
        "budget_usd": st.none() | st.floats(0, 100, allow_nan=False),
        "budget_exhausted": st.booleans(),
        "max_requests": st.none() | st.integers(0, 1000),
        "stopped_by": st.none() | st.sampled_from(["budget", "max_requests"]),
        "price_notes": st.dictionaries(st.sampled_from(["openai:a", "openai:b"]), st.just("prices unknown")),
    }
)


@given(st.lists(parts, min_size=1, max_size=5), st.integers(0, 3))
def test_counts_costs_and_failures_add_up_and_processes_without_an_engine_are_skipped(usages, nones):
    total = combine_usage([*usages, *([None] * nones)])
    assert total is not None
    for name in COUNTS:
        assert total[name] == sum(u[name] for u in usages)
    assert abs(total["cost_usd"] - sum(u["cost_usd"] for u in usages)) < 1e-5
    for reason in {r for u in usages for r in u["failures"]}:
        assert total["failures"][reason] == sum(u["failures"].get(reason, 0) for u in usages)
    assert total["budget_exhausted"] == any(u["budget_exhausted"] for u in usages)
    budgets = [u["budget_usd"] for u in usages]
    if None in budgets:
        assert total["budget_usd"] is None  # some process had no budget: neither has the run
    else:
        assert abs(total["budget_usd"] - sum(budgets)) < 1e-5
    assert set(total["price_notes"]) == {spec for u in usages for spec in u["price_notes"]}
    caps = [u["max_requests"] for u in usages]
    assert total["max_requests"] == (None if None in caps else sum(caps))
    assert (total["stopped_by"] is None) == all(u["stopped_by"] is None for u in usages)


def test_no_process_with_an_engine_means_no_usage():
    assert combine_usage([]) is None and combine_usage([None, None]) is None
