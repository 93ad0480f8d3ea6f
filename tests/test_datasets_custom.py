"""Your own data in the generic CSV layout: reading it, every bad row, the commands, and its cells
inside the suite."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_report_schema import validate_report

from iqa_eval.datasets import registry
from iqa_eval.datasets.base import DatasetError
from iqa_eval.datasets.builtin import BuiltinDataset
from iqa_eval.datasets.ceiling import noise_ceiling
from iqa_eval.datasets.custom import CustomDataset
from iqa_eval.datasets.registry import load_dataset, source, verify
from iqa_eval.distortions import distort
from iqa_eval.evaluation.config import ConfigError, parse_data
from iqa_eval.sampling.subsets import cmd_datasets_list, cmd_datasets_verify

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
LEVELS = (1, 2, 3, 4, 5)


def photo(index: int) -> np.ndarray:
    """A 224 px crop of a bundled photo: the expert panel crops 12 px a side and MS-SSIM needs 176."""
    import skimage.data

    return np.ascontiguousarray(getattr(skimage.data, PHOTOS[index % len(PHOTOS)])()[:224, :224, :3])


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    return path


def make_custom(
    root: Path,
    *,
    fr: bool = True,
    score: str = "mos",
    kinds: tuple[tuple[str, str], ...] = (("blur", "structure"), ("saturation", "color")),
    attribute_column: bool = True,
    demo: bool = True,
    ratings: bool = True,
    photos: int = 4,
) -> Path:
    """labels.csv beside ref/ and dist/: each photo distorted at five levels per kind, scored by
    level (mos = 6 - level, dmos = level). The last photo's rows are split=demo when ``demo``."""
    (root / "ref").mkdir(parents=True, exist_ok=True)
    (root / "dist").mkdir(exist_ok=True)
    header = ["image", score]
    header += ["reference"] if fr else []
    header += ["attribute"] if attribute_column else []
    header += ["std", "n_ratings"] if ratings else []
    header += ["split"] if demo else []
    rows = []
    for index in range(photos):
        pristine = photo(index)
        reference = f"ref/{PHOTOS[index]}.png"
        Image.fromarray(pristine).save(root / reference)
        for kind, attribute in kinds:
            for level in LEVELS:
                image = f"dist/{PHOTOS[index]}_{kind}_{level}.png"
                Image.fromarray(distort(pristine, kind, level, index)).save(root / image)
                row = [image, str(6 - level if score == "mos" else level)]
                row += [reference] if fr else []
                row += [attribute] if attribute_column else []
                row += [f"{0.3 + 0.1 * level:.1f}", "25"] if ratings else []
                row += ["demo" if index == photos - 1 else ""] if demo else []
                rows.append(row)
    write_csv(root / "labels.csv", header, rows)
    return root


@pytest.fixture(scope="module")
def fr_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_custom(tmp_path_factory.mktemp("mine"))


# -- reading the layout -------------------------------------------------------------------------


def test_full_reference_mos_rows_make_local_fr_cells_with_their_demo_rows(fr_data):
    dataset = load_dataset("mine", fr_data)
    assert isinstance(dataset, CustomDataset) and dataset.name == "mine"
    assert dataset.cells() == (("fr", "structure"), ("fr", "color"))
    card = dataset.card
    assert card.higher_is_better and card.score_range == (1.0, 5.0) and card.aggregation == "local_mean"
    assert dataset.local_in("fr")
    items, pool = dataset.items("fr", "structure"), dataset.demo_pool("fr", "structure")
    assert len(items) == 3 * 5 and len(pool) == 5
    assert {i.group for i in pool} == {"ref/rocket.png"} and not {i.id for i in items} & {i.id for i in pool}
    first = items[0]
    assert first.id == "fr_structure/dist/astronaut_blur_1.png" and first.score == 5.0
    assert first.reference is not None and Path(first.reference.path) == fr_data / "ref/astronaut.png"
    assert first.group == "ref/astronaut.png" and first.std == pytest.approx(0.4)
    assert first.meta_dict() == {"split": "test", "n_ratings": 25}
    ceiling = noise_ceiling(items, seed=0, local=True)
    assert ceiling is not None and ceiling.n == 3 and 0 < ceiling.value <= 1


