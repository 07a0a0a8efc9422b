"""Choosing ``suggest.BACKOFF`` by cross-validation over the LR-quality benchmark's problems.

    python -m bench.backoff_cv --jobs 2      # reads bench/results/lr_quality.json; ~1 minute
    python -m bench.backoff_cv --summarise bench/results/backoff_cv.json   # no training

``recommended`` is ``lr_min / BACKOFF`` (clipped, ``suggest.backoff_pick``), with ``lr_min`` the
range test's smoothed minimum. This script scores every candidate back-off in ``BACKOFFS`` the
way ``bench/lr_quality.py`` scores a rule: for each of its cases (problem, optimizer, seed), the
pick ``backoff_pick(lr_min, first_lr, b)`` read off that case's stored range test is trained as
the judged run (same problem, seed, steps and schedule), and its final loss is divided by the
case's best grid loss. No range test or grid is rerun: they do not depend on the back-off.

How a back-off is chosen on a set of cases: the lowest geometric-mean regret (the mean of log
regret; a diverged pick counts as ``DIVERGED_REGRET``). The mean of logs weighs a 1.3x miss on a
sharp problem as much as a 1.3x miss on a flat one, and unlike the median it moves with every
case. Three choices are reported:

* ``fit``: chosen on the ``FIT`` problems only. This is the protocol ``suggest.BACKOFF`` is set
  by: the ``HELD_OUT`` problems never enter the choice, so lr_quality's held-out rows stay an
  honest estimate;
* ``lopo``: leave one problem out, as a check on that estimate from 4 held-out problems. For each
  of the 8 problems, the back-off chosen on the other seven is scored on the left-out problem's
  6 cases; the 48 regrets together say how a constant chosen this way does on a problem it was
  not chosen on;
* ``all``: chosen on every problem, to see whether the held-out problems would have asked for
  another value.

Writes ``bench/results/backoff_cv.json`` and prints markdown.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import math
import multiprocessing
import pathlib
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from bench import lr_quality
from bench.lr_quality_problems import FIT, PROBLEMS
from bench.problems import train_fixed_lr
from optim_core.numerics.suggest import BACKOFF, backoff_pick

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
#: the candidates: the range the earlier constant was chosen from (minimum/3 … minimum/10)
BACKOFFS = (3.0, 4.0, 5.0, 6.0, 8.0, 10.0)
#: a diverged pick's regret in the geometric mean, which an infinity would make infinite for
#: every back-off that diverged anywhere (none diverged in the runs quoted in README)
DIVERGED_REGRET = 100.0

Row = dict[str, Any]


def _train_picks(item: tuple[str, str, int, float, float, int, str, tuple[float, ...]]
                 ) -> dict[str, Any]:
    name, optimizer, seed, lr_min, first_lr, steps, schedule, backoffs = item
    problem = PROBLEMS[name](seed, optimizer)
    out: dict[str, Any] = {}
    for b in backoffs:
        lr = backoff_pick(lr_min, first_lr, b)
        loss = train_fixed_lr(problem, lr, steps, schedule)
        out[f"{b:g}"] = {"lr": lr, "final_loss": loss if math.isfinite(loss) else None}
    return out


def measure(doc: dict[str, Any], backoffs: Sequence[float], jobs: int) -> list[Row]:
    """One row per case of an lr_quality run: every back-off's pick, its final loss and regret."""
    cases = doc["cases"]
    work = [(c["problem"], c["optimizer"], c["seed"], c["range_test"]["lr_at_min"],
             c["range_test"]["curve"]["lrs"][0], doc["steps"], doc["schedule"], tuple(backoffs))
            for c in cases]
    # Each case is deterministic and independent: other processes change only the wall time.
    with (concurrent.futures.ProcessPoolExecutor(
            jobs, mp_context=multiprocessing.get_context("spawn"),
            initializer=torch.set_num_threads, initargs=(1,))
          if jobs > 1 else contextlib.nullcontext()) as pool:
        picks = list(pool.map(_train_picks, work) if pool else map(_train_picks, work))
    rows = []
    for c, p in zip(cases, picks, strict=True):
        best = c["best_grid_loss"]
        for v in p.values():
            v["regret"] = None if v["final_loss"] is None else v["final_loss"] / best
        rows.append({"problem": c["problem"], "optimizer": c["optimizer"], "seed": c["seed"],
                     "lr_at_min": c["range_test"]["lr_at_min"], "best_grid_loss": best,
                     "picks": p})
    return rows


def regret(row: Row, backoff: str) -> float:
    """A pick's regret; a diverged pick's is infinite (as in lr_quality)."""
    v = row["picks"][backoff]["regret"]
    return math.inf if v is None else v


def geo_mean(values: Sequence[float]) -> float:
    """The geometric mean, a diverged (infinite) regret counted as ``DIVERGED_REGRET``."""
    return math.exp(statistics.fmean(math.log(min(v, DIVERGED_REGRET)) for v in values))


