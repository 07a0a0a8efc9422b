"""Schedules as data: one pydantic variant per schedule, discriminated by ``name``.

Each variant carries the ranges of the factory it builds (``optim_core.numerics.schedules``), so a
422 from the API and a ``SpecError`` from library code say the same thing; ``build()`` returns
the pure function of the step that a preview samples and a trial trains with.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationInfo, field_validator

from optim_core.errors import SpecError
from optim_core.numerics.schedules import (
    CYCLE_TOTAL_RANGE,
    DECAY_STEPS_RANGE,
    DIV_FACTOR_RANGE,
    END_LR_RANGE,
    GAMMA_RANGE,
    LR_RANGE,
    MAX_MILESTONES,
    PCT_START_RANGE,
    RATIO_RANGE,
    STEP_SIZE_RANGE,
    TOTAL_RANGE,
    WARMUP_RANGE,
    Schedule,
    check_wsd_lengths,
    constant,
    cosine_annealing,
    inverse_sqrt,
    linear_decay,
    linear_warmup,
    one_cycle,
    step_decay,
    warmup_cosine,
    warmup_linear,
    warmup_stable_decay,
    warmup_step,
)

__all__ = [
    "ConstantSchedule",
    "CosineSchedule",
    "InverseSqrtSchedule",
    "LinearSchedule",
    "LinearWarmupSchedule",
    "OneCycleSchedule",
    "ScheduleSpec",
    "ScheduleSpecAdapter",
    "StepSchedule",
    "WarmupCosineSchedule",
    "WarmupLinearSchedule",
    "WarmupStableDecaySchedule",
    "WarmupStepSchedule",
]


def _not_above(other: str) -> Any:
    """A field validator: this field must not exceed an earlier ``other`` field (end_lr ≤ max_lr).
    The error lands on this field, naming the other and its value."""

    def check(cls: type, v: float, info: ValidationInfo) -> float:
        ref = info.data.get(other)
        if ref is not None and v > ref:
            raise SpecError(f"{info.field_name} must be <= {other} ({ref:g}), got {v!r}",
                            field=info.field_name, value=v, allowed=f"<= {other} ({ref:g})")
        return v

    return classmethod(check)


def _above(other: str) -> Any:
    """A field validator: this field must exceed an earlier ``other`` (total_steps > warmup)."""

    def check(cls: type, v: int, info: ValidationInfo) -> int:
        ref = info.data.get(other)
        if ref is not None and v <= ref:
            raise SpecError(f"{info.field_name} must be > {other} ({ref}), got {v}",
                            field=info.field_name, value=v, allowed=f"> {other} ({ref})")
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
    lr: float = LR_RANGE.field(description="learning rate at every step")

    def build(self) -> Schedule:
        return constant(self.lr)


class LinearWarmupSchedule(_ScheduleBase):
    """Linear warmup to ``peak_lr`` over ``warmup_steps`` steps, then constant."""

    rule_ids: ClassVar[tuple[str, ...]] = ("O6.2", "O6.2b")
    name: Literal["linear_warmup"] = "linear_warmup"
    peak_lr: float = LR_RANGE.field(description="LR reached at step warmup_steps - 1")
    warmup_steps: int = WARMUP_RANGE.field(description="number of warmup steps (0: none)")

    def build(self) -> Schedule:
        return linear_warmup(self.peak_lr, self.warmup_steps)


class StepSchedule(_ScheduleBase):
    """Step decay: multiply the LR by ``gamma`` every ``step_size`` steps."""

    rule_ids: ClassVar[tuple[str, ...]] = ("O6.1", "O6.3a")
    name: Literal["step"] = "step"
    init_lr: float = LR_RANGE.field(description="LR for steps 0 … step_size - 1")
    gamma: float = GAMMA_RANGE.field(0.1, description="factor applied every step_size steps")
    step_size: int = STEP_SIZE_RANGE.field(description="steps between decays")

    def build(self) -> Schedule:
        return step_decay(self.init_lr, self.gamma, self.step_size)


class CosineSchedule(_ScheduleBase):
    """Cosine annealing from ``max_lr`` (step 0) to ``min_lr`` (last step)."""

    rule_ids: ClassVar[tuple[str, ...]] = ("O6.1", "O6.3b")
    name: Literal["cosine"] = "cosine"
    max_lr: float = LR_RANGE.field(description="LR at step 0")
    total_steps: int = TOTAL_RANGE.field(description="run length; min_lr is used at total_steps - 1")
    min_lr: float = END_LR_RANGE.field(0.0, description="LR on the last step (<= max_lr)")

    _min_below_max = field_validator("min_lr")(_not_above("max_lr"))

    def build(self) -> Schedule:
        return cosine_annealing(self.max_lr, self.total_steps, self.min_lr)


class LinearSchedule(_ScheduleBase):
    """Linear decay from ``max_lr`` (step 0) to ``end_lr`` (last step)."""

    rule_ids: ClassVar[tuple[str, ...]] = ("O6.1", "O6.3c")
    name: Literal["linear"] = "linear"
    max_lr: float = LR_RANGE.field(description="LR at step 0")
    total_steps: int = TOTAL_RANGE.field(description="run length; end_lr is used at total_steps - 1")
    end_lr: float = END_LR_RANGE.field(0.0, description="LR on the last step (<= max_lr)")

    _end_below_max = field_validator("end_lr")(_not_above("max_lr"))

    def build(self) -> Schedule:
        return linear_decay(self.max_lr, self.total_steps, self.end_lr)


class InverseSqrtSchedule(_ScheduleBase):
    """Inverse square root (original Transformer), optionally after linear warmup."""

    rule_ids: ClassVar[tuple[str, ...]] = ("O6.3d", "O6.2")
    name: Literal["inverse_sqrt"] = "inverse_sqrt"
    init_lr: float = LR_RANGE.field(description="peak LR, used at step max(warmup_steps - 1, 0)")
    warmup_steps: int = WARMUP_RANGE.field(0, description="number of warmup steps (0: none)")

    def build(self) -> Schedule:
        return inverse_sqrt(self.init_lr, self.warmup_steps)


class WarmupCosineSchedule(_ScheduleBase):
    """Linear warmup then cosine to ``min_lr_ratio · max_lr``: the standard LLM schedule."""

    rule_ids: ClassVar[tuple[str, ...]] = ("O6.2", "O6.3b", "O6.4")
    name: Literal["warmup_cosine"] = "warmup_cosine"
    max_lr: float = LR_RANGE.field(description="peak LR, reached at step warmup_steps - 1")
    warmup_steps: int = WARMUP_RANGE.field(description="number of warmup steps (O6.2b: 1-5 % of the run)")
    total_steps: int = TOTAL_RANGE.field(description="run length; min_lr is used at total_steps - 1")
    min_lr_ratio: float = RATIO_RANGE.field(0.1, description="min_lr = min_lr_ratio * max_lr (O6.4: 0.1)")

    _total_after_warmup = field_validator("total_steps")(_above("warmup_steps"))

    def build(self) -> Schedule:
        return warmup_cosine(self.max_lr, self.warmup_steps, self.total_steps, self.min_lr_ratio)


class WarmupLinearSchedule(_ScheduleBase):
    """Linear warmup then linear decay to ``end_lr``: the BERT/RoBERTa/LoRA fine-tuning schedule."""

    rule_ids: ClassVar[tuple[str, ...]] = ("O6.2", "O6.3c")
    name: Literal["warmup_linear"] = "warmup_linear"
    max_lr: float = LR_RANGE.field(description="peak LR, reached at step warmup_steps - 1")
    warmup_steps: int = WARMUP_RANGE.field(description="number of warmup steps (O6.2b: 1-5 % of the run)")
    total_steps: int = TOTAL_RANGE.field(description="run length; end_lr is used at total_steps - 1")
    end_lr: float = END_LR_RANGE.field(0.0, description="LR on the last step (<= max_lr; BERT: 0)")

    _total_after_warmup = field_validator("total_steps")(_above("warmup_steps"))

    _end_below_max = field_validator("end_lr")(_not_above("max_lr"))

    def build(self) -> Schedule:
        return warmup_linear(self.max_lr, self.warmup_steps, self.total_steps, self.end_lr)


class WarmupStepSchedule(_ScheduleBase):
    """Linear warmup then ×``gamma`` every ``step_size`` steps or at each of ``milestones``
    (Goyal et al. 2017: warmup 5 epochs, ×0.1 at epochs 30, 60, 80)."""

    rule_ids: ClassVar[tuple[str, ...]] = ("O6.2", "O6.3a")
    name: Literal["warmup_step"] = "warmup_step"
    init_lr: float = LR_RANGE.field(description="peak LR, reached at step warmup_steps - 1")
    warmup_steps: int = WARMUP_RANGE.field(description="number of warmup steps (0: none)")
    gamma: float = GAMMA_RANGE.field(0.1, description="factor applied at each decay point")
    step_size: int | None = Field(default=None, ge=STEP_SIZE_RANGE.ge, le=STEP_SIZE_RANGE.le,
                                  description="decay every step_size steps (O6.3a's ⌊t/T⌋); "
                                              "or give milestones")
    # Validated even when omitted (validate_default), so "neither given" is reported here, on the
    # later of the two fields, like the other cross-field checks.
    milestones: tuple[Annotated[int, Field(ge=STEP_SIZE_RANGE.ge, le=STEP_SIZE_RANGE.le)], ...] | None = Field(
        default=None, min_length=1, max_length=MAX_MILESTONES, validate_default=True,
        description="absolute steps at which the LR is multiplied by gamma, strictly increasing")

    @field_validator("step_size")
    @classmethod
    def _step_after_warmup(cls, v: int | None, info: ValidationInfo) -> int | None:
        warmup = info.data.get("warmup_steps")
        if v is not None and warmup is not None and v < warmup:
            raise SpecError(f"step_size must be >= warmup_steps ({warmup}), got {v}",
                            field="step_size", value=v,
                            allowed=f">= warmup_steps ({warmup}), <= {STEP_SIZE_RANGE.le:g}")
        return v

    @field_validator("milestones")
    @classmethod
    def _one_of_and_increasing(cls, v: tuple[int, ...] | None,
                               info: ValidationInfo) -> tuple[int, ...] | None:
        if "step_size" not in info.data:  # step_size itself was invalid; reported on its own
            return v
        if (info.data["step_size"] is None) == (v is None):
            raise SpecError("give exactly one of step_size or milestones", field="milestones",
                            allowed="exactly one of step_size or milestones")
        if v is not None:
            if any(b <= a for a, b in itertools.pairwise(v)):
                raise SpecError(f"milestones must be strictly increasing, got {list(v)}",
                                field="milestones", allowed="strictly increasing steps")
            warmup = info.data.get("warmup_steps")
            if warmup is not None and v[0] < warmup:
                raise SpecError(f"milestones must not start before warmup_steps ({warmup}), "
                                f"got {v[0]}", field="milestones", value=v[0],
                                allowed=f"steps >= warmup_steps ({warmup}), strictly "
                                        "increasing")
        return v

    def build(self) -> Schedule:
        return warmup_step(self.init_lr, self.warmup_steps, self.gamma, self.step_size,
                           self.milestones)


class OneCycleSchedule(_ScheduleBase):
    """Smith's 1cycle (2018), torch ``OneCycleLR``'s shape and defaults: cosine up from
    ``max_lr / div_factor`` to ``max_lr``, then cosine down to ``max_lr / (div_factor ·
    final_div_factor)`` on the last step. `from_range_test` takes both bounds from a range test."""

    rule_ids: ClassVar[tuple[str, ...]] = ("O6.1",)
    name: Literal["one_cycle"] = "one_cycle"
    max_lr: float = LR_RANGE.field(description="peak LR (the range test's cycle_max_lr)")
    total_steps: int = CYCLE_TOTAL_RANGE.field(description="run length; the floor is used at "
                                                           "total_steps - 1")
    pct_start: float = PCT_START_RANGE.field(0.3, description="share of the run spent rising; "
                                                              "peak at round(pct_start * "
                                                              "total_steps) - 1, at least 1 "
                                                              "and at most total_steps - 2")
    div_factor: float = DIV_FACTOR_RANGE.field(25.0, description="step 0 uses max_lr / div_factor "
                                                                 "(range test: cycle_max_lr / "
                                                                 "cycle_min_lr)")
    final_div_factor: float = DIV_FACTOR_RANGE.field(
        1e4, description="the last step uses max_lr / (div_factor * final_div_factor)")

    @classmethod
    def from_range_test(cls, cycle_max_lr: float, cycle_min_lr: float, total_steps: int,
                        **kw: Any) -> OneCycleSchedule:
        """1cycle between the range test's bounds (``Suggestions.cycle_max_lr`` /
        ``cycle_min_lr``), as Smith reads them off the curve. Raises SpecError naming the bound
        when either is not an LR or the floor is above the peak."""
        LR_RANGE.check("cycle_max_lr", cycle_max_lr)
        LR_RANGE.check("cycle_min_lr", cycle_min_lr)
        if cycle_min_lr > cycle_max_lr:
            raise SpecError(f"cycle_min_lr must be <= cycle_max_lr ({cycle_max_lr:g}), got "
                            f"{cycle_min_lr:g}", field="cycle_min_lr", value=cycle_min_lr,
                            allowed=f"<= cycle_max_lr ({cycle_max_lr:g})")
        return cls(max_lr=cycle_max_lr, total_steps=total_steps,
                   div_factor=cycle_max_lr / cycle_min_lr, **kw)

    def build(self) -> Schedule:
        return one_cycle(self.max_lr, self.total_steps, self.pct_start, self.div_factor,
                         self.final_div_factor)


class WarmupStableDecaySchedule(_ScheduleBase):
    """Warmup–stable–decay (MiniCPM 2024): warmup, ``max_lr`` held, then the last
    ``decay_steps`` decay to ``min_lr_ratio · max_lr``. ``decay="multistep"`` is DeepSeek LLM's
    two drops (√ratio, then ratio; with decay_steps = 20 % of the run and ratio 0.1: 31.6 % at
    80 %, 10 % at 90 %)."""

    rule_ids: ClassVar[tuple[str, ...]] = ("O6.1", "O6.2")
    name: Literal["wsd"] = "wsd"
    max_lr: float = LR_RANGE.field(description="peak LR, reached at step warmup_steps - 1")
    warmup_steps: int = WARMUP_RANGE.field(description="number of warmup steps (0: none)")
    total_steps: int = TOTAL_RANGE.field(description="run length; the decay ends at total_steps - 1")
    decay_steps: int = DECAY_STEPS_RANGE.field(
        description="length of the final decay (MiniCPM: about 10 % of the run; DeepSeek: 20 %); "
                    "<= total_steps - max(warmup_steps, 1)")
    min_lr_ratio: float = RATIO_RANGE.field(0.1, description="LR on the last step / max_lr")
    decay: Literal["linear", "cosine", "exp", "multistep"] = Field(
        default="linear", description="shape of the decay: linear, cosine, exp (geometric, "
                                      "MiniCPM; needs min_lr_ratio > 0) or multistep (DeepSeek)")

    _total_after_warmup = field_validator("total_steps")(_above("warmup_steps"))

    @field_validator("decay_steps")
    @classmethod
    def _decay_after_peak(cls, v: int, info: ValidationInfo) -> int:
        total, warmup = info.data.get("total_steps"), info.data.get("warmup_steps")
        if total is not None and warmup is not None:
            check_wsd_lengths(warmup, total, v)
        return v

    @field_validator("decay")
    @classmethod
    def _exp_needs_a_floor(cls, v: str, info: ValidationInfo) -> str:
        if v == "exp" and info.data.get("min_lr_ratio") == 0.0:
            raise SpecError("decay 'exp' needs min_lr_ratio > 0 (a geometric decay never "
                            "reaches 0)", field="decay", value=v,
                            allowed="linear, cosine or multistep with min_lr_ratio 0 (exp "
                                    "needs min_lr_ratio > 0)")
        return v

    def build(self) -> Schedule:
        return warmup_stable_decay(self.max_lr, self.warmup_steps, self.total_steps,
                                   self.decay_steps, self.min_lr_ratio, self.decay)


ScheduleSpec = Annotated[
    ConstantSchedule | LinearWarmupSchedule | StepSchedule | CosineSchedule | LinearSchedule
    | InverseSqrtSchedule | WarmupCosineSchedule | WarmupLinearSchedule | WarmupStepSchedule
    | OneCycleSchedule | WarmupStableDecaySchedule,
    Field(discriminator="name"),
]
"""Any schedule as data, chosen by its ``name``; ``ScheduleSpecAdapter.validate_python(d)``."""

ScheduleSpecAdapter: TypeAdapter[Any] = TypeAdapter(ScheduleSpec)
