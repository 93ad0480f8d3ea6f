"""The pytest plugin: options, markers, cell parametrization, gating, and reports.

Plan → execute → assert: once pytest has collected and selected the cells (after ``-m``/``-k``),
every selected cell is planned and the union of their queries runs through one engine, so each
test only reads its answers and asserts its gate. Under pytest-xdist the controller establishes
each model's identity once and hands it to the workers; each worker evaluates the cells it is
given, sharing the response cache, and the workers' cell records travel to the controller in
``user_properties``, where the reports are written once.

This package is the plugin pytest loads (the ``pytest11`` entry point, or ``-p iqa_eval.plugin``
without autoloading). It imports none of its parts, so that pytest loads each as a plugin module
of its own (``pytest_plugins``): ``options`` (the ``--iqa-*`` options read into the run's
configuration), ``cells`` (markers, parametrization, the fixtures and the cell check), ``custom`` (the
fixtures of a user's own tests),
``workers`` (xdist scheduling, worker identities, shards) and ``run`` (the run's state, execution
up front, reports, exit status), which prints through ``terminal``. The hooks it offers to
conftest.py files are in ``hookspecs``.

Exit statuses: 0 when every gate held, 1 when a gate was missed or a cell regressed,
:data:`EXIT_UNMEASURED` when the only failures are cells that could not be measured (an endpoint
down, a bad key, a cap reached), so CI can retry an outage instead of blocking a deployment for it.
"""

from __future__ import annotations

import pytest

EXIT_UNMEASURED = 75
"""Cells could not be measured (sysexits' EX_TEMPFAIL: try again later), and nothing failed a gate."""

pytest_plugins = (
    "iqa_eval.plugin.options",
    "iqa_eval.plugin.cells",
    "iqa_eval.plugin.custom",
    "iqa_eval.plugin.workers",
    "iqa_eval.plugin.run",
)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from iqa_eval.plugin import hookspecs

    pluginmanager.add_hookspecs(hookspecs)
