"""The experts as models: answer format, verdicts, demonstrations, memo, reversal, errors."""

from __future__ import annotations

import asyncio
import io
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image
from skimage import data, filters, transform

from iqa_eval.experts import fr
from iqa_eval.experts.panel import EXPERTS, VERSION
from iqa_eval.images import ImageStore
from iqa_eval.models import expert as expert_model
from iqa_eval.models.base import PermanentModelError
from iqa_eval.models.expert import JUDGED_PER_PROTOCOL, ExpertModel, make_expert
from iqa_eval.protocols.ss import SS
from iqa_eval.types import (
    Answer,
    ImageRole,
    Judgement,
    Protocol,
    Query,
    QueryImage,
    Setting,
    Stimulus,
    Strategy,
)

Rgb = NDArray[np.uint8]


def _photo(name: str) -> Rgb:
    small = transform.resize(
        getattr(data, name)()[..., :3], (256, 256), anti_aliasing=True, preserve_range=True
    )
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)


def _blur(rgb: Rgb, sigma: float) -> Rgb:
    return np.clip(
        np.rint(filters.gaussian(rgb, sigma, channel_axis=-1, preserve_range=True)), 0, 255
    ).astype(np.uint8)


def _noise(rgb: Rgb, sigma: float) -> Rgb:
    noisy = rgb + np.random.default_rng(0).normal(0, sigma, rgb.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _jpeg(rgb: Rgb, quality: int) -> Rgb:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def _desaturate(rgb: Rgb, keep: float) -> Rgb:
    luma = fr.luminance(rgb)[..., None]
    return np.clip(np.rint(luma + keep * (rgb - luma)), 0, 255).astype(np.uint8)


def _shifted(rgb: Rgb) -> Rgb:
    """The reference moved by 3 px and turned by 2 degrees, a misalignment the panel must absorb."""
    centre = np.array([rgb.shape[1] - 1, rgb.shape[0] - 1]) / 2
    tform = (
        transform.SimilarityTransform(translation=-centre)
        + transform.SimilarityTransform(rotation=np.deg2rad(2.0))
        + transform.SimilarityTransform(translation=centre + np.array([3.0, -2.0]))
    )
    moved = transform.warp(rgb, tform, order=3, mode="edge", preserve_range=True)
    return np.clip(np.rint(moved), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Images:
    stimuli: dict[str, Stimulus]

    def __getitem__(self, name: str) -> Stimulus:
        return self.stimuli[name]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    folder = tmp_path_factory.mktemp("experts")
    clean = _photo("astronaut")
    other = _photo("coffee")
    arrays = {
        "clean": clean,
        "b1": _blur(clean, 1.0),
        "b2": _blur(clean, 2.0),
        "b3": _blur(clean, 3.0),
        "noisy": _noise(clean, 20),
        "jpeg": _jpeg(clean, 8),
        "grey": _desaturate(clean, 0.2),
        "shifted_ref": _shifted(clean),
        "demo_ref": other,
        "demo": _blur(other, 2.5),
    }
    stimuli = {}
    for name, array in arrays.items():
        path = Path(folder) / f"{name}.png"
        Image.fromarray(array).save(path)
        stimuli[name] = Stimulus(str(path), f"sha-{name}", array.shape[1], array.shape[0])
    return Images(stimuli)


def query(
    setting: Setting,
    protocol: Protocol,
    strategy: Strategy,
    judged: list[Stimulus],
    reference: Stimulus | None = None,
    demos: tuple[tuple[ImageRole, Stimulus], ...] = (),
) -> Query:
    roles: list[QueryImage] = [QueryImage(role, s) for role, s in demos]
    if reference is not None:
        roles.append(QueryImage("reference", reference))
    roles += [QueryImage("image", s) for s in judged]
    return Query(setting, protocol, strategy, "t", "h", "Rate the image.", tuple(roles))


def ask(model: ExpertModel, q: Query) -> str:
    answer: Answer = asyncio.run(model.answer(q))
    assert answer.ok and answer.text is not None
    assert answer.latency_s > 0
    return answer.text


def reference_for(setting: Setting, images: Images) -> Stimulus | None:
    return images["clean"] if setting == "fr" else None


@pytest.fixture(scope="module")
def expert() -> ExpertModel:
    return make_expert("expert")


SCORE = {
    "ss": re.compile(r"Score: (\d+\.\d)"),
    "ds": re.compile(r"Score: ([012])"),
    "ms": re.compile(r"Score: ([0-3]), ([0-3]), ([0-3]), ([0-3])"),
}


def score_of(text: str, protocol: Protocol) -> tuple[float, ...]:
    last = text.splitlines()[-1]
    match = SCORE[protocol].fullmatch(last)
    assert match, f"{last!r} is not a {protocol.upper()} score line"
    return tuple(float(g) for g in match.groups())


# ---------------------------------------------------------------- format and verdicts


@pytest.mark.parametrize("setting", ["fr", "nr"])
@pytest.mark.parametrize("strategy", ["standard", "cot"])
def test_single_stimulus_scores_clean_above_blurred(
    expert: ExpertModel, images: Images, setting: Setting, strategy: Strategy
) -> None:
    ref = reference_for(setting, images)
    scores = [
        score_of(ask(expert, query(setting, "ss", strategy, [images[n]], ref)), "ss")[0] for n in ("b1", "b3")
    ]
    assert 0 <= scores[1] < scores[0] <= 100


@pytest.mark.parametrize("setting", ["fr", "nr"])
@pytest.mark.parametrize("strategy", ["standard", "cot"])
def test_double_stimulus_picks_the_sharper_and_reports_ties(
    expert: ExpertModel, images: Images, setting: Setting, strategy: Strategy
) -> None:
    ref = reference_for(setting, images)

    def verdict(first: str, second: str) -> float:
        return score_of(
            ask(expert, query(setting, "ds", strategy, [images[first], images[second]], ref)), "ds"
        )[0]

    assert verdict("b1", "b2") == 1
    assert verdict("b3", "b1") == 0
    assert verdict("b2", "b2") == 2


@pytest.mark.parametrize("setting", ["fr", "nr"])
@pytest.mark.parametrize("strategy", ["standard", "cot"])
def test_multiple_stimulus_ranks_blur_ladder(
    expert: ExpertModel, images: Images, setting: Setting, strategy: Strategy
) -> None:
    ref = reference_for(setting, images)
    ladder = [images[n] for n in ("clean", "b1", "b2", "b3")]
    assert ask(expert, query(setting, "ms", strategy, ladder, ref)).endswith("Score: 3, 2, 1, 0")
    shuffled = [images[n] for n in ("b2", "clean", "b3", "b1")]
    assert score_of(ask(expert, query(setting, "ms", strategy, shuffled, ref)), "ms") == (1, 3, 0, 2)


@pytest.mark.parametrize("setting", ["fr", "nr"])
@pytest.mark.parametrize("strategy", ["standard", "icl", "cot"])
def test_answers_pass_the_suites_own_parsers(
    expert: ExpertModel, images: Images, setting: Setting, strategy: Strategy
) -> None:
    """The experts answer through the same parser as an MLLM; a format slip would be a failure there."""
    from iqa_eval.protocols.ds import DS
    from iqa_eval.protocols.ms import MS
    from iqa_eval.protocols.ss import SS

    ref = reference_for(setting, images)
    tied = [images[n] for n in ("b1", "b3", "b1", "b3")]
    cases: list[tuple[Protocol, Callable[[str, Setting], Judgement], list[Stimulus]]] = [
        ("ss", SS.parse, tied[:1]),
        ("ds", DS.parse, tied[:2]),
        ("ms", MS.parse, tied),
    ]
    for protocol, parser, judged in cases:
        text = ask(expert, query(setting, protocol, strategy, judged, ref))
        judgement = parser(text, setting)
        assert judgement.ok, (protocol, text, judgement.failure)
        assert judgement.values == score_of(text, protocol)
        assert (judgement.description != "") == (strategy == "cot")


def test_multiple_stimulus_ties_share_a_rank_in_fr_only(expert: ExpertModel, images: Images) -> None:
    """FR's format allows shared ranks; NR's demands each rank once, so presentation order breaks ties."""
    judged = [images[n] for n in ("b1", "b3", "b1", "b3")]
    assert ask(expert, query("fr", "ms", "standard", judged, images["clean"])) == "Score: 1, 0, 1, 0"
    assert ask(expert, query("nr", "ms", "standard", judged)) == "Score: 2, 0, 3, 1"


@pytest.mark.parametrize("setting", ["fr", "nr"])
def test_standard_answers_are_the_score_line_only(
    expert: ExpertModel, images: Images, setting: Setting
) -> None:
    ref = reference_for(setting, images)
    ss = ask(expert, query(setting, "ss", "standard", [images["b1"]], ref))
    assert re.fullmatch(r"Score: \d{1,3}\.\d", ss)
    ds = ask(expert, query(setting, "ds", "icl", [images["b1"], images["b2"]], ref))
    assert ds == "Score: 1"


@pytest.mark.parametrize("setting", ["fr", "nr"])
def test_cot_describes_measured_values_then_scores(
    expert: ExpertModel, images: Images, setting: Setting
) -> None:
    ref = reference_for(setting, images)
    judged = [images["b1"], images["b2"]]
    cot = ask(expert, query(setting, "ds", "cot", judged, ref)).split("\n")
    assert len(cot) == 2 and cot[0].startswith("Description: ")
    assert cot[1] == ask(expert, query(setting, "ds", "standard", judged, ref))
    assert "image 1" in cot[0] and "image 2" in cot[0]
    first_measure = "registered SSIM" if setting == "fr" else "NIQE"
    assert cot[0].count(first_measure) == 2
    single = ask(expert, query(setting, "ss", "cot", [images["b1"]], ref))
    assert "for the image" in single.split("\n")[0]


@pytest.mark.parametrize("setting", ["fr", "nr"])
@pytest.mark.parametrize("protocol", ["ss", "ds", "ms"])
def test_demonstration_images_are_ignored(
    expert: ExpertModel, images: Images, setting: Setting, protocol: Protocol
) -> None:
    ref = reference_for(setting, images)
    judged = [images[n] for n in ("b2", "clean", "b3", "b1")][: JUDGED_PER_PROTOCOL[protocol]]
    demos: tuple[tuple[ImageRole, Stimulus], ...] = (("demo", images["demo"]),)
    if setting == "fr":
        demos = (("demo_reference", images["demo_ref"]), *demos)
    plain = ask(expert, query(setting, protocol, "icl", judged, ref))
    assert ask(expert, query(setting, protocol, "icl", judged, ref, demos + demos)) == plain


def test_misaligned_reference_does_not_dominate_the_fr_panel(expert: ExpertModel, images: Images) -> None:
    shifted = images["shifted_ref"]
    ladder = [images[n] for n in ("clean", "b1", "b2", "b3")]
    assert ask(expert, query("fr", "ms", "standard", ladder, shifted)) == "Score: 3, 2, 1, 0"
    clean_score = score_of(ask(expert, query("fr", "ss", "standard", [images["clean"]], shifted)), "ss")[0]
    plain_ssim = score_of(
        ask(make_expert("expert:ssim"), query("fr", "ss", "standard", [images["clean"]], shifted)), "ss"
    )
    assert clean_score > 85 > 60 > plain_ssim[0]


# ---------------------------------------------------------------- single experts

OWN_DISTORTION = {
    "psnr": "b2",
    "ssim": "b2",
    "ms_ssim": "b2",
    "gmsd": "b2",
    "ciede2000": "grey",
    "registered_ssim": "b2",
    "sharpness": "b2",
    "noise": "noisy",
    "colourfulness": "grey",
    "blockiness": "jpeg",
    "niqe": "b2",
}


@pytest.mark.parametrize("name", sorted(EXPERTS))
def test_each_expert_prefers_clean_to_its_distortion(images: Images, name: str) -> None:
    model = make_expert(f"expert:{name}")
    setting = EXPERTS[name].setting
    ref = reference_for(setting, images)
    judged = [images["clean"], images[OWN_DISTORTION[name]]]
    assert ask(model, query(setting, "ds", "standard", judged, ref)) == "Score: 1"
    described = ask(model, query(setting, "ss", "cot", [images[OWN_DISTORTION[name]]], ref))
    assert EXPERTS[name].label.split(" {")[0] in described


@pytest.mark.parametrize("name", sorted(EXPERTS))
def test_expert_of_other_setting_is_unsupported(images: Images, name: str) -> None:
    model = make_expert(f"expert:{name}")
    other: Setting = "nr" if EXPERTS[name].setting == "fr" else "fr"
    with pytest.raises(PermanentModelError, match=f"expert:{name}") as info:
        ask(model, query(other, "ss", "standard", [images["b1"]], reference_for(other, images)))
    assert info.value.reason == "unsupported"


def test_wrong_image_counts_are_bad_requests(expert: ExpertModel, images: Images) -> None:
    with pytest.raises(PermanentModelError) as info:
        ask(expert, query("fr", "ds", "standard", [images["b1"]], images["clean"]))
    assert info.value.reason == "bad_request"
    with pytest.raises(PermanentModelError):
        ask(expert, query("fr", "ss", "standard", [images["b1"]]))  # FR without a reference


# ---------------------------------------------------------------- identity, reversal, registry


def test_specs_fingerprints_and_capabilities() -> None:
    assert make_expert("expert").fingerprint == f"expert:panel@{VERSION}"
    single = make_expert("expert:psnr")
    assert (single.spec, single.fingerprint) == ("expert:psnr", f"expert:psnr@{VERSION}")
    flipped = make_expert("expert:psnr", reverse=True)
    assert flipped.fingerprint != single.fingerprint
    assert single.capabilities.max_images is None and single.cacheable


@pytest.mark.parametrize("spec", ["expert:nope", "expert:", "experts", "gpt-4o"])
def test_unknown_spec_lists_valid_names(spec: str) -> None:
    with pytest.raises(ValueError, match=r"registered_ssim.*niqe"):
        make_expert(spec)


def test_reversed_model_answers_backwards(images: Images) -> None:
    forward, backward = make_expert("expert"), make_expert("expert", reverse=True)
    ladder = [images[n] for n in ("clean", "b1", "b2", "b3")]
    assert ask(backward, query("nr", "ms", "standard", ladder)) == "Score: 0, 1, 2, 3"
    assert ask(backward, query("fr", "ds", "standard", ladder[:2], images["clean"])) == "Score: 0"
    ss = [
        score_of(ask(m, query("nr", "ss", "standard", [images["b1"]])), "ss")[0] for m in (forward, backward)
    ]
    assert ss[0] + ss[1] == pytest.approx(100.0, abs=0.11)


# ---------------------------------------------------------------- memo


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, ...]]]:
    calls: list[tuple[str, ...]] = []
    original: Callable[..., dict[str, float]] = expert_model.measure

    def counting(
        members: tuple[str, ...], reference: Rgb | None, image: Rgb, *, registered: bool
    ) -> dict[str, float]:
        calls.append(members)
        return original(members, reference, image, registered=registered)

    monkeypatch.setattr(expert_model, "measure", counting)
    yield calls


