"""Pictures of a job's curves as SVG, in pure Python (the API process imports neither numpy nor a
plotting library): the range test's loss against a log LR axis with every suggestion marked, or
every trial candidate's loss curve overlaid. For reports, pipeline logs and chat."""

from __future__ import annotations

import math
from collections.abc import Sequence
from xml.sax.saxutils import escape

from app.schemas.job_results import (
    RangeTestResult,
    ResultView,
    TrialsResult,
    suggestion_marks,
    validation_lrs,
)

W, H = 760, 440
LEFT, RIGHT, TOP, BOTTOM = 70, 190, 40, 50
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
           "#e377c2", "#7f7f7f", "#bcbd22"]
MARK_COLOURS = {"recommended": "#d62728", "steepest": "#2ca02c", "valley": "#9467bd",
                "minimum_div10": "#ff7f0e", "lr_at_min": "#7f7f7f"}

Points = list[tuple[float, float]]


def _finite_points(xs: Sequence[float | None], ys: Sequence[float | None], *, log_x: bool
                   ) -> Points:
    return [(float(x), float(y)) for x, y in zip(xs, ys, strict=False)
            if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)
            and (x > 0 or not log_x)]


def _y_range(series: list[Points]) -> tuple[float, float]:
    """From the lowest loss to a little above where the curves start: a diverging tail would
    otherwise squash the part a reader looks at (it is clipped at the top edge)."""
    ys = [y for pts in series for _, y in pts]
    if not ys:
        return 0.0, 1.0
    lo = min(ys)
    starts = [pts[0][1] for pts in series if pts]
    hi = min(max(ys), max(starts) + 0.5 * (max(starts) - lo)) if starts else max(ys)
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0) * 0.1
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def _ticks_log(lo: float, hi: float) -> list[float]:
    return [10.0 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
            if lo <= 10.0 ** e <= hi]


def _ticks_lin(lo: float, hi: float, n: int = 5) -> list[float]:
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if raw <= step * m)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


class _Canvas:
    def __init__(self, x_range: tuple[float, float], y_range: tuple[float, float], log_x: bool,
                 title: str, x_label: str, y_label: str) -> None:
        self.log_x, self.x_range, self.y_range = log_x, x_range, y_range
        self.parts: list[str] = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
            f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12" role="img" '
            f'aria-label="{escape(title, {chr(34): "&quot;"})}">',
            f'<title>{escape(title)}</title>',
            f'<rect width="{W}" height="{H}" fill="#ffffff"/>',
            f'<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
            f'<text x="{LEFT + (W - LEFT - RIGHT) / 2}" y="{H - 10}" text-anchor="middle">'
            f'{escape(x_label)}</text>',
            f'<text x="16" y="{TOP + (H - TOP - BOTTOM) / 2}" text-anchor="middle" '
            f'transform="rotate(-90 16 {TOP + (H - TOP - BOTTOM) / 2})">{escape(y_label)}</text>',
            f'<defs><clipPath id="plot"><rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" '
            f'height="{H - TOP - BOTTOM}"/></clipPath></defs>',
        ]
        self.legend_y = TOP + 4

    def x(self, v: float) -> float:
        lo, hi = self.x_range
        if self.log_x:
            v, lo, hi = math.log10(v), math.log10(lo), math.log10(hi)
        return LEFT + (v - lo) / ((hi - lo) or 1.0) * (W - LEFT - RIGHT)

    def y(self, v: float) -> float:
        lo, hi = self.y_range
        return H - BOTTOM - (v - lo) / ((hi - lo) or 1.0) * (H - TOP - BOTTOM)

    def axes(self) -> None:
        x0, x1, y0, y1 = LEFT, W - RIGHT, TOP, H - BOTTOM
        ticks_x = _ticks_log(*self.x_range) if self.log_x else _ticks_lin(*self.x_range)
        for t in ticks_x:
            px = self.x(t)
            self.parts.append(f'<line x1="{px:.1f}" y1="{y0}" x2="{px:.1f}" y2="{y1}" '
                              f'stroke="#e5e5e5"/><text x="{px:.1f}" y="{y1 + 16}" '
                              f'text-anchor="middle">{t:g}</text>')
        for t in _ticks_lin(*self.y_range):
            py = self.y(t)
            self.parts.append(f'<line x1="{x0}" y1="{py:.1f}" x2="{x1}" y2="{py:.1f}" '
                              f'stroke="#e5e5e5"/><text x="{x0 - 6}" y="{py + 4:.1f}" '
                              f'text-anchor="end">{t:.4g}</text>')
        self.parts.append(f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" '
                          'fill="none" stroke="#333"/>')

    def line(self, pts: Points, colour: str, label: str, *, width: float = 2.0,
             dash: str | None = None, opacity: float = 1.0) -> None:
        if not pts:
            return
        d = " ".join(f"{'M' if i == 0 else 'L'}{self.x(x):.1f},{self.y(y):.1f}"
                     for i, (x, y) in enumerate(pts))
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="{width}" '
                          f'stroke-opacity="{opacity}" clip-path="url(#plot)"{extra}>'
                          f'<title>{escape(label)}</title></path>')
        self.legend(colour, label, dash=dash)

    def vline(self, at: float, colour: str, label: str, *, width: float = 1.5) -> None:
        if not self.x_range[0] <= at <= self.x_range[1]:
            return
        px = self.x(at)
        self.parts.append(f'<line class="mark" x1="{px:.1f}" y1="{TOP}" x2="{px:.1f}" '
                          f'y2="{H - BOTTOM}" stroke="{colour}" stroke-width="{width}" '
                          f'stroke-dasharray="5 3"><title>{escape(label)}</title></line>')
        self.legend(colour, label, dash="5 3")

    def band(self, lo: float, hi: float, label: str) -> None:
        lo, hi = max(lo, self.x_range[0]), min(hi, self.x_range[1])
        if hi <= lo:
            return
        self.parts.append(f'<rect x="{self.x(lo):.1f}" y="{TOP}" '
                          f'width="{self.x(hi) - self.x(lo):.1f}" height="{H - TOP - BOTTOM}" '
                          f'fill="#d62728" fill-opacity="0.07"><title>{escape(label)}</title>'
                          '</rect>')
        self.legend("#f3c4c4", label, box=True)

    def legend(self, colour: str, label: str, *, dash: str | None = None,
               box: bool = False) -> None:
        lx, ly = W - RIGHT + 12, self.legend_y
        if box:
            self.parts.append(f'<rect x="{lx}" y="{ly - 6}" width="22" height="10" '
                              f'fill="{colour}"/>')
        else:
            extra = f' stroke-dasharray="{dash}"' if dash else ""
            self.parts.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 22}" y2="{ly}" '
                              f'stroke="{colour}" stroke-width="2"{extra}/>')
        self.parts.append(f'<text x="{lx + 28}" y="{ly + 4}">{escape(label[:24])}</text>')
        self.legend_y += 18

    def note(self, text: str) -> None:
        self.parts.append(f'<text x="{LEFT + 8}" y="{TOP + 16}" fill="#555">{escape(text)}</text>')

    def svg(self) -> str:
        return "\n".join([*self.parts, "</svg>"]) + "\n"


