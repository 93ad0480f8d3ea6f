"""Parallel and sharded runs: one report, one history line, and the same cells as a single run."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_report_schema import make_cell, make_report, validate_report

from iqa_eval.cli import main
from iqa_eval.evaluation.config import ConfigError, parse_shard
from iqa_eval.plugin.scopes import cell_scope
from iqa_eval.plugin.workers import shard_of
from iqa_eval.report.merge import MergeError, merge_reports

SELECTION = ("-p", "no:randomly", "-m", "fr_color and ss or nr_structure and ds", "-k", "not metamorphic")


@pytest.mark.parametrize(("text", "parsed"), [("1/1", (1, 1)), ("2/4", (2, 4)), (" 3/3", (3, 3))])
def test_shard_option_reads_k_of_n(text, parsed):
    assert parse_shard(text) == parsed


@pytest.mark.parametrize("text", ["0/2", "3/2", "2", "a/b", "1/0", "-1/2"])
def test_a_bad_shard_option_is_a_clear_error(text):
    with pytest.raises(ConfigError, match="shard must be K/N"):
        parse_shard(text)


@given(cell_id=st.text(min_size=1), count=st.integers(1, 16))
def test_every_cell_falls_in_exactly_one_stable_shard(cell_id, count):
    shard = shard_of(cell_id, count)
    assert 1 <= shard <= count and shard_of(cell_id, count) == shard


def _collected(pytester, shared_cache, *args):
    result = pytester.runpytest(f"--iqa-cache={shared_cache}", "--collect-only", "-q", *args)
    return {line.split("[", 1)[1].rstrip("]") for line in result.outlines if "::" in line}


def test_shards_partition_the_cells_and_each_gets_both_stages(suite_dir, shared_cache):
    everything = _collected(suite_dir, shared_cache)
    parts = [_collected(suite_dir, shared_cache, f"--iqa-shard={k}/3") for k in (1, 2, 3)]
    assert set().union(*parts) == everything and sum(len(p) for p in parts) == len(everything)
    for part in parts:
        assert any("/best/best/" in cell for cell in part)  # a stage-2 cell
        assert any("/uniform" in cell for cell in part)  # a stage-1 cell
        assert len(part) > len(everything) / 6  # a hash spreads, it does not pile up


def _run(pytester, shared_cache, report_dir, *args):
    return pytester.runpytest(
        f"--iqa-cache={shared_cache}", f"--iqa-report-dir={report_dir}", *SELECTION, *args
    )


def _report(directory):
    report = json.loads((directory / "iqa-report.json").read_text())
    validate_report(report)
    return report


def _history(directory):
    path = directory / "history.jsonl"
    return path.read_text().splitlines() if path.exists() else []


def test_parallel_and_sharded_then_merged_runs_report_what_a_single_run_does(suite_dir, shared_cache, capsys):
    root = suite_dir.path
    _run(suite_dir, shared_cache, root / "single").assert_outcomes(passed=6)
    single = _report(root / "single")

    parallel = _run(suite_dir, shared_cache, root / "parallel", "-n", "2", "-v")
    parallel.assert_outcomes(passed=6)
    assert _report(root / "parallel")["cells"] == single["cells"]
    # Cells of one attribute share their images: each attribute's cells ran on one worker.
    workers = {}
    for line in parallel.outlines:
        if line.startswith("[gw") and "PASSED" in line:
            workers.setdefault(cell_scope(line.split()[-1]), set()).add(line.split()[0])
    assert len(workers) == 2 and all(len(w) == 1 for w in workers.values()), workers
    usage = _report(root / "parallel")["run"]["usage"]  # the workers', added up by the controller
    assert usage["sent"] == 0 and usage["cached"] == usage["unique"] > 0  # the single run asked them all
    assert len(_history(root / "parallel")) == 1  # the controller's, none from the workers

    counts = []
    for k in (1, 2):
        result = _run(suite_dir, shared_cache, root / f"shard{k}", f"--iqa-shard={k}/2")
        counts.append(result.parseoutcomes().get("passed", 0))
        report = _report(root / f"shard{k}")
        assert report["run"]["shard"] == f"{k}/2" and not _history(root / f"shard{k}")
    assert sum(counts) == 6 and all(counts)

    out = root / "merged" / "iqa-report.json"
    parts = [str(root / f"shard{k}/iqa-report.json") for k in (1, 2)]
    assert main(["merge", *parts, "-o", str(out)]) == 0
    merged = _report(root / "merged")
    assert merged["cells"] == single["cells"] and merged["run"]["shard"] is None
    shard_usage = [_report(root / f"shard{k}")["run"]["usage"] for k in (1, 2)]
    assert merged["run"]["usage"]["queries"] == sum(u["queries"] for u in shard_usage) > 0
    assert [m["shard"] for m in merged["run"]["merged_from"]] == ["1/2", "2/2"]
    assert not merged["run"]["partial"] and (root / "merged" / "iqa-report.html").is_file()
    assert len(_history(root / "merged")) == 1
    capsys.readouterr()


def _pair(*cells, **run):
    return make_report(list(cells), model_specs=["m"], **run)


def test_merge_joins_disjoint_parts_and_accepts_identical_overlap():
    a, b = make_cell(), make_cell(strategy="cot")
    merged = merge_reports([("a", _pair(a, b, shard="1/2")), ("b", _pair(b, shard="2/2"))])
    validate_report(merged)
    assert [c["id"] for c in merged["cells"]] == sorted([a["id"], b["id"]])


@pytest.mark.parametrize(
    ("second", "message"),
    [
        (
            _pair(make_cell(coverage=0.5)),
            "cell m/builtin/fr_color/ss/standard/uniform differs between a and b",
        ),
        (_pair(make_cell(strategy="cot"), seed=1), "differ in seed"),
        (make_report([make_cell(strategy="cot")], model_specs=["m", "n"]), "differ in configured models"),
        (
            _pair(make_cell(strategy="cot", fingerprint="m@2")),
            "model 'm' has fingerprint 'm@1' in a but 'm@2' in b",
        ),
        (_pair(make_cell(strategy="cot", dataset_digest="zzz")), "dataset 'builtin' has digest"),
        (_pair(make_cell(strategy="cot"), shard="1/3"), "shards of different splits"),
    ],
)
def test_merge_refuses_parts_of_different_runs(second, message):
    first = _pair(make_cell(), shard="1/2")
    with pytest.raises(MergeError, match=message.replace("(", r"\(")):
        merge_reports([("a", first), ("b", second)])


def test_a_merge_missing_a_shard_is_marked_partial():
    first, third = _pair(make_cell(), shard="1/3"), _pair(make_cell(strategy="cot"), shard="3/3")
    merged = merge_reports([("a", first), ("b", third)])
    assert merged["run"]["partial"] and merged["run"]["notes"] == ["shard(s) 2/3 missing"]


def test_merge_command_reports_a_conflict_in_one_line(tmp_path, capsys):
    for name, seed in (("a", 0), ("b", 1)):
        (tmp_path / f"{name}.json").write_text(json.dumps(_pair(make_cell(), seed=seed)))
    assert (
        main(["merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "-o", str(tmp_path / "m.json")])
        == 2
    )
    assert "differ in seed" in capsys.readouterr().err and not (tmp_path / "m.json").exists()
