"""Learning-rate schedules as pure functions of the step (rules O6.1–O6.4). Torch-free.

The API process previews schedules and the advice engine recommends them, neither of which may
import torch; the worker drives a torch optimizer from the same functions through
``optim_core.lr_scheduler.ScheduleLR``. Keeping one implementation means what a user previews is
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

* **Step decays** (step, warmup+step) have no horizon: the LR is ``η0·γ^k`` with ``k`` the number
  of decay points at or before ``t`` (every ``step_size`` steps, or the listed ``milestones``),
  counted on the absolute step as torch's ``StepLR``/``MultiStepLR`` and Goyal et al. count epochs;
  after the last milestone it stays at ``η0·γ^len(milestones)``.

Every factory validates its arguments and raises ``SpecError`` naming the field and the allowed
range; the pydantic ``ScheduleSpec`` variants carry the same ranges (one table, ``_RANGES``), so a
422 from the API and an error from library code say the same thing.
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationInfo, field_validator

from optim_core.errors import SpecError

Schedule = Callable[[int], float]

__all__ = [
    "ConstantSchedule",
    "CosineSchedule",
    "InverseSqrtSchedule",
    "LinearSchedule",
    "LinearWarmupSchedule",
    "Schedule",
    "ScheduleSpec",
    "ScheduleSpecAdapter",
    "StepSchedule",
    "WarmupCosineSchedule",
    "WarmupLinearSchedule",
    "WarmupStepSchedule",
    "constant",
    "cosine_annealing",
    "inverse_sqrt",
    "linear_decay",
    "linear_warmup",
    "sample",
    "step_decay",
    "warmup_cosine",
    "warmup_linear",
    "warmup_step",
]

# Upper bounds exist so a typo (1e9 steps, LR 1e3) is refused instead of silently producing a
# schedule nobody meant; they are far beyond anything the guidelines recommend.
MAX_LR = 10.0
MAX_STEPS = 1_000_000_000
MAX_SAMPLE_POINTS = 10_000
# Published step schedules have a handful of decay points (Goyal: 3); 100 is generous and keeps a
# spec (and its cache key) small.
MAX_MILESTONES = 100


@dataclass(frozen=True)
class _Range:
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
        return Field(default, gt=self.gt, ge=self.ge, le=self.le, lt=self.lt,
                     description=description)

    def check(self, field: str, value: Any) -> None:
        if self.integer and not isinstance(value, bool | int) and hasattr(value, "__index__"):
            value = operator.index(value)  # numpy integers are fine; 2.5 and True are not
        bad_type = isinstance(value, bool) or not isinstance(value, int if self.integer else (int, float))
        ok = not bad_type and (self.integer or math.isfinite(value))
        if ok:
            ok = ((self.gt is None or value > self.gt) and (self.ge is None or value >= self.ge)
                  and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))
        if not ok:
            raise SpecError(f"{field} must be {self.describe()}, got {value!r}",
                            field=field, value=value, allowed=self.describe())


_LR = _Range(gt=0.0, le=MAX_LR)
_END_LR = _Range(ge=0.0, le=MAX_LR)
_GAMMA = _Range(gt=0.0, le=1.0)
_RATIO = _Range(ge=0.0, le=1.0)
_STEP_SIZE = _Range(ge=1, le=MAX_STEPS, integer=True)
_WARMUP = _Range(ge=0, le=MAX_STEPS, integer=True)
# A decay needs a first and a last step to go from its start to its end value.
_TOTAL = _Range(ge=2, le=MAX_STEPS, integer=True)


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
    _LR.check("lr", lr)
    lr = float(lr)

    def schedule(t: int) -> float:
        _step(t)
        return lr

    return schedule


def linear_warmup(peak_lr: float, warmup_steps: int) -> Schedule:
    """O6.2: ``peak·(t+1)/W`` for ``t < W``, then ``peak``. ``W = 0`` means no warmup."""
    _LR.check("peak_lr", peak_lr)
    _WARMUP.check("warmup_steps", warmup_steps)
    peak = float(peak_lr)

    def schedule(t: int) -> float:
        t = _step(t)
        return _ramp(peak, t, warmup_steps) if t < warmup_steps else peak

    return schedule


def step_decay(init_lr: float, gamma: float, step_size: int) -> Schedule:
    """O6.3a: ``η0·γ^⌊t/T⌋`` — multiply by ``gamma`` every ``step_size`` steps."""
    _LR.check("init_lr", init_lr)
    _GAMMA.check("gamma", gamma)
    _STEP_SIZE.check("step_size", step_size)
    init, g = float(init_lr), float(gamma)

    def schedule(t: int) -> float:
        return init * g ** (_step(t) // step_size)

    return schedule


def cosine_annealing(max_lr: float, total_steps: int, min_lr: float = 0.0) -> Schedule:
    """O6.3b over ``T = total_steps − 1``: ``max_lr`` at step 0, ``min_lr`` on the last step."""
    _LR.check("max_lr", max_lr)
    _TOTAL.check("total_steps", total_steps)
    _END_LR.check("min_lr", min_lr)
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
    _LR.check("max_lr", max_lr)
    _TOTAL.check("total_steps", total_steps)
    _END_LR.check("end_lr", end_lr)
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
    _LR.check("init_lr", init_lr)
    _WARMUP.check("warmup_steps", warmup_steps)
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
    _LR.check("max_lr", max_lr)
    _WARMUP.check("warmup_steps", warmup_steps)
    _TOTAL.check("total_steps", total_steps)
    _RATIO.check("min_lr_ratio", min_lr_ratio)
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
    _LR.check("max_lr", max_lr)
    _WARMUP.check("warmup_steps", warmup_steps)
    _TOTAL.check("total_steps", total_steps)
    _END_LR.check("end_lr", end_lr)
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
        _STEP_SIZE.check(f"milestones[{i}]", m)
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
    _LR.check("init_lr", init_lr)
    _WARMUP.check("warmup_steps", warmup_steps)
    _GAMMA.check("gamma", gamma)
    if (step_size is None) == (milestones is None):
        raise SpecError("give exactly one of step_size or milestones", field="milestones",
                        value=milestones, allowed="exactly one of step_size, milestones")
    init, g = float(init_lr), float(gamma)
    if step_size is not None:
        _STEP_SIZE.check("step_size", step_size)
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
    _Range(ge=1, le=MAX_STEPS, integer=True).check("total_steps", total_steps)
    _Range(ge=2, le=MAX_SAMPLE_POINTS, integer=True).check("n_points", n_points)
    last = total_steps - 1
    if last == 0:
        return [(0, float(schedule(0)))]
    steps = sorted({round(i * last / (n_points - 1)) for i in range(n_points)})
    return [(t, float(schedule(t))) for t in steps]


# --------------------------------------------------------------------------- specs (pydantic)


def _not_above(other: str) -> Any:
    """A field validator: this field must not exceed an earlier ``other`` field (end_lr ≤ max_lr).
    The error lands on this field, naming the other and its value."""

    def check(cls: type, v: float, info: ValidationInfo) -> float:
        ref = info.data.get(other)
        if ref is not None and v > ref:
            raise ValueError(f"{info.field_name} must be <= {other} ({ref:g}), got {v!r}")
        return v

    return classmethod(check)


def _above(other: str) -> Any:
    """A field validator: this field must exceed an earlier ``other`` (total_steps > warmup)."""

    def check(cls: type, v: int, info: ValidationInfo) -> int:
        ref = info.data.get(other)
        if ref is not None and v <= ref:
            raise ValueError(f"{info.field_name} must be > {other} ({ref}), got {v}")
        return v

    return classmethod(check)


class _ScheduleBase(BaseModel):
    """Shared config: unknown fields are refused (a misspelt ``warmup_step`` must not be ignored),
    and specs are frozen so they can be hashed into cache keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule_ids: ClassVar[tuple[str, ...]] = ()

    def build(self) -> Schedule:  # pragma: no cover - every variant overrides it
        raise NotImplementedError


