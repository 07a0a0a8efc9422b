"""LR-suggestion quality: regret of each rule's pick against the best of a fixed-LR grid.

    python -m bench.lr_quality --jobs 2   # the full run: 8 problems x {AdamW, SGD+momentum} x 3 seeds
    python -m bench.lr_quality --quick    # a smoke run (one problem, one seed, a coarse grid)
    python -m bench.lr_quality --summarise bench/results/lr_quality.json   # re-read, no training

For every case (problem, optimizer, seed) one LR range test is run (``lr_range_test``, default
config: 1e-7 -> 10 in 100 steps), and every rule reads its pick off that same curve:
``recommended`` (ours), ``steepest`` (torch-lr-finder), ``valley`` (fastai's default),
``minimum_div10`` (fastai's minimum / 10) and ``lightning`` (Lightning 2.5.3+). ``trials`` is
what a measure job adds: the service's short trials (``run_trials_on``: ×⅓/×1/×3 around
``recommended``, extended past an edge winner) on *other* initial weights, under the judged
run's recipe (same optimizer, schedule and steps, no clipping: ``clip_norm=None``), and their
winner's LR.
``trials_followed`` is the same job run as its verdict asks: where the one-seed verdict warns
that the winner sits near the edge of stability, the trials are run again with ``seeds=2`` (the
trials' initial weights and one more, ranked by their mean score, so a candidate that diverges on
either loses), and that winner is taken; elsewhere it is the ``trials`` pick. ``trials_fine`` runs the
trials over the same span at half the step (×√3: five candidates, ``FINE_FACTORS``), to see how
much of the trials' regret is their grid's resolution; ``trials_seeds3`` runs every case's trials
with ``seeds=3`` (ranked by the mean over three initial weights), to see how much of it is the
difference between the trials' initial weights and the judged ones. ``trials_refined`` is the
default trials with ``refine=True`` (half a grid step either side of the winner, at most two more
candidates), and ``trials_refined_seeds3`` the same with ``seeds=3``.

The bound rows are searches no service could afford, to see what is left for any search that
measures on other initial weights than the judged run's, as a service that advises before the
user's run must: ``grid_other_init`` trains the whole grid below on the trials' initial weights
and takes its best LR; ``grid_seeds3`` takes the best of the grid's mean over three such inits;
``fine_other_init`` and ``fine_seeds3`` then search a quarter of the grid's step around that
best, out to its grid neighbours (``bound_picks``). Each is judged on the case's own run like a
rule.

To judge, a fresh copy of the model is trained for ``--steps`` steps at each pick and at every point
of a fixed log grid (``--grid-per-decade`` points per decade over [1e-5, 10]: 19 by default) — and
the final mean training loss over all batches is recorded. Each LR is the peak of the trials'
default schedule (5 % warmup, cosine to 0.1 x peak; ``--schedule constant`` holds it fixed
instead): that is how a pick is used, and the final loss of a constant high LR is mostly the phase
of its oscillation at the last step, which would make every regret noise.

    regret(rule) = final loss at the rule's LR / lowest final loss over the grid

1.0 is as good as the best grid LR (below 1: better than every grid point). A run whose loss
becomes NaN/Inf is *diverged* (regret inf). Targets (issue 11): median <= 1.03, worst <= 1.2, >= 90 %
of cases within 1.1x, nothing diverged. Results are reported for all cases and separately for the
problems a rule may be fitted on (``FIT``) and those held out (``HELD_OUT``); see
``bench/lr_quality_problems.py``. Writes ``bench/results/lr_quality.json`` and prints markdown.
One thread per case (small models: threads only add noise on a shared CPU); ``--jobs`` judges
that many cases at once in other processes.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import json
import math
import multiprocessing
import pathlib
import platform
import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch

from bench.lr_quality_problems import FIT, HELD_OUT, PROBLEMS
from bench.problems import Problem, full_loss, run_range_test, train_fixed_lr
from optim_core.numerics.suggest import lightning
from optim_core.specs.experiment import DataInfo
from optim_core.specs.jobs import TrialsConfig
from optim_core.training.data import DataBundle
from optim_core.training.trials import run_trials_on

OUT = pathlib.Path(__file__).resolve().parent / "results" / "lr_quality.json"
RULES = ("recommended", "steepest", "valley", "minimum_div10", "lightning", "trials",
         "trials_followed", "trials_fine", "trials_seeds3", "trials_refined",
         "trials_refined_seeds3", "grid_other_init", "grid_seeds3", "fine_other_init",
         "fine_seeds3")
# The rows that train trials (only with the trials' own schedule, warmup-cosine).
TRIALS_ROWS = tuple(r for r in RULES if r.startswith("trials"))
# The rows that are bounds, not rules: searches that train the judged steps on other initial
# weights than the judged run's, over every point of the grid (grid_*) or, around that search's
# best, at a quarter of the grid's step (fine_*), on one other init or ranked by the mean of three.
BOUND_ROWS = ("grid_other_init", "grid_seeds3", "fine_other_init", "fine_seeds3")
# how many other initial weights the *_seeds3 bounds average (the trials' seeds=3 uses as many)
BOUND_SEEDS = 3
# the fine bounds' points per grid step, either side of the best grid point out to its neighbours
FINE_PER_STEP = 4
# trials_fine's grid: the default's span (×⅓ … ×3) at half its step (×√3 instead of ×3), the
# resolution of the judged grid (three points a decade, ×2.15)
FINE_FACTORS = [3.0 ** (k / 2) for k in range(-2, 3)]
# The trials rows that change one thing of the job for every case (``trials_pick`` keywords).
TRIALS_VARIANTS: dict[str, dict[str, Any]] = {
    "trials_fine": {"factors": FINE_FACTORS}, "trials_seeds3": {"seeds": 3},
    "trials_refined": {"refine": True}, "trials_refined_seeds3": {"refine": True, "seeds": 3}}
# The trials pick trains other initial weights than the judged run (init offset k): a trial on the
# judged init would be the judge's own training, and picking its best would be picking on the test.
TRIALS_INIT_OFFSET = 1000
TARGETS = {"median": 1.03, "worst": 1.2, "within_1.1": 0.9}


def grid(per_decade: int, lo_exp: int = -5, hi_exp: int = 1) -> list[float]:
    n = per_decade * (hi_exp - lo_exp) + 1
    return [10.0 ** (lo_exp + i / per_decade) for i in range(n)]


def trials_pick(problem: Problem, center: float, steps: int, seeds: int = 1,
                factors: list[float] | None = None, refine: bool = False
                ) -> tuple[float | None, dict]:
    """What a measure job adds to the range test: the service's short trials
    (``run_trials_on``, default ×⅓/×1/×3 around ``center``, extended past an edge winner) on
    other initial weights (one per seed), ranked by the full-data loss; the winner's peak LR."""
    make = problem.make_model_init
    if make is None or not center:
        return None, {}
    # The judged run does not clip, so neither do the trials: a clipped trial survives LRs at
    # which the unclipped run diverges, and its winner would be picked under another recipe.
    config = TrialsConfig(default_optimizers=[problem.optimizer_name], center_lr=center,
                          steps=steps, eval_every=steps, val_batches=len(problem.batches),
                          seeds=seeds, clip_norm=None, refine=refine,
                          **({"lr_factors": factors} if factors else {}))
    # Train and validation are the problem's own batches: the score is the judge's measure.
    bundle = DataBundle(train=problem.batches, val=problem.batches, loss_fn=problem.loss_fn,
                        info=DataInfo(task="regression", input_kind="features", n_outputs=1))

    def factory(seed_offset: int = 0) -> torch.nn.Module:
        return make(TRIALS_INIT_OFFSET + seed_offset)

    result = run_trials_on(factory, bundle, config)
    winner = result.winner
    detail = {"seeds": result.seeds, "lrs": [t.peak_lr for t in result.trials],
              "scores": [_fin(t.mean_score()) for t in result.trials],
              # the spread of each candidate's score over the seeds (None with one seed)
              "spreads": [t.score_std() for t in result.trials],
              "at_edge": bool(result.verdict.get("at_edge")),
              "near_stability_edge": bool(result.verdict.get("near_stability_edge"))}
    # nothing won (every candidate diverged): no pick (the rule's row then reads diverged)
    return (None if winner is None else winner.peak_lr), detail


