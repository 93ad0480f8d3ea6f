"""Public datasets inside the suite: ``--iqa-data``, the registry and its commands, Aug-KADID,
and the human-noise ceiling."""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

import numpy as np
import pytest
from test_datasets_mini import make_kadid, make_koniq, make_tqd
from test_report_schema import validate_report

from iqa_eval.datasets import registry
from iqa_eval.datasets.base import DatasetError
from iqa_eval.datasets.ceiling import noise_ceiling
from iqa_eval.datasets.registry import NAMES, SPECS, describe, load_dataset, verify
from iqa_eval.evaluation.config import OPTIONS, ConfigError, parse_data
from iqa_eval.images import load_rgb
from iqa_eval.sampling.make_aug_kadid import generate_aug_kadid
from iqa_eval.sampling.subsets import cmd_datasets_list, cmd_datasets_verify, cmd_make_aug_kadid
from iqa_eval.types import Item, Stimulus


@pytest.fixture(scope="module")
def kadid_photos(tmp_path_factory) -> Path:
    """A mini KADID-10k of photo content, large enough for the expert panel to judge."""
    return make_kadid(tmp_path_factory.mktemp("kadid"), refs=4, types=(1, 11, 4), content=True)


# -- the suite with a public dataset ----------------------------------------------------------


def test_iqa_data_adds_the_dataset_cells_next_to_the_builtin_ones(suite_dir, shared_cache, kadid_photos):
    result = suite_dir.runpytest(
        "test_protocols/test_systems.py",
        f"--iqa-cache={shared_cache}",
        f"--iqa-data=kadid10k={kadid_photos}",
        "-p",
        "no:randomly",
        "-m",
        "fr_structure and ss and standard",
    )
    report = json.loads((suite_dir.path / "reports" / "iqa-report.json").read_text())
    validate_report(report)
    cells = report["cells"]
    assert {c["id"] for c in cells} == {
        "expert/builtin/fr_structure/ss/standard/uniform",
        "expert/kadid10k/fr_structure/ss/standard/uniform",
    }
    kadid = next(c for c in cells if c["dataset"] == "kadid10k")
    assert kadid["n_items"] == 3 * 2 * 5 and kadid["coverage"] == 1.0 and kadid["outcome"] == "passed"
    assert kadid["metrics"]["srcc"]["aggregation"] == "local_mean"
    assert kadid["dataset_digest"] == load_dataset("kadid10k", kadid_photos).manifest_digest()
    # KADID publishes each image's rating variance and 30 ratings per image: the ceiling is known,
    # per reference like the cell's SRCC. The built-in ladders have no raters, so none.
    ceiling = kadid["noise_ceiling"]
    assert ceiling["aggregation"] == "local_mean" and ceiling["n"] == kadid["metrics"]["srcc"]["n"]
    assert 0 < ceiling["ci"][0] <= ceiling["value"] <= ceiling["ci"][1] <= 1
    builtin = next(c for c in cells if c["dataset"] == "builtin")
    assert builtin["noise_ceiling"] is None
    html = (suite_dir.path / "reports" / "iqa-report.html").read_text()
    assert html.count("human-noise ceiling (srcc)") == 1
    result.assert_outcomes(passed=2)


