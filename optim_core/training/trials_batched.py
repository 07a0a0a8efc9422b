"""Batched short trials: the candidates of one optimizer class share a vmapped forward/backward.

Only the forward and backward are batched; the optimizer math is not touched. Each candidate keeps
its own model, its own ``torch.optim`` optimizer over its own parameter tensors (built by
`optim_core.training.trials._build`, i.e. ``build_param_groups`` + ``build_optimizer`` exactly as the
sequential path), its own `ScheduleLR`, weight decay and global-norm clipping. Every step:

1. the active candidates' trainable parameters are ``torch.stack``-ed per name; the stacks stay
   connected to the candidates' leaves in autograd;
2. ``vmap(functional_call)`` runs the (shared) model structure over the stacks with the batch
   shared (``in_dims=(0, None, None)``), giving one loss per candidate;
3. the losses are read on the host once (the sequential path reads each loss once too); the
   finite ones are summed and backpropagated once — each candidate's leaves receive exactly the
   gradient of its own loss (the losses do not interact), so the result equals the sequential
   path's up to float rounding of the batched kernels;
4. each candidate with a finite loss clips its own gradients and steps its own optimizer and
   scheduler.

Progress is reported per candidate, at the steps the sequential path reports it (its phase, its
label, its LR and its own current LR and loss): a batched group's events are the sequential
events of its candidates, interleaved step by step.

A candidate whose loss is NaN/Inf is left out of the summed loss (indexing it out, not multiplying
by 0: NaN·0 is NaN) and out of every later stack, so it cannot reach the others' gradients; it is
reported exactly as in the sequential path (`DivergenceMonitor`, validation NaN at its last step).

What can be batched is decided from the built model, not from the spec kind, so plug-in models are
covered: no BatchNorm-style running statistics (in-place buffer updates on every training forward),
no dropout with p > 0 (vmap's per-candidate masks cannot reproduce the sequential run's RNG
stream), and a probe forward under ``vmap(randomness="error")`` that must neither draw random
numbers nor modify a buffer in place (catches functional ``F.dropout`` and custom in-place state).
Anything else falls back to the sequential path, and the result says why.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from optim_core.numerics.divergence import DivergenceMonitor
from optim_core.specs.jobs import TrialCandidate, TrialsConfig
from optim_core.specs.range_test import TrialPhase
from optim_core.training.data import DataBundle
from optim_core.training.modes import eval_mode
from optim_core.training.optimizers import optimizer_class
from optim_core.training.trial_run import (
    BuiltCandidate,
    ModelFactory,
    PhasedProgress,
    StopFn,
    TrainStream,
    TrialResult,
    build_candidate,
    candidate_label,
    trial_result,
)

__all__ = ["optimizer_class_groups", "run_group_batched", "structural_reason"]

LossOf = Callable[[dict[str, torch.Tensor], torch.Tensor, torch.Tensor], torch.Tensor]


def optimizer_class_groups(candidates: list[TrialCandidate]) -> list[list[int]]:
    """Candidate indices grouped by the torch optimizer class their spec builds (``adam`` and
    ``adam_l2`` are both ``torch.optim.Adam``), groups in order of first appearance."""
    groups: dict[type, list[int]] = {}
    for i, c in enumerate(candidates):
        groups.setdefault(optimizer_class(c.optimizer.name), []).append(i)
    return list(groups.values())


def structural_reason(model: nn.Module) -> str | None:
    """Why ``model`` cannot be batched exactly, from its module types; None if nothing found."""
    for name, m in model.named_modules():
        where = name or "<root>"
        if (isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats
                and m.running_mean is not None):
            # Every training forward updates running_mean/var in place: under vmap that either
            # fails or merges all candidates' statistics into one buffer.
            return (f"{type(m).__name__} at '{where}' updates its running statistics in place "
                    "on every training step; vmap cannot keep them per candidate")
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
            # randomness="different" would draw other masks than the sequential run draws, so
            # the curves would not be the sequential ones.
            return (f"{type(m).__name__}(p={m.p}) at '{where}': dropout masks drawn under vmap "
                    "cannot reproduce the sequential run's")
    return None


@dataclass(eq=False)  # identity: membership tests must not compare tensors field by field
class _Cand:
    """One candidate's training state inside a batched group."""

    index: int
    candidate: TrialCandidate
    built: BuiltCandidate
    named: dict[str, torch.Tensor]
    monitor: DivergenceMonitor
    clipped_lrs: list[float] | None
    lrs: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    diverged_at: int | None = None
    seconds: float = 0.0


