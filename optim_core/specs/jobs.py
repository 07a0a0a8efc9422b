"""The job requests: a range test or a trials run over an experiment (torch-free).

``RangeTestJobSpec`` and ``TrialsJobSpec`` are what the API validates, hashes into the
de-duplication key and stores with the job; the worker rebuilds them from that JSON.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from optim_core.bounds import MAX_LR
from optim_core.specs.base import StrictSpec as _Spec
from optim_core.specs.experiment import ExperimentSpec
from optim_core.specs.optimizer import OptimizerName, OptimizerSpec
from optim_core.specs.range_test import RangeTestConfig
from optim_core.specs.schedule import ScheduleSpec

__all__ = ["RangeTestJobSpec", "TrialCandidate", "TrialsConfig", "TrialsJobSpec"]


class TrialCandidate(_Spec):
    """One setting to try. ``schedule`` None = warmup + cosine to 0.1×peak (O6.4) with warmup
    ``TrialsConfig.warmup_fraction`` of the steps (O6.2b), peaking at ``optimizer.lr``."""

    optimizer: OptimizerSpec
    schedule: ScheduleSpec | None = None
    clip_norm: float | None = Field(default=1.0, gt=0.0, le=1e6,
                                    description="global gradient-norm clip τ (O7.4); None = off")
    label: str | None = Field(default=None, max_length=80)


class TrialsConfig(_Spec):
    """Short training runs that compare settings. With no ``candidates`` the defaults are
    ``default_optimizers`` — AdamW (wd 0.01) and SGD + momentum 0.9 (wd 1e-4) (O7.1, W11) — at
    ``center_lr × lr_factors``; with no ``center_lr`` either, a quick LR range test per optimizer
    measures its centre first (AdamW's good LR is not SGD's)."""

    candidates: list[TrialCandidate] | None = Field(default=None, min_length=1, max_length=16)
    default_optimizers: list[OptimizerName] = Field(
        default_factory=lambda: ["adamw", "sgd"], min_length=1, max_length=4,
        description="used without candidates, each with OptimizerSpec's defaults (W11)")
    center_lr: float | None = Field(default=None, gt=0.0, le=MAX_LR)
    lr_factors: list[Annotated[float, Field(gt=0.0, le=1000.0)]] = Field(
        default_factory=lambda: [1 / 3, 1.0, 3.0], min_length=1, max_length=7)
    steps: int = Field(default=200, ge=2, le=5000)
    eval_every: int = Field(default=20, ge=1, le=5000,
                            description="validation loss (and progress) every this many steps")
    val_batches: int = Field(default=16, ge=1, le=1000,
                             description="validation batches per evaluation (the same ones each "
                                         "time)")
    warmup_fraction: float = Field(default=0.05, ge=0.0, le=0.5,
                                   description="default schedule's warmup share (O6.2b: 1–5 %)")
    smooth_beta: float = Field(default=0.9, ge=0.0, lt=1.0,
                               description="EMA weight (bias-corrected) of the smoothed train loss "
                                           "used for divergence and ranking")
    divergence_factor: float = Field(
        default=4.0, ge=1.1, le=1000.0,
        description="diverged once the smoothed train loss rises above its best by factor × "
                    "max(start − best, 3 × batch noise) — i.e. above start + (factor − 1)·"
                    "(start − best) — or any loss is NaN/Inf; shift-invariant (negative losses "
                    "work); not applied in the first max(10, steps // 10) steps")
    range_test_steps: int = Field(default=100, ge=10, le=2000,
                                  description="length of the range test that measures center_lr")
    batched: bool = Field(
        default=False,
        description="opt-in: train the candidates that share an optimizer class in one vmapped "
                    "forward/backward per step (torch.func); each keeps its own optimizer, "
                    "schedule, weight decay and clipping, and the curves match the sequential "
                    "run to float rounding. Models vmap cannot batch exactly (BatchNorm, dropout, "
                    "other random ops or in-place buffer updates) run one candidate at a time; "
                    "the result's batched / batched_reason say which happened and why")


class RangeTestJobSpec(_Spec):
    """Request of a range-test job: what to build, how to sweep, and with which optimizer."""

    experiment: ExperimentSpec
    config: RangeTestConfig = Field(default_factory=RangeTestConfig)
    optimizer: OptimizerSpec | None = None


class TrialsJobSpec(_Spec):
    """Request of a short-trials job."""

    experiment: ExperimentSpec
    config: TrialsConfig = Field(default_factory=TrialsConfig)