def test_no_reference_dmos_rows_make_a_global_nr_cell_where_lower_is_better(tmp_path):
    make_custom(tmp_path, fr=False, score="dmos", kinds=(("blur", "structure"),), demo=False, ratings=False)
    dataset = load_dataset("mine", tmp_path / "labels.csv")
    assert dataset.cells() == (("nr", "structure"),)
    assert not dataset.card.higher_is_better and dataset.card.aggregation == "global"
    assert "dmos, lower is better" in dataset.card.ground_truth
    items, pool = dataset.items("nr", "structure"), dataset.demo_pool("nr", "structure")
    # Without demo rows a global cell holds items out spread over the range, as public datasets do.
    assert len(items) + len(pool) == 20 and len(pool) == 5
    assert all(i.reference is None and i.group == "mine" for i in items + pool)
    worst = max(items, key=lambda i: i.score)
    assert worst.quality == min(i.quality for i in items) and worst.std is None
    assert noise_ceiling(items, seed=0) is None  # no std, no n_ratings: no ceiling


def test_an_attribute_for_the_whole_file_is_given_with_the_name(tmp_path):
    make_custom(tmp_path, kinds=(("saturation", "color"),), attribute_column=False, photos=2, demo=False)
    dataset = load_dataset("mine:color", tmp_path)
    assert dataset.name == "mine" and dataset.cells() == (("fr", "color"),)
    assert "attribute color for every row, given as mine:color" in dataset.card.provenance
    assert dataset.manifest_digest() != load_dataset("mine:texture", tmp_path).manifest_digest()
    with pytest.raises(DatasetError, match=r"'mine:colour': 'colour' after ':' is not an attribute"):
        load_dataset("mine:colour", tmp_path)
    with pytest.raises(
        DatasetError, match=r"labels.csv:1: no attribute column; add one .* as mine:<attribute>=PATH"
    ):
        load_dataset("mine", tmp_path)


def test_the_attribute_column_and_a_command_line_attribute_do_not_mix(fr_data):
    with pytest.raises(DatasetError, match=r"labels.csv:1: an attribute column, and mine:color names one"):
        load_dataset("mine:color", fr_data)


def test_the_digest_covers_the_csv_bytes(tmp_path):
    make_custom(tmp_path, kinds=(("blur", "structure"),), photos=2, demo=False)
    before = load_dataset("mine", tmp_path).manifest_digest()
    labels = tmp_path / "labels.csv"
    labels.write_text(
        labels.read_text().replace("dist/astronaut_blur_1.png,5", "dist/astronaut_blur_1.png,4.5")
    )
    assert load_dataset("mine", tmp_path).manifest_digest() != before


def test_groups_decide_the_aggregation(tmp_path):
    make_custom(tmp_path, kinds=(("blur", "structure"),), demo=False)
    labels = tmp_path / "labels.csv"
    lines = labels.read_text().splitlines()
    one_scale = [lines[0] + ",group"] + [line + ",all" for line in lines[1:]]
    labels.write_text("\n".join(one_scale) + "\n")
    dataset = load_dataset("mine", tmp_path)
    assert dataset.card.aggregation == "global" and not dataset.local_in("fr")
    assert {i.group for i in dataset.items("fr", "structure")} == {"all"}


# -- every bad row names its file and line --------------------------------------------------------


@pytest.fixture
def small(tmp_path) -> Path:
    """An NR color set of four test rows and four demo rows, valid as it stands."""
    for k in range(10):
        Image.fromarray(np.full((8, 8, 3), 20 * k, np.uint8)).save(tmp_path / f"{k}.png")
    rows = [[f"{k}.png", str(k + 1), "color", "" if k < 4 else "demo"] for k in range(8)]
    write_csv(tmp_path / "labels.csv", ["image", "mos", "attribute", "split"], rows)
    return tmp_path


