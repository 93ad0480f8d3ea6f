"""The evaluation suite as it ships: ``pytest --pyargs iqa_eval.suite`` (or ``iqa-eval run``)
runs it from any folder.

``test_protocols`` (stage 1 and the metamorphic relations) and ``test_attributes`` (stage 2) are
links to the repository's root folders, so plain ``pytest`` in a checkout and the installed
package run one copy of the tests; a built wheel holds the files themselves. ``default-gates.toml``
is the gate profile a run uses when its project has none of its own.
"""
