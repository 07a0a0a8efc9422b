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
Default LRs outside ``[MIN_LR, MAX_LR]`` are clipped into it (centre × factor can underflow
towards 0 as well as overshoot); candidates that clipping made identical are run once, and the
trial says which requested LRs were clipped (``clipped_lrs``).

Search: an optimizer whose best LR is at an edge of its grid gets up to ``extend_edges`` more LRs
past that edge, one grid ratio at a time; one whose every trial diverged is at its low edge (the
optimum may lie below) and is extended downwards the same way. With ``refine`` the LRs half a grid
step either side of its best (after the extensions) are tried as well. Both rank with the planned
grid, and ``result.edges`` says what was added, what stays at an edge and why the extension
stopped. A trial's LR on the grid is its schedule's peak (``TrialResult.peak_lr``), wherever it
stopped; distinct LRs make the grid, so candidates tied at one LR share a grid point.

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
longer first). Divergence is the range test's rule (`optim_core.numerics.divergence`, described there) with
``divergence_factor`` as its threshold; the trial stops there (its remaining steps would be
wasted).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from optim_core.bounds import MAX_LR, MIN_LR
from optim_core.errors import SpecError, TrainingError
from optim_core.numerics.finite import finite_or_none
from optim_core.numerics.suggest import UNUSABLE_FLAGS
from optim_core.specs.jobs import TrialCandidate, TrialsConfig, schedule_peak_lr
from optim_core.specs.optimizer import OptimizerSpec
from optim_core.specs.range_test import RangeTestConfig, TrialPhase
from optim_core.training.data import DataBundle, split_batch
from optim_core.training.trial_run import (
    ModelFactory,
    PhasedProgress,
    ProgressFn,
    StopFn,
    TrialResult,
    candidate_label,
    rewind,
    run_candidate,
)

__all__ = ["TrialResult", "TrialsResult", "default_candidates", "measure_center_lr",
           "run_trials_on"]


