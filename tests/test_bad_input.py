"""Bad input at the level a user meets it: one clear error that names the input, and no
traceback, whether the input is an image inside a dataset or a setting of the run.

Each kind of damaged image is test_images.py's, each kind of damaged score file (missing
columns, NaN, duplicates, paths out of the root) test_datasets_bad_data.py's; here the suite
itself meets them. pytest's report of an exception in a test never prints the word
"Traceback", so ``assert_no_traceback`` looks for its frames too.
"""

from __future__ import annotations

import pytest
from suite_runs import SYSTEMS, assert_no_traceback
from test_datasets_mini import make_kadid

ONE_CELL = ("-m", "fr_structure and ss and standard")


def test_a_broken_image_in_a_dataset_stops_the_run_naming_the_file_and_its_line(
    suite_dir, shared_cache, tmp_path
):
    root = make_kadid(tmp_path / "kadid", refs=2, types=(1,))
    broken = root / "images" / "I01_01_03.png"
    broken.write_bytes(broken.read_bytes()[:200])  # cut off mid-stream, as an interrupted copy is
    result = suite_dir.runpytest(
        *SYSTEMS, f"--iqa-cache={shared_cache}", f"--iqa-data=kadid10k={root}", *ONE_CELL
    )
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"iqa-eval: {broken}: truncated or corrupt image data" in output
    assert f"(listed at {root / 'dmos.csv'}:4)" in output
    assert_no_traceback(output)


BAD_FILES = {
    "gates.toml": "[[gate]\nthreshold = 0.5\n",
    "colour.toml": '[[gate]]\nselect = "fr and colour"\nthreshold = 0.5\n',
    "prices.toml": '[models."x"]\ninput = 1\n',
}


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--iqa-model=gpt-9", "unknown model spec 'gpt-9'"),
        ("--iqa-gates=missing.toml", "missing.toml: gate profile not found"),
        ("--iqa-gates=gates.toml", "gates.toml: not valid TOML"),
        ("--iqa-gates=colour.toml",
         "colour.toml [[gate]] #1: select = 'fr and colour' names unknown marker 'colour'"),
        ("--iqa-data=nosuch=.", "unknown dataset 'nosuch'"),
        ("--iqa-data=kadid10k=nowhere", "nowhere is not a directory"),
        ("--iqa-shard=3/2", "shard must be K/N with 1 <= K <= N (e.g. 2/4), got '3/2'"),
        ("--iqa-prices=prices.toml", 'prices.toml: [models."x"] needs exactly the keys input and output'),
    ],
)  # fmt: skip
def test_a_bad_setting_is_one_usage_error_naming_the_input(suite_dir, shared_cache, option, message):
    for name, text in BAD_FILES.items():
        (suite_dir.path / name).write_text(text)
    result = suite_dir.runpytest(*SYSTEMS, f"--iqa-cache={shared_cache}", option, *ONE_CELL)
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert output.count(message) == 1, output
    assert_no_traceback(output)
