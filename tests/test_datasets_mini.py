"""Miniature copies of the public datasets in their published layouts, and each loader on them.

The builders write tiny images (16x16 noise unless asked for content) and score files in the
real formats, so every loader is exercised on the exact file names, columns and encodings it
will meet on a user's disk. Other test modules import the builders from here.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import io as scipy_io

from iqa_eval.datasets.registry import load_dataset

SIZE = 16


def write_image(path: Path, seed: int, size: int = SIZE, base: np.ndarray | None = None) -> None:
    """Noise (or ``base`` plus a little seeded noise) saved in the format the suffix names."""
    rng = np.random.default_rng(seed)
    if base is None:
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    else:
        pixels = np.clip(base.astype(int) + rng.integers(-3, 4, base.shape), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def kadid_mos(ref: int, kind: int, level: int) -> float:
    """Falls with the level; references and types shift it a little, so scores are not tied."""
    return round(4.8 - 0.75 * (level - 1) - 0.03 * kind + 0.01 * ref, 3)


def make_kadid(
    root: Path, refs: int = 3, types: tuple[int, ...] = (1, 4, 11, 16), content: bool = False
) -> Path:
    """kadid10k as unzipped: dmos.csv (dist_img,ref_img,dmos,var) and images/."""
    from iqa_eval.distortions import distort

    images = root / "images"
    rows = [["dist_img", "ref_img", "dmos", "var"]]
    kinds = {1: "blur", 4: "saturation", 9: "jpeg", 11: "noise", 16: "cast"}
    for ref in range(1, refs + 1):
        ref_name = f"I{ref:02d}.png"
        reference = _content(ref) if content else None
        images.mkdir(parents=True, exist_ok=True)
        if reference is None:
            write_image(images / ref_name, 1000 + ref)
        else:
            Image.fromarray(reference).save(images / ref_name)
        for kind in types:
            for level in range(1, 6):
                name = f"I{ref:02d}_{kind:02d}_{level:02d}.png"
                if reference is None:
                    write_image(images / name, ref * 1000 + kind * 10 + level)
                else:
                    Image.fromarray(distort(reference, kinds[kind], level, ref)).save(images / name)
                rows.append([name, ref_name, str(kadid_mos(ref, kind, level)), f"{0.2 + 0.05 * level:.3f}"])
    _write_csv(root / "dmos.csv", rows)
    return root


def _content(ref: int) -> np.ndarray:
    """A 224x224 photo crop, different per reference: the expert panel registers the pair and
    crops 12 px from each side, and MS-SSIM then needs 176 px."""
    import skimage.data

    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    photo = photos[(ref - 1) % len(photos)]
    return np.ascontiguousarray(photo[:224, :224, :3])


def make_tqd(root: Path, textures: tuple[int, ...] = (5, 11, 12), versions: int = 4) -> Path:
    lines = []
    for texture in textures:
        write_image(root / "images" / f"{texture}-0.png", texture)
        for k in range(1, versions + 1):
            write_image(root / "images" / f"{texture}-{k}.png", texture * 100 + k)
            lines.append(
                f"images/{texture}-0.png\timages/{texture}-{k}.png\t{0.9 - 0.1 * k + 0.001 * texture:.5f}"
            )
    (root / "TQD_mos.txt").write_text("\n".join(lines) + "\n")
    return root


def make_spcd(root: Path, scenes: int = 3, versions: int = 4, std: bool = False) -> Path:
    header = ["image1", "image2", "score"] + (["std"] if std else [])
    rows = [header]
    for scene in range(1, scenes + 1):
        names = [f"I{scene:04d}_01_{v:02d}.png" for v in range(1, versions + 1)]
        for v, name in enumerate(names):
            write_image(root / "images" / name, scene * 10 + v)
        for a in range(versions):
            for b in range(a + 1, versions):
                row = [names[a], names[b], f"{1.5 + a + 2 * b + 0.01 * scene:.4f}"]
                rows.append(row + ([f"{0.7 + 0.01 * b:.3f}"] if std else []))
    _write_csv(root / "train_data.csv", rows)
    return root


def spaq_row(index: int) -> list[object]:
    mos = 10.0 + 7.5 * index
    return [f"{index:05d}.jpg", mos, 40.0 + index, 90.0 - 3 * index, 50.0, 60.0, 20.0 + 4 * index]


def make_spaq(root: Path, images: int = 12) -> Path:
    openpyxl = pytest.importorskip("openpyxl")

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"])
    for index in range(1, images + 1):
        row = spaq_row(index)
        write_image(root / "TestImage" / str(row[0]), index)
        sheet.append(row)
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    book.save(root / "Annotations" / "MOS and Image attribute scores.xlsx")
    return root


def make_agiqa(root: Path, images: int = 12) -> Path:
    rows = [
        ["name", "prompt", "adj1", "adj2", "style", "mos_quality", "std_quality", "mos_align", "std_align"]
    ]
    for index in range(images):
        name = f"{'midjourney' if index % 2 else 'AttnGAN'}_normal_{index:03d}.jpg"
        write_image(root / "AGIQA-3K" / name, index)
        prompt = f"a cat, number {index}, anime style"  # a comma inside: the field is quoted
        rows.append([name, prompt, "", "", "anime style", f"{0.5 + 0.3 * index:.4f}", "0.5", "1.0", "0.4"])
    _write_csv(root / "data.csv", rows)
    return root


def koniq_votes(index: int) -> list[int]:
    return [index % 3, 5 + index % 4, 20, 40 + index, 10 + 2 * index]


def make_koniq(root: Path, images: int = 12) -> Path:
    rows = [["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "MOS_zscore"]]
    for index in range(images):
        name = f"{100000 + index}.jpg"
        write_image(root / "1024x768" / name, index)
        votes = koniq_votes(index)
        total = sum(votes)
        mos = sum(k * c for k, c in enumerate(votes, start=1)) / total
        rows.append([name, *map(str, votes), str(total), f"{mos:.6f}", "0.8", f"{25 * mos - 25:.4f}"])
    _write_csv(root / "koniq10k_scores_and_distributions.csv", rows)
    return root


def make_tid2013(root: Path, refs: int = 3, types: tuple[int, ...] = (1, 8, 18)) -> Path:
    mos_lines, std_lines = [], []
    for ref in range(1, refs + 1):
        write_image(root / "reference_images" / f"I{ref:02d}.BMP", ref)  # upper case, as the archive has it
        for kind in types:
            for level in range(1, 6):
                name = f"i{ref:02d}_{kind:02d}_{level}.bmp"
                write_image(root / "distorted_images" / name, ref * 100 + kind * 10 + level)
                mos_lines.append(f"{6.5 - level + 0.01 * kind + 0.001 * ref:.5f} {name}")
                std_lines.append(f"{0.5 + 0.02 * level:.5f}")
    (root / "mos_with_names.txt").write_text("\r\n".join(mos_lines) + "\r\n")  # Windows line ends
    (root / "mos_std.txt").write_text("\n".join(std_lines) + "\n")
    return root


CSIQ_REFS = ("1600", "bridge", "woman")


def make_csiq(root: Path, refs: tuple[str, ...] = CSIQ_REFS, codes: tuple[int, ...] = (1, 3, 6)) -> Path:
    from iqa_eval.datasets.csiq import TYPES

    openpyxl = pytest.importorskip("openpyxl")

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "all_by_image"
    sheet.append(["image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos"])
    for r, ref in enumerate(refs):
        write_image(root / "src_imgs" / f"{ref}.png", r)
        for code in codes:
            folder, tag = TYPES[code]
            for level in range(1, 5):
                write_image(
                    root / "dst_imgs" / folder / f"{ref}.{tag}.{level}.png", r * 100 + code * 10 + level
                )
                image: object = int(ref) if ref.isdigit() else ref  # Excel keeps 1600 as a number
                sheet.append(
                    [
                        image,
                        code,
                        folder.lower(),
                        level,
                        0.05,
                        round(0.1 * level + 0.01 * code + 0.001 * r, 4),
                    ]
                )
    book.save(root / "csiq.DMOS.xlsx")
    return root


def make_livec(root: Path, images: int = 10) -> Path:
    names = [f"t{k}.bmp" for k in range(1, 8)] + [f"{100 + k}.bmp" for k in range(images)]
    for k in range(1, 8):
        write_image(root / "Images" / "trainingImages" / f"t{k}.bmp", k)
    for k in range(images):
        write_image(root / "Images" / f"{100 + k}.bmp", 100 + k)
    mos = np.array([[50.0] * 7 + [20.0 + 6 * k for k in range(images)]])
    std = np.array([[10.0] * 7 + [12.0 + 0.5 * k for k in range(images)]])
    data = root / "Data"
    data.mkdir(parents=True, exist_ok=True)
    cells = np.empty((len(names), 1), dtype=object)
    for i, name in enumerate(names):
        cells[i, 0] = np.array([name])
    scipy_io.savemat(data / "AllImages_release.mat", {"AllImages_release": cells})
    scipy_io.savemat(data / "AllMOS_release.mat", {"AllMOS_release": mos})
    scipy_io.savemat(data / "AllStdDev_release.mat", {"AllStdDev_release": std})
    return root


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)


# -- each loader on its miniature -------------------------------------------------------------


def test_kadid_reads_dmos_as_a_higher_is_better_mos_and_maps_types_to_attributes(tmp_path):
    dataset = load_dataset("kadid10k", make_kadid(tmp_path))
    assert dataset.cells() == (("fr", "structure"), ("fr", "color"), ("nr", "structure"), ("nr", "color"))
    assert dataset.card.higher_is_better and dataset.card.score_range == (1.0, 5.0)
    assert dataset.local_in("fr") and not dataset.local_in("nr")
    fr = dataset.items("fr", "structure") + dataset.demo_pool("fr", "structure")
    assert len(fr) == 3 * 2 * 5  # types 1 (blur) and 11 (noise); 4 and 16 are colour
    assert {i.meta_dict()["type"] for i in dataset.items("fr", "color")} == {4, 16}
    first = next(i for i in fr if i.id == "fr_structure/I01_01_01")
    assert first.score == kadid_mos(1, 1, 1) and first.quality == first.score
    assert first.std == pytest.approx(math.sqrt(0.25)) and first.meta_dict()["n_ratings"] == 30
    assert first.group == "I01" and Path(first.reference.path).name == "I01.png"
    assert first.meta_dict()["category"] == "blur" and first.meta_dict()["level"] == 1
    # The last reference is the FR demonstration pool; NR keeps a few items spread over quality.
    assert {i.group for i in dataset.demo_pool("fr", "structure")} == {"I03"}
    nr = dataset.items("nr", "structure")
    assert all(i.reference is None and i.group == "kadid10k" for i in nr)
    assert not {i.id for i in nr} & {i.id for i in dataset.demo_pool("nr", "structure")}
    assert len(nr) + len(dataset.demo_pool("nr", "structure")) == 30


def test_stimuli_read_their_pixel_hash_and_size_on_first_use(tmp_path):
    from iqa_eval.images import ImageStore, load_rgb, pixel_hash

    store = ImageStore()
    dataset = load_dataset("kadid10k", make_kadid(tmp_path, refs=2, types=(1,)), store=store)
    item = dataset.items("fr", "structure")[0]
    assert store.decode_count == 0
    assert item.image.sha256 == pixel_hash(load_rgb(item.image.path))
    assert (item.image.width, item.image.height) == (SIZE, SIZE) and store.decode_count == 1


def test_tqd_groups_versions_by_texture(tmp_path):
    dataset = load_dataset("tqd", make_tqd(tmp_path))
    assert dataset.cells() == (("fr", "texture"),)
    items = dataset.items("fr", "texture")
    assert {i.group for i in items} == {"11", "12"} and {
        i.group for i in dataset.demo_pool("fr", "texture")
    } == {"5"}
    item = next(i for i in items if i.id == "fr_texture/11-2")
    assert item.score == pytest.approx(0.711) and Path(item.reference.path).name == "11-0.png"


def test_spcd_is_a_colour_difference_flipped_explicitly(tmp_path):
    dataset = load_dataset("spcd", make_spcd(tmp_path, std=True))
    assert dataset.cells() == (("fr", "color"),) and not dataset.card.higher_is_better
    items = dataset.items("fr", "color")
    worse = max(items, key=lambda i: i.score)
    assert worse.quality == -worse.score and worse.std is not None
    assert worse.group == "I0002" and Path(worse.reference.path).name == worse.meta_dict()["image1"]
    assert dataset.card.score_range == (min(i.score for i in dataset.all_items("fr")), 1.5 + 2 + 6 + 0.03)


def test_spaq_gives_mos_colourfulness_and_sharpness_cells(tmp_path):
    dataset = load_dataset("spaq", make_spaq(tmp_path))
    assert dataset.cells() == (("nr", "structure"), ("nr", "texture"), ("nr", "color"))
    by_cell = {
        a: {i.id.split("/")[1]: i for i in dataset.all_items("nr") if i.attribute == a}
        for _, a in dataset.cells()
    }
    _, mos, _, colourful, _, _, sharp = spaq_row(3)
    assert by_cell["structure"]["00003"].score == mos
    assert by_cell["color"]["00003"].score == colourful and by_cell["texture"]["00003"].score == sharp
    assert by_cell["structure"]["00003"].meta_dict()["noisiness"] == 60.0
    assert all(i.std is None for i in dataset.all_items("nr"))


def test_agiqa_reads_quoted_prompts_and_quality_std(tmp_path):
    dataset = load_dataset("agiqa3k", make_agiqa(tmp_path))
    item = next(i for i in dataset.all_items("nr") if i.id == "nr_structure/midjourney_normal_001")
    assert item.score == pytest.approx(0.8) and item.std == 0.5
    assert (
        item.meta_dict()["prompt"] == "a cat, number 1, anime style"
        and item.meta_dict()["generator"] == "midjourney"
    )


def test_koniq_derives_std_and_count_from_the_vote_histogram(tmp_path):
    dataset = load_dataset("koniq10k", make_koniq(tmp_path))
    item = next(i for i in dataset.all_items("nr") if i.id == "nr_structure/100004")
    votes = koniq_votes(4)
    ratings = np.repeat(np.arange(1, 6), votes)
    assert item.std == pytest.approx(ratings.std(ddof=1)) and item.meta_dict()["n_ratings"] == sum(votes)
    assert item.score == pytest.approx(ratings.mean(), abs=1e-6)


def test_tid2013_reads_names_and_stds_in_step_and_finds_upper_case_references(tmp_path):
    dataset = load_dataset("tid2013", make_tid2013(tmp_path))
    assert dataset.cells() == (("fr", "structure"), ("fr", "color"))
    assert {i.meta_dict()["type"] for i in dataset.all_items("fr") if i.attribute == "color"} == {18}
    item = next(i for i in dataset.all_items("fr") if i.id == "fr_structure/i02_08_3")
    assert item.score == pytest.approx(6.5 - 3 + 0.08 + 0.002) and item.std == pytest.approx(0.56)
    assert Path(item.reference.path).name == "I02.BMP"


def test_csiq_reads_the_excel_sheet_as_dmos_higher_worse(tmp_path):
    dataset = load_dataset("csiq", make_csiq(tmp_path))
    assert dataset.cells() == (("fr", "structure"),) and not dataset.card.higher_is_better
    items = dataset.all_items("fr")
    assert len(items) == 3 * 3 * 4
    item = next(i for i in items if i.id == "fr_structure/1600.jpeg2000.2")
    assert item.score == pytest.approx(0.2 + 0.03) and item.quality == -item.score and item.std == 0.05
    assert Path(item.image.path).parent.name == "jpeg2000" and item.group == "1600"


def test_live_challenge_leaves_out_the_seven_training_images(tmp_path):
    dataset = load_dataset("live_challenge", make_livec(tmp_path))
    items = dataset.all_items("nr")
    assert len(items) == 10 and not any(i.id.startswith("nr_structure/t") for i in items)
    item = next(i for i in items if i.id == "nr_structure/103")
    assert item.score == 38.0 and item.std == 13.5
