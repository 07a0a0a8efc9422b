"""The shift-invariant divergence rule shared by the range test and the short trials (torch-free).

One rule, one implementation: the range test (``optim_core.training.range_test``) and the trials
(``optim_core.training.trials``) both feed their raw losses to a `DivergenceMonitor`, so "diverged" means
the same thing in both results.

With ``s_t`` the bias-corrected EMA of the raw loss, ``start`` the median of the first
``w = start_window(num_steps)`` raw losses (``optim_core.numerics.suggest.start_level``: no single
batch decides where the run started), ``best_t = min(s_w..s_t)`` (the EMA's first values are
little more than the first batch, not a level the run reached), ``noise_t = median_i |raw_i -
raw_{i-1}|`` (batch-to-batch noise, robust to the spikes of a diverging loss) and
``scale_t = max(start - best_t, NOISE_FACTOR * noise_t, 1e-8 * (1 + |start|))``, the run has
diverged at the first step where ``s_t - best_t > threshold * scale_t``.

Every term is a difference of losses, so a loss shifted by a constant diverges at the same step and
negative losses work; the usual ``s_t > factor * s_0`` fires on noise for a loss near 0 and late (or
never) for an offset loss. The last floor only avoids dividing a perfectly flat loss by zero; it is
relative to ``|start|`` because below that the float64 sum itself is noise.

The rule is not applied in the first ``grace_steps(num_steps)`` steps, where the EMA and the noise
estimate have seen too few values. A NaN/Inf raw loss stops at once ("non_finite").
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable

from optim_core.numerics.suggest import EmaSmoother, start_level, start_window

__all__ = ["NOISE_FACTOR", "NOISE_GRACE_MIN", "DivergenceMonitor", "grace_steps"]

#: the noise floor of the scale is this many times the median |raw_t - raw_{t-1}|.
NOISE_FACTOR = 3.0
#: no divergence stop in the first max(NOISE_GRACE_MIN, num_steps // 10) steps.
NOISE_GRACE_MIN = 10


def grace_steps(num_steps: int) -> int:
    """Steps at the start of a run where only NaN/Inf stops it."""
    return max(NOISE_GRACE_MIN, num_steps // 10)


class DivergenceMonitor:
    """Smooths raw losses and applies the divergence rule, one loss at a time.

    The decision at step ``t`` uses only losses ``0..t``, so feeding the losses in chunks (the range
    test checks every ``check_every`` steps) stops at the same step as feeding them one by one.
    After a stop, further losses are ignored: ``raw`` and ``smoothed`` end at the stopping step.
    """

    def __init__(self, *, beta: float, threshold: float, num_steps: int,
                 enabled: bool = True) -> None:
        self.threshold = threshold
        self.enabled = enabled
        self.grace = grace_steps(num_steps)
        self.window = min(start_window(num_steps), self.grace)
        self.ema = EmaSmoother(beta)
        self.raw: list[float] = []
        self.smoothed: list[float] = []
        self.best = math.inf
        self.start = math.nan  # start_level of the first `window` raw losses, once seen
        self._abs_diffs: list[float] = []  # sorted |raw_t - raw_{t-1}|, for a running median
        self.stop_at: int | None = None  # index of the step that triggered the stop
        self.stop_reason = "completed"  # | "diverged" | "non_finite"

    def noise(self) -> float:
        """Median absolute step-to-step change of the raw loss: batch noise, robust to spikes."""
        d = self._abs_diffs
        if not d:
            return 0.0
        mid = len(d) // 2
        return d[mid] if len(d) % 2 else 0.5 * (d[mid - 1] + d[mid])

    def update(self, x: float) -> bool:
        """Record one raw loss; True when the run has stopped (now or before)."""
        if self.stop_at is not None:
            return True
        t = len(self.raw)
        if not math.isfinite(x):
            self.raw.append(x)
            self.smoothed.append(math.nan)
            self.stop_at, self.stop_reason = t, "non_finite"
            return True
        if t > 0:
            bisect.insort(self._abs_diffs, abs(x - self.raw[-1]))
        self.raw.append(x)
        s = self.ema.update(x)
        self.smoothed.append(s)
        if t == self.window - 1:
            self.start = start_level(self.raw, self.window)
        if t >= self.window:
            self.best = min(self.best, s)
        if not self.enabled or t < self.grace:
            return False
        scale = max(self.start - self.best, NOISE_FACTOR * self.noise(),
                    1e-8 * (1.0 + abs(self.start)))
        if s - self.best > self.threshold * scale:
            self.stop_at, self.stop_reason = t, "diverged"
            return True
        return False

    def feed(self, raw: Iterable[float]) -> None:
        """``update`` each loss in turn, up to the first stop."""
        for x in raw:
            if self.update(x):
                return
