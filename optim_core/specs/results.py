"""Typed results of the two job kinds (torch-free, numpy-free declarations).

``GET /v1/jobs/{id}`` declares ``result`` as :data:`JobResult`, a union discriminated by
``kind`` (``range_test`` | ``trials``, the one name of each job kind everywhere). Results are
flat (``result.curve.lrs``) and hold only what the run measured: the request is stored once, on
the job (``request``), not again here. Every array's length is given by a field next to it
(``points``), because it is not always the step count: a range test's curve ends at the step that
stopped it, while ``steps_run`` also counts the steps up to the next check.

Non-finite losses are ``null`` (JSON has no NaN). Built from the training entry points' plain
data by :mod:`workers.results` (the one adapter between the two).
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from optim_core.bounds import MAX_LR, MIN_LR
from optim_core.specs.experiment import DataInfo
from optim_core.specs.optimizer import OptimizerSpec
from optim_core.specs.range_test import TrialPhase
from optim_core.specs.schedule import ScheduleSpec

__all__ = ["Curve", "GroupSummary", "JobResult", "LrSuggestions", "MeasuredCenter",
           "ParamDecision", "ParamGroups", "RangeTestResult", "RunInfo", "TrialCurve",
           "TrialResult", "TrialsResult", "ValidationCurve"]

Loss = float | None  # None: the loss was not a finite number


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _same_length(model: BaseModel, *names: str) -> None:
    n = model.points  # type: ignore[attr-defined]
    for name in names:
        if len(getattr(model, name)) != n:
            raise ValueError(f"{name} has {len(getattr(model, name))} values, points says {n}")


class Curve(_Result):
    """A range test's sweep: one point per optimizer step, up to the step that stopped it."""

    points: int = Field(ge=0, description="length of lrs, losses and raw_losses")
    lrs: list[float] = Field(description="LR used at each step")
    losses: list[Loss] = Field(description="smoothed loss (bias-corrected EMA) at each step")
    raw_losses: list[Loss] = Field(description="loss as computed at each step")

    @model_validator(mode="after")
    def _lengths(self) -> Self:
        _same_length(self, "lrs", "losses", "raw_losses")
        return self


class ValidationCurve(_Result):
    """Validation loss on fixed batches, every so many steps."""

    points: int = Field(ge=0, description="length of steps and losses")
    steps: list[int] = Field(description="0-based step after which each loss was measured")
    losses: list[Loss]

    @model_validator(mode="after")
    def _lengths(self) -> Self:
        _same_length(self, "steps", "losses")
        return self


class LrSuggestions(_Result):
    """LRs read off a range-test curve (None where a rule had too few points to answer)."""

    steepest: float | None = Field(description="LR at the steepest descent of the smoothed loss")
    valley: float | None = Field(description="LR in the longest valley before the minimum")
    minimum_div10: float | None = Field(description="LR at the loss minimum, divided by 10")
    lr_at_min: float | None = Field(description="LR at the loss minimum")
    recommended: float | None = Field(
        description="the LR to use as the peak of a warmup + decay schedule (how the trials and "
                    "bench/lr_quality.py train it); held constant it is on the high side, and "
                    "`minimum_div10` is the safer constant LR")
    confidence: float = Field(
        ge=0.0, le=1.0,
        description="how well the curve could be read (length, noise, where its minimum fell, "
                    "whether the rules agree); not how near `recommended` is to the best LR, "
                    "which short trials measure")
    reason: str = Field(description="why `recommended` was chosen")
    flags: list[str] = Field(description="what made the curve hard to read")
    cycle_max_lr: float | None = Field(description="max LR for a one-cycle schedule")
    cycle_min_lr: float | None = Field(description="min LR for a one-cycle schedule")


class ParamDecision(_Result):
    name: str
    group: str
    rule: str
    rule_ids: list[str]
    reason: str
    shape: list[int]
    num_params: int
    tied_with: list[str]


class GroupSummary(_Result):
    name: str = Field(description="decay or no_decay")
    weight_decay: float
    num_tensors: int
    num_params: int
    param_names: list[str]
    reason: str
    rule_ids: list[str]
    by_rule: dict[str, list[str]]


