"""The console's charts as geometry: pure functions from values to SVG coordinates.

The pages draw them as inline SVG from these shapes, server-side, so the console needs
no JavaScript chart library and a chart is in the page's HTML (and its tests) as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from schemas.event import format_time


@dataclass(frozen=True, slots=True)
class RiskPoint:
    """One primary score of an account."""

    time: datetime
    risk: float
    tier: str


@dataclass(frozen=True, slots=True)
class Guide:
    """A horizontal line across the plot (a tier threshold), at ``y``, with its label."""

    y: float
    label: str


@dataclass(frozen=True, slots=True)
class Marker:
    """A drawn point: where, and its tooltip."""

    x: float
    y: float
    tier: str
    title: str


@dataclass(frozen=True, slots=True)
class RiskChart:
    """Risk over time: a step line (a score holds until the next one) in a ``width`` by
    ``height`` box with ``margin`` around the plot; risk 0 at the bottom, 1 at the top."""

    width: int
    height: int
    margin: int
    path: str
    markers: tuple[Marker, ...]
    guides: tuple[Guide, ...]
    first_label: str
    last_label: str

    @property
    def plot_bottom(self) -> int:
        return self.height - self.margin

    @property
    def plot_right(self) -> int:
        return self.width - self.margin


def risk_chart(
    points: Sequence[RiskPoint], *, medium_at: float, high_at: float,
    width: int = 720, height: int = 240, margin: int = 32,
) -> RiskChart | None:
    """The chart of ``points`` (oldest first), or None when there is nothing to draw."""
    if not points:
        return None
    start, end = points[0].time, points[-1].time
    span = (end - start).total_seconds() or 1.0
    plot_w, plot_h = width - 2 * margin, height - 2 * margin

    def x_of(moment: datetime) -> float:
        if end == start:
            return margin + plot_w / 2
        return margin + plot_w * (moment - start).total_seconds() / span

    def y_of(risk: float) -> float:
        return margin + plot_h * (1.0 - min(max(risk, 0.0), 1.0))

    # A step line: each score holds until the next, as the account's risk does.
    steps = [f"M{x_of(points[0].time):.1f},{y_of(points[0].risk):.1f}"]
    for point in points[1:]:
        steps.append(f"H{x_of(point.time):.1f}V{y_of(point.risk):.1f}")
    if end == start:
        steps.append("h1")  # one moment: a visible dot-sized line rather than nothing
    markers = tuple(
        Marker(x_of(p.time), y_of(p.risk), p.tier,
               f"{format_time(p.time.replace(microsecond=0))}: {p.risk:.2f} ({p.tier})")
        for p in points
    )
    guides = (Guide(y_of(medium_at), f"medium {medium_at:g}"),
              Guide(y_of(high_at), f"high {high_at:g}"))
    return RiskChart(
        width=width, height=height, margin=margin, path="".join(steps), markers=markers,
        guides=guides, first_label=start.date().isoformat(), last_label=end.date().isoformat(),
    )


@dataclass(frozen=True, slots=True)
class Bar:
    """One horizontal bar: its label, value, and length in the chart's units."""

    label: str
    value: int
    y: float
    length: float


@dataclass(frozen=True, slots=True)
class BarChart:
    width: int
    height: int
    label_width: int
    bar_height: int
    bars: tuple[Bar, ...]


def bar_chart(
    values: Sequence[tuple[str, int]], *, width: int = 720, label_width: int = 200,
    bar_height: int = 22, gap: int = 8,
) -> BarChart | None:
    """Horizontal bars for ``(label, value)`` pairs in the given order, the longest the
    plot's width less room for the value; None when there are none."""
    if not values:
        return None
    top = max(value for _, value in values) or 1
    room = width - label_width - 60
    bars = tuple(
        Bar(label, value, i * (bar_height + gap), room * value / top)
        for i, (label, value) in enumerate(values)
    )
    return BarChart(width, len(bars) * (bar_height + gap), label_width, bar_height, bars)
