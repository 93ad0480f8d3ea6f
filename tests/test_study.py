"""``--iqa-study``: exactly the study's cells on miniature copies of its datasets, the study's
schedule in paper mode, missing datasets reported everywhere, and the classical measures as
stage-2 reference rows."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_datasets_mini import make_agiqa, make_kadid, make_spaq, make_spcd, make_tqd
from test_report_schema import validate_report

from iqa_eval.cli import main
from iqa_eval.evaluation import study
from iqa_eval.evaluation.config import OPTIONS, ConfigError, RunConfig, build
from iqa_eval.evaluation.suite import Suite, Unsupported, systems
from iqa_eval.experts.panel import PANELS
from iqa_eval.report.tables import tables
from iqa_eval.sampling.make_aug_kadid import generate_aug_kadid

STUDY_SYSTEMS = [(p, s) for p, s in systems() if s != "levels"]
"""The study's nine prompting systems: the suite's ``levels`` strategy is not one of them."""


@pytest.fixture(scope="module")
def study_data(tmp_path_factory) -> dict[str, Path]:
    """Every dataset of the study in its published layout, KADID-10k big enough for the study's
    sample: 16 references x 2 structure types (and one colour type) x 5 levels, one reference held out for
    demonstrations, leaves 15 x 10 = 150 FR items."""
    root = tmp_path_factory.mktemp("study")
    kadid = make_kadid(root / "kadid10k", refs=16, types=(1, 11, 4))
    return {
        "kadid10k": kadid,
        "aug_kadid": generate_aug_kadid(kadid, root / "aug_kadid", seed=3),
        "tqd": make_tqd(root / "tqd"),
        "spcd": make_spcd(root / "spcd"),
        "spaq": make_spaq(root / "spaq"),
        "agiqa3k": make_agiqa(root / "agiqa3k"),
    }


def study_suite(tmp_path: Path, data: dict[str, Path], **settings: object) -> Suite:
    config = RunConfig(
        root=tmp_path, cache_dir=tmp_path / "cache", progress=False, study=True,
        data=tuple((name, path) for name, path in data.items()), **settings,  # type: ignore[arg-type]
    )  # fmt: skip
    return Suite(config)


def test_the_study_selects_exactly_its_cells_and_the_builtin_set_stays_out(tmp_path, study_data):
    run = study_suite(tmp_path, study_data)
    stage1 = run.stage1_specs()
    cells = Counter((s.dataset, s.setting, s.attribute) for s in stage1)
    expected = {(c.dataset, c.setting, c.attribute) for c in study.CELLS}
    assert set(cells) == expected and set(cells.values()) == {len(STUDY_SYSTEMS)}
    # SPAQ's colourfulness and sharpness cells are the suite's extension, not the study's.
    assert {"nr_color", "nr_texture"} <= {f"{s}_{a}" for s, a in run.datasets["spaq"].cells()}
    assert "builtin" not in run.datasets and run.metamorphic_specs("ds") == []
    assert {(c.dataset, c.setting, c.attribute, c.subset) for c in run.stage2_specs()} == {
        (*cell, "difficult") for cell in expected
    }
    assert all(run.missing(*cell) is None for cell in expected)
    assert run.study_record() == {"datasets": list(study.DATASETS), "missing": []}
    # Without --iqa-study the same data runs every cell of every dataset, the built-in ones too.
    every = Suite(RunConfig(root=tmp_path, cache_dir=tmp_path / "cache", data=run.config.data))
    assert {(s.dataset, s.setting, s.attribute) for s in every.stage1_specs()} > expected | {
        ("builtin", "fr", "structure"),
        ("spaq", "nr", "color"),
    }


def test_the_classical_measures_are_reference_rows_on_the_same_difficult_subsets(tmp_path, study_data):
    run = study_suite(tmp_path, study_data)
    references = run.reference_specs()
    for setting, members in PANELS.items():
        per_cell = Counter(
            (s.dataset, s.attribute) for s in references if s.setting == setting and s.model.partition(":")[2]
        )
        assert set(per_cell.values()) == {len(members)}
        assert set(per_cell) == {(c.dataset, c.attribute) for c in study.CELLS if c.setting == setting}
    assert {(s.protocol, s.strategy, s.subset) for s in references} == {("ss", "standard", "difficult")}
    stage2 = {(c.dataset, c.setting, c.attribute, c.subset) for c in run.stage2_specs()}
    assert {(s.dataset, s.setting, s.attribute, s.subset) for s in references} == stage2
    # A measure asked for as a model under test is that model, not a reference row as well.
    asked = study_suite(tmp_path, study_data, models=("expert", "expert:psnr"))
    assert "expert:psnr" not in asked.reference_models()
    assert "expert:psnr" not in {s.model for s in asked.reference_specs()}


@pytest.mark.parametrize(("setting", "groups"), [("fr", 15), ("nr", 1)])
def test_paper_mode_asks_the_study_s_750_ds_and_300_ms_queries_per_cell(
    tmp_path, study_data, setting, groups
):
    data = {"kadid10k": study_data["kadid10k"]}
    paper = study_suite(tmp_path, data, paper=True)
    default = study_suite(tmp_path, data)
    specs = [
        s
        for s in paper.stage1_specs()
        if (s.dataset, s.setting, s.attribute) == ("kadid10k", setting, "structure")
    ]
    counts = {(s.protocol, s.strategy): len(paper.plan(s).queries) for s in specs}
    assert counts == {system: {"ss": 150, "ds": 750, "ms": 300}[system[0]] for system in STUDY_SYSTEMS}
    for spec in specs:
        items = paper.plan(spec).items
        assert len(items) == 150 and len({i.group for i in items}) == groups
    # The suite's own DS asks each distinct pair in both orders; only paper mode keeps every draw.
    ds = next(s for s in specs if s.protocol == "ds")
    asked = [pq.item_ids for pq in default.plan(ds).queries]
    assert len(asked) == 2 * len({frozenset(pair) for pair in asked}) != 750


def test_a_dataset_not_given_is_a_missing_cell_with_the_command_that_adds_it(tmp_path, study_data):
    run = study_suite(tmp_path, {"kadid10k": study_data["kadid10k"]})
    tqd = next(s for s in run.stage1_specs() if s.dataset == "tqd")
    reason = run.unsupported(tqd)
    assert reason is not None and "tqd not given: add --iqa-data tqd=PATH (PATH: TQD_mos.txt" in reason
    aug = next(c for c in run.stage2_specs() if c.dataset == "aug_kadid")
    with pytest.raises(Unsupported, match="iqa-eval datasets make-aug-kadid KADID10K_PATH PATH"):
        run.stage2_spec(aug)
    record = run.study_record()
    assert record is not None
    assert [m["dataset"] for m in record["missing"]] == ["tqd", "spcd", "aug_kadid", "spaq", "agiqa3k"]
    assert all(run.missing(c.dataset, c.setting, c.attribute) for c in study.CELLS if c.dataset != "kadid10k")
    assert not {s.dataset for s in run.reference_specs()} - {"kadid10k"}


@settings(max_examples=16, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chosen=st.sets(st.sampled_from(study.DATASETS)))
def test_whatever_is_given_every_study_cell_runs_or_is_reported_missing(tmp_path, study_data, chosen):
    run = study_suite(tmp_path, {name: study_data[name] for name in chosen})
    specs = run.stage1_specs()
    assert {(s.dataset, s.setting, s.attribute) for s in specs} == {
        (c.dataset, c.setting, c.attribute) for c in study.CELLS
    }
    assert {s.dataset for s in specs if run.unsupported(s) is not None} == set(study.DATASETS) - chosen
    record = run.study_record()
    assert record is not None
    assert [m["dataset"] for m in record["missing"]] == [d for d in study.DATASETS if d not in chosen]


def test_only_the_study_s_datasets_go_with_the_study(tmp_path, study_data):
    values = {name: default for name, (_, default, _) in OPTIONS.items()}
    values.update(
        study=True, data=[f"kadid10k={study_data['kadid10k']}", f"mine={study_data['kadid10k']}/dmos.csv"]
    )
    with pytest.raises(
        ConfigError, match="mine is not a dataset of the study; --iqa-study runs only kadid10k"
    ):
        build(tmp_path, values)
    values["data"] = values["data"][:1]
    assert build(tmp_path, values).study


def test_a_study_run_reports_missing_datasets_in_terminal_report_and_tables(
    suite_dir, shared_cache, study_data, capsys
):
    result = suite_dir.runpytest(
        f"--iqa-cache={shared_cache}",
        "--iqa-study",
        f"--iqa-data=kadid10k={study_data['kadid10k']}",
        "-p",
        "no:randomly",
        "-m",
        "texture or geometry",
    )
    result.assert_outcomes(skipped=2 * (len(STUDY_SYSTEMS) + 1))
    result.stdout.fnmatch_lines(
        ["*--iqa-study: tqd not given, its cells (fr_texture) are missing: add --iqa-data tqd=PATH*"]
    )
    report_path = suite_dir.path / "reports" / "iqa-report.json"
    report = json.loads(report_path.read_text())
    validate_report(report)
    assert next(m["dataset"] for m in report["run"]["study"]["missing"]) == "tqd"
    assert {c["dataset"] for c in report["cells"]} == {"tqd", "aug_kadid"}
    assert all(c["outcome"] == "skipped" and "not given" in c["message"] for c in report["cells"])
    capsys.readouterr()
    assert main(["tables", str(report_path)]) == 0
    text = capsys.readouterr().out
    stage1, stage2 = text.split("**Stage 2")
    for table in (stage1, stage2):
        assert "aug_kadid FR geometry" in table and "tqd FR texture" in table
        assert "- missing: tqd: add --iqa-data tqd=PATH" in table
        assert "- missing: aug_kadid: iqa-eval datasets make-aug-kadid" in table
        # Only the datasets the tables show are listed: the run lacked SPCD too, unselected here.
        assert "spcd" not in table
    assert stage1.count("| missing | missing |") == len(STUDY_SYSTEMS)
    assert main(["tables", str(report_path), "--format", "csv"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert len(rows) == 2 * (len(STUDY_SYSTEMS) + 1) and all(r.endswith(",missing") for r in rows)


@pytest.fixture(scope="module")
def kadid_photos(tmp_path_factory) -> Path:
    """A mini KADID-10k of photo content, large enough for every classical measure to judge."""
    return make_kadid(tmp_path_factory.mktemp("kadid"), refs=4, types=(1, 11), content=True)


def run_study(suite_dir, cache: Path, kadid: Path, out: str, *models: str) -> dict:
    args = [f"--iqa-model={m}" for m in models]
    suite_dir.runpytest(
        f"--iqa-cache={cache}", "--iqa-study", f"--iqa-data=kadid10k={kadid}", f"--iqa-report-dir={out}",
        "-p", "no:randomly", "-m", "fr_structure", *args,
    )  # fmt: skip
    report = json.loads((suite_dir.path / out / "iqa-report.json").read_text())
    validate_report(report)
    return report


def test_experts_are_stage_2_rows_and_one_run_tables_as_runs_per_model(suite_dir, shared_cache, kadid_photos):
    both = run_study(suite_dir, shared_cache, kadid_photos, "both", "expert", "expert:ssim")
    stage2 = {c["model"]: c for c in both["cells"] if c["stage"] == 2}
    assert set(stage2) == {"expert", "expert:ssim", *(f"expert:{name}" for name in PANELS["fr"])}
    reference = stage2["expert:psnr"]
    assert reference["subset"] == "difficult" and (reference["protocol"], reference["strategy"]) == (
        "ss",
        "standard",
    )
    assert reference["selected_by"]["rule"].startswith("a classical measure")
    assert reference["n_items"] == stage2["expert"]["n_items"] and reference["coverage"] == 1.0
    assert reference["outcome"] == "passed" and reference["gate"]["threshold"] == -1.0
    # The models under test choose their system from stage 1; the measures have none to choose.
    assert "ranking" in stage2["expert"]["selected_by"]
    assert not [c for c in both["cells"] if c["stage"] == 1 and c["model"].startswith("expert:psnr")]
    apart = [
        run_study(suite_dir, shared_cache, kadid_photos, m.replace(":", "_"), m)
        for m in ("expert", "expert:ssim")
    ]
    for fmt in ("md", "csv", "latex"):
        assert tables([("both", both)], fmt) == tables([("a", apart[0]), ("b", apart[1])], fmt)
    text = tables([("both", both)], "md")
    rows = text.split("**Stage 2")[1]
    assert "| expert:psnr · SS standard | " in rows and "| expert:ciede2000 · SS standard | " in rows


def test_a_study_run_with_no_dataset_given_reports_every_cell_missing(suite_dir, shared_cache):
    result = suite_dir.runpytest(f"--iqa-cache={shared_cache}", "--iqa-study", "-p", "no:randomly", "-rs")
    assert result.ret == pytest.ExitCode.OK
    cells = len(study.CELLS) * (len(STUDY_SYSTEMS) + 1)
    # The metamorphic checks are the suite's own, none of the study's: they have no cell to run.
    result.assert_outcomes(skipped=cells + 3)
    said = "--iqa-study runs the study's cells only; metamorphic checks are the suite's own"
    assert result.stdout.str().count(said) == 3
    result.stdout.fnmatch_lines(["*SKIPPED [[]40[]]*kadid10k not given: add --iqa-data kadid10k=PATH*"])
    report = json.loads((suite_dir.path / "reports" / "iqa-report.json").read_text())
    assert len(report["cells"]) == cells and report["run"]["outcomes"] == {"skipped": cells}
    assert [m["dataset"] for m in report["run"]["study"]["missing"]] == list(study.DATASETS)
