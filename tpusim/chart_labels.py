"""Text labels next to chart points that do not overlap each other or other points.

plotly places a point's text at a fixed ``textposition``; with a few workloads close together
on a log-log roofline the labels pile up. :func:`place` gives each label, in turn, the nearest
offset (eight directions, rings further out) whose box (estimated from the text length and font
size, in pixels of the plot area) overlaps no label placed before it, no point and stays on the
plot; the chart draws it as an annotation with a thin leader line to its point.
"""
from __future__ import annotations

import math

# directions to try, nearest first: (dx, dy) of the box centre in half box sizes (y up)
POSITIONS = {
    "top center": (0.0, 0.5), "bottom center": (0.0, -0.5), "middle right": (0.5, 0.0),
    "middle left": (-0.5, 0.0), "top right": (0.5, 0.5), "top left": (-0.5, 0.5),
    "bottom right": (0.5, -0.5), "bottom left": (-0.5, -0.5),
}
CHAR_PX = 0.6      # a character's width in font sizes (assumption: proportional sans-serif)
LINE_PX = 1.3      # a line's height in font sizes


def overlap(a: tuple, b: tuple) -> float:
    """Area two boxes share (0 when apart)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def to_px(x: float, y: float, x_range: tuple[float, float], y_range: tuple[float, float],
          size: tuple[float, float]) -> tuple[float, float]:
    """A data point of a log-log chart (ranges in log10) in plot-area pixels."""
    fx = (math.log10(x) - x_range[0]) / (x_range[1] - x_range[0])
    fy = (math.log10(y) - y_range[0]) / (y_range[1] - y_range[0])
    return fx * size[0], fy * size[1]


def place(points: list[tuple[float, float, str]], x_range: tuple[float, float],
          y_range: tuple[float, float], size: tuple[float, float] = (1000.0, 500.0),
          font: float = 11.0, marker_px: float = 16.0,
          obstacles: list[tuple[float, float, float]] = ()) -> list[tuple[float, float]]:
    """For each (x, y, text) of a log-log chart, in order, the offset (ax, ay) in pixels of
    its label's centre from the point, as a plotly annotation takes it (``ay`` > 0 is down):
    the nearest of eight directions on rings 1, 2, 3 and 4 label-sizes out whose box is
    clear of the labels placed before, of every point (and ``obstacles``) and of the plot's
    edges (else the least overlapping)."""
    px = [to_px(x, y, x_range, y_range, size) for x, y, _ in points]
    half = marker_px / 2
    markers = [(a - half, b - half, a + half, b + half) for a, b in px]
    for x, y, d in obstacles:      # other markers: (x, y, diameter in pixels)
        if x > 0 and y > 0 and math.isfinite(x) and math.isfinite(y):
            a, b = to_px(x, y, x_range, y_range, size)
            markers.append((a - d / 2, b - d / 2, a + d / 2, b + d / 2))
    placed: list[tuple] = []
    out = []
    for i, ((a, b), (_, _, text)) in enumerate(zip(px, points)):
        w, h = _extent(text, font)
        best, best_cost = (0.0, -(h / 2 + half)), math.inf
        for ring in (1, 2, 3, 4):
            for dx, dy in POSITIONS.values():
                ox = dx * 2 * ring * (w / 2 + half) if dx else 0.0
                oy = dy * 2 * ring * (h / 2 + half) if dy else 0.0
                bx = (a + ox - w / 2, b + oy - h / 2, a + ox + w / 2, b + oy + h / 2)
                cost = sum(overlap(bx, o) for o in placed)
                cost += sum(overlap(bx, m) for m in markers)
                off = (max(0, -bx[0]) + max(0, bx[2] - size[0])) * h \
                    + (max(0, -bx[1]) + max(0, bx[3] - size[1])) * w
                cost += 2 * off
                if cost < best_cost:
                    best, best_cost = (ox, -oy), cost
                if cost == 0:
                    break
            if best_cost == 0:
                break
        ox, oy = best[0], -best[1]
        placed.append((a + ox - w / 2, b + oy - h / 2, a + ox + w / 2, b + oy + h / 2))
        out.append(best)
    return out


def _extent(text: str, font: float) -> tuple[float, float]:
    lines = str(text).replace("<br>", "\n").split("\n")
    return (max(len(l) for l in lines) * CHAR_PX * font + 4, len(lines) * LINE_PX * font + 2)


def label_box(x_px: float, y_px: float, offset: tuple[float, float], text: str,
              font: float = 11.0) -> tuple[float, float, float, float]:
    """The box :func:`place` assumes for a label at ``offset`` from a point (y up)."""
    w, h = _extent(text, font)
    cx, cy = x_px + offset[0], y_px - offset[1]
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