class ConstantSchedule(_ScheduleBase):
    """A fixed LR (O6.1 explains why a long run usually wants a decay instead)."""

    rule_ids: ClassVar[tuple[str, ...]] = ("O6.1",)
    name: Literal["constant"] = "constant"
    lr: float = _LR.field(description="learning rate at every step")

    def build(self) -> Schedule:
        return constant(self.lr)


class LinearWarmupSchedule(_ScheduleBase):
    """Linear warmup to ``peak_lr`` over ``warmup_steps`` steps, then constant."""

    rule_ids: ClassVar[tuple[str, ...]] = ("O6.2", "O6.2b")
    name: Literal["linear_warmup"] = "linear_warmup"
    peak_lr: float = _LR.field(description="LR reached at step warmup_steps - 1")
    warmup_steps: int = _WARMUP.field(description="number of warmup steps (0: none)")

    def build(self) -> Schedule:
        return linear_warmup(self.peak_lr, self.warmup_steps)


class StepSchedule(_ScheduleBase):
    """Step decay: multiply the LR by ``gamma`` every ``step_size`` steps."""

    rule_ids: ClassVar[tuple[str, ...]] = ("O6.1", "O6.3a")
    name: Literal["step"] = "step"
    init_lr: float = _LR.field(description="LR for steps 0 … step_size - 1")
    gamma: float = _GAMMA.field(0.1, description="factor applied every step_size steps")
    step_size: int = _STEP_SIZE.field(description="steps between decays")

    def build(self) -> Schedule:
        return step_decay(self.init_lr, self.gamma, self.step_size)