class ParamGroups(_Result):
    """Which parameters got weight decay, and by which named rule."""

    groups: list[GroupSummary]
    decay_embeddings: bool
    total_tensors: int
    total_params: int
    frozen_tensors: int
    frozen_params: int
    frozen_names: list[str]
    params: list[ParamDecision]


class DataSummary(_Result):
    info: DataInfo
    n_train: int
    n_val: int
    train_batches_per_epoch: int


class RunInfo(_Result):
    """Where and how the job ran (the numbers depend on these)."""

    device: str = Field(description="cpu, cuda, cuda:1, ...")
    seed: int
    seconds: float = Field(description="wall time of the whole job")
    param_count: int = Field(description="parameters of the built model")
    param_count_analytic: int | None = Field(
        description="the spec's analytic count (None for a registered plug-in model)")
    data: DataSummary
    versions: dict[str, str] = Field(description="optim_core, torch, python, numpy")


class RangeTestResult(_Result):
    kind: Literal["range_test"] = "range_test"
    curve: Curve
    steps_run: int = Field(ge=0, description="optimizer steps run; can exceed curve.points by "
                                             "up to config.check_every - 1 (the stop is noticed "
                                             "at the next check)")
    stop_reason: Literal["completed", "diverged", "non_finite"]
    validation: ValidationCurve | None = Field(description="None when no validation split")
    suggestions: LrSuggestions
    optimizer: OptimizerSpec = Field(description="the optimizer the sweep used, defaults filled")
    param_groups: ParamGroups | None
    run: RunInfo


class TrialCurve(_Result):
    """One candidate's training curve: one point per optimizer step run."""

    points: int = Field(ge=0, description="length of lrs, train_losses, smoothed_train_losses "
                                          "(= steps_run)")
    lrs: list[float]
    train_losses: list[Loss] = Field(description="loss before each step's update")
    smoothed_train_losses: list[Loss]

    @model_validator(mode="after")
    def _lengths(self) -> Self:
        _same_length(self, "lrs", "train_losses", "smoothed_train_losses")
        return self


class SeedRun(_Result):
    """One seed's run of a candidate (``TrialsConfig.seeds``): other weights, other batch order."""

    seed: int = Field(ge=0)
    score: float | None = Field(description="the ranking score (final val loss, else smoothed "
                                            "final train loss); None when not finite")
    final_train_loss: float | None
    final_val_loss: float | None
    diverged: bool
    steps_run: int


class TrialResult(_Result):
    label: str
    phase: TrialPhase = Field(
        description="extension: added past a winning edge of the LR grid (extend_edges); "
                    "refine: half a grid step beside the best LR (TrialsConfig.refine)")
    optimizer: OptimizerSpec = Field(description="the full optimizer spec, defaults filled")
    schedule: ScheduleSpec = Field(description="the full schedule the trial ran")
    schedule_source: Literal["given", "default"] = Field(
        description="default: warmup + cosine to 0.1×peak (O6.4), warmup TrialsConfig."
                    "warmup_fraction of the steps")
    clip_norm: float | None
    peak_lr: float = Field(description="the schedule's highest LR over the trial's steps: the LR "
                                       "the candidate was set to, wherever its run stopped (its "
                                       "place on the LR grid)")
    clipped_lrs: list[float] = Field(
        description=f"requested default LRs outside [{MIN_LR:g}, {MAX_LR:g}] that were clipped "
                    "to this one")
    curve: TrialCurve
    validation: ValidationCurve | None
    final_train_loss: float | None = Field(description="last smoothed train loss")
    final_val_loss: float | None
    best_train_loss: float | None = Field(description="lowest smoothed train loss")
    best_val_loss: float | None
    diverged: bool = Field(description="whether any seed diverged (seed_runs says which); such a "
                                       "candidate is ranked last")
    diverged_at: int | None = Field(description="the step at which seed 0 diverged (its curves "
                                                "above end there); None if seed 0 did not")
    steps_run: int
    seconds_per_step: float
    param_groups: ParamGroups
    seed_runs: list[SeedRun] = Field(description="one per seed; the curves above are seed 0's")
    score_mean: float | None = Field(description="mean score over the seeds (what is ranked)")
    score_std: float | None = Field(description="sample standard deviation of the score over "
                                                "the seeds; None with one seed")