def test_stage_2_of_a_public_dataset_is_its_difficult_subset(suite_dir, shared_cache, kadid_photos):
    result = suite_dir.runpytest(
        "test_attributes",
        f"--iqa-cache={shared_cache}",
        f"--iqa-data=kadid10k={kadid_photos}",
        "--collect-only",
        "-q",
        "-m",
        "fr_structure",
    )
    result.stdout.fnmatch_lines(
        [
            "*expert/builtin/fr_structure/best/best/finegrained*",
            "*expert/kadid10k/fr_structure/best/best/difficult*",
        ]
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nosuch=/tmp", "unknown dataset 'nosuch'; known: kadid10k"),
        ("kadid10k", "expected NAME=PATH"),
        ("kadid10k=/no/such/folder", "/no/such/folder is not a directory"),
    ],
)
def test_a_bad_iqa_data_value_is_a_usage_error_without_traceback(suite_dir, value, message):
    result = suite_dir.runpytest(f"--iqa-data={value}", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*iqa-eval: data {value!r}: *{message}*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_a_broken_score_file_is_a_usage_error_naming_file_and_line(suite_dir, tmp_path):
    root = make_kadid(tmp_path / "kadid", refs=2, types=(1,))
    lines = (root / "dmos.csv").read_text().splitlines()
    lines[3] = "I01_01_03.png,I01.png,nan,0.3"
    (root / "dmos.csv").write_text("\n".join(lines) + "\n")
    result = suite_dir.runpytest(f"--iqa-data=kadid10k={root}", "--collect-only")
    assert result.ret != pytest.ExitCode.OK
    result.stdout.fnmatch_lines([f"*iqa-eval: {root / 'dmos.csv'}:4: dmos is 'nan'*"])


def test_data_specs_are_parsed_and_checked_before_loading(tmp_path):
    (tmp_path / "k").mkdir()
    assert parse_data(tmp_path, ["kadid10k=k", " tqd = k "]) == (("kadid10k", Path("k")), ("tqd", Path("k")))
    with pytest.raises(ConfigError, match="kadid10k is given twice"):
        parse_data(tmp_path, ["kadid10k=k", "kadid10k=k"])
    assert OPTIONS["data"][0] is list and OPTIONS["features"][1] == "handcrafted"


# -- registry and commands --------------------------------------------------------------------


def test_every_known_dataset_has_a_description_and_a_layout(capsys):
    listed = describe()
    assert [name for name, _, _ in listed] == list(NAMES)
    assert {
        "kadid10k",
        "aug_kadid",
        "tqd",
        "spcd",
        "spaq",
        "agiqa3k",
        "koniq10k",
        "tid2013",
        "csiq",
        "live_challenge",
    } == set(NAMES)
    assert cmd_datasets_list(argparse.Namespace()) == 0
    out = capsys.readouterr().out
    assert out.count("  layout: ") == len(NAMES) + 1 and "kadid10k: KADID-10k" in out  # + your own data


def test_each_dataset_module_has_one_spec_and_the_registry_lists_it():
    """Adding a dataset is its module and a line in the registry; forgetting the line fails here."""
    shared = {"__init__", "base", "public", "builtin", "ceiling", "registry", "custom"}
    modules = sorted(p.stem for p in Path(registry.__file__).parent.glob("*.py") if p.stem not in shared)
    specs = [importlib.import_module(f"iqa_eval.datasets.{m}").SPEC for m in modules]
    assert sorted(spec.name for spec in specs) == sorted(NAMES)
    assert len(set(NAMES)) == len(NAMES) == len(SPECS)


def test_an_unknown_name_is_a_dataset_error():
    with pytest.raises(DatasetError, match="unknown dataset 'kadid'; known: kadid10k, aug_kadid"):
        load_dataset("kadid", "/tmp")


def test_verify_reports_counts_against_the_published_dataset(tmp_path, capsys):
    root = make_tqd(tmp_path / "tqd")
    problems = verify("tqd", root)
    assert problems == [
        f"{root}: 12 scored images where the published tqd has 150",
        f"{root}: 3 references where the published tqd has 10",
        f"{root}: 3 reference(s) without exactly 15 images: 11-0.png, 12-0.png, 5-0.png",
    ]
    assert cmd_datasets_verify(argparse.Namespace(name="tqd", path=str(root), decode=False)) == 1
    assert capsys.readouterr().out.endswith("tqd at " + str(root) + ": 3 problem(s)\n")


def test_verify_with_decode_finds_a_corrupt_image(tmp_path):
    root = make_koniq(tmp_path / "koniq", images=4)
    (root / "1024x768" / "100002.jpg").write_bytes(b"not a jpeg")
    problems = verify("koniq10k", root, decode=True)
    assert problems[0] == f"{root}: 4 scored images where the published koniq10k has 10073"
    assert len(problems) == 2 and problems[1].startswith(
        f"{root / '1024x768' / '100002.jpg'}: not a recognised"
    )


def test_verify_returns_the_load_error_of_a_broken_copy(tmp_path, capsys):
    problems = verify("tqd", tmp_path)
    assert len(problems) == 1 and problems[0].startswith(
        f"{tmp_path / 'TQD_mos.txt'}: not found; the tqd loader"
    )
    assert cmd_datasets_verify(argparse.Namespace(name="nope", path=str(tmp_path), decode=False)) == 2
    assert "iqa-eval: unknown dataset 'nope'" in capsys.readouterr().err


# -- Aug-KADID --------------------------------------------------------------------------------


def test_aug_kadid_is_generated_from_kadid_with_seeded_reference_transforms(kadid_photos, tmp_path, capsys):
    out = tmp_path / "aug"
    assert cmd_make_aug_kadid(argparse.Namespace(kadid=str(kadid_photos), out=str(out), seed=7)) == 0
    assert capsys.readouterr().out.strip() == str(out)
    aug = load_dataset("aug_kadid", out)
    kadid = load_dataset("kadid10k", kadid_photos)
    assert aug.cells() == (("fr", "geometry"),) and aug.card.aggregation == "local_mean"
    source = {i.id.split("/")[1]: i for i in kadid.all_items("fr")}
    items = aug.all_items("fr")
    assert len(items) == len(source) == 60  # no more than the study's 150: all of them
    for item in items:
        original = source[item.id.split("/")[1]]
        assert item.score == original.score and item.std == pytest.approx(original.std)
        assert Path(item.reference.path).name == f"{item.group}_aug.png"
        assert load_rgb(item.image.path).tobytes() == load_rgb(original.image.path).tobytes()
        moved, pristine = load_rgb(item.reference.path), load_rgb(original.reference.path)
        assert moved.shape == pristine.shape and not np.array_equal(moved, pristine)
        assert {"ref_dx", "ref_dy", "ref_rotation_deg", "ref_scale"} <= set(item.meta_dict())
    again = generate_aug_kadid(kadid_photos, tmp_path / "again", seed=7)
    assert (again / "aug_kadid.csv").read_bytes() == (out / "aug_kadid.csv").read_bytes()
    assert cmd_make_aug_kadid(argparse.Namespace(kadid=str(kadid_photos), out=str(out), seed=7)) == 2
    assert "exists and is not empty" in capsys.readouterr().err


# -- the human-noise ceiling ------------------------------------------------------------------


def rated(scores, std: float | None, n: int | None, groups=None) -> list[Item]:
    meta = (("n_ratings", n),) if n is not None else ()
    return [
        Item(f"i{k}", "mem", "nr", "structure", Stimulus(f"p{k}", "h", 8, 8), float(s), True,
             groups[k] if groups else "all", std=std, meta=meta)
        for k, s in enumerate(scores)
    ]  # fmt: skip


def test_no_ceiling_without_a_rating_spread_or_count():
    scores = np.linspace(1, 5, 20)
    assert noise_ceiling(rated(scores, None, 30), seed=0) is None
    assert noise_ceiling(rated(scores, 0.5, None), seed=0) is None


def test_the_ceiling_falls_as_the_published_mos_gets_noisier():
    scores = np.linspace(1, 5, 60)
    precise = noise_ceiling(rated(scores, 0.8, 1000), seed=1)
    noisy = noise_ceiling(rated(scores, 0.8, 3), seed=1)
    assert precise is not None and noisy is not None
    assert 0.99 < precise.value <= 1.0 and noisy.value < precise.value - 0.02
    assert noisy.low < noisy.value < noisy.high and noisy.aggregation == "global" and noisy.n == 60
    assert "N(0, std^2 / n_ratings)" in noisy.note
    assert noise_ceiling(rated(scores, 0.8, 3), seed=1) == noisy  # the seed fixes it


def test_a_local_ceiling_averages_over_groups():
    scores = np.tile(np.linspace(1, 5, 10), 3)
    groups = [f"g{k // 10}" for k in range(30)]
    ceiling = noise_ceiling(rated(scores, 1.0, 10, groups), seed=0, local=True)
    assert ceiling is not None and ceiling.aggregation == "local_mean" and ceiling.n == 3


def test_koniq_items_carry_what_the_ceiling_needs(tmp_path):
    dataset = load_dataset("koniq10k", make_koniq(tmp_path, images=30))
    ceiling = noise_ceiling(dataset.all_items("nr"), seed=0)
    assert ceiling is not None and 0.5 < ceiling.value < 1.0