class CosineSchedule(_ScheduleBase):
    """Cosine annealing from ``max_lr`` (step 0) to ``min_lr`` (last step)."""

    rule_ids: ClassVar[tuple[str, ...]] = ("O6.1", "O6.3b")
    name: Literal["cosine"] = "cosine"
    max_lr: float = _LR.field(description="LR at step 0")
    total_steps: int = _TOTAL.field(description="run length; min_lr is used at total_steps - 1")
    min_lr: float = _END_LR.field(0.0, description="LR on the last step (<= max_lr)")

    _min_below_max = field_validator("min_lr")(_not_above("max_lr"))

    def build(self) -> Schedule:
        return cosine_annealing(self.max_lr, self.total_steps, self.min_lr)


class LinearSchedule(_ScheduleBase):
    """Linear decay from ``max_lr`` (step 0) to ``end_lr`` (last step)."""

    rule_ids: ClassVar[tuple[str, ...]] = ("O6.1", "O6.3c")
    name: Literal["linear"] = "linear"
    max_lr: float = _LR.field(description="LR at step 0")
    total_steps: int = _TOTAL.field(description="run length; end_lr is used at total_steps - 1")
    end_lr: float = _END_LR.field(0.0, description="LR on the last step (<= max_lr)")

    _end_below_max = field_validator("end_lr")(_not_above("max_lr"))

    def build(self) -> Schedule:
        return linear_decay(self.max_lr, self.total_steps, self.end_lr)


class InverseSqrtSchedule(_ScheduleBase):
    """Inverse square root (original Transformer), optionally after linear warmup."""

    rule_ids: ClassVar[tuple[str, ...]] = ("O6.3d", "O6.2")
    name: Literal["inverse_sqrt"] = "inverse_sqrt"
    init_lr: float = _LR.field(description="peak LR, used at step max(warmup_steps - 1, 0)")
    warmup_steps: int = _WARMUP.field(0, description="number of warmup steps (0: none)")

    def build(self) -> Schedule:
        return inverse_sqrt(self.init_lr, self.warmup_steps)


class WarmupCosineSchedule(_ScheduleBase):
    """Linear warmup then cosine to ``min_lr_ratio · max_lr``: the standard LLM schedule."""

    rule_ids: ClassVar[tuple[str, ...]] = ("O6.2", "O6.3b", "O6.4")
    name: Literal["warmup_cosine"] = "warmup_cosine"
    max_lr: float = _LR.field(description="peak LR, reached at step warmup_steps - 1")
    warmup_steps: int = _WARMUP.field(description="number of warmup steps (O6.2b: 1-5 % of the run)")
    total_steps: int = _TOTAL.field(description="run length; min_lr is used at total_steps - 1")
    min_lr_ratio: float = _RATIO.field(0.1, description="min_lr = min_lr_ratio * max_lr (O6.4: 0.1)")

    _total_after_warmup = field_validator("total_steps")(_above("warmup_steps"))

    def build(self) -> Schedule:
        return warmup_cosine(self.max_lr, self.warmup_steps, self.total_steps, self.min_lr_ratio)


