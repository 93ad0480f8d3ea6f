"""Sample selection: uniform by rank, the built-in's fine-grained subset, and difficult samples."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_datasets_mini import make_kadid

from iqa_eval.datasets.registry import load_dataset
from iqa_eval.evaluation.cells import subset_items
from iqa_eval.sampling import SelectionError, features, proxies, subsets, uniform
from iqa_eval.sampling.difficult import difficulty, greedy_diverse, select_difficult
from iqa_eval.sampling.features import HandcraftedFeatures, l2_rows
from iqa_eval.sampling.proxies import map_to_mos
from iqa_eval.types import CellSpec, Item, Stimulus

# -- items made in memory ---------------------------------------------------------------------


def make_item(index: int, score: float, group: str = "g", std: float | None = None, fr: bool = False) -> Item:
    stimulus = Stimulus(f"img{index}", f"hash{index}", 16, 16)
    return Item(
        id=f"item{index:03d}",
        dataset="mem",
        setting="fr" if fr else "nr",
        attribute="structure",
        image=stimulus,
        score=score,
        higher_is_better=True,
        group=group,
        reference=Stimulus(f"ref-{group}", f"refhash-{group}", 16, 16) if fr else None,
        std=std,
    )


def pixels_for(path: str) -> np.ndarray:
    """Deterministic content per path; references of different groups look different."""
    seed = sum(map(ord, path))
    return np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)


@dataclass(frozen=True)
class LookupProxy:
    """A proxy that knows each item's truth, except where told to be wrong."""

    wrong: frozenset[str] = frozenset()
    top: float = 0.0
    name: str = "lookup"
    higher_is_better: bool = True

    def __call__(self, item, reference, image) -> float:
        """The truth, or its mirror image on the scale for the items it gets wrong."""
        return self.top - item.score if item.id in self.wrong else item.score


# -- the greedy core --------------------------------------------------------------------------


def clustered_features(per_cluster: int, clusters: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(clusters), per_cluster)
    centres = np.eye(clusters)
    return l2_rows(centres[labels] + 0.05 * rng.standard_normal((labels.size, clusters))), labels


def test_with_exactly_right_proxies_the_selection_spreads_over_the_features():
    phi, labels = clustered_features(per_cluster=10, clusters=4)
    picks = greedy_diverse(np.zeros(len(labels)), phi, n=4)
    assert sorted(labels[picks]) == [0, 1, 2, 3]  # one from each cluster before any repeats
    # ... and that is the widest spread: mean pairwise cosine distance of the picks is maximal.
    spread = 1 - (phi[picks] @ phi[picks].T)[np.triu_indices(4, 1)].mean()
    assert spread > 0.9


def test_difficulty_outweighs_diversity_at_the_study_lambda():
    phi, _ = clustered_features(per_cluster=5, clusters=2)
    d = np.zeros(10)
    d[[1, 2, 3]] = [0.3, 0.5, 0.4]  # three hard items, all in the first cluster
    assert greedy_diverse(d, phi, n=3) == [2, 3, 1]


def test_without_lambda_it_is_a_ranking_by_difficulty_with_ties_to_the_lower_index():
    d = np.array([0.1, 0.5, 0.5, 0.2])
    assert greedy_diverse(d, l2_rows(np.eye(4)), n=4, lam=0.0) == [1, 2, 3, 0]


@settings(max_examples=60, derandomize=True, deadline=None)
@given(
    st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=40),
    st.integers(1, 60),
    st.integers(0, 2**16),
)
def test_greedy_picks_min_n_distinct_items_deterministically(d, n, seed):
    phi = l2_rows(np.random.default_rng(seed).standard_normal((len(d), 5)))
    picks = greedy_diverse(d, phi, n)
    assert len(picks) == min(n, len(d)) == len(set(picks))
    assert picks == greedy_diverse(d, phi, n)


def test_features_are_normalised_per_item_along_the_feature_axis():
    rows = np.array([[3.0, 4.0], [0.0, 2.0], [0.0, 0.0]])
    normed = l2_rows(rows)
    assert np.allclose(normed[:2], [[0.6, 0.8], [0.0, 1.0]]) and np.all(normed[2] == 0)
    # One item's vector never depends on the others (normalising over items would make it).
    assert np.allclose(l2_rows(rows[:1]), normed[:1])


def test_difficulty_is_the_squared_error_damped_by_rating_spread():
    d = difficulty([0.9, 0.9], [0.5, 0.5], [0.0, 1.0])
    assert d == pytest.approx([0.16, 0.08])