def _argmin(losses: dict[float, float]) -> float | None:
    finite = {lr: v for lr, v in losses.items() if math.isfinite(v)}
    return min(finite, key=finite.__getitem__) if finite else None


def _fine_around(lrs: list[float], best: float) -> list[float]:
    """``best`` and FINE_PER_STEP - 1 points a grid step either side of it, out to (and with)
    its grid neighbours: the search at a quarter of the grid's step where the optimum is."""
    i = lrs.index(best)
    ratio = lrs[1] / lrs[0]
    inner = [best * ratio ** (j / FINE_PER_STEP) for j in range(1 - FINE_PER_STEP, FINE_PER_STEP)]
    return ([lrs[i - 1]] if i > 0 else []) + inner + ([lrs[i + 1]] if i + 1 < len(lrs) else [])


def bound_picks(problem: Problem, lrs: list[float], steps: int, schedule: str
                ) -> tuple[dict[str, float | None], dict[str, dict[str, Any]]]:
    """The bound rows' picks and what they trained: the judged steps and schedule on the
    trials' initial weights (init offsets TRIALS_INIT_OFFSET + k, k < BOUND_SEEDS), never the
    judged run's.

    ``grid_other_init``: the best of the whole grid on one other init. ``grid_seeds3``: the best
    of the grid's mean over BOUND_SEEDS other inits. ``fine_*``: the same, then the best of the
    points at a quarter of the grid's step around that best (``_fine_around``): what a search
    finer than the grid, at the optimum of the other weights, could reach."""
    init = problem.make_model_init
    assert init is not None
    trained: dict[tuple[int, float], float] = {}

    def loss(k: int, lr: float) -> float:
        if (k, lr) not in trained:
            other = dataclasses.replace(problem, make_model=lambda: init(TRIALS_INIT_OFFSET + k))
            trained[k, lr] = train_fixed_lr(other, lr, steps, schedule)
        return trained[k, lr]

    def mean(points: list[float]) -> dict[float, float]:
        return {lr: statistics.fmean(loss(k, lr) for k in range(BOUND_SEEDS)) for lr in points}

    one = {lr: loss(0, lr) for lr in lrs}
    three = mean(lrs)
    picks = {"grid_other_init": _argmin(one), "grid_seeds3": _argmin(three)}
    fine_one = {lr: loss(0, lr) for lr in _fine_around(lrs, picks["grid_other_init"])
                } if picks["grid_other_init"] else {}
    fine_three = mean(_fine_around(lrs, picks["grid_seeds3"])) if picks["grid_seeds3"] else {}
    picks |= {"fine_other_init": _argmin(fine_one), "fine_seeds3": _argmin(fine_three)}

    def listed(losses: dict[float, float]) -> list[dict[str, Any]]:
        return [{"lr": lr, "final_loss": _fin(v)} for lr, v in losses.items()]

    offsets = [TRIALS_INIT_OFFSET + k for k in range(BOUND_SEEDS)]
    return picks, {"grid_other_init": {"init_offset": TRIALS_INIT_OFFSET, "grid": listed(one)},
                   "grid_seeds3": {"init_offsets": offsets, "grid": listed(three)},
                   "fine_other_init": {"init_offset": TRIALS_INIT_OFFSET, "grid": listed(fine_one)},
                   "fine_seeds3": {"init_offsets": offsets, "grid": listed(fine_three)}}


