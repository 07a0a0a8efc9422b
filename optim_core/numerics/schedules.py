"""Learning-rate schedules as pure functions of the step (rules O6.1–O6.4). Torch-free.

The API process previews schedules and the advice engine recommends them, neither of which may
import torch; the worker drives a torch optimizer from the same functions through
``optim_core.training.lr_scheduler.ScheduleLR``. Keeping one implementation means what a user previews is
exactly what a trial trains with.

Conventions (shared by every factory; ``docs/ARCHITECTURE.md`` states them as the contract):

* Steps are 0-based optimizer steps: ``schedule(t)`` is the LR used by the ``t``-th update.
* **Warmup** over ``W`` steps gives ``peak * (t + 1) / W`` for ``t < W``. The seed's O6.2 writes
  ``η_max · t / T_warmup``, which is 0 at ``t = 0`` — a schedule that spends its first update at
  LR 0 is a common bug, so the ramp is shifted by one: never 0, and the peak is reached at
  ``t = W - 1`` (the last warmup step), not one step later.
* **Decays with a horizon** (cosine, linear, warmup+cosine, warmup+linear) reach their end value
  exactly on the last step ``t = total_steps - 1``; steps past the horizon clamp to that final value (a run that
  overshoots its planned length keeps training at the end LR instead of rising again).
* **Inverse square root** (O6.3d, ``η0/√t``) is undefined at ``t = 0``; here it is ``η0/√(t + 1)``
  without warmup, and with ``W`` warmup steps linear warmup then ``η0·√W/√(t + 1)``, which is
  continuous: both pieces give ``η0`` at ``t = W - 1``.

* **1cycle** (Smith 2018; torch's ``OneCycleLR`` with its cosine annealing): from
  ``max_lr / div_factor`` at step 0 up to ``max_lr`` at the peak step ``P = max(1, round(pct_start ·
  total_steps) − 1)`` (torch's phase end ``pct_start · total_steps − 1``, made an integer; at most
  ``total_steps − 2``, so that at least one step comes down), then down
  to ``max_lr / (div_factor · final_div_factor)`` exactly on the last step; both halves are
  cosine. The range test gives the two bounds (``Suggestions.cycle_max_lr`` / ``cycle_min_lr``:
  ``div_factor = cycle_max_lr / cycle_min_lr``), as Smith reads them.
* **Warmup–stable–decay** (MiniCPM 2024; DeepSeek LLM 2024's multi-step): the module's warmup to
  ``max_lr``, constant ``max_lr`` until the last ``decay_steps`` steps, then a decay that is
  exactly ``min_lr_ratio · max_lr`` on the last step: ``linear``, ``cosine``, ``exp`` (geometric,
  MiniCPM's exponential annealing; needs ``min_lr_ratio > 0``) or ``multistep`` (DeepSeek: the
  first half of the decay phase at ``√min_lr_ratio · max_lr``, the second at ``min_lr_ratio ·
  max_lr``; with ``decay_steps = 0.2 · total_steps`` and ratio 0.1 that is DeepSeek's 31.6 % after
  80 % of the run and 10 % after 90 %). With ``u = (t − (T − D − 1)) / D`` the decay's progress,
  step ``T − D − 1`` is the last at ``max_lr`` and ``u = 1`` on the last step.

* **Step decays** (step, warmup+step) have no horizon: the LR is ``η0·γ^k`` with ``k`` the number
  of decay points at or before ``t`` (every ``step_size`` steps, or the listed ``milestones``),
  counted on the absolute step as torch's ``StepLR``/``MultiStepLR`` and Goyal et al. count epochs;
  after the last milestone it stays at ``η0·γ^len(milestones)``.

Every factory validates its arguments and raises ``SpecError`` naming the field and the allowed
range; the pydantic ``ScheduleSpec`` variants (``optim_core.specs.schedule``) carry the same ranges
(the ``*_RANGE`` constants here), so a
422 from the API and an error from library code say the same thing.
"""

from __future__ import annotations

import bisect
import itertools
import math
import numbers
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from optim_core.bounds import MAX_LR, MIN_LR
from optim_core.errors import SpecError

Schedule = Callable[[int], float]

__all__ = [
    "Schedule",
    "constant",
    "cosine_annealing",
    "inverse_sqrt",
    "linear_decay",
    "linear_warmup",
    "one_cycle",
    "sample",
    "step_decay",
    "warmup_cosine",
    "warmup_linear",
    "warmup_stable_decay",
    "warmup_step",
]

