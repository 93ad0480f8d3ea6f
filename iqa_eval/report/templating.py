"""The jinja2 environment of the HTML pages, whose templates are files in report/templates/.

Every value is autoescaped, because answers are model text and model text is untrusted; a name
the template uses and the page does not give is an error, never an empty string.
"""

from __future__ import annotations

import jinja2

ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("iqa_eval.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