class GridEdge(_Result):
    """Where one optimizer's best LR fell in its grid, and what was done about an edge."""

    best_lr: float | None = Field(description="None when every trial of it diverged")
    grid_lrs: list[float] = Field(
        description="the peak LRs tried, ascending, extensions and refinements included")
    at_edge: Literal["low", "high"] | None = Field(
        description="the best LR is the grid's lowest (low) or highest (high) LR; low also when "
                    "every trial diverged (the optimum may lie below the grid); None: inside")
    extended_lrs: list[float] = Field(description="LRs added past a winning edge, or below a "
                                                  "grid whose every trial diverged")
    refined_lrs: list[float] = Field(
        default_factory=list,
        description="LRs added half a grid step beside the best (TrialsConfig.refine)")
    note: str = Field(description="in words, including whether the optimum may lie beyond")


class Gap(_Result):
    """How far another candidate is behind the winner."""

    label: str
    absolute: float | None = Field(description="its mean score minus the winner's")
    relative: float | None = Field(description="absolute / |winner's score|")
    sigmas: float | None = Field(description="absolute / the larger of the two seed spreads")
    diverged: bool


class Verdict(_Result):
    """Which LR and optimizer won, by how much, and how sure."""

    label: str | None = Field(description="the winner; None when every candidate diverged")
    optimizer: str | None
    lr: float | None = Field(description="the winner's peak LR")
    score: float | None = None
    runner_up: Gap | None = None
    best_other_optimizer: Gap | None = None
    next_up: Gap | None = Field(
        default=None, description="the winner's optimizer at the next higher LR tried (None: the "
                                  "winner is its highest)")
    near_stability_edge: bool = Field(
        default=False, description="next_up diverged or scored at least twice the winner's: "
                                   "the winning LR is just below where training breaks, and "
                                   "that point moves with the initial weights, the batch order "
                                   "and clipping (a clipped trial survives higher LRs)")
    confidence: Literal["high", "medium", "low", "unmeasured", "none"] = Field(
        description="high: gap >= 2x the spread over seeds; medium: 1-2x; low: within it; "
                    "unmeasured: one seed; none: nothing won")
    at_edge: bool = False
    sentence: str


class MeasuredCenter(_Result):
    """The quick range test that measured an optimizer's centre LR (no center_lr was given)."""

    optimizer: str
    center_lr: float
    confidence: float | None
    flags: list[str]
    curve: Curve
    steps_run: int
    stop_reason: Literal["completed", "diverged", "non_finite"]
    suggestions: LrSuggestions


class TrialsResult(_Result):
    kind: Literal["trials"] = "trials"
    candidates: list[TrialResult]
    ranking: list[str] = Field(description="candidate labels, best first")
    ranking_indices: list[int] = Field(description="indices into candidates, best first")
    ranked_by: Literal["final_val_loss", "smoothed_final_train_loss"]
    best: str | None = Field(description="label of the winner (verdict.label); None when "
                                         "every candidate diverged: nothing won")
    steps: int = Field(description="steps per candidate (a diverged one stops early)")
    center_lr: dict[str, float] | None = Field(description="per optimizer, for default "
                                                           "candidates")
    center_lr_source: Literal["given", "range_test", "candidates"]
    measured_centers: list[MeasuredCenter] = Field(
        description="one per optimizer when the centre LR was measured, else empty")
    batched: bool
    batched_reason: str
    seeds: int = Field(ge=1, description="runs per candidate (TrialsConfig.seeds)")
    edges: dict[str, GridEdge] = Field(description="per optimizer of the default grid")
    verdict: Verdict
    run: RunInfo


JobResult = Annotated[RangeTestResult | TrialsResult, Field(discriminator="kind")]
"""A job's result, by ``kind``."""