#: a measured centre LR with lower confidence than this is refused (`TrainingError`).
MIN_CENTER_CONFIDENCE = 0.05


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
    #: runs per candidate (``TrialsConfig.seeds``)
    seeds: int = 1
    #: per optimizer name: where its best LR sits on its LR grid and what was done about it
    #: (see `_edges`)
    edges: dict[str, Any] = field(default_factory=dict)
    #: which LR and optimizer won, by how much, how sure (see `_verdict`)
    verdict: dict[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> TrialResult:
        """The top of the ranking; a diverged trial when every one diverged (see ``winner``)."""
        return self.trials[self.ranking[0]]

    @property
    def winner(self) -> TrialResult | None:
        """The best trial, or None when nothing won (every trial diverged)."""
        i = _winner(self.trials, self.ranking)
        return None if i is None else self.trials[i]

    def to_dict(self) -> dict[str, Any]:
        return {
            "trials": [t.to_dict() for t in self.trials],
            "ranking": [self.trials[i].label for i in self.ranking],
            "ranking_indices": list(self.ranking),
            "ranked_by": self.ranked_by,
            "best": self.winner.label if self.winner is not None else None,
            "steps": self.steps,
            "center_lr": self.center_lr,
            "center_lr_source": self.center_lr_source,
            "range_tests": self.range_tests,
            "center_lr_confidence": self.center_lr_confidence,
            "center_lr_flags": self.center_lr_flags,
            "batched": self.batched,
            "batched_reason": self.batched_reason,
            "seeds": self.seeds,
            "edges": self.edges,
            "verdict": self.verdict,
        }


# -- candidates ---------------------------------------------------------------------------------


def _default_candidate(config: TrialsConfig, name: str, lr: float) -> TrialCandidate:
    """A candidate of ``default_optimizers`` at ``lr`` (grid or extension): the optimizer's
    defaults and the config's clipping."""
    return TrialCandidate(optimizer=OptimizerSpec(name=name, lr=lr), clip_norm=config.clip_norm,
                          label=f"{name} lr={lr:.3g}")


def _default_candidates(config: TrialsConfig, centers: dict[str, float],
                        ) -> list[tuple[TrialCandidate, list[float]]]:
    """`default_candidates` with, per candidate, the requested LRs that clipping mapped to it."""
    out: list[tuple[TrialCandidate, list[float]]] = []
    index: dict[tuple[str, float], int] = {}
    for name in config.default_optimizers:
        for factor in config.lr_factors:
            requested = centers[name] * factor
            lr = min(max(requested, MIN_LR), MAX_LR)
            # De-duplicate after the cap: centre 10 × {1, 3} would otherwise run lr=10 twice.
            key = (name, lr)
            if key not in index:
                index[key] = len(out)
                out.append((_default_candidate(config, name, lr), []))
            if lr != requested:
                out[index[key]][1].append(requested)
    return out


def default_candidates(config: TrialsConfig, centers: dict[str, float]) -> list[TrialCandidate]:
    """``config.default_optimizers`` (with OptimizerSpec's per-optimizer defaults: AdamW wd 0.01,
    SGD momentum 0.9 wd 1e-4 — W11) at ``centers[name] × lr_factors``, clipped to [MIN_LR, MAX_LR],
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

    rewind(bundle.train)
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


def _failed(t: TrialResult) -> bool:
    """Diverged on some seed, or without a finite score: ranked last, and it cannot win."""
    return t.any_diverged or not math.isfinite(t.mean_score())


def _rank(trials: list[TrialResult]) -> list[int]:
    def key(i: int) -> tuple[int, float]:
        t = trials[i]
        if _failed(t):
            return (1, -float(t.steps_run))  # diverged last; the longer-lived first
        return (0, t.mean_score())
    return sorted(range(len(trials)), key=key)  # stable: ties keep candidate order


def _winner(trials: list[TrialResult], ranking: list[int]) -> int | None:
    """The top of ``ranking``, or None when it failed: failed trials rank last, so then every
    one did and nothing won."""
    return ranking[0] if ranking and not _failed(trials[ranking[0]]) else None


def _run_all_batched(candidates: list[TrialCandidate], model_factory: ModelFactory,
                     bundle: DataBundle, config: TrialsConfig, device: torch.device,
                     val_batches: list[Any], progress: PhasedProgress, should_stop: StopFn | None,
                     clipped: list[list[float]], epoch: int = 0, phase: TrialPhase = "trial",
                     ) -> tuple[list[TrialResult], bool, str]:
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
                                          device, val_batches, progress, should_stop, clipped,
                                          epoch, phase)
            if done is None:
                model_reason = why
            else:
                any_batched = True
                notes.append(f"{cls}: {why}")
        elif len(group) == 1:
            notes.append(f"{cls}: one candidate, run on its own")
        if done is None:
            done = {}
            for i in group:
                progress.at(phase, candidate_label(candidates[i]), candidates[i].optimizer.lr, epoch)
                done[i] = run_candidate(candidates[i], model_factory, bundle, config, device,
                                   val_batches, progress, should_stop,
                                   clipped[i] if clipped else None, epoch)
        results.update(done)
    if model_reason is not None:
        # The model decides for every group (same factory), so one reason covers the run.
        notes = ([f"sequential: {model_reason}"] if not any_batched
                 else [*notes, f"the rest sequential: {model_reason}"])
    return [results[i] for i in range(len(candidates))], any_batched, "; ".join(notes)


# -- all trials -----------------------------------------------------------------------------------


def _seeded(model_factory: ModelFactory, k: int) -> ModelFactory:
    """The factory for seed ``k``: seed 0 is the factory itself; others need a factory that takes
    ``seed_offset`` (the worker's does: experiment seed + k)."""
    if k == 0:
        return model_factory
    try:
        params = inspect.signature(model_factory).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    if "seed_offset" not in params:
        raise SpecError("seeds > 1 needs a model factory that takes seed_offset (other initial "
                        "weights per seed)", field="config.seeds", value=k + 1, allowed="1")
    return lambda: model_factory(seed_offset=k)  # type: ignore[call-arg]


def _seed_run(k: int, t: TrialResult) -> dict[str, Any]:
    return {"seed": k, "score": finite_or_none(t.score()), "final_train_loss": finite_or_none(t.final_train_loss),
            "final_val_loss": finite_or_none(t.final_val_loss), "diverged": t.diverged,
            "steps_run": t.steps_run}


class _Runner:
    """Runs candidates over every seed (batched or not) and merges the seeds into one
    `TrialResult` per candidate: seed 0's curves, every seed's score."""

    def __init__(self, model_factory: ModelFactory, bundle: DataBundle, config: TrialsConfig,
                 device: torch.device, val_batches: list[Any], progress: PhasedProgress,
                 should_stop: StopFn | None) -> None:
        self.factory, self.bundle, self.config, self.device = (model_factory, bundle, config,
                                                               device)
        self.val_batches, self.progress, self.should_stop = val_batches, progress, should_stop
        self.batched, self.notes = False, ""

    def run(self, candidates: list[TrialCandidate], clipped: list[list[float]],
            phase: TrialPhase) -> list[TrialResult]:
        per_seed: list[list[TrialResult]] = []
        for k in range(self.config.seeds):
            factory = _seeded(self.factory, k)
            if self.config.batched:
                trials, batched, notes = _run_all_batched(
                    candidates, factory, self.bundle, self.config, self.device, self.val_batches,
                    self.progress, self.should_stop, clipped, epoch=k, phase=phase)
                self.batched = self.batched or batched
                self.notes = self.notes or notes
            else:
                trials = []
                for i, c in enumerate(candidates):
                    self.progress.at(phase, candidate_label(c), c.optimizer.lr, k)
                    trials.append(run_candidate(c, factory, self.bundle, self.config, self.device,
                                           self.val_batches, self.progress, self.should_stop,
                                           clipped[i] if clipped else None, epoch=k))
            per_seed.append(trials)
        merged = per_seed[0]
        for i, t in enumerate(merged):
            t.phase = phase
            t.seed_runs = [_seed_run(k, runs[i]) for k, runs in enumerate(per_seed)]
            t.diverged = t.any_diverged  # the merged trial speaks for every seed
        return merged


def _with_schedule(c: TrialCandidate, config: TrialsConfig, cycle_div: float | None
                   ) -> tuple[TrialCandidate, str]:
    """The candidate as it will run: its schedule spelled out (so the result records what ran)
    and its ``optimizer.lr`` that schedule's peak (a given schedule sets the LR, so its label,
    progress and verdict must say that LR, not the optimizer's unused one); and whether that
    schedule was "given" or the "default"."""
    if c.schedule is not None:
        peak = schedule_peak_lr(c.schedule, config.steps)
        return c.model_copy(update={"optimizer": c.optimizer.model_copy(update={"lr": peak})}
                            ), "given"
    sched = config.default_schedule(float(c.optimizer.lr), cycle_div)  # type: ignore[arg-type]
    return c.model_copy(update={"schedule": sched, "label": candidate_label(c)}), "default"


def _grid_of(trials: list[TrialResult], name: str) -> list[int]:
    """Indices of the trials of optimizer ``name``, by peak LR."""
    return sorted((i for i, t in enumerate(trials) if t.optimizer["name"] == name),
                  key=lambda i: trials[i].peak_lr)


def _lrs_of(trials: list[TrialResult], name: str) -> list[float]:
    """The distinct LRs of optimizer ``name``'s trials, ascending: its grid."""
    return sorted({trials[i].peak_lr for i in _grid_of(trials, name)})


def _best_in(trials: list[TrialResult], idx: list[int]) -> int | None:
    ranked = [i for i in _rank(trials) if i in idx]
    return _winner(trials, ranked)


def _edge_of(trials: list[TrialResult], name: str) -> tuple[int | None, str | None, float]:
    """(best index, "low"/"high"/None, the grid's step ratio at that edge) for one optimizer.
    The edge is read off LR values, so candidates tied at an LR give one answer whatever their
    order. Every trial diverged (no best) is the low edge: the optimum may lie below the grid
    (with one LR there is no step ratio: 1.0)."""
    best = _best_in(trials, _grid_of(trials, name))
    lrs = _lrs_of(trials, name)
    if len(lrs) < 2:
        return best, "low" if best is None else None, 1.0
    if best is None or trials[best].peak_lr == lrs[0]:
        return best, "low", lrs[1] / lrs[0]
    if trials[best].peak_lr == lrs[-1]:
        return best, "high", lrs[-1] / lrs[-2]
    return best, None, 1.0


def _past_edge(trials: list[TrialResult], name: str, side: str, ratio: float) -> float | None:
    """The next LR past ``name``'s ``side`` edge, one step ``ratio`` out (at most to MIN_LR /
    MAX_LR); None when there is none (no step ratio, or the edge is at that bound already)."""
    lrs = _lrs_of(trials, name)
    if ratio <= 1.0:
        return None
    if side == "low":
        return max(lrs[0] / ratio, MIN_LR) if lrs[0] > MIN_LR else None
    return min(lrs[-1] * ratio, MAX_LR) if lrs[-1] < MAX_LR else None


def _stop_reason(next_lr: float | None, side: str, ratio: float, config: TrialsConfig) -> str:
    """Why a grid ends at its ``side`` edge, said in its edge note; ``next_lr`` is
    `_past_edge`'s answer there (None: there is no LR past it)."""
    if ratio <= 1.0:
        return "one LR only: no grid step to extend by"
    if next_lr is None:
        bound = f"MAX_LR ({MAX_LR:g})" if side == "high" else f"MIN_LR ({MIN_LR:g})"
        return f"the grid could not be extended: {bound} caps the LR"
    if not config.extend_edges:
        return "extend_edges is 0"
    return f"the extension budget (extend_edges = {config.extend_edges}) is spent"


def _add_defaults(runner: _Runner, config: TrialsConfig, planned: list[tuple[str, float]],
                  clipped: list[list[float]], cycle_div: Callable[[TrialCandidate], float | None],
                  phase: TrialPhase) -> list[TrialResult]:
    """Run default candidates the search adds, ``(optimizer name, lr)`` each, under ``phase``:
    the optimizer's defaults and the config's schedule, with the progress total grown by their
    steps. Nothing they add was clipped."""
    resolved = []
    for name, lr in planned:
        c = _default_candidate(config, name, lr)
        resolved.append(_with_schedule(c, config, cycle_div(c)))
    runner.progress.total += len(planned) * config.steps * config.seeds
    new = runner.run([c for c, _ in resolved], [[] for _ in planned] if clipped else [], phase)
    for t, (_, how) in zip(new, resolved, strict=True):
        t.schedule_source = how
    return new


def _refinements(trials: list[TrialResult], names: list[str]) -> list[tuple[str, float]]:
    """Half a grid step either side of each optimizer's best: where the loss is sharp in the
    LR, one step of a ×3 grid costs more than the trials can tell apart, and the two geometric
    means with the best's neighbours halve it. An optimizer whose every trial diverged is not
    refined; one with a single LR has no neighbour to refine towards."""
    planned: list[tuple[str, float]] = []
    for name in names:
        best = _best_in(trials, _grid_of(trials, name))
        if best is None:
            continue
        lrs = _lrs_of(trials, name)
        at = lrs.index(trials[best].peak_lr)
        planned += [(name, math.sqrt(lrs[at] * lrs[j])) for j in (at - 1, at + 1)
                    if 0 <= j < len(lrs)]
    return planned


def _extend_edges(runner: _Runner, config: TrialsConfig, names: list[str],
                  trials: list[TrialResult], clipped: list[list[float]],
                  cycle_div: Callable[[TrialCandidate], float | None],
                  ) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Past the edge: while an optimizer's best LR is its grid's highest (lowest, or all its
    trials diverged), try one more step of the grid's own ratio beyond it, at most
    ``extend_edges`` per optimizer; ``trials`` grows in place. Returns the LRs added and, per
    optimizer left at an edge, why the extension stopped there."""
    extended: dict[str, list[float]] = {}
    stopped: dict[str, str] = {}
    for name in names:
        while True:
            _, side, ratio = _edge_of(trials, name)
            if side is None:
                break
            lr = _past_edge(trials, name, side, ratio)
            if lr is None or len(extended.get(name, [])) == config.extend_edges:
                stopped[name] = _stop_reason(lr, side, ratio, config)
                break
            trials += _add_defaults(runner, config, [(name, lr)], clipped, cycle_div,
                                    "extension")
            extended.setdefault(name, []).append(lr)
    return extended, stopped


def _edge_note(trials: list[TrialResult], name: str, best: int | None, side: str | None,
               lrs: list[float], why: str) -> str:
    """In words: where ``name``'s best LR (``_edge_of``: ``best``, ``side``) is on its grid
    ``lrs``, and, at an edge, that the optimum may lie beyond it and why the grid stops there
    (``why``)."""
    grid = f"[{lrs[0]:.3g}, {lrs[-1]:.3g}]"
    because = f" ({why})" if why else ""
    if best is None:
        return (f"every {name} trial diverged, down to the lowest LR tried: the optimum may lie "
                f"below {lrs[0]:.3g}{because}")
    if side is None:
        return (f"one LR only for {name}: no grid to read an edge from" if len(lrs) < 2 else
                f"{name}'s best LR {trials[best].peak_lr:.3g} is inside the grid {grid}")
    return (f"{name}'s best LR {trials[best].peak_lr:.3g} is at the {side} edge of the grid "
            f"{grid}: the optimum may lie {'above' if side == 'high' else 'below'} it{because}")


def _edges(trials: list[TrialResult], names: list[str], extended: dict[str, list[float]],
           stopped: dict[str, str], refined: dict[str, list[float]]) -> dict[str, Any]:
    """Per optimizer: its grid, where its best LR sits on it, what was added, and a note.
    ``stopped``: why each optimizer left at an edge was not extended further."""
    out: dict[str, Any] = {}
    for name in names:
        if not _grid_of(trials, name):
            continue
        best, side, _ = _edge_of(trials, name)
        lrs = _lrs_of(trials, name)
        note = _edge_note(trials, name, best, side, lrs, stopped.get(name, ""))
        out[name] = {"best_lr": trials[best].peak_lr if best is not None else None,
                     "grid_lrs": lrs, "at_edge": side, "extended_lrs": list(extended.get(name, [])),
                     "refined_lrs": list(refined.get(name, [])), "note": note}
    return out


def _verdict(trials: list[TrialResult], ranking: list[int], seeds: int,
             edges: dict[str, Any]) -> dict[str, Any]:
    """Which LR and optimizer won, by how much (relative score gap to the runner-up and to the
    best other optimizer) and how sure: with several seeds, the gap over the larger score spread
    of the two (>= 2: high, >= 1: medium, else low); with one seed the noise is not measured.
    ``next_up`` is the winner's optimizer one LR up; ``near_stability_edge`` says that step
    diverged or scored at least twice the winner's (scores are losses, so positive)."""
    won = _winner(trials, ranking)
    if won is None:
        below = " ".join(e["note"][0].upper() + e["note"][1:] + "."
                         for e in edges.values() if e["best_lr"] is None)
        return {"label": None, "optimizer": None, "lr": None, "confidence": "none",
                "sentence": " ".join(["Every candidate diverged: nothing won; lower the LRs.",
                                      below]).strip()}
    best = trials[won]
    name = best.optimizer["name"]
    score = best.mean_score()

    def gap(j: int | None) -> dict[str, Any] | None:
        if j is None:
            return None
        other = trials[j]
        if _failed(other):
            return {"label": other.label, "relative": None, "absolute": None, "sigmas": None,
                    "diverged": True}
        absolute = other.mean_score() - score
        spread = [v for v in (best.score_std(), other.score_std()) if v is not None]
        sigmas = absolute / max(spread) if spread and max(spread) > 0 else None
        return {"label": other.label, "absolute": absolute,
                "relative": absolute / abs(score) if score else None, "sigmas": sigmas,
                "diverged": False}

    runner = gap(ranking[1] if len(ranking) > 1 else None)
    other_opt = next((j for j in ranking[1:] if trials[j].optimizer["name"] != name), None)
    vs_opt = gap(other_opt)
    # The winner's optimizer, one LR up: where that step diverges or doubles the score, the winner
    # is just below the edge of stability. That edge moves with the initial weights and the batch
    # order, and clipping moves it up: in bench/lr_quality.py, trials clipped at 1.0 picked LRs
    # at which 4 of 48 unclipped judged runs diverged; trained unclipped, as judged, none did.
    next_up = gap(next((j for j in _grid_of(trials, name)
                        if trials[j].peak_lr > best.peak_lr), None))
    if runner is None:
        confidence = "unmeasured"
    elif runner["diverged"]:
        confidence = "high"
    elif seeds < 2 or runner["sigmas"] is None:
        confidence = "unmeasured"
    else:
        confidence = ("high" if runner["sigmas"] >= 2 else "medium" if runner["sigmas"] >= 1
                      else "low")
    parts = [f"{best.label} won (score {score:.4g}, {name} at peak lr {best.peak_lr:.3g})"]
    if runner is not None and not runner["diverged"] and runner["relative"] is not None:
        parts.append(f"{100 * runner['relative']:.1f} % better than the runner-up "
                     f"{runner['label']}")
    if vs_opt is not None and vs_opt["label"] != (runner or {}).get("label"):
        parts.append(("the best other optimizer, " + vs_opt["label"] + ", diverged")
                     if vs_opt["diverged"] else
                     f"{100 * vs_opt['relative']:.1f} % better than the best other optimizer, "
                     f"{vs_opt['label']}" if vs_opt["relative"] is not None else "")
    sure = {"high": "the gap is at least twice the spread over seeds",
            "medium": "the gap is one to two times the spread over seeds",
            "low": "the gap is within the spread over seeds: a tie",
            "unmeasured": ("one seed: the noise was not measured (seeds >= 2 measures it)"
                           if seeds < 2 else "no spread to compare with")}[confidence]
    edge = edges.get(name, {})
    sentence = "; ".join(p for p in parts if p) + f"; confidence {confidence}: {sure}."
    if edge.get("at_edge"):
        sentence += " " + edge["note"][0].upper() + edge["note"][1:] + "."
    near_edge = next_up is not None and (next_up["diverged"] or (next_up["relative"] or 0) >= 1)
    if near_edge:
        assert next_up is not None
        what = ("diverged" if next_up["diverged"] else
                f"scored {1 + next_up['relative']:.2g}x the winner's")
        check = ("confirm it with seeds >= 2 before the full run" if seeds < 2 else
                 "a longer run than the trials' can still break at it")
        sentence += (f" The next higher LR tried, {next_up['label']}, {what}: the winner sits near "
                     "the edge of stability, which moves with the initial weights and the batch "
                     f"order; {check}.")
        if best.clip_norm is not None:
            sentence += (f" These trials clipped the gradient norm at {best.clip_norm:g}; a full "
                         "run that does not clip breaks at a lower LR (clip_norm: null, on the "
                         "config or on a candidate, trains without it).")
    return {"label": best.label, "optimizer": name, "lr": best.peak_lr, "score": score,
            "runner_up": runner, "best_other_optimizer": vs_opt, "next_up": next_up,
            "near_stability_edge": near_edge, "confidence": confidence,
            "at_edge": bool(edge.get("at_edge")), "sentence": sentence}


def run_trials_on(model_factory: ModelFactory, bundle: DataBundle, config: TrialsConfig, *,
                  device: str | torch.device = "cpu", progress: ProgressFn | None = None,
                  should_stop: StopFn | None = None) -> TrialsResult:
    """Run the trials of ``config`` on models from ``model_factory`` (called once per candidate
    and seed, and once per range test; it must return identically initialised models — seed
    inside it; with ``seeds > 1`` it must take ``seed_offset``) and the data of ``bundle``."""
    dev = torch.device(device)
    names = list(config.default_optimizers)
    n_trials = config.planned_candidates()
    # the planned grid and the range tests; extensions and refinements grow it as they are added
    total = (n_trials * config.steps * config.seeds
             + (len(names) * config.range_test_steps if config.measures_center else 0))
    tracker = PhasedProgress(progress, total)

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
                tracker.at("range_test", name)
                centers[name], range_tests[name] = measure_center_lr(
                    model_factory, bundle, name, steps=config.range_test_steps, device=dev,
                    progress=tracker.offset(base), should_stop=should_stop)
                tracker.done = base + config.range_test_steps
        pairs = _default_candidates(config, centers)
        candidates, clipped = [c for c, _ in pairs], [lrs for _, lrs in pairs]
        # De-duplication can leave fewer trials than planned: keep step/total honest.
        tracker.total -= (n_trials - len(candidates)) * config.steps * config.seeds

    def cycle_div(c: TrialCandidate) -> float | None:
        rt = range_tests.get(c.optimizer.name)
        s = rt["suggestions"] if rt else {}
        hi, lo = s.get("cycle_max_lr"), s.get("cycle_min_lr")
        return hi / lo if hi and lo else None

    resolved = [_with_schedule(c, config, cycle_div(c)) for c in candidates]
    candidates = [c for c, _ in resolved]

    val_batches: list[Any] = []
    if bundle.val is not None:
        rewind(bundle.val)
        for i, batch in enumerate(bundle.val):
            if i == config.val_batches:
                break
            val_batches.append(split_batch(batch, field="data"))

    runner = _Runner(model_factory, bundle, config, dev, val_batches, tracker, should_stop)
    trials = runner.run(candidates, clipped, "trial")
    for t, (_, how) in zip(trials, resolved, strict=True):
        t.schedule_source = how

    can_extend = config.candidates is None
    edge_names = names if can_extend else list(
        dict.fromkeys(c.optimizer.name for c in candidates))
    if can_extend:
        extended, stopped = _extend_edges(runner, config, names, trials, clipped, cycle_div)
    else:
        extended, stopped = {}, dict.fromkeys(edge_names, "explicit candidates are not extended")

    refined: dict[str, list[float]] = {}
    if can_extend and config.refine:
        planned = _refinements(trials, names)
        if planned:
            trials += _add_defaults(runner, config, planned, clipped, cycle_div, "refine")
        for name, lr in planned:
            refined.setdefault(name, []).append(lr)

    if config.batched:
        batched, batched_reason = runner.batched, runner.notes
    else:
        batched, batched_reason = False, "not requested (TrialsConfig.batched is false)"
    ranking = _rank(trials)
    edges = _edges(trials, edge_names, extended, stopped, refined)
    measured = source == "range_test"
    return TrialsResult(trials=trials, ranking=ranking,
                        ranked_by="final_val_loss" if val_batches else "smoothed_final_train_loss",
                        steps=config.steps, center_lr=centers, center_lr_source=source,
                        range_tests=range_tests,
                        center_lr_confidence=({n: r["suggestions"]["confidence"]
                                               for n, r in range_tests.items()}
                                              if measured else None),
                        center_lr_flags=({n: list(r["suggestions"]["flags"])
                                          for n, r in range_tests.items()}
                                         if measured else None),
                        batched=batched, batched_reason=batched_reason, seeds=config.seeds,
                        edges=edges, verdict=_verdict(trials, ranking, config.seeds, edges))
