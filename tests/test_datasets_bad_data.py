"""The bad-data catalogue: every kind of damage stops with an error naming the file and line.

Score files are checked completely at load; images are checked to exist at load and decoded on
first use, when a damaged one raises an ImageError naming it and the line that listed it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from scipy import io as scipy_io
from test_datasets_mini import make_csiq, make_kadid, make_livec, make_spaq, make_tid2013, make_tqd

from iqa_eval.datasets.base import DatasetError
from iqa_eval.datasets.registry import load_dataset
from iqa_eval.images import ImageError


def kadid(tmp_path: Path) -> Path:
    return make_kadid(tmp_path / "kadid", refs=2, types=(1,))


def edit_line(path: Path, number: int, new: str) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = new
    path.write_text("\n".join(lines) + "\n")


def raises_at(where: str) -> pytest.RaisesExc[DatasetError]:
    return pytest.raises(DatasetError, match=re.escape(where))


def test_a_missing_image_names_the_score_line(tmp_path):
    root = kadid(tmp_path)
    (root / "images" / "I01_01_02.png").unlink()
    with raises_at(f"{root / 'dmos.csv'}:3: image images/I01_01_02.png not found"):
        load_dataset("kadid10k", root)


def test_a_missing_reference_names_the_score_line(tmp_path):
    root = kadid(tmp_path)
    (root / "images" / "I02.png").unlink()
    with raises_at(f"{root / 'dmos.csv'}:7: reference images/I02.png not found"):
        load_dataset("kadid10k", root)


def test_a_corrupt_image_fails_on_first_use_naming_the_file_and_the_line(tmp_path):
    root = kadid(tmp_path)
    broken = root / "images" / "I01_01_03.png"
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    dataset = load_dataset("kadid10k", root)  # the score file is sound: loading succeeds
    item = next(i for i in dataset.items("fr", "structure") if i.id.endswith("I01_01_03"))
    with pytest.raises(ImageError, match=re.escape(f"{broken}: truncated or corrupt")) as caught:
        _ = item.image.sha256
    assert f"listed at {root / 'dmos.csv'}:4" in str(caught.value)


def test_a_row_with_too_few_fields_is_refused(tmp_path):
    root = kadid(tmp_path)
    edit_line(root / "dmos.csv", 3, "I01_01_02.png,I01.png,4.1")
    with raises_at(f"{root / 'dmos.csv'}:3: 3 field(s) where 4 are expected"):
        load_dataset("kadid10k", root)


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", ""])
def test_a_non_finite_or_empty_score_is_refused(tmp_path, value):
    root = kadid(tmp_path)
    edit_line(root / "dmos.csv", 4, f"I01_01_03.png,I01.png,{value},0.3")
    with raises_at(f"{root / 'dmos.csv'}:4: dmos"):
        load_dataset("kadid10k", root)


def test_a_score_that_is_not_a_number_is_refused(tmp_path):
    root = kadid(tmp_path)
    edit_line(root / "dmos.csv", 2, "I01_01_01.png,I01.png,good,0.3")
    with raises_at(f"{root / 'dmos.csv'}:2: dmos 'good' is not a number"):
        load_dataset("kadid10k", root)


def test_a_duplicate_name_points_at_both_lines(tmp_path):
    root = kadid(tmp_path)
    edit_line(root / "dmos.csv", 5, "I01_01_01.png,I01.png,3.0,0.3")
    with raises_at(
        f"{root / 'dmos.csv'}:5: dist_img I01_01_01.png is listed again (first at {root / 'dmos.csv'}:2)"
    ):
        load_dataset("kadid10k", root)


def test_a_wrong_header_names_the_missing_columns(tmp_path):
    root = kadid(tmp_path)
    edit_line(root / "dmos.csv", 1, "dist_img,ref_img,mos,var")
    with raises_at(f"{root / 'dmos.csv'}:1: header dist_img,ref_img,mos,var lacks dmos"):
        load_dataset("kadid10k", root)


def test_a_name_outside_the_published_scheme_is_refused(tmp_path):
    root = kadid(tmp_path)
    edit_line(root / "dmos.csv", 2, "I01_26_01.png,I01.png,3.0,0.3")
    with raises_at(f"{root / 'dmos.csv'}:2: I01_26_01.png names type 26"):
        load_dataset("kadid10k", root)


def test_a_path_climbing_out_of_the_root_is_refused(tmp_path):
    root = make_tqd(tmp_path / "tqd")
    (tmp_path / "5-1.png").write_bytes((root / "images" / "5-1.png").read_bytes())
    edit_line(root / "TQD_mos.txt", 1, "images/5-0.png\t../5-1.png\t0.8")
    with raises_at(f"{root / 'TQD_mos.txt'}:1: image path '../5-1.png' climbs out of the dataset root"):
        load_dataset("tqd", root)


def test_an_absolute_path_is_refused(tmp_path):
    root = make_tqd(tmp_path / "tqd")
    outside = tmp_path / "5-1.png"
    outside.write_bytes((root / "images" / "5-1.png").read_bytes())
    edit_line(root / "TQD_mos.txt", 1, f"images/5-0.png\t{outside}\t0.8")
    with raises_at(f"{root / 'TQD_mos.txt'}:1: image path '{outside}' is absolute"):
        load_dataset("tqd", root)


def test_a_symlink_pointing_out_of_the_root_is_refused(tmp_path):
    root = make_tqd(tmp_path / "tqd")
    outside = tmp_path / "elsewhere.png"
    image = root / "images" / "11-2.png"
    outside.write_bytes(image.read_bytes())
    image.unlink()
    image.symlink_to(outside)
    with raises_at(
        f"{root / 'TQD_mos.txt'}:6: image images/11-2.png is a link to {outside}, outside the dataset root"
    ):
        load_dataset("tqd", root)


def test_a_symlink_inside_the_root_is_fine(tmp_path):
    root = make_tqd(tmp_path / "tqd")
    image = root / "images" / "11-2.png"
    (root / "copy.png").write_bytes(image.read_bytes())
    image.unlink()
    image.symlink_to(root / "copy.png")
    assert len(load_dataset("tqd", root).all_items("fr")) == 12


def test_a_missing_score_file_says_which_layout_is_expected(tmp_path):
    root = kadid(tmp_path)
    (root / "dmos.csv").unlink()
    with raises_at(
        f"{root / 'dmos.csv'}: not found; the kadid10k loader expects the extracted kadid10k archive"
    ):
        load_dataset("kadid10k", root)


def test_a_missing_folder_is_refused(tmp_path):
    with raises_at(f"{tmp_path / 'nowhere'}: not a directory"):
        load_dataset("kadid10k", tmp_path / "nowhere")


def test_tid2013_std_file_out_of_step_is_refused(tmp_path):
    root = make_tid2013(tmp_path / "tid", refs=2, types=(1,))
    lines = (root / "mos_std.txt").read_text().splitlines()
    (root / "mos_std.txt").write_text("\n".join(lines[:-1]) + "\n")
    with raises_at(f"{root / 'mos_std.txt'}: 9 values for the 10 images"):
        load_dataset("tid2013", root)


def test_a_spreadsheet_cell_that_is_not_a_number_names_sheet_and_row(tmp_path):
    root = make_csiq(tmp_path / "csiq", refs=("1600", "bridge"), codes=(1,))
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.load_workbook(root / "csiq.DMOS.xlsx")
    book["all_by_image"]["F4"] = "n/a"
    book.save(root / "csiq.DMOS.xlsx")
    with raises_at(f"{root / 'csiq.DMOS.xlsx'} (sheet 'all_by_image', row 4): dmos 'n/a' is not a number"):
        load_dataset("csiq", root)


def test_a_spreadsheet_without_a_published_column_is_refused(tmp_path):
    root = make_spaq(tmp_path / "spaq", images=4)
    openpyxl = pytest.importorskip("openpyxl")
    path = root / "Annotations" / "MOS and Image attribute scores.xlsx"
    book = openpyxl.load_workbook(path)
    book.active["G1"] = "Sharp"
    book.save(path)
    with raises_at("(sheet 'Sheet', row 1): header lacks Sharpness"):
        load_dataset("spaq", root)


def test_matlab_files_of_different_lengths_are_refused(tmp_path):
    root = make_livec(tmp_path / "livec", images=4)
    scipy_io.savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": np.ones((1, 5))})
    with raises_at("11 names, 5 MOS values and 11 stds"):
        load_dataset("live_challenge", root)


def test_a_nan_in_a_matlab_file_names_the_entry(tmp_path):
    root = make_livec(tmp_path / "livec", images=4)
    mos = np.full((1, 11), 50.0)
    mos[0, 9] = np.nan
    scipy_io.savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": mos})
    with raises_at(f"{root / 'Data' / 'AllMOS_release.mat'} (entry 10): MOS is"):
        load_dataset("live_challenge", root)