PROTOCOL_FOR_COUNT: dict[int, Protocol] = {1: "ss", 2: "ds", 4: "ms"}


@pytest.mark.parametrize("setting", ["fr", "nr"])
def test_each_pair_is_measured_once_across_protocols_and_strategies(
    counted: list[tuple[str, ...]], images: Images, setting: Setting
) -> None:
    model = make_expert("expert", ImageStore())
    ref = reference_for(setting, images)
    ladder = [images[n] for n in ("clean", "b1", "b2", "b3")]
    for strategy in ("standard", "icl", "cot"):
        for judged in ([ladder[1]], ladder[:2], ladder[2:], ladder):
            ask(model, query(setting, PROTOCOL_FOR_COUNT[len(judged)], strategy, judged, ref))
    assert len(counted) == 4


def test_concurrent_askers_share_one_measurement(counted: list[tuple[str, ...]], images: Images) -> None:
    model = make_expert("expert:niqe")
    q = query("nr", "ss", "standard", [images["b1"]])

    async def many() -> list[Answer]:
        return await asyncio.gather(*(model.answer(q) for _ in range(8)))

    texts = {a.text for a in asyncio.run(many())}
    assert len(texts) == 1 and len(counted) == 1


@pytest.mark.parametrize("setting", ["fr", "nr"])
def test_measurements_kept_in_a_cache_dir_serve_another_process_and_a_reversed_panel(
    counted: list[tuple[str, ...]], images: Images, setting: Setting, tmp_path: Path
) -> None:
    """A second panel on the same directory (another xdist worker, a later run with new prompts)
    answers from the kept measurements, exactly as the one that measured them."""
    ref = reference_for(setting, images)
    ladder = [images[n] for n in ("b1", "b2", "b3", "noisy")]
    queries = [query(setting, "ms", "cot", ladder, ref), query(setting, "ss", "standard", [ladder[0]], ref)]
    first = make_expert("expert", ImageStore())
    first.use_cache_dir(tmp_path)
    answers = [ask(first, q) for q in queries]
    assert len(counted) == 4
    asyncio.run(first.aclose())

    again = make_expert("expert", ImageStore())
    again.use_cache_dir(tmp_path)
    assert [ask(again, q) for q in queries] == answers and len(counted) == 4
    reversed_panel = make_expert("expert", ImageStore(), reverse=True)
    reversed_panel.use_cache_dir(tmp_path)
    assert ask(reversed_panel, queries[1]) != answers[1] and len(counted) == 4
    other_expert = make_expert("expert:psnr" if setting == "fr" else "expert:niqe", ImageStore())
    other_expert.use_cache_dir(tmp_path)
    ask(other_expert, queries[1])  # another expert's values are its own
    assert len(counted) == 5


