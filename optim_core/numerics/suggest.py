"""LR suggestions from a range-test curve: pure functions of ``(lrs, losses)`` (torch-free).

This is the *deciding* half of the range test (``range_test.py`` measures). Everything here takes
plain sequences of floats and is plain Python (no numpy: the API process imports neither torch nor
numpy), so the API can re-run it on a stored curve, and tests can pin what each rule returns on
hand-built curves. The numpy calls the anchors' rules are written with have bit-identical
stand-ins below (`_gradient`, `_argmin`, `_median`, …).

``losses`` are the *smoothed* losses of the sweep (``RangeTestResult.losses``). Non-finite values
(NaN, +/-Inf, None) end the usable curve: only the finite prefix is read, the way fastai drops
everything from the first NaN on.

The known rules, implemented as their authors do:

* ``steepest`` — torch-lr-finder / Lightning (before 2.5.3): the LR where the loss falls fastest per
  step, ``argmin(np.gradient(losses))``, skipping the first 10 and last 5 points. Known to land just
  before divergence, often several times too high.
* ``valley`` — fastai's default: on the curve without its first ``n // 10`` and last 5 points, take
  the longest strictly decreasing subsequence and return the point half-way along it (fastai:
  ``start + int(len / 3) + int(len / 6)``). Safer, tends to be low.
* ``minimum_div10`` — fastai's ``minimum``: the LR of the lowest loss (same trimmed curve) / 10.
* ``lightning`` (a function, not part of `Suggestions`: reported by the quality benchmark) —
  Lightning's ``_LRFinder.suggestion`` since 2.5.3: skip the first 10 and the last point, drop
  non-finite values, take the steepest fall of the loss against the LR itself (``np.gradient(losses,
  lrs)``), not against the step or log-LR.

The recommended pick (``suggest(...).recommended``), designed against the failures above:

0. "the start" of the curve is ``start_level``: the median of the first ``start_window(N)`` raw
   losses (``N``: the steps the sweep asked for; the first tenth of it, 3 to 10 points), not the
   first batch. Raw losses not given are recovered from the smoothed ones (``unsmooth``). Every rule
   that compares with the start (never decreases, the drop, the 1cycle bound, still falling, the
   noise ratio) uses it. The falling region is read on the smoothed curve *after* that window:
   inside it the EMA is little more than the first batches, so a lucky batch there is no fall.
   Any fall below the start after the window counts, however small against the noise (the
   confidence says "noisy"). A curve without one is one of two unusable kinds: its raw losses
   fell inside the window, clearly (``_early_fall``: medians of 3 batches, three standard errors
   below where it began) — the first LRs already train, ``diverged_immediately`` — or they never
   fell, ``never_decreases``. Either way the pick is the lowest LR tried, a placeholder.

1. ``lr_min`` = LR at the minimum of the smoothed curve. Beyond it the loss rises; the smoothed
   minimum also *lags* the raw one (the EMA remembers ~50 steps), so it is already too high.
2. ``anchor`` = ``lr_min / BACKOFF`` with ``BACKOFF = 4``. Measured, not guessed
   (``bench/lr_quality.py``, issue 11): over 8 problems x {AdamW, SGD} x 3 seeds, trained with the
   trials' warmup + cosine, the best peak LR sat -0.09 to 1.35 decades (median 0.57, i.e. /3.7)
   below ``lr_min``. The earlier anchor, a weighted geometric mean of minimum/10 and fastai's
   ``valley``, landed below the best LR on nearly every case (valley reads the middle of the fall
   and is low). ``BACKOFF`` is the one of /3, /4, /5, /6, /8, /10 with the lowest geometric-mean
   regret on the benchmark's ``FIT`` problems (``bench/backoff_cv.py``; the held-out problems are
   reported apart and never enter the choice). On 2026-12-02 that was /5; on the benchmark as it
   stands since, /4. The script also leaves one problem out of all 8 in turn (choose on seven,
   score the one left out): every fold chooses /4.
3. clipped into the falling region (with ``BACKOFF > MIN_BACKOFF`` the upper clip is a guard for
   the constants, not a step that fires): never above ``lr_min / MIN_BACKOFF`` (so never at or past the
   point where the loss stops falling — the failure of ``steepest``), never below the first LR
   (nothing below it was measured). When the two bounds cross (``lr_min < MIN_BACKOFF * lrs[0]``:
   the loss bottomed out within 3x of the sweep's start) the *lower* bound wins: the pick is
   ``lrs[0]``, above ``lr_min / MIN_BACKOFF``. Whenever the pick is ``lrs[0]`` (that way, or because
   the anchor fell below it) it is flagged ``at_sweep_start`` with confidence halved: the curve
   cannot say whether a lower LR would be better — rerun with a lower ``start_lr``.
   There is deliberately no lower clip at "where the smoothed loss starts falling": the EMA lag
   makes that point late, and on SGD curves that fall only at the very end such a clip pushed the
   pick 3x above the best fixed LR (measured in ``bench/suggestion_quality.py``).

The pick is judged by training, not by eye: ``tests/core/test_suggest_quality.py``. It is
judged, and meant, as the *peak* of a warmup + decay schedule, which is how the trials use it.
Held constant it reads high: ``bench/suggestion_quality.py`` trains constant LRs, and there it was
close to the best on 6 of 9 runs, against minimum/10's 9.

Confidence in [0, 1] starts at 1 and is multiplied down for: a short curve, a curve that never
decreases, a minimum in the first tenth (diverged immediately), a minimum at the very end with no
rise after it (the sweep stopped before the loss turned: raise ``end_lr``), a drop that is small
against the batch-to-batch noise (measured on the raw losses, given or recovered with
``unsmooth``), a pick at the first LR of the sweep, and rules disagreeing widely. The reason
is one sentence saying which applied. It says how well the curve could be read, not how near the
pick is to the best LR: on ``bench/lr_quality.py`` the picks read at confidence 1.0 were no nearer
than those at 0.6 (``by_confidence`` in its report, README). Nearness is what the trials measure.

Flags (``Suggestions.flags``): ``non_finite``, ``lrs_not_increasing`` (the curve is read up to
the first LR not above the one before it), ``too_short``, ``short``, ``never_decreases``,
``diverged_immediately``, ``still_falling``, ``noisy``, ``somewhat_noisy``, ``at_sweep_start``,
``rules_disagree``. ``UNUSABLE_FLAGS`` are those after which ``recommended`` is only a placeholder
(the first LR of the sweep) or read off a curve that never showed a falling region.

1cycle / cyclical bounds (Smith): ``cycle_max_lr`` = the LR where the loss stops falling, read as the
first point within ``FLAT_FRACTION`` (10 %) of the total drop from the minimum (earlier than the lagging
argmin); ``cycle_min_lr = cycle_max_lr / CYCLE_DIV`` with ``CYCLE_DIV = 10`` (Smith's cyclical
lower bound; ``torch.optim.lr_scheduler.OneCycleLR`` starts at ``max_lr / 25`` by default).
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

#: the recommended pick backs off from the smoothed minimum by this factor (chosen on the quality
#: benchmark's FIT problems and checked by leaving one problem out, see the module docstring;
#: fastai's rule of thumb is 10).
BACKOFF = 4.0
#: ...and never sits above ``lr_min / MIN_BACKOFF`` (never at the turning point itself).
MIN_BACKOFF = 3.0
#: the loss has "stopped falling" once within this fraction of the total drop from the minimum.
FLAT_FRACTION = 0.1
#: 1cycle / cyclical lower bound = max / CYCLE_DIV.
CYCLE_DIV = 10.0
#: torch-lr-finder's skips for the steepest rule.
STEEP_SKIP_START, STEEP_SKIP_END = 10, 5
#: fewer finite points than this: the curve is "short" (low confidence).
SHORT_CURVE = 20
#: a drop smaller than this times (1 + |first loss|) is rounding, not a fall ("never_decreases").
FLAT_TOL = 1e-8
#: a fall inside the start window counts only when it is this many standard errors below where the
#: sweep began (`_early_fall`): one or two lucky batches there are not a fall.
FALL_Z = 3.0
#: the smoothing the range test applies (``RangeTestConfig.smooth_beta``'s default), and what
#: ``suggest`` assumes its ``losses`` were smoothed with unless told otherwise.
DEFAULT_BETA = 0.98
#: the start of the curve is judged on its first tenth, at least START_MIN and at most START_MAX
#: points (`start_window`): on the default sweep (1e-7 -> 10 in 100 steps) those LRs are within 0.8
#: decades of start_lr, too small to change the model, so their losses all measure the untrained
#: model and their median is its loss, whatever one lucky or unlucky batch says.
START_MIN, START_MAX = 3, 10
#: flags after which ``recommended`` is a placeholder, not a measurement (callers that act on the
#: pick without a human, such as the trials' centre LR, must refuse it).
UNUSABLE_FLAGS = frozenset({"too_short", "never_decreases", "diverged_immediately"})

FloatSeq = Sequence[float | None]


@dataclass(frozen=True)
class Suggestions:
    """All suggestions for one curve. ``None`` where a rule had too few points to answer."""

    steepest: float | None
    valley: float | None
    minimum_div10: float | None
    lr_at_min: float | None
    recommended: float | None
    confidence: float
    reason: str
    cycle_max_lr: float | None
    cycle_min_lr: float | None
    flags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON (floats, None, str, list)."""
        return asdict(self)