# Upper bounds exist so a typo (1e9 steps, LR 1e3) is refused instead of silently producing a
# schedule nobody meant; they are far beyond anything the guidelines recommend.
MAX_STEPS = 1_000_000_000
MAX_SAMPLE_POINTS = 10_000
# Published step schedules have a handful of decay points (Goyal: 3); 100 is generous and keeps a
# spec (and its cache key) small.
MAX_MILESTONES = 100


@dataclass(frozen=True)
class Range:
    """One numeric range, used both by the factories' checks and the pydantic fields."""

    gt: float | None = None
    ge: float | None = None
    le: float | None = None
    lt: float | None = None
    integer: bool = False

    def describe(self) -> str:
        low = f"> {self.gt:g}" if self.gt is not None else f">= {self.ge:g}" if self.ge is not None else ""
        high = f"<= {self.le:g}" if self.le is not None else f"< {self.lt:g}" if self.lt is not None else ""
        kind = "an integer" if self.integer else "a finite number"
        return f"{kind} {' and '.join(p for p in (low, high) if p)}".strip()

    def field(self, default: Any = ..., description: str | None = None) -> Any:
        # NaN is refused as "not a finite number", not as "not <= 10" (NaN compares false)
        finite = {} if self.integer else {"allow_inf_nan": False}
        return Field(default, gt=self.gt, ge=self.ge, le=self.le, lt=self.lt,
                     description=description, **finite)

    def check(self, field: str, value: Any) -> None:
        if self.integer and not isinstance(value, bool | int) and hasattr(value, "__index__"):
            value = operator.index(value)  # numpy integers are fine; 2.5 and True are not
        elif (not self.integer and isinstance(value, numbers.Real) and not isinstance(value, bool)
              and not isinstance(value, int | float)):
            value = float(value)  # numpy floats too, as the pydantic fields take them
        bad_type = isinstance(value, bool) or not isinstance(value, int if self.integer else (int, float))
        ok = not bad_type and (self.integer or math.isfinite(value))
        if ok:
            ok = ((self.gt is None or value > self.gt) and (self.ge is None or value >= self.ge)
                  and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))
        if not ok:
            raise SpecError(f"{field} must be {self.describe()}, got {value!r}",
                            field=field, value=value, allowed=self.describe())


LR_RANGE = Range(ge=MIN_LR, le=MAX_LR)
END_LR_RANGE = Range(ge=0.0, le=MAX_LR)
GAMMA_RANGE = Range(gt=0.0, le=1.0)
RATIO_RANGE = Range(ge=0.0, le=1.0)
STEP_SIZE_RANGE = Range(ge=1, le=MAX_STEPS, integer=True)
WARMUP_RANGE = Range(ge=0, le=MAX_STEPS, integer=True)
# A decay needs a first and a last step to go from its start to its end value.
TOTAL_RANGE = Range(ge=2, le=MAX_STEPS, integer=True)
# 1cycle needs a step below the peak, the peak, and a step after it.
CYCLE_TOTAL_RANGE = Range(ge=3, le=MAX_STEPS, integer=True)
PCT_START_RANGE = Range(gt=0.0, lt=1.0)
DIV_FACTOR_RANGE = Range(ge=1.0, le=1e6)
DECAY_STEPS_RANGE = Range(ge=1, le=MAX_STEPS, integer=True)
WSD_DECAYS = ("linear", "cosine", "exp", "multistep")


def _check_le(field: str, value: float, bound_field: str, bound: float) -> None:
    if value > bound:
        raise SpecError(f"{field} must be <= {bound_field} ({bound:g}), got {value!r}",
                        field=field, value=value, allowed=f"0 <= {field} <= {bound_field}")


def _check_total_after_warmup(total_steps: int, warmup_steps: int) -> None:
    # The decay needs at least one step after the peak (t = W - 1) to reach its end value.
    if total_steps <= warmup_steps:
        raise SpecError(
            f"total_steps must be > warmup_steps ({warmup_steps}), got {total_steps}",
            field="total_steps", value=total_steps, allowed=f"> warmup_steps ({warmup_steps})")


