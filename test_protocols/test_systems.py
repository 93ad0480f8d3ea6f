"""Stage 1 of the study: every prompting system on a uniform sample of each dataset.

One test per cell (model × dataset × setting × attribute × protocol × strategy); the plugin
generates them, runs their queries once, and each test asserts its cell's gate.
"""

import pytest

pytestmark = pytest.mark.iqa_stage(1)


def test_prompting_system(iqa_cell):
    iqa_cell.check()