def test_a_lower_is_better_proxy_is_oriented_before_the_logistic():
    truth = np.linspace(0, 1, 30)
    raw = 5.0 - 4.0 / (1.0 + np.exp(-8.0 * (truth - 0.5)))  # a distance: lower is better
    predicted, fit = map_to_mos(raw, truth, "distance", higher_is_better=False)
    assert fit.fit == "logistic" and np.all(np.diff(predicted) > 0)  # rises with quality
    constant, fit = map_to_mos(np.ones(30), truth, "flat", higher_is_better=True)
    assert fit.fit == "constant" and np.all(constant == truth.mean())


# -- difficult selection on items -------------------------------------------------------------


def test_items_the_proxies_get_wrong_are_picked_first():
    items = [make_item(i, float(i), std=0.5) for i in range(40)]
    wrong = frozenset({"item002", "item030", "item036"})
    chosen = select_difficult(
        items, "nr", proxies=[LookupProxy(wrong, 39)], features=HandcraftedFeatures(), n=3, load=pixels_for
    )
    assert set(chosen.item_ids) == wrong
    assert chosen.difficulty == tuple(sorted(chosen.difficulty, reverse=True))
    assert chosen.fits[0].name == "lookup" and chosen.candidates == 40


@settings(max_examples=25, derandomize=True, deadline=None)
@given(
    st.lists(st.floats(0, 5, allow_nan=False), min_size=1, max_size=30),
    st.integers(1, 40),
    st.sets(st.integers(0, 29), max_size=5),
)
def test_a_selection_is_n_distinct_candidates_or_all_of_them(scores, n, wrong):
    items = [make_item(i, s, std=0.3) for i, s in enumerate(scores)]
    proxy = LookupProxy(frozenset(f"item{i:03d}" for i in wrong), 5.0)
    chosen = select_difficult(
        items, "nr", proxies=[proxy], features=HandcraftedFeatures(), n=n, load=pixels_for
    )
    assert len(chosen.item_ids) == min(n, len(items)) == len(set(chosen.item_ids))
    assert set(chosen.item_ids) <= {i.id for i in items} and all(d >= 0 for d in chosen.difficulty)


def test_rating_spread_makes_a_wrong_item_less_difficult():
    items = [make_item(i, float(i), std=0.1) for i in range(30)]
    items[3] = make_item(3, 3.0, std=3.0)  # people disagreed about this one
    wrong = frozenset({"item003", "item004"})
    chosen = select_difficult(
        items, "nr", proxies=[LookupProxy(wrong, 29)], features=HandcraftedFeatures(), n=1, load=pixels_for
    )
    assert chosen.item_ids == ("item004",)


def test_fr_picks_the_references_with_wrong_items_then_their_hardest_images():
    items = [
        make_item(100 * g + k, float(k), group=f"ref{g}", fr=True, std=0.2)
        for g in range(6)
        for k in range(12)
    ]
    wrong = frozenset({"item301", "item310", "item502"})
    chosen = select_difficult(
        items, "fr", proxies=[LookupProxy(wrong, 11)], features=HandcraftedFeatures(), n=20, load=pixels_for
    )
    assert chosen.groups[:10] == ("ref3",) * 10 and set(chosen.groups[10:]) == {"ref5"}
    assert set(chosen.item_ids[:2]) == {"item301", "item310"} and chosen.item_ids[10] == "item502"
    assert len(chosen.item_ids) == len(set(chosen.item_ids)) == 20


def test_selection_is_deterministic_and_independent_of_item_order():
    items = [make_item(i, float(i % 7), std=0.1 * (i % 3)) for i in range(25)]
    kwargs = {
        "proxies": [LookupProxy(frozenset({"item003", "item011"}), 6)],
        "features": HandcraftedFeatures(),
    }
    first = select_difficult(items, "nr", n=8, load=pixels_for, **kwargs)
    again = select_difficult(list(reversed(items)), "nr", n=8, load=pixels_for, **kwargs)
    assert first == again


def test_a_proxy_that_fails_names_the_item():
    def broken(item, reference, image):
        raise ValueError("image too small")

    proxy = type(
        "Broken", (), {"name": "broken", "higher_is_better": True, "__call__": staticmethod(broken)}
    )()
    with pytest.raises(SelectionError, match="item000: proxy broken failed: image too small"):
        select_difficult(
            [make_item(0, 1.0)], "nr", proxies=[proxy], features=HandcraftedFeatures(), load=pixels_for
        )


def test_expert_proxies_measure_large_photos_at_a_reduced_size():
    photo = np.random.default_rng(0).integers(0, 256, (1100, 1600, 3), dtype=np.uint8)
    assert proxies.shrink(photo).shape == (550, 800, 3)
    assert proxies.shrink(photo[:1000]).shape == (1000, 1600, 3)  # short side under 1024: as it is
    item = make_item(0, 1.0)
    proxy = proxies.ExpertProxy("sharpness")
    assert proxy(item, None, photo) == proxy(item, None, proxies.shrink(photo))


