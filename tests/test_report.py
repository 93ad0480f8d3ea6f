"""The HTML report and the terminal table, rendered from synthetic cell records."""

from __future__ import annotations

import base64
import io
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from test_report_schema import make_cell, make_report, validate_report

from iqa_eval.report.html import render_html, state, worst_judged
from iqa_eval.report.plots import THUMBNAIL_PX
from iqa_eval.report.records import cell_record
from iqa_eval.report.summary import summary_lines
from iqa_eval.types import CellResult, CellSpec, Item, MetricValue, Prediction, Stimulus

PAYLOAD = "<script>document.title='PWNED'</script><img src=x onerror=alert(1)>"


def _known_gap() -> dict:
    gate = {**make_cell()["gate"], "known_gap": "no measure sees hue"}
    return make_cell(setting="nr", outcome="failed", gate=gate)


def _ds_cell(balance: str = "position_balance") -> dict:
    metrics = {
        "srcc": {"value": 0.7, "ci": [0.5, 0.9], "n": 2, "aggregation": "local_mean", "note": ""},
        "consistency": {"value": 0.875, "ci": [0.8, 0.95], "n": 40, "aggregation": "rate", "note": ""},
        balance: {"value": 0.625, "ci": [0.5, 0.75], "n": 80, "aggregation": "rate", "note": ""},
    }
    return make_cell(protocol="ds", metrics=metrics)