def edit(root: Path, line: int, text: str) -> str:
    """Replace one line of labels.csv (1-based) and return the ``file:line`` it is at."""
    labels = root / "labels.csv"
    lines = labels.read_text().splitlines()
    lines[line - 1] = text
    labels.write_text("\n".join(lines) + "\n")
    return f"{labels}:{line}"


def test_the_small_set_loads(small):
    dataset = load_dataset("mine", small)
    assert len(dataset.items("nr", "color")) == 4 and len(dataset.demo_pool("nr", "color")) == 4


@pytest.mark.parametrize(
    ("line", "text", "message"),
    [
        (3, "nope.png,2,color,", "image nope.png not found under {root}"),
        (3, "/etc/passwd,2,color,", "image path '/etc/passwd' is absolute; paths must stay inside"),
        (3, "../0.png,2,color,", "image path '../0.png' climbs out of the dataset root with '..'"),
        (3, "1.png,two,color,", "mos 'two' is not a number"),
        (3, "1.png,nan,color,", "mos is 'nan'; scores must be finite numbers"),
        (3, "1.png,,color,", "mos is empty"),
        (3, "1.png,2,colour,", "attribute 'colour' is not one of structure, texture, color, geometry"),
        (3, "1.png,2,color,train", "split 'train' is not demo or test (or empty)"),
        (3, "0.png,2,color,", "nr_color image 0.png is listed again (first at {labels}:2)"),
        (3, "1.png,2,color", "3 field(s) where 4 are expected (image,mos,attribute,split)"),
        (
            1,
            "image,mos,attribute,split,comment",
            "unknown column 'comment'; the columns are image, mos or dmos",
        ),
        (1, "image,mos,dmos,attribute", "both mos and dmos; give exactly one"),
        (1, "image,score,attribute,split", "unknown column 'score'"),
        (1, "image,attribute,split", "neither mos nor dmos; give exactly one"),
        (1, "picture,mos,attribute,split", "unknown column 'picture'"),
        (1, "image,mos,attribute,mos", "column mos appears twice"),
    ],
)
def test_a_bad_row_is_an_error_naming_file_and_line(small, line, text, message):
    where = edit(small, line, text)
    expected = message.format(root=small, labels=small / "labels.csv")
    with pytest.raises(DatasetError) as caught:
        load_dataset("mine", small)
    assert str(caught.value).startswith(f"{where}: {expected}")


