"""Which tests pytest-xdist keeps together: the scope read back from a cell test's node id."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from iqa_eval.scheduling import cell_scope
from iqa_eval.suite import BEST
from iqa_eval.types import ATTRIBUTES, PROTOCOLS, SETTINGS, STRATEGIES, CellSpec

# Model specs and dataset names as users write them, slashes and colons included.
names = st.text(st.sampled_from("abcxyz019-_.:/@"), min_size=1, max_size=20).filter(lambda s: "[" not in s)


def nodeid(spec: CellSpec, test: str = "test_protocols/test_systems.py::test_prompting_system") -> str:
    return f"{test}[{spec.id}]"


@given(
    model=names,
    dataset=names,
    setting=st.sampled_from(SETTINGS),
    attribute=st.sampled_from(ATTRIBUTES),
    protocol=st.sampled_from(PROTOCOLS),
    strategy=st.sampled_from((*STRATEGIES, "metamorphic")),
    subset=st.sampled_from(("uniform", "finegrained", "metamorphic")),
)
def test_stage_1_cells_are_scoped_by_model_dataset_setting_and_attribute(
    model, dataset, setting, attribute, protocol, strategy, subset
):
    spec = CellSpec(model, dataset, setting, attribute, protocol, strategy, subset)
    assert cell_scope(nodeid(spec)) == f"iqa-eval:{model}/{dataset}/{setting}_{attribute}"


@given(model=names, dataset=names, setting=st.sampled_from(SETTINGS), attribute=st.sampled_from(ATTRIBUTES))
def test_stage_2_cells_of_a_setting_share_one_scope(model, dataset, setting, attribute):
    spec = CellSpec(model, dataset, setting, attribute, BEST, BEST, "finegrained")
    assert cell_scope(nodeid(spec, "test_attributes/test_attributes.py::test_attribute")) == (
        f"iqa-eval:{model}/{dataset}/{setting}/stage2"
    )


def test_other_tests_have_no_cell_scope():
    for other in (
        "tests/test_metrics.py::test_srcc",
        "tests/test_metrics.py::test_srcc[1-2]",
        "tests/test_x.py::test_y[a/b/fr_colour/ss/standard/uniform]",  # not an attribute
        "tests/test_x.py::test_y[b/fr_color/ss/standard/uniform]",  # no model and dataset
        "tests/test_x.py::test_y[a/b/xr_color/ss/standard/uniform]",  # not a setting
        "tests/test_x.py::Class::test_y",
    ):
        assert cell_scope(other) is None
