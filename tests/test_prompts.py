"""Templates: the study's structure, stable hashes, and a version that moves with the text."""

import pytest

from iqa_eval.prompts import get_template, render, supports
from iqa_eval.prompts import templates as tpl
from iqa_eval.types import PROTOCOLS, SETTINGS, STRATEGIES

ALL = [(s, p, k) for s in SETTINGS for p in PROTOCOLS for k in STRATEGIES if supports(p, k)]
STUDY = [key for key in ALL if key[2] != "levels"]
LEVELS = [key for key in ALL if key[2] == "levels"]


def test_eighteen_distinct_templates_of_the_study_and_four_of_levels():
    texts = {get_template(*key).text for key in ALL}
    hashes = {get_template(*key).hash for key in ALL}
    assert len(STUDY) == 18 and len(LEVELS) == 4
    assert len(texts) == len(hashes) == 22


@pytest.mark.parametrize("key", LEVELS, ids=["-".join(k) for k in LEVELS])
def test_levels_templates_ask_for_one_token(key):
    setting, protocol, _ = key
    text = get_template(*key).text
    assert "Score:" not in text and "instead of declining" in text.splitlines()[-1]
    assert ("reference" in text) == (setting == "fr")
    if protocol == "ss":
        assert "one word" in text and "excellent, good, fair, poor or bad" in text
        assert "0 to 100" not in text
    else:
        assert "one digit" in text and "1 if" in text and "0 if" in text and "2 if" not in text


@pytest.mark.parametrize("setting", SETTINGS)
def test_multiple_stimulus_has_no_levels_system(setting):
    assert not supports("ms", "levels")
    with pytest.raises(ValueError, match="no prompting system"):
        get_template(setting, "ms", "levels")


@pytest.mark.parametrize("key", STUDY, ids=["-".join(k) for k in STUDY])
def test_structure_of_every_template(key):
    setting, protocol, strategy = key
    text = get_template(*key).text
    assert "Score:" in text
    assert "instead of declining" in text.splitlines()[-1]
    assert "noise" in text and "sharpness" in text and "colour" in text
    assert ("Description:" in text) == (strategy == "cot")
    assert ("worked example" in text) == (strategy == "icl")
    assert ("reference" in text) == (setting == "fr")
    if protocol == "ds":
        assert "1 if" in text and "0 if" in text and "2 if" in text
    if protocol == "ms":
        assert "0 (worst)" in text or "0 (furthest" in text


def test_ss_icl_label_is_rendered_and_required():
    template = get_template("nr", "ss", "icl")
    assert "score is 37." in render(template, "37")
    with pytest.raises(ValueError, match="needs demo label"):
        render(template)
    with pytest.raises(ValueError, match="takes no demo label"):
        render(get_template("nr", "ss", "standard"), "50")


def test_hash_changes_with_version(monkeypatch):
    before = get_template("fr", "ss", "standard").hash
    monkeypatch.setattr(tpl, "TEMPLATE_VERSION", tpl.TEMPLATE_VERSION + 1)
    after = tpl.Template("fr", "ss", "standard", get_template("fr", "ss", "standard").text).hash
    assert before != after


def test_unknown_system_is_refused():
    with pytest.raises(ValueError, match="no prompting system"):
        get_template("fr", "xs", "standard")