# --------------------------------------------------------------------------------------------
# smoothing (shared with range_test so the stored curve and this module agree)
# --------------------------------------------------------------------------------------------


class EmaSmoother:
    """EMA with start-up bias correction, as fastai: ``avg_t = beta*avg_{t-1} + (1-beta)*x_t``,
    ``smoothed_t = avg_t / (1 - beta**(t+1))`` for 0-based ``t`` — so ``smoothed_0 == x_0`` exactly
    (Lightning's version uses ``beta**t`` and is off by one step)."""

    def __init__(self, beta: float) -> None:
        self.beta = beta
        self._avg = 0.0
        self._count = 0

    def update(self, x: float) -> float:
        self._count += 1
        self._avg = self.beta * self._avg + (1.0 - self.beta) * x
        if self.beta == 0.0:
            return self._avg
        return self._avg / (1.0 - self.beta**self._count)


def smooth(raw: FloatSeq, beta: float = DEFAULT_BETA) -> list[float]:
    """Bias-corrected EMA of ``raw`` (None read as NaN; NaN propagates, as it should)."""
    sm = EmaSmoother(beta)
    return [sm.update(float("nan") if x is None else float(x)) for x in raw]


def unsmooth(smoothed: Sequence[float], beta: float = DEFAULT_BETA) -> list[float]:
    """The raw losses behind ``smooth(raw, beta)``: its exact inverse, up to rounding (the EMA's
    running average is ``avg_t = smoothed_t * (1 - beta**(t+1))``, and ``raw_t = (avg_t - beta *
    avg_{t-1}) / (1 - beta)``). Lets a curve stored without its raw losses still be judged on them:
    the smoothed curve's first values are little more than its first batch."""
    out: list[float] = []
    prev = 0.0
    for t, v in enumerate(smoothed):
        avg = v * (1.0 - beta ** (t + 1))
        out.append((avg - beta * prev) / (1.0 - beta))
        prev = avg
    return out


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _finite_prefix(lrs: FloatSeq, losses: FloatSeq) -> tuple[list[float], list[float]]:
    """The curve up to (not including) the first non-finite loss or LR, or the first LR not above
    the one before it: past that the points are no longer a sweep (a range test whose end_lr is
    within rounding of its start_lr repeats LRs), so nothing there can be read as one."""
    n = min(len(lrs), len(losses))
    out_l: list[float] = []
    out_y: list[float] = []
    for i in range(n):
        lr, y = lrs[i], losses[i]
        if lr is None or y is None:
            break
        lr_f, y_f = float(lr), float(y)
        if not (math.isfinite(lr_f) and math.isfinite(y_f)) or lr_f <= 0.0:
            break
        if out_l and lr_f <= out_l[-1]:
            break
        out_l.append(lr_f)
        out_y.append(y_f)
    return out_l, out_y


