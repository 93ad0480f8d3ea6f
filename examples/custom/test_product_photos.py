"""Our own capability tests: behaviours the model under test must show on our photos.

Run (from the repository root, with the images' CSV registered as the dataset ``products``):

    pytest examples/custom --iqa-data products=examples/custom

Each test runs once per ``--iqa-model``; everything the model is asked goes through the run's
cache, budget and identity checks, and lands in the JSON and HTML reports under the test's id.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

IMAGES = Path(__file__).resolve().parent / "images"


def photo(name: str, level: int = 0) -> Path:
    return IMAGES / f"{name}-{level}.png"


def test_a_blurred_photo_scores_below_the_sharp_one(iqa_model):
    sharp = iqa_model.ask_score(photo("coffee", 0))
    blurred = iqa_model.ask_score(photo("coffee", 3))
    assert blurred.score < sharp.score


def test_the_sharp_photo_is_preferred_in_either_order(iqa_model):
    assert iqa_model.ask_preference(photo("chelsea", 0), photo("chelsea", 3)).preference == "a"
    assert iqa_model.ask_preference(photo("chelsea", 3), photo("chelsea", 0)).preference == "b"


def test_the_sharp_photo_is_ranked_first_among_its_blurred_versions(iqa_model):
    ranks = iqa_model.ask_ranking([photo("astronaut", level) for level in (2, 0, 3, 1)]).ranking
    # One rank per image in the order given, 0 = worst: the sharp one (second) must be ranked best.
    assert ranks[1] == 3


def test_heavier_noise_is_further_from_the_reference(iqa_model):
    # Images made in the test itself: arrays go to the model as they are, compared with a reference.
    reference = np.asarray(Image.open(photo("chelsea")).convert("RGB"))
    rng = np.random.default_rng(7)

    def noisy(sigma: float) -> np.ndarray:
        return np.clip(reference + rng.normal(0, sigma, reference.shape), 0, 255).astype(np.uint8)

    light = iqa_model.ask_score(noisy(5), reference=reference)
    heavy = iqa_model.ask_score(noisy(40), reference=reference)
    assert heavy.score < light.score


@pytest.mark.iqa_evaluate(dataset="products", setting="nr", attribute="structure", protocol="ss")
def test_our_photos_are_judged_like_our_raters_judged_them(iqa_evaluate):
    # A whole cell on our own data: every test item of the CSV, scored and correlated with the
    # MOS, gated by the run's gate profile (better than chance with confidence by default). The
    # marker declares the cell, so its queries go out with everything else before tests run.
    result = iqa_evaluate(dataset="products", setting="nr", attribute="structure", protocol="ss")
    result.check()
