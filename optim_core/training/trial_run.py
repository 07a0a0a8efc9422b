"""One candidate's short trial: build it, train it for the configured steps, and report it.

`optim_core.training.trials` runs the candidates (sequentially here, or several at once in
`optim_core.training.trials_batched`) and ranks them; both use the pieces below, so a batched
candidate is built, scheduled, clipped, evaluated and reported exactly as a sequential one.
See `optim_core.training.trials` for fairness, reproducibility and the divergence rule.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from optim_core.errors import Cancelled, SpecError
from optim_core.numerics.divergence import DivergenceMonitor
from optim_core.numerics.finite import finite_or_none
from optim_core.specs.jobs import TrialCandidate, TrialsConfig, schedule_peak_lr
from optim_core.specs.range_test import ProgressEvent, TrialPhase
from optim_core.training.data import DataBundle, split_batch
from optim_core.training.modes import eval_mode

__all__ = ["BuiltCandidate", "ModelFactory", "PhasedProgress", "ProgressFn", "StopFn",
           "TrainStream", "TrialResult", "build_candidate", "candidate_label", "evaluate",
           "next_batch", "rewind", "run_candidate", "trial_result"]


ProgressFn = Callable[[ProgressEvent], None]


StopFn = Callable[[], bool]


ModelFactory = Callable[[], nn.Module]


@dataclass
class TrialResult:
    """One candidate's run. Losses are per optimizer step (the loss *before* that step's update)."""

    label: str
    optimizer: dict[str, Any]
    schedule: dict[str, Any] | None  # None = the default warmup + cosine
    clip_norm: float | None
    #: the schedule's highest LR over the trial's steps: what the candidate was set to, not the
    #: highest it reached before it stopped (`optim_core.specs.jobs.schedule_peak_lr`)
    peak_lr: float
    lrs: list[float]
    train_losses: list[float]
    smoothed_train_losses: list[float]
    val_steps: list[int]
    val_losses: list[float]
    #: this run diverged; once `run_trials_on` merged the seeds: any seed did (``seed_runs`` says
    #: which). ``diverged_at`` and the curves stay seed 0's.
    diverged: bool
    diverged_at: int | None
    steps_run: int
    seconds_per_step: float
    param_groups: dict[str, Any]
    #: the requested default LRs (centre × factor) outside [MIN_LR, MAX_LR] that were clipped to
    #: ``peak`` LR and so became this candidate; empty when nothing was clipped.
    clipped_lrs: list[float] = field(default_factory=list)
    #: "given" (the candidate's own schedule) or "default" (``TrialsConfig.schedule``); the
    #: schedule itself is always recorded in full in ``schedule``
    schedule_source: str = "given"
    #: why it ran (``optim_core.specs.range_test.TrialPhase``)
    phase: TrialPhase = "trial"
    #: one entry per seed (seed 0 first; its curves are the ones above): score, final losses,
    #: divergence. Filled by `run_trials_on`.
    seed_runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def final_train_loss(self) -> float:
        return self.smoothed_train_losses[-1] if self.smoothed_train_losses else math.nan

    @property
    def final_val_loss(self) -> float | None:
        return self.val_losses[-1] if self.val_losses else None

    def score(self) -> float:
        """This run's score (lower is better): final validation loss, else smoothed final train
        loss."""
        val = self.final_val_loss
        return val if val is not None else self.final_train_loss

    @property
    def scores(self) -> list[float]:
        return [r["score"] if r["score"] is not None else math.nan for r in self.seed_runs] or [
            self.score()]

    @property
    def any_diverged(self) -> bool:
        """Whether this run or any of its seeds diverged (what the ranking puts last)."""
        return self.diverged or any(r["diverged"] for r in self.seed_runs)

    def mean_score(self) -> float:
        """What the ranking sorts by: the score averaged over the seeds (NaN if any is not
        finite)."""
        v = self.scores
        return math.fsum(v) / len(v) if all(math.isfinite(x) for x in v) else math.nan

    def score_std(self) -> float | None:
        """Sample standard deviation of the score over the seeds (None with one seed)."""
        v = self.scores
        if len(v) < 2 or not all(math.isfinite(x) for x in v):
            return None
        m = math.fsum(v) / len(v)
        return math.sqrt(math.fsum((x - m) ** 2 for x in v) / (len(v) - 1))

    def to_dict(self) -> dict[str, Any]:
        # Final and best train losses are both read off the smoothed curve: the best raw value
        # is one lucky batch, not a level the run reached.
        finite_train = [x for x in self.smoothed_train_losses if math.isfinite(x)]
        finite_val = [x for x in self.val_losses if math.isfinite(x)]
        return {
            "label": self.label,
            "optimizer": self.optimizer,
            "schedule": self.schedule,
            "clip_norm": self.clip_norm,
            "peak_lr": self.peak_lr,
            "lrs": [float(x) for x in self.lrs],
            "train_losses": [finite_or_none(x) for x in self.train_losses],
            "smoothed_train_losses": [finite_or_none(x) for x in self.smoothed_train_losses],
            "val_steps": list(self.val_steps),
            "val_losses": [finite_or_none(x) for x in self.val_losses],
            "final_train_loss": finite_or_none(self.final_train_loss),
            "final_val_loss": finite_or_none(self.final_val_loss),
            "best_train_loss": min(finite_train) if finite_train else None,
            "best_val_loss": min(finite_val) if finite_val else None,
            "diverged": self.diverged,
            "diverged_at": self.diverged_at,
            "steps_run": self.steps_run,
            "seconds_per_step": self.seconds_per_step,
            "param_groups": self.param_groups,
            "clipped_lrs": list(self.clipped_lrs),
            "schedule_source": self.schedule_source,
            "phase": self.phase,
            "seed_runs": [dict(r) for r in self.seed_runs],
            "score_mean": finite_or_none(self.mean_score()),
            "score_std": self.score_std(),
        }


def candidate_label(c: TrialCandidate) -> str:
    if c.label:
        return c.label
    sched = f" {c.schedule.name}" if c.schedule is not None else ""
    return f"{c.optimizer.name} lr={c.optimizer.lr:.3g}{sched}"


def rewind(loader: Iterable[Any], epoch: int = 0) -> None:
    """Make the next iteration start again at ``epoch`` (0; seed k of ``TrialsConfig.seeds``
    uses epoch k's batch order): ``set_epoch`` where the loader has it (the data builders'
    contract, `optim_core.training.data`); other loaders must repeat themselves."""
    set_epoch = getattr(loader, "set_epoch", None)
    if callable(set_epoch):
        set_epoch(epoch)


def next_batch(it: Iterator[Any], loader: Iterable[Any]) -> tuple[Any, Iterator[Any]]:
    """The next training batch, re-iterating ``loader`` when exhausted; `SpecError` if empty."""
    try:
        return next(it), it
    except StopIteration:
        it = iter(loader)
        try:
            return next(it), it
        except StopIteration:
            raise SpecError("the training data yielded no batches", field="data") from None


class TrainStream:
    """The training batches of one run, on ``device``: endless across epochs (re-iterating the
    loader, which starts at ``epoch``'s order), with the cancel check between steps. Both trial
    loops (sequential and batched) read their steps from one of these, so a step's batch, its
    timing start and its cancel point are the same in both."""

    def __init__(self, loader: Iterable[Any], device: torch.device, should_stop: StopFn | None,
                 what: str, epoch: int = 0) -> None:
        rewind(loader, epoch)  # same batches, same order, for every candidate
        self._loader, self._it = loader, iter(loader)
        self._device, self._should_stop, self._what = device, should_stop, what

    def next(self, t: int) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Step ``t``'s ``(x, y)`` on the device, and the ``perf_counter`` reading taken before
        the copy (a step's time includes moving its batch)."""
        if self._should_stop is not None and self._should_stop():
            raise Cancelled(f"cancelled at step {t} of {self._what}")
        batch, self._it = next_batch(self._it, self._loader)
        x, y = split_batch(batch, field="data")
        tick = time.perf_counter()
        return x.to(self._device), y.to(self._device), tick


def evaluate(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]],
              bundle: DataBundle) -> float:
    """Sample-weighted mean loss over the fixed validation batches, in eval mode (the range
    test's validation loss is weighted the same way)."""
    total, count = 0.0, 0
    with eval_mode(model), torch.no_grad():
        for x, y in batches:
            total += float(bundle.loss_fn(model(x), y)) * len(x)
            count += len(x)
    return total / count