def _trainable(model: nn.Module) -> dict[str, torch.Tensor]:
    # named_parameters() lists a tied tensor once; functional_call (tie_weights=True) puts the
    # stacked value in every place it is tied to. Frozen parameters stay the module's own: they
    # are the same in every candidate (same init, never updated).
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def _loss_of(base: nn.Module, bundle: DataBundle) -> LossOf:
    def loss_of(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor
                ) -> torch.Tensor:
        return bundle.loss_fn(functional_call(base, params, (x,)), y)
    return loss_of


def _stack(cands: list[_Cand], names: list[str]) -> dict[str, torch.Tensor]:
    return {n: torch.stack([c.named[n] for c in cands]) for n in names}


def _probe(base: nn.Module, cands: list[_Cand], names: list[str], loss_of: LossOf,
           x: torch.Tensor, y: torch.Tensor) -> str | None:
    """One no-grad vmapped forward on a real batch: None if it runs, draws no random numbers,
    modifies no buffer in place and gives one scalar loss per candidate; else the reason."""
    versions = {n: b._version for n, b in base.named_buffers()}
    try:
        with torch.no_grad():
            losses = vmap(loss_of, in_dims=(0, None, None), randomness="error")(
                _stack(cands, names), x, y)
    except Exception as exc:  # vmap's own errors are RuntimeError/ValueError; any means "no"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"the model does not run under vmap ({type(exc).__name__}: {first[:200]})"
    changed = [n for n, b in base.named_buffers() if b._version != versions[n]]
    if changed:
        return (f"the forward modifies buffer(s) {', '.join(changed[:3])} in place; one shared "
                "buffer cannot hold every candidate's state")
    if tuple(losses.shape) != (len(cands),):
        return f"the loss is not one scalar per candidate (shape {tuple(losses.shape)})"
    return None


def _evaluate_batched(base: nn.Module, cands: list[_Cand], names: list[str], loss_of: LossOf,
                      batches: list[tuple[torch.Tensor, torch.Tensor]]) -> list[float]:
    """`optim_core.training.trial_run.evaluate` for several candidates at once: the same
    sample-weighted mean, accumulated in the same order, in eval mode."""
    totals = [0.0] * len(cands)
    count = 0
    # functional_call runs base's modules: their flags are every candidate's
    with eval_mode(base), torch.no_grad():
        stacked = _stack(cands, names)
        for x, y in batches:
            values = vmap(loss_of, in_dims=(0, None, None))(stacked, x, y).tolist()
            totals = [tot + v * len(x) for tot, v in zip(totals, values, strict=True)]
            count += len(x)
    return [tot / count for tot in totals]