def test_unknown_proxies_and_features_are_refused_with_the_alternatives():
    with pytest.raises(SelectionError, match="'ms_ssim' is not a NR proxy"):
        proxies.expert_proxies("nr", ["ms_ssim"])
    with pytest.raises(SelectionError, match="use 'handcrafted' or 'hf:"):
        features.feature_extractor("clip")


def test_handcrafted_features_tell_content_apart():
    import skimage.data

    photo = np.ascontiguousarray(skimage.data.astronaut()[:128, :128])
    texture = np.repeat(skimage.data.brick()[:128, :128, None], 3, axis=2)
    shifted = np.roll(photo, 2, axis=1)
    phi = HandcraftedFeatures()([photo, shifted, texture])
    assert np.allclose(np.linalg.norm(phi, axis=1), 1.0)
    assert phi[0] @ phi[1] > 0.95 > phi[0] @ phi[2]


# -- stage 1 and the built-in's stage 2 -------------------------------------------------------


def test_uniform_keeps_small_sets_whole_and_spreads_large_ones():
    small = [make_item(i, float(i)) for i in range(100)]
    assert uniform.uniform(small, fr=False) == tuple(small)
    large = [make_item(i, float(i % 97)) for i in range(600)]
    sample = uniform.uniform(large, fr=False)
    scores = sorted(i.score for i in sample)
    assert len(sample) == 150 and scores[0] == 0 and scores[-1] == 96


def test_finegrained_drops_the_most_degraded_item_of_each_ladder():
    items = [make_item(10 * g + k, float(k), group=f"g{g}") for g in range(3) for k in range(5)]
    kept = uniform.finegrained(items)
    assert len(kept) == 12 and all(i.score > 0 for i in kept)


# -- the difficult subset of a dataset, cached ------------------------------------------------


@pytest.fixture(scope="module")
def kadid_content(tmp_path_factory):
    """A mini KADID-10k of real photo content, big enough for MS-SSIM."""
    return make_kadid(tmp_path_factory.mktemp("kadid"), refs=4, types=(1, 11), content=True)


def test_difficult_subset_of_a_public_dataset_is_selected_once_and_reused(
    kadid_content, tmp_path, monkeypatch
):
    from iqa_eval.datasets.public import SelectionOptions

    dataset = load_dataset("kadid10k", kadid_content, selection=SelectionOptions(cache_dir=tmp_path))
    assert subsets.stage2_subset(dataset) == "difficult"
    spec = CellSpec("expert", "kadid10k", "fr", "structure", "ss", "standard", "difficult")
    chosen = subset_items(dataset, spec)
    items = dataset.items("fr", "structure")
    assert len(chosen) == 30 and set(chosen) <= set(items)  # 3 test references x 10 images
    assert [i.id for i in chosen] == [i.id for i in items if i in chosen]  # dataset order
    (manifest_file,) = (tmp_path / "selections").glob("kadid10k-fr_structure-*.json")
    manifest = json.loads(manifest_file.read_text())
    assert manifest["dataset_digest"] == dataset.manifest_digest() and manifest["lambda"] == 0.01
    assert [p["name"] for p in manifest["proxies"]] == ["expert:ms_ssim", "expert:gmsd"]
    assert manifest["features"] == "handcrafted-v1" and manifest["n"] == 150
    assert {e["id"] for e in manifest["items"]} == {i.id for i in chosen}

    def no_second_selection(*args, **kwargs):
        raise AssertionError("selected again instead of reusing the manifest")

    monkeypatch.setattr(subsets, "select_difficult", no_second_selection)
    again = load_dataset("kadid10k", kadid_content, selection=SelectionOptions(cache_dir=tmp_path))
    assert subset_items(again, spec) == tuple(
        i for i in again.items("fr", "structure") if i.id in {c.id for c in chosen}
    )


def test_a_changed_score_file_makes_a_new_selection(kadid_content, tmp_path):
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(kadid_content, copy)
    request = subsets.SelectionRequest(n=10)
    before = load_dataset("kadid10k", copy)
    key = request.key(before, "nr", "structure")
    text = (copy / "dmos.csv").read_text().replace("4.7", "4.6", 1)
    (copy / "dmos.csv").write_text(text)
    after = load_dataset("kadid10k", copy)
    assert (
        after.manifest_digest() != before.manifest_digest() and request.key(after, "nr", "structure") != key
    )


def test_nr_difficult_selection_with_default_proxies(kadid_content):
    dataset = load_dataset("kadid10k", kadid_content)
    manifest = subsets.build_manifest(dataset, "nr", "structure", subsets.SelectionRequest(n=5))
    assert [p["name"] for p in manifest["proxies"]] == ["expert:niqe", "expert:sharpness"]
    assert len(manifest["items"]) == 5 and manifest["candidates"] == len(dataset.items("nr", "structure"))