def range_test_svg(view: RangeTestResult, title: str) -> str:
    raw = _finite_points(view.curve.lrs, view.curve.raw_losses, log_x=True)
    smooth = _finite_points(view.curve.lrs, view.curve.losses, log_x=True)
    val = _finite_points(validation_lrs(view),
                         view.validation.losses if view.validation else [], log_x=True)
    xs = [x for pts in (raw, smooth) for x, _ in pts]
    x_range = (min(xs), max(xs)) if xs else (1e-7, 10.0)
    if x_range[0] == x_range[1]:
        x_range = (x_range[0] / 10, x_range[1] * 10)
    c = _Canvas(x_range, _y_range([smooth or raw, val]), True, title, "learning rate (log)",
                "loss")
    c.axes()
    s = view.suggestions
    if s.cycle_min_lr is not None and s.cycle_max_lr is not None:
        c.band(s.cycle_min_lr, s.cycle_max_lr, "1cycle bounds")
    c.line(raw, "#9ab7d3", "raw loss", width=1.0, opacity=0.8)
    c.line(smooth, PALETTE[0], "smoothed loss", width=2.2)
    c.line(val, "#2ca02c", "validation loss", width=1.8, dash="2 2")
    for name, lr in suggestion_marks(s):
        c.vline(lr, MARK_COLOURS[name], f"{name} {lr:.3g}", width=2.5 if name == "recommended"
                else 1.5)
    if s.recommended is not None:
        conf = f", confidence {s.confidence:.2f}" if s.confidence is not None else ""
        c.note(f"recommended LR {s.recommended:.3g}{conf}")
    elif not smooth:
        c.note("no finite loss to draw")
    return c.svg()


def trials_svg(view: TrialsResult, title: str) -> str:
    series = []
    for cand in view.candidates:
        ys = cand.curve.smoothed_train_losses or cand.curve.train_losses
        series.append(_finite_points(range(1, len(ys) + 1), ys, log_x=False))
    xs = [x for pts in series for x, _ in pts]
    c = _Canvas((1.0, max(xs) if xs else 2.0), _y_range(series), False, title, "step",
                "train loss (smoothed)")
    c.axes()
    for i, (cand, pts) in enumerate(zip(view.candidates, series, strict=True)):
        won = cand.label == view.best
        c.line(pts, PALETTE[i % len(PALETTE)], ("★ " if won else "") + cand.label,
               width=3.0 if won else 1.6)
    if view.best:
        c.note(f"best: {view.best}")
    return c.svg()


def job_svg(view: ResultView, title: str) -> str:
    return range_test_svg(view, title) if isinstance(view, RangeTestResult) else \
        trials_svg(view, title)
