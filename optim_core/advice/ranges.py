"""Range → number: the documented, monotone methods that turn the guidelines' ranges into values.

All are pure functions of numbers. Monotonicity is what the property tests check: each method is a
piecewise log-log linear interpolation between anchor points (flat outside the anchors, i.e.
clamped), so it moves in one direction only, and never leaves the anchors' value range.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence


def loglog_interp(x: float, anchors: Sequence[tuple[float, float]]) -> float:
    """``y(x)`` by linear interpolation of ``ln y`` over ``ln x`` between sorted anchors
    ``(x_i, y_i)``; clamped to the end anchors' values outside them."""
    if x <= anchors[0][0]:
        return anchors[0][1]
    if x >= anchors[-1][0]:
        return anchors[-1][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(anchors):
        if x0 <= x <= x1:
            t = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
            return math.exp(math.log(y0) + t * (math.log(y1) - math.log(y0)))
    raise ValueError(f"anchors are not sorted: {anchors!r}")  # pragma: no cover


def sig(x: float, digits: int = 3) -> float:
    """``x`` to ``digits`` significant digits: advice is read and typed by people, and the methods
    are not precise beyond that. Rounding is monotone, so monotone methods stay monotone."""
    # a constant format spec for the usual 3 digits: building ".{digits}g" per call cost a third
    return float(format(x, ".3g" if digits == 3 else f".{digits}g"))


def clamp(x: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, x))


def batch_factor(method: str, to_batch: float, from_batch: float,
                 bounds: tuple[float, float]) -> float:
    """LR multiplier for a batch change: linear (O2.2b, SGD) or square root (Malladi 2022,
    Adam family), clamped to ``bounds`` — both rules are known to fail far from the reference."""
    ratio = to_batch / from_batch
    raw = ratio if method == "linear" else math.sqrt(ratio)
    return clamp(raw, *bounds)


def warmup_from_fraction(total_steps: int, fraction: float, max_fraction: float) -> int:
    """``round(fraction·T)`` capped at ``max_fraction·T`` and at ``T − 1`` (the peak needs a step
    after it), and at least 1 when the run has room for it."""
    steps = round(min(fraction, max_fraction) * total_steps)
    if total_steps >= 20:
        steps = max(steps, 1)
    return max(0, min(steps, total_steps - 1))


def warmup_from_steps(total_steps: int, target: int, max_fraction: float) -> int:
    """A target warmup in steps (O6.4's 2,000; 5 epochs) capped at ``max_fraction·T`` (O6.2b)."""
    return warmup_from_fraction(total_steps, min(target / total_steps, max_fraction),
                                max_fraction)