def _fastai_view(lrs: FloatSeq, losses: FloatSeq, num_steps: int | None
                 ) -> tuple[list[float], list[float]]:
    """What fastai's ``lr_find`` hands its suggestion functions: the recorded curve trimmed to
    ``[num_it // 10 : -5]`` (``num_it`` = the steps *asked for*, so a sweep that stopped early is
    trimmed from the same point as a full one), then cut at the first non-finite value. Falls
    back to the whole finite curve when the trimmed one has < 2 points."""
    n = min(len(lrs), len(losses))
    a, b = (num_steps if num_steps else n) // 10, n - 5
    x, y = _finite_prefix(list(lrs)[a:b], list(losses)[a:b]) if b - a >= 2 else ([], [])
    if len(y) >= 2:
        return x, y
    return _finite_prefix(lrs, losses)


# Plain-Python stand-ins for the numpy calls the anchors' rules are written with (the API process
# re-runs these rules and must not import numpy). Each matches numpy's result bit for bit: the same
# float64 operations in the same order, the same tie-breaking.


def _argmin(v: Sequence[float]) -> int:
    """``np.argmin`` on finite values: the first index of the smallest."""
    return min(range(len(v)), key=v.__getitem__)


def _argmax(v: Sequence[float]) -> int:
    """``np.argmax``: the first index of the largest."""
    return max(range(len(v)), key=v.__getitem__)


