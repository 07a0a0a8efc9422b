"""How good is each LR rule? Train at each rule's pick and at a grid of fixed LRs, and compare.

    python -m bench.suggestion_quality [--seeds 0 1 2] [--steps 150]

Problems and the measurement are shared with ``tests/core/test_suggest_quality.py``
(``bench/problems.py``). A pick is *close* when its final full-data training loss is at most
``best + 0.10 * (initial - best)`` over a 12-point log grid 1e-4 … 3.16. Writes
``bench/results/suggestion_quality.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import time

import torch

from bench.problems import PROBLEMS, RULES, TOLERANCE, judge_suggestions

OUT = pathlib.Path(__file__).resolve().parent / "results" / "suggestion_quality.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    ap.add_argument("--out", type=pathlib.Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)  # small models: threads only add noise on a shared CPU

    t0 = time.perf_counter()
    runs = [judge_suggestions(PROBLEMS[name](seed=seed), steps=args.steps) | {"seed": seed}
            for name in args.problems for seed in args.seeds]
    summary = {rule: {"close": sum(r["rules"][rule]["close"] for r in runs), "of": len(runs)}
               for rule in RULES}
    doc = {"tolerance": TOLERANCE, "steps": args.steps, "summary": summary, "runs": runs,
           "seconds": time.perf_counter() - t0, "torch": torch.__version__,
           "python": platform.python_version()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n", encoding="utf-8")

    print("| problem | seed | best grid lr | " + " | ".join(RULES) + " |")
    print("|---|---|---|" + "---|" * len(RULES))
    for r in runs:
        cells = []
        for rule in RULES:
            v = r["rules"][rule]
            mark = "ok" if v["close"] else "FAIL"
            cells.append("-" if v["lr"] is None else
                         f"{v['lr']:.3g} (x{v['ratio_to_best_lr']:.2f}) {mark}")
        print(f"| {r['problem']} | {r['seed']} | {r['best_grid_lr']:.3g} | " + " | ".join(cells)
              + " |")
    print("| **close** | | | " + " | ".join(f"{s['close']}/{s['of']}" for s in summary.values())
          + " |")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