class PhasedProgress:
    """Counts steps over every phase (range tests + trials + extensions) so ``step`` only goes up,
    and says where the run is (``ProgressEvent.phase``, ``candidate``, ``candidate_lr``,
    ``seed``)."""

    def __init__(self, fn: ProgressFn | None, total: int) -> None:
        self.fn, self.total, self.done = fn, total, 0
        self.where: dict[str, Any] = {}

    def at(self, phase: str, candidate: str | None, lr: float | None = None,
           seed: int | None = None) -> None:
        """The phase and candidate the next events belong to."""
        self.where = {"phase": phase, "candidate": candidate, "candidate_lr": lr, "seed": seed}

    def emit(self, lr: float, loss: float | None) -> None:
        if self.fn is not None:
            self.fn(ProgressEvent(step=min(self.done, self.total), total=self.total, lr=lr,
                                  loss=finite_or_none(loss), **self.where))

    def offset(self, base: int) -> ProgressFn | None:
        """A callback for a sub-phase whose own step count starts at 0."""
        if self.fn is None:
            return None

        def forward(event: ProgressEvent) -> None:
            self.done = base + event.step
            self.emit(event.lr, event.loss)
        return forward


@dataclass
class BuiltCandidate:
    """One candidate ready to train: its own model, optimizer (over the decay / no-decay groups)
    and scheduler. Shared by the sequential and the batched path, so both train exactly the same
    setting."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any  # ScheduleLR (imported lazily: torch's scheduler module is heavy)
    params: list[torch.Tensor]
    report: Any     # ParamGroupReport

    def update(self, clip_norm: float | None) -> None:
        """One optimizer step on the gradients already in place: global-norm clipping over this
        candidate's own parameters (O7.4), the step, the schedule. The one update rule of both
        paths, so they cannot drift apart."""
        if clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.params, clip_norm)
        self.optimizer.step()
        self.scheduler.step()


def build_candidate(candidate: TrialCandidate, model_factory: ModelFactory, config: TrialsConfig,
           device: torch.device) -> BuiltCandidate:
    from optim_core.training.lr_scheduler import ScheduleLR
    from optim_core.training.optimizers import build_optimizer
    from optim_core.training.param_groups import build_param_groups

    spec = candidate.optimizer
    model = model_factory().to(device)
    model.train()
    groups, report = build_param_groups(model, spec.weight_decay or 0.0, spec.decay_embeddings)
    # Built on the moved parameters, for their device: fused kernels on CUDA.
    optimizer = build_optimizer(groups, spec, device_type=device.type)
    sched = candidate.schedule or config.default_schedule(float(spec.lr))  # type: ignore[arg-type]
    scheduler = ScheduleLR(optimizer, sched.build())
    params = [p for g in optimizer.param_groups for p in g["params"]]
    return BuiltCandidate(model, optimizer, scheduler, params, report)


def trial_result(candidate: TrialCandidate, built: BuiltCandidate, monitor: DivergenceMonitor,
            lrs: list[float], val_steps: list[int], val_losses: list[float],
            diverged_at: int | None, seconds: float,
            clipped_lrs: list[float] | None, config: TrialsConfig) -> TrialResult:
    spec = candidate.optimizer
    raw, smoothed = monitor.raw, monitor.smoothed
    steps_run = len(raw)
    sched = candidate.schedule or config.default_schedule(float(spec.lr))  # type: ignore[arg-type]
    return TrialResult(
        label=candidate_label(candidate), optimizer=spec.model_dump(mode="json"),
        schedule=sched.model_dump(mode="json"),
        clip_norm=candidate.clip_norm, peak_lr=schedule_peak_lr(sched, config.steps),
        lrs=lrs, train_losses=raw, smoothed_train_losses=smoothed, val_steps=val_steps,
        val_losses=val_losses, diverged=diverged_at is not None, diverged_at=diverged_at,
        steps_run=steps_run, seconds_per_step=seconds / max(steps_run, 1),
        param_groups=built.report.to_dict(), clipped_lrs=list(clipped_lrs or []))


def run_candidate(candidate: TrialCandidate, model_factory: ModelFactory, bundle: DataBundle,
             config: TrialsConfig, device: torch.device, val_batches: list[Any],
             progress: PhasedProgress, should_stop: StopFn | None,
             clipped_lrs: list[float] | None = None, epoch: int = 0) -> TrialResult:
    built = build_candidate(candidate, model_factory, config, device)
    model, optimizer = built.model, built.optimizer
    steps = config.steps
    val_on_device = [(x.to(device), y.to(device)) for x, y in val_batches]

    monitor = DivergenceMonitor(beta=config.smooth_beta, threshold=config.divergence_factor,
                                num_steps=steps)
    lrs: list[float] = []
    val_steps: list[int] = []
    val_losses: list[float] = []
    diverged_at: int | None = None
    seconds = 0.0
    stream = TrainStream(bundle.train, device, should_stop,
                         f"trial {candidate_label(candidate)!r}", epoch)

    for t in range(steps):
        x, y, tick = stream.next(t)
        lr = float(optimizer.param_groups[0]["lr"])
        optimizer.zero_grad(set_to_none=True)
        loss = bundle.loss_fn(model(x), y)
        loss.backward()
        built.update(candidate.clip_norm)
        value = float(loss.detach())  # a host sync per step: fine here, and timing needs it
        seconds += time.perf_counter() - tick
        lrs.append(lr)
        progress.done += 1
        if monitor.update(value):  # NaN/Inf, or the shared shift-invariant rule
            diverged_at = t
            # its skipped steps count as done, before its last event: that one must read done
            progress.done += steps - (t + 1)
        reports = config.evaluates_after(t) or diverged_at is not None
        if val_on_device and reports:
            val_steps.append(t + 1)
            val_losses.append(evaluate(model, val_on_device, bundle)
                              if diverged_at is None else math.nan)
        if reports:
            progress.emit(lr, monitor.smoothed[-1])
        if diverged_at is not None:
            break

    return trial_result(candidate, built, monitor, lrs, val_steps, val_losses, diverged_at, seconds,
                   clipped_lrs, config)
