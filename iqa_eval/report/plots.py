"""Pictures for the reports, as data: URIs, so every page stays one self-contained file.

Figures are built on matplotlib's object API with the Agg canvas, never through pyplot: no
global figure registry, no GUI backend, nothing that depends on the environment of the process
that writes the report.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image, UnidentifiedImageError

THUMBNAIL_PX = 96
_PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
)  # fmt: skip


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=figure.dpi)
    return png_uri(buffer.getvalue())


class ScatterPlotter:
    """Prediction against ground truth, one colour per group, drawn on one reused figure.

    A report draws a scatter for every cell, and building axes and ticks anew each time costs
    most of the drawing; so the axes are laid out once and each cell only replaces the points
    and the limits. Identical predictions (one expert answering several strategies alike) are
    drawn once.
    """

    def __init__(self) -> None:
        self.figure = Figure(figsize=(3.4, 2.6), dpi=80)
        # Any: matplotlib's stubs leave the Agg canvas's draw and buffer_rgba untyped.
        self.canvas: Any = FigureCanvasAgg(self.figure)
        self.axes: Axes = self.figure.add_axes((0.17, 0.17, 0.78, 0.72))
        self.points = self.axes.scatter([], [], s=9, alpha=0.8, linewidths=0)
        for axis in (self.axes.xaxis, self.axes.yaxis):
            axis.set_major_locator(MaxNLocator(5))
        self.axes.set_xlabel("ground truth (higher = better)", fontsize=7)
        self.axes.set_ylabel("model's score", fontsize=7)
        self.axes.tick_params(labelsize=6)
        self.axes.grid(alpha=0.3)
        self._done: dict[str, str] = {}

    def render(self, predictions: Sequence[Mapping[str, Any]], title: str = "") -> str | None:
        """A PNG data URI, or None when there is nothing to plot."""
        if not predictions:
            return None
        key = json.dumps([title, [[p["truth"], p["predicted"], p["group"]] for p in predictions]])
        if key not in self._done:
            self._done[key] = self._draw(predictions, title)
        return self._done[key]

    def _draw(self, predictions: Sequence[Mapping[str, Any]], title: str) -> str:
        colours: dict[str, str] = {}
        for p in predictions:
            colours.setdefault(str(p["group"]), _PALETTE[len(colours) % len(_PALETTE)])
        xy = np.array([[float(p["truth"]), float(p["predicted"])] for p in predictions])
        self.points.set_offsets(xy)
        self.points.set_facecolor([colours[str(p["group"])] for p in predictions])
        self.axes.set_xlim(*_limits(xy[:, 0]))
        self.axes.set_ylim(*_limits(xy[:, 1]))
        self.axes.set_title(title, fontsize=7)
        self.canvas.draw()
        width, height = self.canvas.get_width_height()
        image = Image.frombuffer("RGBA", (width, height), self.canvas.buffer_rgba()).convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return png_uri(buffer.getvalue())


def _limits(values: npt.NDArray[np.float64]) -> tuple[float, float]:
    low, high = float(values.min()), float(values.max())
    margin = (high - low) * 0.06 or 0.5
    return low - margin, high + margin


@lru_cache(maxsize=4096)
def thumbnail(path: str) -> str | None:
    """A small PNG preview of a stimulus, for the report's eyes only (the model saw the file).

    None when the file is gone (a report re-rendered on another machine): the report says so
    instead of failing.
    """
    try:
        with Image.open(Path(path)) as image:
            image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX), Image.Resampling.LANCZOS)
            preview = image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    buffer = io.BytesIO()
    preview.save(buffer, format="PNG", optimize=False)
    return png_uri(buffer.getvalue())


Series = Mapping[str, Sequence[float | None]]


def trend_figure(
    title: str,
    panels: Mapping[str, Series],
    styles: Mapping[str, str],
    labels: Sequence[str],
) -> str:
    """A grid of small line charts sharing one x axis of runs.

    A None value (a run that did not measure that line) gets no marker, and the line joins the
    runs around it: the trend is read across runs, and a selection (-m) should not cut it.

    ``panels`` maps a panel title to its series (name -> one value per run), ``styles`` a series
    name to a matplotlib line style, and ``labels`` names the runs on the x axis.
    """
    columns = 4
    rows = max(1, -(-len(panels) // columns))
    figure = Figure(figsize=(2.9 * columns, 2.2 * rows + 0.5), dpi=80, layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(title, fontsize=10)
    x = list(range(len(labels)))
    step = max(1, len(labels) // 6)
    ticks = x[::step]
    for k, (name, series) in enumerate(panels.items()):
        ax = figure.add_subplot(rows, columns, k + 1)
        for line_name, values in series.items():
            measured = [(k, v) for k, v in zip(x, values, strict=True) if v is not None]
            ax.plot(
                [k for k, _ in measured],
                [v for _, v in measured],
                styles.get(line_name, "-"),
                label=line_name,
                marker="o",
                markersize=3,
                linewidth=1,
            )
        ax.set_title(name, fontsize=8)
        ax.set_ylim(-0.2, 1.02)
        ax.axhline(0.0, color="#999", linewidth=0.6)
        ax.set_xticks(ticks, [labels[i] for i in ticks], fontsize=6, rotation=30, ha="right")
        ax.tick_params(axis="y", labelsize=6)
        ax.grid(alpha=0.3)
        if k == 0:
            ax.legend(fontsize=6, loc="lower left")
    return _png(figure)


Estimate = tuple[float | None, float | None, float | None]
"""(value, low, high) of a metric; None where it was not measured or has no interval."""


def profile_figure(title: str, categories: Sequence[str], bars: Mapping[str, Sequence[Estimate]]) -> str:
    """Grouped bars with their intervals: one group per category, one bar per series.

    A series without a value in a category leaves its place empty rather than drawing a zero,
    which would read as a measured chance-level result.
    """
    width = 0.8 / max(1, len(bars))
    figure = Figure(figsize=(max(4.0, 1.2 * len(categories) + 2.0), 2.8), dpi=80, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    lowest = 0.0
    for k, (name, estimates) in enumerate(bars.items()):
        at = [(i, e) for i, e in enumerate(estimates) if e[0] is not None]
        xs = [i - 0.4 + width * (k + 0.5) for i, _ in at]
        values = [float(e[0]) for _, e in at if e[0] is not None]
        below = [v - (e[1] if e[1] is not None else v) for v, (_, e) in zip(values, at, strict=True)]
        above = [(e[2] if e[2] is not None else v) - v for v, (_, e) in zip(values, at, strict=True)]
        ax.bar(xs, values, width, yerr=[below, above], capsize=2, label=name,
               color=_PALETTE[k % len(_PALETTE)], error_kw={"linewidth": 0.8})  # fmt: skip
        lowest = min([lowest, *(v - b for v, b in zip(values, below, strict=True))])
    ax.set_xticks(range(len(categories)), categories, fontsize=7)
    ax.set_ylim(min(-0.2, lowest - 0.05), 1.02)
    ax.axhline(0.0, color="#999", linewidth=0.6)
    ax.set_ylabel("primary metric (95% CI)", fontsize=7)
    ax.tick_params(axis="y", labelsize=6)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars, never on them
    return _png(figure)
