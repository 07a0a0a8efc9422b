"""Short trials: train a few candidate settings for a fixed small number of steps and rank them.

A range test says where the loss *starts* to fall apart; a short trial says which setting actually
trains best over a realistic (if short) schedule. By default the candidates are AdamW and SGD +
momentum (O7.1, W11) at ``center_lr × {1/3, 1, 3}``, each with warmup + cosine (O6.4, warmup
``warmup_fraction`` of the steps, O6.2b), the decay / no-decay parameter groups (O7.3, W10c) and
global-norm clipping τ = 1.0 (O7.4). Without a ``center_lr`` a quick range test per optimizer
measures one (`optim_core.training.range_test`, its recommended pick), and the result says so, with the
pick's confidence and flags. A range test that could not measure an LR (its flags include one of
``optim_core.numerics.suggest.UNUSABLE_FLAGS`` — too short, never decreasing, diverged immediately — or its
confidence is below ``MIN_CENTER_CONFIDENCE``) raises `TrainingError` instead: its "recommended" is
then a placeholder (the sweep's first LR), and trials centred on it would compare nothing useful.
Default LRs above ``MAX_LR`` are clipped to it; candidates that clipping made identical are run once,
and the trial says which requested LRs were clipped (``clipped_lrs``).

Fairness and reproducibility: every candidate starts from the same initial weights (torch is
re-seeded with the experiment seed before each model is built) and sees the same batches in the
same order: the train loader is rewound with ``set_epoch(0)`` when it has that method (the built-in
`optim_core.training.data.BatchLoader` does); a plug-in loader without it must yield the same batches on
every iteration (``docs/PLUGINS.md``). Validation uses the same first ``val_batches`` batches. On
CPU, the same request gives bit-identical curves (tested); only ``seconds_per_step`` varies.
Batches are ``(inputs, targets)`` (a tuple or list of two; anything else, or a loader that yields
nothing, is a `SpecError`). The validation loss is weighted by samples per batch, as the range
test's.

On CUDA the optimizer is built after the model is on the device and for that device, so the
factory's fused kernels are used; trials run in full precision (no GradScaler, so no per-step
inf-check sync), and read the loss on the host once per step anyway (for timing and the rule below).

Ranking: non-diverged trials by final validation loss where the data has a validation split,
else by the smoothed (bias-corrected EMA) final train loss; diverged trials last (those that lasted
longer first). Divergence is the range test's rule (`optim_core.numerics.divergence`), with
``divergence_factor`` as its threshold: a trial diverges when a loss is NaN/Inf, or (after the
first ``max(10, steps // 10)`` steps) when the smoothed train loss rises above its best so far by
more than ``divergence_factor × max(start − best, 3 × batch noise)`` — i.e. above
``start + (divergence_factor − 1)·(start − best)`` once it has fallen, which is
``divergence_factor × start`` for a positive loss that had fallen to about 0. Every term is a
difference of losses, so a shifted loss diverges at the same step and negative losses work. The
trial stops there (its remaining steps would be wasted).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from optim_core.bounds import MAX_LR
from optim_core.errors import Cancelled, SpecError, TrainingError
from optim_core.numerics.divergence import DivergenceMonitor
from optim_core.numerics.suggest import UNUSABLE_FLAGS
from optim_core.specs.jobs import TrialCandidate, TrialsConfig
from optim_core.specs.optimizer import OptimizerSpec
from optim_core.specs.range_test import ProgressEvent, RangeTestConfig
from optim_core.training.data import DataBundle, split_batch

__all__ = ["TrialResult", "TrialsResult", "default_candidates", "measure_center_lr",
           "run_trials_on"]

ProgressFn = Callable[[ProgressEvent], None]
StopFn = Callable[[], bool]
ModelFactory = Callable[[], nn.Module]

#: OptimizerSpec's upper bound on lr; a default LR above it is clipped (``TrialResult.clipped_lrs``).
#: a measured centre LR with lower confidence than this is refused (`TrainingError`).
MIN_CENTER_CONFIDENCE = 0.05


def _finite(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


@dataclass
class TrialResult:
    """One candidate's run. Losses are per optimizer step (the loss *before* that step's update)."""

    label: str
    optimizer: dict[str, Any]
    schedule: dict[str, Any] | None  # None = the default warmup + cosine
    clip_norm: float | None
    peak_lr: float
    lrs: list[float]
    train_losses: list[float]
    smoothed_train_losses: list[float]
    val_steps: list[int]
    val_losses: list[float]
    diverged: bool
    diverged_at: int | None
    steps_run: int
    seconds_per_step: float
    param_groups: dict[str, Any]
    #: the requested default LRs (centre × factor) above MAX_LR that were clipped to ``peak``
    #: LR and so became this candidate; empty when nothing was clipped.
    clipped_lrs: list[float] = field(default_factory=list)

    @property
    def final_train_loss(self) -> float:
        return self.smoothed_train_losses[-1] if self.smoothed_train_losses else math.nan

    @property
    def final_val_loss(self) -> float | None:
        return self.val_losses[-1] if self.val_losses else None

    def score(self) -> float:
        """What the ranking sorts by (lower is better): final validation loss, else smoothed
        final train loss."""
        val = self.final_val_loss
        return val if val is not None else self.final_train_loss

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
            "train_losses": [_finite(x) for x in self.train_losses],
            "smoothed_train_losses": [_finite(x) for x in self.smoothed_train_losses],
            "val_steps": list(self.val_steps),
            "val_losses": [_finite(x) for x in self.val_losses],
            "final_train_loss": _finite(self.final_train_loss),
            "final_val_loss": _finite(self.final_val_loss),
            "best_train_loss": min(finite_train) if finite_train else None,
            "best_val_loss": min(finite_val) if finite_val else None,
            "diverged": self.diverged,
            "diverged_at": self.diverged_at,
            "steps_run": self.steps_run,
            "seconds_per_step": self.seconds_per_step,
            "param_groups": self.param_groups,
            "clipped_lrs": list(self.clipped_lrs),
        }


@dataclass
class TrialsResult:
    trials: list[TrialResult]
    ranking: list[int]  # indices into ``trials``, best first
    ranked_by: str      # "final_val_loss" | "smoothed_final_train_loss"
    steps: int
    center_lr: dict[str, float] | None = None     # per optimizer name, for default candidates
    center_lr_source: str = "candidates"           # "given" | "range_test" | "candidates"
    range_tests: dict[str, Any] = field(default_factory=dict)  # optimizer name -> result dict
    #: per optimizer, the measured centre's confidence and flags (None unless "range_test")
    center_lr_confidence: dict[str, float] | None = None
    center_lr_flags: dict[str, list[str]] | None = None
    #: whether any candidates shared a vmapped forward/backward (``TrialsConfig.batched``), and
    #: what happened: which optimizer classes were batched, or why the run fell back
    batched: bool = False
    batched_reason: str = "not requested (TrialsConfig.batched is false)"

    @property
    def best(self) -> TrialResult:
        return self.trials[self.ranking[0]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "trials": [t.to_dict() for t in self.trials],
            "ranking": [self.trials[i].label for i in self.ranking],
            "ranking_indices": list(self.ranking),
            "ranked_by": self.ranked_by,
            "best": self.best.label,
            "steps": self.steps,
            "center_lr": self.center_lr,
            "center_lr_source": self.center_lr_source,
            "range_tests": self.range_tests,
            "center_lr_confidence": self.center_lr_confidence,
            "center_lr_flags": self.center_lr_flags,
            "batched": self.batched,
            "batched_reason": self.batched_reason,
        }


# -- candidates ---------------------------------------------------------------------------------


def _default_candidates(config: TrialsConfig, centers: dict[str, float],
                        ) -> list[tuple[TrialCandidate, list[float]]]:
    """`default_candidates` with, per candidate, the requested LRs that clipping mapped to it."""
    out: list[tuple[TrialCandidate, list[float]]] = []
    index: dict[tuple[str, float], int] = {}
    for name in config.default_optimizers:
        for factor in config.lr_factors:
            requested = centers[name] * factor
            lr = min(requested, MAX_LR)
            # De-duplicate after the cap: centre 10 × {1, 3} would otherwise run lr=10 twice.
            key = (name, lr)
            if key not in index:
                index[key] = len(out)
                out.append((TrialCandidate(optimizer=OptimizerSpec(name=name, lr=lr),
                                           label=f"{name} lr={lr:.3g}"), []))
            if requested > MAX_LR:
                out[index[key]][1].append(requested)
    return out


def default_candidates(config: TrialsConfig, centers: dict[str, float]) -> list[TrialCandidate]:
    """``config.default_optimizers`` (with OptimizerSpec's per-optimizer defaults: AdamW wd 0.01,
    SGD momentum 0.9 wd 1e-4 — W11) at ``centers[name] × lr_factors``, clipped to (0, MAX_LR],
    without duplicates (two factors clipped to the same LR give one candidate)."""
    return [c for c, _ in _default_candidates(config, centers)]


def measure_center_lr(model_factory: ModelFactory, bundle: DataBundle, optimizer_name: str,
                      *, steps: int, device: torch.device,
                      progress: ProgressFn | None = None, should_stop: StopFn | None = None,
                      ) -> tuple[float, dict[str, Any]]:
    """A quick range test with ``optimizer_name``'s defaults; returns its recommended LR (capped at
    ``MAX_LR``) and the result as a dict. Raises `TrainingError` when the curve could not give an
    LR (an ``UNUSABLE_FLAGS`` flag, or confidence below ``MIN_CENTER_CONFIDENCE``)."""
    from optim_core.training.range_test import lr_range_test  # heavy; only needed without a centre

    _rewind(bundle.train)
    result = lr_range_test(model_factory(), bundle.train, bundle.loss_fn,
                           optimizer=OptimizerSpec(name=optimizer_name),
                           config=RangeTestConfig(num_steps=steps), device=device,
                           progress=progress, should_stop=should_stop)
    s = result.suggestions
    unusable = sorted(UNUSABLE_FLAGS.intersection(s.flags))
    lr = s.recommended
    if (unusable or s.confidence < MIN_CENTER_CONFIDENCE or lr is None or not math.isfinite(lr)
            or lr <= 0):
        # suggest() always answers (a placeholder such as the first LR, for a curve it could not
        # read); centring trials on that would look like a measurement and be none.
        raise TrainingError(
            f"the quick range test with {optimizer_name} could not give an LR (flags: "
            f"{', '.join(s.flags) or 'none'}; confidence {s.confidence:.2g}; stop: "
            f"{result.stop_reason}): {s.reason} Pass center_lr (or candidates).")
    return min(float(lr), MAX_LR), result.to_dict()


# -- one trial ------------------------------------------------------------------------------------


def _label(c: TrialCandidate) -> str:
    if c.label:
        return c.label
    sched = f" {c.schedule.name}" if c.schedule is not None else ""
    return f"{c.optimizer.name} lr={c.optimizer.lr:.3g}{sched}"


def _rewind(loader: Iterable[Any]) -> None:
    """Make the next iteration start again at epoch 0: ``set_epoch(0)`` where the loader has it
    (the data builders' contract, `optim_core.training.data`); other loaders must repeat themselves."""
    set_epoch = getattr(loader, "set_epoch", None)
    if callable(set_epoch):
        set_epoch(0)


def _next_batch(it: Iterator[Any], loader: Iterable[Any]) -> tuple[Any, Iterator[Any]]:
    """The next training batch, re-iterating ``loader`` when exhausted; `SpecError` if empty."""
    try:
        return next(it), it
    except StopIteration:
        it = iter(loader)
        try:
            return next(it), it
        except StopIteration:
            raise SpecError("the training data yielded no batches", field="data") from None


def _evaluate(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]],
              bundle: DataBundle) -> float:
    """Sample-weighted mean loss over the fixed validation batches, in eval mode (the range
    test's validation loss is weighted the same way)."""
    modes = {name: m.training for name, m in model.named_modules()}
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for x, y in batches:
            total += float(bundle.loss_fn(model(x), y)) * len(x)
            count += len(x)
    for name, m in model.named_modules():  # per module: train(flag) would flatten them
        m.training = modes[name]
    return total / count


