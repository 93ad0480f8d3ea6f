"""The panel's measure table: who sits on which panel, and quality maps that keep direction."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from iqa_eval.experts.panel import EXPERTS, PANELS


def test_panels_hold_registered_members_of_their_setting() -> None:
    for setting, members in PANELS.items():
        assert all(EXPERTS[name].setting == setting for name in members)
    assert "colourfulness" not in PANELS["nr"]
    assert set(EXPERTS) == {*PANELS["fr"], *PANELS["nr"], "ssim", "colourfulness"}


@settings(max_examples=40, derandomize=True, deadline=None)
@given(name=st.sampled_from(sorted(EXPERTS)), a=st.floats(-1e4, 1e4), b=st.floats(-1e4, 1e4))
def test_quality_maps_are_monotone_in_the_right_direction_and_bounded(name: str, a: float, b: float) -> None:
    expert = EXPERTS[name]
    low, high = sorted((a, b))
    q_low, q_high = expert.to_quality(low), expert.to_quality(high)
    assert min(q_low, q_high) >= 0.0 and max(q_low, q_high) <= 100.0
    assert (q_low <= q_high) if expert.higher_is_better else (q_low >= q_high)