def test_candidates_can_be_capped_with_a_seed(kadid_content):
    dataset = load_dataset("kadid10k", kadid_content)
    request = subsets.SelectionRequest(n=4, max_candidates=12, seed=3)
    first = subsets.build_manifest(dataset, "nr", "structure", request)
    again = subsets.build_manifest(dataset, "nr", "structure", request)
    assert first["candidates"] == again["candidates"] == 12
    # The choice is exact; the fitted numbers behind it may differ in the last digit between
    # calls (multithreaded BLAS reductions), so they are compared to rounding.
    assert [i["id"] for i in first["items"]] == [i["id"] for i in again["items"]]
    assert [i["difficulty"] for i in first["items"]] == pytest.approx(
        [i["difficulty"] for i in again["items"]]
    )


def test_the_select_command_writes_manifests_and_fills_the_cache(kadid_content, tmp_path, capsys):
    out = tmp_path / "subsets.json"
    args = argparse.Namespace(
        name="kadid10k", path=str(kadid_content), n=10, cell=["fr_structure"], features="handcrafted",
        proxy=None, seed=0, max_candidates=None, cache=str(tmp_path / "cache"), output=str(out),
    )  # fmt: skip
    assert subsets.cmd_select(args) == 0
    written = json.loads(out.read_text())
    assert [m["attribute"] for m in written["subsets"]] == ["structure"] and len(
        written["subsets"][0]["items"]
    ) == 10
    assert list((tmp_path / "cache" / "selections").glob("kadid10k-fr_structure-*.json"))
    assert "kadid10k fr_structure: 10 of 30 candidates" in capsys.readouterr().out


def test_the_select_command_reports_a_bad_cell_in_one_line(kadid_content, tmp_path, capsys):
    args = argparse.Namespace(
        name="kadid10k", path=str(kadid_content), n=10, cell=["fr_texture"], features="handcrafted",
        proxy=None, seed=0, max_candidates=None, cache=str(tmp_path), output=None,
    )  # fmt: skip
    assert subsets.cmd_select(args) == 2
    assert "kadid10k has no cell 'fr_texture'; its cells: fr_structure" in capsys.readouterr().err


def test_the_builtin_keeps_finegrained_for_stage_2(tmp_path):
    from iqa_eval.datasets.builtin import BuiltinDataset

    builtin = BuiltinDataset(tmp_path)  # nothing is generated: neither call needs its images
    assert subsets.stage2_subset(builtin) == "finegrained"
    with pytest.raises(SelectionError, match="no human opinion scores"):
        subsets.difficult_subset(builtin, "fr", "structure")


# -- CLIP features through transformers -------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    """A randomly initialised CLIP built from a config and saved: the real loading path, no hub."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers.models.clip import CLIPImageProcessorPil

    tok = Tokenizer(models.BPE(unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|startoftext|>", "<|endoftext|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(["a photo of a cat"], trainer)
    tokenizer = transformers.CLIPTokenizerFast(
        tokenizer_object=tok,
        unk_token=specials[1],
        bos_token=specials[0],
        eos_token=specials[1],
        pad_token=specials[1],
    )
    processor = transformers.CLIPProcessor(
        image_processor=CLIPImageProcessorPil(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ),
        tokenizer=tokenizer,
    )
    text = transformers.CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    )  # fmt: skip
    vision = transformers.CLIPVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
    )
    config = transformers.CLIPConfig(
        text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=8
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-clip")
    transformers.CLIPModel(config).save_pretrained(path)
    processor.save_pretrained(path)
    return path


def test_clip_features_are_unit_length_image_embeddings(tiny_clip):
    extractor = features.feature_extractor(f"hf:{tiny_clip}")
    assert extractor.name == f"hf:{tiny_clip}"
    images = [pixels_for(f"img{i}") for i in range(3)]
    phi = extractor(images)
    assert phi.shape == (3, 8) and np.allclose(np.linalg.norm(phi, axis=1), 1.0)
    assert np.allclose(extractor(images[:1]), phi[:1], atol=1e-5)  # per item, not per batch


def test_clip_features_drive_a_selection(tiny_clip):
    items = [make_item(i, float(i)) for i in range(12)]
    chosen = select_difficult(
        items, "nr", proxies=[LookupProxy()], features=features.feature_extractor(f"hf:{tiny_clip}"),
        n=4, load=pixels_for,
    )  # fmt: skip
    assert len(set(chosen.item_ids)) == 4 and chosen.features == f"hf:{tiny_clip}"


def test_a_missing_clip_model_is_a_selection_error(tmp_path):
    pytest.importorskip("transformers")
    extractor = features.feature_extractor(f"hf:{tmp_path / 'no-model'}")
    with pytest.raises(SelectionError, match="cannot load CLIP from"):
        extractor([pixels_for("x")])