def test_a_changed_panel_version_measures_afresh(
    counted: list[tuple[str, ...]], images: Images, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    q = query("nr", "ss", "standard", [images["b2"]])
    for version in ("1", "2"):
        monkeypatch.setattr(expert_model, "VERSION", version)
        model = make_expert("expert:niqe", ImageStore())
        model.use_cache_dir(tmp_path)
        ask(model, q)
    assert len(counted) == 2


def _small_pair(tmp_path: Path, height: int, width: int) -> list[Stimulus]:
    small = np.full((height, width, 3), 120, dtype=np.uint8)
    small[::7] = 30
    paths = []
    for name, array in (("ref", small), ("img", 255 - small)):
        path = tmp_path / f"{name}.png"
        Image.fromarray(array).save(path)
        paths.append(Stimulus(str(path), f"sha-small-{name}-{height}x{width}", width, height))
    return paths


@pytest.mark.parametrize(("height", "width"), [(192, 192), (64, 64), (48, 96)])
def test_the_fr_panel_answers_on_images_too_small_for_five_ms_ssim_scales(
    tmp_path: Path, height: int, width: int
) -> None:
    """A dataset of 192 px crops got no answer at all when MS-SSIM demanded 176 px after the
    registration border was cut."""
    ref, img = _small_pair(tmp_path, height, width)
    answer = asyncio.run(make_expert("expert").answer(query("fr", "ss", "standard", [img], ref)))
    assert answer.error is None and answer.text is not None
    assert SS.parse(answer.text, "fr").ok


def test_stimuli_a_measure_cannot_take_are_a_failed_answer_not_a_crash(tmp_path: Path) -> None:
    ref, img = _small_pair(tmp_path, 30, 30)  # under one SSIM window once the border is cut
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # said in the answer, not warned by numpy
        answer = asyncio.run(make_expert("expert").answer(query("fr", "ss", "standard", [img], ref)))
    assert answer.text is None and answer.error == "expert_unsupported"
    assert answer.detail is not None and "too small for one SSIM window" in answer.detail