class WarmupLinearSchedule(_ScheduleBase):
    """Linear warmup then linear decay to ``end_lr``: the BERT/RoBERTa/LoRA fine-tuning schedule."""

    rule_ids: ClassVar[tuple[str, ...]] = ("O6.2", "O6.3c")
    name: Literal["warmup_linear"] = "warmup_linear"
    max_lr: float = _LR.field(description="peak LR, reached at step warmup_steps - 1")
    warmup_steps: int = _WARMUP.field(description="number of warmup steps (O6.2b: 1-5 % of the run)")
    total_steps: int = _TOTAL.field(description="run length; end_lr is used at total_steps - 1")
    end_lr: float = _END_LR.field(0.0, description="LR on the last step (<= max_lr; BERT: 0)")

    _total_after_warmup = field_validator("total_steps")(_above("warmup_steps"))

    _end_below_max = field_validator("end_lr")(_not_above("max_lr"))

    def build(self) -> Schedule:
        return warmup_linear(self.max_lr, self.warmup_steps, self.total_steps, self.end_lr)


class WarmupStepSchedule(_ScheduleBase):
    """Linear warmup then ×``gamma`` every ``step_size`` steps or at each of ``milestones``
    (Goyal et al. 2017: warmup 5 epochs, ×0.1 at epochs 30, 60, 80)."""

    rule_ids: ClassVar[tuple[str, ...]] = ("O6.2", "O6.3a")
    name: Literal["warmup_step"] = "warmup_step"
    init_lr: float = _LR.field(description="peak LR, reached at step warmup_steps - 1")
    warmup_steps: int = _WARMUP.field(description="number of warmup steps (0: none)")
    gamma: float = _GAMMA.field(0.1, description="factor applied at each decay point")
    step_size: int | None = Field(default=None, ge=_STEP_SIZE.ge, le=_STEP_SIZE.le,
                                  description="decay every step_size steps (O6.3a's ⌊t/T⌋); "
                                              "or give milestones")
    # Validated even when omitted (validate_default), so "neither given" is reported here, on the
    # later of the two fields, like the other cross-field checks.
    milestones: tuple[Annotated[int, Field(ge=_STEP_SIZE.ge, le=_STEP_SIZE.le)], ...] | None = Field(
        default=None, min_length=1, max_length=MAX_MILESTONES, validate_default=True,
        description="absolute steps at which the LR is multiplied by gamma, strictly increasing")

    @field_validator("step_size")
    @classmethod
    def _step_after_warmup(cls, v: int | None, info: ValidationInfo) -> int | None:
        warmup = info.data.get("warmup_steps")
        if v is not None and warmup is not None and v < warmup:
            raise ValueError(f"step_size must be >= warmup_steps ({warmup}), got {v}")
        return v

    @field_validator("milestones")
    @classmethod
    def _one_of_and_increasing(cls, v: tuple[int, ...] | None,
                               info: ValidationInfo) -> tuple[int, ...] | None:
        if "step_size" not in info.data:  # step_size itself was invalid; reported on its own
            return v
        if (info.data["step_size"] is None) == (v is None):
            raise ValueError("give exactly one of step_size or milestones")
        if v is not None:
            if any(b <= a for a, b in itertools.pairwise(v)):
                raise ValueError(f"milestones must be strictly increasing, got {list(v)}")
            warmup = info.data.get("warmup_steps")
            if warmup is not None and v[0] < warmup:
                raise ValueError(f"milestones must not start before warmup_steps ({warmup}), "
                                 f"got {v[0]}")
        return v

    def build(self) -> Schedule:
        return warmup_step(self.init_lr, self.warmup_steps, self.gamma, self.step_size,
                           self.milestones)


ScheduleSpec = Annotated[
    ConstantSchedule | LinearWarmupSchedule | StepSchedule | CosineSchedule | LinearSchedule
    | InverseSqrtSchedule | WarmupCosineSchedule | WarmupLinearSchedule | WarmupStepSchedule,
    Field(discriminator="name"),
]
"""Any schedule as data, chosen by its ``name``; ``ScheduleSpecAdapter.validate_python(d)``."""

ScheduleSpecAdapter: TypeAdapter[Any] = TypeAdapter(ScheduleSpec)
