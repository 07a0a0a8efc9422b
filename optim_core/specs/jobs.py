"""The job requests: a range test or a trials run over an experiment (torch-free).

``RangeTestJobSpec`` and ``TrialsJobSpec`` are what the API validates, hashes into the
de-duplication key and stores with the job; the worker rebuilds them from that JSON.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from optim_core.bounds import MAX_LR, MIN_LR
from optim_core.errors import SpecError
from optim_core.numerics.schedules import wsd_max_decay_steps
from optim_core.specs.base import StrictSpec as _Spec
from optim_core.specs.experiment import ExperimentSpec
from optim_core.specs.optimizer import OptimizerName, OptimizerSpec
from optim_core.specs.range_test import RangeTestConfig
from optim_core.specs.schedule import (
    OneCycleSchedule,
    ScheduleSpec,
    WarmupCosineSchedule,
    WarmupStableDecaySchedule,
)

__all__ = ["REFINE_CANDIDATES", "WSD_DECAY_FRACTION", "RangeTestJobSpec", "TrialCandidate",
           "TrialsConfig", "TrialsJobSpec", "schedule_peak_lr"]

#: the refinement's candidates per default optimizer: half a grid step below and above its best
REFINE_CANDIDATES = 2

#: the default wsd schedule decays over the last tenth of the steps (MiniCPM: ~10 %).
WSD_DECAY_FRACTION = 0.1


def schedule_peak_lr(schedule: ScheduleSpec, steps: int) -> float:
    """The highest LR ``schedule`` sets over a trial's ``steps`` steps: what a candidate on it is
    set to, wherever its run stops. Read off the schedule itself, so it holds for every kind
    (a warmup longer than the trial gives the LR the trial reaches, not the unreached one)."""
    lr_at = schedule.build()
    return max(lr_at(t) for t in range(steps))


def _error_at(err: SpecError, title: str, prefix: str) -> ValidationError:
    """``err`` as pydantic's error at its field, so the API's 422 names that field and what is
    allowed. ``prefix`` is the validated model's own place in the job spec (``err.field`` is a
    path in the job spec, as at run time)."""
    field = (err.field or "").removeprefix(prefix)
    loc = tuple(int(p) if p.isdigit() else p for p in field.split(".")) if field else ()
    return ValidationError.from_exception_data(title, [InitErrorDetails(
        type=PydanticCustomError("trials_config", "{message}",
                                 {"message": str(err), "allowed": err.allowed or ""}),
        loc=loc, input=err.value)])


class TrialCandidate(_Spec):
    """One setting to try. ``schedule`` None = ``TrialsConfig.schedule`` peaking at
    ``optimizer.lr`` (default: warmup + cosine to 0.1×peak, O6.4, with warmup
    ``TrialsConfig.warmup_fraction`` of the steps, O6.2b); the result records the schedule that ran
    in full either way. A given ``schedule`` sets the LR at every step: the candidate's LR (its
    label, progress, ``peak_lr``, the verdict and the recorded ``optimizer.lr``) is then the
    schedule's peak over the trial's steps, whatever ``optimizer.lr`` says."""

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
    clip_norm: float | None = Field(
        default=1.0, gt=0.0, le=1e6,
        description="global gradient-norm clip τ (O7.4) of the candidates made from "
                    "default_optimizers and of their edge extensions; None = off, to compare LRs "
                    "under the recipe of a full run that does not clip (clipping lets a trial "
                    "survive an LR at which the unclipped run diverges). Candidates given "
                    "explicitly carry their own")
    center_lr: float | None = Field(default=None, ge=MIN_LR, le=MAX_LR)
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
        description="the divergence rule's threshold (optim_core.numerics.divergence, the range "
                    "test's rule): a trial diverged once its smoothed train loss rises above "
                    "its best by this many times the drop seen so far, or any loss is NaN/Inf")
    range_test_steps: int = Field(default=100, ge=10, le=2000,
                                  description="length of the range test that measures center_lr")
    schedule: Literal["warmup_cosine", "one_cycle", "wsd"] = Field(
        default="warmup_cosine",
        description="schedule of candidates that give none, peaking at the candidate's LR: "
                    "warmup_cosine (O6.4), one_cycle (Smith 2018; its floor max_lr / div_factor "
                    "with div_factor = cycle_max_lr / cycle_min_lr of the range test that "
                    "measured the centre, else 25) or wsd (warmup, stable, linear decay over "
                    "the last 10 % to 0.1 x peak; MiniCPM)")
    seeds: int = Field(default=1, ge=1, le=5,
                       description="runs per candidate, each with other initial weights "
                                   "(experiment seed + k) and batch order (epoch k); ranked by "
                                   "the mean score, and the spread is reported")
    extend_edges: int = Field(
        default=2, ge=0, le=4,
        description="per default optimizer, at most this many extra LRs when the best LR is at "
                    "the edge of center_lr x lr_factors: the grid is extended past that edge by "
                    "its own step ratio (each extra LR costs steps x seeds); 0 = off. Whatever "
                    "is left at an edge is said plainly in the result")

    refine: bool = Field(
        default=False,
        description="after the grid and its edge extensions, per default optimizer, try the LRs "
                    "half a grid step either side of its best (the geometric means with its "
                    "neighbours) and rank them with the rest: the grid's resolution halved where "
                    "the optimum is, for at most two candidates per optimizer (each costs steps "
                    "x seeds). Explicit candidates are not refined")

    @field_validator("default_optimizers")
    @classmethod
    def _each_optimizer_once(cls, v: list[str]) -> list[str]:
        # A repeated name would run the same trials twice: fake ties, double extensions.
        repeated = sorted({n for n in v if v.count(n) > 1})
        if repeated:
            raise PydanticCustomError(
                "duplicate_optimizer",
                "default_optimizers lists {names} more than once; name each optimizer once",
                {"names": ", ".join(repeated), "allowed": "distinct optimizer names"})
        return v

    @model_validator(mode="after")
    def _default_schedule_fits(self) -> Self:
        # The run-time rule itself (default_schedule), checked before any range test runs.
        if self.uses_default_schedule:
            try:
                self.default_schedule(MAX_LR)  # the rule is about the steps; any valid LR will do
            except SpecError as err:
                raise _error_at(err, type(self).__name__, "config.") from None
        return self

    @model_validator(mode="after")
    def _own_schedules_reach_an_lr(self) -> Self:
        # A given schedule sets the candidate's LR to its peak over the trial's steps; a warmup
        # far longer than the trial can keep that below MIN_LR, which no optimizer takes: refuse
        # it here, not after the run when its result is checked.
        for i, c in enumerate(self.candidates or []):
            if c.schedule is not None and (peak := schedule_peak_lr(c.schedule, self.steps)) < MIN_LR:
                where = f"config.candidates.{i}.schedule"
                raise _error_at(SpecError(
                    f"this schedule peaks at {peak:.3g} within the trial's {self.steps} steps, "
                    f"below the smallest LR ({MIN_LR:g})", field=where, value=peak,
                    allowed=f"a peak >= {MIN_LR:g} within the trial's steps"),
                    type(self).__name__, "config.") from None
        return self

    @property
    def uses_default_schedule(self) -> bool:
        """Whether some candidate trains on ``schedule`` (the defaults, or an explicit candidate
        without a schedule of its own)."""
        return self.candidates is None or any(c.schedule is None for c in self.candidates)

    def default_schedule(self, peak_lr: float, cycle_div: float | None = None) -> ScheduleSpec:
        """The schedule of a candidate that gives none (``schedule``), peaking at ``peak_lr``.
        ``cycle_div``: 1cycle's ``div_factor`` read off a range test (``cycle_max_lr /
        cycle_min_lr``); None = torch's 25. Raises `SpecError` (naming ``config.steps``) when
        the steps are too few for that schedule."""
        steps = self.steps
        warmup = max(1, round(self.warmup_fraction * steps)) if self.warmup_fraction else 0
        if self.schedule == "one_cycle":
            if steps < 3:
                raise SpecError("one_cycle needs steps >= 3", field="config.steps", value=steps,
                                allowed=">= 3 with schedule one_cycle")
            return OneCycleSchedule(max_lr=peak_lr, total_steps=steps,
                                    div_factor=max(1.0, cycle_div) if cycle_div else 25.0)
        if self.schedule == "wsd":
            # warmup_fraction <= 0.5 leaves a step after the peak for any steps >= 2, so the
            # decay always has room (wsd_max_decay_steps >= 1).
            decay = min(max(1, round(WSD_DECAY_FRACTION * steps)),
                        wsd_max_decay_steps(warmup, steps))
            return WarmupStableDecaySchedule(max_lr=peak_lr, warmup_steps=warmup,
                                             total_steps=steps, decay_steps=decay,
                                             min_lr_ratio=0.1)
        return WarmupCosineSchedule(max_lr=peak_lr, warmup_steps=warmup, total_steps=steps)

    def evaluates_after(self, t: int) -> bool:
        """Whether a run still training evaluates (and reports progress) after step ``t``
        (0-based): every ``eval_every`` steps, and after the last step. A run that diverges
        also reports at the step it stopped (with a NaN, not an evaluation)."""
        return (t + 1) % self.eval_every == 0 or t == self.steps - 1

    def evaluations_per_run(self) -> int:
        """The validation passes of one run that does not diverge (one that does evaluates no
        more): ``evaluates_after`` counted — every ``eval_every`` steps and after the last —
        in closed form, so the work budget counts what the loop does (a test checks the two)."""
        return -(-self.steps // self.eval_every)

    @property
    def measures_center(self) -> bool:
        """Whether a range test per default optimizer measures the centre LR first (no
        candidates and no center_lr given)."""
        return self.candidates is None and self.center_lr is None

    def planned_candidates(self) -> int:
        """The candidates asked for: the explicit ones, or every default optimizer at every
        factor (before de-duplication, extensions and refinements)."""
        return (len(self.candidates) if self.candidates
                else len(self.default_optimizers) * len(self.lr_factors))

    def planned_runs(self) -> int:
        """The most candidate runs the trials can make: every candidate, every possible edge
        extension and refinement, times ``seeds``."""
        per_optimizer = self.extend_edges + REFINE_CANDIDATES * self.refine
        extra = len(self.default_optimizers) * per_optimizer if self.candidates is None else 0
        return (self.planned_candidates() + extra) * self.seeds

    def planned_steps(self) -> int:
        """The most training steps the trials can run (the API's max_total_steps check): every
        planned run's steps, plus one range test per default optimizer when the centre LR is
        measured."""
        return (self.planned_runs() * self.steps
                + (len(self.default_optimizers) * self.range_test_steps
                   if self.measures_center else 0))

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