def test_a_link_pointing_outside_the_folder_is_refused(small, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere") / "x.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(outside)
    os.symlink(outside, small / "link.png")
    where = edit(small, 3, "link.png,2,color,")
    with pytest.raises(DatasetError) as caught:
        load_dataset("mine", small)
    assert str(caught.value) == (
        f"{where}: image link.png is a link to {outside}, outside the dataset root {small}"
    )


def test_rating_spread_and_count_are_checked(small):
    labels = small / "labels.csv"
    rows = [[f"{k}.png", str(k + 1), "color", "0.5", "20", "" if k < 4 else "demo"] for k in range(8)]
    write_csv(labels, ["image", "mos", "attribute", "std", "n_ratings", "split"], rows)
    assert load_dataset("mine", small).items("nr", "color")[0].meta_dict()["n_ratings"] == 20
    for text, message in [
        ("1.png,2,color,-0.1,20,", "std '-0.1' is negative"),
        ("1.png,2,color,inf,20,", "std is 'inf'; scores must be finite numbers"),
        ("1.png,2,color,0.5,0,", "n_ratings '0' is not a positive whole number"),
        ("1.png,2,color,0.5,2.5,", "n_ratings '2.5' is not a positive whole number"),
    ]:
        write_csv(labels, ["image", "mos", "attribute", "std", "n_ratings", "split"], rows)
        where = edit(small, 3, text)
        with pytest.raises(DatasetError) as caught:
            load_dataset("mine", small)
        assert str(caught.value) == f"{where}: {message}"


def test_fr_and_nr_rows_in_one_attribute_are_refused(small):
    labels = small / "labels.csv"
    rows = [[f"{k}.png", str(k + 1), "9.png", "color", "" if k < 4 else "demo"] for k in range(8)]
    rows[1][2] = ""
    write_csv(labels, ["image", "mos", "reference", "attribute", "split"], rows)
    with pytest.raises(DatasetError) as caught:
        load_dataset("mine", small)
    assert str(caught.value) == (
        f"{labels}:3: mixed FR/NR in one attribute: this color row has no reference, the color row at "
        f"{labels}:2 has a reference; the rows of one attribute are all FR or all NR"
    )


def test_fr_and_nr_rows_of_different_attributes_make_two_settings(small):
    labels = small / "labels.csv"
    rows = [[f"{k}.png", str(k + 1), "9.png", "color", "" if k < 4 else "demo"] for k in range(8)]
    rows += [[f"{k}.png", str(k + 1), "", "texture", "" if k < 4 else "demo"] for k in range(8)]
    write_csv(labels, ["image", "mos", "reference", "attribute", "split"], rows)
    dataset = load_dataset("mine", small)
    assert dataset.cells() == (("fr", "color"), ("nr", "texture"))
    assert dataset.items("fr", "color")[0].reference is not None
    assert dataset.items("nr", "texture")[0].reference is None


def test_an_empty_file_and_a_header_without_rows_are_refused(small):
    labels = small / "labels.csv"
    labels.write_text("image,mos,attribute\n")
    with pytest.raises(DatasetError, match=r"labels.csv: no rows; the layout is a CSV file"):
        load_dataset("mine", small)
    labels.write_text("")
    with pytest.raises(DatasetError, match=r"labels.csv: empty file"):
        load_dataset("mine", small)


def test_a_cell_too_small_to_measure_is_refused_with_the_reason(small):
    labels = small / "labels.csv"
    edit(small, 5, "3.png,4,color,demo")  # three test items left
    with pytest.raises(DatasetError) as caught:
        load_dataset("mine", small)
    assert str(caught.value) == (
        f"{labels}: cell nr_color has 3 comparable test item(s); every cell needs 4 (MS ranks 4 at a time)"
    )


def test_too_few_demonstrations_are_refused_with_the_fix(small):
    labels = small / "labels.csv"
    edit(small, 9, "7.png,6,color,demo")  # two demo rows share one score
    with pytest.raises(DatasetError) as caught:
        load_dataset("mine", small)
    assert str(caught.value) == (
        f"{labels}: cell nr_color has its split=demo rows give at most 3 distinct score(s) in one group; "
        "the in-context systems show 4 (mark a group of 4 or more rows of distinct scores split=demo)"
    )


# -- names, the command line and the commands ----------------------------------------------------


def test_a_name_must_be_new_and_plain(small):
    with pytest.raises(DatasetError, match=r"'kadid10k:color': kadid10k is a public dataset"):
        source("kadid10k:color", small)
    with pytest.raises(DatasetError, match=r"'builtin': builtin is the built-in dataset"):
        source("builtin", small)
    with pytest.raises(DatasetError, match=r"dataset name 'my data': use letters, digits, '-' and '_'"):
        source("my data", small)
    with pytest.raises(DatasetError, match=r"unknown dataset 'mine'; known: kadid10k, .*neither"):
        source("mine", small / "0.png")
    assert source("my-data_2:color", small / "labels.csv") == "my-data_2"
    assert BuiltinDataset(small / "cache").name == registry.BUILTIN


def test_iqa_data_takes_your_csv_with_or_without_an_attribute(small):
    parsed = parse_data(small, ["mine=labels.csv", "other:texture=."])
    assert parsed == (("mine", Path("labels.csv")), ("other:texture", Path(".")))
    with pytest.raises(ConfigError, match=r"data 'mine:color=.': mine is given twice"):
        parse_data(small, ["mine=.", "mine:color=."])
    with pytest.raises(
        ConfigError, match=r"data 'mine=nowhere': unknown dataset 'mine'; .* a folder holding"
    ):
        parse_data(small, ["mine=nowhere"])


def test_datasets_verify_checks_your_csv(small, capsys):
    ok = argparse.Namespace(name="mine", path=str(small), decode=True)
    assert cmd_datasets_verify(ok) == 0
    assert capsys.readouterr().out.endswith(f"mine at {small}: ok\n")
    (small / "2.png").write_bytes(b"not a png")
    problems = verify("mine", small, decode=True)
    assert len(problems) == 1 and problems[0].startswith(f"{small / '2.png'}: not a recognised")
    where = edit(small, 3, "1.png,2,colour,")
    assert cmd_datasets_verify(ok) == 1
    out = capsys.readouterr().out
    assert f"{where}: attribute 'colour' is not one of" in out and out.endswith("1 problem(s)\n")
    missing = argparse.Namespace(name="mine", path=str(small / "nothing"), decode=False)
    assert cmd_datasets_verify(missing) == 2
    assert "for your own data, PATH must be a .csv file" in capsys.readouterr().err


def test_datasets_list_documents_the_layout(capsys):
    assert cmd_datasets_list(argparse.Namespace()) == 0
    out = capsys.readouterr().out
    assert "your own data: --iqa-data NAME=PATH, or NAME:ATTRIBUTE=PATH" in out
    for column in ("image", "mos", "dmos", "reference", "attribute", "group", "std", "n_ratings", "split"):
        assert column in out.split("your own data:")[1]


# -- inside the suite ---------------------------------------------------------------------------


def test_your_cells_run_next_to_the_builtin_ones_with_the_same_markers(suite_dir, shared_cache, fr_data):
    result = suite_dir.runpytest(
        "test_protocols/test_systems.py",
        f"--iqa-cache={shared_cache}",
        f"--iqa-data=mine={fr_data / 'labels.csv'}",
        "-p",
        "no:randomly",
        "-m",
        "fr_color and (ss and standard or ms and icl)",
    )
    report = json.loads((suite_dir.path / "reports" / "iqa-report.json").read_text())
    validate_report(report)
    cells = {c["id"]: c for c in report["cells"]}
    assert set(cells) == {
        "expert/builtin/fr_color/ss/standard/uniform",
        "expert/builtin/fr_color/ms/icl/uniform",
        "expert/mine/fr_color/ss/standard/uniform",
        "expert/mine/fr_color/ms/icl/uniform",
    }
    mine = cells["expert/mine/fr_color/ss/standard/uniform"]
    assert mine["n_items"] == 15 and mine["coverage"] == 1.0 and mine["outcome"] == "passed"
    assert mine["metrics"]["srcc"]["aggregation"] == "local_mean" and mine["metrics"]["srcc"]["value"] > 0.8
    assert mine["dataset_digest"] == load_dataset("mine", fr_data).manifest_digest()
    ceiling = mine["noise_ceiling"]
    assert ceiling is not None and ceiling["n"] == 3 and 0 < ceiling["value"] <= 1
    assert cells["expert/mine/fr_color/ms/icl/uniform"]["outcome"] == "passed"
    result.assert_outcomes(passed=4)


def test_a_bad_row_stops_the_run_naming_file_and_line(suite_dir, small):
    where = edit(small, 3, "1.png,2,colour,")
    result = suite_dir.runpytest(f"--iqa-data=mine={small}", "--collect-only")
    assert result.ret != pytest.ExitCode.OK
    result.stdout.fnmatch_lines([f"*iqa-eval: {where}: attribute 'colour' is not one of*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
