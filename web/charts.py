"""Charts as SVG, drawn on the server: nothing loaded from elsewhere (air-gapped sites),
nothing run in the browser. Pure: data in, markup out.

Hand-written rather than from a charting library: the ones for Python (pygal, matplotlib)
emit inline ``<style>`` or scripts, which the site's Content-Security-Policy refuses, or
raster images; these charts are a few rectangles and a path with presentation attributes.
Every chart has a ``<title>`` and a ``<desc>`` that says in words what it shows, and each
bar its own ``<title>`` (shown on hover). Every text is escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 196
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 32, 34
INK, GRID, PANEL, TEXT = "#57606a", "#d0d7de", "#f6f8fa", "#1c2128"
COLORS = {
    "completed": "#2da44e",
    "failed": "#cf222e",
    "canceled": "#bf8700",
    "building": "#0969da",
    "queued": "#bf8700",
    "packages": "#0969da",
    "artifacts": "#8250df",
    "queue": "#0969da",
}


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar, of stacked parts (series name, value); ``label`` under it, ``note`` on hover."""

    label: str
    parts: tuple[tuple[str, float], ...]
    note: str

    @property
    def total(self) -> float:
        return sum(v for _, v in self.parts)


def _nice_max(value: float) -> float:
    """A round upper bound for an axis (1, 2, 2.5, 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** len(str(int(value))) / 10 if value >= 1 else 1.0
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def _frame(title: str, desc: str, body: list[str], legend: Sequence[str]) -> Markup:
    keys = "".join(
        f'<rect x="{LEFT + 110 * i}" y="{HEIGHT - 12}" width="10" height="10" fill="{COLORS.get(name, INK)}"/>'
        f'<text x="{LEFT + 110 * i + 14}" y="{HEIGHT - 3}" font-size="11" fill="{INK}">{escape(name)}</text>'
        for i, name in enumerate(legend)
    )
    return Markup(
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="{_id(title)}-t {_id(title)}-d" font-family="system-ui, sans-serif">'
        f'<title id="{_id(title)}-t">{escape(title)}</title><desc id="{_id(title)}-d">{escape(desc)}</desc>'
        f'<rect width="{WIDTH}" height="{HEIGHT}" rx="6" fill="{PANEL}"/>' + "".join(body) + keys + "</svg>"
    )


def _id(title: str) -> str:
    return "c" + "".join(c if c.isalnum() else "-" for c in title.lower())[:40]


def _axis(top: float, fmt: Callable[[float], str]) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    out = []
    for i in range(3):
        value = top * i / 2
        y = TOP + plot_h - plot_h * i / 2
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        out.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="{INK}">'
            f"{escape(fmt(value))}</text>"
        )
    return out


def bar_chart(
    title: str, desc: str, bars: Sequence[Bar], fmt: Callable[[float], str], *, legend: Sequence[str] = ()
) -> Markup:
    """Stacked bars left to right; at most about 60 labels are written under them."""
    top = _nice_max(max((b.total for b in bars), default=0.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    body = _axis(top, fmt)
    step = plot_w / max(len(bars), 1)
    every = max(1, len(bars) // 12)
    for i, bar in enumerate(bars):
        x = LEFT + i * step + step * 0.15
        y = float(TOP + plot_h)
        shapes = []
        for name, value in bar.parts:
            h = plot_h * value / top
            y -= h
            shapes.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}" '
                f'fill="{COLORS.get(name, INK)}"/>'
            )
        body.append(f"<g><title>{escape(bar.note)}</title>{''.join(shapes)}</g>")  # no links: role=img holds none
        if i % every == 0:
            body.append(
                f'<text x="{x + step * 0.35:.1f}" y="{TOP + plot_h + 14}" font-size="11" text-anchor="middle" '
                f'fill="{INK}">{escape(bar.label)}</text>'
            )
    return _frame(title, desc, body, legend)


def step_chart(
    title: str, desc: str, points: Sequence[tuple[datetime, float]], fmt: Callable[[float], str], *, series: str
) -> Markup:
    """A value over time as steps (queue depth), with the first, middle and last times."""
    top = _nice_max(max((v for _, v in points), default=0.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    body = _axis(top, fmt)
    if len(points) >= 2:
        start, end = points[0][0], points[-1][0]
        span = max((end - start).total_seconds(), 1.0)
        xy = [
            (LEFT + plot_w * (at - start).total_seconds() / span, TOP + plot_h - plot_h * value / top)
            for at, value in points
        ]
        path = [f"M{xy[0][0]:.1f},{xy[0][1]:.1f}"] + [f"H{x:.1f}V{y:.1f}" for x, y in xy[1:]]
        body.append(f'<path d="{" ".join(path)}" fill="none" stroke="{COLORS.get(series, INK)}" stroke-width="2"/>')
        for frac in (0.0, 0.5, 1.0):
            at = start + timedelta(seconds=span * frac)
            anchor = "start" if frac == 0 else "end" if frac == 1 else "middle"
            body.append(
                f'<text x="{LEFT + plot_w * frac:.1f}" y="{TOP + plot_h + 14}" font-size="11" '
                f'text-anchor="{anchor}" fill="{INK}">{at:%H:%M} UTC</text>'
            )
    return _frame(title, desc, body, (series,))