def _step(t: int) -> int:
    """Validate a step index: schedules are only defined for 0, 1, 2, …"""
    try:
        t = operator.index(t)
    except TypeError:
        raise SpecError(f"step must be an integer >= 0, got {t!r}", field="step", value=t,
                        allowed="an integer >= 0") from None
    if t < 0:
        raise SpecError(f"step must be an integer >= 0, got {t}", field="step", value=t,
                        allowed="an integer >= 0")
    return t


def _ramp(peak: float, t: int, warmup_steps: int) -> float:
    """Warmup ``peak·(t+1)/W``; the ratio first, so ``t = W − 1`` gives exactly ``peak``."""
    return peak * ((t + 1) / warmup_steps)


def _cosine(max_lr: float, min_lr: float, t: int, horizon: int) -> float:
    """O6.3b, η_min + ½(η_max − η_min)(1 + cos(πt/T)), with t clamped to [0, T]."""
    t = min(t, horizon)
    # The ends are returned as given: float rounding of the formula would otherwise miss the
    # peak or the floor by an ulp, and callers (and tests) rely on hitting them exactly.
    if t == 0:
        return max_lr
    if t == horizon:
        return min_lr
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * t / horizon))


# --------------------------------------------------------------------------- factories


def constant(lr: float) -> Schedule:
    """The same LR at every step (the baseline O6.1 argues against for long runs)."""
    LR_RANGE.check("lr", lr)
    lr = float(lr)

    def schedule(t: int) -> float:
        _step(t)
        return lr

    return schedule


def linear_warmup(peak_lr: float, warmup_steps: int) -> Schedule:
    """O6.2: ``peak·(t+1)/W`` for ``t < W``, then ``peak``. ``W = 0`` means no warmup."""
    LR_RANGE.check("peak_lr", peak_lr)
    WARMUP_RANGE.check("warmup_steps", warmup_steps)
    peak = float(peak_lr)

    def schedule(t: int) -> float:
        t = _step(t)
        return _ramp(peak, t, warmup_steps) if t < warmup_steps else peak

    return schedule


