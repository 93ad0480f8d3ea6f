"""Which tests pytest-xdist keeps together: the scope read back from a cell test's node id."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from iqa_eval.plugin.scopes import cell_scope
from iqa_eval.types import ATTRIBUTES, PROTOCOLS, SETTINGS, STRATEGIES, CellSpec, Stage2Cell

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
def test_stage_1_cells_are_scoped_by_model_dataset_and_setting(
    model, dataset, setting, attribute, protocol, strategy, subset
):
    spec = CellSpec(model, dataset, setting, attribute, protocol, strategy, subset)
    assert cell_scope(nodeid(spec)) == f"iqa-eval:{model}/{dataset}/{setting}"


@given(model=names, dataset=names, setting=st.sampled_from(SETTINGS), attribute=st.sampled_from(ATTRIBUTES))
def test_stage_2_cells_share_the_scope_of_the_stage_1_cells_they_need(model, dataset, setting, attribute):
    """A stage-2 cell's best system is chosen from every stage-1 cell of its setting: on another
    worker it would ask their queries a second time."""
    stage2 = Stage2Cell(model, dataset, setting, attribute, "finegrained")
    stage1 = CellSpec(model, dataset, setting, ATTRIBUTES[0], "ss", "standard", "uniform")
    scope = cell_scope(nodeid(stage2, "test_attributes/test_attributes.py::test_attribute"))
    assert scope == cell_scope(nodeid(stage1)) == f"iqa-eval:{model}/{dataset}/{setting}"


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


def test_a_stage_2_cell_keeps_the_id_it_is_known_by_and_resolves_to_its_system():
    """Baselines, shards and node ids know a stage-2 cell as ``.../best/best/<subset>``."""
    cell = Stage2Cell("openai:gpt-4o", "kadid10k", "fr", "color", "difficult")
    assert cell.id == "openai:gpt-4o/kadid10k/fr_color/best/best/difficult"
    spec = cell.with_system("ds", "cot")
    assert spec == CellSpec("openai:gpt-4o", "kadid10k", "fr", "color", "ds", "cot", "difficult")
    assert spec.group == cell.group