class _Progress:
    """Counts steps over every phase (range tests + trials) so ``step/total`` only goes up."""

    def __init__(self, fn: ProgressFn | None, total: int) -> None:
        self.fn, self.total, self.done = fn, total, 0

    def emit(self, lr: float, loss: float | None) -> None:
        if self.fn is not None:
            self.fn(ProgressEvent(step=min(self.done, self.total), total=self.total, lr=lr,
                                  loss=_finite(loss)))

    def offset(self, base: int) -> ProgressFn | None:
        """A callback for a sub-phase whose own step count starts at 0."""
        if self.fn is None:
            return None

        def forward(event: ProgressEvent) -> None:
            self.done = base + event.step
            self.emit(event.lr, event.loss)
        return forward


@dataclass
class _Built:
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


def _build(candidate: TrialCandidate, model_factory: ModelFactory, config: TrialsConfig,
           device: torch.device) -> _Built:
    from optim_core.numerics.schedules import warmup_cosine
    from optim_core.training.lr_scheduler import ScheduleLR
    from optim_core.training.optimizers import build_optimizer
    from optim_core.training.param_groups import build_param_groups

    spec = candidate.optimizer
    model = model_factory().to(device)
    model.train()
    groups, report = build_param_groups(model, spec.weight_decay or 0.0, spec.decay_embeddings)
    # Built on the moved parameters, for their device: fused kernels on CUDA.
    optimizer = build_optimizer(groups, spec, device_type=device.type)
    steps = config.steps
    if candidate.schedule is not None:
        schedule = candidate.schedule.build()
    else:
        warmup = max(1, round(config.warmup_fraction * steps)) if config.warmup_fraction else 0
        schedule = warmup_cosine(float(spec.lr), warmup, steps)  # type: ignore[arg-type]
    scheduler = ScheduleLR(optimizer, schedule)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    return _Built(model, optimizer, scheduler, params, report)


