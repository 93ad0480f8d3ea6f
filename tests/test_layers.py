"""Imports point down the floors of DESIGN.md's layout, never up, and never in a circle.

The table maps module-name prefixes to floors; the longest matching prefix wins. It names
today's modules and the design's folders alike, so moving a module into its folder means
changing (or just deleting) its row. A module no row matches fails the test: a new module
has to be given a floor.

Every import counts, also one inside a function or under ``TYPE_CHECKING``: a lazy import
is still a dependency, and none of today's type-only imports needs an exception.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = "iqa_eval"
PACKAGE = Path(__file__).resolve().parents[1] / ROOT

GROUND, FIRST, SECOND, THIRD, FACES = range(5)
FLOOR_NAMES = ("ground", "first", "second", "third", "faces")

FLOORS: Mapping[str, int] = {
    # ground floor: nouns, pixels, numbers
    "iqa_eval.types": GROUND,
    "iqa_eval.images": GROUND,
    "iqa_eval.metrics": GROUND,
    "iqa_eval.version": GROUND,
    # The SQLite setup both the response cache (execution/) and the experts' measurement store
    # (models/) open their files with: below both, since models/ may not import execution/.
    "iqa_eval.sqlite": GROUND,
    # first floor: what is judged and how it is asked
    "iqa_eval.prompts": FIRST,
    "iqa_eval.experts": FIRST,
    "iqa_eval.distortions": FIRST,
    "iqa_eval.datasets": FIRST,
    "iqa_eval.sampling": FIRST,
    # sampling/ imports datasets/ (subsets reads them; make_aug_kadid samples KADID into a new
    # set), never the reverse.
    "iqa_eval.protocols": FIRST,
    # second floor: who answers and how queries travel
    # models/ holds pricing.py too: each API client prices its own answers, so the price table
    # cannot sit in execution/, which imports models/ (the folders would import each other).
    "iqa_eval.models": SECOND,
    "iqa_eval.execution": SECOND,
    # third floor: cells, gates, reports
    # evaluation/ holds config.py, the settings of one run: what evaluation's suite is given and
    # each face builds (the plugin from options and ini, api.evaluate() from its arguments).
    "iqa_eval.evaluation": THIRD,
    "iqa_eval.report": THIRD,
    # the faces
    "iqa_eval": FACES,  # the package's __init__ only: it exports evaluate()
    "iqa_eval.plugin": FACES,
    "iqa_eval.api": FACES,
    "iqa_eval.cli": FACES,
    # the suite's tests as the package ships them: they use the plugin's fixtures
    "iqa_eval.suite": FACES,
}


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str | None:
    """The longest row of the table that names ``module`` or a package holding it.

    The package's own row names only its ``__init__``, so that no module gets a floor by default.
    """
    rows = [row for row in FLOORS if module == row or (row != ROOT and module.startswith(row + "."))]
    return max(rows, key=len) if rows else None


def floor_of(module: str) -> int | None:
    unit = unit_of(module)
    return None if unit is None else FLOORS[unit]


def imported(tree: ast.Module, module: str, is_package: bool, modules: set[str]) -> Iterator[str]:
    """The package's modules that ``tree`` imports anywhere, each as a module name."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.split(".")[0] == ROOT)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] != ROOT:
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield candidate if candidate in modules else base


def import_graph(root: Path) -> dict[str, set[str]]:
    files = {module_name(path, root): path for path in sorted(root.rglob("*.py"))}
    modules = set(files)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        targets = imported(tree, module, path.name == "__init__.py", modules)
        graph[module] = {t for t in targets if t in modules and t != module}
    return graph


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or None when the graph has none."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        path.append(module)
        for target in sorted(graph[module]):
            cycle = visit(target)
            if cycle is not None:
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module)
        if cycle is not None:
            return cycle
    return None


def upward(graph: Mapping[str, set[str]]) -> list[str]:
    """Every import from a lower floor to a higher one, as ``importer (floor) -> imported (floor)``."""
    found = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            low, high = floor_of(module), floor_of(target)
            if low is not None and high is not None and high > low:
                found.append(f"{module} ({FLOOR_NAMES[low]}) -> {target} ({FLOOR_NAMES[high]})")
    return found


def test_every_module_has_a_floor() -> None:
    assert [m for m in import_graph(PACKAGE) if floor_of(m) is None] == []


def test_no_import_points_up_a_floor() -> None:
    assert upward(import_graph(PACKAGE)) == []


def test_no_import_cycle() -> None:
    cycle = find_cycle(import_graph(PACKAGE))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_cycle_between_rows_of_the_table() -> None:
    """Two folders (or a module and a folder) importing each other are one idea split in two,
    even when no single module closes the circle."""
    units: dict[str, set[str]] = {}
    for module, targets in import_graph(PACKAGE).items():
        unit = unit_of(module) or module
        units.setdefault(unit, set()).update(unit_of(t) or t for t in targets)
    for unit, targets in units.items():
        targets.discard(unit)
        for target in targets:
            units.setdefault(target, set())
    cycle = find_cycle(units)
    assert cycle is None, "import cycle between rows: " + " -> ".join(cycle or [])


def test_the_checks_see_lazy_relative_and_type_checking_imports(tmp_path: Path) -> None:
    """The checks themselves, on a made-up package: each kind of import they must not miss."""
    root = tmp_path / ROOT
    (root / "models").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "types.py": "def f():\n    from iqa_eval.models import expert\n",
        "models/__init__.py": "",
        "models/expert.py": "import typing\nif typing.TYPE_CHECKING:\n    from iqa_eval import cli\n",
        "models/registry.py": "from . import hf\n",
        "models/hf.py": "from .registry import make_client\n",
        "cli.py": "import iqa_eval.types\n",
    }
    for name, text in files.items():
        (root / name).write_text(text)
    graph = import_graph(root)
    assert upward(graph) == [
        "iqa_eval.models.expert (second) -> iqa_eval.cli (faces)",
        "iqa_eval.types (ground) -> iqa_eval.models.expert (second)",
    ]
    assert find_cycle(graph) == [
        "iqa_eval.cli",
        "iqa_eval.types",
        "iqa_eval.models.expert",
        "iqa_eval.cli",
    ]
    graph["iqa_eval.types"].clear()
    assert find_cycle(graph) == ["iqa_eval.models.hf", "iqa_eval.models.registry", "iqa_eval.models.hf"]
