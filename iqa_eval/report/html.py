"""The HTML report: one self-contained file, every model-written string escaped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)

_TEMPLATE = _ENV.from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>iqa-eval report</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
.passed{background:#e3f6e3}.failed{background:#fbe0e0}.error{background:#f9ecd0}.skipped{background:#eee}
pre{white-space:pre-wrap;max-width:60em;background:#f7f7f7;padding:.5em}
</style></head><body>
<h1>iqa-eval report</h1>
<p>Run {{ run.started }} · seed {{ run.seed }} · models {{ run.models|map(attribute="spec")|join(", ") }}
 · {{ cells|length }} cells{% if run.partial %} · <strong>partial run</strong>{% endif %}</p>
<table><tr><th>cell</th><th>outcome</th><th>metric</th><th>value</th><th>95% CI</th><th>coverage</th><th>gate</th></tr>
{% for c in cells %}{% set m = c.metrics.get(c.primary_metric) %}
<tr class="{{ c.outcome }}"><td><a href="#c{{ loop.index }}">{{ c.id }}</a></td><td>{{ c.outcome }}</td>
<td>{{ c.primary_metric }}</td><td>{{ fmt(m.value if m else None) }}</td>
<td>{% if m %}[{{ fmt(m.ci[0]) }}, {{ fmt(m.ci[1]) }}]{% endif %}</td>
<td>{{ "%.1f%%"|format(100 * c.coverage) }}</td><td>{{ c.message }}</td></tr>
{% endfor %}</table>
{% for c in cells %}
<h2 id="c{{ loop.index }}">{{ c.id }}</h2>
<p>{{ c.n_items }} items, {{ c.n_queries }} queries, failures: {{ c.n_failed or "none" }}.
{% for n in c.notes %}<br>{{ n }}{% endfor %}</p>
<table><tr><th>metric</th><th>value</th><th>95% CI</th><th>n</th><th>aggregation</th><th>note</th></tr>
{% for name, m in c.metrics.items() %}<tr><td>{{ name }}</td><td>{{ fmt(m.value) }}</td>
<td>[{{ fmt(m.ci[0]) }}, {{ fmt(m.ci[1]) }}]</td><td>{{ m.n }}</td><td>{{ m.aggregation }}</td><td>{{ m.note }}</td></tr>
{% endfor %}</table>
{% for e in c.examples %}<pre>{{ e["items"]|join(", ") }}{% if e.failure %} — failure: {{ e.failure }}{% endif %}
{{ e.text }}</pre>{% endfor %}
{% endfor %}
</body></html>
"""
)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def render_html(report: dict[str, Any]) -> str:
    return _TEMPLATE.render(run=report["run"], cells=report["cells"], fmt=_fmt)


def write_html(path: Path, report: dict[str, Any]) -> None:
    path.write_text(render_html(report), encoding="utf-8")