def judge(problem: Problem, lrs: list[float], steps: int, schedule: str) -> dict[str, Any]:
    """One case: the range test, the grid, every rule's pick, and its regret."""
    cache: dict[float, float] = {}

    def final(lr: float) -> float:
        if lr not in cache:
            cache[lr] = train_fixed_lr(problem, lr, steps, schedule)
        return cache[lr]

    rt = run_range_test(problem)
    s = dict(rt["suggestions"])
    curve = rt["curve"] if "curve" in rt else {"lrs": rt["lrs"], "losses": rt["losses"],
                                                "raw_losses": rt["raw_losses"]}
    s["lightning"] = lightning(curve["lrs"], curve["losses"])
    details: dict[str, dict[str, Any]] = {}
    if schedule == "warmup_cosine":  # the trials' own schedule: judged on constant LRs, unfair
        s["trials"], details["trials"] = trials_pick(problem, s["recommended"], steps)
        # As the verdict asks: near the edge of stability, the seeds before the full run.
        warned = bool(details["trials"].get("near_stability_edge"))
        s["trials_followed"], followed = (
            trials_pick(problem, s["recommended"], steps, seeds=2) if warned
            else (s["trials"], details["trials"]))
        details["trials_followed"] = followed | {"reran": warned} if followed else {}
        for name, change in TRIALS_VARIANTS.items():
            s[name], details[name] = trials_pick(problem, s["recommended"], steps, **change)
    if problem.make_model_init is not None:
        picks, bounds = bound_picks(problem, lrs, steps, schedule)
        s |= picks
        details |= bounds
    grid_losses = {lr: final(lr) for lr in lrs}
    best_lr = min(grid_losses, key=grid_losses.__getitem__)
    best = grid_losses[best_lr]
    rules: dict[str, Any] = {}
    for rule in (r for r in RULES if (r not in TRIALS_ROWS or schedule == "warmup_cosine")
                 and (r not in BOUND_ROWS or r in s)):
        lr = s.get(rule)
        loss = final(lr) if lr else math.inf
        rules[rule] = {"lr": lr, "final_loss": _fin(loss),
                       "regret": _fin(loss / best) if math.isfinite(loss) else None,
                       "diverged": not math.isfinite(loss),
                       "decades_from_best": (math.log10(lr / best_lr) if lr else None)}
    return {"problem": problem.name.split("/")[0], "optimizer": problem.optimizer_name,
            "initial_loss": full_loss(problem, problem.make_model()),
            "best_grid_lr": best_lr, "best_grid_loss": best,
            "grid_at_edge": best_lr in (lrs[0], lrs[-1]),
            "grid": [{"lr": lr, "final_loss": _fin(v)} for lr, v in grid_losses.items()],
            "range_test": {"stop_reason": rt["stop_reason"], "steps_run": rt["steps_run"],
                           "confidence": s["confidence"], "flags": s["flags"],
                           "reason": s["reason"], "lr_at_min": s["lr_at_min"],
                           "curve": curve},
            **{name: details.get(name, {}) for name in (*TRIALS_ROWS, *BOUND_ROWS)},
            "rules": rules}


