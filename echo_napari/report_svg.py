"""Small inline-SVG plots for the HTML report (no plotting library needed).

Each function returns an ``<svg>`` string: boxplots, scatter (+ identity line),
Bland–Altman, and line curves with markers. Coordinates are data units; the axes get
"nice" ticks (1, 2, 5 × 10^k).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

PALETTE = ("#d62728", "#1f77b4", "#e6a817", "#2ca02c", "#9467bd", "#8c564b", "#17becf")
WIDTH, HEIGHT = 420, 300
MARGIN = {"left": 62, "right": 14, "top": 30, "bottom": 46}


def nice_ticks(low: float, high: float, count: int = 5) -> np.ndarray:
    """About ``count`` round tick values covering [low, high]."""
    if not np.isfinite(low) or not np.isfinite(high):
        return np.array([0.0, 1.0])
    if high <= low:
        high = low + (abs(low) if low else 1.0)
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** np.floor(np.log10(raw))
    step = min(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = np.floor(low / step) * step
    ticks = np.arange(start, high + step * 0.999, step)
    # Round away float noise (0.1 + 0.2 ...) so labels read "0", not "1.4e-17".
    return np.round(ticks / step) * step


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)


@dataclass
class Axes:
    """A plot area with linear x/y scales, accumulating SVG elements."""

    x_range: tuple[float, float]
    y_range: tuple[float, float]
    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    width: int = WIDTH
    height: int = HEIGHT
    parts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.x_ticks = nice_ticks(*self.x_range)
        self.y_ticks = nice_ticks(*self.y_range)
        self.x0, self.x1 = float(self.x_ticks[0]), float(self.x_ticks[-1])
        self.y0, self.y1 = float(self.y_ticks[0]), float(self.y_ticks[-1])
        self.left = MARGIN["left"]
        self.right = self.width - MARGIN["right"]
        self.top = MARGIN["top"]
        self.bottom = self.height - MARGIN["bottom"]

    def px(self, x: float) -> float:
        """Data x → SVG x."""
        span = self.x1 - self.x0 or 1.0
        return self.left + (x - self.x0) / span * (self.right - self.left)

    def py(self, y: float) -> float:
        """Data y → SVG y (up is larger)."""
        span = self.y1 - self.y0 or 1.0
        return self.bottom - (y - self.y0) / span * (self.bottom - self.top)

    def frame(self, x_tick_labels: dict[float, str] | None = None) -> None:
        """Axes box, grid, ticks, labels and title."""
        p = self.parts
        for y in self.y_ticks:
            yy = self.py(y)
            p.append(
                f'<line x1="{self.left}" y1="{yy:.1f}" x2="{self.right}" y2="{yy:.1f}" '
                'stroke="#e4e4e4"/>'
                f'<text x="{self.left - 5}" y="{yy + 4:.1f}" text-anchor="end">{_fmt(y)}</text>'
            )
        ticks = x_tick_labels or {float(x): _fmt(x) for x in self.x_ticks}
        for x, label in ticks.items():
            xx = self.px(x)
            p.append(
                f'<line x1="{xx:.1f}" y1="{self.bottom}" x2="{xx:.1f}" y2="{self.bottom + 4}" '
                'stroke="#444"/>'
                f'<text x="{xx:.1f}" y="{self.bottom + 16}" text-anchor="middle">'
                f"{_esc(label)}</text>"
            )
        p.append(
            f'<rect x="{self.left}" y="{self.top}" width="{self.right - self.left}" '
            f'height="{self.bottom - self.top}" fill="none" stroke="#444"/>'
            f'<text x="{(self.left + self.right) / 2}" y="{self.height - 8}" '
            f'text-anchor="middle">{_esc(self.xlabel)}</text>'
            f'<text transform="translate(14 {(self.top + self.bottom) / 2}) rotate(-90)" '
            f'text-anchor="middle">{_esc(self.ylabel)}</text>'
            f'<text x="{self.width / 2}" y="18" text-anchor="middle" font-weight="bold">'
            f"{_esc(self.title)}</text>"
        )

    def line(self, x: Sequence[float], y: Sequence[float], color: str, **style: str) -> None:
        """Polyline through finite points (gaps where NaN)."""
        dash = f' stroke-dasharray="{style["dash"]}"' if "dash" in style else ""
        width = style.get("width", "1.6")
        segment: list[str] = []
        for xv, yv in [*zip(x, y, strict=False), (np.nan, np.nan)]:
            if np.isfinite(xv) and np.isfinite(yv):
                segment.append(f"{self.px(xv):.1f},{self.py(yv):.1f}")
            elif segment:
                self.parts.append(
                    f'<polyline points="{" ".join(segment)}" fill="none" stroke="{color}" '
                    f'stroke-width="{width}"{dash}/>'
                )
                segment = []

    def points(self, x: Sequence[float], y: Sequence[float], color: str, r: float = 3) -> None:
        """Markers at finite points."""
        for xv, yv in zip(x, y, strict=False):
            if np.isfinite(xv) and np.isfinite(yv):
                self.parts.append(
                    f'<circle cx="{self.px(xv):.1f}" cy="{self.py(yv):.1f}" r="{r}" '
                    f'fill="{color}" fill-opacity="0.75"/>'
                )

    def text(self, x: float, y: float, text: str, anchor: str = "start") -> None:
        """Text at SVG (pixel) coordinates."""
        self.parts.append(
            f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{_esc(text)}</text>'
        )

    def svg(self) -> str:
        """The finished ``<svg>`` element."""
        body = "".join(self.parts)
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" '
            f'height="{self.height}" viewBox="0 0 {self.width} {self.height}" '
            f'font-family="sans-serif" font-size="11">{body}</svg>'
        )


def _range(*arrays: np.ndarray, pad: float = 0.05) -> tuple[float, float]:
    values = np.concatenate([np.asarray(a, float).ravel() for a in arrays] or [np.zeros(1)])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    low, high = float(values.min()), float(values.max())
    span = high - low or (abs(high) or 1.0)
    return low - pad * span, high + pad * span


def boxplot(groups: dict[str, np.ndarray], title: str, ylabel: str) -> str:
    """Tukey boxplots (box = quartiles, whiskers = 1.5 IQR, outliers as dots) per group.

    Non-finite values are left out; ``n`` per group is printed under its name.
    """
    clean = {k: np.asarray(v, float)[np.isfinite(np.asarray(v, float))] for k, v in groups.items()}
    names = list(clean)
    width = max(WIDTH, 24 + 100 * len(names))  # room for every group's label
    axes = Axes((0.5, len(names) + 0.5), _range(*clean.values()), title, "", ylabel, width=width)
    # x ticks sit at integer positions 1..n; keep the exact data range for the x axis.
    axes.x0, axes.x1 = 0.5, len(names) + 0.5
    axes.frame({i + 1.0: f"{n} (n={clean[n].size})" for i, n in enumerate(names)})
    for i, name in enumerate(names):
        values = clean[name]
        if values.size == 0:
            continue
        color = PALETTE[i % len(PALETTE)]
        q1, med, q3 = np.percentile(values, [25, 50, 75])
        iqr = q3 - q1
        inside = values[(values >= q1 - 1.5 * iqr) & (values <= q3 + 1.5 * iqr)]
        lo, hi = inside.min(), inside.max()
        x = i + 1.0
        half = 0.25
        xl, xr, xc = axes.px(x - half), axes.px(x + half), axes.px(x)
        axes.parts.append(
            f'<line x1="{xc:.1f}" y1="{axes.py(lo):.1f}" x2="{xc:.1f}" y2="{axes.py(hi):.1f}" '
            'stroke="#333"/>'
            f'<rect x="{xl:.1f}" y="{axes.py(q3):.1f}" width="{xr - xl:.1f}" '
            f'height="{max(axes.py(q1) - axes.py(q3), 0.5):.1f}" fill="{color}" '
            'fill-opacity="0.45" stroke="#333"/>'
            f'<line x1="{xl:.1f}" y1="{axes.py(med):.1f}" x2="{xr:.1f}" y2="{axes.py(med):.1f}" '
            'stroke="#000" stroke-width="2"/>'
        )
        outliers = values[(values < lo) | (values > hi)]
        axes.points(np.full(outliers.size, x), outliers, color, r=2.5)
    return axes.svg()


def scatter_identity(
    x: np.ndarray, y: np.ndarray, title: str, xlabel: str, ylabel: str, note: str = ""
) -> str:
    """Scatter of y against x with the identity line (agreement plot)."""
    low, high = _range(x, y)
    axes = Axes((low, high), (low, high), title, xlabel, ylabel)
    axes.frame()
    axes.line([axes.x0, axes.x1], [axes.x0, axes.x1], "#888", dash="4 3", width="1")
    axes.points(x, y, PALETTE[1])
    if note:
        axes.text(axes.left + 6, axes.top + 14, note)
    return axes.svg()


def bland_altman(
    ref: np.ndarray,
    pred: np.ndarray,
    bias: float,
    loa: tuple[float, float],
    title: str,
    unit: str,
) -> str:
    """Bland–Altman plot: difference (pred − ref) against the mean, bias and 95 % limits."""
    ref = np.asarray(ref, float)
    pred = np.asarray(pred, float)
    mean, diff = (ref + pred) / 2, pred - ref
    axes = Axes(
        _range(mean),
        _range(diff, np.array([bias, *loa])),
        title,
        f"mean of prediction and reference ({unit})",
        f"prediction − reference ({unit})",
    )
    axes.frame()
    for value, label, dash in (
        (bias, "bias", ""),
        (loa[0], "−1.96 SD", "4 3"),
        (loa[1], "+1.96 SD", "4 3"),
    ):
        if np.isfinite(value):
            style = {"dash": dash} if dash else {}
            axes.line([axes.x0, axes.x1], [value, value], "#555", width="1", **style)
            axes.text(axes.right - 4, axes.py(value) - 3, f"{label} {value:.2f}", "end")
    axes.points(mean, diff, PALETTE[1])
    return axes.svg()


def curves(
    x: np.ndarray,
    series: dict[str, tuple[np.ndarray, str, bool]],
    title: str,
    xlabel: str,
    ylabel: str,
    marks: dict[str, float] | None = None,
) -> str:
    """Line/marker curves sharing an x axis, with labelled vertical marks (e.g. ED, ES).

    Parameters
    ----------
    series : name -> (y values, colour, as_markers)
    marks : label -> x position of a vertical line
    """
    ys = [s[0] for s in series.values()]
    axes = Axes(_range(x, pad=0.0), _range(*ys), title, xlabel, ylabel)
    axes.frame()
    for label, position in (marks or {}).items():
        axes.line([position, position], [axes.y0, axes.y1], "#999", dash="3 3", width="1")
        axes.text(axes.px(position) + 3, axes.top + 12, label)
    legend_y = axes.top + 12
    for name, (y, color, as_markers) in series.items():
        if as_markers:
            axes.points(x, y, color, r=3.5)
        else:
            axes.line(x, y, color)
        axes.parts.append(
            f'<rect x="{axes.right - 120}" y="{legend_y - 8}" width="10" height="10" '
            f'fill="{color}"/>'
        )
        axes.text(axes.right - 106, legend_y + 1, name)
        legend_y += 14
    return axes.svg()


def percentile_boxes(
    positions: np.ndarray,
    p5: np.ndarray,
    p25: np.ndarray,
    p50: np.ndarray,
    p75: np.ndarray,
    p95: np.ndarray,
    title: str,
    xlabel: str,
    ylabel: str,
    reference: float | None = None,
) -> str:
    """Boxplots from precomputed percentiles (box 25–75, whiskers 5–95, median line).

    ``reference`` draws a horizontal line (e.g. det J = 0, the folding threshold).
    """
    low = np.asarray(p5, float)
    high = np.asarray(p95, float)
    extra = np.array([reference]) if reference is not None else np.zeros(0)
    positions = np.asarray(positions, float)
    x_range = (positions.min() - 0.6, positions.max() + 0.6) if positions.size else (0, 1)
    axes = Axes(x_range, _range(low, high, extra), title, xlabel, ylabel, width=840)
    axes.frame()
    if reference is not None:
        axes.line([axes.x0, axes.x1], [reference, reference], "#d62728", dash="4 3", width="1")
    step = np.median(np.diff(positions)) if positions.size > 1 else 1.0
    half = 0.3 * step
    for x, a, b, m, c, d in zip(positions, p5, p25, p50, p75, p95, strict=False):
        if not all(np.isfinite([a, b, m, c, d])):
            continue
        xl, xr, xc = axes.px(x - half), axes.px(x + half), axes.px(x)
        axes.parts.append(
            f'<line x1="{xc:.1f}" y1="{axes.py(a):.1f}" x2="{xc:.1f}" y2="{axes.py(d):.1f}" '
            'stroke="#333"/>'
            f'<rect x="{xl:.1f}" y="{axes.py(c):.1f}" width="{max(xr - xl, 1):.1f}" '
            f'height="{max(axes.py(b) - axes.py(c), 0.5):.1f}" fill="{PALETTE[1]}" '
            'fill-opacity="0.45" stroke="#333"/>'
            f'<line x1="{xl:.1f}" y1="{axes.py(m):.1f}" x2="{xr:.1f}" y2="{axes.py(m):.1f}" '
            'stroke="#000" stroke-width="1.5"/>'
        )
    return axes.svg()