def step_decay(init_lr: float, gamma: float, step_size: int) -> Schedule:
    """O6.3a: ``η0·γ^⌊t/T⌋`` — multiply by ``gamma`` every ``step_size`` steps."""
    LR_RANGE.check("init_lr", init_lr)
    GAMMA_RANGE.check("gamma", gamma)
    STEP_SIZE_RANGE.check("step_size", step_size)
    init, g = float(init_lr), float(gamma)

    def schedule(t: int) -> float:
        return init * g ** (_step(t) // step_size)

    return schedule


def cosine_annealing(max_lr: float, total_steps: int, min_lr: float = 0.0) -> Schedule:
    """O6.3b over ``T = total_steps − 1``: ``max_lr`` at step 0, ``min_lr`` on the last step."""
    LR_RANGE.check("max_lr", max_lr)
    TOTAL_RANGE.check("total_steps", total_steps)
    END_LR_RANGE.check("min_lr", min_lr)
    _check_le("min_lr", min_lr, "max_lr", max_lr)
    hi, lo, horizon = float(max_lr), float(min_lr), total_steps - 1

    def schedule(t: int) -> float:
        return _cosine(hi, lo, _step(t), horizon)

    return schedule


def linear_decay(max_lr: float, total_steps: int, end_lr: float = 0.0) -> Schedule:
    """O6.3c ``η_max(1 − t/T)``, generalised to end at ``end_lr``; ``T = total_steps − 1``.

    Same horizon convention as cosine: the last step uses ``end_lr`` exactly (so with the seed's
    ``end_lr = 0`` the last update is a no-op, which is what the formula says).
    """
    LR_RANGE.check("max_lr", max_lr)
    TOTAL_RANGE.check("total_steps", total_steps)
    END_LR_RANGE.check("end_lr", end_lr)
    _check_le("end_lr", end_lr, "max_lr", max_lr)
    hi, lo, horizon = float(max_lr), float(end_lr), total_steps - 1

    def schedule(t: int) -> float:
        t = min(_step(t), horizon)
        return lo if t == horizon else lo + (hi - lo) * (1.0 - t / horizon)

    return schedule


def inverse_sqrt(init_lr: float, warmup_steps: int = 0) -> Schedule:
    """O6.3d ``η0/√t`` made defined at step 0 (see the module docstring).

    Without warmup: ``η0/√(t+1)``. With ``W`` warmup steps: ``η0·(t+1)/W`` for ``t < W``, then
    ``η0·√W/√(t+1)`` — the original Transformer's shape, peaking at ``η0`` on step ``W − 1``.
    """
    LR_RANGE.check("init_lr", init_lr)
    WARMUP_RANGE.check("warmup_steps", warmup_steps)
    peak = float(init_lr)
    scale = math.sqrt(max(warmup_steps, 1))

    def schedule(t: int) -> float:
        t = _step(t)
        if t < warmup_steps:
            return _ramp(peak, t, warmup_steps)
        return peak * scale / math.sqrt(t + 1)

    return schedule


def warmup_cosine(max_lr: float, warmup_steps: int, total_steps: int,
                  min_lr_ratio: float = 0.1) -> Schedule:
    """O6.4, the standard LLM schedule: linear warmup to ``max_lr``, then cosine to
    ``min_lr = min_lr_ratio · max_lr`` (0.1 by default, as the seed says).

    Warmup follows the module convention (peak at ``t = W − 1``); the cosine then runs from that
    peak over the remaining ``total_steps − W`` steps and is exactly ``min_lr`` at
    ``t = total_steps − 1``. With ``W = 0`` it is ``cosine_annealing`` to ``min_lr``.
    """
    LR_RANGE.check("max_lr", max_lr)
    WARMUP_RANGE.check("warmup_steps", warmup_steps)
    TOTAL_RANGE.check("total_steps", total_steps)
    RATIO_RANGE.check("min_lr_ratio", min_lr_ratio)
    _check_total_after_warmup(total_steps, warmup_steps)
    hi = float(max_lr)
    lo = hi * float(min_lr_ratio)
    start = max(warmup_steps - 1, 0)  # the step at which the cosine starts, at its peak
    horizon = total_steps - 1 - start

    def schedule(t: int) -> float:
        t = _step(t)
        if t < warmup_steps:
            return _ramp(hi, t, warmup_steps)
        return _cosine(hi, lo, t - start, horizon)

    return schedule


def warmup_linear(max_lr: float, warmup_steps: int, total_steps: int,
                  end_lr: float = 0.0) -> Schedule:
    """O6.2 warmup then O6.3c linear decay: the BERT / RoBERTa / LoRA fine-tuning schedule
    (Hugging Face ``get_linear_schedule_with_warmup`` with ``end_lr = 0``).

    Warmup follows the module convention (peak at ``t = W − 1``); the decay then runs linearly from
    that peak over the remaining ``total_steps − W`` steps and is exactly ``end_lr`` at
    ``t = total_steps − 1``, clamped after. With ``W = 0`` it is ``linear_decay``. (HF's version
    starts at 0, peaks at ``t = W`` and reaches 0 at ``t = total_steps``, a step later than here:
    the same shape shifted by one so no update is spent at LR 0.)
    """
    LR_RANGE.check("max_lr", max_lr)
    WARMUP_RANGE.check("warmup_steps", warmup_steps)
    TOTAL_RANGE.check("total_steps", total_steps)
    END_LR_RANGE.check("end_lr", end_lr)
    _check_le("end_lr", end_lr, "max_lr", max_lr)
    _check_total_after_warmup(total_steps, warmup_steps)
    hi, lo = float(max_lr), float(end_lr)
    start = max(warmup_steps - 1, 0)  # the step at which the decay starts, at its peak
    horizon = total_steps - 1 - start

    def schedule(t: int) -> float:
        t = _step(t)
        if t < warmup_steps:
            return _ramp(hi, t, warmup_steps)
        u = min(t - start, horizon)
        # Both ends returned as given (as _cosine does), so the peak and end_lr are hit exactly.
        if u == 0:
            return hi
        return lo if u == horizon else lo + (hi - lo) * (1.0 - u / horizon)

    return schedule


def one_cycle_peak_step(total_steps: int, pct_start: float) -> int:
    """The step at which 1cycle reaches ``max_lr`` (see the module docstring)."""
    return min(max(1, round(pct_start * total_steps) - 1), total_steps - 2)


def one_cycle(max_lr: float, total_steps: int, pct_start: float = 0.3, div_factor: float = 25.0,
              final_div_factor: float = 1e4) -> Schedule:
    """Smith's 1cycle with torch ``OneCycleLR``'s defaults (pct_start 0.3, div_factor 25,
    final_div_factor 1e4, cosine both ways): ``max_lr / div_factor`` at step 0, ``max_lr`` at
    `one_cycle_peak_step`, ``max_lr / (div_factor · final_div_factor)`` on the last step."""
    LR_RANGE.check("max_lr", max_lr)
    CYCLE_TOTAL_RANGE.check("total_steps", total_steps)
    PCT_START_RANGE.check("pct_start", pct_start)
    DIV_FACTOR_RANGE.check("div_factor", div_factor)
    DIV_FACTOR_RANGE.check("final_div_factor", final_div_factor)
    hi = float(max_lr)
    start = hi / float(div_factor)
    end = start / float(final_div_factor)
    peak = one_cycle_peak_step(total_steps, pct_start)
    down = total_steps - 1 - peak

    def schedule(t: int) -> float:
        t = _step(t)
        if t <= peak:  # cosine up: _cosine runs from its first argument to its second
            return _cosine(start, hi, t, peak)
        return _cosine(hi, end, t - peak, down)

    return schedule


def warmup_stable_decay(max_lr: float, warmup_steps: int, total_steps: int, decay_steps: int,
                        min_lr_ratio: float = 0.1, decay: str = "linear") -> Schedule:
    """Warmup–stable–decay (MiniCPM 2024; ``decay="multistep"``: DeepSeek LLM 2024), see the
    module docstring: warmup to ``max_lr`` (peak at ``W − 1``), ``max_lr`` until step
    ``total_steps − decay_steps − 1``, then the decay to ``min_lr_ratio · max_lr`` on the last
    step."""
    LR_RANGE.check("max_lr", max_lr)
    WARMUP_RANGE.check("warmup_steps", warmup_steps)
    TOTAL_RANGE.check("total_steps", total_steps)
    DECAY_STEPS_RANGE.check("decay_steps", decay_steps)
    RATIO_RANGE.check("min_lr_ratio", min_lr_ratio)
    if decay not in WSD_DECAYS:
        raise SpecError(f"decay must be one of {', '.join(WSD_DECAYS)}, got {decay!r}",
                        field="decay", value=decay, allowed=", ".join(WSD_DECAYS))
    check_wsd_lengths(warmup_steps, total_steps, decay_steps)
    if decay == "exp" and min_lr_ratio <= 0.0:
        raise SpecError("min_lr_ratio must be > 0 for an exponential decay, got "
                        f"{min_lr_ratio!r}", field="min_lr_ratio", value=min_lr_ratio,
                        allowed="0 < min_lr_ratio <= 1 (decay = exp)")
    hi = float(max_lr)
    ratio = float(min_lr_ratio)
    lo = hi * ratio
    last_stable = total_steps - decay_steps - 1

    def decayed(u: float) -> float:
        if u >= 1.0:
            return lo  # exactly, whatever the formula's rounding
        if decay == "linear":
            return hi + (lo - hi) * u
        if decay == "cosine":
            return lo + 0.5 * (hi - lo) * (1.0 + math.cos(math.pi * u))
        if decay == "exp":
            return hi * ratio ** u
        return hi * math.sqrt(ratio) if u <= 0.5 else lo  # multistep

    def schedule(t: int) -> float:
        t = _step(t)
        if t < warmup_steps:
            return _ramp(hi, t, warmup_steps)
        if t <= last_stable:
            return hi
        return decayed(min(t - last_stable, decay_steps) / decay_steps)

    return schedule


def wsd_max_decay_steps(warmup_steps: int, total_steps: int) -> int:
    """The longest decay a warmup–stable–decay run can hold: it starts after the peak, which is
    step ``W − 1`` (step 0 without warmup), so ``max(W, 1) + D <= T``."""
    return total_steps - max(warmup_steps, 1)


def check_wsd_lengths(warmup_steps: int, total_steps: int, decay_steps: int) -> None:
    """The lengths of a warmup–stable–decay run fit together (one rule for the function and its
    spec): the warmup ends inside the run, and the decay after the peak."""
    if warmup_steps >= total_steps:
        raise SpecError(f"total_steps must be > warmup_steps ({warmup_steps}), got {total_steps}",
                        field="total_steps", value=total_steps,
                        allowed=f"> warmup_steps ({warmup_steps})")
    bound = wsd_max_decay_steps(warmup_steps, total_steps)
    if decay_steps > bound:
        raise SpecError(f"decay_steps must be <= total_steps - max(warmup_steps, 1) ({bound}), "
                        f"got {decay_steps}", field="decay_steps", value=decay_steps,
                        allowed=f"1 <= decay_steps <= total_steps - max(warmup_steps, 1) ({bound})")


def _milestones(milestones: Any) -> tuple[int, ...]:
    """Validate decay points: 1 … MAX_MILESTONES strictly increasing steps, each ≥ 1."""
    allowed = f"1 to {MAX_MILESTONES} strictly increasing integers >= 1"
    if isinstance(milestones, str | bytes) or not hasattr(milestones, "__iter__"):
        raise SpecError(f"milestones must be {allowed}, got {milestones!r}", field="milestones",
                        value=milestones, allowed=allowed)
    values = list(milestones)
    if not 1 <= len(values) <= MAX_MILESTONES:
        raise SpecError(f"milestones must be {allowed}, got {len(values)} values",
                        field="milestones", value=values, allowed=allowed)
    for i, m in enumerate(values):
        STEP_SIZE_RANGE.check(f"milestones[{i}]", m)
    out = tuple(operator.index(m) for m in values)
    if any(b <= a for a, b in itertools.pairwise(out)):
        raise SpecError(f"milestones must be {allowed}, got {list(out)}", field="milestones",
                        value=list(out), allowed=allowed)
    return out


def _check_warmup_before_decay(field: str, first_decay: int, warmup_steps: int) -> None:
    # A decay inside the warmup would make the ramp climb to an LR the schedule has already left;
    # no published recipe does that, so it is refused rather than given a meaning.
    if first_decay < warmup_steps:
        raise SpecError(
            f"{field} must not decay before the warmup ends (warmup_steps = {warmup_steps}), "
            f"got first decay at step {first_decay}", field=field, value=first_decay,
            allowed=f">= warmup_steps ({warmup_steps})")


def warmup_step(init_lr: float, warmup_steps: int, gamma: float, step_size: int | None = None,
                milestones: Sequence[int] | None = None) -> Schedule:
    """O6.2 warmup then O6.3a step decay: Goyal et al. 2017's ResNet-50 schedule.

    ``init_lr·(t+1)/W`` for ``t < W``; then ``init_lr·γ^k`` where ``k`` counts the decay points at
    or before ``t`` — every ``step_size`` steps (the seed's ``⌊t/T⌋``) or at each of the
    ``milestones`` (Goyal: epochs 30, 60, 80 of 90). Give exactly one of the two. Decay points are
    absolute steps (the warmup is part of the first interval, as in Goyal and torch's
    ``MultiStepLR``) and may not fall inside the warmup. With ``W = 0`` and ``step_size`` it is
    ``step_decay``.
    """
    LR_RANGE.check("init_lr", init_lr)
    WARMUP_RANGE.check("warmup_steps", warmup_steps)
    GAMMA_RANGE.check("gamma", gamma)
    if (step_size is None) == (milestones is None):
        raise SpecError("give exactly one of step_size or milestones", field="milestones",
                        value=milestones, allowed="exactly one of step_size, milestones")
    init, g = float(init_lr), float(gamma)
    if step_size is not None:
        STEP_SIZE_RANGE.check("step_size", step_size)
        _check_warmup_before_decay("step_size", step_size, warmup_steps)
        size = step_size

        def decays(t: int) -> int:
            return t // size
    else:
        points = _milestones(milestones)
        _check_warmup_before_decay("milestones", points[0], warmup_steps)

        def decays(t: int) -> int:
            return bisect.bisect_right(points, t)  # milestones at or before t

    def schedule(t: int) -> float:
        t = _step(t)
        if t < warmup_steps:
            return _ramp(init, t, warmup_steps)
        return init * g ** decays(t)

    return schedule


def sample(schedule: Schedule, total_steps: int, n_points: int) -> list[tuple[int, float]]:
    """``n_points`` evenly spaced ``(step, lr)`` pairs from step 0 to ``total_steps − 1``.

    Both ends are always included (the two values users check first); when ``n_points`` exceeds
    the number of steps every step is returned once.
    """
    Range(ge=1, le=MAX_STEPS, integer=True).check("total_steps", total_steps)
    Range(ge=2, le=MAX_SAMPLE_POINTS, integer=True).check("n_points", n_points)
    last = total_steps - 1
    if last == 0:
        return [(0, float(schedule(0)))]
    steps = sorted({round(i * last / (n_points - 1)) for i in range(n_points)})
    return [(t, float(schedule(t))) for t in steps]
