"""Stage 2 of the study: each model's best prompting system on the harder subset of each attribute."""

import pytest

pytestmark = pytest.mark.iqa_stage(2)


def test_attribute(iqa_cell):
    iqa_cell.check()