def test_the_page_is_self_contained_and_runs_no_script():
    page = render_html(make_report([make_cell(), _ds_cell()]))
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and "url(http" not in page
    assert "default-src 'none'" in page  # the CSP forbids fetches and scripts
    srcs = re.findall(r'src="([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)


def test_model_text_is_escaped_everywhere_it_appears():
    examples = [
        {"query": "q1", "items": ["g0/1"], "text": PAYLOAD, "failure": "unparseable"},
        {"query": "q2", "items": ["g0/2"], "text": PAYLOAD, "failure": None},
    ]
    cell = make_cell(examples=examples, n_failed={"unparseable": 1}, coverage=5 / 6)
    page = render_html(make_report([cell]))
    assert "<script>document" not in page and "<img src=x" not in page
    # both answers, and the failed one again in the failure ledger as its reason's example
    assert page.count("&lt;script&gt;document.title=&#39;PWNED&#39;&lt;/script&gt;") == 3


def test_summary_grid_has_one_square_per_cell_coloured_by_outcome():
    cells = [make_cell(), make_cell(strategy="cot", outcome="failed"), _known_gap(), _ds_cell()]
    page = render_html(make_report(cells))
    grid = page[page.index('<table class="grid">') : page.index("<h1>Cells</h1>")]
    assert len(re.findall(r'<td class="(passed|failed|known-gap)[^"]*" title=', grid)) == 4
    assert 'class="failed" title="m/builtin/fr_color/ss/cot/uniform: failed"' in grid
    assert "nr_color/ss/standard/uniform: known gap" in grid
    assert "0.900<br>" in grid and "[0.800, 1.000]" in grid


def test_known_gaps_are_shown_apart_from_plain_failures():
    gap, failed = _known_gap(), make_cell(strategy="cot", outcome="failed")
    assert state(gap) == ("known gap", "known-gap") and state(failed) == ("failed", "failed")
    page = render_html(make_report([gap, failed]))
    attention = page[page.index("Needs attention") : page.index("<h1>Summary</h1>")]
    assert "fr_color/ss/cot/uniform" in attention and "nr_color" not in attention
    assert '<span class="badge known-gap">1 known gap</span>' in page
    assert "Known gap (expected to fail): no measure sees hue" in page


def test_a_regression_is_flagged_even_on_a_known_gap():
    baseline = {"baseline_value": 0.5, "delta": -0.3, "ci": [-0.4, -0.2], "p_value": 0.001, "regressed": True}
    baseline |= {"metric": "srcc", "now_value": 0.2, "n_units": 2, "unit": "groups", "tolerance": 0.02}
    cell = {**_known_gap(), "baseline": {**baseline, "note": ""}}
    validate_report(make_report([cell]))
    assert state(cell)[0] == "failed"
    page = render_html(make_report([cell]))
    assert "Baseline REGRESSED: srcc 0.500 → 0.200, Δ -0.300" in page and "regressed" in page


@pytest.mark.parametrize("balance", ["position_balance", "bias"])  # "bias": reports before the rename
def test_double_stimulus_cells_show_consistency_and_position_balance(balance):
    page = render_html(make_report([_ds_cell(balance)]))
    assert "no preference for a position; the 2AFC study's position bias P_b" in page
    assert "Order consistency</b> 0.875 [0.800, 0.950]" in page
    assert "position balance</b> 0.625 [0.500, 0.750]" in page


def test_best_prompting_system_lists_the_ranking():
    selected = {"rule": "highest mean", "srcc": 0.8, "ranking": [["ds/cot", 0.8], ["ss/standard", 0.6]]}
    stage2 = make_cell(stage=2, protocol="ds", strategy="cot", subset="finegrained", selected_by=selected)
    page = render_html(make_report([make_cell(), stage2]))
    best = page[page.index("<h1>Best prompting systems</h1>") : page.index("<h1>Cells</h1>")]
    assert "<b>ds/cot</b> (0.800)" in best and "ds/cot 0.800 · ss/standard 0.600" in best
    grid = page[page.index('<table class="grid">') : page.index("</table>")]
    assert '<th colspan="1">stage 2 · finegrained</th>' in grid and "<th>best system</th>" in grid
    assert '<span class="ci">ds/cot</span>' in grid


def test_scatter_plot_per_cell_and_every_cell_gets_one_h2():
    cells = [make_cell(), make_cell(strategy="cot", predictions=[])]
    page = render_html(make_report(cells))
    assert page.count("<h2") == 2
    assert page.count('alt="prediction against ground truth"') == 1


def _png(path, size, colour):
    Image.new("RGB", size, colour).save(path)
    return str(path)


def test_worst_judged_stimuli_become_small_thumbnails_and_missing_files_say_so(tmp_path):
    big, small = _png(tmp_path / "a.png", (256, 200), "red"), _png(tmp_path / "c.png", (64, 64), "blue")
    predictions = [
        {"item": "a", "truth": 1.0, "predicted": 4.0, "group": "g", "image": big},
        {"item": "b", "truth": 2.0, "predicted": 3.0, "group": "g", "image": str(tmp_path / "gone.png")},
        {"item": "c", "truth": 3.0, "predicted": 2.0, "group": "g", "image": small},
        {"item": "d", "truth": 4.0, "predicted": 1.0, "group": "g", "image": None},
    ]
    page = render_html(make_report([make_cell(predictions=predictions)]))
    styles = dict(re.findall(r"\.(t\d+)\{background-image:url\(data:image/png;base64,([^)]*)\)\}", page))
    sizes = {Image.open(io.BytesIO(base64.b64decode(b))).size for b in styles.values()}
    assert sizes == {(THUMBNAIL_PX, 75), (64, 64)}  # downscaled, never upscaled
    shown = page[page.index("Worst-judged stimuli") :]
    assert shown.index("truth rank 4, model rank 1 of 4") < shown.index("truth rank 3, model rank 2 of 4")
    assert shown.count("no image") == 2 and 'aria-label="a"' in shown and 'aria-label="c"' in shown


def test_the_same_stimulus_is_embedded_once_however_many_cells_show_it(tmp_path):
    image = _png(tmp_path / "a.png", (32, 32), "green")
    predictions = [
        {"item": "a", "truth": 1.0, "predicted": 2.0, "group": "g", "image": image},
        {"item": "b", "truth": 2.0, "predicted": 1.0, "group": "g", "image": None},
    ]
    cells = [make_cell(strategy=s, predictions=predictions) for s in ("standard", "icl", "cot")]
    page = render_html(make_report(cells))
    assert len(re.findall(r"\.t\d+\{background-image", page)) == 1
    assert page.count('class="thumb t0"') == 3


rankings = st.lists(st.integers(-1000, 1000), min_size=2, max_size=12, unique=True)


@settings(max_examples=60, deadline=None)
@given(truth=rankings)
def test_worst_judged_is_empty_for_a_perfect_ranking_and_finds_a_swap(truth):
    perfect = [
        {"item": str(k), "truth": t, "predicted": 2 * t + 1, "group": "g"} for k, t in enumerate(truth)
    ]
    cell = make_cell(predictions=perfect)
    assert worst_judged(cell) == []
    order = sorted(range(len(truth)), key=lambda k: truth[k])
    lowest, highest = order[0], order[-1]
    swapped = [dict(p) for p in perfect]
    swapped[lowest]["predicted"], swapped[highest]["predicted"] = (
        perfect[highest]["predicted"],
        perfect[lowest]["predicted"],
    )
    worst = worst_judged(make_cell(predictions=swapped))
    assert {w["item"] for w in worst[:2]} == {str(lowest), str(highest)}


def test_records_carry_each_predictions_stimulus_path():
    spec = CellSpec("m", "builtin", "fr", "color", "ss", "standard", "uniform")
    stimulus = Stimulus("/data/a.png", "0" * 64, 8, 8)
    item = Item("a", "builtin", "fr", "color", stimulus, 1.0, True, "g")
    metric = MetricValue(0.5, 0.1, 0.9, 2, "global")
    result = CellResult(
        spec,
        2,
        2,
        {},
        {"srcc": metric},
        "srcc",
        (Prediction("a", 1.0, 2.0, "g"), Prediction("z", 0.0, 1.0, "g")),
    )
    record = cell_record(result.spec, 1, "ok", result=result, items=[item])
    assert [p["image"] for p in record["predictions"]] == ["/data/a.png", None]


def test_terminal_table_is_aligned_grouped_and_totalled():
    cells = [
        make_cell(),
        make_cell(strategy="cot", outcome="failed"),
        _known_gap(),
        make_cell(model="other"),
        make_cell(model="other", outcome="skipped", metrics={}, gate=None, coverage=0.0),
    ]
    lines = summary_lines(cells)
    assert lines[0].split() == ["outcome", "cell", "metric", "value", "95%", "CI", "coverage", "gate"]
    assert lines[1] == "m · builtin" and "other · builtin" in lines
    rows = [line for line in lines if line.startswith("  ")]
    columns = {line.index("srcc") for line in rows if "srcc" in line[:60]}
    assert len(columns) == 1  # the metric column lines up across both groups
    assert any(line.startswith("  known gap ") for line in rows)
    assert lines[-1] == "5 cells: 2 passed, 1 failed, 1 known gap, 1 skipped"


@pytest.mark.parametrize("outcome", ["passed", "failed", "error", "skipped"])
def test_every_outcome_renders(outcome):
    page = render_html(make_report([make_cell(outcome=outcome)]))
    assert f'<span class="badge {outcome}">' in page