def _gradient(y: Sequence[float]) -> list[float]:
    """``np.gradient(y)`` (unit spacing, edge_order=1; needs ``len(y) >= 2``): central differences
    inside, one-sided at both ends."""
    n = len(y)
    return ([y[1] - y[0]] + [(y[i + 1] - y[i - 1]) / 2.0 for i in range(1, n - 1)]
            + [y[n - 1] - y[n - 2]])


def _diff(v: Sequence[float]) -> list[float]:
    """``np.diff(v)``."""
    return [b - a for a, b in itertools.pairwise(v)]


def _median(v: Sequence[float]) -> float:
    """``np.median``: NaN if any value is NaN (numpy propagates it), else the middle value or the
    mean of the two middle ones."""
    if any(math.isnan(x) for x in v):
        return math.nan
    return float(statistics.median(v))


def start_window(n: int) -> int:
    """How many leading points of an ``n``-point curve measure its start (see ``START_MIN``)."""
    return min(n, max(START_MIN, min(n // 10, START_MAX)))


def start_level(values: Sequence[float], window: int | None = None) -> float:
    """The curve's starting loss: the median of its first ``window`` (default `start_window`)
    values — raw losses where there are any. No single batch decides it: with the first batch 15 %
    below the rest, ``values[0]`` (also the bias-corrected EMA's first value) would make a curve
    that fell steadily afterwards look as if it never fell."""
    w = start_window(len(values)) if window is None else min(window, len(values))
    return _median(values[:w]) if w else math.nan


# --------------------------------------------------------------------------------------------
# the known rules
# --------------------------------------------------------------------------------------------


def steepest(lrs: FloatSeq, losses: FloatSeq, skip_start: int = STEEP_SKIP_START,
             skip_end: int = STEEP_SKIP_END) -> float | None:
    """torch-lr-finder's pick: the steepest fall of the loss per step (``np.gradient``)."""
    x, y = _finite_prefix(lrs, losses)
    end = len(y) - skip_end
    if end - skip_start < 2:
        return None
    x, y = x[skip_start:end], y[skip_start:end]
    return x[_argmin(_gradient(y))]


def _gradient_at(y: Sequence[float], x: Sequence[float]) -> list[float]:
    """``np.gradient(y, x)`` for increasing, non-uniform ``x`` (edge_order=1; ``len(y) >= 2``)."""
    n = len(y)
    out = [(y[1] - y[0]) / (x[1] - x[0])]
    for i in range(1, n - 1):
        d1, d2 = x[i] - x[i - 1], x[i + 1] - x[i]
        out.append((-d2 / (d1 * (d1 + d2))) * y[i - 1] + ((d2 - d1) / (d1 * d2)) * y[i]
                   + (d1 / (d2 * (d1 + d2))) * y[i + 1])
    out.append((y[n - 1] - y[n - 2]) / (x[n - 1] - x[n - 2]))
    return out


def lightning(lrs: FloatSeq, losses: FloatSeq, skip_begin: int = 10, skip_end: int = 1
              ) -> float | None:
    """Lightning's pick (2.5.3+): the steepest fall of the loss per unit of LR, on the curve
    without its first ``skip_begin`` and last ``skip_end`` points, non-finite points dropped."""
    n = min(len(lrs), len(losses))
    pts = [(float(lr), float(v)) for lr, v in zip(list(lrs)[skip_begin:n - skip_end],
                                                  list(losses)[skip_begin:n - skip_end],
                                                  strict=True)
           if lr is not None and v is not None and math.isfinite(float(v))
           and math.isfinite(float(lr))]
    if len(pts) < 2:
        return None
    x, y = [p[0] for p in pts], [p[1] for p in pts]
    if any(b <= a for a, b in itertools.pairwise(x)):
        return None  # LRs must increase for a slope against the LR
    return x[_argmin(_gradient_at(y, x))]


def _longest_decreasing_ends(y: Sequence[float]) -> list[int]:
    """``lds[i]`` = length of the longest strictly decreasing subsequence ending at ``i``.

    O(n log n) patience sorting on ``-y``; gives the same lengths as fastai's O(n²) double loop.
    """
    tails: list[float] = []
    lds: list[int] = []
    for v in (-u for u in y):
        pos = bisect.bisect_left(tails, v)  # strict: equal values do not extend a run
        if pos == len(tails):
            tails.append(v)
        else:
            tails[pos] = v
        lds.append(pos + 1)
    return lds


def valley(lrs: FloatSeq, losses: FloatSeq, num_steps: int | None = None) -> float | None:
    """fastai's ``valley``: half-way along the longest decreasing subsequence of the trimmed curve.

    Same index arithmetic as fastai (``max_start = max_end - lds[max_end]``,
    ``idx = max_start + int(sec) + int(sec / 2)`` with ``sec = (max_end - max_start) / 3``); the
    one change is that the index is clipped into the curve (fastai's can be -1 on a curve that
    decreases from its first point, which would pick the *last* LR). ``num_steps``: the steps the
    sweep asked for (default: the curve's length), as fastai's trim uses.
    """
    x, y = _fastai_view(lrs, losses, num_steps)
    if len(y) < 2:
        return None
    lds = _longest_decreasing_ends(y)
    max_end = _argmax(lds)  # first index reaching the longest run, as fastai's loop
    max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    idx = min(max(idx, 0), len(x) - 1)
    return x[idx]


def minimum_div10(lrs: FloatSeq, losses: FloatSeq, num_steps: int | None = None
                  ) -> float | None:
    """fastai's ``minimum``: the LR of the lowest (trimmed, see `valley`) loss, divided by 10."""
    x, y = _fastai_view(lrs, losses, num_steps)
    if len(y) < 1:
        return None
    return x[_argmin(y)] / 10.0


# --------------------------------------------------------------------------------------------
# the recommended pick
# --------------------------------------------------------------------------------------------


def batch_sigma(raw: Sequence[float]) -> float:
    """The batch noise of raw losses as a standard deviation, read on second differences:
    ``raw_{t+1} - 2 raw_t + raw_{t-1}`` of independent batches has standard deviation
    ``sigma * sqrt 6``, and a trend that is straight over three steps cancels in it (a sweep's
    fall would otherwise count as noise). Median-based, so spiking batches do not move it.
    0 for fewer than three values."""
    if len(raw) < 3:
        return 0.0
    return _median([abs(d) for d in _diff(_diff(raw))]) / (0.6745 * math.sqrt(6.0))


def _noise_ratio(raw: Sequence[float], drop: float) -> float:
    """The confidence's noise measure: the median batch-to-batch change ``|raw_t - raw_{t-1}|`` /
    the drop (shift-invariant, sign-independent; its thresholds, 0.1 and 0.5, are set on this
    first-difference form). ``suggest`` calls it with a drop > 0 and more than the start window
    of raw losses."""
    return _median([abs(d) for d in _diff(raw)]) / drop


#: the early fall is read on medians of this many consecutive raw losses: one batch never decides.
EARLY_SPAN = 3


def _early_fall(raw: Sequence[float], window: int) -> int | None:
    """Where the raw losses *inside* the start window fell clearly below where they began: the
    centre of the lowest median of ``EARLY_SPAN`` consecutive losses, if it is ``FALL_Z``
    standard errors (of the difference of two such medians, on the whole curve's `batch_sigma`)
    below the first such median; else None. It only tells two unusable curves apart (start_lr too
    high, or nothing trained), so it may be strict. The smoothed curve cannot show such a fall (in
    the window it is little more than its first batches, and it lags), and the window's median
    already holds the fallen losses."""
    if window < EARLY_SPAN + 1:
        return None
    h = EARLY_SPAN // 2
    levels = {j: _median(raw[j - h:j + h + 1]) for j in range(h, window - h)}
    j = min(levels, key=levels.__getitem__)
    first = levels[h]
    se = batch_sigma(raw) * math.sqrt(2.0 * math.pi / (2.0 * EARLY_SPAN))
    return j if levels[j] < first - max(FALL_Z * se, FLAT_TOL * (1.0 + abs(first))) else None


def backoff_pick(lr_min: float, first_lr: float, backoff: float = BACKOFF) -> float:
    """The recommended pick from the smoothed minimum: ``lr_min / backoff``, never above
    ``lr_min / MIN_BACKOFF`` and never below the sweep's first LR (steps 2 and 3 of the module
    docstring). A function of its own so that ``bench/backoff_cv.py`` scores other back-offs with
    the rule ``suggest`` applies."""
    return max(min(lr_min / backoff, lr_min / MIN_BACKOFF), first_lr)


def suggest(lrs: FloatSeq, losses: FloatSeq, raw_losses: FloatSeq | None = None, *,
            num_steps: int | None = None, beta: float = DEFAULT_BETA) -> Suggestions:
    """Every suggestion for one curve; never raises, whatever the curve (short, flat, noisy,
    non-finite, or with LRs that stop increasing: read up to there, flagged).

    ``losses`` are the smoothed losses, ``smooth(raw_losses, beta)``; ``raw_losses`` (optional,
    same length) give the robust starting level (`start_level`: the median of the first raw
    losses), show a fall inside the start window (`_early_fall`) and give the noise estimate
    behind the confidence. Without them they are recovered from ``losses`` (`unsmooth`), so
    ``beta`` must be the smoothing really applied (0: ``losses`` are raw). ``num_steps``: the steps
    the sweep asked for, when it stopped early: the start window, "the first tenth" and fastai's
    trim are read on the sweep asked for, as the divergence monitor that stopped it did.
    """
    x, y = _finite_prefix(lrs, losses)
    n_all = min(len(lrs), len(losses))
    flags: list[str] = []
    known = {"steepest": steepest(lrs, losses), "valley": valley(lrs, losses, num_steps),
             "minimum_div10": minimum_div10(lrs, losses, num_steps)}
    if len(x) < n_all:
        cut = lrs[len(x)]
        repeats = (x and cut is not None and math.isfinite(float(cut)) and float(cut) <= x[-1]
                   and losses[len(x)] is not None and math.isfinite(float(losses[len(x)])))
        flags.append("lrs_not_increasing" if repeats else "non_finite")

    if len(y) < 3:
        fallback = float(x[0]) if len(x) else _first_lr(lrs)
        return Suggestions(
            **known, lr_at_min=None, recommended=fallback, confidence=0.0,
            reason=(f"Only {len(y)} usable loss value(s) (finite, at increasing LRs): too few to "
                    "read a curve; the first LR of the sweep is returned as a placeholder."),
            cycle_max_lr=None, cycle_min_lr=None, flags=[*flags, "too_short"])

    n = len(y)
    asked = max(num_steps or n, n)
    _, raw_all = _finite_prefix(lrs, raw_losses) if raw_losses is not None else ([], [])
    raw = raw_all[:n] if len(raw_all) >= n else unsmooth(y, beta)
    # Every comparison with "the start" uses a robust level (`start_level`), not the first point.
    w = min(start_window(asked), n)
    start = start_level(raw, w)
    i_min: int | None = None
    if n > w:
        # The smoothed curve's lowest point after the start window (inside it, the EMA is little
        # more than the first batches: a lucky one there is no falling region). A lowest point at
        # the window's edge is the EMA still washing those batches out of a curve that only rises
        # after them: no falling region either.
        # Any fall below the start counts, however small against the noise: on the quality
        # benchmark (bench/lr_quality.py) two deep-tanh SGD sweeps fell by only 0.7 and 0.9 batch
        # standard deviations before they diverged, and minimum/4 of them trained within 1.12x of
        # the best LR. A noise test would have called them flat; the confidence says "noisy".
        i_late = w + _argmin(y[w:])
        if i_late > w and y[i_late] < start - FLAT_TOL * (1.0 + abs(start)):
            i_min = i_late
    if i_min is None:
        return _no_falling_region(x, y, raw, known, flags, w, n < SHORT_CURVE)
    lr_min = float(x[i_min])
    # On an extreme curve (±1e308) the drop is inf, without a warning (Python floats).
    drop = start - y[i_min]  # shift-invariant, works for negative losses

    confidence = 1.0
    reasons: list[str] = []
    if n < SHORT_CURVE:
        confidence *= 0.4
        flags.append("short")
        reasons.append(f"the curve has only {n} usable points")

    flat_level = y[i_min] + FLAT_FRACTION * drop
    # Searched from the end of the start-up window: a lucky first batch would otherwise be "within
    # 10 % of the minimum" at step 0.
    i_flat = next(i for i in range(w, i_min + 1) if y[i] <= flat_level)
    hi = lr_min / MIN_BACKOFF
    v = known["valley"]
    anchor = lr_min / BACKOFF
    rec = backoff_pick(lr_min, float(x[0]))

    if i_min < max(2, asked // 10):
        confidence *= 0.2
        flags.append("diverged_immediately")
        reasons.append("the loss bottomed out in the first tenth of the sweep (start_lr may "
                       "already be too high)")
    if i_min >= n - max(3, n // 20) and y[-1] - y[i_min] < FLAT_FRACTION * drop:
        confidence *= 0.5
        flags.append("still_falling")
        reasons.append("the loss had not turned up by the last LR (raise end_lr)")
    noise = _noise_ratio(raw[: i_min + 1], drop)
    if noise > 0.5:
        confidence *= 0.3
        flags.append("noisy")
        reasons.append("the loss fell little compared with its noise")
    elif noise > 0.1:
        confidence *= 0.6
        flags.append("somewhat_noisy")
        reasons.append("the loss fell only a few times its noise")
    if rec == float(x[0]):
        confidence *= 0.5
        flags.append("at_sweep_start")
        reasons.append("the pick is the first LR of the sweep, which cannot show whether a lower "
                       "one is better (lower start_lr)")
    if v is not None and max(v, lr_min / BACKOFF) / min(v, lr_min / BACKOFF) > 100.0:
        confidence *= 0.7
        flags.append("rules_disagree")
        reasons.append(f"valley and minimum/{BACKOFF:g} differ by more than 100x")

    where = f"minimum/{BACKOFF:g} ({lr_min / BACKOFF:.3g})"
    if rec == anchor:
        clip_note = ""
    elif hi < float(x[0]):
        # The bounds cross: the lower one (the first LR, below which nothing was measured) wins.
        clip_note = (f", raised to the first LR of the sweep ({float(x[0]):.3g}) although that is "
                     f"above minimum/{MIN_BACKOFF:g} ({hi:.3g})")
    else:
        clip_note = f", clipped to [{float(x[0]):.3g}, {hi:.3g}]"
    caveat = ("; lower confidence because " + "; ".join(reasons)) if reasons else ""
    safety = ("" if hi < float(x[0])
              else ", safely below the point where the loss stops falling")
    reason = (f"The smoothed loss was lowest at lr={lr_min:.3g}; the pick is the {where}"
              f"{clip_note}{safety}{caveat}.")

    cycle_max = float(x[i_flat])
    return Suggestions(
        **known, lr_at_min=lr_min, recommended=float(rec),
        confidence=float(min(max(confidence, 0.0), 1.0)), reason=reason,
        cycle_max_lr=cycle_max, cycle_min_lr=cycle_max / CYCLE_DIV, flags=flags)


def _no_falling_region(x: list[float], y: list[float], raw: list[float],
                       known: dict[str, float | None], flags: list[str], w: int,
                       short: bool) -> Suggestions:
    """The answer for a curve that never fell below its start after the start window: either the
    raw losses fell inside the window (the first LRs already trained, and the loss rose after:
    start_lr is too high) or they never fell at all. Either way there is no falling region to read,
    and the pick is the lowest LR tried, a placeholder."""
    short_flag = ["short"] if short else []
    j = _early_fall(raw, w)
    if j is not None:
        return Suggestions(
            **known, lr_at_min=float(x[j]), recommended=float(x[0]), confidence=0.05,
            reason=(f"The loss fell only within the first {w} LRs of the sweep (lowest at "
                    f"lr={x[j]:.3g}) and never again below its starting level: start_lr is "
                    "already too high to show a falling region; the lowest LR tried is returned "
                    "— rerun with a lower start_lr."),
            cycle_max_lr=None, cycle_min_lr=None,
            flags=[*flags, *short_flag, "diverged_immediately", "at_sweep_start"])
    return Suggestions(
        **known, lr_at_min=float(x[_argmin(y)]), recommended=float(x[0]), confidence=0.05,
        reason=("The loss never fell below its starting value (the median of the first "
                f"{w} losses), so no LR in the sweep trained; the "
                "lowest LR tried is returned — rerun with a lower start_lr or check the model, "
                "data and loss."),
        cycle_max_lr=None, cycle_min_lr=None, flags=[*flags, *short_flag, "never_decreases"])


def _first_lr(lrs: FloatSeq) -> float | None:
    for lr in lrs:
        if lr is not None and math.isfinite(float(lr)) and float(lr) > 0:
            return float(lr)
    return None