def run_group_batched(indices: list[int], candidates: list[TrialCandidate],
                      model_factory: ModelFactory, bundle: DataBundle, config: TrialsConfig,
                      device: torch.device, val_batches: list[Any], progress: PhasedProgress,
                      should_stop: StopFn | None, clipped: list[list[float]], epoch: int = 0,
                      phase: TrialPhase = "trial") -> tuple[dict[int, TrialResult] | None, str]:
    """Train the candidates ``indices`` together, as seed ``epoch`` of ``phase`` (what their
    progress events say). Returns ``(results by index, reason)``, or
    ``(None, reason)`` without having trained anything (nor counted progress) when the model
    cannot be batched, so the caller runs them sequentially."""
    cands: list[_Cand] = []
    for i in indices:
        built = build_candidate(candidates[i], model_factory, config, device)
        if not cands:  # the first model decides: every candidate comes from the same factory
            reason = structural_reason(built.model)
            if reason is not None:
                return None, reason
        cands.append(_Cand(i, candidates[i], built, _trainable(built.model),
                           DivergenceMonitor(beta=config.smooth_beta,
                                             threshold=config.divergence_factor,
                                             num_steps=config.steps),
                           clipped[i] if clipped else None))
    base = cands[0].built.model
    names = list(cands[0].named)
    shapes = {n: (p.shape, p.dtype) for n, p in cands[0].named.items()}
    for c in cands[1:]:
        if {n: (p.shape, p.dtype) for n, p in c.named.items()} != shapes:
            return None, ("the factory built models with different parameters; only identical "
                          "structures can share a forward")
    loss_of = _loss_of(base, bundle)

    x0, y0, _ = TrainStream(bundle.train, device, None, "the probe", epoch).next(0)
    reason = _probe(base, cands, names, loss_of, x0, y0)
    if reason is not None:
        return None, reason

    steps = config.steps
    val_on_device = [(x.to(device), y.to(device)) for x, y in val_batches]
    group_label = ", ".join(candidate_label(c.candidate) for c in cands)
    # the probe consumed a batch: a new stream starts again, as sequentially
    stream = TrainStream(bundle.train, device, should_stop, f"batched trials [{group_label}]",
                         epoch)
    active = list(cands)
    for t in range(steps):
        if not active:
            break
        x, y, tick = stream.next(t)
        lrs = [float(c.built.optimizer.param_groups[0]["lr"]) for c in active]
        for c in active:
            c.built.optimizer.zero_grad(set_to_none=True)
        losses = vmap(loss_of, in_dims=(0, None, None))(_stack(active, names), x, y)
        values = losses.detach().tolist()  # the one host sync per step (sequential: one per trial)
        finite = [k for k, v in enumerate(values) if math.isfinite(v)]
        if finite:
            # Index the non-finite losses out rather than weighting them by 0 (NaN·0 = NaN): the
            # summed loss, and so every other candidate's gradient, never sees them.
            kept = losses if len(finite) == len(active) else losses[finite]
            kept.sum().backward()
        for k in finite:  # per candidate: its own clipping norm, optimizer and schedule
            active[k].built.update(active[k].candidate.clip_norm)
        # (a non-finite candidate is not stepped: it stops here and its weights are never read)
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # .tolist() synced before the update; time all of it
        share = (time.perf_counter() - tick) / len(active)  # the step's cost, amortised
        still: list[_Cand] = []
        for c, lr, value in zip(active, lrs, values, strict=True):
            c.seconds += share
            c.lrs.append(lr)
            progress.done += 1
            if c.monitor.update(value):  # NaN/Inf, or the shared shift-invariant rule
                c.diverged_at = t
            if c.diverged_at is None and t < steps - 1:
                still.append(c)
        reporting = [c for c in active
                     if config.evaluates_after(t) or c.diverged_at is not None]
        evaluating = reporting if val_on_device else []
        healthy = [c for c in evaluating if c.diverged_at is None]
        val = (dict(zip((id(c) for c in healthy),
                        _evaluate_batched(base, healthy, names, loss_of, val_on_device),
                        strict=True)) if healthy else {})
        for c in evaluating:
            c.val_steps.append(t + 1)
            c.val_losses.append(val.get(id(c), math.nan))
        for c in active:
            if c not in still:
                # skipped steps of a diverged trial count as done, as in the sequential path
                progress.done += steps - len(c.monitor.raw)
        for c in reporting:
            progress.at(phase, candidate_label(c.candidate), c.candidate.optimizer.lr, epoch)
            progress.emit(c.lrs[-1], c.monitor.smoothed[-1])
        active = still

    return ({c.index: trial_result(c.candidate, c.built, c.monitor, c.lrs, c.val_steps, c.val_losses,
                              c.diverged_at, c.seconds, c.clipped_lrs, config) for c in cands},
            f"{len(cands)} candidates in one vmapped forward/backward per step")