def _judge_case(item: tuple[str, str, int, list[float], int, str]) -> dict[str, Any]:
    name, opt, seed, lrs, steps, schedule = item
    return judge(PROBLEMS[name](seed, opt), lrs, steps, schedule) | {"seed": seed}


def rules_of(cases: list[dict[str, Any]]) -> list[str]:
    """The rules these cases were scored for (a run from before the trials pick has no such
    row)."""
    return [r for r in RULES if cases and all(r in c["rules"] for c in cases)]


def rule_regret(case: dict[str, Any], rule: str) -> float:
    """One rule's regret on one case; a diverged (or unscored) pick is an infinite regret."""
    r = case["rules"][rule]
    return math.inf if r["diverged"] or r["regret"] is None else r["regret"]


def scores(regrets: Sequence[float]) -> dict[str, Any]:
    """Median, worst, share within 1.1x, divergences (infinite regrets) and whether the targets
    are met. An infinite median or worst is stored as None (JSON has no infinity)."""
    if not regrets:
        return {"cases": 0, "median": None, "worst": None, "within_1.1": None, "diverged": 0,
                "meets_targets": False}
    median, worst = statistics.median(regrets), max(regrets)
    within = sum(r <= 1.1 for r in regrets) / len(regrets)
    diverged = sum(not math.isfinite(r) for r in regrets)
    return {"cases": len(regrets), "median": _fin(median), "worst": _fin(worst),
            "within_1.1": within, "diverged": diverged,
            "meets_targets": (median <= TARGETS["median"] and worst <= TARGETS["worst"]
                              and within >= TARGETS["within_1.1"] and diverged == 0)}