def _result(candidate: TrialCandidate, built: _Built, monitor: DivergenceMonitor,
            lrs: list[float], val_steps: list[int], val_losses: list[float],
            diverged_at: int | None, seconds: float,
            clipped_lrs: list[float] | None) -> TrialResult:
    spec = candidate.optimizer
    raw, smoothed = monitor.raw, monitor.smoothed
    steps_run = len(raw)
    return TrialResult(
        label=_label(candidate), optimizer=spec.model_dump(mode="json"),
        schedule=candidate.schedule.model_dump(mode="json") if candidate.schedule else None,
        clip_norm=candidate.clip_norm, peak_lr=max(lrs) if lrs else float(spec.lr or 0.0),
        lrs=lrs, train_losses=raw, smoothed_train_losses=smoothed, val_steps=val_steps,
        val_losses=val_losses, diverged=diverged_at is not None, diverged_at=diverged_at,
        steps_run=steps_run, seconds_per_step=seconds / max(steps_run, 1),
        param_groups=built.report.to_dict(), clipped_lrs=list(clipped_lrs or []))


def _run_one(candidate: TrialCandidate, model_factory: ModelFactory, bundle: DataBundle,
             config: TrialsConfig, device: torch.device, val_batches: list[Any],
             progress: _Progress, should_stop: StopFn | None,
             clipped_lrs: list[float] | None = None) -> TrialResult:
    built = _build(candidate, model_factory, config, device)
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
    _rewind(bundle.train)  # same batches, same order, for every candidate
    batches: Iterator[Any] = iter(bundle.train)

    for t in range(steps):
        if should_stop is not None and should_stop():
            raise Cancelled(f"cancelled at step {t} of trial {_label(candidate)!r}")
        batch, batches = _next_batch(batches, bundle.train)
        x, y = split_batch(batch, field="data")
        tick = time.perf_counter()
        x, y = x.to(device), y.to(device)
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
        last = diverged_at is not None or t == steps - 1
        if val_on_device and ((t + 1) % config.eval_every == 0 or last):
            val_steps.append(t + 1)
            val_losses.append(_evaluate(model, val_on_device, bundle)
                              if diverged_at is None else math.nan)
        if (t + 1) % config.eval_every == 0 or last:
            progress.emit(lr, monitor.smoothed[-1])
        if diverged_at is not None:
            break

    progress.done += steps - len(monitor.raw)  # skipped steps of a diverged trial count as done
    return _result(candidate, built, monitor, lrs, val_steps, val_losses, diverged_at, seconds,
                   clipped_lrs)


