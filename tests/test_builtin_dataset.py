"""The embedded default dataset: layout, ground truth, demonstrations, and verification."""

from __future__ import annotations

import shutil
from collections import defaultdict

import numpy as np
import pytest

from iqa_eval.datasets.builtin import LADDERS, BuiltinDataset
from iqa_eval.images import load_rgb, pixel_hash
from iqa_eval.types import ATTRIBUTES, SETTINGS


def test_every_setting_and_attribute_has_a_ladder(builtin):
    assert set(builtin.cells()) == {(s, a) for s in SETTINGS for a in ATTRIBUTES}


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("attribute", ATTRIBUTES)
def test_items_form_complete_ladders(builtin, setting, attribute):
    items = builtin.items(setting, attribute)
    ladder = LADDERS[(setting, attribute)]
    assert len(items) == len(ladder.contents) * len(ladder.types) * 5
    assert len({i.id for i in items}) == len(items)
    groups = defaultdict(list)
    for item in items:
        groups[item.group].append(item.score)
        assert (item.reference is not None) == (setting == "fr")
        assert not item.higher_is_better and item.quality == -item.score
    assert all(sorted(scores) == [1, 2, 3, 4, 5] for scores in groups.values())


def test_demonstrations_never_share_content_with_test_items(builtin):
    for setting, attribute in builtin.cells():
        test_hashes = {i.image.sha256 for i in builtin.items(setting, attribute)}
        test_refs = {i.reference.sha256 for i in builtin.items(setting, attribute) if i.reference}
        for demo in builtin.demo_pool(setting, attribute):
            assert demo.image.sha256 not in test_hashes
            assert demo.reference is None or demo.reference.sha256 not in test_refs
            assert demo.meta_dict()["content"] not in LADDERS[(setting, attribute)].contents


def test_stimulus_hashes_match_the_pixels_on_disk(builtin):
    for item in builtin.items("nr", "color")[:10]:
        assert pixel_hash(load_rgb(item.image.path)) == item.image.sha256
        assert (item.image.width, item.image.height) == (256, 256)


def test_fr_geometry_references_are_misaligned_copies(builtin):
    plain = {i.group: i.reference for i in builtin.items("fr", "structure")}
    for item in builtin.items("fr", "geometry")[:8]:
        assert item.reference.sha256 != plain[item.group].sha256
        assert item.image.sha256 in {i.image.sha256 for i in builtin.items("fr", "structure")}
        meta = item.meta_dict()
        assert abs(meta["ref_dx"]) <= 4 and abs(meta["ref_rotation_deg"]) <= 3


def test_colour_items_record_a_growing_ciede2000(builtin):
    by_group = defaultdict(dict)
    for item in builtin.items("fr", "color"):
        by_group[item.group][item.score] = item.meta_dict()["ciede2000"]
    for group, de in by_group.items():
        values = [de[level] for level in (1, 2, 3, 4, 5)]
        assert values == sorted(values) and values[0] > 0, group


def test_a_damaged_copy_is_rebuilt_not_trusted(builtin, tmp_path):
    copy_root = tmp_path / "datasets" / builtin.root.name
    shutil.copytree(builtin.root, copy_root)
    victim = copy_root / "color" / "chelsea-hue-3.png"
    victim.write_bytes(victim.read_bytes()[:200])
    with pytest.warns(UserWarning, match="do not match the manifest"):
        items = BuiltinDataset(tmp_path).items("nr", "color")
    rebuilt = next(i for i in items if i.id == "nr_color/chelsea/hue/3")
    assert np.array_equal(
        load_rgb(rebuilt.image.path), load_rgb(builtin.root / "color" / "chelsea-hue-3.png")
    )


def test_digest_identifies_the_manifest(builtin):
    assert len(builtin.manifest_digest()) == 16