def choose(rows: Sequence[Row], backoffs: Sequence[str]) -> str | None:
    """The back-off of the lowest geometric-mean regret on ``rows`` (ties: the first listed;
    None without rows)."""
    if not rows:
        return None
    return min(backoffs, key=lambda b: geo_mean([regret(r, b) for r in rows]))


def scores(regrets: Sequence[float]) -> dict[str, Any]:
    """lr_quality's scores of these regrets, and the geometric mean the choice is made on."""
    return lr_quality.scores(regrets) | {"geo_mean": geo_mean(regrets)}


def cross_validate(rows: Sequence[Row], backoffs: Sequence[str],
                   fit: Callable[[str], bool]) -> dict[str, Any]:
    problems = sorted({r["problem"] for r in rows})
    folds = {}
    lopo: list[float] = []
    for p in problems if len(problems) > 1 else ():  # one problem leaves nothing to choose on
        chosen = choose([r for r in rows if r["problem"] != p], backoffs)
        assert chosen is not None
        left_out = [regret(r, chosen) for r in rows if r["problem"] == p]
        folds[p] = {"chosen": chosen, "left_out": scores(left_out)}
        lopo += left_out
    return {
        "per_backoff": {b: scores([regret(r, b) for r in rows]) for b in backoffs},
        "per_problem": {p: {b: geo_mean([regret(r, b) for r in rows if r["problem"] == p])
                            for b in backoffs} for p in problems},
        "fit": choose([r for r in rows if fit(r["problem"])], backoffs),
        "all": choose(rows, backoffs),
        "folds": folds,
        "lopo": scores(lopo) if lopo else None,
    }


def _num(v: float | None, digits: int) -> str:
    return "inf" if v is None else f"{v:.{digits}f}"


def report(doc: dict[str, Any]) -> str:
    cv = doc["cv"]
    lines = ["| back-off | geo-mean regret | median | worst | within 1.1x | diverged |",
             "|---|---|---|---|---|---|"]
    for b, s in cv["per_backoff"].items():
        mark = " (suggest.BACKOFF)" if float(b) == doc["backoff_in_use"] else ""
        lines.append(f"| minimum/{b}{mark} | {s['geo_mean']:.3f} | {_num(s['median'], 3)} | "
                     f"{_num(s['worst'], 2)} | {100 * s['within_1.1']:.0f} % | {s['diverged']} |")
    backoffs = list(cv["per_backoff"])
    lines += ["", "| problem (geo-mean regret) | " + " | ".join(f"/{b}" for b in backoffs)
              + " | chosen without it |", "|---|" + "---|" * (len(backoffs) + 1)]
    for p, per in cv["per_problem"].items():
        fold = cv["folds"].get(p)
        lines.append(f"| {p} | " + " | ".join(f"{per[b]:.3f}" for b in backoffs)
                     + f" | {'/' + fold['chosen'] if fold else '-'} |")
    lo = cv["lopo"]
    fit = "-" if cv["fit"] is None else "/" + cv["fit"]
    lines += ["", f"chosen on FIT only: {fit}; on all problems: /{cv['all']}; "
              + ("leave-one-problem-out: needs two problems or more" if lo is None else
                 f"leave-one-problem-out: {lo['cases']} left-out cases, geo-mean "
                 f"{lo['geo_mean']:.3f}, median {_num(lo['median'], 3)}, "
                 f"worst {_num(lo['worst'], 2)}, "
                 f"{100 * lo['within_1.1']:.0f} % within 1.1x, {lo['diverged']} diverged")]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="source", type=pathlib.Path,
                    default=RESULTS / "lr_quality.json", help="an lr_quality run's JSON")
    ap.add_argument("--backoffs", type=float, nargs="+", default=list(BACKOFFS))
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", type=pathlib.Path, default=RESULTS / "backoff_cv.json")
    ap.add_argument("--summarise", type=pathlib.Path, metavar="JSON",
                    help="print an earlier run's tables; trains nothing")
    args = ap.parse_args(argv)
    if args.summarise is not None:
        doc = json.loads(args.summarise.read_text(encoding="utf-8"))
        print(report(doc))
        return doc
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    source = json.loads(args.source.read_text(encoding="utf-8"))
    rows = measure(source, args.backoffs, args.jobs)
    names = [f"{b:g}" for b in args.backoffs]
    fit = set(source.get("fit") or FIT)
    root = RESULTS.parent.parent
    source_name = (str(args.source.resolve().relative_to(root))
                   if args.source.resolve().is_relative_to(root) else str(args.source))
    doc = {"source": source_name, "steps": source["steps"], "schedule": source["schedule"],
           "backoffs": names, "backoff_in_use": BACKOFF, "diverged_regret": DIVERGED_REGRET,
           "cv": cross_validate(rows, names, fit.__contains__), "cases": rows,
           "seconds": time.perf_counter() - t0, "torch": torch.__version__}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    print(report(doc))
    print(f"\nwrote {args.out} in {doc['seconds']:.0f} s")
    return doc


if __name__ == "__main__":
    main()
