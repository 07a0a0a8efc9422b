"""Schedules as data: one pydantic variant per schedule, discriminated by ``name``.

Each variant carries the ranges of the factory it builds (``optim_core.numerics.schedules``), so a
422 from the API and a ``SpecError`` from library code say the same thing; ``build()`` returns
the pure function of the step that a preview samples and a trial trains with.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationInfo, field_validator

from optim_core.numerics.schedules import (
    END_LR_RANGE,
    GAMMA_RANGE,
    LR_RANGE,
    MAX_MILESTONES,
    RATIO_RANGE,
    STEP_SIZE_RANGE,
    TOTAL_RANGE,
    WARMUP_RANGE,
    Schedule,
    constant,
    cosine_annealing,
    inverse_sqrt,
    linear_decay,
    linear_warmup,
    step_decay,
    warmup_cosine,
    warmup_linear,
    warmup_step,
)

__all__ = [
    "ConstantSchedule",
    "CosineSchedule",
    "InverseSqrtSchedule",
    "LinearSchedule",
    "LinearWarmupSchedule",
    "ScheduleSpec",
    "ScheduleSpecAdapter",
    "StepSchedule",
    "WarmupCosineSchedule",
    "WarmupLinearSchedule",
    "WarmupStepSchedule",
]


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