def _rank(trials: list[TrialResult]) -> list[int]:
    def key(i: int) -> tuple[int, float]:
        t = trials[i]
        if t.diverged or not math.isfinite(t.score()):
            return (1, -float(t.steps_run))  # diverged last; the longer-lived first
        return (0, t.score())
    return sorted(range(len(trials)), key=key)  # stable: ties keep candidate order


def _run_all_batched(candidates: list[TrialCandidate], model_factory: ModelFactory,
                     bundle: DataBundle, config: TrialsConfig, device: torch.device,
                     val_batches: list[Any], progress: _Progress, should_stop: StopFn | None,
                     clipped: list[list[float]]) -> tuple[list[TrialResult], bool, str]:
    """``TrialsConfig.batched``: each group of candidates sharing an optimizer class trains in one
    vmapped forward/backward per step (`optim_core.training.trials_batched`); a group of one, or a model
    that cannot be batched exactly, runs sequentially. Returns the trials in candidate order,
    whether any group was batched, and a sentence saying what happened."""
    from optim_core.training.optimizers import optimizer_class
    from optim_core.training.trials_batched import optimizer_class_groups, run_group_batched

    results: dict[int, TrialResult] = {}
    notes: list[str] = []
    model_reason: str | None = None  # same factory for every group: one refusal applies to all
    any_batched = False
    for group in optimizer_class_groups(candidates):
        cls = optimizer_class(candidates[group[0]].optimizer.name).__name__
        done: dict[int, TrialResult] | None = None
        if model_reason is None and len(group) > 1:
            done, why = run_group_batched(group, candidates, model_factory, bundle, config,
                                          device, val_batches, progress, should_stop, clipped)
            if done is None:
                model_reason = why
            else:
                any_batched = True
                notes.append(f"{cls}: {why}")
        elif len(group) == 1:
            notes.append(f"{cls}: one candidate, run on its own")
        if done is None:
            done = {i: _run_one(candidates[i], model_factory, bundle, config, device, val_batches,
                                progress, should_stop, clipped[i] if clipped else None)
                    for i in group}
        results.update(done)
    if model_reason is not None:
        # The model decides for every group (same factory), so one reason covers the run.
        notes = ([f"sequential: {model_reason}"] if not any_batched
                 else [*notes, f"the rest sequential: {model_reason}"])
    return [results[i] for i in range(len(candidates))], any_batched, "; ".join(notes)