def summarise(cases: list[dict[str, Any]]) -> dict[str, Any]:
    return {rule: scores([rule_regret(c, rule) for c in cases]) for rule in rules_of(cases)}


def by_setting(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Each rule scored once per setting (problem, optimizer) over its seeds: the mean final loss
    at the rule's picks (one per seed) / the lowest mean final loss of one grid LR over the same
    seeds. The expected regret of following the rule, against the one fixed LR that is best in
    expectation: no single judged run's luck sits in the denominator. A diverged pick or grid
    point makes its mean infinite."""
    settings: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for c in cases:
        settings.setdefault((c["problem"], c["optimizer"]), []).append(c)

    def loss(v: float | None) -> float:
        return math.inf if v is None else v

    regrets: dict[str, list[float]] = {rule: [] for rule in rules_of(cases)}
    for group in settings.values():
        grid = [statistics.fmean(loss(c["grid"][i]["final_loss"]) for c in group)
                for i in range(len(group[0]["grid"]))]
        best = min(grid)
        for rule, out in regrets.items():
            mean = statistics.fmean(loss(c["rules"][rule]["final_loss"]) for c in group)
            out.append(mean / best)
    return {rule: scores(v) for rule, v in regrets.items()}


def headroom(cases: list[dict[str, Any]], grid_lrs: list[float]) -> dict[str, Any]:
    """How much any rule that reads the sweep's minimum could achieve on these cases.

    ``sharp``: the share of cases where a single grid point is within 1.1x of the best, so that
    the 1.1x target asks for the LR within half a grid step of the best grid LR.
    ``offset_decades``: log10(the sweep's minimum / the best grid LR), over all cases and the
    widest spread over seeds of one problem and optimizer. ``oracle_backoff``: the fixed back-off
    (decades below the minimum) chosen *with hindsight* on these very cases to land the most picks
    within half a grid step of the best grid LR, and that share: an upper bound for every
    "minimum / constant" rule, ours included."""
    step = math.log10(grid_lrs[1] / grid_lrs[0]) if len(grid_lrs) > 1 else 1.0
    sharp, offsets, by_setting = 0, [], {}
    for c in cases:
        best = c["best_grid_loss"]
        near = [g for g in c["grid"] if g["final_loss"] is not None and g["final_loss"] <= 1.1 * best]
        sharp += len(near) == 1
        lr_min = c["range_test"]["lr_at_min"]
        if lr_min:
            off = math.log10(lr_min / c["best_grid_lr"])
            offsets.append(off)
            by_setting.setdefault((c["problem"], c["optimizer"]), []).append(off)
    if not offsets:
        return {"cases": len(cases), "sharp": sharp / max(len(cases), 1)}
    candidates = [k / 100 for k in range(0, 301)]
    # ties go to the smallest back-off: of equally good picks, the one nearest the minimum
    hits, neg_k = max((sum(abs(o - k) <= step / 2 + 1e-9 for o in offsets), -k)
                      for k in candidates)
    k_best = -neg_k
    return {"cases": len(cases), "grid_step_decades": step, "sharp": sharp / len(cases),
            "offset_decades": {"median": statistics.median(offsets), "min": min(offsets),
                               "max": max(offsets), "stdev": statistics.pstdev(offsets),
                               "widest_over_seeds": max(max(v) - min(v)
                                                        for v in by_setting.values())},
            "oracle_backoff": {"decades": k_best, "within_half_step": hits / len(offsets)}}


def by_confidence(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``recommended``'s regret grouped by the range test's own ``confidence``: whether a reader
    may take a high confidence for a pick near the best LR (it measures how readable the curve
    was, and this says how far that carries)."""
    groups: dict[float, list[float]] = {}
    for c in cases:
        groups.setdefault(c["range_test"]["confidence"], []).append(
            rule_regret(c, "recommended"))
    return [{"confidence": k} | scores(v) for k, v in sorted(groups.items(), reverse=True)]


def confidence_text(rows: list[dict[str, Any]]) -> str:
    def num(v: float | None) -> str:
        return "inf" if v is None else f"{v:.3f}"

    lines = ["| range test confidence | cases | recommended: median regret | worst | within 1.1x |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['confidence']:g} | {r['cases']} | {num(r['median'])} | {num(r['worst'])} | "
              f"{100 * r['within_1.1']:.0f} % |" for r in rows]
    return "\n".join(lines)


def trials_warnings(cases: list[dict[str, Any]]) -> dict[str, int] | None:
    """How the trials verdict's near_stability_edge warning matched the winners that went badly
    on the judged run (diverged, or regret > 2): a warning is only useful if it fires there."""
    if not cases or not all("near_stability_edge" in (c.get("trials") or {}) for c in cases):
        return None

    def bad(c: dict[str, Any], rule: str) -> bool:
        return c["rules"][rule]["diverged"] or (c["rules"][rule]["regret"] or 0) > 2

    warned = [c["trials"]["near_stability_edge"] for c in cases]
    worse = [bad(c, "trials") for c in cases]
    out = {"bad": sum(worse), "warned": sum(warned),
           "bad_warned": sum(b and w for b, w in zip(worse, warned, strict=True))}
    if all("trials_followed" in c["rules"] for c in cases):
        # the warned cases once the seeds were run, as the warning asks
        out["bad_after_seeds"] = sum(bad(c, "trials_followed") for c in cases)
    return out


def headroom_text(h: dict[str, Any]) -> str:
    if "offset_decades" not in h:
        return f"headroom: {h['cases']} cases, none with a sweep minimum"
    o, b = h["offset_decades"], h["oracle_backoff"]
    return (f"headroom ({h['cases']} cases): {100 * h['sharp']:.0f} % have one grid point within "
            f"1.1x of the best (the target then needs the LR within {h['grid_step_decades'] / 2:.2f}"
            f" decade); best LR sits {o['median']:+.2f} decades below the sweep's minimum "
            f"(median; {o['min']:+.2f} … {o['max']:+.2f}, sd {o['stdev']:.2f}, up to "
            f"{o['widest_over_seeds']:.2f} between seeds of one setting); the best fixed back-off "
            f"in hindsight ({b['decades']:.2f} decades) lands {100 * b['within_half_step']:.0f} % "
            "of cases within half a grid step")


def table(summary: dict[str, Any], title: str) -> str:
    lines = [f"**{title}**", "", "| rule | cases | median regret | worst | within 1.1x | diverged |"
             " targets met |", "|---|---|---|---|---|---|---|"]
    for rule, o in summary.items():
        worst = "inf" if o["worst"] is None else f"{o['worst']:.3f}"
        med = "inf" if o["median"] is None else f"{o['median']:.3f}"
        lines.append(f"| {rule} | {o['cases']} | {med} | {worst} | {100 * o['within_1.1']:.0f} % "
                     f"| {o['diverged']} | {'yes' if o['meets_targets'] else 'no'} |")
    return "\n".join(lines)


def case_table(cases: list[dict[str, Any]]) -> str:
    rules = rules_of(cases)
    lines = ["| problem | opt | seed | best grid lr | " + " | ".join(rules) + " |",
             "|---|---|---|---|" + "---|" * len(rules)]
    for c in cases:
        cells = []
        for rule in rules:
            v = c["rules"][rule]
            cells.append("-" if v["lr"] is None else
                         f"{v['lr']:.2g} ({'div' if v['diverged'] else format(v['regret'], '.2f')})")
        edge = " (edge)" if c["grid_at_edge"] else ""
        lines.append(f"| {c['problem']} | {c['optimizer']} | {c['seed']} | "
                     f"{c['best_grid_lr']:.2g}{edge} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: convex_logreg/adamw, seed 0, 60 steps, 2 grid points a decade")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--grid-per-decade", type=int, default=3)
    ap.add_argument("--schedule", choices=["warmup_cosine", "constant"], default="warmup_cosine",
                    help="how each LR is trained (the grid's LR is the schedule's peak)")
    ap.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    ap.add_argument("--optimizers", nargs="+", default=["adamw", "sgd"], choices=["adamw", "sgd"])
    ap.add_argument("--jobs", type=int, default=1,
                    help="cases judged at once, each in its own one-thread process (the numbers "
                         "do not change; on a 2-core machine --jobs 2 halves the wall time)")
    ap.add_argument("--out", type=pathlib.Path, default=OUT)
    ap.add_argument("--summarise", type=pathlib.Path, metavar="JSON",
                    help="print the tables and the headroom of an earlier run; trains nothing")
    args = ap.parse_args(argv)
    if args.summarise is not None:
        doc = json.loads(args.summarise.read_text(encoding="utf-8"))
        report(doc)
        return doc
    if args.quick:
        args.seeds, args.steps, args.grid_per_decade = [0], 60, 2
        args.problems, args.optimizers = ["convex_logreg"], ["adamw"]
    torch.set_num_threads(1)

    t0 = time.perf_counter()
    lrs = grid(args.grid_per_decade)
    work = [(name, opt, seed, lrs, args.steps, args.schedule)
            for name in args.problems for opt in args.optimizers for seed in args.seeds]
    cases = []
    # Each case is deterministic and independent of the others, so running them in other
    # processes changes only the wall time, not one number.
    with (concurrent.futures.ProcessPoolExecutor(
            args.jobs, mp_context=multiprocessing.get_context("spawn"),
            initializer=torch.set_num_threads, initargs=(1,))
          if args.jobs > 1 else contextlib.nullcontext()) as pool:
        results = pool.map(_judge_case, work) if pool else map(_judge_case, work)
        for (name, opt, seed, *_), case in zip(work, results, strict=True):
            cases.append(case)
            print(f"[{time.perf_counter() - t0:6.0f}s] {name}/{opt}/{seed}: " + ", ".join(
                f"{r}={'div' if v['diverged'] else format(v['regret'] or math.nan, '.3f')}"
                for r, v in case["rules"].items()), flush=True)
    split = {"all": cases, "fit": [c for c in cases if c["problem"] in FIT],
             "held_out": [c for c in cases if c["problem"] in HELD_OUT]}
    summary = {k: summarise(v) for k, v in split.items() if v}
    doc = {"targets": TARGETS, "steps": args.steps, "schedule": args.schedule, "grid": lrs,
           "fit": list(FIT), "held_out": list(HELD_OUT), "summary": summary,
           "headroom": headroom(cases, lrs), "trials_warnings": trials_warnings(cases),
           "by_confidence": by_confidence(cases), "by_setting": by_setting(cases),
           "cases": cases,
           "seconds": time.perf_counter() - t0, "torch": torch.__version__,
           "python": platform.python_version(), "quick": args.quick}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    report(doc)
    print(f"\nwrote {args.out} in {doc['seconds']:.0f} s")
    return doc


def report(doc: dict[str, Any]) -> None:
    """The markdown tables and the headroom line of one run's document."""
    cases = doc["cases"]
    sizes = {"all": len(cases), "fit": sum(c["problem"] in doc["fit"] for c in cases),
             "held_out": sum(c["problem"] in doc["held_out"] for c in cases)}
    for k, s in doc["summary"].items():
        print("\n" + table(s, f"{k} ({sizes[k]} cases)"))
    print("\n" + case_table(cases))
    # a document from before these were stored has the cases to derive them from
    print("\n" + headroom_text(doc.get("headroom") or headroom(cases, doc["grid"])))
    print("\n" + confidence_text(doc.get("by_confidence") or by_confidence(cases)))
    per = doc.get("by_setting") or by_setting(cases)
    n = len({(c["problem"], c["optimizer"]) for c in cases})
    print("\n" + table(per, f"per setting ({n}: the mean over its seeds at the rule's picks / "
                             "the best grid LR's mean over the same seeds)"))
    w = doc.get("trials_warnings") or trials_warnings(cases)
    if w is not None:
        print(f"trials: {w['bad']} winners diverged or had regret > 2 on the judged run; the "
              f"verdict warned (near_stability_edge) on {w['bad_warned']} of them, and on "
              f"{w['warned']} cases in all" + (
                  f"; rerun with seeds=2 where it warned, {w['bad_after_seeds']} winners went "
                  "badly" if "bad_after_seeds" in w else ""))


def _fin(v: float) -> float | None:
    return v if math.isfinite(v) else None


if __name__ == "__main__":
    main()