# -- all trials -----------------------------------------------------------------------------------


def run_trials_on(model_factory: ModelFactory, bundle: DataBundle, config: TrialsConfig, *,
                  device: str | torch.device = "cpu", progress: ProgressFn | None = None,
                  should_stop: StopFn | None = None) -> TrialsResult:
    """Run the trials of ``config`` on models from ``model_factory`` (called once per candidate,
    and once per range test; it must return identically initialised models — seed inside it)
    and the data of ``bundle``."""
    dev = torch.device(device)
    names = list(config.default_optimizers)
    measuring = config.candidates is None and config.center_lr is None
    n_trials = len(config.candidates) if config.candidates else len(names) * len(config.lr_factors)
    total = n_trials * config.steps + (len(names) * config.range_test_steps if measuring else 0)
    tracker = _Progress(progress, total)

    centers: dict[str, float] | None = None
    range_tests: dict[str, Any] = {}
    clipped: list[list[float]] = []
    if config.candidates is not None:
        candidates, source = list(config.candidates), "candidates"
    else:
        if config.center_lr is not None:
            centers, source = dict.fromkeys(names, config.center_lr), "given"
        else:
            centers, source = {}, "range_test"
            for name in names:
                base = tracker.done
                centers[name], range_tests[name] = measure_center_lr(
                    model_factory, bundle, name, steps=config.range_test_steps, device=dev,
                    progress=tracker.offset(base), should_stop=should_stop)
                tracker.done = base + config.range_test_steps
        pairs = _default_candidates(config, centers)
        candidates, clipped = [c for c, _ in pairs], [lrs for _, lrs in pairs]
        # De-duplication can leave fewer trials than planned: keep step/total honest.
        tracker.total -= (n_trials - len(candidates)) * config.steps

    val_batches: list[Any] = []
    if bundle.val is not None:
        _rewind(bundle.val)
        for i, batch in enumerate(bundle.val):
            if i == config.val_batches:
                break
            val_batches.append(split_batch(batch, field="data"))

    if config.batched:
        trials, batched, batched_reason = _run_all_batched(
            candidates, model_factory, bundle, config, dev, val_batches, tracker, should_stop,
            clipped)
    else:
        trials = [_run_one(c, model_factory, bundle, config, dev, val_batches, tracker,
                           should_stop, clipped[i] if clipped else None)
                  for i, c in enumerate(candidates)]
        batched, batched_reason = False, "not requested (TrialsConfig.batched is false)"
    measured = source == "range_test"
    return TrialsResult(trials=trials, ranking=_rank(trials),
                        ranked_by="final_val_loss" if val_batches else "smoothed_final_train_loss",
                        steps=config.steps, center_lr=centers, center_lr_source=source,
                        range_tests=range_tests,
                        center_lr_confidence=({n: r["suggestions"]["confidence"]
                                               for n, r in range_tests.items()}
                                              if measured else None),
                        center_lr_flags=({n: list(r["suggestions"]["flags"])
                                          for n, r in range_tests.items()}
                                         if measured else None),
                        batched=batched, batched_reason=batched_reason)
